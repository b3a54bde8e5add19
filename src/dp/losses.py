"""Cross-entropy losses, each one fused primitive, summed over the batch by default.

Labels are checked before anything is computed: a label per row (shape (n,) or
(n, 1), or one-hot (n, k) where it applies), finite, in range. A 1-D label
vector is never broadcast against an (n, 1) output into an (n, n) matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dp.checks import finite
from dp.node import Node, primitive
from dp.ops import log_softmax_array

REDUCTIONS = ("sum", "mean")


def binary_cross_entropy(p: Node, y: Any, reduction: str = "sum", clip: float = 1e-12) -> Node:
    """``-sum(y log p + (1 - y) log(1 - p))`` for probabilities p (n, 1) and labels y in
    [0, 1]. p is clipped to ``[clip, 1 - clip]`` so a confident mistake costs a
    large finite loss, not inf; where the clip bites, the gradient is 0. Prefer
    `binary_cross_entropy_with_logits`, which needs no clipping."""
    return _binary_cross_entropy(p, _binary_labels(y, p), _scale(reduction, p), clip)


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
    return _categorical_cross_entropy(p, _one_hot(y, p), _scale(reduction, p), clip)


@primitive
def _categorical_cross_entropy(p, onehot, scale, clip):
    q = np.maximum(p, clip)
    loss = -scale * np.einsum("ij,ij->", onehot, np.log(q)).reshape(1, 1)
    return loss, (lambda g: -(g * scale) * onehot / q * (p >= clip), None, None, None)


def binary_cross_entropy_with_logits(z: Node, y: Any, reduction: str = "sum") -> Node:
    """The binary cross-entropy of ``sigmoid(z)``, computed from the logits z (n, 1)
    without forming the probabilities: ``sum(max(z, 0) - y z + log(1 + exp(-|z|)))``,
    finite for any finite z. Its gradient is ``sigmoid(z) - y``."""
    return _binary_cross_entropy_with_logits(z, _binary_labels(y, z), _scale(reduction, z))


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
    return _softmax_cross_entropy(z, _one_hot(y, z), _scale(reduction, z))


@primitive
def _softmax_cross_entropy(z, onehot, scale):
    log_p = log_softmax_array(z, axis=1)
    loss = -scale * np.einsum("ij,ij->", onehot, log_p).reshape(1, 1)
    return loss, (lambda g: (g * scale) * (np.exp(log_p) - onehot), None, None)


# ----- labels -----


def check_labels(y: Any, rows: int, outputs: int) -> None:
    """Raise what the loss of a model with ``outputs`` output columns would raise for
    labels ``y`` of a batch of ``rows`` rows (binary labels for one output, class
    indices or one-hot for more), without computing anything else."""
    stand_in = Node(np.empty((rows, outputs)))
    (_binary_labels if outputs == 1 else _one_hot)(y, stand_in)


def _scale(reduction: str, z: Node) -> float:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")
    return 1.0 if reduction == "sum" else 1.0 / z.shape[0]


def _label_array(y: Any, z: Node) -> np.ndarray:
    y = y.value if isinstance(y, Node) else y
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels must be numeric, not {y.dtype}")
    if y.shape[:1] != z.shape[:1]:
        raise ValueError(f"{y.shape[0] if y.ndim else 'a scalar'} labels for a batch of {z.shape[0]} rows")
    return y


def _binary_labels(y: Any, z: Node) -> np.ndarray:
    y = _label_array(y, z)
    if z.ndim != 2 or z.shape[1] != 1:
        raise ValueError(f"binary cross-entropy needs one output column, shape (n, 1); got {z.shape}")
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(f"binary labels must have shape (n,) or (n, 1), got {y.shape}")
    if not (y.min() >= 0 and y.max() <= 1):  # also false for NaN: one check on the common path
        finite(y, "the labels")
        raise ValueError("binary labels must lie in [0, 1] (0 or 1 for hard labels)")
    return y.reshape(-1, 1).astype(z.dtype, copy=False)


def _one_hot(y: Any, z: Node) -> np.ndarray:
    y = _label_array(y, z)
    finite(y, "the labels")
    if z.ndim != 2:
        raise ValueError(f"softmax cross-entropy needs logits of shape (n, k), got {z.shape}")
    n, k = z.shape
    if y.shape == (n, k) and k > 1:
        if (y < 0).any() or (np.abs(y.sum(axis=1) - 1) > 1e-6).any():
            raise ValueError("one-hot labels must be non-negative rows that sum to 1")
        return y.astype(z.dtype, copy=False)
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(f"class labels must have shape (n,) or (n, 1), or one-hot ({n}, {k}); got {y.shape}")
    labels = y.reshape(-1)
    if (labels != np.round(labels)).any() or (labels < 0).any() or (labels >= k).any():
        raise ValueError(f"class labels must be integers in [0, {k})")
    onehot = np.zeros((n, k), dtype=z.dtype)
    onehot[np.arange(n), labels.astype(np.intp)] = 1
    return onehot
