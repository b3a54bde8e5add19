"""``dp.MLP(..., fused=True)`` (`dp.nn.fused`) is the plain MLP, computed with fewer arrays.

The fused hidden layer (linear -> batch norm -> activation as one primitive) is a second
implementation of math the plain layers already have, so it is held to them: from the same
parameters, the loss, every gradient, the moving averages and batch counts after SGD steps,
eval mode, and whole `fit` runs with SGD and Adam agree to 1e-12 in float64, for each
activation it has in place and for binary and softmax outputs. Its vjps pass gradcheck and
keep no state between ``grad`` calls; a refused batch changes nothing; the option is
validated, survives a checkpoint and folds like the plain model.
"""

import numpy as np
import pytest

import dp
from dp import Node
from dp.checks import NonFiniteError
from dp.nn import fused
from dp.nn.normalization import batch_statistics
from dp.node import topological_order
from dp.tools import checkpoint

TOL = 1e-12
EPS = 1e-5
ACTIVATIONS = ["tanh", "sigmoid", "relu"]
OUTPUTS = {"binary": 1, "softmax": 3}


def close(a, b, tol=TOL, what=""):
    np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=what)


def twins(sizes=(7, 6, 5, 1), activation="tanh", dtype=np.float64, seed=0, **options):
    """A plain MLP and a fused one with the same parameters (and batch-norm ``options``)."""
    plain = dp.MLP(sizes, activation=activation, seed=seed, dtype=dtype, **options)
    fast = dp.MLP(sizes, activation=activation, seed=seed, dtype=dtype, fused=True, **options)
    fast.set_param(plain.get_param())
    return plain, fast


def batch(sizes, rows=12, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 2.0, (rows, sizes[0])).astype(dtype)
    return x, rng.integers(0, max(2, sizes[-1]), rows)


def ops_in(node):
    return {n.op for n in topological_order(node)}


def assert_same_params(plain, fast, tol=TOL):
    assert plain.params.keys() == fast.params.keys()
    for key in plain.params:
        close(fast.params[key], plain.params[key], tol, key)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_fused_mlp_trains_and_evaluates_as_the_plain_one(activation, output):
    """Three SGD steps: the loss and every gradient (the input's too) at each step, then every
    parameter, moving average and batch count; then eval mode's logits and gradients."""
    sizes = (7, 6, 5, OUTPUTS[output])
    plain, fast = twins(sizes, activation)
    sgd = dp.optim.SGD(lr=0.05)
    for step in range(3):
        x, y = batch(sizes, seed=step)
        losses = [model.loss(Node(x, "x"), y) for model in (plain, fast)]
        assert "linear_batch_norm" in ops_in(losses[1]) and "batch_norm_closed_form" not in ops_in(losses[1])
        close(losses[1].value, losses[0].value, what="loss")
        want, got = (loss.grad(1) for loss in losses)
        assert got.keys() == want.keys() and "x" in want
        for key in want:
            close(got[key], want[key], what=key)
        for model, grads in ((plain, want), (fast, got)):
            grads.pop("x")
            sgd.step(model.params, grads)
    assert_same_params(plain, fast)
    assert fast.params["batches_bn1"][0, 0] == fast.params["batches_bn2"][0, 0] == 3
    x, y = batch(sizes, seed=9)
    evaluated = [model.loss(Node(x, "x"), y, train=False) for model in (plain, fast)]
    assert "linear_batch_norm_eval" in ops_in(evaluated[1])
    close(evaluated[1].value, evaluated[0].value)
    want, got = (loss.grad(1) for loss in evaluated)
    assert got.keys() == want.keys()
    for key in want:
        close(got[key], want[key], what=f"eval, {key}")
    close(fast.predict_proba(x), plain.predict_proba(x))


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize(("sizes", "activation"), [((8, 6, 5, 1), "tanh"), ((8, 6, 6, 6, 3), "sigmoid")])
def test_fit_gives_the_plain_models_history_and_parameters(sizes, activation, optimizer):
    x, y = batch(sizes, rows=200, seed=2)
    runs = []
    for model in twins(sizes, activation):
        make = getattr(dp.optim, optimizer)
        history = dp.train.fit(model, x, y, make(lr=0.01), steps=50, batch_size=20, eval_every=10, progress=False)
        runs.append((model, history))
    (plain, plain_history), (fast, fast_history) = runs
    assert fast_history.step == plain_history.step and len(plain_history.step) == 5
    close(fast_history.loss, plain_history.loss, what="loss")
    close(fast_history.train_accuracy, plain_history.train_accuracy, what="accuracy")
    assert_same_params(plain, fast)
    assert fast.params["batches_bn1"][0, 0] == 50


def test_with_momentum_none_the_fused_mlp_keeps_the_plain_ones_cumulative_averages():
    """momentum=None goes through the layer's own update (BatchNorm.update_averages): supported."""
    sizes = (8, 6, 5, 1)
    x, y = batch(sizes, rows=200, seed=2)
    runs = [
        (model, dp.train.fit(model, x, y, dp.optim.Adam(lr=0.01), steps=30, batch_size=20, progress=False))
        for model in twins(sizes, momentum=None)
    ]
    (plain, plain_history), (fast, fast_history) = runs
    close(fast_history.loss, plain_history.loss, what="loss")
    assert_same_params(plain, fast)
    assert fast.config["momentum"] is None and fast.params["batches_bn1"][0, 0] == 30


def test_the_fused_mlp_refuses_batch_renormalization_clearly():
    with pytest.raises(ValueError, match=r"fused=True does not implement batch renormalization \(renorm=True\)"):
        dp.MLP(fused=True, renorm=True)
    assert dp.MLP(fused=False, renorm=True).config["renorm"] is True


def test_float32_stays_float32_and_agrees_to_its_precision():
    sizes = (7, 6, 5, 3)
    plain, fast = twins(sizes, "sigmoid", dtype=np.float32)
    sgd = dp.optim.SGD(lr=0.05)
    for step in range(3):
        x, y = batch(sizes, seed=step, dtype=np.float32)
        losses = [model.loss(x, y) for model in (plain, fast)]
        close(losses[1].value, losses[0].value, tol=1e-4)
        want, got = (loss.grad(1) for loss in losses)
        for key in want:
            assert got[key].dtype == np.float32, key
            close(got[key], want[key], tol=1e-5 * max(1.0, np.abs(want[key]).max()), what=key)
        for model, grads in ((plain, want), (fast, got)):
            sgd.step(model.params, grads)
    assert all(value.dtype == np.float32 for key, value in fast.params.items() if not key.startswith("batches_"))
    assert_same_params(plain, fast, tol=1e-5)
    x, _ = batch(sizes, seed=9, dtype=np.float32)
    close(fast.logits(x, train=False).value, plain.logits(x, train=False).value, tol=1e-5)


MEAN, VAR = np.array([[0.3, -0.2, 0.1]]), np.array([[1.5, 0.5, 2.0]])


def fused_layer(activation, train):
    """f(h, w, gamma, beta): the fused primitive of one hidden layer, as `hidden_layer` calls it."""

    def f(h, w, gamma, beta):
        x = h.value @ w.value
        if not train:
            return fused.linear_batch_norm_eval(h, w, gamma, beta, x, MEAN, VAR, eps=EPS, activation=activation)
        mean, var = batch_statistics(x)
        return fused.linear_batch_norm(h, w, gamma, beta, x - mean, var, eps=EPS, activation=activation)

    return f


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_fused_primitives_pass_gradcheck(activation, train):
    rng = np.random.default_rng(7)
    h, w = rng.normal(size=(6, 4)), rng.normal(size=(4, 3))
    gamma, beta = rng.normal(1.0, 0.3, (1, 3)), rng.normal(size=(1, 3))
    assert dp.gradcheck(fused_layer(activation, train), h, w, gamma, beta, tol=1e-6, seed=3) < 1e-6


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_in_place_activation_is_the_plain_one_in_value_and_gradient(activation):
    a = np.random.default_rng(4).normal(size=(6, 3)) * 3
    g = np.random.default_rng(5).normal(size=a.shape)
    plain = getattr(Node(a, "a"), activation)()
    in_place, backward = fused.IN_PLACE_ACTIVATIONS[activation]
    y = a.copy()
    in_place(y)
    close(y, plain.value)
    kept = g.copy(), y.copy()
    close(backward(g, y), plain.grad(g)["a"])
    np.testing.assert_array_equal(g, kept[0])  # the backward makes a new array: g and y are left as they were
    np.testing.assert_array_equal(y, kept[1])


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_repeated_grad_calls_on_one_graph_give_each_seeds_own_gradients(activation, train):
    """A vjp that wrote into an array it keeps (or into the gradient it is given) would make
    the second grad() differ."""
    _, fast = twins((5, 5, 5, 5), activation)
    x, _ = batch((5,), rows=9, seed=3)
    fast.logits(x)  # a first batch, for eval mode's averages
    out = fast.logits(Node(x, "x"), train=train)
    rng = np.random.default_rng(6)
    s1, s2 = rng.normal(size=out.shape), rng.normal(size=out.shape)
    first = out.grad(s1)
    second, again, both = out.grad(s2), out.grad(s1), out.grad(s1 + s2)
    assert "x" in first and "gamma_bn1" in first
    for key in first:
        np.testing.assert_array_equal(again[key], first[key], err_msg=key)
        close(both[key], first[key] + second[key], what=key)  # linear in the seed


def test_a_later_layers_refusal_changes_no_average():
    """bn1's scale blown up: relu lets it through, bn2's statistics overflow and refuse the
    batch after bn1 has moved its averages; the model's transaction puts them back."""
    sizes = (6, 5, 4, 1)
    plain, fast = twins(sizes, "relu")
    x, y = batch(sizes, seed=4)
    for model in (plain, fast):
        model.loss(x, y)  # a batch that counts, so the averages are not the initial ones
        model.params["gamma_bn1"] = model.params["gamma_bn1"] * 1e200
    before = fast.get_param()
    for call in (lambda m: m.loss(x, y), lambda m: m.logits(x), lambda m: m.forward(x)):
        with pytest.raises(NonFiniteError, match="batch norm 'bn2'") as plains:
            call(plain)
        with pytest.raises(NonFiniteError, match="batch norm 'bn2'") as fasts:
            call(fast)
        assert str(fasts.value) == str(plains.value)
        for key, value in before.items():
            np.testing.assert_array_equal(fast.params[key], value, err_msg=key)
    assert fast.params["batches_bn1"][0, 0] == 1


def test_the_fused_layer_refuses_what_the_plain_one_refuses():
    sizes = (6, 5, 4, 1)
    for rows, train, error in [(1, True, ValueError), (4, False, RuntimeError)]:
        x, _ = batch(sizes, rows=rows)
        plain, fast = twins(sizes)
        with pytest.raises(error) as plains:
            plain.logits(x, train=train)
        with pytest.raises(error) as fasts:
            fast.logits(x, train=train)
        assert str(fasts.value) == str(plains.value) and "bn1" in str(fasts.value)
        assert fast.params["batches_bn1"][0, 0] == 0
    plain, fast = twins(sizes)
    x = np.full((4, 6), 1e200)
    x[0] = -1e200  # finite rows whose batch variance overflows
    with pytest.raises(NonFiniteError, match="batch norm 'bn1'"):
        fast.logits(x)
    assert not fast.params["batches_bn1"].any() and not fast.params["avg_mean_bn1"].any()


@pytest.mark.parametrize(
    "settings",
    [dict(batch_norm=False), *(dict(activation=a) for a in dp.nn.ACTIVATIONS if a not in ACTIVATIONS)],
    ids=str,
)
def test_fused_needs_batch_norm_and_an_activation_it_has_in_place(settings):
    with pytest.raises(ValueError, match="fused=True needs batch_norm=True .* one of tanh, sigmoid, relu"):
        dp.MLP(fused=True, **settings)
    dp.MLP(fused=False, **settings)  # the plain path takes them all


@pytest.mark.parametrize("value", [1, "yes", None, np.float64(1.0)])
def test_fused_must_be_true_or_false(value):
    with pytest.raises(TypeError, match="fused must be True or False"):
        dp.MLP(fused=value)


def test_config_holds_fused_only_when_true():
    assert "fused" not in dp.MLP().config and dp.MLP(fused=False).config == dp.MLP().config
    assert not dp.MLP().fused
    model = dp.MLP(fused=True)
    assert model.fused and model.config == {**dp.MLP().config, "fused": True}


def test_a_fused_model_survives_a_checkpoint_and_a_plain_ones_config_is_unchanged(tmp_path):
    sizes = (6, 5, 4, 3)
    plain, fast = twins(sizes, "sigmoid")
    x, y = batch(sizes, seed=5)
    adam = dp.optim.Adam(lr=0.01)
    adam.step(fast.params, fast.loss(x, y).grad(1))
    loaded, loaded_adam = checkpoint.load_with_optimizer(checkpoint.save(fast, tmp_path / "f.npz", optimizer=adam))
    assert loaded.fused and loaded.config == fast.config
    for key, value in fast.params.items():
        np.testing.assert_array_equal(loaded.params[key], value, err_msg=key)
    assert loaded_adam.state_dict().keys() == adam.state_dict().keys()
    np.testing.assert_array_equal(loaded.logits(x, train=False).value, fast.logits(x, train=False).value)
    assert "linear_batch_norm" in ops_in(loaded.loss(x, y))
    reloaded = checkpoint.load(checkpoint.save(plain, tmp_path / "p.npz"))
    assert "fused" not in reloaded.config and not reloaded.fused


def test_folding_a_fused_model_gives_the_plain_folded_model():
    sizes = (6, 5, 4, 3)
    plain, fast = twins(sizes, "relu")
    for step in range(2):
        x, y = batch(sizes, seed=step)
        for model in (plain, fast):
            dp.optim.SGD(lr=0.05).step(model.params, model.loss(x, y).grad(1))
    folded, folded_plain = dp.fold_batch_norm(fast), dp.fold_batch_norm(plain)
    assert not folded.fused and not folded.has_batch_norm and folded.config == folded_plain.config
    x, _ = batch(sizes, seed=7)
    close(folded.logits(x).value, fast.logits(x, train=False).value)
    close(folded.logits(x).value, folded_plain.logits(x).value)


def test_record_runs_the_plain_layers_and_changes_nothing():
    sizes = (6, 5, 4, 1)
    plain, fast = twins(sizes)
    x, y = batch(sizes, seed=6)
    for model in (plain, fast):
        model.loss(x, y)
    before = fast.get_param()
    for train in (False, True):
        want, got = plain.record(x, train=train), fast.record(x, train=train)
        assert got.keys() == want.keys() == {"l1", "bn1", "l2", "bn2", "l3"}
        for key in want:
            close(got[key], want[key], what=key)
    for key, value in before.items():
        np.testing.assert_array_equal(fast.params[key], value, err_msg=key)
