#!/usr/bin/env python3
"""A PBT member written with xpscale.trial(): a checkpoint and a report per
step, should_stop() after each report. When PBT exploits it, it records
what it saw (the reason) in its trial directory and ends by itself; the
next attempt records the parameters and the resume step it was started
with (the donor's)."""
import json
import os
import time

import xpscale


def main():
    trial = xpscale.trial()
    p = trial.params
    trial_dir = os.environ["XPSCALE_TRIAL_DIR"]
    start = trial.resume_step() + 1
    with open(os.path.join(trial_dir, f"start-attempt{trial.attempt}.json"), "w") as f:
        json.dump({"x": p["x"], "start": start}, f)
    for step in range(start, p["steps"] + 1):
        time.sleep(p["ms"] / 1000.0)
        trial.checkpoint_saved(step)
        trial.report(step=step, loss=(p["x"] - 3) ** 2 + step / 100.0)
        if trial.should_stop():
            with open(os.path.join(trial_dir, f"stop-attempt{trial.attempt}.json"), "w") as f:
                json.dump({"reason": trial.stop_reason, "step": step}, f)
            return


if __name__ == "__main__":
    main()
