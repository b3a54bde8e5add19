"""The benchmarks run and are right; their timings are never checked here.

benchmarks/step.py: every reference, and dp's fused row, computes dp's loss, gradients
and moving averages. The benchmark is only meaningful if its implementations do the
same work; this runs its correctness check on the seed network and on a reduced
wide network, in float64 and float32. PyTorch and autograd are optional: their
cases are skipped when they are not installed. Its report's columns are where
benchmarks/against.py reads them.

benchmarks/accuracy.py: its table counts rows and splits right, and it runs.
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

WORKLOADS = [
    step.WORKLOADS["seed"],
    step.Workload("seed-f32", (30, 20, 10, 1), 50, np.float32),
    step.Workload("wide-small-f64", (784, 64, 64, 10), 128, np.float64),
    step.Workload("wide-small-f32", (784, 64, 64, 10), 128, np.float32),
    step.Workload("paper-small", (784, 32, 32, 32, 10), 60, activation="sigmoid"),
    step.Workload("paper-small-f32", (784, 32, 32, 32, 10), 60, np.float32, activation="sigmoid"),
]
OPTIONAL = {"torch": "torch", "autograd": "autograd"}  # implementation -> module it needs


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
@pytest.mark.parametrize("implementation", ["dp", "dp fused", "floor", "torch", "autograd"])
def test_reference_agrees_with_dp_after_one_step(workload, implementation):
    if implementation in OPTIONAL:
        pytest.importorskip(OPTIONAL[implementation])
    step.check_gradients(workload, [implementation])


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
    shapes = {(w.sizes, w.batch, w.activation, np.dtype(w.dtype).name) for w in step.WORKLOADS.values()}
    for sizes, batch, activation in [
        ((30, 20, 10, 1), 50, "tanh"),
        ((784, 100, 100, 100, 10), 60, "sigmoid"),
        ((784, 1024, 1024, 10), 4096, "tanh"),
    ]:
        assert {(sizes, batch, activation, "float64"), (sizes, batch, activation, "float32")} <= shapes


def test_the_dp_row_is_fits_step_and_moves_the_model_as_the_graph_does():
    workload = step.WORKLOADS["seed"]
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
