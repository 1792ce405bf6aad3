"""End-to-end tests of the sweep runtime: real mpiexec, real trials, the real
store. Each test writes its own sweep config (JSON, which is YAML) into a
temporary out_dir and checks what the store recorded.

Environment (set by CMake): XPSCALE_BIN (the xpscale command),
XPSCALE_TRAINER (tests/mpi/sweep/sweep_trainer), XPSCALE_TEST_TMP.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pylib"))
from processes import marker_pids  # noqa: E402  (tests/pylib)
from sweep_case import MPI, SweepCase  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
XPSCALE = os.environ["XPSCALE_BIN"]
TRAINER = os.environ["XPSCALE_TRAINER"]
EXT_TRIAL = os.path.join(HERE, "ext_trial.py")
PY_STOP_TRIAL = os.path.join(HERE, "py_stop_trial.py")
PY_TRIAL = os.path.join(HERE, "py_trial.py")


class SweepTest(SweepCase):
    tmp_prefix = "sweep-"

    # -- helpers ---------------------------------------------------------
    def config(self, parameters, name="cfg.yaml", **keys):
        cfg = {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
               "parameters": parameters, "out_dir": self.out}
        cfg.update(keys)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    def external(self, parameters, **keys):
        return self.config(parameters, command=["${interpreter}", EXT_TRIAL, "${args}"], **keys)

    def run_cmd(self, argv, ranks=None, timeout=180, expect=0):
        cmd = (MPI + ["-n", str(ranks)] if ranks else []) + argv
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if expect is not None and p.returncode != expect:
            self.fail("%s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                      (" ".join(cmd), p.returncode, expect, p.stdout[-4000:], p.stderr[-4000:]))
        return p

    def db(self):
        con = sqlite3.connect(os.path.join(self.out, "xpscale.db"))
        con.row_factory = sqlite3.Row
        return con

    def trials(self):
        with self.db() as con:
            return {r["id"]: dict(r) for r in con.execute("SELECT * FROM trials")}

    def attempts(self):
        with self.db() as con:
            return [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY started_at")]

    def assert_no_leftovers(self):
        deadline = time.time() + 5
        while marker_pids(self.marker) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(marker_pids(self.marker), [], "trial processes left behind")

    # -- tests -----------------------------------------------------------
    def test_every_trial_once_and_no_group_idles(self):
        cfg = self.config({"x": {"values": list(range(12))}, "ms": {"values": [10, 50]}})
        self.run_cmd([TRAINER, "--sweep", cfg], ranks=4)
        trials = self.trials()
        self.assertEqual(sorted(trials), list(range(24)))
        for t in trials.values():
            self.assertEqual(t["status"], "completed", t)
            self.assertEqual(t["attempts"], 1)
            self.assertEqual(t["last_step"], 3)
        attempts = self.attempts()
        self.assertEqual(len(attempts), 24)
        self.assertEqual({a["grp"] for a in attempts}, {0, 1, 2, 3})
        # While trials were queued, a group that finished one got the next at once.
        last_start = max(a["started_at"] for a in attempts)
        for g in range(4):
            mine = [a for a in attempts if a["grp"] == g]
            for prev, nxt in zip(mine, mine[1:]):
                if nxt["started_at"] <= last_start:
                    self.assertLess(nxt["started_at"] - prev["finished_at"], 0.5,
                                    "group %d idled between trials" % g)
        with self.db() as con:
            self.assertEqual(con.execute("SELECT count(*) FROM metrics").fetchone()[0], 72)
        # The leaderboard puts x = 3 (loss 0.01) first.
        report = json.loads(self.run_cmd([XPSCALE, "report", self.out, "--format", "json"]).stdout)
        self.assertEqual(report[0]["params"]["x"], 3)
        self.assertAlmostEqual(report[0]["best_value"], 0.01)

    def test_failing_inprocess_trials_are_recorded_and_the_sweep_goes_on(self):
        cfg = self.config({"mode": {"values": ["ok", "throw", "throw_rank1", "fine"]}},
                          resources={"ranks_per_trial": 2})
        self.run_cmd([TRAINER, "--sweep", cfg], ranks=4)
        t = self.trials()
        self.assertEqual([t[i]["status"] for i in range(4)],
                         ["completed", "failed", "failed", "completed"])
        self.assertIn("trial asked to throw", t[1]["reason"])
        self.assertIn("group rank 1: rank 1 fails at step 2", t[2]["reason"])

    def test_external_crash_and_hang_fail_and_leave_no_processes(self):
        cfg = self.external({"mode": {"values": ["ok", "crash", "hang", "fine"]}},
                            resources={"ranks_per_trial": 2, "time_limit": "3s"})
        self.run_cmd([XPSCALE, "run", cfg, "--kill-grace", "1"], ranks=4)
        t = self.trials()
        self.assertEqual([t[i]["status"] for i in range(4)],
                         ["completed", "failed", "failed", "completed"])
        self.assertIn("exited with status 3", t[1]["reason"])
        self.assertIn("crashing on purpose", t[1]["stderr_tail"])
        self.assertIn("time_limit", t[2]["reason"])
        self.assertEqual(t[0]["last_step"], 3)
        # The distributed environment of a group of 2.
        envs = []
        for r in (0, 1):
            with open(os.path.join(self.out, "trials", "0", "env.rank%d.json" % r)) as f:
                envs.append(json.load(f))
        self.assertEqual([e["RANK"] for e in envs], ["0", "1"])
        self.assertEqual({e["WORLD_SIZE"] for e in envs}, {"2"})
        self.assertEqual(len({e["MASTER_PORT"] for e in envs}), 1)
        self.assertEqual({e["XPSCALE_TRIAL_ID"] for e in envs}, {"0"})
        self.assertTrue(os.path.exists(
            os.path.join(self.out, "trials", "1", "logs", "attempt1.rank0.err")))
        self.assert_no_leftovers()

    def test_sigkill_mid_sweep_then_resume_loses_nothing(self):
        cfg = self.config({"x": {"values": list(range(16))}, "ms": {"value": 150}})
        p = subprocess.Popen(MPI + ["-n", "4", TRAINER, "--sweep", cfg, "--quiet"], env=self.env,
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        done_before = {}
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                with self.db() as con:
                    rows = con.execute("SELECT id, attempts FROM trials WHERE status = 'completed'")
                    done_before = {r["id"]: r["attempts"] for r in rows}
            except sqlite3.Error:
                continue
            if len(done_before) >= 5:
                break
        os.killpg(p.pid, signal.SIGKILL)
        for pid in marker_pids(self.marker):
            os.kill(pid, signal.SIGKILL)
        p.wait()
        self.assertGreaterEqual(len(done_before), 5)
        self.assertLess(len(done_before), 16, "the sweep finished before it could be killed")
        with self.db() as con:
            done_at_kill = {r["id"] for r in con.execute(
                "SELECT id FROM trials WHERE status = 'completed'")}

        self.run_cmd([TRAINER, "--sweep", cfg, "--resume"], ranks=4)
        t = self.trials()
        self.assertEqual(sorted(t), list(range(16)))
        self.assertTrue(all(r["status"] == "completed" for r in t.values()))
        attempts = self.attempts()
        for i in done_at_kill:  # finished trials were not run again
            self.assertEqual([a["attempt"] for a in attempts if a["trial"] == i], [1], i)
        interrupted = [a for a in attempts if a["status"] == "interrupted"]
        self.assertTrue(interrupted, "the kill interrupted no running trial")
        with self.db() as con:
            self.assertEqual(con.execute("SELECT count(*) FROM runs").fetchone()[0], 2)
            for a in interrupted:
                steps = [r[0] for r in con.execute(
                    "SELECT step FROM metrics WHERE trial = ? AND attempt = ? ORDER BY step",
                    (a["trial"], a["attempt"] + 1))]
                first = [r[0] for r in con.execute(
                    "SELECT max(step) FROM metrics WHERE trial = ? AND attempt = ?",
                    (a["trial"], a["attempt"]))][0]
                # A resumed trial starts after its last checkpoint, not from
                # scratch. The trainer saves step s right before reporting it,
                # and the kill may land between the two (or before the batched
                # metric row was committed), so the checkpoint is the last
                # recorded step or the one after it.
                self.assertIn(steps[0] - 1, ((first or 0), (first or 0) + 1), (a, steps, first))
                self.assertEqual(steps[-1], 3)

    def test_retries_then_success(self):
        cfg = self.external({"mode": {"values": ["flaky", "ok"]}}, retries=1)
        self.run_cmd([XPSCALE, "run", cfg], ranks=2)
        t = self.trials()
        self.assertEqual(t[0]["status"], "completed")
        self.assertEqual(t[0]["attempts"], 2)
        self.assertEqual([a["status"] for a in self.attempts() if a["trial"] == 0],
                         ["failed", "completed"])

    def test_max_failures_stops_the_sweep(self):
        cfg = self.external({"mode": {"value": "crash"}, "x": {"values": list(range(10))}},
                            max_failures=1)
        p = self.run_cmd([XPSCALE, "run", cfg], expect=1)
        self.assertIn("max_failures", p.stderr)
        t = self.trials()
        self.assertEqual(sum(r["status"] == "failed" for r in t.values()), 2)
        self.assertTrue(any(r["status"] == "queued" for r in t.values()))

    def test_target_ends_the_sweep_on_one_rank(self):
        cfg = self.config({"x": {"values": [0, 1, 3, 5, 6]}},
                          metric={"name": "loss", "goal": "minimize", "target": 0.5})
        self.run_cmd([TRAINER, "--sweep", cfg])  # no mpirun: one rank
        t = self.trials()
        self.assertEqual(t[2]["status"], "stopped")
        self.assertEqual(t[2]["reason"], "target")
        self.assertEqual([t[i]["status"] for i in (3, 4)], ["queued", "queued"])

    def test_max_concurrent_trials_caps_the_trials_running_at_once(self):
        cfg = self.config({"x": {"values": list(range(8))}, "ms": {"value": 100}},
                          max_concurrent_trials=2)
        plan = self.run_cmd([XPSCALE, "plan", cfg, "-n", "4"])
        self.assertIn("so 2 trials run at a time (max_concurrent_trials)", plan.stdout)
        self.run_cmd([TRAINER, "--sweep", cfg, "--quiet"], ranks=4)
        t = self.trials()
        self.assertEqual([t[i]["status"] for i in range(8)], ["completed"] * 8)
        attempts = self.attempts()
        # At each start, the attempts that started before it and had not
        # finished yet: at most one other (two running at once).
        for a in attempts:
            overlapping = [b for b in attempts if b is not a and
                           b["started_at"] <= a["started_at"] < b["finished_at"]]
            self.assertLessEqual(len(overlapping), 1, (a, overlapping))
        # A cap of two still runs two at once (parked groups are woken).
        self.assertTrue(any(b is not a and b["started_at"] <= a["started_at"] < b["finished_at"]
                            for a in attempts for b in attempts))

    def test_config_warnings_print_once_and_strict_makes_them_errors(self):
        cfg = self.config({"x": {"values": [1, 2]}}, controller={"type": "cloud"})
        p = self.run_cmd([TRAINER, "--sweep", cfg, "--quiet"], ranks=2)
        self.assertEqual(p.stderr.count("warning: controller: xpscale is the sweep's controller"),
                         1, p.stderr)
        self.assertEqual(sorted(self.trials()), [0, 1])
        p = self.run_cmd([TRAINER, "--sweep", cfg, "--quiet", "--strict"], ranks=2, expect=2)
        self.assertEqual(p.stderr.count("controller: xpscale is the sweep's controller"), 1,
                         p.stderr)
        p = self.run_cmd([XPSCALE, "plan", cfg, "--strict"], expect=2)
        self.assertIn("controller: xpscale is the sweep's controller", p.stderr)
        self.assertIn("strict mode", p.stderr)
        p = self.run_cmd([XPSCALE, "plan", cfg])
        self.assertIn("warning: controller:", p.stderr)

    def test_another_config_needs_force(self):
        cfg = self.config({"x": {"values": [1, 2]}})
        self.run_cmd([TRAINER, "--sweep", cfg, "--quiet"])
        cfg2 = self.config({"x": {"values": [1, 2, 4]}})
        p = self.run_cmd([TRAINER, "--sweep", cfg2], expect=2)
        self.assertIn("different sweep config", p.stderr)
        self.run_cmd([TRAINER, "--sweep", cfg2, "--force", "--quiet"])
        t = self.trials()
        self.assertEqual(sorted(t), [0, 1, 2])
        self.assertEqual([len([a for a in self.attempts() if a["trial"] == i]) for i in range(3)],
                         [1, 1, 1])

    def test_python_trial_api_nested_params_reports_and_resume(self):
        # A trial written with xpscale.trial(), run by Debian's Python with
        # the package the build made (PYTHONPATH from CMake, as the .pth of
        # scripts/setup would): 2 ranks per trial, nested params, reports;
        # the first attempt of each trial dies after checkpointing step 2 and
        # its retry resumes at step 3 from the same checkpoint directory.
        cfg = self.config(
            {"model": {"parameters": {"x": {"values": [1.0, 3.0]}}},
             "steps": {"value": 5}, "crash_at": {"value": 2}},
            command=["/usr/bin/python3", PY_TRIAL, "${args}"],
            resources={"ranks_per_trial": 2}, retries=1)
        self.run_cmd([XPSCALE, "run", "--quiet", cfg], ranks=2)
        trials = self.trials()
        self.assertEqual(sorted(trials), [0, 1])
        for tid, t in trials.items():
            self.assertEqual(t["status"], "completed", t)
            self.assertEqual(t["attempts"], 2, t)
            self.assertEqual(t["last_step"], 4, t)
        self.assertAlmostEqual(trials[1]["best_value"], 0.0, places=9)  # x = 3 at step 0
        with self.db() as con:
            steps = [(r[0], r[1], r[2]) for r in con.execute(
                "SELECT trial, attempt, step FROM metrics ORDER BY trial, attempt, step")]
        self.assertEqual(steps, [(0, 1, s) for s in range(3)] +
                         [(0, 2, s) for s in (3, 4)] +
                         [(1, 1, s) for s in range(3)] + [(1, 2, s) for s in (3, 4)])
        ckpt = os.path.join(self.out, "trials", "1", "checkpoint")
        with open(os.path.join(ckpt, "attempt2.json")) as f:
            second = json.load(f)
        self.assertEqual(second["start"], 3)
        self.assertEqual(second["world_size"], 2)
        self.assertEqual(second["params"], {"model": {"x": 3.0}, "steps": 5, "crash_at": 2})
        self.assertEqual(second["version"], os.environ["XPSCALE_VERSION"])

    def test_python_trial_sees_should_stop_and_ends_itself(self):
        # The metric's target stops the trial (as ASHA or Hyperband would):
        # both ranks' processes see should_stop() with the reason, write
        # their file and exit 0 long before the 60 s they would run, and the
        # trial is recorded as stopped, not failed.
        cfg = self.config({"x": {"values": [0.0]}},
                          metric={"name": "loss", "goal": "minimize", "target": 0.4},
                          command=["/usr/bin/python3", PY_STOP_TRIAL, "${args}"],
                          resources={"ranks_per_trial": 2})
        started = time.monotonic()
        self.run_cmd([XPSCALE, "run", "--quiet", cfg], ranks=2)
        self.assertLess(time.monotonic() - started, 40)
        t = self.trials()
        self.assertEqual(t[0]["status"], "stopped", t)
        self.assertEqual(t[0]["reason"], "target", t)
        ckpt = os.path.join(self.out, "trials", "0", "checkpoint")
        for rank in (0, 1):
            with open(os.path.join(ckpt, f"stopped.rank{rank}.json")) as f:
                seen = json.load(f)
            self.assertEqual(seen["reason"], "target")
            self.assertGreaterEqual(seen["step"], 2)  # loss 1/3 < 0.4 first at step 2
            self.assertLess(seen["step"], 200)

    def test_resume_without_store_is_an_error(self):
        cfg = self.config({"x": {"values": [1]}})
        p = self.run_cmd([TRAINER, "--sweep", cfg, "--resume"], expect=2)
        self.assertIn("holds no sweep store", p.stderr)

    def test_too_few_ranks_is_an_error(self):
        cfg = self.external({"x": {"values": [1]}}, resources={"ranks_per_trial": 3})
        p = self.run_cmd([XPSCALE, "run", cfg], ranks=2, expect=2)
        self.assertIn("ranks_per_trial is 3", p.stderr)

    def test_report_formats_and_export(self):
        cfg = self.config({"x": {"values": [5, 3, 0]}})
        self.run_cmd([TRAINER, "--sweep", cfg, "--quiet"])
        table = self.run_cmd([XPSCALE, "report", self.out]).stdout
        lines = table.splitlines()
        self.assertIn("loss", lines[1])
        self.assertTrue(lines[2].split()[:2] == ["1", "1"], table)  # trial 1 (x=3) ranks first
        csv = self.run_cmd([XPSCALE, "report", self.out, "--format", "csv", "--top", "2"]).stdout
        self.assertEqual(len(csv.splitlines()), 3)
        rows = [json.loads(l) for l in
                self.run_cmd([XPSCALE, "export", self.out, "--metrics"]).stdout.splitlines()]
        self.assertEqual(rows[0]["kind"], "sweep")
        self.assertEqual(len(rows[1]["metrics"]), 3)
        self.run_cmd([XPSCALE, "report", os.path.join(self.tmp, "nowhere")], expect=2)

    def test_launch_execs_mpirun(self):
        cfg = self.external({"x": {"values": [1, 2, 3]}})
        printed = self.run_cmd([XPSCALE, "launch", "-n", "2", cfg, "--quiet", "--print"]).stdout
        self.assertIn("-n 2", printed)
        self.assertIn(" run %s --quiet" % cfg, printed)
        self.run_cmd([XPSCALE, "launch", "-n", "2", cfg, "--quiet"])
        self.assertEqual([r["status"] for r in self.trials().values()], ["completed"] * 3)


if __name__ == "__main__":
    unittest.main()
