"""The `dp` command: every argparse line of dp lives in this package, and nothing below imports it.

`main` runs it (``dp ...`` and ``python -m dp``); `dp.cli.experiment` and `dp.cli.paper`
are the command lines of the studies in `dp.studies`. This module imports nothing at
start, so that Ctrl-C during the command's imports is caught by `main` as it is later.
"""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `dp` command with ``argv`` (`dp.cli.command.main`: its exit statuses). Ctrl-C
    at any moment, the imports included, prints ``dp: interrupted`` and returns 130."""
    try:
        from dp.cli.command import main as run
    except KeyboardInterrupt:
        return interrupted()
    return run(argv)


def interrupted() -> int:
    """Report Ctrl-C in one line, on standard error; the exit status to return (130, the
    shell's code for a process ended by SIGINT)."""
    print("dp: interrupted", file=sys.stderr)
    return 130


def started_as_command() -> bool:
    """Whether this process is the `dp` command: its script (``dp``) or ``python -m dp``."""
    if sys.argv and sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] in ("dp", "dp.exe"):
        return True
    arguments = getattr(sys, "orig_argv", [])
    return any(a == "-m" and b == "dp" for a, b in zip(arguments, arguments[1:]))


__all__ = ["interrupted", "main", "started_as_command"]
