#!/usr/bin/env python3
"""bench/pyloader: xpscale.data (the C++ loader bound for Python) against the
C++ loader alone, a hand-written boto3 + tarfile reader, and itself with
DataLoader workers; one JSON line per measurement on stdout, the summary
last. Run by bench/pyloader/run.sh, which starts s3rver and sets AWS_*.

  (a)  bytes/s of ~256 KiB samples through ShardedDataset (num_workers 0),
       against the same loader drained in C++ (_Loader.drain: no Python
       object per sample), over file:// and s3://: py_vs_cpp (the lower).
  (a') samples/s of 1 KiB samples over file:// through ds.batched(256) (the
       summary's figure: numpy arrays made in C++) and per sample through
       ShardedDataset, the C++ figure beside them.
  (b)  samples/s over s3:// of Fashion-MNIST shards (`xpscale shard`):
       ShardedDataset against boto3 get_object + tarfile into sample dicts,
       shard after shard (the usual first attempt): py_vs_baseline.
  (c)  samples/s of PNG samples decoded with PIL in the map, in a
       DataLoader with num_workers 2 against 0: workers2_vs_0.
  (d)  the stall fraction examples/pytorch/train.py reports for one epoch
       on file:// Fashion-MNIST shards (1 worker).

Rounds alternate the peers; each figure is the median of its rounds, and
every line gives the spread (min, max).
"""
import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings

import numpy as np

import xpscale._native as native
import xpscale.data as xd

warnings.simplefilter("ignore")  # the scan note: these shards have no sidecars on purpose
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FMNIST = "/usr/share/datasets/fashion-mnist"


def log(*args):
    print("pyloader:", *args, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj), flush=True)


def write_shards(directory, name, samples, shards, make):
    """samples made by make(i) -> {ext: bytes}, as uncompressed tar shards."""
    os.makedirs(directory, exist_ok=True)
    urls = []
    per = -(-samples // shards)
    for s in range(shards):
        path = os.path.join(directory, f"{name}-{s:06d}.tar")
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s * per, min(samples, (s + 1) * per)):
                for ext, data in make(i).items():
                    info = tarfile.TarInfo(f"{i:08d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        urls.append(path)
    return urls


def upload(paths, bucket, prefix):
    import boto3
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    out = []
    for path in paths:
        key = f"{prefix}/{os.path.basename(path)}"
        s3.upload_file(path, bucket, key)
        out.append(f"s3://{bucket}/{key}")
    return out


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def py_bytes(urls, field):
    ds = xd.ShardedDataset(urls, shuffle=False, rank=0, world_size=1)
    start = time.perf_counter()
    total = n = 0
    for s in ds:
        total += len(s[field])
        n += 1
    seconds = time.perf_counter() - start
    return total / seconds, n / seconds


def cpp_bytes(urls):
    ds = xd.ShardedDataset(urls, shuffle=False, rank=0, world_size=1)
    loader = ds._make_loader(0, 1, 1)
    loader.restore(json.dumps(ds.state_dict()))
    _, stats = loader.drain(False)
    return stats["bytes"] / stats["elapsed_s"], stats["samples"] / stats["elapsed_s"]


def batched_samples(urls, batch=256):
    """samples/s through ds.batched(): arrays of a batch made in C++."""
    ds = xd.ShardedDataset(urls, shuffle=False, rank=0, world_size=1)
    start = time.perf_counter()
    n = 0
    for b in ds.batched(batch, {"bin": (np.uint8, 1024)}):
        n += len(b["__key__"])
    return n / (time.perf_counter() - start)


def baseline_boto3_tarfile(urls):
    """boto3 get_object of each shard, tarfile over the bytes, samples as dicts."""
    import boto3
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    start = time.perf_counter()
    n = 0
    for url in urls:
        bucket, key = url[len("s3://"):].split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        sample, current = {}, None
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key_, _, ext = member.name.partition(".")
                if key_ != current and sample:
                    n += 1
                    sample = {}
                current = key_
                sample[ext] = tar.extractfile(member).read()
        n += bool(sample)
    return n / (time.perf_counter() - start)


def py_samples(urls):
    ds = xd.ShardedDataset(urls, shuffle=False, rank=0, world_size=1)
    start = time.perf_counter()
    n = sum(1 for _ in ds)
    return n / (time.perf_counter() - start)


def decode_png(sample):
    from PIL import Image
    image = Image.open(io.BytesIO(sample["png"]))
    return np.asarray(image, dtype=np.uint8).copy(), int(sample["cls"])


def loader_rate(urls, workers, batch):
    ds = xd.ShardedDataset(urls, shuffle=False, rank=0, world_size=1)
    loader = xd.DataLoader(ds.map(decode_png), batch_size=batch, num_workers=workers)
    start = time.perf_counter()
    n = 0
    for images, _ in loader:
        n += len(images)
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("PYLOADER_ROUNDS", 3)))
    ap.add_argument("--big-mib", type=int, default=int(os.environ.get("PYLOADER_BIG_MIB", 256)))
    ap.add_argument("--small", type=int, default=int(os.environ.get("PYLOADER_SMALL", 200000)))
    ap.add_argument("--png", type=int, default=int(os.environ.get("PYLOADER_PNG", 6000)))
    ap.add_argument("--bucket", default="bench")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xpscale-pyloader-")
    rng = np.random.default_rng(0)

    # (a) ~256 KiB samples, file:// and s3://
    big = 256 << 10
    count = max(8, (args.big_mib << 20) // big)
    blob = rng.integers(0, 256, big, dtype=np.uint8).tobytes()
    log(f"writing {count} samples of 256 KiB")
    big_files = write_shards(os.path.join(work, "big"), "big", count, 8,
                             lambda i: {"bin": blob[i % 7:] + blob[:i % 7], "cls": b"1"})
    big_s3 = upload(big_files, args.bucket, "big")
    ratios = []
    for where, urls in (("file", big_files), ("s3", big_s3)):
        py, cpp = [], []
        py_bytes(urls, "bin")  # warm-up: page cache, s3rver
        for _ in range(args.rounds):
            py.append(py_bytes(urls, "bin")[0])
            cpp.append(cpp_bytes(urls)[0])
        ratio = statistics.median(py) / statistics.median(cpp)
        ratios.append(ratio)
        emit({"bench": "pyloader", "measure": "big_samples", "where": where, "sample_bytes": big,
              "samples": count, "py_mib_per_s": {k: round(v / 2**20, 1) for k, v in spread(py).items()},
              "cpp_mib_per_s": {k: round(v / 2**20, 1) for k, v in spread(cpp).items()},
              "py_vs_cpp": round(ratio, 3)})

    # (a') 1 KiB samples, file://
    log(f"writing {args.small} samples of 1 KiB")
    small_blob = rng.integers(0, 256, 1024, dtype=np.uint8).tobytes()
    small_files = write_shards(os.path.join(work, "small"), "small", args.small, 8,
                               lambda i: {"bin": small_blob})
    py, batched, cpp = [], [], []
    py_bytes(small_files, "bin")
    for _ in range(args.rounds):
        py.append(py_bytes(small_files, "bin")[1])
        batched.append(batched_samples(small_files))
        cpp.append(cpp_bytes(small_files)[1])
    small_rate = statistics.median(batched)
    emit({"bench": "pyloader", "measure": "small_samples", "where": "file", "sample_bytes": 1024,
          "samples": args.small,
          "py_samples_per_s": {k: round(v) for k, v in spread(py).items()},
          "batched_samples_per_s": {k: round(v) for k, v in spread(batched).items()},
          "cpp_samples_per_s": {k: round(v) for k, v in spread(cpp).items()}})

    # (b) Fashion-MNIST shards over s3://: xpscale.data vs boto3 + tarfile
    fm_dir = os.path.join(work, "fmnist")
    subprocess.run([os.environ["XPSCALE_BIN"], "shard", FMNIST, "--split", "train", "--range",
                    "0:55000", "--out", fm_dir, "--shards", "16"], check=True,
                   stdout=subprocess.DEVNULL)
    fm_files = sorted(os.path.join(fm_dir, f) for f in os.listdir(fm_dir) if f.endswith(".tar"))
    fm_s3 = upload(fm_files, args.bucket, "fmnist")
    ours, base = [], []
    py_samples(fm_s3)
    for _ in range(args.rounds):
        ours.append(py_samples(fm_s3))
        base.append(baseline_boto3_tarfile(fm_s3))
    vs_baseline = statistics.median(ours) / statistics.median(base)
    emit({"bench": "pyloader", "measure": "fmnist_s3", "samples": 55000, "shards": 16,
          "xpscale_samples_per_s": {k: round(v) for k, v in spread(ours).items()},
          "boto3_tarfile_samples_per_s": {k: round(v) for k, v in spread(base).items()},
          "py_vs_baseline": round(vs_baseline, 2)})

    # (c) PNG decode in the map: DataLoader with 2 workers vs 0
    from PIL import Image
    import gzip
    path = os.path.join(FMNIST, "train-images-idx3-ubyte")
    raw = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz").read()
    images = np.frombuffer(raw[16:16 + 784 * args.png], dtype=np.uint8).reshape(-1, 28, 28)

    def png(i):
        buf = io.BytesIO()
        Image.fromarray(images[i]).resize((224, 224)).save(buf, format="PNG")
        return {"png": buf.getvalue(), "cls": str(i % 10).encode()}
    log(f"writing {args.png} PNG samples")
    png_files = write_shards(os.path.join(work, "png"), "png", args.png, 8, png)
    zero, two = [], []
    loader_rate(png_files, 0, 64)
    for _ in range(args.rounds):
        zero.append(loader_rate(png_files, 0, 64))
        two.append(loader_rate(png_files, 2, 64))
    workers2 = statistics.median(two) / statistics.median(zero)
    emit({"bench": "pyloader", "measure": "png_decode", "samples": args.png,
          "workers0_samples_per_s": {k: round(v) for k, v in spread(zero).items()},
          "workers2_samples_per_s": {k: round(v) for k, v in spread(two).items()},
          "workers2_vs_0": round(workers2, 2)})

    # (d) the example's stall fraction, one epoch on file:// shards
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPSCALE_")}
    stalls = []
    for _ in range(args.rounds):
        p = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "examples/pytorch/train.py"),
                            f"--train={fm_dir}/train.manifest.json", "--epochs=1",
                            "--batch_size=128"], env=env, capture_output=True, text=True,
                           cwd=tempfile.mkdtemp(dir=work), timeout=900)  # fresh ./checkpoint
        found = [json.loads(l) for l in p.stderr.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not found:
            sys.exit(f"pyloader: train.py failed: {p.stderr[-2000:]}")
        stalls.append(found[-1]["stall"])
    stall = statistics.median(stalls)
    emit({"bench": "pyloader", "measure": "example_stall", "epochs": 1,
          "stall_fraction": {k: round(v, 4) for k, v in spread(stalls).items()}})

    emit({"bench": "pyloader", "py_vs_cpp": round(min(ratios), 3),
          "small_samples_per_s": round(small_rate), "py_vs_baseline": round(vs_baseline, 2),
          "workers2_vs_0": round(workers2, 2), "stall_fraction": round(stall, 4)})
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
