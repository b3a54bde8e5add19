"""The activations a layer or a model may apply by name: each is a `dp.Node` method."""

from __future__ import annotations

ACTIVATIONS = ("tanh", "sigmoid", "relu")  # Node methods a layer may apply after batch norm
