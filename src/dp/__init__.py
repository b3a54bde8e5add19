"""dp: small, fast, exact reverse-mode automatic differentiation on NumPy, with batch norm done right.

    data -> model.forward (builds Nodes from params) -> loss -> loss.grad(1)
         -> optimizer.step(params, grads) -> params

The public API, and nothing else, lives here.
"""

import time as _time

# First, before NumPy loads: `dp train` reports its time since this moment, imports included.
_IMPORTED_AT = _time.perf_counter()

from dp import checkpoint, data, layers, losses, models, ops, optim, train
from dp.gradcheck import GradcheckError, gradcheck
from dp.layers import NeuralNode
from dp.models import MLP, fold_batch_norm
from dp.node import Node, NonFiniteError, primitive
from dp.ops import concatenate, dot

__all__ = [
    "MLP",
    "GradcheckError",
    "NeuralNode",
    "Node",
    "NonFiniteError",
    "checkpoint",
    "concatenate",
    "data",
    "dot",
    "fold_batch_norm",
    "gradcheck",
    "layers",
    "losses",
    "models",
    "ops",
    "optim",
    "primitive",
    "train",
]
__version__ = "0.1.0"
