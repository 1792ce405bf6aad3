"""Report metrics and checkpoints from an external xpscale trial.

Standard library only: `import xpscale.report` with python/ on PYTHONPATH,
or copy this file next to your trainer. xpscale runs an external trial with these environment variables:

  XPSCALE_PARAMS          the trial's parameters, a JSON object; nested
                          parameters have flat dotted names ("optimizer.lr")
  XPSCALE_TRIAL_ID        the trial's id
  XPSCALE_CHECKPOINT_DIR  the trial's checkpoint directory; a resumed trial
                          gets the same directory back
  XPSCALE_METRICS_FD      the file descriptor metrics are written to
  RANK, WORLD_SIZE, ...   the usual distributed variables; RANK is the rank
                          within the trial's group

Metrics are JSON lines on XPSCALE_METRICS_FD, one flat object per report():

  {"step":3,"loss":0.25,"acc":0.91}

"step" is reserved. Values are numbers or any JSON value; NaN and +-inf are
not JSON and are written as null. Keep a line under 1 MiB: xpscale cuts
longer lines. Run by hand (no XPSCALE_METRICS_FD), report() prints the line
to stderr instead, so a trainer works unchanged outside xpscale.

A checkpoint is marked complete by checkpoint_saved(step), which writes
<checkpoint_dir>/xpscale_checkpoint.json = {"step": N} atomically (temporary
file + os.replace); resume_step() reads it back (-1 if none). Call it only
after every file of the checkpoint is written.

Example:

    import xpscale.report as xr
    p = xr.params()
    start = xr.resume_step() + 1          # 0 on a fresh start
    for step in range(start, 100):
        loss = train_one_epoch(p["optimizer.lr"])
        if xr.is_leader():
            save(xr.checkpoint_dir())
            xr.checkpoint_saved(step)
            xr.report(step=step, loss=loss)
"""

from __future__ import annotations

import json
import math
import operator
import os
import sys
import tempfile
import threading
from typing import Any, Dict, Mapping, Optional

__all__ = [
    "params",
    "unflatten",
    "trial_id",
    "checkpoint_dir",
    "report",
    "checkpoint_saved",
    "resume_step",
    "is_leader",
]

CHECKPOINT_FILE = "xpscale_checkpoint.json"

_lock = threading.Lock()
_next_step = 0
_lines_written = 0  # metrics lines written to XPSCALE_METRICS_FD by this process


def params() -> dict:
    """The trial's parameters from XPSCALE_PARAMS, flat dotted names; {} if unset."""
    text = os.environ.get("XPSCALE_PARAMS")
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("XPSCALE_PARAMS: expected a JSON object, got " + type(value).__name__)
    return value


def flatten(nested: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{"optimizer": {"lr": 0.1}, "epochs": 3} -> {"optimizer.lr": 0.1, "epochs": 3}."""
    flat: Dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict:
    """{"optimizer.lr": 0.1, "epochs": 3} -> {"optimizer": {"lr": 0.1}, "epochs": 3}.

    Raises ValueError when a name is both a value and a prefix of another
    ("a": 1 and "a.b": 2)."""
    out: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = out
        for i, key in enumerate(parents):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"parameter {'.'.join(parents[: i + 1])!r} is both a value "
                                 f"and a group (in {name!r})")
            node = child
        if leaf in node:
            raise ValueError(f"parameter {name!r} is both a value and a group")
        node[leaf] = value
    return out


def trial_id() -> Optional[str]:
    """XPSCALE_TRIAL_ID, or None when not run by xpscale."""
    return os.environ.get("XPSCALE_TRIAL_ID")


def checkpoint_dir() -> Optional[str]:
    """XPSCALE_CHECKPOINT_DIR, or None when not run by xpscale."""
    return os.environ.get("XPSCALE_CHECKPOINT_DIR") or None


def is_leader() -> bool:
    """True on rank 0 of the trial's group (RANK == "0"), and when RANK is unset."""
    return os.environ.get("RANK", "0") == "0"


def _json_value(value: Any, where: str) -> Any:
    """value as plain JSON types; non-finite floats become None (null)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v, where) for v in value]
    item = getattr(value, "item", None)  # numpy scalars, 0-d tensors
    if callable(item):
        return _json_value(item(), where)
    raise TypeError(f"metric {where!r}: {type(value).__name__} is not a number or JSON value")


def _format(step: int, metrics: Mapping[str, Any]) -> str:
    obj = {"step": step}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings, got {name!r}")
        if name == "step":
            raise ValueError("'step' is reserved: pass report(..., step=N)")
        obj[name] = _json_value(value, name)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def report(metrics: Optional[Mapping[str, Any]] = None, /, step: Optional[int] = None,
           **kwargs: Any) -> None:
    """Writes one metrics line: report(step=3, loss=0.5) or report({"loss": 0.5}, step=3).

    step is an int >= 0; when omitted it is one more than the last step this
    process reported (0 at first). Thread-safe; the line is written with
    os.write, so nothing stays buffered. Raises ValueError / TypeError for a
    bad name, step or value, OSError if the write fails."""
    global _next_step, _lines_written
    merged = dict(metrics or {})
    overlap = merged.keys() & kwargs.keys()
    if overlap:
        raise ValueError(f"metric {sorted(overlap)[0]!r} given twice")
    merged.update(kwargs)
    with _lock:
        if step is None:
            step = _next_step
        elif isinstance(step, bool):
            raise TypeError("step must be an int, not bool")
        else:
            step = operator.index(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        line = _format(step, merged) + "\n"
        fd_text = os.environ.get("XPSCALE_METRICS_FD")
        if fd_text:
            _write_all(int(fd_text), line.encode())
            _lines_written += 1  # the runtime acknowledges lines (Trial.should_stop)
        else:
            sys.stderr.write(line)
            sys.stderr.flush()
        _next_step = step + 1


def _directory(directory: Optional[str]) -> str:
    d = directory if directory is not None else checkpoint_dir()
    if not d:
        raise RuntimeError("no checkpoint directory: XPSCALE_CHECKPOINT_DIR is not set "
                           "(pass directory= when running by hand)")
    return d


def checkpoint_saved(step: int, directory: Optional[str] = None) -> None:
    """Records that the checkpoint directory holds a complete checkpoint of step.

    Writes <dir>/xpscale_checkpoint.json = {"step": step} through a temporary
    file, fsync and os.replace, so a crash leaves the old or the new record,
    never a torn one. directory defaults to checkpoint_dir(); RuntimeError if
    neither is set."""
    if isinstance(step, bool):
        raise TypeError("step must be an int, not bool")
    step = operator.index(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    d = _directory(directory)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".xpscale_checkpoint.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"step": step}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(d, CHECKPOINT_FILE))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def resume_step(directory: Optional[str] = None) -> int:
    """The step of the last complete checkpoint (see checkpoint_saved()), or -1
    when there is none or no checkpoint directory is set. Raises ValueError if
    the record is malformed."""
    d = directory if directory is not None else checkpoint_dir()
    if not d:
        return -1
    path = os.path.join(d, CHECKPOINT_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return -1
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    step = record.get("step") if isinstance(record, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f'{path}: expected {{"step": <int >= 0>}}')
    return step
