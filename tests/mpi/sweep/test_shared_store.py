"""Many jobs on one sweep through a PostgreSQL store (shared_sweep.h): each
test starts a throwaway server (tests/support/pg_server.py), then several
`mpiexec -n 2 sweep_trainer --sweep cfg --store URL --out-dir OUT` jobs that
share the config's `name:` and one out_dir, and checks what the store
recorded through `xpscale export OUT` (JSON lines; a trial's attempts under
"history") and the server's own tables (pg.psql), so no Python driver for
PostgreSQL is needed.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TRAINER, XPSCALE_TEST_TMP.
"""
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
from pg_server import PgServer, PgServerError  # noqa: E402  (tests/support)
from test_sweep import MPI, TRAINER, XPSCALE, SweepTest  # noqa: E402

SWEEP = "shared"  # the config's name: which sweep of the store the jobs join


class SharedStoreTest(SweepTest):
    tmp_prefix = "shared-store-"

    def setUp(self):
        super().setUp()
        self.pg = PgServer()
        self.addCleanup(self.pg.stop)
        self.env.update(self.pg.env)  # PGPASSWORD
        self.jobs = []  # (Popen, stderr path)
        self.addCleanup(self.kill_jobs)

    def kill_jobs(self):
        for p, _ in self.jobs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()

    # -- helpers ---------------------------------------------------------
    def shared_config(self, parameters, file="cfg.yaml", **keys):
        """SweepTest.config with the sweep's `name:` (its `name` is the file's)."""
        path = self.config(parameters, name=file, **keys)
        with open(path) as f:
            cfg = json.load(f)
        cfg["name"] = SWEEP
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    def start_job(self, cfg, *extra):
        """One job of the sweep: its own session (os.killpg reaches all of
        it), output in files (four chatty jobs would fill pipes)."""
        k = len(self.jobs)
        err = os.path.join(self.tmp, "job%d.err" % k)
        with open(os.path.join(self.tmp, "job%d.out" % k), "w") as out, open(err, "w") as e:
            p = subprocess.Popen(MPI + ["-n", "2", TRAINER, "--sweep", cfg, "--store", self.pg.url,
                                        "--out-dir", self.out] + list(extra),
                                 env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=e)
        self.jobs.append((p, err))
        return p

    def stderr_of(self, p):
        path = next(e for q, e in self.jobs if q is p)
        with open(path, errors="replace") as f:
            return f.read()

    def wait_job(self, p, expect=0, timeout=240):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            self.fail("job %d did not end within %d s\n%s" % (p.pid, timeout,
                                                               self.stderr_of(p)[-4000:]))
        self.assertEqual(p.returncode, expect, "job %d:\n%s\nstore:\n%s" % (
            p.pid, self.stderr_of(p)[-4000:], self.store_state()))
        return self.stderr_of(p)

    def sql(self, query):
        """One value (or rows joined by newlines, columns by |) of the sweep."""
        sweep = "(SELECT id FROM xpscale.sweeps WHERE name = '%s')" % SWEEP
        return self.pg.psql(query.replace("$SWEEP", sweep))

    def poll(self, query, at_least, timeout=120):
        deadline = time.time() + timeout
        n, error = 0, ""
        while time.time() < deadline:
            try:
                n, error = int(self.sql(query) or 0), ""
            except PgServerError as e:  # the first job has not made the schema yet
                n, error = 0, str(e)
            if n >= at_least:
                return n
            for p, _ in self.jobs:
                if p.poll() is not None:
                    self.fail("a job ended (exit %d) while waiting for %s >= %d\n%s" % (
                        p.returncode, query, at_least, self.stderr_of(p)[-4000:]))
            time.sleep(0.2)
        self.fail("%s stayed at %d (< %d) for %d s %s" % (query, n, at_least, timeout, error))

    def export(self):
        """The sweep's row and its trials by id, as `xpscale export` writes them."""
        out = self.run_cmd([XPSCALE, "export", self.out]).stdout
        lines = [json.loads(l) for l in out.splitlines()]
        sweep = [l for l in lines if l["kind"] == "sweep"]
        self.assertEqual(len(sweep), 1, lines[:3])
        return sweep[0], {l["id"]: l for l in lines if l["kind"] == "trial"}

    def store_state(self):
        try:
            return "runs:\n%s\nattempts not completed:\n%s" % (
                self.sql("SELECT run, status, owner, heartbeat_at, finished_at FROM xpscale.runs "
                         "WHERE sweep = $SWEEP ORDER BY run"),
                self.sql("SELECT trial, attempt, run, status, reason FROM xpscale.attempts "
                         "WHERE sweep = $SWEEP AND status <> 'completed' ORDER BY trial, attempt"))
        except Exception as e:  # noqa: BLE001  (only a diagnostic)
            return "(cannot read the store: %s)" % e

    def assert_each_completed_once(self, trials, count):
        self.assertEqual(sorted(trials), list(range(count)), "trial ids have gaps or repeats")
        for i, t in trials.items():
            done = [a for a in t["history"] if a["status"] == "completed"]
            self.assertEqual(t["status"], "completed", t)
            self.assertEqual(len(done), 1, "trial %d: %s" % (i, t["history"]))
            self.assertEqual(t["history"][-1]["status"], "completed", t["history"])

    def signal_session(self, p, sig):
        """Signals every process of job p's session: mpiexec puts its ranks
        in process groups of their own, which os.killpg does not reach."""
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.getsid(int(pid)) == p.pid:
                        os.kill(int(pid), sig)
                except OSError:
                    pass

    def run_of(self, p):
        """The store's run number of job p: the run whose owner (its rank 0,
        "HOST pid N") is in p's session."""
        rows = self.sql("SELECT run, owner FROM xpscale.runs WHERE sweep = $SWEEP")
        for line in rows.splitlines():
            run, owner = line.split("|", 1)
            try:
                if os.getsid(int(owner.rsplit(" ", 1)[1])) == p.pid:
                    return int(run)
            except (OSError, ValueError, IndexError):
                pass
        self.fail("no run of the store belongs to job %d" % p.pid)

    # -- tests -----------------------------------------------------------
    def test_four_jobs_share_one_bayes_sweep_every_trial_once(self):
        # 200 trials on 8 groups (4 jobs x 2 ranks) on 2 cores: ~7 s here.
        n = 200
        cfg = self.shared_config({"x": {"min": -5.0, "max": 5.0},
                                  "ms": {"min": 0, "max": 5}, "steps": {"min": 1, "max": 2}},
                                 method="bayes", trials=n)
        jobs = [self.start_job(cfg) for _ in range(4)]
        errs = [self.wait_job(p, timeout=280) for p in jobs]
        sweep, trials = self.export()
        self.assertEqual(sweep["name"], SWEEP)
        self.assert_each_completed_once(trials, n)
        runs = collections.Counter(a["run"] for t in trials.values() for a in t["history"])
        self.assertEqual(len(runs), 4, "not every job ran trials: runs %s" % runs)
        self.assertGreaterEqual(min(runs.values()), 10, "a job got few trials: %s" % runs)
        for k, err in enumerate(errs):
            self.assertRegex(err, r"trial \d+ started", "job %d started no trial" % k)
        self.assertEqual(self.sql("SELECT string_agg(status, ',') FROM xpscale.runs "
                                  "WHERE sweep = $SWEEP"), ",".join(["finished"] * 4))
        # TPE still learns from every job's results: loss = (x - 3)^2 + step/100
        # with x uniform on [-5, 5] has median 9 (mean 17.3); the trials after
        # the first 100 gather near x = 3 (their median was 0.02-0.04 here).
        loss = {i: t["best_value"] for i, t in trials.items()}
        self.assertLess(min(loss.values()), 0.5)
        late = statistics.median(loss[i] for i in range(n // 2, n))
        self.assertLess(late, 0.5, "the later trials' median loss: TPE did not learn")

    def test_a_job_killed_mid_trial_has_its_trial_run_by_another(self):
        n = 20  # ~2 s each (6 steps of 300 ms), 4 groups: ~12 s
        cfg = self.shared_config({"x": {"values": list(range(n))}, "ms": {"value": 300},
                                  "steps": {"value": 6}})
        victim = self.start_job(cfg, "--lease", "10")
        survivor = self.start_job(cfg, "--lease", "10")
        self.poll("SELECT count(DISTINCT run) FROM xpscale.attempts "
                  "WHERE sweep = $SWEEP AND status = 'running'", at_least=2)
        victim_run, survivor_run = self.run_of(victim), self.run_of(survivor)
        self.poll("SELECT count(*) FROM xpscale.attempts WHERE sweep = $SWEEP AND status = "
                  "'running' AND run = %d" % victim_run, at_least=1)
        killed_at = time.time()
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        err = self.wait_job(survivor)
        self.assertIn("go back to the queue", err)
        _, trials = self.export()
        self.assert_each_completed_once(trials, n)
        taken = {i: t for i, t in trials.items() if any(
            a["run"] == victim_run and a["status"] == "interrupted" for a in t["history"])}
        self.assertTrue(taken, "no attempt of the killed job was interrupted:\n" +
                        self.store_state())
        for i, t in taken.items():
            h = t["history"]
            lost = next(k for k, a in enumerate(h) if a["run"] == victim_run
                        and a["status"] == "interrupted")
            self.assertIn("run ended", h[lost]["reason"])
            later = h[lost + 1:]
            self.assertTrue(later and later[-1]["status"] == "completed"
                            and later[-1]["run"] == survivor_run, "trial %d: %s" % (i, h))
            self.assertLess(later[0]["started_at"] - killed_at, 9,
                            "the killed job's trial waited for its lease, not its connection")
        self.assertTrue(all(a["run"] in (victim_run, survivor_run)
                            for t in trials.values() for a in t["history"]))
        self.assertEqual(self.sql("SELECT status FROM xpscale.runs WHERE sweep = $SWEEP "
                                  "AND run = %d" % victim_run), "killed")

    def test_a_job_stopped_past_its_lease_has_its_results_dropped_not_merged(self):
        # A grid without a scheduler: no state, so a result is recorded by the
        # fenced finish alone (finish_owned), with no ownership check first.
        n = 60  # ~1.2 s each, 2 groups a job: the survivor alone needs ~36 s
        cfg = self.shared_config({"x": {"values": list(range(n))}, "ms": {"value": 300},
                                  "steps": {"value": 4}})
        victim = self.start_job(cfg, "--lease", "10")  # the shortest allowed
        survivor = self.start_job(cfg, "--lease", "10")
        self.poll("SELECT count(DISTINCT run) FROM xpscale.attempts "
                  "WHERE sweep = $SWEEP AND status = 'running'", at_least=2)
        victim_run = self.run_of(victim)
        self.poll("SELECT count(*) FROM xpscale.attempts WHERE sweep = $SWEEP AND status = "
                  "'running' AND run = %d" % victim_run, at_least=1)
        self.signal_session(victim, signal.SIGSTOP)  # connected, but renewing nothing
        self.addCleanup(lambda: self.signal_session(victim, signal.SIGCONT))
        self.poll("SELECT count(*) FROM xpscale.runs WHERE sweep = $SWEEP AND run = %d "
                  "AND status = 'killed'" % victim_run, at_least=1, timeout=60)
        self.signal_session(victim, signal.SIGCONT)  # its trials' results come in late
        self.wait_job(survivor)
        try:
            victim.wait(timeout=120)  # it learns it lost its lease and ends
        except subprocess.TimeoutExpired:
            self.fail("the job stopped past its lease did not end:\n" +
                      self.stderr_of(victim)[-4000:])
        _, trials = self.export()
        # One completed attempt per trial: none of the stale job's late
        # results turned its interrupted attempts into completed ones.
        self.assert_each_completed_once(trials, n)
        taken = [t for t in trials.values() if any(
            a["run"] == victim_run and a["status"] == "interrupted" for a in t["history"])]
        self.assertTrue(taken, "the stopped job's trials were not taken over:\n" +
                        self.store_state())
        for t in taken:
            self.assertNotEqual(t["history"][-1]["run"], victim_run, t["history"])

    def test_the_database_stopping_for_10_s_loses_nothing(self):
        n = 30
        cfg = self.shared_config({"x": {"values": list(range(n))}, "ms": {"value": 200},
                                  "steps": {"value": 3}})
        # The second job joins once the first runs trials (as jobs of a queue
        # start): their store calls are not in step.
        jobs = [self.start_job(cfg, "--lease", "30")]
        self.poll("SELECT count(*) FROM xpscale.attempts WHERE sweep = $SWEEP", at_least=1)
        jobs.append(self.start_job(cfg, "--lease", "30"))
        self.poll("SELECT count(DISTINCT run) FROM xpscale.attempts "
                  "WHERE sweep = $SWEEP AND status = 'completed'", at_least=2)
        self.poll("SELECT count(*) FROM xpscale.trials "
                  "WHERE sweep = $SWEEP AND status = 'completed'", at_least=4)
        self.pg.pause()
        paused_at = time.time()
        time.sleep(10)
        self.assertTrue(all(p.poll() is None for p in jobs),
                        [(p.returncode, self.stderr_of(p)[-2000:]) for p in jobs])
        self.pg.resume()
        self.assertGreater(time.time() - paused_at, 10)
        errs = [self.wait_job(p) for p in jobs]
        for err in errs:  # each waited for the store, then went on
            self.assertIn("(--store-retry)", err)
            self.assertIn("the store answers again", err)
        _, trials = self.export()
        self.assert_each_completed_once(trials, n)
        # Within the lease the outage costs no trial an attempt (a run that
        # ended under a trial counts against its retries).
        self.assertEqual({i: t["history"] for i, t in trials.items()
                          if len(t["history"]) > 1}, {})
        self.assertEqual(self.sql("SELECT string_agg(status, ',') FROM xpscale.runs "
                                  "WHERE sweep = $SWEEP"), "finished,finished")

    def test_a_second_config_under_the_same_name_is_refused(self):
        cfg = self.shared_config({"x": {"values": [0, 1, 2]}, "ms": {"value": 0}})
        self.run_cmd([TRAINER, "--sweep", cfg, "--store", self.pg.url, "--out-dir", self.out],
                     ranks=2)
        state = ("SELECT (SELECT count(*) FROM xpscale.trials), (SELECT count(*) FROM "
                 "xpscale.attempts), (SELECT count(*) FROM xpscale.runs), (SELECT count(*) FROM "
                 "xpscale.metrics), (SELECT string_agg(concat_ws(' ', name, config_hash, planned, "
                 "updated_at, runs), ',') FROM xpscale.sweeps)")
        before = self.sql(state)
        other = self.shared_config({"x": {"values": [0, 1, 2, 5]}, "ms": {"value": 0}},
                                   file="other.yaml")
        # Into the sweep's shared out_dir, and from another one: the store refuses.
        for out in (self.out, os.path.join(self.tmp, "elsewhere")):
            p = self.run_cmd([TRAINER, "--sweep", other, "--store", self.pg.url, "--out-dir", out],
                             ranks=2, expect=2)
            self.assertIn("sweep %s was started with a different sweep config" % SWEEP, p.stderr)
            self.assertIn("parameters.x.values: 3 values -> 4 values", p.stderr)  # the difference
            self.assertIn("`name:`", p.stderr)
            self.assertEqual(self.sql(state), before)
        # A refused config leaves nothing behind (as with SQLite).
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "elsewhere")))
        _, trials = self.export()
        self.assertEqual(sorted(trials), [0, 1, 2])
        self.assertEqual({t["params"]["x"] for t in trials.values()}, {0, 1, 2})

    def test_stop_reaches_every_job(self):
        cfg = self.shared_config({"x": {"min": 0.0, "max": 1.0}, "ms": {"value": 50}},
                                 method="random")
        jobs = [self.start_job(cfg) for _ in range(2)]
        self.poll("SELECT count(DISTINCT run) FROM xpscale.attempts "
                  "WHERE sweep = $SWEEP AND status = 'completed'", at_least=2)
        stop = self.run_cmd([XPSCALE, "stop", self.out])
        self.assertIn("asked 2 runs", stop.stdout)
        listed = [l for l in stop.stdout.splitlines() if l.strip().startswith("run ")]
        self.assertEqual(len(listed), 2, stop.stdout)
        for p in jobs:
            self.assertIn("stopped by `xpscale stop`", self.wait_job(p, timeout=60))
        _, trials = self.export()
        self.assertTrue(all(t["status"] == "completed" for t in trials.values()),
                        {i: t["status"] for i, t in trials.items()})
        self.assertEqual(sorted(trials), list(range(len(trials))))


def load_tests(loader, tests, pattern):
    """The module's own tests only: not SweepTest's, which SharedStoreTest
    inherits and which would run here too."""
    del tests, pattern
    return unittest.TestSuite(SharedStoreTest(n) for n in loader.getTestCaseNames(SharedStoreTest)
                              if n in vars(SharedStoreTest))


if __name__ == "__main__":
    unittest.main()
