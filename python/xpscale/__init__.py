"""xpscale for Python trials.

    import xpscale

    trial = xpscale.trial()                 # this process's trial
    lr = trial.params["optimizer"]["lr"]    # nested, typed as the config declared
    for epoch in range(trial.resume_step() + 1, 10):
        loss = train_one_epoch(lr)
        save(trial.checkpoint_dir)
        trial.checkpoint_saved(epoch)
        trial.report(step=epoch, loss=loss)

Run by xpscale (`xpscale run sweep.yaml` with `program: train.py`), the
trial is the runtime's: its parameters, ranks and checkpoint directory come
from the environment xpscale starts it with, and each report() is written
to the runtime before it returns. Run by hand (`python3 train.py --lr=0.1`),
it is a standalone trial: parameters from the command line over the
defaults you pass, reports printed to stderr.

Data: xpscale.data.ShardedDataset streams WebDataset-style tar shards
(file://, s3://, gs://, az://, http(s)://) through the C++ sharded loader, as a torch
IterableDataset with exact resume; help(xpscale.data) is its manual.

Modules: xpscale.trial_api (Trial, trial), xpscale.data (ShardedDataset,
DataLoader), xpscale.report (the metrics and
checkpoint files with the standard library only: it imports without the
native part, so a script may also copy it).
"""
from typing import TYPE_CHECKING, Any

try:
    from xpscale._version import __version__  # written by the build
except ImportError:  # the source tree, not the built package
    __version__ = "0+unbuilt"

if TYPE_CHECKING:
    from xpscale._native import DataError, Error, UserError
    from xpscale.trial_api import Trial, trial

__all__ = ["Error", "UserError", "DataError", "Trial", "trial", "__version__"]


def __getattr__(name: str) -> Any:
    # trial_api needs the native part; import it on first use, so that
    # `import xpscale.report` works from a source tree that was not built.
    if name in ("Trial", "trial"):
        from xpscale import trial_api
        return getattr(trial_api, name)
    if name in ("Error", "UserError", "DataError"):  # raised by the native part
        from xpscale import _native
        return getattr(_native, name)
    raise AttributeError(f"module 'xpscale' has no attribute {name!r}")
