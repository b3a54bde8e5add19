"""The training loop: mini-batches, the optimizer step, evaluation, history and progress.

    history = dp.train.fit(model, split, dp.optim.Adam(lr=0.003), steps=150, batch_size=50, seed=0)

Each step is the loop of the `dp` package docstring: ``grads = model.loss(xb, yb).grad(1)``, then
``optimizer.step(model.params, grads)``. Every ``eval_every`` steps (by default
once an epoch) the model is evaluated in eval mode on the training and the
validation rows.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dp import checks
from dp.checks import NonFiniteError, finite, is_whole
from dp.data import breast_cancer
from dp.models import MLP
from dp.optim import Optimizer, make_optimizer

SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda step, steps: 1.0,
    # Half a cosine from the full rate down to 0: large steps early, fine ones at the end.
    "cosine": lambda step, steps: 0.5 * (1.0 + math.cos(math.pi * step / steps)),
}


@dataclass
class History:
    """What happened during `fit`, one entry per evaluation.

    ``loss`` is the mean training loss per example over the steps since the
    previous evaluation; accuracies are measured in eval mode (``val_accuracy``
    is empty without validation rows). ``diverged`` is set when training stopped
    on NaN or inf.
    """

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False

    def steps_to_reach(self, accuracy: float) -> int | None:
        """The first evaluated step at which validation accuracy reached ``accuracy``, or None."""
        return next((s for s, a in zip(self.step, self.val_accuracy) if a >= accuracy), None)


class Diverged(NonFiniteError):
    """Training produced NaN or inf; ``history`` holds what was recorded until then.
    The model keeps its last finite parameters: a failing step changes nothing
    (neither the parameters, moving averages included, nor the optimizer's state)."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


def accuracy(model: MLP, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of rows whose eval-mode prediction (``model.predict``) equals the
    label (a class column or vector, or one-hot rows). The labels are checked first,
    so that a mistake does not pass for a low accuracy: one number per row, and for an
    `MLP`, labels its loss would take (0/1 for one output, class indices or one-hot
    rows for more). Other models may use labels of their own (-1/+1, say)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels must be numeric, not {y.dtype}")
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(f"{len(y) if y.ndim else 'a scalar'} labels for a batch of {len(x)} rows")
    if isinstance(model, MLP):
        checks.labels(y, len(y), model.sizes[-1])
    return _fraction_correct(model, x, y)


def _fraction_correct(model: Any, x: Any, y: np.ndarray) -> float:
    """`accuracy` without its checks, for labels already checked (as `fit`'s are)."""
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y
    return float((model.predict(x) == labels.reshape(-1, 1)).mean())


def fit(
    model: MLP,
    data: Any,
    optimizer: Optimizer,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 50,
    seed: int = 0,
    eval_every: int | None = None,
    schedule: str = "constant",
    progress: bool | None = None,
    on_step: Callable[[int, MLP], None] | None = None,
) -> History:
    """Train ``model`` on ``data.x_train, data.y_train`` with mini-batch ``optimizer`` steps.

    Give ``steps`` (optimizer steps) or ``epochs`` (passes over the training rows).
    Each epoch visits the rows in a new order drawn from ``seed``; a last batch
    smaller than ``batch_size`` is dropped (a batch of one row cannot be
    batch-normalized). ``schedule`` scales the learning rate over the run:
    "constant" or "cosine" (from the optimizer's ``lr`` down to 0); the
    optimizer's ``lr`` is restored at the end, and so is the model's train/eval
    mode (it trains in training mode). ``data.x_val, data.y_val``, if
    non-empty, are evaluated too. ``on_step(step, model)`` is called after every
    step. ``progress`` shows a progress bar (tqdm); by default only when standard
    error is a terminal.

    The same model, data, optimizer settings and seed give bit-identical results.
    Returns the `History`, one entry per evaluation: every ``eval_every`` steps (by
    default once an epoch) and after the last step.

    Raises `Diverged` (a `NonFiniteError`) when the loss, the gradients or the
    updated parameters would be NaN or inf (the failing step changes nothing: the
    model and the optimizer stay as the previous step left them), or when
    evaluating the model meets NaN or inf;
    ``ValueError`` for bad arguments (``steps``, ``epochs`` and ``eval_every`` are
    integers >= 1; ``batch_size`` is at least 2 and at most the training rows).
    """
    x, y = _checked_data(model, data.x_train, data.y_train, "training")
    x_val, y_val = getattr(data, "x_val", None), getattr(data, "y_val", None)
    has_val = x_val is not None and len(x_val) > 0
    if has_val:
        x_val, y_val = _checked_data(model, x_val, y_val, "validation")
    n = len(x)
    if not (is_whole(batch_size) and 2 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer between 2 and the {n} training rows, got {batch_size!r}")
    batches_per_epoch = n // batch_size
    if (steps is None) == (epochs is None):
        raise ValueError("give either steps or epochs")
    for name, value in (("steps", steps), ("epochs", epochs), ("eval_every", eval_every)):
        if value is not None and not (isinstance(value, numbers.Integral) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    total = steps if steps is not None else epochs * batches_per_epoch
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, not {schedule!r}")
    every = eval_every or batches_per_epoch

    rng = np.random.default_rng(seed)
    history, base_lr, factor = History(), optimizer.lr, SCHEDULES[schedule]
    validation = (x_val, y_val) if has_val else None
    losses: list[float] = []
    bar = _progress_bar(total, progress)
    start = time.perf_counter()
    was_training = model.training
    model.train()
    try:
        for step in range(total):
            if step % batches_per_epoch == 0:
                order = rng.permutation(n)
            rows = order[(step % batches_per_epoch) * batch_size :][:batch_size]
            optimizer.lr = base_lr * factor(step, total)
            evaluate = (step + 1) % every == 0 or step + 1 == total
            try:
                losses.append(_step(model, optimizer, x[rows], y[rows]) / batch_size)
                if evaluate:
                    _evaluate(model, history, step + 1, batches_per_epoch, losses, x, y, validation)
            except NonFiniteError as error:
                history.diverged = True
                raise Diverged(f"training diverged at step {step + 1}: {error}", history) from error
            if on_step is not None:
                on_step(step + 1, model)
            if evaluate:
                losses = []
                bar.set_postfix(_postfix(history), refresh=False)
            bar.update(1)
    finally:
        model.train(was_training)  # back in the mode it came in, even after an error
        optimizer.lr = base_lr
        history.seconds = time.perf_counter() - start
        bar.close()
    return history


def _checked_data(model: Any, x: Any, y: Any, part: str) -> tuple[np.ndarray, np.ndarray]:
    """x and y as arrays, y as a column, after the checks every batch would make, so that
    bad data fails before the first step (and is not mistaken for divergence)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise TypeError(f"the {part} rows and labels must be numeric, not {x.dtype} and {y.dtype}")
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"the {part} rows must be a non-empty 2-D array (rows, features), got shape {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"{len(y)} labels for {len(x)} {part} rows")
    finite(x, f"the {part} rows")
    if isinstance(model, MLP):
        if x.shape[1] != model.sizes[0]:
            raise ValueError(f"the {part} rows must have shape (n, {model.sizes[0]}); got {x.shape}")
        checks.labels(y, len(x), model.sizes[-1])
    else:
        finite(y, f"the {part} labels")
    return x, y.reshape(-1, 1) if y.ndim == 1 else y


def _step(model: MLP, optimizer: Optimizer, x: np.ndarray, y: np.ndarray) -> float:
    """One optimizer step on the batch (x, y); returns its summed loss. On NaN or inf it
    raises `NonFiniteError` and changes nothing: neither the parameters (moving
    averages included) nor the optimizer's state."""
    before = dict(model.params)  # the rollback point: arrays are replaced, never written into
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # NaN and inf are checked, not warned about
            loss = model.loss(x, y)
            finite(loss.value, "the loss")
            grads = loss.grad(1)
        optimizer.step(model.params, grads)  # all or nothing, NonFiniteError if the update would overflow
    except BaseException:
        model.params.update(before)
        raise
    return float(loss.value[0, 0])


def _evaluate(model, history, step, batches_per_epoch, losses, x, y, validation) -> None:
    """Append one evaluation to ``history``, all fields or (on an error) none."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging model may overflow
        train_accuracy = _fraction_correct(model, x, y)  # the data passed _checked_data before training
        val_accuracy = [_fraction_correct(model, *validation)] if validation is not None else []
    history.step.append(step)
    history.epoch.append(step / batches_per_epoch)
    history.loss.append(float(np.mean(losses)))
    history.train_accuracy.append(train_accuracy)
    history.val_accuracy.extend(val_accuracy)


def _postfix(history: History) -> dict[str, str]:
    shown = {"loss": f"{history.loss[-1]:.4f}", "train": f"{history.train_accuracy[-1]:.3f}"}
    if history.val_accuracy:
        shown["val"] = f"{history.val_accuracy[-1]:.3f}"
    return shown


class _NoBar:
    """Stands in for a tqdm bar when progress is off (and tqdm need not be imported)."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def _progress_bar(total: int, progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return _NoBar()
    from tqdm import tqdm  # imported only when shown: it costs start-up time

    return tqdm(total=total, desc="training", unit="step", leave=False, dynamic_ncols=True)


# ----- the reference runs that `dp train`, its plots and `dp experiment` share -----

TEST_SIZE = 0.2  # dp train's held-out test part


def train_network(options: Any, split: Any, batch_norm: bool, **fit_options: Any) -> tuple[Any, Any, Any]:
    """A fresh reference network (`dp.models.MLP`, with or without batch norm) trained on
    ``split`` as the training options say (``options.steps``, ``lr``, ``batch_size``,
    ``optimizer``, ``schedule``, ``seed``, e.g. parsed `dp train` arguments), with
    ``fit_options`` passed on to `dp.train.fit`. Returns (model, optimizer, history).
    Raises what `fit` raises, `dp.train.Diverged` included."""
    model = MLP(batch_norm=batch_norm, seed=options.seed)
    optimizer = make_optimizer(options.optimizer, lr=options.lr)
    history = fit(
        model,
        split,
        optimizer,
        steps=options.steps,
        batch_size=options.batch_size,
        seed=options.seed,
        schedule=options.schedule,
        **fit_options,
    )
    return model, optimizer, history


def split_with_validation(seed: int) -> Any:
    """The breast-cancer split of ``seed`` with a validation part, for the commands that
    watch validation accuracy while training (`dp experiment`, `dp train --plots`):
    20 % test rows as `dp train`, 15 % validation rows, the rest (65 %) training."""
    return breast_cancer(test_size=TEST_SIZE, validation_size=0.15, seed=seed)
