"""The primitive operations of dp, each forward beside its vector-Jacobian products.

Contract (see `dp.node.primitive`): a primitive takes NumPy values and returns
``(value, vjps)``, one vjp per positional argument; ``vjp(g)`` maps the gradient
``g`` of the output (shape of the output) to the gradient of that argument. A
vjp may answer in the output's broadcast shape: the backward pass sums it back
with `dp.node.unbroadcast`, the one place where broadcasting is undone.

Everything a model needs beyond this table is composed from it, except the
few fused primitives that pay for themselves in speed: ``linear`` here, batch
norm in `dp.layers`, the losses in `dp.losses`.

The block at the end gives `Node` its operators and methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dp.node import Node, constant, primitive

# ----- Binary elementwise, with NumPy broadcasting -----


@primitive
def add(a, b):
    return a + b, (lambda g: g, lambda g: g)


@primitive
def subtract(a, b):
    return a - b, (lambda g: g, lambda g: -g)


@primitive
def multiply(a, b):
    return a * b, (lambda g: g * b, lambda g: g * a)


@primitive
def divide(a, b):
    y = a / b
    return y, (lambda g: g / b, lambda g: -g * y / b)


@primitive
def power(a, b):
    y = a**b
    # d(a**b)/da = b a**(b-1) is 0 where b == 0 (a**0 is constant), not 0 * 0**-1 = nan.
    # A number b stays a Python number (np.where would make it a float64 array and upcast).
    if np.ndim(b) == 0:
        vjp_a = (lambda g: g * 0.0) if b == 0 else (lambda g: g * b * a ** (b - 1))
    else:
        vjp_a = lambda g: g * np.where(b == 0, 0, b * a ** np.where(b == 0, 1, b - 1))  # noqa: E731
    # d(a**b)/db = a**b log a; where a == 0 the product is 0 (for b > 0), not 0 * -inf.
    return y, (vjp_a, lambda g: g * y * np.log(np.where(a == 0, 1, a)))


# ----- Unary elementwise -----


@primitive
def negative(a):
    return -a, (lambda g: -g,)


@primitive
def exp(a):
    y = np.exp(a)
    return y, (lambda g: g * y,)


@primitive
def log(a):
    return np.log(a), (lambda g: g / a,)


@primitive
def sqrt(a):
    y = np.sqrt(a)
    return y, (lambda g: g * 0.5 / y,)


@primitive
def square(a):
    return a * a, (lambda g: g * 2 * a,)


@primitive
def abs(a):  # noqa: A001 - the NumPy name, as a method it is x.abs()
    return np.abs(a), (lambda g: g * np.sign(a),)


# Activations: the derivative of each is written with its output y, so a fused
# primitive can apply one in place and keep nothing else (see ACTIVATIONS).


def tanh_vjp(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = y * y  # g * (1 - y**2), in one temporary
    np.subtract(1, d, out=d)
    d *= g
    return d


def sigmoid_vjp(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * y * (1 - y)


def relu_vjp(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (y > 0)


def sigmoid_array(a: np.ndarray) -> np.ndarray:
    # exp of -|a| never overflows, and each branch keeps full relative precision.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


@primitive
def tanh(a):
    y = np.tanh(a)
    return y, (lambda g: tanh_vjp(g, y),)


@primitive
def sigmoid(a):
    y = sigmoid_array(a)
    return y, (lambda g: sigmoid_vjp(g, y),)


@primitive
def relu(a):
    y = np.maximum(a, 0)
    return y, (lambda g: relu_vjp(g, y),)


def _sigmoid_in_place(a: np.ndarray) -> None:
    a[...] = sigmoid_array(a)


# name: (the Node operation, the same function applied in place to an array, its vjp from the output)
ACTIVATIONS = {
    "tanh": (tanh, lambda a: np.tanh(a, out=a), tanh_vjp),
    "sigmoid": (sigmoid, _sigmoid_in_place, sigmoid_vjp),
    "relu": (relu, lambda a: np.maximum(a, 0, out=a), relu_vjp),
}


# ----- Along an axis: softmax -----


def log_softmax_array(a: np.ndarray, axis: int) -> np.ndarray:
    shifted = a - a.max(axis=axis, keepdims=True)  # the largest exponent is 0: no overflow
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@primitive
def softmax(a, axis=-1):
    y = np.exp(log_softmax_array(a, axis))
    return y, (lambda g: y * (g - (g * y).sum(axis=axis, keepdims=True)),)


@primitive
def log_softmax(a, axis=-1):
    y = log_softmax_array(a, axis)
    return y, (lambda g: g - np.exp(y) * g.sum(axis=axis, keepdims=True),)


# ----- Reductions: they keep the reduced axes unless keepdims=False -----


def _restore_axes(g: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """Put back the axes a reduction dropped, so ``g`` broadcasts against the input."""
    return g if keepdims or axis is None else np.expand_dims(g, axis)


def _group_size(a: np.ndarray, y: np.ndarray) -> int:
    """How many elements of ``a`` went into each element of the reduction ``y``."""
    return a.size // (y.size or 1)


@primitive
def sum(a, axis=None, keepdims=True):  # noqa: A001
    y = a.sum(axis=axis, keepdims=keepdims)
    return y, (lambda g: np.broadcast_to(_restore_axes(g, axis, keepdims), a.shape),)


@primitive
def mean(a, axis=None, keepdims=True):
    y = a.mean(axis=axis, keepdims=keepdims)
    n = _group_size(a, y)
    return y, (lambda g: np.broadcast_to(_restore_axes(g, axis, keepdims) / n, a.shape),)


@primitive
def var(a, axis=None, keepdims=True, ddof=0):
    average = a.mean(axis=axis, keepdims=True)
    n = _group_size(a, average)
    centered = a - average
    y = (centered * centered).sum(axis=axis, keepdims=keepdims) / (n - ddof)
    return y, (lambda g: _restore_axes(g, axis, keepdims) * (2 / (n - ddof)) * centered,)


@primitive
def max(a, axis=None, keepdims=True):  # noqa: A001
    y = a.max(axis=axis, keepdims=True)
    winners = a == y
    share = winners / winners.sum(axis=axis, keepdims=True)  # ties split the gradient evenly
    out = y if keepdims else np.squeeze(y, axis=axis)
    return out, (lambda g: _restore_axes(g, axis, keepdims) * share,)


# ----- Linear algebra -----


def _check_matmul(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"dot: shapes {a.shape} and {b.shape}: both operands need 2 or more dimensions "
            "(reshape a vector into a row or a column first)"
        )
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"dot: shapes {a.shape} and {b.shape} don't fit: the left operand has "
            f"{a.shape[-1]} columns but the right one has {b.shape[-2]} rows"
        )


def _swap(m: np.ndarray) -> np.ndarray:
    return m.T if m.ndim == 2 else np.swapaxes(m, -1, -2)


@primitive
def matmul(a, b):
    _check_matmul(a, b)
    return a @ b, (lambda g: g @ _swap(b), lambda g: _swap(a) @ g)


@primitive
def linear(x, w, b=None):
    """``x @ w + b`` (or ``x @ w`` for ``b=None``) as one node: the layer every network
    repeats, fused for speed. ``x`` is (n, fan_in), ``w`` (fan_in, fan_out), ``b`` (1, fan_out)."""
    _check_matmul(x, w)
    y = x @ w
    if b is not None:
        y += b
    return y, (lambda g: g @ w.T, lambda g: x.T @ g, lambda g: g.sum(axis=0, keepdims=True))


# ----- Shape and indexing -----


@primitive
def transpose(a, axes=None):
    y = a.transpose(axes)  # NumPy validates axes (negative ones included) first
    inverse = None if axes is None else np.argsort(np.atleast_1d(axes) % (a.ndim or 1))
    return y, (lambda g: g.transpose(inverse),)


@primitive
def reshape(a, shape):
    return a.reshape(shape), (lambda g: g.reshape(a.shape),)


def _is_basic(index: Any) -> bool:
    """Basic indexing (ints, slices) never selects an element twice; fancy indexing may."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


@primitive
def getitem(a, index):
    def vjp(g):
        out = np.zeros_like(a)
        if _is_basic(index):
            out[index] = g
        else:
            np.add.at(out, index, g)  # repeated indices add up
        return out

    return a[index], (vjp,)


@primitive
def _concatenate(*arrays, axis=0):
    ends = np.cumsum([a.shape[axis] for a in arrays])
    y = np.concatenate(arrays, axis=axis)

    def piece(start, stop):
        return lambda g: np.take(g, np.arange(start, stop), axis=axis)

    return y, tuple(piece(stop - a.shape[axis], stop) for a, stop in zip(arrays, ends))


def concatenate(nodes: Sequence[Any], axis: int = 0) -> Node:
    """Join Nodes (and constants) along an existing axis, like `numpy.concatenate`."""
    nodes = list(nodes)
    like = next((n.value for n in nodes if isinstance(n, Node)), None)
    if like is None:
        return Node(np.concatenate([np.asarray(n, dtype=float) for n in nodes], axis=axis))
    return _concatenate(*[n if isinstance(n, Node) else constant(n, like) for n in nodes], axis=axis)


def dot(a: Any, b: Any) -> Node:
    """Matrix product of two Nodes (or a Node and a constant): ``a @ b``."""
    return _binary(matmul, a, b)


# ----- Node's operators and methods -----


def _binary(op, a: Any, b: Any) -> Node:
    """Apply a binary primitive, with numbers and arrays allowed on either side."""
    like = a.value if isinstance(a, Node) else b.value
    vector = any(np.ndim(x) == 1 for x in (a, b) if not isinstance(x, Node))
    a = a if isinstance(a, Node) else constant(a, like)
    b = b if isinstance(b, Node) else constant(b, like)
    try:
        return op(a, b)
    except ValueError:
        shapes = [np.shape(x.value if isinstance(x, Node) else x) for x in (a, b)]
        if op is not matmul and not _broadcastable(*shapes):
            hint = " A 1-D array is a column in dp: reshape it to (1, n) for a row." if vector else ""
            raise ValueError(
                f"{op.__name__}: shapes {shapes[0]} and {shapes[1]} cannot be broadcast together "
                f"(NumPy's rule: aligned from the right, each pair of sizes must be equal or 1).{hint}"
            ) from None
        raise


def _broadcastable(*shapes: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


def _operator(op, reflected: bool = False):
    if reflected:
        return lambda self, other: _binary(op, other, self)
    return lambda self, other: _binary(op, self, other)


Node.__add__, Node.__radd__ = _operator(add), _operator(add, reflected=True)
Node.__sub__, Node.__rsub__ = _operator(subtract), _operator(subtract, reflected=True)
Node.__mul__, Node.__rmul__ = _operator(multiply), _operator(multiply, reflected=True)
Node.__truediv__, Node.__rtruediv__ = _operator(divide), _operator(divide, reflected=True)
Node.__pow__, Node.__rpow__ = _operator(power), _operator(power, reflected=True)
Node.__matmul__, Node.__rmatmul__ = _operator(matmul), _operator(matmul, reflected=True)
Node.dot = _operator(matmul)
Node.__neg__ = negative
Node.__pos__ = lambda self: self
Node.__getitem__ = getitem
Node.T = property(transpose, doc="The transpose (axes reversed).")
Node.transpose = lambda self, *axes: transpose(self, axes=(axes[0] if len(axes) == 1 else axes) or None)
Node.reshape = lambda self, *shape: reshape(self, shape=shape[0] if len(shape) == 1 else shape)
for _op in (exp, log, sqrt, square, abs, tanh, sigmoid, relu, softmax, log_softmax, sum, mean, var, max):
    setattr(Node, _op.__name__, _op)
del _op
