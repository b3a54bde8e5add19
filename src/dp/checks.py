"""Validation: one function (or constraint) per concept, used at dp's public entry points.

Every check either returns the value in the form dp computes with (a float, an
int, an ndarray) or raises an error that names the offending argument and what
it must be. Public functions and constructors check what they are given, once;
the code they call trusts it and does not check again.

Hyperparameters are declared in one place per class, as scikit-learn's
``_parameter_constraints`` are, and checked together::

    CONSTRAINTS = {"momentum": Real("(0, 1]"), "eps": Real("(0, inf)"), "batch_norm": Flag()}
    momentum, eps, batch_norm = checked(CONSTRAINTS, momentum=0.1, eps=1e-5, batch_norm=True).values()

The concepts:

- a real number in an interval (`Real`), a whole number in an interval (`Whole`),
  a truth value (`Flag`), one of a few names (`OneOf`), a callback (`Function`),
  each of them optional with `OrNone`, or one or more with `Several` (one per image axis with
  `Pair`): for hyperparameters;
- `numeric_array`: what a Node, an input batch or a parameter may hold;
- `finite` (and `all_finite`): no NaN or inf, else `NonFiniteError`;
- `input_batch`: rows of features for a layer or a model, (n, features);
- `input_images`: a batch of images for a convolution, a pooling, a per-channel normalization or a
  convolutional model, (N, C, H, W);
- `labels`: the labels of a batch, for a model with one output (binary, 0/1) or
  k > 1 outputs (class indices or one-hot rows).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from dp.node import Node, plain_array

NODE_INSTEAD = "a Node: pass its array, node.value (a Node is a graph's value, not data)"


class NonFiniteError(ValueError):
    """NaN or inf where dp needs finite numbers: inputs, labels, batch statistics, gradients."""


# ----- numbers -----


class Interval:
    """An interval written as in mathematics: ``"(0, 1]"``, ``"[2, inf)"``. Parsed once."""

    def __init__(self, text: str) -> None:
        left, right = text[0], text[-1]
        low, high = (float(part) for part in text[1:-1].split(","))
        if left not in "([" or right not in ")]":
            raise ValueError(f"an interval starts with ( or [ and ends with ) or ], got {text!r}")
        self.text, self.low, self.high = text, low, high
        self.low_closed, self.high_closed = left == "[", right == "]"

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below


class Real:
    """A finite real number (not a bool) in ``interval``; checked, it is a Python float."""

    def __init__(self, interval: str = "(-inf, inf)") -> None:
        self.interval = Interval(interval)

    def __call__(self, value: Any, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, not {describe(value)}")
        number = float(value)
        if not (math.isfinite(number) and number in self.interval):
            raise ValueError(f"{name} must be a finite number in {self.interval.text}, got {value!r}")
        return number


class Whole:
    """A whole number (Python's or NumPy's, not a bool or a float) in ``interval``; an int."""

    def __init__(self, interval: str = "(-inf, inf)") -> None:
        self.interval = Interval(interval)

    def __call__(self, value: Any, name: str) -> int:
        if not is_whole(value):
            raise TypeError(f"{name} must be a whole number, not {describe(value)}")
        if int(value) not in self.interval:
            raise ValueError(f"{name} must be a whole number in {self.interval.text}, got {value!r}")
        return int(value)


class Flag:
    """True or False (a Python or NumPy bool): 1 and "yes" are refused, not guessed at."""

    def __call__(self, value: Any, name: str) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, not {describe(value)}")
        return bool(value)


class OneOf:
    """One of a few names (strings), returned as given; with ``ignore_case``, in any case
    ("Adam" for "adam")."""

    def __init__(self, *options: str, ignore_case: bool = False) -> None:
        self.options, self.ignore_case = options, ignore_case

    def __call__(self, value: Any, name: str) -> str:
        key = value.lower() if self.ignore_case and isinstance(value, str) else value
        if not (isinstance(value, str) and key in self.options):
            raise ValueError(f"{name} must be one of {', '.join(map(repr, self.options))}; got {value!r}")
        return value


class Several:
    """One value or a sequence of values (a list, a tuple, a 1-D array), each accepted by
    ``constraint``; checked, a tuple: ``Several(Whole("[1, inf)"))`` takes 20 or (20, 10)."""

    def __init__(self, constraint: Any) -> None:
        self.constraint = constraint

    def __call__(self, value: Any, name: str) -> tuple[Any, ...]:
        values = tuple(value) if np.ndim(value) == 1 else (value,)
        return tuple(self.constraint(item, name) for item in values)


class Pair:
    """One value for both axes of an image, or an (h, w) pair, each accepted by ``constraint``;
    checked, a tuple (h, w): ``Pair(Whole("[1, inf)"))`` takes 2, as (2, 2), or (2, 3)."""

    def __init__(self, constraint: Any) -> None:
        self.constraint = constraint

    def __call__(self, value: Any, name: str) -> tuple[Any, Any]:
        values = Several(self.constraint)(value, name)
        if len(values) not in (1, 2):
            raise ValueError(f"{name} must be one number or an (h, w) pair, got {value!r}")
        return (values[0], values[-1])


class OrNone:
    """None (the argument left out), or a value ``constraint`` accepts: ``OrNone(Whole("[1, inf)"))``."""

    def __init__(self, constraint: Any) -> None:
        self.constraint = constraint

    def __call__(self, value: Any, name: str) -> Any:
        return None if value is None else self.constraint(value, name)


class Function:
    """Something to call (a function, a method, a callable object)."""

    def __call__(self, value: Any, name: str) -> Any:
        if not callable(value):
            raise TypeError(f"{name} must be a function, not {describe(value)}")
        return value


Constraint = Callable[[Any, str], Any]  # (value, its name) -> the checked value, or an error


def checked(constraints: dict[str, Constraint], prefix: str = "", /, **values: Any) -> dict[str, Any]:
    """Each of ``values`` checked by the constraint of the same name in ``constraints``:
    ``{name: checked value}`` in the order given. Raises the first error met, the value named
    after ``prefix`` (the call it belongs to: ``"conv2d: "``), so that an error in a network's
    forward pass says which call it came from."""
    return {name: constraints[name](value, prefix + name) for name, value in values.items()}


def is_whole(value: Any) -> bool:
    """Whether ``value`` is a whole number (Python's or NumPy's), not a bool or a float."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def install_hint(extra: str) -> str:
    """How to install one of dp's extras, from a clone of dp (the package index's "dp" is
    another project; dp's distribution is dp-autodiff): the one wording every error uses."""
    return f'from a clone of dp, install it with: pip install ".[{extra}]"'


def describe(value: Any) -> str:
    """A value's kind, for an error message: "str", "an ndarray of dtype int64"."""
    if isinstance(value, np.ndarray):
        return f"an ndarray of dtype {value.dtype}"
    return type(value).__name__


# ----- arrays -----


def numeric_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a plain ndarray of bools, integers or floats (not copied when it is one);
    ``TypeError`` for strings, objects, Nodes and complex numbers (dp differentiates real
    functions), saying what to do instead, and for a masked array (`dp.node.plain_array`:
    another subclass becomes a plain ndarray)."""
    if isinstance(value, Node):  # before NumPy, whose refusal of a Node cannot name `what`
        raise TypeError(f"{what} must be numeric (bool, int or float), not {NODE_INSTEAD}")
    array = plain_array(value, what)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric (bool, int or float), not {_not_numeric(array)}")
    return array


def _not_numeric(array: np.ndarray) -> str:
    """What ``array`` holds instead of numbers, with the way out."""
    why = {
        "c": ": complex numbers are not supported",
        "U": ": text must be turned into numbers first (one 0/1 column per category, say)",
        "S": ": text must be turned into numbers first (one 0/1 column per category, say)",
    }
    return f"{array.dtype}{why.get(array.dtype.kind, '')}"


def all_finite(array: np.ndarray) -> bool:
    """Whether ``array`` has no NaN or inf."""
    return np.count_nonzero(np.isfinite(array)) == array.size  # faster than .all(), which goes through Python


def in_dtype(array: np.ndarray, dtype: Any, what: str, whose: str, copy: bool = False) -> np.ndarray:
    """``array`` in ``dtype`` (itself if it has it, unless ``copy``); `NonFiniteError` for finite
    values the cast makes inf (1e39 into float32), named as too large for ``whose`` dtype ("the
    model's"), where a check of the cast array would call them NaN or inf."""
    if array.dtype == dtype and not copy:
        return array
    with np.errstate(over="ignore"):  # checked below, with a message that says why
        cast = array.astype(dtype)
    if not all_finite(cast) and all_finite(array):
        raise NonFiniteError(f"{what} has values too large for {np.dtype(dtype)}, {whose} dtype")
    return cast


def finite(array: np.ndarray, what: str) -> np.ndarray:
    """``array``, after raising `NonFiniteError` if it has NaN or inf values."""
    if not all_finite(array):
        raise NonFiniteError(f"{what} has NaN or inf values")
    return array


def input_batch(x: Any, features: int, what: str) -> np.ndarray:
    """Rows of ``features`` numbers: a numeric, finite array of shape (n, features), n >= 1."""
    x = numeric_array(x, what)
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{what} must have shape (n, {features}); got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: empty (shape {x.shape}); at least one row is needed")
    return finite(x, what)


def input_images(x: Any, channels: int | None, what: str) -> np.ndarray:
    """A batch of images: a numeric, finite array (N, C, H, W) with N >= 1 and, unless
    ``channels`` is None, C == ``channels``. ``what`` names the data ("conv2d: the input",
    "the training rows")."""
    x = numeric_array(x, what)
    if x.ndim != 4:
        rows = " (rows of pixels? reshape them: x.reshape(n, channels, height, width))" if x.ndim == 2 else ""
        raise ValueError(f"{what} must be images (N, C, H, W); got shape {x.shape}{rows}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{what}: {x.shape[1]} channels (shape {x.shape}), where {channels} are expected (axis 1 of (N, C, H, W))"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no images (shape {x.shape}); at least one is needed")
    if 0 in x.shape[2:]:
        raise ValueError(f"{what}: images of no pixels (shape {x.shape}); each needs a height and a width >= 1")
    return finite(x, what)


# ----- labels -----


def labels(y: Any, rows: int, outputs: int) -> np.ndarray:
    """The labels of a batch of ``rows`` rows for a model with ``outputs`` output columns,
    as the losses take them: for one output, binary labels in [0, 1] as a float column
    (rows, 1); for k > 1, one-hot rows (rows, k), from class indices in [0, k) ((rows,)
    or (rows, 1)) or from one-hot rows. A 1-D vector is never broadcast against a column.
    NaN and inf are `NonFiniteError`."""
    y = numeric_array(y, "the labels")
    if y.ndim == 0 or y.shape[0] != rows:
        raise ValueError(f"{y.shape[0] if y.ndim else 'a scalar: no'} labels for a batch of {rows} rows")
    return binary_labels(y) if outputs == 1 else one_hot_labels(finite(y, "the labels"), outputs)


def binary_labels(y: np.ndarray) -> np.ndarray:
    """Checked labels (see `labels`) for one output, as a float column."""
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(f"binary labels must have shape (n,) or (n, 1), got {y.shape}")
    if not (y.min() >= 0 and y.max() <= 1):  # also false for NaN: one test on the common path
        finite(y, "the labels")
        raise ValueError("binary labels must lie in [0, 1] (0 or 1 for hard labels)")
    return y.reshape(-1, 1).astype(np.float64, copy=False)


def one_hot_labels(y: np.ndarray, classes: int) -> np.ndarray:
    """Checked labels (see `labels`) for ``classes`` outputs, as one-hot float rows."""
    n = y.shape[0]
    if y.shape == (n, classes):
        if (y < 0).any() or (np.abs(y.sum(axis=1) - 1) > 1e-6).any():
            raise ValueError("one-hot labels must be non-negative rows that sum to 1")
        return y.astype(np.float64, copy=False)
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(f"class labels must have shape (n,) or (n, 1), or one-hot ({n}, {classes}); got {y.shape}")
    indices = y.reshape(-1)
    if (indices != np.round(indices)).any() or (indices < 0).any() or (indices >= classes).any():
        raise ValueError(f"class labels must be integers in [0, {classes})")
    onehot = np.zeros((n, classes))
    onehot[np.arange(n), indices.astype(np.intp)] = 1
    return onehot
