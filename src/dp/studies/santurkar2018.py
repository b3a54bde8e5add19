"""`dp paper santurkar2018`: Santurkar, Tsipras, Ilyas and Madry (2018), "How Does Batch
Normalization Help Optimization?" (NeurIPS; arXiv 1805.11604), on the MNIST network of
`dp.studies.ioffe2015` (784-100-100-100-10), in three measurements:

- **standard, batch norm, noisy batch norm** (their section 2.1, Figure 2): test accuracy
  over training, and the percentiles of one unit's input to its activation, unit 0 of the
  last hidden layer, as a training step sees it (recorded in training mode on fixed test rows,
  which changes nothing: `dp.nn.models.Classifier.record`). "Noisy" adds, after each
  batch-norm layer and in training only, noise whose distribution changes at every step
  (`NoisyBatchNorm`);
- **internal covariate shift as they define it** (Definition 2.1, Figure 3): for each layer
  k, the gradient of the loss with respect to its weights, G_k, and G'_k, the same gradient
  on the same batch after the layers before k (only those) took the SGD step the training step
  would make; ``||G_k - G'_k||_2`` and ``cos(G_k, G'_k)`` (`internal_covariate_shift`);
- **the landscape** (section 3.1, Figure 4): along the gradient g of the step's batch, at
  step sizes eta = lr x `STEP_FACTORS`, the range of the loss, the gradient predictiveness
  ``max_eta ||g(x - eta g) - g(x)||`` and the effective beta-smoothness
  ``max_eta ||g(x - eta g) - g(x)|| / ||eta g||`` (`landscape`).

The measures of the last two are taken before every ``measure_every``-th step on the batch
that step then trains on, with every entry of ``params`` put back afterwards (moving averages
and batch counts included): a measured run trains exactly as an unmeasured one.

And a look inside the layers (`dp.train.Monitor`, docs/monitor.md), for each setting's run
with the first seed: at step 0 and after every ``measure_every``-th step (so on the parameters
the next measurement sees), per layer, the mean and spread of the input of its ReLU on the
watched test rows in training mode (the noisy network's with the step's noise), the fraction
of the ReLU's outputs exactly 0, the spread of the weights' gradient and the update-to-data
ratio. It too changes nothing of the run.

What their text gives and this module follows: the noise ("we perturb each activation for each
sample in the batch using i.i.d. noise sampled from a non-zero mean and non-unit variance
distribution", a distribution that "changes at each time step"); Definition 2.1 (the gradient
before and after the previous layers' update, on the same batch); the three landscape
measures along the gradient direction. What it does not give here, chosen (docs/why/santurkar2018.md):

- the network: their Figure 2 and 4 use VGG on CIFAR-10 (Figure 3 a deep linear network too);
  here the 784-100-100-100-10 MLP with ReLU and He-normal weights (N(0, 2 / fan_in)), so that
  the plain network trains at the same rate as the batch-norm ones (with ioffe2015's
  N(0, 0.01^2) sigmoid network it stays at chance for thousands of steps, which would make
  every comparison one of a network that learns against one that does not);
- plain SGD on the mean loss of 60 rows, one constant rate, `LR`, for every setting;
- the noise's distribution (their exact one was not found): at step t, per unit j of each
  batch-norm layer, a scale s_tj ~ U(1, `NOISE_SCALE`) and a shift m_tj ~ U(-`NOISE_SHIFT`,
  `NOISE_SHIFT`), and per sample i a jitter z_ij ~ N(0, 1): ``y'_ij = s_tj * y_ij + m_tj +
  NOISE_JITTER * z_ij``, drawn from (the run's seed, the layer, t), so a run is reproducible
  and every extra forward pass within one step (a measure's) sees the step's noise;
- the step sizes of the landscape: lr x 1/4 ... 8 (`STEP_FACTORS`); the loss range includes
  the loss at the current point (eta = 0).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dp.nn.models import MLP
from dp.nn.module import unchanged
from dp.nn.normalization import BatchNorm
from dp.node import Node
from dp.studies import ioffe2015, monitored, parallel

SETTINGS = ("standard", "batch_norm", "noisy")
NAMES = {"standard": "standard", "batch_norm": "batch norm", "noisy": "noisy batch norm"}
MEASURED = ("standard", "batch_norm")  # the settings whose covariate shift and landscape are measured
BATCH = ioffe2015.BATCH
LR = 0.1
ACTIVATION, INIT = "relu", "he"
NOISE_SCALE, NOISE_SHIFT, NOISE_JITTER = 2.0, 1.0, 0.5
STEP_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # the landscape's step sizes, in learning rates
PERCENTILES = (5, 25, 50, 75, 95)
WATCHED_ROWS = 1000


@dataclass(frozen=True)
class Budget:
    """How long each run trains, how many seeds, and how often it is evaluated and measured."""

    steps: int
    seeds: int
    evaluations: int = 20
    measurements: int = 10


FULL = Budget(steps=20_000, seeds=3, evaluations=20, measurements=20)
QUICK = Budget(steps=3_000, seeds=2, evaluations=10, measurements=10)


@dataclass(frozen=True)
class Run:
    """One training run, in plain values (so any joblib backend can ship it)."""

    setting: str  # one of SETTINGS
    data: str
    sizes: tuple[int, ...]
    lr: float
    steps: int
    seed: int
    eval_every: int
    measure_every: int = 0  # 0: no covariate shift or landscape measured
    monitor_every: int = 0  # 0: no dp.train.Monitor


@dataclass(frozen=True)
class Landscape:
    """The landscape along the gradient at one step: the loss at eta = 0 and at each step size,
    and ``||g(x - eta g) - g(x)||`` at each, for the gradient's norm ``||g||``."""

    etas: tuple[float, ...]
    losses: tuple[float, ...]  # eta = 0 first
    distances: tuple[float, ...]
    gradient_norm: float

    @property
    def loss_range(self) -> float:
        return max(self.losses) - min(self.losses)

    @property
    def predictiveness(self) -> float:
        """The largest change of the gradient over the step sizes (smaller: more predictive)."""
        return max(self.distances)

    @property
    def betas(self) -> tuple[float, ...]:
        """``||g(x - eta g) - g(x)|| / ||eta g||`` at each step size."""
        return tuple(d / (eta * self.gradient_norm) for d, eta in zip(self.distances, self.etas))

    @property
    def beta_smoothness(self) -> float:
        return max(self.betas)


@dataclass
class Result:
    """What one run measured: test accuracy and the watched percentiles at each evaluation;
    the covariate shift ``{layer: (distance, cosine)}`` and the `Landscape` at each measurement."""

    run: Run
    step: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)  # training mode (noise and all), training rows
    percentiles: list[tuple[float, ...]] = field(default_factory=list)
    measured_at: list[int] = field(default_factory=list)  # steps taken before each measurement
    shift: list[dict[str, tuple[float, float]]] = field(default_factory=list)
    landscapes: list[Landscape] = field(default_factory=list)
    diverged: bool = False
    seconds: float = 0.0
    monitor: Any = field(default=None, compare=False)  # the run's dp.train.Monitor, if it had one


# ----- noisy batch norm -----


class NoisyBatchNorm(BatchNorm):
    """Batch norm followed, in training only, by noise whose distribution changes at every step
    (see the module docstring). The step t is the layer's own count of training batches
    (``batches_{name}``) before this one, so the noise is a function of (seed, layer, t): a
    forward pass that changes nothing (`Classifier.record`, a measure whose params are put back)
    sees the noise of the step to come. The moving averages are those of the clean batch."""

    def with_batch_statistics(self, x: Node) -> tuple[Node, tuple[np.ndarray, np.ndarray]]:
        y, statistics = super().with_batch_statistics(x)
        scale, shift = self.noise(y.shape[0])
        return y * Node(scale) + Node(shift), statistics

    def noise(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The step's scale (1, fan_in) and the shift (rows, fan_in) of each sample."""
        step = int(self.model.params[self.batches_key].item())
        layer = int(self.gamma_key.removeprefix("gamma_bn"))
        rng = np.random.default_rng([self.model.seed or 0, layer, step])
        scale = rng.uniform(1.0, NOISE_SCALE, (1, self.fan_in))
        mean = rng.uniform(-NOISE_SHIFT, NOISE_SHIFT, (1, self.fan_in))
        return scale, mean + NOISE_JITTER * rng.standard_normal((rows, self.fan_in))


class NoisyMLP(MLP):
    """`dp.MLP` with batch norm whose batch-norm layers are `NoisyBatchNorm`."""

    def batch_norm(self, fan_in: int, name: str, **options: Any) -> BatchNorm:  # type: ignore[override]
        super().batch_norm(fan_in, name, **options)  # registers (and checks) the entries
        return NoisyBatchNorm(self, name, fan_in, **options)


def network(run: Run) -> MLP:
    """The untrained network of ``run``'s setting; ``ValueError`` for a setting not in `SETTINGS`."""
    if run.setting not in SETTINGS:
        raise ValueError(f"unknown setting {run.setting!r}; choose from {', '.join(SETTINGS)}")
    kind = NoisyMLP if run.setting == "noisy" else MLP
    return kind(run.sizes, batch_norm=run.setting != "standard", activation=ACTIVATION, seed=run.seed, init=INIT)


# ----- the measures -----


def loss_and_gradients(model: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """The mean loss of the batch in training mode and its gradients, with ``params`` put
    back as they were (the forward pass moves the moving averages and batch counts)."""
    with unchanged(model.params):
        loss = model.loss(x, y, train=True, reduction="mean")
        return float(loss.value[0, 0]), loss.grad(1)


def layer_of(key: str) -> int:
    """The layer a parameter belongs to: 2 for ``weight_l2``, ``bias_l2``, ``gamma_bn2``..."""
    return int(key.rsplit("_", 1)[1].lstrip("bnl"))


def internal_covariate_shift(model: MLP, x: np.ndarray, y: np.ndarray, lr: float) -> dict[str, tuple[float, float]]:
    """Definition 2.1 on the batch (x, y), for each layer k after the first: ``{"l{k}":
    (||G_k - G'_k||_2, cos(G_k, G'_k))}`` where G_k is the gradient of the mean loss with
    respect to ``weight_l{k}`` and G'_k the same after every learned parameter of the layers
    before k took the SGD step ``p - lr * grad`` (the one the training step makes). Nothing of
    ``model.params`` changes."""
    _, grads = loss_and_gradients(model, x, y)
    saved, shift = dict(model.params), {}
    layers = sorted({layer_of(key) for key in grads})
    for k in layers[1:]:
        with unchanged(model.params):
            model.params.update({key: saved[key] - lr * g for key, g in grads.items() if layer_of(key) < k})
            before, after = grads[f"weight_l{k}"], loss_and_gradients(model, x, y)[1][f"weight_l{k}"]
        cosine = float(np.sum(before * after) / (np.linalg.norm(before) * np.linalg.norm(after)))
        shift[f"l{k}"] = (float(np.linalg.norm(before - after)), cosine)
    return shift


def landscape(
    model: MLP, x: np.ndarray, y: np.ndarray, lr: float, factors: Sequence[float] = STEP_FACTORS
) -> Landscape:
    """The loss and the gradient on the batch (x, y) at the current point and at ``x - eta g``
    for eta = lr * each factor, g the gradient of every learned parameter (one vector); nothing
    of ``model.params`` changes."""
    loss, grads = loss_and_gradients(model, x, y)
    saved, etas = dict(model.params), tuple(lr * f for f in factors)
    losses, distances = [loss], []
    for eta in etas:
        with unchanged(model.params):
            model.params.update({key: saved[key] - eta * g for key, g in grads.items()})
            moved_loss, moved = loss_and_gradients(model, x, y)
        losses.append(moved_loss)
        distances.append(_norm({key: moved[key] - g for key, g in grads.items()}))
    return Landscape(etas, tuple(losses), tuple(distances), _norm(grads))


def _norm(arrays: dict[str, np.ndarray]) -> float:
    """The l2 norm of the arrays taken as one vector."""
    return float(np.sqrt(sum(np.sum(a * a) for a in arrays.values())))


# ----- one run -----


def run_one(run: Run) -> Result:
    """``run`` trained and measured, with one BLAS thread (`dp.studies.parallel`)."""
    return parallel.one_blas_thread(_train, run)


def _train(run: Run) -> Result:
    from dp import data as datasets
    from dp.checks import NonFiniteError
    from dp.optim import SGD
    from dp.train import watched_step

    split = getattr(datasets, run.data)(test_size=0.2, seed=run.seed)
    model, optimizer, result = network(run), SGD(lr=run.lr), Result(run)
    watched = split.x_test[:WATCHED_ROWS], split.x_train[:WATCHED_ROWS], split.y_train[:WATCHED_ROWS]
    start = time.perf_counter()
    try:
        result.monitor = _monitor(model, run, watched[0])
        for step, rows in enumerate(batches(len(split.x_train), run.steps, run.seed), start=1):
            x, y = split.x_train[rows], split.y_train[rows]
            _measure(model, result, run, step - 1, x, y)
            watched_step(result.monitor, step, model, optimizer, x, y, "mean")
            if step % run.eval_every == 0 or step == run.steps:
                _evaluate(model, result, step, (split.x_test, split.y_test), watched)
    except NonFiniteError:
        result.diverged = True
    result.seconds = time.perf_counter() - start
    result.monitor = monitored.series_only(result.monitor)
    return result


def _monitor(model: MLP, run: Run, rows: np.ndarray) -> Any:
    """A `dp.train.Monitor` started on ``model`` (step 0 recorded), watching ``rows`` every
    ``run.monitor_every`` steps; None for a run without one."""
    from dp.train import Monitor

    if not run.monitor_every:
        return None
    monitor = Monitor(rows, every=run.monitor_every)
    monitor.start(model)
    return monitor


def batches(rows: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """The rows of each step's batch of `BATCH`: each epoch a new order drawn from ``seed``,
    the last rows that do not fill a batch left out (as `dp.train.fit` draws them)."""
    rng, per_epoch = np.random.default_rng(seed), rows // BATCH
    order = np.arange(0)
    for step in range(steps):
        if step % per_epoch == 0:
            order = rng.permutation(rows)
        yield order[(step % per_epoch) * BATCH :][:BATCH]


def _measure(model: MLP, result: Result, run: Run, taken: int, x: np.ndarray, y: np.ndarray) -> None:
    """The covariate shift and the landscape before the step on (x, y), every ``measure_every`` steps."""
    if not run.measure_every or taken % run.measure_every:
        return
    with np.errstate(all="ignore"):
        result.shift.append(internal_covariate_shift(model, x, y, run.lr))
        result.landscapes.append(landscape(model, x, y, run.lr))
    result.measured_at.append(taken)


def _evaluate(model: MLP, result: Result, step: int, test: tuple[np.ndarray, np.ndarray], watched: Any) -> None:
    """Test accuracy (eval mode); the accuracy on training rows in training mode, as a step sees
    them (the noise of the next step, batch statistics of those rows); the watched input's
    percentiles on test rows in training mode. `Classifier.record` changes nothing."""
    from dp.train import accuracy

    rows, train_rows, train_labels = watched
    layer = list(model.activation_inputs().values())[-1]  # "l3" without batch norm, "bn3" with
    output = f"l{len(model.sizes) - 1}"
    with np.errstate(all="ignore"):
        unit = model.record(rows, [layer], train=True)[layer][:, 0]
        result.accuracy.append(accuracy(model, *test))
        logits = model.record(train_rows, [output], train=True)[output]
    result.train_accuracy.append(float((logits.argmax(axis=1) == np.ravel(train_labels)).mean()))
    result.percentiles.append(tuple(float(v) for v in np.percentile(unit, PERCENTILES)))
    result.step.append(step)


# ----- the plan and the sweep -----


def plan(budget: Budget, data: str, first_seed: int) -> list[Run]:
    """Every run: each setting for each seed; the standard and batch-norm runs measured; each
    setting's run with the first seed monitored (`dp.train.Monitor`), at the measured steps."""
    sizes = (ioffe2015._inputs(data), *ioffe2015.PAPER_SIZES[1:])
    every = max(1, budget.steps // budget.evaluations)
    measure = max(1, budget.steps // budget.measurements)
    return [
        Run(
            setting,
            data,
            sizes,
            LR,
            budget.steps,
            seed,
            every,
            measure if setting in MEASURED else 0,
            monitor_every=measure if seed == first_seed else 0,
        )  # fmt: skip
        for setting in SETTINGS
        for seed in range(first_seed, first_seed + budget.seeds)
    ]


def sweep(runs: Sequence[Run], jobs: int, progress: bool) -> list[Result]:
    """Every run through joblib, in order, one BLAS thread each (`dp.studies.parallel`)."""
    return parallel.sweep(_train, runs, jobs, progress)


# ----- tables -----


def of(results: Sequence[Result], setting: str) -> list[Result]:
    return [r for r in results if r.run.setting == setting]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def accuracy_table(results: Sequence[Result], which: str = "accuracy") -> str:
    """One row per evaluated step: the median over seeds of each setting's test accuracy (%), or
    of ``which`` (``"train_accuracy"``: on training rows in training mode)."""
    lines = ["| step | " + " | ".join(NAMES[s] for s in SETTINGS) + " |", "|--:" * (1 + len(SETTINGS)) + "|"]
    steps = max((r.step for r in results), key=len)
    for i, step in enumerate(steps):
        cells = [_median([getattr(r, which)[i] for r in of(results, s) if i < len(r.step)]) for s in SETTINGS]
        lines.append(f"| {step:,} | " + " | ".join(f"{100 * c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def percentile_table(results: Sequence[Result]) -> str:
    """The watched input's 5th, 50th and 95th percentiles at each evaluation (medians over seeds)."""
    head = " | ".join(f"{NAMES[s]}: 5th | 50th | 95th" for s in SETTINGS)
    title = "The input of unit 0 of the last hidden layer's ReLU (training mode, 1,000 test rows), percentiles:"
    lines = [title, "", f"| step | {head} |", "|--:" * (1 + 3 * len(SETTINGS)) + "|"]
    steps = max((r.step for r in results), key=len)
    for i, step in enumerate(steps):
        cells = []
        for s in SETTINGS:
            rows = [r.percentiles[i] for r in of(results, s) if i < len(r.percentiles)]
            cells += [_median([p[j] for p in rows]) for j in (0, 2, 4)]
        lines.append(f"| {step:,} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def shift_table(results: Sequence[Result]) -> str:
    """One row per measurement and layer: the medians over seeds of ||G - G'|| and cos(G, G')."""
    lines = [
        "| step | layer | ‖G − G′‖ standard | ‖G − G′‖ batch norm | cos standard | cos batch norm |",
        "|--:|:--|--:|--:|--:|--:|",
    ]
    steps, layers = _measured_steps(results), _layers(results)
    for i, step in enumerate(steps):
        for layer in layers:
            distance = [_median(_shift_values(results, s, i, layer, 0)) for s in MEASURED]
            cosine = [_median(_shift_values(results, s, i, layer, 1)) for s in MEASURED]
            lines.append(f"| {step:,} | {layer} | " + " | ".join(f"{v:.4g}" for v in distance + cosine) + " |")
    return "\n".join(lines)


def _measured_steps(results: Sequence[Result]) -> list[int]:
    return max((r.measured_at for r in results), key=len)


def _layers(results: Sequence[Result]) -> list[str]:
    return sorted({layer for r in results for shift in r.shift for layer in shift})


def _shift_values(results: Sequence[Result], setting: str, i: int, layer: str, which: int) -> list[float]:
    return [r.shift[i][layer][which] for r in of(results, setting) if i < len(r.shift)]


LANDSCAPE_MEASURES = {
    "loss range": lambda ls: ls.loss_range,
    "gradient predictiveness": lambda ls: ls.predictiveness,
    "β-smoothness": lambda ls: ls.beta_smoothness,
}


def landscape_table(results: Sequence[Result]) -> str:
    """One row per measurement: the medians over seeds of each measure, standard and batch norm."""
    head = " | ".join(f"{name}: {NAMES[s]}" for name in LANDSCAPE_MEASURES for s in MEASURED)
    lines = [f"| step | {head} |", "|--:" * (1 + len(LANDSCAPE_MEASURES) * len(MEASURED)) + "|"]
    for i, step in enumerate(_measured_steps(results)):
        cells = [
            _median([measure(r.landscapes[i]) for r in of(results, s) if i < len(r.landscapes)])
            for measure in LANDSCAPE_MEASURES.values()
            for s in MEASURED
        ]
        lines.append(f"| {step:,} | " + " | ".join(f"{c:.4g}" for c in cells) + " |")
    return "\n".join(lines)


# ----- the report -----


def report(results: Sequence[Result], budget: Budget, out: Path, header: str) -> Iterator[str]:
    """Write each measurement's Markdown file and figure (PNG) to ``out``, atomically, and the
    monitored runs' ``monitor.md`` and ``monitor.png`` (`dp.studies.monitored`); yield the text
    to print for each (its title and tables; the Markdown adds ``header`` and the figure)."""
    from dp.tools.files import write_text

    sections = (
        ("standard_vs_noisy", "Standard, batch norm and noisy batch norm: median test accuracy (%)",
         _noise_tables, _noise_figure),
        ("ics", "Internal covariate shift (Definition 2.1), medians over seeds", shift_table, _shift_figure),
        ("landscape", f"The landscape along the gradient (step sizes lr x {', '.join(f'{f:g}' for f in STEP_FACTORS)})",
         landscape_table, _landscape_figure),
    )  # fmt: skip
    for name, title, tables, figure in sections:
        body = tables(results)
        write_text(out / f"{name}.md", f"## {title}\n\n{header}\n\n{body}\n\n![{title}]({name}.png)\n")
        figure(out / f"{name}.png", results, title)
        yield f"\n## {title}\n\n{body}"
    watched = [r for r in results if r.monitor is not None]
    if watched:
        what = f"seed {watched[0].run.seed}, {WATCHED_ROWS:,} test rows in training mode"
        names = {NAMES[r.run.setting]: r.monitor for r in watched}
        yield monitored.report(names, out, f"Inside the layers (dp.train.Monitor; {what})", header)


def _noise_tables(results: Sequence[Result]) -> str:
    train = "Accuracy (%) on 1,000 training rows in training mode (batch statistics, and the noise of the step):"
    tables = (accuracy_table(results), train, accuracy_table(results, "train_accuracy"), percentile_table(results))
    return "\n\n".join(tables)


# ----- the figures, from plain arrays (`dp.tools.plots` knows no study) -----


def _noise_figure(path: Path, results: Sequence[Result], title: str) -> None:
    """Figure 2: accuracy over training, and the watched input's percentiles per setting."""
    from dp.tools import plots

    curves, bands = {}, {}
    for s in SETTINGS:
        mine = of(results, s)
        length = min(len(r.step) for r in mine)
        steps = mine[0].step[:length]
        curves[NAMES[s]] = (steps, np.median([r.accuracy[:length] for r in mine], axis=0))
        bands[NAMES[s]] = (steps, np.median([np.asarray(r.percentiles[:length]) for r in mine], axis=0))
    plots.santurkar_noise(path, curves, bands, PERCENTILES, title)


def _shift_figure(path: Path, results: Sequence[Result], title: str) -> None:
    """Figure 3: ||G - G'|| and cos(G, G') per layer over training, standard and batch norm."""
    from dp.tools import plots

    steps, layers = _measured_steps(results), _layers(results)
    series = {
        NAMES[s]: {
            layer: tuple(
                [_median(_shift_values(results, s, i, layer, which)) for i in range(len(steps))] for which in (0, 1)
            )
            for layer in layers
        }
        for s in MEASURED
    }
    plots.santurkar_shift(path, steps, series, title)


def _landscape_figure(path: Path, results: Sequence[Result], title: str) -> None:
    """Figure 4: per measure, its range over the step sizes (shaded) and its maximum (a line)."""
    from dp.tools import plots

    steps = _measured_steps(results)
    ranges = {
        "loss": lambda ls: ls.losses,
        "gradient predictiveness": lambda ls: ls.distances,
        "β-smoothness": lambda ls: ls.betas,
    }
    series = {}
    for s in MEASURED:
        mine = of(results, s)
        length = min(len(r.landscapes) for r in mine)
        series[NAMES[s]] = {
            measure: np.median([[_low_high(values(ls)) for ls in r.landscapes[:length]] for r in mine], axis=0)
            for measure, values in ranges.items()
        }
    plots.santurkar_landscape(path, steps[: min(len(v["loss"]) for v in series.values())], series, title)


def _low_high(values: Sequence[float]) -> tuple[float, float]:
    return min(values), max(values)
