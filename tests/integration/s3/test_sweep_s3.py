"""Sweeps end to end with their training data on S3: `xpscale shard
--upload s3://` puts Fashion-MNIST shards on s3rver (ctest fixture
s3rver), and the C++ Fashion-MNIST trainer (in-process trials, one group
of 2 ranks under mpiexec) streams them through trial.loader("train") from
a `data:` section naming the s3:// manifest. Tiny: 4000 samples, 1 epoch.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_FMNIST (the trainer),
XPSCALE_S3_STATE (the fixture's state directory), XPSCALE_TEST_TMP.
"""
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pylib"))
from processes import marker_pids  # noqa: E402  (tests/pylib)

FMNIST = "/usr/share/datasets/fashion-mnist"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TRAIN_PY = os.path.join(REPO, "examples", "pytorch", "train.py")
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]


def s3_env():
    with open(os.path.join(os.environ["XPSCALE_S3_STATE"], "endpoint")) as f:
        endpoint = f.read().strip()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="S3RVER",
               AWS_SECRET_ACCESS_KEY="s3rver-secret", AWS_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        env.pop(name, None)
    return env


class SweepOverS3Test(unittest.TestCase):
    @unittest.skipUnless(os.path.isdir(FMNIST), "dataset-fashion-mnist is not installed")
    def test_fashion_mnist_trainer_reads_its_shards_from_s3(self):
        env = s3_env()
        base = os.environ.get("XPSCALE_TEST_TMP")
        if base:
            os.makedirs(base, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="sweep-s3-", dir=base)
        self.addCleanup(shutil.rmtree, tmp, True)
        prefix = "s3://xpscale-test/fmnist-sweep"
        p = subprocess.run([os.environ["XPSCALE_BIN"], "shard", FMNIST, "--split", "train",
                            "--range", "0:4000", "--out", os.path.join(tmp, "shards"),
                            "--shards", "4", "--upload", prefix],
                           env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(prefix + "/train.manifest.json", p.stdout)
        # The shards the sweep reads exist only on the server.
        shutil.rmtree(os.path.join(tmp, "shards"))

        out = os.path.join(tmp, "out")
        cfg = {"method": "grid", "metric": {"name": "test_accuracy", "goal": "maximize"},
               "parameters": {"lr": {"value": 0.05}, "hidden": {"value": 64},
                              "batch_size": {"value": 128}, "epochs": {"value": 1}},
               "data": {"train": {"manifest": prefix + "/train.manifest.json",
                                  "shuffle_buffer": 1 << 20, "seed": 5}},
               "resources": {"ranks_per_trial": 2}, "out_dir": out}
        path = os.path.join(tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run(MPI + ["-n", "2", os.environ["XPSCALE_FMNIST"], "--quiet", "--sweep",
                                  path], env=env, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        con = sqlite3.connect(os.path.join(out, "xpscale.db"))
        rows = con.execute("SELECT id, status, best_value, reason FROM trials").fetchall()
        con.close()
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0][1], "completed", rows)
        # One epoch on 4000 images: well above chance (0.1), far from converged.
        self.assertGreaterEqual(rows[0][2], 0.5, rows)
        # The loader's state, saved with the checkpoint, says it read the
        # whole epoch of this dataset on 2 ranks.
        with open(os.path.join(out, "trials", "0", "checkpoint", "loader-train-1.json")) as f:
            state = json.load(f)
        self.assertEqual((state["epoch"], state["samples_consumed"], state["world_size"],
                          state["seed"]), (1, 0, 2, 5), state)




@unittest.skipUnless(os.path.isdir(FMNIST), "dataset-fashion-mnist is not installed")
class PyTorchOverS3Test(unittest.TestCase):
    """examples/pytorch/train.py as a user runs it: DDP on gloo over 2 ranks,
    its training shards streamed from S3 through xpscale.data (the config's
    data: section), validation and test sets from the IDX files."""

    SAMPLES = 12000  # 6000 per rank: 94 steps of 64 per rank and epoch
    STEPS_PER_EPOCH = 94

    @classmethod
    def setUpClass(cls):
        cls.env = s3_env()
        base = os.environ.get("XPSCALE_TEST_TMP")
        if base:
            os.makedirs(base, exist_ok=True)
        cls.tmp = tempfile.mkdtemp(prefix="pytorch-s3-", dir=base)
        cls.prefix = "s3://xpscale-test/fmnist-torch"
        p = subprocess.run([os.environ["XPSCALE_BIN"], "shard", FMNIST, "--split", "train",
                            "--range", f"0:{cls.SAMPLES}", "--out",
                            os.path.join(cls.tmp, "shards"), "--shards", "4", "--upload",
                            cls.prefix], env=cls.env, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(p.stdout + p.stderr)
        shutil.rmtree(os.path.join(cls.tmp, "shards"))  # only the server has them

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("XPSCALE_KEEP_TMP"):  # set it to look at a failure's logs
            shutil.rmtree(cls.tmp, True)

    def config(self, name, **keys):
        out = os.path.join(self.tmp, name)
        cfg = {"method": "grid", "metric": {"name": "test_accuracy", "goal": "maximize"},
               "program": TRAIN_PY,
               "command": ["/usr/bin/python3", "${program}", "${args}"],
               "parameters": {"lr": {"value": 0.05}, "hidden": {"value": 64},
                              "batch_size": {"value": 128}, "epochs": {"value": 3},
                              "workers": {"value": 1}},
               "data": {"train": {"pattern": self.prefix + "/train-{000000..000003}.tar",
                                  "shuffle_buffer": 1 << 20, "seed": 7}},
               "resources": {"ranks_per_trial": 2, "time_limit": "4m"}, "out_dir": out}
        for k, v in keys.items():
            if k == "parameters":
                cfg["parameters"].update(v)
            else:
                cfg[k] = v
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path, out

    def trials(self, out):
        con = sqlite3.connect(os.path.join(out, "xpscale.db"))
        rows = con.execute("SELECT id, status, best_value, reason FROM trials").fetchall()
        con.close()
        return rows

    def logs(self, out, pattern="*.err"):
        text = ""
        for path in sorted(glob.glob(os.path.join(out, "trials", "0", "logs", pattern))):
            with open(path) as f:
                text += f"== {os.path.basename(path)}\n" + f.read()
        return text

    def test_ddp_trial_streams_from_s3_and_obeys_the_schedulers_stop(self):
        # The target (as ASHA or Hyperband would) stops the trial after its
        # first epoch: both ranks see should_stop(), agree, and end by
        # themselves; the trial is "stopped", not failed or killed.
        path, out = self.config("stop", metric={"name": "test_accuracy", "goal": "maximize",
                                                "target": 0.6})
        started = time.monotonic()
        p = subprocess.run(MPI + ["-n", "2", os.environ["XPSCALE_BIN"], "run", "--quiet", path],
                           env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        rows = self.trials(out)
        self.assertEqual(rows[0][1], "stopped", (rows, self.logs(out)[-3000:]))
        self.assertEqual(rows[0][3], "target", rows)
        self.assertGreaterEqual(rows[0][2], 0.6, rows)
        logs = self.logs(out)
        # Rank 0 saw the decision on its report; rank 1 may learn it from
        # the group's agreement before its own look.
        self.assertIn("[rank 0] stopped by the scheduler (target) after epoch 1", logs)
        self.assertRegex(logs, r"\[rank 1\] stopped by the scheduler \(.*\) after epoch 1")
        self.assertLess(time.monotonic() - started, 300)

    def test_ddp_trial_killed_mid_epoch_resumes_from_its_loader_state(self):
        # A checkpoint every 10 steps holds the model, the optimizer and the
        # loader's state. The whole sweep (mpiexec, xpscale, the trial's
        # processes) is killed once a checkpoint inside epoch 1 exists;
        # `xpscale run --resume` continues the trial from it, and the trial
        # ends after exactly 3 epochs of steps: nothing trained twice or
        # skipped. (Killing the processes stands in for a node failure or a
        # Slurm time limit.)
        path, out = self.config("resume", parameters={"checkpoint_every": {"value": 10}})
        marker = uuid.uuid4().hex
        env = dict(self.env, XPSCALE_TEST_MARKER=marker)
        sweep = subprocess.Popen(MPI + ["-n", "2", os.environ["XPSCALE_BIN"], "run", "--quiet",
                                        path], env=env, cwd=REPO, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        marker_file = os.path.join(out, "trials", "0", "checkpoint", "xpscale_checkpoint.json")
        deadline = time.monotonic() + 240
        step = -1
        try:
            while time.monotonic() < deadline and sweep.poll() is None:
                try:
                    with open(marker_file) as f:
                        step = json.load(f)["step"]
                except (OSError, ValueError):
                    step = -1
                if 30 <= step < self.STEPS_PER_EPOCH - 10:
                    break
                time.sleep(0.01)
        finally:
            os.killpg(sweep.pid, signal.SIGKILL)
            for pid in marker_pids(marker):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sweep.wait()
        self.assertTrue(30 <= step < self.STEPS_PER_EPOCH, f"the checkpoint said step {step}")
        time.sleep(0.5)
        with open(marker_file) as f:
            saved = json.load(f)["step"]  # the last complete checkpoint
        self.assertGreater(saved % self.STEPS_PER_EPOCH, 0, saved)  # inside an epoch

        p = subprocess.run(MPI + ["-n", "2", os.environ["XPSCALE_BIN"], "run", "--quiet",
                                  "--resume", path], env=self.env, cwd=REPO,
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        rows = self.trials(out)
        self.assertEqual(rows[0][1], "completed", (rows, self.logs(out)[-3000:]))
        self.assertGreaterEqual(rows[0][2], 0.7, rows)
        logs = self.logs(out)
        epoch = saved // self.STEPS_PER_EPOCH + 1
        position = (saved % self.STEPS_PER_EPOCH) * 64
        for rank in (0, 1):
            self.assertIn(f"[rank {rank}] resumed at step {saved}: epoch {epoch}, sample "
                          f"{position} of 6000", logs)
        with open(marker_file) as f:
            self.assertEqual(json.load(f)["step"], 3 * self.STEPS_PER_EPOCH)
        self.assertRegex(logs, r"epoch 3/3: .*\(.* s, 94 steps\)")


if __name__ == "__main__":
    unittest.main()
