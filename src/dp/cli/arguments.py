"""The `dp` command's argument types and shared options, for `dp.cli` and `dp.experiment`.

An argparse ``type`` turns the text of one argument into a value or raises
``argparse.ArgumentTypeError``, which argparse reports as a usage error (exit
status 2) before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from dp.optim import OPTIMIZERS
from dp.studies.reference import Recipe
from dp.train import SCHEDULES


def add_training_options(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """Add the options every training command shares: --steps --batch-size --optimizer
    --schedule --seed, with `dp.studies.reference.Recipe`'s defaults unless ``defaults`` says otherwise."""
    d = {**asdict(Recipe()), **defaults}
    parser.add_argument("--steps", type=positive(int), default=d["steps"], help="optimizer steps (%(default)s)")
    parser.add_argument(
        "--batch-size", type=at_least(int, 2), default=d["batch_size"], help="rows per step, 2 or more (%(default)s)"
    )
    parser.add_argument(
        "--optimizer",
        default=d["optimizer"],
        choices=sorted({kind.name for kind in OPTIMIZERS.values()}),  # without the classic aliases
        help="optimizer (%(default)s)",
    )
    parser.add_argument(
        "--schedule",
        default=d["schedule"],
        choices=sorted(SCHEDULES),
        help="learning-rate schedule (%(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative(int),
        default=d["seed"],
        help="data split, initial weights, batch order (%(default)s)",
    )


def at_least(kind: type, low: float) -> Callable[[str], Any]:
    """An argparse ``type``: the text as a ``kind`` (int or float) >= ``low``, else a usage error."""
    return _at_least(kind, low, strictly=False)


def learning_rates(text: str) -> tuple[float, ...]:
    """An argparse ``type``: comma-separated learning rates, each finite and > 0."""
    try:
        lrs = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(lr) and lr > 0 for lr in lrs):
        raise argparse.ArgumentTypeError(f"learning rates must be finite and > 0, got {text!r}")
    return lrs


def jobs(text: str) -> int:
    """An argparse ``type`` for joblib's ``n_jobs``: -1 (all cores) or a number of workers >= 1."""
    count = int(text)
    if count == 0 or count < -1:
        raise argparse.ArgumentTypeError(f"must be -1 (all cores) or a number of workers >= 1, got {text}")
    return count


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse ``type``: the text as a ``kind`` (int or float) > 0, else a usage error."""
    return _at_least(kind, 0, strictly=True)


def non_negative(kind: type) -> Callable[[str], Any]:
    """An argparse ``type``: the text as a ``kind`` (int or float) >= 0, else a usage error."""
    return _at_least(kind, 0, strictly=False)


def _at_least(kind: type, low: float, strictly: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (strictly and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strictly else '>='} {low}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def output_file(text: str) -> str:
    """An argparse ``type`` for a file to write: its folder must exist and be writable,
    checked before any work, so that a typo does not cost a whole training run."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a folder; give a file name")
    _require_writable_folder(os.path.dirname(os.path.abspath(text)), text)
    return text


def output_folder(text: str) -> str:
    """An argparse ``type`` for a folder to write into (created if missing): the nearest
    existing folder on its path must be writable, checked before any work."""
    existing = os.path.abspath(text)
    while not os.path.lexists(existing):  # os.path answers False where Path.exists raises
        existing = os.path.dirname(existing)
    _require_writable_folder(existing, text)
    return text


def _require_writable_folder(folder: str, text: str) -> None:
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {folder} is not an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: no permission to write in {folder}")
