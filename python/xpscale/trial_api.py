"""The trial API for Python trials: xpscale.trial() and Trial.

A Trial is this process's view of its trial. Under xpscale it is made from
the environment the runtime starts an external trial with (launcher/
external_trial.h): XPSCALE_TRIAL_ID, XPSCALE_ATTEMPT, XPSCALE_PARAMS,
XPSCALE_CHECKPOINT_DIR, XPSCALE_METRICS_FD, RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE. Without them (a plain `python3 train.py`) it is a
standalone trial: parameters from argv over the defaults given to trial(),
reports printed to stderr, checkpoints in ./checkpoint.

The checkpoint marker is read and written by the C++ code of the C++ API
(xpscale._native), so both kinds of trial leave the same files.
"""
import ast
import json
import os
import sys
import time
from typing import Any, Dict, Mapping, Optional, Sequence

from xpscale import _native
from xpscale import report as _report

__all__ = ["Trial", "trial"]


def _parse_value(text: str) -> Any:
    """A command-line value typed as W&B writes it: True/False (or true/false)
    -> bool, a JSON number, list or map -> that value, anything else (a JSON
    string included, quotes and all) -> the text as given."""
    stripped = text.strip()
    if stripped in ("True", "true"):
        return True
    if stripped in ("False", "false"):
        return False
    try:
        value = json.loads(stripped)
    except ValueError:
        if not stripped.startswith(("[", "{")):
            return text
        # A list or dict as W&B's agent writes it: Python's str(), e.g.
        # {'lr': 0.1, 'name': 'adam'} for a nested parameter.
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
    return value if isinstance(value, (int, float, list, dict)) else text


def _parse_argv(argv: Sequence[str]) -> Dict[str, Any]:
    """--name=value, --name value and name=value (W&B's ${args} and
    ${args_no_hyphens}) into flat dotted names. Raises ValueError naming the
    word it cannot read."""
    flat: Dict[str, Any] = {}
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            if not eq:
                if i + 1 < len(words) and not words[i + 1].startswith("--"):
                    value = words[i + 1]
                    i += 1
                else:
                    value = "True"  # a bare flag
        else:
            name, eq, value = word.partition("=")
            if not eq:
                raise ValueError(f"argument {word!r}: expected --name=value, --name value "
                                 "or name=value")
        if not name:
            raise ValueError(f"argument {word!r}: no parameter name")
        parsed = _parse_value(value)
        if isinstance(parsed, dict):  # a nested parameter: --optimizer={'lr': 0.1}
            flat.update(_report.flatten(parsed, name + "."))
        else:
            flat[name] = parsed
        i += 1
    return flat


def _int_env(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected an integer") from None


class Trial:
    """One trial as seen from this process (one rank of the trial's group).

    Attributes:
        id: the trial's id (a string), None for a standalone trial.
        attempt: 1 on the first attempt, 2 on the first retry, ...
        params: the parameters, nested as the config nests them
            ({"optimizer": {"lr": 0.1}}), typed as the config declared them.
        flat_params: the same with dotted names ({"optimizer.lr": 0.1}).
        rank, world_size: this process's rank in the trial's group and the
            group's size (torch.distributed's RANK and WORLD_SIZE).
        local_rank, local_world_size: the same among the group's ranks on
            this host.
        standalone: True when not run by xpscale.
    """

    def __init__(self, flat_params: Mapping[str, Any], *, trial_id: Optional[str] = None,
                 attempt: int = 1, checkpoint_dir: Optional[str] = None, rank: int = 0,
                 world_size: int = 1, local_rank: int = 0, local_world_size: int = 1,
                 standalone: bool = True, control_path: Optional[str] = None) -> None:
        self.id = trial_id
        self.attempt = attempt
        self.flat_params: Dict[str, Any] = dict(flat_params)
        self.params: Dict[str, Any] = _report.unflatten(self.flat_params)
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.local_world_size = local_world_size
        self.standalone = standalone
        # Resolved once: a standalone trial's ./checkpoint is the working
        # directory's at creation, whatever the script does with cwd later.
        self._checkpoint_dir = checkpoint_dir or os.path.abspath("checkpoint")
        self._control = control_path
        self._polling = False
        self._control_last: Optional[Dict[str, Any]] = None
        self._stop_reason: Optional[str] = None

    @property
    def is_leader(self) -> bool:
        """True on rank 0 of the group: only its reports are recorded."""
        return self.rank == 0

    @property
    def checkpoint_dir(self) -> str:
        """The trial's checkpoint directory, created on first use. The same
        directory on every attempt and after a preemption or requeue: when
        resuming, it holds what the last attempt saved."""
        os.makedirs(self._checkpoint_dir, exist_ok=True)
        return self._checkpoint_dir

    def report(self, metrics: Optional[Mapping[str, Any]] = None, /,
               step: Optional[int] = None, **kwargs: Any) -> None:
        """Reports metrics for a step: report(step=3, loss=0.5, acc=0.9) or
        report({"loss": 0.5}, step=3). The line is written to the runtime
        (os.write on XPSCALE_METRICS_FD, nothing buffered) before report()
        returns; standalone, it is printed to stderr. step defaults to one
        more than the last one reported. Values are numbers or JSON values
        (numpy scalars and 0-d tensors too); NaN and inf become null.
        Raises ValueError or TypeError for a bad name, step or value."""
        _report.report(metrics, step=step, **kwargs)

    def should_stop(self, wait: bool = True) -> bool:
        """True once the scheduler has stopped this trial (ASHA, Hyperband or
        the median rule after a report; a PBT exploit, which restarts it
        with the donor's parameters and checkpoint). Call it after report(),
        every epoch or every few steps, then save what you want and return.

        On the leader (rank 0) it answers for the reports made so far: with
        wait=True it waits (a few milliseconds, at most 10 s) until the
        runtime has decided on the last one. Other ranks see the decision
        when the runtime writes it; under DDP, agree on it (all_reduce the
        flag with MAX) so that every rank stops at the same step.

        A trial whose ranks call it gets the runtime's stop grace (30 s by
        default, `xpscale run --stop-grace`) to end by itself; one that never
        calls it is ended at once. Standalone, always False."""
        if not self._control:
            return False
        if not self._polling:  # tells the runtime this process listens
            with open(self._control + ".polling", "a"):
                pass
            self._polling = True
        want = _report._lines_written if self.is_leader and wait else 0
        deadline = None
        delay = 0.0005
        while True:
            decision = self._read_control()
            if self._stop_reason is not None or want == 0:
                break
            lines = decision.get("lines") if decision is not None else None
            if isinstance(lines, int) and lines >= want:
                break
            now = time.monotonic()
            deadline = deadline or now + 10.0
            if now >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return self._stop_reason is not None

    def _read_control(self) -> Optional[Dict[str, Any]]:
        """The runtime's last word (XPSCALE_CONTROL), None if none yet."""
        # Read whole each time (a few microseconds): the runtime replaces it
        # by rename, faster than file times tell apart.
        try:
            with open(self._control, encoding="utf-8") as f:  # type: ignore[arg-type]
                decision = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return self._control_last  # replaced as we read: the next look sees it
        if isinstance(decision, dict):
            self._control_last = decision
            if decision.get("decision") == "stop":
                self._stop_reason = str(decision.get("reason") or "stopped")
        return self._control_last

    @property
    def stop_reason(self) -> Optional[str]:
        """Why the trial was stopped (the scheduler's reason), once
        should_stop() has returned True; None before."""
        return self._stop_reason

    def resume_step(self) -> int:
        """The step of the last complete checkpoint (checkpoint_saved), or -1
        on a fresh start."""
        return _native.read_checkpoint_step(self._checkpoint_dir)

    def checkpoint_saved(self, step: int) -> None:
        """Marks the checkpoint directory as holding a complete checkpoint of
        `step`: call it after every file of the checkpoint is written. A
        resumed trial then starts after `step` (resume_step())."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        _native.write_checkpoint_step(self.checkpoint_dir, step)

    def __repr__(self) -> str:
        where = "standalone" if self.standalone else f"trial {self.id}.{self.attempt}"
        return (f"<xpscale.Trial {where} rank {self.rank}/{self.world_size} "
                f"params={self.flat_params!r}>")


def trial(defaults: Optional[Mapping[str, Any]] = None,
          argv: Optional[Sequence[str]] = None) -> Trial:
    """This process's trial.

    Under xpscale (XPSCALE_TRIAL_ID is set) the parameters are the runtime's
    (XPSCALE_PARAMS) over `defaults`; argv is not read, since it holds the
    same values as text. Otherwise the trial is standalone: the parameters
    are `defaults` (nested or dotted) updated by argv (sys.argv[1:] by
    default: --lr=0.1, --lr 0.1 or lr=0.1, typed as W&B writes them).
    Raises ValueError for an environment or argument it cannot read."""
    params = _report.flatten(defaults or {})
    trial_id = _report.trial_id()
    if trial_id:
        params.update(_report.params())
    else:
        params.update(_parse_argv(sys.argv[1:] if argv is None else argv))
    return Trial(params, trial_id=trial_id or None, attempt=_int_env("XPSCALE_ATTEMPT", 1),
                 checkpoint_dir=_report.checkpoint_dir(), rank=_int_env("RANK", 0),
                 world_size=_int_env("WORLD_SIZE", 1), local_rank=_int_env("LOCAL_RANK", 0),
                 local_world_size=_int_env("LOCAL_WORLD_SIZE", 1), standalone=not trial_id,
                 control_path=os.environ.get("XPSCALE_CONTROL") if trial_id else None)
