"""An opt-in, leaner copy of one hidden layer: ``dp.MLP(..., fused=True)``.

A hidden layer of the reference network is linear (no bias), then batch norm, then an
activation::

    x = h @ w
    y = activation(gamma * (x - mean) / sqrt(var + eps) + beta)

The plain `dp.MLP` builds that from the layers a student reads: `dp.nn.linear.Linear`,
`dp.nn.normalization.BatchNorm` on the primitive `batch_norm_closed_form`, and the
activation as a `dp.Node` method; three nodes, each keeping its arrays. Here it is one
primitive, `linear_batch_norm` (and `linear_batch_norm_eval` for eval mode), with one vjp
that returns the gradients of h, w, gamma and beta together. It is the same math as
`batch_norm_closed_form`: that primitive writes its backward pass as the paper's chain
rule, one line per gradient; this one uses the compact form those lines add up to,
``dx = gamma / sqrt(var + eps) * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N)``,
which docs/batch_norm_backward.md derives from them. What differs is how many arrays
it makes and keeps:

- ``x = h @ w`` is this layer's own array, made by `hidden_layer` and seen by nobody else,
  so it is centered and scaled in place: it becomes xhat;
- the activation is applied in place to the output, and its derivative is taken from that
  output (tanh' = 1 - y**2, sigmoid' = y (1 - y), relu' = [y > 0]), so the batch-norm
  output before the activation is never kept;
- the column sums the gradients share (dgamma, dbeta) are computed once.

Why it exists, and why only as an option: on the paper's workload (784-100-100-100-10,
batch 60, sigmoid) it makes the graph's training step about 1.25x faster and its peak
memory about 1.45x smaller (docs/speed.md), which is what DESIGN.md's "One path" asks of
a second implementation of the same math. The plain path is what the course teaches and
what `MLP` runs by default; tests/test_fused.py holds this one to it to 1e-12 (values,
every gradient, the moving averages, whole training runs).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dp.nn.linear import Linear
from dp.nn.normalization import BatchNorm, batch_statistics
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


# name: (apply in place, the gradient of its input from g and its output y, as a new array)
IN_PLACE_ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray], None], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "tanh": (_tanh, _tanh_backward),
    "sigmoid": (_sigmoid, _sigmoid_backward),
    "relu": (_relu, _relu_backward),
}
FUSED_ACTIVATIONS = tuple(IN_PLACE_ACTIVATIONS)  # what `dp.MLP(fused=True)` accepts


def hidden_layer(h: Node, linear: Linear, norm: BatchNorm, activation: str, train: bool | None) -> Node:
    """``activation(norm(linear(h)))`` for a checked input h (N, fan_in), as one node, with
    the layers' own parameters, mode rules (``train=None``: the model's mode) and errors: a
    training batch of fewer than 2 rows is a ``ValueError``, statistics that overflow a
    `dp.checks.NonFiniteError`, eval mode before any training batch a ``RuntimeError``.
    ``linear`` must have no bias (batch norm removes it) and ``activation`` be one of
    `FUSED_ACTIVATIONS`.

    In training, the layer moves its moving averages and counts the batch as
    `BatchNorm.forward` does (`BatchNorm.update_averages`), once its output is computed;
    a model's entry point puts them back if a later layer fails (`dp.nn.module.transaction`).
    """
    w = Node(linear.model.params[linear.weight_key], linear.weight_key)
    gamma, beta = norm.learned()
    options = {"eps": norm.eps, "activation": activation, "input_needs_grad": h.needs_grad}
    x = h.value @ w.value  # this call's own array: the primitives normalize in it
    if not (linear.model.training if train is None else train):
        norm.require_trained()
        return linear_batch_norm_eval(h, w, gamma, beta, x, norm.average_mean(), norm.average_variance(), **options)
    norm.require_batch(x.shape[0])
    mean, var = batch_statistics(x, norm.what)
    np.subtract(x, mean, out=x)  # finite: batch_statistics refused anything else
    y = linear_batch_norm(h, w, gamma, beta, x, var, **options)
    norm.update_averages(mean, var, x.shape[0])
    return y


def column_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(axis=0, keepdims=True)`` without the (N, F) temporary."""
    return np.einsum("ij,ij->j", a, b)[None, :]


@primitive
def linear_batch_norm(h, w, gamma, beta, centered, var, eps=1e-5, activation="tanh", input_needs_grad=True):  # noqa: ANN001, ANN202 - a primitive
    """Training mode: ``activation(gamma * xhat + beta)`` where xhat = centered / sqrt(var + eps)
    and ``centered`` is ``h @ w`` minus its batch mean, var its biased batch variance (made by
    `hidden_layer`; this takes the array over and writes xhat into it). h and w serve the
    backward pass only: with dy the gradient through the activation, batch norm's compact
    backward ``dx = gamma * inv * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N)``, then the
    linear layer's, dh = dx @ w.T and dw = h.T @ dx. ``input_needs_grad=False`` skips dh
    when h leads to no parameter (the data: the first layer's largest product)."""
    n = centered.shape[0]
    inv = 1 / np.sqrt(var + eps)
    xhat = np.multiply(centered, inv, out=centered)
    y, backward = _scale_shift_activate(xhat, gamma, beta, activation)

    def vjp(g):
        dy = backward(g, y)  # a new array: written into below, never g or y
        dgamma, dbeta = column_dot(dy, xhat), dy.sum(axis=0, keepdims=True)
        dx = xhat * (dgamma / n)  # gamma * inv * (dy - dbeta / N - xhat * dgamma / N), in one temporary
        dx += dbeta / n
        np.subtract(dy, dx, out=dx)
        del dy  # one (N, F) array fewer while the linear layer's gradients are computed
        dx *= gamma * inv
        return (dx @ w.T if input_needs_grad else None), h.T @ dx, dgamma, dbeta, None, None

    return y, vjp


@primitive
def linear_batch_norm_eval(h, w, gamma, beta, x, mean, var, eps=1e-5, activation="tanh", input_needs_grad=True):  # noqa: ANN001, ANN202 - a primitive
    """Eval mode: ``activation(gamma * ((x - mean) / sqrt(var + eps)) + beta)`` with x = h @ w
    (which this takes over and writes into) and fixed ``mean`` and ``var`` (the moving
    averages): an affine map of x, as `dp.nn.normalization.batch_norm_eval`."""
    inv = 1 / np.sqrt(var + eps)
    xhat = np.subtract(x, mean, out=x)
    xhat *= inv
    y, backward = _scale_shift_activate(xhat, gamma, beta, activation)

    def vjp(g):
        dy = backward(g, y)  # a new array: it becomes dx in place
        dgamma, dbeta = column_dot(dy, xhat), dy.sum(axis=0, keepdims=True)
        dy *= gamma * inv
        grad_h = dy @ w.T if input_needs_grad else None
        return grad_h, h.T @ dy, dgamma, dbeta, None, None, None

    return y, vjp


def _scale_shift_activate(
    xhat: np.ndarray, gamma: np.ndarray, beta: np.ndarray, activation: str
) -> tuple[np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """``y = activation(gamma * xhat + beta)`` in one new array, and the activation's backward."""
    in_place, backward = IN_PLACE_ACTIVATIONS[activation]
    y = xhat * gamma
    y += beta
    in_place(y)
    return y, backward
