"""Optimizers: `SGD`, `Momentum`, `RMSProp` and `Adam`, each updating the ``params`` dict.

The loop they close (the one in the `dp` package docstring)::

    grads = model.loss(x, y).grad(1)       # {name: gradient}, learnable entries only
    optimizer.step(model.params, grads)    # params[name] <- a new array

Contract shared by every optimizer:

- ``step`` updates exactly the keys present in ``grads``. Batch-norm moving
  averages never have a gradient, so they are never touched.
- It *replaces* arrays (``params[k] = new``) and never writes into the old ones:
  other code keeps references to old arrays (`dp.train.train_step`'s rollback
  point, a graph built before the step) and relies on them not changing.
- It is all or nothing: every gradient is checked (known key, same shape as its
  parameter, finite) and every new value computed before anything is stored;
  on any error ``params`` and the optimizer's state are exactly as before.
- A parameter keeps its dtype: a float32 parameter stays float32, whatever the
  gradient's dtype.
- State (velocities, averages, step counts) is kept per key; ``state_dict()`` /
  ``load_state_dict()`` copy it out and in, and ``config`` holds the constructor
  arguments, so ``make_optimizer(opt.name, **opt.config)`` rebuilds the optimizer.

Weight decay, for every optimizer, in the two forms PyTorch has (``weight_decay=``):

- L2 (the default, ``decoupled=False``): ``weight_decay * p`` is added to the gradient
  before the rule sees it, as the gradient of ``weight_decay / 2 * sum(p**2)`` added to
  the loss. PyTorch's ``SGD``, ``RMSprop`` and ``Adam(weight_decay=...)``. In RMSProp
  and Adam the decay is then divided by the running root mean square like the gradient,
  so parameters with large gradients are decayed less.
- Decoupled (``decoupled=True``): the rule sees the plain gradient, and
  ``lr * weight_decay * p`` is subtracted from its result (Loshchilov & Hutter, 2019).
  ``Adam(weight_decay=w, decoupled=True)`` is PyTorch's ``AdamW(weight_decay=w)``. For
  SGD the two forms are the same update.

``alpha`` is accepted as another name of ``lr`` (the papers' and the original dp's). The
original dp's optimizers, with their own constructor and update rules, are `dp.tools.classic`'s.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar

import numpy as np

from dp.checks import Flag, NonFiniteError, Real, all_finite, checked, describe

State = dict[str, Any]  # one parameter's state: slot name -> ndarray (or int, for Adam's step count)

WEIGHT_DECAY_CONSTRAINTS: dict[str, Any] = {"weight_decay": Real("[0, inf)"), "decoupled": Flag()}


class Optimizer:
    """Base class: the learning rate, per-key state, the checked all-or-nothing `step`.

    A subclass sets ``name``, ``default_lr``, ``slots`` (the names of its per-key
    state) and ``constraints`` (its hyperparameters, lr first, as `dp.checks`
    constraints, which its ``__init__`` checks them by) and defines ``_update``.

    ``weight_decay`` >= 0 (default 0, none) and ``decoupled`` (default False: L2 added
    to the gradient; True: decoupled, AdamW-style) are every optimizer's: see the module
    docstring.
    """

    name: ClassVar[str] = ""
    default_lr: ClassVar[float] = 0.01
    slots: ClassVar[tuple[str, ...]] = ()
    constraints: ClassVar[dict[str, Any]] = {"lr": Real("(0, inf)")}

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Refuse a call in the other convention with the name of the class that takes it
        (`dp.optim`'s optimizers and the original course's share names: `other_convention`)."""
        mistake = cls.other_convention(args, kwargs)
        if mistake is not None:
            raise TypeError(mistake)
        return super().__new__(cls)

    @classmethod
    def other_convention(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """What to say when the arguments are the original course's (a model, training data, a
        ``hyperparam`` dict), or None: ``dp.SGD(model, x, y, hyperparam)`` is `dp.tools.classic`'s."""
        # The original's calls start with a model or give a hyperparam dict; several numbers
        # (Momentum(0.1, 0.9), Adam(1e-3, 0.9, 0.999)) are this class's own positional arguments.
        if not ("hyperparam" in kwargs or (args and hasattr(args[0], "params"))):
            return None
        classic = CLASSIC_EQUIVALENTS.get(cls.__name__, "SGD")
        return (
            f"dp.optim.{cls.__name__} follows PyTorch: {cls.__name__}(lr=...), then optimizer.step(model.params, "
            f"grads) or dp.train.fit(model, x, y, optimizer). The original course's {classic}(model, x_train, "
            f"y_train, hyperparam={{...}}) is dp.{classic}"
        )

    def __init__(
        self,
        lr: float | None = None,
        *,
        alpha: float | None = None,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        if lr is not None and alpha is not None:
            raise TypeError("give the learning rate as lr or as alpha (its other name), not both")
        chosen = lr if lr is not None else alpha if alpha is not None else self.default_lr
        self.lr: float = checked(self.constraints, lr=chosen)["lr"]
        decay = checked(WEIGHT_DECAY_CONSTRAINTS, weight_decay=weight_decay, decoupled=decoupled)
        self.weight_decay: float = decay["weight_decay"]
        self.decoupled: bool = decay["decoupled"]
        self.state: dict[str, State] = {}

    @property
    def config(self) -> dict[str, float]:
        """The constructor arguments: ``type(self)(**self.config)`` is a fresh copy. The
        weight-decay settings appear only when there is weight decay, so an optimizer without
        it has the config it had before weight decay existed (and old checkpoints match)."""
        config = {name: getattr(self, name) for name in self.constraints}
        if self.weight_decay:
            config.update(weight_decay=self.weight_decay, decoupled=self.decoupled)
        return config

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({arguments})"

    def step(self, params: MutableMapping[str, np.ndarray], grads: Mapping[str, Any]) -> None:
        """Update ``params[k]`` for every key ``k`` of ``grads``, by this optimizer's rule.

        Each ``params[k]`` is replaced by a new array of the same shape and dtype;
        keys absent from ``grads`` are left alone (the same objects).

        Raises, before changing anything (params and optimizer state stay exactly
        as they were): ``KeyError`` naming the keys of ``grads`` that are not in
        ``params``; ``TypeError`` for a parameter that is not a floating-point array
        or a gradient that is not numeric; ``ValueError`` naming the key and both
        shapes when a gradient's shape differs from its parameter's (no
        broadcasting), or when this optimizer's saved state for a key has another
        shape; `dp.NonFiniteError` (a ``ValueError``) naming the keys whose gradients
        hold NaN or inf, or whose update would overflow the parameter or the state.
        """
        self._store(params, self._checked(params, grads))

    def _store(self, params: MutableMapping[str, np.ndarray], gradients: Mapping[str, np.ndarray]) -> None:
        """Compute every new value and state first and store them at the end: an error halfway
        (even a floating-point one) must not leave some keys updated and others not."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked on the results, below
            results = {k: self._decayed_update(params[k], g, self.state.get(k)) for k, g in gradients.items()}
        # One look at the results serves for the gradients too: a NaN or inf gradient makes its
        # update NaN or inf under every rule here, so the gradients are looked at only then, to
        # say which was the cause. Finite gradients can still overflow (a huge lr, or g**2 in float32).
        overflowed = sorted(k for k, (value, state) in results.items() if not _all_finite(value, *state.values()))
        if overflowed:
            raise _not_finite(overflowed, gradients)
        # Commit in two calls that a Ctrl-C cannot split: the state as a new dict (never written
        # into, so that dp.train can keep the old one to put back), the parameters in one update.
        new_state = {**self.state, **{k: state for k, (_, state) in results.items() if state}}
        params.update({k: value for k, (value, _) in results.items()})
        self.state = new_state

    def _update(self, p: np.ndarray, g: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """The new value of one parameter and its new state; must not modify ``p``, ``g`` or ``state``."""
        raise NotImplementedError

    def _decayed_update(self, p: np.ndarray, g: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """`_update` with this optimizer's weight decay: L2 changes the gradient the rule sees,
        decoupled decay changes the rule's result (see the module docstring)."""
        if not self.weight_decay:
            return self._update(p, g, state)
        if not self.decoupled:
            return self._update(p, g + self.weight_decay * p, state)
        new, new_state = self._update(p, g, state)
        return (new - (self.lr * self.weight_decay) * p).astype(p.dtype, copy=False), new_state

    def _checked(self, params: Mapping[str, np.ndarray], grads: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The gradients as arrays of their parameters' dtypes, after every check of `step`."""
        unknown = sorted(set(grads) - set(params))
        if unknown:
            raise KeyError(f"gradients for unknown parameters {unknown}; the parameters are {sorted(params)}")
        return {k: self._gradient(k, params[k], g) for k, g in grads.items()}

    def _gradient(self, k: str, p: Any, g: Any) -> np.ndarray:
        """The gradient ``g`` of parameter ``k`` as an array of the dtype of its value ``p``,
        after the checks of `step` but finiteness (`_store` looks at that)."""
        fits = type(g) is np.ndarray and type(p) is np.ndarray and g.dtype is p.dtype and g.shape == p.shape
        if fits and p.dtype.kind == "f":  # what dp's own grad() hands back: nothing to convert
            self._require_state_fits(k, p)
            return g
        if not (isinstance(p, np.ndarray) and p.dtype.kind == "f"):
            raise TypeError(f"parameter {k!r} must be a floating-point ndarray, not {describe(p)}")
        g = np.asarray(g)
        if g.dtype.kind not in "biuf":
            raise TypeError(f"the gradient of {k!r} must be numeric, not {g.dtype}")
        if g.shape != p.shape:
            raise ValueError(f"the gradient of {k!r} has shape {g.shape}, but the parameter has shape {p.shape}")
        self._require_state_fits(k, p)
        with np.errstate(over="ignore"):  # a float64 gradient too large for float32 becomes inf: refused by name
            return g.astype(p.dtype, copy=False)  # the update is computed in the parameter's dtype

    def _require_state_fits(self, k: str, p: np.ndarray) -> None:
        """Raise ``ValueError`` when this optimizer's saved state for ``k`` has another shape than its value ``p``."""
        for slot, value in self.state.get(k, {}).items():
            if isinstance(value, np.ndarray) and value.shape != p.shape:
                raise ValueError(
                    f"this optimizer's {slot!r} for {k!r} has shape {value.shape}, but the parameter has "
                    f"shape {p.shape}: the state was loaded for other parameters"
                )

    # ----- state -----

    def state_dict(self) -> dict[str, State]:
        """A copy of the per-key state: ``{param name: {slot: ndarray or int}}``.

        Slots: none for SGD; ``velocity`` for Momentum; ``square_average`` for
        RMSProp; ``m``, ``v`` (arrays) and ``step`` (an int >= 1) for Adam. Keys
        appear once they have had a step. Hyperparameters are in ``config``.
        """
        return {k: _copy_state(s) for k, s in self.state.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the per-key state with a copy of ``state`` (as `state_dict` returns it).

        Raises ``ValueError`` (and changes nothing) when a key's slots are not
        exactly this optimizer's, an array slot is not a finite floating-point
        array, or a step count is not an int >= 1. Shapes are checked against the
        parameters at the next `step`.
        """
        new = {}
        for k, slots in state.items():
            if set(slots) != set(self.slots):
                raise ValueError(
                    f"state for {k!r} has slots {sorted(slots)}, but {type(self).__name__} keeps {sorted(self.slots)}"
                )
            new[k] = {slot: _state_value(k, slot, slots[slot]) for slot in self.slots}
        self.state = new


class SGD(Optimizer):
    """Plain gradient descent: ``p <- p - lr * g``. No state.

    ``lr`` (alias ``alpha``) > 0, default 0.01; ``weight_decay``, ``decoupled``: see the
    module docstring (the two forms give the same update here).
    """

    name = "sgd"

    def _update(self, p: np.ndarray, g: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        step = self.lr * g
        return np.subtract(p, step, out=step), {}  # p - lr * g, written over lr * g: one new array, not two


class Momentum(Optimizer):
    """Gradient descent with classic (heavy-ball) momentum, PyTorch's convention::

        v <- beta * v + g          (v starts at 0, so the first step is plain SGD)
        p <- p - lr * v

    The learning rate multiplies the velocity, not the gradient inside it (the
    other common convention, ``v <- beta v + lr g; p <- p - v``, matches this one
    only while lr is constant). ``lr`` (alias ``alpha``) > 0, default 0.01;
    ``beta`` in [0, 1), default 0.9; ``weight_decay``, ``decoupled``: see the module
    docstring. State: ``velocity`` per key.

    The original dp's ``SGD_Momentum`` is another rule, an average (`dp.tools.classic`).
    """

    name = "momentum"
    slots = ("velocity",)
    constraints = {**Optimizer.constraints, "beta": Real("[0, 1)")}

    def __init__(
        self,
        lr: float | None = None,
        beta: float = 0.9,
        *,
        alpha: float | None = None,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(lr, alpha=alpha, weight_decay=weight_decay, decoupled=decoupled)
        self.beta: float = checked(self.constraints, beta=beta)["beta"]

    def _update(self, p: np.ndarray, g: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        # A copy on the first step: g may be the caller's array, and the state must not alias it.
        v = g.copy() if state is None else self.beta * state["velocity"] + g
        return (p - self.lr * v).astype(p.dtype, copy=False), {"velocity": v}


class RMSProp(Optimizer):
    """RMSProp: divide each step by a running root mean square of the gradient::

        s <- beta * s + (1 - beta) * g**2          (s starts at 0)
        p <- p - lr * g / (sqrt(s) + epsilon)

    epsilon is added outside the square root, as in PyTorch. ``lr`` (alias
    ``alpha``) > 0, default 0.001; ``beta`` in [0, 1), default 0.9; ``epsilon`` > 0,
    default 1e-8; ``weight_decay``, ``decoupled``: see the module docstring. State:
    ``square_average`` per key. (The original dp's ``RMS_Prop`` puts epsilon inside the
    square root, with beta2 = 0.99: `dp.tools.classic`.)
    """

    name = "rmsprop"
    default_lr = 0.001
    slots = ("square_average",)
    constraints = {**Optimizer.constraints, "beta": Real("[0, 1)"), "epsilon": Real("(0, inf)")}

    def __init__(
        self,
        lr: float | None = None,
        beta: float = 0.9,
        epsilon: float = 1e-8,
        *,
        alpha: float | None = None,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(lr, alpha=alpha, weight_decay=weight_decay, decoupled=decoupled)
        self.beta, self.epsilon = checked(self.constraints, beta=beta, epsilon=epsilon).values()

    def _update(self, p: np.ndarray, g: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        s = (1 - self.beta) * (g * g)
        if state is not None:
            s += self.beta * state["square_average"]  # s is a new array: adding in place is safe
        return (p - self.lr * g / (np.sqrt(s) + self.epsilon)).astype(p.dtype, copy=False), {"square_average": s}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with bias correction; t counts this key's steps, from 1::

        m <- beta1 * m + (1 - beta1) * g           (m and v start at 0)
        v <- beta2 * v + (1 - beta2) * g**2
        mhat = m / (1 - beta1**t)        vhat = v / (1 - beta2**t)
        p <- p - lr * mhat / (sqrt(vhat) + epsilon)

    ``lr`` (alias ``alpha``) > 0, default 0.001; ``beta1`` and ``beta2`` in [0, 1),
    defaults 0.9 and 0.999; ``epsilon`` > 0, default 1e-8; ``weight_decay`` and
    ``decoupled``: see the module docstring (``decoupled=True`` is AdamW). State per key: ``m``,
    ``v`` and ``step`` (t). Counting t per key, not globally, keeps the bias
    correction right for a parameter that only starts receiving gradients later.
    """

    name = "adam"
    default_lr = 0.001
    slots = ("m", "v", "step")
    constraints = {
        **Optimizer.constraints,
        "beta1": Real("[0, 1)"),
        "beta2": Real("[0, 1)"),
        "epsilon": Real("(0, inf)"),
    }

    def __init__(
        self,
        lr: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        *,
        alpha: float | None = None,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(lr, alpha=alpha, weight_decay=weight_decay, decoupled=decoupled)
        checked_values = checked(self.constraints, beta1=beta1, beta2=beta2, epsilon=epsilon)
        self.beta1, self.beta2, self.epsilon = checked_values.values()

    def _update(self, p: np.ndarray, g: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        m = (1 - self.beta1) * g
        v = (1 - self.beta2) * (g * g)
        t = 1
        if state is not None:
            m += self.beta1 * state["m"]  # m and v are new arrays: adding in place is safe
            v += self.beta2 * state["v"]
            t = state["step"] + 1
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        new = p - self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)
        return new.astype(p.dtype, copy=False), {"m": m, "v": v, "step": t}


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSProp, "adam": Adam}
CLASSIC_NAMES = ("sgd_momentum", "rms_prop")  # not dp.optim's: other rules, in dp.tools.classic
# dp.optim's class -> the original course's optimizer of the same idea (top level: dp.SGD, ...)
CLASSIC_EQUIVALENTS = {"SGD": "SGD", "Momentum": "SGD_Momentum", "RMSProp": "RMS_Prop", "Adam": "Adam"}


def make_optimizer(name: str, **hyperparameters: Any) -> Optimizer:
    """The optimizer called ``name`` (case-insensitive: "sgd", "momentum", "rmsprop",
    "adam"), built with ``hyperparameters``.

    Raises ``ValueError`` listing the valid names for an unknown name; the class
    raises ``TypeError`` for a hyperparameter it does not take and ``ValueError``
    for one out of range.

    >>> make_optimizer("adam", lr=0.01)
    Adam(lr=0.01, beta1=0.9, beta2=0.999, epsilon=1e-08)
    """
    cls = OPTIMIZERS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        classic = name.lower() in CLASSIC_NAMES if isinstance(name, str) else False
        classics = "dp.tools.classic's: dp.SGD_Momentum, dp.RMS_Prop"
        hint = f" (the original dp's optimizers, with their own constructor, are {classics})" if classic else ""
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}{hint}")
    return cls(**hyperparameters)


# ----- checks -----


def _state_value(key: str, slot: str, value: Any) -> np.ndarray | int:
    """A checked copy of one slot of a loaded state."""
    if slot == "step":
        if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iu":
            value = value.item()  # a step count read back from an .npz file
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"state {slot!r} of {key!r} must be an int >= 1, got {value!r}")
        return int(value)
    array = np.array(value)  # a copy: the caller keeps theirs
    if array.dtype.kind != "f" or not all_finite(array):
        raise ValueError(f"state {slot!r} of {key!r} must be a finite floating-point array")
    return array


def _copy_state(state: State) -> State:
    return {slot: v.copy() if isinstance(v, np.ndarray) else v for slot, v in state.items()}


def _not_finite(overflowed: list[str], gradients: Mapping[str, np.ndarray]) -> NonFiniteError:
    """The error for a step whose results are not all finite: the keys whose gradients hold
    NaN or inf, when some do (the cause), else the keys whose update overflowed."""
    not_finite = sorted(k for k, g in gradients.items() if not all_finite(g))
    if not_finite:
        return NonFiniteError(f"the gradients of {not_finite} have NaN or inf values; nothing was updated")
    return NonFiniteError(
        f"the update of {overflowed} would make the parameters or this optimizer's state NaN or inf; "
        "nothing was updated"
    )


def _all_finite(*values: Any) -> bool:
    """Whether every array among ``values`` is free of NaN and inf (other values pass)."""
    return all(all_finite(v) for v in values if isinstance(v, np.ndarray))
