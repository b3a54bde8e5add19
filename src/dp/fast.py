"""The training step of `dp.models.MLP` without a graph: what `dp.train.fit` runs.

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
the activations of `dp.ops`, the losses of `dp.losses`), in the order the graph's
reverse sweep would call them. So the results are bit for bit the graph's;
tests/test_fast.py checks that, loss, gradients, moving averages and batch counts, for
every activation, with and without batch norm, one and several outputs, float64 and
float32.

What it leaves out is what `fit` has done once before the first step: ``x`` and the
labels are trusted, as `dp.models.MLP.checked_data` (rows: finite, of the model's width)
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

from dp import checks, fused, losses, ops
from dp.checks import NonFiniteError
from dp.models import MLP

Vjp = Callable[[np.ndarray], Any]


def supports(model: Any) -> bool:
    """Whether `MLPStep` computes this model's training step: an `MLP` whose ``loss`` and
    layers are MLP's own. A subclass, or an instance, that replaces them trains on the graph."""
    return (
        isinstance(model, MLP)
        and getattr(model.loss, "__func__", None) is MLP.loss
        and getattr(model._logits, "__func__", None) is MLP._logits
    )


class MLPStep:
    """One training-mode forward and backward pass of ``model`` (an `MLP`) on a batch,
    without Nodes; the loss summed over the rows (``reduction="sum"``) or their mean."""

    def __init__(self, model: MLP, reduction: str = "sum") -> None:
        if not supports(model):
            raise TypeError(f"MLPStep computes the step of a dp.models.MLP, not of {type(model).__name__}")
        losses.scale(reduction, 1)  # refuses an unknown reduction now, not at the first step
        self.model, self.reduction = model, reduction
        self.activation: Callable[[np.ndarray], tuple[np.ndarray, tuple[Vjp]]] = getattr(
            ops, model.config["activation"]
        )
        self.loss: Callable[..., Any] = (
            losses._binary_cross_entropy_with_logits if model.sizes[-1] == 1 else losses._softmax_cross_entropy
        ).forward
        # The gradient of the loss with respect to itself, as the graph's grad(1) seeds it. Read-only:
        # a vjp that wrote into it would change the next step's.
        self.seed = np.ones((1, 1), model.dtype)
        self.seed.flags.writeable = False
        # Per layer, the names of what its vjp returns gradients for, in order (None: its input).
        self.names = [
            (None, linear.weight_key, linear.bias_key)
            if norm is None
            else (None, linear.weight_key, norm.gamma_key, norm.beta_key)
            for linear, norm in model.hidden
        ] + [(None, model.output.weight_key, model.output.bias_key)]

    def labels(self, y: Any) -> np.ndarray:
        """Labels checked as the model's loss checks them, in its dtype: a 0/1 column for one
        output, one-hot rows for more. `fit` converts all its rows once."""
        return checks.labels(y, len(y), self.model.sizes[-1]).astype(self.model.dtype, copy=False)

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The loss of the batch (a float) and ``{name: gradient}``; then the moving averages
        and batch counts move, as one training step of the graph would move them."""
        model, pending = self.model, dict[str, np.ndarray]()
        params = model.params
        h, vjps = x.astype(model.dtype, copy=False), []  # per layer, its vjp
        for linear, norm in model.hidden:
            h, vjp = self._hidden(h, linear, norm, pending, needs_grad=bool(vjps))
            vjps.append(vjp)
        output = model.output
        z, linear_vjps = ops.linear(h, params[output.weight_key], params[output.bias_key])
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
            a, linear_vjps = ops.linear(h, w, params[linear.bias_key])
            y, (activation_vjp,) = self.activation(a)
            through_linear = _linear_vjp(linear_vjps, needs_grad)
            return y, lambda g: through_linear(activation_vjp(g))
        x = h @ w  # what dp.fused.hidden_layer does, on arrays
        norm.require_batch(x.shape[0])
        mean, var = fused.center(x, norm.what)
        y, fused_vjp = fused.linear_batch_norm.forward(
            h, w, params[norm.gamma_key], params[norm.beta_key], x, var, eps=norm.eps,
            activation=self.model.config["activation"], input_needs_grad=needs_grad,
        )  # fmt: skip
        pending.update(norm.averaged(mean, var, x.shape[0]))
        return y, fused_vjp

    def _backward(self, g: np.ndarray, vjps: list[Vjp]) -> dict[str, np.ndarray]:
        """The reverse sweep, last layer first: each vjp gives the gradient of its layer's
        input (the next g) and of its parameters."""
        grads = {}
        for vjp, names in zip(reversed(vjps), reversed(self.names)):
            results = vjp(g)
            grads.update(zip(names[1:], results[1:]))
            g = results[0]
        return grads


def _linear_vjp(vjps: tuple[Vjp, Vjp, Vjp], needs_grad: bool) -> Vjp:
    """One vjp for (x, w, b) from `dp.ops.linear`'s three; x's gradient only if ``needs_grad``
    (the data's is never needed, and it is the largest product of the first layer)."""
    return lambda g: [vjps[0](g) if needs_grad else None, vjps[1](g), vjps[2](g)]
