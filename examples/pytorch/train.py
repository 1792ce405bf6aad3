#!/usr/bin/env python3
"""Fashion-MNIST MLP as an external xpscale trial: PyTorch, DistributedDataParallel
over gloo, the same task as the C++ example (examples/fashion_mnist).

Every rank of the trial's group runs this script. xpscale sets RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torch.distributed's
env:// initialisation reads them), XPSCALE_PARAMS, XPSCALE_CHECKPOINT_DIR and
XPSCALE_METRICS_FD. Without WORLD_SIZE (or with 1) it trains alone, no
process group.

Parameters (XPSCALE_PARAMS as JSON, overridden by --name=value or name=value
arguments): lr, hidden, batch_size (global: each rank takes batch_size /
WORLD_SIZE samples of every batch), epochs (5), momentum (0.9), seed (0),
data_dir ($XPSCALE_FMNIST_DIR or /usr/share/datasets/fashion-mnist).

Per epoch the leader reports loss, val_loss, val_accuracy, test_accuracy and
epoch_s through xpscale.report and saves a checkpoint; a resumed
trial continues after the last saved epoch.

By hand, two ranks on one machine:
  for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29511 \
    XPSCALE_PARAMS='{"lr":0.05,"hidden":128,"batch_size":64,"epochs":1}' \
    /usr/bin/python3 examples/pytorch/train.py & done; wait
"""
import datetime
import gzip
import json
import os
import struct
import sys
import time

import xpscale.report as xr  # scripts/setup puts the xpscale package on /usr/bin/python3's path

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
    "data_dir": os.environ.get("XPSCALE_FMNIST_DIR") or "/usr/share/datasets/fashion-mnist",
}
VALIDATION = 5000
MEAN, STD = 0.2860, 0.3530  # of Fashion-MNIST's training pixels in [0, 1]


class UsageError(Exception):
    pass


def parse_params(argv):
    """DEFAULTS, then XPSCALE_PARAMS, then arguments; values converted to the defaults' types."""
    raw = dict(xr.params())
    for arg in argv:
        name, sep, value = arg.lstrip("-").partition("=")
        if not sep:
            raise UsageError(f"expected --name=value or name=value, got {arg!r}")
        raw[name] = value
    out = dict(DEFAULTS)
    for name, value in raw.items():
        if name not in DEFAULTS:
            raise UsageError(f"unknown parameter {name!r} (known: {', '.join(DEFAULTS)})")
        kind = type(DEFAULTS[name])
        try:
            if kind is int:
                number = float(value)
                if number != int(number):
                    raise ValueError
                out[name] = int(number)
            else:
                out[name] = kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"parameter {name}: expected {kind.__name__}, got {value!r}") from None
    return out


def find_file(data_dir, base):
    for name in (base, base + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise UsageError(f"{os.path.join(data_dir, base)}: no such file (nor {base}.gz); install "
                     "Debian's dataset-fashion-mnist or set data_dir / XPSCALE_FMNIST_DIR")


def read_idx(path):
    """An IDX file (plain or gzip) of unsigned bytes as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UsageError(f"{path}: bad magic (not an IDX file?)")
    if data[2] != 0x08:
        raise UsageError(f"{path}: unsupported IDX element type 0x{data[2]:02x}, "
                         "only unsigned bytes (0x08)")
    ndims = data[3]
    header = 4 + 4 * ndims
    if len(data) < header:
        raise UsageError(f"{path}: short file: {len(data)} bytes, the header needs {header}")
    dims = struct.unpack(f">{ndims}I", data[4:header])
    need = int(np.prod(dims))
    if len(data) - header != need:
        shape = "x".join(map(str, dims))
        raise UsageError(f"{path}: dims {shape} need {need} bytes of data, "
                         f"the file has {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load(data_dir):
    """(train, validation, test) as pairs of (float32 images N x 784, int64 labels)."""
    def pair(prefix):
        images = read_idx(find_file(data_dir, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find_file(data_dir, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise UsageError(f"{data_dir}: {prefix} images {images.shape} and labels "
                             f"{labels.shape} do not fit together")
        x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32))
        x = (x / 255.0 - MEAN) / STD
        return x, torch.from_numpy(labels.astype(np.int64))

    x, y = pair("train")
    n = len(x) - VALIDATION
    return (x[:n], y[:n]), (x[n:], y[n:]), pair("t10k")


class Mlp(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def all_reduce_sum(values, world):
    t = torch.tensor(values, dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t)
    return t.tolist()


def evaluate(model, split, rank, world):
    """(mean loss, accuracy) over split; each rank takes a contiguous shard."""
    x, y = split
    begin, end = len(x) * rank // world, len(x) * (rank + 1) // world
    with torch.no_grad():
        logits = model(x[begin:end])
        loss = F.cross_entropy(logits, y[begin:end], reduction="sum").item()
        correct = (logits.argmax(1) == y[begin:end]).sum().item()
    loss, correct = all_reduce_sum([loss, correct], world)
    return loss / len(x), correct / len(x)


def checkpoint_path(directory, epoch):
    return os.path.join(directory, f"epoch-{epoch:06d}.pt")


def save_checkpoint(directory, epoch, model, optimizer):
    """Writes the epoch's file (temporary file + os.replace), records it, drops older ones."""
    os.makedirs(directory, exist_ok=True)
    path = checkpoint_path(directory, epoch)
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save({"epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict()}, tmp)
    os.replace(tmp, path)
    xr.checkpoint_saved(epoch)
    for name in os.listdir(directory):
        if name.startswith("epoch-") and name.endswith(".pt") and name < os.path.basename(path):
            os.unlink(os.path.join(directory, name))


def agree(ok, message, world):
    """Makes a failure on one rank every rank's, instead of a hang in the next collective."""
    if world > 1:
        flag = torch.tensor([1 if ok else 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = bool(flag.item())
    if not ok:
        raise RuntimeError(message)


def main(argv):
    p = parse_params(argv)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if "OMP_NUM_THREADS" not in os.environ:
        # Ranks of a node share its cores; torch would take them all in every rank.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    if p["batch_size"] < world or p["batch_size"] % world:
        raise UsageError(f"batch_size {p['batch_size']} must be a positive multiple of "
                         f"WORLD_SIZE {world} (every rank takes an equal slice of each batch)")
    if world > 1:
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=5))

    train, validation, test = load(p["data_dir"])
    torch.manual_seed(p["seed"])
    model = Mlp(p["hidden"])
    optimizer = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])

    directory = xr.checkpoint_dir()
    resumed = xr.resume_step() if directory else -1
    if resumed >= 0:
        # The leader reads the checkpoint; DDP's constructor broadcasts its
        # weights and the momentum buffers are broadcast below, so the
        # directory need not be on a file system every node sees.
        error = None
        if rank == 0:
            try:
                state = torch.load(checkpoint_path(directory, resumed))
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
            except Exception as e:  # noqa: BLE001 - any failure ends the trial on every rank
                error = f"{checkpoint_path(directory, resumed)}: cannot load: {e}"
        agree(error is None, error or "the leader could not load the checkpoint", world)
        if world > 1:
            for param in model.parameters():
                state = optimizer.state[param]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(param)
                dist.broadcast(state["momentum_buffer"], src=0)
        print(f"[rank {rank}] resumed from the checkpoint of epoch {resumed}", file=sys.stderr)
    net = DistributedDataParallel(model) if world > 1 else model

    x, y = train
    batch, local = p["batch_size"], p["batch_size"] // world
    steps = len(x) // batch
    for epoch in range(max(resumed, 0) + 1, p["epochs"] + 1):
        start = time.monotonic()
        # The same permutation on every rank: a function of (seed, epoch) only.
        order = torch.from_numpy(np.random.default_rng([p["seed"], epoch]).permutation(len(x)))
        net.train()
        loss_sum = 0.0
        for s in range(steps):
            idx = order[s * batch + rank * local: s * batch + (rank + 1) * local]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x[idx]), y[idx])
            loss.backward()  # DDP averages the gradients over the group
            optimizer.step()
            loss_sum += loss.item()
        (loss_mean,) = all_reduce_sum([loss_sum / max(steps, 1)], world)
        loss_mean /= world
        seconds = time.monotonic() - start
        net.eval()
        val_loss, val_accuracy = evaluate(model, validation, rank, world)
        _, test_accuracy = evaluate(model, test, rank, world)
        if rank == 0:
            if directory:
                save_checkpoint(directory, epoch, model, optimizer)
            xr.report(step=epoch, loss=loss_mean, val_loss=val_loss, val_accuracy=val_accuracy,
                      test_accuracy=test_accuracy, epoch_s=seconds)
            print(f"epoch {epoch}/{p['epochs']}: loss {loss_mean:.4f}, val_accuracy "
                  f"{val_accuracy:.4f}, test_accuracy {test_accuracy:.4f} ({seconds:.2f} s)",
                  file=sys.stderr)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except UsageError as e:
        print(f"train.py: {e}", file=sys.stderr)
        sys.exit(2)
