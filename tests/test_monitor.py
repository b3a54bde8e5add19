"""dp.train.Monitor: Karpathy's per-layer diagnostics while `fit` trains (pre-activation mean and
spread, saturation, dead units, the gradients' spread, the update-to-data ratio), each equal to
its definition computed by hand; a run with the monitor is the run without it, bit for bit; its
figure; and bad input refused before the first step."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

import dp
from dp.nn.models import CNN, MLP
from dp.optim import SGD, Adam
from dp.train import FLAT_HEADINGS, MEASURES, Monitor, fit, train_step

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 4))
Y = (X[:, :1] + X[:, 1:2] > 0).astype(float)
ROWS = RNG.standard_normal((16, 4))


def tiny(**options):
    """A 4-3-3-1 network, tanh and no batch norm by default, its weights large enough to saturate."""
    settings = dict(batch_norm=False, activation="tanh", init="normal", init_std=1.5, seed=0)
    return MLP((4, 3, 3, 1), **{**settings, **options})


def fit_tiny(model, optimizer, monitor=None, steps=4, **options):
    return fit(model, X, Y, optimizer, steps=steps, batch_size=20, seed=0, progress=False, monitor=monitor, **options)


# ----- each measure is its definition -----


@pytest.fixture(scope="module")
def watched():
    """A run of 2 steps recorded at both (every=1), and the parameters after each step."""
    model, after = tiny(), {}
    monitor = Monitor(ROWS, every=1)
    fit_tiny(model, Adam(lr=0.05), monitor, steps=2, on_step=lambda step, m: after.update({step: dict(m.params)}))
    return model, monitor, after


def test_it_records_step_0_and_every_every_th_step_for_every_layer_with_a_weight(watched):
    _, monitor, _ = watched
    assert monitor.steps == [0, 1, 2]
    assert monitor.layers == ["l1", "l2", "l3"] and monitor.inputs == {"l1": "l1", "l2": "l2"}
    assert set(monitor.snapshots) == {0, 2}
    assert all(len(values) == 3 for measure in MEASURES for values in monitor.series(measure).values())


def test_pre_activation_mean_and_std_are_those_of_what_record_gives(watched):
    model, monitor, _ = watched  # the last recorded step is the last step: the model as it is now
    recorded = model.record(ROWS, train=True)
    for layer in ("l1", "l2"):
        np.testing.assert_array_equal(monitor.snapshots[2][layer], recorded[layer])
        assert monitor.series("mean")[layer][-1] == recorded[layer].mean()
        assert monitor.series("std")[layer][-1] == recorded[layer].std()
    assert np.isnan(monitor.series("mean")["l3"]).all()  # the output layer has no activation


def test_saturated_is_the_fraction_of_tanh_beyond_0_97_and_dead_the_units_saturated_on_every_row(watched):
    model, monitor, _ = watched
    for layer, z in model.record(ROWS, ["l1", "l2"], train=True).items():
        flat = np.abs(np.tanh(z)) > 0.97
        assert 0 < flat.mean() < 1  # the large weights saturate some values, not all: a real test
        assert monitor.series("saturated")[layer][-1] == flat.mean()
        assert monitor.series("dead")[layer][-1] == flat.all(axis=0).mean()


def test_gradient_std_is_that_of_the_gradient_of_the_steps_batch(watched):
    _, monitor, after = watched
    before = MLP(**tiny().config)  # the model as step 2 found it, and step 2's batch (fit's documented order)
    before.params.update(after[1])
    rows = np.random.default_rng(0).permutation(len(X))[20:40]
    grads = before.loss(X[rows], Y[rows]).grad(1)
    for layer in ("l1", "l2", "l3"):
        assert monitor.series("grad_std")[layer][-1] == np.std(grads[f"weight_{layer}"])
        assert np.isnan(monitor.series("grad_std")[layer][0])  # step 0: no step, no gradient


def test_update_ratio_is_log10_of_the_updates_norm_over_the_weights_norm(watched):
    _, monitor, after = watched
    for layer in ("l1", "l2", "l3"):
        old, new = after[1][f"weight_{layer}"], after[2][f"weight_{layer}"]
        expected = math.log10(np.linalg.norm(new - old) / np.linalg.norm(old))
        assert monitor.series("update_ratio")[layer][-1] == pytest.approx(expected, rel=1e-12)


def test_train_step_hands_over_the_very_gradients_it_steps_with():
    model, gradients = tiny(), {}
    expected = tiny().loss(X[:20], Y[:20]).grad(1)
    train_step(model, SGD(lr=0.1), X[:20], Y[:20], gradients=gradients)
    assert gradients.keys() == expected.keys()
    assert all(np.array_equal(gradients[k], expected[k]) for k in expected)


def test_sigmoid_saturates_outside_0_03_and_0_97():
    model = tiny(activation="sigmoid", init_std=3.0)
    monitor = Monitor(ROWS, every=2)
    fit_tiny(model, SGD(lr=0.01), monitor, steps=2)
    h = 1 / (1 + np.exp(-model.record(ROWS, ["l1"], train=True)["l1"]))
    flat = (h < 0.03) | (h > 0.97)
    assert 0 < flat.mean() < 1 and monitor.series("saturated")["l1"][-1] == flat.mean()
    assert FLAT_HEADINGS["sigmoid"] in monitor.table()


def test_a_dead_relu_unit_is_exactly_0_on_every_row_and_stays_dead():
    model = tiny(activation="relu", init_std=0.5)
    model.params["bias_l1"] = np.array([[-100.0, 0.0, 0.0]])  # unit 1 of l1 is 0 whatever the row
    monitor = Monitor(ROWS, every=2)
    fit_tiny(model, SGD(lr=0.01), monitor)
    z = model.record(ROWS, ["l1"], train=True)["l1"]
    assert monitor.series("saturated")["l1"][-1] == (np.maximum(z, 0) == 0).mean()
    assert list(monitor.series("dead")["l1"]) == [1 / 3] * 3  # no gradient reaches it: it never comes back
    assert "exactly 0 % (ReLU)" in monitor.table()


def test_a_cnn_is_monitored_per_channel():
    model = CNN(image=(1, 6, 6), channels=(2,), classes=2, seed=0)
    images = np.random.default_rng(1).standard_normal((12, 36))
    labels = np.arange(12) % 2
    monitor = Monitor(images[:6], every=1)
    fit(model, images, labels, SGD(lr=0.01), steps=1, batch_size=6, progress=False, monitor=monitor)
    assert monitor.layers == ["conv1", "fc1"] and monitor.inputs == {"conv1": "bn1"}
    z = model.record(images[:6], ["bn1"], train=True)["bn1"]  # (6, 2, 6, 6)
    flat = np.maximum(z, 0) == 0
    assert monitor.series("saturated")["conv1"][-1] == flat.mean()
    assert monitor.series("dead")["conv1"][-1] == flat.all(axis=(0, 2, 3)).mean()


# ----- it changes nothing -----


@pytest.mark.parametrize("batch_norm", [True, False])
def test_a_run_with_the_monitor_is_the_run_without_it_bit_for_bit(batch_norm):
    runs = []
    for monitor in (None, Monitor(ROWS, every=1)):
        model, optimizer = tiny(batch_norm=batch_norm), Adam(lr=0.05)
        history = fit_tiny(model, optimizer, monitor, steps=6, validation=(ROWS, ROWS[:, :1] > 0), eval_every=2)
        runs.append((model, optimizer, history))
    (plain, plain_optimizer, plain_history), (watched, watched_optimizer, watched_history) = runs
    assert plain.params.keys() == watched.params.keys()  # moving averages and batch counts among them
    assert all(plain.params[k].tobytes() == watched.params[k].tobytes() for k in plain.params)
    assert plain_optimizer.state.keys() == watched_optimizer.state.keys()
    for key, slots in plain_optimizer.state.items():
        assert all(np.array_equal(value, watched_optimizer.state[key][slot]) for slot, value in slots.items())
    assert (plain_history.loss, plain_history.val_accuracy) == (watched_history.loss, watched_history.val_accuracy)


def test_a_loop_of_ones_own_records_its_steps_through_train_step_and_changes_nothing():
    def own_loop(monitor):
        model, optimizer, after = tiny(batch_norm=True), Adam(lr=0.05), {}
        if monitor is not None:
            monitor.start(model)
        losses = []
        for step in range(1, 6):
            x, y = X[8 * step - 8 : 8 * step], Y[8 * step - 8 : 8 * step]
            if monitor is None:
                losses.append(train_step(model, optimizer, x, y, "mean"))
            else:
                losses.append(monitor.train_step(step, model, optimizer, x, y, "mean"))
            after[step] = dict(model.params)
        return model, losses, after

    monitor = Monitor(ROWS, every=2)
    (plain, plain_losses, _), (watched, watched_losses, after) = own_loop(None), own_loop(monitor)
    assert plain_losses == watched_losses and plain.params.keys() == watched.params.keys()
    assert all(plain.params[k].tobytes() == watched.params[k].tobytes() for k in plain.params)
    assert monitor.steps == [0, 2, 4]
    for i, step in enumerate(monitor.steps[1:], 1):  # each recorded step's update, from the step before it
        new, old = after[step]["weight_l1"], after[step - 1]["weight_l1"]
        ratio = np.log10(np.linalg.norm(new - old) / np.linalg.norm(old))
        assert monitor.series("update_ratio")["l1"][i] == pytest.approx(ratio, rel=1e-12)


def test_train_step_of_the_monitor_steps_on_the_summed_loss_by_default_as_dp_train_train_step():
    plain, watched, monitor = tiny(), tiny(), Monitor(ROWS, every=1)
    monitor.start(watched)
    expected = train_step(plain, SGD(lr=0.01), X[:20], Y[:20])
    assert monitor.train_step(1, watched, SGD(lr=0.01), X[:20], Y[:20]) == expected
    assert expected == pytest.approx(20 * train_step(tiny(), SGD(lr=0.01), X[:20], Y[:20], "mean"), rel=1e-12)
    assert all(np.array_equal(plain.params[k], watched.params[k]) for k in plain.params)


def test_a_monitor_given_to_another_fit_starts_anew():
    monitor = Monitor(ROWS, every=2)
    fit_tiny(tiny(), SGD(lr=0.01), monitor, steps=4)
    fit_tiny(tiny(), SGD(lr=0.01), monitor, steps=2)
    assert monitor.steps == [0, 2] and len(monitor.table().splitlines()) == 2 + 2 * 3


def params_of(model):
    return {key: value.copy() for key, value in model.params.items()}


@pytest.mark.parametrize(
    ("started", "step", "match"),
    [
        (False, 1, r"call monitor\.start\(model\) on this model"),
        (True, 0, r"steps count up from 1 \(step 0 is start's\); got 0 after 0"),
        (True, 1.0, r"steps count up from 1 .*got 1\.0"),
        (True, True, r"steps count up from 1 .*got True"),
    ],
    ids=["never started", "step 0", "a float step", "a bool"],
)
def test_a_train_step_the_monitor_cannot_place_is_refused_before_the_step(started, step, match):
    model, monitor, optimizer = tiny(), Monitor(ROWS, every=1), SGD(lr=0.1)
    if started:
        monitor.start(model)
    before = params_of(model)
    with pytest.raises(ValueError, match=match):
        monitor.train_step(step, model, optimizer, X[:20], Y[:20])
    assert all(np.array_equal(before[key], model.params[key]) for key in before)
    assert monitor.steps == ([0] if started else [])


def test_a_step_of_another_model_or_a_step_already_taken_is_refused_and_changes_nothing():
    model, other, monitor, optimizer = tiny(), tiny(seed=1), Monitor(ROWS, every=1), SGD(lr=0.1)
    monitor.start(model)
    monitor.train_step(1, model, optimizer, X[:20], Y[:20])
    before, other_before = params_of(model), params_of(other)
    with pytest.raises(ValueError, match=r"call monitor\.start\(model\) on this model"):
        monitor.train_step(2, other, optimizer, X[:20], Y[:20])
    with pytest.raises(ValueError, match=r"got 1 after 1"):
        monitor.train_step(1, model, optimizer, X[:20], Y[:20])
    assert all(np.array_equal(other_before[key], other.params[key]) for key in other_before)
    assert all(np.array_equal(before[key], model.params[key]) for key in before)
    assert monitor.steps == [0, 1]
    monitor.train_step(np.int64(3), model, optimizer, X[:20], Y[:20])  # a step skipped is fine: it comes after
    assert monitor.steps == [0, 1, 3]


def test_a_recorded_step_whose_record_fails_is_undone_with_it(monkeypatch):
    model, monitor, optimizer = tiny(), Monitor(ROWS, every=1), Adam(lr=0.05)
    monitor.start(model)
    before, state = params_of(model), optimizer.state

    def failing(*args):
        raise RuntimeError("recording failed")

    monkeypatch.setattr(monitor, "_pre_activations", failing)
    with pytest.raises(RuntimeError, match="recording failed"):
        monitor.train_step(1, model, optimizer, X[:20], Y[:20])
    assert all(np.array_equal(before[key], model.params[key]) for key in before) and optimizer.state is state
    assert monitor.steps == [0] and all(len(v) == 1 for v in monitor.series("mean").values())


# ----- the table and the figure -----


def test_the_table_has_a_row_per_step_and_layer_with_empty_cells_where_nothing_applies(watched):
    _, monitor, _ = watched
    lines = monitor.table().splitlines()
    assert lines[0].startswith("| step | layer | pre-activation mean |") and FLAT_HEADINGS["tanh"] in lines[0]
    assert len(lines) == 2 + 3 * 3
    assert lines[2].startswith("| 0 | l1 |") and lines[2].endswith("|  |  |")  # no gradient before a step
    assert lines[-1].startswith("| 2 | l3 |  |  |  |  | ")  # the output layer: gradients only


def test_the_figure_is_written_as_a_png(watched, tmp_path):
    _, monitor, _ = watched
    path = dp.plots.monitor_figure(tmp_path / "monitor.png", monitor, "a tiny run")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_the_figure_of_several_runs_draws_each_measure_of_each_run_per_layer(watched, tmp_path):
    from dp.tools.plots import COMPARED_MEASURES, compared_monitors

    _, monitor, _ = watched
    other = Monitor(ROWS, every=2)
    fit_tiny(tiny(batch_norm=True), SGD(lr=0.01), other, steps=4)
    figure = compared_monitors({"plain": monitor, "batch norm": other}, "two runs")
    grid = np.array(figure.subfigs[0].axes).reshape(len(COMPARED_MEASURES), 2)
    assert [axes.get_title() for axes in grid[0]] == ["plain", "batch norm"]
    for row, measure in zip(grid, COMPARED_MEASURES):
        for axes, run in zip(row, (monitor, other)):
            drawn = {line.get_label(): line.get_ydata() for line in axes.get_lines() if line.get_label() in run.layers}
            scale = 100 if measure == "saturated" else 1
            expected = {layer: scale * v for layer, v in run.series(measure).items() if not np.isnan(v).all()}
            assert drawn.keys() == expected.keys()  # the output layer has no pre-activations
            assert all(np.array_equal(drawn[layer], expected[layer], equal_nan=True) for layer in expected)
    path = dp.plots.monitors_figure(tmp_path / "runs.png", {"plain": monitor}, "one run", "tiny")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_the_figure_of_the_output_layer_alone_has_no_histograms(tmp_path):
    monitor = Monitor(ROWS, every=1, layers=["l3"])
    fit_tiny(tiny(), SGD(lr=0.01), monitor, steps=1)
    assert monitor.inputs == {}
    assert dp.plots.monitor_figure(tmp_path / "m.png", monitor).read_bytes().startswith(PNG_SIGNATURE)


# ----- bad input, refused before the first step -----


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Monitor(ROWS, every=0), ValueError, r"every must be a whole number in \[1, inf\)"),
        (lambda: Monitor(ROWS, every=2.5), TypeError, "every must be a whole number"),
        (lambda: Monitor(ROWS[:1]), ValueError, "at least 2"),
        (lambda: Monitor("rows"), TypeError, "the monitor's rows must be numeric"),
    ],
    ids=["every-0", "every-float", "one-row", "text"],
)
def test_bad_settings_are_refused_when_the_monitor_is_made(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "monitor, error, match",
    [
        (
            Monitor(ROWS, layers=["l1", "bn1"]),
            ValueError,
            r"no layer 'bn1' to monitor; its layers are \['l1', 'l2', 'l3'\]",
        ),
        (Monitor(ROWS[:, :3]), ValueError, r"the monitor's rows do not fit the model: .*\(n, 4\)"),
        (lambda step, model: None, TypeError, "monitor must be a dp.train.Monitor or None"),
    ],
    ids=["unknown-layer", "rows-of-another-width", "not-a-monitor"],
)
def test_a_monitor_that_does_not_fit_the_model_is_refused_before_the_first_step(monitor, error, match):
    model = tiny()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(error, match=match):
        fit_tiny(model, SGD(lr=0.1), monitor)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


def test_a_model_without_record_is_refused():
    class Bare(dp.NeuralNode):
        def __init__(self):
            super().__init__(seed=0)
            self.l1 = self.linear(4, 1, "l1")

        def forward(self, x, train=None):
            return self.l1(x).sigmoid()

    with pytest.raises(TypeError, match="record\\(\\) and activation_inputs\\(\\)"):
        fit(Bare(), X, Y, SGD(lr=0.1), steps=1, batch_size=20, progress=False, monitor=Monitor(ROWS))


def test_an_unknown_measure_is_refused_with_the_known_ones(watched):
    with pytest.raises(ValueError, match="'update_ratio'"):
        watched[1].series("ratio")


# ----- docs/monitor.md -----

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_docs_example_is_python_and_its_tables_are_those_it_wrote():
    text = (DOCS / "monitor.md").read_text()
    (example,) = re.findall(r"<<'EOF'\n(.*?)\nEOF\n", text, re.S)
    compile(example, "docs/monitor.md", "exec")
    assert 'monitor_figure("docs/monitor.png"' in example and (DOCS / "monitor.png").exists()
    written = (DOCS / "monitor_tables.md").read_text().splitlines()
    quoted = re.findall(r"^\|.*\|$", text.split("## A real run", 1)[1].split("\n## ", 1)[0], re.M)
    assert len(quoted) == 2 * (2 + 8)  # two tables: header, alignment, steps 0 and 1,000 of 4 layers
    assert all(line in written or set(line) <= set("|-: ") for line in quoted)


def test_the_studies_report_refuses_no_runs_before_writing_anything(tmp_path):
    from dp.studies import monitored

    with pytest.raises(ValueError, match="no monitored run to report"):
        monitored.report({}, tmp_path, "title", "header")
    assert list(tmp_path.iterdir()) == []
