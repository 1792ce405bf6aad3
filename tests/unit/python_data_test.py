"""xpscale.data as a user runs it (the built package, from ${build}/python):
ShardedDataset and DataLoader against the C++ loader they wrap.

- order: the keys Python iterates are the C++ loader's (_Loader.drain), for
  shards written by Python's tarfile and by `xpscale shard`, over seeds,
  world sizes, ranks, epochs and shuffle settings;
- partition: every rank gets len(ds) samples, the ranks together every
  sample (repeats only as padding; none under drop_last);
- resume: state_dict/load_state_dict continue exactly, also on another
  world size with a global batch, and through xpscale.data.DataLoader with
  worker processes, whose sequence does not depend on num_workers;
- foreign shards (pax and GNU long names, gzip), bad input (each a
  DataError naming the URL, never a crash), credentials never echoed, the
  node-local cache, life without torch, and the GIL released while the
  loader waits (an HTTP server in the same process keeps serving).

Run by ctest with /usr/bin/python3 and PYTHONPATH set to the build's
package; XPSCALE_BIN is the xpscale binary (default: ${build}/launcher/xpscale).
"""
import collections
import csv
import gzip
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import unittest
import warnings

import xpscale
import xpscale._native as native
import xpscale.data as xd

try:
    import torch
    import torch.utils.data as torch_data
except ImportError:  # pragma: no cover - Debian's python3-torch is a build dependency
    torch = None

PACKAGE_DIR = os.path.dirname(os.path.dirname(xpscale.__file__))  # ${build}/python
XPSCALE_BIN = os.environ.get("XPSCALE_BIN") or os.path.join(
    os.path.dirname(PACKAGE_DIR), "launcher", "xpscale")
DataError = native.DataError  # xpscale.DataError, once the package exports it

# Fixture shards (setUpModule): PY_COUNTS samples per shard written by
# tarfile (no sidecars), CLI_SAMPLES written by `xpscale shard` (sidecars
# and a manifest). Field sizes vary so that a shuffle buffer of a few KiB
# holds a few samples.
PY_COUNTS = [7, 9, 4, 11, 6]
PY_SAMPLES = sum(PY_COUNTS)  # 37
CLI_SAMPLES = 41
ROOT = ""
PY_PATTERN = ""
CLI_MANIFEST = ""
PY_FIELDS = {}  # key -> {ext: bytes}
PY_OFFSETS = {}  # key -> (file:// URL, byte offset of its first member)


def py_key(i):
    return f"part/s{i:05d}"


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def file_url(path):
    return "file://" + os.path.abspath(path)


def run_python(code, env=None, timeout=120):
    """code in a fresh sys.executable with the built package on its path."""
    env = dict(os.environ if env is None else env, PYTHONPATH=PACKAGE_DIR)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def setUpModule():
    global ROOT, PY_PATTERN, CLI_MANIFEST
    ROOT = tempfile.mkdtemp(prefix="xpscale-pydata-")
    # tarfile shards: keys part/sNNNNN, fields cls (the sample's number) and
    # bin (50..2999 random bytes), members in key order.
    rng = random.Random(20261201)
    i = 0
    for shard, count in enumerate(PY_COUNTS):
        path = os.path.join(ROOT, "py", f"train-{shard:06d}.tar")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for _ in range(count):
                fields = {"cls": str(i).encode(), "bin": rng.randbytes(rng.randrange(50, 3000))}
                PY_FIELDS[py_key(i)] = fields
                for ext, data in fields.items():
                    add_member(tar, f"{py_key(i)}.{ext}", data)
                i += 1
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                key = m.name.split(".")[0]
                PY_OFFSETS.setdefault(key, (file_url(path), m.offset))
    PY_PATTERN = os.path.join(ROOT, "py", "train-{000000..%06d}.tar" % (len(PY_COUNTS) - 1))
    # `xpscale shard` shards of a CSV: keys NNNNNN, fields cls and txt.
    with open(os.path.join(ROOT, "data.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cls", "txt"])
        for i in range(CLI_SAMPLES):
            w.writerow([i, "x" * rng.randrange(0, 2500)])
    p = subprocess.run([XPSCALE_BIN, "shard", os.path.join(ROOT, "data.csv"), "--out",
                        os.path.join(ROOT, "cli"), "--shards", "4", "--name", "train"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"xpscale shard failed: {p.stdout}{p.stderr}")
    CLI_MANIFEST = os.path.join(ROOT, "cli", "train.manifest.json")


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def dataset(urls, **kw):
    """A ShardedDataset without the scan warning (tested on its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return xd.ShardedDataset(urls, **kw)


def keys(iterable):
    return [s["__key__"] for s in iterable]


def cls_int(sample):
    return int(sample["cls"])


def sample_key(sample):
    return sample["__key__"]


def quiet_worker(worker_id):
    """worker_init_fn: the warning that a plain torch DataLoader's workers
    give about state_dict() is expected here."""
    warnings.filterwarnings("ignore", "xpscale.data: ShardedDataset in a torch DataLoader")


def cpp_keys(location, state, *, rank, world_size, seed=0, shuffle=True,
             shuffle_buffer_bytes=None, drop_last=False, global_batch=0, cache_dir=""):
    """The rest of the epoch from `state` as the C++ loader reads it, with
    the options spelled out here (not taken from the dataset)."""
    if shuffle_buffer_bytes is None:
        shuffle_buffer_bytes = (16 << 20) if shuffle else 0
    loader = native._Loader(native.open_dataset(**location), rank=rank, world_size=world_size,
                            sample_type=xd.Sample, seed=seed, shuffle_shards=shuffle,
                            shuffle_buffer_bytes=shuffle_buffer_bytes, drop_last=drop_last,
                            on_error="fail", global_batch=global_batch, prefetch_threads=0,
                            max_bytes_in_flight=0, cache_dir=cache_dir, cache_max_bytes=0,
                            worker=0, num_workers=1, worker_block=1)
    loader.restore(json.dumps(state))
    return loader.drain(True)[0]


class OrderTest(unittest.TestCase):
    # (seed, world_size, rank, epoch, shuffle, shuffle_buffer_bytes)
    CASES = [(0, 1, 0, 0, True, None), (7, 3, 2, 1, True, 4096), (7, 3, 0, 0, True, 0),
             (1, 2, 1, 2, False, None), (3, 4, 3, 0, True, 20000), (5, 2, 0, 3, True, 1),
             (11, 5, 4, 1, False, 0), (2, 1, 0, 5, True, 6000)]

    def check_same_order_as_cpp(self, urls, location):
        for seed, world, rank, epoch, shuffle, buf in self.CASES:
            with self.subTest(urls=os.path.basename(urls), seed=seed, world=world, rank=rank,
                              epoch=epoch, shuffle=shuffle, buf=buf):
                ds = dataset(urls, seed=seed, rank=rank, world_size=world, shuffle=shuffle,
                             shuffle_buffer_bytes=buf)
                ds.set_epoch(epoch)
                state = ds.state_dict()
                self.assertEqual((state["epoch"], state["samples_consumed"]), (epoch, 0))
                got = keys(ds)
                want = cpp_keys(location, state, rank=rank, world_size=world, seed=seed,
                                shuffle=shuffle, shuffle_buffer_bytes=buf)
                self.assertEqual(got, want)
                self.assertEqual(len(got), len(ds))
                self.assertEqual(ds.epoch, epoch + 1)

    def test_tarfile_shards_iterate_in_the_cpp_loaders_order(self):
        self.check_same_order_as_cpp(PY_PATTERN, {"pattern": PY_PATTERN})

    def test_xpscale_shard_manifest_iterates_in_the_cpp_loaders_order(self):
        self.check_same_order_as_cpp(CLI_MANIFEST, {"manifest": CLI_MANIFEST})

    def test_a_list_of_urls_and_a_prefix_are_the_same_dataset_as_the_pattern(self):
        urls = [os.path.join(ROOT, "py", f"train-{s:06d}.tar") for s in range(len(PY_COUNTS))]
        a, b, c = (dataset(u, seed=4, rank=0, world_size=1)
                   for u in (PY_PATTERN, urls, os.path.join(ROOT, "py") + "/"))
        self.assertEqual(a._dataset.digest, b._dataset.digest)
        self.assertEqual(a._dataset.digest, c._dataset.digest)
        first = keys(a)
        self.assertEqual(keys(b), first)
        self.assertEqual(keys(c), first)
        self.assertEqual(keys(a), keys(b))  # epoch 1 alike

    def test_without_shuffle_one_rank_reads_shards_and_samples_in_order(self):
        ds = dataset(PY_PATTERN, shuffle=False, rank=0, world_size=1)
        self.assertEqual(keys(ds), [py_key(i) for i in range(PY_SAMPLES)])
        ds = dataset(CLI_MANIFEST, shuffle=False, rank=0, world_size=1)
        self.assertEqual(keys(ds), [f"{i:06d}" for i in range(CLI_SAMPLES)])

    def test_seed_and_epoch_change_the_order_and_nothing_else(self):
        orders = {}
        for seed, epoch in ((0, 0), (0, 1), (1, 0)):
            ds = dataset(PY_PATTERN, seed=seed, rank=0, world_size=1, shuffle_buffer_bytes=8000)
            ds.set_epoch(epoch)
            orders[seed, epoch] = keys(ds)
            self.assertEqual(sorted(orders[seed, epoch]), sorted(PY_FIELDS))
        self.assertEqual(len({tuple(v) for v in orders.values()}), 3, orders)
        # The same (seed, epoch) again: the same order.
        ds = dataset(PY_PATTERN, seed=0, rank=0, world_size=1, shuffle_buffer_bytes=8000)
        ds.set_epoch(1)
        self.assertEqual(keys(ds), orders[0, 1])

    def test_samples_carry_their_fields_url_and_byte_offset(self):
        ds = dataset(PY_PATTERN, seed=3, rank=0, world_size=1)
        n = 0
        for s in ds:
            self.assertIsInstance(s, xd.Sample)
            self.assertIsInstance(s, dict)
            key = s["__key__"]
            self.assertEqual({k: v for k, v in s.items() if not k.startswith("__")},
                             PY_FIELDS[key])
            self.assertEqual((s["__url__"], s["__offset__"]), PY_OFFSETS[key])
            n += 1
        self.assertEqual(n, PY_SAMPLES)
        ds = dataset(CLI_MANIFEST, shuffle=False, rank=0, world_size=1)
        for i, s in enumerate(ds):
            self.assertEqual(s["cls"], str(i).encode())
            self.assertEqual(set(s) - {"__key__", "__url__", "__offset__"}, {"cls", "txt"})
            self.assertTrue(s["__url__"].startswith("file://"), s["__url__"])
            # The offset is the sample's first tar header: its name is there.
            with open(s["__url__"][len("file://"):], "rb") as f:
                f.seek(s["__offset__"])
                self.assertTrue(f.read(100).startswith(s["__key__"].encode() + b"."))

    def test_map_applies_its_function_in_order_and_keeps_the_datasets_state(self):
        ds = dataset(PY_PATTERN, seed=8, rank=1, world_size=2)
        mapped = ds.map(cls_int).map(lambda v: v * 10)
        self.assertEqual(len(mapped), len(ds))
        ds.set_epoch(2)
        state = ds.state_dict()
        values = list(mapped)
        self.assertEqual(values, [int(k.split("s")[-1]) * 10 for k in
                                  cpp_keys({"pattern": PY_PATTERN}, state, rank=1,
                                           world_size=2, seed=8)])
        self.assertEqual(mapped.state_dict(), ds.state_dict())
        self.assertEqual(ds.epoch, 3)


class PartitionTest(unittest.TestCase):
    def test_every_rank_gets_len_samples_and_together_every_sample(self):
        for world in (1, 2, 3, 4, 5, 8):
            with self.subTest(world=world):
                per_rank = -(-PY_SAMPLES // world)
                seen = collections.Counter()
                repeats = 0
                for rank in range(world):
                    ds = dataset(PY_PATTERN, seed=9, rank=rank, world_size=world,
                                 shuffle_buffer_bytes=5000)
                    self.assertEqual(len(ds), per_rank)
                    got = keys(ds)
                    self.assertEqual(len(got), per_rank)
                    seen.update(got)
                    repeats += ds.stats()["repeats"]
                self.assertEqual(set(seen), set(PY_FIELDS))
                # Repeats only as padding: world * ceil(N / world) - N extra.
                padding = world * per_rank - PY_SAMPLES
                self.assertEqual(sum(seen.values()) - len(seen), padding)
                self.assertEqual(repeats, padding)

    def test_drop_last_gives_every_rank_floor_samples_none_twice(self):
        for world in (2, 3, 5, 8):
            with self.subTest(world=world):
                urls, total = (CLI_MANIFEST, CLI_SAMPLES) if world == 3 else (PY_PATTERN,
                                                                                PY_SAMPLES)
                seen = collections.Counter()
                for rank in range(world):
                    ds = dataset(urls, seed=1, rank=rank, world_size=world, drop_last=True,
                                 shuffle_buffer_bytes=5000)
                    self.assertEqual(len(ds), total // world)
                    got = keys(ds)
                    self.assertEqual(len(got), len(ds))
                    seen.update(got)
                    self.assertEqual(ds.stats()["repeats"], 0)
                self.assertEqual(max(seen.values()), 1, seen.most_common(3))
                self.assertEqual(len(seen), world * (total // world))

    def test_rank_and_world_size_come_from_the_environment(self):
        p = run_python(f"""
            import warnings, json
            warnings.simplefilter("ignore")
            import xpscale.data as xd
            ds = xd.ShardedDataset({PY_PATTERN!r}, seed=2)
            print(json.dumps([len(ds), ds.state_dict()["world_size"],
                              [s["__key__"] for s in ds]]))
        """, env=dict(os.environ, RANK="2", WORLD_SIZE="4"))
        self.assertEqual(p.returncode, 0, p.stderr)
        n, world, got = json.loads(p.stdout)
        self.assertEqual((n, world), (10, 4))
        self.assertEqual(got, keys(dataset(PY_PATTERN, seed=2, rank=2, world_size=4)))

    def test_invalid_arguments_are_value_errors(self):
        for kw in ({"rank": 2, "world_size": 2}, {"rank": 0}, {"seed": -1},
                   {"on_error": "ignore"}, {"shuffle_buffer_bytes": -5}):
            with self.subTest(kw=kw), self.assertRaises(ValueError):
                dataset(PY_PATTERN, **kw)
        with self.assertRaises(ValueError):
            dataset(PY_PATTERN).set_epoch(-1)


class ResumeTest(unittest.TestCase):
    def test_stop_anywhere_and_resume_gives_the_uninterrupted_sequence(self):
        kw = dict(seed=6, rank=1, world_size=3, shuffle_buffer_bytes=7000)
        full = dataset(CLI_MANIFEST, **kw)
        whole = keys(full) + keys(full)  # epochs 0 and 1
        n = len(full)
        for stop in (0, 1, 5, n - 1, n):
            with self.subTest(stop=stop):
                ds = dataset(CLI_MANIFEST, **kw)
                head = []
                it = iter(ds)
                for _ in range(stop):
                    head.append(next(it)["__key__"])
                state = ds.state_dict()
                self.assertEqual(state["samples_consumed"], stop * 3)
                self.assertEqual(state["epoch"], 0)
                json.dumps(state)  # a checkpoint can hold it
                again = dataset(CLI_MANIFEST, **kw)
                again.load_state_dict(state)
                again.set_epoch(0)  # the usual loop: a no-op where it already is
                self.assertEqual(again.state_dict(), state)
                rest = keys(again)
                self.assertEqual(again.epoch, 1)
                rest += keys(again)
                self.assertEqual(head + rest, whole)
                # The interrupted dataset itself also goes on from there.
                it.close()
                self.assertEqual(head + keys(ds), whole[:n])

    def test_resume_on_another_world_size_continues_the_groups_sequence(self):
        # 12 samples per step: 6 per rank on 2 ranks, 4 per rank on 3.
        B, kw = 12, dict(seed=1, shuffle_buffer_bytes=6000, global_batch=12)
        old = [keys(dataset(PY_PATTERN, rank=r, world_size=2, **kw)) for r in range(2)]
        n = len(old[0])  # 19
        b = B // 2
        steps = []  # the group's sequence, step by step
        for k in range(0, n, b):
            steps.append(old[0][k:k + b] + old[1][k:k + b])
        stop_steps = 2
        # Every rank of the old group stops after its stop_steps * b samples:
        # their states are the same.
        states = []
        for r in range(2):
            ds = dataset(PY_PATTERN, rank=r, world_size=2, **kw)
            it = iter(ds)
            head = [next(it)["__key__"] for _ in range(stop_steps * b)]
            self.assertEqual(head, old[r][:stop_steps * b])
            states.append(ds.state_dict())
        self.assertEqual(states[0], states[1])
        self.assertEqual(states[0]["samples_consumed"], stop_steps * B)
        new = []
        for r in range(3):
            ds = dataset(PY_PATTERN, rank=r, world_size=3, **kw)
            ds.load_state_dict(states[0])
            new.append(keys(ds))
            # The next epoch is planned for 3 ranks.
            self.assertEqual(keys(ds), self.epoch_of(r, 3, 1, kw))
        b2 = B // 3
        for k, step in enumerate(steps[stop_steps:]):
            if len(step) == B:  # a full step: rank r' takes [r' b2, (r'+1) b2)
                self.assertEqual([x for r in range(3) for x in new[r][k * b2:(k + 1) * b2]], step,
                                 f"step {stop_steps + k}")
            else:  # the short last step: an equal split, padded with repeats
                tails = [new[r][k * b2:] for r in range(3)]
                self.assertEqual({len(t) for t in tails}, {-(-len(step) // 3)}, tails)
                self.assertEqual(set(x for t in tails for x in t), set(step), (tails, step))

    def epoch_of(self, rank, world, epoch, kw):
        ds = dataset(PY_PATTERN, rank=rank, world_size=world, **kw)
        ds.set_epoch(epoch)
        return keys(ds)

    def test_resume_without_global_batch_on_another_world_size_is_a_data_error(self):
        ds = dataset(PY_PATTERN, seed=1, rank=0, world_size=2)
        it = iter(ds)
        for _ in range(4):
            next(it)
        state = ds.state_dict()
        other = dataset(PY_PATTERN, seed=1, rank=0, world_size=3)
        with self.assertRaisesRegex(DataError, "global batch"):
            other.load_state_dict(state)
            list(other)  # the plan is made (and refused) at the first iteration


@unittest.skipIf(torch is None, "torch is not installed")
class DataLoaderTest(unittest.TestCase):
    KW = dict(seed=3, rank=1, world_size=2, shuffle_buffer_bytes=6000)

    def sequence(self, workers, epoch=0, batch_size=5):
        ds = dataset(PY_PATTERN, **self.KW)
        ds.set_epoch(epoch)
        loader = xd.DataLoader(ds.map(cls_int), batch_size=batch_size, num_workers=workers)
        batches = [b.tolist() for b in loader]
        self.assertEqual(ds.epoch, epoch + 1)
        return batches

    def test_the_sequence_does_not_depend_on_num_workers(self):
        ds = dataset(PY_PATTERN, **self.KW)
        ds.set_epoch(1)
        want = [int(k.split("s")[-1]) for k in keys(ds)]
        for workers in (0, 1, 2, 3):
            with self.subTest(workers=workers), warnings.catch_warnings():
                # torch warns about 3 workers on 2 cores.
                warnings.filterwarnings("ignore", "This DataLoader will create")
                batches = self.sequence(workers, epoch=1)
                self.assertEqual([len(b) for b in batches[:-1]], [5] * (len(batches) - 1))
                self.assertEqual([x for b in batches for x in b], want)

    def test_resume_with_two_workers_loses_and_repeats_nothing(self):
        whole = [x for b in self.sequence(0) for x in b]
        whole += [x for b in self.sequence(0, epoch=1) for x in b]
        ds = dataset(PY_PATTERN, **self.KW)
        loader = xd.DataLoader(ds.map(cls_int), batch_size=5, num_workers=2)
        head = []
        for i, batch in enumerate(loader):
            head += batch.tolist()
            if i == 2:
                break
        state = ds.state_dict()
        self.assertEqual((state["epoch"], state["samples_consumed"]), (0, 15 * 2))
        del loader  # its workers go
        again = dataset(PY_PATTERN, **self.KW)
        again.load_state_dict(state)
        loader = xd.DataLoader(again.map(cls_int), batch_size=5, num_workers=2)
        rest = [x for b in loader for x in b.tolist()]
        self.assertEqual(again.epoch, 1)
        rest += [x for b in loader for x in b.tolist()]
        self.assertEqual(head + rest, whole)

    def test_persistent_workers_are_refused(self):
        with self.assertRaisesRegex(ValueError, "persistent_workers"):
            xd.DataLoader(dataset(PY_PATTERN), batch_size=4, num_workers=2,
                          persistent_workers=True)

    def test_a_plain_torch_dataloader_with_workers_loses_and_repeats_nothing(self):
        ds = dataset(PY_PATTERN, **self.KW)
        want = collections.Counter(keys(ds))
        ds = dataset(PY_PATTERN, **self.KW)
        loader = torch_data.DataLoader(ds.map(sample_key), batch_size=None, num_workers=2,
                                       worker_init_fn=quiet_worker)
        got = collections.Counter(loader)
        self.assertEqual(got, want)


class BatchedAndBufferTest(unittest.TestCase):
    """ds.batched(): arrays made in C++; Buffer: large fields without a copy."""

    def fixed_shards(self, name, count, width):
        """count samples of `width` bytes (.raw) and a label (.cls), in 3 shards."""
        directory = os.path.join(ROOT, name)
        os.makedirs(directory, exist_ok=True)
        rng = random.Random(width)
        data = {}
        for shard in range(3):
            with tarfile.open(os.path.join(directory, f"s-{shard}.tar"), "w") as tar:
                for i in range(shard, count, 3):
                    data[f"k{i:05d}"] = (rng.randbytes(width), i % 10)
                    add_member(tar, f"k{i:05d}.raw", data[f"k{i:05d}"][0])
                    add_member(tar, f"k{i:05d}.cls", str(i % 10).encode())
        return os.path.join(directory, "s-{0..2}.tar"), data

    def test_batches_hold_the_samples_in_the_datasets_order_for_any_num_workers(self):
        pattern, data = self.fixed_shards("fixed", 50, 12)
        kw = dict(seed=4, rank=0, world_size=2, shuffle_buffer_bytes=400)
        want = keys(dataset(pattern, **kw))
        import numpy as np
        for workers in (0, 2):
            with self.subTest(workers=workers):
                ds = dataset(pattern, **kw)
                batches = list(xd.DataLoader(
                    ds.batched(4, {"raw": (np.int16, (2, 3)), "cls": int}),
                    batch_size=None, num_workers=workers))
                self.assertEqual([len(b["__key__"]) for b in batches], [4] * 6 + [1])
                got = [k for b in batches for k in b["__key__"]]
                self.assertEqual(got, want)
                for b in batches:
                    self.assertEqual(tuple(b["raw"].shape[1:]), (2, 3))
                    for j, k in enumerate(b["__key__"]):
                        self.assertEqual(b["raw"][j].numpy().tobytes(), data[k][0])
                        self.assertEqual(int(b["cls"][j]), data[k][1])
                self.assertEqual(ds.epoch, 1)

    def test_batched_resume_continues_after_the_last_batch(self):
        import numpy as np
        pattern, _ = self.fixed_shards("fixed2", 40, 8)
        spec = {"raw": (np.uint8, 8), "cls": int}
        want = keys(dataset(pattern, seed=1))
        ds = dataset(pattern, seed=1)
        it = iter(ds.batched(6, spec))
        first = [k for _ in range(3) for k in next(it)["__key__"]]
        again = dataset(pattern, seed=1)
        again.load_state_dict(ds.state_dict())
        rest = [k for b in again.batched(6, spec) for k in b["__key__"]]
        self.assertEqual(first + rest, want)

    def test_a_field_of_another_size_or_not_a_number_is_a_data_error(self):
        import numpy as np
        pattern, _ = self.fixed_shards("fixed3", 9, 10)
        with self.assertRaisesRegex(xd.DataError, r"s-0\.tar: sample 'k00000' \(byte offset 0\)"
                                    r": field 'raw' holds 10 bytes, the batch's arrays take 12"):
            next(iter(dataset(pattern, shuffle=False).batched(3, {"raw": (np.uint8, 12)})))
        with self.assertRaisesRegex(xd.DataError, r"field 'raw' is not an integer"):
            next(iter(dataset(pattern, shuffle=False).batched(3, {"raw": int})))
        with self.assertRaisesRegex(xd.DataError, r"has no field 'png'"):
            next(iter(dataset(pattern, shuffle=False).batched(3, {"png": int})))
        with self.assertRaises(ValueError):
            dataset(pattern).batched(0, {"cls": int})
        with self.assertRaises(ValueError):
            xd.DataLoader(dataset(pattern).batched(3, {"cls": int}), batch_size=3)

    def test_large_fields_are_buffers_that_read_and_pickle_as_their_bytes(self):
        import pickle
        pattern, data = self.fixed_shards("large", 6, 100 << 10)
        ds = dataset(pattern, shuffle=False)
        seen = 0
        for s in ds:
            field = s["raw"]
            self.assertIsInstance(field, xd.Buffer)
            self.assertIsInstance(s["cls"], bytes)  # small fields stay bytes
            want = data[s["__key__"]][0]
            self.assertEqual(len(field), len(want))
            self.assertEqual(bytes(field), want)
            self.assertEqual(memoryview(field).tobytes(), want)
            self.assertTrue(field == want)
            self.assertEqual(pickle.loads(pickle.dumps(field)), want)
            seen += 1
        self.assertEqual(seen, 6)


class ForeignShardsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="xpscale-foreign-", dir=ROOT)

    def write(self, name, mode="w", fmt=tarfile.PAX_FORMAT, count=6, prefix="d" * 120):
        path = os.path.join(self.tmp, name)
        fields = {}
        with tarfile.open(path, mode, format=fmt) as tar:
            for i in range(count):
                key = f"{prefix}/{name.split('.')[0]}-{i:03d}"
                fields[key] = {"txt": f"sample {i} of {name}".encode(),
                               "bin": bytes(range(256)) * (i + 1)}
                for ext, data in fields[key].items():
                    add_member(tar, f"{key}.{ext}", data)
        return path, fields

    def read(self, urls):
        ds = xd.ShardedDataset(urls, shuffle=False, rank=0, world_size=1)
        return {s["__key__"]: {k: v for k, v in s.items() if not k.startswith("__")}
                for s in ds}

    def test_pax_gnu_and_gzip_shards_read_correctly_after_a_scan_warning(self):
        shards = [self.write("pax.tar", fmt=tarfile.PAX_FORMAT),
                  self.write("gnu.tar", fmt=tarfile.GNU_FORMAT),
                  self.write("gz.tar.gz", mode="w:gz"),
                  self.write("tgz.tgz", mode="w:gz", fmt=tarfile.GNU_FORMAT)]
        for path, fields in shards:
            self.assertGreater(max(len(k) for k in fields), 100)
            with self.subTest(shard=os.path.basename(path)):
                with self.assertWarnsRegex(UserWarning, r"\b1 of 1 shards have no \.idx"):
                    got = self.read(path)
                self.assertEqual(got, fields)
        want = {k: v for _, fields in shards for k, v in fields.items()}
        with self.assertWarnsRegex(UserWarning, r"\b4 of 4 shards have no \.idx"):
            got = self.read([p for p, _ in shards])
        self.assertEqual(got, want)

    def test_a_gzip_shard_of_several_members_reads_as_their_concatenation(self):
        path, fields = self.write("plain.tar", fmt=tarfile.GNU_FORMAT)
        with open(path, "rb") as f:
            data = f.read()
        cut = 512 * 3 + 100  # inside the second member's data
        out = os.path.join(self.tmp, "multi.tar.gz")
        with open(out, "wb") as f:
            f.write(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
        with self.assertWarns(UserWarning):
            self.assertEqual(self.read(out), fields)

    def test_no_warning_for_shards_with_sidecars(self):
        pattern = os.path.join(ROOT, "cli", "train-{000000..000003}.tar")
        for urls in (CLI_MANIFEST, pattern):
            with self.subTest(urls=urls), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = xd.ShardedDataset(urls, rank=0, world_size=1)
                self.assertEqual(len(keys(ds)), CLI_SAMPLES)
            self.assertEqual([str(w.message) for w in caught], [])


class BadInputTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="xpscale-bad-", dir=ROOT)

    def path(self, name, data):
        p = os.path.join(self.tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def good_tar(self, gz=False):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w",
                          format=tarfile.GNU_FORMAT) as tar:
            for i in range(4):
                add_member(tar, f"k{i}.cls", str(i).encode())
                add_member(tar, f"k{i}.bin", bytes(1000 + i))
        return buf.getvalue()

    def test_broken_shards_are_data_errors_naming_the_url_in_a_surviving_interpreter(self):
        tar, tgz = self.good_tar(), self.good_tar(gz=True)
        stale = os.path.join(self.tmp, "stale")
        shutil.copytree(os.path.join(ROOT, "cli"), stale)
        with open(os.path.join(stale, "train-000001.tar"), "r+b") as f:
            f.truncate(5000)
        cases = {  # name: (urls, what the message must also say)
            "missing": (os.path.join(self.tmp, "nope.tar"), "No such file"),
            "not a tar": (self.path("text.tar", b"this is not a tar file\n" * 100),
                          "byte offset"),
            "truncated tar": (self.path("cut.tar", tar[:512 * 2 + 300]), "byte offset"),
            "truncated tar.gz": (self.path("cut.tar.gz", tgz[:len(tgz) // 2]), "byte offset"),
            "gzip under .tar": (self.path("gz.tar", tgz), "byte offset"),
            "empty": (self.path("empty.tar", b""), "no samples"),
            "sidecar of a longer shard": (os.path.join(stale, "train-{000000..000003}.tar"),
                                          "train-000001.tar"),
            "manifest of a longer shard": (os.path.join(stale, "train.manifest.json"),
                                           "train-000001.tar"),
        }
        # In a child interpreter: a crash or a hang there fails this test
        # instead of the whole run.
        p = run_python(f"""
            import json, warnings
            warnings.simplefilter("ignore")
            import xpscale.data as xd
            out = {{}}
            for name, urls in {json.dumps({k: v[0] for k, v in cases.items()})}.items():
                try:
                    ds = xd.ShardedDataset(urls, rank=0, world_size=1)
                    out[name] = ["no error", len(list(ds))]
                except Exception as e:
                    out[name] = [[c.__name__ for c in type(e).__mro__],
                                 isinstance(e, xd.DataError), isinstance(e, OSError), str(e)]
            print(json.dumps(out))
        """, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        for name, (urls, words) in cases.items():
            with self.subTest(case=name):
                self.assertNotEqual(out[name][0], "no error", out[name])
                mro, is_data_error, is_os_error, message = out[name]
                self.assertTrue(is_data_error and is_os_error, mro)
                self.assertIn("Error", mro)  # xpscale.Error
                where = urls if "{" not in urls and not urls.endswith(".json") else words
                self.assertIn(where, message)
                self.assertIn(words, message)

    def test_a_missing_field_names_shard_sample_and_byte_offset(self):
        ds = dataset(PY_PATTERN, seed=5, rank=0, world_size=1)
        s = next(iter(ds))
        with self.assertRaises(xd.MissingField) as e:
            s["png"]
        self.assertIsInstance(e.exception, DataError)
        self.assertIsInstance(e.exception, KeyError)
        self.assertIsInstance(e.exception, OSError)
        message = str(e.exception)
        for part in (s["__url__"], s["__key__"], f"byte offset {s['__offset__']}", "'png'",
                     "bin", "cls"):
            self.assertIn(part, message)
        self.assertEqual(s.get("png"), None)  # dict.get still answers
        self.assertNotIn("png", s)

    def test_load_state_dict_refuses_states_it_cannot_continue(self):
        ds = dataset(PY_PATTERN, seed=5, rank=0, world_size=1)
        good = ds.state_dict()
        other = dataset(CLI_MANIFEST, seed=5, rank=0, world_size=1).state_dict()
        bad = {
            "another dataset": other,
            "another seed": dict(good, seed=6),
            "missing field": {k: v for k, v in good.items() if k != "digest"},
            "wrong type": dict(good, epoch="zero"),
            "negative": dict(good, samples_consumed=-1),
            "zero world": dict(good, world_size=0),
            "not a dict": [good],
        }
        for name, state in bad.items():
            with self.subTest(case=name):
                ds = dataset(PY_PATTERN, seed=5, rank=0, world_size=1)
                with self.assertRaises(DataError) as e:
                    ds.load_state_dict(state)
                self.assertIsInstance(e.exception, OSError)
                self.assertTrue(str(e.exception))
                # A refused state leaves the dataset where it was.
                self.assertEqual(ds.state_dict(), good)
        # A position past the epoch's end passes load_state_dict and is
        # refused when the epoch's plan is made, at the first iteration.
        ds = dataset(PY_PATTERN, seed=5, rank=0, world_size=1)
        with self.assertRaisesRegex(DataError, "past the epoch"):
            ds.load_state_dict(dict(good, samples_consumed=PY_SAMPLES + 1))
            next(iter(ds))

    def test_urls_with_credentials_are_refused_without_echoing_the_secret(self):
        for url in ("s3://AKIAEXAMPLE:verysecret@bucket/x.tar",
                    "http://user:verysecret@127.0.0.1:1/x.tar"):
            with self.subTest(url=url), self.assertRaises(DataError) as e:
                dataset(url)
            self.assertIsInstance(e.exception, OSError)
            self.assertNotIn("verysecret", str(e.exception))
            self.assertNotIn("verysecret", repr(e.exception.args))


class CacheTest(unittest.TestCase):
    def test_the_node_local_cache_gives_the_same_samples_and_fills(self):
        cache = tempfile.mkdtemp(prefix="cache-", dir=ROOT)
        for urls in (PY_PATTERN, CLI_MANIFEST):
            with self.subTest(urls=os.path.basename(urls)):
                kw = dict(seed=4, rank=0, world_size=2, shuffle_buffer_bytes=3000)
                plain = dataset(urls, **kw)
                cached = dataset(urls, cache_dir=cache, **kw)
                want = [dict(s) for s in plain]
                self.assertEqual([dict(s) for s in cached], want)
                self.assertTrue(os.listdir(cache))
                again = dataset(urls, cache_dir=cache, **kw)  # from a filled cache
                self.assertEqual([dict(s) for s in again], want)
        self.assertTrue(any(name.endswith(".shard") for name in os.listdir(cache)),
                        os.listdir(cache))


class WithoutTorchTest(unittest.TestCase):
    def test_a_plain_iterable_without_torch(self):
        p = run_python(f"""
            import sys, warnings, json
            sys.modules["torch"] = None  # import torch raises ImportError
            warnings.simplefilter("ignore")
            import xpscale.data as xd
            ds = xd.ShardedDataset({PY_PATTERN!r}, seed=3, rank=0, world_size=2,
                                   shuffle_buffer_bytes=4000)
            first = [s["__key__"] for s in ds]
            print(json.dumps([xd.DataLoader is None, "torch" in sys.modules and
                              sys.modules["torch"] is not None, type(ds).__mro__[1].__name__,
                              first, ds.state_dict()]))
        """)
        self.assertEqual(p.returncode, 0, p.stderr)
        no_loader, torch_loaded, base, got, state = json.loads(p.stdout)
        self.assertTrue(no_loader)
        self.assertFalse(torch_loaded)
        self.assertEqual(base, "object")
        ds = dataset(PY_PATTERN, seed=3, rank=0, world_size=2, shuffle_buffer_bytes=4000)
        self.assertEqual(got, keys(ds))
        self.assertEqual(state, ds.state_dict())


# A child interpreter that serves ROOT over HTTP/1.1 (keep-alive; HEAD and
# Range GETs answered 206 with Content-Range), each GET of a shard SLOW
# seconds late, from a thread of its own, and reads the manifest there:
#   gil:     iterates the dataset while a second thread counts; the server
#            thread needs the GIL to answer, so the iteration finishes only
#            if the loader releases the GIL while it waits;
#   workers: through xpscale.data.DataLoader with 2 worker processes.
HTTP_CHILD = r"""
import http.server, json, os, sys, threading, time, warnings
warnings.simplefilter("ignore")
import xpscale.data as xd

ROOT, SLOW, MODE = sys.argv[1], float(sys.argv[2]), sys.argv[3]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, body):
        path = os.path.join(ROOT, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        if body and path.endswith(".tar"):  # the loader's reads, not the index's
            time.sleep(SLOW)
        with open(path, "rb") as f:
            data = f.read()
        size, first, last, status = len(data), 0, len(data) - 1, 200
        spec = self.headers.get("Range")
        if spec:
            a, b = spec.split("=", 1)[1].split("-")
            first, last, status = int(a), min(int(b or size - 1), size - 1), 206
        self.send_response(status)
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("ETag", '"%d"' % size)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.end_headers()
        if body:
            self.wfile.write(data[first:last + 1])

    def do_HEAD(self):
        self.send_body(False)

    def do_GET(self):
        self.send_body(True)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/" % server.server_address[1]
ds = xd.ShardedDataset(base + "train.manifest.json", seed=2, rank=0, world_size=1,
                       shuffle_buffer_bytes=5000)
if MODE == "gil":
    count, stop = [0], threading.Event()
    def counter():
        while not stop.is_set():
            count[0] += 1
            time.sleep(0.001)
    threading.Thread(target=counter, daemon=True).start()
    t0, c0 = time.monotonic(), count[0]
    got = [s["__key__"] for s in ds]
    elapsed, counted = time.monotonic() - t0, count[0] - c0
    stop.set()
    print(json.dumps({"keys": got, "elapsed": elapsed, "counted": counted}))
else:
    def key(sample):
        return sample["__key__"]
    loader = xd.DataLoader(ds.map(key), batch_size=3, num_workers=2, collate_fn=list)
    epochs = []
    try:
        for epoch in range(3):  # new workers each epoch
            epochs.append([k for batch in loader for k in batch])
        print(json.dumps({"epochs": epochs}))
    except xd.DataError as e:
        print(json.dumps({"error": str(e)}))
"""


def run_http_child(mode, slow):
    p = subprocess.run([sys.executable, "-c", HTTP_CHILD, os.path.join(ROOT, "cli"), str(slow),
                        mode], env=dict(os.environ, PYTHONPATH=PACKAGE_DIR),
                       capture_output=True, text=True, timeout=90)
    if p.returncode != 0:
        raise AssertionError(f"the HTTP child failed ({p.returncode}): {p.stderr[-3000:]}")
    return json.loads(p.stdout)


class HttpTest(unittest.TestCase):
    def want(self, epochs=1):
        ds = dataset(CLI_MANIFEST, seed=2, rank=0, world_size=1, shuffle_buffer_bytes=5000)
        return [keys(ds) for _ in range(epochs)]

    def test_python_threads_run_while_the_loader_waits_for_http(self):
        slow = 0.1
        out = run_http_child("gil", slow)
        self.assertEqual([out["keys"]], self.want())
        # The iteration waited for slow answers (every shard is one GET at
        # least), and the counter, which sleeps 1 ms per count, counted
        # through a good part of that wait (about 90% on an idle machine).
        self.assertGreater(out["elapsed"], slow, out)
        self.assertGreater(out["counted"], out["elapsed"] / 0.001 * 0.1, out)

    # DataLoader workers are forked from a process whose http(s)/s3 client
    # holds keep-alive connections (it opened the dataset over them): each
    # worker must make its own client (sharding/src/source.cpp, PerProcess),
    # or the workers read each other's answers on the shared sockets.
    def test_dataloader_workers_read_http_shards_over_keep_alive(self):
        out = run_http_child("workers", 0.0)
        self.assertNotIn("error", out, out.get("error"))
        self.assertEqual(out["epochs"], self.want(3))


if __name__ == "__main__":
    unittest.main()
