"""Sweeps without a trial budget (issue 15): `method: random`, `sobol` or
`bayes` without `run_cap`/`trials` draws trials until the sweep is stopped,
as under W&B: by `xpscale stop OUT_DIR` (running trials finish), by
`xpscale stop --cancel` (running trials are interrupted and resumed by the
next run), or by a signal. Each job-array task keeps drawing its own share
of trial ids, so no two tasks ever run the same trial.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TRAINER, XPSCALE_TEST_TMP.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sweep import EXT_TRIAL, MPI, TRAINER, XPSCALE, SweepTest  # noqa: E402


class UnboundedTest(SweepTest):
    tmp_prefix = "unbounded-"

    def start(self, argv, ranks=2):
        """ranks=None: one rank without mpiexec (an MPI singleton), which a
        signal reaches as Slurm's reaches every task."""
        return subprocess.Popen((MPI + ["-n", str(ranks)] if ranks else []) + argv, env=self.env,
                                start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def count(self, db, sql, timeout=120, at_least=1):
        """Polls `sql` (a count) on the store at db until it reaches at_least."""
        deadline = time.time() + timeout
        n = 0
        while time.time() < deadline:
            try:
                with sqlite3.connect(db) as con:
                    n = con.execute(sql).fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= at_least:
                return n
            time.sleep(0.2)
        self.fail("%s stayed at %d (< %d) for %d s" % (sql, n, at_least, timeout))

    def finish(self, p, expect=0, timeout=60):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            self.fail("the run did not end within %d s of being stopped\n%s" % (timeout, err[-3000:]))
        self.assertEqual(p.returncode, expect, err[-3000:])
        return err

    def test_xpscale_stop_then_cancel_then_resume(self):
        cfg = self.config({"x": {"min": -1.0, "max": 1.0}, "ms": {"value": 120},
                           "steps": {"value": 4}}, method="random",
                          command=["${interpreter}", EXT_TRIAL, "${args}"])
        db = os.path.join(self.out, "xpscale.db")
        plan = self.run_cmd([XPSCALE, "plan", cfg])
        self.assertIn("unbounded", plan.stdout)
        self.assertEqual(len([l for l in plan.stdout.splitlines() if l[:1].isdigit()]), 10)
        limited = self.run_cmd([XPSCALE, "plan", cfg, "--limit", "3", "--format", "json"])
        self.assertEqual([json.loads(l)["id"] for l in limited.stdout.splitlines()], [0, 1, 2])

        first = self.start([XPSCALE, "run", cfg])
        self.count(db, "SELECT count(*) FROM trials WHERE status = 'completed'", at_least=4)
        stop = self.run_cmd([XPSCALE, "stop", self.out])
        self.assertIn("asked 1 run", stop.stdout)
        err = self.finish(first)
        self.assertIn("stopped by `xpscale stop`", err)
        t = self.trials()
        self.assertTrue(all(r["status"] == "completed" for r in t.values()),
                        {i: r["status"] for i, r in t.items()})
        stopped_at = len(t)
        idle = self.run_cmd([XPSCALE, "stop", self.out])
        self.assertIn("no run of the sweep", idle.stdout)

        # A second run resumes: the old request does not stop it; a cancel does,
        # and the trials it interrupts come back in the third run.
        second = self.start([XPSCALE, "run", cfg])
        self.count(db, "SELECT count(*) FROM trials", at_least=stopped_at + 3)
        self.count(db, "SELECT count(*) FROM attempts WHERE status = 'running'")
        self.run_cmd([XPSCALE, "stop", self.out, "--cancel"])
        err = self.finish(second)
        self.assertIn("cancelled", err)
        interrupted = {a["trial"] for a in self.attempts() if a["status"] == "interrupted"}
        self.assertTrue(interrupted, "the cancel interrupted no running trial")
        self.assertFalse([a for a in self.attempts() if a["status"] == "running"])

        third = self.start([XPSCALE, "run", cfg], ranks=None)
        self.count(db, "SELECT count(*) FROM trials WHERE status = 'completed'",
                   at_least=len(self.trials()) + 2)
        third.send_signal(signal.SIGTERM)  # the Slurm time limit's way
        self.finish(third, expect=143)
        t = self.trials()
        for i in interrupted:  # they go first, and the third run finished two trials
            self.assertEqual(t[i]["status"], "completed", "an interrupted trial was not resumed")
        self.assertEqual(sorted(t), list(range(len(t))), "trial ids have gaps or repeats")
        xs = [json.loads(r["params"])["x"] for r in t.values()]
        self.assertEqual(len(set(xs)), len(xs), "two trials drew the same parameters")
        self.assert_no_leftovers()

    def test_array_tasks_draw_disjoint_trials_until_stopped(self):
        cfg = self.config({"x": {"min": 0.0, "max": 1.0}, "ms": {"value": 30}}, method="random")
        runs = [self.start([TRAINER, "--sweep", cfg, "--array-size", "2", "--array-task", str(k),
                            "--quiet"], ranks=1) for k in (0, 1)]
        for k in (0, 1):
            self.count(os.path.join(self.out, "xpscale.task%d.db" % k),
                       "SELECT count(*) FROM trials WHERE status = 'completed'", at_least=6)
        stop = self.run_cmd([XPSCALE, "stop", self.out])
        self.assertIn("asked 2 runs", stop.stdout)
        for p in runs:
            self.finish(p)
        ids, xs = {}, []
        for k in (0, 1):
            with sqlite3.connect(os.path.join(self.out, "xpscale.task%d.db" % k)) as con:
                rows = con.execute("SELECT id, params, status FROM trials").fetchall()
            ids[k] = {r[0] for r in rows}
            xs += [json.loads(r[1])["x"] for r in rows]
            self.assertTrue(all(i % 2 == k for i in ids[k]), (k, sorted(ids[k])))
            self.assertTrue(all(r[2] == "completed" for r in rows))
        self.assertFalse(ids[0] & ids[1])
        self.assertEqual(len(set(xs)), len(xs), "two tasks ran the same parameters")

    def test_unbounded_bayes_resumes_where_it_stopped(self):
        cfg = self.config({"x": {"min": -2.0, "max": 2.0}, "ms": {"value": 20}}, method="bayes")
        db = os.path.join(self.out, "xpscale.db")
        p = self.start([TRAINER, "--sweep", cfg, "--quiet"], ranks=None)
        self.count(db, "SELECT count(*) FROM trials WHERE status = 'completed'", at_least=8)
        p.send_signal(signal.SIGTERM)
        self.finish(p, expect=143)
        before = self.trials()
        p = self.start([TRAINER, "--sweep", cfg, "--quiet"], ranks=2)
        self.count(db, "SELECT count(*) FROM trials WHERE status = 'completed'",
                   at_least=len(before) + 4)
        self.run_cmd([XPSCALE, "stop", self.out])
        self.finish(p)
        after = self.trials()
        self.assertEqual(sorted(after), list(range(len(after))))
        for i, r in before.items():  # proposals of the first run are kept, not redrawn
            self.assertEqual(after[i]["params"], r["params"], i)

    def test_an_unbounded_sweep_that_only_fails_stops_with_status_1(self):
        cfg = self.config({"x": {"min": 0.0, "max": 1.0}, "mode": {"value": "throw"}},
                          method="random")
        p = self.run_cmd([TRAINER, "--sweep", cfg], ranks=2, timeout=120, expect=1)
        self.assertIn("none finished, so this unbounded sweep stops", p.stderr)
        t = self.trials()
        self.assertTrue(3 <= len(t) <= 4, t)  # 3 failed; the other group's may be running
        self.assertTrue(all(r["status"] == "failed" for r in t.values()))

    def test_a_refused_config_leaves_nothing_behind(self):
        bad = self.config({"x": {"min": 0.0, "max": 1.0}}, name="bad.yaml", method="random",
                          run_cap=0)
        p = self.run_cmd([XPSCALE, "run", bad], expect=2)
        self.assertIn("run_cap", p.stderr)
        # Refused after the config loads: bayes cannot be split over array tasks.
        arr = self.config({"x": {"min": 0.0, "max": 1.0}}, name="arr.yaml", method="bayes",
                          command=["${interpreter}", EXT_TRIAL, "${args}"])
        p = self.run_cmd([XPSCALE, "run", arr, "--array-size", "2", "--array-task", "0"], expect=2)
        self.assertIn("bayes", p.stderr)
        self.assertFalse(os.path.exists(self.out), os.listdir(self.out) if os.path.exists(self.out)
                         else "")


if __name__ == "__main__":
    unittest.main()
