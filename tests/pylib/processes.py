"""Process helpers shared by the Python tests (added to sys.path by them)."""
import os


def marker_pids(marker):
    """Live processes (not zombies) whose environment holds
    XPSCALE_TEST_MARKER=marker: a test's sweep and everything it started."""
    found = []
    needle = ("XPSCALE_TEST_MARKER=" + marker).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if needle in f.read().split(b"\0"):
                    with open("/proc/%s/stat" % pid) as s:
                        if s.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(pid))
        except OSError:
            pass
    return found
