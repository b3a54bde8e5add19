"""benchmarks/step.py: every reference computes dp's loss, gradients and moving averages.

The benchmark is only meaningful if its four implementations do the same work;
this runs its correctness check (never its timing) on the seed network and on a
reduced wide network, in float64 and float32. PyTorch and autograd are optional:
their cases are skipped when they are not installed.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

STEP_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "step.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_step", STEP_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


step = _load_benchmark()

WORKLOADS = [
    step.WORKLOADS["seed"],
    step.Workload("seed-f32", (30, 20, 10, 1), 50, np.float32),
    step.Workload("wide-small-f64", (784, 64, 64, 10), 128, np.float64),
    step.Workload("wide-small-f32", (784, 64, 64, 10), 128, np.float32),
]
OPTIONAL = {"torch": "torch", "autograd": "autograd"}  # implementation -> module it needs


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
@pytest.mark.parametrize("implementation", ["floor", "torch", "autograd"])
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
    assert "Gradient check passed: seed" in capsys.readouterr().out
