"""The layers the course's other notebooks teach, beside batch norm: layer norm (per-row
statistics, no state) and inverted dropout. Gradchecked in float64, float32 kept, bad input
refused, and layer norm reproduces the reference numbers of the CMU Deep Learning Systems
course (homework 2 of its framework "needle")."""

import numpy as np
import pytest

import dp
from dp import Node, gradcheck
from dp.nn.dropout import dropout
from dp.nn.normalization import layer_norm, layer_norm_composed

RNG = np.random.default_rng(0)


class Net(dp.NeuralNode):
    """A model in the seed notebook's style with the two new layers."""

    def __init__(self, seed=0, dtype=np.float64):
        super().__init__(seed, dtype)
        self.l1 = self.linear(4, 6, "l1")
        self.ln1 = self.layer_norm(6, "ln1")
        self.drop = self.dropout(0.5)
        self.l2 = self.linear(6, 1, "l2")

    def forward(self, x, train=None):
        return self.l2(self.drop(self.ln1(self.l1(x)).tanh(), train)).sigmoid()


# ----- layer norm -----


def test_layer_norm_gradients_match_finite_differences_in_float64():
    x, gamma, beta = RNG.normal(size=(5, 4)), RNG.normal(size=(1, 4)), RNG.normal(size=(1, 4))
    assert gradcheck(lambda x, g, b: layer_norm_composed(x, g, b), x, gamma, beta) < 1e-6


def test_layer_norm_normalizes_each_row_by_its_own_statistics():
    x = RNG.normal(3.0, 5.0, size=(6, 8))
    y = layer_norm(x, 1.0, 0.0).value
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1.0, rtol=1e-5)
    # Each row alone gives the same result: no row depends on another (unlike batch norm).
    np.testing.assert_allclose(np.vstack([layer_norm(row[None], 1.0, 0.0).value for row in x]), y, rtol=1e-12)


def test_the_layer_has_gamma_and_beta_and_no_state_and_no_modes():
    net = Net()
    assert {"gamma_ln1", "beta_ln1"} <= set(net.params) and not any("avg" in k for k in net.params)
    x = RNG.normal(size=(3, 6))
    before = {k: v.copy() for k, v in net.params.items()}
    trained = net.ln1(x).value
    net.eval()
    np.testing.assert_array_equal(net.ln1(x).value, trained)  # the same function in evaluation
    np.testing.assert_allclose(net.ln1(x[:1]).value, trained[:1])  # a batch of one row is fine
    assert all(np.array_equal(before[k], net.params[k]) for k in before)  # nothing updated


def test_the_layer_learns_gamma_and_beta():
    net = Net()
    grads = net.loss(RNG.normal(size=(8, 4)), RNG.integers(0, 2, size=8), train=False).grad(1)
    assert grads["gamma_ln1"].shape == grads["beta_ln1"].shape == (1, 6)


def test_layer_norm_keeps_float32():
    net = Net(dtype=np.float32)
    x = Node(RNG.normal(size=(3, 6)).astype(np.float32), name="x")
    y = net.ln1(x)
    assert y.dtype == np.float32
    grads = y.square().sum().grad(1)
    assert grads["x"].dtype == grads["gamma_ln1"].dtype == np.float32


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda net: net.ln1(np.ones((3, 5))), ValueError, r"must have shape \(n, 6\)"),
        (lambda net: net.ln1(np.full((3, 6), np.nan)), ValueError, "NaN or inf"),
        (lambda net: net.layer_norm(6, "other", eps=0.0), ValueError, "eps must be"),
        (lambda net: net.layer_norm(6, "ln1"), ValueError, "already in use"),
        (lambda net: net.layer_norm(0, "other"), ValueError, "fan_in must be"),
        (lambda net: layer_norm(np.ones((2, 3, 4)), 1.0, 0.0), ValueError, r"shape \(N, features\)"),
        (lambda net: layer_norm(np.ones((2, 3)), np.ones(4), 0.0), ValueError, r"gamma must have shape \(1, 3\)"),
        (lambda net: layer_norm(np.ones((2, 3)), 1.0, 0.0, eps=-1.0), ValueError, "eps must be"),
    ],
)
def test_bad_layer_norm_input_is_refused_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call(Net())


# The reference numbers hard-coded in the CMU Deep Learning Systems course (10-414/714),
# homework 2, hw2/tests/test_nn_and_optim.py (read from the copy in PKUFlyingPig/CMU10-714):
# test_nn_layernorm_forward_1..3 and test_nn_layernorm_backward_1..4 for its LayerNorm1d
# (eps = 1e-5, weight 1, bias 0), with the homework's inputs.


def needle_tensor(*shape, entropy=1):
    """The homework's deterministic input (its ``get_tensor``), as a float32 array."""
    np.random.seed(np.prod(shape) * len(shape) * entropy)
    return (np.random.randint(0, 100, size=shape) / 20).astype(np.float32)


def needle_layer(features):
    """LayerNorm1d(features) of the homework, as a layer of a float32 dp model."""
    return dp.NeuralNode(dtype=np.float32).layer_norm(features, "ln")


def needle_forward(shape, features):
    return needle_layer(features)(needle_tensor(*shape)).value


def needle_backward(shape, features):
    """The gradient of sum(LayerNorm1d(x) ** 4), as the homework takes it."""
    x = Node(needle_tensor(*shape), name="x")
    return (needle_layer(features)(x) ** 4).sum().grad(1)["x"]


NEEDLE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.mark.parametrize(
    "shape, expected",
    [
        (
            (3, 3),
            [
                [-0.06525002, -1.1908097, 1.2560595],
                [1.3919864, -0.47999576, -0.911992],
                [1.3628436, -1.0085043, -0.3543393],
            ],
        ),
        (
            (2, 10),
            [
                [0.8297899, 1.6147263, -1.525019, -0.4036814, 0.306499],
                [0.08223152, 0.6429003, -1.3381294, 0.8671678, -1.0764838],
                [-1.8211555, 0.39098236, -0.5864739, 0.853988, -0.3806936],
                [1.2655486, 0.33953735, 1.522774, -0.8951442, -0.68936396],
            ],
        ),
        ((1, 5), [[-1.0435007, -0.8478443, 0.7500162, -0.42392215, 1.565251]]),
    ],
)
def test_layer_norm_forward_reproduces_the_needle_homework(shape, expected):
    value = needle_forward(shape, shape[1])
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, np.array(expected, dtype=np.float32).reshape(shape), **NEEDLE)


@pytest.mark.parametrize(
    "shape, expected",
    [
        (
            (3, 3),
            [
                [-2.8312206e-06, -6.6757202e-05, 6.9618225e-05],
                [1.9950867e-03, -6.8092346e-04, -1.3141632e-03],
                [4.4703484e-05, -3.2544136e-05, -1.1801720e-05],
            ],
        ),
        (
            (2, 10),
            [
                [-2.301574, 4.353944, -1.9396116, 2.4330146, -1.1070801],
                [0.01571643, -2.209449, 0.49513134, -2.261348, 2.5212562],
                [-9.042961, -2.6184766, 4.5592957, -4.2109876, 3.4247458],
                [-1.9075732, -2.2689414, 2.110825, 5.044025, 4.910048],
            ],
        ),
        ((1, 5), [[0.150192, 0.702322, -3.321343, 0.31219, 2.156639]]),
        ((5, 1), [[0.0], [0.0], [0.0], [0.0], [0.0]]),
    ],
)
def test_layer_norm_backward_reproduces_the_needle_homework(shape, expected):
    gradient = needle_backward(shape, shape[1])
    assert gradient.dtype == np.float32
    np.testing.assert_allclose(gradient, np.array(expected, dtype=np.float32).reshape(shape), **NEEDLE)


# ----- dropout -----


def test_dropout_keeps_each_element_with_probability_1_minus_p_and_scales_it():
    x = np.ones((400, 50))
    y = dropout(x, 0.3, rng=0).value
    assert set(np.unique(y)) == {0.0, 1 / 0.7}
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02  # inverted: the expected value is the input's


def test_the_backward_pass_uses_the_forward_pass_mask():
    x = Node(RNG.normal(size=(6, 5)), name="x")
    y = dropout(x, 0.5, rng=1)
    kept = y.value != 0
    gradient = y.sum().grad(1)["x"]
    np.testing.assert_array_equal(gradient, np.where(kept, 2.0, 0.0))


def test_dropout_gradient_matches_finite_differences_for_a_fixed_mask():
    # A new generator from the same seed at every call: the same mask for every evaluation.
    assert gradcheck(lambda x: dropout(x, 0.4, rng=np.random.default_rng(7)).tanh(), RNG.normal(size=(4, 6))) < 1e-6


def test_evaluation_and_p_0_return_the_input_itself():
    x = Node(RNG.normal(size=(3, 3)))
    assert dropout(x, 0.5, train=False) is x
    assert dropout(x, 0.0) is x


def test_the_layer_follows_the_model_mode_and_its_seed():
    x = RNG.normal(size=(5, 6))
    first, second = Net(seed=3), Net(seed=3)
    np.testing.assert_array_equal(first.drop(x).value, second.drop(x).value)  # the model's seed
    assert not np.array_equal(first.drop(x).value, first.drop(x).value)  # a new mask each call
    first.eval()
    np.testing.assert_array_equal(first.drop(x).value, x)
    rows = RNG.normal(size=(5, 4))
    np.testing.assert_array_equal(first.predict_proba(rows), first.predict_proba(rows))  # no dropout in eval
    assert not np.array_equal(first.drop(x, train=True).value, x)


def test_a_layer_seed_gives_the_layer_its_own_generator():
    model = dp.NeuralNode(seed=0)
    a, b = model.dropout(0.5, seed=11), dp.NeuralNode(seed=99).dropout(0.5, seed=11)
    x = np.ones((4, 4))
    np.testing.assert_array_equal(a(x).value, b(x).value)


def test_dropout_keeps_float32():
    x = Node(RNG.normal(size=(4, 4)).astype(np.float32), name="x")
    y = dropout(x, 0.5, rng=0)
    assert y.dtype == np.float32 and y.sum().grad(1)["x"].dtype == np.float32
    assert Net(dtype=np.float32).drop(np.ones((2, 2))).dtype == np.float32


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: dropout(np.ones((2, 2)), 1.0), ValueError, r"p must be a finite number in \[0, 1\)"),
        (lambda: dropout(np.ones((2, 2)), -0.1), ValueError, "p must be"),
        (lambda: dropout(np.ones((2, 2)), float("nan")), ValueError, "p must be"),
        (lambda: dropout(np.ones((2, 2)), "0.5"), TypeError, "p must be a real number"),
        (lambda: dropout(np.ones((2, 2)), 0.5, train=1), TypeError, "train must be True or False"),
        (lambda: dropout(np.ones((2, 2)), 0.5, rng=-1), ValueError, "seed"),
        (lambda: dropout(np.array([["a"]]), 0.5), TypeError, "dtype"),
        (lambda: dp.NeuralNode().dropout(1.5), ValueError, "p must be"),
        (lambda: dp.NeuralNode().dropout(0.5, seed=0.5), TypeError, "seed must be a whole number"),
    ],
)
def test_bad_dropout_input_is_refused_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_layer_norm_scales_by_gamma_and_shifts_by_beta_per_feature():
    x = RNG.normal(size=(3, 3))  # as many rows as features: a column gamma would scale rows instead
    xhat = layer_norm(x, 1.0, 0.0).value
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(layer_norm(x, gamma, beta).value, xhat * gamma + beta, rtol=1e-12)
    np.testing.assert_allclose(layer_norm(x, gamma.reshape(1, 3), beta).value, xhat * gamma + beta, rtol=1e-12)


def test_layer_norm_uses_eps_1e_5_by_default():
    x = Node(np.array([[0.0, 0.002]]))  # a row variance of 1e-6: eps matters
    np.testing.assert_allclose(
        layer_norm_composed(x, 1.0, 0.0).value, [[-1, 1]] / np.sqrt(11.0), rtol=1e-6
    )  # 1e-3 / sqrt(1e-6 + 1e-5)


def test_layer_norm_refuses_an_empty_batch():
    with pytest.raises(ValueError, match="with N >= 1"):
        layer_norm(np.ones((0, 3)), 1.0, 0.0)
