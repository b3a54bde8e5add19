"""The original dp's API (dp.tools.classic): client code written the way the course's notebooks are
(a Model subclass, the optimizer workflow, each optimizer) on scikit-learn's digits; the
classic update rules against steps computed by hand; and clear errors for bad input."""

import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

import dp
from dp import SGD, Adam, Helper, Model, Node, RMS_Prop, SGD_Momentum

# ----- a notebook, as the course writes it -----


class Net(Model):
    """A two-layer network as the original notebooks define one: layers in __init__, forward
    returning logits, the loss written out with a stable log-softmax on one-hot labels."""

    def __init__(self):
        super(Net, self).__init__()  # noqa: UP008 - the notebooks' spelling
        self.h = self.ReLu_Layer(64, 32, "h")
        self.out = self.Linear_Layer(32, 10, "out")

    def forward(self, x):
        return self.out(self.h(x))

    def loss(self, x, y):
        n = x.shape[0]
        logits = self.forward(x)
        max_logit = Node(np.max(logits.value, axis=1))
        log_softmax = logits - max_logit - (logits - max_logit).exp().sum(axis=1).log()
        return (-y * log_softmax).sum() / n


@pytest.fixture(scope="module")
def digits():
    """Scikit-learn's 8x8 digits, pixels scaled to [0, 1]: the first 1400 rows to train on,
    the last 397 to test on, labels one-hot for training as the notebooks' Helper makes them."""
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return x[:1400], Helper.one_hot_encoding(y[:1400], 10), x[1400:], y[1400:]


@pytest.mark.parametrize(
    "cls, hyperparam",
    [
        (SGD, {"alpha": 0.1}),
        (SGD_Momentum, {"alpha": 0.1, "beta": 0.9}),
        (RMS_Prop, {"alpha": 0.003}),
        (Adam, {"alpha": 0.003}),
    ],
)
def test_each_classic_optimizer_trains_a_notebook_model_on_digits(digits, cls, hyperparam, capsys):
    x_train, y_train, x_test, y_test = digits
    np.random.seed(0)  # as the notebooks do: the weights and the batches follow NumPy's global state
    model = Net()
    optimizer = cls(model, x_train, y_train, hyperparam=hyperparam, batch_size=32)
    last = optimizer.train(steps=600, print_each=200)
    assert last.shape == (1, 1) and last[0, 0] < 0.5
    accuracy = (model.predict(x_test).ravel() == y_test).mean()
    assert accuracy > 0.85
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "iteration\tloss"
    assert [line.split("\t")[0] for line in lines[1:]] == ["1", "200", "400", "600"]
    assert float(lines[-1].split("\t")[1]) == pytest.approx(last[0, 0], rel=1e-5)


def test_the_same_global_seed_gives_the_same_run(digits):
    x_train, y_train, *_ = digits
    runs = []
    for _ in range(2):
        np.random.seed(42)
        model = Net()
        SGD(model, x_train, y_train, hyperparam={"alpha": 0.1}).train(steps=5, print_each=5)
        runs.append(model.get_param())
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_the_optimizer_namespace_and_the_top_level_names_are_the_originals():
    assert dp.optimizer.SGD is SGD and dp.optimizer.SGD_Momentum is SGD_Momentum
    assert dp.optimizer.RMS_Prop is RMS_Prop and dp.optimizer.Adam is Adam
    assert dp.SGD is dp.classic.SGD and dp.SGD is not dp.optim.SGD  # dp's own keep their names


# ----- the model: layers, parameters, gradients -----


def test_layers_register_name_weight_and_name_bias_he_uniform():
    model = Net()
    assert set(model.get_param()) == {"h_weight", "h_bias", "out_weight", "out_bias"}
    weight, bias = model.params["h_weight"], model.params["h_bias"]
    assert weight.shape == (64, 32) and bias.shape == (1, 32)
    assert np.abs(weight).max() <= np.sqrt(6 / 64) and np.abs(bias).max() <= 1 / np.sqrt(64)
    assert weight.std() == pytest.approx(np.sqrt(2 / 64), rel=0.1)  # He: variance 2 / fan_in


def test_relu_layer_is_the_linear_layer_then_relu():
    model = Net()
    x = np.random.default_rng(0).normal(size=(5, 64))
    expected = np.maximum(x @ model.params["h_weight"] + model.params["h_bias"], 0)
    np.testing.assert_allclose(model.h(Node(x)).value, expected)


def test_get_grad_returns_the_gradients_and_the_loss(digits):
    x_train, y_train, *_ = digits
    model = Net()
    grads, loss = model.get_grad(Node(x_train[:10]), Node(y_train[:10]))
    assert isinstance(loss, Node) and loss.shape == (1, 1)
    assert set(grads) == set(model.params)
    assert all(grads[k].shape == model.params[k].shape for k in grads)


def test_get_param_copies_and_set_param_changes_what_the_layers_compute():
    model = Net()
    params = model.get_param()
    params["out_bias"] += 1.0  # a copy: the model is unchanged until set_param
    x = Node(np.ones((2, 64)))
    before = model.forward(x).value
    model.set_param(params)
    np.testing.assert_allclose(model.forward(x).value, before + 1.0)


def test_a_classic_model_can_use_dp_layers_and_predicts_in_eval_mode():
    class Normalized(Model):
        def __init__(self):
            super().__init__(seed=0)
            self.h = self.Linear_Layer(4, 3, "h")
            self.bn = self.batch_norm(3, "bn")

        def forward(self, x):
            return self.bn(self.h(x))

    model = Normalized()
    model.forward(np.random.default_rng(1).normal(size=(8, 4)))  # training: updates the averages
    assert model.training and model.predict(np.ones((2, 4))).shape == (2, 1)
    assert model.training  # predict switched to eval mode and back


# ----- the update rules, step by step by hand -----

P0 = np.array([[1.0, -2.0]])
G1 = np.array([[0.5, -1.0]])
G2 = np.array([[0.1, 0.2]])


def two_steps(cls, hyperparam):
    optimizer = cls(Net(), hyperparam=hyperparam)
    params = {"p": P0}
    optimizer.step(params, {"p": G1})
    first = params["p"]
    optimizer.step(params, {"p": G2})
    return first, params["p"]


def test_sgd_subtracts_alpha_times_the_gradient():
    first, second = two_steps(SGD, {"alpha": 0.1})
    np.testing.assert_allclose(first, [[0.95, -1.9]], rtol=1e-15)
    np.testing.assert_allclose(second, [[0.94, -1.92]], rtol=1e-15)


def test_sgd_momentum_averages_the_gradients():
    first, second = two_steps(SGD_Momentum, {"alpha": 0.1, "beta": 0.9})
    # v1 = 0.1 g1 = [0.05, -0.1];  p1 = p0 - 0.1 v1
    np.testing.assert_allclose(first, [[0.995, -1.99]], rtol=1e-15)
    # v2 = 0.9 v1 + 0.1 g2 = [0.055, -0.07];  p2 = p1 - 0.1 v2
    np.testing.assert_allclose(second, [[0.9895, -1.983]], rtol=1e-14)


def test_rms_prop_divides_by_the_corrected_root_mean_square_with_epsilon_inside():
    first, second = two_steps(RMS_Prop, {"alpha": 0.1, "beta2": 0.99, "epsilon": 1e-7})
    # s1 = 0.01 g1**2 = [0.0025, 0.01]; corrected: s1 / (1 - 0.99) = g1**2 = [0.25, 1]
    np.testing.assert_allclose(first, [[1 - 0.1 * 0.5 / np.sqrt(0.25 + 1e-7), -2 + 0.1 / np.sqrt(1 + 1e-7)]])
    # s2 = 0.99 s1 + 0.01 g2**2 = [0.002575, 0.0103]; corrected: s2 / (1 - 0.99**2) = s2 / 0.0199
    step = 0.1 * np.array([0.1, 0.2]) / np.sqrt(np.array([0.002575, 0.0103]) / 0.0199 + 1e-7)
    np.testing.assert_allclose(second, first - step, rtol=1e-12)


def test_rms_prop_bias_correction_does_not_compound():
    """With a constant gradient the corrected average is g**2 at every step, so every step
    is the same; the original's in-place correction grew it to 50 g**2, 1,700 g**2, ...,
    3e11 g**2 after ten steps."""
    optimizer = RMS_Prop(Net(), hyperparam={"alpha": 0.1})
    params, steps = {"p": np.zeros((1, 1))}, []
    for _ in range(4):
        before = params["p"]
        optimizer.step(params, {"p": np.full((1, 1), 2.0)})
        steps.append((before - params["p"])[0, 0])
    np.testing.assert_allclose(steps, 0.1 * 2 / np.sqrt(4 + 10e-8), rtol=1e-12)


def test_adam_corrects_both_averages_with_epsilon_inside_the_root():
    first, second = two_steps(Adam, {"alpha": 0.1, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-7})
    np.testing.assert_allclose(first, [[1 - 0.1 * 0.5 / np.sqrt(0.25 + 1e-7), -2 + 0.1 / np.sqrt(1 + 1e-7)]])
    # m2 = 0.9 * 0.1 g1 + 0.1 g2 = [0.055, -0.07], corrected / (1 - 0.9**2) = / 0.19;  v2 as s2 above
    m_hat = np.array([0.055, -0.07]) / 0.19
    v_hat = np.array([0.002575, 0.0103]) / 0.0199
    np.testing.assert_allclose(second, first - 0.1 * m_hat / np.sqrt(v_hat + 1e-7), rtol=1e-12)


@pytest.mark.parametrize(
    "cls, defaults",
    [
        (SGD, {"alpha": 0.001}),
        (SGD_Momentum, {"alpha": 0.001, "beta": 0.9}),
        (RMS_Prop, {"alpha": 0.001, "beta2": 0.99, "epsilon": 10e-8}),
        (Adam, {"alpha": 0.001, "beta1": 0.9, "beta2": 0.99, "epsilon": 10e-8}),
    ],
)
def test_the_original_defaults_fill_in_the_keys_not_given(cls, defaults):
    assert cls(Net()).hyperparam == defaults
    assert cls(Net(), hyperparam={"alpha": 0.5}).hyperparam == {**defaults, "alpha": 0.5}
    assert cls(Net()).batch_size == 128


def test_the_averages_carry_over_to_the_next_train_call(digits):
    x_train, y_train, *_ = digits
    optimizer = RMS_Prop(Net(), x_train, y_train, seed=0)
    optimizer.train(steps=1, print_each=1)
    optimizer.train(steps=1, print_each=1)
    assert optimizer.state_dict()["h_weight"]["step"] == 2


def test_a_seed_gives_the_optimizer_its_own_batches(digits):
    x_train, y_train, *_ = digits
    first, second = (SGD(Net(), x_train, y_train, batch_size=4, seed=7).random_batch()[0] for _ in range(2))
    np.testing.assert_array_equal(first.value, second.value)


def test_a_step_with_nan_gradients_changes_nothing(digits):
    class Broken(Net):
        def loss(self, x, y):
            return (self.forward(x) * np.nan).sum()  # NaN loss, NaN gradients

    x_train, y_train, *_ = digits
    model = Broken()
    before = model.get_param()
    with pytest.raises(dp.NonFiniteError):
        SGD(model, x_train, y_train).train(steps=1)
    assert all(np.array_equal(before[k], model.params[k]) for k in before)


# ----- bad input -----


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda m, x, y: SGD(m, x, y, hyperparam={"lr": 0.1}), ValueError, "SGD has no hyperparameter 'lr'"),
        (lambda m, x, y: SGD_Momentum(m, x, y, hyperparam={"beta": 1.0}), ValueError, "beta must be"),
        (lambda m, x, y: Adam(m, x, y, hyperparam={"alpha": -1}), ValueError, "alpha must be"),
        (lambda m, x, y: RMS_Prop(m, x, y, hyperparam={"epsilon": "1e-8"}), TypeError, "epsilon must be a real"),
        (lambda m, x, y: SGD(m, x, y, hyperparam=[("alpha", 0.1)]), TypeError, "hyperparam must be a dict"),
        (lambda m, x, y: SGD(m, x, y, batch_size=0), ValueError, "batch_size must be"),
        (lambda m, x, y: SGD(m, x, y[:-1]), ValueError, "one row per row of x_train"),
        (lambda m, x, y: SGD(m, x[0], y), ValueError, "x_train must be a 2-D array"),
        (lambda m, x, y: SGD(m, np.where(x > 0.5, np.nan, x), y), ValueError, "x_train has NaN"),
        (lambda m, x, y: SGD(dp.optim.SGD(), x, y), TypeError, "model must be a dp.Model"),
        (lambda m, x, y: SGD(m).train(), ValueError, "SGD has no training data"),
        (lambda m, x, y: SGD(m, x, y).train(steps=0), ValueError, "steps must be"),
        (lambda m, x, y: SGD(m, x, y).train(print_each=0), ValueError, "print_each must be"),
        (lambda m, x, y: SGD(m, x, y, seed=-1), ValueError, "seed must be"),
    ],
)
def test_bad_optimizer_input_is_refused_clearly(digits, make, error, message):
    x_train, y_train, *_ = digits
    with pytest.raises(error, match=message):
        make(Net(), x_train, y_train)


def test_bad_model_definitions_are_refused_clearly():
    class Unnamed(Model):
        def __init__(self):
            super().__init__()
            self.h = self.Linear_Layer(2, 2)

    class Twice(Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = self.Linear_Layer(2, 2, "h"), self.ReLu_Layer(2, 2, "h")

    class NoSuper(Model):
        def __init__(self):
            self.h = self.Linear_Layer(2, 2, "h")

    with pytest.raises(TypeError, match="a layer needs a name"):
        Unnamed()
    with pytest.raises(ValueError, match="already in use"):
        Twice()
    with pytest.raises(TypeError, match=r"must call super\(\).__init__\(\)"):
        NoSuper()
    with pytest.raises(ValueError, match="fan_in must be"):
        Model().Linear_Layer(0, 2, "h")
    with pytest.raises(NotImplementedError, match="must define loss"):
        Model().get_grad(Node(np.ones((1, 1))), Node(np.ones((1, 1))))
    with pytest.raises(NotImplementedError, match="must define forward"):
        Model().predict(np.ones((1, 1)))


def test_a_layer_refuses_input_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"layer 'h'.*\(n, 64\)"):
        Net().h(np.ones((3, 5)))


def test_one_hot_encoding_makes_int_rows_and_refuses_labels_outside_the_classes():
    np.testing.assert_array_equal(Helper.one_hot_encoding(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"integers in \[0, 3\)"):
        Helper.one_hot_encoding(np.array([3]), 3)


def test_the_example_of_docs_classic_runs_as_written(digits, capsys):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "classic.md").read_text()
    x_train, one_hot, *_ = digits
    names = {"x_train": x_train, "y_train": one_hot.argmax(axis=1)}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(block, names)
    assert names["model"].get_param().keys() == {"h_weight", "h_bias", "out_weight", "out_bias"}
    assert capsys.readouterr().out.startswith("iteration\tloss\n1\t")
