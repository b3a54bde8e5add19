"""The same math as `dp.layers`' batch norm, fewer arrays: the hidden layer of `dp.nn.models.MLP`.

A hidden layer of the reference network is linear (no bias), then batch norm,
then an activation::

    x = h @ w
    y = activation(gamma * (x - mean) / sqrt(var + eps) + beta)

`dp.layers` builds that from three nodes and keeps every intermediate array.
Here it is one primitive, `linear_batch_norm` (and `linear_batch_norm_eval` for
eval mode), with one vjp that returns the gradients of h, w, gamma and beta
together, so the column sums they share are computed once. It saves arrays:

- ``x = h @ w`` is this layer's own array, made by `hidden_layer` and seen by nobody
  else, so it is centered (`center`) and scaled (in `linear_batch_norm`) in place: it
  becomes xhat;
- the activation is applied in place to the output, and its derivative is taken
  from that output (tanh' = 1 - y**2, sigmoid' = y (1 - y), relu' = [y > 0]), so
  the batch-norm output before the activation is never kept.

Nothing else differs: the tests check these against `dp.nn.batch_norm_composed`
and the `dp.nn.BatchNorm` layer, values, gradients and moving averages, to 1e-12.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dp.nn.linear import Linear
from dp.nn.normalization import BatchNorm, require_finite_statistics
from dp.node import Node, primitive


def _tanh(a: np.ndarray) -> None:
    np.tanh(a, out=a)


def _tanh_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = y * y  # g * (1 - y**2), in one temporary
    np.subtract(1, d, out=d)
    d *= g
    return d


def _sigmoid(a: np.ndarray) -> None:
    """1 / (1 + exp(-a)) in place: four calls and no temporary, where `dp.ops.stable_sigmoid`
    makes seven and three. Both are within a few units in the last place wherever the
    sigmoid is a normal number; below that (a under about -709 in float64, -88 in float32) exp
    overflows here, silently, and the result is 0 where the stable form keeps a subnormal."""
    with np.errstate(over="ignore"):
        np.negative(a, out=a)
        np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)


def _sigmoid_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = g * y  # g * y * (1 - y), as dp.ops.sigmoid's vjp computes it, one temporary fewer
    d *= 1 - y
    return d


def _relu(a: np.ndarray) -> None:
    np.maximum(a, 0, out=a)


def _relu_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (y > 0)


def _identity_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g.copy()  # a new array, as every backward here returns: the vjps write into it


# name: (apply in place, the gradient of its input from g and its output y)
IN_PLACE_ACTIVATIONS: dict[
    str | None, tuple[Callable[[np.ndarray], None], Callable[[np.ndarray, np.ndarray], np.ndarray]]
] = {
    "tanh": (_tanh, _tanh_backward),
    "sigmoid": (_sigmoid, _sigmoid_backward),
    "relu": (_relu, _relu_backward),
    None: (lambda a: None, _identity_backward),
}


def hidden_layer(
    h: Node, linear: Linear, norm: BatchNorm, activation: str | None, train: bool | None, pending: dict[str, Any]
) -> Node:
    """``activation(norm(linear(h)))`` for a checked input h, with norm's mode rules
    (``train=None``: the model's mode) and errors. In training, the layer's new moving
    averages and batch count go into ``pending`` (`BatchNorm.averaged`), for the model to
    store once its whole forward pass has succeeded."""
    params = linear.model.params
    w = Node(params[linear.weight_key], linear.weight_key)
    gamma, beta = norm.learned()
    options = {"eps": norm.eps, "activation": activation, "input_needs_grad": h.needs_grad}
    if not (linear.model.training if train is None else train):
        norm.require_trained()
        x = h.value @ w.value  # this call's own array: the primitive normalizes in it
        return linear_batch_norm_eval(h, w, gamma, beta, x, norm.average_mean(), norm.average_variance(), **options)
    x, mean, var = centered_product(h.value, w.value, norm)
    y = linear_batch_norm(h, w, gamma, beta, x, var, **options)
    pending.update(norm.averaged(mean, var, x.shape[0]))
    return y


def centered_product(h: np.ndarray, w: np.ndarray, norm: BatchNorm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x = h @ w`` in a new array, centered in place (`center`), its batch mean and variance:
    what `linear_batch_norm` takes, with ``norm``'s rules (at least 2 rows, finite statistics)."""
    x = h @ w
    norm.require_batch(x.shape[0])
    mean, var = center(x, norm.what)
    return x, mean, var


def center(x: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each feature's batch mean from x (N, F) in place; return the mean and the
    biased variance, (1, F) each, as `dp.nn.batch_statistics` does."""
    # einsum, unlike sum, warns of no overflow: the check below says what went wrong, and
    # np.errstate would cost more than the rest of this function at small sizes.
    mean = np.einsum("ij->j", x)[None, :] / x.shape[0]
    np.subtract(x, mean, out=x)  # inf - inf is NaN, with no warning
    var = column_dot(x, x) / x.shape[0]
    require_finite_statistics(mean, var, what)
    return mean, var


def column_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(axis=0, keepdims=True)`` without the (N, F) temporary."""
    return np.einsum("ij,ij->j", a, b)[None, :]


@primitive
def linear_batch_norm(h, w, gamma, beta, centered, var, eps=1e-5, activation=None, input_needs_grad=True):
    """Training mode: ``activation(gamma * xhat + beta)`` where xhat = centered / sqrt(var + eps)
    and ``centered`` must be ``h @ w`` minus its batch mean, made by `hidden_layer` with
    `center` (this takes it over); h and w themselves serve the backward pass only, which
    is `dp.nn.batch_norm_closed_form`'s, with dy the gradient through the activation,
    then the linear layer's: dh = dx @ w.T, dw = h.T @ dx. ``input_needs_grad=False``
    skips dh when h leads to no parameter (the data: the first layer's largest product)."""
    n = centered.shape[0]
    inv = 1 / np.sqrt(var + eps)
    xhat = np.multiply(centered, inv, out=centered)
    y, backward = _scale_shift_activate(xhat, gamma, beta, activation)

    def vjp(g):
        dy = backward(g, y)
        dgamma, dbeta = column_dot(dy, xhat), dy.sum(axis=0, keepdims=True)
        dx = xhat * (dgamma / n)  # gamma * inv * (dy - dbeta / N - xhat * dgamma / N), in one temporary
        dx += dbeta / n
        np.subtract(dy, dx, out=dx)
        del dy  # one (N, F) array fewer while the linear layer's gradients are computed
        dx *= gamma * inv
        return (dx @ w.T if input_needs_grad else None), h.T @ dx, dgamma, dbeta, None, None

    return y, vjp


@primitive
def linear_batch_norm_eval(h, w, gamma, beta, x, mean, var, eps=1e-5, activation=None, input_needs_grad=True):
    """Eval mode: ``activation(gamma * (x - mean) / sqrt(var + eps) + beta)`` with x = h @ w
    (which this takes over) and fixed ``mean`` and ``var``, an affine map of x."""
    inv = 1 / np.sqrt(var + eps)
    xhat = np.subtract(x, mean, out=x)
    xhat *= inv
    y, backward = _scale_shift_activate(xhat, gamma, beta, activation)

    def vjp(g):
        dy = backward(g, y)
        dgamma, dbeta = column_dot(dy, xhat), dy.sum(axis=0, keepdims=True)
        dy *= gamma * inv  # now dx: dy is this call's own array
        grad_h = dy @ w.T if input_needs_grad else None
        return grad_h, h.T @ dy, dgamma, dbeta, None, None, None

    return y, vjp


def _scale_shift_activate(xhat, gamma, beta, activation):
    """``y = activation(gamma * xhat + beta)`` in one new array, and the activation's backward."""
    in_place, backward = IN_PLACE_ACTIVATIONS[activation]
    y = xhat * gamma
    y += beta
    in_place(y)
    return y, backward
