"""The words of dp's error messages: each bad input of docs/reliability.md's table says what is wrong.

A clear message is part of what dp promises for bad input (the parameter, the layer, both
shapes, the choices). Each row below is one promise: a bad call through a public entry
point (`dp.MLP`, a `dp.NeuralNode` subclass, `dp.train.fit`, `dp.optim`, `dp.Node`), the
exception it raises, and the key words its message must hold. That the state is left
unchanged is tests/test_bad_input.py's concern.
"""

import numpy as np
import pytest

import dp
from dp.optim import SGD, Adam, Momentum, RMSProp, make_optimizer
from dp.train import fit

ROWS = np.random.default_rng(0).normal(size=(8, 30))
LABELS = np.array([0, 1, 0, 1, 1, 0, 1, 0], dtype=float)


class Net(dp.NeuralNode):
    """A seed-style model: one batch-norm layer over 3 features, then a sigmoid."""

    def __init__(self):
        self.params = dict()
        self.bn1 = self.batch_norm(3, "bn1")

    def forward(self, x, train=None):
        return self.bn1(x, train).sigmoid()


def _mlp_loss(x=ROWS, y=LABELS, **options):
    return lambda: dp.MLP().loss(x, y, **options)


def _step(grads, optimizer=Adam):
    return lambda: optimizer().step(dict(dp.MLP().params), grads)


def _fit(x=ROWS, y=LABELS, optimizer=Adam, **options):
    return lambda: fit(dp.MLP(), x, y, optimizer(), **{"steps": 1, "batch_size": 4, **options})


class NoForward(dp.NeuralNode):
    """A model that forgot to define forward."""


@dp.primitive
def _one_vjp_not_a_tuple(a):
    return a * 2, lambda g: g * 2  # one vjp for all arguments must answer with a tuple


@dp.primitive
def _too_few_vjps(a, b):
    return a * b, (lambda g: g * b,)


@dp.primitive
def _vjp_of_another_shape(a):
    return a * 2, (lambda g: np.ones((5, 5)),)


def _grad_of(primitive, *args):
    return lambda: primitive(*[dp.Node(np.ones((2, 2)), f"a{i}") for i in range(len(args))]).grad(1)


def _seed(seed):
    return lambda: (dp.Node(np.ones((2, 2)), "a") * 2).grad(seed)


def _state_of_another_shape():
    optimizer = Momentum()
    optimizer.load_state_dict({"w": {"velocity": np.ones((3, 3))}})
    optimizer.step({"w": np.ones((2, 2))}, {"w": np.ones((2, 2))})


PROMISES = [
    # input to a model and its layers
    pytest.param(_mlp_loss(x=np.full((8, 30), np.nan)), dp.NonFiniteError, ["input", "NaN or inf"], id="nan-x-loss"),
    pytest.param(lambda: dp.MLP().predict(np.full((4, 30), np.inf)), dp.NonFiniteError, ["NaN or inf"], id="inf-x"),
    pytest.param(
        lambda: Net().forward(np.full((4, 3), np.nan)), dp.NonFiniteError, ["NaN or inf"], id="nan-x-neural-node"
    ),
    pytest.param(
        _mlp_loss(x=np.arange(8.0)[:, None] * np.full((8, 30), 1e200)),
        dp.NonFiniteError,
        ["'bn1'", "too large to square"],
        id="variance-overflows",
    ),
    pytest.param(
        lambda: dp.nn.batch_statistics(np.full((2, 1), np.inf)),  # inf - inf: NaN, without NumPy's warning
        dp.NonFiniteError,
        ["batch norm:", "too large to square"],
        id="batch-statistics-of-inf",
    ),
    pytest.param(_mlp_loss(y=np.full(8, np.nan)), dp.NonFiniteError, ["labels", "NaN or inf"], id="nan-y"),
    pytest.param(_mlp_loss(x=np.full((8, 30), "a")), TypeError, ["input", "must be numeric"], id="strings-x"),
    pytest.param(_mlp_loss(y=np.array(["a"] * 8)), TypeError, ["labels must be numeric"], id="strings-y"),
    pytest.param(_mlp_loss(y=np.full(8, 2.0)), ValueError, ["binary labels", "[0, 1]"], id="labels-not-0-1"),
    pytest.param(
        lambda: dp.MLP((30, 5, 3)).loss(ROWS, np.full(8, 3)), ValueError, ["class labels", "[0, 3)"], id="class-3-of-3"
    ),
    pytest.param(_mlp_loss(x=np.zeros((8, 29))), ValueError, ["(n, 30)", "(8, 29)"], id="wrong-width"),
    pytest.param(
        lambda: Net().forward(np.zeros((4, 2))), ValueError, ["'bn1'", "(n, 3)", "(4, 2)"], id="wrong-width-neural-node"
    ),
    pytest.param(_mlp_loss(y=LABELS[:5]), ValueError, ["5 labels", "8 rows"], id="labels-of-another-length"),
    pytest.param(_mlp_loss(x=ROWS[:1], y=LABELS[:1]), ValueError, ["'bn1'", "at least 2 rows", "got 1"], id="one-row"),
    pytest.param(
        lambda: Net().forward(np.ones((1, 3))), ValueError, ["'bn1'", "at least 2 rows"], id="one-row-neural-node"
    ),
    pytest.param(
        _mlp_loss(x=ROWS[:0], y=LABELS[:0]), ValueError, ["empty", "(0, 30)", "at least one row"], id="empty-batch"
    ),
    pytest.param(_mlp_loss(reduction="avg"), ValueError, ["reduction", "'avg'", "'sum'", "'mean'"], id="reduction"),
    pytest.param(lambda: NoForward().forward(ROWS), NotImplementedError, ["NoForward", "forward(x"], id="no-forward"),
    pytest.param(
        lambda: dp.nn.batch_norm(np.ones((1, 3)), 1, 0),
        ValueError,
        ["batch norm", "N >= 2", "(1, 3)"],
        id="batch-norm-function-one-row",
    ),
    pytest.param(
        lambda: dp.nn.batch_norm(np.ones((4, 3)), np.ones(2), 0),
        ValueError,
        ["gamma", "(1, 3)", "(2,)"],
        id="batch-norm-function-gamma",
    ),
    pytest.param(
        lambda: dp.nn.layer_norm(np.ones((1, 1, 3)), 1, 0),
        ValueError,
        ["layer norm", "(N, features)", "(1, 1, 3)"],
        id="layer-norm-function-rank",
    ),
    pytest.param(
        lambda: dp.nn.losses.binary_cross_entropy_with_logits(dp.Node(np.ones((2, 2))), [0, 1]),
        ValueError,
        ["binary cross-entropy", "(n, 1)", "(2, 2)"],
        id="loss-one-column",
    ),
    pytest.param(
        lambda: dp.nn.losses.softmax_cross_entropy(dp.Node(np.ones((2, 2, 2))), [0, 1]),
        ValueError,
        ["softmax cross-entropy", "(n, k)", "(2, 2, 2)"],
        id="loss-3-d-logits",
    ),
    pytest.param(
        lambda: Net().forward(np.ones((4, 3)), train=False),
        RuntimeError,
        ["'bn1'", "has not seen a training batch", "Train first"],
        id="eval-before-training",
    ),
    # the optimizers
    pytest.param(
        _step({"nope": np.zeros(1)}), KeyError, ["unknown parameters", "nope", "weight_l1"], id="grad-unknown"
    ),
    pytest.param(
        _step({"weight_l1": np.zeros((2, 2))}), ValueError, ["'weight_l1'", "(2, 2)", "(30, 20)"], id="grad-shape"
    ),
    pytest.param(
        _step({"weight_l1": np.full((30, 20), np.nan)}),
        dp.NonFiniteError,
        ["weight_l1", "NaN or inf", "nothing was updated"],
        id="grad-nan",
    ),
    pytest.param(
        _step({"weight_l1": np.full((30, 20), "a")}), TypeError, ["'weight_l1'", "must be numeric"], id="grad-strings"
    ),
    pytest.param(
        lambda: SGD(lr=1e308).step({"w": np.full((2, 2), 1e308)}, {"w": np.full((2, 2), -1e308)}),
        dp.NonFiniteError,
        ["'w'", "NaN or inf", "nothing was updated"],
        id="update-overflows",
    ),
    pytest.param(
        lambda: Adam().step({"w": np.ones((2, 2), dtype=int)}, {"w": np.ones((2, 2))}),
        TypeError,
        ["'w'", "floating-point", "int64"],
        id="integer-parameter",
    ),
    pytest.param(
        lambda: Momentum().load_state_dict({"w": {"m": np.ones(2)}}),
        ValueError,
        ["'w'", "['m']", "Momentum", "['velocity']"],
        id="state-slots",
    ),
    pytest.param(
        lambda: Adam().load_state_dict({"w": {"m": np.ones(2), "v": np.ones(2), "step": 0}}),
        ValueError,
        ["'step'", "'w'", "int >= 1", "0"],
        id="state-step",
    ),
    pytest.param(
        lambda: Adam().load_state_dict({"w": {"m": np.full(2, np.nan), "v": np.ones(2), "step": 1}}),
        ValueError,
        ["'m'", "'w'", "finite floating-point"],
        id="state-nan",
    ),
    pytest.param(_state_of_another_shape, ValueError, ["'velocity'", "'w'", "(3, 3)", "(2, 2)"], id="state-shape"),
    pytest.param(lambda: RMSProp(lr=0.1, alpha=0.2), TypeError, ["lr", "alpha", "not both"], id="lr-and-alpha"),
    pytest.param(
        lambda: make_optimizer("adamw"), ValueError, ["'adamw'", "sgd, momentum, rmsprop, adam"], id="unknown-optimizer"
    ),
    pytest.param(lambda: Momentum(beta=1.0), ValueError, ["beta", "[0, 1)", "1.0"], id="optimizer-setting"),
    # parameters
    pytest.param(
        lambda: dp.MLP().set_param({"nope": np.zeros(1)}),
        KeyError,
        ["unknown parameter names", "nope", "weight_l1", "gamma_bn1"],
        id="set-param-unknown",
    ),
    pytest.param(
        lambda: dp.MLP().set_param({"weight_l1": np.zeros(1)}),
        ValueError,
        ["'weight_l1'", "(30, 20)", "(1,)"],
        id="set-param-shape",
    ),
    pytest.param(
        lambda: dp.MLP().set_param({"weight_l1": np.full((30, 20), np.nan)}),
        dp.NonFiniteError,
        ["'weight_l1'", "NaN or inf"],
        id="set-param-nan",
    ),
    pytest.param(
        lambda: Net().set_param({"avg_variance_bn1": -np.ones((1, 3))}),
        ValueError,
        ["'avg_variance_bn1'", "variance", "negative"],
        id="set-param-negative-variance",
    ),
    pytest.param(
        lambda: Net().set_param({"batches_bn1": np.full((1, 1), 0.5)}),
        ValueError,
        ["'batches_bn1'", "counts batches", "whole number"],
        id="set-param-fractional-count",
    ),
    # settings of models and layers
    pytest.param(lambda: dp.MLP(eps=np.inf), ValueError, ["eps", "(0, inf)", "inf"], id="eps-inf"),
    pytest.param(lambda: dp.MLP(momentum=True), TypeError, ["momentum", "real number", "bool"], id="momentum-bool"),
    pytest.param(lambda: dp.MLP(batch_norm=1), TypeError, ["batch_norm", "True or False", "int"], id="batch-norm-1"),
    pytest.param(lambda: dp.MLP(renorm=True, rmax=0.9), ValueError, ["rmax", "[1, inf)", "0.9"], id="renorm-rmax"),
    pytest.param(lambda: dp.CNN(renorm=True, dmax=-0.5), ValueError, ["dmax", "[0, inf)", "-0.5"], id="renorm-dmax"),
    pytest.param(
        lambda: dp.MLP(renorm=True, fused=True),
        ValueError,
        ["fused=True", "batch renormalization", "fused=False"],
        id="fused-renorm",
    ),
    pytest.param(
        lambda: dp.MLP(activation="swish"),
        ValueError,
        ["activation", "'swish'", "'tanh'", "'sigmoid'", "'relu'"],
        id="unknown-activation",
    ),
    pytest.param(
        lambda: dp.MLP(init="xavier"), ValueError, ["init", "'xavier'", "'glorot'", "'he'"], id="unknown-init"
    ),
    pytest.param(lambda: dp.MLP(init="normal", init_std=0), ValueError, ["std", "(0, inf)"], id="init-std-0"),
    pytest.param(lambda: dp.MLP(sizes=(30,)), ValueError, ["sizes", "at least an input and an output"], id="sizes"),
    pytest.param(lambda: dp.MLP(sizes=(30, 20.5, 1)), TypeError, ["sizes", "whole numbers", "20.5"], id="sizes-float"),
    pytest.param(lambda: dp.MLP(dtype=int), TypeError, ["dtype", "floating-point", "int64"], id="dtype-int"),
    pytest.param(
        lambda: Net().batch_norm(3, "bnx", eps=-1), ValueError, ["batch norm 'bnx'", "eps", "-1"], id="layer-eps"
    ),
    pytest.param(
        lambda: Net().batch_norm(3, "bnx", activation="swish"),
        ValueError,
        ["batch norm 'bnx'", "activation", "'tanh'", "'relu'"],
        id="layer-activation",
    ),
    pytest.param(lambda: Net().linear(3, 2, "lx", init="xavier"), ValueError, ["init", "'glorot'"], id="linear-init"),
    pytest.param(
        lambda: Net().batch_norm(3, "bn1"), ValueError, ["already in use", "gamma_bn1"], id="layer-name-twice"
    ),
    pytest.param(
        lambda: dp.MLP().record(ROWS, ["bn9"]), ValueError, ["'bn9'", "its layers are", "'l1'", "'bn2'"], id="record"
    ),
    # fit
    pytest.param(_fit(steps=None), ValueError, ["steps or epochs"], id="fit-neither-steps-nor-epochs"),
    pytest.param(_fit(epochs=1), ValueError, ["steps or epochs"], id="fit-steps-and-epochs"),
    pytest.param(_fit(x=np.ones((8, 3))), ValueError, ["training rows", "(n, 30)", "(8, 3)"], id="fit-wrong-width"),
    pytest.param(
        lambda: fit(Net(), np.ones(8), LABELS, Adam(), steps=1, batch_size=4),
        ValueError,
        ["training rows", "2-D", "(8,)"],
        id="fit-rows-not-2-d",
    ),
    pytest.param(lambda: dp.fold_batch_norm(Net()), TypeError, ["fold_batch_norm", "dp.MLP"], id="fold-needs-an-mlp"),
    pytest.param(_fit(steps=True), TypeError, ["steps", "whole number", "bool"], id="fit-steps-bool"),
    pytest.param(_fit(batch_size=2.5), TypeError, ["batch_size", "whole number", "float"], id="fit-batch-size-float"),
    pytest.param(_fit(batch_size=1), ValueError, ["batch_size", "[2, inf)", "1"], id="fit-batch-size-1"),
    pytest.param(_fit(batch_size=50), ValueError, ["batch_size", "8", "50"], id="fit-too-few-rows"),
    pytest.param(_fit(schedule="linear"), ValueError, ["schedule", "'constant'", "'cosine'"], id="fit-schedule"),
    pytest.param(_fit(validation=ROWS), TypeError, ["validation", "(x_val, y_val) pair"], id="fit-validation"),
    pytest.param(_fit(x=np.full((8, 30), np.nan)), dp.NonFiniteError, ["training rows", "NaN or inf"], id="fit-nan"),
    pytest.param(_fit(y=LABELS[:5]), ValueError, ["5 labels", "8 training rows"], id="fit-labels-length"),
    pytest.param(
        _fit(x=ROWS * 1e150, optimizer=lambda: SGD(lr=1e300), steps=3),
        dp.train.Diverged,
        ["diverged at step"],
        id="fit-diverges",
    ),
    # Node
    pytest.param(lambda: dp.Node(1.0, name=3), TypeError, ["name", "str or None", "int"], id="node-name"),
    pytest.param(lambda: dp.Node(dp.Node(1.0)), TypeError, ["already a Node", "Node(node.value)"], id="node-of-node"),
    pytest.param(lambda: dp.Node("a"), TypeError, ["dtype", "must be numeric"], id="node-of-strings"),
    pytest.param(
        _grad_of(_one_vjp_not_a_tuple, 1), TypeError, ["_one_vjp_not_a_tuple", "must return a tuple"], id="vjp-tuple"
    ),
    pytest.param(lambda: _too_few_vjps(1, dp.Node(2.0)), TypeError, ["1 vjps", "2 arguments"], id="vjp-count"),
    pytest.param(_grad_of(_vjp_of_another_shape, 1), ValueError, ["(5, 5)", "(2, 2)"], id="vjp-shape"),
    pytest.param(
        lambda: (dp.Node(np.ones((2, 2)), "a").sum() + dp.Node(np.ones((3, 1)), "a").sum()).grad(1),
        ValueError,
        ["two nodes named 'a'", "(2, 2)", "(3, 1)"],
        id="one-name-two-shapes",
    ),
    pytest.param(lambda: dp.Node(1.0).leaky_relu(slope="a"), TypeError, ["slope", "real number"], id="slope-str"),
    pytest.param(lambda: dp.Node(1.0).elu(alpha=-1), ValueError, ["alpha", ">= 0", "-1"], id="alpha-negative"),
    pytest.param(
        lambda: dp.Node(np.ones((2, 3))) @ dp.Node(np.ones((2, 3))),
        ValueError,
        ["dot", "(2, 3)", "3 columns", "2 rows"],
        id="matmul-shapes",
    ),
    pytest.param(
        lambda: dp.Node(np.ones((2, 3))) @ np.ones((3, 4, 5)), ValueError, ["dot", "(3, 4, 5)"], id="matmul-3-d"
    ),
    pytest.param(
        lambda: dp.ops.matmul(np.ones(3), np.ones((3, 2))),
        ValueError,
        ["dot", "(3,)", "2 or more dimensions"],
        id="matmul-primitive-of-a-vector",
    ),
    pytest.param(lambda: dp.dot(np.ones((2, 3)), np.ones((3, 2))), TypeError, ["at least one Node"], id="no-node"),
    pytest.param(_seed(dp.Node(1.0)), TypeError, ["seed", "not a Node"], id="grad-seed-node"),
    pytest.param(_seed(np.array(["a"])), TypeError, ["seed", "numeric"], id="grad-seed-strings"),
    pytest.param(_seed(np.ones((3, 3))), ValueError, ["seed", "(3, 3)", "(2, 2)"], id="grad-seed-shape"),
    pytest.param(
        lambda: dp.Node(np.ones((2, 3))) + dp.Node(np.ones((4, 5))),
        ValueError,
        ["add", "(2, 3)", "(4, 5)", "broadcast"],
        id="shapes-do-not-broadcast",
    ),
]


@pytest.mark.parametrize(("call", "error", "words"), PROMISES)
def test_a_bad_input_is_refused_with_a_message_that_names_what_is_wrong(call, error, words):
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    missing = [word for word in words if word not in message]
    assert not missing, f"{missing} not in the message {message!r}"


def test_a_variance_without_degrees_of_freedom_warns_with_the_count():
    with pytest.warns(RuntimeWarning, match=r"^var: 1 values and ddof=1 leave no degrees of freedom: NaN$"):
        dp.Node(np.ones((1, 3))).var(axis=0, ddof=1)
