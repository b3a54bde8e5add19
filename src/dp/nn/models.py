"""Models: `MLP` (whose defaults are the reference breast-cancer network) and
`fold_batch_norm`, which bakes eval-mode batch norm into the linear layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from dp import checks
from dp.checks import Flag, OneOf, Whole, checked
from dp.nn import fused as dp_fused
from dp.nn import init as dp_init
from dp.nn import losses
from dp.nn.activations import ACTIVATIONS, activate
from dp.nn.inputs import as_input
from dp.nn.linear import Linear
from dp.nn.module import NeuralNode
from dp.nn.normalization import BATCH_NORM_CONSTRAINTS, BatchNorm
from dp.node import Node

MLP_CONSTRAINTS: dict[str, checks.Constraint] = {
    "batch_norm": Flag(),
    "activation": OneOf(*ACTIVATIONS),
    "seed": lambda seed, name: None if seed is None else Whole("[0, inf)")(seed, name),
    "fused": Flag(),
}


def fused_config(fused: bool, batch_norm: bool, activation: str) -> dict[str, bool]:
    """What ``MLP(fused=...)`` adds to the model's ``config``: ``{"fused": True}``, or nothing
    for the default, so that a plain model's config (and every checkpoint's) stays as it was.
    Raises ``ValueError`` for ``fused=True`` unless the hidden layers can be fused: each needs
    batch norm and an activation the fused layer applies in place."""
    if not fused:
        return {}
    if not batch_norm or activation not in dp_fused.FUSED_ACTIVATIONS:
        raise ValueError(
            f"fused=True needs batch_norm=True and an activation the fused layer has in place, one of "
            f"{', '.join(dp_fused.FUSED_ACTIVATIONS)}; got batch_norm={batch_norm!r}, activation={activation!r}"
        )
    return {"fused": True}


class MLP(NeuralNode):
    """A multi-layer perceptron, by default the reference network of the seed notebook::

        30 -> linear l1 (30, 20) -> batch norm bn1 -> tanh
           -> linear l2 (20, 10) -> batch norm bn2 -> tanh
           -> linear l3 (10, 1)  -> sigmoid

    ``sizes`` lists the widths, input first. Each hidden layer is ``linear(l{i})``,
    then batch norm ``bn{i}`` when ``batch_norm``, then the ``activation``, any of
    `dp.nn.activations.ACTIVATIONS` ("tanh", "sigmoid", "relu", "leaky_relu", "elu",
    "softplus"). A linear layer followed by batch norm has no bias: batch
    norm subtracts the batch mean, which removes any bias (docs/bias_before_batch_norm.md).
    One output uses a sigmoid and binary cross-entropy; k > 1 outputs a softmax
    and softmax cross-entropy. ``seed`` fixes the initial weights; ``dtype`` is
    that of the parameters and of the computation (inputs are converted to it).
    ``momentum``, ``eps`` and ``unbiased_average`` are batch norm's (`NeuralNode.batch_norm`);
    ``init`` (and ``init_std`` for "normal" and "uniform") draws every weight matrix
    (`dp.init`; the default is Glorot-normal).

    The layers are those of `NeuralNode`, the very objects a seed-style model builds:
    `dp.nn.linear.Linear`, `dp.nn.normalization.BatchNorm` (the closed-form primitive) and
    the activation as a `dp.Node` method. Training builds the graph of these and calls
    ``grad``, as for any model.

    ``fused=True`` (off by default) runs each hidden layer, linear -> batch norm ->
    activation, as one primitive (`dp.nn.fused`): the same math and the same parameters,
    gradients and moving averages (to rounding: the tests hold the two to 1e-12 in float64),
    with fewer arrays kept for the backward pass. It pays where the step is many small
    operations, e.g. the paper's 784-100-100-100-10 network on batches of 60: about 1.25x
    faster and 1.45x leaner in peak memory (docs/speed.md). It needs ``batch_norm=True`` and
    an activation of `dp.nn.fused.FUSED_ACTIVATIONS` (tanh, sigmoid, relu), else a
    ``ValueError``. The plain path is what the course teaches and reads; `record` always
    runs it, and `fold_batch_norm` of a fused model is a plain one. ``config`` holds
    ``fused`` only when True.

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
        init: str = "glorot",
        init_std: float | None = None,
        fused: bool = False,
    ) -> None:
        sizes = tuple(sizes)
        if not all(checks.is_whole(s) for s in sizes):
            raise TypeError(f"sizes must be whole numbers, got {sizes}")  # int() would truncate 20.9
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least an input and an output width, all >= 1; got {sizes}")
        flags = checked(MLP_CONSTRAINTS, batch_norm=batch_norm, activation=activation, seed=seed, fused=fused)
        norm_options = checked(BATCH_NORM_CONSTRAINTS, momentum=momentum, eps=eps, unbiased_average=unbiased_average)
        super().__init__(seed, dtype)
        self.config = dict(sizes=sizes, batch_norm=flags["batch_norm"], activation=activation, dtype=self.dtype.name)
        self.config.update(norm_options)
        init, init_std = dp_init.check(init, init_std)
        self.config.update(init=init, init_std=init_std)
        self.config.update(fused_config(flags["fused"], flags["batch_norm"], activation))
        self.hidden: list[tuple[Linear, BatchNorm | None]] = []  # per hidden layer: linear, batch norm or None
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            linear = self.linear(fan_in, fan_out, f"l{i}", bias=not batch_norm, init=init, std=init_std)
            norm = self.batch_norm(fan_out, f"bn{i}", **norm_options) if batch_norm else None
            self.hidden.append((linear, norm))
        self.output = self.linear(sizes[-2], sizes[-1], f"l{len(sizes) - 1}", init=init, std=init_std)

    def __repr__(self) -> str:
        """The constructor call that makes this architecture: ``MLP(sizes=(30, 20, 10, 1), ...)``."""
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({settings})"

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.config["sizes"]

    @property
    def has_batch_norm(self) -> bool:
        return self.config["batch_norm"]

    @property
    def fused(self) -> bool:
        """Whether the hidden layers run as `dp.nn.fused` primitives (``MLP(fused=True)``)."""
        return self.config.get("fused", False)

    def logits(self, x: Any, train: bool | None = None) -> Node:
        """The last linear layer's output, (n, outputs), for a batch x (n, inputs)."""
        return self._logits(self._input(x), train)

    def forward(self, x: Any, train: bool | None = None) -> Node:
        """Probabilities: a sigmoid column for one output, else a softmax over the outputs."""
        z = self.logits(x, train)
        return z.sigmoid() if z.shape[1] == 1 else z.softmax(axis=1)

    def loss(self, x: Any, y: Any, train: bool | None = None, reduction: str = "sum") -> Node:
        """The cross-entropy of the batch (summed over rows by default), computed stably
        from the logits. y: labels (n,) or (n, 1); for k > 1 outputs, class indices or one-hot.
        Everything is checked before the forward pass, which may update moving averages. The
        logits are the model's own ``logits``, so that a subclass's override of it is trained."""
        x = self._input(x)
        labels = checks.labels(y, x.shape[0], self.sizes[-1])
        scale = losses.scale(reduction, x.shape[0])
        return losses.from_logits(self.logits(x, train), labels.astype(self.dtype, copy=False), scale)

    def record(self, x: Any, layers: Sequence[str] | None = None, train: bool = False) -> dict[str, np.ndarray]:
        """The values inside the network for a batch x, by layer name, without changing
        anything (the moving averages and batch counts stay as they are, so it can watch a
        fixed batch of test rows at any point of training):

        - ``"l{i}"``: the output of linear layer i (the last one's is the logits);
        - ``"bn{i}"``: the output of batch norm i (with batch norm).

        The input of hidden layer i's activation is ``"bn{i}"`` with batch norm and
        ``"l{i}"`` without. ``train=False`` (the default) normalizes with the moving
        averages, as the network predicts; ``train=True`` with the batch's own statistics,
        as in a training step. ``layers`` selects some names (default: all); an unknown
        name is a ``ValueError`` that lists the known ones. Each value is (n, width).
        """
        wanted = self._layer_names(layers)
        values: dict[str, np.ndarray] = {}
        self._logits(self._input(x), train, seen=values)
        return {name: values[name] for name in wanted}

    def _layer_names(self, layers: Sequence[str] | None) -> list[str]:
        """``layers`` checked against the names `record` knows (all of them for None)."""
        per_layer = ("l", "bn") if self.has_batch_norm else ("l",)
        known = [f"{kind}{i}" for i in range(1, len(self.hidden) + 1) for kind in per_layer]
        known.append(f"l{len(self.hidden) + 1}")
        if layers is None:
            return known
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"this network has no layer {', '.join(map(repr, unknown))}; its layers are {known}")
        return names

    def checked_data(self, x: Any, y: Any, what: str = "training") -> tuple[np.ndarray, np.ndarray]:
        """As `NeuralNode.checked_data`, for this network: x of shape (n, inputs), and labels
        its loss takes (binary for one output, class indices or one-hot for more), which
        are returned as given (y a column if it is a vector)."""
        x, y = super().checked_data(x, y, what)
        if x.shape[1] != self.sizes[0]:
            raise ValueError(f"the {what} rows must have shape (n, {self.sizes[0]}); got {x.shape}")
        checks.labels(y, len(x), self.sizes[-1])
        return x, y

    def _input(self, x: Any) -> Node:
        """The network's input as a Node of its dtype, checked as it was given (a 1-D
        array is refused, not taken for a column)."""
        x = as_input(x, self.dtype)
        value = checks.input_batch(x.value if isinstance(x, Node) else x, self.sizes[0], "the input")
        return x if isinstance(x, Node) else Node(value)

    def _logits(self, h: Node, train: bool | None, seen: dict[str, np.ndarray] | None = None) -> Node:
        """The layers on an input already checked: linear, batch norm, activation per hidden
        layer, then the output layer. In training, each batch-norm layer moves its averages
        as it runs; should a later layer fail, the model's entry point puts them back (its
        ``forward`` and ``loss`` are transactions: see `NeuralNode`). With a ``seen`` dict,
        each layer's output value is recorded under its name and nothing changes (`record`)."""
        if self.fused and seen is None:  # opt-in: the same math, fewer arrays; `record` reads the layers below
            return self._fused_logits(h, train)
        for i, (linear, norm) in enumerate(self.hidden, start=1):
            z = linear.forward(h)
            y = z if norm is None else norm.forward(z, train) if seen is None else norm.normalize(z, bool(train))
            if seen is not None:
                seen.update({f"l{i}": z.value, **({f"bn{i}": y.value} if norm is not None else {})})
            h = activate(y, self.config["activation"])
        logits = self.output.forward(h)
        if seen is not None:
            seen[f"l{len(self.hidden) + 1}"] = logits.value
        return logits

    def _fused_logits(self, h: Node, train: bool | None) -> Node:
        """`_logits` of a `fused` model: each hidden layer as one `dp.nn.fused.hidden_layer`
        primitive (the same math, fewer arrays), then the output layer."""
        for linear, norm in self.hidden:
            h = dp_fused.hidden_layer(h, linear, cast(BatchNorm, norm), self.config["activation"], train)
        return self.output.forward(h)


def fold_batch_norm(model: MLP) -> MLP:
    """A copy of ``model`` in which each eval-mode batch norm is folded into the linear
    layer before it, for inference. Per feature::

        s = gamma / sqrt(avg_variance + eps)
        W' = W * s        b' = (b - avg_mean) * s + beta      (b = 0 without a bias)

    so that ``x @ W' + b'`` equals batch norm (eval mode) of ``x @ W + b``. The result
    has no batch-norm layers (so it is never `MLP.fused`) and predicts what ``model``
    predicts in eval mode.
    """
    if not isinstance(model, MLP):
        raise TypeError("fold_batch_norm needs a dp.MLP: it must know which linear layer feeds which batch norm")
    folded = MLP(**{**model.config, "batch_norm": False, "fused": False})
    if not model.has_batch_norm:
        folded.set_param(model.params)
        return folded
    p, eps, new = model.params, model.config["eps"], {}
    norms = [norm for _, norm in model.hidden if norm is not None]  # one per hidden layer, with batch norm
    for i, norm in enumerate(norms, start=1):
        norm.require_trained()
        scale = p[f"gamma_bn{i}"] / np.sqrt(p[f"avg_variance_bn{i}"] + eps)
        new[f"weight_l{i}"] = p[f"weight_l{i}"] * scale
        new[f"bias_l{i}"] = (p.get(f"bias_l{i}", 0.0) - p[f"avg_mean_bn{i}"]) * scale + p[f"beta_bn{i}"]
    last = len(model.sizes) - 1
    new[f"weight_l{last}"], new[f"bias_l{last}"] = p[f"weight_l{last}"], p[f"bias_l{last}"]
    folded.set_param(new)
    return folded
