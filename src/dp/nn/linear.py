"""The linear layer: ``x @ weight + bias``, one primitive (`dp.ops.linear`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dp import ops
from dp.nn.inputs import checked_input
from dp.node import Node, primitive

if TYPE_CHECKING:
    from dp.nn.module import NeuralNode

# ----- the layers: small callable objects that read their model's params at call time -----
# (Objects, not closures, so that a model pickles and a deep copy's layers use the copy's params.)


class Linear:
    """``forward(x) = x @ weight + bias`` for x (n, fan_in): see `NeuralNode.linear`."""

    def __init__(self, model: NeuralNode, name: str, fan_in: int, bias: bool) -> None:
        self.model, self.fan_in, self.what = model, fan_in, f"linear layer {name!r}"
        self.weight_key, self.bias_key = f"weight_{name}", (f"bias_{name}" if bias else None)

    def __call__(self, x: Any) -> Node:
        """The layer on a batch x, checked: (n, fan_in), numeric and finite."""
        return self.forward(checked_input(x, self.fan_in, self.what, self.model.dtype))

    def forward(self, x: Node) -> Node:
        """The layer on a Node already checked (by a model's entry point)."""
        params, bias_key = self.model.params, self.bias_key
        weight = Node(params[self.weight_key], self.weight_key)
        return linear(x, weight, None if bias_key is None else Node(params[bias_key], bias_key))


linear = primitive(ops.linear)  # x @ w + b as one node
