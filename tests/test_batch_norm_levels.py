"""Batch norm at its levels, pinned to each other to 1e-12 in float64:

(a) `dp.nn.batch_norm_composed`, the paper's lines in Node operations (autodiff's gradient);
(b) `dp.nn.batch_norm_closed_form`, one primitive with the paper's closed-form backward pass,
    used by the `BatchNorm` layer;
(c) `dp.MLP`, made of the same layer objects as a seed-style network.

Outputs, every gradient, the moving averages and eval mode; and batch renormalization's r and
d, constants that (a) and (b) both take.
"""

import numpy as np
import pytest

import dp
from dp import Node
from dp.nn.normalization import batch_norm_closed_form, batch_norm_composed, batch_norm_eval

TOL = 1e-12
EPS = 1e-5
ACTIVATIONS = list(dp.nn.ACTIVATIONS)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


def grads_of(out, seed):
    return out.value, out.grad(seed)


class Seedish(dp.NeuralNode):
    """linear (no bias) -> batch norm -> activation -> linear, in the seed notebook's style (level b)."""

    def __init__(self, sizes, activation, seed=0):
        super().__init__(seed)
        self.l1 = self.linear(sizes[0], sizes[1], "l1", bias=False)
        self.bn1 = self.batch_norm(sizes[1], "bn1")
        self.l2 = self.linear(sizes[1], sizes[2], "l2")
        self.activation = activation

    def logits(self, x, train=None):
        return self.l2(getattr(self.bn1(self.l1(x), train), self.activation)())


def data(rows=9, features=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, (rows, features)), rng.normal(size=(1, features)), rng.normal(size=(1, features))


def test_composed_and_closed_form_agree_on_the_output_and_every_gradient():
    x, gamma, beta = data()
    seed = np.random.default_rng(1).normal(size=x.shape)
    results = [
        grads_of(f(Node(x, "x"), Node(gamma, "gamma"), Node(beta, "beta"), EPS), seed)
        for f in (batch_norm_composed, batch_norm_closed_form)
    ]
    (composed, composed_grads), (closed, closed_grads) = results
    close(composed, closed)
    assert composed_grads.keys() == closed_grads.keys() == {"x", "gamma", "beta"}
    for k in composed_grads:
        close(composed_grads[k], closed_grads[k])


def test_the_closed_form_passes_gradcheck():
    x, gamma, beta = data(rows=4, features=3, seed=7)  # not gradcheck's seed 0: its direction would be x itself
    assert dp.gradcheck(lambda x, g, b: batch_norm_closed_form(x, g, b, EPS), x, gamma, beta, tol=1e-7) < 1e-7


@pytest.mark.parametrize(("rows", "offset"), [(3, 0.0), (7, 0.0), (7, 50.0)], ids=["three rows", "seven", "far from 0"])
def test_the_paper_chain_rule_matches_central_finite_differences(rows, offset):
    """Every gradient of the closed form (x through xhat, sigma_B^2 and mu_B; gamma; beta)
    against gradcheck, on a small batch, a larger one, and inputs whose mean is far from 0
    (where a wrong term through mu_B would show). Not two rows: there xhat is +-1 whatever
    x is, so the gradient of x is about eps-sized and finite differences see only noise."""
    x, gamma, beta = data(rows=rows, features=3, seed=11)
    x = x + offset
    seeds = (3, 4)  # two random projections of the output, neither of them x itself
    for seed in seeds:
        error = dp.gradcheck(lambda x, g, b: batch_norm_closed_form(x, g, b, EPS), x, gamma, beta, tol=1e-6, seed=seed)
        assert error < 1e-6


def renorm_constants(features=5, seed=2):
    """Batch renormalization's per-feature r (in [1/3, 3]) and d (in [-2, 2]), as the layer makes them."""
    rng = np.random.default_rng(seed)
    return rng.uniform(1 / 3, 3, (1, features)), rng.uniform(-2, 2, (1, features))


def test_composed_and_closed_form_agree_with_renorms_r_and_d():
    x, gamma, beta = data()
    r, d = renorm_constants()
    seed = np.random.default_rng(1).normal(size=x.shape)
    (composed, composed_grads), (closed, closed_grads) = (
        grads_of(f(Node(x, "x"), Node(gamma, "gamma"), Node(beta, "beta"), EPS, r=r, d=d), seed)
        for f in (batch_norm_composed, batch_norm_closed_form)
    )
    close(composed, closed)
    close(closed, gamma * ((x - x.mean(0)) / np.sqrt(x.var(0) + EPS) * r + d) + beta)
    assert composed_grads.keys() == closed_grads.keys() == {"x", "gamma", "beta"}  # r and d: constants
    for k in composed_grads:
        close(composed_grads[k], closed_grads[k])


def test_with_r_and_d_held_fixed_the_closed_form_passes_gradcheck():
    """r and d are constants (the paper's stop_gradient): finite differences that hold them
    fixed agree with the chain rule through (x - mu_B) / sigma_B times r."""
    x, gamma, beta = data(rows=5, features=3, seed=7)
    r, d = renorm_constants(features=3)
    for seed in (3, 4):
        error = dp.gradcheck(
            lambda x, g, b: batch_norm_closed_form(x, g, b, EPS, r=r, d=d), x, gamma, beta, tol=1e-6, seed=seed
        )
        assert error < 1e-6


def test_r_1_and_d_0_are_batch_norm_to_the_bit():
    x, gamma, beta = data()
    seed = np.random.default_rng(1).normal(size=x.shape)
    ones, zeros = np.ones((1, 5)), np.zeros((1, 5))
    for f in (batch_norm_composed, batch_norm_closed_form):
        plain, given = (
            grads_of(f(Node(x, "x"), Node(gamma, "gamma"), Node(beta, "beta"), EPS, **extra), seed)
            for extra in ({}, {"r": ones, "d": zeros})
        )
        np.testing.assert_array_equal(plain[0], given[0])
        for k in plain[1]:
            np.testing.assert_array_equal(plain[1][k], given[1][k])


def test_the_closed_form_keeps_float32_and_agrees_with_float64():
    x, gamma, beta = data()
    seed = np.random.default_rng(8).normal(size=x.shape)
    results = {}
    for dtype in (np.float32, np.float64):
        nodes = [Node(v.astype(dtype), k) for k, v in (("x", x), ("gamma", gamma), ("beta", beta))]
        out = batch_norm_closed_form(*nodes, eps=EPS)
        results[dtype] = grads_of(out, seed.astype(dtype))
        assert out.dtype == dtype and all(g.dtype == dtype for g in results[dtype][1].values())
    (value32, grads32), (value64, grads64) = results[np.float32], results[np.float64]
    np.testing.assert_allclose(value32, value64, rtol=0, atol=1e-5)
    for k in grads64:
        np.testing.assert_allclose(grads32[k], grads64[k], rtol=0, atol=1e-4 * np.abs(grads64[k]).max())


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_mlp_trains_exactly_as_the_seed_style_network(activation):
    """(c) inside MLP against (b) inside a seed-style network with the same parameters:
    three SGD steps, then eval mode."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 5)), rng.integers(0, 2, (10, 1)).astype(float)
    mlp = dp.MLP((5, 4, 1), activation=activation, seed=0)
    seedish = Seedish((5, 4, 1), activation, seed=0)
    seedish.set_param(mlp.params)
    for _ in range(3):
        for net, logits in ((mlp, mlp.logits(x)), (seedish, seedish.logits(x))):
            loss = dp.nn.losses.binary_cross_entropy_with_logits(logits, y)
            dp.optim.SGD(lr=0.1).step(net.params, loss.grad(1))
    for k in mlp.params:
        close(mlp.params[k], seedish.params[k])
    assert mlp.params["batches_bn1"][0, 0] == 3
    close(mlp.logits(x, train=False).value, seedish.logits(x, train=False).value)


def test_eval_mode_is_the_same_affine_map_at_every_level():
    x, gamma, beta = data()
    mean, var = np.full((1, 5), 0.5), np.full((1, 5), 2.0)
    expected = gamma * (x - mean) / np.sqrt(var + EPS) + beta
    close(batch_norm_eval(Node(x), gamma, beta, mean, var, EPS).value, expected)


def test_counting_batches_makes_a_layer_trained_and_survives_a_checkpoint(tmp_path):
    model = dp.MLP()
    assert not model.hidden[0][1].trained
    model.loss(np.ones((4, 30)), [0, 1, 0, 1])  # constant features: the batch variance is exactly 0
    norm = model.hidden[0][1]
    assert norm.trained and not model.params["avg_variance_bn1"].any()
    assert model.params["batches_bn1"][0, 0] == 1
    loaded = dp.checkpoint.load(dp.checkpoint.save(model, tmp_path / "m.npz"))
    assert loaded.hidden[0][1].trained and loaded.params["batches_bn1"][0, 0] == 1


def test_set_param_refuses_a_fractional_or_negative_batch_count():
    model = dp.MLP()
    with pytest.raises(ValueError, match="whole number"):
        model.set_param({"batches_bn1": [[1.5]]})
    with pytest.raises(ValueError, match="cannot be negative"):
        model.set_param({"batches_bn1": [[-1.0]]})
    assert model.params["batches_bn1"][0, 0] == 0


@pytest.mark.parametrize("level", ["closed form", "layer", "layer eval", "mlp"])
def test_repeated_grad_calls_on_one_graph_give_each_seeds_own_gradients(level):
    """A vjp that wrote into an array it keeps would make the second grad() differ."""
    rng = np.random.default_rng(6)
    x, gamma, beta = data()
    s1, s2 = rng.normal(size=(9, 5)), rng.normal(size=(9, 5))
    if level == "closed form":
        out = batch_norm_closed_form(Node(x, "x"), Node(gamma, "gamma"), Node(beta, "beta"), EPS)
    elif level == "mlp":
        model = dp.MLP((5, 5, 5), seed=0)
        out = model.logits(x)
        s1, s2 = s1[:, :5], s2[:, :5]
    else:
        net = Seedish((5, 5, 2), "tanh")
        net.bn1(net.l1(rng.normal(size=(9, 5))))  # a first batch, for eval mode's averages
        out = net.bn1(net.l1(Node(x, "x")), train=level == "layer").tanh()
    first = out.grad(s1)
    second, again = out.grad(s2), out.grad(s1)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
        close(out.grad(s1 + s2)[k], first[k] + second[k])  # linear in the seed
