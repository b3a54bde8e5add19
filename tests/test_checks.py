"""dp.checks on its own: the pieces the entry points' checks are made of (intervals, the
constraints and their defaults, the install hint, a cast that overflows, the shapes labels
may have). What each public entry point refuses, and in which words, is
tests/test_bad_input.py's and tests/test_messages.py's concern."""

import re

import numpy as np
import pytest

from dp import NonFiniteError, checks
from dp.checks import Interval, OneOf, Real, Whole


@pytest.mark.parametrize("text", ["<0, 1]", "[0, 1>"])
def test_an_interval_needs_a_bracket_at_each_end(text):
    words = f"an interval starts with ( or [ and ends with ) or ], got {text!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        Interval(text)


def test_real_and_whole_take_any_finite_number_by_default():
    assert Real()(-1e300, "x") == -1e300 and Real()(2, "x") == 2.0
    assert Whole()(-(10**12), "n") == -(10**12)
    with pytest.raises(ValueError, match=r"^x must be a finite number in \(-inf, inf\), got inf$"):
        Real()(float("inf"), "x")


def test_one_of_is_case_sensitive_unless_told_otherwise():
    with pytest.raises(ValueError, match=r"^optimizer must be one of 'adam', 'sgd'; got 'Adam'$"):
        OneOf("adam", "sgd")("Adam", "optimizer")
    assert OneOf("adam", "sgd", ignore_case=True)("Adam", "optimizer") == "Adam"


def test_the_install_hint_says_to_install_the_extra_from_a_clone():
    assert checks.install_hint("train") == 'from a clone of dp, install it with: pip install ".[train]"'


def test_a_cast_that_overflows_is_too_large_for_the_dtype_without_a_numpy_warning():
    """1e39 is finite in float64 and inf in float32: said so, not called NaN or inf (pytest makes a
    RuntimeWarning, such as NumPy's overflow in the cast, an error)."""
    with pytest.raises(NonFiniteError, match=r"^the input has values too large for float32, the model's dtype$"):
        checks.in_dtype(np.array([1.0, 1e39]), np.float32, "the input", "the model's")


@pytest.mark.parametrize(
    "shape, outputs, message",
    [
        ((4, 1, 1), 1, r"^binary labels must have shape \(n,\) or \(n, 1\), got \(4, 1, 1\)$"),
        ((4, 1, 1), 3, r"^class labels must have shape \(n,\) or \(n, 1\), or one-hot \(4, 3\); got \(4, 1, 1\)$"),
        ((4, 2), 3, r"^class labels must have shape \(n,\) or \(n, 1\), or one-hot \(4, 3\); got \(4, 2\)$"),
    ],
)
def test_labels_of_another_shape_than_a_vector_a_column_or_one_hot_rows_are_refused(shape, outputs, message):
    with pytest.raises(ValueError, match=message):
        checks.labels(np.zeros(shape), 4, outputs)
