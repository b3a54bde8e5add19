"""dp: small, fast, exact reverse-mode automatic differentiation on NumPy, with batch norm done right.

    data -> model.forward (builds Nodes from params) -> loss -> loss.grad(1)
         -> optimizer.step(params, grads) -> params

The package is laid out as that loop, the lesson first, then the product built on it:

- the engine: `dp.node` (Node, the reverse sweep), `dp.ops` (the primitives),
  `dp.checks` (validation), `dp.finite_differences` (gradcheck);
- `dp.nn`: what networks are made of (the model base class, layers, convolution and
  pooling, losses, models);
- `dp.optim` (the optimizers), `dp.train` (fit), `dp.data` (the data sets);
- the product: `dp.studies` (reproductions), `dp.cli` (the `dp` command) and `dp.tools`
  (checkpoint, draw, plots, sklearn, classic). A lower room never imports a higher one.

The public API lives here. ``import dp`` loads what training needs; the tools load on first
use (``dp.checkpoint``, ``dp.draw``, ``dp.sklearn``, ...).

The original dp's names are here too, as its notebooks import them: ``Model``, ``SGD``,
``SGD_Momentum``, ``RMS_Prop``, ``Adam``, ``Helper`` and the namespace ``optimizer``
(`dp.tools.classic`). ``dp.SGD`` is the original's (model, data, hyperparam dict); dp's own
optimizers, with PyTorch's rules, are ``dp.optim.SGD``, ``dp.optim.Momentum``,
``dp.optim.RMSProp``, ``dp.optim.Adam``. Each refuses a call in the other's style with a
message naming the right class.
"""

import time as _time

# First, before NumPy loads: `dp train` reports its time since this moment, imports included.
_IMPORTED_AT = _time.perf_counter()

try:
    from dp import checks, data, nn, ops, optim, train
    from dp.checks import NonFiniteError
    from dp.finite_differences import GradcheckError, gradcheck
    from dp.nn import (
        CNN,
        MLP,
        NeuralNode,
        avg_pool2d,
        batch_norm,
        batch_norm2d,
        conv2d,
        fold_batch_norm,
        group_norm,
        instance_norm,
        layer_norm,
        max_pool2d,
        normalize,
    )
    from dp.node import Node, concatenate, dot, primitive
except KeyboardInterrupt:
    # Ctrl-C while the `dp` command starts (these imports are most of its start-up): the
    # command's one line and exit status 130, not a traceback. Any other importer gets the
    # KeyboardInterrupt, as from any import.
    from dp.cli import interrupted, started_as_command

    if started_as_command():
        raise SystemExit(interrupted()) from None
    raise

# name -> (module, attribute or None for the module itself): loaded on first use.
_LAZY = {
    "checkpoint": ("dp.tools.checkpoint", None),
    "classic": ("dp.tools.classic", None),
    "plots": ("dp.tools.plots", None),
    "sklearn": ("dp.tools.sklearn", None),
    "draw": ("dp.tools.draw", "draw"),
    "Drawing": ("dp.tools.draw", "Drawing"),
    "cli": ("dp.cli", None),
    "studies": ("dp.studies", None),
    "tools": ("dp.tools", None),
    **{name: ("dp.tools.classic", name) for name in ("Model", "SGD", "SGD_Momentum", "RMS_Prop", "Adam", "Helper")},
    "optimizer": ("dp.tools.classic", "optimizer"),
}
# Modules of an earlier layout, and where their contents are now.
_MOVED = {
    "layers": "dp.nn",
    "models": "dp.nn (dp.nn.models)",
    "losses": "dp.nn.losses",
    "init": "dp.nn.init",
    "reference": "dp.studies.reference",
    "experiment": "dp.studies.breast_cancer",
    "paper": "dp.studies.ioffe2015",
    "arguments": "dp.cli.arguments",
}

__all__ = [
    "CNN",
    "MLP",
    "GradcheckError",
    "NeuralNode",
    "Node",
    "NonFiniteError",
    "batch_norm",
    "batch_norm2d",
    "avg_pool2d",
    "checks",
    "concatenate",
    "conv2d",
    "data",
    "dot",
    "fold_batch_norm",
    "gradcheck",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "max_pool2d",
    "nn",
    "normalize",
    "ops",
    "optim",
    "primitive",
    "train",
    *_LAZY,
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """The tools and the original course's names, loaded on first use: they bring
    scikit-learn, matplotlib or joblib, or are not needed to train."""
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        loaded = importlib.import_module(module)
        return loaded if attribute is None else getattr(loaded, attribute)
    if name in _MOVED:
        raise AttributeError(f"module 'dp' has no attribute {name!r}: it is now {_MOVED[name]}")
    raise AttributeError(f"module 'dp' has no attribute {name!r}")
