"""xpscale's Python package: what a Python trial uses of the runtime.

Today it holds `xpscale.report` (metrics, checkpoints and parameters of an
external trial, standard library only). The native part (the sharded
loader as a torch dataset, the trial API) joins it here.
"""

__version__ = "0.1.0"  # the C++ project's version (CMakeLists.txt)
