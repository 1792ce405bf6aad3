"""The command line against hostile or absurd input: configs that never end,
that block, that are huge or slow to parse, numbers no one means, and a
config edited only in its comments. Every refusal is a user error: exit
status 2 and a message that names what and where, never a hang, a crash or
gigabytes of memory.

Environment: XPSCALE_BIN (the xpscale command), XPSCALE_TEST_TMP (a temporary
directory; optional).
"""
import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import tempfile
import textwrap
import time
import unittest

XPSCALE = os.environ["XPSCALE_BIN"]
USER_ERROR = 2
# A refusal is immediate; a command that reads /dev/zero or waits on a FIFO
# runs into this instead.
QUICK_S = 30
# Address space allowed to a command that must refuse its input without
# reading it all: /dev/zero once made `xpscale plan` grow to 1.9 GB.
MEMORY_CAP = 1 << 30
MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


class InputLimitsTest(unittest.TestCase):
    def setUp(self):
        base = os.environ.get("XPSCALE_TEST_TMP") or None
        self.tmp = tempfile.mkdtemp(prefix="input-limits-", dir=base)
        self.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                        OMPI_MCA_rmaps_base_oversubscribe="1")

    # -- helpers ---------------------------------------------------------
    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def xpscale(self, *args, timeout=QUICK_S, expect=USER_ERROR, memory_cap=True):
        cmd = [XPSCALE] + [str(a) for a in args]
        try:
            p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL,
                               preexec_fn=limit_memory if memory_cap else None)
        except subprocess.TimeoutExpired:
            self.fail("%s did not finish within %d s" % (" ".join(cmd), timeout))
        if expect is not None and p.returncode != expect:
            self.fail("%s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                      (" ".join(cmd), p.returncode, expect, p.stdout[-3000:], p.stderr[-3000:]))
        return p

    def assert_refused(self, p, *fragments):
        for fragment in fragments:
            self.assertIn(fragment, p.stderr)
        self.assertNotIn("terminate called", p.stderr)

    # -- the config file -------------------------------------------------
    def test_plan_refuses_dev_zero_without_reading_it(self):
        p = self.xpscale("plan", "/dev/zero")
        self.assert_refused(p, "/dev/zero: is a character device; a sweep config must be a "
                            "regular file")

    def test_plan_and_run_refuse_a_fifo_without_blocking(self):
        fifo = self.path("sweep.yaml")
        os.mkfifo(fifo)
        for command in ("plan", "run"):
            p = self.xpscale(command, fifo)
            self.assert_refused(p, fifo + ": is a pipe or FIFO; a sweep config must be a "
                                "regular file", "process substitution")

    def test_plan_refuses_process_substitution(self):
        # What bash's <(...) hands over: /dev/fd/N, a pipe.
        r, w = os.pipe()
        try:
            os.write(w, b"method: grid\nparameters:\n  a: {value: 1}\n")
            os.close(w)
            w = None
            cmd = [XPSCALE, "plan", "/dev/fd/%d" % r]
            p = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                               timeout=QUICK_S, pass_fds=(r,))
        finally:
            os.close(r)
            if w is not None:
                os.close(w)
        self.assertEqual(p.returncode, USER_ERROR, p.stderr)
        self.assert_refused(p, "/dev/fd/%d: is a pipe or FIFO" % r)

    def test_plan_refuses_a_config_over_the_cap_by_name(self):
        path = self.path("huge.yaml")
        with open(path, "w") as f:
            f.write("method: grid\nparameters:\n  a: {value: 1}\n")
            f.write("#" * (16 << 20) + "\n")
        p = self.xpscale("plan", path)
        self.assert_refused(p, path + ": the sweep config is", "larger than 16 MiB (16777216 bytes)")

    def test_plan_refuses_a_directory(self):
        p = self.xpscale("plan", self.tmp)
        self.assert_refused(p, self.tmp + ": is a directory")


    def test_plan_loads_half_a_million_values_in_linear_time(self):
        # Once 212 s: a scan of the values so far for each value.
        path = self.path("values.yaml")
        with open(path, "w") as f:
            f.write("method: random\ntrials: 1\nparameters:\n  x:\n    values:\n")
            f.writelines("      - %d\n" % i for i in range(500000))
        start = time.monotonic()
        p = self.xpscale("plan", path, expect=0, timeout=60, memory_cap=False)
        self.assertLess(time.monotonic() - start, 20)
        self.assertIn("1 trial", p.stdout)

    # -- counts in the config --------------------------------------------
    def test_plan_refuses_an_absurd_trial_count_by_place(self):
        for key, column in (("trials", 9), ("run_cap", 10)):
            path = self.write("sweep.yaml", "method: random\n%s: 9000000000000000000\n"
                              "parameters:\n  a: {min: 0.0, max: 1.0}\n" % key)
            p = self.xpscale("plan", path)
            self.assert_refused(p, "%s:2:%d: %s: expected at most 10000000, got "
                                "9000000000000000000" % (path, column, key))

    # -- numbers on the command line -------------------------------------
    def sweep(self):
        return self.write("ok.yaml", json.dumps({
            "method": "grid", "parameters": {"a": {"value": 1}}, "command": ["/bin/true"],
            "out_dir": self.path("out")}))

    def test_run_refuses_out_of_range_numbers(self):
        cfg = self.sweep()
        cases = [
            (["--progress-interval", "0"], "--progress-interval must be a number of seconds in "
             "(0, 86400], got 0"),
            (["--progress-interval", "nan"], "--progress-interval must be a number of seconds"),
            (["--kill-grace", "1e308"], "--kill-grace must be a number of seconds in [0, 86400], "
             "got 1e+308"),
            (["--kill-grace", "inf"], "--kill-grace must be a number of seconds"),
            (["--preempt-grace", "nan"], "--preempt-grace must be a number of seconds"),
            (["--stop-grace", "-1"], "--stop-grace must be a number of seconds"),
            (["--array-size", "-3"], "--array-size must be in [0, 10000000] (0: no job array), "
             "got -3"),
            (["--array-size", "4", "--array-task", "7"], "--array-task must be in [0, 4) for "
             "--array-size 4, got 7"),
            (["--array-size", "4", "--array-task", "-1"], "--array-task must be in [0, 4)"),
            (["--trials", "9000000000000000000"], "--trials must be in [1, 10000000]"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = self.xpscale("run", cfg, "--quiet", *args, timeout=120, memory_cap=False)
                self.assert_refused(p, message)
                self.assertFalse(os.path.exists(self.path("out")), "the refused run wrote a store")

    def test_run_refusal_is_said_once_across_ranks(self):
        p = subprocess.run(MPI + ["-n", "2", XPSCALE, "run", self.sweep(), "--array-size", "-3"],
                           env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, USER_ERROR, p.stderr)
        self.assertEqual(p.stderr.count("--array-size must be in"), 1, p.stderr)

    def test_slurm_render_refuses_absurd_numbers(self):
        cfg = self.sweep()
        cases = [
            (["--time", "99999999999"], "--time '99999999999' is more than 365 days"),
            (["--time", "1-24:00:00"], "hours after a day count are < 24"),
            (["--signal-grace", "70000"], "--signal-grace must be in [1, 65535], got 70000"),
            (["--array", "5000000"], "--array must be in [0, 4000000], got 5000000"),
            (["--nodes", "0"], "--nodes must be in [1, 100000], got 0"),
            (["--gpus-per-node", "-1"], "--gpus-per-node must be in [0, 4096], got -1"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.assert_refused(self.xpscale("slurm", "render", cfg, *args), message)
        p = self.xpscale("slurm", "render", cfg, "--time", "365-00:00:00", expect=0)
        self.assertIn("--time=365-00:00:00", p.stdout)

    def test_plan_refuses_absurd_trials_and_ranks_flags(self):
        cfg = self.sweep()
        self.assert_refused(self.xpscale("plan", cfg, "--trials", "99999999999"),
                            "plan: --trials must be in [0, 10000000], got 99999999999")
        self.assert_refused(self.xpscale("plan", cfg, "--ranks", "0"),
                            "plan: --ranks must be in [1, 2147483647], got 0")


    # -- the same sweep, edited ------------------------------------------
    SWEEP = textwrap.dedent("""\
        # a grid of two
        method: grid
        parameters:
          a: {values: [1, 2]}
        command: [/bin/true]
        out_dir: %s
        """)

    def store(self):
        return sqlite3.connect(os.path.join(self.path("out"), "xpscale.db"))

    def run_sweep(self, text, *args, expect=0):
        cfg = self.write("grid.yaml", text % self.path("out"))
        return self.xpscale("run", cfg, *args, expect=expect, timeout=120, memory_cap=False)

    def test_comment_only_edit_resumes_the_same_sweep(self):
        self.run_sweep(self.SWEEP)
        edited = ("# edited: comments, quotes, key order, layout\nout_dir: '%s'\n"
                  "command:\n  - /bin/true   # still\nparameters:\n  a:\n    values:\n"
                  "      - 1\n      - 2\nmethod: \"grid\"\n")
        p = self.run_sweep(edited)
        self.assertIn("resuming sweep", p.stderr)
        self.assertIn("2 already finished", p.stderr)
        with self.store() as con:
            self.assertEqual(con.execute("SELECT count(*) FROM attempts").fetchone()[0], 2)

    def test_real_change_is_refused_naming_the_first_difference(self):
        self.run_sweep(self.SWEEP)
        p = self.run_sweep(self.SWEEP.replace("[1, 2]", "[1, 3]"), expect=USER_ERROR)
        self.assert_refused(p, "holds the store of a different sweep config",
                            "parameters.a.values[1]: 2 -> 3", "--force")
        p = self.run_sweep(self.SWEEP.replace("method: grid", "method: grid\nseed: 4"),
                           expect=USER_ERROR)
        self.assert_refused(p, "seed: added 4")

    def test_store_from_before_canonical_hashes_is_still_the_same_sweep(self):
        self.run_sweep(self.SWEEP)
        # What earlier versions stored: sha256 of the config's bytes.
        text = self.SWEEP % self.path("out")
        with self.store() as con:
            con.execute("UPDATE sweep SET config_hash = ?",
                        (hashlib.sha256(text.encode()).hexdigest(),))
        p = self.run_sweep(self.SWEEP)
        self.assertIn("2 already finished", p.stderr)
        # ... and after that run it holds the canonical hash, which a
        # comment edit keeps matching.
        p = self.run_sweep("# a new comment\n" + self.SWEEP)
        self.assertIn("2 already finished", p.stderr)


if __name__ == "__main__":
    unittest.main()
