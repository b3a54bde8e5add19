"""The training loop: mini-batches, the optimizer step, evaluation, history and progress;
and, after training, `recalibrate` (batch norm's moving averages recomputed from the data).

    history = dp.train.fit(model, split.x_train, split.y_train, dp.optim.Adam(lr=0.003),
                           validation=(split.x_val, split.y_val), steps=150, batch_size=50, seed=0)

Each step is the loop of the `dp` package docstring (`train_step`):
``grads = model.loss(xb, yb).grad(1)``, then ``optimizer.step(model.params, grads)``,
all or nothing, for every model: the graph is built and walked at every step, through
the model's own methods. Every ``eval_every`` steps (by default once an epoch) the model
is evaluated in eval mode on the training and the validation rows. A `Monitor` passed to
`fit` looks inside each layer every so many steps (docs/monitor.md)::

    monitor = dp.train.Monitor(split.x_val[:500], every=100)
    dp.train.fit(model, split.x_train, split.y_train, dp.optim.Adam(), steps=2000, monitor=monitor)
    print(monitor.table())
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from dp import checks
from dp.checks import (
    Constraint,
    Flag,
    Function,
    NonFiniteError,
    OneOf,
    OrNone,
    Whole,
    checked,
    describe,
    finite,
    numeric_array,
)
from dp.nn.module import NeuralNode, restore
from dp.nn.normalization import BatchNorm
from dp.optim import Optimizer

SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda step, steps: 1.0,
    # Half a cosine from the full rate down to 0: large steps early, fine ones at the end.
    "cosine": lambda step, steps: 0.5 * (1.0 + math.cos(math.pi * step / steps)),
}

# fit's arguments besides the model, the data and the optimizer, as `dp.checks` checks them.
FIT_CONSTRAINTS: dict[str, Constraint] = {
    "steps": OrNone(Whole("[1, inf)")),
    "epochs": OrNone(Whole("[1, inf)")),
    "batch_size": Whole("[2, inf)"),  # a batch of one row cannot be batch-normalized
    "seed": Whole("[0, inf)"),
    "eval_every": OrNone(Whole("[1, inf)")),
    "schedule": OneOf(*SCHEDULES),
    "progress": OrNone(Flag()),
    "on_step": OrNone(Function()),
    "reduction": OneOf("sum", "mean"),
    "score_rows": OrNone(Whole("[1, inf)")),
    "monitor": OrNone(lambda value, name: _a_monitor(value, name)),  # Monitor is defined below
}
CHANCE_MARGIN = 0.05  # how close to chance a final accuracy must be to count as stuck there
RECALIBRATE_CONSTRAINTS: dict[str, Constraint] = {
    "batch_size": FIT_CONSTRAINTS["batch_size"],
    "seed": Whole("[0, inf)"),
}


@dataclass
class History:
    """What happened during `fit`, one entry per evaluation.

    ``loss`` is the mean training loss per example over the steps since the
    previous evaluation; accuracies are measured in eval mode (``val_accuracy``
    is empty without validation rows; ``train_accuracy`` is measured on at most
    ``score_rows`` training rows, see `fit`). ``diverged`` is set when training
    stopped on NaN or inf. ``chance`` is the accuracy of always answering the most
    frequent training label: a network whose accuracy stays there has learned
    nothing, and `stuck_at_chance` says so.
    """

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False
    chance: float = 0.0

    @property
    def stuck_at_chance(self) -> bool:
        """Whether the last evaluation's accuracy (validation, else training) is within
        `CHANCE_MARGIN` of ``chance``: the run learned nothing (a saturated network, say)."""
        last = self.val_accuracy or self.train_accuracy
        return bool(last) and last[-1] <= self.chance + CHANCE_MARGIN

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


def accuracy(model: NeuralNode, x: Any, y: Any) -> float:
    """The fraction of rows whose eval-mode prediction (``model.predict``) equals the
    label (a class column or vector, or one-hot rows). The model checks the rows and
    labels first (``model.checked_data``, as `fit` does), so that a mistake does not
    pass for a low accuracy: one label per row, and labels its loss would take (for an
    `MLP`, 0/1 for one output, class indices or one-hot rows for more). Other models
    may use labels of their own (-1/+1, say)."""
    x, y = model.checked_data(x, y, "evaluation")
    return _fraction_correct(model, x, y)


def _fraction_correct(model: NeuralNode, x: np.ndarray, y: np.ndarray) -> float:
    """`accuracy` without its checks, for rows and labels already checked (as `fit`'s are)."""
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y
    return float((model.predict(x) == labels.reshape(-1, 1)).mean())


def fit(
    model: NeuralNode,
    x: Any,
    y: Any,
    optimizer: Optimizer,
    *,
    validation: Sequence[Any] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 50,
    seed: int = 0,
    eval_every: int | None = None,
    schedule: str = "constant",
    progress: bool | None = None,
    on_step: Callable[[int, NeuralNode], None] | None = None,
    reduction: str = "sum",
    score_rows: int | None = 1000,
    monitor: Monitor | None = None,
) -> History:
    """Train ``model`` on the rows ``x`` (n, features) and labels ``y`` with mini-batch
    ``optimizer`` steps (`train_step`: the model's ``loss``, ``grad``, the optimizer's ``step``).

    Give ``steps`` (optimizer steps) or ``epochs`` (passes over the training rows).
    Each epoch visits the rows in a new order drawn from ``seed``; a last batch
    smaller than ``batch_size`` is dropped (a batch of one row cannot be
    batch-normalized). ``schedule`` scales the learning rate over the run:
    "constant" or "cosine" (from the optimizer's ``lr`` down to 0); the
    optimizer's ``lr`` is restored at the end, and so is the model's train/eval
    mode (it trains in training mode). ``validation``, an ``(x_val, y_val)`` pair,
    is evaluated too. ``on_step(step, model)`` is called after every step.
    ``reduction`` is the loss each step differentiates: "sum" over the batch's rows
    (the seed notebook's convention, so the learning rate scales with the batch) or
    "mean". Training accuracy is measured on ``score_rows`` training rows (a fixed
    sample drawn from ``seed``, the same at every evaluation; all rows when there are
    no more, or for ``score_rows=None``), so that evaluating often stays cheap.
    ``progress`` shows a progress bar (tqdm); by default only when standard error
    is a terminal. ``monitor``, a `Monitor`, looks inside each layer before the first
    step and every ``monitor.every`` steps; it changes nothing of the run.

    The same model, data, optimizer settings and seed give bit-identical results.
    Returns the `History`, one entry per evaluation: every ``eval_every`` steps (by
    default once an epoch) and after the last step.

    Before the first step the model checks the data (``model.checked_data``: what
    a training step would refuse is refused at once, and never mistaken for
    divergence) and every argument is checked against `FIT_CONSTRAINTS`:
    ``TypeError`` for the wrong kind (``steps=True``, ``batch_size=2.5``),
    ``ValueError`` for a value out of range (``steps``, ``epochs`` and
    ``eval_every`` are whole numbers >= 1; ``batch_size`` at least 2 and at most
    the training rows), for both or neither of ``steps`` and ``epochs``, or for an
    unknown ``schedule``; a ``monitor`` checks its rows and layers against the model
    (`Monitor.start`).

    Raises `Diverged` (a `NonFiniteError`) when the loss, the gradients or the
    updated parameters would be NaN or inf (the failing step changes nothing: the
    model and the optimizer stay as the previous step left them), or when
    evaluating the model meets NaN or inf. Any other error in a step (an optimizer
    that refuses it, say) also leaves the model as the previous step left it.
    """
    options = checked(
        FIT_CONSTRAINTS,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        eval_every=eval_every,
        schedule=schedule,
        progress=progress,
        on_step=on_step,
        reduction=reduction,
        score_rows=score_rows,
        monitor=monitor,
    )
    plan = _Plan.make(model, x, y, validation, **options)
    if monitor is not None:
        monitor.start(model)  # its rows and layers checked, before anything changes
    history = History(chance=chance_accuracy(plan.y))
    bar = _progress_bar(plan.steps, options["progress"])
    was_training, base_lr, start = model.training, optimizer.lr, time.perf_counter()
    model.train()
    try:
        _run(model, optimizer, plan, history, bar, options["on_step"], monitor)
    finally:
        model.train(was_training)  # back in the mode it came in, even after an error
        optimizer.lr = base_lr
        history.seconds = time.perf_counter() - start
        bar.close()
    return history


def train_step(
    model: NeuralNode,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    reduction: str = "sum",
    gradients: dict[str, np.ndarray] | None = None,
) -> float:
    """One optimizer step on the batch (x, y), all or nothing; returns its loss (summed
    over the rows, or their mean for ``reduction="mean"``)::

        loss = model.loss(x, y, reduction=reduction)   # the forward pass updates the moving averages
        grads = loss.grad(1)
        optimizer.step(model.params, grads)     # all or nothing, and last

    Compute, then commit, with one rollback point: if anything fails (NaN or inf
    in the loss, the gradients or the update, as `NonFiniteError`; labels the loss
    refuses; an optimizer that refuses the step; Ctrl-C), every entry of ``model.params``
    is put back as it was, moving averages included, and so is the optimizer's state,
    and the error is raised.

    ``gradients``, a dict, receives the step's ``grads`` when given (how a `Monitor` sees
    them, without a second backward pass).
    """
    return all_or_nothing(model, optimizer, lambda: _graph_step(model, optimizer, x, y, reduction, gradients))


def _graph_step(
    model: NeuralNode,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    reduction: str,
    gradients: dict[str, np.ndarray] | None = None,
) -> float:
    """`train_step`'s three lines, with the loss checked: its value."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # NaN and inf are checked, not warned about
        # The default is the seed's summed loss, asked for without the keyword, which a
        # model's own loss(x, y) need not take.
        loss = model.loss(x, y) if reduction == "sum" else model.loss(x, y, reduction=reduction)
        finite(loss.value, "the loss")
        grads = loss.grad(1)
    optimizer.step(model.params, grads)
    if gradients is not None:
        gradients.update(grads)
    return float(loss.value[0, 0])


def all_or_nothing(model: NeuralNode, optimizer: Optimizer, step: Callable[[], float]) -> float:
    """Run ``step`` (a training step that returns its loss) as one transaction on
    ``model.params`` and the optimizer's state: if it raises, every entry of both is put
    back as it was (`dp.nn.module.restore`), and the error goes on. The optimizer replaces
    its state dict at each step rather than writing into it, so keeping the old one is
    enough."""
    params_before, state_before = dict(model.params), optimizer.state
    try:
        return step()
    except BaseException:
        optimizer.state = state_before
        restore(model.params, params_before)
        raise


@dataclass(frozen=True)
class _Plan:
    """What `fit` does, from its checked arguments: the data, the batches, the steps,
    the evaluations and the learning-rate schedule."""

    x: np.ndarray
    y: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    batch_size: int
    batches_per_epoch: int
    steps: int
    eval_every: int
    seed: int
    schedule: Callable[[int, int], float]
    reduction: str
    scored: np.ndarray  # the training rows whose accuracy each evaluation measures

    @classmethod
    def make(
        cls,
        model: NeuralNode,
        x: Any,
        y: Any,
        validation: Sequence[Any] | None,
        *,
        steps: int | None,
        epochs: int | None,
        batch_size: int,
        seed: int,
        eval_every: int | None,
        schedule: str,
        reduction: str,
        score_rows: int | None,
        **_: Any,  # progress and on_step: not part of the plan
    ) -> _Plan:
        """The plan of `fit` for checked arguments, after checking the data (see `fit`)."""
        x, y = model.checked_data(x, y, "training")
        checked_validation = _checked_validation(model, validation)
        if batch_size > len(x):
            raise ValueError(f"batch_size must be at most the number of training rows, {len(x)}; got {batch_size}")
        batches_per_epoch = len(x) // batch_size
        total = _total_steps(steps, epochs, batches_per_epoch)
        every = eval_every or batches_per_epoch
        scored = _scored_rows(len(x), score_rows, seed)
        return cls(
            x,
            y,
            checked_validation,
            batch_size,
            batches_per_epoch,
            total,
            every,
            seed,
            SCHEDULES[schedule],
            reduction,
            scored,
        )

    def batches(self) -> Iterator[np.ndarray]:
        """The rows of each step's batch: each epoch a new order of all rows drawn from
        ``seed``, cut into batches; the last rows that do not fill a batch are dropped."""
        rng = np.random.default_rng(self.seed)
        order = np.arange(0)
        for step in range(self.steps):
            position = step % self.batches_per_epoch
            if position == 0:
                order = rng.permutation(len(self.x))
            yield order[position * self.batch_size :][: self.batch_size]

    def evaluates_after(self, step: int) -> bool:
        """Whether `fit` evaluates after ``step`` (counted from 1): every ``eval_every``, and after the last."""
        return step % self.eval_every == 0 or step == self.steps


def _scored_rows(rows: int, score_rows: int | None, seed: int) -> np.ndarray:
    """All row indices, or a sorted sample of ``score_rows`` of them drawn from ``seed``
    (from its own stream: the batches' order does not change with it)."""
    if score_rows is None or score_rows >= rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng([seed, 1]).choice(rows, score_rows, replace=False))


def chance_accuracy(y: np.ndarray) -> float:
    """The accuracy of always answering the most frequent label of ``y`` (a column of
    labels, or one-hot rows): what a model that learned nothing gets."""
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.round(y.reshape(-1))
    return float(np.unique(labels, return_counts=True)[1].max() / len(labels))


def _total_steps(steps: int | None, epochs: int | None, batches_per_epoch: int) -> int:
    """The optimizer steps of a run given as ``steps`` or as ``epochs``, exactly one of them."""
    if epochs is None and steps is not None:
        return steps
    if steps is None and epochs is not None:
        return epochs * batches_per_epoch
    raise ValueError("give either steps or epochs")


def _checked_validation(model: NeuralNode, validation: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The validation rows and labels, checked by the model as training data is, or None."""
    if validation is None:
        return None
    if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
        raise TypeError(f"validation must be an (x_val, y_val) pair or None, not {describe(validation)}")
    return model.checked_data(validation[0], validation[1], "validation")


def _run(
    model: NeuralNode,
    optimizer: Optimizer,
    plan: _Plan,
    history: History,
    bar: Any,
    on_step: Any,
    monitor: Monitor | None,
) -> None:
    """The steps of ``plan``, evaluations recorded in ``history``; `Diverged` on NaN or inf."""
    base_lr, losses = optimizer.lr, []
    take_step = _stepper(model, optimizer, plan, monitor)
    for step, rows in enumerate(plan.batches(), start=1):
        optimizer.lr = base_lr * plan.schedule(step - 1, plan.steps)
        evaluate = plan.evaluates_after(step)
        try:
            loss = take_step(step, rows)
            losses.append(loss / plan.batch_size if plan.reduction == "sum" else loss)
            if evaluate:
                _evaluate(model, plan, history, step, losses)
        except NonFiniteError as error:
            history.diverged = True
            raise Diverged(f"training diverged at step {step}: {error}", history) from error
        if on_step is not None:
            on_step(step, model)
        if evaluate:
            losses = []
            bar.set_postfix(_postfix(history), refresh=False)
        bar.update(1)


def _stepper(
    model: NeuralNode, optimizer: Optimizer, plan: _Plan, monitor: Monitor | None
) -> Callable[[int, np.ndarray], float]:
    """How `_run` takes step ``step`` on some rows of the plan: `train_step` on them, and, at
    the steps ``monitor`` records, what it needs to see kept and handed to it."""

    def take(step: int, rows: np.ndarray) -> float:
        return watched_step(monitor, step, model, optimizer, plan.x[rows], plan.y[rows], plan.reduction)

    return take


def watched_step(
    monitor: Monitor | None, step: int, model: NeuralNode, optimizer: Optimizer, x: Any, y: Any, reduction: str
) -> float:
    """`train_step` on (x, y) as step ``step``, through ``monitor`` when there is one (which
    records the steps it watches, changing nothing): `fit`'s step, and a loop of one's own."""
    if monitor is None:
        return train_step(model, optimizer, x, y, reduction)
    return monitor.train_step(step, model, optimizer, x, y, reduction)


def _evaluate(model: NeuralNode, plan: _Plan, history: History, step: int, losses: list[float]) -> None:
    """Append one evaluation to ``history``, all fields or (on an error) none."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging model may overflow
        train_accuracy = _fraction_correct(model, plan.x[plan.scored], plan.y[plan.scored])
        val_accuracy = [_fraction_correct(model, *plan.validation)] if plan.validation is not None else []
    history.step.append(step)
    history.epoch.append(step / plan.batches_per_epoch)
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
    from tqdm import tqdm  # type: ignore[import-untyped]  # imported only when shown: it costs start-up time

    return tqdm(total=total, desc="training", unit="step", leave=False, dynamic_ncols=True)


# ----- after training: the moving averages recomputed -----


def recalibrate(model: NeuralNode, x: Any, *, batch_size: int = 50, seed: int = 0) -> int:
    """Recompute every batch-norm layer's moving averages from the rows ``x`` (the training
    rows, after training), and return how many batches they average.

    The rows are visited once, in an order drawn from ``seed``, in batches of ``batch_size``
    (the last rows that do not fill a batch are dropped, as `fit` drops them). Each batch goes
    through ``model.forward(batch, train=True)``, as in a training step but without a
    gradient or an optimizer: the learned parameters never change. For the while, every layer
    starts from zero averages with ``momentum=None`` (its k-th batch weighs 1 / k), so that
    afterwards each layer's averages are the plain mean of its batches' statistics (the
    unbiased variances with ``unbiased_average``), owing nothing to the old averages or to
    the zero start; and each normalizes with its batch's own statistics, without batch
    renormalization's correction (r = 1, d = 0: its averages are what is being rebuilt).
    Then each layer gets its own momentum and renorm back, and its batch count, which counts
    training batches (and drives renorm's warmup), is as it was.

    A moving average with a fixed momentum weighs the last batches most, taken while the
    weights were still moving; the plain mean over the data with the final weights is what
    the network meets in evaluation (docs/running_statistics.md measures the difference).

    All or nothing: if anything fails (rows the model refuses, NaN or inf in them, Ctrl-C),
    ``model.params`` is as it was before. Errors: ``TypeError`` or ``ValueError`` for a
    ``batch_size`` that is not a whole number >= 2 or more than the rows, a negative
    ``seed``, rows that are not a numeric array of at least two dimensions
    (`dp.checks.numeric_array`); `NonFiniteError` for NaN or inf in them; ``ValueError`` for
    a model without batch norm, or whose batch-norm state (``batches_{name}`` in ``params``)
    belongs to no layer among its attributes (a layer it cannot reach cannot be recalibrated).
    """
    size, seed = checked(RECALIBRATE_CONSTRAINTS, batch_size=batch_size, seed=seed).values()
    layers = batch_norm_layers(model)
    rows = _recalibration_rows(x, size)
    order = np.random.default_rng(seed).permutation(len(rows))
    batches = [order[start : start + size] for start in range(0, len(rows) - size + 1, size)]
    before = dict(model.params)
    try:
        with _cumulative(layers):
            model.params.update({key: np.zeros_like(before[key]) for layer in layers for key in _state_keys(layer)})
            for batch in batches:
                model.forward(rows[batch], train=True)
        model.params.update({layer.batches_key: before[layer.batches_key] for layer in layers})
    except BaseException:
        restore(model.params, before)
        raise
    return len(batches)


def batch_norm_layers(model: NeuralNode) -> list[BatchNorm]:
    """The batch-norm layers of ``model``: the `BatchNorm` objects among its attributes,
    directly or in lists, tuples and dicts (an `dp.MLP` keeps them in ``hidden``, a `dp.CNN`
    in ``blocks`` and ``dense``), each once. ``ValueError`` when there are none, or when a
    layer's state in ``params`` (its ``batches_{name}`` entry) belongs to none of them."""
    found = {id(item): item for item in _contents(vars(model)) if isinstance(item, BatchNorm) and item.model is model}
    layers = sorted(found.values(), key=lambda layer: layer.batches_key)
    owned = {key for key in model.params if key.startswith("batches_")}
    if not layers or owned != {layer.batches_key for layer in layers}:
        what = (
            "has no batch-norm layer" if not layers else "has batch-norm state that no layer among its attributes owns"
        )
        raise ValueError(f"recalibrate: the model {what}: its params are {sorted(model.params)}")
    return layers


def _contents(attributes: dict[str, Any]) -> Iterator[Any]:
    """Every object in ``attributes`` and, inside lists, tuples and dicts, at any depth, each
    container visited once (walked with a stack, not recursion)."""
    seen, stack = set(), list(attributes.values())
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, (list, tuple, dict)) and id(item) not in seen:
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)


def _recalibration_rows(x: Any, batch_size: int) -> np.ndarray:
    """The rows to recalibrate on, checked: numeric and finite, at least 2-D (rows of features,
    or images), and at least ``batch_size`` of them. Their width is the model's to check."""
    rows = checks.finite(checks.numeric_array(x, "recalibrate: the rows"), "recalibrate: the rows")
    if rows.ndim < 2 or len(rows) < batch_size:
        raise ValueError(
            f"recalibrate needs rows (n, features) or images, at least batch_size = {batch_size} of them; "
            f"got shape {rows.shape}"
        )
    return rows


def _state_keys(layer: BatchNorm) -> tuple[str, str, str]:
    return layer.mean_key, layer.variance_key, layer.batches_key


@contextmanager
def _cumulative(layers: list[BatchNorm]) -> Iterator[None]:
    """While the block runs, each layer with ``momentum=None`` and no renorm; their own
    settings back afterwards, even after an error."""
    saved = [(layer, layer.momentum, layer.renorm) for layer in layers]
    for layer in layers:
        layer.momentum, layer.renorm = None, False
    try:
        yield
    finally:
        for layer, momentum, renorm in saved:
            layer.momentum, layer.renorm = momentum, renorm


# ----- looking inside the layers while they train -----

SATURATED = 0.97  # an activation this close to its bounds is flat: makemore part 3's threshold
# Where each activation is not flat, as the open interval of its input z: outside it, its
# derivative is (almost) 0 and a unit passes (almost) no gradient back. |tanh(z)| > 0.97 where
# |z| > atanh(0.97) = 2.09; sigmoid(z) is outside [0.03, 0.97] where |z| > log(0.97 / 0.03) =
# 3.48; relu(z) is exactly 0 where z <= 0. Tested on z, not on the activation's output: the
# same values, without computing the activation again (a sigmoid is the costliest part).
ACTIVE_RANGES: dict[str, tuple[float, float]] = {
    "tanh": (-math.atanh(SATURATED), math.atanh(SATURATED)),
    "sigmoid": (-math.log(SATURATED / (1 - SATURATED)), math.log(SATURATED / (1 - SATURATED))),
    "relu": (0.0, math.inf),
}
# What `Monitor` measures, per layer and recorded step: the name of `Monitor.series`, its heading.
MEASURES = {
    "mean": "pre-activation mean",
    "std": "pre-activation std",
    "saturated": "saturated %",
    "dead": "dead units %",
    "grad_std": "gradient std",
    "update_ratio": "log10 update/data",
}
# The saturated column's heading in `Monitor.table`, saying what it counts for each activation.
FLAT_HEADINGS = {
    "tanh": "saturated % (abs(tanh) > 0.97)",
    "sigmoid": "saturated % (sigmoid outside [0.03, 0.97])",
    "relu": "exactly 0 % (ReLU)",
}


class Monitor:
    """A look inside each layer while `fit` trains: Karpathy's diagnostics of "makemore part 3"
    (Building makemore Part 3: Activations & Gradients, BatchNorm), per layer, before the
    first step and every ``every`` steps::

        monitor = dp.train.Monitor(split.x_val[:500], every=100)
        dp.train.fit(model, split.x_train, split.y_train, optimizer, steps=2000, monitor=monitor)
        print(monitor.table()); dp.plots.monitor_figure("monitor.png", monitor)

    For each hidden layer, on ``rows`` (a fixed sample, the same at every recorded step, so
    the steps compare; at least 2 rows, since batch norm normalizes them by their own
    statistics, as a training step would), from ``model.record(rows, train=True)``, which
    changes nothing:

    - ``mean``, ``std``: of the layer's pre-activations (the input of its activation: the
      batch norm's output with batch norm, the linear layer's or convolution's without),
      over all rows, units and positions. With batch norm, near 0 and 1 (beta and gamma
      set them); without it, they follow the weights' scale, layer after layer.
    - ``saturated``: the fraction of those values whose activation is flat (`ACTIVE_RANGES`): tanh
      beyond 0.97 in magnitude, sigmoid outside [0.03, 0.97]; for ReLU, outputs exactly 0,
      about half of them in a healthy layer. NaN for the other activations.
    - ``dead``: the fraction of units (features, or channels of a convolution) flat on every
      row (and position): for ReLU, dead units, exactly 0 on every row, which no gradient
      will ever revive; for tanh and sigmoid, units saturated on every row.

    For every layer with a weight (``weight_{layer}``, the output layer included), at each
    recorded step but the first (before training, there is no step):

    - ``grad_std``: the standard deviation of the weight's gradient, the very ``grads`` the
      step's optimizer used (of the loss `fit` differentiates: with ``reduction="sum"``,
      batch_size times the mean loss's);
    - ``update_ratio``: ``log10(||W_new - W_old|| / ||W_old||)``, the size of the step's
      update against the weights (Frobenius norms). Karpathy's rule of thumb: around -3
      (an update a thousandth of the weights); far below, the layer learns too slowly; far
      above, too fast.

    It changes nothing of the run: the parameters (moving averages and batch counts
    included), the optimizer's state and the batches are those of the same `fit` without
    it, bit for bit. It costs one forward pass on ``rows`` and a few norms per recorded
    step (docs/speed.md: under 10 % of the steps' time at ``every=100``). The parameters
    before a step are kept only at recorded steps, as references (the optimizers replace
    arrays, never write into them): nothing is copied.

    After `fit`: ``steps`` (the recorded steps, 0 first), ``layers``, ``activation``,
    `series` (a measure's values over the steps, per layer), `table` (Markdown) and
    ``snapshots`` (the pre-activations of each hidden layer at step 0 and at the last
    recorded step, for histograms). Each `fit` it is given starts it anew.

    A training loop of one's own (not `fit`) uses it as `fit` does: `start` before the first
    step, then each step through `train_step` (`dp.studies.santurkar2018` does).

    Errors, all before training starts: ``every`` not a whole number >= 1; ``rows`` not a
    numeric array of at least 2 rows; then, in `fit` (`start`), rows the model does not
    take, a ``layers`` name the model does not have (the message lists its layers), or a
    model without ``record`` and ``activation_inputs`` (`dp.MLP`, `dp.CNN` have them).
    """

    def __init__(self, rows: Any, every: int = 100, layers: Sequence[str] | None = None) -> None:
        self.every = Whole("[1, inf)")(every, "every")
        self.rows = numeric_array(rows, "the monitor's rows")
        if len(self.rows) < 2:
            raise ValueError(
                f"the monitor's rows must be at least 2 (batch norm normalizes them by their own statistics); "
                f"got {len(self.rows)}"
            )
        self.asked = None if layers is None else [layers] if isinstance(layers, str) else list(layers)
        self.layers: list[str] = []
        self.activation = ""
        self.inputs: dict[str, str] = {}  # hidden layer -> the `record` name of its activation's input
        self.steps: list[int] = []
        self.snapshots: dict[int, dict[str, np.ndarray]] = {}
        self._values: dict[str, dict[str, list[float]]] = {}
        self._started_on: int | None = None  # id() of the model `start` saw: steps are of that model's run
        self._last_step = 0

    @property
    def active_range(self) -> tuple[float, float] | None:
        """The pre-activations whose activation is not flat, as an interval (outside it, a
        unit is saturated; `ACTIVE_RANGES`), or None for an activation without a flat part."""
        return ACTIVE_RANGES.get(self.activation)

    def start(self, model: NeuralNode) -> None:
        """Check the rows and the layers against ``model`` and record step 0, before the
        first step: `fit` calls it (a loop of one's own too, `train_step`). Forgets what an
        earlier run recorded."""
        self.layers = self._checked_layers(model)
        hidden = cast(Any, model).activation_inputs()
        self.inputs = {layer: hidden[layer] for layer in self.layers if layer in hidden}
        self.activation = getattr(model, "config", {}).get("activation", "")
        self.steps, self.snapshots = [], {}
        self._values = {measure: {layer: [] for layer in self.layers} for measure in MEASURES}
        try:
            self.observe(0, model, None, None)
        except ValueError as error:
            raise ValueError(f"the monitor's rows do not fit the model: {error}") from error
        self._started_on, self._last_step = id(model), 0

    def _checked_layers(self, model: NeuralNode) -> list[str]:
        """The layers to monitor in ``model``: those asked for, or every layer with a weight."""
        if not (callable(getattr(model, "record", None)) and callable(getattr(model, "activation_inputs", None))):
            raise TypeError(
                "a Monitor looks inside a model with record() and activation_inputs(), as dp.MLP and dp.CNN; "
                f"got {type(model).__name__}"
            )
        known = [key.removeprefix("weight_") for key in model.params if key.startswith("weight_")]
        unknown = [name for name in self.asked or () if name not in known]
        if unknown:
            named = ", ".join(map(repr, unknown))
            raise ValueError(f"the model has no layer {named} to monitor; its layers are {known}")
        return self.asked or known

    def records(self, step: int) -> bool:
        """Whether `train_step` hands step ``step`` (counted from 1) to `observe`: every ``every``-th."""
        return step % self.every == 0

    def train_step(
        self, step: int, model: NeuralNode, optimizer: Optimizer, x: Any, y: Any, reduction: str = "sum"
    ) -> float:
        """`dp.train.train_step` on the batch (x, y) as step ``step`` (counted from 1) of a run
        this monitor was `start`-ed on, recorded if it is one it `records`: how `fit` takes its
        steps with a monitor, and how a training loop of one's own does::

            monitor.start(model)                       # checks, and records step 0
            for step, (x, y) in enumerate(batches, start=1):
                monitor.train_step(step, model, optimizer, x, y)

        Returns the step's loss; changes nothing that `train_step` would not. A recorded step
        is all or nothing with its record: if recording fails, the step is undone too."""
        self._require_next(step, model)
        if not self.records(step):
            loss = train_step(model, optimizer, x, y, reduction)
        else:
            loss = all_or_nothing(
                model, optimizer, lambda: self._recorded_step(step, model, optimizer, x, y, reduction)
            )
        self._last_step = step
        return loss

    def _require_next(self, step: int, model: NeuralNode) -> None:
        """Refuse, before anything changes, a step of a model this monitor was not `start`-ed
        on, or a step that does not come after the last one (steps count from 1)."""
        if self._started_on != id(model):
            raise ValueError("call monitor.start(model) on this model before its first monitor.train_step")
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step <= self._last_step:
            raise ValueError(
                f"monitor.train_step: steps count up from 1 (step 0 is start's); got {step!r} after {self._last_step}"
            )

    def _recorded_step(
        self, step: int, model: NeuralNode, optimizer: Optimizer, x: Any, y: Any, reduction: str
    ) -> float:
        # The optimizers replace the arrays of params, never write into them: this shallow
        # copy keeps the parameters from before the step for free.
        before = dict(model.params)
        gradients: dict[str, np.ndarray] = {}
        loss = train_step(model, optimizer, x, y, reduction, gradients)
        self.observe(step, model, before, gradients)
        return loss

    def observe(
        self,
        step: int,
        model: NeuralNode,
        before: dict[str, np.ndarray] | None,
        gradients: dict[str, np.ndarray] | None,
    ) -> None:
        """Record the measures of step ``step``, just taken: ``before`` holds the parameters
        from before it (a shallow copy of ``model.params``), ``gradients`` its ``grads``; both
        None for step 0. `train_step` calls it."""
        with np.errstate(all="ignore"):  # a diverging network's values say so themselves
            pre = self._pre_activations(model)
            measured = {
                layer: {
                    **_activation_measures(pre.get(layer), self.activation),
                    **_weight_measures(f"weight_{layer}", model.params, before, gradients),
                }
                for layer in self.layers
            }
        # Measured first, then kept: an error above leaves every series as long as `steps`.
        for layer, measures in measured.items():
            for measure, value in measures.items():
                self._values[measure][layer].append(value)
        self.steps.append(step)
        self.snapshots = {0: self.snapshots.get(0, pre), step: pre}

    def _pre_activations(self, model: NeuralNode) -> dict[str, np.ndarray]:
        """The input of each monitored hidden layer's activation on ``rows``, by layer."""
        recorded = cast(Any, model).record(self.rows, list(self.inputs.values()), train=True)
        return {layer: recorded[name] for layer, name in self.inputs.items()}

    def series(self, measure: str) -> dict[str, np.ndarray]:
        """``{layer: the values of ``measure`` at each of `steps`}``; ``measure`` one of
        `MEASURES`. NaN where it does not apply (a gradient at step 0, saturation in the
        output layer). ``saturated`` and ``dead`` are fractions, 0 to 1."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(map(repr, MEASURES))}; got {measure!r}")
        return {layer: np.array(values, dtype=float) for layer, values in self._values[measure].items()}

    def table(self) -> str:
        """The measures as a Markdown table, a row per recorded step and layer (empty cells
        where a measure does not apply; ``saturated`` and ``dead`` in percent, the saturated
        column's heading saying what it counts for the model's activation)."""
        headings = {**MEASURES, "saturated": FLAT_HEADINGS.get(self.activation, MEASURES["saturated"])}
        lines = ["| step | layer | " + " | ".join(headings.values()) + " |", "|--:|---|" + "--:|" * len(MEASURES)]
        columns = {measure: self.series(measure) for measure in MEASURES}
        for i, step in enumerate(self.steps):
            for layer in self.layers:
                cells = [_cell(measure, columns[measure][layer][i]) for measure in MEASURES]
                lines.append(f"| {step:,} | {layer} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _a_monitor(value: Any, name: str) -> Monitor:
    if not isinstance(value, Monitor):
        raise TypeError(f"{name} must be a dp.train.Monitor or None, not {describe(value)}")
    return value


def _activation_measures(z: np.ndarray | None, activation: str) -> dict[str, float]:
    """The mean and standard deviation of the pre-activations ``z`` (rows first, units on axis
    1), the fraction of them where ``activation`` is flat and of units flat on every row and
    position; all NaN for no ``z`` (a layer without activation), the last two for an
    activation without a flat part."""
    if z is None:
        return dict.fromkeys(("mean", "std", "saturated", "dead"), math.nan)
    active = ACTIVE_RANGES.get(activation)
    where = None if active is None else ~((z > active[0]) & (z < active[1]))  # NaN counts as flat
    per_unit = tuple(axis for axis in range(z.ndim) if axis != 1)
    return {
        "mean": float(z.mean()),
        "std": float(z.std()),
        "saturated": math.nan if where is None else float(where.mean()),
        "dead": math.nan if where is None else float(where.all(axis=per_unit).mean()),
    }


def _weight_measures(
    key: str,
    params: dict[str, np.ndarray],
    before: dict[str, np.ndarray] | None,
    gradients: dict[str, np.ndarray] | None,
) -> dict[str, float]:
    """The standard deviation of the gradient of ``params[key]`` and log10 of its update's
    norm over its norm before the step; NaN without a step."""
    if before is None or gradients is None:
        return {"grad_std": math.nan, "update_ratio": math.nan}
    old = before[key]
    return {
        "grad_std": float(np.std(gradients[key])),
        "update_ratio": float(np.log10(np.linalg.norm(params[key] - old) / np.linalg.norm(old))),
    }


def _cell(measure: str, value: float) -> str:
    """One measure's value as a table cell: percentages for fractions, empty for NaN."""
    if math.isnan(value):
        return ""
    if measure in ("saturated", "dead"):
        return f"{100 * value:.1f}"
    if measure == "mean":
        return f"{round(value, 3) + 0.0:+.3f}"  # + 0.0: never "-0.000"
    return f"{value:.2f}" if measure == "update_ratio" else f"{value:.3g}"
