#!/usr/bin/env python3
"""A trial that reports `loss` every --every seconds for --steps steps, so
that a test can watch a sweep while it runs (the dashboard's tests)."""
import json
import os
import sys
import time


def main():
    args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
    steps, every, x = int(args.get("steps", 5)), float(args.get("every", 0.2)), float(args["x"])
    out = os.fdopen(int(os.environ["XPSCALE_METRICS_FD"]), "w", buffering=1)
    for step in range(steps):
        time.sleep(every)
        print(json.dumps({"step": step, "loss": (x - 0.3) ** 2 + 1.0 / (step + 1)}), file=out)


if __name__ == "__main__":
    main()
