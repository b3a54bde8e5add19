"""`dp paper santurkar2018` (dp.studies.santurkar2018) on a tiny budget: the plan, one run, the
noise, the internal covariate shift and the landscape against hand computations, the report,
the command end to end and its bad input. Every run trains 30 steps on scikit-learn's digits."""

import dataclasses

import numpy as np
import pytest
from matplotlib.image import imread

from dp.cli import main
from dp.nn.models import MLP
from dp.optim import SGD
from dp.studies import santurkar2018 as study
from dp.studies.santurkar2018 import Budget, NoisyMLP, Run, plan, run_one, sweep
from dp.train import train_step

TINY = Budget(steps=30, seeds=1, evaluations=3, measurements=3)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs():
    return plan(TINY, "digits", 1)


@pytest.fixture(scope="module")
def results(runs):
    return sweep(runs, jobs=1, progress=False)


def measured(result):
    return dataclasses.replace(result, seconds=0.0)


def table_rows(markdown):
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def batch(rows=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 5)), rng.integers(0, 3, rows)


# ----- the plan and one run -----


def test_the_plan_has_each_setting_for_every_seed_and_measures_two_of_them():
    runs = plan(dataclasses.replace(TINY, seeds=2), "digits", 4)
    assert [(r.setting, r.seed) for r in runs] == [(s, seed) for s in study.SETTINGS for seed in (4, 5)]
    assert {(r.sizes, r.lr, r.steps, r.eval_every) for r in runs} == {((64, 100, 100, 100, 10), study.LR, 30, 10)}
    assert {r.setting: r.measure_every for r in runs} == {"standard": 10, "batch_norm": 10, "noisy": 0}
    monitored = {(r.setting, r.seed): r.monitor_every for r in runs}  # every setting, the first seed, as measured
    assert monitored == {(s, seed): 10 if seed == 4 else 0 for s in study.SETTINGS for seed in (4, 5)}
    assert {r.sizes for r in plan(TINY, "mnist", 1)} == {(784, 100, 100, 100, 10)}


def test_a_run_records_accuracy_percentiles_and_measures(results):
    for result in results:
        assert result.step == [10, 20, 30] and len(result.accuracy) == len(result.train_accuracy) == 3
        assert all(list(p) == sorted(p) and len(p) == 5 for p in result.percentiles)
        measures = result.run.measure_every > 0
        assert result.measured_at == ([0, 10, 20] if measures else [])
        assert len(result.shift) == len(result.landscapes) == len(result.measured_at)
        assert all(set(shift) == {"l2", "l3", "l4"} for shift in result.shift)
        assert not result.diverged
        assert result.monitor.steps == [0, 10, 20, 30]  # one seed: each run is monitored
        assert result.monitor.layers == ["l1", "l2", "l3", "l4"] and result.monitor.activation == "relu"


def test_a_run_is_deterministic(results):
    for result in results:
        assert measured(run_one(result.run)) == measured(result)


def test_measuring_leaves_the_training_unchanged(results):
    for result in study.of(results, "batch_norm") + study.of(results, "standard"):
        unmeasured = run_one(dataclasses.replace(result.run, measure_every=0))
        assert unmeasured.accuracy == result.accuracy and unmeasured.percentiles == result.percentiles


def test_monitoring_leaves_the_training_and_the_measures_unchanged(results):
    for result in results:
        unmonitored = run_one(dataclasses.replace(result.run, monitor_every=0))
        assert unmonitored.monitor is None
        same_run = dataclasses.replace(measured(unmonitored), run=result.run)
        assert same_run == measured(result)  # accuracies, percentiles, covariate shift, landscape: all of them
        assert unmonitored.accuracy == result.accuracy and unmonitored.percentiles == result.percentiles
        assert result.monitor is None or result.monitor.snapshots == {}  # only the series travel back


def test_the_monitor_sees_the_noise_of_the_noisy_network_and_batch_norm_without_it(results):
    (plain,), (noisy,) = study.of(results, "batch_norm"), study.of(results, "noisy")
    for layer in ("l1", "l2", "l3"):  # batch norm, gamma 1 at first: a spread of 1; the noise scales it by 1-2
        assert plain.monitor.series("std")[layer][0] == pytest.approx(1, abs=1e-3)
        assert noisy.monitor.series("std")[layer][0] > 1.2
    assert plain.monitor.inputs == noisy.monitor.inputs == {"l1": "bn1", "l2": "bn2", "l3": "bn3"}


def test_every_setting_learns_on_digits(results):
    assert all(r.accuracy[-1] > 0.5 for r in results)


# ----- the noise -----


def noisy_model():
    return NoisyMLP((5, 4, 3), seed=3)


def test_the_noise_is_off_in_eval_mode():
    noisy, plain, (x, y) = noisy_model(), MLP((5, 4, 3), seed=3), batch()
    train_step(noisy, SGD(lr=0.1), x, y, reduction="mean")
    assert noisy.params.keys() == plain.params.keys()
    plain.params.update(noisy.params)  # the same weights and moving averages
    np.testing.assert_array_equal(noisy.record(x, ["bn1"])["bn1"], plain.record(x, ["bn1"])["bn1"])
    assert not np.array_equal(noisy.record(x, ["bn1"], train=True)["bn1"], plain.record(x, ["bn1"], train=True)["bn1"])


def test_the_noise_changes_every_step_and_is_the_same_within_a_step():
    model, (x, y) = noisy_model(), batch()
    norm = model.hidden[0][1]
    first = norm.noise(len(x))
    np.testing.assert_array_equal(norm.noise(len(x))[1], first[1])  # a measure's extra pass sees the step's noise
    train_step(model, SGD(lr=0.1), x, y, reduction="mean")
    second = norm.noise(len(x))
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(first[1], second[1])
    scale, shift = second
    assert scale.shape == (1, 4) and shift.shape == (len(x), 4)
    assert scale.min() >= 1 and scale.max() <= study.NOISE_SCALE


def test_the_noisy_layer_is_batch_norm_scaled_and_shifted_by_its_noise():
    model, (x, _) = noisy_model(), batch()
    plain = MLP((5, 4, 3), seed=3)
    scale, shift = model.hidden[0][1].noise(len(x))
    clean = plain.record(x, ["bn1"], train=True)["bn1"]
    np.testing.assert_allclose(model.record(x, ["bn1"], train=True)["bn1"], clean * scale + shift, rtol=1e-12)


# ----- internal covariate shift and the landscape, by hand -----


def hand_gradients(params, x, y):
    """The mean cross-entropy of a ReLU network 5-4-3 without batch norm, and its gradients."""
    z = x @ params["weight_l1"] + params["bias_l1"]
    h = np.maximum(z, 0)
    logits = h @ params["weight_l2"] + params["bias_l2"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y]
    loss = -np.mean(np.sum(onehot * np.log(p), axis=1))
    d_logits = (p - onehot) / len(x)
    d_z = d_logits @ params["weight_l2"].T * (z > 0)
    grads = {
        "weight_l2": h.T @ d_logits,
        "bias_l2": d_logits.sum(axis=0, keepdims=True),
        "weight_l1": x.T @ d_z,
        "bias_l1": d_z.sum(axis=0, keepdims=True),
    }
    return loss, grads


def plain_model():
    return MLP((5, 4, 3), batch_norm=False, activation="relu", seed=2, init="he")


def test_the_covariate_shift_is_definition_2_1_by_hand():
    model, (x, y), lr = plain_model(), batch(), 0.5
    params = {k: v.copy() for k, v in model.params.items()}
    _, grads = hand_gradients(params, x, y)
    moved = {**params, "weight_l1": params["weight_l1"] - lr * grads["weight_l1"],
             "bias_l1": params["bias_l1"] - lr * grads["bias_l1"]}  # fmt: skip
    after = hand_gradients(moved, x, y)[1]["weight_l2"]
    before = grads["weight_l2"]
    shift = study.internal_covariate_shift(model, x, y, lr)
    assert set(shift) == {"l2"}
    distance, cosine = shift["l2"]
    assert distance == pytest.approx(np.linalg.norm(before - after), rel=1e-10)
    assert cosine == pytest.approx(np.sum(before * after) / np.linalg.norm(before) / np.linalg.norm(after), rel=1e-10)
    assert all(np.array_equal(model.params[k], params[k]) for k in params)


def test_the_landscape_measures_are_those_computed_by_hand():
    model, (x, y), lr = plain_model(), batch(), 0.5
    params = {k: v.copy() for k, v in model.params.items()}
    loss, grads = hand_gradients(params, x, y)
    factors = (0.5, 1.0, 4.0)
    ls = study.landscape(model, x, y, lr, factors)
    g = np.concatenate([grads[k].ravel() for k in sorted(grads)])
    losses, distances, betas = [loss], [], []
    for f in factors:
        moved_loss, moved = hand_gradients({k: params[k] - lr * f * grads[k] for k in grads}, x, y)
        change = np.linalg.norm(np.concatenate([moved[k].ravel() for k in sorted(grads)]) - g)
        losses.append(moved_loss)
        distances.append(change)
        betas.append(change / (lr * f * np.linalg.norm(g)))
    np.testing.assert_allclose(ls.losses, losses, rtol=1e-10)
    assert ls.loss_range == pytest.approx(max(losses) - min(losses), rel=1e-10)
    assert ls.predictiveness == pytest.approx(max(distances), rel=1e-10)
    assert ls.beta_smoothness == pytest.approx(max(betas), rel=1e-10)
    assert all(np.array_equal(model.params[k], params[k]) for k in params)


def test_measuring_a_batch_norm_network_changes_none_of_its_state():
    model, (x, y) = MLP((5, 4, 3), seed=1), batch()
    train_step(model, SGD(lr=0.1), x, y, reduction="mean")
    before = {k: v.copy() for k, v in model.params.items()}
    study.internal_covariate_shift(model, x, y, 0.1)
    study.landscape(model, x, y, 0.1)
    assert before.keys() == model.params.keys()
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


# ----- the report -----


def test_the_tables_hold_the_medians_of_the_runs(results):
    header, _, *rows = table_rows(study.accuracy_table(results))
    assert header == ["step", "standard", "batch norm", "noisy batch norm"]
    assert [row[0] for row in rows] == ["10", "20", "30"]
    assert rows[-1][1:] == [f"{100 * r.accuracy[-1]:.1f}" for r in results]  # one seed: the median is the run
    header, _, *rows = table_rows(study.shift_table(results))
    assert header[:2] == ["step", "layer"] and len(rows) == 3 * 3
    (standard,) = study.of(results, "standard")
    assert rows[0][:3] == ["0", "l2", f"{standard.shift[0]['l2'][0]:.4g}"]
    header, _, *rows = table_rows(study.landscape_table(results))
    assert header[1] == "loss range: standard" and len(rows) == 3
    assert rows[1][1] == f"{standard.landscapes[1].loss_range:.4g}"


def test_report_writes_each_table_and_a_readable_figure(results, tmp_path):
    printed = list(study.report(results, TINY, tmp_path, "the header"))
    names = ("standard_vs_noisy", "ics", "landscape")
    written = sorted(f"{n}.{ext}" for n in (*names, "monitor") for ext in ("md", "png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == written and len(printed) == 4
    for name, text in zip(names, printed):
        markdown = (tmp_path / f"{name}.md").read_text()
        title, body = text.strip().split("\n\n", 1)
        assert markdown == f"{title}\n\nthe header\n\n{body}\n\n![{title[3:]}]({name}.png)\n"
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
        pixels = imread(tmp_path / f"{name}.png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0


def test_report_writes_each_monitored_runs_table_and_their_figure(results, tmp_path):
    *_, printed = study.report(results, TINY, tmp_path, "the header")
    title = "Inside the layers (dp.train.Monitor; seed 1, 1,000 test rows in training mode)"
    assert printed.startswith(f"\n## {title}\n\nA table per run (standard, batch norm, noisy batch norm): ")
    tables = "\n\n".join(f"### {study.NAMES[r.run.setting]}\n\n{r.monitor.table()}" for r in results)
    markdown = (tmp_path / "monitor.md").read_text()
    assert markdown == f"## {title}\n\nthe header\n\n{tables}\n\n![{title}](monitor.png)\n"
    assert len(table_rows(markdown)) == 3 * (2 + 4 * 4)  # per setting: heading, rule, 4 steps x 4 layers
    pixels = imread(tmp_path / "monitor.png")
    assert pixels.shape[0] > 600 and pixels.shape[1] > 600 and pixels.std() > 0


# ----- the command -----


def test_the_command_runs_end_to_end(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(study, "QUICK", TINY)
    argv = ["paper", "santurkar2018", "--quick", "--data", "digits", "--jobs", "1", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("dp paper santurkar2018: digits, 3 runs, seeds 1-1;")
    assert "| step | standard | batch norm | noisy batch norm |" in printed
    written = {"ics.md", "landscape.png", "standard_vs_noisy.md", "monitor.md", "monitor.png"}
    assert {p.name for p in (tmp_path / "out").iterdir()} >= written
    assert "\n## Inside the layers (dp.train.Monitor; seed 1, 1,000 test rows in training mode)\n" in printed


def test_the_command_refuses_another_study_s_options(capsys, tmp_path):
    assert main(["paper", "santurkar2018", "--weight-std", "0.1", "--out", str(tmp_path / "out")]) != 0
    assert "--weight-std: an option of ioffe2015, not of santurkar2018" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_study_lists_santurkar2018(capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(["paper", "santurkar", "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2 and "'santurkar2018'" in capsys.readouterr().err


def test_a_run_of_a_setting_it_does_not_know_is_refused_before_training():
    with pytest.raises(ValueError, match="unknown setting 'dropout'; choose from standard, batch_norm, noisy"):
        run_one(Run("dropout", "digits", (64, 10), 0.1, 10, 1, 10))
