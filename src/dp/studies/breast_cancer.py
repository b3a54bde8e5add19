"""The breast-cancer learning-rate sweep (`dp experiment`): does batch norm train at higher rates?

Ioffe and Szegedy (2015) claim that batch norm lets a network train at much
higher learning rates and reach a given accuracy in fewer steps. This command
tests both claims at our scale: for each learning rate, with and without batch
norm, it trains the reference network from several seeds with the same
optimizer, and prints a Markdown table (one row per learning rate and setting):

- median and worst test accuracy (eval mode), over the runs that did not diverge;
- median steps to reach the target validation accuracy (95 % by default),
  measured every ``--eval-every`` steps. A run that never gets there counts as
  taking forever, so the median exists only when more than half the runs got
  there (otherwise the table says "> STEPS"); the table also says how many did;
- how many runs diverged: NaN or inf in the loss, the gradients, the parameters
  or the final predictions. A diverged run never counts as reaching the target,
  and is left out of the accuracy columns (its accuracy would say nothing
  about the learning rate that the diverged column does not say better).

Run ``seed`` of a cell uses the data split, initial weights and batch order of
that seed, so with and without batch norm see exactly the same data.

The runs are independent, so they go through ``joblib.Parallel`` (``--jobs``
workers; -1: as many as the backend has). The default backend is loky, local
processes. `run_one` is a top-level function of plain arguments, so any joblib
backend can ship it elsewhere; joblib's ``parallel_config`` (joblib >= 1.3)
chooses the backend for the code inside it. On a Dask cluster (with dp installed
on the workers)::

    from dask.distributed import Client
    from joblib import parallel_config
    from dp.cli import main

    client = Client("tcp://scheduler:8786")  # or Client() for a local cluster
    with parallel_config(backend="dask"):
        main(["experiment", "--seeds", "100"])

On Ray, register its backend first::

    import ray
    from joblib import parallel_config
    from ray.util.joblib import register_ray
    from dp.cli import main

    ray.init(address="auto")
    register_ray()
    with parallel_config(backend="ray"):
        main(["experiment", "--seeds", "100"])
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
DEFAULT_SEEDS = 10


@dataclass(frozen=True)
class Settings:
    """What every run of a sweep shares (all but the learning rate, batch norm and seed)."""

    steps: int
    batch_size: int
    optimizer: str
    schedule: str
    eval_every: int
    target: float


@dataclass(frozen=True)
class Run:
    """One training run's outcome. ``test_accuracy`` is None when the run diverged;
    ``steps_to_target`` is None when it never reached the target validation accuracy
    (or diverged)."""

    lr: float
    batch_norm: bool
    seed: int
    test_accuracy: float | None
    steps_to_target: int | None
    diverged: bool


def run_one(settings: Settings, lr: float, batch_norm: bool, seed: int) -> Run:
    """Train a fresh reference network (weights, data split and batch order from ``seed``)
    with learning rate ``lr``, and measure it. Never raises for NaN or inf: a run
    that meets them is returned as diverged."""
    from dp.checks import NonFiniteError, finite
    from dp.nn.module import classes
    from dp.studies.reference import Recipe, split_with_validation, train_network

    split = split_with_validation(seed)
    recipe = Recipe(settings.steps, lr, settings.batch_size, settings.optimizer, settings.schedule, seed)
    diverged = Run(lr, batch_norm, seed, test_accuracy=None, steps_to_target=None, diverged=True)
    try:
        model, _, history = train_network(split, batch_norm, recipe, eval_every=settings.eval_every, progress=False)
        with np.errstate(over="ignore", invalid="ignore"):  # NaN and inf are checked next
            probabilities = model.predict_proba(split.x_test)
        finite(probabilities, "the test predictions")
    except NonFiniteError:  # dp.train.Diverged, NaN met by batch norm in eval mode, or NaN predictions
        return diverged
    accuracy = float((classes(probabilities) == split.y_test).mean())
    return Run(lr, batch_norm, seed, accuracy, history.steps_to_reach(settings.target), diverged=False)


def sweep(settings: Settings, lrs: Sequence[float], seeds: Sequence[int], jobs: int = -1) -> list[Run]:
    """Every run of the sweep (each learning rate, with and without batch norm, each seed),
    through ``joblib.Parallel(n_jobs=jobs)`` under the current joblib backend."""
    from joblib import Parallel, delayed  # type: ignore[import-untyped]

    runs = [(lr, batch_norm, seed) for lr in lrs for batch_norm in (True, False) for seed in seeds]
    return Parallel(n_jobs=jobs)(delayed(run_one)(settings, *run) for run in runs)


@dataclass(frozen=True)
class Cell:
    """The runs of one learning rate and batch-norm setting, summarized."""

    lr: float
    batch_norm: bool
    runs: int
    diverged: int
    accuracies: tuple[float, ...]  # of the runs that did not diverge
    steps_to_target: tuple[float, ...]  # one per run; inf for a run that never got there

    @property
    def median_accuracy(self) -> float | None:
        return statistics.median(self.accuracies) if self.accuracies else None

    @property
    def worst_accuracy(self) -> float | None:
        return min(self.accuracies, default=None)

    @property
    def reached(self) -> int:
        return int(np.isfinite(self.steps_to_target).sum())

    @property
    def median_steps(self) -> float | None:
        """The median steps to the target, None unless more than half the runs got there."""
        median = statistics.median(self.steps_to_target)
        return median if np.isfinite(median) else None


def summarize(runs: Sequence[Run]) -> list[Cell]:
    """One `Cell` per learning rate and batch-norm setting, by increasing learning rate,
    with batch norm first."""
    keys = sorted({(run.lr, run.batch_norm) for run in runs}, key=lambda key: (key[0], not key[1]))
    return [
        _cell(lr, batch_norm, [run for run in runs if (run.lr, run.batch_norm) == (lr, batch_norm)])
        for lr, batch_norm in keys
    ]


def _cell(lr: float, batch_norm: bool, runs: Sequence[Run]) -> Cell:
    """The `Cell` of ``runs``, all of learning rate ``lr`` and setting ``batch_norm``."""
    return Cell(
        lr=lr,
        batch_norm=batch_norm,
        runs=len(runs),
        diverged=sum(run.diverged for run in runs),
        accuracies=tuple(run.test_accuracy for run in runs if not run.diverged and run.test_accuracy is not None),
        steps_to_target=tuple(_steps_or_inf(run) for run in runs),
    )


def _steps_or_inf(run: Run) -> float:
    """The steps ``run`` took to the target; inf if it never got there (a diverged run never does)."""
    return np.inf if run.steps_to_target is None or run.diverged else run.steps_to_target


def markdown_table(cells: Sequence[Cell], target: float, steps: int) -> str:
    """The sweep's results as a Markdown table, one row per cell."""
    percent = f"{100 * target:g} %"
    lines = [
        f"| learning rate | batch norm | median test accuracy | worst test accuracy "
        f"| median steps to {percent} val. accuracy | runs that reached {percent} | diverged |",
        "| ---: | :---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in cells:
        median_steps = f"> {steps}" if cell.median_steps is None else f"{cell.median_steps:g}"
        lines.append(
            f"| {cell.lr:g} | {'yes' if cell.batch_norm else 'no'} | {_percent_text(cell.median_accuracy)} "
            f"| {_percent_text(cell.worst_accuracy)} | {median_steps} | {cell.reached}/{cell.runs} "
            f"| {cell.diverged}/{cell.runs} |"
        )
    return "\n".join(lines)


def _percent_text(fraction: float | None) -> str:
    return "–" if fraction is None else f"{100 * fraction:.1f} %"
