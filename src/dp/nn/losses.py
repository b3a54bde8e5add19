"""Cross-entropy losses, each one fused primitive, summed over the batch by default.

Labels are checked before anything is computed: a label per row (shape (n,) or
(n, 1), or one-hot (n, k) where it applies), finite, in range. A 1-D label
vector is never broadcast against an (n, 1) output into an (n, n) matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dp import checks
from dp.node import Node, primitive
from dp.ops import stable_log_softmax

REDUCTIONS = ("sum", "mean")
REDUCTION = checks.OneOf(*REDUCTIONS)


def binary_cross_entropy(p: Node, y: Any, reduction: str = "sum", clip: float = 1e-12) -> Node:
    """``-sum(y log p + (1 - y) log(1 - p))`` for probabilities p (n, 1) and labels y in
    [0, 1]. p is clipped to ``[clip, 1 - clip]`` so a confident mistake costs a
    large finite loss, not inf; where the clip bites, the gradient is 0. Prefer
    `binary_cross_entropy_with_logits`, which needs no clipping."""
    return _binary_cross_entropy(p, _binary_labels(y, p), scale(reduction, p.shape[0]), clip)


@primitive
def _binary_cross_entropy(p, y, scale, clip):
    # The bounds in p's own dtype: in float32, 1 - 1e-12 rounds to 1 and log(1 - q) would be -inf.
    one = p.dtype.type(1)
    low = max(p.dtype.type(clip), np.finfo(p.dtype).tiny)
    high = min(p.dtype.type(1 - clip), np.nextafter(one, p.dtype.type(0)))
    q = np.clip(p, low, high)
    loss = -scale * (y * np.log(q) + (1 - y) * np.log1p(-q)).sum(keepdims=True)
    inside = (p >= low) & (p <= high)
    return loss, (lambda g: g * scale * inside * (q - y) / (q * (1 - q)), None, None, None)


def categorical_cross_entropy(p: Node, y: Any, reduction: str = "sum", clip: float = 1e-12) -> Node:
    """``-sum(log p[label])`` for probabilities p (n, k) whose rows sum to 1 (a softmax's
    output) and labels as in `softmax_cross_entropy`. p is clipped to ``[clip, 1]``
    (the gradient is 0 where the clip bites). Prefer `softmax_cross_entropy`, from logits."""
    return _categorical_cross_entropy(p, _one_hot(y, p), scale(reduction, p.shape[0]), clip)


@primitive
def _categorical_cross_entropy(p, onehot, scale, clip):
    q = np.maximum(p, clip)
    loss = -scale * np.einsum("ij,ij->", onehot, np.log(q)).reshape(1, 1)
    return loss, (lambda g: -(g * scale) * onehot / q * (p >= clip), None, None, None)


def binary_cross_entropy_with_logits(z: Node, y: Any, reduction: str = "sum") -> Node:
    """The binary cross-entropy of ``sigmoid(z)``, computed from the logits z (n, 1)
    without forming the probabilities: ``sum(max(z, 0) - y z + log(1 + exp(-|z|)))``,
    finite for any finite z. Its gradient is ``sigmoid(z) - y``."""
    return _binary_cross_entropy_with_logits(z, _binary_labels(y, z), scale(reduction, z.shape[0]))


@primitive
def _binary_cross_entropy_with_logits(z, y, scale):
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    loss = (np.maximum(z, 0) - y * z + np.log1p(e)).sum(keepdims=True)
    if scale != 1:
        loss *= scale
    # sigmoid(z) from the same e: 1 / (1 + e) for z >= 0, e / (1 + e) below
    return loss, (lambda g: (g * scale) * (np.where(z >= 0, 1.0, e) / (1 + e) - y), None, None)


def softmax_cross_entropy(z: Node, y: Any, reduction: str = "sum") -> Node:
    """``-sum(log softmax(z)[label])`` for logits z (n, k) and labels y: integers in
    [0, k) of shape (n,) or (n, 1), or one-hot rows (n, k). Its gradient is
    ``softmax(z) - onehot(y)``."""
    return _softmax_cross_entropy(z, _one_hot(y, z), scale(reduction, z.shape[0]))


@primitive
def _softmax_cross_entropy(z, onehot, scale):
    log_p = stable_log_softmax(z, axis=1)
    loss = -scale * np.einsum("ij,ij->", onehot, log_p).reshape(1, 1)
    return loss, (lambda g: (g * scale) * (np.exp(log_p) - onehot), None, None)


def from_logits(z: Node, labels: np.ndarray, scale: float) -> Node:
    """The cross-entropy from logits z for labels already checked by `dp.checks.labels`
    (a column for one output, one-hot rows for more), in z's dtype, times ``scale``:
    binary for one output column, softmax for more. For models that check their
    labels at their own entry point (`dp.nn.models.MLP`)."""
    return logits_loss(z.shape[1])(z, labels, scale)


def logits_loss(outputs: int) -> Callable[..., Node]:
    """The primitive `from_logits` applies to ``outputs`` output columns: binary cross-entropy
    for one, softmax cross-entropy for more."""
    return _binary_cross_entropy_with_logits if outputs == 1 else _softmax_cross_entropy


# ----- labels -----


def scale(reduction: str, rows: int) -> float:
    """The factor a loss summed over ``rows`` rows is multiplied by for ``reduction``:
    1 for "sum", 1 / rows for "mean"."""
    REDUCTION(reduction, "reduction")
    return 1.0 if reduction == "sum" else 1.0 / rows


def _binary_labels(y: Any, z: Node) -> np.ndarray:
    if z.ndim != 2 or z.shape[1] != 1:
        raise ValueError(f"binary cross-entropy needs one output column, shape (n, 1); got {z.shape}")
    return checks.labels(_array(y), z.shape[0], 1).astype(z.dtype, copy=False)


def _one_hot(y: Any, z: Node) -> np.ndarray:
    if z.ndim != 2:
        raise ValueError(f"softmax cross-entropy needs logits of shape (n, k), got {z.shape}")
    return checks.labels(_array(y), z.shape[0], z.shape[1]).astype(z.dtype, copy=False)


def _array(y: Any) -> Any:
    """Labels may come as a Node (its value is used: labels have no gradient)."""
    return y.value if isinstance(y, Node) else y
