#!/usr/bin/env python3
"""A tiny external trial for the example sweeps: gradient descent with
momentum on a badly conditioned quadratic, standard library only.

It takes W&B-style arguments (--lr=0.01 --momentum=0.9 --optimizer=sgd
--steps=50, or the same without the hyphens; a nested parameter as W&B
passes it, --optimizer={'name': 'sgd', 'lr': 0.01}) and prints one JSON line of
metrics per step: to the descriptor named by XPSCALE_METRICS_FD when xpscale
runs it, else to stdout.
"""
import ast
import json
import math
import os
import sys


def parse_args(argv):
    params = {"lr": 0.01, "momentum": 0.0, "optimizer": "sgd", "steps": 50, "dim": 8}
    for arg in argv:
        key, sep, value = arg.lstrip("-").partition("=")
        if not sep:
            sys.exit(f"quadratic.py: expected name=value, got {arg!r}")
        if value.startswith("{"):
            # A nested parameter, as W&B's agent passes it: optimizer={'lr': 0.01, ...}
            # (with `nested_args: dotted` it arrives as optimizer.lr=0.01 instead).
            nested = ast.literal_eval(value)
            for sub, v in nested.items():
                params["optimizer" if sub == "name" else sub] = v
            continue
        key = "optimizer" if key == "optimizer.name" else key.split(".")[-1]
        params[key] = value
    for key in ("steps", "dim"):
        params[key] = int(float(params[key]))
    for key in ("lr", "momentum"):
        params[key] = float(params[key])
    return params


def main():
    p = parse_args(sys.argv[1:])
    fd = os.environ.get("XPSCALE_METRICS_FD")
    out = os.fdopen(int(fd), "w", buffering=1) if fd else sys.stdout
    # f(x) = 1/2 sum_i c_i x_i^2 with curvatures c_i from 1 to 100.
    dim = p["dim"]
    curv = [100.0 ** (i / max(1, dim - 1)) for i in range(dim)]
    x = [1.0] * dim
    v = [0.0] * dim
    sq = [0.0] * dim
    loss = 0.0
    for step in range(1, p["steps"] + 1):
        g = [c * xi for c, xi in zip(curv, x)]
        for i in range(dim):
            if p["optimizer"] == "adam":
                v[i] = 0.9 * v[i] + 0.1 * g[i]
                sq[i] = 0.999 * sq[i] + 0.001 * g[i] * g[i]
                x[i] -= p["lr"] * (v[i] / (1 - 0.9 ** step)) / (math.sqrt(sq[i] / (1 - 0.999 ** step)) + 1e-8)
            else:
                v[i] = p["momentum"] * v[i] + g[i]
                x[i] -= p["lr"] * v[i]
        loss = 0.5 * sum(c * xi * xi for c, xi in zip(curv, x))
        if not math.isfinite(loss) or loss > 1e12:
            print(json.dumps({"step": step, "loss": None, "diverged": True}), file=out)
            sys.exit(3)
        print(json.dumps({"step": step, "loss": loss}), file=out)
    print(f"final loss {loss:.6g}", file=sys.stderr)


if __name__ == "__main__":
    main()
