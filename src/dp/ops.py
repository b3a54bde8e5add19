"""The primitive operations of dp: each forward beside its vector-Jacobian product.

This module is a table, and it knows nothing of Nodes: every entry takes NumPy
values and returns ``(value, vjps)``, the output and one vjp per positional
argument. ``vjps[i](g)`` maps ``g``, the gradient of the objective with respect to
the output (the output's shape), to the gradient with respect to argument i. A
vjp may answer in the output's broadcast shape: the backward pass sums it back
(`dp.node.unbroadcast`, the one place where broadcasting is undone).

`dp.node.Node` gives each entry its operator or method (``a + b`` is `add`,
``x.tanh()`` is `tanh`), and `dp.node.apply` runs one on Nodes. These functions take
arrays: on Nodes, use the operators and methods (``a + b``, ``x.tanh()``).

Everything else dp computes is composed of these (mean and variance inside batch
norm, say), except a few fused primitives that pay for themselves: `linear` here,
batch norm in `dp.nn.normalization`, the losses in `dp.nn.losses`.
"""

import warnings

import numpy as np

# ----- Binary elementwise, with NumPy broadcasting -----


def add(a, b):
    return a + b, (lambda g: g, lambda g: g)


def subtract(a, b):
    return a - b, (lambda g: g, lambda g: -g)


def multiply(a, b):
    return a * b, (lambda g: g * b, lambda g: g * a)


def divide(a, b):
    y = a / b
    return y, (lambda g: g / b, lambda g: -g * y / b)


def power(a, b):
    y = a**b
    # d(a**b)/db = a**b log a; where a == 0 the product is 0 (for b > 0), not 0 * -inf.
    return y, (_power_vjp_base(a, b), lambda g: g * y * np.log(np.where(a == 0, 1, a)))


def _power_vjp_base(a, b):
    """d(a**b)/da = b a**(b-1), which is 0 where b == 0 (a**0 is constant), not 0 * 0**-1 = nan.
    A number b stays a Python number (np.where would make a float64 array and upcast float32)."""
    if np.ndim(b) == 0:
        return (lambda g: g * 0.0) if b == 0 else (lambda g: g * b * a ** (b - 1))
    return lambda g: g * np.where(b == 0, 0, b * a ** np.where(b == 0, 1, b - 1))


# ----- Unary elementwise -----


def negative(a):
    return -a, (lambda g: -g,)


def exp(a):
    y = np.exp(a)
    return y, (lambda g: g * y,)


def log(a):
    return np.log(a), (lambda g: g / a,)


def sqrt(a):
    y = np.sqrt(a)
    return y, (lambda g: g * 0.5 / y,)


def square(a):
    return a * a, (lambda g: g * 2 * a,)


def abs(a):  # noqa: A001 - NumPy's name; as a method it is x.abs()
    return np.abs(a), (lambda g: g * np.sign(a),)


# Activations: each derivative is written with the output y, so nothing else is kept.


def tanh(a):
    y = np.tanh(a)
    return y, (lambda g: g * (1 - y * y),)


def sigmoid(a):
    y = stable_sigmoid(a)
    return y, (lambda g: g * y * (1 - y),)


def relu(a):
    y = np.maximum(a, 0)
    return y, (lambda g: g * (y > 0),)


def leaky_relu(a, slope=0.01):
    """ReLU with a small slope for negative inputs, so a unit below 0 still gets a gradient."""
    check_coefficient(slope, "leaky_relu: slope")
    return np.where(a > 0, a, a * slope), (lambda g: np.where(a > 0, g, g * slope),)


def elu(a, alpha=1.0):
    """a for a > 0, alpha * (exp(a) - 1) below: smooth at 0 for alpha = 1, and saturating at -alpha."""
    check_coefficient(alpha, "elu: alpha")
    below = alpha * np.expm1(np.minimum(a, 0))  # exp of a large positive a is never computed: no overflow
    return np.where(a > 0, a, below), (lambda g: np.where(a > 0, g, g * (below + alpha)),)  # alpha exp(a)


def softplus(a):
    """log(1 + exp(a)), a smooth ReLU; its derivative is the sigmoid."""
    return np.logaddexp(0, a), (lambda g: g * stable_sigmoid(a),)  # logaddexp never overflows


def check_coefficient(value, name):
    """Refuse a coefficient of an activation that is not a finite real number >= 0 (NumPy would
    broadcast an array, or a string would fail deep inside). Checked here, at the primitive,
    because the table imports nothing from dp (`dp.checks` included) and Node methods call it
    directly."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__}")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def stable_sigmoid(a):
    """1 / (1 + exp(-a)) without overflow: with e = exp(-|a|), which never overflows,
    1 / (1 + e) where a >= 0 and e / (1 + e) below, each keeping full relative precision."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1, e) / (1 + e)  # 1 is a weak scalar: the result keeps a's dtype


# ----- Along an axis: softmax and logsumexp -----


def softmax(a, axis=-1):
    y = np.exp(stable_log_softmax(a, axis))
    return y, (lambda g: y * (g - (g * y).sum(axis=axis, keepdims=True)),)


def log_softmax(a, axis=-1):
    y = stable_log_softmax(a, axis)
    return y, (lambda g: g - np.exp(y) * g.sum(axis=axis, keepdims=True),)


def logsumexp(a, axis=None, keepdims=True):
    """log(sum(exp(a))) over ``axis`` (all axes for None), stable for large inputs: with m the
    largest value, it is m + log(sum(exp(a - m))), where no exponent exceeds 0. Its gradient
    is the softmax of ``a`` over the same axes."""
    m = a.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (log of 0): shift by 0, since -inf - -inf is nan
    shifted = np.exp(a - m)
    total = shifted.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer there
        y = np.log(total) + m
    out = y if keepdims else np.squeeze(y, axis=axis)
    # The softmax from the shifted exponentials, not exp(a - y): y is rounded at its own magnitude.
    return out, (lambda g: _restore_axes(g, axis, keepdims) * (shifted / total),)


def stable_log_softmax(a, axis):
    """log(softmax(a)) along ``axis``; the largest exponent is 0, so nothing overflows."""
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ----- Reductions: they keep the reduced axes unless keepdims=False -----


def sum(a, axis=None, keepdims=True):  # noqa: A001 - NumPy's name
    y = a.sum(axis=axis, keepdims=keepdims)
    return y, (lambda g: np.broadcast_to(_restore_axes(g, axis, keepdims), a.shape),)


def mean(a, axis=None, keepdims=True):
    y = a.mean(axis=axis, keepdims=keepdims)
    n = _group_size(a, y)
    return y, (lambda g: np.broadcast_to(_restore_axes(g, axis, keepdims) / n, a.shape),)


def var(a, axis=None, keepdims=True, ddof=0):
    average = a.mean(axis=axis, keepdims=True)
    n = _group_size(a, average)
    centered = a - average
    # With n - ddof <= 0 there is no variance: NaN, as NumPy's var gives (with its
    # RuntimeWarning), and NaN gradients, as PyTorch's, rather than a ZeroDivisionError.
    scale = 1 / (n - ddof) if n > ddof else np.nan
    if n <= ddof:
        warnings.warn(f"var: {n} values and ddof={ddof} leave no degrees of freedom: NaN", RuntimeWarning, stacklevel=2)
    y = (centered * centered).sum(axis=axis, keepdims=keepdims) * scale
    return y, (lambda g: _restore_axes(g, axis, keepdims) * (2 * scale) * centered,)


def max(a, axis=None, keepdims=True):  # noqa: A001 - NumPy's name
    y = a.max(axis=axis, keepdims=True)
    winners = a == y
    share = winners / winners.sum(axis=axis, keepdims=True)  # ties split the gradient evenly
    out = y if keepdims else np.squeeze(y, axis=axis)
    return out, (lambda g: _restore_axes(g, axis, keepdims) * share,)


def _restore_axes(g, axis, keepdims):
    """Put back the axes a reduction dropped, so ``g`` broadcasts against the input."""
    return g if keepdims or axis is None else np.expand_dims(g, axis)


def _group_size(a, y):
    """How many elements of ``a`` went into each element of the reduction ``y``."""
    return a.size // (y.size or 1)


# ----- Linear algebra -----


def matmul(a, b):
    check_matmul(a, b)
    return a @ b, (lambda g: g @ _swap(b), lambda g: _swap(a) @ g)


def linear(x, w, b=None):
    """``x @ w + b`` (or ``x @ w`` for ``b=None``) as one primitive: the layer every network
    repeats, fused for speed. ``x`` is (n, fan_in), ``w`` (fan_in, fan_out), ``b`` (1, fan_out)."""
    check_matmul(x, w)
    y = x @ w
    if b is not None:
        y += b  # y is new: adding in place saves an array
    return y, (lambda g: g @ w.T, lambda g: x.T @ g, lambda g: g.sum(axis=0, keepdims=True))


def check_matmul(a, b):
    """Refuse shapes a matrix product cannot take, naming both."""
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


def _swap(m):
    return m.T if m.ndim == 2 else np.swapaxes(m, -1, -2)


# ----- Shape and indexing -----


def transpose(a, axes=None):
    y = a.transpose(axes)  # NumPy validates axes (negative ones included) first
    inverse = None if axes is None else np.argsort(np.atleast_1d(axes) % (a.ndim or 1))
    return y, (lambda g: g.transpose(inverse),)


def reshape(a, shape):
    return a.reshape(shape), (lambda g: g.reshape(a.shape),)


def getitem(a, index):
    def vjp(g):
        out = np.zeros_like(a)
        if _is_basic(index):
            out[index] = g
        else:
            np.add.at(out, index, g)  # repeated indices add up
        return out

    return a[index], (vjp, None)


def _is_basic(index):
    """Basic indexing (ints, slices) never selects an element twice; fancy indexing may."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


def concatenate(*arrays, axis=0):
    ends = np.cumsum([a.shape[axis] for a in arrays])
    y = np.concatenate(arrays, axis=axis)

    def piece(start, stop):
        return lambda g: np.take(g, np.arange(start, stop), axis=axis)

    return y, tuple(piece(stop - a.shape[axis], stop) for a, stop in zip(arrays, ends))
