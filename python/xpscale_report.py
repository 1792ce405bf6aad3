"""The former home of xpscale's report helper, kept so that trainers that
`import xpscale_report` keep working: the code lives in xpscale/report.py
(`import xpscale.report as xr`)."""
from xpscale.report import *  # noqa: F401,F403
from xpscale.report import __doc__  # noqa: F401
