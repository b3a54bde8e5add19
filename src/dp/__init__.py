"""dp: small, fast, exact reverse-mode automatic differentiation on NumPy, with batch norm done right.

    data -> model.forward (builds Nodes from params) -> loss -> loss.grad(1)
         -> optimizer.step(params, grads) -> params

The public API lives here, and nothing else but the clock that `dp train` reads.

The original dp's names are here too, as its notebooks import them: ``Model``, ``SGD``,
``SGD_Momentum``, ``RMS_Prop``, ``Adam``, ``Helper`` and the namespace ``optimizer``
(`dp.classic`). ``dp.SGD`` is the original's (model, data, hyperparam dict); dp's own
optimizers are ``dp.optim.SGD``, ``dp.optim.Momentum``, ``dp.optim.RMSProp``, ``dp.optim.Adam``.
"""

import time as _time

# First, before NumPy loads: `dp train` reports its time since this moment, imports included.
_IMPORTED_AT = _time.perf_counter()

from dp import checkpoint, checks, classic, data, fused, layers, losses, models, ops, optim, train
from dp.checks import NonFiniteError
from dp.classic import SGD, Adam, Helper, Model, RMS_Prop, SGD_Momentum, optimizer
from dp.draw import Drawing, draw  # NumPy only: matplotlib is imported when a PNG is saved
from dp.finite_differences import GradcheckError, gradcheck
from dp.layers import NeuralNode
from dp.models import MLP, fold_batch_norm
from dp.node import Node, concatenate, dot, primitive

__all__ = [
    "SGD",
    "Adam",
    "Helper",
    "MLP",
    "Drawing",
    "Model",
    "RMS_Prop",
    "SGD_Momentum",
    "GradcheckError",
    "NeuralNode",
    "Node",
    "NonFiniteError",
    "checkpoint",
    "checks",
    "classic",
    "concatenate",
    "data",
    "dot",
    "draw",
    "fold_batch_norm",
    "fused",
    "gradcheck",
    "layers",
    "losses",
    "models",
    "ops",
    "optim",
    "optimizer",
    "primitive",
    "train",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``dp.sklearn``, ``dp.plots``, ``dp.experiment`` and ``dp.cli`` load on first use:
    they bring scikit-learn, matplotlib or joblib, which ``import dp`` does not."""
    if name in ("sklearn", "plots", "experiment", "cli"):
        import importlib

        return importlib.import_module(f"dp.{name}")
    raise AttributeError(f"module 'dp' has no attribute {name!r}")
