"""W&B sweep scripts run unchanged by the real `xpscale run` (issue 15):
W&B sweep configs (program: train.py and W&B's default command), scripts
in W&B's idioms (wandb/), the metrics read back from the store with
`xpscale report --format json`. No W&B server, account or package: the
trials get xpscale's wandb shim. Each sweep is a few short trials.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TEST_TMP; PYTHONPATH is
the build's package (for the shim's unit tests' stand-in, not needed here).
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pylib"))
from sweep_case import MPI, SweepCase  # noqa: E402  (tests/pylib)

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "wandb")
XPSCALE = os.environ["XPSCALE_BIN"]


class WandbSweepTest(SweepCase):
    tmp_prefix = "wandb-"

    def setUp(self):
        super().setUp()
        # W&B's default command is `${env} ${interpreter} ${program} ${args}`
        # with interpreter `python3`: Debian's, first on PATH. The user's own
        # PYTHONPATH (the helper module) must reach the trial after the shim.
        self.env["PATH"] = "/usr/bin:" + self.env.get("PATH", "")
        self.env["PYTHONPATH"] = SCRIPTS
        for script in ("train.py", "agent_train.py"):
            shutil.copy(os.path.join(SCRIPTS, script), self.tmp)

    def sweep(self, program, parameters, expect=0, ranks=None, **keys):
        cfg = {"program": program, "method": "grid",
               "metric": {"name": "val_loss", "goal": "minimize"},
               "parameters": parameters, "out_dir": self.out}
        cfg.update(keys)
        path = os.path.join(self.tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        p = subprocess.run((MPI + ["-n", str(ranks)] if ranks else []) +
                           [XPSCALE, "run", "--quiet", path], cwd=self.tmp, env=self.env,
                           capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, expect, p.stderr[-4000:])
        report = subprocess.run([XPSCALE, "report", self.out, "--format", "json"],
                                env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(report.returncode, 0, report.stderr)
        return json.loads(report.stdout), p

    def steps(self):
        with sqlite3.connect(os.path.join(self.out, "xpscale.db")) as con:
            rows = con.execute("SELECT trial, step FROM metrics ORDER BY trial, step").fetchall()
        out = {}
        for trial, step in rows:
            out.setdefault(trial, []).append(step)
        return out

    def test_grid_sweep_of_an_unchanged_wandb_script_with_nested_params(self):
        trials, _ = self.sweep("train.py", {
            "optimizer": {"parameters": {"lr": {"values": [0.1, 0.3, 0.5]}}},
            "epochs": {"value": 3}})
        self.assertEqual(len(trials), 3)
        for t in trials:
            self.assertEqual(t["status"], "completed", t)
            lr = t["params"]["optimizer.lr"]  # the store's names are flat
            self.assertAlmostEqual(t["best_value"], (lr - 0.3) ** 2 + 0.1 / 3, places=12)
            self.assertEqual(t["best_step"], 2)
        self.assertEqual(trials[0]["params"]["optimizer.lr"], 0.3)  # the best first
        self.assertEqual(self.steps(), {t["id"]: [0, 1, 2] for t in trials})

    def test_two_ranks_per_trial_record_the_leaders_logs(self):
        # Every rank of the group runs the script and logs; rank 0's reports
        # are the trial's.
        trials, _ = self.sweep("train.py", {
            "optimizer": {"parameters": {"lr": {"values": [0.1, 0.3]}}},
            "epochs": {"value": 2}}, ranks=2, resources={"ranks_per_trial": 2})
        self.assertEqual([t["status"] for t in trials], ["completed", "completed"])
        self.assertEqual(self.steps(), {t["id"]: [0, 1] for t in trials})
        self.assertAlmostEqual(trials[0]["best_value"], 0.05, places=12)

    def test_random_sweep_with_run_cap_through_wandb_agent(self):
        trials, _ = self.sweep("agent_train.py", {
            "lr": {"distribution": "uniform", "min": 0.0, "max": 1.0},
            "epochs": {"value": 2}}, method="random", run_cap=4, wandb="shim")
        self.assertEqual(len(trials), 4)
        for t in trials:
            self.assertEqual(t["status"], "completed", t)
            self.assertAlmostEqual(t["best_value"], (t["params"]["lr"] - 0.3) ** 2 + 0.5,
                                   places=12)
        values = [t["best_value"] for t in trials]
        self.assertEqual(values, sorted(values))

    def test_random_without_run_cap_draws_until_xpscale_stop(self):
        # W&B's common case: no run_cap, the sweep runs until it is stopped.
        cfg = {"program": "train.py", "method": "random",
               "metric": {"name": "val_loss", "goal": "minimize"},
               "parameters": {"optimizer": {"parameters": {
                   "lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}}},
                   "epochs": {"value": 2}}, "out_dir": self.out}
        path = os.path.join(self.tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        p = subprocess.Popen([XPSCALE, "run", "--quiet", path], cwd=self.tmp, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        db = os.path.join(self.out, "xpscale.db")
        deadline = time.time() + 120
        done = 0
        while done < 4 and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
            try:
                with sqlite3.connect(db) as con:
                    done = con.execute(
                        "SELECT count(*) FROM trials WHERE status = 'completed'").fetchone()[0]
            except sqlite3.Error:
                pass
        self.assertGreaterEqual(done, 4, "the unbounded sweep did not get going")
        stop = subprocess.run([XPSCALE, "stop", self.out], env=self.env, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(stop.returncode, 0, stop.stderr)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err[-3000:])
        report = subprocess.run([XPSCALE, "report", self.out, "--format", "json"],
                                env=self.env, capture_output=True, text=True, timeout=60)
        trials = json.loads(report.stdout)
        self.assertGreaterEqual(len(trials), 4)
        for t in trials:
            self.assertEqual(t["status"], "completed", t)
            lr = t["params"]["optimizer.lr"]
            self.assertAlmostEqual(t["best_value"], (lr - 0.3) ** 2 + 0.1 / 2, places=12)

    def test_bayes_sweep_with_run_cap(self):
        trials, _ = self.sweep("agent_train.py", {
            "lr": {"distribution": "uniform", "min": 0.0, "max": 1.0},
            "epochs": {"value": 1}}, method="bayes", run_cap=6)
        self.assertEqual(len(trials), 6)
        self.assertTrue(all(t["status"] == "completed" for t in trials), trials)
        self.assertEqual(trials[0]["best_value"], min(t["best_value"] for t in trials))

    def test_hyperband_early_termination_stops_the_worse_trials(self):
        # W&B's early_terminate; 9 epochs each, brackets at 1, 3 and 9.
        trials, _ = self.sweep("agent_train.py", {
            "lr": {"values": [0.3, 0.9, 0.0, 1.0, 0.25, 0.8]}},
            early_terminate={"type": "hyperband", "min_iter": 1})
        self.assertEqual(len(trials), 6)
        by_lr = {t["params"]["lr"]: t for t in trials}
        self.assertEqual(by_lr[0.3]["status"], "completed", by_lr[0.3])
        self.assertEqual(by_lr[0.3]["last_step"], 8)
        stopped = [t for t in trials if t["status"] == "stopped"]
        self.assertTrue(stopped, trials)
        for t in stopped:
            self.assertLess(t["last_step"], 8, t)
            self.assertIsNotNone(t["best_value"], t)
        self.assertEqual(trials[0]["params"]["lr"], 0.3)

    def test_a_metric_never_logged_fails_the_trial_with_the_reason(self):
        with open(os.path.join(self.tmp, "typo.py"), "w") as f:
            f.write("import wandb\nwandb.init()\nfor e in range(2):\n"
                    "    wandb.log({'loss': 1.0, 'epoch': e})\n")
        trials, p = self.sweep("typo.py", {"x": {"values": [1]}}, expect=1)
        self.assertEqual(trials[0]["status"], "failed", trials)
        self.assertEqual(trials[0]["reason"], "metric 'val_loss' never reported")
        self.assertIn("trial 0: metric 'val_loss' not in the first report (it has: epoch, loss)",
                      p.stderr)

    def test_a_metric_that_is_always_nan_says_so(self):
        with open(os.path.join(self.tmp, "diverge.py"), "w") as f:
            f.write("import wandb\nwandb.init()\nfor e in range(2):\n"
                    "    wandb.log({'val_loss': float('nan'), 'epoch': e})\n")
        trials, _ = self.sweep("diverge.py", {"x": {"values": [1]}}, expect=1)
        self.assertEqual(trials[0]["status"], "failed", trials)
        self.assertIn("'val_loss' was never a finite number", trials[0]["reason"])

    def test_wandb_off_leaves_the_trials_python_path_alone(self):
        trials, _ = self.sweep("train.py", {"x": {"values": [1]}}, wandb="off", expect=1)
        self.assertEqual(trials[0]["status"], "failed", trials)
        with open(os.path.join(self.out, "trials", "0", "logs", "attempt1.rank0.err")) as f:
            tail = f.read()
        self.assertIn("No module named 'wandb'", tail)


if __name__ == "__main__":
    unittest.main()
