#!/usr/bin/env python3
"""An external trial for the chaos tests; behaviour from --mode.

ok       reports --steps metrics lines, --ms apart, and exits 0
nest     first writes one metrics line of 100,000 nested '[' (and a line with
         terminal escapes), then behaves like ok
flood    writes --lines lines that are not JSON, then one report, then exits 0
fail_unless  exits 3 unless the file --allow exists, else behaves like ok
orphans  starts a tree that outlives a plain kill of the trial: a background
         `sleep`, a setsid double-forked daemon, a child that ignores SIGTERM,
         then reports and sleeps until killed
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time


def report(step, **values):
    fd = int(os.environ["XPSCALE_METRICS_FD"])
    values["step"] = step
    os.write(fd, (json.dumps(values) + "\n").encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--x", type=float, default=0.0)
    ap.add_argument("--ms", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lines", type=int, default=100000)
    ap.add_argument("--allow", default="")
    a = ap.parse_args()
    fd = int(os.environ["XPSCALE_METRICS_FD"])

    if a.mode == "fail_unless" and not os.path.exists(a.allow):
        print("chaos_trial: %s does not exist" % a.allow, file=sys.stderr)
        sys.exit(3)
    if a.mode == "nest":
        os.write(fd, b"[" * 100000 + b"\n")
        os.write(fd, b'{"loss": "\x1b[2J\x1b]0;pwned\x07"\n')
    if a.mode == "flood":
        line = b"not json \x1b[31m red \x1b[0m\n"
        with os.fdopen(os.dup(fd), "wb", buffering=1 << 20) as f:
            for _ in range(a.lines):
                f.write(line)
    if a.mode == "orphans":
        subprocess.Popen(["sleep", "1000"])  # a plain background child
        # A daemon: double fork and setsid, so it leaves the process group and
        # its parent exits at once (it is reparented).
        subprocess.Popen(["setsid", "-f", "sleep", "1001"])
        # A child that ignores SIGTERM.
        subprocess.Popen([sys.executable, "-c",
                          "import signal,time\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                          "time.sleep(1002)"])
        report(0, loss=(a.x - 3) ** 2)
        with open(os.path.join(os.environ["XPSCALE_TRIAL_DIR"], "started.rank%s" % os.environ["RANK"]),
                  "w") as f:
            f.write(str(os.getpid()))
        time.sleep(1000)
    for step in range(1, a.steps + 1):
        time.sleep(a.ms / 1000.0)
        if os.environ.get("RANK", "0") == "0":
            report(step, loss=(a.x - 3) ** 2 + step / 100.0)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
