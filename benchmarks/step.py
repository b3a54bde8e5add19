"""One training step (forward, backward, SGD update), timed for dp and the references.

    PYTHONPATH=src python benchmarks/step.py [--workloads seed,paper,wide-f64,cnn-f64,...]
                                             [--repeats R] [--quick] [--check-only] [--threads N]
                                             [--sweep [--plot speed.png] | --cnn-sweep]

Workloads (`WORKLOADS`), each in float64 and float32; by default all of them. `Workload`: the
reference network 30-20-10-1 on a batch of 50 with tanh and binary cross-entropy (``seed``);
the batch-norm paper's MNIST network 784-100-100-100-10 on a batch of 60 with sigmoid and
softmax cross-entropy (``paper``); 784-1024-1024-10 on a batch of 4096 with tanh and softmax
cross-entropy (``wide``). Every hidden layer is linear (no bias) -> batch norm (training
mode, eps 1e-5, moving averages with momentum 0.1) -> activation; the output layer has a
bias. `CNNWorkload` (``cnn-f64``, ``cnn-f32``): ``dp.CNN()``'s defaults on a batch of 64
random 28 x 28 images, conv 1 -> 8 3x3 padding 1 (no bias) -> batch norm per channel -> ReLU
-> 2x2 max pool -> conv 8 -> 16 (likewise) -> batch norm -> ReLU -> 2x2 max pool -> flatten
(784) -> linear 784 -> 10 with a bias -> softmax cross-entropy. The loss is summed over the
batch; SGD with learning rate ``lr`` (0.01 / batch).

Implementations (`IMPLEMENTATIONS` for the MLPs, `CNN_IMPLEMENTATIONS` for the CNN), all
starting from dp's initial parameters:

- ``dp``: the step `dp.train.fit` takes, `dp.train.train_step` with `dp.optim.SGD`: the
  graph built and walked, the data checked once (by `fit`), the loss and the update
  checked, all or nothing.
- ``dp graph``: the model (`dp.MLP`, `dp.CNN`) in the documented style,
  ``model.loss(x, y).grad(1)`` and a new params entry per gradient: the same graph
  without fit's safeguards.
- ``dp fused`` (MLPs only; `dp.CNN` has no fused layers): fit's step, as ``dp``, on
  ``dp.MLP(..., fused=True)``: each hidden layer one `dp.nn.fused` primitive (the same
  math, fewer arrays; opt-in).
- ``torch``: PyTorch eager on the CPU, ``nn.Sequential`` (Linear, BatchNorm1d, ... for the
  MLPs; Conv2d, BatchNorm2d, ReLU, MaxPool2d, ..., Flatten, Linear for the CNN); skipped if
  not installed.
- ``autograd`` (MLPs only: the CNN would need a convolution written for it): HIPS
  autograd, batch norm composed of mean, var and sqrt; skipped if not installed.
- ``floor``: plain NumPy with a hand-written closed-form backward pass: what no NumPy
  engine can beat by much. For the CNN (`ConvFloorStep`): im2col and one matrix product
  per convolution, on NCHW activations as dp's.
- ``floor nhwc`` (CNN only, `ChannelsLastFloorStep`): the same floor with the activations
  kept channels-last, to show whether that layout pays.

Before anything is timed, `check_gradients` compares every implementation's loss,
gradients and moving averages after one step with dp's graph, and the script exits 1
if any disagree. Then each workload's implementations are timed in this one
process, interleaved (best of ``--repeats`` blocks of several steps each), and
one step's peak memory is measured with `tracemalloc`. Markdown tables go to stdout
(the MLPs', then the CNN's, with how much im2col multiplies each convolution's input),
with the targets of the performance issues marked met or not met.

``--sweep`` times dp, dp graph, dp fused, the floor and PyTorch on the paper's network over batch
sizes 16 to 4096, and on 784-w-w-10 (batch 256) over widths 32 to 1024, with peak
memory, prints the table and draws it (log-log) into ``--plot`` (needs matplotlib).
``--cnn-sweep`` times dp, both floors and PyTorch on the CNN (float64) over batch sizes 8
to 256 and prints microseconds per step and per image, dp over the floors, and peak memory.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import dp

try:  # optional references: the benchmark runs without them and says so
    import torch
except ImportError:
    torch = None
try:
    import autograd
    import autograd.numpy as anp
    from autograd.tracer import getval
except ImportError:
    autograd = None

Arrays = dict[str, np.ndarray]  # by dp's parameter names, in dp's shapes

LEARNING_RATE = 0.01  # per row of the batch; see Workload.lr
EPS = 1e-5  # batch norm, as dp's and PyTorch's default
MOMENTUM = 0.1  # weight of the new batch in the moving averages: avg <- 0.9 avg + 0.1 batch


# ----- workloads -----


class Batches:
    """What every workload shares: its batch of random inputs and labels, and SGD's rate.
    A workload (a frozen dataclass) has ``batch``, ``dtype``, ``input_shape`` (of one
    example), ``classes``, ``binary`` and ``implementations`` (name -> class)."""

    batch: int
    dtype: type
    input_shape: tuple[int, ...]
    classes: int

    @property
    def lr(self) -> float:
        """SGD's learning rate for the summed loss: `LEARNING_RATE` / batch, i.e. 0.01 on
        the mean loss. 0.01 on the sum of 4096 rows would make training diverge
        within a few steps (tanh saturating, overflow, then dp rightly refusing a
        batch with inf), and timing would depend on how far each run got."""
        return LEARNING_RATE / self.batch

    def data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (batch, *input_shape) of ``dtype``, standard normal, and int64 labels (batch,)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, *self.input_shape)).astype(self.dtype)
        return x, rng.integers(0, self.classes, size=self.batch)


@dataclass(frozen=True)
class Workload(Batches):
    """A network (``sizes``, input first), a batch size and a dtype. One output means
    binary cross-entropy with 0/1 labels; k > 1 outputs softmax cross-entropy."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    dtype: type = np.float64
    activation: str = "tanh"  # of the hidden layers: "tanh" or "sigmoid"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.sizes[:1]

    @property
    def binary(self) -> bool:
        return self.sizes[-1] == 1

    @property
    def classes(self) -> int:
        return 2 if self.binary else self.sizes[-1]

    @property
    def depth(self) -> int:
        """The number of linear layers; the last one is the output layer."""
        return len(self.sizes) - 1

    @property
    def implementations(self) -> dict[str, type]:
        return IMPLEMENTATIONS

    def model(self, fused: bool = False) -> dp.nn.models.MLP:
        return dp.nn.models.MLP(self.sizes, activation=self.activation, seed=0, dtype=self.dtype, fused=fused)


@dataclass(frozen=True)
class CNNWorkload(Batches):
    """`dp.CNN` on a batch of images (batch, *image): per entry of ``channels``, a block of a
    ``kernel`` x ``kernel`` convolution (padding kernel // 2, stride 1, no bias) -> batch
    norm per channel -> ReLU -> 2 x 2 max pool; then flatten -> linear to ``classes``
    (with a bias) -> softmax cross-entropy, summed over the batch. The defaults are
    `dp.CNN`'s: MNIST's 28 x 28 images, channels 8 and 16, 3 x 3 kernels, 10 classes."""

    name: str
    batch: int
    dtype: type = np.float64
    image: tuple[int, int, int] = (1, 28, 28)
    channels: tuple[int, ...] = (8, 16)
    kernel: int = 3
    classes: int = 10
    binary = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.image

    @property
    def conv_inputs(self) -> list[tuple[int, int, int]]:
        """The (channels, height, width) of each convolution's input, for one image: the
        image, then what each block but the last gives the next."""
        return [self.image, *dp.nn.models.feature_maps(self.image, self.channels, self.kernel)[:-1]]

    @property
    def implementations(self) -> dict[str, type]:
        return CNN_IMPLEMENTATIONS

    def model(self) -> dp.nn.models.CNN:
        return dp.nn.models.CNN(self.image, self.channels, self.kernel, classes=self.classes, seed=0, dtype=self.dtype)


AnyWorkload = Workload | CNNWorkload

SEED = (30, 20, 10, 1)
PAPER = (784, 100, 100, 100, 10)  # Ioffe & Szegedy (2015), section 4.1: MNIST, 3 hidden layers of 100, sigmoid
WIDE = (784, 1024, 1024, 10)
CNN_BATCH = 64
WORKLOADS: dict[str, AnyWorkload] = {
    "seed": Workload("seed", SEED, 50),
    "seed-f32": Workload("seed-f32", SEED, 50, np.float32),
    "paper": Workload("paper", PAPER, 60, activation="sigmoid"),
    "paper-f32": Workload("paper-f32", PAPER, 60, np.float32, activation="sigmoid"),
    "wide-f64": Workload("wide-f64", WIDE, 4096),
    "wide-f32": Workload("wide-f32", WIDE, 4096, np.float32),
    "cnn-f64": CNNWorkload("cnn-f64", CNN_BATCH),
    "cnn-f32": CNNWorkload("cnn-f32", CNN_BATCH, np.float32),
}


def model_for(workload: AnyWorkload, fused: bool = False) -> dp.nn.models.Classifier:
    """dp's network for the workload, with its initial parameters (seed 0); ``fused``: `dp.MLP`'s
    option (the CNN has none)."""
    return workload.model(fused=True) if fused else workload.model()


def hidden_layers(workload: Workload) -> range:
    """The numbers of the linear layers followed by batch norm and tanh: 1 .. depth - 1."""
    return range(1, workload.depth)


# ----- implementations -----
#
# Each takes the workload and dp's initial parameters (copied, never shared) and
# offers: prepare(x, y) -> its own batch (conversions done once, not timed);
# step(batch), the timed training step; loss_and_gradients(batch) -> (loss,
# {dp name: gradient in dp's shape}), one forward and backward pass with no
# update; moving_averages() -> {dp name: array in dp's shape}.


class DpGraphStep:
    """dp in its documented style: ``grads = model.loss(x, y).grad(1)``, then a new
    params entry per gradient. Moving averages are updated by the forward pass."""

    name = "dp graph"
    fused = False  # MLP's option

    def __init__(self, workload: Workload, params: Arrays) -> None:
        self.lr = workload.lr
        self.model = model_for(workload, self.fused)
        self.model.set_param(params)

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, y  # dp takes the arrays as they are

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        model = self.model
        grads = model.loss(*batch).grad(1)
        model.params.update({k: model.params[k] - self.lr * grads[k] for k in grads})

    def loss_and_gradients(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[float, Arrays]:
        loss = self.model.loss(*batch)
        return loss.value.item(), loss.grad(1)

    def moving_averages(self) -> Arrays:
        return {k: v for k, v in self.model.params.items() if k.startswith("avg_")}


class DpStep(DpGraphStep):
    """The step `dp.train.fit` takes: `dp.train.train_step` with `dp.optim.SGD` (the graph,
    the loss and the update checked, all or nothing), on rows and labels checked once (here,
    by `prepare`, untimed, as fit checks them before its first step)."""

    name = "dp"

    def __init__(self, workload: Workload, params: Arrays) -> None:
        super().__init__(workload, params)
        self.optimizer = dp.optim.SGD(lr=workload.lr)

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.checked_data(x, y)

    def step(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        dp.train.train_step(self.model, self.optimizer, *batch)


class DpFusedStep(DpStep):
    """The step `dp.train.fit` takes, as `DpStep`, on ``dp.MLP(..., fused=True)``: each
    hidden layer one `dp.nn.fused` primitive."""

    name = "dp fused"
    fused = True


class FloorStep:
    """Plain vectorized NumPy, forward and closed-form backward written by hand.

    The forward pass keeps what the backward pass needs and nothing more: each
    hidden layer's normalized input ``xhat`` (computed in the buffer of the
    linear output), ``1 / sqrt(var + eps)`` and the activation's output. The backward
    pass takes the activation's derivative from its output (tanh' = 1 - h^2,
    sigmoid' = h (1 - h)), batch norm's closed form
    ``dx = gamma * inv / N * (N g - sum(g) - xhat * sum(g xhat))`` and the losses'
    ``sigmoid(z) - y`` / ``softmax(z) - onehot``, and skips the gradient with
    respect to the data. Temporaries are reused with ``out=`` where that is the
    obvious thing to do; no threads or libraries beyond NumPy.
    """

    name = "floor"

    def __init__(self, workload: Workload, params: Arrays) -> None:
        self.workload = workload
        self.params = {k: v.copy() for k, v in params.items()}  # updated in place

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = y.reshape(-1, 1).astype(x.dtype) if self.workload.binary else y
        return x, labels, np.arange(len(y))

    def step(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        _, grads = self.loss_and_gradients(batch)
        for k, g in grads.items():
            self.params[k] -= self.workload.lr * g

    def loss_and_gradients(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[float, Arrays]:
        x, y, rows = batch
        p, last = self.params, self.workload.depth
        inputs, caches = [], []  # per hidden layer: its input; (xhat, inv, activation output)
        h = x
        for i in hidden_layers(self.workload):
            inputs.append(h)
            xhat, inv, h = self._hidden_forward(i, h)
            caches.append((xhat, inv, h))
        z = h @ p[f"weight_l{last}"]
        z += p[f"bias_l{last}"]
        loss, g = _binary_loss(z, y) if z.shape[1] == 1 else _softmax_loss(z, y, rows)
        grads = {f"weight_l{last}": h.T @ g, f"bias_l{last}": g.sum(axis=0, keepdims=True)}
        w = p[f"weight_l{last}"]
        for i in reversed(hidden_layers(self.workload)):
            xhat, inv, h = caches.pop()  # popping frees each layer's cache once it is used
            ga = self._hidden_backward(i, g @ w.T, xhat, inv, h, grads)
            grads[f"weight_l{i}"] = inputs.pop().T @ ga
            g, w = ga, p[f"weight_l{i}"]
        return float(loss), grads

    def _hidden_forward(self, i: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.params
        a = h @ p[f"weight_l{i}"]  # a fresh array: centred and scaled in place into xhat
        xhat, inv, out = _batch_norm(a, p[f"gamma_bn{i}"], p[f"beta_bn{i}"], ROWS, p, f"bn{i}")
        FLOOR_ACTIVATIONS[self.workload.activation][0](out)
        return xhat, inv, out

    def _hidden_backward(
        self, i: int, gh: np.ndarray, xhat: np.ndarray, inv: np.ndarray, h: np.ndarray, grads: Arrays
    ) -> np.ndarray:
        """From the gradient wrt layer i's activation output, store dgamma and dbeta in
        ``grads`` and return the gradient wrt the linear output."""
        g = FLOOR_ACTIVATIONS[self.workload.activation][1](gh, h)
        d, grads[f"gamma_bn{i}"], grads[f"beta_bn{i}"] = _batch_norm_backward(
            g, xhat, inv, self.params[f"gamma_bn{i}"], ROWS
        )
        return d

    def moving_averages(self) -> Arrays:
        return {k: v for k, v in self.params.items() if k.startswith("avg_")}


ROWS = (0,)  # batch norm's axes for rows (n, features)


def _batch_norm(
    a: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axes: tuple[int, ...], params: Arrays, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode batch norm of a fresh array ``a`` over ``axes`` (``ROWS`` for rows; the
    batch and the positions for images), gamma and beta broadcasting against it: (xhat,
    computed in a's buffer, ``1 / sqrt(var + eps)`` in gamma's shape, the output). Moves the
    averages ``avg_mean_{name}`` and ``avg_variance_{name}`` of ``params`` (kept in their shape)."""
    one, two = _sum_subscripts(a.ndim, axes)
    m = a.size // gamma.size
    mean = np.einsum(one, a).reshape(gamma.shape) / m  # einsum: fewer steps than a.mean in NumPy's Python
    a -= mean
    var = np.einsum(two, a, a).reshape(gamma.shape) / m  # biased; einsum avoids a square of a's size
    inv = 1 / np.sqrt(var + EPS)
    xhat = np.multiply(a, inv, out=a)
    out = xhat * gamma
    out += beta
    for key, batch_value in ((f"avg_mean_{name}", mean), (f"avg_variance_{name}", var)):
        params[key] = (1 - MOMENTUM) * params[key] + MOMENTUM * batch_value.reshape(params[key].shape)
    return xhat, inv, out


def _batch_norm_backward(
    g: np.ndarray, xhat: np.ndarray, inv: np.ndarray, gamma: np.ndarray, axes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From g, the gradient wrt `_batch_norm`'s output: the gradients wrt its input, gamma and
    beta, by the compact closed form ``dx = gamma * inv / m * (m g - sum(g) - xhat * sum(g xhat))``
    with m values per feature and the sums over ``axes``."""
    m, (one, two) = g.size // gamma.size, _sum_subscripts(g.ndim, axes)
    dgamma = np.einsum(two, g, xhat).reshape(gamma.shape)
    # sum is the faster on rows of many features; einsum on images, whose few channels make sum's loops short
    dbeta = g.sum(axis=axes, keepdims=True) if axes == ROWS else np.einsum(one, g).reshape(gamma.shape)
    d = xhat * (dgamma / m)  # gamma * inv * (g - dbeta / m - xhat * dgamma / m), in one buffer
    d += dbeta / m
    np.subtract(g, d, out=d)
    d *= gamma * inv
    return d, dgamma, dbeta


@functools.cache
def _sum_subscripts(ndim: int, axes: tuple[int, ...]) -> tuple[str, str]:
    """einsum's subscripts that sum an array of ``ndim`` axes over ``axes``, and the product of
    two such arrays: ("ij->j", "ij,ij->j") for ``ROWS`` of a matrix."""
    letters = "ijklmn"[:ndim]
    kept = "".join(letter for axis, letter in enumerate(letters) if axis not in axes)
    return f"{letters}->{kept}", f"{letters},{letters}->{kept}"


def _tanh(a: np.ndarray) -> None:
    np.tanh(a, out=a)


def _tanh_backward(gh: np.ndarray, h: np.ndarray) -> np.ndarray:
    g = h * h  # gh * (1 - h^2), in one buffer
    np.subtract(1, g, out=g)
    g *= gh
    return g


def _sigmoid(a: np.ndarray) -> None:
    """In place, 1 / (1 + exp(-a)) in four calls; exp overflows (silently, the result 0) only
    where the sigmoid is smaller than the smallest normal number."""
    with np.errstate(over="ignore"):
        np.negative(a, out=a)
        np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)


def _sigmoid_backward(gh: np.ndarray, h: np.ndarray) -> np.ndarray:
    g = gh * h  # gh * h * (1 - h), in one buffer
    g *= 1 - h
    return g


# name: (apply in place, the gradient of its input from that of its output gh and the output h)
FLOOR_ACTIVATIONS = {"tanh": (_tanh, _tanh_backward), "sigmoid": (_sigmoid, _sigmoid_backward)}


def _binary_loss(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed binary cross-entropy of logits z (n, 1), labels y (n, 1), and its gradient."""
    e = np.exp(-np.abs(z))  # never overflows
    loss = (np.maximum(z, 0) - y * z + np.log1p(e)).sum()
    sigmoid = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return loss, sigmoid - y


def _softmax_loss(z: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed softmax cross-entropy of logits z (n, k), integer labels y (n,), and its gradient."""
    z -= z.max(axis=1, keepdims=True)  # the largest exponent is 0: no overflow
    e = np.exp(z)
    total = e.sum(axis=1, keepdims=True)
    loss = (np.log(total).ravel() - z[rows, y]).sum()
    e /= total
    e[rows, y] -= 1
    return loss, e


class ConvFloorStep(FloorStep):
    """The floor of the CNN workload: plain NumPy, forward and closed-form backward written by
    hand, on NCHW images as dp's. Per block:

    - forward: im2col (`sliding_window_view` of the zero-padded images, copied into one row
      per output position and one column per (input channel, kernel row, kernel column), the
      order of dp's weights (O, C, kh, kw)); one matrix product with the kernels; its rows put
      back into NCHW (a transposed copy); batch norm per channel over the batch and the
      positions, in that buffer (xhat); ReLU in place; a 2 x 2 max pool that keeps which of
      each window's four inputs is its first maximum (as dp and PyTorch choose);
    - backward: ReLU's derivative taken on the pooled outputs (the gradient reaches only each
      window's maximum, where ReLU' is 1 exactly when the pooled value is > 0, four times fewer
      values); the pooled gradient scattered to those maxima; batch norm's compact closed form
      (as `FloorStep`); the weight gradient as one matrix product with the kept columns; the
      input gradient as one matrix product into columns, added back onto the padded images
      (col2im: one strided addition per kernel position) and cropped; none for the data.

    Then flatten, linear and softmax cross-entropy as `FloorStep`, and its in-place SGD.
    ``channel_axis`` says the layout of the activations: 1, NCHW; `ChannelsLastFloorStep`
    runs the same code on NHWC.
    """

    name = "floor"
    channel_axis = 1  # NCHW

    @property
    def spatial(self) -> tuple[int, int]:
        """The height and width axes of the activations."""
        return (2, 3) if self.channel_axis == 1 else (1, 2)

    def loss_and_gradients(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[float, Arrays]:
        x, y, rows = batch
        p, blocks = self.params, range(1, len(self.workload.channels) + 1)
        caches = []  # per block: what its backward pass needs (`_block_forward`)
        h = x
        for i in blocks:
            h, cache = self._block_forward(i, h)
            caches.append(cache)
        maps = np.moveaxis(h, self.channel_axis, 1)  # a view, NCHW: dp flattens each image's (C, H, W)
        flat = maps.reshape(len(h), -1)  # a copy only for NHWC
        z = flat @ p["weight_fc1"]
        z += p["bias_fc1"]
        loss, g = _softmax_loss(z, y, rows)
        grads = {"weight_fc1": flat.T @ g, "bias_fc1": g.sum(axis=0, keepdims=True)}
        g = np.moveaxis((g @ p["weight_fc1"].T).reshape(maps.shape), 1, self.channel_axis)
        for i in reversed(blocks):
            g = self._block_backward(i, g, caches.pop(), grads, to_input=i > 1)  # popping frees each cache
        return float(loss), grads

    def _block_forward(self, i: int, a: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        """Convolution, batch norm, ReLU and max pool of block i on activations ``a``: the
        pooled activations, and what the backward pass needs."""
        p, w = self.params, self.params[f"weight_conv{i}"]
        columns = _im2col(a, w.shape[2:], self.spatial, self.channel_axis)
        rows = columns @ w.reshape(len(w), -1).T  # (N * H * W, O): one row per output position
        shape = [a.shape[0], *(a.shape[axis] for axis in self.spatial), len(w)]
        z = np.ascontiguousarray(np.moveaxis(rows.reshape(shape), 3, self.channel_axis))
        gamma, beta = self._per_channel(i, "gamma", "beta")
        xhat, inv, out = _batch_norm(z, gamma, beta, self._norm_axes, p, f"bn{i}")
        np.maximum(out, 0, out=out)
        pooled, first = _max_pool(out, self.spatial)
        return pooled, (a.shape, columns, xhat, inv, pooled, first)

    def _block_backward(
        self, i: int, g: np.ndarray, cache: tuple[Any, ...], grads: Arrays, to_input: bool
    ) -> np.ndarray | None:
        """From the gradient wrt block i's pooled output, store the gradients of its weights,
        gamma and beta in ``grads`` and return the gradient wrt its input (if ``to_input``)."""
        in_shape, columns, xhat, inv, pooled, first = cache
        p, w = self.params, self.params[f"weight_conv{i}"]
        g *= pooled > 0  # ReLU' at each window's maximum, the only input its gradient reaches
        g = _max_pool_backward(g, first, xhat.shape, self.spatial)
        (gamma,) = self._per_channel(i, "gamma")
        d, dgamma, dbeta = _batch_norm_backward(g, xhat, inv, gamma, self._norm_axes)
        shape = p[f"gamma_bn{i}"].shape  # dp's (1, C, 1, 1)
        grads[f"gamma_bn{i}"], grads[f"beta_bn{i}"] = dgamma.reshape(shape), dbeta.reshape(shape)
        d_rows = np.moveaxis(d, self.channel_axis, 3).reshape(-1, len(w))  # as `rows`: a copy for NCHW
        grads[f"weight_conv{i}"] = (d_rows.T @ columns).reshape(w.shape)
        if not to_input:
            return None
        return _col2im(d_rows @ w.reshape(len(w), -1), in_shape, w.shape[2:], self.spatial, self.channel_axis)

    @property
    def _norm_axes(self) -> tuple[int, ...]:
        """Batch norm's axes: every axis but the channels'."""
        return tuple(axis for axis in range(4) if axis != self.channel_axis)

    def _per_channel(self, i: int, *kinds: str) -> tuple[np.ndarray, ...]:
        """Block i's per-channel parameters (dp's (1, C, 1, 1)) shaped to broadcast against the activations."""
        return tuple(np.moveaxis(self.params[f"{kind}_bn{i}"], 1, self.channel_axis) for kind in kinds)


class ChannelsLastFloorStep(ConvFloorStep):
    """`ConvFloorStep` with the activations kept NHWC (channels last), a layout that may
    be cheaper: the rows of the im2col product are the convolution's output as it is (no
    transposed copy forward, none back), batch norm reduces over the rows of an
    (N * H * W, C) matrix, and im2col reads each window's channels side by side. The input
    is converted once, untimed, by `prepare`; only the flattening before the linear layer
    puts the (small) last feature maps into dp's (C, H, W) order, and back."""

    name = "floor nhwc"
    channel_axis = 3  # NHWC

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y, np.arange(len(y))


def _at(spatial: tuple[int, int], rows: slice, columns: slice) -> tuple[slice, ...]:
    """The index of 4-D activations that takes ``rows`` and ``columns`` along the ``spatial``
    axes (height, width) and everything along the others."""
    index = [slice(None)] * 4
    index[spatial[0]], index[spatial[1]] = rows, columns
    return tuple(index)


def _padded(shape: tuple[int, ...], spatial: tuple[int, int], padding: tuple[int, int]) -> list[int]:
    """The shape of activations of ``shape`` with ``padding`` (ph, pw) zeros on each side of each image."""
    padded = list(shape)
    padded[spatial[0]] += 2 * padding[0]
    padded[spatial[1]] += 2 * padding[1]
    return padded


def _im2col(a: np.ndarray, kernel: tuple[int, int], spatial: tuple[int, int], channel_axis: int) -> np.ndarray:
    """The im2col matrix of activations ``a`` for a stride-1 convolution with a ``kernel``
    (kh, kw), padded with kh // 2 and kw // 2 zeros: one row per output position (n, p, q),
    one column per (c, i, j), (N * OH * OW, C * kh * kw)."""
    (kh, kw), (ph, pw) = kernel, (kernel[0] // 2, kernel[1] // 2)
    padded = np.zeros(_padded(a.shape, spatial, (ph, pw)), a.dtype)
    padded[_at(spatial, slice(ph, ph + a.shape[spatial[0]]), slice(pw, pw + a.shape[spatial[1]]))] = a
    windows = sliding_window_view(padded, kernel, axis=spatial)  # (..., kh, kw): a view
    windows = np.moveaxis(windows, channel_axis, 3)  # (N, OH, OW, C, kh, kw); nothing moves for NHWC
    n, oh, ow, c = windows.shape[:4]
    return windows.reshape(n * oh * ow, c * kh * kw)  # the copy: im2col


def _col2im(
    columns: np.ndarray, shape: tuple[int, ...], kernel: tuple[int, int], spatial: tuple[int, int], channel_axis: int
) -> np.ndarray:
    """The adjoint of `_im2col`: activations of ``shape`` to which every entry of ``columns``
    is added at the input position it was read from (a view into the padded sum)."""
    (kh, kw), (ph, pw) = kernel, (kernel[0] // 2, kernel[1] // 2)
    height, width = (shape[axis] for axis in spatial)
    oh, ow = height + 2 * ph - kh + 1, width + 2 * pw - kw + 1
    parts = columns.reshape(shape[0], oh, ow, -1, kh, kw)
    parts = np.moveaxis(parts, 3, channel_axis)  # (..., kh, kw), the activations' layout first
    total = np.zeros(_padded(shape, spatial, (ph, pw)), columns.dtype)
    for i in range(kh):
        for j in range(kw):
            total[_at(spatial, slice(i, i + oh), slice(j, j + ow))] += parts[..., i, j]
    return total[_at(spatial, slice(ph, ph + height), slice(pw, pw + width))]


POOL_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))  # a 2 x 2 window's inputs, in row-major order


def _max_pool(a: np.ndarray, spatial: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """2 x 2 max pool, stride 2, of activations ``a``: the pooled activations, and for each
    output which of its window's four inputs (0 to 3, row-major) is the first maximum."""
    oh, ow = (a.shape[axis] // 2 for axis in spatial)
    corners = np.stack([a[_corner(spatial, i, j, oh, ow)] for i, j in POOL_CORNERS])  # (4, ...pooled shape)
    pooled = corners.max(axis=0)
    below = corners[:3] != pooled  # per corner but the last: not its window's maximum
    # The first maximum's corner: 0, unless corner 0 is below the maximum, then 1, unless corner 1
    # is too, ...: a few passes over the pooled values, where argmax along the stack axis loops per window.
    first = below[0] * (1 + below[1] * (1 + below[2].astype(np.int8)))
    return pooled, first


def _max_pool_backward(
    g: np.ndarray, first: np.ndarray, shape: tuple[int, ...], spatial: tuple[int, int]
) -> np.ndarray:
    """The gradient wrt `_max_pool`'s input of ``shape``: each output's gradient ``g`` at its
    window's first maximum, 0 elsewhere."""
    oh, ow = g.shape[spatial[0]], g.shape[spatial[1]]
    d = np.zeros(shape, g.dtype)
    for k, (i, j) in enumerate(POOL_CORNERS):
        np.multiply(g, first == k, out=d[_corner(spatial, i, j, oh, ow)])
    return d


def _corner(spatial: tuple[int, int], i: int, j: int, oh: int, ow: int) -> tuple[slice, ...]:
    """The index of the inputs at position (i, j) of every 2 x 2 window of an oh x ow pool."""
    return _at(spatial, slice(i, i + 2 * oh, 2), slice(j, j + 2 * ow, 2))


class TorchStep:
    """PyTorch eager on the CPU: ``nn.Sequential`` of Linear(bias=False), BatchNorm1d,
    Tanh, ..., Linear; ``BCEWithLogitsLoss`` or ``CrossEntropyLoss``, summed.

    ``update="optim"`` steps with ``torch.optim.SGD`` (zero_grad, forward, backward,
    step); ``update="manual"`` sets the gradients to None and subtracts ``lr * grad``
    under ``torch.no_grad()``. The benchmark times both and reports the faster,
    so that PyTorch is not handicapped by the choice.
    """

    name = "torch"

    def __init__(self, workload: AnyWorkload, params: Arrays, update: str = "optim") -> None:
        if torch is None:
            raise ImportError("PyTorch is not installed")
        if update not in ("optim", "manual"):
            raise ValueError(f"update must be 'optim' or 'manual', not {update!r}")
        self.workload, self.update = workload, update
        self.dtype = torch.float64 if workload.dtype == np.float64 else torch.float32
        self.net = torch.nn.Sequential(*self._layers())
        self.loss_fn = (torch.nn.BCEWithLogitsLoss if workload.binary else torch.nn.CrossEntropyLoss)(reduction="sum")
        with torch.no_grad():
            for key, tensor in self._tensors().items():
                tensor.copy_(torch.from_numpy(_to_torch_layout(key, params[key])))
        self.shapes = {k: v.shape for k, v in params.items()}  # to give PyTorch's values back in dp's shapes
        self.parameters = list(self.net.parameters())
        self.optimizer = torch.optim.SGD(self.parameters, lr=workload.lr)
        # PyTorch's running_var holds the unbiased batch variance; keep the start to
        # convert it back to dp's biased average (moving_averages).
        self.initial_variance = {k: params[k].copy() for k in params if k.startswith("avg_variance_")}

    def _layers(self) -> list[Any]:
        sizes, layers = self.workload.sizes, []
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [
                torch.nn.Linear(fan_in, fan_out, bias=False, dtype=self.dtype),
                torch.nn.BatchNorm1d(fan_out, eps=EPS, momentum=MOMENTUM, dtype=self.dtype),
                torch.nn.Tanh() if self.workload.activation == "tanh" else torch.nn.Sigmoid(),
            ]
        return [*layers, torch.nn.Linear(sizes[-2], sizes[-1], dtype=self.dtype)]

    def _tensors(self) -> dict[str, Any]:
        """dp's parameter and state names -> the tensors PyTorch keeps them in."""
        modules, last = list(self.net), self.workload.depth
        tensors = {}
        for i in hidden_layers(self.workload):
            tensors[f"weight_l{i}"] = modules[3 * (i - 1)].weight
            tensors.update(_norm_tensors(f"bn{i}", modules[3 * (i - 1) + 1]))
        tensors[f"weight_l{last}"], tensors[f"bias_l{last}"] = modules[-1].weight, modules[-1].bias
        return tensors

    def _values_per_feature(self) -> dict[str, int]:
        """{avg_variance key: how many values each of its batch variances is taken over}."""
        return {f"avg_variance_bn{i}": self.workload.batch for i in hidden_layers(self.workload)}

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        if self.workload.binary:
            labels = torch.from_numpy(y.reshape(-1, 1)).to(self.dtype)
        else:
            labels = torch.from_numpy(y)  # int64 class indices
        return torch.from_numpy(x), labels

    def step(self, batch: tuple[Any, Any]) -> None:
        x, y = batch
        if self.update == "optim":
            self.optimizer.zero_grad()
            self.loss_fn(self.net(x), y).backward()
            self.optimizer.step()
            return
        for p in self.parameters:
            p.grad = None
        self.loss_fn(self.net(x), y).backward()
        with torch.no_grad():
            for p in self.parameters:
                p.sub_(p.grad, alpha=self.workload.lr)

    def loss_and_gradients(self, batch: tuple[Any, Any]) -> tuple[float, Arrays]:
        x, y = batch
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.net(x), y)
        loss.backward()
        grads = {
            k: _from_torch_layout(k, t.grad.numpy(), self.shapes[k])
            for k, t in self._tensors().items()
            if not k.startswith("avg_")
        }
        return loss.item(), grads

    def moving_averages(self) -> Arrays:
        averages, counts = {}, self._values_per_feature()
        for k, t in self._tensors().items():
            if k.startswith("avg_mean_"):
                averages[k] = _from_torch_layout(k, t.numpy(), self.shapes[k])
            elif k.startswith("avg_variance_"):
                # running_var = (1 - m) start + m * var * n / (n - 1); dp stores the biased var
                n, kept = counts[k], (1 - MOMENTUM) * self.initial_variance[k]
                averages[k] = kept + (_from_torch_layout(k, t.numpy(), self.shapes[k]) - kept) * ((n - 1) / n)
        return averages


class TorchCNNStep(TorchStep):
    """PyTorch eager on the CPU for the CNN workload: ``nn.Sequential`` of, per block,
    Conv2d(bias=False), BatchNorm2d, ReLU, MaxPool2d(2); then Flatten and Linear;
    ``CrossEntropyLoss``, summed. Updates as `TorchStep`'s."""

    def _layers(self) -> list[Any]:
        w, layers = self.workload, []
        for fan_in, fan_out in zip((w.image[0], *w.channels), w.channels):
            layers += [
                torch.nn.Conv2d(fan_in, fan_out, w.kernel, padding=w.kernel // 2, bias=False, dtype=self.dtype),
                torch.nn.BatchNorm2d(fan_out, eps=EPS, momentum=MOMENTUM, dtype=self.dtype),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
            ]
        flat = int(np.prod(dp.nn.models.feature_maps(w.image, w.channels, w.kernel)[-1]))
        return [*layers, torch.nn.Flatten(), torch.nn.Linear(flat, w.classes, dtype=self.dtype)]

    def _tensors(self) -> dict[str, Any]:
        modules, tensors = list(self.net), {}
        for i in range(1, len(self.workload.channels) + 1):
            tensors[f"weight_conv{i}"] = modules[4 * (i - 1)].weight
            tensors.update(_norm_tensors(f"bn{i}", modules[4 * (i - 1) + 1]))
        tensors["weight_fc1"], tensors["bias_fc1"] = modules[-1].weight, modules[-1].bias
        return tensors

    def _values_per_feature(self) -> dict[str, int]:
        """Per channel, the batch times the positions of its convolution's output (the size of its input)."""
        w = self.workload
        return {f"avg_variance_bn{i}": w.batch * h * wd for i, (_, h, wd) in enumerate(w.conv_inputs, start=1)}


def _norm_tensors(name: str, norm: Any) -> dict[str, Any]:
    """dp's names of a batch-norm layer's parameters and state -> PyTorch's tensors."""
    return {
        f"gamma_{name}": norm.weight,
        f"beta_{name}": norm.bias,
        f"avg_mean_{name}": norm.running_mean,
        f"avg_variance_{name}": norm.running_var,
    }


def _to_torch_layout(key: str, value: np.ndarray) -> np.ndarray:
    """dp stores linear weights (fan_in, fan_out) and per-feature values as (1, f) rows or
    (1, C, 1, 1); PyTorch stores linear weights (out, in) and vectors (f,). Convolution
    weights are (out, in, kh, kw) in both."""
    if key.startswith("weight_"):
        return np.ascontiguousarray(value.T) if value.ndim == 2 else value
    return value.reshape(-1)


def _from_torch_layout(key: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """PyTorch's value of dp's entry ``key`` in dp's layout and ``shape``, a copy."""
    return value.T.copy() if key.startswith("weight_") and value.ndim == 2 else value.reshape(shape).copy()


class AutogradStep:
    """HIPS autograd: the network written with ``autograd.numpy``, batch norm composed
    of mean, var and sqrt; ``autograd.value_and_grad`` of the loss with respect to a
    dict of the learnable parameters; SGD builds a new dict."""

    name = "autograd"

    def __init__(self, workload: Workload, params: Arrays) -> None:
        if autograd is None:
            raise ImportError("HIPS autograd is not installed")
        self.workload = workload
        learnable = {k for k in params if k.startswith(("weight_", "bias_", "gamma_", "beta_"))}  # not the state
        self.params = {k: params[k].copy() for k in learnable}
        self.averages = {k: v.copy() for k, v in params.items() if k.startswith("avg_")}
        self.value_and_grad = autograd.value_and_grad(self._loss)

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = y.reshape(-1, 1).astype(x.dtype) if self.workload.binary else y
        return x, labels, np.arange(len(y))

    def _loss(self, params: dict[str, Any], x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Any:
        """The summed loss; updates the moving averages as a side effect, as dp's forward does."""
        h, last = x, self.workload.depth
        for i in hidden_layers(self.workload):
            a = anp.dot(h, params[f"weight_l{i}"])
            mean = anp.mean(a, axis=0, keepdims=True)
            var = anp.var(a, axis=0, keepdims=True)
            xhat = (a - mean) / anp.sqrt(var + EPS)
            h = AUTOGRAD_ACTIVATIONS[self.workload.activation](params[f"gamma_bn{i}"] * xhat + params[f"beta_bn{i}"])
            for key, batch_value in ((f"avg_mean_bn{i}", mean), (f"avg_variance_bn{i}", var)):
                self.averages[key] = (1 - MOMENTUM) * self.averages[key] + MOMENTUM * getval(batch_value)
        z = anp.dot(h, params[f"weight_l{last}"]) + params[f"bias_l{last}"]
        if self.workload.binary:
            return anp.sum(anp.maximum(z, 0) - y * z + anp.log1p(anp.exp(-anp.abs(z))))
        shifted = z - anp.max(z, axis=1, keepdims=True)
        log_p = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.sum(log_p[rows, y])

    def step(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        _, grads = self._value_and_grad(batch)
        self.params = {k: v - self.workload.lr * grads[k] for k, v in self.params.items()}

    def _value_and_grad(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[Any, Arrays]:
        # autograd's tanh vjp is g / cosh(x)**2: cosh overflows to inf (in float32 from
        # |x| > 89), which gives the right gradient, 0, with a warning that is noise.
        with np.errstate(over="ignore"):
            return self.value_and_grad(self.params, *batch)

    def loss_and_gradients(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[float, Arrays]:
        loss, grads = self._value_and_grad(batch)
        return float(loss), grads

    def moving_averages(self) -> Arrays:
        return dict(self.averages)


# sigmoid as 0.5 (1 + tanh(a / 2)): autograd's own composition, which never overflows
AUTOGRAD_ACTIVATIONS = {"tanh": lambda a: anp.tanh(a), "sigmoid": lambda a: 0.5 * (anp.tanh(0.5 * a) + 1)}

IMPLEMENTATIONS = {
    "dp": DpStep,
    "dp graph": DpGraphStep,
    "dp fused": DpFusedStep,
    "torch": TorchStep,
    "autograd": AutogradStep,
    "floor": FloorStep,
}
CNN_IMPLEMENTATIONS = {  # no dp fused (dp.CNN has no fused layers), no autograd
    "dp": DpStep,
    "dp graph": DpGraphStep,
    "torch": TorchCNNStep,
    "floor": ConvFloorStep,
    "floor nhwc": ChannelsLastFloorStep,
}
REFERENCES = ("torch", "autograd", "floor", "floor nhwc")
DP_ROWS = ("dp", "dp graph", "dp fused")  # timed on every workload that has them; each checked against dp graph
FLOORS = ("floor", "floor nhwc")


def available() -> list[str]:
    """The names of the reference implementations whose libraries are installed."""
    missing = {"torch": torch is None, "autograd": autograd is None}
    return [name for name in REFERENCES if not missing.get(name, False)]


# ----- correctness -----


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    atol_scaled: bool = False  # atol times the largest magnitude in dp's array


# float64: every implementation computes the same formulas; only the order of
# floating-point sums differs, so agreement to ~1e-12 is expected and 1e-9 is a
# loose bound. float32 (unit roundoff 6e-8): the weight gradients are sums over
# thousands of rows, and batch norm's backward pass subtracts nearly equal sums,
# so entries near 0 carry an error proportional to the array's scale, not to
# their own size; hence atol is relative to the array's largest entry. Observed
# on wide-f32: |difference| / max |gradient| <= 3.4e-6 (PyTorch), 30x below 1e-4;
# an absolute 1e-4 would fail (differences up to 1.4e-4 on gradients up to 73).
# On cnn-f32, where batch norm sums 50,176 values per channel: <= 2.3e-5 (floor nhwc's
# moving mean of bn1, summed in another order). float64 observed: <= 1e-14 relative
# on the MLPs, <= 1e-13 on the CNN.
TOLERANCES = {np.dtype(np.float64): Tolerance(1e-9, 1e-10), np.dtype(np.float32): Tolerance(1e-3, 1e-4, True)}


class GradientMismatch(AssertionError):
    """An implementation's loss, gradients or moving averages disagree with dp's."""


def check_gradients(workload: AnyWorkload, implementations: Sequence[str]) -> None:
    """Compare one step of each named implementation with dp's, from the same start.

    dp's initial parameters are copied into every implementation; each computes the
    loss and the gradients on the workload's batch (and updates its moving
    averages). Every gradient must have dp's keys, shape and dtype and agree with
    dp's within `TOLERANCES` (for float32, atol is scaled by the largest entry of
    dp's array); so must the loss and the moving averages. Raises `GradientMismatch`
    naming the workload, implementation and parameter; returns None if all agree.
    Nothing is timed. ``KeyError`` for an implementation the workload does not have
    (``workload.implementations``).
    """
    dtype = np.dtype(workload.dtype)
    tolerance = TOLERANCES[dtype]
    x, y = workload.data()
    reference = DpGraphStep(workload, model_for(workload).get_param())
    initial = reference.model.get_param()
    loss, grads = reference.loss_and_gradients(reference.prepare(x, y))
    averages = reference.moving_averages()
    for name in implementations:
        if name == "dp graph":
            continue
        implementation = workload.implementations[name](workload, initial)
        their_loss, their_grads = implementation.loss_and_gradients(implementation.prepare(x, y))
        where = f"{workload.name}: {name} vs dp"
        if sorted(their_grads) != sorted(grads):
            raise GradientMismatch(f"{where}: gradient names {sorted(their_grads)} != {sorted(grads)}")
        _compare(f"{where}, loss", np.array(their_loss), np.array(loss), tolerance)
        theirs = {**their_grads, **implementation.moving_averages()}
        for key, want in {**grads, **averages}.items():
            got = theirs[key]
            if got.shape != want.shape or got.dtype != want.dtype:
                raise GradientMismatch(
                    f"{where}, {key}: shape {got.shape} dtype {got.dtype}, dp has {want.shape} {want.dtype}"
                )
            _compare(f"{where}, {key}", got, want, tolerance)


def _compare(where: str, got: np.ndarray, want: np.ndarray, tolerance: Tolerance) -> None:
    atol = tolerance.atol * (float(np.abs(want).max()) if tolerance.atol_scaled else 1.0)
    try:
        np.testing.assert_allclose(got, want, rtol=tolerance.rtol, atol=atol, err_msg=where)
    except AssertionError as error:
        raise GradientMismatch(str(error)) from None


# ----- timing and memory -----


def best_step_times(steps: dict[str, Callable[[], None]], repeats: int, min_block: float) -> dict[str, float]:
    """Seconds per step of each callable: the best, over ``repeats`` rounds, of a block
    of k consecutive steps divided by k.

    k is chosen per callable during a warm-up so that a block lasts at least
    ``min_block`` seconds (as `timeit.Timer.autorange` does). Each round runs one
    block of every callable, in an order rotated by one each round, so that all
    see the same state of this shared machine. Garbage collection stays on: it is
    part of what a training step costs.
    """
    counts = {name: _steps_per_block(step, min_block) for name, step in steps.items()}
    best = dict.fromkeys(steps, float("inf"))
    names = list(steps)
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            best[name] = min(best[name], _seconds_for(steps[name], counts[name]) / counts[name])
    return best


def _steps_per_block(step: Callable[[], None], min_block: float) -> int:
    """Warm up with one step, then find k in 1, 2, 4, 8, ... such that k steps take >= min_block."""
    step()
    k = 1
    while _seconds_for(step, k) < min_block:
        k *= 2
    return k


def _seconds_for(call: Callable[[], Any], count: int) -> float:
    """Wall-clock seconds for ``count`` consecutive calls."""
    start = time.perf_counter()
    for _ in range(count):
        call()
    return time.perf_counter() - start


def peak_step_memory(step: Callable[[], None]) -> int:
    """Bytes of the largest memory held during one step beyond what is held between
    steps, as seen by `tracemalloc` (NumPy reports its arrays to it; PyTorch's own
    allocator does not). One traced step runs first, so that arrays replaced by
    the step (parameters, averages) are in the baseline."""
    gc.collect()
    tracemalloc.start()
    try:
        step()
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


# ----- the benchmark -----


@dataclass
class Result:
    workload: AnyWorkload
    seconds: dict[str, float]  # per step, by implementation ("torch" is the faster variant)
    peak_bytes: dict[str, int]
    torch_update: str | None = None  # which PyTorch variant was faster


def run_workload(workload: AnyWorkload, names: Sequence[str], repeats: int, min_block: float) -> Result:
    """Time the named implementations that the workload has, interleaved, and measure the
    peak memory of those that keep their arrays in NumPy (dp's rows and the floors)."""
    x, y = workload.data()
    initial = model_for(workload).get_param()
    variants: dict[str, Any] = {}
    for name in (name for name in names if name in workload.implementations):
        implementation = workload.implementations[name]
        if name == "torch":  # both ways of updating; the faster one is reported
            variants["torch optim"] = implementation(workload, initial, update="optim")
            variants["torch manual"] = implementation(workload, initial, update="manual")
        else:
            variants[name] = implementation(workload, initial)
    steps = {}
    for name, implementation in variants.items():
        batch = implementation.prepare(x, y)
        steps[name] = lambda implementation=implementation, batch=batch: implementation.step(batch)
    seconds = best_step_times(steps, repeats, min_block)
    result = Result(workload, seconds, {})
    if "torch optim" in seconds:
        faster = min(("optim", "manual"), key=lambda update: seconds[f"torch {update}"])
        seconds["torch"], result.torch_update = seconds[f"torch {faster}"], faster
    result.peak_bytes = {name: peak_step_memory(steps[name]) for name in (*DP_ROWS, *FLOORS) if name in steps}
    return result


TARGETS = {  # from the one-path issue (#20) and issue 21; target: (workloads, the ratio of a result, its upper bound)
    "seed: dp <= 1.3 x floor (time)": (("seed", "seed-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.3),
    "paper: dp <= 1.1 x floor (time)": (("paper", "paper-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.1),
    "wide: dp <= 1.02 x floor (time)": (("wide-f64", "wide-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.02),
    "wide: dp <= 1.2 x floor (peak memory)": (
        ("wide-f64", "wide-f32"),
        lambda r: _ratio(r.peak_bytes, "dp", "floor"),
        1.2,
    ),
    "cnn: dp <= 1.2 x floor (time)": (("cnn-f64", "cnn-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.2),
}


def _ratio(values: dict[str, float], a: str, b: str) -> float | None:
    return values[a] / values[b] if a in values and b in values else None


# ----- the report: Markdown tables of columns, each a header and how to fill a result's cell -----

Column = tuple[str, Callable[[Result], str]]


def _us(name: str) -> Callable[[Result], str]:
    """Microseconds per step of one implementation."""
    return lambda r: f"{r.seconds[name] * 1e6:,.0f}" if name in r.seconds else "n/a"


def _us_per_image(name: str) -> Callable[[Result], str]:
    return lambda r: f"{r.seconds[name] * 1e6 / r.workload.batch:,.1f}" if name in r.seconds else "n/a"


def _mb(name: str) -> Callable[[Result], str]:
    """Peak MB of one implementation's step (2**20 bytes), 3 decimals below 10."""

    def cell(r: Result) -> str:
        if name not in r.peak_bytes:
            return "n/a"
        megabytes = r.peak_bytes[name] / 2**20
        return f"{megabytes:,.1f}" if megabytes >= 10 else f"{megabytes:.3f}"

    return cell


def _over(a: str, b: str, measure: str = "seconds") -> Callable[[Result], str]:
    """a's time (or, with measure="peak_bytes", peak memory) over b's."""
    return lambda r: _times(_ratio(getattr(r, measure), a, b))


def _table(results: Sequence[Result], columns: Sequence[Column]) -> list[str]:
    """A Markdown table: the headers, the rule (the first column left-aligned, numbers right), a row per result."""
    return [
        "| " + " | ".join(header for header, _ in columns) + " |",
        "|---|" + "--:|" * (len(columns) - 1),
        *("| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in results),
    ]


WORKLOAD_COLUMN: Column = ("workload", lambda r: r.workload.name)
MLP_COLUMNS: tuple[Column, ...] = (
    WORKLOAD_COLUMN,
    *((f"{name} us/step", _us(name)) for name in DP_ROWS),
    ("PyTorch us/step", _us("torch")),
    ("autograd us/step", _us("autograd")),
    ("NumPy floor us/step", _us("floor")),  # benchmarks/against.py finds the columns by these headers
    *((f"{name}/floor", _over(name, "floor")) for name in DP_ROWS),
    ("dp/PyTorch", _over("dp", "torch")),
    ("peak MB dp", _mb("dp")),
    ("peak MB dp fused", _mb("dp fused")),
    ("peak MB floor", _mb("floor")),
    ("ratio", _over("dp", "floor", "peak_bytes")),
)
CNN_COLUMNS: tuple[Column, ...] = (
    WORKLOAD_COLUMN,
    ("dp us/step", _us("dp")),
    ("dp graph us/step", _us("dp graph")),
    ("PyTorch us/step", _us("torch")),
    ("NumPy floor us/step", _us("floor")),
    ("floor nhwc us/step", _us("floor nhwc")),
    ("dp/floor", _over("dp", "floor")),
    ("dp graph/floor", _over("dp graph", "floor")),
    ("dp/floor nhwc", _over("dp", "floor nhwc")),
    ("floor nhwc/floor", _over("floor nhwc", "floor")),
    ("dp/PyTorch", _over("dp", "torch")),
    *((f"peak MB {name}", _mb(name)) for name in ("dp", "dp graph", *FLOORS)),
    ("peak dp/floor", _over("dp", "floor", "peak_bytes")),
)


def report(results: Sequence[Result], torch_warning: str | None = None) -> str:
    """The Markdown tables (the MLP workloads', then the CNN's), the targets and the notes; a
    ``torch_warning`` marks the verdicts that involve PyTorch as unreliable and is printed last."""
    lines = [
        *_tables(results),
        "us/step: the best of the rounds, each a block of steps;",
        "peak MB: the most memory one step holds beyond what is held between steps, by tracemalloc",
        "(which sees NumPy's arrays, not PyTorch's allocator); MB = 2**20 bytes.",
        "",
        *_fused_table(results),
        "Targets:",
        *_verdicts(results, torch_warning),
    ]
    updates = {r.workload.name: r.torch_update for r in results if r.torch_update}
    if updates:
        lines += [
            "",
            "PyTorch update used (the faster of torch.optim.SGD and a manual no_grad update): "
            + ", ".join(f"{k}: {'optim.SGD' if v == 'optim' else 'manual'}" for k, v in updates.items()),
        ]
    if torch_warning:
        lines += ["", f"WARNING: {torch_warning}"]
    return "\n".join(lines)


def _tables(results: Sequence[Result]) -> list[str]:
    """The MLP workloads' table and the CNN's, for those measured, then what their rows are."""
    mlp = [r for r in results if isinstance(r.workload, Workload)]
    cnn = [r for r in results if isinstance(r.workload, CNNWorkload)]
    lines = [*_table(mlp, MLP_COLUMNS), ""] if mlp else []
    if cnn:
        lines += [*_table(cnn, CNN_COLUMNS), ""]
    if mlp:
        lines.append("dp fused: fit's step on MLP(fused=True).")
    return lines + (_cnn_notes(cnn) if cnn else [])


def _cnn_notes(results: Sequence[Result]) -> list[str]:
    """What the CNN table's rows are, and how much im2col multiplies each convolution's input."""
    lines = [
        "cnn: dp.CNN() (conv 3x3 -> batch norm -> ReLU -> 2x2 max pool, twice; linear 784 -> 10). floor:",
        "hand-written NumPy im2col on NCHW, as dp; floor nhwc: the same on channels-last activations",
        "(floor nhwc/floor < 1: that layout pays).",
    ]
    seen = set()
    for r in results:
        key = (r.workload.batch, np.dtype(r.workload.dtype).itemsize)
        if key not in seen:
            seen.add(key)
            lines.append(f"im2col, {r.workload.name}: " + "; ".join(im2col_growth(r.workload)) + ".")
    return lines


def im2col_growth(workload: CNNWorkload) -> list[str]:
    """Per convolution of the workload, from the shapes: its input (N, C, H, W), its im2col
    matrix (N * OH * OW, C * kh * kw), and the matrix's bytes over the input's (kh * kw for a
    stride-1 convolution that keeps the size)."""
    k, pad, n = workload.kernel, workload.kernel // 2, workload.batch
    itemsize = np.dtype(workload.dtype).itemsize
    parts = []
    for i, (c, h, w) in enumerate(workload.conv_inputs, start=1):
        rows, width = n * (h + 2 * pad - k + 1) * (w + 2 * pad - k + 1), c * k * k
        growth = rows * width / (n * c * h * w)
        parts.append(
            f"conv{i} {n} x {c} x {h} x {w} -> columns {rows:,} x {width}, {growth:.1f} x the input's bytes "
            f"({rows * width * itemsize / 2**20:,.1f} MB)"
        )
    return parts


def _fused_table(results: Sequence[Result]) -> list[str]:
    """What the opt-in fused layer buys: dp's time and peak memory over dp fused's, per workload
    (the project keeps a second implementation only where it is 1.2 x faster or 1.3 x leaner)."""
    fused = [r for r in results if "dp fused" in r.seconds]
    if not fused:
        return []
    columns = (
        WORKLOAD_COLUMN,
        ("time, dp over dp fused", _over("dp", "dp fused")),
        ("peak memory, dp over dp fused", _over("dp", "dp fused", "peak_bytes")),
    )
    return [*_table(fused, columns), ""]


def _verdicts(results: Sequence[Result], torch_warning: str | None) -> list[str]:
    """One line per target and workload measured: the ratio, met or not."""
    by_name, lines = {r.workload.name: r for r in results}, []
    for target, (names, ratio_of, bound) in TARGETS.items():
        for name in (name for name in names if name in by_name):
            ratio = ratio_of(by_name[name])
            verdict = "n/a" if ratio is None else ("met" if ratio <= bound else "NOT met")
            if torch_warning and "PyTorch" in target:
                verdict += " (unreliable: see WARNING)"
            lines.append(f"- {target}, {name}: {_times(ratio)} -> {verdict}")
    return lines


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def torch_threads_stall() -> str | None:
    """A warning if PyTorch's intra-op threads stall on this machine right now, else None.

    On a shared machine whose other core is busy, PyTorch's OpenMP threads can
    wait milliseconds at every parallel region, even for tiny tensors (which NumPy
    never spreads over threads): the seed workload then measures the waiting, not
    PyTorch. Detected by timing BatchNorm1d on a 50 x 20 batch with PyTorch's
    threads and with one; the threads setting is left as it was.
    """
    threads = torch.get_num_threads() if torch is not None else 1
    if threads == 1:
        return None
    norm, x = torch.nn.BatchNorm1d(20), torch.randn(50, 20)

    def best_microseconds() -> float:
        return 1e6 * min(_seconds_for(lambda: norm(x), 20) for _ in range(5)) / 20

    with_threads = best_microseconds()
    torch.set_num_threads(1)
    alone = best_microseconds()
    torch.set_num_threads(threads)
    if with_threads < 10 * alone:
        return None
    return (
        f"PyTorch's {threads} threads are stalling on this machine now (BatchNorm1d on 50 x 20: "
        f"{with_threads:,.0f} us with {threads} threads, {alone:,.0f} us with 1), so its seed figure "
        "measures that waiting. For a comparison of the libraries, add --threads 1 (NumPy's BLAS and PyTorch alike)."
    )


def machine_info() -> str:
    """One line: CPU, cores, Python, NumPy and its BLAS, PyTorch and its threads."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    parts = [
        f"CPU: {cpu}",
        f"cores: {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        f"Python {platform.python_version()}",
        f"NumPy {np.__version__} ({blas_info()}, {blas_threads() or '?'} threads)",
        f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else "PyTorch: not installed",
        f"autograd {_version('autograd')}" if autograd else "autograd: not installed",
    ]
    return "Machine: " + "; ".join(parts)


def use_threads(count: int | None) -> None:
    """Give NumPy's BLAS and PyTorch the same number of threads: ``count``, or else as
    many as NumPy's BLAS uses by default (all cores, unless the environment says otherwise)."""
    if count is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=count, user_api="blas")  # stays in force: nothing restores it
    if torch is not None:
        torch.set_num_threads(count or blas_threads() or len(os.sched_getaffinity(0)))


def blas_info() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except Exception:  # show_config's format varies across NumPy versions; this is only a label
        return "BLAS unknown"


def blas_threads() -> int | None:
    """The number of threads NumPy's BLAS uses, if threadpoolctl (optional) can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from: %(default)s")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per workload (default 5, quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds: a rough figure fast")
    parser.add_argument("--check-only", action="store_true", help="only check the gradients; exit 0 or 1")
    sweeps = parser.add_mutually_exclusive_group()
    sweeps.add_argument("--sweep", action="store_true", help="the MLP scaling sweep instead of the workloads")
    sweeps.add_argument("--cnn-sweep", action="store_true", help="the CNN's batch-size sweep instead of the workloads")
    parser.add_argument("--plot", default=None, help="with --sweep: draw it into this PNG (none unless given)")
    parser.add_argument("--out", default=None, help="also write the report (Markdown) into this file")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for NumPy's BLAS and PyTorch alike (needs threadpoolctl); default: the machine's default",
    )
    return _validated(parser, parser.parse_args(argv))


def _validated(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> argparse.Namespace:
    """The arguments with the workloads as a list and the default repeats; a parser error for bad ones."""
    arguments.workloads = _workload_names(parser, arguments.workloads)
    if arguments.repeats is None:
        arguments.repeats = 3 if arguments.quick else 5
    if arguments.repeats < 1:
        parser.error("--repeats must be at least 1")
    threads = arguments.threads
    if threads is not None and (threads < 1 or blas_threads() is None):
        parser.error("--threads needs a positive count, and threadpoolctl to set NumPy's BLAS threads")
    return arguments


def _workload_names(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The names in the comma-separated ``text``; a parser error for one not in `WORKLOADS`."""
    names = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    use_threads(arguments.threads)
    references = announced_references()
    workloads = chosen_workloads(arguments)
    sweeping = arguments.sweep or arguments.cnn_sweep
    if not checked(workloads, ["dp", "dp fused", *references], verbose=not sweeping):
        return 1
    if arguments.check_only:
        return 0
    min_block = 0.05 if arguments.quick else 0.2
    if arguments.sweep:
        return run_sweep(references, arguments.repeats, min_block / 2, arguments.plot)
    if arguments.cnn_sweep:
        return run_cnn_sweep(references, arguments.repeats, min_block / 2, arguments.out)
    return run_workloads(workloads, references, arguments.repeats, min_block, arguments.out)


def chosen_workloads(arguments: argparse.Namespace) -> Sequence[AnyWorkload]:
    """The points of the sweep asked for, else the workloads named by ``--workloads``."""
    if arguments.sweep:
        return [w for points in sweep_workloads().values() for w in points]
    if arguments.cnn_sweep:
        return cnn_sweep_workloads()
    return [WORKLOADS[name] for name in arguments.workloads]


def announced_references() -> list[str]:
    """The references installed, after printing the machine and the ones skipped."""
    references = available()
    skipped = [name for name in REFERENCES if name not in references]
    print(machine_info())
    print(f"Skipped (not installed): {', '.join(skipped)}" if skipped else "All references installed")
    return references


def run_workloads(
    workloads: Sequence[AnyWorkload], references: Sequence[str], repeats: int, min_block: float, out: str | None = None
) -> int:
    """Time each workload and print the report (and write it, with the machine, to ``out``)."""
    torch_warning = torch_threads_stall() if "torch" in references else None  # matters on small steps only
    results = timed(workloads, (*DP_ROWS, *references), repeats, min_block)
    text = report(results, torch_warning)
    print()
    print(text)
    write_report(out, text)
    return 0


def write_report(out: str | None, text: str) -> None:
    """Write ``text`` to the file ``out`` (if given), after the command that made it and the machine."""
    if out is not None:
        command = " ".join(["python benchmarks/step.py", *sys.argv[1:]])
        Path(out).write_text(f"`{command}`\n\n{machine_info()}\n\n{text}\n")


def timed(workloads: Sequence[AnyWorkload], names: Sequence[str], repeats: int, min_block: float) -> list[Result]:
    """`run_workload` on each workload in turn, saying which on stderr."""
    results = []
    for workload in workloads:
        print(f"timing {workload.name} ...", file=sys.stderr, flush=True)
        results.append(run_workload(workload, names, repeats, min_block))
    return results


def checked(workloads: Sequence[AnyWorkload], implementations: Sequence[str], verbose: bool = True) -> bool:
    """`check_gradients` on each workload, of the implementations it has; False (and the
    mismatch on stderr) if one fails."""
    for workload in workloads:
        names = [name for name in implementations if name in workload.implementations]
        try:
            check_gradients(workload, names)
        except GradientMismatch as error:
            print(f"Gradient check FAILED: {error}", file=sys.stderr)
            return False
        if verbose:
            others = ", ".join(names)
            print(f"Gradient check passed: {workload.name} (loss, gradients, moving averages of {others} = dp graph's)")
    if not verbose:
        print(f"Gradient check passed on all {len(workloads)} points of the sweep")
    return True


# ----- the scaling sweep -----

SWEEP_BATCHES = (16, 64, 256, 1024, 4096)  # the paper's network, sigmoid
SWEEP_WIDTHS = (32, 64, 128, 256, 512, 1024)  # 784-w-w-10, tanh, batch SWEEP_WIDTH_BATCH
SWEEP_WIDTH_BATCH = 256
SWEEP_SHOWN = (*DP_ROWS, "floor", "torch")


def sweep_workloads() -> dict[str, list[Workload]]:
    """The sweep's points: {"batch": the paper's network over batch sizes, "width": 784-w-w-10 over widths}."""
    return {
        "batch": [Workload(f"paper, batch {b}", PAPER, b, activation="sigmoid") for b in SWEEP_BATCHES],
        "width": [
            Workload(f"784-{w}-{w}-10, batch {SWEEP_WIDTH_BATCH}", (784, w, w, 10), SWEEP_WIDTH_BATCH)
            for w in SWEEP_WIDTHS
        ],
    }


def run_sweep(references: Sequence[str], repeats: int, min_block: float, plot: str | None) -> int:
    """Time every point of the sweep (dp, dp graph, dp fused, the floor, PyTorch), print the table and
    draw it into ``plot`` (a PNG) if given."""
    shown = [name for name in (*DP_ROWS, *references) if name in SWEEP_SHOWN]
    sweeps = {axis: timed(points, shown, repeats, min_block) for axis, points in sweep_workloads().items()}
    print()
    print(sweep_report(sweeps))
    if plot:
        draw_sweep(sweeps, plot)
        print(f"\nDrawn: {plot}")
    return 0


def sweep_report(sweeps: dict[str, list[Result]]) -> str:
    """The sweep as a Markdown table: microseconds per step and peak MB per point."""
    lines = [
        "| point | dp us | dp graph us | dp fused us | floor us | PyTorch us | dp/floor | dp graph/floor "
        "| dp fused/floor | peak MB dp | peak MB dp fused | peak MB floor |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for results in sweeps.values():
        for r in results:
            cells = [f"{r.seconds[n] * 1e6:,.0f}" if n in r.seconds else "n/a" for n in SWEEP_SHOWN]
            ratios = [_ratio(r.seconds, n, "floor") for n in DP_ROWS]
            memory = [
                f"{r.peak_bytes[n] / 2**20:,.2f}" if n in r.peak_bytes else "n/a" for n in ("dp", "dp fused", "floor")
            ]
            lines.append(
                "| " + " | ".join([r.workload.name, *cells, *(f"{x:.2f}" for x in ratios if x), *memory]) + " |"
            )
    return "\n".join(lines)


def draw_sweep(sweeps: dict[str, list[Result]], path: str) -> None:
    """Against batch size (left) and width (right), log-log: time per step (top), time as a
    multiple of the floor's (middle, where overhead shows), peak memory (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 2, figsize=(11, 11), sharex="col")
    for column, axis in enumerate(("batch", "width")):
        _sweep_column(axes[:, column], axis, sweeps[axis])
    figure.suptitle("One training step (forward, backward, SGD): where overhead dominates and where BLAS does")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


SWEEP_STYLES = {"dp": "o-", "dp graph": "s--", "dp fused": "v-.", "floor": "k^-", "torch": "d:"}
SWEEP_LABELS = {
    "dp": "dp (fit's step)",
    "dp graph": "dp graph (loss.grad)",
    "dp fused": "dp fused (fit's step, fused=True)",
    "floor": "hand-written NumPy",
    "torch": "PyTorch eager",
}


def _sweep_column(axes: Any, axis: str, results: list[Result]) -> None:
    """One column of `draw_sweep`: the three panels of one sweep."""
    xs = SWEEP_BATCHES if axis == "batch" else SWEEP_WIDTHS
    for name in SWEEP_SHOWN:
        style, label = SWEEP_STYLES[name], SWEEP_LABELS[name]
        if all(name in r.seconds for r in results):
            axes[0].plot(xs, [r.seconds[name] * 1e3 for r in results], style, label=label)
            axes[1].plot(xs, [r.seconds[name] / r.seconds["floor"] for r in results], style, label=label)
        if all(name in r.peak_bytes for r in results):
            axes[2].plot(xs, [r.peak_bytes[name] / 2**20 for r in results], style, label=label)
    _label_sweep_column(axes, axis)


def _label_sweep_column(axes: Any, axis: str) -> None:
    """Titles, labels, scales, grids and legends of one column of `draw_sweep`."""
    title = {
        "batch": "784-100-100-100-10 (the paper's), sigmoid, against batch size",
        "width": f"784-w-w-10, tanh, batch {SWEEP_WIDTH_BATCH}, against width",
    }[axis]
    axes[0].set_title(title, fontsize=9)
    axes[0].set_ylabel("ms per training step")
    axes[1].set_ylabel("time / hand-written NumPy's")
    axes[1].axhline(1.1, color="grey", linewidth=0.8, linestyle="--")
    axes[2].set_ylabel("peak MB in one step (tracemalloc)")
    axes[2].set_xlabel("batch size" if axis == "batch" else "hidden width")
    for ax, log_y in zip(axes, (True, False, True)):
        ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)


# ----- the CNN's batch-size sweep -----

CNN_SWEEP_BATCHES = (8, 16, 32, 64, 128, 256)
CNN_SWEEP_SHOWN = ("dp", *FLOORS, "torch")


def cnn_sweep_workloads() -> list[CNNWorkload]:
    """The CNN workload (float64) at each batch size of `CNN_SWEEP_BATCHES`."""
    return [CNNWorkload(f"cnn, batch {b}", b) for b in CNN_SWEEP_BATCHES]


CNN_SWEEP_COLUMNS: tuple[Column, ...] = (
    ("point", lambda r: r.workload.name),
    *((f"{name} us/step", _us(name)) for name in ("dp", *FLOORS)),
    ("PyTorch us/step", _us("torch")),
    *((f"{name} us/image", _us_per_image(name)) for name in ("dp", *FLOORS)),
    ("PyTorch us/image", _us_per_image("torch")),
    ("dp/floor", _over("dp", "floor")),
    ("dp/floor nhwc", _over("dp", "floor nhwc")),
    ("dp/PyTorch", _over("dp", "torch")),
    *((f"peak MB {name}", _mb(name)) for name in ("dp", *FLOORS)),
)


def run_cnn_sweep(references: Sequence[str], repeats: int, min_block: float, out: str | None = None) -> int:
    """Time dp, the floors and PyTorch on the CNN at every batch size of the sweep, print the
    table and write it to ``out`` (if given)."""
    shown = [name for name in ("dp", *references) if name in CNN_SWEEP_SHOWN]
    results = timed(cnn_sweep_workloads(), shown, repeats, min_block)
    table = "\n".join(_table(results, CNN_SWEEP_COLUMNS))
    growth = "; ".join(im2col_growth(results[0].workload))
    text = f"{table}\n\ndp.CNN(), float64; us/image = us/step / batch; im2col, {results[0].workload.name}: {growth}."
    print()
    print(text)
    write_report(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
