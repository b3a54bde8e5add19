"""dp.CNN, the LeNet-style network, on digits-sized images (1 x 8 x 8): its layers and their
names, its input (images or rows of pixels, checked, refused without a trace), its settings,
its gradients against finite differences, training on the digits, batch-norm folding, and
its drawing. Checkpoints of a CNN are in test_checkpoint.py, PyTorch parity in
test_torch_parity.py, ``dp train --model cnn`` in test_cli.py."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

import dp
from dp.checks import NonFiniteError
from dp.nn.activations import ACTIVATIONS
from dp.nn.models import cnn_weights, feature_maps

IMAGE = (1, 8, 8)  # scikit-learn's digits
RNG = np.random.default_rng(0)
X = RNG.random((12, *IMAGE))  # pixels in [0, 1], as dp.data gives them
Y = np.arange(12) % 10


def cnn(**options):
    """A small CNN for 8 x 8 images: one block of 4 channels unless ``options`` say otherwise."""
    return dp.CNN(**{"image": IMAGE, "channels": (4,), **options})


def train(model, steps=3, optimizer=None):
    """A few optimizer steps on X, so that weights and moving averages are non-trivial."""
    optimizer = optimizer or dp.optim.SGD(lr=0.1)
    for _ in range(steps):
        optimizer.step(model.params, model.loss(X, Y).grad(1))
    return model


def learned_shapes(model):
    return {k: v.shape for k, v in model.params.items() if not dp.nn.is_state(k)}


def unchanged(model, before):
    return model.params.keys() == before.keys() and all(np.array_equal(model.params[k], before[k]) for k in before)


# ----- architecture -----


def test_the_digits_network_has_convolutions_without_bias_batch_norm_per_channel_and_one_linear_layer():
    model = dp.CNN(image=IMAGE, channels=(8, 16))
    assert learned_shapes(model) == {
        "weight_conv1": (8, 1, 3, 3), "gamma_bn1": (1, 8, 1, 1), "beta_bn1": (1, 8, 1, 1),
        "weight_conv2": (16, 8, 3, 3), "gamma_bn2": (1, 16, 1, 1), "beta_bn2": (1, 16, 1, 1),
        "weight_fc1": (64, 10), "bias_fc1": (1, 10),
    }  # fmt: skip
    state = {k: v.shape for k, v in model.params.items() if dp.nn.is_state(k)}
    assert state == {
        "avg_mean_bn1": (1, 8, 1, 1), "avg_variance_bn1": (1, 8, 1, 1), "batches_bn1": (1, 1),
        "avg_mean_bn2": (1, 16, 1, 1), "avg_variance_bn2": (1, 16, 1, 1), "batches_bn2": (1, 1),
    }  # fmt: skip
    assert model.has_batch_norm and model.outputs == 10
    assert [layer.weight_key for layer, _ in model.folded_pairs()] == ["weight_conv1", "weight_conv2"]


def test_the_defaults_are_the_mnist_network_of_the_docstring():
    default = dp.CNN()
    documented = dp.CNN(
        image=(1, 28, 28), channels=(8, 16), kernel_size=3, hidden=(), classes=10, batch_norm=True,
        activation="relu", seed=0, dtype=np.float64, momentum=0.1, eps=1e-5, unbiased_average=False, init="he",
    )  # fmt: skip
    assert default.feature_maps == [(8, 14, 14), (16, 7, 7)] and learned_shapes(default)["weight_fc1"] == (784, 10)
    x, y = np.random.default_rng(1).random((3, 1, 28, 28)), np.array([0, 3, 9])
    grads = [model.loss(x, y).grad(1) for model in (default, documented)]  # a training step: the averages move
    for ours, theirs in ((grads[0], grads[1]), (default.params, documented.params)):
        assert ours.keys() == theirs.keys()
        for key in theirs:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_feature_maps_keep_the_size_through_each_convolution_and_halve_it_in_each_pool():
    model = dp.CNN(image=IMAGE, channels=(8, 16))
    assert model.feature_maps == [(8, 4, 4), (16, 2, 2)] and model.flat_size == 64
    assert feature_maps((3, 7, 9), (5, 6), 3) == [(5, 3, 4), (6, 1, 2)]  # odd sizes round down
    assert feature_maps((1, 8, 8), (2,), 5) == [(2, 4, 4)]  # padding 2 keeps 8 x 8
    assert feature_maps((1, 8, 8), (2,), 2) == [(2, 4, 4)]  # an even kernel with padding 1: 9 x 9, pooled to 4


def test_a_block_takes_a_feature_map_down_to_2_x_2_and_pools_it_to_1_x_1():
    assert feature_maps((1, 2, 2), (3,), 3) == [(3, 1, 1)]
    assert feature_maps((1, 6, 5), (3, 2), 3) == [(3, 3, 2), (2, 1, 1)]
    model = dp.CNN(image=(1, 2, 3), channels=(3,), classes=2)
    assert model.forward(np.ones((2, 1, 2, 3)) * [[[[0, 1, 2]]]]).shape == (2, 2)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"channels": (3, 5), "hidden": (7,)},
        {"image": (3, 9, 7), "channels": (2, 4), "kernel_size": 5, "hidden": (6, 4)},
    ],
    ids=["one block", "two blocks and a hidden layer", "colour images"],
)
def test_cnn_weights_counts_the_weights_the_cnn_draws(options):
    model = cnn(**options)
    assert cnn_weights(model.config) == sum(v.size for k, v in model.params.items() if k.startswith("weight_"))


def test_the_repr_is_the_constructor_call_that_builds_the_same_network():
    model = cnn(channels=(3, 5), hidden=(7,), classes=4, activation="tanh", seed=2)
    assert repr(model).startswith("CNN(image=(1, 8, 8), channels=(3, 5), kernel_size=3, hidden=(7,), classes=4, ")
    rebuilt = eval(repr(model), {"CNN": dp.CNN})
    assert rebuilt.config == model.config and learned_shapes(rebuilt) == learned_shapes(model)


def test_hidden_layers_have_batch_norm_numbered_after_the_blocks_and_no_bias_before_it():
    model = cnn(hidden=(12, 6))
    assert learned_shapes(model) == {
        "weight_conv1": (4, 1, 3, 3), "gamma_bn1": (1, 4, 1, 1), "beta_bn1": (1, 4, 1, 1),
        "weight_fc1": (64, 12), "gamma_bn2": (1, 12), "beta_bn2": (1, 12),
        "weight_fc2": (12, 6), "gamma_bn3": (1, 6), "beta_bn3": (1, 6),
        "weight_fc3": (6, 10), "bias_fc3": (1, 10),
    }  # fmt: skip
    assert [layer.weight_key for layer, _ in model.folded_pairs()] == ["weight_conv1", "weight_fc1", "weight_fc2"]
    assert [norm.what for _, norm in model.folded_pairs()] == [f"batch norm 'bn{i}'" for i in (1, 2, 3)]


def test_without_batch_norm_every_layer_has_a_bias_and_there_is_no_state():
    model = cnn(hidden=(12,), batch_norm=False)
    assert learned_shapes(model) == {
        "weight_conv1": (4, 1, 3, 3), "bias_conv1": (1, 4, 1, 1),
        "weight_fc1": (64, 12), "bias_fc1": (1, 12),
        "weight_fc2": (12, 10), "bias_fc2": (1, 10),
    }  # fmt: skip
    assert learned_shapes(model) == {k: v.shape for k, v in model.params.items()}
    assert not model.has_batch_norm and model.folded_pairs() == []


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_gives_softmax_probabilities_and_gradients(activation):
    model = cnn(hidden=(5,), activation=activation)
    p = model.forward(X).value
    assert p.shape == (12, 10) and (p > 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    grads = model.loss(X, Y).grad(1)
    assert grads.keys() == learned_shapes(model).keys()
    assert all(np.isfinite(g).all() and g.any() for g in grads.values())


def test_a_float32_cnn_keeps_float32_through_forward_loss_gradients_and_prediction():
    model = cnn(hidden=(5,), dtype=np.float32)
    assert {v.dtype for v in model.params.values()} == {np.dtype(np.float32)}
    assert model.forward(X).dtype == np.float32  # X is float64: converted to the model's dtype
    loss = model.loss(dp.Node(X), Y)
    assert loss.dtype == np.float32
    assert {g.dtype for g in loss.grad(1).values()} == {np.dtype(np.float32)}
    assert model.predict_proba(X.reshape(12, -1)).dtype == np.float32


# ----- input -----


def test_images_and_rows_of_their_pixels_give_the_same_outputs_and_gradients():
    rows = X.reshape(len(X), -1)  # as dp.data.digits gives them
    model = train(cnn(hidden=(5,)))
    for train_mode in (True, False):  # a training batch's output does not depend on the moving averages it moves
        np.testing.assert_array_equal(model.forward(X, train_mode).value, model.forward(rows, train_mode).value)
    images, pixels = dp.Node(X, "x"), dp.Node(rows, "x")  # an input Node keeps its gradient, in its shape
    grads_images, grads_rows = model.loss(images, Y, train=False).grad(1), model.loss(pixels, Y, train=False).grad(1)
    assert grads_images["x"].shape == X.shape and grads_rows["x"].shape == rows.shape
    np.testing.assert_array_equal(grads_images["x"].reshape(rows.shape), grads_rows["x"])


def nan_images():
    x = X.copy()
    x[3, 0, 4, 4] = np.nan
    return x


BAD_INPUT = {
    "wrong size": (RNG.random((5, 1, 7, 7)), ValueError, r"the input must be images of shape \(n, 1, 8, 8\) "
                   r"\(or rows of 64 pixels\); got \(5, 1, 7,"),
    "wrong channels": (RNG.random((5, 3, 8, 8)), ValueError, r": 3 channels .* where 1 are expected"),
    "1-D": (RNG.random(64), ValueError, r"must be images \(N, C, H, W\); got shape \(64,\)$"),  # as given, not a column
    "3-D": (RNG.random((5, 8, 8)), ValueError, r"must be images \(N, C, H, W\); got shape \(5, 8, 8\)"),
    "rows of 63 pixels": (RNG.random((5, 63)), ValueError, r"64 pixels or images \(n, 1, 8, 8\); got shape \(5, 63"),
    "no images": (np.zeros((0, 64)), ValueError, r"no images \(shape \(0, 1, 8, 8\)\)"),
    "NaN": (nan_images(), NonFiniteError, "has NaN or inf values"),
    "text": (np.full((2, 64), "0.5"), TypeError, "must be numeric"),
}  # fmt: skip


@pytest.mark.parametrize("x, error, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
@pytest.mark.parametrize("call", ["forward", "loss", "predict"])
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(x, error, message, call):
    model = train(cnn(hidden=(5,)))
    before = model.get_param()
    run = {
        "forward": lambda: model.forward(x, train=True),
        "loss": lambda: model.loss(x, np.zeros(len(x), dtype=int)),
        "predict": lambda: model.predict(x),
    }[call]
    with pytest.raises(error, match=message):
        run()
    assert unchanged(model, before)


@pytest.mark.parametrize(
    "x, error, message",
    [
        (RNG.random((5, 1, 7, 7)), ValueError, r"the training rows must be images of shape \(n, 1, 8, 8\)"),
        (RNG.random((5, 3, 8, 8)), ValueError, "the training rows: 3 channels"),
        (RNG.random((5, 63)), ValueError, r"the training rows.* images .*got shape \(5, 63\)"),
        (RNG.random((5, 8, 8)), ValueError, r"the training rows must be a 2-D array .*got shape \(5, 8, 8\)"),
        (RNG.random(64), ValueError, r"the training rows must be a 2-D array .*got shape \(64,\)"),
        (nan_images(), NonFiniteError, "the training rows.*has NaN or inf values"),
    ],
    ids=["wrong size", "wrong channels", "rows of 63 pixels", "3-D", "1-D", "NaN"],
)
def test_fit_refuses_images_the_cnn_cannot_take_before_the_first_step(x, error, message):
    model = train(cnn())
    before = model.get_param()
    with pytest.raises(error, match=message):
        dp.train.fit(model, x, np.zeros(len(x), dtype=int), dp.optim.SGD(lr=0.1), steps=1, progress=False)
    assert unchanged(model, before)


def test_bad_labels_are_refused_before_the_moving_averages_move():
    model = train(cnn())
    before = model.get_param()
    with pytest.raises(ValueError, match=r"class labels must be integers in \[0, 10\)"):
        model.loss(X, np.full(12, 10))
    with pytest.raises(ValueError, match="11 labels for a batch of 12 rows"):
        model.loss(X, Y[:11])
    assert unchanged(model, before)


@pytest.mark.parametrize("call", ["forward", "loss"])
def test_a_batch_a_later_layer_refuses_leaves_the_moving_averages_of_the_earlier_ones(call):
    """One image is a training batch for the blocks' batch norm (64 values per channel), not
    for a hidden layer's (one row): the forward pass is one transaction, so bn1 is put back."""
    model = train(cnn(hidden=(5,)))
    before = model.get_param()
    one = X[:1]
    with pytest.raises(ValueError, match="batch norm 'bn2': a training batch needs at least 2 rows, got 1"):
        model.forward(one, train=True) if call == "forward" else model.loss(one, Y[:1])
    assert unchanged(model, before)
    assert model.predict(one).shape == (1, 1)  # eval mode takes one image


def test_one_image_is_a_training_batch_when_every_batch_norm_is_per_channel():
    model = train(cnn(channels=(2, 3)))
    counts = [model.params[f"batches_bn{i}"].item() for i in (1, 2)]
    model.loss(X[:1], Y[:1])  # bn2 sees 1 x 4 x 4 = 16 values per channel
    assert [model.params[f"batches_bn{i}"].item() for i in (1, 2)] == [c + 1 for c in counts]


def test_an_untrained_cnn_refuses_to_predict():
    with pytest.raises(RuntimeError, match="batch norm 'bn1' has not seen a training batch"):
        cnn().predict(X)


# ----- settings -----


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"image": (1, 3, 3), "channels": (2, 2)}, ValueError, r"image \(1, 3, 3\) is too small for 2 blocks of a 3"),
        ({"channels": (2, 2, 2, 2)}, ValueError, r"image \(1, 8, 8\) is too small for 4 blocks"),
        ({"image": (8, 8)}, ValueError, r"image must be \(channels, height, width\)"),
        ({"image": (1, 0, 8)}, ValueError, r"image must list whole numbers >= 1, got \(1, 0, 8\)"),
        ({"channels": ()}, ValueError, "channels list at least one block"),
        ({"channels": (0,)}, ValueError, r"channels must list whole numbers >= 1, got \(0,\)"),
        ({"channels": (4, -2)}, ValueError, r"channels must list whole numbers >= 1, got \(4, -2\)"),
        ({"channels": (4.5,)}, ValueError, "channels must list whole numbers >= 1"),
        ({"channels": (True,)}, ValueError, "channels must list whole numbers >= 1"),
        ({"channels": "48"}, ValueError, "channels must list whole numbers >= 1, got '48'"),
        ({"channels": ("4",)}, ValueError, "channels must list whole numbers >= 1"),
        ({"channels": 16}, ValueError, "channels must list whole numbers >= 1, got 16"),  # not "int is not iterable"
        ({"channels": None}, ValueError, "channels must list whole numbers >= 1, got None"),
        ({"hidden": (0,)}, ValueError, r"hidden must list whole numbers >= 1, got \(0,\)"),
        ({"hidden": (-3,)}, ValueError, "hidden must list whole numbers >= 1"),
        ({"hidden": "12"}, ValueError, "hidden must list whole numbers >= 1, got '12'"),
        ({"hidden": 12}, ValueError, "hidden must list whole numbers >= 1, got 12"),
        ({"classes": 1}, ValueError, r"classes must be a whole number in \[2, inf\), got 1"),
        ({"classes": 0}, ValueError, "classes must be a whole number"),
        ({"classes": 2.5}, TypeError, "classes must be a whole number, not float"),
        ({"activation": "cube"}, ValueError, "activation must be one of 'tanh', .*'softplus'; got 'cube'"),
        ({"activation": None}, ValueError, "activation must be one of"),
        ({"kernel_size": 0}, ValueError, r"kernel_size must be a whole number in \[1, inf\), got 0"),
        ({"kernel_size": -3}, ValueError, "kernel_size must be a whole number"),
        ({"kernel_size": 2.5}, TypeError, "kernel_size must be a whole number, not float"),
        ({"kernel_size": (3, 3)}, TypeError, "kernel_size must be a whole number, not tuple"),
        ({"batch_norm": 1}, TypeError, "batch_norm must be True or False"),
        ({"seed": -1}, ValueError, "seed must be a whole number"),
        ({"dtype": np.int32}, TypeError, "dtype must be a floating-point type"),
        ({"momentum": 0}, ValueError, "momentum"),
        ({"renorm": True, "rmax": 0.99}, ValueError, r"rmax must be a finite number in \[1, inf\)"),
        ({"renorm": "yes"}, TypeError, "renorm must be True or False"),
        ({"init": "lecun"}, ValueError, "init must be one of"),
    ],
)
def test_bad_settings_are_refused_with_a_message_that_names_them(options, error, message):
    with pytest.raises(error, match=message):
        cnn(**options)


def test_a_cnn_with_renorm_rmax_1_and_dmax_0_trains_exactly_as_the_plain_cnn():
    plain, renorm = train(cnn(hidden=(6,))), train(cnn(hidden=(6,), renorm=True, rmax=1.0, dmax=0.0))
    assert renorm.config == {**plain.config, "renorm": True, "rmax": 1.0, "dmax": 0.0, "renorm_warmup": 0}
    assert unchanged(renorm, plain.params)
    assert renorm.blocks[0][1].renorm and renorm.dense[0][1].renorm  # the per-channel and the per-feature layers


def test_a_float32_cnn_with_renorm_and_momentum_none_keeps_float32_and_averages_the_batches():
    model = train(cnn(hidden=(6,), renorm=True, momentum=None, dtype=np.float32), steps=2)
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert model.predict_proba(X).dtype == np.float32 and model.params["batches_bn1"][0, 0] == 2
    assert model.loss(X, Y).grad(1)["gamma_bn1"].dtype == np.float32


def test_the_batch_norm_settings_reach_every_batch_norm_layer():
    model = cnn(channels=(2, 3), hidden=(5,), momentum=0.5, eps=0.25, unbiased_average=True)
    norms = [norm for _, norm in model.folded_pairs()]
    assert len(norms) == 3
    assert all((n.momentum, n.eps, n.unbiased_average) == (0.5, 0.25, True) for n in norms)


def test_init_draws_every_weight_of_the_network():
    model = cnn(channels=(16,), hidden=(32,), init="normal", init_std=0.3)
    weights = {k: v for k, v in model.params.items() if k.startswith("weight_")}
    assert sorted(weights) == ["weight_conv1", "weight_fc1", "weight_fc2"]
    for key, w in weights.items():
        assert abs(w.std() - 0.3) < 0.045, key


def test_an_image_too_small_is_refused_before_any_weight_is_drawn(monkeypatch):
    monkeypatch.setattr(dp.NeuralNode, "conv2d", lambda *a, **k: pytest.fail("drew weights before checking the image"))
    with pytest.raises(ValueError, match="too small"):
        dp.CNN(image=(1, 2, 2), channels=(100_000, 100_000))  # 90 billion weights, had they been drawn


# ----- gradients -----


def model_loss(model, x, y):
    """The training loss of ``model`` on (x, y) as a function of the images and of every
    learned parameter, for `dp.gradcheck`: one primitive whose value is the model's loss and
    whose vector-Jacobian product is the model's own gradient (``loss.grad``). Each call
    starts from the same moving averages, so that every evaluation computes the same function."""
    keys = [k for k in model.params if not dp.nn.is_state(k)]
    start = model.get_param()

    @dp.primitive
    def loss(images, *values):
        model.set_param({**start, **dict(zip(keys, values))})
        out = model.loss(dp.Node(images, "x"), y, train=True)
        grads = out.grad(1)
        return out.value, lambda g: tuple(g * grads[k] for k in ("x", *keys))

    return loss, [start[k] for k in keys]


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "tanh"},
        {"activation": "softplus", "hidden": (3,)},
        {"activation": "tanh", "hidden": (3,), "batch_norm": False},
        {"activation": "softplus", "kernel_size": 2},  # an even kernel: padding 1, 7 x 7 maps pooled to 3 x 3
    ],
    ids=["tanh", "softplus hidden", "no batch norm", "even kernel"],
)
def test_the_loss_gradient_of_every_parameter_and_of_the_images_matches_finite_differences(options):
    """In float64, on a tiny CNN (6 x 6 images, 2 channels, 4 images, 3 classes). Smooth
    activations: a ReLU's kink or a tie in a max pool would make finite differences flaky."""
    model = dp.CNN(image=(1, 6, 6), channels=(2,), classes=3, seed=1, **options)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 1, 6, 6)), np.array([0, 1, 2, 1])
    loss, params = model_loss(model, x, y)
    assert dp.gradcheck(loss, x, *params, tol=1e-6) < 1e-6


# ----- training -----


@pytest.fixture(scope="module")
def digits():
    return dp.data.digits(seed=0)


def fit_on_digits(split, seed, steps, batch_norm=True):
    model = dp.CNN(image=IMAGE, seed=seed, batch_norm=batch_norm)
    optimizer = dp.optim.Adam(lr=0.01)
    dp.train.fit(model, split.x_train, split.y_train, optimizer, steps=steps, batch_size=64, seed=seed, progress=False)
    return model


def accuracy(model, split):
    return float((model.predict(split.x_test) == split.y_test.reshape(-1, 1)).mean())


def test_training_on_the_digits_with_batch_norm_reaches_far_above_chance(digits):
    """150 Adam steps of 64 images: about 96 % on the 359 test digits for seeds 0-2 (chance: 10 %)."""
    model = fit_on_digits(digits, seed=0, steps=150)
    assert accuracy(model, digits) > 0.8
    assert all(model.params[f"batches_bn{i}"].item() == 150 for i in (1, 2))


def test_training_is_deterministic_for_a_seed(digits):
    first, again, other = (fit_on_digits(digits, seed, steps=10) for seed in (4, 4, 5))
    assert unchanged(again, first.params)
    assert not np.array_equal(other.params["weight_conv1"], first.params["weight_conv1"])


# ----- folding -----


@pytest.mark.parametrize("hidden", [(), (7, 5)])
def test_folding_bakes_each_batch_norm_into_the_layer_before_it_and_predicts_the_same(hidden):
    model = train(cnn(channels=(3, 4), hidden=hidden))
    model.params["beta_bn1"] = model.params["beta_bn1"] + 0.3  # make every term matter
    folded = dp.fold_batch_norm(model)
    assert type(folded) is dp.CNN and not folded.has_batch_norm and "batch_norm=False" in repr(folded)
    layers = ["conv1", "conv2", *(f"fc{j}" for j in range(1, len(hidden) + 2))]
    assert sorted(folded.params) == sorted(f"{kind}_{layer}" for layer in layers for kind in ("weight", "bias"))
    assert folded.params["bias_conv1"].shape == (1, 3, 1, 1)
    np.testing.assert_allclose(folded.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(folded.logits(X).value, model.logits(X, train=False).value, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(folded.predict(X), model.predict(X))


def test_a_float32_cnn_folds_into_a_float32_cnn():
    model = train(cnn(hidden=(5,), dtype=np.float32))
    folded = dp.fold_batch_norm(model)
    assert "dtype='float32'" in repr(folded) and {v.dtype for v in folded.params.values()} == {np.dtype(np.float32)}
    np.testing.assert_allclose(folded.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-5)


def test_folding_leaves_the_cnn_untouched():
    model = train(cnn(hidden=(5,)))
    before = model.get_param()
    dp.fold_batch_norm(model)
    assert unchanged(model, before) and model.has_batch_norm


def test_folding_an_untrained_cnn_is_an_error():
    with pytest.raises(RuntimeError, match="batch norm 'bn1' has not seen a training batch"):
        dp.fold_batch_norm(cnn())


def test_folding_a_cnn_without_batch_norm_returns_an_equal_copy():
    model = train(cnn(hidden=(5,), batch_norm=False))
    folded = dp.fold_batch_norm(model)
    assert folded is not model and folded.config == model.config
    assert unchanged(folded, model.params)
    assert all(folded.params[k] is not model.params[k] for k in model.params)  # copies


# ----- drawing -----

SVG = "{http://www.w3.org/2000/svg}"


def boxes_and_edges(svg):
    """The boxes of a drawing, {title: ops text}, and its edges as (source title, target title)."""
    root = ET.fromstring(svg)
    titles, ops = {}, {}
    for g in root.iter(f"{SVG}g"):
        if "node" in g.get("class", "").split():
            texts = {t.get("class"): t.text.strip() for t in g.iter(f"{SVG}text")}
            titles[g.get("data-key")] = texts["title"]
            ops[texts["title"]] = texts.get("ops")
    edges = {
        (titles[g.get("data-source")], titles[g.get("data-target")])
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "edge"
    }
    return ops, edges


def test_a_cnn_draws_one_box_per_layer_named_as_its_parameters():
    model = cnn(channels=(2, 3))
    drawing = dp.draw(model.loss(X[:4], Y[:4]), group=True)
    assert drawing.groups == ("conv1", "bn1", "conv2", "bn2", "fc1")
    ops, edges = boxes_and_edges(drawing.svg)
    assert set(ops) == {"conv1", "bn1", "conv2", "bn2", "fc1", "softmax_cross_entropy"}
    assert ops["conv1"] == "1 op: convolve" and ops["bn1"] == "1 op: batch_norm_closed_form"
    assert edges == {
        ("conv1", "bn1"),
        ("bn1", "conv2"),
        ("conv2", "bn2"),
        ("bn2", "fc1"),
        ("fc1", "softmax_cross_entropy"),
    }
    opened = dp.draw(model.loss(X[:4], Y[:4]), group=True, expand="conv2")
    assert {"convolve", "weight_conv2"} <= set(boxes_and_edges(opened.svg)[0])


def test_fold_layer_refuses_a_batch_norm_that_does_not_follow_the_layer():
    model = dp.CNN(image=(1, 8, 8), channels=(2, 3), hidden=(4,))
    model.loss(np.random.default_rng(0).random((5, 64)), [0, 1, 2, 3, 4])  # one training batch
    (conv1, bn1), (conv2, bn2) = model.blocks
    fc1, bn3 = model.dense[0]
    with pytest.raises(
        ValueError, match=r"batch norm 'bn2' \(over 3 features of images\) does not follow conv layer 'conv1'"
    ):
        dp.nn.fold_layer(conv1, bn2)
    with pytest.raises(ValueError, match="does not follow linear layer 'fc1'"):
        dp.nn.fold_layer(fc1, bn2)  # a convolution's batch norm after a linear layer
    assert set(dp.nn.fold_layer(conv2, bn2)) == {"weight_conv2", "bias_conv2"}
    assert set(dp.nn.fold_layer(fc1, bn3)) == {"weight_fc1", "bias_fc1"}
