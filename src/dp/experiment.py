"""`dp experiment`: the batch-norm learning-rate sweep (being written)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_command(commands: Any, add_training_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `dp experiment` on the `dp` command's subparsers."""
    parser = commands.add_parser("experiment", help="sweep learning rates with and without batch norm")
    parser.set_defaults(run=lambda args: 0)
