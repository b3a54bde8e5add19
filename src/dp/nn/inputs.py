"""A layer's input: a Node of the model's dtype, checked once where data enters a model:
rows of features (`checked_input`) or images (`checked_images`)."""

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


def checked_input(x: Any, features: int, what: str, dtype: Any) -> Node:
    """A layer's input as a Node of the model's ``dtype`` (by `Node`'s conventions, so a
    1-D array is a column), after `dp.checks.input_batch`: (n, features), numeric, finite."""
    x = as_input(x, dtype)
    node = x if isinstance(x, Node) else Node(x)
    checks.input_batch(node.value, features, f"{what}: the input")
    return node


def checked_images(x: Any, channels: int | None, what: str, dtype: Any = None) -> Node:
    """A batch of images as a Node, after `dp.checks.input_images`: (N, C, H, W), numeric,
    finite, N >= 1, and C == ``channels`` unless it is None. With a model's ``dtype``, in it
    (`as_input`); without, in its own, by `Node`'s conventions (float32 stays float32,
    integers become float64). A Node is returned as it is (a parameter keeps its gradient).
    ``what`` names the layer or function ("conv2d"), as for `checked_input`."""
    if dtype is not None:
        x = as_input(x, dtype)
    checks.input_images(x.value if isinstance(x, Node) else x, channels, f"{what}: the input")
    return x if isinstance(x, Node) else Node(x)


def numeric_operand(a: Any, what: str) -> np.ndarray:
    """The value of a Node, or an array given instead (a constant), checked numeric and finite:
    an argument of a function on Nodes, such as a convolution's weights or a normalization's
    gamma (`dp.checks.numeric_array`, `dp.checks.finite`)."""
    return checks.finite(a.value if isinstance(a, Node) else checks.numeric_array(a, what), what)
