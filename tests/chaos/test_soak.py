"""The soak (issue 20): a 2000-trial sweep on 4 ranks, 10 kill -9s of a
random rank at random points, each followed by a resume. Every trial must
complete exactly once, no process may outlive its run, and the store must
pass SQLite's integrity check. Prints one JSON line with the figures.

Environment (set by CMake): XPSCALE_TRAINER, XPSCALE_TEST_TMP.
"""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from processes import marker_pids  # noqa: E402  (tests/pylib)

TRAINER = os.environ["XPSCALE_TRAINER"]
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]
TRIALS, RANKS, KILLS = 2000, 4, 10


class SoakTest(unittest.TestCase):
    def test_kill_9_of_random_ranks_during_a_2000_trial_sweep_loses_and_repeats_nothing(self):
        tmp = tempfile.mkdtemp(prefix="soak-", dir=os.environ.get("XPSCALE_TEST_TMP") or None)
        out = os.path.join(tmp, "out")
        marker = uuid.uuid4().hex
        env = dict(os.environ, XPSCALE_TEST_MARKER=marker, OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
        cfg = os.path.join(tmp, "soak.yaml")
        with open(cfg, "w") as f:
            json.dump({"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                       "parameters": {"x": {"values": list(range(TRIALS))}, "ms": {"value": 10}},
                       "out_dir": out}, f)
        db = os.path.join(out, "xpscale.db")
        rng = random.Random(int(os.environ.get("XPSCALE_SOAK_SEED", "20")))

        def completed():
            try:
                con = sqlite3.connect(db, timeout=30)
                try:
                    return con.execute(
                        "SELECT count(*) FROM trials WHERE status = 'completed'").fetchone()[0]
                finally:
                    con.close()
            except sqlite3.Error:
                return 0

        def ranks():
            found = {}
            for pid in marker_pids(marker):
                try:
                    with open("/proc/%d/environ" % pid, "rb") as f:
                        e = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                except OSError:
                    continue
                if b"OMPI_COMM_WORLD_RANK" in e and os.path.basename(
                        os.readlink("/proc/%d/exe" % pid)) == os.path.basename(TRAINER):
                    found[int(e[b"OMPI_COMM_WORLD_RANK"])] = pid
            return found

        t0 = time.time()
        kills = 0
        for _ in range(KILLS):
            before = completed()
            p = subprocess.Popen(MPI + ["-n", str(RANKS), TRAINER, "--sweep", cfg, "--quiet"],
                                 env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            wanted = before + rng.randint(5, 50)
            deadline = time.time() + 120
            while completed() < wanted and p.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            victims = ranks()
            if os.environ.get("XPSCALE_SOAK_DEBUG"):
                print("before", before, "wanted", wanted, "now", completed(), "poll", p.poll(),
                      "victims", victims, file=sys.stderr)
            if p.poll() is None and victims:
                os.kill(victims[rng.choice(sorted(victims))], signal.SIGKILL)
                kills += 1
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                self.fail("mpirun did not end after a rank was killed")
            end = time.time() + 10
            while marker_pids(marker) and time.time() < end:
                time.sleep(0.05)
            self.assertEqual(marker_pids(marker), [], "processes outlived the killed run")
        final = subprocess.run(MPI + ["-n", str(RANKS), TRAINER, "--sweep", cfg, "--quiet"],
                               env=env, capture_output=True, text=True, timeout=600)
        self.assertEqual(final.returncode, 0, final.stderr[-3000:])
        self.assertEqual(marker_pids(marker), [])

        con = sqlite3.connect(db)
        statuses = dict(con.execute("SELECT status, count(*) FROM trials GROUP BY status"))
        per_trial = con.execute(
            "SELECT trial, count(*) FROM attempts WHERE status = 'completed' GROUP BY trial").fetchall()
        interrupted = con.execute(
            "SELECT count(*) FROM attempts WHERE status = 'interrupted'").fetchone()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        # Every attempt of a trial that did not complete, for the failure message.
        not_completed = con.execute(
            "SELECT a.trial, a.attempt, a.run, a.status, a.reason FROM attempts a JOIN trials t "
            "ON t.id = a.trial WHERE t.status != 'completed' ORDER BY a.trial, a.attempt").fetchall()
        con.close()
        print(json.dumps({"soak": "kill9", "trials": TRIALS, "ranks": RANKS, "kills": kills,
                          "runs": runs, "interrupted_attempts": interrupted,
                          "completed": statuses.get("completed", 0),
                          "twice": sum(1 for _, n in per_trial if n != 1),
                          "orphans": len(marker_pids(marker)), "integrity": integrity,
                          "wall_s": round(time.time() - t0, 1)}))
        self.assertEqual(kills, KILLS, "the sweep ended before it could be killed")
        self.assertEqual(statuses, {"completed": TRIALS}, not_completed)
        self.assertEqual(len(per_trial), TRIALS)
        self.assertTrue(all(n == 1 for _, n in per_trial), "a trial completed twice")
        self.assertEqual(integrity, "ok")


if __name__ == "__main__":
    unittest.main()
