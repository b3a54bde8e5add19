"""Models: `MLP` (whose defaults are the reference breast-cancer network) and
`fold_batch_norm`, which bakes eval-mode batch norm into the linear layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dp import checks, ops
from dp.checks import finite, is_whole
from dp.layers import NeuralNode, as_input
from dp.losses import binary_cross_entropy_with_logits, softmax_cross_entropy
from dp.node import Node


class MLP(NeuralNode):
    """A multi-layer perceptron, by default the reference network of the seed notebook::

        30 -> linear l1 (30, 20) -> batch norm bn1 -> tanh
           -> linear l2 (20, 10) -> batch norm bn2 -> tanh
           -> linear l3 (10, 1)  -> sigmoid

    ``sizes`` lists the widths, input first. Each hidden layer is ``linear(l{i})``,
    then batch norm ``bn{i}`` when ``batch_norm``, then the ``activation`` ("tanh",
    "relu" or "sigmoid"). A linear layer followed by batch norm has no bias: batch
    norm subtracts the batch mean, which removes any bias (docs/bias_before_batch_norm.md).
    One output uses a sigmoid and binary cross-entropy; k > 1 outputs a softmax
    and softmax cross-entropy. ``seed`` fixes the initial weights; ``dtype`` is
    that of the parameters and of the computation (inputs are converted to it).

    ``train=None`` in the methods below means "the model's mode" (training,
    until ``eval()``); ``predict`` and ``predict_proba`` always use eval mode.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (30, 20, 10, 1),
        batch_norm: bool = True,
        activation: str = "tanh",
        seed: int | None = 0,
        dtype: Any = np.float64,
        momentum: float = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
    ) -> None:
        sizes = tuple(sizes)
        if not all(is_whole(s) for s in sizes):
            raise TypeError(f"sizes must be whole numbers, got {sizes}")  # int() would truncate 20.9
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least an input and an output width, all >= 1; got {sizes}")
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ops.ACTIVATIONS)}, not {activation!r}")
        super().__init__(seed, dtype)
        self.config = dict(
            sizes=sizes,
            batch_norm=bool(batch_norm),
            activation=activation,
            dtype=self.dtype.name,
            momentum=momentum,
            eps=eps,
            unbiased_average=unbiased_average,
        )
        self.activation = ops.ACTIVATIONS[activation][0]
        self.hidden = []  # (linear, batch norm fused with the activation, or None) per hidden layer
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            linear = self.linear(fan_in, fan_out, f"l{i}", bias=not batch_norm)
            norm = (
                self.batch_norm(fan_out, f"bn{i}", momentum, eps, unbiased_average, activation) if batch_norm else None
            )
            self.hidden.append((linear, norm))
        self.output = self.linear(sizes[-2], sizes[-1], f"l{len(sizes) - 1}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.config["sizes"]

    def logits(self, x: Any, train: bool | None = None) -> Node:
        """The last linear layer's output, (n, outputs), for a batch x (n, inputs)."""
        with self.unchanged_on_error():
            h = self._batch(x)
            for linear, norm in self.hidden:
                h = linear(h)
                # The linear output is ours alone: batch norm may normalize in its buffer.
                h = norm._forward(h, train, reuse_input=True) if norm else self.activation(h)
            return self.output(h)

    def forward(self, x: Any, train: bool | None = None) -> Node:
        """Probabilities: a sigmoid column for one output, else a softmax over the outputs."""
        z = self.logits(x, train)
        return ops.sigmoid(z) if z.shape[1] == 1 else ops.softmax(z, axis=1)

    def loss(self, x: Any, y: Any, train: bool | None = None, reduction: str = "sum") -> Node:
        """The cross-entropy of the batch (summed over rows by default), computed stably
        from the logits. y: labels (n,) or (n, 1); for k > 1 outputs, class indices or one-hot."""
        with self.unchanged_on_error():  # bad labels must not leave this batch in the moving averages
            z = self.logits(x, train)
            if z.shape[1] == 1:
                return binary_cross_entropy_with_logits(z, y, reduction)
            return softmax_cross_entropy(z, y, reduction)

    def checked_data(self, x: Any, y: Any, what: str = "training") -> tuple[np.ndarray, np.ndarray]:
        """As `NeuralNode.checked_data`, for this network: x of shape (n, inputs), and labels
        its loss takes (binary for one output, class indices or one-hot for more), which
        are returned as given (y a column if it is a vector)."""
        x, y = super().checked_data(x, y, what)
        if x.shape[1] != self.sizes[0]:
            raise ValueError(f"the {what} rows must have shape (n, {self.sizes[0]}); got {x.shape}")
        checks.labels(y, len(x), self.sizes[-1])
        return x, y

    def _batch(self, x: Any) -> Node:
        """The input as a Node of the model's dtype (unless it is a Node that needs its own
        gradient, which a cast would cut off), with its shape and values checked."""
        x = as_input(x, self.dtype)
        value = x.value if isinstance(x, Node) else x
        if value.dtype.kind not in "biuf":
            raise TypeError(f"the input must be numeric, not {value.dtype}")
        if value.ndim != 2 or value.shape[1] != self.sizes[0]:
            raise ValueError(f"the input must have shape (n, {self.sizes[0]}); got {value.shape}")
        if value.shape[0] == 0:
            raise ValueError("the input is empty (0 rows)")
        finite(value, "the input")
        return x if isinstance(x, Node) else Node(value)

    @property
    def has_batch_norm(self) -> bool:
        return self.config["batch_norm"]


def fold_batch_norm(model: MLP) -> MLP:
    """A copy of ``model`` in which each eval-mode batch norm is folded into the linear
    layer before it, for inference. Per feature::

        s = gamma / sqrt(avg_variance + eps)
        W' = W * s        b' = (b - avg_mean) * s + beta      (b = 0 without a bias)

    so that ``x @ W' + b'`` equals batch norm (eval mode) of ``x @ W + b``. The result
    has no batch-norm layers and predicts what ``model`` predicts in eval mode.
    """
    if not isinstance(model, MLP):
        raise TypeError("fold_batch_norm needs a dp.models.MLP: it must know which linear layer feeds which batch norm")
    folded = MLP(**{**model.config, "batch_norm": False})
    if not model.has_batch_norm:
        folded.set_param(model.params)
        return folded
    p, eps, new = model.params, model.config["eps"], {}
    for i, (_, norm) in enumerate(model.hidden, start=1):
        norm.require_trained()
        scale = p[f"gamma_bn{i}"] / np.sqrt(p[f"avg_variance_bn{i}"] + eps)
        new[f"weight_l{i}"] = p[f"weight_l{i}"] * scale
        new[f"bias_l{i}"] = (p.get(f"bias_l{i}", 0.0) - p[f"avg_mean_bn{i}"]) * scale + p[f"beta_bn{i}"]
    last = len(model.sizes) - 1
    new[f"weight_l{last}"], new[f"bias_l{last}"] = p[f"weight_l{last}"], p[f"bias_l{last}"]
    folded.set_param(new)
    return folded
