"""gradcheck, the public tool users check their own primitives with."""

import numpy as np
import pytest

import dp
from dp import GradcheckError, Node, gradcheck


@dp.primitive
def cube(x):
    return x**3, (lambda g: g * 3 * x**2,)


@dp.primitive
def wrong_cube(x):
    return x**3, (lambda g: g * 2 * x**2,)  # the derivative is 3 x**2


def test_a_correct_primitive_passes_with_a_tiny_error():
    error = gradcheck(lambda x: cube(x), np.array([[0.5, -1.0, 2.0]]))
    assert 0 <= error < 1e-8


def test_a_wrong_primitive_raises_a_report_naming_the_argument_and_the_values():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x, y: wrong_cube(x) * y, np.array([[0.5, -1.0, 2.0]]), np.ones((1, 3)))
    report = str(info.value)
    assert "arg0 shape (1, 3): relative error" in report
    assert "dp " in report and "finite differences" in report
    assert isinstance(info.value, AssertionError)


def test_the_worst_error_over_all_arguments_is_returned():
    error = gradcheck(lambda x, y: (x * y).sum(), np.ones((2, 2)), np.full((2, 2), 3.0), tol=1.0)
    assert error < 1e-8


def test_a_function_of_only_some_arguments_checks_the_others_as_zero():
    assert gradcheck(lambda x, y: x * 2, np.ones((2, 2)), np.ones((2, 2))) < 1e-8  # y's gradient: 0 both ways
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, y: x * Node(y.value), np.ones((2, 2)), np.ones((2, 2)))  # y cut from the graph


def test_f_must_return_a_node():
    with pytest.raises(TypeError, match="must return a Node"):
        gradcheck(lambda x: x.value, np.ones((2, 2)))


def test_the_check_runs_in_float64_even_for_float32_input():
    assert gradcheck(lambda x: x.tanh(), np.ones((2, 2), np.float32)) < 1e-6


def test_transposed_and_fortran_ordered_input_is_checked_like_any_other():
    x = np.arange(6.0).reshape(2, 3)
    assert gradcheck(lambda a: a * 2, x.T) < 1e-6
    assert gradcheck(lambda a: (a * a).sum(), np.asfortranarray(x)) < 1e-6


def test_gradcheck_passes_batch_norm_of_data_drawn_with_the_seed_of_its_own_direction():
    # With the projection drawn by default_rng(0) too, u would be x itself, batch norm's output
    # projected on it constant, and every gradient rounding error: the check failed a right gradient.
    x = np.random.default_rng(0).standard_normal((8, 3))
    assert dp.gradcheck(lambda node: dp.batch_norm(node, np.ones((1, 3)), np.zeros((1, 3))), x) < 1e-6


def test_gradcheck_with_no_seed_draws_a_fresh_direction():
    assert dp.gradcheck(lambda node: (node * node).sum(), np.array([[1.0, -2.0]]), seed=None) < 1e-6
