"""NeuralNode and its layers: the seed notebook's style, batch norm's two modes, its
closed-form backward against a composition of elementary ops, and bad input."""

import numpy as np
import pytest

import dp
from dp import Node, gradcheck
from dp.nn.normalization import batch_norm, batch_norm_eval

EPS = 1e-5


class SeedNet(dp.NeuralNode):
    """The seed notebook's model class: it never calls super().__init__()."""

    def __init__(self):
        self.params = dict()
        self.l1 = self.linear(30, 20, "l1", bias=False)
        self.bn1 = self.batch_norm(20, "bn1")
        self.l2 = self.linear(20, 10, "l2", bias=False)
        self.bn2 = self.batch_norm(10, "bn2")
        self.l3 = self.linear(10, 1, "l3")

    def forward(self, x, train=None):
        h = self.bn1(self.l1(x), train).tanh()
        h = self.bn2(self.l2(h), train).tanh()
        return self.l3(h).sigmoid()


def composed_batch_norm(x, gamma, beta, mean=None, var=None):
    """Batch norm written with elementary Node operations, as a student would."""
    if mean is None:
        mean, var = x.mean(axis=0), x.var(axis=0)
    return gamma * (x - mean) / (var + EPS).sqrt() + beta


def snapshot(params):
    return {k: v.copy() for k, v in params.items()}


def assert_bitwise_equal(params, saved):
    assert params.keys() == saved.keys()
    for k in saved:
        assert np.array_equal(params[k], saved[k]) and params[k].dtype == saved[k].dtype, k


def trained(net, batches=5, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(batches):
        net.forward(rng.normal(size=(16, 30)), train=True)
    return net


class TestTheSeedStyle:
    def test_a_subclass_that_only_sets_params_works_without_super_init(self):
        net = SeedNet()
        assert net.forward(np.random.default_rng(0).normal(size=(8, 30))).shape == (8, 1)

    def test_factories_register_the_documented_names_and_shapes(self):
        net = SeedNet()
        shapes = {k: v.shape for k, v in net.params.items()}
        assert shapes == {
            "weight_l1": (30, 20), "gamma_bn1": (1, 20), "beta_bn1": (1, 20),
            "avg_mean_bn1": (1, 20), "avg_variance_bn1": (1, 20), "batches_bn1": (1, 1),
            "weight_l2": (20, 10), "gamma_bn2": (1, 10), "beta_bn2": (1, 10),
            "avg_mean_bn2": (1, 10), "avg_variance_bn2": (1, 10), "batches_bn2": (1, 1),
            "weight_l3": (10, 1), "bias_l3": (1, 1),
        }  # fmt: skip
        np.testing.assert_array_equal(net.params["gamma_bn1"], np.ones((1, 20)))
        for key in ("beta_bn1", "avg_mean_bn1", "avg_variance_bn1", "batches_bn1", "bias_l3"):
            assert not net.params[key].any()

    def test_forward_functions_read_params_at_call_time(self):
        net = SeedNet()
        x = np.random.default_rng(1).normal(size=(4, 30))
        before = net.l1(x).value
        net.params["weight_l1"] = net.params["weight_l1"] * 2
        np.testing.assert_allclose(net.l1(x).value, 2 * before)

    def test_the_seed_training_step_updates_parameters_but_never_moving_averages(self):
        net = SeedNet()
        rng = np.random.default_rng(2)
        x, y = rng.normal(size=(20, 30)), rng.integers(0, 2, size=(20, 1))
        loss = dp.nn.losses.binary_cross_entropy(net.forward(x), y)
        grads = loss.grad(1)
        assert not any(k.startswith("avg_") for k in grads)
        averages = {k: net.params[k] for k in net.params if k.startswith("avg_")}
        net.params.update({k: net.params[k] - 0.1 * grads[k] for k in grads})
        assert all(net.params[k] is v for k, v in averages.items())

    def test_linear_weights_start_glorot_normal_and_biases_at_zero(self):
        net = dp.NeuralNode(seed=0)
        net.linear(400, 600, "big")
        w = net.params["weight_big"]
        assert abs(w.mean()) < 3e-3
        assert abs(w.std() - np.sqrt(2 / 1000)) < 1e-3
        assert not net.params["bias_big"].any()

    def test_the_same_seed_gives_the_same_initial_weights(self):
        a, b = dp.NeuralNode(seed=7), dp.NeuralNode(seed=7)
        a.linear(3, 2, "l"), b.linear(3, 2, "l")
        np.testing.assert_array_equal(a.params["weight_l"], b.params["weight_l"])

    def test_two_layers_cannot_share_a_name(self):
        net = dp.NeuralNode()
        net.linear(3, 2, "l")
        with pytest.raises(ValueError, match="already in use"):
            net.linear(3, 2, "l")


class TestTheSeedChecks:
    """The seed notebook's own checks, as tests."""

    def test_output_has_mean_beta_and_std_abs_gamma(self):
        """Exactly, the std is |gamma| sqrt(var / (var + eps)): within 1e-5 of |gamma| for
        |gamma| <= 2 on N(0, 1) data, hence the range of the random gamma."""
        net = SeedNet()
        rng = np.random.default_rng(3)
        net.params["gamma_bn2"] = rng.uniform(-2, 2, size=(1, 10))
        net.params["beta_bn2"] = rng.normal(size=(1, 10))
        x = rng.normal(size=(100, 10))
        out = net.bn2(x).value
        gamma, beta = net.params["gamma_bn2"], net.params["beta_bn2"]
        np.testing.assert_allclose(out.mean(axis=0, keepdims=True), beta, atol=1e-5)
        np.testing.assert_allclose(out.std(axis=0, keepdims=True), np.abs(gamma), atol=1e-5)
        var = x.var(axis=0, keepdims=True)
        np.testing.assert_allclose(
            out.std(axis=0, keepdims=True), np.abs(gamma) * np.sqrt(var / (var + EPS)), rtol=1e-12
        )

    def test_moving_averages_start_at_zero_and_learn_new_data(self):
        net = SeedNet()
        assert not net.params["avg_mean_bn1"].any() and not net.params["avg_variance_bn1"].any()
        rng = np.random.default_rng(4)
        for _ in range(100):
            net.bn1(rng.normal(42, 10, size=(1000, 20)))  # no train argument: training
        np.testing.assert_allclose(net.params["avg_mean_bn1"], 42, atol=1)
        np.testing.assert_allclose(net.params["avg_variance_bn1"], 100, atol=5)


class TestBatchNormModes:
    def test_one_training_batch_moves_the_averages_by_the_momentum_formula(self):
        net = dp.NeuralNode()
        bn = net.batch_norm(3, "bn", momentum=0.25)
        net.params["avg_mean_bn"] = np.full((1, 3), 1.0)
        net.params["avg_variance_bn"] = np.full((1, 3), 2.0)
        x = np.random.default_rng(5).normal(size=(6, 3))
        bn(x)
        np.testing.assert_allclose(net.params["avg_mean_bn"], 0.75 * 1.0 + 0.25 * x.mean(axis=0, keepdims=True))
        np.testing.assert_allclose(net.params["avg_variance_bn"], 0.75 * 2.0 + 0.25 * x.var(axis=0, keepdims=True))

    def test_the_unbiased_option_stores_the_unbiased_batch_variance(self):
        net = dp.NeuralNode()
        bn = net.batch_norm(3, "bn", momentum=1.0, unbiased_average=True)
        x = np.random.default_rng(6).normal(size=(6, 3))
        out = bn(x).value
        np.testing.assert_allclose(net.params["avg_variance_bn"], x.var(axis=0, ddof=1, keepdims=True))
        var = x.var(axis=0)  # normalization still uses the biased variance
        np.testing.assert_allclose(out.std(axis=0), np.sqrt(var / (var + EPS)), rtol=1e-12)

    def test_eval_mode_uses_the_moving_averages_and_changes_nothing(self):
        net = trained(SeedNet())
        saved = snapshot(net.params)
        x = np.random.default_rng(7).normal(size=(5, 20))
        p = net.params
        expected = p["gamma_bn1"] * (x - p["avg_mean_bn1"]) / np.sqrt(p["avg_variance_bn1"] + EPS) + p["beta_bn1"]
        np.testing.assert_allclose(net.bn1(x, train=False).value, expected, rtol=1e-13)
        assert_bitwise_equal(net.params, saved)

    def test_eval_mode_output_of_one_row_does_not_depend_on_the_rest_of_the_batch(self):
        net = trained(SeedNet()).eval()
        x = np.random.default_rng(8).normal(size=(6, 30))
        # equal up to rounding: BLAS may sum in another order for another batch size
        np.testing.assert_allclose(net.forward(x).value[:1], net.forward(x[:1]).value, rtol=1e-14)

    def test_the_model_switch_reaches_every_batch_norm_layer(self):
        net = trained(SeedNet())
        x = np.random.default_rng(9).normal(size=(6, 30))
        net.eval()
        saved = snapshot(net.params)
        eval_out = net.forward(x).value
        assert_bitwise_equal(net.params, saved)  # no layer updated its averages
        np.testing.assert_array_equal(eval_out, net.forward(x, train=False).value)
        net.train()
        train_out = net.forward(x).value
        assert not np.array_equal(train_out, eval_out)
        assert not np.array_equal(net.params["avg_mean_bn2"], saved["avg_mean_bn2"])

    def test_an_explicit_train_argument_overrides_the_model_mode(self):
        net = trained(SeedNet()).eval()
        saved = snapshot(net.params)
        net.bn1(np.random.default_rng(10).normal(size=(6, 20)), train=True)
        assert not np.array_equal(net.params["avg_mean_bn1"], saved["avg_mean_bn1"])

    def test_predict_uses_eval_mode_even_while_training(self):
        net = trained(SeedNet())
        assert net.training
        x = np.random.default_rng(11).normal(size=(6, 30))
        saved = snapshot(net.params)
        proba = net.predict_proba(x)
        assert_bitwise_equal(net.params, saved)
        np.testing.assert_array_equal(proba, net.forward(x, train=False).value)
        np.testing.assert_array_equal(net.predict(x), (proba > 0.5).astype(int))
        assert net.predict(x).shape == (6, 1) and net.training

    def test_moving_averages_never_appear_in_gradients_in_either_mode(self):
        net = trained(SeedNet())
        x = np.random.default_rng(12).normal(size=(6, 30))
        for train in (True, False):
            grads = net.forward(x, train).sum().grad(1)
            assert set(grads) == {k for k in net.params if not dp.nn.is_state(k)}


class TestFusedBatchNorm:
    rng = np.random.default_rng(13)
    x = rng.normal(2.0, 3.0, size=(7, 4))
    gamma, beta = rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    mean, var = rng.normal(size=(1, 4)), rng.uniform(0.5, 2.0, size=(1, 4))
    seed = rng.normal(size=(7, 4))

    def fused(self, train):
        if train:
            return lambda x, g, b: batch_norm(x, g, b, eps=EPS)
        return lambda x, g, b: batch_norm_eval(x, g, b, self.mean, self.var, eps=EPS)

    def composed(self, train):
        if train:
            return composed_batch_norm
        return lambda x, g, b: composed_batch_norm(x, g, b, Node(self.mean), Node(self.var))

    @pytest.mark.parametrize("train", [True, False])
    def test_fused_and_composed_agree_on_values_and_gradients(self, train):
        outputs = []
        for f in (self.fused(train), self.composed(train)):
            out = f(Node(self.x, "x"), Node(self.gamma, "gamma"), Node(self.beta, "beta"))
            outputs.append((out.value, out.grad(self.seed)))
        (fused_value, fused_grads), (composed_value, composed_grads) = outputs
        np.testing.assert_allclose(fused_value, composed_value, rtol=0, atol=1e-10)
        assert fused_grads.keys() == composed_grads.keys() == {"x", "gamma", "beta"}
        for k in fused_grads:
            np.testing.assert_allclose(fused_grads[k], composed_grads[k], rtol=0, atol=1e-10)

    @pytest.mark.parametrize("train", [True, False])
    def test_fused_gradients_pass_gradcheck(self, train):
        assert gradcheck(self.fused(train), self.x, self.gamma, self.beta, tol=1e-7) < 1e-7

    @pytest.mark.parametrize("train", [True, False])
    def test_the_layer_passes_gradcheck_for_its_input(self, train):
        net = trained(SeedNet())
        x = np.random.default_rng(14).normal(size=(6, 20))
        assert gradcheck(lambda x: net.bn1(x, train=train), x, tol=1e-7) < 1e-7

    def test_float32_stays_float32(self):
        x = Node(self.x.astype(np.float32), "x")
        g, b = Node(self.gamma.astype(np.float32), "g"), Node(self.beta.astype(np.float32), "b")
        out = batch_norm(x, g, b)
        grads = out.grad(self.seed.astype(np.float32))
        assert out.dtype == np.float32 and {v.dtype for v in grads.values()} == {np.dtype(np.float32)}


class TestBadInput:
    def test_a_training_batch_of_one_says_why_it_cannot_be_normalized(self):
        net = SeedNet()
        with pytest.raises(ValueError, match="at least 2 rows.*variance"):
            net.bn1(np.ones((1, 20)))

    def test_an_empty_batch_is_refused(self):
        net = SeedNet()
        with pytest.raises(ValueError, match="empty"):
            net.bn1(np.ones((0, 20)))
        with pytest.raises(ValueError, match="empty"):
            net.l1(np.ones((0, 30)))

    def test_a_feature_count_mismatch_names_the_layer_and_both_sizes(self):
        net = SeedNet()
        with pytest.raises(ValueError, match=r"batch norm 'bn1'.*20.*\(5, 19\)"):
            net.bn1(np.ones((5, 19)))
        with pytest.raises(ValueError, match=r"linear layer 'l1'.*30.*\(5, 29\)"):
            net.l1(np.ones((5, 29)))

    def test_evaluating_before_any_training_batch_is_a_clear_error(self):
        net = SeedNet()
        with pytest.raises(RuntimeError, match="has not seen a training batch"):
            net.bn1(np.ones((5, 20)), train=False)
        with pytest.raises(RuntimeError, match="has not seen a training batch"):
            net.predict(np.ones((5, 30)))

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    @pytest.mark.parametrize("train", [True, False])
    def test_nan_or_inf_input_raises_before_anything_changes(self, bad, train):
        net = trained(SeedNet())
        saved = snapshot(net.params)
        x = np.random.default_rng(15).normal(size=(6, 20))
        x[3, 2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            net.bn1(x, train=train)
        assert_bitwise_equal(net.params, saved)

    @pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf weights, on purpose
    def test_a_failure_deep_in_a_training_step_restores_every_average(self):
        net = trained(SeedNet())
        net.params["weight_l2"] = np.full((20, 10), np.inf)  # bn2 will see inf after bn1 has updated
        saved = snapshot(net.params)
        x = np.random.default_rng(16).normal(size=(6, 30))
        with pytest.raises(dp.NonFiniteError, match="bn2"):
            dp.train.fit(net, x, (x[:, :1] > 0).astype(float), dp.optim.SGD(), steps=1, batch_size=6, progress=False)
        assert_bitwise_equal(net.params, saved)


class TestParamAccess:
    def test_get_param_returns_copies(self):
        net = SeedNet()
        copy = net.get_param()
        copy["weight_l1"][0, 0] = 99.0
        assert net.params["weight_l1"][0, 0] != 99.0

    def test_set_param_replaces_values_with_copies(self):
        net = SeedNet()
        new = np.zeros((30, 20))
        net.set_param({"weight_l1": new})
        new[0, 0] = 1.0
        assert not net.params["weight_l1"].any()

    def test_set_param_refuses_unknown_names_and_changes_nothing(self):
        net = SeedNet()
        saved = snapshot(net.params)
        with pytest.raises(KeyError, match="weight_l9"):
            net.set_param({"weight_l1": np.zeros((30, 20)), "weight_l9": np.zeros(3)})
        assert_bitwise_equal(net.params, saved)

    def test_set_param_refuses_a_wrong_shape_and_changes_nothing(self):
        net = SeedNet()
        saved = snapshot(net.params)
        with pytest.raises(ValueError, match=r"weight_l2.*\(20, 10\)"):
            net.set_param({"weight_l1": np.zeros((30, 20)), "weight_l2": np.zeros((10, 20))})
        assert_bitwise_equal(net.params, saved)

    def test_set_param_refuses_nan_and_changes_nothing(self):
        net = SeedNet()
        saved = snapshot(net.params)
        with pytest.raises(dp.NonFiniteError, match="weight_l2"):
            net.set_param({"weight_l1": np.zeros((30, 20)), "weight_l2": np.full((20, 10), np.nan)})
        assert_bitwise_equal(net.params, saved)

    def test_set_param_refuses_a_negative_moving_variance_and_changes_nothing(self):
        net = SeedNet()
        saved = snapshot(net.params)
        with pytest.raises(ValueError, match="'avg_variance_bn1' is a variance: it cannot be negative"):
            net.set_param({"weight_l1": np.zeros((30, 20)), "avg_variance_bn1": -np.ones((1, 20))})
        assert_bitwise_equal(net.params, saved)

    def test_set_param_keeps_each_entrys_dtype_in_a_float32_model(self):
        net = dp.NeuralNode(dtype=np.float32)
        net.linear(2, 3, "l1")
        net.batch_norm(3, "bn1")
        net.set_param({"weight_l1": np.ones((2, 3)), "avg_variance_bn1": np.ones((1, 3)), "batches_bn1": [[4]]})
        assert {v.dtype for v in net.params.values()} == {np.dtype(np.float32)}
        np.testing.assert_array_equal(net.params["batches_bn1"], [[4.0]])

    def test_set_param_accepts_zero_counts_and_variances_but_not_fractional_counts(self):
        net = SeedNet()
        net.set_param({"avg_variance_bn1": np.zeros((1, 20)), "batches_bn1": np.zeros((1, 1))})
        with pytest.raises(ValueError, match="whole number"):
            net.set_param({"batches_bn1": np.full((1, 1), 2.5)})
        with pytest.raises(ValueError, match="count: it cannot be negative"):
            net.set_param({"batches_bn1": -np.ones((1, 1))})


def test_predict_calls_a_probability_of_exactly_one_half_class_0():
    from dp.nn.module import classes

    np.testing.assert_array_equal(classes(np.array([[0.5], [0.5000001], [0.4999999]])), [[0], [1], [0]])
    assert classes(np.array([[0.5]])).dtype == np.int64
    np.testing.assert_array_equal(classes(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])), [[1], [0]])


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, "U3"])
def test_a_model_dtype_must_be_floating_point(dtype):
    with pytest.raises(TypeError, match="dtype must be a floating-point type"):
        dp.NeuralNode(dtype=dtype)


def test_a_float32_seed_style_model_computes_in_float32_on_float64_data():
    class Float32Net(SeedNet):
        def __init__(self):
            dp.NeuralNode.__init__(self, seed=0, dtype=np.float32)
            self.l1 = self.linear(30, 20, "l1", bias=False)
            self.bn1 = self.batch_norm(20, "bn1")
            self.l2 = self.linear(20, 10, "l2", bias=False)
            self.bn2 = self.batch_norm(10, "bn2")
            self.l3 = self.linear(10, 1, "l3")

    net = Float32Net()
    x = np.random.default_rng(0).normal(size=(8, 30))  # float64, as dp.data gives it
    out = net.forward(x, train=True)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in out.sum().grad(1).values())
    assert all(v.dtype == np.float32 for v in net.params.values())


@pytest.mark.parametrize("rows", [3, 8])  # 3 rows of 3 features: a column gamma would scale rows
def test_the_batch_norm_function_takes_vector_gamma_and_beta_as_rows(rows):
    x = Node(np.random.default_rng(0).normal(size=(rows, 3)), "x")
    out = batch_norm(x, np.array([1.0, 2.0, 3.0]), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out.value.std(axis=0), [1.0, 2.0, 3.0], rtol=1e-3)
    np.testing.assert_allclose(out.value.mean(axis=0), [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(batch_norm(x, 2.0, 0.0).value, 2 * batch_norm(x, 1.0, 0.0).value)


@pytest.mark.parametrize("gamma", [np.ones((3, 1)), np.ones(4), np.ones((2, 3))])
def test_the_batch_norm_function_refuses_gamma_of_another_shape(gamma):
    with pytest.raises(ValueError, match=r"gamma must have shape \(1, 3\) or \(3,\)"):
        batch_norm(Node(np.random.default_rng(0).normal(size=(3, 3))), gamma, np.zeros(3))


def test_the_batch_norm_function_gives_float64_gamma_and_beta_the_dtype_of_x():
    x = Node(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32), "x")
    out = batch_norm(x, np.full((1, 3), 2.0), np.ones((1, 3)))
    assert out.dtype == np.float32 and out.grad(1)["x"].dtype == np.float32
    np.testing.assert_allclose(out.value.std(axis=0), 2.0, rtol=1e-3)


@pytest.mark.parametrize("options", [{"momentum": 0.0}, {"momentum": 1.5}, {"eps": 0.0}, {"eps": -1e-5}])
def test_batch_norm_hyperparameters_out_of_range_are_refused(options):
    with pytest.raises(ValueError, match="momentum|eps"):
        dp.NeuralNode().batch_norm(3, "bn", **options)


def test_a_seed_attribute_makes_a_seed_style_model_reproducible():
    class Seeded(SeedNet):
        def __init__(self):
            self.seed = 3
            super().__init__()  # SeedNet.__init__ sets params = dict() and never calls NeuralNode's

    first, second = Seeded(), Seeded()
    for k in first.params:
        np.testing.assert_array_equal(first.params[k], second.params[k])


def test_a_seed_style_model_trains_with_fit_through_its_default_loss():
    net = SeedNet()
    rng = np.random.default_rng(17)
    x = rng.normal(size=(60, 30))
    y = (x[:, :1] > 0).astype(float)
    history = dp.train.fit(net, x, y, dp.optim.Adam(lr=0.01), steps=40, batch_size=20, progress=False)
    assert history.loss[-1] < history.loss[0]
    p = net.forward(x).value
    np.testing.assert_allclose(net.loss(x, y).value, dp.nn.losses.binary_cross_entropy(dp.Node(p), y).value)


def test_a_failed_first_training_step_leaves_the_layer_untrained():
    net = SeedNet()
    y_bad = np.full((6, 1), 2.0)  # labels out of [0, 1]: refused after the forward pass
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net.loss(np.random.default_rng(18).normal(size=(6, 30)), y_bad)
    assert not net.bn1.trained
    with pytest.raises(RuntimeError, match="has not seen a training batch"):
        net.predict(np.ones((2, 30)))


def test_a_layer_trained_on_constant_features_evaluates():
    net = SeedNet()
    net.bn1(np.ones((5, 20)))  # every feature constant: the batch variance is exactly 0
    assert net.bn1.trained and not net.params["avg_variance_bn1"].any()
    assert np.isfinite(net.bn1(np.ones((2, 20)), train=False).value).all()


def test_loaded_moving_averages_count_as_trained():
    net = SeedNet()
    net.set_param({"avg_variance_bn1": np.ones((1, 20))})
    assert net.bn1.trained and not net.bn2.trained


def test_a_float64_batch_keeps_a_float32_layers_averages_float32():
    net = dp.NeuralNode(dtype=np.float32)
    bn = net.batch_norm(3, "bn")
    bn(np.random.default_rng(19).normal(size=(6, 3)))  # float64 data
    assert net.params["avg_mean_bn"].dtype == net.params["avg_variance_bn"].dtype == np.float32


def test_a_batch_norm_layer_refuses_an_unknown_activation_by_name():
    with pytest.raises(ValueError, match="batch norm 'bn1': activation"):
        dp.NeuralNode().batch_norm(3, "bn1", activation="softmax")


def test_a_dropout_layer_drops_half_by_default():
    layer = dp.NeuralNode(seed=0).dropout()
    assert layer.p == 0.5
    out = layer(np.ones((1000, 4)), train=True).value
    assert set(np.unique(out)) == {0.0, 2.0} and abs((out == 0).mean() - 0.5) < 0.05


class ThreeClasses(dp.NeuralNode):
    def __init__(self):
        super().__init__(seed=0)
        self.l1 = self.linear(4, 3, "l1")

    def forward(self, x, train=None):
        return self.l1(x).softmax(axis=1)


def test_the_default_loss_of_a_model_with_several_outputs_is_the_categorical_cross_entropy():
    model, x, y = ThreeClasses(), np.random.default_rng(0).normal(size=(5, 4)), np.array([0, 2, 1, 1, 0])
    expected = dp.nn.losses.categorical_cross_entropy(model.forward(x), y)
    np.testing.assert_allclose(model.loss(x, y).value, expected.value)
    np.testing.assert_allclose(model.loss(x, y, reduction="mean").value, expected.value / 5)
    np.testing.assert_array_equal(model.predict(x), model.forward(x).value.argmax(axis=1).reshape(-1, 1))


class TestCheckedData:
    def test_a_label_vector_becomes_a_column_and_other_labels_are_kept(self):
        x = np.ones((3, 2))
        _, column = dp.NeuralNode().checked_data(x, [0, 1, 1])
        assert column.shape == (3, 1)
        _, onehot = dp.NeuralNode().checked_data(x, np.eye(3))
        assert onehot.shape == (3, 3)
        rows, _ = dp.NeuralNode().checked_data(x, [0, 1, 1])
        np.testing.assert_array_equal(rows, x)

    @pytest.mark.parametrize(
        ("y", "message"), [(1.0, "a scalar: no labels for 3 training rows"), ([0, 1], "2 labels for 3 training rows")]
    )
    def test_labels_that_are_not_one_per_row_are_refused(self, y, message):
        with pytest.raises(ValueError, match=message):
            dp.NeuralNode().checked_data(np.ones((3, 2)), y)

    def test_rows_must_be_a_matrix(self):
        with pytest.raises(ValueError, match=r"validation rows must be a 2-D array"):
            dp.NeuralNode().checked_data(np.ones(3), [0, 1, 1], what="validation")

    def test_images_are_taken_as_they_are_whatever_their_channels(self):
        images = np.random.default_rng(0).random((3, 2, 4, 5))  # 2 channels, 3 images
        x, y = dp.NeuralNode().checked_data(images, [0, 1, 1])
        assert x is images and y.shape == (3, 1)


def test_the_batch_norm_layer_class_has_the_factorys_defaults():
    from dp.nn.normalization import BatchNorm

    model = dp.NeuralNode()
    made, direct = model.batch_norm(3, "bn1"), BatchNorm(model, "bn1", 3)
    for option in (
        "momentum",
        "eps",
        "unbiased_average",
        "activation",
        "renorm",
        "rmax",
        "dmax",
        "renorm_warmup",
        "images",
        "axes",
    ):
        assert getattr(direct, option) == getattr(made, option)
    assert (direct.momentum, direct.eps, direct.unbiased_average) == (0.1, 1e-5, False)
    assert (direct.renorm, direct.rmax, direct.dmax, direct.renorm_warmup) == (False, 3.0, 5.0, 0)
    assert direct(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), train=True).shape == (2, 3)  # rows, not images


def test_batch_norm_over_one_feature_moves_its_averages():
    model = dp.NeuralNode()
    norm = model.batch_norm(1, "bn1")
    norm(np.array([[1.0], [3.0]]), train=True)
    np.testing.assert_allclose(model.params["avg_mean_bn1"], [[0.2]])
    np.testing.assert_allclose(model.params["avg_variance_bn1"], [[0.1]])


def test_the_layer_norm_class_has_the_factorys_eps():
    from dp.nn.normalization import LayerNorm

    model = dp.NeuralNode()
    assert LayerNorm(model, "ln1", 3).eps == model.layer_norm(3, "ln1").eps == 1e-5


def test_a_training_batch_of_two_rows_is_enough():
    model = dp.NeuralNode()
    out = model.batch_norm(2, "bn1")(np.array([[1.0, 0.0], [3.0, 4.0]]), train=True)
    np.testing.assert_allclose(out.value, [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-5)


def test_a_named_float64_input_to_a_float32_layer_keeps_its_gradient():
    model = dp.NeuralNode(dtype=np.float32)
    layer = model.linear(2, 1, "l1")
    x = Node(np.ones((3, 2)), "x")
    assert "x" in layer(x).sum().grad(1)
    unnamed = Node(np.ones((3, 2), np.float32))
    assert dp.nn.as_input(unnamed, np.float32) is unnamed


def test_dropout_in_evaluation_returns_an_array_input_itself():
    x = np.ones((4, 3))
    assert dp.NeuralNode(seed=0).dropout(0.5)(x, train=False).value is x


def test_a_batch_too_large_to_square_is_refused_before_the_averages_move():
    net = SeedNet()
    saved = snapshot(net.params)
    with pytest.raises(dp.NonFiniteError, match="batch norm 'bn1': the batch has values too large to square"):
        with np.errstate(over="ignore", invalid="ignore"):
            net.bn1(np.random.default_rng(1).normal(size=(4, 20)) * 1e200, train=True)
    assert_bitwise_equal(net.params, saved)


@pytest.mark.parametrize("level", ["batch_norm_composed", "batch_norm_closed_form"])
def test_batch_norm_functions_use_eps_1e_5_by_default(level):

    x = Node(np.array([[0.0, 1.0], [0.002, 1.004]]), "x")  # variances of 1e-6 and 4e-6: eps matters
    f = getattr(dp.nn, level)
    np.testing.assert_array_equal(f(x, 1.0, 0.0).value, f(x, 1.0, 0.0, 1e-5).value)
    assert abs(f(x, 1.0, 0.0).value[1, 0] - 0.301511) < 1e-6  # 1e-3 / sqrt(1e-6 + 1e-5)


def test_the_batch_norm_function_takes_two_rows_of_one_feature_and_refuses_one_row_or_three_axes():
    np.testing.assert_allclose(batch_norm(np.array([[1.0], [3.0]]), 1.0, 0.0).value, [[-1.0], [1.0]], rtol=1e-5)
    for x in (np.ones((1, 3)), np.ones((2, 3, 1))):
        with pytest.raises(ValueError, match=r"a batch of shape \(N, features\) with N >= 2"):
            batch_norm(x, 1.0, 0.0)


def test_eval_mode_batch_norm_uses_eps_1e_5_by_default():
    x, mean, var = np.array([[1.0]]), np.zeros((1, 1)), np.full((1, 1), 1e-6)
    np.testing.assert_allclose(batch_norm_eval(Node(x), 1.0, 0.0, mean, var).value, [[1 / np.sqrt(1.1e-5)]])


def test_a_batch_whose_centering_overflows_is_refused_as_too_large_without_a_warning():
    """x - mean overflows although the mean is finite: the statistics check names it, NumPy does not warn."""
    x = np.array([[-1.7e308], [1.7e308], [1.7e308]])
    with pytest.raises(dp.NonFiniteError, match="too large"):
        dp.nn.batch_statistics(x, "bn")


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_the_batch_norm_builders_activation_is_applied(activation):
    net = dp.NeuralNode(seed=0)
    plain, activated = net.batch_norm(3, "plain"), net.batch_norm(3, "activated", activation=activation)
    x = np.random.default_rng(0).normal(size=(5, 3))
    expected = getattr(plain(x), activation)().value
    np.testing.assert_array_equal(activated(x).value, expected)


def test_unchanged_puts_params_back_however_the_block_ends():
    from dp.nn.module import unchanged

    net = dp.NeuralNode()
    bn = net.batch_norm(2, "bn")
    before = net.get_param()
    with unchanged(net.params) as saved:
        bn(np.array([[1.0, 2.0], [3.0, 5.0]]), train=True)  # moves the averages and the count
        net.params["extra"] = np.ones(1)
        assert net.params["batches_bn"][0, 0] == 1 and saved["batches_bn"][0, 0] == 0
    assert net.params.keys() == before.keys() and all(np.array_equal(net.params[k], v) for k, v in before.items())
    with pytest.raises(KeyError), unchanged(net.params):
        bn(np.array([[1.0, 2.0], [3.0, 5.0]]), train=True)
        raise KeyError("a failure inside")
    assert all(np.array_equal(net.params[k], v) for k, v in before.items())
