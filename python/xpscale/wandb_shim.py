"""W&B-style training scripts under xpscale, without a W&B server or account.

`import wandb` in a trial that xpscale starts finds the `wandb` module of
xpscale/_wandb/ first on PYTHONPATH (the launcher puts it there for
external sweeps; `wandb:` in the sweep config chooses the mode, and the
trial sees it in XPSCALE_WANDB). That module is a thin loader; this file is
what it loads:

  shim         the API below: wandb.init / config / log / summary / finish /
               agent / sweep / define_metric ..., reporting every committed
               log to xpscale through xpscale.report (standard library only).
  passthrough  the real wandb, found further along sys.path, with its log
               wrapped (load_real()): calls go through to W&B unchanged, and
               the same metrics go to xpscale too. WANDB_MODE=offline and
               the rest of W&B's settings are left as they are.
  auto         passthrough when the real wandb is importable, else shim.

W&B semantics kept (from W&B's run.log documentation and its core handler,
internal/stream/handler.go): one history row per committed log, numbered by
_step from 0; log(step=N) with N above the current step commits what is
pending first and moves to N; a step below it is ignored with a warning;
commit defaults to True without step= and to False with it; commit=False
accumulates into the next commit; finish() commits what is pending. The
sweep's parameters win over init(config=...) defaults, and an update of a
sweep parameter is ignored with a warning ("locked by sweep").

Only numbers (and numpy scalars / 0-d tensors) are reported to xpscale;
images, tables, histograms and strings stay in the summary only. A nested
dict logged as {"val": {"loss": 1}} is the metric "val.loss", as W&B names
it. Run by hand (no XPSCALE_ environment), reports print to stderr, as
xpscale.report does.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import sys
import threading
from typing import Any, Callable, Dict, Iterator, Mapping, MutableMapping, Optional

from xpscale import report as _report

__all__ = [
    "init", "log", "finish", "login", "sweep", "agent", "define_metric", "watch", "unwatch",
    "save", "alert", "log_artifact", "use_artifact", "Run", "Config", "Summary", "Table",
    "Image", "Histogram", "Artifact", "Audio", "Video", "Html", "Object3D", "Settings",
    "AlertLevel", "termlog", "termwarn", "termerror", "load_real", "params_nested",
]


def _warn(text: str) -> None:
    sys.stderr.write(f"wandb (xpscale shim): {text}\n")
    sys.stderr.flush()


def params_nested() -> dict:
    """The trial's parameters nested as W&B nests them: XPSCALE_PARAMS_NESTED
    when set (exact), else XPSCALE_PARAMS unflattened by dots; {} by hand."""
    text = os.environ.get("XPSCALE_PARAMS_NESTED")
    if text:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("XPSCALE_PARAMS_NESTED: expected a JSON object")
        return value
    return _report.unflatten(_report.params())


class Config(MutableMapping):
    """wandb.config: attribute and item access over the run's parameters.

    Nested parameters are plain dicts (config.optimizer["lr"]), as in W&B.
    Keys set by the sweep are locked: updating one keeps the sweep's value."""

    def __init__(self) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_locked", set())

    def _set(self, key: str, value: Any) -> None:
        if key in self._locked and self._items.get(key) != value:
            _warn(f"config item {key!r} was locked by the sweep (ignored update)")
            return
        self._items[key] = value

    def _lock(self, keys) -> None:
        self._locked.update(keys)

    def update(self, d: Any = None, allow_val_change: bool = False, **kwargs: Any) -> None:
        for key, value in dict(_as_mapping(d), **kwargs).items():
            self._set(str(key), value)

    def setdefaults(self, d: Any) -> None:
        for key, value in _as_mapping(d).items():
            self._items.setdefault(str(key), value)

    def as_dict(self) -> dict:
        return dict(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._set(str(key), value)

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_items", "_locked"):
            raise AttributeError(name)  # copy/pickle probe before __init__ has run
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"wandb.config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._set(name, value)

    def __repr__(self) -> str:
        return f"Config({self._items!r})"


def _as_mapping(d: Any) -> Mapping:
    if d is None:
        return {}
    if isinstance(d, Mapping):
        return d
    if hasattr(d, "__dict__"):  # argparse.Namespace, as W&B accepts
        return vars(d)
    raise TypeError(f"wandb config: expected a dict or a namespace, got {type(d).__name__}")


class Summary(dict):
    """run.summary: the last logged value of each key (or the min/max/mean/
    first asked for by define_metric(summary=...)); writable."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _number(value: Any) -> Optional[float]:
    """value as a reportable number, or None (strings, media, bools)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    item = getattr(value, "item", None)  # numpy scalars, 0-d tensors
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            inner = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return _number(inner)
    return None


class History:
    """W&B's step rules (see the module's doc) turned into xpscale reports.

    Shared by the shim's Run and the passthrough wrapper, so both number
    steps as W&B does."""

    def __init__(self, on_row: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> None:
        self.step = 0
        self._pending: Dict[str, Any] = {}
        self._on_row = on_row or self.report
        self._lock = threading.Lock()
        self._warned_step_name = False
        self._pid = os.getpid()
        self._warned_pid = False

    def log(self, data: Mapping, step: Optional[int] = None,
            commit: Optional[bool] = None) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"wandb.log: expected a dict, got {type(data).__name__}")
        if os.getpid() != self._pid:
            # A forked child (multiprocessing) would report again from the
            # parent's step: W&B drops its logs too.
            if not self._warned_pid:
                _warn("log() from a child process (pid %d) of the run's process is ignored; "
                      "log from the process that called wandb.init()" % os.getpid())
                self._warned_pid = True
            return
        with self._lock:
            if step is not None:
                step = int(step)
                if step > self.step:
                    self._flush_locked(step)
                elif step < self.step:
                    _warn(f"tried to log to step {step} that is less than the current step "
                          f"{self.step}; steps must increase, so this data is ignored")
                    return
            self._pending.update(_report.flatten(data))
            if commit if commit is not None else step is None:
                self._flush_locked(self.step + 1)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked(self.step + 1)

    def _flush_locked(self, next_step: int) -> None:
        if self._pending:  # nothing pending: only the step moves
            row, self._pending = self._pending, {}
            self._on_row(self.step, row)
        self.step = next_step

    def report(self, step: int, row: Mapping[str, Any]) -> None:
        """Sends the row's numbers to xpscale as one report at W&B's step."""
        metrics = {}
        for name, value in row.items():
            number = _number(value)
            if number is None:
                continue
            if name == "step":  # xpscale.report's own key
                if not self._warned_step_name:
                    _warn("metric 'step' is xpscale's step (W&B's _step) and is not reported "
                          "as a metric; log it under another name")
                    self._warned_step_name = True
                continue
            metrics[name] = number
        if metrics:
            _report.report(metrics, step=step)


# --- the shim's run ---------------------------------------------------------

_SUMMARY_KINDS = ("min", "max", "mean", "first", "last", "best", "none")


class Run:
    """What wandb.init() returns: config, summary, log, finish, and the
    placeholders W&B scripts call. A context manager, as in W&B."""

    def __init__(self, name: Optional[str], project: Optional[str], entity: Optional[str],
                 group: Optional[str], job_type: Optional[str], tags: Any, notes: Optional[str],
                 config: Any, sweep_params: Mapping[str, Any]) -> None:
        trial = _report.trial_id()
        self.id = trial if trial is not None else hashlib.sha1(
            os.urandom(16)).hexdigest()[:8]
        self.name = name or os.environ.get("WANDB_NAME") or (
            f"trial-{trial}" if trial is not None else f"run-{self.id}")
        self.project = project or os.environ.get("WANDB_PROJECT") or "uncategorized"
        self.entity = entity or os.environ.get("WANDB_ENTITY")
        self.group, self.job_type, self.notes = group, job_type, notes
        self.tags = tuple(tags or ())
        self.sweep_id = os.environ.get("XPSCALE_SWEEP_ID")
        self.config = Config()
        self.config.update(config)
        self.config.update(sweep_params)  # the sweep wins over init's defaults, as in W&B
        self.config._lock(sweep_params.keys())
        self.summary = Summary()
        self._metrics: Dict[str, Dict[str, Any]] = {}  # define_metric bookkeeping
        self._means: Dict[str, list] = {}
        self._history = History(self._row)
        self._finished = False
        self._logged: set = set()  # metric names logged so far

    @property
    def step(self) -> int:
        return self._history.step

    @property
    def dir(self) -> str:
        """A directory for the run's files: <trial dir>/wandb under xpscale."""
        trial_dir = os.environ.get("XPSCALE_TRIAL_DIR")
        path = (os.path.join(trial_dir, "wandb") if trial_dir else
                os.path.join(os.getcwd(), "wandb", f"run-{self.id}", "files"))
        os.makedirs(path, exist_ok=True)
        return path

    def log(self, data: Mapping, step: Optional[int] = None, commit: Optional[bool] = None,
            sync: Any = None) -> None:
        if self._finished:
            _warn("log() after finish(): ignored")
            return
        self._history.log(data, step=step, commit=commit)

    def _row(self, step: int, row: Dict[str, Any]) -> None:
        for name, value in row.items():
            self._logged.add(name)
            self._summarise(name, value)
        self._history.report(step, row)

    def _summarise(self, name: str, value: Any) -> None:
        kind = self._metrics.get(name, {}).get("summary") or "last"
        number = _number(value)
        old = self.summary.get(name)
        if kind == "best":
            kind = "max" if self._metrics[name].get("goal") in ("max", "maximize") else "min"
        if number is None or kind == "last":
            self.summary[name] = value
        elif kind == "min":
            self.summary[name] = number if old is None else min(old, number)
        elif kind == "max":
            self.summary[name] = number if old is None else max(old, number)
        elif kind == "first":
            self.summary.setdefault(name, number)
        elif kind == "mean":
            seen = self._means.setdefault(name, [])
            seen.append(number)
            self.summary[name] = math.fsum(seen) / len(seen)

    def define_metric(self, name: str, step_metric: Optional[str] = None,
                      step_sync: Optional[bool] = None, hidden: Optional[bool] = None,
                      summary: Optional[str] = None, goal: Optional[str] = None,
                      overwrite: Optional[bool] = None, **kwargs: Any) -> Dict[str, Any]:
        """Recorded; summary="min"|"max"|"mean"|"first"|"last"|"best" (with
        goal) shapes run.summary as in W&B. Charts' step metrics have no
        meaning here."""
        if summary:
            for kind in str(summary).split(","):
                if kind.strip() not in _SUMMARY_KINDS:
                    raise ValueError(f"define_metric: unknown summary {kind!r}")
        entry = {"step_metric": step_metric, "summary": (summary or "").split(",")[0].strip()
                 or None, "goal": goal, "hidden": hidden}
        self._metrics[name] = entry
        return entry

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        global run
        if self._finished:
            return
        self._history.flush()
        # W&B's sweep reads the metric from the run's summary: a script may
        # only set it there (run.summary["val_acc"] = best). Reported once,
        # at the end, when it was never logged.
        metric = os.environ.get("XPSCALE_METRIC")
        if metric and metric not in self._logged and os.getpid() == self._history._pid:
            value = _number(self.summary.get(metric))
            if value is not None:
                self._history.report(self._history.step, {metric: value})
        self._finished = True
        if run is self:
            run = None

    # Harmless placeholders of W&B's run API.
    def watch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def save(self, *args: Any, **kwargs: Any) -> list:
        return []

    def alert(self, title: str = "", text: str = "", *args: Any, **kwargs: Any) -> None:
        _warn(f"alert: {title}: {text}")

    def log_artifact(self, artifact: Any, *args: Any, **kwargs: Any) -> Any:
        return artifact

    def use_artifact(self, artifact: Any, *args: Any, **kwargs: Any) -> Any:
        return artifact if isinstance(artifact, Artifact) else Artifact(str(artifact), "")

    def log_code(self, *args: Any, **kwargs: Any) -> None:
        return None

    def mark_preempting(self) -> None:
        return None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.finish(exit_code=1 if exc_type else 0)
        return False

    def __repr__(self) -> str:
        return f"<Run {self.id} ({self.name}) under xpscale>"


run: Optional[Run] = None
config = Config()     # replaced by init(); before it, an empty config
summary = Summary()   # likewise


def init(project: Optional[str] = None, entity: Optional[str] = None, config: Any = None,
         name: Optional[str] = None, reinit: Any = None, group: Optional[str] = None,
         job_type: Optional[str] = None, tags: Any = None, notes: Optional[str] = None,
         **kwargs: Any) -> Run:
    """Starts this process's run. The config holds init's config= defaults
    under the trial's parameters. With a run already active, reinit=True (or
    "finish_previous", "create_new") finishes it and starts another;
    otherwise the active run is returned, as W&B does outside notebooks."""
    global run
    this = sys.modules[__name__]
    if run is not None:
        if reinit in (True, "finish_previous", "create_new"):
            run.finish()
        else:
            return run
    if kwargs.get("config_exclude_keys") or kwargs.get("config_include_keys"):
        given = dict(_as_mapping(config))
        include = kwargs.get("config_include_keys")
        exclude = set(kwargs.get("config_exclude_keys") or ())
        config = {k: v for k, v in given.items()
                  if k not in exclude and (include is None or k in include)}
    run = Run(name, project, entity, group, job_type, tags, notes, config, params_nested())
    this.config = run.config
    this.summary = run.summary
    return run


def _active(what: str) -> Run:
    if run is None:
        raise RuntimeError(f"You must call wandb.init() before wandb.{what}()")
    return run


def log(data: Mapping, step: Optional[int] = None, commit: Optional[bool] = None,
        sync: Any = None) -> None:
    _active("log").log(data, step=step, commit=commit)


def define_metric(name: str, *args: Any, **kwargs: Any) -> Dict[str, Any]:
    return _active("define_metric").define_metric(name, *args, **kwargs)


def finish(exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
    if run is not None:
        run.finish(exit_code=exit_code)


atexit.register(finish)  # W&B commits what is pending at exit too


def login(*args: Any, **kwargs: Any) -> bool:
    return True


def sweep(sweep: Any, entity: Optional[str] = None, project: Optional[str] = None,
          prior_runs: Any = None) -> str:
    """A stable id for the sweep config. Under xpscale the sweep is the one
    `xpscale run` runs; this process is one of its trials."""
    if os.environ.get("XPSCALE_SWEEP_ID"):
        return os.environ["XPSCALE_SWEEP_ID"]
    text = json.dumps(sweep, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def agent(sweep_id: str, function: Optional[Callable[[], Any]] = None,
          entity: Optional[str] = None, project: Optional[str] = None,
          count: Optional[int] = None, **kwargs: Any) -> None:
    """Calls function() once: under xpscale this process is one trial, and
    xpscale's searcher starts the next. Without a function, nothing (W&B's
    agent would run the sweep's program, which xpscale does itself)."""
    if function is None:
        return
    try:
        function()
    finally:
        finish()


def watch(*args: Any, **kwargs: Any) -> None:
    return None


def unwatch(*args: Any, **kwargs: Any) -> None:
    return None


def save(*args: Any, **kwargs: Any) -> list:
    return []


def alert(title: str = "", text: str = "", *args: Any, **kwargs: Any) -> None:
    _warn(f"alert: {title}: {text}")


def log_artifact(artifact: Any, *args: Any, **kwargs: Any) -> Any:
    return artifact


def use_artifact(artifact: Any, *args: Any, **kwargs: Any) -> Any:
    return artifact if isinstance(artifact, Artifact) else Artifact(str(artifact), "")


def termlog(text: str = "", *args: Any, **kwargs: Any) -> None:
    sys.stderr.write(f"wandb: {text}\n")


def termwarn(text: str = "", *args: Any, **kwargs: Any) -> None:
    sys.stderr.write(f"wandb: WARNING {text}\n")


def termerror(text: str = "", *args: Any, **kwargs: Any) -> None:
    sys.stderr.write(f"wandb: ERROR {text}\n")


class _Media:
    """Placeholder of a W&B data type: keeps what it was given, is not a metric."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"<wandb.{type(self).__name__} (not recorded by xpscale)>"


class Table(_Media):
    def __init__(self, columns: Any = None, data: Any = None, *args: Any, **kwargs: Any):
        super().__init__(columns, data, *args, **kwargs)
        self.columns = list(columns or [])
        self.data = [list(r) for r in (data or [])]

    def add_data(self, *row: Any) -> None:
        self.data.append(list(row))


class Image(_Media):
    pass


class Histogram(_Media):
    pass


class Audio(_Media):
    pass


class Video(_Media):
    pass


class Html(_Media):
    pass


class Object3D(_Media):
    pass


class Artifact(_Media):
    def __init__(self, name: str = "", type: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(name, type, *args, **kwargs)
        self.name, self.type = name, type

    def add_file(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_dir(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add(self, *args: Any, **kwargs: Any) -> None:
        return None

    def download(self, root: Optional[str] = None, *args: Any, **kwargs: Any) -> str:
        return root or os.getcwd()


class Settings(_Media):
    pass


class AlertLevel:
    INFO, WARN, ERROR = "INFO", "WARN", "ERROR"


# --- passthrough: the real wandb, its log wrapped ---------------------------

def find_real(shim_root: str) -> Optional[importlib.machinery.ModuleSpec]:
    """The spec of a `wandb` found on sys.path outside shim_root, or None."""
    root = os.path.realpath(shim_root)
    paths = [p for p in sys.path
             if os.path.realpath(p or os.getcwd()) != root]
    return importlib.machinery.PathFinder.find_spec("wandb", paths)


def write_sweep_params(directory: str, run_id: str, nested: Mapping[str, Any]) -> str:
    """Writes the file W&B's agent writes for a run (wandb_agent.py,
    _command_run: <dir>/config-<run>.yaml, "wandb_version: 1" then
    {param: {value: v}}), which wandb.init() reads through
    WANDB_SWEEP_PARAM_PATH. Each value is written as JSON, which YAML reads
    as the same value; written here because PyYAML may not be installed."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"config-{run_id}.yaml")
    lines = ["wandb_version: 1", ""]
    for key, value in nested.items():
        lines.append(f"{json.dumps(str(key))}:")
        lines.append(f"  value: {json.dumps(value)}")
    tmp = f"{path}.{os.getpid()}.tmp"  # every rank of the trial writes it
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


_in_wrapper = threading.local()


def _log_args(args: tuple, kwargs: Mapping[str, Any]) -> tuple:
    """(data, step, commit) of a call of W&B's log(data, step=None,
    commit=None, ...), the signature since wandb 0.10."""
    named = dict(zip(("data", "step", "commit"), args))
    for key in ("data", "step", "commit"):
        if key in kwargs:
            named[key] = kwargs[key]
    return named.get("data"), named.get("step"), named.get("commit")


def _wrap_log(real_log: Callable[..., Any], history: History,
              method: bool = False) -> Callable[..., Any]:
    """A log that calls real_log with the same arguments, then sends the same
    data to xpscale with W&B's step rules. method: real_log is Run.log on
    the class (its first argument is the run). A call made from inside
    another wrapped log (wandb.log calling Run.log) reports nothing more."""
    if getattr(real_log, "_xpscale_wrapped", False):
        return real_log

    def log(*args: Any, **kwargs: Any) -> Any:
        outer = not getattr(_in_wrapper, "active", False)
        _in_wrapper.active = True
        try:
            result = real_log(*args, **kwargs)
        finally:
            if outer:
                _in_wrapper.active = False
        if outer:
            data, step, commit = _log_args(args[1:] if method else args, kwargs)
            if isinstance(data, Mapping):
                history.log(data, step=step, commit=commit)
        return result

    log._xpscale_wrapped = True  # type: ignore[attr-defined]
    log.__wrapped__ = real_log  # type: ignore[attr-defined]
    log.__doc__ = getattr(real_log, "__doc__", None)
    return log


def load_real(spec: importlib.machinery.ModuleSpec) -> Any:
    """Loads the real wandb from spec as sys.modules['wandb'], its log
    wrapped (wandb.log, Run.log of the class wandb.init returns), after
    writing the sweep's parameters where wandb.init() reads them as W&B's
    agent leaves them (WANDB_SWEEP_PARAM_PATH). WANDB_SWEEP_ID and
    WANDB_RUN_ID are not set: online, W&B would look for a sweep of that id
    on its server, and a run id would make every attempt resume one run."""
    trial = _report.trial_id()
    if trial is not None and "WANDB_SWEEP_PARAM_PATH" not in os.environ:
        directory = os.environ.get("XPSCALE_TRIAL_DIR") or os.getcwd()
        attempt = os.environ.get("XPSCALE_ATTEMPT", "1")
        os.environ["WANDB_SWEEP_PARAM_PATH"] = write_sweep_params(
            os.path.join(directory, "wandb"), f"t{trial}a{attempt}", params_nested())
    module = importlib.util.module_from_spec(spec)
    sys.modules["wandb"] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop("wandb", None)
        raise
    history = History()  # one step sequence for this process's reports
    if callable(getattr(module, "log", None)):
        module.log = _wrap_log(module.log, history)
    real_init = getattr(module, "init", None)
    if callable(real_init):
        def init(*args: Any, **kwargs: Any) -> Any:
            result = real_init(*args, **kwargs)
            cls = type(result)
            if callable(getattr(cls, "log", None)):
                cls.log = _wrap_log(cls.log, history, method=True)
            # W&B's init rebinds wandb.log to the new run's log.
            if callable(getattr(module, "log", None)):
                module.log = _wrap_log(module.log, history)
            return result
        init.__doc__ = real_init.__doc__
        init.__wrapped__ = real_init  # type: ignore[attr-defined]
        module.init = init
    real_finish = getattr(module, "finish", None)
    if callable(real_finish):
        def finish(*args: Any, **kwargs: Any) -> Any:
            history.flush()
            return real_finish(*args, **kwargs)
        finish.__wrapped__ = real_finish  # type: ignore[attr-defined]
        module.finish = finish
    atexit.register(history.flush)
    return module
