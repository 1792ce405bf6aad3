"""A sweep end to end with its training data on S3: `xpscale shard
--upload s3://` puts Fashion-MNIST shards on s3rver (ctest fixture
s3rver), and the C++ Fashion-MNIST trainer (in-process trials, one group
of 2 ranks under mpiexec) streams them through trial.loader("train") from
a `data:` section naming the s3:// manifest. Tiny: 4000 samples, 1 epoch.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_FMNIST (the trainer),
XPSCALE_S3_STATE (the fixture's state directory), XPSCALE_TEST_TMP.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

FMNIST = "/usr/share/datasets/fashion-mnist"
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


if __name__ == "__main__":
    unittest.main()
