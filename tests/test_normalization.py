"""Normalization as one function over axes (`dp.normalize`) and its named forms: batch norm
on rows and on images (`dp.batch_norm`, `dp.batch_norm2d`), layer norm on rows and images,
instance norm and group norm, and the layers `NeuralNode.batch_norm2d` and `group_norm`.

Pinned down, in float64 unless a test is about float32:

- every form's gradient (x, gamma, beta) against central finite differences (`dp.gradcheck`);
- the closed-form primitive against autodiff through the paper's lines (`batch_norm_composed`),
  and group norm's reshape against a group norm composed here from Node operations, to 1e-12;
- the family's identities: one group is layer norm, C groups are instance norm, batch norm on
  images is batch norm on the (N * H * W, C) rows of its pixels; dtypes; the normalized moments;
- the layers' moving averages, batch count, eval mode and parameters;
- running statistics in depth: ``momentum=None`` (the cumulative average, by hand) and batch
  renormalization (``renorm=True``): with rmax = 1 and dmax = 0 it is batch norm to the bit,
  its r, d, output and gradients by hand, the clipping, the first batch, the warmup schedule;
- bad input: a clear error, and nothing changed.
"""

import numpy as np
import pytest

import dp
from dp import Node, NonFiniteError
from dp.nn.normalization import GroupNorm, batch_norm_closed_form, batch_norm_composed

EPS = 1e-5
TOL = 1e-12
N, C, H, W = 3, 4, 2, 3  # small enough for finite differences, one element at a time
IMAGE = (N, C, H, W)
PER_CHANNEL = (1, C, 1, 1)


def images(shape=IMAGE, seed=0, scale=2.0):
    """Images far from mean 0 and variance 1, and a per-channel gamma and beta (1, C, 1, 1)."""
    rng = np.random.default_rng(seed)
    channels = (1, shape[1], 1, 1)
    return rng.normal(1.0, scale, shape), rng.uniform(0.5, 2.0, channels), rng.normal(size=channels)


def rows(n=5, features=C, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, (n, features)), rng.uniform(0.5, 2.0, (1, features)), rng.normal(size=(1, features))


def close(ours, expected, tol=TOL):
    np.testing.assert_allclose(ours, expected, rtol=0, atol=tol)


def value_and_grads(f, x, gamma, beta, upstream):
    """f's output at Nodes x, gamma, beta (named so) and their gradients given ``upstream``."""
    y = f(Node(x, "x"), Node(gamma, "gamma"), Node(beta, "beta"))
    return y.value, y.grad(upstream)


def assert_same_value_and_grads(f, g, x, gamma, beta, seed=1, tol=TOL):
    upstream = np.random.default_rng(seed).standard_normal(x.shape)
    (y_f, grads_f), (y_g, grads_g) = (value_and_grads(h, x, gamma, beta, upstream) for h in (f, g))
    close(y_f, y_g, tol)
    assert grads_f.keys() == grads_g.keys() == {"x", "gamma", "beta"}
    for name in grads_f:
        assert grads_f[name].shape == grads_g[name].shape
        close(grads_f[name], grads_g[name], tol)


def gradcheck(f, *arrays):
    """Every gradient of f (w.r.t. x, gamma and beta) against central finite differences, for
    two random projections of the output (gradcheck's seed 0 is skipped, as in
    test_batch_norm_levels)."""
    for seed in (3, 4):
        assert dp.gradcheck(f, *arrays, tol=1e-6, seed=seed) < 1e-6


# ----- gradients against finite differences -----

AXES = [(0,), (1,), (0, 2, 3), (2, 3), (1, 2, 3), (-1,), (-3, -1)]


@pytest.mark.parametrize("axes", AXES, ids=str)
def test_normalize_over_any_axes_has_the_gradient_of_finite_differences(axes):
    x, gamma, beta = images()
    gradcheck(lambda x, g, b: dp.normalize(x, axes, EPS, g, b), x, gamma, beta)


@pytest.mark.parametrize("axes", [(0,), (1,), (-1,)], ids=str)
def test_normalize_on_rows_has_the_gradient_of_finite_differences(axes):
    gradcheck(lambda x, g, b: dp.normalize(x, axes, EPS, g, b), *rows())


def test_normalize_with_an_elementwise_gamma_and_beta_has_the_gradient_of_finite_differences():
    x, _, _ = images()
    rng = np.random.default_rng(5)
    gamma, beta = rng.uniform(0.5, 2.0, (1, C, H, W)), rng.normal(size=(1, C, H, W))
    gradcheck(lambda x, g, b: dp.normalize(x, (1, 2, 3), EPS, g, b), x, gamma, beta)


NAMED_FORMS = {
    "batch_norm2d": lambda x, g, b: dp.batch_norm2d(x, g, b, EPS),
    "instance_norm": lambda x, g, b: dp.instance_norm(x, g, b, EPS),
    "layer_norm on images": lambda x, g, b: dp.layer_norm(x, g, b, EPS),
    "group_norm, 1 group": lambda x, g, b: dp.group_norm(x, 1, g, b, EPS),
    "group_norm, 2 groups": lambda x, g, b: dp.group_norm(x, 2, g, b, EPS),
    "group_norm, C groups": lambda x, g, b: dp.group_norm(x, C, g, b, EPS),
}


@pytest.mark.parametrize("form", NAMED_FORMS.values(), ids=NAMED_FORMS.keys())
def test_every_named_form_on_images_has_the_gradient_of_finite_differences(form):
    gradcheck(form, *images(seed=2))


# ----- the closed-form primitive pinned to the paper's lines in Node operations -----


@pytest.mark.parametrize("axes", [(0, 2, 3), (2, 3), (1, 2, 3)], ids=str)
def test_the_closed_form_primitive_equals_the_composed_lines_on_images(axes):
    x, gamma, beta = images(shape=(4, C, 3, 5), seed=3)
    assert_same_value_and_grads(
        lambda x, g, b: batch_norm_closed_form(x, g, b, EPS, axes=axes),
        lambda x, g, b: batch_norm_composed(x, g, b, EPS, axes=axes),
        x,
        gamma,
        beta,
    )


def test_the_closed_form_primitive_equals_the_composed_lines_over_the_batch_of_rows():
    assert_same_value_and_grads(
        lambda x, g, b: batch_norm_closed_form(x, g, b, EPS, axes=(0,)),
        lambda x, g, b: batch_norm_composed(x, g, b, EPS, axes=(0,)),
        *rows(n=9, features=6, seed=4),
    )


PARAMETER_SHAPES = [  # (x's shape, the axes, gamma's and beta's shape)
    ((5, C), (0,), (1, C)),
    ((5, C), (0,), (C,)),
    ((5, C), (1,), ()),
    (IMAGE, (0, 2, 3), PER_CHANNEL),
    (IMAGE, (0, 2, 3), (C, 1, 1)),
    (IMAGE, (2, 3), (1, 1, H, W)),
]


@pytest.mark.parametrize("shape, axes, parameter", PARAMETER_SHAPES, ids=str)
def test_the_primitives_vjp_sums_gamma_and_beta_gradients_over_their_broadcast_axes(shape, axes, parameter):
    """dl/dgamma = sum_i dl/dy_i * xhat_i and dl/dbeta = sum_i dl/dy_i come out of the vjp already
    summed, one value per value of gamma and beta (never an x-sized array for the engine to sum)."""
    rng = np.random.default_rng(5)
    x, g = rng.normal(1.0, 2.0, shape), rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 2.0, parameter), rng.normal(size=parameter)
    _, vjp = batch_norm_closed_form.forward(x, gamma, beta, EPS, axes=axes)
    _, dgamma, dbeta = vjp(g)
    xhat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + EPS)
    summed = tuple(i for i, size in enumerate(np.broadcast_to(gamma, shape).strides) if size == 0)
    assert dgamma.size == dbeta.size == gamma.size
    close(dgamma.reshape(parameter), (g * xhat).sum(axis=summed).reshape(parameter))
    close(dbeta.reshape(parameter), g.sum(axis=summed).reshape(parameter))


def composed_group_norm(x, groups, gamma, beta, eps=EPS):
    """Group norm written out in Node operations (Wu & He, 2018, figure 3): each sample's
    channels split into groups, each group normalized over its channels and positions."""
    n, c, h, w = x.shape
    split = x.reshape(n, groups, c // groups, h, w)
    mean = split.mean(axis=(2, 3, 4))
    var = ((split - mean) ** 2).mean(axis=(2, 3, 4))
    xhat = ((split - mean) / (var + eps).sqrt()).reshape(n, c, h, w)
    return gamma * xhat + beta


@pytest.mark.parametrize("groups", [1, 2, C])
def test_group_norm_through_the_closed_form_equals_a_composed_group_norm(groups):
    x, gamma, beta = images(shape=(2, C, 3, 3), seed=6)
    assert_same_value_and_grads(
        lambda x, g, b: dp.group_norm(x, groups, g, b, EPS),
        lambda x, g, b: composed_group_norm(x, groups, g, b),
        x,
        gamma,
        beta,
    )


# ----- the family's identities -----


def test_group_norm_with_one_group_is_layer_norm_on_images():
    assert_same_value_and_grads(
        lambda x, g, b: dp.group_norm(x, 1, g, b, EPS), lambda x, g, b: dp.layer_norm(x, g, b, EPS), *images()
    )


def test_group_norm_with_one_group_per_channel_is_instance_norm():
    assert_same_value_and_grads(
        lambda x, g, b: dp.group_norm(x, C, g, b, EPS), lambda x, g, b: dp.instance_norm(x, g, b, EPS), *images()
    )


def pixels(images):
    """(N, C, H, W) images as (N * H * W, C) rows, one per pixel."""
    return images.transpose(0, 2, 3, 1).reshape(-1, images.shape[1])


def test_batch_norm2d_is_batch_norm_on_the_pixels_as_rows_of_channels():
    x, gamma, beta = images(seed=7)
    upstream = np.random.default_rng(8).standard_normal(x.shape)
    y, grads = value_and_grads(lambda x, g, b: dp.batch_norm2d(x, g, b, EPS), x, gamma, beta, upstream)
    y_rows, grads_rows = value_and_grads(
        lambda x, g, b: dp.batch_norm(x, g, b, EPS),
        pixels(x),
        gamma.reshape(1, C),
        beta.reshape(1, C),
        pixels(upstream),
    )
    close(pixels(y), y_rows)
    close(pixels(grads["x"]), grads_rows["x"])
    close(grads["gamma"].reshape(1, C), grads_rows["gamma"])
    close(grads["beta"].reshape(1, C), grads_rows["beta"])


def test_gamma_and_beta_per_channel_may_be_given_flat_or_in_the_statistics_shape():
    x, gamma, beta = images()
    for form in NAMED_FORMS.values():
        close(form(x, gamma.ravel(), beta.ravel()).value, form(x, gamma, beta).value, 0)
    x, gamma, beta = rows()
    close(dp.layer_norm(x, gamma.ravel(), beta.ravel()).value, dp.layer_norm(x, gamma, beta).value, 0)
    close(dp.batch_norm(x, gamma.ravel(), beta.ravel()).value, dp.batch_norm(x, gamma, beta).value, 0)


def test_gamma_and_beta_may_be_single_values_in_every_form():
    x, _, _ = images()
    for form in NAMED_FORMS.values():
        expected = 2.0 * form(x, 1.0, 0.0).value - 1.0
        for gamma, beta in ((2.0, -1.0), (np.array(2.0), np.array(-1.0)), (Node(2.0, "g"), Node(-1.0, "b"))):
            close(form(x, gamma, beta).value, expected)


ALL_FORMS = {
    **NAMED_FORMS,
    "normalize": lambda x, g, b: dp.normalize(x, (0, 2, 3), EPS, g, b),
    "batch_norm on rows": lambda x, g, b: dp.batch_norm(x[:, :, 0, 0], g.reshape(1, -1), b.reshape(1, -1)),
    "layer_norm on rows": lambda x, g, b: dp.layer_norm(x[:, :, 0, 0], g.reshape(1, -1), b.reshape(1, -1)),
}


@pytest.mark.parametrize("form", ALL_FORMS.values(), ids=ALL_FORMS.keys())
def test_float32_in_is_float32_out_even_with_a_float64_gamma_and_beta(form):
    x, gamma, beta = images()
    y = form(x.astype(np.float32), gamma, beta)  # gamma and beta stay float64
    assert y.dtype == np.float32
    grads = form(Node(x.astype(np.float32), "x"), gamma, beta).grad(1)
    assert grads["x"].dtype == np.float32
    close(y.value, form(x, gamma, beta).value, 1e-4)


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 2, 3), (2, 3), (1, 2, 3), (-1,)], ids=str)
def test_normalize_has_mean_0_and_variance_var_over_var_plus_eps_over_its_axes(axes):
    """With gamma 1 and beta 0: eps shrinks the variance, visibly when var is near eps."""
    x, _, _ = images(shape=(4, C, 3, 5), seed=9, scale=0.005)  # var about 2.5e-5, near eps
    var = x.var(axis=axes, keepdims=True)
    y = dp.normalize(x, axes, eps=EPS).value
    close(y.mean(axis=axes, keepdims=True), 0)
    close(y.var(axis=axes, keepdims=True), var / (var + EPS))
    assert (var / (var + EPS)).max() < 0.9


def test_normalize_takes_one_axis_as_an_int_and_negative_axes_from_the_end():
    x, _, _ = images()
    close(dp.normalize(x, 1).value, dp.normalize(x, (1,)).value, 0)
    close(dp.normalize(x, (-3, -1)).value, dp.normalize(x, (1, 3)).value, 0)
    close(dp.normalize(x, [3, 1]).value, dp.normalize(x, (1, 3)).value, 0)


def test_normalize_counts_negative_axes_from_the_end_down_to_the_first():
    x, _, _ = images()
    close(dp.normalize(x, -4).value, dp.normalize(x, 0).value, 0)
    close(dp.normalize(x[:, :, 0, 0], (-2, -1)).value, dp.normalize(x[:, :, 0, 0], (0, 1)).value, 0)


def test_batch_norm2d_and_instance_norm_need_only_two_values_to_normalize():
    """Two values per channel are enough: they normalize to -1 and 1 (to eps), whichever axes hold them."""
    two = np.array([1.0, 3.0])
    expected = np.array([-1.0, 1.0]) * np.sqrt(1 / (1 + EPS))
    for shape in ((1, 1, 1, 2), (1, 1, 2, 1), (2, 1, 1, 1)):
        close(dp.batch_norm2d(two.reshape(shape), 1.0, 0.0).value.ravel(), expected)
    for shape in ((1, 1, 1, 2), (1, 1, 2, 1)):
        close(dp.instance_norm(two.reshape(shape), 1.0, 0.0).value.ravel(), expected)


def test_layer_norm_and_group_norm_take_a_single_value_which_normalizes_to_beta():
    close(dp.layer_norm(np.array([[5.0]]), 2.0, 3.0).value, [[3.0]], 0)
    close(dp.group_norm(np.full((1, 1, 1, 1), 5.0), 1, 2.0, 3.0).value, np.full((1, 1, 1, 1), 3.0), 0)


def test_normalize_is_the_formula_with_gamma_and_beta():
    x, gamma, beta = images()
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    close(dp.normalize(x, (2, 3), EPS, gamma, beta).value, gamma * (x - mean) / np.sqrt(var + EPS) + beta)


# ----- the layers -----


def bn2d_net(momentum=0.1, unbiased_average=False, dtype=np.float64, activation=None):
    net = dp.NeuralNode(seed=0, dtype=dtype)
    layer = net.batch_norm2d(C, "bn", momentum=momentum, unbiased_average=unbiased_average, activation=activation)
    _, gamma, beta = images(seed=10)
    net.set_param({"gamma_bn": gamma, "beta_bn": beta})
    return net, layer


def test_batch_norm2d_registers_per_channel_gamma_beta_and_averages_and_a_batch_count():
    fresh = dp.NeuralNode()
    fresh.batch_norm2d(C, "bn")
    fresh = fresh.params
    shapes = {k: v.shape for k, v in fresh.items()}
    assert shapes == {
        "gamma_bn": PER_CHANNEL,
        "beta_bn": PER_CHANNEL,
        "avg_mean_bn": PER_CHANNEL,
        "avg_variance_bn": PER_CHANNEL,
        "batches_bn": (1, 1),
    }
    assert (fresh["gamma_bn"] == 1).all() and not any(fresh[k].any() for k in shapes if k != "gamma_bn")
    net, _ = bn2d_net()
    grads = net.batch_norm2d(C, "other")(images()[0]).grad(1)
    assert grads.keys() == {"gamma_other", "beta_other"}  # the averages and count are state
    assert all(g.shape == PER_CHANNEL for g in grads.values())


def test_group_norm_registers_only_gamma_and_beta_per_channel():
    net = dp.NeuralNode()
    net.group_norm(C, 2, "gn")
    assert {k: v.shape for k, v in net.params.items()} == {"gamma_gn": PER_CHANNEL, "beta_gn": PER_CHANNEL}
    assert (net.params["gamma_gn"] == 1).all() and not net.params["beta_gn"].any()


def test_the_group_norm_layer_class_has_the_factorys_eps():
    model = dp.NeuralNode()
    assert GroupNorm(model, "gn", C, 2).eps == model.group_norm(C, 2, "gn").eps == 1e-5


@pytest.mark.parametrize("unbiased_average", [False, True])
def test_batch_norm2d_moves_its_averages_with_momentum_and_counts_batches(unbiased_average):
    momentum, m = 0.3, N * H * W
    net, layer = bn2d_net(momentum, unbiased_average)
    mean, variance = np.zeros(PER_CHANNEL), np.zeros(PER_CHANNEL)
    for step in range(1, 4):
        x = images(seed=20 + step)[0]
        layer(x)
        var = x.var(axis=(0, 2, 3), keepdims=True)
        mean = (1 - momentum) * mean + momentum * x.mean(axis=(0, 2, 3), keepdims=True)
        variance = (1 - momentum) * variance + momentum * (var * m / (m - 1) if unbiased_average else var)
        close(net.params["avg_mean_bn"], mean)
        close(net.params["avg_variance_bn"], variance)
        assert net.params["batches_bn"].shape == (1, 1) and net.params["batches_bn"][0, 0] == step


def test_batch_norm2d_in_training_is_the_function_batch_norm2d():
    net, layer = bn2d_net()
    x, gamma, beta = images(seed=11)[0], net.params["gamma_bn"], net.params["beta_bn"]
    upstream = np.random.default_rng(12).standard_normal(x.shape)
    y = layer(Node(x, "x"), train=True)
    grads = y.grad(upstream)
    y_f, grads_f = value_and_grads(lambda x, g, b: dp.batch_norm2d(x, g, b, EPS), x, gamma, beta, upstream)
    close(y.value, y_f, 0)
    for ours, theirs in (("x", "x"), ("gamma_bn", "gamma"), ("beta_bn", "beta")):
        close(grads[ours], grads_f[theirs], 0)


def test_batch_norm2d_in_eval_mode_uses_the_averages_and_changes_nothing():
    net, layer = bn2d_net()
    for seed in (13, 14):
        layer(images(seed=seed)[0])
    saved = net.get_param()
    p = net.params
    x = images(seed=15)[0]
    expected = p["gamma_bn"] * (x - p["avg_mean_bn"]) / np.sqrt(p["avg_variance_bn"] + EPS) + p["beta_bn"]
    close(layer(x, train=False).value, expected)
    net.eval()
    close(layer(x).value, expected)  # the model's mode, when train is not given
    close(layer(x[:1, :, :1, :1], train=False).value, expected[:1, :, :1, :1])  # one value per channel is fine
    assert_unchanged(net, saved)


def test_batch_norm2d_in_eval_mode_before_any_training_batch_raises_runtime_error():
    net, layer = bn2d_net()
    saved = net.get_param()
    with pytest.raises(RuntimeError, match="'bn' has not seen a training batch yet"):
        layer(images()[0], train=False)
    assert_unchanged(net, saved)


def test_batch_norm2d_applies_its_activation_after_normalizing():
    x = images(seed=16)[0]
    plain, with_relu = bn2d_net()[1], bn2d_net(activation="relu")[1]
    close(with_relu(x).value, np.maximum(plain(x).value, 0), 0)


@pytest.mark.parametrize("groups", [1, 2, C])
def test_the_group_norm_layer_is_the_function_group_norm(groups):
    net = dp.NeuralNode()
    layer = net.group_norm(C, groups, "gn", eps=1e-3)
    _, gamma, beta = images(seed=17)
    net.set_param({"gamma_gn": gamma, "beta_gn": beta})
    x = images(seed=18)[0]
    upstream = np.random.default_rng(19).standard_normal(x.shape)
    y = layer(Node(x, "x"))
    grads = y.grad(upstream)
    y_f, grads_f = value_and_grads(lambda x, g, b: dp.group_norm(x, groups, g, b, 1e-3), x, gamma, beta, upstream)
    close(y.value, y_f, 0)
    for ours, theirs in (("x", "x"), ("gamma_gn", "gamma"), ("beta_gn", "beta")):
        close(grads[ours], grads_f[theirs], 0)
    saved = net.get_param()
    close(layer(x).value, y_f, 0)  # no modes, no state: the same output again, nothing changed
    assert_unchanged(net, saved)


def test_the_layers_of_a_float32_model_compute_and_keep_float32():
    net, bn = bn2d_net(dtype=np.float32)
    gn = net.group_norm(C, 2, "gn")
    x = images()[0]  # float64 data, cast at the layer
    assert bn(x).dtype == np.float32 and gn(x).dtype == np.float32
    assert bn(x, train=False).dtype == np.float32
    assert all(v.dtype == np.float32 for v in net.params.values())


# ----- running statistics: momentum=None, and batch renormalization -----


def bn_layer(images_=False, dtype=np.float64, **options):
    """A model with one batch-norm layer "bn" over C features (channels, with ``images_``)."""
    net = dp.NeuralNode(seed=0, dtype=dtype)
    build = net.batch_norm2d if images_ else net.batch_norm
    return net, build(C, "bn", **options)


def batches(images_, sizes=(5, 2, 9), seed=30):
    """Batches of several sizes, each on its own scale and offset."""
    if images_:
        return [images((n, C, H, W), seed=seed + i, scale=1 + i)[0] + i for i, n in enumerate(sizes)]
    return [rows(n, seed=seed + i)[0] * (1 + i) + i for i, n in enumerate(sizes)]


@pytest.mark.parametrize("images_", [False, True], ids=["rows", "images"])
@pytest.mark.parametrize("unbiased_average", [False, True])
def test_momentum_none_averages_are_the_plain_mean_of_the_batches_statistics(images_, unbiased_average):
    net, layer = bn_layer(images_, momentum=None, unbiased_average=unbiased_average)
    axes = (0, 2, 3) if images_ else (0,)
    means, variances = [], []
    for k, x in enumerate(batches(images_), start=1):
        layer(x)
        m = x.size // C
        means.append(x.mean(axis=axes, keepdims=True))
        variances.append(x.var(axis=axes, keepdims=True, ddof=1 if unbiased_average else 0))
        assert layer.weight_of_the_batch() == 1 / (k + 1)  # the next one's
        close(net.params["avg_mean_bn"], np.mean(means, axis=0))
        close(net.params["avg_variance_bn"], np.mean(variances, axis=0))
        assert net.params["batches_bn"][0, 0] == k and m >= 2


def test_momentum_none_is_accepted_by_every_builder_and_model_and_kept_in_their_config():
    assert bn_layer(momentum=None)[1].momentum is None and bn_layer(True, momentum=None)[1].momentum is None
    mlp, cnn = dp.MLP(momentum=None), dp.CNN(image=(1, 8, 8), momentum=None)
    for model in (mlp, cnn):
        assert model.config["momentum"] is None
        assert all(norm.momentum is None for _, norm in model.folded_pairs())


def renorm_twins(images_=False, dtype=np.float64, **options):
    """A plain batch-norm layer and a renorm one (``options``), same gamma, beta and averages."""
    (plain_net, plain), (renorm_net, renorm) = (
        bn_layer(images_, dtype),
        bn_layer(images_, dtype, renorm=True, **options),
    )
    _, gamma, beta = images(seed=10)
    start = {"gamma_bn": gamma, "beta_bn": beta}
    if not images_:
        start = {k: v.reshape(1, C) for k, v in start.items()}
    for net in (plain_net, renorm_net):
        net.set_param(start)
    return (plain_net, plain), (renorm_net, renorm)


@pytest.mark.parametrize("images_", [False, True], ids=["rows", "images"])
def test_renorm_with_rmax_1_and_dmax_0_is_batch_norm_to_the_bit(images_):
    """Values, gradients (x, gamma, beta) and averages, batch after batch, in training and eval."""
    (plain_net, plain), (renorm_net, renorm) = renorm_twins(images_, rmax=1.0, dmax=0.0)
    for x in batches(images_):
        upstream = np.random.default_rng(x.size).standard_normal(x.shape)
        results = []
        for layer in (plain, renorm):
            y = layer(Node(x, "x"))
            results.append((y.value, y.grad(upstream)))
        (y_plain, g_plain), (y_renorm, g_renorm) = results
        np.testing.assert_array_equal(y_renorm, y_plain)
        assert g_plain.keys() == g_renorm.keys() == {"x", "gamma_bn", "beta_bn"}
        for k in g_plain:
            np.testing.assert_array_equal(g_renorm[k], g_plain[k])
        for k in plain_net.params:
            np.testing.assert_array_equal(renorm_net.params[k], plain_net.params[k])
    np.testing.assert_array_equal(renorm(x, train=False).value, plain(x, train=False).value)


@pytest.mark.parametrize("images_", [False, True], ids=["rows", "images"])
def test_the_first_renorm_batch_is_batch_norm_whatever_rmax_and_dmax(images_):
    """Before any batch the averages are zeros: r = 1 and d = 0, as the docstring says."""
    (_, plain), (_, renorm) = renorm_twins(images_, rmax=3.0, dmax=5.0)
    first, second = batches(images_)[:2]
    axes = (0, 2, 3) if images_ else (0,)
    assert renorm.correction(first.mean(axis=axes, keepdims=True), first.var(axis=axes, keepdims=True)) == (1.0, 0.0)
    np.testing.assert_array_equal(renorm(first).value, plain(first).value)
    assert not np.allclose(renorm(second).value, plain(second).value)  # then renormalized


def test_renorm_by_hand_r_d_output_and_gradients():
    """One feature, the batch x = (0, 2, 4): mu_B = 2, sigma_B^2 = 8/3; the averages 1 and 1
    (one batch counted). r = sigma_B / sigma is about 1.63 and d = (2 - 1) / sigma about 1,
    both inside (1/3, 3) and (-5, 5): unclipped, y = gamma * (x - 1) / sigma + beta, what eval
    mode gives with the averages as they were."""
    net = dp.NeuralNode()
    layer = net.batch_norm(1, "bn", renorm=True)
    net.set_param({"gamma_bn": [[2.0]], "beta_bn": [[0.5]], "avg_mean_bn": [[1.0]], "avg_variance_bn": [[1.0]]})
    net.set_param({"batches_bn": [[1.0]]})
    x = np.array([[0.0], [2.0], [4.0]])
    sigma_b, sigma = np.sqrt(8 / 3 + EPS), np.sqrt(1 + EPS)
    r, d = sigma_b / sigma, (2.0 - 1.0) / sigma
    assert 1.63 < r < 1.64 and 0.99 < d < 1.0
    xhat = (x - 2.0) / sigma_b * r + d
    before = net.get_param()
    close(layer(x, train=False).value, 2.0 * (x - 1.0) / sigma + 0.5)
    close(layer.correction(np.array([[2.0]]), np.array([[8 / 3]]))[0], r)
    y = layer(Node(x, "x"))
    close(y.value, 2.0 * xhat + 0.5)
    close(y.value, 2.0 * (x - 1.0) / sigma + 0.5)  # unclipped: the eval-mode output of the averages before
    upstream = np.array([[1.0], [-2.0], [0.5]])
    grads = y.grad(upstream)
    # By hand, r and d constants: y_i = gamma * (r * u_i + d) + beta with u_i = (x_i - mu_B) / sigma_B, so
    # dl/dx_i = gamma * r / sigma_B * (g_i - mean(g) - u_i * mean(g * u)), the batch-norm gradient times r.
    u = (x - 2.0) / sigma_b
    expected_dx = 2.0 * r / sigma_b * (upstream - upstream.mean() - u * (upstream * u).mean())
    close(grads["x"], expected_dx)
    close(grads["gamma_bn"], (upstream * xhat).sum(keepdims=True))
    close(grads["beta_bn"], upstream.sum(keepdims=True))
    # then the averages move as batch norm's do
    close(net.params["avg_mean_bn"], 0.9 * before["avg_mean_bn"] + 0.1 * 2.0)
    close(net.params["avg_variance_bn"], 0.9 * before["avg_variance_bn"] + 0.1 * 8 / 3)


@pytest.mark.parametrize("images_", [False, True], ids=["rows", "images"])
def test_renorm_layer_passes_gradcheck_with_its_r_and_d_held_fixed(images_):
    """The layer's gradient for x against finite differences of the primitive with the r and d
    the layer computed (the layer itself would recompute them from each perturbed batch)."""
    (_, _), (net, layer) = renorm_twins(images_)
    first, x = batches(images_)[:2]
    layer(first * 3 + 2)  # averages far from x's statistics: r and d far from (1, 0)
    axes = (0, 2, 3) if images_ else (0,)
    r, d = layer.correction(x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True))
    assert not np.allclose(r, 1) and not np.allclose(d, 0)
    gamma, beta = net.params["gamma_bn"], net.params["beta_bn"]
    upstream = np.random.default_rng(5).standard_normal(x.shape)
    dx = layer(Node(x, "x")).grad(upstream)["x"]
    close(dx, batch_norm_closed_form(Node(x, "x"), gamma, beta, EPS, axes=axes, r=r, d=d).grad(upstream)["x"], 0)
    gradcheck(lambda x, g, b: batch_norm_closed_form(x, g, b, EPS, axes=axes, r=r, d=d), x, gamma, beta)


def test_r_and_d_are_clipped_at_rmax_and_dmax():
    """Four features whose batch statistics sit outside, inside and at the bounds."""
    net = dp.NeuralNode()
    layer = net.batch_norm(4, "bn", renorm=True, rmax=2.0, dmax=0.5, eps=1e-12)
    net.set_param({"avg_mean_bn": np.zeros((1, 4)), "avg_variance_bn": np.ones((1, 4)), "batches_bn": [[1.0]]})
    mean, var = np.array([[3.0, -3.0, 0.2, 0.5]]), np.array([[100.0, 0.01, 1.44, 4.0]])
    r, d = layer.correction(mean, var)
    close(r, [[2.0, 0.5, 1.2, 2.0]])  # sigma_B / sigma = 10, 0.1, 1.2, 2: clipped to [1/2, 2]
    close(d, [[0.5, -0.5, 0.2, 0.5]])  # (mean - 0) / 1 = 3, -3, 0.2, 0.5: clipped to [-0.5, 0.5]
    x = np.array([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]) * np.sqrt(var) + mean  # these statistics exactly
    close(layer(x).value, (x - mean) / np.sqrt(var) * r + d)


def test_the_warmup_ramps_rmax_and_dmax_linearly_with_the_batches_counted():
    net, layer = bn_layer(renorm=True, rmax=3.0, dmax=5.0, renorm_warmup=4)
    limits = []
    for x in batches(False, sizes=(4,) * 6):
        limits.append(layer.renorm_limits())
        layer(x)
    assert limits == [(1.0, 0.0), (1.5, 1.25), (2.0, 2.5), (2.5, 3.75), (3.0, 5.0), (3.0, 5.0)]
    assert net.params["batches_bn"][0, 0] == 6
    assert bn_layer(renorm=True, rmax=2.0, dmax=1.0)[1].renorm_limits() == (2.0, 1.0)  # no warmup: at once


def test_during_the_warmup_a_renorm_layer_is_batch_norm_only_at_the_first_batch():
    (_, plain), (_, renorm) = renorm_twins(renorm_warmup=2)
    first, second = batches(False)[:2]
    np.testing.assert_array_equal(renorm(first).value, plain(first).value)  # (1, 0): batch norm
    assert not np.allclose(renorm(second).value, plain(second).value)  # (2, 2.5): renormalized


@pytest.mark.parametrize("images_", [False, True], ids=["rows", "images"])
def test_renorm_in_eval_mode_is_batch_norms_eval_mode(images_):
    (_, plain), (_, renorm) = renorm_twins(images_)
    for x in batches(images_):
        plain(x), renorm(x)
    np.testing.assert_array_equal(renorm(x, train=False).value, plain(x, train=False).value)


def test_a_renorm_layer_of_a_float32_model_computes_and_keeps_float32():
    for images_ in (False, True):
        net, layer = bn_layer(images_, np.float32, renorm=True, momentum=None)
        for x in batches(images_):  # float64 data, cast at the layer
            y = layer(Node(x.astype(np.float32), "x"))
            assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in y.grad(1).values())
        assert all(v.dtype == np.float32 for v in net.params.values())
        assert layer(x, train=False).dtype == np.float32


def test_a_renorm_layer_refuses_bad_input_and_keeps_its_averages():
    net, layer = bn_layer(True, renorm=True)
    layer(X)
    saved = net.get_param()
    for bad in (with_value(X, np.nan), X * 1e200, X[:1, :, :1, :1]):
        with pytest.raises(ValueError):
            layer(bad)
        assert_unchanged(net, saved)


# ----- bad input: a clear error, and nothing changed -----


def assert_unchanged(net, saved):
    assert net.params.keys() == saved.keys()
    for k, v in saved.items():
        got = net.params[k]
        assert (got.dtype, got.shape, got.tobytes()) == (v.dtype, v.shape, v.tobytes()), k


def with_value(x, value):
    x = x.copy()
    x[1, 2, 0, 1] = value
    return x


X = images()[0]
BAD_LAYER_INPUT = {  # name: (x, exception, message, refused in evaluation too)
    "rows, not images": (X[:, :, 0, 0], ValueError, r"must be images \(N, C, H, W\); got shape \(3, 4\) \(rows", True),
    "3 channels for 4": (X[:, :3], ValueError, r": 3 channels \(shape \(3, 3, 2, 3\)\), where 4 are expected", True),
    "no images": (X[:0], ValueError, r"no images \(shape \(0, 4, 2, 3\)\)", True),
    "nan": (with_value(X, np.nan), NonFiniteError, "the input has NaN or inf values", True),
    "inf": (with_value(X, -np.inf), NonFiniteError, "the input has NaN or inf values", True),
    "strings": (X.astype(str), TypeError, "must be numeric", True),
}


@pytest.mark.parametrize(
    "x, error, message, train",
    [
        pytest.param(x, error, message, train, id=f"{name}-{'training' if train else 'evaluation'}")
        for name, (x, error, message, in_evaluation) in {
            **BAD_LAYER_INPUT,
            "one value per channel": (X[:1, :, :1, :1], ValueError, "at least 2 values per channel", False),
            "too large to square": (X * 1e200, NonFiniteError, "'bn'.*too large to square", False),
        }.items()
        for train in ((True, False) if in_evaluation else (True,))
    ],
)
def test_a_batch_norm2d_layer_refuses_bad_input_and_keeps_its_averages(x, error, message, train):
    net, layer = bn2d_net()
    layer(X)  # a first training batch: averages to use and to keep
    saved = net.get_param()
    with pytest.raises(error, match=message):
        layer(x, train=train)
    assert_unchanged(net, saved)


@pytest.mark.parametrize("x, error, message", [v[:3] for v in BAD_LAYER_INPUT.values()], ids=BAD_LAYER_INPUT.keys())
def test_a_group_norm_layer_refuses_bad_input_and_changes_nothing(x, error, message):
    net = dp.NeuralNode()
    layer = net.group_norm(C, 2, "gn")
    saved = net.get_param()
    with pytest.raises(error, match=message):
        layer(x)
    assert_unchanged(net, saved)


class NormNet(dp.NeuralNode):
    """batch_norm2d then group_norm: the second refuses what the first let through."""

    def __init__(self):
        super().__init__(seed=0)
        self.bn = self.batch_norm2d(C, "bn")
        self.gn = self.group_norm(C, 2, "gn")

    def forward(self, x, train=None):
        return self.gn(self.bn(x, train))


def test_a_model_whose_group_norm_refuses_the_batch_keeps_its_batch_norm2d_averages():
    net = NormNet()
    net.forward(X)
    net.set_param({"gamma_bn": np.full(PER_CHANNEL, 1e200)})  # bn's output is finite, its squares are not
    saved = net.get_param()
    with pytest.raises(NonFiniteError, match="group norm 'gn'.*too large to square"):
        net.forward(images(seed=1)[0])
    assert_unchanged(net, saved)


BAD_BUILDERS = {  # name: (build on a model, exception, message)
    "groups that do not divide the channels": (
        lambda net: net.group_norm(C, 3, "new"),
        ValueError,
        "group norm 'new': 3 groups do not divide the 4 channels",
    ),
    "more groups than channels": (lambda net: net.group_norm(C, 8, "new"), ValueError, "8 groups do not divide"),
    "no groups": (lambda net: net.group_norm(C, 0, "new"), ValueError, r"groups must be a whole number in \[1, inf\)"),
    "group norm eps 0": (lambda net: net.group_norm(C, 2, "new", eps=0), ValueError, r"eps must be .* \(0, inf\)"),
    "batch_norm2d eps 0": (lambda net: net.batch_norm2d(C, "new", eps=0), ValueError, r"'new': eps must be"),
    "batch_norm2d eps < 0": (lambda net: net.batch_norm2d(C, "new", eps=-1e-5), ValueError, r"'new': eps must be"),
    "batch_norm2d momentum 0": (lambda net: net.batch_norm2d(C, "new", momentum=0), ValueError, "momentum must be"),
    "batch_norm2d rmax < 1": (
        lambda net: net.batch_norm2d(C, "new", renorm=True, rmax=0.5),
        ValueError,
        r"'new': rmax must be a finite number in \[1, inf\), got 0.5",
    ),
    "batch_norm dmax < 0": (
        lambda net: net.batch_norm(C, "new", renorm=True, dmax=-1),
        ValueError,
        r"'new': dmax must be a finite number in \[0, inf\), got -1",
    ),
    "batch_norm rmax inf": (lambda net: net.batch_norm(C, "new", rmax=np.inf), ValueError, "rmax must be a finite"),
    "batch_norm renorm 1": (lambda net: net.batch_norm(C, "new", renorm=1), TypeError, "renorm must be True or False"),
    "batch_norm2d warmup < 0": (
        lambda net: net.batch_norm2d(C, "new", renorm=True, renorm_warmup=-1),
        ValueError,
        r"renorm_warmup must be a whole number in \[0, inf\)",
    ),
    "batch_norm warmup 2.5": (
        lambda net: net.batch_norm(C, "new", renorm=True, renorm_warmup=2.5),
        TypeError,
        "renorm_warmup must be a whole number, not float",
    ),
    "batch_norm momentum 'none'": (
        lambda net: net.batch_norm(C, "new", momentum="none"),
        TypeError,
        "momentum must be a real number, not str",
    ),
    "batch_norm2d no channels": (lambda net: net.batch_norm2d(0, "new"), ValueError, "channels must be"),
    "group norm no channels": (lambda net: net.group_norm(0, 1, "new"), ValueError, "channels must be"),
    "a name in use": (lambda net: net.group_norm(C, 2, "bn"), ValueError, "already in use"),
}


@pytest.mark.parametrize("build, error, message", BAD_BUILDERS.values(), ids=BAD_BUILDERS.keys())
def test_a_bad_layer_setting_is_refused_and_registers_nothing(build, error, message):
    net, _ = bn2d_net()
    saved = net.get_param()
    with pytest.raises(error, match=message):
        build(net)
    assert_unchanged(net, saved)


G, B = np.ones(C), np.zeros(C)
BAD_CALLS = {  # name: (call, exception, message)
    "batch_norm2d of rows": (lambda: dp.batch_norm2d(X[:, :, 0, 0], G, B), ValueError, r"images \(N, C, H, W\)"),
    "group_norm of rows": (lambda: dp.group_norm(X[:, :, 0, 0], 2, G, B), ValueError, r"images \(N, C, H, W\)"),
    "instance_norm of rows": (lambda: dp.instance_norm(X[:, :, 0, 0], G, B), ValueError, r"images \(N, C, H, W\)"),
    "layer_norm of a 3-d x": (lambda: dp.layer_norm(X[:, :, 0], G, B), ValueError, r"or images \(N, C, H, W\)"),
    "batch_norm2d, one value per channel": (
        lambda: dp.batch_norm2d(X[:1, :, :1, :1], G, B),
        ValueError,
        r"N \* H \* W >= 2, got \(1, 4, 1, 1\)",
    ),
    "instance_norm, one position": (
        lambda: dp.instance_norm(X[:, :, :1, :1], G, B),
        ValueError,
        r"H \* W >= 2, got \(3, 4, 1, 1\)",
    ),
    "groups that do not divide the channels": (
        lambda: dp.group_norm(X, 3, G, B),
        ValueError,
        "group norm: 3 groups do not divide the 4 channels",
    ),
    "no groups": (lambda: dp.group_norm(X, 0, G, B), ValueError, r"groups must be a whole number in \[1, inf\)"),
    "normalize, an axis past the last": (lambda: dp.normalize(X, (1, 4)), ValueError, "x, which has 4 dimensions"),
    "normalize, an axis before the first": (lambda: dp.normalize(X, -5), ValueError, "x, which has 4 dimensions"),
    "normalize, no axes": (lambda: dp.normalize(X, ()), ValueError, "axes must be axes of x"),
    "normalize, a repeated axis": (lambda: dp.normalize(X, (1, -3)), ValueError, r"axes \(1, -3\) repeat an axis"),
    "normalize, gamma that does not broadcast": (
        lambda: dp.normalize(X, (0, 2, 3), gamma=np.ones((1, 3, 1, 1))),
        ValueError,
        r"gamma of shape \(1, 3, 1, 1\) does not broadcast",
    ),
    "normalize, beta that would grow x": (
        lambda: dp.normalize(X, (0, 2, 3), beta=np.zeros((2, *IMAGE))),
        ValueError,
        "beta of shape .* does not broadcast",
    ),
}


def poisoned(x, value):
    x = x.copy()
    x.flat[5] = value
    return x


FORMS = {  # name: (the function, f(x, gamma, beta, eps), a good x)
    "batch_norm2d": (dp.batch_norm2d, X),
    "instance_norm": (dp.instance_norm, X),
    "layer_norm on images": (dp.layer_norm, X),
    "group_norm, 1 group": (lambda x, g, b, eps=EPS: dp.group_norm(x, 1, g, b, eps), X),
    "group_norm, 2 groups": (lambda x, g, b, eps=EPS: dp.group_norm(x, 2, g, b, eps), X),
    "batch_norm on rows": (dp.batch_norm, X[:, :, 0, 0]),
    "layer_norm on rows": (dp.layer_norm, X[:, :, 0, 0]),
}
for name, (call, x) in FORMS.items():
    shape = r"\(1, 4\)" if x.ndim == 2 else r"\(1, 4, 1, 1\)"
    BAD_CALLS |= {
        f"{name}, gamma of 3 values for 4 channels": (
            lambda call=call, x=x: call(x, np.ones(3), B),
            ValueError,
            rf"gamma must have shape {shape} or \(4,\), got \(3,\)",
        ),
        f"{name}, beta of 5 values for 4 channels": (
            lambda call=call, x=x: call(x, G, np.zeros((1, 5))),
            ValueError,
            rf"beta must have shape {shape} or \(4,\), got \(1, 5\)",
        ),
        f"{name}, gamma a column Node": (
            lambda call=call, x=x: call(x, Node(np.ones(C), "gamma"), B),
            ValueError,
            rf"gamma, a Node, must have shape {shape} .*got \(4, 1\)",
        ),
        f"{name}, eps 0": (lambda call=call, x=x: call(x, G, B, 0.0), ValueError, r"eps must be .* \(0, inf\), got 0"),
        f"{name}, eps < 0": (lambda call=call, x=x: call(x, G, B, -1e-5), ValueError, r"eps must be .*, got -1e-05"),
        f"{name}, nan": (lambda call=call, x=x: call(poisoned(x, np.nan), G, B), NonFiniteError, "x has NaN or inf"),
        f"{name}, inf": (lambda call=call, x=x: call(poisoned(x, np.inf), G, B), NonFiniteError, "x has NaN or inf"),
    }
BAD_CALLS |= {
    "normalize, eps 0": (lambda: dp.normalize(X, (0, 2, 3), eps=0.0), ValueError, r"eps must be .* \(0, inf\)"),
    "normalize, nan": (lambda: dp.normalize(with_value(X, np.nan), 1), NonFiniteError, "normalize: x has NaN or inf"),
    "normalize, -inf": (lambda: dp.normalize(with_value(X, -np.inf), 1), NonFiniteError, "x has NaN or inf"),
}


@pytest.mark.parametrize("call, error, message", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_the_functions_refuse_bad_input_clearly(call, error, message):
    saved = X.copy()
    with pytest.raises(error, match=message):
        call()
    assert np.array_equal(X, saved)  # and leave their input alone


def test_values_too_large_to_square_are_refused_by_every_function():
    for form in ALL_FORMS.values():
        with pytest.raises(NonFiniteError, match="too large to square"):
            form(X * 1e200, G.reshape(PER_CHANNEL), B.reshape(PER_CHANNEL))


# ----- gamma and beta are numbers, none NaN or inf (a NaN gamma would make every output NaN) -----

FORMS_WITH_AFFINE = {
    "batch_norm2d": lambda x, g, b: dp.batch_norm2d(x, g, b),
    "instance_norm": lambda x, g, b: dp.instance_norm(x, g, b),
    "group_norm": lambda x, g, b: dp.group_norm(x, 2, g, b),
    "layer_norm": lambda x, g, b: dp.layer_norm(x, g, b),
    "normalize": lambda x, g, b: dp.normalize(x, (0, 2, 3), gamma=g, beta=b),
}


@pytest.mark.parametrize("form", FORMS_WITH_AFFINE.values(), ids=FORMS_WITH_AFFINE.keys())
@pytest.mark.parametrize("which", ["gamma", "beta"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nan_or_inf_gamma_or_beta_is_refused_by_every_form(form, which, bad):
    x, gamma, beta = images()
    spoiled = {"gamma": gamma.copy(), "beta": beta.copy()}
    spoiled[which][0, 1, 0, 0] = bad
    with pytest.raises(NonFiniteError, match=f"{which} has NaN or inf values"):
        form(x, spoiled["gamma"], spoiled["beta"])
    with pytest.raises(NonFiniteError, match=f"{which} has NaN or inf values"):  # as a parameter Node too
        form(x, Node(spoiled["gamma"], "gamma"), Node(spoiled["beta"], "beta"))


@pytest.mark.parametrize("form", FORMS_WITH_AFFINE.values(), ids=FORMS_WITH_AFFINE.keys())
def test_a_gamma_of_words_is_refused_clearly_not_by_numpy(form):
    x, _, beta = images()
    with pytest.raises(TypeError, match="gamma"):
        form(x, np.array(["a", "b", "c", "d"]).reshape(PER_CHANNEL), beta)


def test_normalize_refuses_an_empty_x_and_says_so():
    with pytest.raises(ValueError, match=r"normalize: x is empty \(shape \(2, 3, 0, 6\)\)"):
        dp.normalize(np.zeros((2, 3, 0, 6)), (2, 3))


def test_normalize_broadcasts_gamma_numpys_way_so_per_channel_is_the_statistics_shape():
    """A (C,) gamma lines up with the last axis, as NumPy broadcasts; the named forms, which know
    where the channels are, take (C,) as per channel (the docs say which is which)."""
    x, gamma, beta = images((2, 3, 4, 3))
    ours = dp.normalize(x, (0, 2, 3), gamma=gamma, beta=beta).value
    close(ours, dp.batch_norm2d(x, gamma.ravel(), beta.ravel()).value)
    along_width = dp.normalize(x, (0, 2, 3), gamma=gamma.ravel()).value  # (3,) against W = 3: per column
    assert not np.allclose(along_width, dp.batch_norm2d(x, gamma.ravel(), 0.0).value)


@pytest.mark.parametrize("build", ["layer_norm", "group_norm"])
def test_layer_and_group_norm_take_batch_norms_mode_arguments_and_ignore_them(build):
    # Each sample by its own statistics: no modes, so a model runs them through batch norm's calls.
    model = dp.NeuralNode(seed=0)
    layer = model.layer_norm(4, "n1") if build == "layer_norm" else model.group_norm(4, 2, "n1")
    model.params["gamma_n1"] = model.params["gamma_n1"] * 1.5  # so the layer is not the identity's shape only
    x = Node(np.random.default_rng(3).normal(size=(3, 4) if build == "layer_norm" else (3, 4, 2, 2)))
    expected = layer.forward(x).value
    for same in (layer.forward(x, True), layer.forward(x, False), layer.normalize(x, True), layer.normalize(x, False)):
        np.testing.assert_array_equal(same.value, expected)
    assert not np.allclose(expected, x.value)
