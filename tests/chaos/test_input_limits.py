"""The command line against hostile or absurd input: configs that never end,
that block, that are huge or slow to parse, numbers no one means, and a
config edited only in its comments. Every refusal is a user error: exit
status 2 and a message that names what and where, never a hang, a crash or
gigabytes of memory.

Environment: XPSCALE_BIN (the xpscale command), XPSCALE_TEST_TMP (a temporary
directory; optional).
"""
import json
import os
import resource
import sqlite3
import subprocess
import sys
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


if __name__ == "__main__":
    unittest.main()
