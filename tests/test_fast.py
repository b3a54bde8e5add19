"""The graph-free training step: `dp.fast.MLPStep`, `dp.train.FastStep` and
`dp.optim.Optimizer.step_trusted`.

The fast step must be the graph's step bit for bit (loss, every gradient and its dtype,
moving averages, batch counts), `fit` must give the same history and parameters on either
path, a failing step must change nothing (parameters, moving averages, batch counts and
optimizer state), and `step_trusted` must update exactly as `step` does.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dp
from dp import data
from dp.fast import MLPStep, supports
from dp.nn.models import MLP
from dp.optim import SGD, Adam, Momentum, RMSProp
from dp.train import Diverged, FastStep, fit, train_step

ACTIVATIONS = ["tanh", "sigmoid", "relu"]
DTYPES = [np.float64, np.float32]


# ----- helpers -----


def batch(sizes, rows, seed=0, labels="index", scale=1.0):
    """Rows of ``sizes[0]`` features and labels for ``sizes[-1]`` outputs: for one output, 0/1
    (or numbers in [0, 1] for "soft"); for more, class indices ("index"), one-hot rows
    ("onehot") or soft rows that sum to 1 ("soft")."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, scale, (rows, sizes[0]))
    k = sizes[-1]
    if k == 1:
        return x, rng.uniform(0, 1, rows) if labels == "soft" else rng.integers(0, 2, rows).astype(float)
    indices = rng.integers(0, k, rows)
    if labels == "index":
        return x, indices
    if labels == "onehot":
        return x, np.eye(k)[indices]
    soft = rng.uniform(0.1, 1.0, (rows, k))
    return x, soft / soft.sum(axis=1, keepdims=True)


def twins(sizes, **options):
    """Two identical models (same seed and settings)."""
    seed = options.pop("seed", 3)
    return MLP(sizes, seed=seed, **options), MLP(sizes, seed=seed, **options)


def snapshot(params):
    return {k: v.copy() for k, v in params.items()}


def assert_same_arrays(a, b, what="params"):
    """The same keys, and for each the same dtype, shape and bits (so -0.0 is not 0.0, and a NaN
    equals only the same NaN)."""
    assert a.keys() == b.keys(), what
    for k in a:
        assert a[k].dtype == b[k].dtype, (what, k, a[k].dtype, b[k].dtype)
        assert a[k].shape == b[k].shape, (what, k)
        assert np.array_equal(a[k], b[k], equal_nan=True), (what, k)
        assert a[k].tobytes() == b[k].tobytes(), (what, k)


def assert_same_state(a, b):
    """Two optimizer state_dicts equal bit for bit: keys, slots, arrays (dtype and values), step counts."""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].keys() == b[k].keys(), k
        for slot in a[k]:
            x, y = a[k][slot], b[k][slot]
            if isinstance(x, np.ndarray):
                assert isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y), (k, slot)
            else:
                assert type(x) is type(y) and x == y, (k, slot)


def graph_and_fast(sizes, x, y, reduction="sum", **options):
    """The graph's loss and gradients on one model, `MLPStep`'s on its twin; both models."""
    graph_model, fast_model = twins(sizes, **options)
    loss = graph_model.loss(x, y, reduction=reduction)
    graph_grads = loss.grad(1)
    step = MLPStep(fast_model, reduction)
    fast_loss, fast_grads = step(x, step.labels(y))
    return (float(loss.value[0, 0]), graph_grads, graph_model), (fast_loss, fast_grads, fast_model)


def assert_bit_identical(sizes, x, y, reduction="sum", **options):
    (graph_loss, graph_grads, graph_model), (fast_loss, fast_grads, fast_model) = graph_and_fast(
        sizes, x, y, reduction, **options
    )
    assert isinstance(fast_loss, float)
    assert fast_loss == graph_loss
    assert_same_arrays(graph_grads, fast_grads, "gradients")
    assert_same_arrays(graph_model.params, fast_model.params, "params")  # moving averages and batch counts too
    return graph_model, fast_model


# ----- 1. bit for bit the graph's step -----


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    rows=st.integers(2, 9),
    batch_norm=st.booleans(),
    activation=st.sampled_from(ACTIVATIONS),
    dtype=st.sampled_from(DTYPES),
    reduction=st.sampled_from(["sum", "mean"]),
    momentum=st.sampled_from([0.1, 0.37, 1.0]),
    unbiased_average=st.booleans(),
    labels=st.sampled_from(["index", "onehot", "soft"]),
    scale=st.sampled_from([0.1, 1.0, 5.0]),
    seed=st.integers(0, 2**16),
)
def test_mlp_step_is_the_graphs_step_bit_for_bit(
    sizes, rows, batch_norm, activation, dtype, reduction, momentum, unbiased_average, labels, scale, seed
):
    x, y = batch(sizes, rows, seed, labels, scale)
    options = dict(batch_norm=batch_norm, activation=activation, dtype=dtype)
    options.update(momentum=momentum, unbiased_average=unbiased_average)
    graph_model, _ = assert_bit_identical(sizes, x, y, reduction, **options)
    if batch_norm and len(sizes) > 2:  # the step did move the averages and count the batch
        assert graph_model.params["batches_bn1"][0, 0] == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize(
    "sizes, labels",
    [
        ((30, 20, 10, 1), "index"),  # the reference network, binary 0/1 labels
        ((4, 3), "index"),  # no hidden layer, class indices
        ((4, 3), "onehot"),
        ((4, 1), "index"),  # no hidden layer, binary
        ((6, 5, 4, 3), "index"),
        ((6, 5, 4, 3), "onehot"),
    ],
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_explicit_cases_are_the_graphs_step_bit_for_bit(sizes, labels, batch_norm, activation, dtype, reduction):
    x, y = batch(sizes, 12, seed=5, labels=labels)
    assert_bit_identical(sizes, x, y, reduction, batch_norm=batch_norm, activation=activation, dtype=dtype)


@pytest.mark.parametrize("unbiased_average", [False, True])
@pytest.mark.parametrize("momentum", [0.01, 0.5, 1.0])
def test_moving_averages_and_batch_counts_match_for_every_momentum_and_variance_kind(momentum, unbiased_average):
    sizes = (5, 4, 3, 2)
    x, y = batch(sizes, 6, seed=2)
    graph_model, fast_model = assert_bit_identical(sizes, x, y, momentum=momentum, unbiased_average=unbiased_average)
    for i in (1, 2):
        assert fast_model.params[f"batches_bn{i}"][0, 0] == 1
        assert fast_model.params[f"avg_variance_bn{i}"].any()  # moved from the initial zeros


def test_binary_labels_as_a_vector_or_a_column_give_the_same_step():
    x, y = batch((4, 3, 1), 8, seed=1)
    assert_bit_identical((4, 3, 1), x, y)
    assert_bit_identical((4, 3, 1), x, y.reshape(-1, 1))


def test_a_float64_batch_for_a_float32_model_is_converted_as_the_graph_converts_it():
    x, y = batch((5, 4, 2), 7, seed=4)
    _, fast_model = assert_bit_identical((5, 4, 2), x, y, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in fast_model.params.values())


def test_mlp_step_is_a_training_mode_step_even_when_the_model_is_in_eval_mode():
    sizes = (5, 4, 1)
    x, y = batch(sizes, 8, seed=6)
    graph_model, fast_model = twins(sizes)
    for model in (graph_model, fast_model):
        model.loss(x, y)  # one training batch, so that eval mode has averages
        model.eval()
    loss = graph_model.loss(x, y, train=True)
    step = MLPStep(fast_model)
    fast_loss, grads = step(x, step.labels(y))
    assert fast_loss == float(loss.value[0, 0])
    assert_same_arrays(loss.grad(1), grads, "gradients")
    assert_same_arrays(graph_model.params, fast_model.params)


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_consecutive_steps_with_sgd_updates_between_them_stay_identical(batch_norm, reduction):
    sizes = (6, 5, 4, 3)
    graph_model, fast_model = twins(sizes, batch_norm=batch_norm)
    graph_sgd, fast_sgd = SGD(lr=0.05), SGD(lr=0.05)
    step = MLPStep(fast_model, reduction)
    for i in range(6):
        x, y = batch(sizes, 10, seed=100 + i)
        loss = graph_model.loss(x, y, reduction=reduction)
        graph_grads = loss.grad(1)
        fast_loss, fast_grads = step(x, step.labels(y))
        assert fast_loss == float(loss.value[0, 0]), i
        assert_same_arrays(graph_grads, fast_grads, "gradients")
        graph_sgd.step(graph_model.params, graph_grads)
        fast_sgd.step(fast_model.params, fast_grads)
        assert_same_arrays(graph_model.params, fast_model.params)
    if batch_norm:
        assert fast_model.params["batches_bn2"][0, 0] == 6


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.05), lambda: Adam(lr=0.01, weight_decay=0.01, decoupled=True)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_step_is_train_step_bit_for_bit_over_several_steps(make, dtype):
    sizes = (6, 5, 4, 1)
    graph_model, fast_model = twins(sizes, dtype=dtype)
    graph_optimizer, fast_optimizer = make(), make()
    step = FastStep(fast_model, fast_optimizer, "mean")
    for i in range(5):
        x, y = batch(sizes, 10, seed=200 + i)
        graph_loss = train_step(graph_model, graph_optimizer, x, y, "mean")
        assert step(x, step.labels(y)) == graph_loss, i
        assert_same_arrays(graph_model.params, fast_model.params)
        assert_same_state(graph_optimizer.state_dict(), fast_optimizer.state_dict())


def test_mlp_step_changes_neither_the_rows_nor_the_labels():
    sizes = (5, 4, 3)
    model = MLP(sizes, seed=0)
    x, y = batch(sizes, 6, seed=7)
    step = MLPStep(model)
    labels = step.labels(y)
    x_before, labels_before = x.copy(), labels.copy()
    step(x, labels)
    assert np.array_equal(x, x_before) and np.array_equal(labels, labels_before)


# ----- 2. fit: the same run on either path -----


@pytest.fixture(scope="module")
def split():
    return data.breast_cancer(validation_size=0.15, seed=0)


def stepping(cls):
    """A subclass of ``cls`` that overrides ``step`` (calling the inherited one, and counting the
    calls): `FastStep` does not take it, so `fit` trains on the graph."""

    def step(self, params, grads):
        self.calls = getattr(self, "calls", 0) + 1
        cls.step(self, params, grads)

    return type(f"Stepping{cls.__name__}", (cls,), {"step": step})


FIT_CASES = {
    "sgd, reference network": (dict(), SGD, dict(lr=0.01), dict()),
    "adam, mean, cosine": (dict(), Adam, dict(lr=0.003), dict(reduction="mean", schedule="cosine")),
    "momentum with decay, relu, no batch norm": (
        dict(batch_norm=False, activation="relu"),
        Momentum,
        dict(lr=0.005, weight_decay=0.01),
        dict(),
    ),
    "rmsprop, sigmoid, float32": (dict(activation="sigmoid", dtype=np.float32), RMSProp, dict(lr=0.003), dict()),
    "adamw, two outputs": (dict(sizes=(30, 8, 2)), Adam, dict(lr=0.01, weight_decay=0.1, decoupled=True), dict()),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_gives_the_same_history_and_params_on_the_fast_path_and_the_graph_path(case, split):
    model_options, cls, optimizer_options, fit_options = FIT_CASES[case]
    runs = []
    for optimizer in (cls(**optimizer_options), stepping(cls)(**optimizer_options)):
        model = MLP(**{"seed": 1, **model_options})
        assert FastStep.supports(model, optimizer) == (type(optimizer) is cls)
        history = fit(
            model,
            split.x_train,
            split.y_train,
            optimizer,
            validation=(split.x_val, split.y_val),
            steps=25,
            batch_size=40,
            eval_every=5,
            seed=2,
            progress=False,
            **fit_options,
        )
        runs.append((model, optimizer, history))
    (fast_model, fast_optimizer, fast_history), (graph_model, graph_optimizer, graph_history) = runs
    assert graph_optimizer.calls == 25  # the graph path did run, through step
    for field in ("step", "epoch", "loss", "train_accuracy", "val_accuracy", "diverged", "chance"):
        assert getattr(fast_history, field) == getattr(graph_history, field), field
    assert fast_history.loss[-1] < fast_history.loss[0]  # it trained: the comparison is not of two idle runs
    assert_same_arrays(graph_model.params, fast_model.params)
    assert_same_state(graph_optimizer.state_dict(), fast_optimizer.state_dict())
    assert fast_optimizer.lr == graph_optimizer.lr == optimizer_options["lr"]


def test_fit_takes_the_fast_path_for_an_mlp_and_a_plain_optimizer(split, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("train_step was called")

    monkeypatch.setattr(dp.train, "train_step", refuse)
    history = fit(MLP(seed=0), split.x_train, split.y_train, Adam(), steps=3, batch_size=40, progress=False)
    assert history.step == [3]


def test_fit_reports_divergence_on_the_fast_path_and_keeps_the_last_finite_params(split):
    model, optimizer = MLP(batch_norm=False, seed=0), SGD(lr=0.01)
    fit(model, split.x_train, split.y_train, optimizer, steps=2, batch_size=40, progress=False)
    before = snapshot(model.params)
    optimizer.lr = 1e308
    with pytest.raises(Diverged, match="training diverged at step 1: the update of"):
        fit(model, split.x_train, split.y_train, optimizer, steps=5, batch_size=40, progress=False)
    assert_same_arrays(before, model.params)


# ----- 3. what the fast step supports -----


class TwoLayers(dp.NeuralNode):
    """A NeuralNode model that is not an MLP."""

    def __init__(self):
        super().__init__(0)
        self.l1 = self.linear(4, 3, "l1")
        self.l2 = self.linear(3, 1, "l2")

    def forward(self, x, train=None):
        return self.l2(self.l1(x).tanh()).sigmoid()


class PenalizedMLP(MLP):
    def loss(self, x, y, train=None, reduction="sum"):
        return super().loss(x, y, train, reduction) + (dp.Node(self.params["weight_l1"], "weight_l1") ** 2).sum()


class ScaledLogitsMLP(MLP):
    """MLP's loss, on layers of its own (MLP.loss calls _logits)."""

    def _logits(self, h, train):
        return super()._logits(h, train) * 2.0


def test_supports_an_mlp_and_its_subclass_that_keeps_its_loss():
    class Named(MLP):
        pass

    assert supports(MLP(seed=0))
    assert supports(MLP((4, 3), batch_norm=False, seed=0))
    assert supports(Named(seed=0))


def test_does_not_support_other_models_or_a_replaced_loss():
    assert not supports(TwoLayers())
    assert not supports(PenalizedMLP(seed=0))
    replaced = MLP(seed=0)
    replaced.loss = lambda x, y, train=None, reduction="sum": MLP.loss(replaced, x, y, train, reduction)
    assert not supports(replaced)
    assert not supports(ScaledLogitsMLP(seed=0))
    layers_replaced = MLP(seed=0)
    layers_replaced._logits = lambda h, train: MLP._logits(layers_replaced, h, train) * 2.0
    assert not supports(layers_replaced)
    assert not supports(object())


def test_supports_answers_true_or_false():
    assert supports(MLP(seed=0)) is True
    for model in (TwoLayers(), PenalizedMLP(seed=0), object()):
        assert supports(model) is False, model
        assert FastStep.supports(model, SGD()) is False, model


def test_does_not_support_a_replaced_input_check_or_layers_of_another_kind():
    class RescaledInput(MLP):
        def _input(self, x):
            return super()._input(np.asarray(x) * 2.0)

    class DoubledLinear(dp.nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2.0

    assert not supports(RescaledInput(seed=0))
    model = MLP(seed=0)
    model.output.__class__ = DoubledLinear
    assert not supports(model)
    assert not FastStep.supports(model, SGD())


@pytest.mark.parametrize(
    "rows, labels",
    [
        ("vector labels", None),
        ("wrong width", None),
        ("float32 labels", None),
        ("1-D rows", None),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_mlp_step_refuses_rows_and_labels_of_the_wrong_shape_or_dtype_and_changes_nothing(rows, labels):
    """The data is trusted, not its shapes: a 0/1 vector as labels would broadcast (n,) against
    (n, 1) into (n, n) and reshape the parameters silently."""
    model = MLP((4, 1), batch_norm=False, seed=0)
    step = FastStep(model, SGD())
    x, y = np.ones((6, 4)), np.array([0, 1, 0, 1, 1, 0.0])
    cases = {
        "vector labels": (x, y),
        "wrong width": (np.ones((6, 5)), step.labels(y)),
        "float32 labels": (x, step.labels(y).astype(np.float32)),
        "1-D rows": (np.ones(4), step.labels(y[:1])),
    }
    before = snapshot(model.params)
    with pytest.raises(ValueError, match="MLPStep takes rows of shape \\(n, 4\\) and labels as its labels"):
        step(*cases[rows])
    assert_same_arrays(before, model.params)


def test_the_fused_in_place_sigmoid_is_the_stable_one_wherever_the_sigmoid_is_a_normal_number():
    from dp import fused, ops

    for dtype in DTYPES:
        a = np.concatenate([np.linspace(-800, 800, 20001), [0.0, -0.0, 1e-30, -1e-30]]).astype(dtype)
        stable = ops.stable_sigmoid(a)
        in_place = a.copy()
        fused._sigmoid(in_place)  # no overflow warning (tests turn RuntimeWarnings into errors)
        tiny = np.finfo(dtype).tiny
        normal = stable >= tiny
        assert normal.sum() > len(a) // 2
        np.testing.assert_allclose(in_place[normal], stable[normal], rtol=4 * np.finfo(dtype).eps, atol=0)
        assert np.all(np.abs(in_place[~normal]) < tiny) and in_place.dtype == dtype


def test_the_fused_sigmoid_backward_is_the_ops_vjp_bit_for_bit():
    from dp import fused, ops

    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        a, g = rng.normal(size=(50, 7)).astype(dtype), rng.normal(size=(50, 7)).astype(dtype)
        y, (vjp,) = ops.sigmoid(a)
        np.testing.assert_array_equal(fused._sigmoid_backward(g, y), vjp(g))


@pytest.mark.parametrize("bad", ["nan", "inf", "sum overflows"])
def test_batch_statistics_checked_through_the_variance_catch_every_kind_of_bad_batch(bad):
    x = np.random.default_rng(0).normal(size=(8, 3))
    if bad == "sum overflows":
        x[:, 0] = 1e308  # finite values whose sum overflows: the mean is inf, x - mean is -inf
    else:
        x[3, 1] = float(bad)
    norm = dp.NeuralNode(seed=0)
    layer = norm.batch_norm(3, "bn")
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(dp.NonFiniteError, match="batch norm 'bn'"):
            layer(x, train=True)
        with pytest.raises(dp.NonFiniteError, match="batch norm 'bn'"):
            dp.fused.center(x.copy(), "batch norm 'bn'")


def test_a_gradient_too_large_for_a_float32_parameter_is_refused_by_name_without_a_warning():
    params = {"w": np.ones((2, 2), np.float32)}
    with pytest.raises(dp.NonFiniteError, match=r"the gradients of \['w'\] have NaN or inf"):
        SGD().step(params, {"w": np.full((2, 2), 1e300)})  # the cast to float32 overflows


def test_a_subclass_with_its_own_loss_trains_on_the_graph(split):
    model = PenalizedMLP(seed=0)
    assert not FastStep.supports(model, SGD())
    history = fit(model, split.x_train, split.y_train, SGD(lr=0.001), steps=2, batch_size=40, progress=False)
    plain = fit(MLP(seed=0), split.x_train, split.y_train, SGD(lr=0.001), steps=2, batch_size=40, progress=False)
    assert history.loss != plain.loss  # the penalty was in the loss: fit used the subclass's loss


def test_fast_step_does_not_support_an_optimizer_subclass_that_overrides_step():
    model = MLP(seed=0)
    assert FastStep.supports(model, Adam())
    assert not FastStep.supports(model, stepping(Adam)())
    assert not FastStep.supports(TwoLayers(), Adam())

    class Renamed(Momentum):  # changes nothing of step: still supported
        pass

    assert FastStep.supports(model, Renamed())


def test_fit_calls_a_step_replaced_on_the_optimizer_instance(split):
    optimizer = SGD(lr=0.01)
    calls = []

    def step(params, grads):
        calls.append(1)
        SGD.step(optimizer, params, grads)

    optimizer.step = step
    fit(MLP(seed=0), split.x_train, split.y_train, optimizer, steps=3, batch_size=40, progress=False)
    assert len(calls) == 3


def test_mlp_step_and_fast_step_refuse_what_they_do_not_support():
    with pytest.raises(TypeError, match="MLPStep computes the step of a dp.nn.models.MLP, not of TwoLayers"):
        MLPStep(TwoLayers())
    with pytest.raises(TypeError, match="not of PenalizedMLP"):
        MLPStep(PenalizedMLP(seed=0))
    with pytest.raises(TypeError, match="FastStep takes a dp.nn.models.MLP"):
        FastStep(TwoLayers(), SGD())
    with pytest.raises(TypeError, match="use train_step for others"):
        FastStep(MLP(seed=0), stepping(SGD)())


@pytest.mark.parametrize("reduction", ["median", "Sum", None])
def test_an_unknown_reduction_is_refused_when_the_step_is_made(reduction):
    model = MLP(seed=0)
    before = snapshot(model.params)
    with pytest.raises(ValueError, match="reduction"):
        MLPStep(model, reduction)
    with pytest.raises(ValueError, match="reduction"):
        FastStep(model, SGD(), reduction)
    assert_same_arrays(before, model.params)


# ----- 4. a failing FastStep changes nothing -----


@pytest.fixture
def stepped():
    """A batch-norm MLP and an Adam that have taken one FastStep (so both have state to lose)."""
    sizes = (5, 4, 3, 1)
    model, optimizer = MLP(sizes, seed=0), Adam(lr=0.01)
    step = FastStep(model, optimizer)
    x, y = batch(sizes, 8, seed=9)
    step(x, step.labels(y))
    return model, optimizer, step, x, step.labels(y)


def assert_refused_and_unchanged(model, optimizer, call, error, match):
    params, state, keys = snapshot(model.params), optimizer.state_dict(), list(model.params)
    with pytest.raises(error, match=match):
        call()
    assert list(model.params) == keys
    assert_same_arrays(params, model.params)
    assert_same_state(state, optimizer.state_dict())


def test_a_batch_too_large_to_square_is_refused_and_changes_nothing(stepped):
    model, optimizer, step, x, labels = stepped
    assert_refused_and_unchanged(
        model, optimizer, lambda: step(x * 1e200, labels), dp.NonFiniteError, "too large to square"
    )


def test_a_nan_parameter_making_the_loss_nan_is_refused_and_changes_nothing(stepped):
    model, optimizer, step, x, labels = stepped
    model.params["weight_l3"] = np.full_like(model.params["weight_l3"], np.nan)
    assert_refused_and_unchanged(
        model, optimizer, lambda: step(x, labels), dp.NonFiniteError, "the loss has NaN or inf values"
    )


def test_logits_that_overflow_make_an_infinite_loss_that_is_refused():
    model, optimizer = MLP((4, 1), batch_norm=False, seed=0), Adam(lr=0.01)
    step = FastStep(model, optimizer)
    x, y = np.abs(batch((4, 1), 6, seed=1)[0]) + 1, np.ones(6)
    step(x, step.labels(y))
    model.params["weight_l1"] = np.full((4, 1), 1e308)  # x @ w is at least 4e308: inf
    assert_refused_and_unchanged(
        model, optimizer, lambda: step(x, step.labels(y)), dp.NonFiniteError, "the loss has NaN or inf values"
    )


@pytest.mark.parametrize(
    "make, dtype",
    [
        (lambda: Momentum(lr=0.01), np.float64),  # then lr = 1e308: p - 1e308 * v overflows
        (lambda: Adam(lr=0.01), np.float32),  # then lr = 1e308, which is inf in float32
    ],
)
def test_an_update_that_overflows_is_refused_by_name_and_rolls_back_the_averages(make, dtype):
    sizes = (5, 4, 3, 1)
    model, optimizer = MLP(sizes, seed=0, dtype=dtype), make()
    step = FastStep(model, optimizer)
    x, y = batch(sizes, 30, seed=3, scale=3.0)
    step(x, step.labels(y))
    optimizer.lr = 1e308
    # The gradients were computed and the averages committed before the optimizer refused: rolled back.
    assert_refused_and_unchanged(
        model,
        optimizer,
        lambda: step(x, step.labels(y)),
        dp.NonFiniteError,
        r"the update of \[.*'weight_l1'.*\] would make the parameters or this optimizer's state NaN or inf",
    )


def test_a_nan_gradient_is_named_as_step_names_it_and_changes_nothing(stepped):
    model, optimizer, step, x, labels = stepped
    # gamma = inf saturates the tanh (a finite loss) but makes 0 * inf = NaN in the gradients below it.
    gamma = model.params["gamma_bn2"].copy()
    gamma[0, 0] = np.inf
    model.params["gamma_bn2"] = gamma
    graph_model = MLP((5, 4, 3, 1), seed=0)
    graph_model.params = snapshot(model.params)
    with np.errstate(invalid="ignore", over="ignore"):
        loss = graph_model.loss(x, labels)
        grads = loss.grad(1)
    assert np.isfinite(loss.value).all() and not np.isfinite(grads["weight_l2"]).all()
    copy = Adam(lr=0.01)
    copy.load_state_dict(optimizer.state_dict())
    with pytest.raises(dp.NonFiniteError) as graphs:
        copy.step(snapshot(graph_model.params), grads)
    assert_refused_and_unchanged(
        model, optimizer, lambda: step(x, labels), dp.NonFiniteError, r"the gradients of \[.*\] have NaN or inf values"
    )
    with pytest.raises(dp.NonFiniteError) as fasts:
        step(x, labels)
    assert str(fasts.value) == str(graphs.value)
    assert "'weight_l2'" in str(fasts.value)


def test_saved_state_of_another_shape_is_refused_through_fast_step_and_changes_nothing(stepped):
    model, optimizer, step, x, labels = stepped
    state = optimizer.state_dict()
    state["weight_l1"] = {"m": np.zeros((2, 2)), "v": np.zeros((2, 2)), "step": 1}
    optimizer.load_state_dict(state)
    assert_refused_and_unchanged(model, optimizer, lambda: step(x, labels), ValueError, "loaded for other parameters")


def test_a_batch_of_one_row_is_refused_by_batch_norm_and_changes_nothing(stepped):
    model, optimizer, step, x, labels = stepped
    assert_refused_and_unchanged(model, optimizer, lambda: step(x[:1], labels[:1]), ValueError, "at least 2 rows")


# ----- 5. step_trusted is step -----


OPTIMIZERS = {
    "sgd": lambda **decay: SGD(lr=0.1, **decay),
    "momentum": lambda **decay: Momentum(lr=0.1, beta=0.8, **decay),
    "rmsprop": lambda **decay: RMSProp(lr=0.01, beta=0.9, **decay),
    "adam": lambda **decay: Adam(lr=0.01, **decay),
}
DECAYS = {
    "no decay": {},
    "l2": {"weight_decay": 0.1},
    "decoupled": {"weight_decay": 0.1, "decoupled": True},
}
LARGE = (70, 60)  # 4200 entries


def some_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(size=(3, 4)).astype(dtype),
        "b": rng.normal(size=(1, 4)).astype(dtype),
        "big": rng.normal(size=LARGE).astype(dtype),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay", list(DECAYS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_trusted_updates_exactly_as_step_over_several_steps(name, decay, dtype):
    checked, trusted = OPTIMIZERS[name](**DECAYS[decay]), OPTIMIZERS[name](**DECAYS[decay])
    checked_params, trusted_params = some_params(dtype), some_params(dtype)
    for i in range(4):
        grads = {k: v.astype(dtype) for k, v in some_params(np.float64, seed=10 + i).items()}
        checked.step(checked_params, grads)
        trusted.step_trusted(trusted_params, grads)
        assert_same_arrays(checked_params, trusted_params)
        assert_same_state(checked.state_dict(), trusted.state_dict())
    assert all(v.dtype == dtype for v in trusted_params.values())


@pytest.mark.parametrize("decay", list(DECAYS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_trusted_takes_no_look_at_every_entry_of_gradients_that_fit(name, decay, monkeypatch):
    """What step_trusted is for: gradients of their parameters' shapes and dtypes are not
    checked entry by entry (nor cast), by step or otherwise, when the update is finite."""
    expected, params = some_params(np.float64), some_params(np.float64)
    grads = some_params(np.float64, seed=1)
    OPTIMIZERS[name](**DECAYS[decay]).step(expected, grads)

    def look(*args, **kwargs):
        raise AssertionError("step_trusted looked at every entry of the gradients")

    monkeypatch.setattr(dp.optim.Optimizer, "_checked", look)
    monkeypatch.setattr(dp.optim.Optimizer, "step", look)
    OPTIMIZERS[name](**DECAYS[decay]).step_trusted(params, grads)
    assert_same_arrays(expected, params)


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    lr=st.floats(1e-6, 10.0),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_sgd_updates_by_p_minus_lr_times_g_bit_for_bit(dtype, lr, seed, scale):
    params = {k: v * dtype(scale) for k, v in some_params(dtype, seed).items()}
    grads = some_params(dtype, seed + 1)
    expected = {k: params[k] - lr * grads[k] for k in params}
    SGD(lr=lr).step_trusted(params, grads)
    assert_same_arrays(expected, params)


def test_step_trusted_updates_only_the_keys_with_a_gradient():
    params = some_params(np.float64)
    params["avg_mean_bn1"] = np.zeros((1, 4))
    before = dict(params)
    Adam().step_trusted(params, {"w": np.ones((3, 4))})
    assert all(params[k] is before[k] for k in ("b", "big", "avg_mean_bn1"))
    assert not np.array_equal(params["w"], before["w"])


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam"])
def test_step_trusted_refuses_state_loaded_for_another_shape_and_changes_nothing(name):
    optimizer, params = OPTIMIZERS[name](), some_params(np.float64)
    optimizer.step_trusted(params, some_params(np.float64, seed=1))
    state = optimizer.state_dict()
    wrong = {
        k: {s: np.zeros((2, 2)) if isinstance(v, np.ndarray) else v for s, v in slots.items()}
        for k, slots in state.items()
    }
    optimizer.load_state_dict(wrong)
    before, loaded = dict(params), optimizer.state_dict()
    with pytest.raises(ValueError, match="has shape \\(2, 2\\), but the parameter has shape"):
        optimizer.step_trusted(params, some_params(np.float64, seed=2))
    assert all(params[k] is before[k] for k in params) and params.keys() == before.keys()
    assert_same_state(loaded, optimizer.state_dict())


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("shape", [(3, 4), LARGE], ids=["small", "large"])
def test_finite_values_whose_sum_would_overflow_are_not_refused(name, shape):
    params = {"p": np.full(shape, 1e308), "q": np.full((2, 3), -1e308)}
    grads = {"p": np.full(shape, 1e-3), "q": np.full((2, 3), -1e-3)}
    optimizer = OPTIMIZERS[name]()
    optimizer.step_trusted(params, grads)  # no NonFiniteError
    assert np.isfinite(params["p"]).all() and params["p"].max() <= 1e308
    assert np.isfinite(params["q"]).all()


@pytest.mark.parametrize("shape", [(1, 1), (64, 64), LARGE], ids=["one", "small", "large"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_nan_or_inf_gradient_is_refused_by_name_whatever_its_size(name, bad, shape):
    optimizer = OPTIMIZERS[name]()
    params = {"p": np.ones(shape), "other": np.ones((2, 2))}
    optimizer.step_trusted(params, {"p": np.full(shape, 0.5), "other": np.ones((2, 2))})
    grad = np.full(shape, 0.5)
    grad.flat[-1] = bad
    before, state = dict(params), optimizer.state_dict()
    with pytest.raises(
        dp.NonFiniteError, match=r"the gradients of \['p'\] have NaN or inf values; nothing was updated"
    ):
        optimizer.step_trusted(params, {"p": grad, "other": np.ones((2, 2))})
    assert all(params[k] is before[k] for k in params)
    assert_same_state(state, optimizer.state_dict())


@pytest.mark.parametrize("shape", [(3, 4), LARGE], ids=["small", "large"])
def test_a_nan_parameter_with_finite_gradients_is_refused_as_an_update(shape):
    value = np.ones(shape)
    value.flat[0] = np.nan
    params = {"p": value, "other": np.ones((2, 2))}
    before = dict(params)
    with pytest.raises(dp.NonFiniteError, match=r"the update of \['p'\] would make"):
        Adam().step_trusted(params, {"p": np.ones(shape), "other": np.ones((2, 2))})
    assert all(params[k] is before[k] for k in params)


@pytest.mark.parametrize("shape", [(3, 4), LARGE], ids=["small", "large"])
@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_a_state_that_would_overflow_is_refused_even_when_the_parameter_stays_finite(name, shape):
    params = {"p": np.ones(shape, np.float32)}
    grad = np.ones(shape, np.float32)
    grad.flat[0] = 1e20  # finite in float32, but its square is not: the average of squares would be inf
    optimizer = OPTIMIZERS[name]()
    before = dict(params)
    with pytest.raises(dp.NonFiniteError, match=r"the update of \['p'\] would make the parameters or this optimizer"):
        optimizer.step_trusted(params, {"p": grad})
    assert params["p"] is before["p"] and optimizer.state_dict() == {}


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_trusted_gives_way_to_step_for_a_gradient_of_another_shape_or_dtype(dtype):
    """Gradients dp did not make go through step's checks and casts: a float64 gradient for a
    float32 parameter is cast (the parameter keeps its dtype), a wrong shape is refused by name."""
    other = np.float64 if dtype == np.float32 else np.float32
    params, grads = some_params(dtype), some_params(other, seed=1)
    expected = dict(params)
    SGD(lr=0.1).step(expected, grads)
    SGD(lr=0.1).step_trusted(params, grads)
    assert_same_arrays(expected, params)
    assert all(v.dtype == dtype for v in params.values())
    before = dict(params)
    with pytest.raises(ValueError, match="the gradient of 'w' has shape \\(4, 3\\)"):
        SGD().step_trusted(params, {"w": np.ones((4, 3), dtype)})
    with pytest.raises(KeyError, match="unknown parameters \\['nope'\\]"):
        SGD().step_trusted(params, {"nope": np.ones((4, 3), dtype)})
    assert all(params[k] is before[k] for k in params)


# ----- 6. the read-only seed and gradients of their own -----


def test_the_seed_of_the_backward_pass_is_read_only():
    step = MLPStep(MLP(seed=0, dtype=np.float32))
    assert not step.seed.flags.writeable
    assert step.seed.dtype == np.float32 and step.seed.shape == (1, 1) and step.seed[0, 0] == 1
    with pytest.raises(ValueError, match="read-only"):
        step.seed[0, 0] = 2


@pytest.mark.parametrize("sizes", [(4, 3), (4, 1), (5, 4, 3, 1)])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_gradients_share_memory_with_no_parameter_and_no_other_gradient(sizes, batch_norm):
    model = MLP(sizes, batch_norm=batch_norm, seed=0)
    step = MLPStep(model)
    x, y = batch(sizes, 6, seed=8)
    labels = step.labels(y)
    for _ in range(2):  # the second step too: nothing is kept from the first
        _, grads = step(x, labels)
        assert grads.keys() == {k for k in model.params if not dp.nn.is_state(k)}
        for k, g in grads.items():
            assert g.shape == model.params[k].shape
            assert g.flags.writeable, k
            for name, value in model.params.items():
                assert g is not value and not np.shares_memory(g, value), (k, name)
            for other, h in grads.items():
                assert other == k or not np.shares_memory(g, h), (k, other)
            assert not np.shares_memory(g, x) and not np.shares_memory(g, labels), k
