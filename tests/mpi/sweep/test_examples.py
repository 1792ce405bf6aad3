"""The examples as users run them, end to end under mpiexec: the C++
Fashion-MNIST trainer (in-process, groups of 2 ranks) and the scikit-learn
trial (external, 1 rank each). Short versions of the example sweeps. The
PyTorch DDP example runs in tests/integration/s3 (its shards on s3rver).

Environment (set by CMake): XPSCALE_BIN, XPSCALE_FMNIST (the trainer),
XPSCALE_TEST_TMP.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


class ExamplesTest(unittest.TestCase):
    def sweep(self, cfg, argv, ranks):
        tmp = tempfile.mkdtemp(prefix="examples-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        out = os.path.join(tmp, "out")
        cfg["out_dir"] = out
        self.last_out = out
        path = os.path.join(tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run(MPI + ["-n", str(ranks)] + argv + [path], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        con = sqlite3.connect(os.path.join(out, "xpscale.db"))
        rows = con.execute("SELECT id, status, best_value, reason FROM trials ORDER BY id").fetchall()
        con.close()
        return rows

    def test_fashion_mnist_cpp_reaches_85_percent(self):
        cfg = {"method": "grid", "metric": {"name": "test_accuracy", "goal": "maximize"},
               "parameters": {"lr": {"values": [0.03, 0.05]}, "hidden": {"value": 128},
                              "batch_size": {"value": 128}, "epochs": {"value": 2}},
               "resources": {"ranks_per_trial": 2}}
        rows = self.sweep(cfg, [os.environ["XPSCALE_FMNIST"], "--quiet", "--sweep"], ranks=4)
        self.assertEqual([r[1] for r in rows], ["completed", "completed"], rows)
        self.assertGreaterEqual(max(r[2] for r in rows), 0.85, rows)

    def test_fashion_mnist_cpp_reads_shards(self):
        # Shards made by `xpscale shard`; the trainer streams them through
        # trial.loader("train") and saves the loader's state per checkpoint.
        tmp = tempfile.mkdtemp(prefix="shards-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.addCleanup(shutil.rmtree, tmp, True)  # 150 MB of shards
        subprocess.run([os.environ["XPSCALE_BIN"], "shard", "/usr/share/datasets/fashion-mnist",
                        "--split", "train", "--range", "0:55000", "--out", tmp, "--shards", "8"],
                       check=True, capture_output=True, timeout=300)
        cfg = {"method": "grid", "metric": {"name": "test_accuracy", "goal": "maximize"},
               "parameters": {"lr": {"value": 0.05}, "hidden": {"value": 128},
                              "batch_size": {"value": 128}, "epochs": {"value": 2}},
               "data": {"train": {"manifest": os.path.join(tmp, "train.manifest.json"),
                                  "shuffle_buffer": 1 << 22, "seed": 3}},
               "resources": {"ranks_per_trial": 2}}
        rows = self.sweep(cfg, [os.environ["XPSCALE_FMNIST"], "--quiet", "--sweep"], ranks=2)
        self.assertEqual(rows[0][1], "completed", rows)
        self.assertGreaterEqual(rows[0][2], 0.8, rows)
        state_file = os.path.join(self.last_out, "trials", "0", "checkpoint", "loader-train-2.json")
        with open(state_file) as f:
            state = json.load(f)
        self.assertEqual((state["epoch"], state["samples_consumed"], state["world_size"],
                          state["seed"], state["global_batch"]), (2, 0, 2, 3, 128), state)

    def test_sklearn_digits_sweep(self):
        # The example sweep as it is, on 2 ranks (2 trials at once), cut to 8
        # trials: every trial completes and reports its accuracies.
        tmp = tempfile.mkdtemp(prefix="sklearn-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.addCleanup(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "out")
        p = subprocess.run(MPI + ["-n", "2", os.environ["XPSCALE_BIN"], "run", "--quiet",
                                  "examples/sweeps/sklearn_digits.yaml", "--out-dir", out,
                                  "--trials", "8"],
                           cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        con = sqlite3.connect(os.path.join(out, "xpscale.db"))
        rows = con.execute("SELECT id, status, best_value FROM trials ORDER BY id").fetchall()
        metrics = con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        con.close()
        self.assertEqual([r[1] for r in rows], ["completed"] * 8, rows)
        self.assertEqual(metrics, 8)
        self.assertTrue(all(0.0 <= r[2] <= 1.0 for r in rows), rows)
        self.assertGreaterEqual(max(r[2] for r in rows), 0.9, rows)


if __name__ == "__main__":
    unittest.main()
