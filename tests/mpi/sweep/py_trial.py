#!/usr/bin/env python3
"""An external trial written with the Python trial API (xpscale.trial()),
as a user writes one: nested params, reports per step, a checkpoint per
step, resume from it. With crash_at=N the first attempt exits 5 right
after checkpointing step N, so the retry must resume at N + 1.
"""
import json
import os
import sys

import xpscale


def main():
    trial = xpscale.trial({"crash_at": -1})
    p = trial.params
    x, steps = p["model"]["x"], p["steps"]
    start = trial.resume_step() + 1
    if trial.is_leader:
        with open(os.path.join(trial.checkpoint_dir, f"attempt{trial.attempt}.json"), "w") as f:
            json.dump({"start": start, "params": p, "world_size": trial.world_size,
                       "version": xpscale.__version__}, f)
    for step in range(start, steps):
        loss = (x - 3) ** 2 + step / 100.0
        if trial.is_leader:
            trial.checkpoint_saved(step)
            trial.report(step=step, loss=loss, x=x)
        if step == p["crash_at"] and trial.attempt == 1 and trial.is_leader:
            sys.exit(5)


if __name__ == "__main__":
    main()
