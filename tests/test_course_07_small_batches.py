"""notebooks/07_small_batches: a student's typical mistakes, each put into the exercise with
the other tasks solved, and what the task's check says about it (tests/course_mistakes.py runs
them all in one kernel). tests/test_course.py runs the notebook itself."""

from __future__ import annotations

import pytest

from course_mistakes import Mistake, run_mistakes

NAME = "07_small_batches"
SPREADS = "batches.mean(axis=1).std(axis=0), batches.var(axis=1).std(axis=0)"
MISTAKES = {
    # Task 1: the unbiased batch variance, which batch norm does not normalize with
    "unbiased variance": Mistake(1, "batches.var(axis=1)", "batches.var(axis=1, ddof=1)"),
    # Task 1: each batch's sum, or its standard deviation, for its mean and its variance
    "sum for the mean": Mistake(1, "batches.mean(axis=1)", "batches.sum(axis=1)"),
    "std for the variance": Mistake(1, "batches.var(axis=1).std(axis=0)", "batches.std(axis=1).std(axis=0)"),
    # Task 1: the spread taken over the features instead of over the draws
    "spread over features": Mistake(1, SPREADS, SPREADS.replace("std(axis=0)", "std(axis=1)")),
    # Task 2: r or d not clipped: eval mode's formula in training, unbounded
    "r not clipped": Mistake(2, "r = np.clip(batch_sigma / sigma, 1 / rmax, rmax)", "r = batch_sigma / sigma"),
    "d not clipped": Mistake(
        2, "d = np.clip((batch_mean - avg_mean) / sigma, -dmax, dmax)", "d = (batch_mean - avg_mean) / sigma"
    ),
    # Task 2: r upside down
    "r inverted": Mistake(2, "np.clip(batch_sigma / sigma,", "np.clip(sigma / batch_sigma,"),
    # Task 2: the batch's statistics held constant too, so no gradient flows through them
    "statistics constant": Mistake(
        2, "xhat = (x - x.mean(axis=0)) / (x.var(axis=0) + eps).sqrt()", "xhat = (x - batch_mean) / batch_sigma"
    ),
    # Task 3: group norm's groups must divide the features: dp refuses 5 groups of 64
    "groups do not divide": Mistake(3, "GROUPS = 8", "GROUPS = 5"),
    # Task 3: batch renorm's options given without renorm=True, so the layer is plain batch norm
    "renorm not on": Mistake(3, "renorm=True, rmax=3.0", "rmax=3.0"),
    # Task 3: one group, which is layer norm
    "one group": Mistake(3, "self.group_norm(64, groups, ", "self.group_norm(64, 1, "),
}


@pytest.fixture(scope="module")
def errors(tmp_path_factory):
    return run_mistakes(NAME, MISTAKES, tmp_path_factory.mktemp(NAME))


@pytest.mark.parametrize(
    ("mistake", "says"),
    [
        ("unbiased variance", ["N / (N - 1) times too much", "the biased variance", "ddof=0"]),
        ("sum for the mean", ["at batches of 2 the batch means should spread as sigma / sqrt(N)", "each one's mean"]),
        ("std for the variance", ["at batches of 2 the (biased) batch variances should spread", "np.var"]),
        ("spread over features", ["one value per feature, shape (3,)", "over the draws"]),
        ("r not clipped", ["r not clipped", "clip r to [1 / rmax, rmax]"]),
        ("d not clipped", ["d not clipped", "d to [-dmax, dmax]"]),
        ("r inverted", ["r is inverted", "r = sigma_B / sigma", "not sigma / sigma_B"]),
        ("statistics constant", ["the gradient of x differs from dp's", "mu_B and sigma_B are not", "Node operations"]),
        ("groups do not divide", ["dp refuses", "5 groups do not divide the 64 channels", "must divide 64"]),
        ("renorm not on", ["behaves as plain batch norm", "renorm=True"]),
        ("one group", ["group norm in 8 groups of consecutive features"]),
    ],
)
def test_the_check_says_what_to_do_about_a_typical_mistake(errors, mistake, says):
    error = errors[mistake]
    assert error is not None and error.startswith("AssertionError: "), f"{mistake}: the check raised {error}"
    for words in says:
        assert words in error, f"{mistake}: {words!r} is not in the check's message: {error}"
