#!/usr/bin/env python3
"""A training script written for W&B Sweeps, run by xpscale unchanged.

Under `xpscale run examples/sweeps/wandb_script.yaml` its `import wandb` is
xpscale's shim (or the real wandb, wrapped, where it is installed):
wandb.config holds the trial's parameters and every wandb.log() is an
xpscale report. Standard library only, so any Python runs it.
"""
import math

import wandb


def main():
    run = wandb.init(project="demo", config={"optimizer": {"lr": 0.01, "momentum": 0.0},
                                             "epochs": 8})
    lr = wandb.config.optimizer["lr"]            # the trial's value, not the default
    momentum = wandb.config["optimizer"]["momentum"]
    x, v = 5.0, 0.0                              # minimise f(x) = x^2 / 2 + cos(3x)
    for epoch in range(wandb.config.epochs):
        for _ in range(20):
            grad = x - 3 * math.sin(3 * x)
            v = momentum * v - lr * grad
            x += v
        wandb.log({"val_loss": x * x / 2 + math.cos(3 * x), "epoch": epoch})
    run.summary["final_x"] = x
    wandb.finish()


if __name__ == "__main__":
    main()
