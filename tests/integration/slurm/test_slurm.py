"""Slurm integration tests: real sbatch/srun on the one-node cluster that
slurm/local-cluster starts (the ctest fixture), the real xpscale command and
trainers, checked through the sweep's store.

Environment (set by CMake): SLURM_CONF, XPSCALE_BIN, XPSCALE_TRAINER
(tests/mpi/sweep/sweep_trainer), XPSCALE_FMNIST (the Fashion-MNIST
trainer), XPSCALE_TEST_TMP.
"""
import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
XPSCALE = os.environ["XPSCALE_BIN"]
TRAINER = os.environ["XPSCALE_TRAINER"]
EXT_TRIAL = os.path.join(ROOT, "tests", "mpi", "sweep", "ext_trial.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from pg_server import PgServer  # noqa: E402  (tests/support)

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


class SlurmTest(unittest.TestCase):
    def setUp(self):
        base = os.environ.get("XPSCALE_TEST_TMP") or None
        self.tmp = tempfile.mkdtemp(prefix="slurm-", dir=base)
        self.out = os.path.join(self.tmp, "out dir")  # a space, on purpose
        self.env = dict(os.environ)

    # -- helpers ---------------------------------------------------------
    def write_config(self, cfg, name="sweep.yaml"):
        cfg.setdefault("out_dir", self.out)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML
        return path

    def run_cmd(self, argv, expect=0, timeout=60):
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if expect is not None and p.returncode != expect:
            self.fail("%s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                      (argv, p.returncode, expect, p.stdout[-4000:], p.stderr[-4000:]))
        return p

    def submit(self, sweep, *options):
        p = self.run_cmd([XPSCALE, "slurm", "submit", sweep] + list(options))
        words = p.stdout.split()
        self.assertEqual(words[:2], ["submitted", "job"], p.stdout)
        return words[2].rstrip(";")

    def job_states(self, job):
        p = self.run_cmd(["squeue", "--states=all", "--noheader", "--jobs=" + job,
                          "--format=%i %T"], expect=None)
        return dict(line.split() for line in p.stdout.splitlines() if line.strip())

    def wait_job(self, job, timeout=240, tasks=1):
        deadline = time.time() + timeout
        states = {}
        while time.time() < deadline:
            states = self.job_states(job)
            if len(states) >= tasks and all(s in FINAL for s in states.values()):
                return states
            time.sleep(1)
        self.fail("job %s did not finish in %d s: %s\n%s" % (job, timeout, states, self.job_logs()))

    def job_logs(self):
        text = ""
        for path in sorted(glob.glob(os.path.join(glob.escape(self.out), "slurm", "*.out"))):
            with open(path, errors="replace") as f:
                text += "== %s\n%s" % (path, f.read()[-3000:])
        return text

    def query(self, sql, db="xpscale.db"):
        con = sqlite3.connect(os.path.join(self.out, db))
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql)]
        finally:
            con.close()

    def checkpoint_steps(self):
        steps = {}
        for path in glob.glob(os.path.join(glob.escape(self.out), "trials", "*", "checkpoint",
                                           "xpscale_checkpoint.json")):
            try:
                with open(path) as f:
                    steps[int(path.split(os.sep)[-3])] = json.load(f)["step"]
            except (OSError, ValueError):
                pass  # being replaced right now
        return steps

    def preempt_when_checkpointed(self, job, min_step=2, timeout=120):
        """Waits until a trial has checkpointed min_step, then sends what
        --signal=B:USR1@grace sends before the time limit: USR1 to the batch
        shell only."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(s >= min_step for s in self.checkpoint_steps().values()):
                self.run_cmd(["scancel", "--batch", "--signal=USR1", job])
                return
            time.sleep(0.5)
        self.fail("no trial checkpointed step %d in %d s\n%s" % (min_step, timeout, self.job_logs()))

    def assert_resumed_once_each(self, expected_trials):
        """Every trial completed exactly once; an interrupted attempt was
        followed by one that started after its checkpoint, not from step 1."""
        trials = self.query("SELECT id, status FROM trials ORDER BY id")
        self.assertEqual([t["id"] for t in trials], list(range(expected_trials)), self.job_logs())
        self.assertTrue(all(t["status"] == "completed" for t in trials), (trials, self.job_logs()))
        attempts = self.query("SELECT trial, attempt, status, reason FROM attempts")
        completed = [a["trial"] for a in attempts if a["status"] == "completed"]
        self.assertEqual(sorted(completed), list(range(expected_trials)), attempts)
        interrupted = [a for a in attempts if a["status"] == "interrupted"]
        self.assertTrue(interrupted, "no trial was interrupted: %s\n%s" % (attempts, self.job_logs()))
        first_steps = {(r["trial"], r["attempt"]): r["first"] for r in self.query(
            "SELECT trial, attempt, min(step) AS first FROM metrics GROUP BY trial, attempt")}
        resumed = 0
        for a in interrupted:
            self.assertEqual(a["reason"], "preempted", a)
            last = self.query("SELECT max(step) AS s FROM metrics WHERE trial = %d AND attempt = %d"
                              % (a["trial"], a["attempt"]))[0]["s"]
            nxt = first_steps.get((a["trial"], a["attempt"] + 1))
            if last is not None and nxt is not None:
                self.assertGreater(nxt, 1, "trial %d restarted from scratch" % a["trial"])
                # A trial marks a step's checkpoint before it reports the
                # step (xpscale.report's documented order: a scheduler that
                # acts on the report finds the checkpoint). A signal between
                # the two loses that one report; the run resumes after the
                # checkpoint, so at most one step goes unreported.
                self.assertLessEqual(nxt, last + 2, "trial %d skipped steps" % a["trial"])
                resumed += 1
        self.assertGreater(resumed, 0, (attempts, first_steps))

    def restarts(self, job):
        p = self.run_cmd(["scontrol", "show", "job", job])
        for word in p.stdout.split():
            if word.startswith("Restarts="):
                return int(word.split("=")[1])
        self.fail("no Restarts= in scontrol show job:\n" + p.stdout)

    # -- tests -----------------------------------------------------------
    def test_submit_fashion_mnist_sweep(self):
        # examples/sweeps/fmnist_mlp.yaml reduced to 2 trials of 1 epoch
        # (the full 12 x 5 epochs takes minutes on 2 cores).
        cfg = self.write_config({
            "name": "fmnist-mlp-small", "method": "grid",
            "metric": {"name": "test_accuracy", "goal": "maximize"},
            "parameters": {"lr": {"values": [0.03, 0.05]}, "hidden": {"value": 128},
                           "batch_size": {"value": 128}, "epochs": {"value": 1}},
            "resources": {"ranks_per_trial": 2}, "seed": 1})
        job = self.submit(cfg, "--trainer", os.environ["XPSCALE_FMNIST"], "--ranks-per-node", "4",
                          "--time", "00:10:00", "--", "--quiet")
        states = self.wait_job(job)
        self.assertEqual(states, {job: "COMPLETED"}, self.job_logs())
        rows = self.query("SELECT id, status, best_value FROM trials ORDER BY id")
        self.assertEqual([r["status"] for r in rows], ["completed", "completed"], rows)
        self.assertGreaterEqual(max(r["best_value"] for r in rows), 0.8, rows)
        # Both groups of 2 ranks of the 4-rank srun step ran trials.
        hosts = self.query("SELECT DISTINCT ranks FROM attempts")
        self.assertEqual(sorted(h["ranks"] for h in hosts), ["0,1", "2,3"], hosts)
        status = json.loads(self.run_cmd([XPSCALE, "slurm", "status", self.out,
                                          "--format", "json"]).stdout)
        self.assertEqual(status["job"], job)
        self.assertEqual([t["state"] for t in status["tasks"]], ["COMPLETED"], status)
        self.assertEqual(status["sweep"]["completed"], 2, status)
        text = self.run_cmd([XPSCALE, "slurm", "status", self.out]).stdout
        self.assertIn("COMPLETED", text)
        self.assertIn("2 completed", text)

    def test_preempted_inprocess_sweep_requeues_and_resumes_from_checkpoints(self):
        cfg = self.write_config({
            "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0, 1, 2, 3]}, "ms": {"value": 400},
                           "steps": {"value": 10}}})
        job = self.submit(cfg, "--trainer", TRAINER, "--ranks-per-node", "2", "--time", "10",
                          "--signal-grace", "20")
        self.preempt_when_checkpointed(job)
        self.assertEqual(self.wait_job(job), {job: "COMPLETED"}, self.job_logs())
        self.assertEqual(self.restarts(job), 1)
        self.assertIn("requeueing job " + job, self.job_logs())
        self.assert_resumed_once_each(4)
        runs = self.query("SELECT run, status FROM runs ORDER BY run")
        self.assertEqual([r["status"] for r in runs], ["preempted", "finished"], runs)

    def test_time_limit_signal_requeues_until_the_sweep_is_done(self):
        # No scancel: Slurm itself signals the job GRACE s before its 1 minute
        # limit (its time-limit check runs every ~30 s, so that is 15-30 s
        # in). The trials need ~35 s, more than one run of the job.
        cfg = self.write_config({
            "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0, 1]}, "ms": {"value": 1000},
                           "steps": {"value": 35}}})
        job = self.submit(cfg, "--trainer", TRAINER, "--ranks-per-node", "2", "--time", "1",
                          "--signal-grace", "45")
        self.assertEqual(self.wait_job(job, timeout=280), {job: "COMPLETED"}, self.job_logs())
        self.assertGreaterEqual(self.restarts(job), 1)
        self.assert_resumed_once_each(2)

    def test_preempted_external_trials_get_the_signal_and_resume(self):
        # ext_trial.py does not handle SIGUSR1, so it dies of it: still an
        # interrupted attempt that resumes from its checkpoint marker.
        cfg = self.write_config({
            "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "command": ["/usr/bin/python3", EXT_TRIAL, "${args}"],
            "parameters": {"x": {"values": [0, 1, 2, 3]}, "ms": {"value": 400},
                           "steps": {"value": 10}}})
        job = self.submit(cfg, "--ranks-per-node", "2", "--time", "10", "--signal-grace", "20")
        self.preempt_when_checkpointed(job)
        self.assertEqual(self.wait_job(job), {job: "COMPLETED"}, self.job_logs())
        self.assertEqual(self.restarts(job), 1)
        self.assert_resumed_once_each(4)

    def test_ranks_and_node_local_ranks_under_srun_and_mpirun(self):
        # srun sets no OMPI_COMM_WORLD_LOCAL_RANK; an mpirun inside the batch
        # script inherits the batch step's SLURM_LOCALID=0 on every rank.
        # Either way the leaders of the two groups of 2 are world ranks 0
        # and 2, with node-local ranks 0 and 2.
        for launcher in ("srun", "mpirun"):
            self.out = os.path.join(self.tmp, "out-" + launcher)
            cfg = self.write_config({
                "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"x": {"values": [0, 1, 2, 3]}, "ms": {"value": 200}},
                "resources": {"ranks_per_trial": 2}}, name=launcher + ".yaml")
            job = self.submit(cfg, "--trainer", TRAINER, "--ranks-per-node", "4",
                              "--launcher", launcher)
            self.assertEqual(self.wait_job(job), {job: "COMPLETED"}, self.job_logs())
            rows = self.query("SELECT ranks, last_metrics FROM trials")
            self.assertEqual(len(rows), 4)
            for r in rows:
                m = json.loads(r["last_metrics"])
                self.assertIn(r["ranks"], ("0,1", "2,3"), rows)
                self.assertEqual(m["rank_sum"], 1, rows)  # the group's own allreduce
                self.assertEqual(m["local_rank"], int(r["ranks"][0]), (launcher, rows))

    def test_array_job_runs_each_trial_once_and_report_merges(self):
        cfg = self.write_config({
            "name": "array-sweep", "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0, 1, 2, 3, 4, 5, 6]}}})
        job = self.submit(cfg, "--trainer", TRAINER, "--array", "3", "--ranks-per-node", "1")
        states = self.wait_job(job, tasks=3)
        self.assertEqual(sorted(states.values()), ["COMPLETED"] * 3, (states, self.job_logs()))
        seen = []
        for k in range(3):
            ids = [r["id"] for r in self.query("SELECT id FROM trials", db="xpscale.task%d.db" % k)]
            self.assertEqual(sorted(ids), [i for i in range(7) if i % 3 == k])
            seen += ids
        self.assertEqual(sorted(seen), list(range(7)))
        self.assertFalse(os.path.exists(os.path.join(self.out, "xpscale.db")))
        report = json.loads(self.run_cmd([XPSCALE, "report", self.out, "--format", "json"]).stdout)
        self.assertEqual(sorted(t["id"] for t in report), list(range(7)))
        self.assertTrue(all(t["status"] == "completed" and t["attempts"] == 1 for t in report))
        self.assertEqual(report[0]["params"], {"x": 3})  # best loss first, across stores
        lines = [json.loads(l) for l in
                 self.run_cmd([XPSCALE, "export", self.out]).stdout.splitlines()]
        self.assertEqual([l["kind"] for l in lines], ["sweep"] + ["trial"] * 7)
        self.assertEqual(lines[0]["planned"], 7)
        self.assertEqual([l["id"] for l in lines[1:]], list(range(7)))
        table = self.run_cmd([XPSCALE, "report", self.out]).stdout
        self.assertIn("7 trials", table)

    def start_pg(self):
        pg = PgServer()
        self.addCleanup(pg.stop)
        self.env.update(pg.env)  # PGPASSWORD, which sbatch passes on to the job
        return pg

    def pg_counts(self, pg, sweep):
        """(trials, trials with exactly one completed attempt, runs) of `sweep`."""
        sid = "(SELECT id FROM xpscale.sweeps WHERE name = '%s')" % sweep
        return tuple(int(v) for v in pg.psql(
            "SELECT (SELECT count(*) FROM xpscale.trials WHERE sweep = %s), "
            "(SELECT count(*) FROM (SELECT trial FROM xpscale.attempts WHERE sweep = %s AND "
            "status = 'completed' GROUP BY trial HAVING count(*) = 1) x), "
            "(SELECT count(*) FROM xpscale.runs WHERE sweep = %s)" % (sid, sid, sid)).split("|"))

    def test_array_on_postgres_is_one_bayes_sweep_and_join_adds_a_worker(self):
        pg = self.start_pg()
        cfg = self.write_config({
            "name": "elastic", "method": "bayes", "trials": 16, "seed": 3,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": -4.0, "max": 4.0}, "ms": {"value": 150}}})
        # bayes over array tasks: refused on SQLite (separate stores) ...
        p = self.run_cmd([XPSCALE, "slurm", "submit", cfg, "--trainer", TRAINER, "--array", "2",
                          "--ranks-per-node", "1"], expect=2)
        self.assertIn("bayes", p.stderr)
        array = self.submit(cfg, "--trainer", TRAINER, "--array", "2", "--ranks-per-node", "1",
                            "--store", pg.url)
        # ... and one sweep of elastic workers on PostgreSQL; a third joins
        # by the sweep's name alone.
        deadline = time.time() + 60
        while time.time() < deadline and "elastic" not in pg.psql(
                "SELECT coalesce(string_agg(name, ','), '') FROM xpscale.sweeps"
                if pg.psql("SELECT to_regclass('xpscale.sweeps') IS NOT NULL") == "t"
                else "SELECT ''"):
            time.sleep(0.5)
        p = self.run_cmd([XPSCALE, "slurm", "submit", "--join", "elastic", "--store", pg.url,
                          "--trainer", TRAINER, "--ranks-per-node", "1"])
        joined = p.stdout.split()[2].rstrip(";")
        self.assertEqual(sorted(self.wait_job(array, tasks=2).values()), ["COMPLETED"] * 2,
                         self.job_logs())
        self.assertEqual(list(self.wait_job(joined).values()), ["COMPLETED"], self.job_logs())
        trials, once, runs = self.pg_counts(pg, "elastic")
        self.assertEqual((trials, once), (16, 16), self.job_logs())
        self.assertEqual(runs, 3)  # two array tasks and the joined job
        script = self.run_cmd([XPSCALE, "slurm", "render", "--join", "elastic", "--store", pg.url,
                               "--trainer", TRAINER]).stdout
        self.assertIn(cfg, script)
        self.assertNotIn(pg.password, script)
        # A sweep that has not begun cannot be joined.
        p = self.run_cmd([XPSCALE, "slurm", "submit", "--join", "nope", "--store", pg.url,
                          "--trainer", TRAINER], expect=2)
        self.assertIn("has not begun", p.stderr)

    def test_an_agent_in_an_allocation_runs_queued_sweeps_with_srun(self):
        pg = self.start_pg()
        cfgs = []
        for k in range(2):
            cfgs.append(self.write_config({
                "name": "queued-%d" % k, "method": "grid",
                "command": ["/usr/bin/python3", EXT_TRIAL, "${args}"],
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"x": {"values": [0, 1, 2, 3]}},
                "out_dir": os.path.join(self.tmp, "out%d" % k)}, name="q%d.yaml" % k))
            self.run_cmd([XPSCALE, "enqueue", cfgs[-1], "--store", pg.url, "--priority", str(k)])
        log = os.path.join(self.tmp, "agent.out")
        p = self.run_cmd(["sbatch", "--ntasks", "2", "--output", log, "--wrap",
                          "exec %s agent --store %s --idle-exit 3" % (XPSCALE, pg.url)])
        job = p.stdout.split()[-1]
        states = self.wait_job(job)
        with open(log, errors="replace") as f:
            out = f.read()
        self.assertEqual(list(states.values()), ["COMPLETED"], out)
        self.assertIn("launcher srun", out)
        self.assertNotIn(pg.password, out)
        listed = [json.loads(l) for l in self.run_cmd(
            [XPSCALE, "queue", "list", "--store", pg.url, "--json"]).stdout.splitlines()]
        self.assertEqual(sorted((e["sweep"], e["status"]) for e in listed),
                         [("queued-0", "done"), ("queued-1", "done")], out)
        for k in range(2):
            trials, once, runs = self.pg_counts(pg, "queued-%d" % k)
            self.assertEqual((trials, once, runs), (4, 4, 1), out)
            # Each ran on the allocation's two ranks, through srun.
            self.assertEqual(pg.psql(
                "SELECT world_size FROM xpscale.runs WHERE sweep = (SELECT id FROM "
                "xpscale.sweeps WHERE name = 'queued-%d')" % k), "2")
        # Priority 1 first.
        first = min(listed, key=lambda e: e["started_at"])
        self.assertEqual(first["sweep"], "queued-1")

    def test_preempted_array_tasks_requeue_on_their_own(self):
        cfg = self.write_config({
            "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0, 1, 2, 3]}, "ms": {"value": 400},
                           "steps": {"value": 10}}})
        job = self.submit(cfg, "--trainer", TRAINER, "--array", "2", "--signal-grace", "20")
        self.preempt_when_checkpointed(job)  # signals every task of the array
        states = self.wait_job(job, tasks=2)
        self.assertEqual(states, {job + "_0": "COMPLETED", job + "_1": "COMPLETED"},
                         self.job_logs())
        logs = self.job_logs()
        for k in range(2):
            self.assertIn("requeueing job %s_%d" % (job, k), logs)
            self.assertIn("job %s_%d (restart 1)" % (job, k), logs)
        report = json.loads(self.run_cmd([XPSCALE, "report", self.out, "--format", "json"]).stdout)
        self.assertEqual(sorted(t["id"] for t in report), [0, 1, 2, 3])
        self.assertTrue(all(t["status"] == "completed" for t in report), report)
        for k in range(2):
            interrupted = self.query(
                "SELECT trial, attempt FROM attempts WHERE status = 'interrupted'",
                db="xpscale.task%d.db" % k)
            self.assertTrue(interrupted, k)
            for trial, attempt in ((r["trial"], r["attempt"]) for r in interrupted):
                first = self.query("SELECT min(step) AS s FROM metrics WHERE trial = %d AND "
                                   "attempt = %d" % (trial, attempt + 1),
                                   db="xpscale.task%d.db" % k)[0]["s"]
                self.assertGreater(first, 1, "trial %d restarted from scratch" % trial)

    def test_hostile_values_stay_literal(self):
        marker = "/tmp/xpscale-injected-" + uuid.uuid4().hex
        hostile = "'; rm -rf /"
        self.out = os.path.join(self.tmp, "it's $(touch %s) out" % marker)
        cfg = self.write_config({
            "name": "x'; touch %s; echo '" % marker, "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"note": {"value": hostile},
                           "other": {"value": "$(touch %s)`touch %s`" % (marker, marker)}}},
            name="sweep with 'quotes'.yaml")
        script = self.run_cmd([XPSCALE, "slurm", "render", cfg, "--trainer", TRAINER]).stdout
        self.assertNotIn(hostile, script)  # parameters never reach the script
        job = self.submit(cfg, "--trainer", TRAINER)
        self.assertEqual(self.wait_job(job), {job: "COMPLETED"}, self.job_logs())
        rows = self.query("SELECT params FROM trials")
        self.assertEqual(len(rows), 1)
        params = json.loads(rows[0]["params"])
        self.assertEqual(params["note"], hostile)
        self.assertEqual(params["other"], "$(touch %s)`touch %s`" % (marker, marker))
        self.assertFalse(os.path.exists(marker), "a value was run by a shell")
        # Options that would land in #SBATCH lines are refused, not passed on.
        for bad in (["--partition", "debug --wrap=id"], ["--account", "a;b"],
                    ["--time", "1:00:00\n#SBATCH --x"], ["--job-name", 'a"b']):
            p = self.run_cmd([XPSCALE, "slurm", "render", cfg, "--trainer", TRAINER] + bad,
                             expect=2)
            self.assertIn(bad[0], p.stderr)


if __name__ == "__main__":
    unittest.main()
