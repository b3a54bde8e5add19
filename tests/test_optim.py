"""Optimizers: each rule against hand-computed steps, convergence on a quadratic, and the
contract of `step` (only keys with a gradient, new arrays, dtype kept, all or nothing)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import dp
from dp import optim
from dp.checks import NonFiniteError
from dp.optim import SGD, Adam, Momentum, RMSProp, make_optimizer

ALL = {
    "sgd": lambda: SGD(lr=0.1),
    "momentum": lambda: Momentum(lr=0.1, beta=0.9),
    "rmsprop": lambda: RMSProp(lr=0.1, beta=0.9, epsilon=1e-8),
    "adam": lambda: Adam(lr=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8),
}

P0 = np.array([[1.0, -2.0]])
G1 = np.array([[0.5, -1.0]])
G2 = np.array([[0.1, 0.2]])


def two_steps(optimizer):
    params = {"p": P0}
    optimizer.step(params, {"p": G1})
    first = params["p"]
    optimizer.step(params, {"p": G2})
    return first, params["p"]


def random_grads(seed, params):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape) for k, v in params.items()}


def assert_same_state(a, b):
    """Two state_dicts equal bit for bit: same keys, slots, dtypes, bytes, step counts."""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].keys() == b[k].keys()
        for slot in a[k]:
            x, y = a[k][slot], b[k][slot]
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
            else:
                assert type(x) is type(y) and x == y


# ----- each rule, on two steps computed by hand -----


class TestUpdateRules:
    def test_sgd_subtracts_lr_times_the_gradient(self):
        first, second = two_steps(SGD(lr=0.1))
        np.testing.assert_allclose(first, [[0.95, -1.9]], rtol=1e-15)
        np.testing.assert_allclose(second, [[0.94, -1.92]], rtol=1e-15)

    def test_momentum_accumulates_velocity_with_lr_outside(self):
        first, second = two_steps(Momentum(lr=0.1, beta=0.9))
        # v1 = g1 = [0.5, -1]; v2 = 0.9 v1 + g2 = [0.55, -0.7]
        np.testing.assert_allclose(first, [[0.95, -1.9]], rtol=1e-15)
        np.testing.assert_allclose(second, [[0.95 - 0.055, -1.9 + 0.07]], rtol=1e-14)

    def test_rmsprop_divides_by_the_root_of_the_average_square(self):
        first, second = two_steps(RMSProp(lr=0.1, beta=0.9, epsilon=1e-8))
        # s1 = 0.1 g1^2 = [0.025, 0.1]; s2 = 0.9 s1 + 0.1 g2^2 = [0.0235, 0.094]
        p1 = np.array([[1.0 - 0.1 * 0.5 / (np.sqrt(0.025) + 1e-8), -2.0 + 0.1 * 1.0 / (np.sqrt(0.1) + 1e-8)]])
        p2 = p1 - 0.1 * np.array([[0.1 / (np.sqrt(0.0235) + 1e-8), 0.2 / (np.sqrt(0.094) + 1e-8)]])
        np.testing.assert_allclose(first, p1, rtol=1e-14)
        np.testing.assert_allclose(second, p2, rtol=1e-14)

    def test_adam_corrects_the_bias_of_both_averages(self):
        first, second = two_steps(Adam(lr=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8))
        # t=1: m1 = 0.1 g1 = [0.05, -0.1], v1 = 0.001 g1^2 = [0.00025, 0.001];
        #      mhat = m1 / 0.1 = g1, vhat = v1 / 0.001 = g1^2: the step is lr * g / (|g| + eps).
        p1 = np.array([[1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 1.0 / (1.0 + 1e-8)]])
        # t=2: m2 = 0.9 m1 + 0.1 g2 = [0.055, -0.07]; v2 = 0.999 v1 + 0.001 g2^2 = [0.00025975, 0.001039];
        #      mhat = m2 / (1 - 0.81) = m2 / 0.19, vhat = v2 / (1 - 0.998001) = v2 / 0.001999.
        m_hat = np.array([[0.055, -0.07]]) / 0.19
        v_hat = np.array([[0.00025975, 0.001039]]) / 0.001999
        p2 = p1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
        np.testing.assert_allclose(first, p1, rtol=1e-14)
        np.testing.assert_allclose(second, p2, rtol=1e-12)
        assert optim.Adam is Adam

    def test_adam_counts_steps_per_key(self):
        adam = Adam(lr=0.1)
        params = {"a": P0, "b": P0}
        adam.step(params, {"a": G1})
        adam.step(params, {"a": G2, "b": G1})  # b's first step: t = 1 for b, 2 for a
        state = adam.state_dict()
        assert state["a"]["step"] == 2 and state["b"]["step"] == 1
        np.testing.assert_allclose(params["b"], [[1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 / (1.0 + 1e-8)]])

    @given(g=arrays(np.float64, st.integers(1, 6), elements=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3)))
    def test_adams_first_step_moves_each_coordinate_by_lr(self, g):
        params = {"p": np.zeros_like(g)}
        Adam(lr=0.01).step(params, {"p": g})
        np.testing.assert_allclose(params["p"], -0.01 * np.sign(g), rtol=1e-4)

    @given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5))
    def test_momentum_with_beta_zero_is_sgd(self, seeds):
        a, b = {"p": np.ones((2, 3))}, {"p": np.ones((2, 3))}
        sgd, momentum = SGD(lr=0.1), Momentum(lr=0.1, beta=0.0)
        for seed in seeds:
            g = random_grads(seed, a)
            sgd.step(a, g)
            momentum.step(b, g)
        np.testing.assert_array_equal(a["p"], b["p"])


# ----- convergence on a quadratic, gradients by dp -----

CONVERGENCE = {  # optimizer, steps, tolerance on |p - target|
    "sgd": (lambda: SGD(lr=0.1), 200, 1e-8),
    "momentum": (lambda: Momentum(lr=0.05, beta=0.9), 500, 1e-6),
    # With a fixed lr, RMSProp's steps stay about lr long: it ends within a few lr of the minimum.
    "rmsprop": (lambda: RMSProp(lr=0.01), 1500, 0.02),
    "adam": (lambda: Adam(lr=0.05), 1500, 1e-2),
}


@pytest.mark.parametrize("name", CONVERGENCE)
@settings(max_examples=10)
@given(
    # Values that are 0 or of ordinary size: around 1e-177, the squared gradients Adam and
    # RMSProp divide by underflow to 0 and a step becomes lr * g / epsilon (PyTorch does the same).
    start=arrays(np.float64, (1, 3), elements=st.floats(-3, 3).filter(lambda v: v == 0 or abs(v) > 1e-100)),
    target=arrays(np.float64, (1, 3), elements=st.floats(-3, 3).filter(lambda v: v == 0 or abs(v) > 1e-100)),
)
def test_each_optimizer_drives_a_quadratic_to_its_minimum(name, start, target):
    make, steps, tolerance = CONVERGENCE[name]
    optimizer, params = make(), {"p": start}
    for _ in range(steps):
        p = dp.Node(params["p"], "p")
        loss = ((p - target) ** 2).sum()
        optimizer.step(params, loss.grad(1))
    assert np.abs(params["p"] - target).max() < tolerance


# ----- the contract of step -----


@pytest.fixture
def trained_mlp_grads():
    model = dp.MLP(sizes=(4, 3, 1), seed=1)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 2, 8)
    grads = model.loss(x, y).grad(1)  # this forward pass updates the moving averages
    return model, grads


@pytest.mark.parametrize("name", ALL)
def test_keys_without_a_gradient_like_moving_averages_are_untouched(name, trained_mlp_grads):
    model, grads = trained_mlp_grads
    state_keys = {"avg_mean_bn1", "avg_variance_bn1", "batches_bn1"}
    assert state_keys.isdisjoint(grads)
    before = dict(model.params)
    ALL[name]().step(model.params, grads)
    for k in model.params:
        if k in state_keys:
            assert model.params[k] is before[k]
        else:
            assert model.params[k] is not before[k]
            assert not np.array_equal(model.params[k], before[k])


@pytest.mark.parametrize("name", ALL)
def test_step_replaces_arrays_and_never_writes_into_old_ones_or_the_gradients(name):
    optimizer = ALL[name]()
    params = {"w": np.ones((3, 2)), "b": np.zeros((1, 2))}
    for seed in range(3):
        old = {k: (v, v.copy()) for k, v in params.items()}
        grads = random_grads(seed, params)
        grads_copy = {k: g.copy() for k, g in grads.items()}
        optimizer.step(params, grads)
        for k, (array, copy) in old.items():
            assert params[k] is not array
            np.testing.assert_array_equal(array, copy)
            np.testing.assert_array_equal(grads[k], grads_copy[k])


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_a_float32_parameter_stays_float32(name, grad_dtype):
    optimizer = ALL[name]()
    params = {"w": np.ones((2, 2), np.float32)}
    for seed in range(3):
        optimizer.step(params, {"w": random_grads(seed, params)["w"].astype(grad_dtype)})
        assert params["w"].dtype == np.float32


@pytest.mark.parametrize("name", ALL)
def test_a_float32_mlp_trains_in_float32(name):
    model = dp.MLP(sizes=(4, 3, 1), dtype=np.float32, seed=0)
    optimizer, rng = ALL[name](), np.random.default_rng(0)
    for _ in range(3):
        optimizer.step(model.params, model.loss(rng.standard_normal((8, 4)), rng.integers(0, 2, 8)).grad(1))
    assert {v.dtype for v in model.params.values()} == {np.dtype(np.float32)}


BAD_GRADS = {  # "a" is valid in each, so a step that is not all-or-nothing would update it
    "unknown key": ({"a": np.ones((2, 2)), "nope": np.ones(1), "zzz": np.ones(1)}, KeyError, r"\['nope', 'zzz'\]"),
    "wrong shape": ({"a": np.ones((2, 2)), "b": np.ones((3, 1))}, ValueError, r"'b'.*\(3, 1\).*\(1, 3\)"),
    "transposed": ({"a": np.ones((2, 2)), "b": np.ones((3,))}, ValueError, r"'b'.*\(3,\).*\(1, 3\)"),
    "nan": ({"a": np.ones((2, 2)), "b": np.array([[1.0, np.nan, 0.0]])}, ValueError, r"\['b'\].*NaN or inf"),
    "inf in two": (
        {"a": np.full((2, 2), np.inf), "b": np.array([[1.0, -np.inf, 0.0]])},
        ValueError,
        r"\['a', 'b'\].*NaN or inf",
    ),
    "not numeric": ({"a": np.ones((2, 2)), "b": np.array([["x", "y", "z"]])}, TypeError, "numeric"),
}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", BAD_GRADS)
def test_a_failing_step_leaves_params_and_state_exactly_unchanged(name, bad):
    optimizer = ALL[name]()
    params = {"a": np.ones((2, 2)), "b": np.ones((1, 3)), "avg_mean_bn1": np.zeros((1, 3))}
    for seed in range(2):
        optimizer.step(params, random_grads(seed, {k: params[k] for k in ("a", "b")}))
    before, state_before = {k: (v, v.tobytes()) for k, v in params.items()}, optimizer.state_dict()
    grads, error, message = BAD_GRADS[bad]
    with pytest.raises(error, match=message):
        optimizer.step(params, grads)
    assert params.keys() == before.keys()
    for k, (array, data) in before.items():
        assert params[k] is array and array.tobytes() == data
    assert_same_state(optimizer.state_dict(), state_before)


def test_a_parameter_that_is_not_a_float_array_is_refused():
    with pytest.raises(TypeError, match="'n'.*floating-point"):
        SGD().step({"n": np.ones(2, dtype=np.int64)}, {"n": np.ones(2)})


# ----- hyperparameters, names, factory -----


@pytest.mark.parametrize(
    "cls, keyword, value",
    [
        (SGD, "lr", 0.0),
        (SGD, "lr", -0.1),
        (SGD, "lr", float("nan")),
        (SGD, "lr", float("inf")),
        (SGD, "alpha", -1.0),
        (Momentum, "beta", 1.0),
        (Momentum, "beta", -0.1),
        (RMSProp, "beta", 1.5),
        (RMSProp, "epsilon", 0.0),
        (Adam, "beta1", 1.0),
        (Adam, "beta2", -0.5),
        (Adam, "epsilon", -1e-8),
    ],
)
def test_out_of_range_hyperparameters_are_refused_by_name(cls, keyword, value):
    with pytest.raises(ValueError, match=f"{'lr' if keyword == 'alpha' else keyword} must be"):
        cls(**{keyword: value})


def test_a_hyperparameter_must_be_a_number():
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD(lr="0.1")
    with pytest.raises(TypeError, match="beta must be a real number"):
        Momentum(beta=True)


def test_alpha_is_another_name_of_lr_and_giving_both_is_an_error():
    assert SGD(alpha=0.5).lr == 0.5
    assert Adam(alpha=0.02).config["lr"] == 0.02
    with pytest.raises(TypeError, match="not both"):
        Momentum(lr=0.1, alpha=0.1)


def test_defaults_are_the_documented_ones():
    assert SGD().config == {"lr": 0.01}
    assert Momentum().config == {"lr": 0.01, "beta": 0.9}
    assert RMSProp().config == {"lr": 0.001, "beta": 0.9, "epsilon": 1e-8}
    assert Adam().config == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def test_the_original_dp_names_are_not_dp_optim_classes():
    """The original SGD_Momentum and RMS_Prop are other rules with another constructor: they
    live in dp.tools.classic, and dp.optim does not pass its own classes off under their names."""
    assert not hasattr(optim, "SGD_Momentum") and not hasattr(optim, "RMS_Prop")
    for name in ("SGD_Momentum", "RMS_Prop"):
        with pytest.raises(ValueError, match=f"unknown optimizer '{name}'.*dp.tools.classic's: dp.SGD_Momentum"):
            make_optimizer(name)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("sgd", SGD),
        ("momentum", Momentum),
        ("rmsprop", RMSProp),
        ("adam", Adam),
        ("SGD", SGD),
        ("Momentum", Momentum),
        ("RMSProp", RMSProp),
        ("Adam", Adam),
    ],
)
def test_make_optimizer_maps_names_in_any_case_to_classes(name, cls):
    assert type(make_optimizer(name)) is cls


def test_make_optimizer_passes_hyperparameters_and_rebuilds_from_config():
    momentum = make_optimizer("momentum", lr=0.2, beta=0.5)
    assert momentum.config == {"lr": 0.2, "beta": 0.5}
    adam = Adam(lr=0.3, beta1=0.8, beta2=0.99, epsilon=1e-6)
    assert make_optimizer(adam.name, **adam.config).config == adam.config
    with pytest.raises(TypeError):
        make_optimizer("sgd", beta=0.9)  # SGD has no beta


def test_make_optimizer_lists_valid_names_for_an_unknown_one():
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'; valid names: sgd, momentum, rmsprop, adam"):
        make_optimizer("adagrad")


# ----- state_dict -----


@pytest.mark.parametrize("name", ALL)
def test_a_state_dict_round_trip_continues_identically(name):
    original = ALL[name]()
    params = {"w": np.ones((3, 2)), "b": np.zeros((1, 2))}
    for seed in range(3):
        original.step(params, random_grads(seed, params))
    restored = make_optimizer(original.name, **original.config)
    restored.load_state_dict(original.state_dict())
    copy = dict(params)  # a shallow copy suffices: steps replace arrays, never write into them
    for seed in range(3, 6):
        grads = random_grads(seed, params)
        original.step(params, grads)
        restored.step(copy, grads)
    for k in params:
        assert params[k].tobytes() == copy[k].tobytes()
    assert_same_state(original.state_dict(), restored.state_dict())


def test_state_dict_holds_plain_arrays_and_int_step_counts():
    adam = Adam()
    adam.step({"w": np.ones((2, 2))}, {"w": np.ones((2, 2))})
    state = adam.state_dict()
    assert set(state) == {"w"} and set(state["w"]) == {"m", "v", "step"}
    assert type(state["w"]["step"]) is int and state["w"]["step"] == 1
    assert isinstance(state["w"]["m"], np.ndarray) and state["w"]["m"].shape == (2, 2)
    assert SGD().state_dict() == {}


def test_state_dicts_are_copies_both_ways():
    momentum = Momentum(lr=0.1)
    params = {"w": np.ones((2, 2))}
    momentum.step(params, {"w": np.ones((2, 2))})
    out = momentum.state_dict()
    out["w"]["velocity"][:] = 100.0  # changing the copy changes nothing inside
    assert momentum.state_dict()["w"]["velocity"].max() == 1.0
    given_state = {"w": {"velocity": np.full((2, 2), 2.0)}}
    momentum.load_state_dict(given_state)
    given_state["w"]["velocity"][:] = -5.0
    assert momentum.state_dict()["w"]["velocity"].max() == 2.0


@pytest.mark.parametrize(
    "state, message",
    [
        ({"w": {"m": np.ones(2), "v": np.ones(2)}}, "slots"),
        ({"w": {"m": np.ones(2), "v": np.ones(2), "step": 1, "extra": 1}}, "slots"),
        ({"w": {"m": np.ones(2), "v": np.ones(2), "step": 0}}, "int >= 1"),
        ({"w": {"m": np.ones(2), "v": np.ones(2), "step": 1.5}}, "int >= 1"),
        ({"w": {"m": np.array([np.nan, 1.0]), "v": np.ones(2), "step": 1}}, "finite"),
        ({"w": {"m": np.ones(2, dtype=np.int64), "v": np.ones(2), "step": 1}}, "floating-point"),
    ],
)
def test_load_state_dict_refuses_bad_state_and_keeps_the_old_one(state, message):
    adam = Adam()
    adam.step({"w": np.ones(2)}, {"w": np.ones(2)})
    before = adam.state_dict()
    with pytest.raises(ValueError, match=message):
        adam.load_state_dict(state)
    assert_same_state(adam.state_dict(), before)


def test_state_loaded_for_another_shape_is_refused_at_the_next_step():
    momentum = Momentum()
    momentum.load_state_dict({"w": {"velocity": np.zeros((2, 2))}})
    params = {"w": np.ones((3,))}
    with pytest.raises(ValueError, match=r"'velocity' for 'w' has shape \(2, 2\).*\(3,\)"):
        momentum.step(params, {"w": np.ones((3,))})
    np.testing.assert_array_equal(params["w"], np.ones(3))


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_an_update_that_would_overflow_is_refused_and_changes_nothing(name):
    big = {"sgd": 1e308, "adam": None}[name]
    optimizer = make_optimizer(name, lr=big) if big else make_optimizer(name)
    params = {"w": np.array([[1e308, 1.0]]) if big else np.array([[1.0, 2.0]], dtype=np.float32)}
    grads = {"w": np.array([[-1.0, 1.0]]) if big else np.array([[1e20, 1.0]], dtype=np.float32)}  # adam: g**2 overflows
    before = params["w"]
    with pytest.raises(dp.NonFiniteError, match="would make the parameters or this optimizer's state NaN or inf"):
        optimizer.step(params, grads)
    assert params["w"] is before and optimizer.state == {}


# ----- weight decay: L2 in the gradient, or decoupled from it -----


@pytest.mark.parametrize("decoupled", [False, True])
def test_sgd_weight_decay_shrinks_the_parameter_by_lr_times_decay_in_both_forms(decoupled):
    params = {"p": P0}
    SGD(lr=0.1, weight_decay=0.1, decoupled=decoupled).step(params, {"p": G1})
    # p - lr (g + wd p) = [1 - 0.1 (0.5 + 0.1), -2 - 0.1 (-1 - 0.2)]
    np.testing.assert_allclose(params["p"], [[0.94, -1.88]], rtol=1e-15)


def test_l2_decay_goes_through_the_momentum_like_the_gradient():
    first, second = two_steps(Momentum(lr=0.1, beta=0.9, weight_decay=0.5))
    v1 = G1 + 0.5 * P0
    np.testing.assert_allclose(first, P0 - 0.1 * v1, rtol=1e-15)
    v2 = 0.9 * v1 + (G2 + 0.5 * first)
    np.testing.assert_allclose(second, first - 0.1 * v2, rtol=1e-15)


def test_adam_normalizes_l2_decay_away_but_not_decoupled_decay():
    """Adam's first step is lr * sign(g) whatever the gradient's size, so L2 decay (part of
    the gradient) changes nothing here, while AdamW's decoupled decay still shrinks p."""
    l2, decoupled = {"p": P0}, {"p": P0}
    Adam(lr=0.1, weight_decay=0.1).step(l2, {"p": G1})
    Adam(lr=0.1, weight_decay=0.1, decoupled=True).step(decoupled, {"p": G1})
    np.testing.assert_allclose(l2["p"], [[0.9, -1.9]], rtol=1e-7)
    np.testing.assert_allclose(decoupled["p"], [[0.9 - 0.01, -1.9 + 0.02]], rtol=1e-7)  # - lr wd p


def test_decoupled_decay_is_subtracted_after_the_rule_in_rmsprop():
    plain, decayed = {"p": P0}, {"p": P0}
    RMSProp(lr=0.1).step(plain, {"p": G1})
    RMSProp(lr=0.1, weight_decay=0.2, decoupled=True).step(decayed, {"p": G1})
    np.testing.assert_allclose(decayed["p"], plain["p"] - 0.1 * 0.2 * P0, rtol=1e-15)


@pytest.mark.parametrize("name", ALL)
def test_weight_decay_keeps_float32(name):
    optimizer = make_optimizer(name, lr=0.1, weight_decay=0.1, decoupled=name == "adam")
    params = {"p": P0.astype(np.float32)}
    optimizer.step(params, {"p": G1})
    assert params["p"].dtype == np.float32


def test_weight_decay_is_in_the_config_only_when_there_is_some():
    assert Adam().config == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    adamw = Adam(lr=0.01, weight_decay=0.01, decoupled=True)
    assert adamw.config["weight_decay"] == 0.01 and adamw.config["decoupled"] is True
    assert make_optimizer(adamw.name, **adamw.config).config == adamw.config
    assert "weight_decay=0.01, decoupled=True" in repr(adamw)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"weight_decay": -0.1}, ValueError, r"weight_decay must be a finite number in \[0, inf\)"),
        ({"weight_decay": float("inf")}, ValueError, "weight_decay must be"),
        ({"weight_decay": "0.1"}, TypeError, "weight_decay must be a real number"),
        ({"decoupled": 1}, TypeError, "decoupled must be True or False"),
    ],
)
@pytest.mark.parametrize("cls", [SGD, Momentum, RMSProp, Adam])
def test_bad_weight_decay_settings_are_refused_by_name(cls, options, error, message):
    with pytest.raises(error, match=message):
        cls(**options)


@pytest.mark.parametrize("decay", [{}, {"weight_decay": 0.01}, {"weight_decay": 0.01, "decoupled": True}])
@pytest.mark.parametrize("name", ALL)
def test_numpy_scalar_hyperparameters_keep_float32_and_give_the_same_steps(name, decay):
    cls = optim.OPTIMIZERS[name]
    given = {k: np.float64(v) for k, v in {**ALL[name]().config, **decay}.items() if k != "decoupled"}
    plain, numpy_scalars = cls(**ALL[name]().config, **decay), cls(**given, decoupled=decay.get("decoupled", False))
    results = []
    for optimizer in (plain, numpy_scalars):
        params = {"w": np.array([[1.0, -2.0]], np.float32)}
        for g in (G1, G2):
            optimizer.step(params, {"w": g.astype(np.float32)})
        states = optimizer.state_dict().get("w", {})
        assert params["w"].dtype == np.float32
        assert all(v.dtype == np.float32 for v in states.values() if isinstance(v, np.ndarray))
        results.append(params["w"])
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSProp, Adam])
def test_weight_decay_is_l2_unless_decoupled_is_asked_for(cls):
    optimizer = cls(weight_decay=0.01)
    assert optimizer.decoupled is False and optimizer.config["decoupled"] is False
    assert cls().weight_decay == 0.0


@pytest.mark.parametrize("name", [3, None, "adagrad"])
def test_an_unknown_optimizer_that_is_no_classic_name_gets_no_hint_about_dp_classic(name):
    with pytest.raises(ValueError, match="unknown optimizer") as error:
        make_optimizer(name)
    assert "classic" not in str(error.value)


@pytest.mark.parametrize("step", [1, np.int64(3), np.array(3), np.array(1, dtype=np.uint8)])
def test_a_step_count_of_1_or_more_loads_also_as_a_numpy_integer_or_0_d_array(step):
    adam = Adam()
    adam.load_state_dict({"w": {"m": np.zeros((1, 2)), "v": np.zeros((1, 2)), "step": step}})
    loaded = adam.state_dict()["w"]["step"]
    assert type(loaded) is int and loaded == int(step)


def test_a_step_count_in_an_array_with_axes_is_refused():
    with pytest.raises(ValueError, match="int >= 1"):
        Adam().load_state_dict({"w": {"m": np.zeros((1, 2)), "v": np.zeros((1, 2)), "step": np.array([3])}})


# ----- the two conventions that share names: dp.optim (PyTorch's) and the original course's -----


@pytest.mark.parametrize("name, classic", [("SGD", "SGD"), ("Momentum", "SGD_Momentum"), ("RMSProp", "RMS_Prop"),
                                           ("Adam", "Adam")])  # fmt: skip
@pytest.mark.parametrize("call", ["model, data, hyperparam", "model only", "hyperparam only"])
def test_a_call_in_the_original_courses_style_names_its_class(name, classic, call):
    model = dp.MLP()
    x, y = np.zeros((4, 30)), np.zeros(4)
    arguments = {
        "model, data, hyperparam": ((model, x, y), {"hyperparam": {"alpha": 0.1}}),
        "model only": ((model,), {}),
        "hyperparam only": ((), {"hyperparam": {"alpha": 0.1}}),
    }[call]
    with pytest.raises(TypeError, match=rf"dp\.optim\.{name} follows PyTorch.* is dp\.{classic}$"):
        getattr(dp.optim, name)(*arguments[0], **arguments[1])


@pytest.mark.parametrize("classic, name", [("SGD", "SGD"), ("SGD_Momentum", "Momentum"), ("RMS_Prop", "RMSProp"),
                                           ("Adam", "Adam")])  # fmt: skip
@pytest.mark.parametrize("call", ["lr=", "a number", "nothing"])
def test_a_call_in_pytorchs_style_to_the_original_courses_class_names_dp_optim(classic, name, call):
    arguments = {"lr=": ((), {"lr": 0.01}), "a number": ((0.01,), {}), "nothing": ((), {})}[call]
    with pytest.raises(TypeError, match=rf"dp\.{classic} is the original course's optimizer.* is dp\.optim\.{name}$"):
        getattr(dp, classic)(*arguments[0], **arguments[1])


def test_each_convention_still_takes_its_own_calls():
    assert dp.optim.SGD(0.1).lr == 0.1 and dp.optim.Adam(lr=0.1).lr == 0.1
    assert dp.SGD(dp.Model(), hyperparam={"alpha": 0.1}).alpha == 0.1


def test_dp_optims_own_positional_arguments_are_not_taken_for_the_original_courses_call():
    assert dp.optim.Momentum(0.1, 0.5).beta == 0.5
    assert dp.optim.RMSProp(0.1, 0.5, 1e-6).epsilon == 1e-6
    adam = dp.optim.Adam(0.1, 0.8, 0.99, 1e-6)
    assert (adam.lr, adam.beta1, adam.beta2, adam.epsilon) == (0.1, 0.8, 0.99, 1e-6)


# ----- what the results' one look must still see (the gradients are looked at only when a result is bad) -----


def test_a_nan_in_a_large_gradient_is_named_as_the_cause():
    params = {"big": np.zeros((300, 200)), "small": np.zeros((1, 3))}
    grads = {"big": np.zeros((300, 200)), "small": np.ones((1, 3))}
    grads["big"][123, 45] = np.nan
    before = dict(params)
    for optimizer in (SGD(lr=0.1), Adam(lr=0.1)):
        with pytest.raises(NonFiniteError, match=r"the gradients of \['big'\] have NaN or inf values"):
            optimizer.step(params, grads)
        assert all(params[k] is before[k] for k in params) and optimizer.state == {}


def test_finite_gradients_whose_sum_would_overflow_are_not_refused():
    params, grads = {"w": np.zeros((1, 4))}, {"w": np.full((1, 4), 1e308)}
    SGD(lr=1e-10).step(params, grads)
    np.testing.assert_allclose(params["w"], np.full((1, 4), -1e298), rtol=1e-15)


def test_a_nan_parameter_with_finite_gradients_is_refused_as_its_update():
    params, grads = {"w": np.array([[np.nan, 1.0]])}, {"w": np.ones((1, 2))}
    with pytest.raises(NonFiniteError, match=r"the update of \['w'\] would make the parameters"):
        SGD(lr=0.1).step(params, grads)
