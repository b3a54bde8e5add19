"""`dp paper` (dp.studies.ioffe2015, dp.cli.paper) on a tiny budget: the plan, one run, the sweep, its tables and
figures, the command end to end and its bad input.

The real budget takes minutes; here every run trains 20 or 40 steps on scikit-learn's
8x8 digits (a run takes a few hundredths of a second), which is enough to see the
patterns the tables report: the plain network with N(0, 0.01^2) weights stays at chance
and its watched sigmoid input does not spread, batch norm's learns at once.
"""

import argparse
import dataclasses
import importlib.util
import re

import pytest
from matplotlib.image import imread

import dp.cli.paper
from dp.cli import main
from dp.studies import ioffe2015
from dp.studies.ioffe2015 import DEEP_LAYERS, DEEP_LRS, DEEP_WIDTH, Budget, Result, Run, plan, run_one, sweep

TINY = Budget(figure_steps=40, sweep_steps=20, deep_steps=20, seeds=1, evaluations=4)
LRS = (0.5, 12.5)  # the paper's rate for Figure 1, and five times the plain network's best
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_plan(**changes):
    options = dict(budget=TINY, data="digits", weight_std=0.01, lrs=LRS, first_seed=1)
    return plan(**{**options, **changes})


@pytest.fixture(scope="module")
def runs():
    return tiny_plan()


@pytest.fixture(scope="module")
def results(runs):
    return sweep(runs, jobs=1, progress=False)


def of(results, experiment, batch_norm):
    """The results of one experiment, with or without batch norm."""
    return [r for r in results if r.run.experiment == experiment and r.run.batch_norm == batch_norm]


def measured(result):
    """Everything a run measured, without its wall time."""
    return dataclasses.replace(result, seconds=0.0)


def table_rows(markdown):
    """The cells of a Markdown table's rows, header first, the alignment row left out."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert set(lines[1]) <= set("|-:"), "the second line is the alignment row"
    return [rows[0], *rows[2:]]


# ----- the plan -----


def test_the_plan_has_each_experiment_with_and_without_batch_norm_for_every_seed():
    runs = tiny_plan(budget=dataclasses.replace(TINY, seeds=2))
    figure1 = [r for r in runs if r.experiment == "figure1"]
    assert sorted((r.batch_norm, r.seed) for r in figure1) == [(False, 1), (False, 2), (True, 1), (True, 2)]
    assert {(r.sizes, r.lr, r.steps, r.init, r.init_std, r.eval_every, r.watch) for r in figure1} == {
        ((64, 100, 100, 100, 10), 0.5, 40, "normal", 0.01, 10, True)
    }
    rates = [r for r in runs if r.experiment == "learning_rates"]
    assert sorted({(r.lr, r.batch_norm) for r in rates}) == [(lr, bn) for lr in LRS for bn in (False, True)]
    assert len(rates) == 2 * 2 * len(LRS) and not any(r.watch for r in rates)
    deep = [r for r in runs if r.experiment == "deep"]
    assert len(deep) == 2 * 2 * len(DEEP_LRS)
    assert {(r.sizes, r.init, r.steps) for r in deep} == {((64, *[DEEP_WIDTH] * DEEP_LAYERS, 10), "glorot", 20)}


def test_the_plan_keeps_only_the_chosen_experiments_in_their_order():
    assert {r.experiment for r in tiny_plan(experiments=("deep",))} == {"deep"}
    assert [r.experiment for r in tiny_plan(experiments=("deep", "figure1"))] == [
        r.experiment for r in tiny_plan() if r.experiment != "learning_rates"
    ]


def test_mnist_runs_take_784_pixels_and_the_weight_scale_given():
    runs = tiny_plan(data="mnist", weight_std=0.1, experiments=("figure1",))
    assert {(r.sizes, r.init_std) for r in runs} == {((784, 100, 100, 100, 10), 0.1)}


# ----- one run -----


def test_sweep_returns_one_result_per_run_in_the_order_of_the_runs(runs, results):
    assert [r.run for r in results] == runs
    assert all(r.seconds > 0 and not r.diverged for r in results)


def test_a_watched_run_records_accuracy_and_percentiles_at_every_evaluation(results):
    for result in of(results, "figure1", False) + of(results, "figure1", True):
        assert result.step == [10, 20, 30, 40]
        assert len(result.accuracy) == len(result.percentiles) == 4
        for low, median, high in result.percentiles:
            assert low <= median <= high


def test_an_unwatched_run_is_evaluated_after_its_last_step_only(results):
    for result in [r for r in results if r.run.experiment != "figure1"]:
        assert result.step == [result.run.steps] and len(result.accuracy) == 1
        assert result.percentiles == []


def test_watching_changes_nothing_in_the_training(results):
    # Recording runs the network on the test rows at every evaluation: were it to move a
    # moving average (with batch norm) or draw from a generator, the accuracies would differ.
    for result in of(results, "figure1", False) + of(results, "figure1", True):
        unwatched = run_one(dataclasses.replace(result.run, watch=False))
        assert unwatched.step == result.step
        assert unwatched.accuracy == result.accuracy  # exactly
        assert unwatched.percentiles == []


def test_run_one_is_deterministic(results):
    for result in of(results, "figure1", True) + of(results, "deep", True):
        assert measured(run_one(result.run)) == measured(result)


def test_the_watched_input_spreads_with_batch_norm_and_not_without(results):
    # Figure 1(b, c) at step 40: N(0, 0.01^2) weights give every test row almost the same
    # input to the plain network's sigmoid; batch norm's is standardized across the rows.
    (plain,), (normed,) = of(results, "figure1", False), of(results, "figure1", True)
    low, _, high = plain.percentiles[-1]
    assert high - low < 0.05
    low, median, high = normed.percentiles[-1]
    assert high - low > 1 and abs(median) < 1


def test_a_run_at_chance_is_reported_stuck_and_a_learning_one_is_not(results):
    (plain,), (normed,) = of(results, "figure1", False), of(results, "figure1", True)
    assert plain.stuck and plain.final == pytest.approx(0.1, abs=0.05)  # ten balanced classes
    assert not normed.stuck and normed.final > 0.5


def test_a_run_that_stopped_early_counts_its_last_accuracy_from_then_on():
    run = Run("figure1", "digits", (64, 10, 10), False, 0.5, 30, 1)
    finished = Result(run, step=[10, 20, 30], accuracy=[0.2, 0.4, 0.6])
    stopped = Result(run, step=[10], accuracy=[0.3], diverged=True)
    also_finished = Result(run, step=[10, 20, 30], accuracy=[0.1, 0.5, 0.9])
    assert ioffe2015.median_curve([finished, stopped, also_finished]) == ([10, 20, 30], [0.2, 0.4, 0.6])


# ----- tables and figures -----


def test_the_figure1_table_has_one_row_per_evaluation_with_the_median_accuracies(results):
    header, *rows = table_rows(ioffe2015.figure1_table(ioffe2015.by(results, "figure1")))
    assert header == ["step", "without batch norm", "with batch norm"]
    (plain,), (normed,) = of(results, "figure1", False), of(results, "figure1", True)
    assert rows == [
        [f"{step}", f"{100 * a:.1f}", f"{100 * b:.1f}"]
        for step, a, b in zip(normed.step, plain.accuracy, normed.accuracy)
    ]


@pytest.mark.parametrize("experiment, lrs", [("learning_rates", LRS), ("deep", DEEP_LRS)])
def test_the_sweep_tables_have_one_row_per_learning_rate_with_stuck_counts(results, experiment, lrs):
    header, *rows = table_rows(ioffe2015.sweep_table(ioffe2015.by(results, experiment), "learning rate"))
    assert header == ["learning rate", "without batch norm", "stuck", "with batch norm", "stuck"]
    assert [row[0] for row in rows] == [f"{lr:g}" for lr in sorted(lrs)]
    for row, lr in zip(rows, sorted(lrs)):
        for cells, batch_norm in ((row[1:3], False), (row[3:5], True)):
            (result,) = [r for r in of(results, experiment, batch_norm) if r.run.lr == lr]
            assert cells == [f"{100 * result.final:.1f}", f"{int(result.stuck)}/1"]
    assert all(row[2] == "1/1" for row in rows), "the plain network stays at chance in 20 steps"


def test_report_writes_each_table_and_a_readable_figure(results, tmp_path):
    printed = list(ioffe2015.report(results, TINY, tmp_path, "the header"))
    names = ("figure1", "learning_rates", "deep")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.{ext}" for n in names for ext in ("md", "png"))
    for name, text in zip(names, printed):
        markdown = (tmp_path / f"{name}.md").read_text()
        title, body = text.strip().split("\n\n", 1)
        assert markdown == f"{title}\n\nthe header\n\n{body}\n\n![{title[3:]}]({name}.png)\n"  # links its figure
        assert title.startswith("## ") and "the header" not in text  # the caller prints the settings once
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
        pixels = imread(tmp_path / f"{name}.png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
        assert pixels.std() > 0, "the figure is not blank"


def test_the_sweep_tables_explain_stuck(results, tmp_path):
    for text in list(ioffe2015.report(results, TINY, tmp_path, "the header"))[1:]:
        assert "| stuck |" in text and "stuck: runs whose final test accuracy is within 5 points of chance" in text


def test_the_sigmoid_input_percentiles_are_a_table_too(results):
    figure1 = ioffe2015.by(results, "figure1")
    header, *rows = table_rows(ioffe2015.percentile_table(figure1))
    assert header == ["step", "without: 15th", "50th", "85th", "with: 15th", "50th", "85th"]
    for batch_norm, cells in ((False, slice(1, 4)), (True, slice(4, 7))):
        steps, bands = ioffe2015.median_bands(of(results, "figure1", batch_norm))
        assert [row[0] for row in rows] == [f"{step:,}" for step in steps]
        assert [row[cells] for row in rows] == [[f"{v:.2f}" for v in band] for band in bands]


def test_report_skips_the_experiments_that_did_not_run(results, tmp_path):
    printed = list(ioffe2015.report(ioffe2015.by(results, "deep"), TINY, tmp_path, "the header"))
    assert len(printed) == 1 and f"{DEEP_LAYERS} hidden sigmoid layers" in printed[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.md", "deep.png"]


# ----- the command -----


def test_the_command_prints_and_writes_every_table(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(dp.cli.paper, "QUICK", TINY)  # --quick, smaller still
    out = tmp_path / "new" / "folder"
    argv = ["paper", "--quick", "--data", "digits", "--lrs", "0.5,12.5", "--jobs", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("dp paper: digits, 12 runs, seeds 1-1; SGD on the mean loss of 60 rows")
    assert printed.count("dp paper: digits, 12 runs") == 1, "the settings line, once"
    for name in ("figure1", "learning_rates", "deep"):
        title, _, body = (out / f"{name}.md").read_text().split("\n\n", 2)
        assert f"{title}\n\n{body.rsplit(chr(10) * 2, 1)[0]}" in printed  # without the settings and the link
        assert (out / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    assert re.search(rf"\n12 runs in \d+ s; tables and figures in {re.escape(str(out))}/\n$", printed)


def test_the_command_runs_only_the_chosen_experiments_and_seeds(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(dp.cli.paper, "QUICK", dataclasses.replace(TINY, seeds=3))
    argv = ["paper", "--quick", "--data", "digits", "--experiments", "figure1", "--seeds", "1", "--seed", "4"]
    assert main([*argv, "--jobs", "1", "--out", str(tmp_path)]) == 0
    assert "2 runs, seeds 4-4;" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure1.md", "figure1.png"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--data", "cifar", "invalid choice: 'cifar'"),
        ("--lrs", "0", "learning rates must be finite and > 0"),
        ("--lrs", "-1", "learning rates must be finite and > 0"),
        ("--lrs", "0.5,-2.5", "learning rates must be finite and > 0"),
        ("--lrs", "inf", "learning rates must be finite and > 0"),
        ("--lrs", "fast", "expected comma-separated numbers"),
        ("--lrs", "0.5,,1", "expected comma-separated numbers"),
        ("--jobs", "0", "must be -1 (all cores) or a number of workers >= 1"),
        ("--jobs", "-2", "must be -1 (all cores) or a number of workers >= 1"),
        ("--experiments", "figure2", "unknown experiment figure2; choose from figure1, learning_rates, deep"),
        ("--experiments", "figure1,deeper", "unknown experiment deeper"),
        ("--seeds", "0", "must be > 0"),
        ("--weight-std", "0", "must be > 0"),
    ],
)
def test_bad_input_is_a_usage_error_before_any_work(capsys, tmp_path, option, value, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        main(["paper", "--quick", option, value, "--out", str(out)])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"argument {option}: " in captured.err and message in captured.err
    assert not out.exists()


def test_an_out_that_is_a_file_is_a_usage_error_and_the_file_is_kept(capsys, tmp_path):
    taken = tmp_path / "results.md"
    taken.write_text("kept")
    with pytest.raises(SystemExit) as exited:
        main(["paper", "--quick", "--out", str(taken)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --out: cannot write" in err and "is not a folder" in err
    assert taken.read_text() == "kept"


def test_without_mlxtend_the_command_names_the_extra_to_install_before_any_work(capsys, monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a)
    )
    out = tmp_path / "out"
    assert main(["paper", "--quick", "--experiments", "figure1", "--jobs", "1", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "mlxtend, which is not installed" in captured.err and 'pip install ".[paper]"' in captured.err
    assert "train extra" not in captured.err, "one hint, the right one"
    assert not out.exists()


# ----- beyond one machine -----


def test_a_sweep_on_a_dask_cluster_gets_exactly_the_local_results(runs, results):
    # The runs go through joblib's dask backend to worker processes, as they would to a
    # cluster's machines (see the dp.studies.ioffe2015 docstring): each is a Run of plain values,
    # pickled there, and its Result pickled back, in the order of the runs.
    distributed = pytest.importorskip("dask.distributed")  # the test extra installs it
    from joblib import parallel_config

    # Two workers: on a cluster of one thread, joblib's n_jobs=-1 means 1, and joblib then
    # runs everything in the calling process, never asking the cluster. Processes, each with
    # one thread, as on real machines: threadpoolctl's BLAS limit holds for a whole process.
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as client, parallel_config(backend="dask"):
        with distributed.get_task_stream(client) as tasks:
            remote = sweep(runs, jobs=-1, progress=False)
    assert tasks.data, "the runs went to the cluster's workers"
    assert [measured(r) for r in remote] == [measured(r) for r in results]  # accuracies and percentiles, exactly


# ----- the same comparison with a CNN (--experiments cnn) -----


@pytest.fixture(scope="module")
def cnn_results():
    budget = dataclasses.replace(TINY, cnn_steps=40)
    return sweep(tiny_plan(budget=budget, experiments=("cnn",)), jobs=1, progress=False)


def test_the_cnn_experiment_runs_only_on_request_with_and_without_batch_norm():
    assert "cnn" not in {r.experiment for r in tiny_plan()}
    runs = tiny_plan(budget=dataclasses.replace(TINY, seeds=2, cnn_steps=40), experiments=("cnn",))
    assert sorted((r.batch_norm, r.seed) for r in runs) == [(False, 1), (False, 2), (True, 1), (True, 2)]
    assert {(r.model, r.lr, r.steps, r.eval_every, r.watch) for r in runs} == {("cnn", ioffe2015.CNN_LR, 40, 2, False)}


def test_a_cnn_run_trains_dp_cnn_and_is_evaluated_at_every_twentieth_of_its_steps(cnn_results):
    for result in cnn_results:
        assert result.step == list(range(2, 41, 2)) and len(result.accuracy) == 20 and not result.percentiles
    assert max(r.final for r in cnn_results if r.run.batch_norm) > 0.5  # 40 steps: well above chance (0.1)


def test_the_cnn_report_is_a_table_and_a_figure_of_the_accuracy(cnn_results, tmp_path):
    (printed,) = ioffe2015.report(cnn_results, TINY, tmp_path, "the header")
    rows = table_rows(printed)
    assert rows[0] == ["step", "without batch norm", "with batch norm"] and len(rows) == 1 + 20
    assert (tmp_path / "cnn.md").read_text().count("| 40 |") == 1
    assert (tmp_path / "cnn.png").read_bytes().startswith(PNG_SIGNATURE)
    assert imread(tmp_path / "cnn.png").shape[1] > 500


# ----- dp paper STUDY -----


def test_ioffe2015_is_the_default_study_and_may_be_named(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(dp.cli.paper, "QUICK", TINY)
    outputs = []
    for study in ([], ["ioffe2015"]):
        out = tmp_path / f"out{len(study)}"
        argv = ["paper", *study, "--quick", "--data", "digits", "--experiments", "figure1", "--jobs", "1"]
        assert main([*argv, "--out", str(out)]) == 0
        table = capsys.readouterr().out.split("\n\n## ")[1]
        outputs.append(table.rsplit("\n\n", 1)[0])  # the tables, without the settings, the time and the folder
    assert outputs[0] == outputs[1]


def test_an_unknown_study_is_a_usage_error_that_lists_the_studies(capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(["paper", "hinton2012", "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    assert "invalid choice: 'hinton2012' (choose from 'ioffe2015'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_option_of_one_study_is_refused_with_another(monkeypatch):
    """The dispatcher refuses it before the study runs (called directly: the parser's choices
    are fixed when the command is built)."""
    monkeypatch.setitem(dp.cli.paper.STUDIES, "other", ("another study", lambda args: pytest.fail("ran the study")))
    given = argparse.Namespace(study="other", weight_std=0.1, lrs=None, experiments=None)
    with pytest.raises(ValueError, match="--weight-std: an option of ioffe2015, not of other"):
        dp.cli.paper._paper(given)
