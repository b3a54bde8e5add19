"""Inverted dropout (Srivastava et al., 2014): a random mask in training, nothing in evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dp import checks, ops
from dp.checks import Flag, OrNone, Real, Whole
from dp.nn.inputs import as_input
from dp.node import Node, apply

if TYPE_CHECKING:
    from dp.nn.module import NeuralNode

DROPOUT_CONSTRAINTS: dict[str, checks.Constraint] = {
    "p": Real("[0, 1)"),
    "train": Flag(),
    "seed": OrNone(Whole("[0, inf)")),
}


class Dropout:
    """Inverted dropout, ``forward(x, train=None)``: see `NeuralNode.dropout`."""

    def __init__(self, model: NeuralNode, p: float, seed: int | None = None) -> None:
        self.model, self.p = model, p
        self.rng = None if seed is None else np.random.default_rng(seed)  # None: the model's generator

    def __call__(self, x: Any, train: bool | None = None) -> Node:
        """Dropout of x (a Node or a numeric array, any shape) in training, x itself in evaluation."""
        x = as_input(x, self.model.dtype)
        training = self.model.training if train is None else train
        rng = self.rng if self.rng is not None else self.model._generator()
        return dropout(x, self.p, train=training, rng=rng)


def dropout(x: Any, p: float, train: bool = True, rng: np.random.Generator | int | None = None) -> Node:
    """Inverted dropout (Srivastava et al., 2014) of x, a Node or a numeric array of any shape.

    In training (``train=True``) each element is kept with probability 1 - p and scaled by
    1 / (1 - p), otherwise set to 0: ``y = x * mask`` with ``mask = (u >= p) / (1 - p)`` for
    uniform u. The scaling keeps every output's expected value equal to its input, so
    evaluation (``train=False``) returns x itself, unscaled. The mask is drawn once, in the
    forward pass, and is a constant of the multiplication: the backward pass multiplies by
    the same mask (dropped elements get no gradient, kept ones 1 / (1 - p)).

    ``p`` is in [0, 1) (p = 1 would drop everything and divide by 0); ``rng`` is a NumPy
    ``Generator``, a seed (an int >= 0) or None for fresh entropy. The mask has x's dtype.
    Raises ``TypeError`` or ``ValueError`` naming a bad ``p``, ``train`` or seed.
    """
    options = checks.checked(DROPOUT_CONSTRAINTS, p=p, train=train)
    node = x if isinstance(x, Node) else Node(x)
    if not options["train"] or options["p"] == 0:
        return node
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(DROPOUT_CONSTRAINTS["seed"](rng, "rng (a seed)"))
    keep = rng.random(node.shape) >= options["p"]
    mask = (keep / (1 - options["p"])).astype(node.dtype)
    return apply(ops.multiply, node, mask)  # the mask is a constant: no gradient of its own
