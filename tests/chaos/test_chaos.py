"""Chaos tests (issue 20): what hostile users and unlucky clusters do to a
sweep — hostile metrics lines, two runs on one out_dir, a busy or full
store, signals and kill -9 of ranks, hung ranks — and what xpscale must do:
never hang, never leave a trial process behind, never run a trial twice,
never let one bad input crash every resume.

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TRAINER, XPSCALE_TEST_TMP.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from processes import marker_pids  # noqa: E402  (tests/pylib)
from sweep_case import MPI, SweepCase  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
XPSCALE = os.environ["XPSCALE_BIN"]
TRAINER = os.environ.get("XPSCALE_TRAINER", "")
TRIAL = os.path.join(HERE, "chaos_trial.py")


class ChaosTest(SweepCase):
    tmp_prefix = "chaos-"

    # -- helpers ---------------------------------------------------------
    def config(self, values, mode="ok", ms=0, steps=3, name="cfg.yaml", extra=None, **keys):
        params = {"x": {"values": values}, "mode": {"value": mode}, "ms": {"value": ms},
                  "steps": {"value": steps}}
        params.update(extra or {})
        cfg = {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
               "parameters": params,
               "command": ["${interpreter}", TRIAL, "${args}"], "out_dir": self.out}
        cfg.update(keys)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    def start(self, argv, ranks=None):
        cmd = (MPI + ["-n", str(ranks)] if ranks else []) + argv
        return subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    def finish(self, p, timeout=180, expect=0):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            self.fail("timed out after %d s (a hang)\nstderr:\n%s" % (timeout, err[-4000:]))
        if expect is not None and p.returncode != expect:
            self.fail("exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                      (p.returncode, expect, out[-3000:], err[-5000:]))
        return out, err

    def run_cmd(self, argv, ranks=None, timeout=180, expect=0):
        return self.finish(self.start(argv, ranks), timeout, expect)

    def db(self):
        con = sqlite3.connect(os.path.join(self.out, "xpscale.db"), timeout=30)
        con.row_factory = sqlite3.Row
        return con

    def statuses(self):
        with self.db() as con:
            return {r["id"]: r["status"] for r in con.execute("SELECT id, status FROM trials")}

    def attempts(self):
        with self.db() as con:
            return [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY trial, attempt")]

    def wait_for(self, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if what():
                return
            time.sleep(0.05)
        self.fail("timed out waiting for the sweep")

    def started_attempts(self):
        try:
            with self.db() as con:
                return con.execute("SELECT count(*) FROM attempts").fetchone()[0]
        except sqlite3.Error:
            return 0

    # -- metrics lines ---------------------------------------------------
    def test_a_metrics_line_nested_100000_deep_is_refused_and_the_trial_completes(self):
        cfg = self.config([1, 2], mode="nest")
        _, err = self.run_cmd([XPSCALE, "run", cfg])
        self.assertEqual(set(self.statuses().values()), {"completed"})
        self.assertIn("nested deeper than 64 levels", err)
        self.assertNotIn("\x1b", err, "a trial's terminal escapes reached stderr")
        self.assertIn("\\x1b", err)

    def test_a_flood_of_bad_metrics_lines_is_drained_and_logged_briefly(self):
        cfg = self.config([1], mode="flood", extra={"lines": {"value": 300000}})
        t0 = time.time()
        _, err = self.run_cmd([XPSCALE, "run", cfg])
        self.assertEqual(self.statuses(), {0: "completed"})
        self.assertLess(len(err), 20000, "every ignored line was logged")
        self.assertLess(time.time() - t0, 60)

    # -- one run per out_dir ---------------------------------------------
    def test_a_second_run_on_the_same_out_dir_is_refused_naming_the_holder(self):
        cfg = self.config([1, 2, 3], ms=300, steps=6)
        first = self.start([XPSCALE, "run", cfg])
        self.wait_for(lambda: self.started_attempts() > 0)
        _, err = self.run_cmd([XPSCALE, "run", cfg], expect=2)
        self.assertIn("another xpscale run is using", err)
        self.assertIn("pid %d" % first.pid, err)
        self.finish(first)
        self.assertEqual(set(self.statuses().values()), {"completed"})
        self.assertTrue(all(a["attempt"] == 1 for a in self.attempts()), self.attempts())
        self.run_cmd([XPSCALE, "run", cfg])  # the lock is free again

    def test_a_lock_left_by_a_killed_run_is_taken_over(self):
        cfg = self.config([1, 2, 3, 4], ms=300, steps=6)
        first = self.start([XPSCALE, "run", cfg])
        self.wait_for(lambda: self.started_attempts() > 0)
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
        self.run_cmd([XPSCALE, "run", cfg])
        self.assertEqual(set(self.statuses().values()), {"completed"})

    # -- the store -------------------------------------------------------
    def hold_store_lock(self, seconds, release):
        """Holds the store's write lock from another process, as a user's
        sqlite3 shell in a transaction would, for `seconds` or until
        `release` is set."""
        def hold():
            con = sqlite3.connect(os.path.join(self.out, "xpscale.db"), timeout=60,
                                  isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            held.set()
            release.wait(seconds)
            con.execute("ROLLBACK")
            con.close()
        held = threading.Event()
        t = threading.Thread(target=hold, daemon=True)
        t.start()
        self.assertTrue(held.wait(60))
        return t

    def test_a_busy_store_is_waited_out_and_the_sweep_completes(self):
        cfg = self.config(list(range(6)), ms=100, steps=4)
        p = self.start([XPSCALE, "run", cfg, "--store-retry", "120"], ranks=2)
        self.wait_for(lambda: self.started_attempts() > 0)
        holder = self.hold_store_lock(5, threading.Event())
        _, err = self.finish(p)
        holder.join()
        self.assertIn("retrying for up to", err)
        self.assertIn("the store answers again", err)
        self.assertEqual(set(self.statuses().values()), {"completed"})
        self.assertTrue(all(a["attempt"] == 1 for a in self.attempts()))

    def test_a_store_busy_past_store_retry_ends_the_job_with_status_4_and_resumes(self):
        cfg = self.config(list(range(6)), ms=200, steps=4)
        p = self.start([XPSCALE, "run", cfg, "--store-retry", "2"], ranks=3)
        self.wait_for(lambda: self.started_attempts() > 0)
        release = threading.Event()
        holder = self.hold_store_lock(600, release)
        t0 = time.time()
        _, err = self.finish(p, timeout=120, expect=4)
        self.assertLess(time.time() - t0, 60, "the job did not end within seconds")
        self.assertIn("--store-retry", err)
        release.set()
        holder.join()
        self.assertEqual(marker_pids(self.marker), [])
        self.run_cmd([XPSCALE, "run", cfg], ranks=2)
        self.assertEqual(set(self.statuses().values()), {"completed"})
        with self.db() as con:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")

    # -- failures --------------------------------------------------------
    def test_every_trial_failed_exits_1_and_retry_failed_runs_them_again(self):
        allow = os.path.join(self.tmp, "allow")
        cfg = self.config([1, 2, 3], mode="fail_unless", extra={"allow": {"value": allow}})
        _, err = self.run_cmd([XPSCALE, "run", cfg], expect=1)
        self.assertIn("every trial that ran failed (3)", err)
        self.assertEqual(set(self.statuses().values()), {"failed"})
        open(allow, "w").close()
        self.run_cmd([XPSCALE, "run", cfg], expect=1)  # failed trials stay failed
        self.assertEqual(set(self.statuses().values()), {"failed"})
        self.run_cmd([XPSCALE, "run", cfg, "--retry-failed"])
        self.assertEqual(set(self.statuses().values()), {"completed"})
        self.assertEqual(sorted((a["trial"], a["attempt"], a["status"]) for a in self.attempts()),
                         [(i, n, s) for i in range(3)
                          for n, s in ((1, "failed"), (2, "completed"))])

    def test_a_missing_program_fails_before_any_trial_with_status_2(self):
        cfg = self.config([1, 2], program="no_such_train.py")
        with open(cfg) as f:
            c = json.load(f)
        del c["command"]
        with open(cfg, "w") as f:
            json.dump(c, f)
        _, err = self.run_cmd([XPSCALE, "run", cfg], expect=2)
        self.assertIn("program 'no_such_train.py' does not exist", err)
        self.assertFalse(os.path.exists(os.path.join(self.out, "xpscale.db")))

    def test_the_store_deleted_mid_run_is_an_error(self):
        cfg = self.config(list(range(8)), ms=200, steps=5)
        p = self.start([XPSCALE, "run", cfg])
        self.wait_for(lambda: self.started_attempts() > 0)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(os.path.join(self.out, "xpscale.db" + suffix))
            except FileNotFoundError:
                pass
        _, err = self.finish(p, expect=1)
        self.assertIn("was deleted or replaced", err)

    def small_disk(self):
        """A 24 MiB tmpfs that out_dir moves to; skips the test without root."""
        mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt],
                          capture_output=True).returncode != 0:
            self.skipTest("cannot mount a small tmpfs here (needs root)")
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        self.out = os.path.join(mnt, "out")
        return mnt

    def fill_disk(self, mnt):
        """Fills the disk, as a runaway checkpoint would; returns the file."""
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        return filler

    def test_a_full_disk_is_waited_out_and_fails_no_trial(self):
        mnt = self.small_disk()
        cfg = self.config(list(range(6)), ms=300, steps=4)
        p = self.start([XPSCALE, "run", cfg, "--store-retry", "120"])
        self.wait_for(lambda: self.started_attempts() > 0)
        filler = self.fill_disk(mnt)
        time.sleep(4)
        os.unlink(filler)
        _, err = self.finish(p)
        self.assertIn("is full", err)
        self.assertEqual(set(self.statuses().values()), {"completed"}, self.attempts())

    def test_a_batch_script_for_mpirun_starts_as_root(self):
        cfg = self.config([1])
        out, _ = self.run_cmd([XPSCALE, "slurm", "render", cfg, "--launcher", "mpirun"])
        self.assertIn("start+=(--allow-run-as-root)", out)
        script = os.path.join(self.tmp, "job.sh")
        with open(script, "w") as f:
            f.write(out)
        self.assertEqual(subprocess.run(["bash", "-n", script]).returncode, 0)

    def test_a_disk_full_past_store_retry_ends_the_job_with_status_4(self):
        mnt = self.small_disk()
        cfg = self.config(list(range(8)), ms=300, steps=4)
        p = self.start([XPSCALE, "run", cfg, "--store-retry", "3"], ranks=2)
        self.wait_for(lambda: self.started_attempts() > 0)
        filler = self.fill_disk(mnt)
        t0 = time.time()
        _, err = self.finish(p, timeout=120, expect=4)
        self.assertLess(time.time() - t0, 60)
        self.assertIn("--store-retry", err)
        os.unlink(filler)
        self.wait_for(lambda: marker_pids(self.marker) == [], timeout=30)
        self.run_cmd([XPSCALE, "run", cfg], ranks=2)
        self.assertEqual(set(self.statuses().values()), {"completed"}, self.attempts())

    # -- signals and kill -9 ---------------------------------------------
    def rank_pids(self):
        """World rank -> pid of the xpscale ranks (not their reapers)."""
        ranks = {}
        for pid in marker_pids(self.marker):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() != "xpscale":
                        continue
                with open("/proc/%d/environ" % pid, "rb") as f:
                    env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                with open("/proc/%d/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%d/comm" % ppid) as f:
                    if f.read().strip() == "xpscale":
                        continue  # a reaper
            except OSError:
                continue
            if b"OMPI_COMM_WORLD_RANK" in env:
                ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
        return ranks

    def trial_pids(self):
        """The trial processes: python trials and their sleeps, not xpscale."""
        out = []
        for pid in marker_pids(self.marker):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() in ("python", "python3", "sleep"):
                        out.append(pid)
            except OSError:
                pass
        return out

    def wait_for_orphans(self, count):
        # Each orphans trial: the python trial, a sleep, a setsid sleep and
        # a python child that ignores SIGTERM.
        self.wait_for(lambda: len(self.trial_pids()) >= count, timeout=60)

    def assert_tree_gone_within(self, seconds, since):
        while self.trial_pids() and time.time() - since < seconds + 5:
            time.sleep(0.02)
        left = self.trial_pids()
        self.assertEqual(left, [], "trial processes survived")
        self.assertLess(time.time() - since, seconds, "the trial processes took too long to end")

    def test_sigterm_sigint_sighup_to_a_run_end_every_trial_process_and_record_it(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.out = os.path.join(self.tmp, "out-%d" % sig)
            cfg = self.config([1, 2], mode="orphans", name="cfg-%d.yaml" % sig)
            p = self.start([XPSCALE, "run", cfg, "--kill-grace", "1"])
            self.wait_for_orphans(4)
            t0 = time.time()
            os.kill(p.pid, sig)
            _, err = self.finish(p, timeout=60, expect=128 + sig)
            self.assert_tree_gone_within(1 + 2, t0)
            name = signal.Signals(sig).name
            self.assertIn("interrupted by " + name, err)
            a = self.attempts()
            self.assertEqual([(x["status"], x["reason"]) for x in a],
                             [("interrupted", "interrupted by " + name)], a)

    def test_a_second_sigint_ends_an_in_process_trainer_at_once(self):
        cfg = os.path.join(self.tmp, "inproc.yaml")
        with open(cfg, "w") as f:
            json.dump({"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                       "parameters": {"x": {"values": [1, 2]}, "ms": {"value": 20000}},
                       "out_dir": self.out}, f)
        p = self.start([TRAINER, "--sweep", cfg])
        self.wait_for(lambda: self.started_attempts() > 0)
        os.kill(p.pid, signal.SIGINT)
        time.sleep(0.5)
        self.assertIsNone(p.poll(), "the first SIGINT did not wait for the trial's report")
        t0 = time.time()
        os.kill(p.pid, signal.SIGINT)
        self.finish(p, timeout=30, expect=-signal.SIGINT)
        self.assertLess(time.time() - t0, 5)

    def test_sigterm_to_mpirun_leaves_no_trial_process(self):
        cfg = self.config([1, 2, 3], mode="orphans")
        p = self.start([XPSCALE, "run", cfg, "--kill-grace", "1"], ranks=2)
        self.wait_for_orphans(8)
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        self.finish(p, timeout=60, expect=None)
        self.assert_tree_gone_within(1 + 2, t0)
        self.wait_for(lambda: marker_pids(self.marker) == [], timeout=30)

    def test_kill_9_of_a_rank_leaves_no_trial_process_and_the_sweep_resumes(self):
        cfg = self.config([1, 2, 3], mode="orphans")
        p = self.start([XPSCALE, "run", cfg, "--kill-grace", "1"], ranks=2)
        self.wait_for_orphans(8)
        ranks = self.rank_pids()
        self.assertEqual(sorted(ranks), [0, 1], ranks)
        t0 = time.time()
        os.kill(ranks[1], signal.SIGKILL)
        self.assert_tree_gone_within(1 + 2, t0)
        self.finish(p, timeout=60, expect=None)
        self.wait_for(lambda: marker_pids(self.marker) == [], timeout=30)
        # The resumed sweep (now with trials that end) runs every trial once more.
        cfg = self.config([1, 2, 3], mode="ok")
        self.run_cmd([XPSCALE, "run", cfg, "--force"], ranks=2)
        self.assertEqual(set(self.statuses().values()), {"completed"})

    # -- hung ranks ------------------------------------------------------
    def test_a_trial_that_exited_in_time_is_not_failed_when_its_rank_was_stopped(self):
        cfg = self.config([1], ms=100, steps=5, resources={"time_limit": "2s"})
        p = self.start([XPSCALE, "run", cfg])
        self.wait_for(lambda: self.started_attempts() > 0)
        os.kill(p.pid, signal.SIGSTOP)  # the trial (0.5 s) ends while its rank is stopped
        time.sleep(3)
        os.kill(p.pid, signal.SIGCONT)
        self.finish(p)
        self.assertEqual(self.statuses(), {0: "completed"}, self.attempts())

    def test_idle_ranks_and_finished_groups_are_not_lost(self):
        # The group that reaches the target is told "done" at once and its
        # rank stops its heartbeats while the others still run.
        cfg = self.config([3, 10, 11], ms=500, steps=6,
                          metric={"name": "loss", "goal": "minimize", "target": 0.5})
        self.run_cmd([XPSCALE, "run", cfg, "--heartbeat-timeout", "1"], ranks=3)
        # An idle rank (3 ranks, groups of 2) sends no heartbeat at all.
        self.out = os.path.join(self.tmp, "out-idle")
        cfg = self.config([1], ms=500, steps=4, name="idle.yaml",
                          resources={"ranks_per_trial": 2})
        _, err = self.run_cmd([XPSCALE, "run", cfg, "--heartbeat-timeout", "1"], ranks=3)
        self.assertIn("stay idle", err)

    def test_a_stopped_rank_is_lost_the_job_ends_with_5_and_the_sweep_resumes(self):
        cfg = self.config(list(range(6)), ms=300, steps=8)
        p = self.start([XPSCALE, "run", cfg, "--heartbeat-timeout", "2", "--kill-grace", "1"],
                       ranks=3)
        self.wait_for(lambda: len(self.rank_pids()) == 3 and self.started_attempts() >= 3)
        stopped = self.rank_pids()[2]
        os.kill(stopped, signal.SIGSTOP)
        t0 = time.time()
        try:
            _, err = self.finish(p, timeout=120, expect=5)
        finally:
            try:
                os.kill(stopped, signal.SIGCONT)
            except OSError:
                pass
        self.assertLess(time.time() - t0, 30, "the lost rank was not noticed within seconds")
        self.assertIn("rank 2 on", err)
        self.assertIn("sent no heartbeat", err)
        self.wait_for(lambda: marker_pids(self.marker) == [], timeout=30)
        lost = [a for a in self.attempts() if a["status"] == "lost"]
        self.assertEqual(len(lost), 1, self.attempts())
        self.assertNotIn("running", [a["status"] for a in self.attempts()])
        self.run_cmd([XPSCALE, "run", cfg], ranks=2)
        self.assertEqual(set(self.statuses().values()), {"completed"})
        done = [a for a in self.attempts() if a["status"] == "completed"]
        self.assertEqual(sorted(a["trial"] for a in done), list(range(6)), "a trial ran twice")


if __name__ == "__main__":
    unittest.main()
