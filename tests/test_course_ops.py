"""The operations the course's other notebooks teach: leaky ReLU, ELU, softplus, logsumexp,
``a.concatenate(b, axis)`` and ``x.T()``. Each is gradchecked in float64, keeps float32,
refuses bad input clearly, and logsumexp reproduces the reference numbers of the CMU Deep
Learning Systems course (homework 2 of its framework "needle")."""

import numpy as np
import pytest

from dp import Node, gradcheck
from dp.node import Transposed

RNG = np.random.default_rng(0)


def away_from_zero(shape, seed=0):
    """Values in [-3, -0.1] and [0.1, 3]: the kinks of ReLU-like functions are at 0."""
    values = np.random.default_rng(seed).uniform(-3, 3, size=shape)
    return np.sign(values) * (0.1 + np.abs(values))


# ----- activations -----

ACTIVATIONS = {
    "leaky_relu": (lambda x: x.leaky_relu(0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
    "elu": (lambda x: x.elu(0.5), lambda a: np.where(a > 0, a, 0.5 * (np.exp(a) - 1))),
    "softplus": (lambda x: x.softplus(), lambda a: np.log1p(np.exp(a))),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients_match_finite_differences_in_float64(name):
    f, _ = ACTIVATIONS[name]
    assert gradcheck(f, away_from_zero((4, 5))) < 1e-6


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_values_follow_their_formula(name):
    f, formula = ACTIVATIONS[name]
    a = away_from_zero((3, 4), seed=1)
    np.testing.assert_allclose(f(Node(a)).value, formula(a), rtol=1e-12)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_keep_float32_in_value_and_gradient(name):
    f, _ = ACTIVATIONS[name]
    x = Node(away_from_zero((3, 4)).astype(np.float32), name="x")
    y = f(x)
    assert y.dtype == np.float32
    assert y.sum().grad(1)["x"].dtype == np.float32


def test_elu_and_softplus_do_not_overflow_for_large_inputs():
    a = np.array([[-1000.0, 1000.0]])
    assert np.isfinite(Node(a).elu().value).all()
    x = Node(a, name="x")
    y = x.softplus()
    np.testing.assert_allclose(y.value, [[0.0, 1000.0]], atol=1e-12)
    np.testing.assert_allclose(y.sum().grad(1)["x"], [[0.0, 1.0]], atol=1e-12)


def test_leaky_relu_with_slope_0_is_relu_and_elu_saturates_at_minus_alpha():
    a = away_from_zero((3, 3))
    np.testing.assert_array_equal(Node(a).leaky_relu(0.0).value, Node(a).relu().value)
    assert Node(np.array([[-50.0]])).elu(2.0).value[0, 0] == pytest.approx(-2.0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x: x.leaky_relu(-0.1), ValueError, "slope must be a finite number >= 0"),
        (lambda x: x.leaky_relu(float("nan")), ValueError, "slope must be a finite number >= 0"),
        (lambda x: x.leaky_relu("0.1"), TypeError, "slope must be a real number"),
        (lambda x: x.elu(True), TypeError, "alpha must be a real number"),
        (lambda x: x.elu(float("inf")), ValueError, "alpha must be a finite number >= 0"),
    ],
)
def test_bad_activation_coefficients_are_refused_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call(Node(np.ones((2, 2))))


# ----- logsumexp -----


@pytest.mark.parametrize("axis, keepdims", [(None, True), (None, False), (0, True), (1, False), ((0, 2), False)])
def test_logsumexp_gradient_matches_finite_differences_in_float64(axis, keepdims):
    a = RNG.normal(size=(2, 3, 4))
    assert gradcheck(lambda x: x.logsumexp(axis, keepdims), a) < 1e-6


def test_logsumexp_keeps_axes_by_default_like_every_dp_reduction():
    x = Node(RNG.normal(size=(4, 3)))
    assert x.logsumexp(axis=0).shape == (1, 3)
    assert x.logsumexp().shape == (1, 1)
    assert x.logsumexp(axis=1, keepdims=False).shape == (4,)


def test_logsumexp_is_stable_where_exp_overflows():
    a = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    np.testing.assert_allclose(Node(a).logsumexp(axis=1).value, [[1000 + np.log(2)], [-1000 + np.log(2)]])
    x = Node(a.astype(np.float32), name="x")
    y = x.logsumexp(axis=1)
    assert y.dtype == np.float32 and np.isfinite(y.value).all()
    np.testing.assert_allclose(y.sum().grad(1)["x"], 0.5)


def test_logsumexp_of_a_row_of_minus_infinity_is_minus_infinity_without_warnings():
    with np.errstate(all="raise"):
        assert Node(np.array([[-np.inf, -np.inf]])).logsumexp(axis=1).value[0, 0] == -np.inf


# The reference numbers hard-coded in the CMU Deep Learning Systems course (10-414/714),
# homework 2, hw2/tests/test_nn_and_optim.py (read from the copy in PKUFlyingPig/CMU10-714):
# test_op_logsumexp_forward_1..5 and test_op_logsumexp_backward_1, 2, 3, 5, with its inputs.


def needle_tensor(*shape, entropy=1):
    """The homework's deterministic input (its ``get_tensor``), as a float32 array."""
    np.random.seed(np.prod(shape) * len(shape) * entropy)
    return (np.random.randint(0, 100, size=shape) / 20).astype(np.float32)


def needle_logsumexp(x, axes):
    return Node(x).logsumexp(axis=axes, keepdims=False).value


def needle_logsumexp_backward(x, axes):
    """The gradient of sum(logsumexp(x, axes) ** 2), as the homework takes it."""
    node = Node(x, name="x")
    return (node.logsumexp(axis=axes, keepdims=False) ** 2).sum().grad(1)["x"]


NEEDLE = {"rtol": 1e-5, "atol": 1e-5}
BIG = np.array([[1e10, 1e9, 1e8, -10], [1e-10, 1e9, 1e8, -10]])


@pytest.mark.parametrize(
    "shape, axes, expected",
    [
        ((3, 3, 3), (1, 2), [5.366029, 4.9753823, 6.208126]),
        ((3, 3, 3), None, [6.7517853]),
        ((1, 2, 3, 4), (0, 2), [[5.276974, 5.047317, 3.778802, 5.0103745], [5.087831, 4.391712, 5.025037, 2.0214698]]),
        ((3, 10), (1,), [5.705309, 5.976375, 5.696459]),
    ],
)
def test_logsumexp_forward_reproduces_the_needle_homework(shape, axes, expected):
    value = needle_logsumexp(needle_tensor(*shape), axes)
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, np.array(expected, dtype=np.float32), **NEEDLE)


def test_logsumexp_forward_reproduces_the_needle_homework_for_huge_inputs():
    expected = [1.00000000e10, 1.00000000e09, 1.00000001e08, -9.30685282e00]
    np.testing.assert_allclose(needle_logsumexp(BIG, (0,)), expected, **NEEDLE)


NEEDLE_BACKWARD_2 = [
    [[1.4293308, 1.2933122, 0.82465225], [0.50017685, 2.1323113, 2.1323113], [1.4293308, 0.58112264, 0.40951014]],
    [[0.3578173, 0.07983983, 4.359107], [1.1300558, 0.561169, 0.1132981], [0.9252113, 0.65198547, 1.7722803]],
    [[0.2755132, 2.365242, 2.888913], [0.05291228, 1.1745441, 0.02627547], [2.748018, 0.13681579, 2.748018]],
]
NEEDLE_BACKWARD_3 = [
    [[0.92824626, 0.839912, 0.5355515], [0.59857905, 2.551811, 2.551811], [1.0213376, 0.41524494, 0.29261813]],
    [[0.16957533, 0.03783737, 2.0658503], [0.98689, 0.49007502, 0.09894446], [0.48244575, 0.3399738, 0.9241446]],
    [[0.358991, 3.081887, 3.764224], [0.12704718, 2.820187, 0.06308978], [3.9397335, 0.19614778, 3.9397335]],
]


@pytest.mark.parametrize(
    "shape, axes, expected",
    [
        ((3, 1), (1,), [[1.0], [7.3], [9.9]]),
        ((3, 3, 3), (1, 2), NEEDLE_BACKWARD_2),
        ((3, 3, 3), (0, 2), NEEDLE_BACKWARD_3),
    ],
)
def test_logsumexp_backward_reproduces_the_needle_homework(shape, axes, expected):
    gradient = needle_logsumexp_backward(needle_tensor(*shape), axes)
    assert gradient.dtype == np.float32
    np.testing.assert_allclose(gradient, np.array(expected, dtype=np.float32), **NEEDLE)


def test_logsumexp_backward_reproduces_the_needle_homework_for_huge_inputs():
    expected = [
        [2.00000000e10, 9.99999999e08, 1.00000001e08, -9.30685282e00],
        [0.00000000e00, 9.99999999e08, 1.00000001e08, -9.30685282e00],
    ]
    np.testing.assert_allclose(needle_logsumexp_backward(BIG, (0,)), expected, **NEEDLE)


# ----- the original dp's spellings: x.T() and a.concatenate(b, axis) -----


def test_transpose_is_a_property_and_a_method():
    x = Node(np.arange(6.0).reshape(2, 3), name="x")
    assert isinstance(x.T, Transposed)
    np.testing.assert_array_equal(x.T.value, x.value.T)
    np.testing.assert_array_equal(x.T().value, x.value.T)  # the original dp's spelling
    assert x.T.T.shape == (2, 3) and x.T().T().shape == (2, 3)
    grads = (x.T() @ x).sum().grad(1)
    np.testing.assert_allclose(grads["x"], (x.T @ x).sum().grad(1)["x"])


def test_calling_a_transpose_takes_no_arguments():
    with pytest.raises(TypeError):
        Node(np.ones((2, 3))).T(1)


@pytest.mark.parametrize("axis", [0, 1])
def test_concatenate_as_a_method_joins_two_nodes_and_splits_the_gradient(axis):
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    joined = Node(a).concatenate(Node(b), axis)  # the original dp's spelling: axis positional
    np.testing.assert_array_equal(joined.value, np.concatenate([a, b], axis=axis))
    assert gradcheck(lambda x, y: x.concatenate(y, axis=axis).square(), a, b) < 1e-6


def test_concatenate_as_a_method_takes_an_array_and_keeps_float32():
    a = Node(np.ones((2, 2), dtype=np.float32), name="a")
    joined = a.concatenate(np.zeros((2, 1)), axis=1)
    assert joined.dtype == np.float32 and joined.shape == (2, 3)
    assert joined.sum().grad(1)["a"].dtype == np.float32


def test_concatenate_as_a_method_names_the_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match="dimension"):
        Node(np.ones((2, 2))).concatenate(Node(np.ones((3, 3))), axis=1)
