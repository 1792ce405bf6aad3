#!/usr/bin/env python3
"""An external trial for the sweep runtime's tests; behaviour from --mode.

ok (or any other mode) reports `steps` metrics lines (loss = (x-3)^2 + step/100) and exits 0
crash   writes to stderr and exits with status 3
hang    starts a grandchild in its own session (setsid sleep) and sleeps
flaky   exits 4 on its first attempt, behaves like ok on later ones
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "python"))
import xpscale.report as xpscale_report  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--x", type=float, default=0.0)
    ap.add_argument("--ms", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()

    env = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                                          "MASTER_ADDR", "MASTER_PORT", "XPSCALE_TRIAL_ID")}
    with open(os.path.join(os.environ["XPSCALE_TRIAL_DIR"], "env.rank%s.json" % env["RANK"]), "w") as f:
        json.dump(env, f)

    if a.mode == "crash":
        print("ext_trial: crashing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    if a.mode == "hang":
        subprocess.Popen(["setsid", "sleep", "1000"])
        subprocess.Popen(["sleep", "1001"])
        print("ext_trial: hanging", file=sys.stderr, flush=True)
        time.sleep(1000)
    if a.mode == "flaky" and os.environ.get("XPSCALE_ATTEMPT") == "1":
        print("ext_trial: flaky first attempt", file=sys.stderr, flush=True)
        sys.exit(4)
    start = xpscale_report.resume_step() + 1
    for step in range(start, a.steps + 1):
        time.sleep(a.ms / 1000.0)
        if xpscale_report.is_leader():  # the ranks share the checkpoint dir
            xpscale_report.checkpoint_saved(step)
            xpscale_report.report(step=step, loss=(a.x - 3) ** 2 + step / 100.0)


if __name__ == "__main__":
    main()
