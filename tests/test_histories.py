"""One path, same numbers: training through the graph (`fit` since the one-path change) gives the
histories and parameters of the code before it (commit 03eca92, where `fit` took an MLP's steps
through a graph-free copy with a fused batch-norm layer), written by benchmarks/histories.py.

Float64: to 1e-12 (measured: at most 1e-13 after 300 steps, from the order of the floating-point
operations: batch norm's backward is now the paper's chain rule, where the old fused layer
computed the compact form in place). Without batch norm the computation is the same: bit for bit.
Float32: to 1e-5 (measured 2e-6), float32's rounding of the same differences.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import histories  # noqa: E402

REFERENCE = np.load(ROOT / "tests" / "data" / "histories_03eca92.npz")


@pytest.fixture(scope="module")
def today():
    return histories.all_runs(int(REFERENCE["paper_steps"]))


def tolerance(key):
    if "plain" in key:
        return 0.0
    return 1e-5 if "float32" in key else 1e-12


def test_the_reference_file_has_every_run():
    runs = {key.split("/")[0] for key in REFERENCE.files if "/" in key}
    assert len(runs) == 11 and {"seed-adam-bn", "seed-sgd-plain", "seed-adam-bn-float32", "paper-bn"} <= runs


def test_every_history_and_parameter_is_the_old_codes(today):
    assert today.keys() == {key for key in REFERENCE.files if "/" in key}
    for key, value in today.items():
        np.testing.assert_allclose(value, REFERENCE[key], rtol=0, atol=tolerance(key), err_msg=key)
