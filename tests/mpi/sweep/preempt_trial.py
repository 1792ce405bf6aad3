#!/usr/bin/env python3
"""An external trial for the preemption tests: one step per --ms, a
checkpoint marker each step. --on-usr1 says what SIGUSR1 does:
  checkpoint  note it, finish the current step, write usr1.<attempt> and exit 0
  ignore      SIG_IGN (xpscale must end it with SIGTERM after the grace)
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "python"))
import xpscale.report as xpscale_report  # noqa: E402

got = []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--on-usr1", default="checkpoint")
    ap.add_argument("--ms", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--x", type=float, default=0.0)
    a = ap.parse_args()
    if a.on_usr1 == "ignore":
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
    for step in range(xpscale_report.resume_step() + 1, a.steps + 1):
        time.sleep(a.ms / 1000.0)
        xpscale_report.checkpoint_saved(step)
        xpscale_report.report(step=step, loss=(a.x - 3) ** 2 + step / 100.0)
        if got:
            path = os.path.join(os.environ["XPSCALE_TRIAL_DIR"],
                                "usr1." + os.environ["XPSCALE_ATTEMPT"])
            with open(path, "w") as f:
                f.write("%d\n" % step)
            return


if __name__ == "__main__":
    main()
