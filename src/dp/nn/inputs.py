"""A layer's input: a Node of the model's dtype, checked once where data enters a model."""

from __future__ import annotations

from typing import Any

import numpy as np

from dp import checks
from dp.node import Node, plain_array


def as_input(x: Any, dtype: Any) -> Node | np.ndarray:
    """An input in the model's ``dtype``, so that float64 data does not turn a float32
    model's computation into float64: a Node (cast, unless it needs its own gradient,
    which a cast would cut off) or an array (cast if numeric; the caller checks it)."""
    if isinstance(x, Node):
        return (
            x if x.dtype == dtype or x.needs_grad else Node(checks.in_dtype(x.value, dtype, "the input", "the model's"))
        )
    value = plain_array(x, "the input")  # a masked array is refused, np.matrix made plain
    return checks.in_dtype(value, dtype, "the input", "the model's") if value.dtype.kind in "biuf" else value


def checked_input(x: Any, features: int, what: str, dtype: Any, images: bool = False) -> Node:
    """A layer's input as a Node of the model's ``dtype`` (by `Node`'s conventions, so a
    1-D array is a column), after `dp.checks.input_batch`: (n, features), numeric, finite;
    with ``images``, after `dp.checks.input_images`: (n, features, height, width), where the
    features are channels."""
    x = as_input(x, dtype)
    node = x if isinstance(x, Node) else Node(x)
    check = checks.input_images if images else checks.input_batch
    check(node.value, features, f"{what}: the input")
    return node
