"""What networks are made of, built on `dp.Node`: the model base class (`NeuralNode`), its
layers in files by kind (`linear`, `conv`, `normalization`, `dropout`), the losses, weight
initializations and the models (`MLP`, `fold_batch_norm`).

Read in this order: `module` (one params dict, the layer builders), `linear`, `conv`
(convolution and pooling: windows, and the adjoint that takes gradients back through them),
`normalization` (batch norm: the paper's four lines, then its closed-form backward), `dropout`,
`losses`, `models`. `fused` is not part of the lesson: an opt-in, leaner copy of one hidden
layer for ``MLP(fused=True)``, held to the plain layers by tests.
"""

from dp.nn import init, losses
from dp.nn.activations import ACTIVATIONS
from dp.nn.conv import Conv2d, avg_pool2d, conv2d, max_pool2d
from dp.nn.dropout import Dropout, dropout
from dp.nn.inputs import as_input, checked_images, checked_input
from dp.nn.linear import Linear, linear
from dp.nn.models import CNN, MLP, fold_batch_norm, fold_layer
from dp.nn.module import NeuralNode, classes, is_state
from dp.nn.normalization import (
    BatchNorm,
    GroupNorm,
    LayerNorm,
    batch_norm,
    batch_norm2d,
    batch_norm_closed_form,
    batch_norm_composed,
    batch_norm_eval,
    batch_statistics,
    group_norm,
    instance_norm,
    layer_norm,
    layer_norm_composed,
    normalize,
)

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "CNN",
    "BatchNorm",
    "GroupNorm",
    "Conv2d",
    "Dropout",
    "LayerNorm",
    "Linear",
    "NeuralNode",
    "as_input",
    "avg_pool2d",
    "batch_norm",
    "batch_norm2d",
    "batch_norm_closed_form",
    "batch_norm_composed",
    "batch_norm_eval",
    "batch_statistics",
    "checked_images",
    "checked_input",
    "classes",
    "conv2d",
    "dropout",
    "fold_batch_norm",
    "fold_layer",
    "group_norm",
    "init",
    "instance_norm",
    "is_state",
    "layer_norm",
    "layer_norm_composed",
    "linear",
    "losses",
    "normalize",
    "max_pool2d",
]
