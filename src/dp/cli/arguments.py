"""The `dp` command's argument types and shared options, for `dp.cli` and `dp.experiment`.

An argparse ``type`` turns the text of one argument into a value or raises
``argparse.ArgumentTypeError``, which argparse reports as a usage error (exit
status 2) before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dp.optim import OPTIMIZERS
from dp.studies.reference import WORKLOADS, Recipe
from dp.train import SCHEDULES


def add_training_options(parser: argparse.ArgumentParser, per_workload: bool = False, **defaults: Any) -> None:
    """Add the options every training command shares: --steps --batch-size --optimizer
    --schedule --seed, with `dp.studies.reference.Recipe`'s defaults unless ``defaults`` says
    otherwise. With ``per_workload`` (dp train), the defaults of --steps, --batch-size,
    --optimizer and --schedule are None: the recipe of the data and model chosen
    (`dp.studies.reference.WORKLOADS`) fills in what is not given."""
    d = {**asdict(Recipe()), **defaults}

    def shown(key: str) -> str:  # the default, as the help states it
        if not per_workload or key == "seed":
            return "(%(default)s)"
        recipes = ", ".join(f"{getattr(recipe, key)} for {data} {model}" for (data, model), recipe in WORKLOADS.items())
        return f"({recipes})"

    chosen = {key: None if per_workload and key != "seed" else value for key, value in d.items()}
    parser.add_argument(
        "--steps", type=positive(int), default=chosen["steps"], help=f"optimizer steps {shown('steps')}"
    )
    parser.add_argument(
        "--batch-size",
        type=at_least(int, 2),
        default=chosen["batch_size"],
        help=f"rows per step, 2 or more {shown('batch_size')}",
    )
    parser.add_argument(
        "--optimizer",
        default=chosen["optimizer"],
        choices=sorted({kind.name for kind in OPTIMIZERS.values()}),  # without the classic aliases
        help=f"optimizer {shown('optimizer')}",
    )
    parser.add_argument(
        "--schedule",
        default=chosen["schedule"],
        choices=sorted(SCHEDULES),
        help=f"learning-rate schedule {shown('schedule')}",
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


# One rule for every output option (--save, --plot, --plots, --out): the path is checked
# when the command line is read, before any work (a typo must not cost a training run),
# and folders on it that are missing are created when the command writes there.
FOLDERS_RULE = "missing folders are created"


def output_file(*suffixes: str) -> Callable[[str], str]:
    """An argparse ``type`` for a file to write, with one of ``suffixes`` (any if none):
    not empty, not a folder, in a folder that exists or can be created and is writable.
    Checked by trying (a nameless temporary file), not by permission bits, which say
    yes to root where nothing can be written (/proc)."""

    def output_file(text: str) -> str:
        _require_path(text)
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"cannot write {text}: it is a folder; give a file name")
        if suffixes and os.path.splitext(text)[1].lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"cannot write {text}: the file name must end in {' or '.join(suffixes)}")
        _require_writable(os.path.dirname(os.path.abspath(text)), text)
        return text

    return output_file


def output_folder(text: str) -> str:
    """An argparse ``type`` for a folder to write into: not empty, an existing folder or
    one that can be created (see `output_file` for how it is checked)."""
    _require_path(text)
    _require_writable(os.path.abspath(text), text)
    return text


def make_folders_for(path: str, folder: bool = False) -> Path:
    """Create the missing folders on ``path`` (the file's folder; with ``folder``, ``path``
    itself), as `FOLDERS_RULE` says, when a command is about to write there. Returns ``path``."""
    target = Path(path)
    (target if folder else target.parent).mkdir(parents=True, exist_ok=True)
    return target


def _require_path(text: str) -> None:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")


def _require_writable(folder: str, text: str) -> None:
    """``folder``, or the nearest folder above it that exists, is a writable folder."""
    existing = folder
    while not os.path.lexists(existing):  # os.path answers False where Path.exists raises
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {existing} is not a folder")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {error.strerror or error} ({existing})") from None
