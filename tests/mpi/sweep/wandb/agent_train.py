"""The W&B idiom of a function handed to wandb.agent (flat params)."""
import wandb


def train():
    with wandb.init(project="p", config={"lr": 0.01, "epochs": 9}) as run:
        lr = wandb.config["lr"]
        for epoch in range(run.config["epochs"]):
            # Worse lr, worse loss at every epoch: Hyperband stops those first.
            run.log({"val_loss": (lr - 0.3) ** 2 + 1.0 / (epoch + 1), "epoch": epoch})


sweep_id = wandb.sweep({"method": "random"}, project="p")
wandb.agent(sweep_id, train, count=1)
