"""The `dp` command, run in-process through `dp.cli.main` (and twice as a real process):
train, its report, --save then evaluate, --plots, experiment, errors and exit codes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dp
from dp.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUIET_LINE = re.compile(r"test accuracy \d{1,3}\.\d{2} %")  # as the full report words it


def run(capsys, *argv):
    """Run the command; return (exit status, standard output, standard error)."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def subprocess_environment():
    """The environment with dp's source first on the path: works installed or not."""
    source = str(Path(dp.__file__).resolve().parents[1])
    paths = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_train_quiet_prints_only_the_test_accuracy(capsys):
    status, out, err = run(capsys, "train", "--quiet", "--steps", "10")
    assert status == 0 and err == ""
    assert QUIET_LINE.fullmatch(out.strip())


def test_train_reports_accuracy_confusion_matrix_loss_and_time(capsys):
    status, out, _ = run(capsys, "train", "--steps", "30", "--seed", "2")
    assert status == 0
    assert "network 30-20-10-1, batch norm, tanh" in out
    assert "Adam lr 0.003 (cosine), 30 steps of 50 rows, seed 2" in out
    correct, rows = map(int, re.search(r"test accuracy +[\d.]+ %  \((\d+) of (\d+) rows\)", out).groups())
    assert rows == 113
    matrix = re.search(
        r"confusion matrix.*\n.*malignant +benign\n +malignant +(\d+) +(\d+)\n +benign +(\d+) +(\d+)", out
    )
    true_malignant, false_benign, false_malignant, true_benign = map(int, matrix.groups())
    assert true_malignant + false_benign + false_malignant + true_benign == rows
    assert true_malignant + true_benign == correct
    assert re.search(r"final loss +\d\.\d{4} per row .*; \d\.\d{4} on the test rows", out)
    assert re.search(r"time +\d+\.\d\d s in all \(imports included\), \d+\.\d\d s training", out)


def test_train_without_batch_norm_says_so(capsys):
    status, out, _ = run(capsys, "train", "--steps", "10", "--no-batch-norm", "--optimizer", "sgd", "--lr", "0.01")
    assert status == 0
    assert "no batch norm" in out and "SGD lr 0.01" in out


def test_a_saved_model_evaluates_to_the_same_accuracy(capsys, tmp_path):
    path = tmp_path / "model.npz"
    status, trained, _ = run(capsys, "train", "--quiet", "--steps", "40", "--seed", "3", "--save", str(path))
    assert status == 0 and path.is_file()
    status, evaluated, _ = run(capsys, "evaluate", str(path), "--quiet")
    assert status == 0 and evaluated == trained  # on the same test rows: the split's seed is in the checkpoint
    status, report, _ = run(capsys, "evaluate", str(path))
    assert status == 0 and "the split of seed 3" in report and "confusion matrix" in report


def test_evaluating_a_corrupt_file_fails_with_a_clear_message(capsys, tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    status, out, err = run(capsys, "evaluate", str(path))
    assert status == 1 and out == ""
    assert err.startswith("dp: error: ") and "is not a dp checkpoint, or it is truncated or corrupt" in err


def test_evaluating_a_missing_file_fails_with_a_clear_message(capsys, tmp_path):
    status, _, err = run(capsys, "evaluate", str(tmp_path / "missing.npz"))
    assert status == 1 and "dp: error: " in err and "missing.npz" in err


def test_a_diverging_run_fails_with_a_clear_message(capsys):
    status, out, err = run(capsys, "train", "--quiet", "--optimizer", "sgd", "--lr", "1e200", "--steps", "5")
    assert status == 1 and out == ""
    assert err.startswith("dp: error: training diverged at step 2")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fly"],
        ["train", "--steps", "0"],
        ["train", "--lr", "-1"],
        ["train", "--optimizer", "newton"],
        ["train", "--schedule", "linear"],
        ["evaluate"],
        ["experiment", "--lrs", "0.1,fast"],
        ["experiment", "--lrs", "0.1,-1"],
        ["experiment", "--seeds", "0"],
        ["experiment", "--target", "150"],  # neither a fraction nor a percentage
        ["experiment", "--target", "0"],
        ["experiment", "--jobs", "0"],  # refused before the header is printed, not by joblib after
        ["train", "--batch-size", "1"],  # a batch of one row cannot be batch-normalized
        ["train", "--seed", "-1"],
        ["train", "--save", "/"],  # a folder, not a file
        ["train", "--lr", "nan"],
        ["train", "--lr", "inf"],
        ["evaluate", "model.npz", "--seed", "-1"],
        ["train", "--plots", "/dev/null/figures"],  # /dev/null is not a folder
    ],
)
def test_bad_options_exit_with_status_2_and_a_usage_message(capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "usage: dp" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--save", ""], "argument --save: expected a path, got an empty one"),  # not "don't save"
        (["train", "--plots", " "], "argument --plots: expected a path, got an empty one"),
        (["paper", "--out", ""], "argument --out: expected a path, got an empty one"),
        (["experiment", "--plot", "out.txt"], "argument --plot: cannot write out.txt: the file name must end in .png"),
    ],
)
def test_an_empty_or_wrong_output_path_is_a_usage_error_before_any_work(capsys, monkeypatch, argv, message):
    for work in ("dp.cli.command.fit_network", "dp.cli.experiment.sweep", "dp.cli.paper.sweep"):
        monkeypatch.setattr(work, lambda *a, **k: pytest.fail("worked before checking the output path"))
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where even root cannot write")
def test_a_plots_folder_that_cannot_be_created_is_refused_before_training(capsys, monkeypatch):
    monkeypatch.setattr("dp.cli.command.fit_network", lambda *a, **k: pytest.fail("trained before checking --plots"))
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--plots", "/proc/x"])
    assert stopped.value.code == 2 and "argument --plots: cannot write /proc/x" in capsys.readouterr().err


def test_a_folder_without_write_permission_is_refused_before_training(capsys, tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("dp.cli.arguments.tempfile.TemporaryFile", refused)  # tried, as root's bits say yes
    monkeypatch.setattr("dp.cli.command.fit_network", lambda *a, **k: pytest.fail("trained before checking"))
    for option, value in (("--save", tmp_path / "m.npz"), ("--plots", tmp_path / "figures" / "new")):
        with pytest.raises(SystemExit) as stopped:
            main(["train", option, str(value)])
        assert stopped.value.code == 2
        assert f"cannot write {value}: Permission denied ({tmp_path})" in capsys.readouterr().err


def test_missing_folders_are_created_for_every_output_option_and_each_help_says_so(capsys, tmp_path):
    path = tmp_path / "new" / "folder" / "model.npz"
    assert main(["train", "--steps", "3", "--quiet", "--save", str(path)]) == 0
    assert path.is_file()
    for command, option in (("train", "--save"), ("train", "--plots"), ("experiment", "--plot"), ("paper", "--out")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert re.search(rf"{option} \S+ [^-]*missing folders are created", help_text), (command, option)


def _saved_without_metadata(path, seed, **mlp_options):
    """A model trained on the split of ``seed`` and saved through the API, which records no split."""
    model = dp.MLP(seed=seed, **mlp_options)
    if mlp_options.get("sizes", (30,))[0] == 30:
        split = dp.data.breast_cancer(seed=seed)
        dp.train.fit(model, split.x_train, split.y_train, dp.optim.Adam(lr=0.003), steps=20, progress=False)
    return dp.checkpoint.save(model, path)


def test_evaluate_asks_for_the_seed_when_the_checkpoint_does_not_record_its_split(capsys, tmp_path):
    path = _saved_without_metadata(tmp_path / "model.npz", seed=5)
    status, out, err = run(capsys, "evaluate", str(path))
    assert status == 1 and out == ""  # never scored on the default split, which shares rows with its training
    assert "does not record the split" in err and "--seed" in err
    status, out, _ = run(capsys, "evaluate", str(path), "--seed", "5")
    assert status == 0 and "the split of seed 5" in out


def test_evaluate_refuses_a_seed_other_than_the_recorded_one(capsys, tmp_path):
    path = tmp_path / "model.npz"
    assert run(capsys, "train", "--quiet", "--steps", "10", "--seed", "3", "--save", str(path))[0] == 0
    assert run(capsys, "evaluate", str(path), "--quiet", "--seed", "3")[0] == 0
    status, _, err = run(capsys, "evaluate", str(path), "--seed", "4")
    assert status == 1 and "trained on the split of seed 3" in err


@pytest.mark.parametrize(
    "mlp_options, message",
    [
        ({"sizes": (30, 8, 3)}, "a 30-8-3 network; dp evaluate scores classifiers of the breast cancer data"),
        ({"sizes": (4, 8, 1)}, "a 4-8-1 network"),
    ],
)
def test_evaluate_refuses_networks_that_are_not_breast_cancer_classifiers(capsys, tmp_path, mlp_options, message):
    path = _saved_without_metadata(tmp_path / "model.npz", seed=0, **mlp_options)
    status, _, err = run(capsys, "evaluate", str(path), "--seed", "0")
    assert status == 1 and message in err


def test_evaluate_refuses_an_untrained_checkpoint(capsys, tmp_path):
    path = dp.checkpoint.save(dp.MLP(seed=0), tmp_path / "untrained.npz")
    status, _, err = run(capsys, "evaluate", str(path), "--seed", "0")
    assert status == 1 and "saved before training: batch norm 'bn1'" in err


def test_plots_writes_the_figures(capsys, tmp_path):
    directory = tmp_path / "figures"
    status, out, _ = run(capsys, "train", "--steps", "20", "--plots", str(directory))
    assert status == 0
    written = sorted(directory.iterdir())
    assert [p.name for p in written] == ["batch_norm_histograms.png", "training_curves.png"]
    for path in written:
        assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 10_000
        assert f"wrote {path}" in out


def test_the_figures_say_they_were_trained_on_another_split_than_the_reported_model():
    from dp.cli import command as cli
    from dp.studies import reference

    settings = cli._figure_settings(reference.Recipe(), reference.split_with_validation(0))
    assert settings.split("\n") == [
        "adam lr 0.003 (cosine), 300 steps of 50 rows, seed 0",
        "networks of their own, trained on 370 rows of seed 0's split with 86 held out for validation "
        "(the model dp train reports trains on all 456)",
    ]


def test_experiment_prints_a_table_and_writes_the_figure(capsys, tmp_path):
    figure = tmp_path / "sweep.png"
    argv = ["experiment", "--lrs", "0.01,0.1", "--seeds", "2", "--steps", "20", "--jobs", "1", "--plot", str(figure)]
    status, out, _ = run(capsys, *argv)
    assert status == 0
    rows = [line for line in out.splitlines() if re.match(r"\| [\d.]+ \|", line)]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 0.01", "yes"],
        ["| 0.01", "no"],
        ["| 0.1", "yes"],
        ["| 0.1", "no"],
    ]
    assert all(row.endswith("| 0/2 |") for row in rows)  # nothing diverged
    assert "2 learning rates x with/without batch norm x 2 seeds" in out
    assert figure.read_bytes().startswith(PNG_SIGNATURE)


def test_python_m_dp_train_runs_as_a_process():
    result = subprocess.run(
        [sys.executable, "-m", "dp", "train", "--quiet"],
        capture_output=True,
        text=True,
        env=subprocess_environment(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert QUIET_LINE.fullmatch(result.stdout.strip())


def test_import_and_train_load_no_plotting_parallel_or_sklearn_modules():
    script = (
        "import sys; from dp.cli import main; main(['train', '--quiet', '--steps', '10']); "
        "print(sorted(m for m in ('matplotlib', 'joblib', 'sklearn', 'tqdm') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_environment(), timeout=120
    )
    assert result.returncode == 0, result.stderr
    accuracy, modules = result.stdout.strip().splitlines()
    assert QUIET_LINE.fullmatch(accuracy)
    assert modules == "[]"


@pytest.mark.parametrize(
    "error",
    [
        ImportError('the data comes with scikit-learn; from a clone of dp, install it with: pip install ".[train]"'),
        ImportError("No module named 'tqdm'"),
    ],
)
def test_a_missing_package_is_one_line_that_says_once_how_to_install_it(monkeypatch, capsys, error):
    def missing(*args, **kwargs):
        raise error

    monkeypatch.setattr(dp.data, "breast_cancer", missing)
    assert main(["train", "--quiet"]) == 1
    message = capsys.readouterr().err
    assert message.count('pip install ".[train]"') == 1 and message.count("\n") == 1
    assert "dp[train]" not in message


def test_the_batch_size_error_names_the_flag_not_the_python_argument(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--batch-size", "1"])
    err = capsys.readouterr().err
    assert "argument --batch-size: must be >= 2, got 1" in err and "batch_size" not in err


def test_the_target_may_be_a_percentage_as_the_table_prints_it():
    from dp.cli.experiment import _fraction

    assert _fraction("95") == pytest.approx(0.95) and _fraction("0.95") == 0.95


def test_dp_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out.strip() == f"dp {dp.__version__}"


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dp.data, "breast_cancer", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "dp: interrupted\n"


def test_ctrl_c_in_a_real_process_leaves_no_checkpoint(tmp_path):
    import signal
    import time

    target = tmp_path / "model.npz"
    process = subprocess.Popen(
        [sys.executable, "-m", "dp", "train", "--steps", "200000", "--quiet", "--save", str(target)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)  # well into training
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err == "dp: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # no checkpoint and no temporary file


def test_a_text_file_is_not_a_checkpoint_and_no_pickle_is_suggested(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    assert main(["evaluate", str(path), "--seed", "0"]) == 1
    err = capsys.readouterr().err
    assert "is not a dp checkpoint" in err and "pickle" not in err and err.count("\n") == 1


def test_evaluate_names_the_whole_network_as_train_does(tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert main(["train", "--steps", "3", "--quiet", "--save", str(path)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(path)]) == 0
    assert "network 30-20-10-1, batch norm, tanh" in capsys.readouterr().out


def test_an_untrained_checkpoint_names_its_layers_in_good_grammar(tmp_path, capsys):
    path = tmp_path / "m.npz"
    dp.checkpoint.save(dp.MLP(), path, metadata={"data": {"name": "breast_cancer", "test_size": 0.2, "seed": 0}})
    assert main(["evaluate", str(path)]) == 1
    assert "batch norm 'bn1' and batch norm 'bn2' have no moving averages yet" in capsys.readouterr().err


# ----- the convolutional networks: dp train --data digits --model cnn -----


def test_train_a_cnn_on_the_digits_quietly_prints_only_the_test_accuracy(capsys):
    status, out, err = run(capsys, "train", "--data", "digits", "--model", "cnn", "--steps", "20", "--quiet")
    assert status == 0 and err == ""
    assert QUIET_LINE.fullmatch(out.strip())


def test_train_on_the_digits_reports_the_cnn_and_a_10_by_10_confusion_matrix(capsys):
    status, out, _ = run(capsys, "train", "--data", "digits", "--steps", "20", "--seed", "1")  # a CNN by default
    assert status == 0
    assert out.splitlines()[:3] == [
        "dp train: network CNN 1x8x8, conv 8-16, hidden 64, 10 classes, batch norm, relu",
        "  Adam lr 0.01 (cosine), 20 steps of 64 rows, seed 1",
        "  digits: 1438 training rows, 359 test rows",
    ]
    correct, rows = map(int, re.search(r"test accuracy +[\d.]+ %  \((\d+) of (\d+) rows\)", out).groups())
    assert rows == 359
    lines = out.splitlines()
    header = lines.index("confusion matrix (rows: true class, columns: predicted)")
    assert lines[header + 1].split() == [str(digit) for digit in range(10)]
    matrix = np.array([[int(count) for count in line.split()[1:]] for line in lines[header + 2 : header + 12]])
    assert [line.split()[0] for line in lines[header + 2 : header + 12]] == [str(digit) for digit in range(10)]
    assert matrix.shape == (10, 10) and matrix.sum() == rows and np.trace(matrix) == correct
    assert re.search(r"final loss +\d\.\d{4} per row .*; \d\.\d{4} on the test rows", lines[header + 12])


def test_train_a_cnn_without_batch_norm_says_so(capsys):
    status, out, _ = run(capsys, "train", "--data", "digits", "--steps", "5", "--no-batch-norm")
    assert status == 0 and "network CNN 1x8x8, conv 8-16, hidden 64, 10 classes, no batch norm, relu" in out


def test_a_saved_cnn_evaluates_to_the_same_accuracy_on_the_digits_it_records(capsys, tmp_path):
    path = tmp_path / "cnn.npz"
    argv = ["train", "--data", "digits", "--model", "cnn", "--steps", "20", "--seed", "3", "--quiet", "--save"]
    status, trained, _ = run(capsys, *argv, str(path))
    assert status == 0 and path.is_file()
    assert dp.checkpoint.load_metadata(path) == {"data": {"name": "digits", "test_size": 0.2, "seed": 3}}
    status, evaluated, _ = run(capsys, "evaluate", str(path), "--quiet")
    assert status == 0 and evaluated == trained
    status, report, _ = run(capsys, "evaluate", str(path))
    assert status == 0 and report.splitlines()[:2] == [
        f"dp evaluate: {path}: network CNN 1x8x8, conv 8-16, hidden 64, 10 classes, batch norm, relu",
        "  digits, the split of seed 3: 359 test rows",
    ]
    accuracy = re.compile(r"test accuracy +(\d+\.\d\d) %")
    assert accuracy.search(report).group(1) == accuracy.search(trained).group(1)  # the full report's too


def test_evaluate_scores_a_cnn_saved_without_metadata_on_the_data_of_its_image_size(capsys, tmp_path):
    model = dp.CNN(image=(1, 8, 8), channels=(2,))
    model.loss(np.random.default_rng(0).random((4, 64)), [0, 1, 2, 3])  # trained on one batch
    path = dp.checkpoint.save(model, tmp_path / "cnn.npz")  # no metadata: 8 x 8 images are the digits
    status, out, _ = run(capsys, "evaluate", str(path), "--seed", "0")
    assert status == 0 and "  digits, the split of seed 0: " in out


def test_evaluate_refuses_a_cnn_of_images_dp_has_no_data_for(capsys, tmp_path):
    model = dp.CNN(image=(1, 6, 6), channels=(2,))
    model.loss(np.random.default_rng(0).random((4, 36)), [0, 1, 2, 3])
    path = dp.checkpoint.save(model, tmp_path / "cnn.npz")  # no metadata, no data set of 6 x 6 images
    status, _, err = run(capsys, "evaluate", str(path), "--seed", "0")
    assert status == 1 and err.count("\n") == 1
    assert "holds a CNN 1x6x6, conv 2, 10 classes network; dp evaluate scores classifiers of the breast cancer" in err


@pytest.mark.parametrize(
    "data, model",
    [("breast_cancer", "cnn"), ("mnist", "mlp"), ("digits", "mlp")],
)
def test_a_network_dp_train_does_not_offer_for_the_data_is_one_line_that_names_what_it_offers(
    capsys, monkeypatch, data, model
):
    monkeypatch.setattr("dp.cli.command.workload_data", lambda *a, **k: pytest.fail("loaded the data first"))
    status, out, err = run(capsys, "train", "--data", data, "--model", model, "--steps", "5")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"dp: error: dp train has no network for --data {data} --model {model}; it offers ")
    assert "--data breast_cancer --model mlp, --data mnist --model cnn, --data digits --model cnn" in err


@pytest.mark.parametrize("data", ["digits", "mnist"])
def test_plots_of_a_cnn_are_refused_before_training_or_writing(capsys, monkeypatch, tmp_path, data):
    monkeypatch.setattr("dp.cli.command.fit_network", lambda *a, **k: pytest.fail("trained before refusing --plots"))
    figures = tmp_path / "figures"
    status, out, err = run(capsys, "train", "--data", data, "--plots", str(figures))
    assert status == 1 and out == "" and not figures.exists()
    assert err == "dp: error: --plots draws the breast-cancer network's figures; the CNN's are in docs/cnn.md\n"


# ----- crafted checkpoints, start-up, workers: one line, never a traceback -----


def _saved_with_metadata(path, metadata):
    model = dp.MLP(seed=0)
    split = dp.data.breast_cancer(seed=0)
    dp.train.fit(model, split.x_train, split.y_train, dp.optim.Adam(lr=0.003), steps=5, progress=False)
    return dp.checkpoint.save(model, path, metadata=metadata)


@pytest.mark.parametrize(
    "data, message",
    [
        ("breast_cancer", "records its data as 'breast_cancer', not as a dict"),
        ({"name": "breast_cancer", "seed": "0"}, "the seed must be a whole number, not str"),
        ({"name": "breast_cancer", "seed": 0.5}, "the seed must be a whole number, not float"),
        ({"name": "breast_cancer", "seed": [0, 1]}, "the seed must be a whole number, not list"),
        ({"name": "breast_cancer", "seed": -1}, "the seed must be a whole number in [0, inf)"),
        ({"name": "breast_cancer", "seed": 0, "test_size": "0.2"}, "the test_size must be a real number"),
        ({"name": "breast_cancer", "seed": 0, "test_size": 1.5}, "the test_size must be a finite number in (0, 1)"),
        ({"name": ["mnist"], "seed": 0}, "was trained on ['mnist']; dp evaluate knows breast_cancer, mnist, digits"),
    ],
)
def test_evaluate_refuses_crafted_split_metadata_in_one_line(capsys, tmp_path, data, message):
    path = _saved_with_metadata(tmp_path / "m.npz", {"data": data})
    status, out, err = run(capsys, "evaluate", str(path))
    assert status == 1 and out == ""
    assert err.startswith("dp: error: ") and err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    "entry",
    [
        {"__dp_metadata__": np.array("[" * 100_000 + "]" * 100_000)},
        {"__dp_model__": np.array(json.dumps({**dp.MLP().config, "sizes": [30, 10**6, 10**6, 1]}))},
    ],
    ids=["nested JSON", "huge architecture"],
)
def test_evaluate_reports_a_crafted_checkpoint_in_one_line(capsys, tmp_path, entry):
    path = _saved_with_metadata(tmp_path / "m.npz", {})
    with np.load(path) as npz:
        arrays = {**{k: npz[k] for k in npz.files}, **entry}
    np.savez(path, **arrays)
    status, out, err = run(capsys, "evaluate", str(path), "--seed", "0")
    assert status == 1 and out == ""
    assert err.startswith("dp: error: ") and err.count("\n") == 1


def test_ctrl_c_while_the_parser_is_built_is_one_line_and_130(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("dp.cli.command._parser", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "dp: interrupted\n"


def test_ctrl_c_while_the_command_imports_is_one_line_and_130(tmp_path):
    # A Ctrl-C arriving at a random moment of a 0.3 s start-up cannot be timed in a test: an
    # import hook raises it where it lands most often, while `import dp` loads the layers.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'dp.nn':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
    )
    env = subprocess_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    script = Path(sys.executable).with_name("dp")
    commands = [[sys.executable, "-m", "dp", "train"]] + ([[str(script), "train"]] if script.exists() else [])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert (result.returncode, result.stderr) == (130, "dp: interrupted\n"), command
    library = subprocess.run([sys.executable, "-c", "import dp"], capture_output=True, text=True, env=env, timeout=60)
    assert "KeyboardInterrupt" in library.stderr, "a program importing dp gets the interrupt, as from any import"


def test_train_prints_its_header_before_training_so_ctrl_c_leaves_it(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dp.cli.command.fit_network", interrupted)
    status, out, err = run(capsys, "train")
    assert status == 130 and err == "dp: interrupted\n"
    assert out.splitlines() == [
        "dp train: network 30-20-10-1, batch norm, tanh",
        "  Adam lr 0.003 (cosine), 300 steps of 50 rows, seed 0",
        "  breast cancer: 456 training rows, 113 test rows",
    ]


def test_train_help_describes_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    words = re.sub(r"\s+", "", capsys.readouterr().out)  # argparse wraps lines at spaces and hyphens
    assert "Trainthereferencenetwork(30-20-10-1,batchnorm,tanh)onthebreast-cancerdata" in words


def test_a_dead_parallel_worker_is_one_line_not_a_traceback(monkeypatch, capsys, tmp_path):
    from joblib import Parallel, delayed

    def dying_sweep(*args, **kwargs):  # a worker killed (out of memory, kill -9) while it runs
        return Parallel(n_jobs=2)(delayed(os._exit)(1) for _ in range(2))

    monkeypatch.setattr("dp.cli.experiment.sweep", dying_sweep)
    argv = ["experiment", "--lrs", "0.1", "--seeds", "1", "--steps", "2", "--plot", str(tmp_path / "x.png")]
    status, _, err = run(capsys, *argv)
    assert status == 1
    assert re.fullmatch(r"dp: error: a parallel worker stopped \(exit codes \{EXIT\(1\).*\}\): .*--jobs\n", err)
