#!/usr/bin/env python3
"""An external trial that polls xpscale's should_stop() after every report
and, once stopped, records what it saw and ends by itself (a user would
save a last checkpoint there). Without a stop it runs for about a minute,
far past the runtime's wait."""
import json
import os
import time

import xpscale


def main():
    trial = xpscale.trial()
    x = trial.params["x"]
    for step in range(1200):
        if trial.is_leader:
            trial.report(step=step, loss=abs(x) + 1.0 / (step + 1))
        if trial.should_stop():
            path = os.path.join(trial.checkpoint_dir, f"stopped.rank{trial.rank}.json")
            with open(path, "w") as f:
                json.dump({"step": step, "reason": trial.stop_reason}, f)
            return
        time.sleep(0.05)


if __name__ == "__main__":
    main()
