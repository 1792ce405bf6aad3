#!/usr/bin/env python3
"""Fashion-MNIST MLP as an external xpscale trial: PyTorch, DistributedDataParallel
over gloo, training data streamed from tar shards (file://, s3://, http://)
through xpscale.data; the same task as the C++ example (examples/fashion_mnist).

Every rank of the trial's group runs this script. xpscale sets RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT (torch.distributed's env:// reads them), the
trial's parameters, its checkpoint directory and, from the sweep config's
data: section, the training shards (XPSCALE_DATA).

Parameters (from the sweep, or --name=value by hand): lr, hidden, batch_size
(global: each rank takes batch_size / WORLD_SIZE samples of every step),
epochs, momentum, seed, workers (DataLoader worker processes per rank; 0:
batches are made in the training process, by the loader's C++ threads),
checkpoint_every (also checkpoint every that many steps; 0: per epoch only),
train (the shards when the config has no data: section), data_dir (the IDX
files of the validation and test sets).

Per epoch the leader reports loss, val_loss, val_accuracy, test_accuracy,
epoch_s and stall (the share of the epoch spent waiting for data), and saves
a checkpoint that holds the model, the optimizer and the loader's position:
a resumed trial continues with the next sample it had not trained on. When
the scheduler stops the trial (ASHA, Hyperband), every rank ends after the
epoch's report.

Make the shards once, then train by hand on one rank:
  build/launcher/xpscale shard /usr/share/datasets/fashion-mnist --split train \\
      --range 0:55000 --out /tmp/fmnist --shards 16
  /usr/bin/python3 examples/pytorch/train.py --train=/tmp/fmnist/train.manifest.json --epochs=1
"""
import collections
import datetime
import gzip
import os
import struct
import sys
import time

import xpscale  # scripts/setup puts the package on /usr/bin/python3's path
from xpscale.data import DataLoader, ShardedDataset

try:
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
except ImportError as e:
    sys.exit(f"train.py: {sys.executable}: {e}; install Debian's python3-torch and "
             "python3-numpy and run this script with /usr/bin/python3")

DEFAULTS = {
    "lr": 0.05,
    "hidden": 128,
    "batch_size": 64,
    "epochs": 5,
    "momentum": 0.9,
    "seed": 0,
    "workers": 0,
    "checkpoint_every": 0,
    "train": "",
    "data_dir": os.environ.get("XPSCALE_FMNIST_DIR") or "/usr/share/datasets/fashion-mnist",
}
VALIDATION = 5000  # the last 5000 training images; the shards hold the first 55000
MEAN, STD = 0.2860, 0.3530  # of Fashion-MNIST's training pixels in [0, 1]


class UsageError(Exception):
    pass


def read_idx(path):
    """An IDX file (plain or gzip) of unsigned bytes as a numpy array."""
    if not os.path.isfile(path) and os.path.isfile(path + ".gz"):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UsageError(f"{path}: cannot read: {e}; install Debian's dataset-fashion-mnist "
                         "or set data_dir") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UsageError(f"{path}: not an IDX file of unsigned bytes")
    ndims = data[3]
    dims = struct.unpack(f">{ndims}I", data[4:4 + 4 * ndims])
    if len(data) - 4 - 4 * ndims != int(np.prod(dims)):
        raise UsageError(f"{path}: dims {dims} do not match the file's size")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def held_out(data_dir):
    """(validation, test) as (float32 images N x 784, int64 labels), in memory."""
    def pair(prefix, begin=0):
        images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"))[begin:]
        labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"))[begin:]
        x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32))
        return (x / 255.0 - MEAN) / STD, torch.from_numpy(labels.astype(np.int64))
    x, y = pair("train", begin=60000 - VALIDATION)
    return (x, y), pair("t10k")


# A shard sample holds 784 pixel bytes (.u8) and the label as text (.cls):
# fixed-size fields, which ShardedDataset.batched turns into arrays of a whole
# batch in C++ (no Python object per sample).
FIELDS = {"u8": (np.uint8, 784), "cls": int}


class Mlp(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


# The tensors of the last collectives, kept alive past destroy_process_group.
# torch 1.13's ProcessGroupGloo destructor joins its worker threads while it
# holds the GIL, and a worker that drops the last reference to a tensor made
# in Python needs the GIL to free it: if the ranks' last all_reduce leaves
# that reference to a worker, the process hangs at exit (pytorch/pytorch
# #56297; fixed in later torch by releasing the GIL there). This was the
# hang after the last epoch that kept this example out of the tests.
_LAST_COLLECTIVES = collections.deque(maxlen=8)


def all_reduce(values, world, op=None):
    t = torch.tensor(values, dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        _LAST_COLLECTIVES.append(t)
    return t.tolist()


def evaluate(model, split, rank, world):
    """(mean loss, accuracy) over split; each rank takes a contiguous part."""
    x, y = split
    begin, end = len(x) * rank // world, len(x) * (rank + 1) // world
    with torch.no_grad():
        logits = model(x[begin:end])
        loss = F.cross_entropy(logits, y[begin:end], reduction="sum").item()
        correct = (logits.argmax(1) == y[begin:end]).sum().item()
    loss, correct = all_reduce([loss, correct], world)
    return loss / len(x), correct / len(x)


def save_checkpoint(trial, step, state):
    """The leader writes the step's file (temporary file + os.replace), marks it
    complete, and drops older ones."""
    directory = trial.checkpoint_dir
    path = os.path.join(directory, f"step-{step:09d}.pt")
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)
    trial.checkpoint_saved(step)
    for name in os.listdir(directory):
        if name.startswith("step-") and name.endswith(".pt") and name < os.path.basename(path):
            os.unlink(os.path.join(directory, name))


def load_checkpoint(trial, rank, world):
    """The leader's checkpoint, broadcast to every rank (the directory need not
    be on a file system every node sees); None on a fresh start."""
    step = trial.resume_step()
    box = [None]
    if rank == 0 and step >= 0:
        box[0] = torch.load(os.path.join(trial.checkpoint_dir, f"step-{step:09d}.pt"))
    if world > 1:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def main():
    trial = xpscale.trial(DEFAULTS)
    p = trial.params
    rank, world = trial.rank, trial.world_size
    if "OMP_NUM_THREADS" not in os.environ:
        # Ranks of a node share its cores; torch would take them all in every rank.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, trial.local_world_size)))
    if p["batch_size"] < world or p["batch_size"] % world:
        raise UsageError(f"batch_size {p['batch_size']} must be a positive multiple of "
                         f"WORLD_SIZE {world} (every rank takes an equal slice of each step)")
    if world > 1:
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=5))

    # The data: section's train split (XPSCALE_DATA), else --train=...
    if not os.environ.get("XPSCALE_DATA") and not p["train"]:
        raise UsageError("no training shards: give the sweep config a data: train: section or "
                         "pass --train=<manifest, URL or brace pattern> (see the docstring)")
    overrides = {"urls": p["train"]} if p["train"] else {}
    ds = ShardedDataset.from_config("train", global_batch=p["batch_size"], rank=rank,
                                    world_size=world, **overrides)
    batches = ds.batched(p["batch_size"] // world, FIELDS)
    # With workers, a DataLoader runs the loading in other processes; without,
    # the batches come straight from the loader's threads (a DataLoader would
    # only add its per-batch overhead).
    loader = (DataLoader(batches, batch_size=None, num_workers=p["workers"]) if p["workers"]
              else batches)
    validation, test = held_out(p["data_dir"])

    torch.manual_seed(p["seed"])
    model = Mlp(p["hidden"])
    optimizer = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
    step, first_epoch = 0, 1
    state = load_checkpoint(trial, rank, world)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ds.load_state_dict(state["data"])
        step, first_epoch = state["step"], state["epoch"]
        position = state["data"]["samples_consumed"] // world
        print(f"[rank {rank}] resumed at step {step}: epoch {first_epoch}, sample {position} "
              f"of {len(ds)}", file=sys.stderr, flush=True)
    net = DistributedDataParallel(model) if world > 1 else model

    def checkpoint(epoch):
        if rank == 0:
            save_checkpoint(trial, step, {"step": step, "epoch": epoch,
                                          "model": model.state_dict(),
                                          "optimizer": optimizer.state_dict(),
                                          "data": ds.state_dict()})

    for epoch in range(first_epoch, p["epochs"] + 1):
        ds.set_epoch(epoch)  # a no-op when resuming inside this epoch
        start = time.monotonic()
        waited, loss_sum, batches = 0.0, 0.0, 0
        net.train()
        ready = time.monotonic()
        for batch in loader:
            waited += time.monotonic() - ready
            x = (torch.as_tensor(batch["u8"]).float() / 255.0 - MEAN) / STD
            labels = torch.as_tensor(batch["cls"])
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), labels)
            loss.backward()  # DDP averages the gradients over the group
            optimizer.step()
            loss_sum += loss.item()
            batches += 1
            step += 1
            if p["checkpoint_every"] and step % p["checkpoint_every"] == 0:
                checkpoint(epoch)
            ready = time.monotonic()
        seconds = time.monotonic() - start
        loss_mean, stall = all_reduce([loss_sum / max(batches, 1), waited / seconds], world)
        net.eval()
        val_loss, val_accuracy = evaluate(model, validation, rank, world)
        _, test_accuracy = evaluate(model, test, rank, world)
        checkpoint(epoch + 1)  # the loader already stands at the next epoch
        if rank == 0:
            trial.report(step=epoch, loss=loss_mean / world, val_loss=val_loss,
                         val_accuracy=val_accuracy, test_accuracy=test_accuracy,
                         epoch_s=seconds, stall=stall / world)
            print(f"epoch {epoch}/{p['epochs']}: loss {loss_mean / world:.4f}, val_accuracy "
                  f"{val_accuracy:.4f}, test_accuracy {test_accuracy:.4f} ({seconds:.2f} s, "
                  f"{batches} steps)", file=sys.stderr, flush=True)
        # Every rank stops at the same point: a stop seen by any rank is
        # everyone's (the ranks poll at slightly different times).
        (stop,) = all_reduce([1.0 if trial.should_stop() else 0.0], world, dist.ReduceOp.MAX)
        if stop:
            reason = trial.stop_reason or "seen by another rank"
            print(f"[rank {rank}] stopped by the scheduler ({reason}) after epoch "
                  f"{epoch}", file=sys.stderr, flush=True)
            break
    if world > 1:
        dist.destroy_process_group()
        del net  # DDP's reducer holds the process group: its threads end here, idle


if __name__ == "__main__":
    try:
        main()
    except (UsageError, ValueError) as e:
        print(f"train.py: {e}", file=sys.stderr)
        sys.exit(2)
