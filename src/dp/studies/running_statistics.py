"""Batch norm's running statistics, measured: the zero-start bias of the moving averages, and
the gap between training mode and eval mode on the training rows, before and after
`dp.train.recalibrate`. ``benchmarks/running_statistics.py`` writes docs/running_statistics.md
from these functions; tests/test_running_statistics_doc.py ties the document to them.

The zero-start bias: dp's moving averages start at zeros (PyTorch's running_var at ones) and
move by ``avg <- (1 - m) avg + m * stat``. After k batches of the same statistic s, the
average is ``(1 - (1 - m)^k) s``: `zero_start_factor`.

The gap: a network's accuracy on its training rows in training mode (each batch normalized
by its own statistics, as the steps saw it) and in eval mode (by the moving averages, as it
predicts), for networks trained briefly (`GAP_WORKLOADS`), then in eval mode again after
recalibration: `measure_gap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ZERO_START_BATCHES = (1, 5, 10, 20, 50)  # the k of the zero-start table
MOMENTUM = 0.1  # dp's default, and PyTorch's


def zero_start_factor(batches: int, momentum: float = MOMENTUM) -> float:
    """The fraction of a statistic that dp's moving average holds after ``batches`` training
    batches that all have that statistic, from the initial zeros: ``1 - (1 - momentum)^k``
    (0.1 after one batch, 0.41 after five, with the default momentum 0.1)."""
    return 1 - (1 - momentum) ** batches


def zero_start_batches(within: float = 0.01, momentum: float = MOMENTUM) -> int:
    """How many batches the moving averages take to come within ``within`` (a fraction) of a
    steady statistic from the zero start: the least k with ``(1 - momentum)^k < within``
    (44 for 1 % with the default momentum)."""
    k = 0
    while (1 - momentum) ** k >= within:
        k += 1
    return k


def zero_start_table(batches: Sequence[int] = ZERO_START_BATCHES, momentum: float = MOMENTUM) -> str:
    """The zero-start bias as a Markdown table, a row per number of batches k: dp's factor
    (`zero_start_factor`), the standard deviation eval mode then gives a feature that training
    mode standardizes (1 / sqrt(factor), the averaged variance being that factor times the
    true one, for a feature of mean 0), and the weight PyTorch's running_var still gives its
    initial 1, ``(1 - momentum)^k``."""
    old = 1 - momentum
    lines = [
        f"| batches k | dp: average / true value, 1 - {old:g}^k | dp eval mode: std of a standardized feature "
        f"| PyTorch: weight of running_var's initial 1, {old:g}^k |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for k in batches:
        factor = zero_start_factor(k, momentum)
        lines.append(f"| {k} | {factor:.4f} | {1 / np.sqrt(factor):.3f} | {old**k:.4f} |")
    return "\n".join(lines)


# ----- the gap between training mode and eval mode, and recalibration -----


@dataclass(frozen=True)
class Workload:
    """A network trained briefly, as one of dp's reference runs trains it: made by
    ``network()`` (the model and its optimizer), trained on ``data()``'s training rows with
    `dp.train.fit`'s ``batch_size``, ``schedule``, ``reduction`` and ``seed``, for each number
    of ``steps``."""

    name: str
    network: Callable[[], tuple[Any, Any]]
    data: Callable[[], Any]
    steps: tuple[int, ...]
    batch_size: int
    schedule: str = "constant"
    reduction: str = "sum"
    seed: int = 0


def _reference() -> tuple[Any, Any]:
    from dp.studies.reference import Recipe, reference_network

    return reference_network(True, Recipe())


def _reference_data() -> Any:
    from dp.studies.reference import TEST_SIZE, workload_data

    return workload_data("breast_cancer", seed=0, test_size=TEST_SIZE)


def _paper() -> tuple[Any, Any]:
    from dp.nn.models import MLP
    from dp.optim import SGD
    from dp.studies.ioffe2015 import PAPER_SIZES

    network = MLP(PAPER_SIZES, activation="sigmoid", seed=1, init="normal", init_std=0.01)
    return network, SGD(lr=0.5)


def _paper_data() -> Any:
    from dp.data import mnist

    return mnist(test_size=0.2, seed=1)


GAP_WORKLOADS = (
    # dp train's network and recipe (Adam 0.003, batches of 50, cosine), breast cancer
    Workload("breast_cancer", _reference, _reference_data, (5, 10, 20, 50, 300), 50, schedule="cosine"),
    # the paper's MNIST network (784-100-100-100-10, sigmoid, N(0, 0.01^2)), SGD 0.5 on the mean loss of 60 rows
    Workload("mnist", _paper, _paper_data, (50, 100, 200, 500, 1000), 60, reduction="mean", seed=1),
)


@dataclass(frozen=True)
class Gap:
    """Accuracies on the training rows of a network after ``steps`` steps of ``workload``: in
    training mode, in eval mode, and in eval mode after `dp.train.recalibrate`; and the first
    batch-norm layer's moving variance over its recalibrated one (the median over its
    features): how far the moving averages were from the statistics of the data."""

    workload: str
    steps: int
    rows: int  # the training rows measured: those of the whole batches
    training_mode: float
    eval_mode: float
    recalibrated: float
    variance_ratio: float


def measure_gap(workload: Workload, steps: int) -> Gap:
    """Train ``workload``'s network for ``steps`` steps and measure its `Gap`, with one BLAS
    thread (the same numbers on any machine with the same NumPy and BLAS). Every accuracy is
    taken on the same training rows: those of the whole batches `dp.train.recalibrate` forms
    (an order drawn from the workload's seed)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from dp.train import accuracy, fit, recalibrate

    with threadpool_limits(limits=1):
        split, (model, optimizer) = workload.data(), workload.network()
        x, y, size = split.x_train, split.y_train, workload.batch_size
        fit(model, x, y, optimizer, steps=steps, batch_size=size, seed=workload.seed, schedule=workload.schedule,
            reduction=workload.reduction, progress=False)  # fmt: skip
        order = np.random.default_rng(workload.seed).permutation(len(x))
        rows = order[: len(x) // size * size]  # recalibrate's batches, in its order
        training = training_mode_accuracy(model, x[rows], y[rows], size)
        before, variance = accuracy(model, x[rows], y[rows]), model.params["avg_variance_bn1"]
        recalibrate(model, x, batch_size=size, seed=workload.seed)
        ratio = float(np.median(variance / model.params["avg_variance_bn1"]))
        return Gap(workload.name, steps, len(rows), training, before, accuracy(model, x[rows], y[rows]), ratio)


def training_mode_accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """The accuracy of ``model`` in training mode on the rows x (labels y) taken in consecutive
    batches of ``batch_size``, each normalized by its own statistics, changing nothing: the
    moving averages and batch counts the forward passes move are put back."""
    from dp.nn.module import classes, unchanged

    predictions = []
    for start in range(0, len(x), batch_size):
        with unchanged(model.params):
            predictions.append(classes(model.forward(x[start : start + batch_size], train=True).value))
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y
    return float((np.concatenate(predictions) == labels.reshape(-1, 1)).mean())


def gap_table(gaps: Sequence[Gap]) -> str:
    """The gaps as a Markdown table, a row per `Gap` (`gap_row`)."""
    header = [
        "| network | steps | rows | training mode | eval mode | gap | eval mode, recalibrated | gap, recalibrated "
        "| bn1 moving / recalibrated variance |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    return "\n".join(header + [gap_row(gap) for gap in gaps])


def gap_row(gap: Gap) -> str:
    """One row of `gap_table`: accuracies in %, gaps (training mode minus eval mode) in
    percentage points, the variance ratio."""
    return (
        f"| {gap.workload} | {gap.steps:,} | {gap.rows:,} "
        f"| {100 * gap.training_mode:.1f} % | {100 * gap.eval_mode:.1f} % "
        f"| {100 * (gap.training_mode - gap.eval_mode):+.1f} | {100 * gap.recalibrated:.1f} % "
        f"| {100 * (gap.training_mode - gap.recalibrated):+.1f} | {gap.variance_ratio:.2f} |"
    )
