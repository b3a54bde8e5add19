"""Figures: the hidden-layer values they draw are the network's own, computing them does
not disturb training, every figure is written as a PNG, diverged runs included, and
drawing trains nothing."""

import os

import numpy as np
import pytest

import dp.train
from dp import data
from dp.nn.models import MLP
from dp.optim import Adam
from dp.studies.breast_cancer import Cell
from dp.tools import plots
from dp.train import History, fit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def split():
    return data.breast_cancer(validation_size=0.15, seed=0)


def trained(split, steps=20, on_step=None):
    model = MLP(seed=0)
    fit(model, split.x_train, split.y_train, Adam(lr=0.01), steps=steps, progress=False, on_step=on_step)
    return model


def test_second_layer_values_are_those_the_network_computes_on_the_whole_batch(split):
    model = trained(split)
    before, after = plots._second_layer(split.x_train, model.params)
    logits = np.tanh(after) @ model.params["weight_l3"] + model.params["bias_l3"]
    np.testing.assert_allclose(logits, model.logits(split.x_train, train=True).value, rtol=1e-12, atol=1e-12)
    assert before.shape == after.shape == (len(split.x_train), 10)


def test_after_batch_norm_each_unit_has_mean_beta_and_deviation_gamma(split):
    params = trained(split).params
    _, after = plots._second_layer(split.x_train, params)
    np.testing.assert_allclose(after.mean(axis=0, keepdims=True), params["beta_bn2"], atol=1e-12)
    np.testing.assert_allclose(after.std(axis=0, keepdims=True), np.abs(params["gamma_bn2"]), rtol=1e-3)


def test_computing_the_histograms_values_does_not_disturb_training(split):
    plain = trained(split)
    watched = trained(split, on_step=lambda step, model: plots._second_layer(split.x_train, model.params))
    for name, value in plain.params.items():
        assert value.tobytes() == watched.params[name].tobytes(), name


def history(steps, diverged=False):
    """A made-up training history, evaluated at ``steps``."""
    return History(
        step=list(steps),
        epoch=[s / 7 for s in steps],
        loss=[0.7 / s for s in steps],
        train_accuracy=[0.9] * len(steps),
        val_accuracy=[0.92] * len(steps),
        diverged=diverged,
    )


@pytest.fixture(scope="module")
def snapshots(split):
    """The parameters of the network with batch norm after its first and its 20th step."""
    return {1: trained(split, steps=1).params, 20: trained(split, steps=20).params}


@pytest.fixture
def no_training(monkeypatch):
    """Any training from here on fails the test: figures draw what they are given."""
    for name in ("fit", "train_step"):
        monkeypatch.setattr(dp.train, name, lambda *a, **k: pytest.fail("a figure trained a network"))
    monkeypatch.setattr(MLP, "loss", lambda *a, **k: pytest.fail("a figure computed a training loss"))


def test_training_figures_draw_the_histories_and_snapshots_they_are_given(split, snapshots, tmp_path, no_training):
    histories = {True: history(range(5, 25, 5)), False: history(range(5, 25, 5))}
    paths = plots.training_figures(tmp_path / "new" / "dir", histories, snapshots, split.x_train, "given")
    assert [p.name for p in paths] == ["training_curves.png", "batch_norm_histograms.png"]
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in paths)


def test_training_figures_draw_a_diverged_run_up_to_where_it_stopped(split, snapshots, tmp_path, no_training):
    histories = {True: history([], diverged=True), False: history([5, 10])}  # batch norm diverged at step 2
    paths = plots.training_figures(tmp_path, histories, {1: snapshots[1]}, split.x_train, "")
    assert [p.name for p in paths] == ["training_curves.png"]  # and no histograms of its huge values
    assert paths[0].read_bytes().startswith(PNG_SIGNATURE)


def texts(figure):
    """Every non-empty text drawn in ``figure`` (titles, labels, legends, annotations), subfigures included."""
    from matplotlib.text import Text

    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


def suptitles(figure):
    """The titles of ``figure`` and of its subfigures, outermost first, with their font sizes."""
    found = []
    while figure is not None:
        if figure._suptitle is not None:
            found.append((figure._suptitle.get_text(), figure._suptitle.get_fontsize()))
        figure = figure.subfigs[0] if figure.subfigs else None
    return found


SETTINGS = "adam lr 0.01, 20 steps\nnetworks of their own, trained on another split"


def test_the_curves_figure_has_a_one_line_title_and_the_settings_under_it_in_smaller_text():
    figure = plots.curves_figure({True: history(range(5, 25, 5)), False: history(range(5, 25, 5))}, SETTINGS)
    (title, title_size), (subtitle, subtitle_size) = suptitles(figure)
    assert "\n" not in title and "batch norm" in title
    assert subtitle == SETTINGS and subtitle_size < title_size
    drawn = texts(figure)
    for expected in ("with batch norm", "without batch norm", "Validation accuracy (eval mode)"):
        assert expected in drawn


def panels(figure):
    """The histogram panels of ``figure``, {(step, stage, unit): axes}, stage "before" or "after" batch norm."""
    found = {}
    for part in figure.subfigs[0].subfigs:
        words = part._suptitle.get_text().split()
        step = 1 if words[2] == "first" else int(words[2].rstrip(","))
        grid = np.array(part.axes).reshape(2, plots.SHOWN_UNITS)
        for row, stage in enumerate(("before", "after")):
            for unit, axes in enumerate(grid[row]):
                found[step, stage, unit] = axes
    return found


def test_the_histograms_show_each_units_beta_and_gamma_after_batch_norm_and_its_mean_and_sd_before(split, snapshots):
    figure = plots.histograms_figure(split.x_train, snapshots, SETTINGS)
    found = panels(figure)
    assert set(found) == {(s, stage, u) for s in (1, 20) for stage in ("before", "after") for u in range(4)}
    for step, params in snapshots.items():
        before, _ = plots._second_layer(split.x_train, params)
        for unit in range(plots.SHOWN_UNITS):
            mean, sd = before[:, unit].mean(), before[:, unit].std()
            beta, gamma = params["beta_bn2"][0, unit], params["gamma_bn2"][0, unit]
            for stage, center, spread, numbers in (
                ("before", mean, sd, f"mean {plots._signed(mean)}\nsd {sd:.2f}"),
                ("after", beta, abs(gamma), f"β {plots._signed(beta)}\nγ {gamma:.2f}"),
            ):
                axes = found[step, stage, unit]
                assert numbers in [t.get_text() for t in axes.texts]
                line, bar = axes.lines[0], axes.collections[0].get_segments()[0]  # axvline; the errorbar's bar
                np.testing.assert_allclose(line.get_xdata(), [center, center])
                np.testing.assert_allclose(bar[:, 0], [center - spread, center + spread])
                colors = {tuple(patch.get_facecolor()) for patch in axes.patches}
                assert len(colors) == 1, "one histogram a panel: nothing drawn over another"


def test_the_histograms_have_a_one_line_title_plain_words_and_the_settings_in_smaller_text(split, snapshots):
    figure = plots.histograms_figure(split.x_train, snapshots, SETTINGS)
    (title, title_size), (subtitle, subtitle_size), (first_step, _) = suptitles(figure)
    assert title == "After batch norm, each unit has mean β and standard deviation |γ|"
    assert subtitle.endswith(SETTINGS) and subtitle_size < title_size
    assert first_step == "After the first step"
    drawn = texts(figure)
    assert "After step 20, the last" in drawn and "unit 1" in drawn and "before batch norm" in drawn
    internal = ("h1", "W2", "l2", "bn2", "x̂")
    assert not [text for text in drawn if any(name in text for name in internal)]


def test_the_histograms_of_a_single_snapshot_have_one_part(split, snapshots):
    figure = plots.histograms_figure(split.x_train, {1: snapshots[1]}, SETTINGS)
    assert len(figure.subfigs[0].subfigs) == 1 and len(panels(figure)) == 2 * plots.SHOWN_UNITS


def test_the_loss_title_gives_the_steps_between_evaluations():
    assert plots._loss_title({True: history([], diverged=True), False: history([5, 10])}) == (
        "Training loss (mean over each 5 steps)"
    )
    assert plots._loss_title({True: history([]), False: history([])}) == "Training loss"


def test_experiment_figure_is_written_with_diverged_and_unreached_cells(tmp_path):
    def cell(lr, batch_norm, accuracies, steps, diverged=0):
        return Cell(lr, batch_norm, runs=4, diverged=diverged, accuracies=accuracies, steps_to_target=steps)

    cells = [
        cell(0.01, True, (0.97, 0.96, 0.98, 0.95), (20, 25, 30, 35)),
        cell(0.01, False, (0.96, 0.96, 0.97, 0.95), (30, 30, 40, np.inf)),
        cell(1.0, True, (0.90, 0.80), (np.inf,) * 4, diverged=2),
        cell(1.0, False, (), (np.inf,) * 4, diverged=4),
    ]
    path = plots.experiment_figure(tmp_path / "sweep.png", cells, target=0.95, settings="made-up cells")
    assert path == tmp_path / "sweep.png" and path.read_bytes().startswith(PNG_SIGNATURE)


def test_the_normalization_axes_figure_is_written_as_a_png_and_its_path_returned(tmp_path):
    path = plots.normalization_axes_figure(tmp_path / "axes.png")
    assert path == tmp_path / "axes.png" and path.read_bytes().startswith(PNG_SIGNATURE)


STATISTICS_OF = {  # which statistics a value at (sample, channel) is normalized with, every position included
    "Batch norm": lambda n, c: c,
    "Layer norm": lambda n, c: n,
    "Instance norm": lambda n, c: (n, c),
    "Group norm": lambda n, c: (n, c // 2),
}


@pytest.mark.parametrize("normalization", plots.NORMALIZATIONS, ids=lambda n: n.title)
def test_the_shaded_values_are_exactly_those_that_share_one_mean_and_variance(normalization):
    statistics = STATISTICS_OF[normalization.title]
    samples, _, channels = plots.BOX
    shaded = {(n, c) for n in normalization.samples for c in normalization.channels}
    one = statistics(*min(shaded))
    assert shaded == {(n, c) for n in range(samples) for c in range(channels) if statistics(n, c) == one}


def test_the_normalization_axes_figure_names_each_normalization_and_its_axes_and_no_text_overlaps():
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    figure = plots.normalization_axes()
    drawn = [" ".join(text.split()) for text in texts(figure)]  # a caption's line breaks as spaces
    for title, axes in (
        ("Batch norm", "axes (0, 2, 3), per channel"),
        ("Layer norm", "axes (1, 2, 3), per sample"),
        ("Instance norm", "axes (2, 3), per sample and channel"),
        ("Group norm", "channels in groups of C/G and axes (2, 3), per sample and group"),
    ):
        assert title in drawn and axes in drawn
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)  # lays the figure out, as saving does
    hidden = {
        t
        for axes in figure.findobj(Axes)
        if not axes.axison
        for t in axes.xaxis.findobj(Text) + axes.yaxis.findobj(Text)
    }
    shown = [t for t in figure.findobj(Text) if t.get_text() and t.get_visible() and t not in hidden]
    assert len(shown) == 2 + 4 * 5  # the title, the line under it; each panel's title, axes and three axis names
    boxes = [t.get_window_extent(renderer) for t in shown]
    overlapping = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    assert not overlapping


@pytest.mark.parametrize("figure", ["experiment", "normalization axes"])
def test_a_figure_interrupted_while_it_is_written_leaves_the_older_file_and_no_partial_one(
    figure, tmp_path, monkeypatch
):
    from matplotlib.figure import Figure

    cells = [Cell(0.01, batch_norm, 1, 0, (0.9,), (10,)) for batch_norm in (True, False)]
    write = {
        "experiment": lambda path: plots.experiment_figure(path, cells, target=0.95, settings="a sweep"),
        "normalization axes": plots.normalization_axes_figure,
    }[figure]
    path = tmp_path / "figure.png"
    older = write(path).read_bytes()

    def interrupted(self, file, **kwargs):  # Ctrl-C halfway through the PNG (given as a path or a file)
        if isinstance(file, (str, os.PathLike)):
            file = open(file, "wb")  # noqa: SIM115 - left open, as an interrupted writer leaves it
        file.write(PNG_SIGNATURE + b"half a figure")
        file.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(path)
    assert path.read_bytes() == older
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no temporary file left


# ----- dp paper's figures -----


def figure1_inputs(evaluations=5):
    steps = list(range(100, 100 * evaluations + 1, 100))
    curves = {False: (steps, [0.1] * evaluations), True: (steps, [0.9] * evaluations)}
    bands = {bn: (steps, np.tile([-1.0, 0.0, 1.0], (evaluations, 1)) * (1 + bn)) for bn in (False, True)}
    return curves, bands


def test_figure1s_title_stands_over_all_panels_and_each_panel_says_what_it_shows():
    figure = plots.figure1_figure(*figure1_inputs(), title="Figure 1: the title")
    assert suptitles(figure) == [("Figure 1: the title", figure._suptitle.get_fontsize())]
    accuracy, plain, normed = (axes.get_title() for axes in figure.axes)
    assert accuracy.startswith("(a)") and "accuracy" in accuracy
    for title, letter, setting in ((plain, "(b)", "without batch norm"), (normed, "(c)", "with batch norm")):
        assert title.startswith(letter) and "sigmoid's input" in title and title.endswith(setting)
        assert "accuracy" not in title


def sweep_results(stuck_rates=(0.1, 50.0), lrs=(0.1, 1.0, 50.0), seeds=3):
    """Made-up `Result`s of a learning-rate sweep: at chance at ``stuck_rates``, learning elsewhere
    (with batch norm stuck only at the largest rate)."""
    from dp.studies.ioffe2015 import Result, Run

    results = []
    for lr in lrs:
        for batch_norm in (False, True):
            stuck = lr == max(stuck_rates) if batch_norm else lr in stuck_rates
            for seed in range(seeds):
                final = 0.1 if stuck else 0.85 + 0.02 * seed + 0.05 * batch_norm
                run = Run("learning_rates", "digits", (64, 10), batch_norm, lr, 10, seed)
                results.append(Result(run, step=[10], accuracy=[final], stuck=stuck))
    return results


def test_the_sweep_figures_legend_names_the_median_line_and_the_worst_to_best_band():
    figure = plots.sweep_figure(sweep_results(), "a sweep")
    (axes,) = figure.axes
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    for setting in ("without batch norm", "with batch norm"):
        assert f"{setting}: median of 3 seeds" in legend and f"{setting}: worst to best run" in legend


def test_no_line_or_band_of_the_sweep_figure_crosses_a_count_of_stuck_runs():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plots.sweep_figure(sweep_results(), "a sweep")
    (axes,) = figure.axes
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    counts = [text for text in axes.texts if text.get_text().endswith("stuck")]
    assert sorted(text.get_text() for text in counts) == ["3 stuck"] * 3  # without: 0.1 and 50; with: 50
    drawn = [line for line in axes.lines if len(line.get_xdata()) > 2]  # the two settings' lines
    drawn += list(axes.collections)  # their bands
    assert len(drawn) == 4
    for text in counts:
        box = text.get_window_extent(renderer)
        for artist in drawn:
            paths = [artist.get_path()] if hasattr(artist, "get_xdata") else artist.get_paths()
            for path in paths:
                assert not artist.get_transform().transform_path(path).intersects_bbox(box, filled=False), text
        assert text.get_bbox_patch().get_facecolor()[:3] == (1.0, 1.0, 1.0), "it hides the grid behind it"
