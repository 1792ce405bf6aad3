"""A unittest base for tests that run sweeps: a temporary out_dir, a marker
in the environment of everything the test starts (so that what is left can
be found and killed), and Open MPI's settings to run as root."""
import os
import signal
import tempfile
import unittest
import uuid

from processes import marker_pids

MPI = ["mpiexec", "--allow-run-as-root", "--oversubscribe"]


class SweepCase(unittest.TestCase):
    tmp_prefix = "sweep-"

    def setUp(self):
        base = os.environ.get("XPSCALE_TEST_TMP") or None
        self.tmp = tempfile.mkdtemp(prefix=self.tmp_prefix, dir=base)
        self.out = os.path.join(self.tmp, "out")
        self.marker = uuid.uuid4().hex
        self.env = dict(os.environ, XPSCALE_TEST_MARKER=self.marker,
                        OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                        OMPI_MCA_rmaps_base_oversubscribe="1")

    def tearDown(self):
        for pid in marker_pids(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
