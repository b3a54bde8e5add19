"""The benchmarks run and are right; their timings are never checked here.

benchmarks/step.py: every reference, and dp's fused row, computes dp's loss, gradients
and moving averages. The benchmark is only meaningful if its implementations do the
same work; this runs its correctness check on the seed network, on a reduced
wide network and on the CNN with small batches, in float64 and float32, and makes
sure it fails when a floor is off. PyTorch and autograd are optional: their
cases are skipped when they are not installed. Its report's columns are where
benchmarks/against.py reads them.

benchmarks/accuracy.py: its table counts rows and splits right, and it runs.

benchmarks/monitor.py: it times fit with and without a monitor and writes its command first.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import dp

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_benchmark(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


step = _load_benchmark("step")
accuracy = _load_benchmark("accuracy")
overhead = _load_benchmark("overhead")
startup = _load_benchmark("startup")
monitor = _load_benchmark("monitor")

WORKLOADS = [
    step.WORKLOADS["seed"],
    step.Workload("seed-f32", (30, 20, 10, 1), 50, np.float32),
    step.Workload("wide-small-f64", (784, 64, 64, 10), 128, np.float64),
    step.Workload("wide-small-f32", (784, 64, 64, 10), 128, np.float32),
    step.Workload("paper-small", (784, 32, 32, 32, 10), 60, activation="sigmoid"),
    step.Workload("paper-small-f32", (784, 32, 32, 32, 10), 60, np.float32, activation="sigmoid"),
]
OPTIONAL = {"torch": "torch", "autograd": "autograd"}  # implementation -> module it needs
CNN_WORKLOADS = [
    step.CNNWorkload("cnn-small-f64", 8),
    step.CNNWorkload("cnn-small-f32", 8, np.float32),
    # odd sizes: 3 input channels, a 5 x 5 kernel, a 10-wide image whose second pool drops a column
    step.CNNWorkload("cnn-odd-f64", 4, image=(3, 12, 10), channels=(4, 6), kernel=5),
]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
@pytest.mark.parametrize("implementation", ["dp", "dp fused", "floor", "torch", "autograd"])
def test_reference_agrees_with_dp_after_one_step(workload, implementation):
    if implementation in OPTIONAL:
        pytest.importorskip(OPTIONAL[implementation])
    step.check_gradients(workload, [implementation])


@pytest.mark.parametrize("workload", CNN_WORKLOADS, ids=lambda w: w.name)
@pytest.mark.parametrize("implementation", ["dp", "floor", "floor nhwc", "torch"])
def test_cnn_reference_agrees_with_dp_after_one_step(workload, implementation):
    if implementation in OPTIONAL:
        pytest.importorskip(OPTIONAL[implementation])
    step.check_gradients(workload, [implementation])


@pytest.mark.parametrize("floor", [step.ConvFloorStep, step.ChannelsLastFloorStep], ids=lambda f: f.name)
@pytest.mark.parametrize(
    "method, key", [("loss_and_gradients", "weight_conv1"), ("moving_averages", "avg_variance_bn2")]
)
def test_a_cnn_floor_that_is_off_is_caught_by_the_check(monkeypatch, floor, method, key):
    """The first convolution's weight gradient (which every layer's backward pass reaches) or
    the second batch norm's moving variance, off by 1e-6 relative, fails the check."""
    original = getattr(floor, method)

    def off_by_a_little(self, *batch):
        values = original(self, *batch)
        arrays = values[1] if method == "loss_and_gradients" else values
        arrays[key] = arrays[key] * (1 + 1e-6)
        return values

    monkeypatch.setattr(floor, method, off_by_a_little)
    with pytest.raises(step.GradientMismatch, match=f"{floor.name} vs dp, {key}"):
        step.check_gradients(CNN_WORKLOADS[0], [floor.name])


@pytest.mark.parametrize("name", ["floor", "floor nhwc"])
def test_the_cnn_floors_steps_move_the_parameters_as_dps_graph_does(name):
    workload = CNN_WORKLOADS[0]
    x, y = workload.data()
    initial = step.model_for(workload).get_param()
    floor, graph = workload.implementations[name](workload, initial), step.DpGraphStep(workload, initial)
    for _ in range(3):
        floor.step(floor.prepare(x, y))
        graph.step(graph.prepare(x, y))
    for key, value in graph.model.params.items():
        if not key.startswith("batches_"):  # the floors do not count batches
            np.testing.assert_allclose(floor.params[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


def test_a_wrong_gradient_is_reported_with_its_name(monkeypatch):
    """The check must be able to fail: a floor whose beta gradient is off is caught."""
    original = step.FloorStep.loss_and_gradients

    def off_by_a_little(self, batch):
        loss, grads = original(self, batch)
        grads["beta_bn1"] = grads["beta_bn1"] * (1 + 1e-6)
        return loss, grads

    monkeypatch.setattr(step.FloorStep, "loss_and_gradients", off_by_a_little)
    with pytest.raises(step.GradientMismatch, match="floor vs dp, beta_bn1"):
        step.check_gradients(step.WORKLOADS["seed"], ["floor"])


def test_check_only_exits_zero_when_everything_agrees(capsys):
    assert step.main(["--workloads", "seed", "--check-only"]) == 0
    out = capsys.readouterr().out
    assert "Gradient check passed: seed" in out and "dp, dp fused, " in out


def test_the_benchmarks_workloads_are_the_issues():
    """The seed, the paper's MNIST network and the wide one, each in float64 and float32."""
    mlps = [w for w in step.WORKLOADS.values() if isinstance(w, step.Workload)]
    shapes = {(w.sizes, w.batch, w.activation, np.dtype(w.dtype).name) for w in mlps}
    for sizes, batch, activation in [
        ((30, 20, 10, 1), 50, "tanh"),
        ((784, 100, 100, 100, 10), 60, "sigmoid"),
        ((784, 1024, 1024, 10), 4096, "tanh"),
    ]:
        assert {(sizes, batch, activation, "float64"), (sizes, batch, activation, "float32")} <= shapes


def test_the_cnn_workloads_are_dp_cnns_defaults_on_batches_of_64_in_both_dtypes():
    cnns = [w for w in step.WORKLOADS.values() if isinstance(w, step.CNNWorkload)]
    assert sorted((w.batch, np.dtype(w.dtype).name) for w in cnns) == [(64, "float32"), (64, "float64")]
    for workload in cnns:
        model, default = step.model_for(workload), dp.CNN(dtype=workload.dtype)
        assert repr(model) == repr(default)
        assert {k: v.shape for k, v in model.params.items()} == {k: v.shape for k, v in default.params.items()}
        x, _ = workload.data()
        assert x.shape == (64, 1, 28, 28) and x.dtype == workload.dtype


@pytest.mark.parametrize("workload", [step.WORKLOADS["seed"], CNN_WORKLOADS[0]], ids=lambda w: w.name)
def test_the_dp_row_is_fits_step_and_moves_the_model_as_the_graph_does(workload):
    x, y = workload.data()
    initial = step.model_for(workload).get_param()
    fits, graph = step.DpStep(workload, initial), step.DpGraphStep(workload, initial)
    for _ in range(3):
        fits.step(fits.prepare(x, y))
        graph.step(graph.prepare(x, y))
    for key, value in graph.model.params.items():
        np.testing.assert_array_equal(fits.model.params[key], value, err_msg=key)  # bit for bit


def test_the_dp_fused_row_is_fits_step_on_the_fused_mlp_and_moves_it_as_the_graph_does():
    workload = step.WORKLOADS["paper"]
    x, y = workload.data()
    initial = step.model_for(workload).get_param()
    fused, graph = step.DpFusedStep(workload, initial), step.DpGraphStep(workload, initial)
    assert fused.model.fused and not graph.model.fused and isinstance(fused, step.DpStep)
    for _ in range(3):
        fused.step(fused.prepare(x, y))
        graph.step(graph.prepare(x, y))
    for key, value in graph.model.params.items():
        np.testing.assert_allclose(fused.model.params[key], value, rtol=0, atol=1e-12, err_msg=key)


def test_the_report_places_the_fused_columns_after_the_graphs_and_against_reads_it():
    import against

    seconds = {"dp": 150e-6, "dp graph": 160e-6, "dp fused": 120e-6, "torch": 300e-6, "floor": 100e-6}
    peaks = {"dp": 3 * 2**20, "dp graph": 3 * 2**20, "dp fused": 2 * 2**20, "floor": 2**20}
    table = step.report([step.Result(step.WORKLOADS["seed"], seconds, peaks)])
    header, _, row = table.splitlines()[:3]
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | ")))
    names = list(cells)
    assert names.index("dp fused us/step") == names.index("dp graph us/step") + 1
    assert names.index("dp fused/floor") == names.index("dp graph/floor") + 1
    assert cells["dp fused us/step"] == "120" and cells["dp fused/floor"] == "1.20"
    assert cells["peak MB dp fused"] == "2.000" and cells["NumPy floor us/step"] == "100"
    assert against.ratios_in(table) == {"seed": 1.5}
    assert against.ratios_in(table, "dp graph") == {"seed": 1.6}
    fused_table = "| workload | time, dp over dp fused | peak memory, dp over dp fused |\n|---|--:|--:|\n"
    assert fused_table + "| seed | 1.25 | 1.50 |" in table


def test_the_sweep_is_checked_tabled_and_drawn(tmp_path, monkeypatch):
    small = {"batch": [step.Workload("b16", (20, 8, 8, 3), 16)], "width": [step.Workload("w8", (20, 8, 8, 3), 32)]}
    monkeypatch.setattr(step, "sweep_workloads", lambda: small)
    monkeypatch.setattr(step, "SWEEP_BATCHES", (16,))
    monkeypatch.setattr(step, "SWEEP_WIDTHS", (8,))
    png = tmp_path / "speed.png"
    assert step.main(["--sweep", "--repeats", "1", "--quick", "--plot", str(png)]) == 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_the_cnn_report_has_its_own_table_the_im2col_growth_and_the_goal():
    import against

    seconds = {"dp": 33e-3, "dp graph": 35e-3, "torch": 22e-3, "floor": 30e-3, "floor nhwc": 24e-3}
    peaks = {"dp": 40 * 2**20, "dp graph": 40 * 2**20, "floor": 20 * 2**20, "floor nhwc": 5 * 2**20}
    slower = {**seconds, "dp": 45e-3}
    results = [
        step.Result(step.WORKLOADS["cnn-f64"], seconds, peaks),
        step.Result(step.WORKLOADS["cnn-f32"], slower, peaks),
    ]
    text = step.report(results)
    header, _, row = text.splitlines()[:3]
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | ")))
    assert "dp fused us/step" not in cells and "autograd us/step" not in cells
    assert cells["dp us/step"] == "33,000" and cells["floor nhwc us/step"] == "24,000"
    assert (cells["dp/floor"], cells["dp/floor nhwc"], cells["floor nhwc/floor"]) == ("1.10", "1.38", "0.80")
    assert (
        cells["peak MB floor"] == "20.0" and cells["peak MB floor nhwc"] == "5.000" and cells["peak dp/floor"] == "2.00"
    )
    assert "- cnn: dp <= 1.2 x floor (time), cnn-f64: 1.10 -> met" in text
    assert "- cnn: dp <= 1.2 x floor (time), cnn-f32: 1.50 -> NOT met" in text
    assert "conv1 64 x 1 x 28 x 28 -> columns 50,176 x 9, 9.0 x the input's bytes (3.4 MB)" in text
    assert "conv2 64 x 8 x 14 x 14 -> columns 12,544 x 72, 9.0 x the input's bytes (3.4 MB)" in text  # float32
    assert against.ratios_in(text) == {"cnn-f64": 1.1, "cnn-f32": 1.5}


def test_the_im2col_growth_is_computed_from_the_shapes():
    """kh * kw for an odd kernel, whose padding keeps the size; more for an even one, whose
    padding (kernel // 2 on each side) gives one more output per row and column."""
    assert "25.0 x the input's bytes" in step.im2col_growth(step.CNNWorkload("k5", 4, kernel=5))[0]
    cut = step.CNNWorkload("k4", 2, image=(1, 8, 8), channels=(2,), kernel=4)  # 9 x 9 outputs: 16 * 81 / 64
    assert step.im2col_growth(cut) == ["conv1 2 x 1 x 8 x 8 -> columns 162 x 16, 20.2 x the input's bytes (0.0 MB)"]


def test_the_cnn_sweep_is_checked_and_tabled(monkeypatch, capsys):
    monkeypatch.setattr(step, "CNN_SWEEP_BATCHES", (2,))  # one point: the timing is not what is tested
    assert step.main(["--cnn-sweep", "--repeats", "1", "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| point |")).strip("| ").split(" | ")
    assert header[:5] == ["point", "dp us/step", "floor us/step", "floor nhwc us/step", "PyTorch us/step"]
    assert {"dp us/image", "floor us/image", "dp/floor", "dp/floor nhwc", "peak MB dp"} <= set(header)
    rows = [line.strip("| ").split(" | ") for line in lines if line.startswith("| cnn, batch ")]
    assert len(rows) == 1 and rows[0][0] == "cnn, batch 2" and len(rows[0]) == len(header)
    assert "n/a" not in rows[0][1:] or "torch" not in step.available()
    assert any("9.0 x the input's bytes" in line for line in lines)


def test_the_overhead_variants_switch_off_only_what_they_name_and_put_it_back(capsys):
    checks_before = [getattr(module, name) for module, name, _ in overhead.SWITCHES]
    with overhead.switched_off(True):
        assert dp.nn.normalization.require_finite_statistics(None, np.array([np.nan]), "bn") is None
        assert dp.optim._all_finite(np.array([np.inf])) and dp.optim.all_finite(np.array([np.inf]))
    assert [getattr(module, name) for module, name, _ in overhead.SWITCHES] == checks_before
    assert not dp.optim._all_finite(np.array([np.inf]))
    assert overhead.main(["--workloads", "seed", "--repeats", "1", "--min-block", "0.001"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| seed |")]
    assert [row.split(" | ")[1] for row in rows] == [
        "floor", "dp", "no transaction", "no finiteness checks", "neither", "gradients", "floor gradients",
    ]  # fmt: skip


def test_startup_reads_the_import_time_of_a_module_and_what_a_command_loads():
    assert 0 < startup.import_seconds("json", runs=1) < 5
    assert startup.import_seconds("no_such_module_here", runs=1) is None
    assert startup.heavy_loaded("", "import json") == ""
    assert startup.heavy_loaded("", "import tqdm") == "tqdm"


def test_accuracy_table_counts_wrong_rows_and_good_splits():
    results = {"always right": [1.0, 1.0, 1.0], "two then three wrong": [111 / 113, 110 / 113, 111 / 113]}
    table = accuracy.report(range(7, 10), results, test_rows=113)
    assert "| always right | 100.00 % | 100.00 % | 100.00 % | 100.00 % | 0.00 | 3 of 3 |" in table
    assert "| two then three wrong | 98.23 % | 97.94 % | 97.35 % | 98.23 % | 2.33 | 2 of 3 |" in table
    assert "| 8 | 113 | 110 |" in table  # correct rows per seed, seeds numbered from the first


def test_accuracy_benchmark_runs_on_one_split(capsys):
    accuracy.main(["--first-seed", "3", "--seeds", "1", "--timing-runs", "0"])
    out = capsys.readouterr().out
    assert "seeds 3-3 (113 test rows each)" in out
    rows = [line for line in out.splitlines() if line.startswith("| 3 |")]
    assert len(rows) == 1 and all(100 <= int(n) <= 113 for n in rows[0].strip("| ").split(" | ")[1:])


def step_table(*before_the_floor):
    """A step.py report's table, with ``before_the_floor`` columns (each cell 7) between dp
    graph's and PyTorch's: none at 03eca92, "dp fused us/step" today."""
    extra = ["7"] * len(before_the_floor)
    head = ["workload", "dp us/step", "dp graph us/step", *before_the_floor, "PyTorch us/step", "autograd us/step"]
    rows = [
        ["seed", "150", "160", *extra, "300", "n/a", "100", "1.50"],
        ["wide-f64", "1,010,000", "1,000,000", *extra, "n/a", "n/a", "1,000,000", "1.01"],
    ]
    lines = [[*head, "NumPy floor us/step", "x"], ["---"] + ["--:"] * (len(head) + 1), *rows]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


@pytest.mark.parametrize("columns", [(), ("dp fused us/step",)], ids=["then", "today"])
def test_against_reads_dp_over_the_floor_from_a_step_report_of_then_and_of_today(columns):
    """The columns are found by their headers: a column more before the floor's changes nothing."""
    import against

    report = step_table(*columns)
    assert against.ratios_in(report) == {"seed": 1.5, "wide-f64": 1.01}
    assert against.ratios_in(report, "dp graph") == {"seed": 1.6, "wide-f64": 1.0}


def test_the_profile_of_fit_names_the_engine_and_the_batch_norm_primitive_a_student_reads():
    import profile_fit

    text = profile_fit.table(profile_fit.profile(steps=3), rows=10)
    assert "`grad` (node.py:" in text and "`batch_norm_closed_form` (nn/normalization.py:" in text
    assert "`train_step` (train.py:" in text


def test_the_monitor_benchmark_times_fit_both_ways_and_writes_the_command_first(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor.bench, "use_threads", lambda count: None)  # the test session keeps its threads
    out = tmp_path / "monitor.md"
    arguments = [
        "--workloads",
        "seed",
        "--steps",
        "4",
        "--every",
        "2",
        "--rows",
        "10,20",
        "--repeats",
        "1",
        "--seconds",
        "0",
    ]
    assert monitor.main([*arguments, "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith(f"`python benchmarks/monitor.py {' '.join(arguments)} --out {out}`")
    assert "| seed (30-20-10-1, batch 50) | 10 | 4 | 2 | 1 |" in text  # one round each
    assert "| seed (30-20-10-1, batch 50) | 20 | 4 | 2 | 1 |" in text
