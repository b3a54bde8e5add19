"""dp's batch norm against PyTorch's ``torch.nn.BatchNorm1d``, in float64, to 1e-10; the rest
of the family on images: ``batch_norm2d`` against ``torch.nn.BatchNorm2d``, group, instance
and layer norm against ``torch.nn.functional``'s and ``torch.nn.GroupNorm``; and the
convolution and pooling against ``torch.nn.functional``'s.

Optional: skipped when PyTorch is not installed. ``pip install ".[test,bench]"``
installs it; then ``python -m pytest tests/test_torch_parity.py``.

Compared: the forward pass in training and in eval mode, the gradients for x, gamma
(PyTorch's ``weight``) and beta (``bias``) given a random upstream gradient, the
moving averages after several training steps, and a whole reference network (loss,
every gradient, and several Adam steps) against the same network built from
``torch.nn`` modules with the same weights. For convolution and pooling: the output and the
gradients for the images, the kernels and the bias, given a random upstream gradient.

Conventions, and how the tests line them up:

- Momentum is the weight of the *new* batch in both: ``avg <- (1 - m) avg + m batch``
  with the same ``m`` (PyTorch's default 0.1 is dp's default). Keras's
  ``BatchNormalization(momentum=...)`` is the weight of the *old* average: Keras
  ``momentum = 1 - m`` (Keras's 0.99 is dp's 0.01).
- PyTorch normalizes with the biased batch variance, as dp does, but stores the
  *unbiased* one, ``var * N / (N - 1)``, in ``running_var``. dp stores the biased one
  by default (as Keras does); ``unbiased_average=True`` stores the unbiased one, as
  PyTorch does.
- dp's moving averages start at zeros; PyTorch's ``running_mean`` starts at zeros and
  ``running_var`` at ones (Keras's too). The tests start dp's ``avg_variance`` at ones
  to compare with PyTorch's default, or PyTorch's ``running_var`` at zeros to compare
  with dp's.
"""

import numpy as np
import pytest

import dp
from dp.nn import avg_pool2d, conv2d, max_pool2d
from dp.nn.normalization import batch_norm
from dp.optim import Adam

torch = pytest.importorskip("torch")

TOL = 1e-10
ROWS, FEATURES = 16, 5


def assert_close(ours, theirs, what=""):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(ours, np.reshape(theirs, np.shape(ours)), rtol=TOL, atol=TOL, err_msg=what)


def tensor(array, grad=False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def layers(rng, momentum=0.1, eps=1e-5, unbiased_average=True, torch_running_var=1.0):
    """dp's batch-norm layer and PyTorch's, with the same random gamma and beta and the
    same starting averages (mean 0, variance ``torch_running_var``)."""
    net = dp.NeuralNode()
    ours = net.batch_norm(FEATURES, "bn", momentum=momentum, eps=eps, unbiased_average=unbiased_average)
    gamma, beta = rng.uniform(0.5, 2.0, (1, FEATURES)), rng.standard_normal((1, FEATURES))
    net.set_param({"gamma_bn": gamma, "beta_bn": beta, "avg_variance_bn": np.full((1, FEATURES), torch_running_var)})
    theirs = torch.nn.BatchNorm1d(FEATURES, momentum=momentum, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(tensor(gamma[0]))
        theirs.bias.copy_(tensor(beta[0]))
        theirs.running_var.fill_(torch_running_var)
    return net, ours, theirs


def batch(rng, rows=ROWS):
    """Features on different scales and offsets, as batch norm meets them."""
    return rng.standard_normal((rows, FEATURES)) * rng.uniform(0.1, 10, FEATURES) + rng.uniform(-5, 5, FEATURES)


def forward_and_backward(net, ours, theirs, x, upstream, train):
    """Both layers' outputs and their gradients for x, gamma and beta, given ``upstream``."""
    y = ours(dp.Node(x, "x"), train=train)
    grads = y.grad(upstream)
    theirs.train(train)
    xt = tensor(x, grad=True)
    yt = theirs(xt)
    yt.backward(tensor(upstream))
    return (y.value, grads), (yt, {"x": xt.grad, "gamma_bn": theirs.weight.grad, "beta_bn": theirs.bias.grad})


def assert_same_outputs_and_gradients(ours, theirs):
    (y, grads), (yt, grads_t) = ours, theirs
    assert_close(y, yt, "output")
    assert grads.keys() == grads_t.keys()
    for name in grads:
        assert_close(grads[name], grads_t[name], name)


@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.5, 1e-3), (1.0, 1e-5)])
def test_training_mode_output_and_gradients_match(rng, momentum, eps):
    net, ours, theirs = layers(rng, momentum, eps)
    x, upstream = batch(rng), rng.standard_normal((ROWS, FEATURES))
    assert_same_outputs_and_gradients(*forward_and_backward(net, ours, theirs, x, upstream, train=True))


@pytest.mark.parametrize("rows", [2, 3, 64])
def test_training_mode_matches_for_small_and_large_batches(rng, rows):
    net, ours, theirs = layers(rng)
    x, upstream = batch(rng, rows), rng.standard_normal((rows, FEATURES))
    assert_same_outputs_and_gradients(*forward_and_backward(net, ours, theirs, x, upstream, train=True))


def assert_function_matches(ours, theirs, x, gamma, beta, rng):
    """dp's ``ours(x, gamma, beta)`` and PyTorch's ``theirs(x, weight, bias)`` (weight and
    bias flat, per channel): the output and the gradients for x, gamma and beta, given a
    random upstream gradient."""
    upstream = rng.standard_normal(x.shape)
    y = ours(dp.Node(x, "x"), dp.Node(gamma, "gamma"), dp.Node(beta, "beta"))
    grads = y.grad(upstream)
    xt, gt, bt = tensor(x, grad=True), tensor(gamma.ravel(), grad=True), tensor(beta.ravel(), grad=True)
    yt = theirs(xt, gt, bt)
    yt.backward(tensor(upstream))
    assert_close(y.value, yt, "output")
    for name, t in (("x", xt), ("gamma", gt), ("beta", bt)):
        assert_close(grads[name], t.grad, name)


def test_the_functional_batch_norm_matches_torchs():
    rng = np.random.default_rng(5)
    x, gamma, beta = batch(rng), rng.uniform(0.5, 2, (1, FEATURES)), rng.standard_normal((1, FEATURES))
    assert_function_matches(
        lambda x, g, b: batch_norm(x, g, b, eps=1e-5),
        lambda x, g, b: torch.nn.functional.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
        x,
        gamma,
        beta,
        rng,
    )


@pytest.mark.parametrize("momentum", [0.1, 0.3, 1.0])
def test_unbiased_moving_averages_match_torchs_running_statistics_after_several_steps(rng, momentum):
    net, ours, theirs = layers(rng, momentum, unbiased_average=True, torch_running_var=1.0)
    for rows in (ROWS, 8, 3, ROWS, 40):  # batch sizes vary: N / (N - 1) is per batch
        x = batch(rng, rows)
        ours(x, train=True)
        theirs.train()(tensor(x))
    assert_close(net.params["avg_mean_bn"], theirs.running_mean, "mean")
    assert_close(net.params["avg_variance_bn"], theirs.running_var, "variance")


def test_momentum_none_cumulative_averages_and_eval_mode_match_torchs(rng):
    """PyTorch's momentum=None weighs the k-th batch 1 / num_batches_tracked: its first batch
    replaces the starting running_var of 1, as dp's replaces its zeros."""
    net, ours, theirs = layers(rng, momentum=None, unbiased_average=True, torch_running_var=1.0)
    for rows in (ROWS, 8, 3, ROWS, 40):
        x = batch(rng, rows)
        ours(x, train=True)
        theirs.train()(tensor(x))
    assert_close(net.params["avg_mean_bn"], theirs.running_mean, "mean")
    assert_close(net.params["avg_variance_bn"], theirs.running_var, "variance")
    assert net.params["batches_bn"][0, 0] == theirs.num_batches_tracked.item() == 5
    x, upstream = batch(rng), rng.standard_normal((ROWS, FEATURES))
    assert_same_outputs_and_gradients(*forward_and_backward(net, ours, theirs, x, upstream, train=False))


def test_default_moving_variance_is_the_biased_one_torchs_times_n_minus_1_over_n(rng):
    net, ours, theirs = layers(rng, unbiased_average=False, torch_running_var=0.0)  # both start at zeros
    for _ in range(6):
        x = batch(rng)
        ours(x, train=True)
        theirs.train()(tensor(x))
    assert_close(net.params["avg_mean_bn"], theirs.running_mean, "mean")
    # With one batch size N throughout and both averages starting at 0, PyTorch's is N / (N - 1) times dp's.
    assert_close(net.params["avg_variance_bn"], theirs.running_var * (ROWS - 1) / ROWS, "variance")
    assert not np.allclose(net.params["avg_variance_bn"], theirs.running_var.numpy(), rtol=1e-3)


@pytest.mark.parametrize("unbiased_average", [True, False])
def test_eval_mode_output_and_gradients_match_with_the_same_running_statistics(rng, unbiased_average):
    net, ours, theirs = layers(rng, 0.2, unbiased_average=unbiased_average)
    for _ in range(5):
        x = batch(rng)
        ours(x, train=True)
        theirs.train()(tensor(x))
    with torch.no_grad():  # PyTorch evaluates with whatever dp stored, biased or not
        theirs.running_mean.copy_(tensor(net.params["avg_mean_bn"][0]))
        theirs.running_var.copy_(tensor(net.params["avg_variance_bn"][0]))
    averages = net.get_param()
    x, upstream = batch(rng), rng.standard_normal((ROWS, FEATURES))
    assert_same_outputs_and_gradients(*forward_and_backward(net, ours, theirs, x, upstream, train=False))
    assert all(np.array_equal(net.params[k], averages[k]) for k in averages)  # evaluation changed nothing


# ----- a whole network -----


def torch_network(model):
    """``model`` (a dp MLP with batch norm and tanh) as ``torch.nn`` modules with the same
    weights, and PyTorch's running variances set to dp's starting ones."""
    modules, hidden = [], len(model.sizes) - 2
    p = model.params
    for i, (fan_in, fan_out) in enumerate(zip(model.sizes, model.sizes[1:]), start=1):
        linear = torch.nn.Linear(fan_in, fan_out, bias=i > hidden, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(tensor(p[f"weight_l{i}"].T))  # PyTorch stores (out, in)
            if i > hidden:
                linear.bias.copy_(tensor(p[f"bias_l{i}"][0]))
        modules.append(linear)
        if i <= hidden:
            config = model.config
            norm = torch.nn.BatchNorm1d(fan_out, momentum=config["momentum"], eps=config["eps"], dtype=torch.float64)
            with torch.no_grad():
                norm.running_var.copy_(tensor(p[f"avg_variance_bn{i}"][0]))
            modules += [norm, torch.nn.Tanh()]
    return torch.nn.Sequential(*modules)


def torch_names(network):
    """dp's parameter name -> (PyTorch tensor, whether it is stored transposed)."""
    names, layer, norm = {}, 0, 0
    for module in network:
        if isinstance(module, torch.nn.Linear):
            layer += 1
            names[f"weight_l{layer}"] = (module.weight, True)
            if module.bias is not None:
                names[f"bias_l{layer}"] = (module.bias, False)
        elif isinstance(module, torch.nn.BatchNorm1d):
            norm += 1
            names |= {
                f"gamma_bn{norm}": (module.weight, False),
                f"beta_bn{norm}": (module.bias, False),
                f"avg_mean_bn{norm}": (module.running_mean, False),
                f"avg_variance_bn{norm}": (module.running_var, False),
            }
    return names


def assert_same_network(model, network, values=lambda t: t, what="", names=torch_names):
    names = names(network)
    for name, (t, transposed) in names.items():
        value = values(t)
        if value is not None:
            assert_close(
                model[name] if isinstance(model, dict) else model.params[name],
                value.T if transposed else value,
                f"{what} {name}",
            )


@pytest.mark.parametrize("outputs", [1, 3])
def test_a_whole_network_has_torchs_loss_gradients_and_moving_averages(outputs):
    rng = np.random.default_rng(outputs)
    model = dp.MLP(sizes=(30, 20, 10, outputs), seed=0, unbiased_average=True)
    model.set_param({f"avg_variance_bn{i}": np.ones((1, n)) for i, n in ((1, 20), (2, 10))})
    network = torch_network(model)
    x, y = rng.standard_normal((50, 30)) * 3, rng.integers(0, max(outputs, 2), 50)
    loss = model.loss(x, y, train=True)
    grads = loss.grad(1)
    network.train()
    logits = network(tensor(x))
    if outputs == 1:
        theirs = torch.nn.BCEWithLogitsLoss(reduction="sum")(logits, tensor(y[:, None]))
    else:
        theirs = torch.nn.CrossEntropyLoss(reduction="sum")(logits, torch.tensor(y))
    theirs.backward()
    assert_close(loss.value, theirs, "loss")
    assert_same_network(grads, network, lambda t: t.grad, "gradient")
    assert set(grads) == {k for k, (t, _) in torch_names(network).items() if t.requires_grad}
    assert_same_network(model, network, what="after one step")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_adam_training_of_the_reference_network_follows_torchs_step_by_step(momentum):
    rng = np.random.default_rng(11)
    model = dp.MLP(seed=3, unbiased_average=True, momentum=momentum)  # the reference network, 30-20-10-1
    model.set_param({f"avg_variance_bn{i}": np.ones((1, n)) for i, n in ((1, 20), (2, 10))})
    network = torch_network(model)
    ours, theirs = Adam(lr=0.003), torch.optim.Adam(network.parameters(), lr=0.003, betas=(0.9, 0.999), eps=1e-8)
    criterion = torch.nn.BCEWithLogitsLoss(reduction="sum")
    network.train()
    for _ in range(10):
        x, y = rng.standard_normal((50, 30)), rng.integers(0, 2, 50)
        ours.step(model.params, model.loss(x, y, train=True).grad(1))
        theirs.zero_grad()
        criterion(network(tensor(x)), tensor(y[:, None])).backward()
        theirs.step()
    assert_same_network(model, network, what="after 10 Adam steps")
    x = rng.standard_normal((20, 30))
    network.eval()
    assert_close(model.predict_proba(x), torch.sigmoid(network(tensor(x))), "eval predictions")


# ----- a convolutional network -----


def copy_into(parameter, value):
    with torch.no_grad():
        parameter.copy_(tensor(value).reshape(parameter.shape))


def torch_norm(kind, model, name, size):
    """PyTorch's batch norm (``kind``, BatchNorm1d or BatchNorm2d) with dp's layer ``name``'s
    settings, gamma, beta and moving averages as its weight, bias and running statistics."""
    p, config = model.params, model.config
    norm = kind(size, momentum=config["momentum"], eps=config["eps"], dtype=torch.float64)
    for parameter, key in ((norm.weight, "gamma"), (norm.bias, "beta"), (norm.running_mean, "avg_mean")):
        copy_into(parameter, p[f"{key}_{name}"])
    copy_into(norm.running_var, p[f"avg_variance_{name}"])
    return norm


def torch_cnn(model):
    """``model`` (a dp CNN with batch norm and ReLU) as ``torch.nn`` modules with the same
    weights and statistics: per block Conv2d (no bias, padding kernel_size // 2), BatchNorm2d,
    ReLU and MaxPool2d(2); Flatten; per hidden layer Linear (no bias), BatchNorm1d and ReLU;
    the output Linear."""
    config, p = model.config, model.params
    k, blocks = config["kernel_size"], len(config["channels"])
    modules = []
    for i, (fan_in, fan_out) in enumerate(zip(config["image"][:1] + config["channels"], config["channels"]), start=1):
        conv = torch.nn.Conv2d(fan_in, fan_out, k, padding=k // 2, bias=False, dtype=torch.float64)
        copy_into(conv.weight, p[f"weight_conv{i}"])  # (out, in, kh, kw) in both
        modules += [conv, torch_norm(torch.nn.BatchNorm2d, model, f"bn{i}", fan_out), torch.nn.ReLU()]
        modules.append(torch.nn.MaxPool2d(2))
    modules.append(torch.nn.Flatten())  # row-major, as dp's reshape
    widths = (model.flat_size, *config["hidden"], config["classes"])
    for j, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]), start=1):
        last = j == len(widths) - 1
        linear = torch.nn.Linear(fan_in, fan_out, bias=last, dtype=torch.float64)
        copy_into(linear.weight, p[f"weight_fc{j}"].T)  # PyTorch stores (out, in)
        if last:
            copy_into(linear.bias, p[f"bias_fc{j}"])
        modules.append(linear)
        if not last:
            modules += [torch_norm(torch.nn.BatchNorm1d, model, f"bn{blocks + j}", fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*modules)


NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


def torch_cnn_names(network):
    """dp's parameter name -> (PyTorch tensor, whether it is stored transposed), for `torch_cnn`."""
    names, counts = {}, {"conv": 0, "fc": 0, "bn": 0}
    for module in network:
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            kind = "conv" if isinstance(module, torch.nn.Conv2d) else "fc"
            counts[kind] += 1
            names[f"weight_{kind}{counts[kind]}"] = (module.weight, kind == "fc")
            if module.bias is not None:
                names[f"bias_{kind}{counts[kind]}"] = (module.bias, False)
        elif isinstance(module, NORMS):
            counts["bn"] += 1
            n = counts["bn"]
            names |= {
                f"gamma_bn{n}": (module.weight, False),
                f"beta_bn{n}": (module.bias, False),
                f"avg_mean_bn{n}": (module.running_mean, False),
                f"avg_variance_bn{n}": (module.running_var, False),
            }
    return names


def small_cnn(hidden, momentum=0.1):
    """A dp CNN of two blocks on 2 x 8 x 8 images, 5 classes, ``unbiased_average`` and its
    moving variances started at ones, as PyTorch's running_var."""
    model = dp.CNN(
        image=(2, 8, 8), channels=(3, 4), hidden=hidden, classes=5, seed=0, unbiased_average=True, momentum=momentum
    )
    model.set_param({k: np.ones_like(v) for k, v in model.params.items() if k.startswith("avg_variance_")})
    return model


def cnn_batch(rng, n=6):
    return rng.standard_normal((n, 2, 8, 8)) * 2 + 0.5, rng.integers(0, 5, n)


@pytest.mark.parametrize("hidden", [(), (6,)])
def test_a_cnn_has_torchs_loss_gradients_and_running_statistics(hidden):
    rng = np.random.default_rng(len(hidden))
    model = small_cnn(hidden)
    network = torch_cnn(model)
    x, y = cnn_batch(rng)
    loss = model.loss(x, y, train=True, reduction="mean")
    grads = loss.grad(1)
    theirs = torch.nn.CrossEntropyLoss(reduction="mean")(network.train()(tensor(x)), torch.tensor(y))
    theirs.backward()
    assert_close(loss.value, theirs, "loss")
    assert set(grads) == {k for k, (t, _) in torch_cnn_names(network).items() if t.requires_grad}
    assert_same_network(grads, network, lambda t: t.grad, "gradient", names=torch_cnn_names)
    assert_same_network(model, network, what="after one training batch", names=torch_cnn_names)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("hidden", [(), (6,)])
def test_sgd_training_of_a_cnn_follows_torchs_weights_running_statistics_and_eval_predictions(hidden, momentum):
    rng = np.random.default_rng(7)
    model = small_cnn(hidden, momentum)
    network = torch_cnn(model)
    ours, theirs = dp.optim.SGD(lr=0.1), torch.optim.SGD(network.parameters(), lr=0.1)
    criterion = torch.nn.CrossEntropyLoss(reduction="mean")
    network.train()
    for n in (8, 3, 6):  # batch sizes vary: PyTorch's unbiased variance is per batch
        x, y = cnn_batch(rng, n)
        ours.step(model.params, model.loss(x, y, reduction="mean").grad(1))
        theirs.zero_grad()
        criterion(network(tensor(x)), torch.tensor(y)).backward()
        theirs.step()
    assert_same_network(model, network, what="after 3 SGD steps", names=torch_cnn_names)
    counts = [m.num_batches_tracked.item() for m in network if isinstance(m, NORMS)]
    assert [model.params[f"batches_bn{i}"].item() for i in range(1, len(counts) + 1)] == counts == [3] * len(counts)
    x, _ = cnn_batch(rng, 10)
    network.eval()
    assert_close(model.predict_proba(x), torch.softmax(network(tensor(x)), dim=1), "eval predictions")


@pytest.mark.parametrize("hidden", [(), (6,)])
def test_folding_a_trained_cnn_gives_torchs_fused_convolutions_and_linear_layers(hidden):
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    rng = np.random.default_rng(3)
    model = small_cnn(hidden)
    optimizer = dp.optim.Adam(lr=0.05)
    for _ in range(4):
        optimizer.step(model.params, model.loss(*cnn_batch(rng)).grad(1))
    folded = dp.fold_batch_norm(model)
    network = torch_cnn(model).eval()  # PyTorch's running statistics are dp's trained moving averages
    modules = list(network)
    pairs = [(a, b) for a, b in zip(modules, modules[1:]) if isinstance(b, NORMS)]  # each layer and its norm
    fused = [(fuse_conv_bn_eval if isinstance(a, torch.nn.Conv2d) else fuse_linear_bn_eval)(a, b) for a, b in pairs]
    layers = [layer.weight_key.removeprefix("weight_") for layer, _ in model.folded_pairs()]
    assert len(layers) == len(fused) == 2 + len(hidden)
    for layer, module in zip(layers, fused):
        weight = module.weight.detach().numpy()
        assert_close(folded.params[f"weight_{layer}"], weight if layer.startswith("conv") else weight.T, layer)
        assert_close(folded.params[f"bias_{layer}"], module.bias, layer)
    x, _ = cnn_batch(rng, 10)
    assert_close(folded.predict_proba(x), torch.softmax(network(tensor(x)), dim=1), "folded predictions")


# ----- convolution and pooling -----


@pytest.mark.parametrize("stride, padding", [(2, 1), (1, 0), ((2, 1), (0, 1))])
def test_conv2d_output_and_gradients_match_torchs(rng, stride, padding):
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    y = conv2d(dp.Node(x, "x"), dp.Node(w, "w"), dp.Node(b.reshape(1, 4, 1, 1), "b"), stride=stride, padding=padding)
    upstream = rng.standard_normal(y.shape)
    grads = y.grad(upstream)
    xt, wt, bt = tensor(x, grad=True), tensor(w, grad=True), tensor(b, grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    yt.backward(tensor(upstream))
    assert y.shape == tuple(yt.shape)
    assert_close(y.value, yt, "output")
    for name, t in (("x", xt), ("w", wt), ("b", bt)):
        assert_close(grads[name], t.grad, name)


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), ((2, 3), (1, 2))])
@pytest.mark.parametrize("ours, theirs", [(max_pool2d, "max_pool2d"), (avg_pool2d, "avg_pool2d")])
def test_pooling_output_and_gradient_match_torchs(rng, ours, theirs, kernel, stride):
    x = rng.standard_normal((2, 3, 9, 8))
    y = ours(dp.Node(x, "x"), kernel, stride)
    upstream = rng.standard_normal(y.shape)
    xt = tensor(x, grad=True)
    yt = getattr(torch.nn.functional, theirs)(xt, kernel, stride)
    yt.backward(tensor(upstream))
    assert y.shape == tuple(yt.shape)
    assert_close(y.value, yt, "output")
    assert_close(y.grad(upstream)["x"], xt.grad, "x")


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (2, 1)])
def test_max_pool_sends_a_tied_window_gradient_where_torch_does(rng, kernel, stride):
    """After a ReLU whole windows are 0: both give each window's gradient to its first maximum."""
    x = np.maximum(rng.standard_normal((2, 2, 8, 7)) - 1, 0)  # mostly zeros
    y = max_pool2d(dp.Node(x, "x"), kernel, stride)
    upstream = rng.standard_normal(y.shape)
    xt = tensor(x, grad=True)
    torch.nn.functional.max_pool2d(xt, kernel, stride).backward(tensor(upstream))
    assert_close(y.grad(upstream)["x"], xt.grad, "x")


# ----- images: batch norm (BatchNorm2d), group, instance and layer norm -----

IMAGES = (6, 4, 3, 5)  # N, C, H, W; 4 channels: 1, 2 and 4 groups
CHANNELS = IMAGES[1]
PER_CHANNEL = (1, CHANNELS, 1, 1)


def images(rng, n=IMAGES[0]):
    """NCHW images whose channels are on different scales and offsets."""
    scale, offset = rng.uniform(0.1, 10, PER_CHANNEL), rng.uniform(-5, 5, PER_CHANNEL)
    return rng.standard_normal((n, *IMAGES[1:])) * scale + offset


def affine(rng):
    """A random per-channel gamma and beta, (1, C, 1, 1)."""
    return rng.uniform(0.5, 2.0, PER_CHANNEL), rng.standard_normal(PER_CHANNEL)


def layers2d(rng, momentum=0.1, eps=1e-5):
    """dp's batch_norm2d layer (unbiased_average, avg_variance started at ones) and PyTorch's
    BatchNorm2d, with the same random gamma and beta."""
    net = dp.NeuralNode()
    ours = net.batch_norm2d(CHANNELS, "bn", momentum=momentum, eps=eps, unbiased_average=True)
    gamma, beta = affine(rng)
    net.set_param({"gamma_bn": gamma, "beta_bn": beta, "avg_variance_bn": np.ones(PER_CHANNEL)})
    theirs = torch.nn.BatchNorm2d(CHANNELS, momentum=momentum, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(tensor(gamma.ravel()))
        theirs.bias.copy_(tensor(beta.ravel()))
    return net, ours, theirs


@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.5, 1e-3)])
def test_batch_norm2d_in_training_matches_torchs_batch_norm2d(rng, momentum, eps):
    net, ours, theirs = layers2d(rng, momentum, eps)
    x, upstream = images(rng), rng.standard_normal(IMAGES)
    assert_same_outputs_and_gradients(*forward_and_backward(net, ours, theirs, x, upstream, train=True))


def test_batch_norm2d_running_statistics_match_torchs_after_three_steps(rng):
    net, ours, theirs = layers2d(rng, momentum=0.2)
    for n in (6, 2, 9):  # batch sizes vary: m / (m - 1), m = N * H * W, is per batch
        x = images(rng, n)
        ours(x, train=True)
        theirs.train()(tensor(x))
    assert_close(net.params["avg_mean_bn"], theirs.running_mean, "mean")
    assert_close(net.params["avg_variance_bn"], theirs.running_var, "variance")
    assert net.params["batches_bn"][0, 0] == theirs.num_batches_tracked.item() == 3


def test_batch_norm2d_in_eval_mode_matches_torchs_with_the_same_running_statistics(rng):
    net, ours, theirs = layers2d(rng, momentum=0.3)
    for _ in range(3):
        x = images(rng)
        ours(x, train=True)
        theirs.train()(tensor(x))
    averages = net.get_param()
    x, upstream = images(rng), rng.standard_normal(IMAGES)
    assert_same_outputs_and_gradients(*forward_and_backward(net, ours, theirs, x, upstream, train=False))
    assert all(np.array_equal(net.params[k], averages[k]) for k in averages)  # evaluation changed nothing


@pytest.mark.parametrize("groups", [1, 2, CHANNELS])
def test_group_norm_matches_torchs_group_norm(rng, groups):
    assert_function_matches(
        lambda x, g, b: dp.group_norm(x, groups, g, b, eps=1e-5),
        lambda x, g, b: torch.nn.functional.group_norm(x, groups, g, b, eps=1e-5),
        images(rng),
        *affine(rng),
        rng,
    )


def test_instance_norm_matches_torchs_instance_norm_with_weight_and_bias(rng):
    assert_function_matches(
        lambda x, g, b: dp.instance_norm(x, g, b, eps=1e-5),
        lambda x, g, b: torch.nn.functional.instance_norm(x, weight=g, bias=b, eps=1e-5),
        images(rng),
        *affine(rng),
        rng,
    )


def test_layer_norm_on_rows_matches_torchs_layer_norm(rng):
    x, gamma, beta = batch(rng), rng.uniform(0.5, 2, (1, FEATURES)), rng.standard_normal((1, FEATURES))
    assert_function_matches(
        lambda x, g, b: dp.layer_norm(x, g, b, eps=1e-5),
        lambda x, g, b: torch.nn.functional.layer_norm(x, (FEATURES,), g, b, eps=1e-5),
        x,
        gamma,
        beta,
        rng,
    )


def test_layer_norm_on_images_matches_torchs_group_norm_with_one_group(rng):
    assert_function_matches(
        lambda x, g, b: dp.layer_norm(x, g, b, eps=1e-5),
        lambda x, g, b: torch.nn.functional.group_norm(x, 1, g, b, eps=1e-5),
        images(rng),
        *affine(rng),
        rng,
    )


@pytest.mark.parametrize("groups", [1, 2, CHANNELS])
def test_the_group_norm_layer_matches_torchs_group_norm_module(rng, groups):
    net = dp.NeuralNode()
    ours = net.group_norm(CHANNELS, groups, "gn", eps=1e-3)
    gamma, beta = affine(rng)
    net.set_param({"gamma_gn": gamma, "beta_gn": beta})
    theirs = torch.nn.GroupNorm(groups, CHANNELS, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(tensor(gamma.ravel()))
        theirs.bias.copy_(tensor(beta.ravel()))
    x, upstream = images(rng), rng.standard_normal(IMAGES)
    y = ours(dp.Node(x, "x"))
    grads = y.grad(upstream)
    xt = tensor(x, grad=True)
    yt = theirs(xt)
    yt.backward(tensor(upstream))
    assert_same_outputs_and_gradients(
        (y.value, grads), (yt, {"x": xt.grad, "gamma_gn": theirs.weight.grad, "beta_gn": theirs.bias.grad})
    )
