"""`dp paper wu2018` (dp.studies.wu2018, dp.cli.paper) on a tiny budget: the plan, the networks
each normalization builds, one run, the report, the command end to end and its bad input.

Every run here trains at most 30 steps on 200 of scikit-learn's 8x8 digits: enough to check
what is measured and written, not what the full budget finds (docs/why/wu2018.md)."""

import dataclasses
import re

import numpy as np
import pytest

from dp.cli import main
from dp.studies import wu2018
from dp.studies.wu2018 import NORMALIZATIONS, Budget, NormalizedCNN, Result, Run, plan, run_one, sweep
from dp.train import recalibrate

TINY = Budget(epochs=1, rows=200, max_steps=30, seeds=1)
SIZES = (2, 8)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs():
    return plan(TINY, "digits", 200, first_seed=1, batch_sizes=SIZES)


@pytest.fixture(scope="module")
def results(runs):
    return sweep(runs, jobs=1, progress=False)


def test_the_plan_has_every_normalization_at_every_batch_size_for_every_seed():
    runs = plan(dataclasses.replace(TINY, seeds=2), "digits", 200, first_seed=3)
    assert len(runs) == len(NORMALIZATIONS) * len(wu2018.BATCH_SIZES) * 2
    assert {(r.normalization, r.batch_size, r.seed) for r in runs} == {
        (n, b, s) for n in NORMALIZATIONS for b in wu2018.BATCH_SIZES for s in (3, 4)
    }
    assert NORMALIZATIONS == ("batch_norm", "batch_renorm", "group_norm", "layer_norm", "none")


def test_batch_and_group_norm_are_monitored_at_the_smallest_batch_and_the_largest_up_to_32_first_seed_only():
    runs = plan(dataclasses.replace(TINY, seeds=2, max_steps=1000), "digits", 200, first_seed=3)
    monitored = {(r.normalization, r.batch_size, r.seed): r.monitor_every for r in runs if r.monitor_every}
    assert monitored == {("batch_norm", 2, 3): 10, ("batch_norm", 32, 3): 1, ("group_norm", 2, 3): 10,
                         ("group_norm", 32, 3): 1}  # 100 steps and 6: ten records a run, or every step  # fmt: skip
    assert wu2018.monitored_sizes((2, 4, 8, 16, 32, 64)) == (2, 32)
    assert wu2018.monitored_sizes((8, 2)) == (2, 8) and wu2018.monitored_sizes((64, 128)) == (64,)


def test_the_learning_rate_is_scaled_linearly_with_the_batch_as_wu_and_he_do(runs):
    for run in runs:
        assert run.lr == pytest.approx(0.1 * run.batch_size / 32)
    assert {r.lr for r in plan(TINY, "digits", 200) if r.batch_size == 32} == {0.1}


def test_every_batch_trains_the_same_epochs_unless_the_cap_binds():
    budget = Budget(epochs=2, rows=1000, max_steps=600, seeds=1)
    steps = {r.batch_size: r.steps for r in plan(budget, "digits", 1000)}
    assert steps == {2: 600, 4: 500, 8: 250, 16: 124, 32: 62, 64: 30}  # 2 * (1000 // b), batch 2 capped


def test_each_normalization_builds_the_layer_it_names():
    learned = {
        n: sorted(k for k in NormalizedCNN(n, (1, 8, 8), seed=0).params if not k.startswith("weight"))
        for n in NORMALIZATIONS
    }
    moving = ["avg_mean_bn1", "avg_mean_bn2", "avg_variance_bn1", "avg_variance_bn2", "batches_bn1", "batches_bn2"]
    bn = sorted(["beta_bn1", "beta_bn2", "bias_fc1", *moving, "gamma_bn1", "gamma_bn2"])
    assert learned["batch_norm"] == learned["batch_renorm"] == bn
    assert learned["group_norm"] == ["beta_gn1", "beta_gn2", "bias_fc1", "gamma_gn1", "gamma_gn2"]
    assert learned["layer_norm"] == ["beta_ln1", "beta_ln2", "bias_fc1", "gamma_ln1", "gamma_ln2"]
    assert learned["none"] == ["bias_conv1", "bias_conv2", "bias_fc1"]  # no normalization: the convolutions' biases


def test_the_layers_are_configured_as_the_study_states():
    renorm = NormalizedCNN("batch_renorm", (1, 8, 8), renorm_warmup=7)
    assert all(norm.renorm and (norm.rmax, norm.dmax, norm.renorm_warmup) == (3.0, 5.0, 7) for _, norm in renorm.blocks)
    assert not any(norm.renorm for _, norm in NormalizedCNN("batch_norm", (1, 8, 8)).blocks)
    assert [norm.groups for _, norm in NormalizedCNN("group_norm", (1, 8, 8)).blocks] == [4, 4]
    assert [norm.groups for _, norm in NormalizedCNN("layer_norm", (1, 8, 8)).blocks] == [1, 1]
    assert [conv.weight_key for conv, _ in NormalizedCNN("none", (1, 8, 8)).blocks] == ["weight_conv1", "weight_conv2"]


def test_the_renorm_warmup_is_a_fifth_of_the_run():
    run = Run("digits", "batch_renorm", 8, 0.025, 50, 200, 1)
    assert [norm.renorm_warmup for _, norm in wu2018.network(run).blocks] == [10, 10]


def test_group_and_layer_norm_normalize_each_image_alone():
    x = np.random.default_rng(0).normal(size=(4, 64))
    for n in ("group_norm", "layer_norm", "none"):
        model = NormalizedCNN(n, (1, 8, 8), seed=1)
        together = model.predict_proba(x)
        alone = np.vstack([model.predict_proba(x[i : i + 1]) for i in range(4)])
        np.testing.assert_allclose(together, alone, atol=1e-12)
        np.testing.assert_allclose(model.logits(x, train=True).value, model.logits(x, train=False).value)


@pytest.mark.parametrize("normalization, norm", [("group_norm", "gn"), ("layer_norm", "ln")])
def test_group_and_layer_norm_networks_record_each_layer_as_a_cnn_does(normalization, norm):
    model, x = NormalizedCNN(normalization, (1, 8, 8), seed=1), np.random.default_rng(0).normal(size=(5, 64))
    assert model.activation_inputs() == {"conv1": f"{norm}1", "conv2": f"{norm}2"}
    before = {k: v.copy() for k, v in model.params.items()}
    seen = model.record(x, train=True)
    assert list(seen) == ["conv1", f"{norm}1", "conv2", f"{norm}2", "fc1"]
    conv1, norm1 = model.blocks[0]
    z = conv1(x.reshape(5, 1, 8, 8))
    np.testing.assert_array_equal(seen["conv1"], z.value)
    np.testing.assert_array_equal(seen[f"{norm}1"], norm1.forward(z).value)
    np.testing.assert_array_equal(seen["fc1"], model.logits(x).value)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


def test_groups_that_do_not_divide_the_channels_and_unknown_normalizations_are_refused():
    with pytest.raises(ValueError, match="3 groups do not divide the 8 channels"):
        NormalizedCNN("group_norm", (1, 8, 8), groups=3)
    with pytest.raises(ValueError, match="unknown normalization 'instance_norm'"):
        NormalizedCNN("instance_norm", (1, 8, 8))


def test_sweep_returns_one_result_per_run_in_order_and_each_learns(runs, results):
    assert [r.run for r in results] == runs
    assert all(isinstance(r, Result) and not r.diverged for r in results)
    learned = [r.accuracy for r in results if r.run.batch_size == 8]
    assert min(learned) > 0.2, "25 steps of 8 digits leave chance (10 %) behind"


def test_only_batch_norm_and_renorm_are_recalibrated_and_that_is_recalibrate(results):
    for r in results:
        assert (r.recalibrated is not None) == (r.run.normalization in ("batch_norm", "batch_renorm"))
    from dp import data
    from dp.optim import Momentum
    from dp.train import accuracy, fit

    (one,) = [r for r in results if r.run.normalization == "batch_norm" and r.run.batch_size == 8]
    split = data.digits(test_size=0.2, seed=1)
    model = wu2018.network(one.run)
    x, y = split.x_train[:200], split.y_train[:200]
    fit(model, x, y, Momentum(lr=one.run.lr, beta=0.9), steps=one.run.steps, batch_size=8, seed=1,
        reduction="mean", score_rows=100, progress=False)  # fmt: skip
    assert accuracy(model, split.x_test, split.y_test) == one.accuracy
    recalibrate(model, x, batch_size=8, seed=1)
    assert accuracy(model, split.x_test, split.y_test) == one.recalibrated


def test_the_monitored_runs_are_monitored_and_monitoring_changes_none_of_their_results(results):
    watched = [r for r in results if r.monitor is not None]
    assert {(r.run.normalization, r.run.batch_size) for r in watched} == {
        (n, b) for n in ("batch_norm", "group_norm") for b in SIZES
    }
    for result in watched:
        assert result.monitor.steps == list(range(0, result.run.steps + 1, result.run.monitor_every))
        assert result.monitor.snapshots == {}  # the series travel back from the workers, not the CNN's maps
        unmonitored = run_one(dataclasses.replace(result.run, monitor_every=0))
        assert unmonitored.monitor is None
        assert (unmonitored.accuracy, unmonitored.recalibrated) == (result.accuracy, result.recalibrated)
    (group,) = [r for r in watched if r.run.normalization == "group_norm" and r.run.batch_size == 2]
    assert group.monitor.inputs == {"conv1": "gn1", "conv2": "gn2"}


def test_run_one_is_deterministic(results):
    again = run_one(results[3].run)
    assert dataclasses.replace(again, seconds=0.0) == dataclasses.replace(results[3], seconds=0.0)


def test_a_diverged_run_counts_zero_and_the_table_says_so(results):
    broken = [
        dataclasses.replace(r, accuracy=0.0, diverged=True) if r.run.normalization == "none" else r for r in results
    ]
    table = wu2018.accuracy_table(broken)
    assert "| 0.0 (1 diverged) |" in table


def table_rows(markdown):
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_table_has_a_row_per_batch_size_and_a_column_per_normalization(results):
    rows = table_rows(wu2018.accuracy_table(results))
    assert rows[0] == ["batch size", "batch norm", "batch renorm", "group norm", "layer norm", "none"]
    assert [row[0] for row in rows[2:]] == ["2", "8"]
    medians = wu2018.medians(results)
    assert rows[2][3] == f"{100 * medians['group_norm'][2]:.1f}"


def test_report_writes_the_table_and_a_figure(results, tmp_path):
    printed, _ = wu2018.report(results, TINY, tmp_path, "the settings")
    text = (tmp_path / "batch_size.md").read_text()
    assert text.startswith("## Test accuracy (%) against the batch size, median over seeds\n\nthe settings\n\n")
    assert wu2018.accuracy_table(results) in text and wu2018.recalibrated_table(results) in text
    assert "2: 30 (0.3 epochs); 8: 25 (1 epochs)" in text  # batch 2 capped at 30 steps
    assert text.endswith("(batch_size.png)\n") and "the settings" not in printed
    assert (tmp_path / "batch_size.png").read_bytes().startswith(PNG_SIGNATURE)


def test_report_writes_the_monitored_runs_tables_and_their_figure(results, tmp_path):
    _, printed = wu2018.report(results, TINY, tmp_path, "the settings")
    title = "Inside the layers (dp.train.Monitor; seed 1, 500 test images in training mode)"
    names = ["batch norm, batch 2", "batch norm, batch 8", "group norm, batch 2", "group norm, batch 8"]
    assert printed.startswith(f"\n## {title}\n\nA table per run ({', '.join(names)}): ")
    markdown = (tmp_path / "monitor.md").read_text()
    assert markdown.startswith(f"## {title}\n\nthe settings\n\n### batch norm, batch 2\n\n| step | layer |")
    for name, result in zip(names, [r for r in results if r.monitor is not None]):
        assert f"### {name}\n\n{result.monitor.table()}\n\n" in markdown
    assert markdown.endswith(f"![{title}](monitor.png)\n")
    assert (tmp_path / "monitor.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_command_runs_end_to_end(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(wu2018, "QUICK", TINY)
    out = tmp_path / "new"
    argv = ["paper", "wu2018", "--quick", "--data", "digits", "--batch-sizes", "2,8", "--jobs", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("dp paper wu2018: digits, 10 runs, seeds 1-1; 1 epoch(s) over 200 training rows")
    assert "| batch size | batch norm | batch renorm | group norm | layer norm | none |" in printed
    assert re.search(rf"\n10 runs in \d+ s; tables and figures in {re.escape(str(out))}/\n$", printed)
    assert sorted(p.name for p in out.iterdir()) == ["batch_size.md", "batch_size.png", "monitor.md", "monitor.png"]


@pytest.mark.parametrize(
    "value, message",
    [("1", "must be >= 2, got 1"), ("2,0", "must be >= 2, got 0"), ("two", "expected comma-separated whole numbers")],
)
def test_a_batch_size_below_2_is_a_usage_error_before_any_work(capsys, tmp_path, value, message):
    with pytest.raises(SystemExit) as exited:
        main(["paper", "wu2018", "--quick", "--batch-sizes", value, "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "argument --batch-sizes: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_batch_size_above_the_training_rows_is_refused_before_any_work(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(wu2018, "QUICK", TINY)
    argv = ["paper", "wu2018", "--quick", "--data", "digits", "--batch-sizes", "8,201", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "batch sizes must be from 2 to the 200 training rows; got 201" in captured.err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="got 1"):
        plan(TINY, "digits", 200, batch_sizes=(1, 2))


def test_the_options_of_one_study_are_refused_with_the_other(capsys, tmp_path):
    assert main(["paper", "wu2018", "--lrs", "0.5", "--out", str(tmp_path / "o")]) == 1
    assert main(["paper", "ioffe2015", "--batch-sizes", "4", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "--lrs: an option of ioffe2015, not of wu2018" in err
    assert "--batch-sizes: an option of wu2018, not of ioffe2015" in err
