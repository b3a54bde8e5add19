"""`dp paper wu2018`: Wu & He (2018), "Group Normalization" (ECCV), Figure 1 at the scale of
`dp.CNN`: test accuracy against the batch size for batch norm, batch renorm (Ioffe, 2017),
group norm, layer norm and no normalization.

Their setup: ResNet-50 on ImageNet, 8 workers, a batch of 32, 16, 8, 4 or 2 images per
worker (batch norm's statistics per worker), SGD with momentum 0.9, 100 epochs whatever the
batch, the learning rate scaled linearly with the batch (0.1 at 32, 0.1 * N / 32 at N), and
group norm with 32 groups. Batch norm's validation error rises from 23.6 % at 32 to 34.7 %
at 2; group norm's stays at 24.1 % (within about a point at every batch).

Here (and why):

- the network: `dp.CNN`'s architecture, two blocks of 3x3 convolutions (8 and 16
  channels, He-normal weights) each followed by the normalization, ReLU and a 2x2 max pool,
  then a linear layer to the 10 digits (`NormalizedCNN`); only the normalization layer
  changes. A convolution followed by a normalization has no bias (its beta plays that part);
  without one, it has;
- group norm in `GROUPS` = 4 groups (2 and 4 channels per group; 4 divides 8 and 16, as 32
  divides ResNet's widths), layer norm as group norm in one group (over C, H, W per image);
- batch renorm with Ioffe's final bounds, rmax 3 and dmax 5, reached by a linear ramp from
  batch norm (r = 1, d = 0) over the first `RENORM_WARMUP` (a fifth) of the run's steps:
  Ioffe trains with batch norm alone first, then relaxes the bounds;
- batch norm's moving averages with PyTorch's momentum, 0.1;
- SGD with momentum 0.9 (`dp.optim.Momentum`) on the mean loss of the batch, a constant
  learning rate ``BASE_LR * batch / BASE_BATCH`` (their linear rule, 0.1 at 32), the same
  number of epochs for every batch (so a batch of 2 takes 16 times the steps of one of 32),
  no weight decay and no schedule: short runs, nothing else that changes with the batch;
- evaluation on the held-out test rows in eval mode: batch norm with its moving averages,
  as it predicts, and again after `dp.train.recalibrate` (the averages recomputed with the
  final weights over the training rows, in batches of the run's own size). With momentum
  0.1 the moving averages are those of the last few dozen batches: at a batch of 2, of a few
  dozen images, so they are noisy; recalibrating shows how much of the loss is that noise
  and how much is the training itself (the noisy statistics every step normalized with).

A look inside the layers (`dp.train.Monitor`, docs/monitor.md) for batch norm and group
norm at the smallest batch and at the largest up to 32 (`monitored_sizes`), first seed only,
`MONITOR_RECORDS` times a run: per layer, the mean and spread of each ReLU's input on
`MONITOR_ROWS` test images in training mode, the fraction of ReLU outputs exactly 0, the
spread of the weights' gradients (the step's own, of its batch) and the update-to-data ratio.

The data: `dp.data.mnist` (5,000 real images, 4,000 to train, 1,000 to test) or
scikit-learn's 8x8 digits (``data="digits"``), the training rows cut to the budget's
``rows``. A `Budget` counts epochs; ``max_steps`` caps any run (a run's steps are
``min(epochs * (rows // batch), max_steps)``): the cap binds only for the smallest batches,
which then see fewer epochs, and the table says so.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dp.nn.models import CNN
from dp.studies import monitored, parallel

NORMALIZATIONS = ("batch_norm", "batch_renorm", "group_norm", "layer_norm", "none")
LABELS = {
    "batch_norm": "batch norm",
    "batch_renorm": "batch renorm",
    "group_norm": "group norm",
    "layer_norm": "layer norm",
    "none": "none",
}
BATCH_SIZES = (2, 4, 8, 16, 32, 64)
BASE_LR, BASE_BATCH = 0.1, 32  # Wu & He: 0.1 for 32 images per worker, scaled linearly
MOMENTUM = 0.9
GROUPS = 4
RMAX, DMAX = 3.0, 5.0
RENORM_WARMUP = 0.2  # the fraction of a run's steps over which renorm's bounds open
RECALIBRATED = ("batch_norm", "batch_renorm")  # the normalizations with moving averages
# What `dp.train.Monitor` watches (the first seed only): these normalizations at the smallest batch and
# the largest up to BASE_BATCH, recording MONITOR_RECORDS times a run on MONITOR_ROWS test images.
MONITORED = ("batch_norm", "group_norm")
MONITOR_RECORDS, MONITOR_ROWS = 10, 500
# Wu & He (2018), Table 2 / Figure 1: ResNet-50's ImageNet validation error (%) per batch.
PAPER_ERROR = {
    "batch norm": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "group norm": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
}


@dataclass(frozen=True)
class Budget:
    """How long each run trains (epochs over ``rows`` training rows, at most ``max_steps``
    steps) and over how many seeds."""

    epochs: int
    rows: int
    max_steps: int
    seeds: int


FULL = Budget(epochs=3, rows=3_000, max_steps=4_500, seeds=2)
QUICK = Budget(epochs=1, rows=1_500, max_steps=750, seeds=2)


@dataclass(frozen=True)
class Run:
    """One training run, in plain values (so any joblib backend can ship it)."""

    data: str
    normalization: str
    batch_size: int
    lr: float
    steps: int
    rows: int
    seed: int
    groups: int = GROUPS
    monitor_every: int = 0  # 0: no dp.train.Monitor


@dataclass
class Result:
    """What one run measured: the final test accuracy in eval mode, with the moving averages
    and (for batch norm and renorm) recalibrated; whether training diverged; the
    `dp.train.Monitor` of a monitored run (not compared: it watched, it measured nothing)."""

    run: Run
    accuracy: float = 0.0
    recalibrated: float | None = None
    diverged: bool = False
    seconds: float = 0.0
    monitor: Any = field(default=None, compare=False)


# ----- the network -----


class NormalizedCNN(CNN):
    """`dp.CNN`'s architecture with the normalization layer chosen: ``normalization`` is one
    of `NORMALIZATIONS`. Batch norm and renorm are `dp.CNN`'s own (``bn{i}``, with
    moving averages); group norm is ``gn{i}`` (`NeuralNode.group_norm` in ``groups``
    groups), layer norm ``ln{i}`` (group norm in one group); "none" has no layer and gives
    its convolutions a bias. ``renorm_warmup`` as `dp.CNN`'s. ``ValueError`` for an unknown
    normalization or groups that do not divide the channels."""

    def __init__(
        self,
        normalization: str,
        image: Sequence[int] = (1, 28, 28),
        groups: int = GROUPS,
        seed: int | None = 0,
        renorm_warmup: int = 0,
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
        self.normalization, self.groups = normalization, groups
        renorm = normalization == "batch_renorm"
        super().__init__(image, batch_norm=normalization in RECALIBRATED, seed=seed, renorm=renorm, rmax=RMAX,
                         dmax=DMAX, renorm_warmup=renorm_warmup if renorm else 0)  # fmt: skip
        self.config.update(normalization=normalization, groups=groups)

    def _blocks(self, norm_options: dict[str, Any]) -> list[tuple[Any, Any]]:
        """Each block (conv{i}, its normalization layer or None)."""
        config, blocks = self.config, []
        k = config["kernel_size"]
        for i, (fan_in, fan_out) in enumerate(zip(config["image"][:1] + config["channels"], config["channels"]), 1):
            conv = self.conv2d(fan_in, fan_out, k, f"conv{i}", padding=k // 2, bias=self.normalization == "none",
                               init=config["init"], std=config["init_std"])  # fmt: skip
            blocks.append((conv, self._normalization_layer(fan_out, i, norm_options)))
        return blocks

    def _normalization_layer(self, channels: int, i: int, norm_options: dict[str, Any]) -> Any:
        if self.normalization in RECALIBRATED:
            return self.batch_norm2d(channels, f"bn{i}", **norm_options)
        if self.normalization == "group_norm":
            return self.group_norm(channels, self.groups, f"gn{i}")
        if self.normalization == "layer_norm":
            return self.group_norm(channels, 1, f"ln{i}")
        return None


# ----- one run -----


def run_one(run: Run) -> Result:
    """Train the network of ``run`` and measure its test accuracy (one BLAS thread)."""
    return parallel.one_blas_thread(_train, run)


def _train(run: Run) -> Result:
    from dp import data as datasets
    from dp.optim import Momentum
    from dp.train import Diverged, Monitor, accuracy, fit, recalibrate

    split = getattr(datasets, run.data)(test_size=0.2, seed=run.seed)
    x, y = split.x_train[: run.rows], split.y_train[: run.rows]
    model = network(run)
    result, start = Result(run), time.perf_counter()
    if run.monitor_every:
        result.monitor = Monitor(split.x_test[:MONITOR_ROWS], every=run.monitor_every)
    try:
        fit(model, x, y, Momentum(lr=run.lr, beta=MOMENTUM), steps=run.steps, batch_size=run.batch_size,
            seed=run.seed, reduction="mean", score_rows=100, progress=False, monitor=result.monitor)  # fmt: skip
    except Diverged:
        result.diverged = True
    if not result.diverged:
        result.accuracy = accuracy(model, split.x_test, split.y_test)
        if run.normalization in RECALIBRATED:
            recalibrate(model, x, batch_size=run.batch_size, seed=run.seed)
            result.recalibrated = accuracy(model, split.x_test, split.y_test)
    result.seconds = time.perf_counter() - start
    result.monitor = monitored.series_only(result.monitor)
    return result


def network(run: Run) -> NormalizedCNN:
    """The untrained network of ``run``, for the images of its data."""
    from dp.data import IMAGE_SHAPES

    warmup = max(1, round(RENORM_WARMUP * run.steps))
    return NormalizedCNN(run.normalization, IMAGE_SHAPES[run.data], run.groups, run.seed, renorm_warmup=warmup)


# ----- the plan -----


def training_rows(data: str, budget: Budget) -> int:
    """How many training rows each run trains on: the budget's, or all the data has."""
    from dp import data as datasets

    return min(budget.rows, len(getattr(datasets, data)(test_size=0.2).x_train))


def plan(
    budget: Budget, data: str, rows: int, first_seed: int = 1, batch_sizes: Sequence[int] = BATCH_SIZES
) -> list[Run]:
    """Every run: each normalization at each batch size for each seed, on ``rows`` training
    rows, the learning rate scaled with the batch; the runs of `MONITORED` at the
    `monitored_sizes` with the first seed monitored, `MONITOR_RECORDS` times. ``ValueError``
    for a batch size below 2 or above ``rows``."""
    bad = [b for b in batch_sizes if not 2 <= b <= rows]
    if bad:
        raise ValueError(f"batch sizes must be from 2 to the {rows} training rows; got {', '.join(map(str, bad))}")
    seeds = range(first_seed, first_seed + budget.seeds)
    runs = [
        Run(data, norm, b, BASE_LR * b / BASE_BATCH, steps(budget, rows, b), rows, s)
        for norm in NORMALIZATIONS
        for b in batch_sizes
        for s in seeds
    ]
    return _with_monitors(runs, first_seed, batch_sizes)


def _with_monitors(runs: list[Run], first_seed: int, batch_sizes: Sequence[int]) -> list[Run]:
    """``runs``, those of `MONITORED` at the `monitored_sizes` with ``first_seed`` given a
    `dp.train.Monitor` that records `MONITOR_RECORDS` times (every step of a shorter run)."""
    watched = {(norm, b, first_seed) for norm in MONITORED for b in monitored_sizes(batch_sizes)}
    return [
        replace(r, monitor_every=max(1, r.steps // MONITOR_RECORDS))
        if (r.normalization, r.batch_size, r.seed) in watched
        else r
        for r in runs
    ]


def monitored_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    """The batch sizes whose runs are monitored: the smallest, and the largest up to
    `BASE_BATCH` (the one Wu & He's rate is set for), beyond which the rate itself is too high
    here (docs/why/wu2018.md); the smallest alone when no other is that small."""
    smallest = min(batch_sizes)
    return tuple(sorted({smallest, max((b for b in batch_sizes if b <= BASE_BATCH), default=smallest)}))


def steps(budget: Budget, rows: int, batch_size: int) -> int:
    """A run's optimizer steps: the budget's epochs (a last partial batch dropped), capped."""
    return min(budget.epochs * (rows // batch_size), budget.max_steps)


def sweep(runs: Sequence[Run], jobs: int, progress: bool) -> list[Result]:
    """Every run through joblib, in order (`dp.studies.parallel.sweep`)."""
    return parallel.sweep(_train, runs, jobs, progress, desc="dp paper wu2018")


# ----- the report -----


def medians(results: Sequence[Result], recalibrated: bool = False) -> dict[str, dict[int, float]]:
    """``{normalization: {batch size: median test accuracy over seeds}}`` (a diverged run
    counts 0); with ``recalibrated``, batch norm's and renorm's after recalibration."""
    table: dict[str, dict[int, list[float]]] = {}
    for r in results:
        if recalibrated and r.run.normalization not in RECALIBRATED:
            continue
        value = (r.recalibrated or 0.0) if recalibrated else r.accuracy
        table.setdefault(r.run.normalization, {}).setdefault(r.run.batch_size, []).append(value)
    order = [n for n in NORMALIZATIONS if n in table]
    return {n: {b: statistics.median(table[n][b]) for b in sorted(table[n])} for n in order}


def accuracy_table(results: Sequence[Result]) -> str:
    """One row per batch size: the median test accuracy (%) of each normalization, eval mode
    with the moving averages; a cell with runs that diverged says how many."""
    found = medians(results)
    lines = ["| batch size | " + " | ".join(LABELS[n] for n in found) + " |", "|--:" * (len(found) + 1) + "|"]
    for b in sorted({r.run.batch_size for r in results}):
        cells = [_cell(found[n][b], _diverged(results, n, b)) for n in found]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recalibrated_table(results: Sequence[Result]) -> str:
    """Batch norm and renorm, median test accuracy (%) with the moving averages and after
    `dp.train.recalibrate`, per batch size."""
    before, after = medians(results), medians(results, recalibrated=True)
    norms = [n for n in RECALIBRATED if n in after]
    header = " | ".join(f"{LABELS[n]} | {LABELS[n]}, recalibrated" for n in norms)
    lines = [f"| batch size | {header} |", "|--:" * (2 * len(norms) + 1) + "|"]
    for b in sorted({r.run.batch_size for r in results}):
        cells = [f"{100 * before[n][b]:.1f} | {100 * after[n][b]:.1f}" for n in norms]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _diverged(results: Sequence[Result], norm: str, batch_size: int) -> int:
    return sum(r.diverged for r in results if r.run.normalization == norm and r.run.batch_size == batch_size)


def _cell(accuracy: float, diverged: int) -> str:
    return f"{100 * accuracy:.1f}" + (f" ({diverged} diverged)" if diverged else "")


def steps_line(results: Sequence[Result]) -> str:
    """The steps of the runs at each batch size, and the epochs they make."""
    per = {r.run.batch_size: r.run for r in results}
    parts = [f"{b}: {run.steps:,} ({run.steps * b / run.rows:.2g} epochs)" for b, run in sorted(per.items())]
    return "Steps per run, by batch size (epochs over the training rows): " + "; ".join(parts) + "."


def report(results: Sequence[Result], budget: Budget, out: Path, header: str) -> Iterator[str]:
    """Write ``batch_size.md`` (``header``, the tables, the steps, a link to the figure) and
    ``batch_size.png`` to ``out``, and the monitored runs' ``monitor.md`` and ``monitor.png``
    (`dp.studies.monitored`); yield the text to print for each (the title and the tables)."""
    from dp.tools import plots
    from dp.tools.files import write_text

    title = "Test accuracy (%) against the batch size, median over seeds"
    body = f"{accuracy_table(results)}\n\n{steps_line(results)}"
    if any(r.run.normalization in RECALIBRATED for r in results):
        body += "\n\nWith batch norm's moving averages recomputed after training (`dp.train.recalibrate`):\n\n"
        body += recalibrated_table(results)
    write_text(out / "batch_size.md", f"## {title}\n\n{header}\n\n{body}\n\n![{title}](batch_size.png)\n")
    curves = {LABELS[n]: by_size for n, by_size in medians(results).items()}
    recal = {f"{LABELS[n]}, recalibrated": by_size for n, by_size in medians(results, recalibrated=True).items()}
    plots.batch_size_figure(
        out / "batch_size.png", curves, recal, "Test error (%) against the batch size, median over seeds"
    )
    yield f"\n## {title}\n\n{body}"
    watched = [r for r in results if r.monitor is not None]
    if watched:
        names = {f"{LABELS[r.run.normalization]}, batch {r.run.batch_size}": r.monitor for r in watched}
        what = f"seed {watched[0].run.seed}, {MONITOR_ROWS} test images in training mode"
        yield monitored.report(names, out, f"Inside the layers (dp.train.Monitor; {what})", header)
