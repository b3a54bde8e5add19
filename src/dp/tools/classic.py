"""The original dp's high-level API on dp's engine: `Model` and the hyperparam-dict optimizers.

The course "Best Practices in Deep Learning" (deep.TEACHING) teaches with the original
``dp.py`` (Herta, Strohmenger, Fischer, Oktay, "DP: A lightweight library for teaching
differentiable programming", 2019). Its notebooks write models and train them like this,
and the code runs here unchanged::

    from dp import Model, SGD

    class Net(Model):
        def __init__(self):
            super().__init__()
            self.h = self.ReLu_Layer(64, 32, "h")          # h_weight, h_bias
            self.out = self.Linear_Layer(32, 10, "out")    # out_weight, out_bias

        def forward(self, x):
            return self.out(self.h(x))                     # logits

        def loss(self, x, y):                              # y one-hot
            log_softmax = self.forward(x).log_softmax()
            return -(y * log_softmax).sum() / x.shape[0]

    optimizer = SGD(Net(), x_train, y_train, hyperparam={"alpha": 0.01}, batch_size=32)
    optimizer.train(steps=1000, print_each=100)            # prints step and loss, returns the last loss

The model keeps dp's design: its state is one dict, ``model.params``, which the layers read
when they run and the optimizers replace entries of (`dp.optim.Optimizer.step`, with its
checks). There is no global registry of named Nodes: the original's ``Node.get_param()``
and ``Node.set_param()`` are ``model.get_param()`` and ``model.set_param()`` here.

The update rules are the original's (``SGD_Momentum`` averages, ``RMS_Prop`` puts epsilon
inside the square root, beta2 is 0.99), except where the original was wrong: its
``RMS_Prop`` compounded its bias correction and its ``Adam`` raised ``NotImplementedError``.
docs/classic.md lists every call, what dp does for it, and every deliberate difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from dp import checks, optim
from dp.checks import OrNone, Real, Whole
from dp.nn.init import weights as init_weights
from dp.nn.inputs import checked_input
from dp.nn.linear import linear
from dp.nn.module import NeuralNode
from dp.node import Node

SEED = OrNone(Whole("[0, inf)"))


class Model(NeuralNode):
    """The original dp's base class of networks.

    A subclass calls ``super().__init__()``, makes its layers with `Linear_Layer` and
    `ReLu_Layer`, and defines ``forward(x)`` and ``loss(x, y)`` (both abstract here). An
    optimizer of this module trains it through `get_grad`.

    It is a `dp.NeuralNode`, so dp's other layer factories (``self.batch_norm``,
    ``self.layer_norm``, ``self.dropout``, ...) work in it too, and ``eval()`` / ``train()``
    switch their mode. Initial weights come from ``seed``, or, as in the original, from
    NumPy's global random state, so ``np.random.seed(s)`` before building the model makes
    a notebook reproducible.
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(SEED(seed, "seed"))
        if seed is None:  # the global state decides, as np.random.uniform did in the original
            self.rng = np.random.default_rng(np.random.randint(2**31))

    # ----- layers -----

    def Linear_Layer(self, fan_in: int, fan_out: int, name: str | None = None) -> ClassicLayer:
        """Register ``{name}_weight`` (fan_in, fan_out) and ``{name}_bias`` (1, fan_out); return
        ``layer(x) = x @ weight + bias`` for x of shape (n, fan_in) (a Node or an array).

        Initialized as in the original: weights He-uniform, U(-a, a) with a = sqrt(6 / fan_in)
        (`dp.init`, "he_uniform"), biases U(-b, b) with b = 1 / sqrt(fan_in).

        Raises ``TypeError`` for a name that is not a str, ``ValueError`` for a name already
        in use or sizes that are not whole numbers >= 1.
        """
        return self._layer(fan_in, fan_out, name, activation=None)

    def ReLu_Layer(self, fan_in: int, fan_out: int, name: str | None = None) -> ClassicLayer:
        """`Linear_Layer` followed by ReLU: ``layer(x) = relu(x @ weight + bias)``."""
        return self._layer(fan_in, fan_out, name, activation="relu")

    def _layer(self, fan_in: int, fan_out: int, name: Any, activation: str | None) -> ClassicLayer:
        if "params" not in vars(self):
            raise TypeError(f"{type(self).__name__}.__init__ must call super().__init__() before making layers")
        if not isinstance(name, str):
            raise TypeError(f"a layer needs a name (a str), for its parameters {{name}}_weight and _bias; got {name!r}")
        fan_in, fan_out = (Whole("[1, inf)")(n, what) for n, what in ((fan_in, "fan_in"), (fan_out, "fan_out")))
        rng = self._generator()
        weight = init_weights("he_uniform", rng, fan_in, fan_out)
        bound = 1 / math.sqrt(fan_in)
        self._register({f"{name}_weight": weight, f"{name}_bias": rng.uniform(-bound, bound, (1, fan_out))})
        return ClassicLayer(self, name, fan_in, activation)

    # ----- what a subclass defines -----

    def forward(self, x: Any, train: bool | None = None) -> Node:
        """The network's output for a batch x (a Node); subclasses define ``forward(x)``."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def loss(self, x: Any, y: Any, train: bool | None = None, reduction: str = "sum") -> Node:
        """The loss of a batch (Nodes x and y) as a Node; subclasses define ``loss(x, y)``."""
        raise NotImplementedError(f"{type(self).__name__} must define loss(x, y)")

    # ----- what the optimizers use -----

    def get_grad(self, x: Any, y: Any) -> tuple[dict[str, np.ndarray], Node]:
        """``(grads, loss)``: the gradients ``{name: ndarray}`` of ``loss(x, y)`` with respect to
        the learnable parameters, and the loss Node. As in the original, the backward pass
        starts from ones (``loss.grad(np.ones_like(loss.value))``), so a loss of several
        values is differentiated as their sum."""
        loss = self.loss(x, y)
        if not isinstance(loss, Node):
            raise TypeError(f"loss(x, y) must return a Node, not {checks.describe(loss)}")
        return loss.grad(np.ones_like(loss.value)), loss

    def predict_proba(self, x: Any) -> np.ndarray:
        """``forward(x)`` in eval mode (batch norm uses its averages, dropout is off), as an
        ndarray. ``predict(x)`` gives the index of the largest output of each row."""
        mode = self.training
        self.eval()
        try:
            return self.forward(x).value
        finally:
            self.train(mode)


class ClassicLayer:
    """A layer of `Model`: ``x @ {name}_weight + {name}_bias``, then ReLU for `Model.ReLu_Layer`.
    Like dp's layers, it reads its parameters from the model's ``params`` when it runs."""

    def __init__(self, model: Model, name: str, fan_in: int, activation: str | None) -> None:
        self.model, self.fan_in, self.activation, self.what = model, fan_in, activation, f"layer {name!r}"
        self.weight_key, self.bias_key = f"{name}_weight", f"{name}_bias"

    def __call__(self, x: Any) -> Node:
        """The layer on a batch x: (n, fan_in), numeric and finite (else ``ValueError``)."""
        node = checked_input(x, self.fan_in, self.what, self.model.dtype)
        params = self.model.params
        weight = Node(params[self.weight_key], self.weight_key)
        y = linear(node, weight, Node(params[self.bias_key], self.bias_key))
        return y.relu() if self.activation == "relu" else y


# ----- the optimizers: the original constructor and train(), dp's checked step -----


class Optimizer(optim.Optimizer):
    """The original dp's optimizer: a model, its training data, a ``hyperparam`` dict.

    ``Optimizer(model, x_train, y_train, hyperparam={...}, batch_size=128)``, then
    ``train(steps, print_each)``. ``hyperparam`` holds some of the class's keys (the
    others keep their defaults); an unknown key is an error, not silently ignored. The
    checked, all-or-nothing update is `dp.optim.Optimizer.step`; a subclass declares its
    ``defaults`` and ``constraints`` and defines ``_update``. ``seed`` (keyword only) seeds
    the batches; without it they come from NumPy's global random state, as in the original.
    """

    defaults: ClassVar[dict[str, float]] = {"alpha": 0.001}
    constraints: ClassVar[dict[str, Any]] = {"alpha": Real("(0, inf)")}
    alpha: float  # each hyperparameter is an attribute too, set from ``hyperparam``

    @classmethod
    def other_convention(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """What to say when the arguments are PyTorch's (``lr=``, a number first, or no model):
        ``SGD(lr=0.01)`` is `dp.optim`'s."""
        pytorch_style = {"lr", "momentum", "betas", "eps", "weight_decay", "alpha"} & set(kwargs)
        if not (pytorch_style or (args and isinstance(args[0], (int, float))) or not (args or "model" in kwargs)):
            return None
        equivalent = {v: k for k, v in optim.CLASSIC_EQUIVALENTS.items()}.get(cls.__name__, "SGD")
        return (
            f"dp.{cls.__name__} is the original course's optimizer: {cls.__name__}(model, x_train, y_train, "
            f"hyperparam={{'alpha': ...}}).train(steps). PyTorch's convention, {equivalent}(lr=...) with "
            f"optimizer.step(model.params, grads) or dp.train.fit, is dp.optim.{equivalent}"
        )

    def __init__(
        self,
        model: Model,
        x_train: Any = None,
        y_train: Any = None,
        hyperparam: Mapping[str, float] | None = None,
        batch_size: int = 128,
        *,
        seed: int | None = None,
    ) -> None:
        if not callable(getattr(model, "get_grad", None)):
            raise TypeError(f"model must be a dp.Model (with get_grad(x, y)), not {checks.describe(model)}")
        self.model = model
        self.x_train, self.y_train = training_data(x_train, y_train)
        self.batch_size = Whole("[1, inf)")(batch_size, "batch_size")
        self.hyperparam = self._checked_hyperparam(hyperparam)
        for key, value in self.hyperparam.items():
            setattr(self, key, value)  # self.alpha, self.beta, ...: what `config` and `_update` read
        seed = SEED(seed, "seed")
        self.rng = np.random.default_rng(np.random.randint(2**31) if seed is None else seed)
        # The base class's state, set here: its __init__ takes dp's keyword arguments, not a hyperparam dict.
        self.lr, self.weight_decay, self.decoupled = self.hyperparam["alpha"], 0.0, False
        self.state: dict[str, optim.State] = {}

    def _checked_hyperparam(self, hyperparam: Mapping[str, float] | None) -> dict[str, float]:
        """The defaults, updated with ``hyperparam``'s checked values."""
        given = {} if hyperparam is None else hyperparam
        if not isinstance(given, Mapping):
            raise TypeError(f"hyperparam must be a dict, not {checks.describe(given)}")
        unknown = [key for key in given if key not in self.defaults]
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"its hyperparam keys and defaults are {self.defaults}"
            )
        return {**self.defaults, **checks.checked(self.constraints, **given)}

    def random_batch(self) -> tuple[Node, Node]:
        """``batch_size`` rows of the training data drawn at random, with replacement (as in
        the original), as Nodes ``(x, y)``."""
        x, y = self._data()
        rows = self.rng.integers(0, len(x), size=self.batch_size)
        return Node(x[rows]), Node(y[rows])

    def train(self, steps: int = 1000, print_each: int = 100) -> np.ndarray:
        """Take ``steps`` steps, each on a `random_batch`: ``model.get_grad``, then this
        optimizer's update of ``model.params``. Prints a table of the step and the loss (the
        batch's, before its update) at step 1 and every ``print_each`` steps; returns the last
        loss, as the original did (the last batch's ``loss.value``, an ndarray).

        The averages of `SGD_Momentum`, `RMS_Prop` and `Adam` carry over to the next call.
        Raises ``ValueError`` without training data, for steps or print_each < 1, and what
        the model or `dp.optim.Optimizer.step` raise (NaN gradients, say), before changing
        the parameters of that step.
        """
        steps = Whole("[1, inf)")(steps, "steps")
        print_each = Whole("[1, inf)")(print_each, "print_each")
        self._data()
        print("iteration\tloss")
        for i in range(1, steps + 1):
            x, y = self.random_batch()
            grads, loss = self.model.get_grad(x, y)
            if i % print_each == 0 or i == 1:
                print(f"{i}\t{loss.value.sum():.6g}")
            self.step(self.model.params, grads)
        return loss.value.copy()

    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        if self.x_train is None or self.y_train is None:
            raise ValueError(f"{type(self).__name__} has no training data: give it x_train and y_train")
        return self.x_train, self.y_train


def training_data(x: Any, y: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``x_train`` and ``y_train`` checked: numeric, finite, x 2-D, one label row per row of x.
    Both None (an optimizer used through ``step`` only) is allowed."""
    if x is None and y is None:
        return None, None
    x = checks.finite(checks.numeric_array(x, "x_train"), "x_train")
    y = checks.finite(checks.numeric_array(y, "y_train"), "y_train")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_train must be a 2-D array (rows, features) with rows, got shape {x.shape}")
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(f"y_train must have one row per row of x_train ({len(x)}), got shape {y.shape}")
    return x, y


class SGD(Optimizer):
    """Gradient descent, the original's ``SGD``: ``p <- p - alpha * g``.

    hyperparam: ``alpha`` > 0, default 0.001.
    """

    def _update(self, p: np.ndarray, g: np.ndarray, state: optim.State | None) -> tuple[np.ndarray, optim.State]:
        return p - self.alpha * g, {}


class SGD_Momentum(Optimizer):
    """Momentum as the original's ``SGD_Momentum``: an exponential average of the gradients::

        v <- beta * v + (1 - beta) * g      (v starts at 0; no bias correction, as in the original)
        p <- p - alpha * v

    Not `dp.optim.Momentum`, PyTorch's heavy ball (``v <- beta v + g``): at a constant
    gradient g this average tends to g, the heavy ball's velocity to g / (1 - beta), so for
    the same alpha its steps are 1 - beta times as large (10x smaller for beta = 0.9).

    hyperparam: ``alpha`` > 0, default 0.001; ``beta`` in [0, 1), default 0.9.
    """

    defaults = {"alpha": 0.001, "beta": 0.9}
    beta: float
    constraints = {"alpha": Real("(0, inf)"), "beta": Real("[0, 1)")}
    slots = ("velocity",)

    def _update(self, p: np.ndarray, g: np.ndarray, state: optim.State | None) -> tuple[np.ndarray, optim.State]:
        v = (1 - self.beta) * g
        if state is not None:
            v += self.beta * state["velocity"]  # v is a new array: adding in place is safe
        return (p - self.alpha * v).astype(p.dtype, copy=False), {"velocity": v}


class RMS_Prop(Optimizer):
    """RMSProp as the original's ``RMS_Prop``, with its bias correction fixed; t counts steps from 1::

        s <- beta2 * s + (1 - beta2) * g**2         (s starts at 0)
        shat = s / (1 - beta2**t)
        p <- p - alpha * g / sqrt(shat + epsilon)   (epsilon inside the square root)

    The original divided ``s`` itself by ``1 - beta2**t`` and kept the result, so every step
    divided the stored average again and the corrections multiplied: with a constant
    gradient g it held 50 g**2 after two steps, 1,700 g**2 after three and 3e11 g**2 after
    ten, where it should hold g**2; the steps shrank 7x, 40x, 560,000x, and training all but
    stopped. Here the corrected value is used for the step only (Kingma & Ba's correction).

    hyperparam: ``alpha`` > 0, default 0.001; ``beta2`` in [0, 1), default 0.99;
    ``epsilon`` > 0, default 10e-8 (that is 1e-7, written as in the original).
    """

    defaults = {"alpha": 0.001, "beta2": 0.99, "epsilon": 10e-8}
    beta2: float
    epsilon: float
    constraints = {"alpha": Real("(0, inf)"), "beta2": Real("[0, 1)"), "epsilon": Real("(0, inf)")}
    slots = ("square_average", "step")

    def _update(self, p: np.ndarray, g: np.ndarray, state: optim.State | None) -> tuple[np.ndarray, optim.State]:
        s = (1 - self.beta2) * (g * g)
        t = 1
        if state is not None:
            s += self.beta2 * state["square_average"]
            t = state["step"] + 1
        s_hat = s / (1 - self.beta2**t)
        new = p - self.alpha * g / np.sqrt(s_hat + self.epsilon)
        return new.astype(p.dtype, copy=False), {"square_average": s, "step": t}


class Adam(Optimizer):
    """Adam with the original's hyperparameters and conventions (the original raised
    ``NotImplementedError``); t counts steps from 1::

        m <- beta1 * m + (1 - beta1) * g            (m and v start at 0)
        v <- beta2 * v + (1 - beta2) * g**2
        mhat = m / (1 - beta1**t)      vhat = v / (1 - beta2**t)
        p <- p - alpha * mhat / sqrt(vhat + epsilon)   (epsilon inside the root, as its RMS_Prop)

    Both averages are bias-corrected, as in Kingma & Ba's Algorithm 1 (the original's draft
    corrected only v, in place, as its RMS_Prop did).

    hyperparam: ``alpha`` > 0, default 0.001; ``beta1`` in [0, 1), default 0.9; ``beta2``
    in [0, 1), default 0.99; ``epsilon`` > 0, default 10e-8 (1e-7).
    """

    defaults = {"alpha": 0.001, "beta1": 0.9, "beta2": 0.99, "epsilon": 10e-8}
    beta1: float
    beta2: float
    epsilon: float
    constraints = {
        "alpha": Real("(0, inf)"),
        "beta1": Real("[0, 1)"),
        "beta2": Real("[0, 1)"),
        "epsilon": Real("(0, inf)"),
    }
    slots = ("m", "v", "step")

    def _update(self, p: np.ndarray, g: np.ndarray, state: optim.State | None) -> tuple[np.ndarray, optim.State]:
        m = (1 - self.beta1) * g
        v = (1 - self.beta2) * (g * g)
        t = 1
        if state is not None:
            m += self.beta1 * state["m"]
            v += self.beta2 * state["v"]
            t = state["step"] + 1
        m_hat, v_hat = m / (1 - self.beta1**t), v / (1 - self.beta2**t)
        new = p - self.alpha * m_hat / np.sqrt(v_hat + self.epsilon)
        return new.astype(p.dtype, copy=False), {"m": m, "v": v, "step": t}


# The original's namespace: dp.optimizer.SGD (its Adam was left out of it, untested; ours is in).
optimizer = SimpleNamespace(SGD=SGD, SGD_Momentum=SGD_Momentum, RMS_Prop=RMS_Prop, Adam=Adam)


class Helper:
    """The original's helpers."""

    @staticmethod
    def one_hot_encoding(y: Any, nb_classes: int) -> np.ndarray:
        """Class labels y ((n,) or (n, 1), whole numbers in [0, nb_classes)) as one-hot int rows
        (n, nb_classes). ``ValueError`` for labels outside the classes."""
        nb_classes = Whole("[1, inf)")(nb_classes, "nb_classes")
        labels = checks.finite(checks.numeric_array(y, "y"), "y")
        if labels.ndim == 0:
            raise ValueError("y must hold one label per row, not a single number")
        return checks.one_hot_labels(labels, nb_classes).astype(np.int64)
