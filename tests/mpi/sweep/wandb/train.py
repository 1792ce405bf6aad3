"""A W&B sweep script as users write it (nothing of xpscale in it): a
quadratic in the learning rate, logged once per epoch."""
import wandb

import wandb_test_helper  # from the user's own PYTHONPATH, kept after the shim

run = wandb.init(project="p", config={"optimizer": {"lr": 0.01}, "epochs": 3})
lr = wandb.config.optimizer["lr"]
assert wandb.config["optimizer"]["lr"] == run.config.optimizer["lr"] == lr
for epoch in range(wandb.config.epochs):
    wandb.log({"val_loss": wandb_test_helper.loss(lr, epoch), "epoch": epoch,
               "samples": wandb.Table(columns=["x"])})
wandb.finish()
