"""Figures (PNG, drawn with matplotlib's Agg renderer): what batch norm does to training.

    dp train --plots DIR          training_figures: curves with vs without batch norm,
                                  and histograms of a hidden layer before and after batch norm
    dp experiment --plot PATH     experiment_figure: the learning-rate sweep
    normalization_axes_figure     the axes batch, layer, instance and group norm share
                                  statistics over (docs/cnn_axes.png)
    monitor_figure                what a `dp.train.Monitor` saw inside each layer (docs/monitor.md)
    monitors_figure               several runs' monitors side by side (dp paper santurkar2018, wu2018)
    batch_size_figure             error against the batch size per normalization (dp paper wu2018)

This module draws what it is given (training histories, parameters, sweep results)
and trains nothing: the runs are `dp.reference`'s and `dp.experiment`'s.
Figures are written atomically, as checkpoints are (`dp.tools.files`): an interrupted
write leaves the older file, never half of a new one.
Figures are `matplotlib.figure.Figure` objects saved directly, never through
pyplot: no global state, no window, no backend to choose, so this works on a
machine without a display. matplotlib is imported only here, and this module
only when a figure is asked for: `dp train` without ``--plots`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dp.tools.files import write_atomically

DPI = 120
SHOWN_UNITS = 4  # hidden units whose distributions are drawn (of 10): enough to see a pattern, few enough to read
BATCH_NORM_COLOR, PLAIN_COLOR = "tab:blue", "tab:orange"
BEFORE_COLOR = "tab:gray"  # the histograms of the values before batch norm; after it, BATCH_NORM_COLOR
BINS = 30


def training_figures(
    directory: str | Path,
    histories: Mapping[bool, Any],
    snapshots: Mapping[int, Mapping[str, np.ndarray]],
    x: np.ndarray,
    settings: str,
) -> list[Path]:
    """Write two PNGs to ``directory`` (created if needed) about the reference network
    trained with and without batch norm (`dp.studies.reference.batch_norm_comparison` returns
    what they need): ``training_curves.png`` (`curves_figure`) and, unless the network
    with batch norm diverged, ``batch_norm_histograms.png`` (`histograms_figure`).

    ``settings`` describes the runs, in smaller text under each title (one line or
    more). Returns the paths written. Raises ``ImportError`` without matplotlib,
    ``OSError`` when writing fails.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = {"training_curves.png": curves_figure(histories, settings)}
    if not histories[True].diverged:  # a diverging network's huge values would make no sense as histograms
        figures["batch_norm_histograms.png"] = histograms_figure(x, snapshots, settings)
    return [_save(figure, directory / name) for name, figure in figures.items()]


def curves_figure(histories: Mapping[bool, Any], settings: str) -> Any:
    """The figure (a `matplotlib.figure.Figure`) of training loss and validation accuracy
    against the step, from ``histories`` (`dp.train.History`, ``{True: with batch norm,
    False: without}``); a run that diverged is drawn up to where it stopped. Its title
    has ``settings`` under it, in smaller text."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.8), layout="constrained")
    body = _titled(figure, "The reference network trained with and without batch norm", settings)
    loss_axes, accuracy_axes = body.subplots(1, 2)
    for batch_norm, history in histories.items():
        label = ("with" if batch_norm else "without") + " batch norm" + (" (diverged)" if history.diverged else "")
        style = dict(color=BATCH_NORM_COLOR if batch_norm else PLAIN_COLOR, label=label, linewidth=1.6)
        if len(history.step) < 10:  # a line through so few points (maybe one) needs markers to be seen
            style["marker"] = "o"
        loss_axes.plot(history.step, history.loss, **style)
        accuracy_axes.plot(history.step, 100 * np.asarray(history.val_accuracy), **style)
    loss_axes.set(
        yscale="log",
        xlabel="optimizer step",
        ylabel="training loss per row (log scale)",
        title=_loss_title(histories),
    )
    _plain_log_ticks(loss_axes.yaxis)
    accuracy_axes.set(
        xlabel="optimizer step", ylabel="validation accuracy (%)", title="Validation accuracy (eval mode)"
    )
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def _titled(figure: Any, title: str, settings: str) -> Any:
    """Give ``figure`` the one-line ``title`` and, under it in smaller text, ``settings``;
    return the part of the figure below them (a `matplotlib.figure.SubFigure`) to draw in."""
    figure.suptitle(title, fontsize="x-large")
    body = figure.subfigures(1, 1)
    body.suptitle(settings, fontsize="medium", color="0.3")
    return body


def _loss_title(histories: Mapping[bool, Any]) -> str:
    """The loss panel's title, with the steps between evaluations (each loss is their mean):
    the first evaluated step of a history that has one."""
    interval = next((history.step[0] for history in histories.values() if history.step), None)
    return "Training loss" if interval is None else f"Training loss (mean over each {interval} steps)"


def histograms_figure(x: np.ndarray, snapshots: Mapping[int, Mapping[str, np.ndarray]], settings: str) -> Any:
    """The figure (a `matplotlib.figure.Figure`) of what batch norm does to the first
    `SHOWN_UNITS` units of the second hidden layer, on the rows ``x``, for each of
    ``snapshots`` (``{step: params}`` of the network with batch norm; the first and the
    last step, say), one part per step. Each unit gets a panel before batch norm (the
    linear layer's output, in gray, its mean and standard deviation marked) and one
    after (the input of tanh, in blue, with the unit's β marked by a line and ±|γ|
    around it by a bar), so that the picture shows the claim of the title: after batch
    norm each unit has mean β and standard deviation |γ|. ``settings`` goes under the
    title, in smaller text.
    """
    from matplotlib.figure import Figure

    steps = sorted(snapshots)
    figure = Figure(figsize=(11, 1.2 + 3.6 * len(steps)), layout="constrained")
    shown = f"The second hidden layer's units 1 to {SHOWN_UNITS} (of 10), on all training rows"
    body = _titled(figure, "After batch norm, each unit has mean β and standard deviation |γ|", f"{shown}\n{settings}")
    values = {step: _second_layer(x, snapshots[step]) for step in steps}
    every_value = np.concatenate([v for pair in values.values() for v in pair])  # all steps, before and after
    edges = [np.histogram_bin_edges(every_value[:, unit], bins=BINS) for unit in range(SHOWN_UNITS)]  # one scale a unit
    for part, step in zip(body.subfigures(len(steps), 1, squeeze=False)[:, 0], steps):
        part.suptitle("After the first step" if step == 1 else f"After step {step}, the last", fontweight="bold")
        _draw_step(part, *values[step], snapshots[step], edges)
    body.legend(handles=_legend_handles(), loc="outside lower center", ncols=2, frameon=False)
    return figure


def _draw_step(
    part: Any, before: np.ndarray, after: np.ndarray, params: Mapping[str, np.ndarray], edges: Sequence[np.ndarray]
) -> None:
    """One step's panels in ``part``: a row before batch norm and a row after it, a column per unit."""
    grid = part.subplots(2, SHOWN_UNITS)
    gamma, beta = params["gamma_bn2"][0], params["beta_bn2"][0]
    for unit in range(SHOWN_UNITS):
        top, bottom = grid[0, unit], grid[1, unit]
        column = before[:, unit]
        _draw_unit(top, column, edges[unit], BEFORE_COLOR, (column.mean(), column.std(), "--"))
        top.set_title(f"unit {unit + 1}")
        _draw_unit(bottom, after[:, unit], edges[unit], BATCH_NORM_COLOR, (beta[unit], abs(gamma[unit]), "-"))
        _corner_text(top, f"mean {_signed(column.mean())}\nsd {column.std():.2f}")
        _corner_text(bottom, f"β {_signed(beta[unit])}\nγ {gamma[unit]:.2f}")
    grid[0, 0].set_ylabel("before batch norm")
    grid[1, 0].set_ylabel("after batch norm")


def _corner_text(axes: Any, text: str) -> None:
    """``text`` in the top left corner of ``axes``, above the histogram (which `_draw_unit`
    keeps below 2/3 of the height)."""
    axes.text(0.03, 0.95, text, transform=axes.transAxes, va="top", ha="left", fontsize="small")


def _signed(value: float) -> str:
    """``value`` with its sign and two decimals, never "-0.00"."""
    return f"{np.round(value, 2) + 0.0:+.2f}"


def _draw_unit(axes: Any, values: np.ndarray, edges: np.ndarray, color: str, mark: tuple[float, float, str]) -> None:
    """One unit's histogram on ``axes``, with ``mark`` = (center, spread, line style) drawn
    over it: a vertical line at the center, a bar from center - spread to center + spread."""
    counts, _, _ = axes.hist(values, bins=edges, color=color, alpha=0.55, edgecolor=color)
    center, spread, linestyle = mark
    axes.axvline(center, color="black", linestyle=linestyle, linewidth=1.4)
    height = 1.12 * counts.max()  # just above the tallest bar
    axes.errorbar(center, height, xerr=spread, color="black", linestyle="none", capsize=4, linewidth=1.4)
    axes.set(
        xlim=(min(edges[0], center - spread), max(edges[-1], center + spread)),  # the bar may reach past the values
        ylim=(0, 1.6 * counts.max()),  # room above the histogram for the bar and the numbers
        yticks=[],  # the counts of rows matter less than the shape, which needs no scale
    )
    axes.grid(axis="x", alpha=0.3)


def _legend_handles() -> list[Any]:
    """What the histograms' colors and marks mean, for the figure's legend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Patch(color=BEFORE_COLOR, alpha=0.55, label="before batch norm: the linear layer's output"),
        Line2D([], [], color="black", linestyle="--", marker="|", label="its mean ± standard deviation"),
        Patch(color=BATCH_NORM_COLOR, alpha=0.55, label="after batch norm: the input of tanh"),
        Line2D([], [], color="black", linestyle="-", marker="|", label="β ± |γ| (the unit's learned parameters)"),
    ]


def _second_layer(x: np.ndarray, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The second hidden layer's values before and after batch norm, for the rows x.

    The second layer, not the first: the inputs are standardized on the training
    rows, so the first layer's x W has mean 0 on them whatever W is, and only its
    spread could drift. The layers' arithmetic is redone here from ``params``, each
    batch norm normalizing with the statistics of all the rows: calling the model's
    layers in training mode would update the moving averages and disturb training.
    """
    from dp.nn.normalization import batch_norm

    first = np.tanh(batch_norm(x @ params["weight_l1"], params["gamma_bn1"], params["beta_bn1"]).value)
    before = first @ params["weight_l2"]
    return before, batch_norm(before, params["gamma_bn2"], params["beta_bn2"]).value


def experiment_figure(path: str | Path, cells: Sequence[Any], target: float, settings: str) -> Path:
    """Write the learning-rate sweep's figure to ``path`` (PNG) and return the path.

    ``cells`` are `dp.studies.breast_cancer.Cell` results (one per learning rate and batch-norm
    setting). Left: median and worst test accuracy against the learning rate;
    right: median steps to reach ``target`` validation accuracy. Both with and
    without batch norm, learning rate on a log scale.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.6), layout="constrained")
    accuracy_axes, steps_axes = figure.subplots(1, 2, sharex=True)
    for batch_norm, color in ((True, BATCH_NORM_COLOR), (False, PLAIN_COLOR)):
        mine = sorted((c for c in cells if c.batch_norm == batch_norm), key=lambda c: c.lr)
        _draw_sweep_lines(accuracy_axes, steps_axes, mine, batch_norm, color)
    _label_sweep_axes(accuracy_axes, steps_axes, sorted({cell.lr for cell in cells}), target)
    figure.suptitle(f"Learning-rate sweep, with and without batch norm\n{settings}")
    return _save(figure, path)


def _draw_sweep_lines(accuracy_axes: Any, steps_axes: Any, cells: Sequence[Any], batch_norm: bool, color: str) -> None:
    """The lines of one batch-norm setting's ``cells`` (sorted by learning rate): median and
    worst accuracy, median steps, and how many runs diverged where any did."""
    name = "with batch norm" if batch_norm else "without batch norm"
    lrs = [c.lr for c in cells]
    accuracy_axes.plot(
        lrs, [_percent_value(c.median_accuracy) for c in cells], "o-", color=color, label=f"{name}: median"
    )
    accuracy_axes.plot(
        lrs, [_percent_value(c.worst_accuracy) for c in cells], "v--", color=color, label=f"{name}: worst"
    )
    steps_axes.plot(lrs, [_or_nan(c.median_steps) for c in cells], "o-", color=color, label=name)
    for cell in cells:
        if cell.diverged:
            accuracy_axes.annotate(
                f"{cell.diverged}/{cell.runs}\ndiverged",
                xy=(cell.lr, 0.03 if batch_norm else 0.15),  # the two settings' notes one above the other
                xycoords=("data", "axes fraction"),
                ha="center",
                fontsize="x-small",
                color=color,
            )


def _label_sweep_axes(accuracy_axes: Any, steps_axes: Any, lrs: Sequence[float], target: float) -> None:
    """Titles, labels, scales, ticks at the learning rates ``lrs``, grids and legends."""
    accuracy_axes.set(ylabel="test accuracy (%)", title="Test accuracy (eval mode) of the runs that did not diverge")
    steps_axes.set(
        yscale="log",
        ylabel=f"steps to {100 * target:g} % validation accuracy (log scale)",
        title=f"Median steps to {100 * target:g} % validation accuracy\n"
        "(missing: half the runs or more never got there)",
    )
    _plain_log_ticks(steps_axes.yaxis)
    for axes in (accuracy_axes, steps_axes):
        axes.set(xscale="log", xlabel="learning rate (log scale)")
        axes.set_xticks(lrs, labels=[f"{lr:g}" for lr in lrs])
        axes.minorticks_off()
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers at 1, 2 and 5 of each decade (0.05, 0.1, 0.2;
    5, 10, 20), which read faster than matplotlib's powers of ten."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def _percent_value(fraction: float | None) -> float:
    return _or_nan(fraction) * 100


def _or_nan(value: float | None) -> float:
    """None as NaN, which matplotlib leaves out of a line."""
    return np.nan if value is None else value


# ----- dp paper -----


def paper_figure1(path: str | Path, curves: Mapping[bool, Any], bands: Mapping[bool, Any], title: str) -> Path:
    """Write `figure1_figure` to ``path`` (PNG) and return the path."""
    return _save(figure1_figure(curves, bands, title), path)


def figure1_figure(curves: Mapping[bool, Any], bands: Mapping[bool, Any], title: str) -> Any:
    """Figure 1 of the batch-norm paper (a `matplotlib.figure.Figure`), ``title`` over all three
    panels and each panel titled with what it shows: (a) the median test accuracy over training,
    ``curves[batch_norm]`` = (steps, accuracies), without and with batch norm; (b, c) the 15th,
    50th and 85th percentiles of a sigmoid's input over training, ``bands[batch_norm]`` = (steps,
    an (evaluations, 3) array), without (b) and with (c) batch norm."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.4), layout="constrained")
    accuracy_axes, *band_axes = figure.subplots(1, 3, sharex=True)
    _draw_accuracy(accuracy_axes, curves)
    accuracy_axes.set(title="(a) median test accuracy (%)")
    for batch_norm, color in ((False, PLAIN_COLOR), (True, BATCH_NORM_COLOR)):
        steps, values = bands[batch_norm]
        axes = band_axes[batch_norm]
        axes.fill_between(steps, values[:, 0], values[:, 2], color=color, alpha=0.25, label="15th to 85th percentile")
        axes.plot(steps, values[:, 1], color=color, label="50th (median)")
        axes.set(xlabel="training step", ylabel="input of the sigmoid",
                 title=f"({'bc'[batch_norm]}) a sigmoid's input, {_setting(batch_norm)}")  # fmt: skip
        axes.legend(fontsize="small")
    limits = [axes.get_ylim() for axes in band_axes]
    for axes in band_axes:  # one scale, so the two spreads compare at a glance
        axes.set_ylim(min(low for low, _ in limits), max(high for _, high in limits))
    for axes in (accuracy_axes, *band_axes):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return figure


def paper_accuracy(path: str | Path, curves: Mapping[bool, Any], title: str) -> Path:
    """Test accuracy over training, ``curves[batch_norm]`` = (steps, accuracies), without and
    with batch norm: Figure 1 (a) alone, for the CNN of ``dp paper --experiments cnn``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), layout="constrained")
    axes = figure.subplots()
    _draw_accuracy(axes, curves)
    axes.grid(alpha=0.3)
    figure.suptitle(title)
    return _save(figure, path)


def _draw_accuracy(axes: Any, curves: Mapping[bool, Any]) -> None:
    """The two accuracy curves, without and with batch norm, on ``axes``, labelled."""
    for batch_norm, color in ((False, PLAIN_COLOR), (True, BATCH_NORM_COLOR)):
        steps, accuracy = curves[batch_norm]
        axes.plot(steps, 100 * np.asarray(accuracy), color=color, label=_setting(batch_norm))
    axes.set(xlabel="training step", ylabel="test accuracy (%)")
    axes.legend()


def batch_size_figure(
    path: str | Path, curves: Mapping[str, Mapping[int, float]], dashed: Mapping[str, Mapping[int, float]], title: str
) -> Path:
    """Wu & He's Figure 1 at dp's scale: test error (%) against the batch size (log2 axis),
    one line per normalization, ``curves[label] = {batch size: accuracy}``; ``dashed`` the same
    for extra lines (batch norm recalibrated), drawn dashed in the colour of the line whose
    label they start with. For `dp.studies.wu2018`."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    axes = figure.subplots()
    colors = {}
    for label, points in curves.items():
        sizes = sorted(points)
        (line,) = axes.plot(sizes, [100 * (1 - points[b]) for b in sizes], marker="o", label=label)
        colors[label] = line.get_color()
    for label, points in dashed.items():
        sizes = sorted(points)
        color = next((c for name, c in colors.items() if label.startswith(name)), None)
        axes.plot(sizes, [100 * (1 - points[b]) for b in sizes], "--", marker=".", color=color, label=label)
    axes.set_xscale("log", base=2)
    sizes = sorted({b for points in curves.values() for b in points})
    axes.set_xticks(sizes, [str(b) for b in sizes])
    axes.minorticks_off()
    axes.invert_xaxis()  # as theirs: from the largest batch to the smallest
    axes.set(xlabel="batch size (images per step)", ylabel="test error (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.suptitle(title)
    return _save(figure, path)


def paper_sweep(path: str | Path, results: Sequence[Any], title: str) -> Path:
    """Write `sweep_figure` to ``path`` (PNG) and return the path."""
    return _save(sweep_figure(results, title), path)


STUCK_ROWS = {False: 104, True: 110}  # where each setting's counts of stuck runs stand: above 100 %, where no line goes


def sweep_figure(results: Sequence[Any], title: str) -> Any:
    """Final test accuracy against the learning rate (log scale), with and without batch norm,
    from `dp.studies.ioffe2015.Result`s (a `matplotlib.figure.Figure`): the median over seeds as a
    line, the worst and the best run as a shaded band (both named in the legend); the runs stuck
    at chance (or diverged) are counted above each rate, in a strip over 100 % that no line or
    band reaches."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.subplots()
    lrs = sorted({r.run.lr for r in results})
    for batch_norm, color in ((False, PLAIN_COLOR), (True, BATCH_NORM_COLOR)):
        cells = [[r for r in results if r.run.lr == lr and r.run.batch_norm == batch_norm] for lr in lrs]
        _draw_sweep(axes, lrs, cells, color, _setting(batch_norm), STUCK_ROWS[batch_norm])
    axes.axhline(100, color="0.6", linewidth=0.8)
    axes.set(xscale="log", ylim=(0, max(STUCK_ROWS.values()) + 5), xlabel="learning rate (log scale)")
    axes.set_ylabel("final test accuracy (%)")
    axes.set_yticks(range(0, 101, 20))
    axes.set_xticks(lrs, labels=[f"{lr:g}" for lr in lrs])
    axes.minorticks_off()
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.suptitle(title)
    return figure


def _draw_sweep(axes: Any, lrs: list[float], cells: list[list[Any]], color: str, label: str, stuck_row: float) -> None:
    """One setting's line (median), band (worst to best) and counts of stuck runs (at ``stuck_row``)."""
    finals = [[100 * r.final for r in cell] for cell in cells]
    seeds = max(len(cell) for cell in cells)
    axes.plot(lrs, [np.median(f) for f in finals], "o-", color=color, label=f"{label}: median of {seeds} seeds")
    axes.fill_between(
        lrs,
        [min(f) for f in finals],
        [max(f) for f in finals],
        color=color,
        alpha=0.2,
        label=f"{label}: worst to best run",
    )
    for lr, cell in zip(lrs, cells):
        stuck = sum(r.stuck for r in cell)
        if stuck:
            count = axes.annotate(f"{stuck} stuck", xy=(lr, stuck_row), ha="center", va="center", color=color)
            count.set(fontsize="x-small", bbox=dict(facecolor="white", edgecolor="none", pad=1))  # over the grid


def _setting(batch_norm: bool) -> str:
    return "with batch norm" if batch_norm else "without batch norm"


# ----- dp paper santurkar2018 -----

SETTING_COLORS = {"standard": PLAIN_COLOR, "batch norm": BATCH_NORM_COLOR, "noisy batch norm": "tab:green"}


def santurkar_noise(
    path: str | Path, curves: Mapping[str, Any], bands: Mapping[str, Any], percentiles: Sequence[int], title: str
) -> Path:
    """Figure 2 of Santurkar et al.: test accuracy over training per setting, ``curves[name]``
    = (steps, accuracies); then one panel per setting of a unit's input percentiles over
    training, ``bands[name]`` = (steps, an (evaluations, 5) array of the ``percentiles``),
    the outer pair and the inner pair shaded, the median a line, on one scale."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * (1 + len(bands)), 4.2), layout="constrained")
    accuracy_axes, *band_axes = figure.subplots(1, 1 + len(bands), sharex=True)
    for name, (steps, accuracy) in curves.items():
        accuracy_axes.plot(steps, 100 * np.asarray(accuracy), color=SETTING_COLORS.get(name), label=name)
    accuracy_axes.set(xlabel="training step", ylabel="test accuracy (%)", title="test accuracy")
    accuracy_axes.legend(fontsize="small")
    for axes, (name, (steps, values)) in zip(band_axes, bands.items()):
        color = SETTING_COLORS.get(name)
        low, inner_low, median, inner_high, high = percentiles
        axes.fill_between(steps, values[:, 0], values[:, 4], color=color, alpha=0.2, label=f"{low}th to {high}th")
        axes.fill_between(steps, values[:, 1], values[:, 3], color=color, alpha=0.4,
                          label=f"{inner_low}th to {inner_high}th")  # fmt: skip
        axes.plot(steps, values[:, 2], color=color, label=f"{median}th (median)")
        axes.set(xlabel="training step", ylabel="input of the activation", title=name)
        axes.legend(fontsize="small")
    _same_scale(band_axes)
    for axes in (accuracy_axes, *band_axes):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return _save(figure, path)


def _same_scale(axes_list: Sequence[Any]) -> None:
    limits = [axes.get_ylim() for axes in axes_list]
    for axes in axes_list:
        axes.set_ylim(min(low for low, _ in limits), max(high for _, high in limits))


def santurkar_shift(path: str | Path, steps: Sequence[int], series: Mapping[str, Any], title: str) -> Path:
    """Figure 3 of Santurkar et al.: per layer (columns), ||G - G'|| (top) and cos(G, G')
    (bottom) over training, ``series[setting][layer]`` = (distances, cosines)."""
    from matplotlib.figure import Figure

    layers = sorted({layer for by_layer in series.values() for layer in by_layer})
    figure = Figure(figsize=(4 * max(1, len(layers)), 6.5), layout="constrained")
    grid = figure.subplots(2, max(1, len(layers)), sharex=True, squeeze=False)
    for column, layer in enumerate(layers):
        for name, by_layer in series.items():
            distances, cosines = by_layer[layer]
            grid[0][column].plot(steps, distances, "o-", color=SETTING_COLORS.get(name), label=name, markersize=3)
            grid[1][column].plot(steps, cosines, "o-", color=SETTING_COLORS.get(name), label=name, markersize=3)
        grid[0][column].set(title=f"layer {layer}", ylabel="‖G − G′‖ (l2)", yscale="log")
        grid[1][column].set(xlabel="training step", ylabel="cos(G, G′)")
    for axes in grid.flat:
        axes.grid(alpha=0.3)
    grid[0][0].legend(fontsize="small")
    figure.suptitle(title)
    return _save(figure, path)


def santurkar_landscape(path: str | Path, steps: Sequence[int], series: Mapping[str, Any], title: str) -> Path:
    """Figure 4 of Santurkar et al.: three panels over training, ``series[setting][measure]`` an
    (measurements, 2) array of each measure's lowest and highest value over the step sizes,
    the range shaded and its top a line (for the loss, the range of the loss; for the gradient
    predictiveness, ||g(x - eta g) - g(x)||; for the beta-smoothness, that over ||eta g||)."""
    from matplotlib.figure import Figure

    measures = list(next(iter(series.values())))
    figure = Figure(figsize=(4.3 * len(measures), 4.2), layout="constrained")
    for axes, measure, letter in zip(figure.subplots(1, len(measures), squeeze=False)[0], measures, "abc"):
        for name, by_measure in series.items():
            values = np.asarray(by_measure[measure])
            color = SETTING_COLORS.get(name)
            axes.fill_between(steps, values[:, 0], values[:, 1], color=color, alpha=0.3)
            axes.plot(steps, values[:, 1], color=color, label=name)
        axes.set(xlabel="training step", title=f"({letter}) {measure}", yscale="log")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(title)
    return _save(figure, path)


# ----- the normalization family -----

BOX = (4, 5, 6)  # cells along N (samples), H·W (positions) and C (channels): six channels make three groups of two
DEPTH = (0.4, 0.4)  # one step along C, drawn obliquely: right and up
SHARED_COLOR, OTHER_COLOR, EDGE_COLOR = "#7fb1dc", "white", "0.35"


class _Normalization(NamedTuple):
    """One panel: the cells shaded are those of ``samples`` and ``channels`` at every position."""

    title: str
    samples: range
    channels: range
    axes: str  # what it normalizes over, in NCHW terms
    group: int = 0  # channels a group, whose boundaries are drawn thicker (0: no groups)


NORMALIZATIONS = (
    _Normalization("Batch norm", range(BOX[0]), range(1), "axes (0, 2, 3),\nper channel"),
    _Normalization("Layer norm", range(1), range(BOX[2]), "axes (1, 2, 3),\nper sample"),
    _Normalization("Instance norm", range(1), range(1), "axes (2, 3),\nper sample and channel"),
    _Normalization(
        "Group norm", range(1), range(2), "channels in groups of C/G\nand axes (2, 3),\nper sample and group", group=2
    ),
)


def normalization_axes_figure(path: str | Path) -> Path:
    """Write to ``path`` (a PNG) Figure 2 of Wu & He (2018), "Group Normalization": a batch
    of images (N samples, C channels, H·W positions drawn as one axis) as a box, four times,
    with the values that share one mean and variance shaded, under batch, layer, instance
    and group norm, and under each the axes it normalizes over in NCHW terms. Returns
    ``path`` as a `Path`. docs/cnn_axes.png is made by::

        python -c "import dp.tools.plots as p; p.normalization_axes_figure('docs/cnn_axes.png')"
    """
    return _save(normalization_axes(), path)


def normalization_axes() -> Any:
    """The figure (a `matplotlib.figure.Figure`) that `normalization_axes_figure` writes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.4), layout="constrained")
    body = _titled(
        figure,
        "One normalization, four choices of axes",
        "the shaded values share one mean and variance (images are NCHW: N samples, C channels, H × W positions)",
    )
    for axes, normalization in zip(body.subplots(1, 4), NORMALIZATIONS):
        _draw_box(axes, normalization.samples, normalization.channels)
        _draw_group_boundaries(axes, normalization.group)
        _label_box_axes(axes)
        axes.set_title(normalization.title, fontweight="bold")
        axes.text(0.5, 0, normalization.axes, transform=axes.transAxes, ha="center", va="top")
        axes.set_aspect("equal")
        axes.set_axis_off()
    return figure


def _draw_box(axes: Any, samples: range, channels: range) -> None:
    """The three visible faces of the `BOX` of cells, the cells of ``samples`` and ``channels``
    (every position) shaded, the others outlined."""
    from matplotlib.collections import PolyCollection

    cells, corners = zip(*_visible_cells())
    colors = [SHARED_COLOR if cell[0] in samples and cell[2] in channels else OTHER_COLOR for cell in cells]
    axes.add_collection(PolyCollection(corners, facecolors=colors, edgecolors=EDGE_COLOR, linewidths=0.7))
    width, height = _oblique(BOX)
    axes.set(xlim=(-1.1, width + 0.2), ylim=(-1.1, height + 0.2))


def _draw_group_boundaries(axes: Any, group: int) -> None:
    """Thick lines across the top and down the right of the `BOX` between groups of ``group``
    channels (none for 0)."""
    if not group:
        return
    from matplotlib.collections import LineCollection

    samples, positions, channels = BOX
    lines = [
        _oblique(np.array([(0, positions, c), (samples, positions, c), (samples, 0, c)]).T).T
        for c in range(group, channels, group)
    ]
    axes.add_collection(LineCollection(lines, colors="black", linewidths=2))


def _visible_cells() -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(cell, its face's four corners as drawn) for each cell face seen on the `BOX`: the
    front (the first channel), the top (the last position) and the right (the last sample)."""
    square = np.array([(0, 0), (1, 0), (1, 1), (0, 1)])
    faces = []
    for axis, side in ((2, 0), (1, 1), (0, 1)):
        across = [a for a in range(3) if a != axis]
        for cell in np.ndindex(*(BOX[a] for a in across)):
            corner = np.zeros((4, 3))
            corner[:, across] = np.add(cell, square)
            corner[:, axis] = side * BOX[axis]
            index = (*cell[:axis], side * (BOX[axis] - 1), *cell[axis:])  # the cell's (sample, position, channel)
            faces.append((index, _oblique(corner.T).T))
    return faces


def _oblique(point: Any) -> np.ndarray:
    """Where (sample, position, channel) coordinates are drawn: samples to the right,
    positions up, channels into the page (obliquely, `DEPTH` a step)."""
    sample, position, channel = point
    return np.array([sample + DEPTH[0] * np.asarray(channel), position + DEPTH[1] * np.asarray(channel)])


def _label_box_axes(axes: Any) -> None:
    """Name the box's three axes along its front bottom, front left and top left edges."""
    samples, positions, channels = BOX
    angle = np.degrees(np.arctan2(DEPTH[1], DEPTH[0]))
    axes.text(samples / 2, -0.25, "N (batch)", ha="center", va="top")
    axes.text(-0.25, positions / 2, "H, W (positions)", ha="right", va="center", rotation=90)
    x, y = _oblique((-0.15, positions + 0.15, channels / 2))
    axes.text(x, y, "C (channels)", ha="center", va="bottom", rotation=angle, rotation_mode="anchor")


# ----- dp.train.Monitor -----

RATIO_GUIDE = -3  # Karpathy's rule of thumb for log10(update / data): about a thousandth a step
FIRST_COLOR, LAST_COLOR, FLAT_COLOR = "tab:gray", "tab:blue", "tab:red"


def monitor_figure(path: str | Path, monitor: Any, settings: str = "") -> Path:
    """Write what a `dp.train.Monitor` recorded during `dp.train.fit` to ``path`` (PNG) and
    return the path. Top, a panel per monitored hidden layer: the histogram of its
    pre-activations on the monitor's rows before training (gray) and at the last recorded
    step (blue), the inputs where the activation is flat shaded red. Bottom, against the
    step, per layer: log10 of the update-to-data ratio of its weights with a dashed line at
    -3, the saturated fraction (for ReLU: exactly 0), and the gradient's standard deviation
    (log scale). ``settings`` goes under the title, in smaller text."""
    from matplotlib.figure import Figure

    hidden = list(monitor.inputs)
    figure = Figure(figsize=(max(11, 3.2 * len(hidden)), 7.6), layout="constrained")
    body = _titled(figure, "Inside the layers while they train", settings)
    top, bottom = body.subfigures(2, 1, height_ratios=(1, 1.1))
    if hidden:
        for axes, layer in zip(top.subplots(1, len(hidden), squeeze=False)[0], hidden):
            _draw_pre_activations(axes, monitor, layer)
    _draw_monitor_series(bottom.subplots(1, 3), monitor)
    return _save(figure, path)


def _draw_pre_activations(axes: Any, monitor: Any, layer: str) -> None:
    """``layer``'s pre-activations at the first and the last recorded step, one set of bins,
    the flat part of the activation shaded, the saturated fractions in a corner."""
    first, last = min(monitor.snapshots), max(monitor.snapshots)
    values = {step: monitor.snapshots[step][layer].ravel() for step in (first, last)}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    edges = np.histogram_bin_edges(finite if finite.size else [0.0], bins=BINS)
    for step, color in ((first, FIRST_COLOR), (last, LAST_COLOR)):
        axes.hist(values[step], bins=edges, color=color, alpha=0.5, label=f"step {step:,}", density=True)
    _shade_flat(axes, monitor, edges[0], edges[-1])
    source = monitor.inputs[layer]
    named = layer if source == layer else f"{layer} -> {source}"
    axes.set(xlim=(edges[0], edges[-1]), yticks=[], title=f"{named}: the input of {monitor.activation}")
    saturated = monitor.series("saturated")[layer]
    if not np.isnan(saturated[-1]):
        flat = "exactly 0" if monitor.activation == "relu" else "saturated"
        _corner_text(axes, f"{flat}\n{100 * saturated[0]:.1f} % -> {100 * saturated[-1]:.1f} %")
    axes.legend(fontsize="small", loc="upper right")


def _shade_flat(axes: Any, monitor: Any, low: float, high: float) -> None:
    """Shade the inputs in [low, high] where the monitor's activation is flat (saturated)."""
    active = monitor.active_range
    if active is None:
        return
    label: str | None = f"{monitor.activation} flat"
    for start, end in ((low, active[0]), (active[1], high)):
        if start < end:
            axes.axvspan(start, end, color=FLAT_COLOR, alpha=0.12, linewidth=0, label=label)
            label = None  # one legend entry for both sides


def _draw_monitor_series(grid: Sequence[Any], monitor: Any) -> None:
    """The update-to-data ratios, the saturation and the gradients' spread over the steps."""
    ratio_axes, saturation_axes, gradient_axes = grid
    steps = monitor.steps
    for layer, values in monitor.series("update_ratio").items():
        ratio_axes.plot(steps, values, marker=".", label=layer)
    ratio_axes.axhline(RATIO_GUIDE, color="black", linestyle="--", linewidth=1, label="-3 (a rule of thumb)")
    for layer in monitor.inputs:
        saturation_axes.plot(steps, 100 * monitor.series("saturated")[layer], marker=".", label=layer)
    for layer, values in monitor.series("grad_std").items():
        gradient_axes.plot(steps, values, marker=".", label=layer)
    flat = "exactly 0" if monitor.activation == "relu" else "saturated"
    ratio_axes.set(ylabel="log10(|update| / |weights|)", title="Update-to-data ratio of the weights")
    saturation_axes.set(ylabel=f"{flat} (% of the values)", title=f"{monitor.activation}: {flat}", ylim=(0, None))
    gradient_axes.set(yscale="log", ylabel="standard deviation (log scale)", title="The weights' gradients")
    for axes in grid:
        axes.set(xlabel="optimizer step")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:  # no hidden layer monitored: no saturation to draw
            axes.legend(fontsize="small")


# What `monitors_figure` draws, a row each: the `dp.train.Monitor.series` measure, the y axis' label.
COMPARED_MEASURES = {
    "mean": "pre-activation mean",
    "std": "pre-activation std",
    "saturated": "flat (% of the values)",
    "grad_std": "gradient std (log scale)",
    "update_ratio": "log10(|update| / |weights|)",
}


def monitors_figure(path: str | Path, monitors: Mapping[str, Any], title: str, settings: str = "") -> Path:
    """Several runs' `dp.train.Monitor` side by side, written to ``path`` (PNG): a column per
    run (``monitors[name]``), a row per measure of `COMPARED_MEASURES` against the step, a line
    per layer (the same colour in every column), each row on one y scale so that the runs
    compare. The flat fraction is the saturated one for tanh and sigmoid, exactly 0 for ReLU;
    the update-to-data ratios have a dashed line at -3 (a rule of thumb). ``settings`` goes
    under the title, in smaller text. For the studies that compare runs (`dp.studies`)."""
    return _save(compared_monitors(monitors, title, settings), path)


def compared_monitors(monitors: Mapping[str, Any], title: str, settings: str = "") -> Any:
    """The figure (a `matplotlib.figure.Figure`) `monitors_figure` writes."""
    from matplotlib.figure import Figure

    names = list(monitors)
    figure = Figure(figsize=(3.6 * len(names) + 1.5, 2.3 * len(COMPARED_MEASURES) + 1), layout="constrained")
    body = _titled(figure, title, settings)
    grid = body.subplots(len(COMPARED_MEASURES), len(names), sharex="col", sharey="row", squeeze=False)
    for column, name in enumerate(names):
        _draw_compared_run(grid[:, column], monitors[name])
        grid[0][column].set_title(name)
        grid[-1][column].set_xlabel("optimizer step")
    for row, label in zip(grid, COMPARED_MEASURES.values()):
        row[0].set_ylabel(label)
    grid[-1][0].legend(fontsize="small")
    return figure


def _draw_compared_run(column: Sequence[Any], monitor: Any) -> None:
    """One run's measures down ``column``, a line per layer (``saturated`` in percent)."""
    for axes, measure in zip(column, COMPARED_MEASURES):
        scale = 100 if measure == "saturated" else 1
        for layer, values in monitor.series(measure).items():
            if not np.isnan(values).all():
                axes.plot(monitor.steps, scale * values, marker=".", label=layer, color=_layer_color(monitor, layer))
        if measure == "grad_std":
            axes.set_yscale("log")
        if measure == "update_ratio":
            axes.axhline(RATIO_GUIDE, color="black", linestyle="--", linewidth=1, label="-3 (a rule of thumb)")
        axes.grid(alpha=0.3)


def _layer_color(monitor: Any, layer: str) -> str:
    """The colour of ``layer``'s line: matplotlib's cycle, in the order of the monitor's layers."""
    return f"C{monitor.layers.index(layer)}"


# ----- writing -----


def _save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` as a PNG, atomically (`dp.tools.files.write_atomically`):
    an interrupted write leaves the older file, never half of a new one."""
    return write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=DPI))
