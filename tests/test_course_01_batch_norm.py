"""notebooks/01_batch_norm: a student's typical mistakes in each task, put into the exercise (the
tasks before it solved), each caught by its check with a message that says what to do; and the
prose of the solutions held to what the solutions print.

tests/test_course.py runs the notebook as every notebook of the course (built from its source,
the solutions to the end, the untouched exercise up to its first check).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import dp
from test_notebooks import (
    answer_to,
    assert_questions_are_answered,
    assert_tasks_are_well_formed,
    built,
    cells_with_errors,
    check_error,
    execute,
    mistaken,
    printed,
    read,
    run_exercise,
    shown_images,
    solved,
    tagged,
)

NAME = "01_batch_norm"
TASKS = 4


def exercise(answers, tmp_path, monkeypatch, through_task=TASKS):
    return run_exercise(NAME, answers, tmp_path, monkeypatch, through_task)


def failed_check(nb, task):
    """The message of the check of ``task``, which must be an AssertionError or a TypeError, after
    the checks of the tasks before it passed."""
    assert [check_error(nb, earlier) for earlier in range(1, task)] == [None] * (task - 1)
    error = check_error(nb, task)
    assert error is not None, f"the check of Task {task} let the mistake through"
    return error


def test_tasks_say_what_to_write_and_questions_have_answers():
    assert_tasks_are_well_formed(NAME)
    assert_questions_are_answered(NAME, at_least=2)


def test_the_exercise_with_the_solutions_filled_in_runs_to_the_end(tmp_path, monkeypatch):
    nb = read(built(NAME)["exercise"])
    for task, code in solved(NAME, *range(1, TASKS + 1)).items():
        nb.cells[tagged(nb, "stub")[task - 1]].source = code
    execute(nb, tmp_path, monkeypatch, allow_errors=True)
    assert cells_with_errors(nb) == []
    assert all(f"Task {task} passed" in printed(nb) for task in range(1, TASKS + 1))
    # after the last check, the exercise too shows one-class batches normalized with their own statistics (05 says so)
    assert len(re.findall(r"tumours: eval mode [\d.]+%, their own statistics [\d.]+%", printed(nb))) == 2
    assert "(c) one row at a time" in printed(nb) and "a training batch needs at least 2 rows" in printed(nb)


# ----- Task 1: normalize -----

WITH_NUMPY = "(v - v.mean(axis=0)) / np.sqrt(v.var(axis=0) + eps)"


@pytest.mark.parametrize(
    ("returned", "says"),
    [(f"dp.Node({WITH_NUMPY})", "so that grad can reach b"), (WITH_NUMPY, "should return a dp.Node, not ndarray")],
    ids=["wrapped in a Node", "an array"],
)
def test_task_1_check_says_to_use_node_operations_when_normalize_computes_with_numpy(
    returned, says, tmp_path, monkeypatch
):
    with_numpy = f"def normalize(z, eps=1e-5):\n    v = z.value\n    return {returned}\n"
    error = failed_check(exercise({1: with_numpy}, tmp_path, monkeypatch, through_task=1), 1)
    assert error.startswith("AssertionError: ")
    assert "use dp.Node operations" in error and says in error


@pytest.mark.parametrize(
    ("numpy_function", "node_method"),
    [
        ("(z - np.mean(z, axis=0)) / (z.var(axis=0) + eps).sqrt()", "node.mean()"),
        ("(z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + eps)", "node.sqrt()"),
        ("(z - z.mean(axis=0)) / (np.var(z, axis=0) + eps).sqrt()", "node.var()"),
    ],
    ids=["np.mean", "np.sqrt", "np.var"],
)
def test_task_1_a_numpy_function_on_the_node_names_the_node_method(numpy_function, node_method, tmp_path, monkeypatch):
    """Before dp's Node answered NumPy's functions, np.mean(z) failed with "Node.mean() got an
    unexpected keyword argument 'dtype'"."""
    code = mistaken(NAME, 1, "(z - z.mean(axis=0)) / (z.var(axis=0) + eps).sqrt()", numpy_function)
    error = failed_check(exercise({1: code}, tmp_path, monkeypatch, through_task=1), 1)
    assert error.startswith("TypeError: np.")
    assert f"does not take a dp.Node: use {node_method}" in error


def test_task_1_check_says_to_divide_by_the_standard_deviation_not_the_variance(tmp_path, monkeypatch):
    code = mistaken(NAME, 1, "(z.var(axis=0) + eps).sqrt()", "(z.var(axis=0) + eps)")
    error = failed_check(exercise({1: code}, tmp_path, monkeypatch, through_task=1), 1)
    assert "standard deviations are not 1: divide by the standard deviation" in error and "not by the variance" in error


# ----- Task 2: the layer -----

READ_AT_EVERY_CALL = """        def forward(x, train=True):  # train is ignored until Task 3
            gamma = dp.Node(self.params[gamma_key], gamma_key)  # read at every call
            beta = dp.Node(self.params[beta_key], beta_key)
            return gamma * normalize(x) + beta"""


@pytest.mark.parametrize(
    ("read_once", "says"),
    [
        (
            """        gamma = dp.Node(self.params[gamma_key], gamma_key)  # read once, when the layer is built
        beta = dp.Node(self.params[beta_key], beta_key)

        def forward(x, train=True):
            return gamma * normalize(x) + beta""",
            "the output's mean did not change when net.params got a new beta_bn2",
        ),
        (
            """        gamma_value = self.params[gamma_key]  # read once, when the layer is built

        def forward(x, train=True):
            gamma = dp.Node(gamma_value, gamma_key)
            beta = dp.Node(self.params[beta_key], beta_key)
            return gamma * normalize(x) + beta""",
            "the output's std did not change when net.params got a new gamma_bn2",
        ),
    ],
    ids=["gamma and beta", "gamma only"],
)
def test_task_2_check_says_to_read_params_at_every_call_when_the_layer_reads_them_once(
    read_once, says, tmp_path, monkeypatch
):
    code = mistaken(NAME, 2, READ_AT_EVERY_CALL, read_once)
    error = failed_check(exercise({**solved(NAME, 1), 2: code}, tmp_path, monkeypatch, through_task=2), 2)
    assert error.startswith("AssertionError: ") and says in error
    assert "forward must read self.params" in error and "not once in batch_norm" in error


def test_task_2_check_says_to_name_gamma_and_beta(tmp_path, monkeypatch):
    code = mistaken(NAME, 2, "dp.Node(self.params[gamma_key], gamma_key)", "dp.Node(self.params[gamma_key])")
    code = code.replace("dp.Node(self.params[beta_key], beta_key)", "dp.Node(self.params[beta_key])")
    error = failed_check(exercise({**solved(NAME, 1), 2: code}, tmp_path, monkeypatch, through_task=2), 2)
    assert "gamma and beta get no gradient" in error and "make them named Nodes" in error


# ----- Task 3: moving averages -----


def test_task_3_check_says_params_holds_arrays_when_the_averages_are_stored_as_nodes(tmp_path, monkeypatch):
    nodes_in_params = mistaken(NAME, 3, "momentum * mean.value", "momentum * mean")
    error = failed_check(exercise({**solved(NAME, 1, 2), 3: nodes_in_params}, tmp_path, monkeypatch, 3), 3)
    assert error.startswith("AssertionError: ")
    assert "params holds NumPy arrays, not Nodes" in error and "avg_mean_bn1" in error


def test_task_3_check_says_to_use_the_averages_when_eval_mode_uses_the_batchs_statistics(tmp_path, monkeypatch):
    own_statistics = mistaken(
        NAME,
        3,
        "mean, var = dp.Node(params[mean_key]), dp.Node(params[variance_key])",
        "mean, var = x.mean(axis=0), x.var(axis=0)",
    )
    error = failed_check(exercise({**solved(NAME, 1, 2), 3: own_statistics}, tmp_path, monkeypatch, 3), 3)
    assert "eval mode should normalize with the moving averages" in error and "not the batch's own statistics" in error


def test_task_3_check_says_eval_mode_must_update_nothing(tmp_path, monkeypatch):
    always_training = mistaken(NAME, 3, "if train:", "if True:")
    error = failed_check(exercise({**solved(NAME, 1, 2), 3: always_training}, tmp_path, monkeypatch, 3), 3)
    assert "eval mode changed params: with train=False, update nothing" in error


# ----- Task 4: gradient descent -----


def test_task_4_check_says_to_solve_task_3_first_when_its_stub_is_left(tmp_path, monkeypatch):
    nb = exercise(solved(NAME, 1, 2, 4), tmp_path, monkeypatch)
    assert check_error(nb, 3) == "NotImplementedError: Task 3: write Net.batch_norm"
    error = check_error(nb, 4)
    assert error is not None and error.startswith("AssertionError: ")
    assert "solve Task 3 first" in error


def test_task_4_check_says_the_averages_never_moved_when_training_in_eval_mode(tmp_path, monkeypatch):
    in_eval_mode = mistaken(NAME, 4, "net.forward(x[rows])", "net.forward(x[rows], train=False)")
    error = failed_check(exercise({**solved(NAME, 1, 2, 3), 4: in_eval_mode}, tmp_path, monkeypatch), 4)
    assert error.startswith("AssertionError: ")
    assert "moving averages never moved" in error and "training mode" in error


def test_task_4_check_says_to_drop_the_incomplete_last_batch(tmp_path, monkeypatch):
    keeping_it = mistaken(NAME, 4, "range(0, batches * batch_size, batch_size)", "range(0, len(x), batch_size)")
    error = failed_check(exercise({**solved(NAME, 1, 2, 3), 4: keeping_it}, tmp_path, monkeypatch), 4)
    assert error.startswith("AssertionError: ")
    assert "batches of [6, 50] rows" in error and "drop the last, incomplete" in error


def test_task_4_check_says_how_to_step_when_the_loss_goes_up(tmp_path, monkeypatch):
    uphill = mistaken(NAME, 4, "net.params[k] - lrate * grads[k]", "net.params[k] + lrate * grads[k]")
    error = failed_check(exercise({**solved(NAME, 1, 2, 3), 4: uphill}, tmp_path, monkeypatch), 4)
    assert "the training loss did not go down" in error and "net.params[k] - lrate * grads[k]" in error


# ----- the solutions' prose against what they print -----


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    """The solutions, run once; their printed text is what the prose is held to."""
    nb = read(built(NAME)["solutions"])
    with pytest.MonkeyPatch.context() as monkeypatch:
        execute(nb, tmp_path_factory.mktemp("solutions"), monkeypatch)
    return nb


def number_after(label, text):
    """The number printed right after ``label`` (a regular expression) in ``text``."""
    found = re.search(label + r"\s*(-?[\d.]+(?:e-?\d+)?)", text)
    assert found, f"nothing printed after {label!r}"
    return float(found.group(1))


def test_the_solutions_draw_one_figure(solutions):
    assert len(shown_images(solutions)) == 1, "training with and without batch norm"


def test_the_bias_gradient_is_zero_to_rounding_and_the_weights_is_not(solutions):
    text = printed(solutions)
    assert number_after(r"largest \|dL/db\|:", text) < 1e-13
    assert number_after(r"largest \|dL/dW\|:", text) > 0.1
    assert "zero up to rounding" in answer_to(solutions, 1)


def test_the_composed_and_the_fused_layer_agree_to_rounding_and_pass_gradcheck(solutions):
    text = printed(solutions)
    differences = [float(d) for d in re.findall(r"differ by at most (\S+)", text)]
    assert len(differences) == 4 and max(differences) < 1e-12
    errors = [float(e) for e in re.findall(r"largest relative error (\S+)", text)]
    assert len(errors) == 2 and max(errors) < 1e-8, "far below gradcheck's tolerance of 1e-6"


def test_question_2s_numbers_are_the_arithmetic_of_the_momentum(solutions):
    answer = answer_to(solutions, 2)
    assert r"0.9^{100} \approx 3 \cdot 10^{-5}" in answer and round(0.9**100, 5) == 3e-5
    assert r"-1 / \ln(0.9) \approx 9.5" in answer and round(-1 / math.log(0.9), 1) == 9.5


def test_one_class_batches_normalized_with_their_own_statistics_are_half_wrong(solutions):
    text = printed(solutions)
    eval_mode = [float(a) for a in re.findall(r"tumours: eval mode ([\d.]+)%", text)]
    own = [float(a) for a in re.findall(r"their own statistics ([\d.]+)%", text)]
    assert len(eval_mode) == len(own) == 2
    assert min(eval_mode) >= 95 and all(30 < a < 70 for a in own), "about half of them look like the other class"
    one_at_a_time = re.search(r"P\(benign\) = \[(\S+)\] for every tumour; accuracy ([\d.]+)%, .* ([\d.]+)%", text)
    assert one_at_a_time and one_at_a_time.group(2) == one_at_a_time.group(3), "the share of the class it picks"


def test_training_with_and_without_batch_norm_shows_what_the_prose_says(solutions):
    text = printed(solutions)
    loss = {
        (network, with_or_without): float(value)
        for network, with_or_without, value in re.findall(
            r"(reference|deep) network .*?, +(with|without) batch norm: training loss per row ([\d.]+)", text
        )
    }
    assert len(loss) == 4
    assert loss["reference", "without"] < loss["reference", "with"], "without batch norm the training loss ends lower"
    reference = dict(
        re.findall(r"reference network .*?, +(with|without) batch norm: .*?validation accuracy ([\d.]+)%", text)
    )
    rows = len(dp.data.breast_cancer(test_size=0.2, validation_size=0.2, seed=0).x_val)  # the solutions' split
    apart = abs(float(reference["with"]) - float(reference["without"])) / 100 * rows
    assert 0.5 < apart < 2.5, f"the validation accuracies differ by {apart:.1f} rows, not by a row or so"
    deep = re.findall(r"deep network .*?, +(with|without) batch norm: .*?validation accuracy ([\d.]+)%", text)
    share = number_after(r"the share of benign tumours in the validation rows:", text)
    assert dict(deep)["without"] == f"{share:.1f}", "the flat validation accuracy is the share of benign tumours"
    assert float(dict(deep)["with"]) > 90


def monitor_rows(text, heading):
    """{(with batch norm?): [values by layer]} from the monitor's lines under ``heading``."""
    block = text[text.index(heading) :].split("\n\n")[0]
    rows = {}
    for with_or_without, cells in re.findall(r"(with|without) batch norm: (.*)", block):
        rows[with_or_without == "with"] = [float(v) for v in re.findall(r"l\d+ (\S+)", cells)]
    return rows


def test_the_deep_networks_gradients_shrink_layer_by_layer_without_batch_norm_and_are_alike_with_it(solutions):
    text = printed(solutions)
    saturated = monitor_rows(text, "sigmoid inputs where it is flat")
    assert max(saturated[False]) < 5, "its sigmoids are hardly ever in their flat parts"
    gradients = monitor_rows(text, "weight gradient's std")
    without, with_ = gradients[False], gradients[True]
    assert len(without) == len(with_) == 7
    assert without == sorted(without) and without[0] < without[-1] / 100, "shrinking from l7 down to l1"
    assert max(with_) / min(with_) < 3, "with batch norm, of a similar size"
    assert np.isfinite(with_).all()
