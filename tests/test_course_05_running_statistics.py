"""notebooks/05_running_statistics: a student's typical mistakes, each put into the exercise
with the other tasks solved, and what the task's check says about it (tests/course_mistakes.py
runs them all in one kernel). tests/test_course.py runs the notebook itself."""

from __future__ import annotations

import pytest

from course_mistakes import Mistake, run_mistakes

NAME = "05_running_statistics"
IN_EVAL_MODE = """
def recalibrate_by_hand(model, x, batch_size):
    batches = len(x) // batch_size
    for start in range(0, batches * batch_size, batch_size):
        model.forward(x[start : start + batch_size], train=False)
    return batches
"""
MISTAKES = {
    # Task 1: Keras's momentum (the weight of the old average) in PyTorch's formula
    "keras momentum": Mistake(
        1,
        "average = (1 - weight) * average + weight * statistic",
        "average = weight * average + (1 - weight) * statistic",
    ),
    # Task 1: momentum=None counted from 0, so the first batch weighs 1/2 and the start lingers
    "cumulative off by one": Mistake(1, "1 / k if momentum is None", "1 / (k + 1) if momentum is None"),
    # Task 2: PyTorch's start for the variance assumed in dp
    "variance starts at 1": Mistake(2, "DP_START_VARIANCE = 0.0", "DP_START_VARIANCE = 1.0"),
    # Task 2: the batches before the average is close counted, not the one that brings it there
    "one batch short": Mistake(2, "return k", "return max(k - 1, 0)"),
    # Task 3: training-mode passes leave their moving averages behind
    "params not restored": Mistake(3, "        model.set_param(saved)\n", "        pass\n"),
    # Task 3: eval mode, which never looks at the batch
    "eval mode": Mistake(3, "train=True", "train=False"),
    # Task 4: PyTorch's running_var convention in dp
    "unbiased variance": Mistake(4, ".var(axis=0, keepdims=True)", ".var(axis=0, keepdims=True, ddof=1)"),
    # Task 4: the layers looked at in eval mode: bn2's input is then bn1's eval-mode output
    "recorded in eval mode": Mistake(
        4,
        "model.record(x[start : start + batch_size], train=True)",
        "model.record(x[start : start + batch_size], train=False)",
    ),  # fmt: skip
    # Task 4: "recalibrating" by passing the rows through the network in eval mode, which changes nothing
    "forward in eval mode": Mistake(4, None, IN_EVAL_MODE),
}


@pytest.fixture(scope="module")
def errors(tmp_path_factory):
    return run_mistakes(NAME, MISTAKES, tmp_path_factory.mktemp(NAME))


@pytest.mark.parametrize(
    ("mistake", "says"),
    [
        ("keras momentum", ["Keras's convention", "the weight of the NEW batch"]),
        ("cumulative off by one", ["the FIRST batch weighs 1 / 1 = 1"]),
        ("variance starts at 1", ["DP_START_VARIANCE = 1.0", "dp does not start the variance at 1"]),
        ("one batch short", ["not yet within 1 %", "count the batch that brings it there"]),
        ("params not restored", ["changed model.params", "avg_mean_bn1", "model.set_param(saved)"]),
        ("eval mode", ["these are eval mode's predictions", "train=True"]),
        ("unbiased variance", ["32/31 times dp's", "unbiased", "dp stores the biased one"]),
        ("recorded in eval mode", ["bn2's do not", "model.record(batch, train=True)"]),
        ("forward in eval mode", ["did not change", "store the new averages in model.params", "changes nothing"]),
    ],
)
def test_the_check_says_what_to_do_about_a_typical_mistake(errors, mistake, says):
    error = errors[mistake]
    assert error is not None and error.startswith("AssertionError: "), f"{mistake}: the check raised {error}"
    for words in says:
        assert words in error, f"{mistake}: {words!r} is not in the check's message: {error}"
