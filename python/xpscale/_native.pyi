"""xpscale's native part (C++). Use the xpscale package, not this module."""

__version__: str

class Error(RuntimeError):
    """An xpscale::Error from the C++ side; the message names what failed."""

class UserError(ValueError):
    """An xpscale::UserError: the input is wrong (a value, a path, a name)."""

def read_checkpoint_step(checkpoint_dir: str) -> int: ...
def write_checkpoint_step(checkpoint_dir: str, step: int) -> None: ...
def trial_dir_of(out_dir: str, trial: int) -> str: ...
def checkpoint_dir_of(out_dir: str, trial: int) -> str: ...
