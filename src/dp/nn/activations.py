"""The activations a layer or a model applies by name: each is a `dp.Node` method, with its
default options (leaky ReLU's slope 0.01, ELU's alpha 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dp.node import Node

ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus")


def activate(x: Node, name: str | None) -> Node:
    """``x`` through the activation called ``name`` (one of `ACTIVATIONS`), or x itself for None."""
    return x if name is None else getattr(x, name)()
