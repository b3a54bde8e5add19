"""Documented defaults, pinned by behaviour, and the arguments that override them, honoured.

Calling a public entry point without an argument gives exactly what calling it with the
documented value gives (batch norm's momentum 0.1 and eps 1e-5, layer norm's eps 1e-5,
dropout's p 0.5, fit's batch_size 50 and seed 0, the optimizers' hyperparameters,
``grad``'s seed 1, the reductions' ``keepdims=True``, softmax's last axis). And a value
given instead reaches the computation: an eps handed to layer norm or to a seed-style
batch-norm layer is the eps it divides by, and ``alpha`` is the learning rate's other name
for every optimizer.
"""

import numpy as np
import pytest

import dp
from dp.optim import SGD, Adam, Momentum, RMSProp
from dp.train import fit

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 3)) * 0.01  # a small variance: eps is felt
X3 = RNG.normal(size=(2, 3, 4))


class Net(dp.NeuralNode):
    """A seed-style model: one batch-norm layer over 3 features (built with ``options``), then dropout."""

    def __init__(self, dropout=None, **options):
        self.params = dict()
        self.seed = 0
        self.bn1 = self.batch_norm(3, "bn1", **options)
        self.drop = self.dropout(seed=1) if dropout is None else self.dropout(p=dropout, seed=1)

    def forward(self, x, train=None):
        return self.drop(self.bn1(x, train), train).sigmoid()


def _same(a, b):
    """Two dicts of arrays, or two arrays, equal bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    else:
        np.testing.assert_array_equal(a, b)


def _by_hand(x, gamma, beta, mean, var, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


# ----- layers and models -----


def test_a_seed_style_batch_norms_defaults_are_momentum_0_1_and_eps_1e_5():
    default, documented = Net(), Net(momentum=0.1, eps=1e-5)
    for _ in range(3):
        _same(default.forward(X).value, documented.forward(X).value)
    _same(default.params, documented.params)
    _same(default.forward(X, train=False).value, documented.forward(X, train=False).value)
    assert not np.array_equal(Net(momentum=0.2).forward(X).value, Net(momentum=0.1, eps=2e-5).forward(X).value)


def test_a_seed_style_batch_norms_averages_move_by_momentum_0_1():
    net = Net()
    net.bn1(X)
    _same(net.params["avg_mean_bn1"], 0.1 * X.mean(axis=0, keepdims=True))
    _same(net.params["avg_variance_bn1"], 0.1 * X.var(axis=0, keepdims=True))


def test_a_batch_norm2d_layers_defaults_are_momentum_0_1_eps_1e_5_and_a_biased_average():
    images = np.random.default_rng(2).normal(size=(2, 3, 2, 2)) * 0.01  # a small variance: eps is felt
    default, documented = dp.NeuralNode(), dp.NeuralNode()
    layers = default.batch_norm2d(3, "bn"), documented.batch_norm2d(3, "bn", 0.1, 1e-5, unbiased_average=False)
    _same(layers[0](images).value, layers[1](images).value)
    _same(default.params, documented.params)
    _same(layers[0](images, train=False).value, layers[1](images, train=False).value)


def test_the_mlps_batch_norm_defaults_are_momentum_0_1_and_eps_1e_5():
    x, y = RNG.normal(size=(8, 30)) * 0.01, np.arange(8) % 2
    default, documented = dp.MLP(), dp.MLP(momentum=0.1, eps=1e-5)
    _same(default.loss(x, y).grad(1), documented.loss(x, y).grad(1))
    _same(default.params, documented.params)
    _same(default.predict_proba(x), documented.predict_proba(x))


def test_the_batch_norm_and_layer_norm_functions_default_eps_is_1e_5():
    gamma, beta = np.ones((1, 3)), np.zeros((1, 3))
    _same(dp.nn.batch_norm(X, gamma, beta).value, dp.nn.batch_norm(X, gamma, beta, eps=1e-5).value)
    _same(dp.nn.layer_norm(X, gamma, beta).value, dp.nn.layer_norm(X, gamma, beta, eps=1e-5).value)


def test_a_layer_norm_layers_default_eps_is_1e_5():
    model = dp.NeuralNode()
    default, documented = model.layer_norm(3, "a"), model.layer_norm(3, "b", eps=1e-5)
    _same(default(X).value, documented(X).value)
    # To rounding (the layer's primitive divides in another order than the formula): any other
    # eps, 1e-6 or 1e-4 say, moves these values by more than 1e-7, far above 1e-12.
    by_hand = _by_hand(X, 1, 0, X.mean(1, keepdims=True), X.var(1, keepdims=True), 1e-5)
    np.testing.assert_allclose(default(X).value, by_hand, rtol=1e-12, atol=1e-14)


def test_dropouts_default_p_is_0_5():
    x = np.ones((200, 3))
    default, documented = Net(), Net(dropout=0.5)
    default.bn1 = documented.bn1 = lambda x, train=None: dp.Node(x)  # dropout alone
    dropped = default.forward(x).value
    _same(dropped, documented.forward(x).value)
    assert set(np.unique(dropped)) == {0.5, 1 / (1 + np.exp(-2.0))}  # kept values are doubled: 1 / (1 - 0.5)


# ----- an argument given instead of the default reaches the computation -----


def test_layer_norm_divides_by_the_eps_it_is_given():
    """Issue 24: with eps=1.0, [[0, 1]] has mean 0.5 and variance 0.25: +-0.5 / sqrt(1.25)."""
    y = dp.nn.layer_norm([[0.0, 1.0]], 1, 0, eps=1.0).value
    np.testing.assert_allclose(y, [[-0.5 / np.sqrt(1.25), 0.5 / np.sqrt(1.25)]], rtol=1e-12)
    layer = dp.NeuralNode().layer_norm(2, "ln", eps=1.0)
    np.testing.assert_allclose(layer([[0.0, 1.0]]).value, y, rtol=1e-12)


def test_the_batch_norm_function_divides_by_the_eps_it_is_given():
    """Batch norm's statistics per feature: the column [0, 1] with eps=1.0 gives +-0.5 / sqrt(1.25)."""
    y = dp.nn.batch_norm([[0.0], [1.0]], 1, 0, eps=1.0).value
    np.testing.assert_allclose(y, [[-0.5 / np.sqrt(1.25)], [0.5 / np.sqrt(1.25)]], rtol=1e-12)


def test_a_seed_style_batch_norm_layer_uses_its_eps_in_training_and_in_eval():
    """Issue 25: a layer built with eps=0.1 normalizes with 0.1, not the default, in both modes."""
    net = Net(eps=0.1)
    mean, var = X.mean(axis=0, keepdims=True), X.var(axis=0, keepdims=True)
    np.testing.assert_allclose(net.bn1(X).value, _by_hand(X, 1, 0, mean, var, 0.1), rtol=1e-12, atol=1e-15)
    averages = net.params["avg_mean_bn1"], net.params["avg_variance_bn1"]
    np.testing.assert_allclose(net.bn1(X, train=False).value, _by_hand(X, 1, 0, *averages, 0.1), rtol=1e-12)


def test_the_mlp_uses_the_eps_it_is_given():
    x, y = RNG.normal(size=(8, 30)) * 0.01, np.arange(8) % 2
    assert not np.allclose(dp.MLP(eps=0.1).loss(x, y).value, dp.MLP().loss(x, y).value)


OPTIMIZERS = [SGD, Momentum, RMSProp, Adam]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda c: c.__name__)
def test_alpha_is_the_learning_rates_other_name(optimizer):
    """Issue 26: for every optimizer, alpha=0.05 is lr=0.05, and giving both is refused."""
    assert optimizer(alpha=0.05).lr == 0.05
    _same(_steps(optimizer(alpha=0.05)), _steps(optimizer(lr=0.05)))
    with pytest.raises(TypeError, match="not both"):
        optimizer(lr=0.1, alpha=0.2)


# ----- the optimizers' defaults -----


def _steps(optimizer, n=3):
    """The parameters after n steps of ``optimizer`` on fixed gradients."""
    rng = np.random.default_rng(1)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(1, 2))}
    for _ in range(n):
        optimizer.step(params, {k: rng.normal(size=v.shape) for k, v in params.items()})
    return params


DOCUMENTED = [  # the class, and its defaults as its docstring states them
    (SGD, {"lr": 0.01, "weight_decay": 0.0, "decoupled": False}),
    (Momentum, {"lr": 0.01, "beta": 0.9, "weight_decay": 0.0, "decoupled": False}),
    (RMSProp, {"lr": 0.001, "beta": 0.9, "epsilon": 1e-8, "weight_decay": 0.0, "decoupled": False}),
    (Adam, {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0, "decoupled": False}),
]


@pytest.mark.parametrize(("optimizer", "defaults"), DOCUMENTED, ids=lambda c: getattr(c, "__name__", ""))
def test_an_optimizer_without_arguments_steps_as_with_its_documented_defaults(optimizer, defaults):
    _same(_steps(optimizer()), _steps(optimizer(**defaults)))
    assert {k: getattr(optimizer(), k) for k in defaults} == defaults


def test_adams_defaults_are_pytorchs():
    """torch.optim.Adam: lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0."""
    adam = Adam()
    assert (adam.lr, adam.beta1, adam.beta2, adam.epsilon, adam.weight_decay) == (1e-3, 0.9, 0.999, 1e-8, 0.0)


# ----- fit -----


def test_fits_defaults_are_batch_size_50_and_seed_0():
    x = RNG.normal(size=(120, 30))
    y = (x[:, 0] > 0).astype(float)
    default, documented = dp.MLP(), dp.MLP()
    fit(default, x, y, Adam(), steps=3, progress=False)
    fit(documented, x, y, Adam(), steps=3, progress=False, batch_size=50, seed=0)
    _same(default.params, documented.params)
    other = dp.MLP()
    fit(other, x, y, Adam(), steps=3, progress=False, batch_size=50, seed=1)
    assert not np.array_equal(other.params["weight_l1"], default.params["weight_l1"])


# ----- Node -----


def test_grads_default_seed_is_1():
    x = dp.Node(np.arange(6.0).reshape(2, 3), "x")
    _same((x * 3).grad(), (x * 3).grad(1))
    _same((x * 3).grad()["x"], np.full((2, 3), 3.0))


@pytest.mark.parametrize("reduction", ["sum", "mean", "var", "max", "logsumexp"])
def test_reductions_keep_their_dimensions_by_default(reduction):
    x = dp.Node(X3)
    for axis in (None, 0, 1, (1, 2)):
        default = getattr(x, reduction)(axis=axis)
        kept = getattr(x, reduction)(axis=axis, keepdims=True)
        assert default.shape == kept.shape == np.sum(X3, axis=axis, keepdims=True).shape
        _same(default.value, kept.value)
        _same(getattr(dp.ops, reduction)(X3, axis=axis)[0], kept.value)  # the primitive's own default


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_normalizes_over_the_last_axis_by_default_also_in_3_d(name):
    """Issue 22: the method's default and the primitive's (dp.ops takes arrays)."""
    x = dp.Node(X3)
    for default in (getattr(x, name)().value, getattr(dp.ops, name)(X3)[0]):
        _same(default, getattr(x, name)(axis=-1).value)
        probabilities = np.exp(default) if name == "log_softmax" else default
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1, rtol=1e-12)


def test_leaky_relus_default_slope_is_0_01_and_elus_alpha_1():
    a = np.array([[-2.0, 3.0]])
    for default in (dp.Node(a).leaky_relu().value, dp.ops.leaky_relu(a)[0]):
        _same(default, [[-0.02, 3.0]])
    for default in (dp.Node(a).elu().value, dp.ops.elu(a)[0]):
        _same(default, [[np.expm1(-2.0), 3.0]])


# ----- the other documented defaults of public functions -----


def test_the_normalization_functions_default_eps_is_1e_5():
    gamma, beta = np.ones((1, 3)), np.zeros((1, 3))
    mean, var = X.mean(axis=0, keepdims=True), X.var(axis=0, keepdims=True)
    for name in ("batch_norm_composed", "layer_norm_composed"):
        function = getattr(dp.nn, name)
        _same(function(dp.Node(X), gamma, beta).value, function(dp.Node(X), gamma, beta, eps=1e-5).value)
    eval_mode = dp.nn.batch_norm_eval(dp.Node(X), gamma, beta, mean, var)
    _same(eval_mode.value, dp.nn.batch_norm_eval(dp.Node(X), gamma, beta, mean, var, 1e-5).value)


def test_normalize_and_the_image_normalizations_default_eps_is_1e_5():
    images = np.random.default_rng(1).normal(size=(2, 4, 3, 3)) * 0.01  # a small variance: eps is felt
    gamma, beta = np.ones(4), np.zeros(4)
    _same(dp.normalize(images, (0, 2, 3)).value, dp.normalize(images, (0, 2, 3), eps=1e-5).value)
    for name in ("batch_norm2d", "instance_norm"):
        function = getattr(dp.nn, name)
        _same(function(images, gamma, beta).value, function(images, gamma, beta, eps=1e-5).value)
    _same(dp.nn.group_norm(images, 2, gamma, beta).value, dp.nn.group_norm(images, 2, gamma, beta, eps=1e-5).value)


def test_a_seed_style_models_loss_sums_over_the_rows_by_default():
    net, y = Net(dropout=0.0), np.arange(6) % 2
    _same(net.loss(X, y).value, net.loss(X, y, reduction="sum").value)
    _same(Net(dropout=0.0).loss(X, y).value, 6 * Net(dropout=0.0).loss(X, y, reduction="mean").value)


def test_train_with_no_argument_sets_training_mode():
    net = Net()
    net.eval()
    assert net.train() is net and net.training


def test_the_mlps_seed_is_0_and_its_average_is_biased_by_default():
    x, y = RNG.normal(size=(8, 30)), np.arange(8) % 2
    default, documented = dp.MLP(), dp.MLP(seed=0, unbiased_average=False)
    _same(default.params, documented.params)
    default.loss(x, y), documented.loss(x, y)
    _same(default.params, documented.params)


def test_the_dropout_function_trains_by_default():
    x = np.ones((50, 4))
    _same(dp.nn.dropout(x, 0.5, rng=0).value, dp.nn.dropout(x, 0.5, train=True, rng=0).value)
    assert (dp.nn.dropout(x, 0.5, rng=0).value == 0).any()


@pytest.mark.parametrize("name", ["binary_cross_entropy", "categorical_cross_entropy"])
def test_the_probability_losses_sum_and_clip_at_1e_12_by_default(name):
    loss = getattr(dp.nn.losses, name)
    p, y = (np.array([[0.0], [0.7]]), [0, 0]) if name == "binary_cross_entropy" else (np.eye(2)[::-1], [0, 1])
    _same(loss(dp.Node(p), y).value, loss(dp.Node(p), y, reduction="sum", clip=1e-12).value)


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "softmax_cross_entropy"])
def test_the_logit_losses_sum_by_default(name):
    loss = getattr(dp.nn.losses, name)
    z = np.array([[0.3], [-1.2]]) if name == "binary_cross_entropy_with_logits" else np.array([[0.3, 1.0], [2, -1]])
    _same(loss(dp.Node(z), [0, 1]).value, loss(dp.Node(z), [0, 1], reduction="sum").value)


def test_concatenate_joins_along_the_first_axis_by_default():
    a, b = np.ones((2, 3)), np.zeros((1, 3))
    _same(dp.concatenate([a, b]).value, np.concatenate([a, b]))
    _same(dp.Node(a).concatenate(b).value, np.concatenate([a, b]))
    _same(dp.ops.concatenate(a, b)[0], np.concatenate([a, b]))


def test_a_linear_layers_default_init_is_glorot():
    default, documented = dp.NeuralNode(seed=0), dp.NeuralNode(seed=0)
    default.linear(30, 20, "l1"), documented.linear(30, 20, "l1", init="glorot")
    _same(default.params, documented.params)
