"""Preemption without Slurm: SIGUSR1 to mpirun (which forwards it to the
ranks) preempts the sweep; a second run resumes the interrupted trials from
their checkpoints. Environment as test_sweep.py (XPSCALE_BIN,
XPSCALE_TRAINER, XPSCALE_TEST_TMP).
"""
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
XPSCALE = os.environ["XPSCALE_BIN"]
TRAINER = os.environ["XPSCALE_TRAINER"]
PREEMPT_TRIAL = os.path.join(HERE, "preempt_trial.py")
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", "2"]


class PreemptionTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="preempt-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.out = os.path.join(self.tmp, "out")
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def config(self, **keys):
        cfg = {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
               "out_dir": self.out}
        cfg.update(keys)
        path = os.path.join(self.tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def checkpointed(self, min_step):
        trials = os.path.join(self.out, "trials")
        for t in os.listdir(trials) if os.path.isdir(trials) else []:
            try:
                with open(os.path.join(trials, t, "checkpoint", "xpscale_checkpoint.json")) as f:
                    if json.load(f)["step"] >= min_step:
                        return True
            except (OSError, ValueError):
                pass
        return False

    def run_and_preempt(self, argv):
        """Starts the sweep on 2 ranks, sends mpirun SIGUSR1 once a trial has
        checkpointed step 2, and returns (exit status, stderr)."""
        p = subprocess.Popen(MPI + argv, env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while not self.checkpointed(2) and time.time() < deadline and p.poll() is None:
            time.sleep(0.1)
        p.send_signal(signal.SIGUSR1)
        _, err = p.communicate(timeout=120)
        return p.returncode, err

    def query(self, sql):
        con = sqlite3.connect(os.path.join(self.out, "xpscale.db"))
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def assert_resumed(self, trials):
        statuses = self.query("SELECT id, status FROM trials ORDER BY id")
        self.assertEqual(statuses, [(i, "completed") for i in range(trials)])
        interrupted = self.query("SELECT trial, attempt FROM attempts WHERE status = 'interrupted'")
        self.assertTrue(interrupted)
        for trial, attempt in interrupted:
            (last,), = self.query("SELECT max(step) FROM metrics WHERE trial = %d AND attempt = %d"
                                  % (trial, attempt))
            (first,), = self.query("SELECT min(step) FROM metrics WHERE trial = %d AND attempt = %d"
                                   % (trial, attempt + 1))
            if last is not None:
                self.assertGreater(first, 1, "trial %d started again from scratch" % trial)
                self.assertLessEqual(first, last + 1)

    def test_inprocess_trials_stop_at_their_next_report_and_resume(self):
        cfg = self.config(parameters={"x": {"values": [0, 1, 2]}, "ms": {"value": 200},
                                      "steps": {"value": 15}})
        status, err = self.run_and_preempt([TRAINER, "--sweep", cfg])
        self.assertEqual(status, 3, err)
        self.assertIn("preempted", err)
        self.assertEqual(self.query("SELECT status FROM runs"), [("preempted",)])
        self.assertEqual(self.query("SELECT count(*) FROM trials WHERE status = 'completed'"),
                         [(0,)], "a preempted trial was recorded as a result")
        subprocess.run(MPI + [TRAINER, "--sweep", cfg], env=self.env, check=True,
                       capture_output=True, timeout=120)
        self.assert_resumed(3)

    def test_external_trials_get_sigusr1_then_sigterm_after_the_grace(self):
        # Trial 0 checkpoints and exits on SIGUSR1; trial 1 ignores it and is
        # ended after --preempt-grace. Both resume from their checkpoints.
        cfg = self.config(parameters={"on-usr1": {"values": ["checkpoint", "ignore"]}},
                          command=["/usr/bin/python3", PREEMPT_TRIAL, "${args}"])
        status, err = self.run_and_preempt([XPSCALE, "run", cfg, "--preempt-grace", "1"])
        self.assertEqual(status, 3, err)
        self.assertTrue(os.path.exists(os.path.join(self.out, "trials", "0", "usr1.1")),
                        "trial 0 did not get SIGUSR1\n" + err)
        reasons = self.query("SELECT trial, status, reason FROM attempts ORDER BY trial")
        self.assertEqual(reasons, [(0, "interrupted", "preempted"), (1, "interrupted", "preempted")])
        subprocess.run(MPI + [XPSCALE, "run", cfg], env=self.env, check=True, capture_output=True,
                       timeout=120)
        self.assert_resumed(2)


if __name__ == "__main__":
    unittest.main()
