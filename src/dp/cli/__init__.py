"""The `dp` command: every argparse line of dp lives in this package, and nothing below imports it.

`main` runs it (``dp ...`` and ``python -m dp``); `dp.cli.experiment` and `dp.cli.paper`
are the command lines of the studies in `dp.studies`.
"""

from dp.cli.command import main

__all__ = ["main"]
