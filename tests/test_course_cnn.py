"""notebooks/06_cnn: each typical mistake, put into the exercise with the tasks before it solved,
makes its task's check fail with a message that names the mistake and says what to do; and
what the notebook's Markdown says about its output holds in the solutions' output."""

from __future__ import annotations

import re

import pytest

from test_course_backward import executed_solutions, mistaken, printed, the_check_says
from test_notebooks import shown_images

NAME = "06_cnn"

# ----- Task 1: batch_norm2d, by choosing the axes -----

AXES = "axes = (0, 2, 3)"
RESHAPE = "gamma, beta = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)"

TASK_1_MISTAKES = {
    "per position, as a dense layer": (AXES, "axes = 0", "you normalized over axis 0 only"),
    "instance norm": (AXES, "axes = (2, 3)", "that is instance norm"),
    "layer norm": (AXES, "axes = (1, 2, 3)", "that is layer norm"),
    "gamma as a (C,) array": (RESHAPE, "pass", "applied along the height"),
    "gamma as (1, C)": (RESHAPE, "gamma, beta = gamma.reshape(1, -1), beta.reshape(1, -1)", "applied along the width"),
    "the unbiased variance": (
        "var = ((x - mean) ** 2).mean(axis=axes)",
        "var = x.var(axis=axes, ddof=1)",
        "you used the unbiased variance",
    ),
    "NumPy on the values": (
        "return gamma * (x - mean) / (var + eps).sqrt() + beta",
        "return dp.Node((gamma * (x - mean) / (var + eps).sqrt() + beta).value)",
        "the gradient does not reach x",
    ),
}


@pytest.mark.parametrize("mistake", TASK_1_MISTAKES)
def test_task_1_check_names_the_mistake_and_what_to_do(mistake, tmp_path, monkeypatch):
    right, wrong, says = TASK_1_MISTAKES[mistake]
    error = the_check_says(NAME, 1, mistaken(NAME, 1, right, wrong), tmp_path, monkeypatch)
    assert says in error
    assert "(0, 2, 3)" in error or "(1, C, 1, 1)" in error or "dp.Node operations" in error or "ddof=0" in error


# ----- Task 2: folding -----

TASK_2_MISTAKES = {
    "the scale along the input channels": (
        "weight * scale.reshape(-1, 1, 1, 1)",
        "weight * scale",
        "reshape the per-channel scale (1, 8, 1, 1) to (8, 1, 1, 1)",
    ),
    "the mean left in": ("(bias - mean) * scale + beta", "bias * scale + beta", "must take the moving mean out"),
    "the mean not scaled": ("(bias - mean) * scale + beta", "bias * scale - mean + beta", "scale the moving mean too"),
    "no eps": ("np.sqrt(var + eps)", "np.sqrt(var)", "add eps to the variance"),
}


@pytest.mark.parametrize("mistake", TASK_2_MISTAKES)
def test_task_2_check_names_the_mistake_and_what_to_do(mistake, tmp_path, monkeypatch):
    right, wrong, says = TASK_2_MISTAKES[mistake]
    error = the_check_says(NAME, 2, mistaken(NAME, 2, right, wrong), tmp_path, monkeypatch)
    assert says in error


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
