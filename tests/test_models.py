"""dp.nn.models.MLP, the bias exercise and batch-norm folding."""

import inspect

import numpy as np
import pytest

import dp
from dp.nn.losses import binary_cross_entropy

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 30))
Y = (X[:, :1] + 0.5 * X[:, 1:2] > 0).astype(float)


def sgd_steps(model, steps=30, lr=0.05, x=X, y=Y, batch=20):
    for step in range(steps):
        rows = slice((step * batch) % len(x), (step * batch) % len(x) + batch)
        grads = model.loss(x[rows], y[rows]).grad(1)
        model.params.update({k: model.params[k] - lr * grads[k] for k in grads})
    return model


def numeric_gradient(model, key, x, y, h=1e-6):
    """Central differences of the training-mode loss with respect to params[key]."""
    base = model.params[key]
    out = np.empty_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for delta in (h, -h):
            shifted = base.copy()
            shifted[index] += delta
            model.params[key] = shifted
            values.append(model.loss(x, y, train=True).value[0, 0])
        out[index] = (values[0] - values[1]) / (2 * h)
    model.params[key] = base
    return out


class TestReferenceNetwork:
    def test_defaults_are_the_seed_network(self):
        model = dp.nn.models.MLP()
        shapes = {k: v.shape for k, v in model.params.items() if not dp.nn.is_state(k)}
        assert shapes == {
            "weight_l1": (30, 20), "gamma_bn1": (1, 20), "beta_bn1": (1, 20),
            "weight_l2": (20, 10), "gamma_bn2": (1, 10), "beta_bn2": (1, 10),
            "weight_l3": (10, 1), "bias_l3": (1, 1),
        }  # fmt: skip
        assert model.sizes == (30, 20, 10, 1) and model.has_batch_norm

    def test_forward_gives_probabilities_of_the_logits(self):
        model = dp.nn.models.MLP()
        z = model.logits(X[:10], train=True).value
        p = model.forward(X[:10]).value
        assert p.shape == (10, 1) and ((p > 0) & (p < 1)).all()
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-z)), rtol=1e-13)

    def test_loss_is_the_summed_cross_entropy_of_the_probabilities(self):
        model = dp.nn.models.MLP()
        expected = binary_cross_entropy(model.forward(X), Y).value
        np.testing.assert_allclose(model.loss(X, Y).value, expected, rtol=1e-12)
        np.testing.assert_allclose(model.loss(X, Y.ravel()).value, expected, rtol=1e-12)

    def test_loss_gradients_match_finite_differences_for_every_parameter(self):
        model = sgd_steps(dp.nn.models.MLP(sizes=(30, 4, 3, 1)), steps=3)
        x, y = X[:8], Y[:8]
        grads = model.loss(x, y).grad(1)
        assert set(grads) == {k for k in model.params if not dp.nn.is_state(k)}
        for key, gradient in grads.items():
            np.testing.assert_allclose(gradient, numeric_gradient(model, key, x, y), rtol=1e-6, atol=1e-8)

    def test_training_lowers_the_loss_and_fits_the_data(self):
        model = dp.nn.models.MLP()
        before = model.loss(X, Y, train=True).value[0, 0]
        sgd_steps(model, steps=100)
        assert model.loss(X, Y, train=False).value[0, 0] < before / 4
        assert (model.predict(X) == Y).mean() > 0.95

    def test_predict_and_predict_proba_use_eval_mode(self):
        model = sgd_steps(dp.nn.models.MLP())
        saved = model.get_param()
        np.testing.assert_array_equal(model.predict_proba(X), model.forward(X, train=False).value)
        np.testing.assert_array_equal(model.predict(X), (model.predict_proba(X) > 0.5).astype(int))
        for k, v in saved.items():
            assert np.array_equal(model.params[k], v)

    def test_float32_model_computes_and_learns_in_float32(self):
        model = dp.nn.models.MLP(dtype=np.float32)
        loss = model.loss(X, Y)
        assert loss.dtype == np.float32
        assert {g.dtype for g in loss.grad(1).values()} == {np.dtype(np.float32)}
        sgd_steps(model, steps=5)
        assert {v.dtype for v in model.params.values()} == {np.dtype(np.float32)}


class TestOtherShapes:
    def test_without_batch_norm_every_linear_layer_has_a_bias(self):
        model = dp.nn.models.MLP(batch_norm=False)
        assert sorted(model.params) == ["bias_l1", "bias_l2", "bias_l3", "weight_l1", "weight_l2", "weight_l3"]
        assert not model.has_batch_norm

    def test_several_outputs_give_a_softmax_and_softmax_cross_entropy(self):
        model = dp.nn.models.MLP(sizes=(30, 8, 3))
        classes = rng.integers(0, 3, size=40)
        p = model.forward(X).value
        np.testing.assert_allclose(p.sum(axis=1), 1)
        z = model.logits(X).value
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(model.loss(X, classes).value, [[-log_p[np.arange(40), classes].sum()]])
        assert model.predict(X).shape == (40, 1)
        assert set(np.unique(model.predict(X))) <= {0, 1, 2}

    @pytest.mark.parametrize("activation", dp.nn.ACTIVATIONS)
    def test_each_activation_trains(self, activation):
        model = dp.nn.models.MLP(activation=activation)
        before = model.loss(X, Y).value[0, 0]
        sgd_steps(model, steps=60)
        assert model.loss(X, Y).value[0, 0] < before

    def test_bad_arguments_are_refused(self):
        with pytest.raises(ValueError, match="activation"):
            dp.nn.models.MLP(activation="swish")
        with pytest.raises(ValueError, match="sizes"):
            dp.nn.models.MLP(sizes=(30,))

    def test_input_of_the_wrong_width_or_with_nan_is_refused(self):
        model = dp.nn.models.MLP()
        with pytest.raises(ValueError, match=r"\(n, 30\)"):
            model.loss(X[:, :29], Y)
        bad = X.copy()
        bad[0, 0] = np.nan
        saved = model.get_param()
        with pytest.raises(ValueError, match="NaN or inf"):
            model.loss(bad, Y)
        assert all(np.array_equal(model.params[k], v) for k, v in saved.items())


class TestBiasBeforeBatchNorm:
    """docs/bias_before_batch_norm.md: a bias before batch norm changes nothing."""

    def make(self):
        net = dp.NeuralNode(seed=1)
        linear = net.linear(30, 20, "l", bias=True)
        norm = net.batch_norm(20, "bn")
        net.params["bias_l"] = np.random.default_rng(2).normal(0, 5, size=(1, 20))
        net.params["gamma_bn"] = np.random.default_rng(3).normal(size=(1, 20))
        return net, linear, norm

    def test_outputs_with_and_without_the_bias_agree_in_training_mode(self):
        net, linear, norm = self.make()
        with_bias = norm(linear(X), train=True).value
        net.params["bias_l"] = np.zeros((1, 20))
        without_bias = norm(linear(X), train=True).value
        np.testing.assert_allclose(with_bias, without_bias, rtol=0, atol=1e-12)

    def test_the_bias_gradient_is_zero(self):
        net, linear, norm = self.make()
        seed = np.random.default_rng(4).normal(size=(40, 20))
        grads = norm(linear(X), train=True).tanh().grad(seed)
        np.testing.assert_allclose(grads["bias_l"], 0, atol=1e-10)
        assert np.abs(grads["weight_l"]).max() > 1e-3  # the weights do learn


class TestFolding:
    def test_folded_model_predicts_what_the_original_predicts_in_eval_mode(self):
        model = sgd_steps(dp.nn.models.MLP())
        model.params["beta_bn1"] = model.params["beta_bn1"] + 0.3  # make every term matter
        folded = dp.fold_batch_norm(model)
        np.testing.assert_allclose(folded.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-10)
        np.testing.assert_allclose(folded.logits(X).value, model.logits(X, train=False).value, rtol=0, atol=1e-10)

    def test_folded_model_has_no_batch_norm_left(self):
        folded = dp.fold_batch_norm(sgd_steps(dp.nn.models.MLP()))
        assert not folded.has_batch_norm
        assert not any(k.split("_")[0] in ("gamma", "beta", "avg") for k in folded.params)
        assert sorted(folded.params) == ["bias_l1", "bias_l2", "bias_l3", "weight_l1", "weight_l2", "weight_l3"]

    def test_folding_leaves_the_original_untouched(self):
        model = sgd_steps(dp.nn.models.MLP())
        saved = model.get_param()
        dp.fold_batch_norm(model)
        assert all(np.array_equal(model.params[k], v) for k, v in saved.items())

    def test_folding_an_untrained_model_is_an_error(self):
        with pytest.raises(RuntimeError, match="training batch"):
            dp.fold_batch_norm(dp.nn.models.MLP())

    def test_folding_needs_an_mlp(self):
        with pytest.raises(TypeError, match="MLP"):
            dp.fold_batch_norm(dp.NeuralNode())


def test_a_float32_model_stays_float32_when_fed_float64_nodes():
    model = dp.nn.models.MLP(dtype=np.float32)
    loss = model.loss(dp.Node(X), Y)
    assert loss.dtype == np.float32
    assert {v.dtype for v in model.params.values()} == {np.dtype(np.float32)}


def test_a_model_saved_untrained_cannot_predict_after_loading(tmp_path):
    model = dp.nn.models.MLP()
    model.set_param(model.get_param())  # zero moving averages, copied: still never trained
    with pytest.raises(RuntimeError, match="has not seen a training batch"):
        model.predict(X)
    with pytest.raises(RuntimeError, match="has not seen a training batch"):
        dp.fold_batch_norm(model)


@pytest.mark.parametrize("sizes", [(30, 20.9, 1), (30, "3", 1), (30, True, 1), (30.0, 20, 1)])
def test_sizes_must_be_whole_numbers_not_truncated(sizes):
    with pytest.raises(TypeError, match="sizes must be whole numbers"):
        dp.MLP(sizes)


def test_numpy_integer_sizes_and_iterators_of_sizes_are_accepted():
    assert dp.MLP(np.array([30, 20, 1])).sizes == (30, 20, 1)
    assert dp.MLP(int(w) for w in "30 20 1".split()).sizes == (30, 20, 1)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"eps": float("inf")}, ValueError, r"eps must be a finite number in \(0, inf\)"),
        ({"eps": float("nan")}, ValueError, "eps must be a finite number"),
        ({"momentum": True}, TypeError, "momentum must be a real number, not bool"),
        ({"momentum": 0.0}, ValueError, r"momentum must be a finite number in \(0, 1\]"),
        ({"batch_norm": 1}, TypeError, "batch_norm must be True or False"),
        ({"unbiased_average": "yes"}, TypeError, "unbiased_average must be True or False"),
        ({"activation": "softsign"}, ValueError, "activation must be one of"),
        ({"seed": 1.5}, TypeError, "seed must be a whole number"),
        ({"momentum": "none"}, TypeError, "momentum must be a real number, not str"),
        ({"renorm": 1}, TypeError, "renorm must be True or False"),
        ({"renorm": True, "rmax": 0.5}, ValueError, r"rmax must be a finite number in \[1, inf\)"),
        ({"renorm": True, "dmax": -1.0}, ValueError, r"dmax must be a finite number in \[0, inf\)"),
        ({"renorm": True, "renorm_warmup": -1}, ValueError, r"renorm_warmup must be a whole number in \[0, inf\)"),
    ],
)
def test_every_setting_of_an_mlp_is_checked_when_it_is_made(options, error, message):
    with pytest.raises(error, match=message):
        dp.MLP(**options)


def test_every_mlp_that_can_be_made_can_be_saved(tmp_path):
    model = dp.MLP(eps=1e-3, momentum=1)
    assert dp.checkpoint.load(dp.checkpoint.save(model, tmp_path / "m.npz")).config == model.config


def test_record_gives_every_layer_and_changes_nothing():
    model = dp.MLP((30, 6, 4, 1), seed=0)
    model.loss(X[:20], Y[:20])  # one training batch: averages to record with
    before = model.get_param()
    values = model.record(X[:8])
    assert list(values) == ["l1", "bn1", "l2", "bn2", "l3"]
    assert [v.shape for v in values.values()] == [(8, 6), (8, 6), (8, 4), (8, 4), (8, 1)]
    np.testing.assert_allclose(values["l3"], model.logits(X[:8], train=False).value, rtol=1e-13)
    trained = model.record(X[:8], ["bn2"], train=True)["bn2"]
    np.testing.assert_allclose(trained.mean(axis=0), 0, atol=1e-12)  # the batch's own statistics
    for k, v in before.items():
        assert np.array_equal(model.params[k], v), k


def test_a_cnn_records_every_layer_and_changes_nothing():
    model = dp.CNN(image=(1, 6, 6), channels=(2, 3), hidden=(5,), classes=3, seed=0)
    images = np.random.default_rng(0).standard_normal((8, 1, 6, 6))
    model.loss(images, np.arange(8) % 3)  # one training batch: averages to record with
    before = model.get_param()
    values = model.record(images)
    assert {name: v.shape for name, v in values.items()} == {
        "conv1": (8, 2, 6, 6), "bn1": (8, 2, 6, 6), "conv2": (8, 3, 3, 3), "bn2": (8, 3, 3, 3),
        "fc1": (8, 5), "bn3": (8, 5), "fc2": (8, 3),
    }  # fmt: skip
    np.testing.assert_allclose(values["fc2"], model.logits(images, train=False).value, rtol=1e-13)
    np.testing.assert_allclose(model.record(images, ["bn1"], train=True)["bn1"].mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert all(np.array_equal(model.params[k], v) for k, v in before.items())
    assert model.activation_inputs() == {"conv1": "bn1", "conv2": "bn2", "fc1": "bn3"}
    assert dp.CNN(image=(1, 6, 6), channels=(2,), batch_norm=False).activation_inputs() == {"conv1": "conv1"}


def test_the_input_of_each_activation_is_named_by_its_layer():
    assert dp.MLP().activation_inputs() == {"l1": "bn1", "l2": "bn2"}
    assert dp.MLP(batch_norm=False).activation_inputs() == {"l1": "l1", "l2": "l2"}


def test_record_refuses_a_layer_that_does_not_exist():
    with pytest.raises(ValueError, match=r"no layer 'bn1'; its layers are \['l1', 'l2'\]"):
        dp.MLP((30, 5, 1), batch_norm=False).record(X[:4], ["bn1"])


@pytest.mark.parametrize("init, std", [("he", None), ("normal", 0.01), ("uniform", 0.5), ("glorot_uniform", None)])
def test_every_weight_of_an_mlp_follows_its_init(init, std):
    model = dp.MLP((784, 300, 200, 10), init=init, init_std=std, seed=0)
    for fan_in, fan_out, i in ((784, 300, 1), (300, 200, 2), (200, 10, 3)):
        glorot = np.sqrt(2 / (fan_in + fan_out))
        expected = {"he": np.sqrt(2 / fan_in), "normal": 0.01, "uniform": 0.5}.get(init, glorot)
        w = model.params[f"weight_l{i}"]
        assert abs(w.std() / expected - 1) < 0.1 and abs(w.mean()) < 0.1 * expected
    assert model.config["init"] == init


@pytest.mark.parametrize(
    "options, message",
    [({"init": "lecun"}, "init must be one of"), ({"init": "normal", "init_std": 0.0}, "std must be"),
     ({"init": "normal", "init_std": -1.0}, "std must be"), ({"init": "he", "init_std": 0.1}, "std is for")],
)  # fmt: skip
def test_bad_inits_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        dp.MLP(**options)


def test_a_forward_pass_that_fails_in_a_later_layer_changes_no_average():
    model = dp.MLP(seed=0, activation="relu")
    params = model.get_param()
    params["gamma_bn1"] = params["gamma_bn1"] * 1e200  # bn2 will meet values too large to square
    model.set_param(params)
    before = model.get_param()
    with pytest.raises(dp.NonFiniteError, match="bn2"):
        model.loss(X[:10], Y[:10])
    for k, v in before.items():
        assert np.array_equal(model.params[k], v), k


def test_every_activation_of_dp_is_an_mlp_activation():
    """The MLP applies the Node method of that name: every activation a Node has."""
    assert set(dp.nn.ACTIVATIONS) == {"tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus"}
    for activation in dp.nn.ACTIVATIONS:
        model = dp.MLP((3, 4, 1), activation=activation, batch_norm=False, seed=0)
        h = X[:5, :3] @ model.params["weight_l1"] + model.params["bias_l1"]
        expected = getattr(dp.Node(h), activation)().value @ model.params["weight_l2"] + model.params["bias_l2"]
        np.testing.assert_array_equal(model.logits(X[:5, :3]).value, expected)


class TwoNorms(dp.NeuralNode):
    """A seed-style network with two batch-norm layers."""

    def __init__(self):
        super().__init__(seed=0)
        self.l1 = self.linear(4, 3, "l1", bias=False)
        self.bn1 = self.batch_norm(3, "bn1")
        self.l2 = self.linear(3, 3, "l2", bias=False)
        self.bn2 = self.batch_norm(3, "bn2")
        self.l3 = self.linear(3, 1, "l3")

    def forward(self, x, train=None):
        return self.l3(self.bn2(self.l2(self.bn1(self.l1(x), train).relu()), train)).sigmoid()


@pytest.mark.parametrize("entry", ["forward", "loss"])
def test_a_seed_style_model_whose_second_norm_refuses_its_batch_changes_nothing(entry):
    net = TwoNorms()
    net.params["gamma_bn1"] = np.full((1, 3), 1e200)  # bn2 meets values too large to square
    before = net.get_param()
    x = np.random.default_rng(0).normal(size=(6, 4))
    call = net.forward if entry == "forward" else lambda x: net.loss(x, np.ones(6))
    with pytest.raises(dp.NonFiniteError, match="bn2"):
        call(x)
    assert net.params.keys() == before.keys()
    for k, v in before.items():
        np.testing.assert_array_equal(net.params[k], v, err_msg=k)


def test_a_layer_called_on_its_own_still_moves_its_averages_at_once():
    """The seed's contract: net.bn1(x) alone updates the moving averages."""
    net = TwoNorms()
    net.bn1(np.random.default_rng(1).normal(size=(5, 3)))
    assert net.params["batches_bn1"][0, 0] == 1 and net.params["avg_mean_bn1"].any()


def test_a_subclass_override_is_itself_a_transaction_and_still_runs():
    calls = []

    class Logged(TwoNorms):
        def forward(self, x, train=None):
            calls.append(len(x))
            return super().forward(x, train)

    net = Logged()
    net.forward(np.ones((3, 4)) + np.arange(3)[:, None])
    assert calls == [3] and getattr(Logged.forward, "transaction", False)


@pytest.mark.parametrize("dtype, value", [(np.float32, 1e300)])
def test_set_param_refuses_values_that_overflow_the_models_dtype_and_changes_nothing(dtype, value):
    model = dp.MLP(dtype=dtype)
    before = model.get_param()
    with pytest.raises(dp.NonFiniteError, match=f"too large for {np.dtype(dtype).name}"):
        model.set_param({"weight_l1": np.full((30, 20), value)})
    np.testing.assert_array_equal(model.params["weight_l1"], before["weight_l1"])


def test_record_in_training_mode_refuses_a_batch_of_one_row_and_honours_eps():
    """record(train=True) normalizes with the batch's own statistics through BatchNorm.normalize."""
    model = dp.MLP(eps=0.1)
    with pytest.raises(ValueError, match="at least 2 rows"):
        model.record(X[:1], train=True)
    x = X[:8]
    z = model.record(x, ["l1"], train=True)["l1"]
    mean, var = z.mean(axis=0, keepdims=True), z.var(axis=0, keepdims=True)
    np.testing.assert_allclose(model.record(x, ["bn1"], train=True)["bn1"], (z - mean) / np.sqrt(var + 0.1), atol=1e-12)


def test_finite_rows_too_large_for_the_network_are_refused_in_eval_mode_not_a_nan_class():
    model = dp.MLP(seed=0)
    model.loss(X[:20], Y[:20])  # one training batch: eval mode has averages
    huge = 1.7e308 * np.random.default_rng(3).choice([-1.0, 1.0], size=(3, 30))  # +inf and -inf meet: NaN
    for predict in (model.predict_proba, model.predict):
        with pytest.raises(dp.NonFiniteError, match="too large for it"):
            predict(huge)
    assert model.predict(X[:5]).shape == (5, 1)  # ordinary rows still predict


def test_rows_too_large_for_a_softmax_network_are_refused_without_a_numpy_warning():
    """The logits overflow to inf and the softmax subtracts inf from inf: refused as too large, with
    no RuntimeWarning on the way (pytest makes one an error)."""
    with pytest.raises(dp.NonFiniteError, match="too large for it"):
        dp.MLP((30, 3), batch_norm=False).predict_proba(np.full((2, 30), 1e308))


def test_a_float16_model_is_refused_with_the_reason():
    with pytest.raises(TypeError, match=r"float16 is too small to train in.*use float32"):
        dp.MLP(dtype=np.float16)


def test_a_finite_input_too_large_for_a_float32_model_says_so_not_nan():
    model = dp.MLP(dtype=np.float32)
    x = X[:4].copy()
    x[0, 0] = 1e39  # finite in float64, inf in float32
    with pytest.raises(dp.NonFiniteError, match="too large for float32, the model's dtype"):
        model.loss(x, Y[:4])
    with pytest.raises(dp.NonFiniteError, match="NaN or inf"):
        model.loss(np.where(x > 1e38, np.nan, x), Y[:4])  # a real NaN is still called one


def test_an_mlp_shows_the_call_that_makes_it():
    assert repr(dp.MLP()) == (
        "MLP(sizes=(30, 20, 10, 1), batch_norm=True, activation='tanh', dtype='float64', momentum=0.1, eps=1e-05, "
        "unbiased_average=False, init='glorot', init_std=None)"
    )
    assert repr(dp.MLP((4, 2), batch_norm=False)).startswith("MLP(sizes=(4, 2), batch_norm=False")


def test_the_config_holds_batch_renormalizations_settings_only_with_renorm():
    plain = dp.MLP()
    assert "renorm" not in plain.config and dp.MLP(rmax=2.0).config == plain.config  # unused without renorm
    model = dp.MLP(renorm=True, rmax=2.0, renorm_warmup=100, momentum=None)
    assert model.config == {**plain.config, "momentum": None, "renorm": True, "rmax": 2.0, "dmax": 5.0,
                            "renorm_warmup": 100}  # fmt: skip
    assert "momentum=None, eps=1e-05, unbiased_average=False, renorm=True, rmax=2.0, dmax=5.0" in repr(model)
    norms = [norm for _, norm in model.hidden]
    assert [(n.renorm, n.rmax, n.dmax, n.renorm_warmup, n.momentum) for n in norms] == [(True, 2.0, 5.0, 100, None)] * 2


def test_an_mlp_with_renorm_rmax_1_and_dmax_0_trains_exactly_as_the_plain_mlp():
    plain, renorm = dp.MLP(seed=4), dp.MLP(seed=4, renorm=True, rmax=1.0, dmax=0.0)
    sgd = dp.optim.SGD(lr=0.05)
    for step in range(4):
        rows = slice(10 * step, 10 * step + 10)
        for model in (plain, renorm):
            sgd.step(model.params, model.loss(X[rows], Y[rows]).grad(1))
    for key in plain.params:
        np.testing.assert_array_equal(renorm.params[key], plain.params[key], err_msg=key)
    np.testing.assert_array_equal(renorm.predict_proba(X), plain.predict_proba(X))


def test_an_mlp_with_renorm_trains_to_the_accuracy_of_the_plain_one():
    split = dp.data.breast_cancer(test_size=0.2, seed=0)
    scores = []
    for options in ({}, {"renorm": True, "renorm_warmup": 50}, {"renorm": True, "momentum": None}):
        model = dp.MLP(seed=0, **options)
        dp.train.fit(model, split.x_train, split.y_train, dp.optim.Adam(lr=0.003), steps=150, progress=False)
        scores.append(dp.train.accuracy(model, split.x_test, split.y_test))
    assert min(scores) > 0.9, scores


def test_sizes_with_a_zero_width_are_refused_by_the_model_itself():
    with pytest.raises(ValueError, match="all >= 1; got"):
        dp.MLP((30, 0, 1))


def test_the_mlp_and_the_cnn_define_the_classifiers_methods_with_its_signatures():
    """`Classifier` documents what a subclass defines; its own `logits` and `loss` call ``_input(x)``
    and ``_logits(h, train)``, relying on the defaults written there."""
    for name in ("_input", "_logits"):
        expected = inspect.signature(getattr(dp.nn.models.Classifier, name))
        assert inspect.signature(getattr(dp.MLP, name)) == inspect.signature(getattr(dp.CNN, name)) == expected, name


def test_the_mean_loss_is_the_summed_loss_over_the_rows():
    model = dp.MLP(batch_norm=False)
    summed, mean = model.loss(X[:8], Y[:8]), model.loss(X[:8], Y[:8], reduction="mean")
    np.testing.assert_allclose(mean.value, summed.value / 8, rtol=1e-12)


def test_checked_data_names_the_training_rows_by_default():
    with pytest.raises(ValueError, match=r"the training rows must have shape \(n, 30\)"):
        dp.MLP().checked_data(np.ones((4, 3)), [0, 1, 0, 1])


def test_checked_data_refuses_labels_the_loss_would_refuse_before_any_step():
    model = dp.MLP()
    with pytest.raises(ValueError, match="0 or 1"):
        model.checked_data(X[:4], [0, 1, 2, 1])
