"""xpscale's `wandb`: W&B scripts run unchanged as xpscale trials.

xpscale puts this directory's parent (xpscale/_wandb) first on the trial's
PYTHONPATH when the sweep runs a program (`wandb:` in the sweep config:
auto, shim, passthrough or off; the trial sees it in XPSCALE_WANDB). This
module only chooses; xpscale.wandb_shim holds the code:

  shim         xpscale's stand-in for the W&B API (no server, no account);
  passthrough  the real wandb, found further along sys.path, its log also
               reporting to xpscale (ImportError if there is none);
  auto         (the default) passthrough when the real wandb is importable,
               else the shim.
"""
import os as _os
import sys as _sys

_shim_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

try:
    from xpscale import wandb_shim as _impl
except ImportError:
    # A Python without the package on its path (a virtualenv's): the package
    # this directory belongs to, after everything else so nothing is shadowed.
    _sys.path.append(_os.path.dirname(_os.path.dirname(_shim_root)))
    from xpscale import wandb_shim as _impl

_mode = _os.environ.get("XPSCALE_WANDB", "auto")
_real = _impl.find_real(_shim_root) if _mode != "shim" else None
if _mode == "passthrough" and _real is None:
    raise ImportError("wandb: the sweep asks for `wandb: passthrough` but no wandb is installed "
                      "besides xpscale's shim (pip install wandb, or use `wandb: shim`)")

if _real is not None:
    # Replaces this module in sys.modules: `import wandb` returns the real one.
    _impl.load_real(_real)
else:
    from xpscale.wandb_shim import (  # noqa: F401
        AlertLevel, Artifact, Audio, Config, Histogram, Html, Image, Object3D, Run, Settings,
        Summary, Table, Video, agent, alert, define_metric, finish, init, log, log_artifact,
        login, save, sweep, termerror, termlog, termwarn, unwatch, use_artifact, watch)

    __version__ = "0.0.0+xpscale.shim"

    def __getattr__(name):
        # wandb.run, wandb.config and wandb.summary follow wandb.init(), as in W&B.
        if name in ("run", "config", "summary"):
            return getattr(_impl, name)
        raise AttributeError(f"module 'wandb' (xpscale's shim) has no attribute {name!r}")
