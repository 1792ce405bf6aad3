"""Sharded, resumable streaming of WebDataset-style tar shards: xpscale.data.

    from xpscale.data import ShardedDataset, DataLoader

    ds = ShardedDataset("s3://bucket/fmnist/train-{000000..000015}.tar", seed=0)
    loader = DataLoader(ds.map(decode), batch_size=256, num_workers=2)
    for epoch in range(start_epoch, epochs):
        ds.set_epoch(epoch)
        for batch in loader:
            ...
        torch.save({"data": ds.state_dict(), ...}, path)   # exact resume

The samples come from the C++ loader of xpscale (sharding/loader.h) through
xpscale._native: the same order for the same (dataset, seed, epoch, world
size) as a C++ trial, the same per-rank counts, resume on the same or
another world size, ranged reads with retries from file://, s3:// and
http(s):// URLs, prefetch in background threads that run while Python
computes, and the node-local cache. A sample is a dict:

    {"__key__": "train/000042", "__url__": "s3://bucket/.../train-000002.tar",
     "__offset__": 1536, "png": b"...", "cls": b"3"}

one bytes value per file extension of the sample (the WebDataset
convention); fields of 64 KiB and more come as an xpscale.data.Buffer
instead, read in place without a copy (np.frombuffer, io.BytesIO, PIL,
bytes(field); it pickles as bytes). ds.batched(n, fields) gives numpy
arrays of n samples made in C++, for fixed-size fields. Asking for an extension a sample lacks raises
xpscale.DataError naming the shard, the sample and its byte offset.

Shards need no sidecar and no manifest: a shard without its "<url>.idx"
sidecar (written by `xpscale shard`) is read once in full at start to find
its samples, which is what foreign shards (Python's tarfile, GNU tar,
webdataset's writer) cost; a warning says how much that was.

torch is optional: without it ShardedDataset is a plain iterable.
"""
import json
import os
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from xpscale import _native

try:  # torch is optional
    import torch.utils.data as _torch_data
    _Base: Any = _torch_data.IterableDataset
except ImportError:  # pragma: no cover - torch is installed where tests run
    _torch_data = None
    _Base = object

DataError = _native.DataError

Buffer = _native.Buffer

__all__ = ["ShardedDataset", "DataLoader", "Sample", "Buffer", "DataError", "MissingField",
           "BatchedDataset", "MappedDataset"]

# Samples taken from the C++ loader per call: enough that the call's cost
# vanishes, few enough that the first sample comes at once.
_TAKE = 64
_DEFAULT_SHUFFLE_BUFFER = 16 << 20
_STATE_KEYS = ("epoch", "samples_consumed", "seed", "digest", "world_size", "global_batch")


class MissingField(DataError, KeyError):
    """A sample has no file with the extension asked for (a DataError and a
    KeyError). The message names the shard, the sample, its byte offset and
    the extensions it has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Sample(dict):
    """One sample: "__key__" (str), "__url__" (str, the shard), "__offset__"
    (int, byte offset of its first tar header) and one value per extension:
    bytes, or a Buffer (no copy) for fields of 64 KiB and more. A missing extension raises MissingField (a DataError)."""

    __slots__ = ()

    def __missing__(self, ext: str) -> Any:
        have = ", ".join(k for k in self if not k.startswith("__")) or "none"
        raise MissingField(
            f"{self.get('__url__', '?')}: sample '{self.get('__key__', '?')}' (byte offset "
            f"{self.get('__offset__', '?')}) has no field '{ext}'; it has: {have}")


def _location(urls: Union[str, Sequence[str]]) -> Dict[str, Any]:
    if isinstance(urls, dict):  # from_config: the way the config named them
        return dict(urls)
    if isinstance(urls, (list, tuple)):
        if not urls:
            raise ValueError("ShardedDataset: the list of shard URLs is empty")
        return {"urls": [os.fspath(u) for u in urls]}
    if not isinstance(urls, (str, os.PathLike)):
        raise TypeError("ShardedDataset: urls must be a str (a URL, a brace pattern, a manifest "
                        f"or a prefix ending in '/') or a list of URLs, not {type(urls).__name__}")
    text = os.fspath(urls)
    if text.endswith(".json"):
        return {"manifest": text}
    if text.endswith("/"):
        return {"prefix": text}
    if "{" in text:
        return {"pattern": text}
    return {"urls": [text]}


def _group_from_environment() -> "tuple[int, int]":
    """(rank, world size): torch.distributed's when it is initialized, else
    RANK/WORLD_SIZE (set by xpscale, torchrun and Slurm launchers), else 0/1."""
    if _torch_data is not None:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as e:
        raise ValueError(f"ShardedDataset: RANK/WORLD_SIZE in the environment: {e}") from None


class ShardedDataset(_Base):  # type: ignore[misc,valid-type]
    """One rank's samples of a sharded dataset, epoch after epoch.

    ShardedDataset(urls, *, shuffle=True, seed=0, rank=None, world_size=None,
                   shuffle_buffer_bytes=None, drop_last=False, on_error="fail",
                   global_batch=0, cache_dir=None, cache_max_bytes=0,
                   prefetch_threads=0, prefetch_bytes=0)

    urls: the shards, as
      - a brace pattern: "s3://bucket/train-{000000..000015}.tar";
      - a manifest written by `xpscale shard`: ".../train.manifest.json";
      - a prefix ending in "/": every *.tar, *.tar.gz and *.tgz object under it;
      - one URL, or a list of URLs.
      URLs are file:// (or plain paths), s3:// (AWS_* environment, as
      boto3 reads it), gs:// (an HMAC key in GOOGLE_ACCESS_KEY_ID and
      GOOGLE_SECRET_ACCESS_KEY, or a service-account key file in
      GOOGLE_APPLICATION_CREDENTIALS), az:// (AZURE_STORAGE_* environment,
      as the Azure CLI reads it) or http(s)://; docs/object-storage.md has
      each.
    shuffle: permute the shards each epoch and shuffle samples through a
      buffer of shuffle_buffer_bytes (default 16 MiB; 0 keeps shard order).
      shuffle=False reads the shards in order, and the samples in order
      unless shuffle_buffer_bytes is given.
    seed: of the order (the same seed gives the same order everywhere).
    rank, world_size: this process's place in the group; None takes them
      from torch.distributed when it is initialized (at the first
      iteration), else from RANK and WORLD_SIZE, else 0 and 1. Every rank
      gets exactly len(ds) samples per epoch (short ranks repeat samples;
      drop_last=True cuts instead).
    on_error: "fail" raises DataError for a corrupt sample; "skip" replaces
      it with a repeat of the previous good one.
    global_batch: samples per step over the group; set it (a multiple of
      every world size you may resume on) to resume on another world size.
    cache_dir, cache_max_bytes: a node-local cache of whole shards shared
      by the ranks of a node.
    prefetch_threads, prefetch_bytes: 0 chooses (4 threads for remote
      shards, 1 for files; 64 MiB in flight).

    Epochs: iteration gives the rest of the current epoch and then moves to
    the next one; set_epoch(e) goes to epoch e (a no-op when already there,
    so that a resumed position survives the usual loop). state_dict() says
    where the rank is, load_state_dict() continues from there exactly.

    With DataLoader(num_workers=k), the k workers share the rank's
    sequence: each reads only its own part, nothing is lost or read twice.
    Use xpscale.data.DataLoader (a torch DataLoader) for that: it deals the
    workers' batches so that the sequence does not depend on k, and counts
    what the main process received, so that state_dict() is exact.
    """

    def __init__(self, urls: Union[str, Sequence[str]], *, shuffle: bool = True, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 shuffle_buffer_bytes: Optional[int] = None, drop_last: bool = False,
                 on_error: str = "fail", global_batch: int = 0, cache_dir: Optional[str] = None,
                 cache_max_bytes: int = 0, prefetch_threads: int = 0,
                 prefetch_bytes: int = 0) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"ShardedDataset: on_error must be 'fail' or 'skip', not {on_error!r}")
        if (rank is None) != (world_size is None):
            raise ValueError("ShardedDataset: give both rank and world_size, or neither")
        if world_size is not None and not 0 <= int(rank) < int(world_size):  # type: ignore[arg-type]
            raise ValueError(f"ShardedDataset: rank {rank} is not in [0, {world_size})")
        for name, value in (("seed", seed), ("global_batch", global_batch),
                            ("cache_max_bytes", cache_max_bytes),
                            ("prefetch_threads", prefetch_threads),
                            ("prefetch_bytes", prefetch_bytes),
                            ("shuffle_buffer_bytes", shuffle_buffer_bytes or 0)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"ShardedDataset: {name} must be an integer >= 0, not {value!r}")
        self._dataset = _native.open_dataset(**_location(urls))
        scanned = self._dataset.scanned
        if scanned:
            warnings.warn(
                f"xpscale.data: {len(scanned)} of {len(self._dataset.urls)} shards have no .idx "
                f"sidecar; they were read once in full ({self._dataset.scanned_bytes} bytes) to find "
                "their samples. `xpscale shard` writes sidecars and a manifest that save this.",
                stacklevel=2)
        if shuffle_buffer_bytes is None:
            shuffle_buffer_bytes = _DEFAULT_SHUFFLE_BUFFER if shuffle else 0
        self._options = dict(
            seed=seed, shuffle_shards=bool(shuffle), shuffle_buffer_bytes=shuffle_buffer_bytes,
            drop_last=bool(drop_last), on_error=on_error, global_batch=global_batch,
            prefetch_threads=prefetch_threads, max_bytes_in_flight=prefetch_bytes,
            cache_dir=os.fspath(cache_dir) if cache_dir else "", cache_max_bytes=cache_max_bytes)
        self._group = None if rank is None else (int(rank), int(world_size))  # type: ignore[arg-type]
        self._state: Optional[Dict[str, Any]] = None  # the C++ LoaderState's fields
        self._worker_block = 0  # set by xpscale.data.DataLoader: its batch size
        self._last_stats: Dict[str, Any] = {}

    @classmethod
    def from_config(cls, split: str = "train", **overrides: Any) -> "ShardedDataset":
        """The split `split` ("train", "val") of the sweep config's data: section,
        which xpscale hands an external trial in XPSCALE_DATA: its shards, seed,
        shuffle buffer, drop_last, on_error, cache and prefetch settings.
        Keyword arguments override them (e.g. global_batch=...). Run by hand,
        with no XPSCALE_DATA, pass urls=... to say where the data is."""
        text = os.environ.get("XPSCALE_DATA")
        if not text:
            if "urls" not in overrides:
                raise ValueError(
                    f"ShardedDataset.from_config({split!r}): XPSCALE_DATA is not set (xpscale sets "
                    "it for a sweep config with a data: section); pass urls=... to run by hand")
            urls = overrides.pop("urls")
            overrides.setdefault("shuffle_buffer_bytes", 0)  # as a data: split without shuffle_buffer
            return cls(urls, **overrides)
        if text.startswith("@"):  # a large section travels as a file
            try:
                with open(text[1:], encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise ValueError(f"XPSCALE_DATA names {text[1:]}, which cannot be read: {e}") \
                    from None
        try:
            splits = json.loads(text)
        except ValueError as e:
            raise ValueError(f"XPSCALE_DATA is not JSON: {e}") from None
        if not isinstance(splits, dict) or split not in splits:
            have = ", ".join(sorted(splits)) if isinstance(splits, dict) else "none"
            raise ValueError(f"ShardedDataset.from_config: the config's data: section has no "
                             f"split {split!r} (it has: {have})")
        spec = splits[split]
        if spec.get("manifest"):
            urls: Any = spec["manifest"]
        elif spec.get("pattern"):
            urls = {"pattern": spec["pattern"]}
        elif spec.get("prefix"):
            urls = spec["prefix"]
        else:
            urls = list(spec.get("urls", []))
        options: Dict[str, Any] = dict(
            shuffle=bool(spec.get("shuffle_shards", True)), seed=int(spec.get("seed", 0)),
            shuffle_buffer_bytes=int(spec.get("shuffle_buffer_bytes", 0)),
            drop_last=bool(spec.get("drop_last", False)), on_error=spec.get("on_error", "fail"),
            cache_dir=spec.get("cache_dir") or None,
            cache_max_bytes=int(spec.get("cache_max_bytes", 0)),
            prefetch_bytes=int(spec.get("prefetch_bytes", 0)))
        options.update(overrides)
        urls = options.pop("urls", urls)
        return cls(urls, **options)

    # -- where the rank is --------------------------------------------------

    def _rank_world(self) -> "tuple[int, int]":
        if self._group is None:
            self._group = _group_from_environment()
            if not 0 <= self._group[0] < self._group[1]:
                raise ValueError(f"ShardedDataset: rank {self._group[0]} of {self._group[1]} "
                                 "(from torch.distributed or RANK/WORLD_SIZE) is not valid")
        return self._group

    def _fresh_state(self, epoch: int) -> Dict[str, Any]:
        world = self._rank_world()[1]
        return {"epoch": epoch, "samples_consumed": 0, "seed": self._options["seed"],
                "digest": self._dataset.digest, "world_size": world,
                "global_batch": self._options["global_batch"] or world}

    def _current(self) -> Dict[str, Any]:
        if self._state is None:
            self._state = self._fresh_state(0)
        return self._state

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads (or continues)."""
        return int(self._current()["epoch"])

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of epoch `epoch`; a no-op when the dataset is already
        in that epoch (so that a position restored by load_state_dict stays)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch: epoch must be an integer >= 0, not {epoch!r}")
        if epoch != self.epoch:
            self._state = self._fresh_state(epoch)

    def state_dict(self) -> Dict[str, Any]:
        """Where the rank is: a small dict of ints and strings (the C++ loader's
        LoaderState), the same on every rank. Save it with the checkpoint."""
        return dict(self._current())

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue exactly where state_dict() was taken, also on another world
        size (see global_batch). Raises DataError for a state of another
        dataset or seed, or a malformed one."""
        if not isinstance(state, dict):
            raise DataError(f"load_state_dict: expected the dict of state_dict(), got "
                            f"{type(state).__name__}")
        try:
            text = json.dumps({k: state[k] for k in _STATE_KEYS})
        except KeyError as e:
            raise DataError(f"load_state_dict: the state has no {e.args[0]!r}; expected the dict "
                            "of ShardedDataset.state_dict()") from None
        probe = self._make_loader(0, 1, 1)
        probe.restore(text)  # the C++ loader checks the types, the dataset and the seed
        probe.remaining()  # and plans the rest: a position it cannot continue fails here
        self._state = json.loads(probe.state())

    def __len__(self) -> int:
        """Samples this rank gets per epoch."""
        rank, world = self._rank_world()
        total = self._dataset.samples
        if self._options["drop_last"]:
            return total // world
        return -(-total // world)

    @property
    def samples(self) -> int:
        """Samples in the whole dataset."""
        return int(self._dataset.samples)

    @property
    def urls(self) -> List[str]:
        """The shards, in the dataset's order."""
        return list(self._dataset.urls)

    # -- iteration ----------------------------------------------------------

    def _make_loader(self, worker: int, workers: int, block: int) -> Any:
        rank, world = self._rank_world()
        return _native._Loader(self._dataset, rank=rank, world_size=world, sample_type=Sample,
                               worker=worker, num_workers=workers, worker_block=block,
                               **self._options)

    def _end_state(self, state: Dict[str, Any]) -> Dict[str, Any]:
        return self._fresh_state(int(state["epoch"]) + 1)

    def _open(self, block: Optional[int]) -> "tuple[Any, Dict[str, Any], bool]":
        """This process's loader for the rest of the epoch: (loader, state,
        main). In the main process `state` is the dataset's own, which the
        iteration advances; in a DataLoader worker it is a copy and the loader
        reads only the worker's blocks (of the DataLoader's batch size, else
        `block`): where the rank is, is the main process's count
        (xpscale.data.DataLoader)."""
        info = _torch_data.get_worker_info() if _torch_data is not None else None
        main = info is None or info.num_workers == 1
        if main:
            state = self._current()
            loader = self._make_loader(0, 1, 1)
        else:
            if not (self._worker_block or block):
                warnings.warn(
                    "xpscale.data: ShardedDataset in a torch DataLoader with workers: the main "
                    "process cannot tell what the workers read, so its state_dict() stays where "
                    "the iteration started; use xpscale.data.DataLoader for exact resume",
                    stacklevel=3)
            state = dict(self._current())
            loader = self._make_loader(info.id, info.num_workers,
                                       self._worker_block or block or 1)
        loader.restore(json.dumps(state))
        return loader, state, main

    def __iter__(self) -> Iterator[Sample]:
        loader, state, main = self._open(None)
        world = self._rank_world()[1]
        try:
            while True:
                batch = loader.take(_TAKE)
                if not batch:
                    break
                if main:
                    for sample in batch:
                        state["samples_consumed"] += world
                        yield sample
                else:
                    yield from batch
            self._state = self._end_state(state)  # persistent workers go on from here
        finally:
            self._last_stats = loader.stats()

    # -- transforms ---------------------------------------------------------

    def map(self, fn: Callable[[Sample], Any]) -> "MappedDataset":
        """A dataset of fn(sample) for each sample; its set_epoch, state_dict and
        load_state_dict are this dataset's (fn must pickle for spawned workers)."""
        return MappedDataset(self, fn)

    def batched(self, batch_size: int, fields: Dict[str, Any],
                prefetch: int = 2) -> "BatchedDataset":
        """Batches of batch_size samples as numpy arrays, made in C++ without the
        GIL: no Python object per sample. For fixed-size fields, where per-sample
        decoding in Python is the cost (1 KiB samples, raw tensors, labels):

            ds.batched(256, {"u8": (np.uint8, (28, 28)), "cls": int})
            # -> {"__key__": [256 keys], "u8": uint8 array (256, 28, 28),
            #     "cls": int64 array (256,)}

        A field spec is int (the field's text parsed as an integer, e.g. a
        WebDataset ".cls") or (dtype, shape): the field's bytes taken as that
        many items of dtype. The last batch of an epoch may be short. A sample
        whose field is missing or of another size raises DataError naming the
        shard, the sample and its byte offset. Use it with
        xpscale.data.DataLoader(batched, batch_size=None, num_workers=k).
        prefetch: batches a thread makes ahead while the caller computes (0:
        made on demand); the dataset's state counts only those handed out."""
        return BatchedDataset(self, batch_size, fields, prefetch)

    def stats(self) -> Dict[str, Any]:
        """The C++ loader's figures for this process's last iteration: bytes,
        samples, repeats, skipped, wait_s, elapsed_s, stall_fraction
        (the share of time the consumer waited for data); {} before one."""
        return dict(self._last_stats)

    def _remaining(self) -> int:
        """Samples this rank still gets in the current epoch."""
        probe = self._make_loader(0, 1, 1)
        probe.restore(json.dumps(self._current()))
        return int(probe.remaining())


class _Derived(_Base):  # type: ignore[misc,valid-type]
    """A dataset made from a ShardedDataset (.batched(), .map()): its epoch and
    state are the ShardedDataset's."""

    _source: Any

    def _root(self) -> ShardedDataset:
        return self._source if isinstance(self._source, ShardedDataset) else self._source._root()

    def set_epoch(self, epoch: int) -> None:
        self._root().set_epoch(epoch)

    def state_dict(self) -> Dict[str, Any]:
        return self._root().state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._root().load_state_dict(state)


class BatchedDataset(_Derived):
    """Batches of arrays from a ShardedDataset (ShardedDataset.batched)."""

    def __init__(self, source: ShardedDataset, batch_size: int, fields: Dict[str, Any],
                 prefetch: int = 2) -> None:
        import numpy as np
        if not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"batched: prefetch must be an integer >= 0, not {prefetch!r}")
        self.prefetch = prefetch
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batched: batch_size must be an integer >= 1, not {batch_size!r}")
        if not fields:
            raise ValueError("batched: name at least one field, e.g. {'cls': int}")
        self._source = source
        self.batch_size = batch_size
        self._specs: List[Any] = []
        self._views: Dict[str, Any] = {}
        for ext, spec in fields.items():
            if spec is int:
                self._specs.append((ext, ("int", 0)))
                continue
            try:
                dtype, shape = spec
                dtype = np.dtype(dtype)
                shape = (shape,) if isinstance(shape, int) else tuple(shape)
                nbytes = int(np.prod(shape)) * dtype.itemsize
            except (TypeError, ValueError):
                raise ValueError(f"batched: field {ext!r}: expected int or (dtype, shape), "
                                 f"got {spec!r}") from None
            if nbytes < 1:
                raise ValueError(f"batched: field {ext!r}: {spec!r} holds no bytes")
            self._specs.append((ext, ("raw", nbytes)))
            self._views[ext] = (dtype, shape)

    def _shape(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        for ext, (dtype, shape) in self._views.items():
            raw = batch[ext]
            batch[ext] = raw.view(dtype).reshape((raw.shape[0],) + shape)
        return batch

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        root = self._source
        loader, state, main = root._open(self.batch_size)
        world = root._rank_world()[1]
        batches = self._prefetched(loader) if self.prefetch else self._pulled(loader)
        try:
            for batch in batches:
                if main:
                    state["samples_consumed"] += len(batch["__key__"]) * world
                yield self._shape(batch)
            root._state = root._end_state(state)
        finally:
            batches.close()
            root._last_stats = loader.stats()

    def _pulled(self, loader: Any) -> Iterator[Dict[str, Any]]:
        while True:
            batch = loader.take_batch(self.batch_size, self._specs)
            if batch is None:
                return
            yield batch

    def _prefetched(self, loader: Any) -> Iterator[Dict[str, Any]]:
        """The next `prefetch` batches made by a thread while the caller trains
        (take_batch runs without the GIL, and so do torch's kernels)."""
        import queue
        import threading
        ready: "queue.Queue[Any]" = queue.Queue(self.prefetch)
        stop = threading.Event()
        end = object()

        def produce() -> None:
            try:
                while not stop.is_set():
                    batch = loader.take_batch(self.batch_size, self._specs)
                    item = end if batch is None else batch
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if batch is None:
                        return
            except BaseException as e:  # noqa: BLE001 - raised in the consumer
                while not stop.is_set():  # the consumer may be gone: never block for good
                    try:
                        ready.put(e, timeout=0.1)
                        break
                    except queue.Full:
                        continue

        thread = threading.Thread(target=produce, name="xpscale-batches", daemon=True)
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is end:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def __len__(self) -> int:
        return -(-len(self._source) // self.batch_size)


class MappedDataset(_Derived):
    """fn applied to each sample of a ShardedDataset (ShardedDataset.map)."""

    def __init__(self, source: Any, fn: Callable[[Any], Any]) -> None:
        self._source = source
        self._fn = fn

    def __iter__(self) -> Iterator[Any]:
        fn = self._fn
        for sample in self._source:
            yield fn(sample)

    def __len__(self) -> int:
        return len(self._source)

    def map(self, fn: Callable[[Any], Any]) -> "MappedDataset":
        return MappedDataset(self, fn)


if _torch_data is not None:
    class DataLoader(_torch_data.DataLoader):
        """A torch.utils.data.DataLoader over a ShardedDataset (or its .map())
        that keeps the dataset's position exact with worker processes.

        Its workers take turns a batch at a time through the rank's sequence,
        so the batches are the same for any num_workers (0 included), and
        the dataset's state_dict() counts the batches this process received:
        resume continues after the last batch the training loop saw. Takes
        torch's DataLoader arguments (batch_size, num_workers, collate_fn,
        pin_memory, ...); sampler and shuffle do not apply (the dataset
        orders itself).
        """

        def __init__(self, dataset: Any, batch_size: Optional[int] = 1, **kwargs: Any) -> None:
            if isinstance(dataset, BatchedDataset):
                if batch_size is not None:
                    raise ValueError("xpscale.data.DataLoader: the dataset is batched already; "
                                     "pass batch_size=None")
                block = dataset.batch_size
            else:
                block = batch_size or 1
            if not isinstance(dataset, (ShardedDataset, _Derived)):
                raise TypeError("xpscale.data.DataLoader: the dataset must be a ShardedDataset "
                                f"or its .map(), not {type(dataset).__name__}; use "
                                "torch.utils.data.DataLoader for other datasets")
            if kwargs.get("persistent_workers"):
                raise ValueError(
                    "xpscale.data.DataLoader: persistent_workers=True would keep each worker at "
                    "its own position across set_epoch() and load_state_dict(); leave it off "
                    "(the workers start in well under a second)")
            root = dataset if isinstance(dataset, ShardedDataset) else dataset._root()
            if root._worker_block and root._worker_block != block:
                raise ValueError(
                    f"xpscale.data.DataLoader: this dataset already feeds a DataLoader of batches "
                    f"of {root._worker_block}; its workers deal the rank's samples in blocks of "
                    f"that size, so another DataLoader needs a ShardedDataset of its own")
            root._worker_block = block
            self._xpscale_root = root
            super().__init__(dataset, batch_size=batch_size, **kwargs)

        def __iter__(self) -> Iterator[Any]:
            root = self._xpscale_root
            if self.num_workers == 0:  # the dataset counts what it gives
                yield from super().__iter__()
                return
            state = dict(root._current())
            world = root._rank_world()[1]
            start = int(state["samples_consumed"])
            rest = root._remaining()
            block = root._worker_block
            batches = 0
            for batch in super().__iter__():
                batches += 1
                now = dict(state)
                now["samples_consumed"] = start + min(batches * block, rest) * world
                root._state = now
                yield batch
            root._state = root._end_state(state)
else:  # pragma: no cover
    DataLoader = None  # type: ignore[assignment,misc]
