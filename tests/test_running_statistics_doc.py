"""docs/running_statistics.md is what benchmarks/running_statistics.py writes: its text is the
script's, its zero-start table is `zero_start_table` (whose factor is what a dp layer's moving
averages do), and its measured rows are what `measure_gap` measures today (the breast-cancer rows
all, two of the MNIST rows: the rest would take the ten seconds of the whole script)."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import dp
from dp.studies import running_statistics as study

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import running_statistics as script  # noqa: E402

DOC = (ROOT / "docs" / "running_statistics.md").read_text()
GAP_TABLE = re.search(r"^\| network \|.*?(?=\n\n)", DOC, re.M | re.S).group(0)


def test_the_doc_starts_with_the_command_that_wrote_it():
    assert DOC.startswith(script.COMMAND + "\n") and "--out docs/running_statistics.md" in script.COMMAND


def test_the_doc_is_the_scripts_text_with_the_computed_zero_start_table():
    first = study.zero_start_factor(1)
    expected = script.DOCUMENT.format(
        command=script.COMMAND,
        momentum=study.MOMENTUM,
        old=1 - study.MOMENTUM,
        first=first,
        first_std=first**-0.5,
        within=study.zero_start_batches(0.01),
        zero_start=study.zero_start_table(),
        gaps=GAP_TABLE,
    )
    assert DOC == expected
    assert study.zero_start_table() in DOC and "| 5 | 0.4095 | 1.563 | 0.5905 |" in DOC


@pytest.mark.parametrize("k", study.ZERO_START_BATCHES)
def test_the_zero_start_factor_is_what_a_layers_moving_averages_hold_after_k_equal_batches(k):
    net = dp.NeuralNode()
    layer = net.batch_norm(2, "bn")
    x = np.array([[1.0, -4.0], [3.0, 0.0], [5.0, 4.0]])  # mean (3, 0), biased variance (8/3, 32/3)
    for _ in range(k):
        layer(x)
    factor = study.zero_start_factor(k)
    np.testing.assert_allclose(net.params["avg_mean_bn"], factor * x.mean(0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(net.params["avg_variance_bn"], factor * x.var(0, keepdims=True), rtol=1e-12)


def test_the_bias_is_under_one_percent_first_after_44_batches():
    k = study.zero_start_batches(0.01)
    assert k == 44 and 0.9**k < 0.01 <= 0.9 ** (k - 1)
    assert 1 - study.zero_start_factor(k) < 0.01 <= 1 - study.zero_start_factor(k - 1)


def test_the_gap_table_has_a_row_per_workload_and_number_of_steps():
    rows = GAP_TABLE.splitlines()[2:]
    assert [row.split(" | ")[:2] for row in rows] == [
        [f"| {workload.name}", f"{steps:,}"] for workload in study.GAP_WORKLOADS for steps in workload.steps
    ]


@pytest.mark.parametrize(
    "workload, steps",
    [
        *((study.GAP_WORKLOADS[0], steps) for steps in study.GAP_WORKLOADS[0].steps),
        (study.GAP_WORKLOADS[1], 50),
        (study.GAP_WORKLOADS[1], 100),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_each_measured_row_is_what_measure_gap_gives_today(workload, steps):
    gap = study.measure_gap(workload, steps)
    assert study.gap_row(gap) in GAP_TABLE.splitlines()
    assert gap.rows % workload.batch_size == 0 and 0 < gap.variance_ratio
