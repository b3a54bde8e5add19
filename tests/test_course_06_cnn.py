"""notebooks/06_cnn: each typical mistake, put into the exercise with the tasks before it solved,
makes its task's check fail with a message that names the mistake and says what to do; and
what the notebook's Markdown says about its output holds in the solutions' output."""

from __future__ import annotations

import re

import pytest

from test_course_02_backward import assert_the_check_says, executed_solutions, printed
from test_notebooks import shown_images

NAME = "06_cnn"

# ----- each typical mistake: (task, the solution's code, the mistake, what the message says) -----

AXES = "axes = (0, 2, 3)"
RESHAPE = "gamma, beta = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)"
BIAS = "(bias - mean) * scale + beta"
PER_CHANNEL = "reshape them to (1, C, 1, 1)"

MISTAKES = {
    "Task 1, per position, as a dense layer": (1, AXES, "axes = 0", "over axis 0 only", "axes (0, 2, 3)"),
    "Task 1, instance norm": (1, AXES, "axes = (2, 3)", "that is instance norm", "axes (0, 2, 3)"),
    "Task 1, layer norm": (1, AXES, "axes = (1, 2, 3)", "that is layer norm", "axes (0, 2, 3)"),
    "Task 1, gamma as a (C,) array": (1, RESHAPE, "pass", "applied along the height", PER_CHANNEL),
    "Task 1, gamma as (1, C)": (
        1,
        RESHAPE,
        "gamma, beta = gamma.reshape(1, -1), beta.reshape(1, -1)",
        "applied along the width",
        PER_CHANNEL,
    ),
    "Task 1, the unbiased variance": (
        1,
        "var = ((x - mean) ** 2).mean(axis=axes)",
        "var = x.var(axis=axes, ddof=1)",
        "you used the unbiased variance",
        "ddof=0",
    ),
    "Task 1, NumPy on the values": (
        1,
        "return gamma * (x - mean) / (var + eps).sqrt() + beta",
        "return dp.Node((gamma * (x - mean) / (var + eps).sqrt() + beta).value)",
        "the gradient does not reach x",
        "use dp.Node operations",
    ),
    "Task 2, the scale along the input channels": (
        2,
        "weight * scale.reshape(-1, 1, 1, 1)",
        "weight * scale",
        "along axis 0 of (out, in, kh, kw)",
        "reshape the per-channel scale (1, 8, 1, 1) to (8, 1, 1, 1)",
    ),
    "Task 2, the mean left in": (2, BIAS, "bias * scale + beta", "must take the moving mean out", "(b - mean)"),
    "Task 2, the mean not scaled": (2, BIAS, "bias * scale - mean + beta", "scale the moving mean too", "(b - mean)"),
    "Task 2, no eps": (2, "np.sqrt(var + eps)", "np.sqrt(var)", "add eps to the variance"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_typical_mistake_gets_a_message_saying_what_to_do(mistake, tmp_path, monkeypatch):
    assert_the_check_says(NAME, MISTAKES[mistake], tmp_path, monkeypatch)


# ----- what the Markdown says about the output -----


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    return executed_solutions(NAME, tmp_path_factory)


@pytest.fixture(scope="module")
def output(solutions):
    return printed(solutions)


def test_the_solutions_show_the_axes_figure_and_the_monitors_figure(solutions):
    assert len(shown_images(solutions)) == 2, "dp.plots.normalization_axes() and the spreads per layer, inline"


def spreads(output: str) -> dict[tuple[str, str], tuple[list[float], float]]:
    """The printed table: {(with or without, layer): (the spread at each step, dead units %)}."""
    rows = re.findall(r"^(with|without)\s+(conv1|conv2|fc1)\s+([\d. ]+)\|\s*([\d.]+)$", output, re.M)
    assert len(rows) == 6, "the solutions no longer print the table of spreads"
    return {(run, layer): ([float(v) for v in values.split()], float(dead)) for run, layer, values, dead in rows}


HIDDEN = ("conv1", "conv2", "fc1")


def test_question_3_with_batch_norm_every_spread_starts_at_1_and_stays_near_it(output):
    # "their spread is |gamma|: 1 at the start, for every layer, and it stays near 1 as training goes
    # (the convolutions' rows barely move; fc1's drifts a little as its gamma learns)"
    table = spreads(output)
    assert [table["with", layer][0][0] for layer in HIDDEN] == [1.0, 1.0, 1.0]
    assert all(abs(s - 1) <= 0.02 for layer in ("conv1", "conv2") for s in table["with", layer][0])
    assert 0 < abs(table["with", "fc1"][0][-1] - 1) < 0.5


def test_question_3_without_batch_norm_the_spreads_differ_between_layers_and_move(output):
    # "the spreads differ from layer to layer and move during training"
    plain = [spreads(output)["without", layer][0] for layer in HIDDEN]
    assert len({round(values[0], 1) for values in plain}) == 3 and len({round(v[-1], 1) for v in plain}) == 3
    assert all(len(set(values)) > 1 for values in plain)


def test_question_3_dead_units_without_batch_norm_and_none_with_it(output):
    # "without batch norm, some units of fc1 are 0 on every watched image ... with batch norm ... no unit"
    table = spreads(output)
    assert table["without", "fc1"][1] > 0
    assert [table["with", layer][1] for layer in HIDDEN] == [0.0, 0.0, 0.0]


def test_the_folded_network_predicts_what_the_trained_one_does(output):
    # "The folded network predicts what the trained one predicts in eval mode"
    gap = re.search(r"probabilities on the test images: ([\d.e+-]+)", output)
    assert gap and float(gap.group(1)) < 1e-10
    accuracies = re.findall(r"^(trained|folded)\s+test accuracy ([\d.]+) %", output, re.M)
    assert len(accuracies) == 2 and accuracies[0][1] == accuracies[1][1]
