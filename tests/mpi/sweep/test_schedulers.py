"""Schedulers and TPE end to end under mpiexec, checked through the store:
an ASHA sweep of the Fashion-MNIST example on 4 ranks, PBT's exploit with
the test trainer (checkpoint copied, params changed) and a `method: bayes`
sweep whose saved searcher state matches its trials.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_FMNIST, XPSCALE_TRAINER,
XPSCALE_TEST_TMP.
"""
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pylib"))
from processes import marker_pids  # noqa: E402  (tests/pylib)

EXT_TRIAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trial.py")
PY_PBT_TRIAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_pbt_trial.py")
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


class SchedulerSweepTest(unittest.TestCase):
    def sweep(self, binary, cfg, ranks=4, timeout=600, out=None, extra=()):
        tmp = tempfile.mkdtemp(prefix="sched-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.out = out or os.path.join(tmp, "out")
        cfg["out_dir"] = self.out
        path = os.path.join(tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        argv = binary + [path] if isinstance(binary, list) else [binary, "--quiet", "--sweep", path]
        p = subprocess.run(MPI + ["-n", str(ranks)] + argv + list(extra), env=ENV,
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        con = sqlite3.connect(os.path.join(self.out, "xpscale.db"))
        con.row_factory = sqlite3.Row
        return con

    def test_asha_sweep_of_fashion_mnist(self):
        cfg = {"method": "random", "trials": 6, "seed": 4,
               "metric": {"name": "val_accuracy", "goal": "maximize"},
               "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.001,
                                     "max": 0.5},
                              "hidden": {"value": 64}, "batch_size": {"value": 128},
                              "epochs": {"value": 3}},
               "scheduler": {"type": "asha", "resource": "epoch", "min_resource": 1,
                             "max_resource": 3, "eta": 3},
               "resources": {"ranks_per_trial": 1}}
        con = self.sweep(os.environ["XPSCALE_FMNIST"], cfg)
        trials = {r["id"]: dict(r) for r in con.execute("SELECT * FROM trials")}
        self.assertEqual(len(trials), 6)
        for t in trials.values():
            self.assertIn(t["status"], ("completed", "stopped"), t)
        # Replay the rung at epoch 1 in the order the reports reached the
        # coordinator: a trial goes on only when it ranks in the top
        # max(1, n // 3) of the n recorded so far (higher accuracy first),
        # and at epoch 2 it is ranked again, by its epoch-1 value, against
        # the n recorded by then.
        seen, at_rung, expect_last = [], {}, {}

        def in_top(value):
            return 1 + sum(1 for v in seen if v > value) <= max(1, len(seen) // 3)

        for trial, step, value in con.execute(
                "SELECT trial, step, value FROM metrics WHERE step <= 2 ORDER BY rowid"):
            if step == 1:
                seen.append(value)
                at_rung[trial] = value
                expect_last[trial] = 3 if in_top(value) else 1
            elif not in_top(at_rung[trial]):
                expect_last[trial] = 2
        self.assertEqual(len(expect_last), 6)
        self.assertTrue(any(last < 3 for last in expect_last.values()), expect_last)
        for trial, last in expect_last.items():
            t = trials[trial]
            self.assertEqual(t["last_step"], last, (t, expect_last))
            if last == 1:
                self.assertEqual(t["status"], "stopped", t)
                self.assertTrue(t["reason"].startswith("asha: rung 0"), t)
            elif last == 2:
                self.assertEqual(t["status"], "stopped", t)
                self.assertTrue(t["reason"].startswith("asha: rung 0 (resource 1): now rank"), t)
        self.assertGreaterEqual(max(t["best_value"] for t in trials.values()), 0.8)
        state = json.loads(con.execute(
            "SELECT state FROM algorithm_state WHERE name = 'scheduler'").fetchone()[0])
        self.assertEqual(len(state["brackets"][0]["scores"][0]), 6)

    # promotion: pause (the paper's ASHA): 8 configs, rungs at steps 1 and 3,
    # the end at 9. Trial 0 (x = 3) is the best at every step and the
    # others get worse in grid order, so trial 0 always pauses at rung 0
    # (fewer than 3 there) and is promoted once 3 have reached it.
    PAUSE = {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
             "parameters": {"x": {"values": [3.0, 2.5, 4.0, 2.0, 5.0, 1.0, 6.0, 0.0]},
                            "steps": {"value": 9}, "ms": {"value": 150}},
             "scheduler": {"type": "asha", "resource": "step", "min_resource": 1,
                           "max_resource": 9, "eta": 3, "promotion": "pause"},
             "resources": {"ranks_per_trial": 1}}

    def test_asha_pause_resumes_paused_trials_from_their_checkpoints(self):
        # Killed (SIGKILL) once trials are paused, then resumed: the paused
        # trials come back from the scheduler's stored state, are promoted
        # and continue from their checkpoints.
        tmp = tempfile.mkdtemp(prefix="sched-", dir=os.environ.get("XPSCALE_TEST_TMP"))
        self.out = os.path.join(tmp, "out")
        cfg = dict(self.PAUSE, out_dir=self.out)
        path = os.path.join(tmp, "sweep.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        argv = MPI + ["-n", "2", os.environ["XPSCALE_TRAINER"], "--quiet", "--sweep", path]
        marker = uuid.uuid4().hex
        p = subprocess.Popen(argv, env=dict(ENV, XPSCALE_TEST_MARKER=marker),
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        paused_at_kill, deadline = 0, time.time() + 120
        while time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
            try:
                with sqlite3.connect(os.path.join(self.out, "xpscale.db"), timeout=5) as con:
                    paused_at_kill = con.execute(
                        "SELECT count(*) FROM trials WHERE status = 'stopped' AND "
                        "reason LIKE 'asha: paused at rung%'").fetchone()[0]
            except sqlite3.Error:
                continue
            if paused_at_kill >= 3:
                break
        self.assertIsNone(p.poll(), "the sweep ended before it could be killed")
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.time() + 10  # the ranks too: one holds the store's lock
        while marker_pids(marker) and time.time() < deadline:
            for pid in marker_pids(marker):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self.assertGreaterEqual(paused_at_kill, 3, "no trial paused before the kill")
        con = self.sweep(os.environ["XPSCALE_TRAINER"], dict(self.PAUSE), ranks=2, out=self.out)
        self.assertEqual(con.execute("SELECT count(*) FROM runs").fetchone()[0], 2)
        self.check_paused_sweep(con, checkpoints=True)

    def test_asha_pause_without_checkpoints_restarts_promoted_trials_from_the_start(self):
        cfg = dict(self.PAUSE)
        cfg["parameters"] = dict(cfg["parameters"], checkpoint={"value": 0}, ms={"value": 20})
        self.check_paused_sweep(self.sweep(os.environ["XPSCALE_TRAINER"], cfg, ranks=2),
                                checkpoints=False)

    def check_paused_sweep(self, con, checkpoints):
        trials = {r["id"]: dict(r) for r in con.execute("SELECT * FROM trials")}
        self.assertEqual(len(trials), 8)
        for t in trials.values():
            self.assertIn(t["status"], ("completed", "stopped"), t)
        # The best config is promoted to the end: by the rule once a rung
        # holds 3, or, when drained, as the top of its rung.
        self.assertEqual(trials[0]["reason"], "asha: reached max_resource 9", trials[0])
        self.assertEqual(trials[0]["last_step"], 9, trials[0])
        self.assertGreater(trials[0]["attempts"], 1, trials[0])
        steps = {}
        for trial, attempt, step in con.execute("SELECT trial, attempt, step FROM metrics"):
            steps.setdefault((trial, attempt), []).append(step)
        self.assertLess(sum(len(v) for v in steps.values()), 8 * 9)
        attempts = [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY trial, attempt")]
        paused = [a for a in attempts if (a["reason"] or "").startswith("asha: paused at rung")]
        self.assertTrue(paused)
        resumed = 0
        for a in paused:
            rung = int(a["reason"].split()[4])
            # Paused on the report at its rung (1 or 3); one step more only
            # when the kill fell between the pause and its recording.
            last = max(steps[(a["trial"], a["attempt"])])
            self.assertIn(last, ([1, 3][rung], [1, 3][rung] + 1), a)
            nxt = steps.get((a["trial"], a["attempt"] + 1))
            if not nxt or a["status"] != "stopped":
                continue
            resumed += 1
            # From the checkpoint of the step it paused at, or from scratch.
            first = max(steps[(a["trial"], a["attempt"])]) + 1 if checkpoints else 1
            self.assertEqual(min(nxt), first, (a, nxt))
        self.assertGreater(resumed, 0, "no paused trial was promoted")
        # Trials left paused are recorded stopped with the pause as reason,
        # and the scheduler's state still holds them, resumable.
        left = {i for i, t in trials.items()
                if (t["reason"] or "").startswith("asha: paused at rung")}
        self.assertTrue(left)
        for i in left:
            self.assertEqual(trials[i]["status"], "stopped")
        state = json.loads(con.execute(
            "SELECT state FROM algorithm_state WHERE name = 'scheduler'").fetchone()[0])
        self.assertEqual(state["promotion"], "pause")
        self.assertEqual({int(t) for t in state["paused"]}, left)
        report = subprocess.run([os.environ["XPSCALE_BIN"], "report", self.out, "--format", "json"],
                                env=ENV, capture_output=True, text=True, timeout=60)
        self.assertEqual(report.returncode, 0, report.stderr)
        self.assertIn("asha: paused at rung", report.stdout)

    PBT = {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
           "parameters": {"x": {"values": [3.0, 2.5, 0.5, 5.5]}, "steps": {"value": 8},
                          "ms": {"value": 150}},
           "scheduler": {"type": "pbt", "resource": "step", "interval": 2,
                         "quantile": 0.25, "resample_probability": 0.0},
           "resources": {"ranks_per_trial": 1}}

    def test_pbt_exploit_copies_the_checkpoint_and_changes_params(self):
        self.check_pbt(self.sweep(os.environ["XPSCALE_TRAINER"], dict(self.PBT)))

    def test_pbt_exploit_of_external_trials(self):
        cfg = dict(self.PBT, command=["/usr/bin/python3", EXT_TRIAL, "${args}"])
        self.check_pbt(self.sweep([os.environ["XPSCALE_BIN"], "run", "--quiet"], cfg))

    def test_pbt_exploit_reaches_a_python_trial_through_should_stop(self):
        # xpscale.trial(): the exploited member sees should_stop() with PBT's
        # reason and ends by itself; its next attempt starts with the new
        # parameters and from the donor's checkpoint step.
        cfg = dict(self.PBT, command=["/usr/bin/python3", PY_PBT_TRIAL, "${args}"])
        con = self.sweep([os.environ["XPSCALE_BIN"], "run", "--quiet"], cfg)
        self.check_pbt(con)
        exploits = [dict(r) for r in con.execute(
            "SELECT * FROM attempts WHERE reason LIKE 'pbt: exploit trial %'")]
        params = {r["id"]: json.loads(r["params"]) for r in con.execute("SELECT * FROM trials")}
        for a in exploits:
            trial_dir = os.path.join(self.out, "trials", str(a["trial"]))
            with open(os.path.join(trial_dir, f"stop-attempt{a['attempt']}.json")) as f:
                seen = json.load(f)
            self.assertEqual(seen["reason"], a["reason"])
            nxt = os.path.join(trial_dir, f"start-attempt{a['attempt'] + 1}.json")
            if not os.path.exists(nxt):
                continue  # the sweep ended before the restart
            with open(nxt) as f:
                started = json.load(f)
            self.assertGreater(started["start"], 1, started)
            if a["attempt"] + 1 == max(r[0] for r in con.execute(
                    "SELECT attempt FROM attempts WHERE trial = ?", (a["trial"],))):
                self.assertEqual(started["x"], params[a["trial"]]["x"])

    def check_pbt(self, con):
        exploits = [dict(r) for r in con.execute(
            "SELECT * FROM attempts WHERE reason LIKE 'pbt: exploit trial %'")]
        self.assertTrue(exploits, "no exploit happened")
        for a in exploits:
            donor = int(a["reason"].split()[3])
            nxt = con.execute("SELECT min(step) FROM metrics WHERE trial = ? AND attempt = ?",
                              (a["trial"], a["attempt"] + 1)).fetchone()[0]
            if nxt is None:
                continue  # that restart was itself preempted before reporting
            # The next attempt resumed from the donor's checkpoint marker,
            # not from its own (the trainer starts at resume_step() + 1).
            donor_steps = [r[0] for r in con.execute(
                "SELECT step FROM metrics WHERE trial = ?", (donor,))]
            self.assertIn(nxt - 1, donor_steps)
            self.assertGreater(nxt, 1, a)
        rows = {r["id"]: json.loads(r["params"]) for r in con.execute("SELECT * FROM trials")}
        originals = [3.0, 2.5, 0.5, 5.5]
        changed = [i for i, p in rows.items() if p["x"] != originals[i]]
        self.assertTrue(changed, rows)
        for i in changed:  # a grid's values are categories: moved to a neighbour
            self.assertIn(rows[i]["x"], originals, rows[i])

    def test_bayes_sweep_saves_its_observations(self):
        cfg = {"method": "bayes", "trials": 14, "seed": 2,
               "metric": {"name": "loss", "goal": "minimize"},
               "parameters": {"x": {"min": 0.0, "max": 6.0}, "steps": {"value": 1}},
               "resources": {"ranks_per_trial": 1}}
        con = self.sweep(os.environ["XPSCALE_TRAINER"], cfg, ranks=2)
        trials = {r["id"]: dict(r) for r in con.execute("SELECT * FROM trials")}
        self.assertEqual(sorted(trials), list(range(14)))
        self.assertTrue(all(t["status"] == "completed" for t in trials.values()), trials)
        state = json.loads(con.execute(
            "SELECT state FROM algorithm_state WHERE name = 'searcher'").fetchone()[0])
        self.assertEqual(state["pending"], [])
        self.assertEqual(sorted(o["i"] for o in state["observations"]), list(range(14)))
        for o in state["observations"]:
            self.assertAlmostEqual(o["score"], trials[o["i"]]["best_value"])

    def test_resume_mid_sweep_decides_as_an_uninterrupted_sweep(self):
        # One group runs the trials one after another, so the order of
        # results, and with it every decision, is fixed. TPE proposes
        # trials 10 and 11 from all ten results; ASHA's rungs hold every
        # earlier trial. Stopping after 5 trials and resuming must give
        # the same params, statuses and reasons as one run of 12.
        def cfg():
            return {"method": "bayes", "trials": 12, "seed": 3,
                    "metric": {"name": "loss", "goal": "minimize"},
                    "parameters": {"x": {"min": 0.0, "max": 6.0}, "steps": {"value": 9}},
                    "scheduler": {"type": "asha", "resource": "step", "min_resource": 1,
                                  "max_resource": 9, "eta": 3},
                    "resources": {"ranks_per_trial": 1}}
        trainer = os.environ["XPSCALE_TRAINER"]
        query = "SELECT id, params, status, reason FROM trials ORDER BY id"
        whole = self.sweep(trainer, cfg(), ranks=1).execute(query).fetchall()
        first = self.sweep(trainer, cfg(), ranks=1, extra=["--trials", "5"])
        self.assertEqual(len(first.execute(query).fetchall()), 5)
        resumed = self.sweep(trainer, cfg(), ranks=1, out=self.out).execute(query).fetchall()
        self.assertEqual(len(whole), 12)
        self.assertTrue(any(r[2] == "stopped" and r[3].startswith("asha: rung") for r in whole),
                        whole)
        self.assertEqual(resumed, whole)


if __name__ == "__main__":
    unittest.main()
