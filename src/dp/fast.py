"""The training step of `dp.nn.models.MLP` without a graph: what `dp.train.fit` runs.

    step = MLPStep(model, reduction="sum")
    loss, grads = step(x, labels)      # = model.loss(x, y).value, model.loss(x, y).grad(1)

Why it exists: on the reference network (a batch of 50 rows, layers of 20 and 10) every
NumPy call costs about a microsecond whatever it computes, and the NumPy work of a step
is about 100 of them. Building a dozen Nodes, walking them back, checking the data
again and wrapping each parameter costs about half as much again (docs/speed.md has the
profile). A training loop repeats a step of the same network on batches of the same
shape, so the order of the backward pass is known before it starts: this module writes
it out, once, as straight-line code.

It is the same math, not a copy of it: each layer runs the very forward function and
vjp of the primitive the graph uses (``dp.ops.linear``, ``dp.fused.linear_batch_norm``,
the activations of `dp.ops`, the losses of `dp.nn.losses`), in the order the graph's
reverse sweep would call them. So the results are bit for bit the graph's;
tests/test_fast.py checks that, loss, gradients, moving averages and batch counts, for
every activation, with and without batch norm, one and several outputs, float64 and
float32.

What it leaves out is what `fit` has done once before the first step: ``x`` and the
labels are trusted, as `dp.nn.models.MLP.checked_data` (rows: finite, of the model's width)
and `labels` (one-hot rows or a column, in the model's dtype) made them. What it still
checks at every step is what no look at the data can tell in advance: the batch
statistics and the loss must be finite (`dp.checks.NonFiniteError` otherwise, which
`fit` reports as divergence).

Compute, then commit: the moving averages and batch counts are stored in
``model.params`` as the last thing a step does, after the gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dp import checks, fused, ops
from dp.checks import NonFiniteError
from dp.nn import losses
from dp.nn.linear import Linear
from dp.nn.models import MLP
from dp.nn.normalization import BatchNorm

Vjp = Callable[[np.ndarray], Any]


STEP_METHODS = ("loss", "_input", "_logits")  # what MLP's training step runs through, besides its layers


def supports(model: Any) -> bool:
    """Whether `MLPStep` computes this model's training step: an `MLP` whose step runs
    through MLP's own methods (`STEP_METHODS`) and dp's own layers. A subclass or an
    instance that replaces one of them trains on the graph, which calls what it replaced."""
    if not isinstance(model, MLP):
        return False
    own_methods = all(getattr(getattr(model, name), "__func__", None) is getattr(MLP, name) for name in STEP_METHODS)
    layers = [*model.hidden, (model.output, None)]
    own_layers = all(type(linear) is Linear and type(norm) in (BatchNorm, type(None)) for linear, norm in layers)
    return own_methods and own_layers


class MLPStep:
    """One training-mode forward and backward pass of ``model`` (an `MLP`) on a batch,
    without Nodes; the loss summed over the rows (``reduction="sum"``) or their mean."""

    def __init__(self, model: MLP, reduction: str = "sum") -> None:
        if not supports(model):
            raise TypeError(f"MLPStep computes the step of a dp.nn.models.MLP, not of {type(model).__name__}")
        losses.scale(reduction, 1)  # refuses an unknown reduction now, not at the first step
        self.model, self.reduction = model, reduction
        self.activation_name: str = model.config["activation"]
        self.activation: Callable[[np.ndarray], tuple[np.ndarray, tuple[Vjp]]] = getattr(ops, self.activation_name)
        self.loss: Callable[..., Any] = losses.logits_loss(model.sizes[-1]).forward  # type: ignore[attr-defined]
        # The gradient of the loss with respect to itself, as the graph's grad(1) seeds it. Read-only:
        # a vjp that wrote into it would change the next step's.
        self.seed = np.ones((1, 1), model.dtype)
        self.seed.flags.writeable = False
        # Per layer, the names of the parameters its vjp returns gradients for, in order, after
        # that of the layer's input.
        hidden: list[tuple[str, ...]] = [
            (linear.weight_key, str(linear.bias_key))
            if norm is None
            else (linear.weight_key, norm.gamma_key, norm.beta_key)
            for linear, norm in model.hidden
        ]
        self.names = [*hidden, (model.output.weight_key, str(model.output.bias_key))]

    def labels(self, y: Any) -> np.ndarray:
        """Labels checked as the model's loss checks them, in its dtype: a 0/1 column for one
        output, one-hot rows for more. `fit` converts all its rows once."""
        return checks.labels(y, len(y), self.model.sizes[-1]).astype(self.model.dtype, copy=False)

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The loss of the batch (a float) and ``{name: gradient}``; then the moving averages
        and batch counts move, as one training step of the graph would move them. ``x``: rows
        checked by the model's ``checked_data``; ``labels``: as `labels` makes them. Only their
        shapes and the labels' dtype are checked here (``ValueError``): constant time."""
        self._require_shapes(x, labels)
        model, pending = self.model, dict[str, np.ndarray]()
        params = model.params
        h, vjps = x.astype(model.dtype, copy=False), list[Vjp]()  # per layer, its vjp
        for linear, norm in model.hidden:
            h, vjp = self._hidden(h, linear, norm, pending, needs_grad=bool(vjps))
            vjps.append(vjp)
        output = model.output
        z, linear_vjps = ops.linear(h, params[output.weight_key], params[str(output.bias_key)])  # it has one
        vjps.append(_linear_vjp(linear_vjps, needs_grad=bool(vjps)))  # no hidden layer: its input is the data
        scale = 1.0 if self.reduction == "sum" else 1.0 / len(x)
        loss, (loss_vjp, *_) = self.loss(z, labels, scale)
        value = float(loss[0, 0])
        if not math.isfinite(value):
            raise NonFiniteError("the loss has NaN or inf values")
        grads = self._backward(loss_vjp(self.seed), vjps)
        params.update(pending)  # commit, last
        return value, grads

    def _hidden(
        self, h: np.ndarray, linear: Any, norm: Any, pending: dict[str, np.ndarray], needs_grad: bool
    ) -> tuple[np.ndarray, Vjp]:
        """One hidden layer on its input h: its output, and the vjp that maps the gradient of
        the output to those of h and of its parameters (`names` says which, in order)."""
        params = self.model.params
        w = params[linear.weight_key]
        if norm is None:  # linear with a bias, then the activation: two primitives
            a, linear_vjps = ops.linear(h, w, params[str(linear.bias_key)])  # without batch norm, it has one
            y, (activation_vjp,) = self.activation(a)
            through_linear = _linear_vjp(linear_vjps, needs_grad)
            return y, lambda g: through_linear(activation_vjp(g))
        x, mean, var = fused.centered_product(h, w, norm)  # as dp.fused.hidden_layer does
        y, fused_vjp = fused.linear_batch_norm.forward(  # type: ignore[attr-defined]
            h, w, params[norm.gamma_key], params[norm.beta_key], x, var, eps=norm.eps,
            activation=self.activation_name, input_needs_grad=needs_grad,
        )  # fmt: skip
        pending.update(norm.averaged(mean, var, x.shape[0]))
        return y, fused_vjp

    def _require_shapes(self, x: np.ndarray, labels: np.ndarray) -> None:
        """``ValueError`` unless x is (n, inputs) and labels (n, outputs) of the model's dtype."""
        sizes, dtype = self.model.sizes, self.model.dtype
        if x.ndim != 2 or x.shape[1] != sizes[0] or labels.shape != (len(x), sizes[-1]) or labels.dtype != dtype:
            raise ValueError(
                f"MLPStep takes rows of shape (n, {sizes[0]}) and labels as its labels() makes them, "
                f"({len(x)}, {sizes[-1]}) of {dtype}; got rows {x.shape} and labels {labels.shape} of {labels.dtype}"
            )

    def _backward(self, g: np.ndarray, vjps: list[Vjp]) -> dict[str, np.ndarray]:
        """The reverse sweep, last layer first: each vjp gives the gradient of its layer's
        input (the next g) and of its parameters."""
        grads: dict[str, np.ndarray] = {}
        for vjp, names in zip(reversed(vjps), reversed(self.names)):
            results = vjp(g)
            grads.update(zip(names, results[1:]))
            g = results[0]
        return grads


def _linear_vjp(vjps: tuple[Vjp, Vjp, Vjp], needs_grad: bool) -> Vjp:
    """One vjp for (x, w, b) from `dp.ops.linear`'s three; x's gradient only if ``needs_grad``
    (the data's is never needed, and it is the largest product of the first layer)."""
    return lambda g: [vjps[0](g) if needs_grad else None, vjps[1](g), vjps[2](g)]
