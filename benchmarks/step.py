"""One training step (forward, backward, SGD update), timed for dp and three references.

    PYTHONPATH=src python benchmarks/step.py [--workloads seed,paper,wide-f64,...]
                                             [--repeats R] [--quick] [--check-only] [--threads N]
                                             [--sweep [--plot docs/speed.png]]

Workloads (`WORKLOADS`), each in float64 and float32: the reference network 30-20-10-1
on a batch of 50 with tanh and binary cross-entropy (``seed``); the batch-norm paper's
MNIST network 784-100-100-100-10 on a batch of 60 with sigmoid and softmax
cross-entropy (``paper``); 784-1024-1024-10 on a batch of 4096 with tanh and softmax
cross-entropy (``wide``). Every hidden layer is linear (no bias) -> batch norm
(training mode, eps 1e-5, moving averages with momentum 0.1) -> activation; the output
layer has a bias; the loss is summed over the batch; SGD with learning rate ``Workload.lr``.

Implementations (`IMPLEMENTATIONS`), all starting from dp's initial parameters:

- ``dp``: the step `dp.train.fit` takes, `dp.train.train_step` with `dp.optim.SGD`: the
  graph built and walked, the data checked once (by `fit`), the loss and the update
  checked, all or nothing.
- ``dp graph``: `dp.MLP` in the documented style, ``model.loss(x, y).grad(1)`` and a
  new params entry per gradient: the same graph without fit's safeguards.
- ``dp fused``: fit's step, as ``dp``, on ``dp.MLP(..., fused=True)``: each hidden layer
  one `dp.nn.fused` primitive (the same math, fewer arrays; opt-in).
- ``torch``: PyTorch eager on the CPU, ``nn.Sequential`` (skipped if not installed).
- ``autograd``: HIPS autograd, batch norm composed of mean, var and sqrt (skipped
  if not installed).
- ``floor``: plain NumPy with a hand-written closed-form backward pass: what no
  NumPy engine can beat by much.

Before anything is timed, `check_gradients` compares every implementation's loss,
gradients and moving averages after one step with dp's graph, and the script exits 1
if any disagree. Then each workload's implementations are timed in this one
process, interleaved (best of ``--repeats`` blocks of several steps each), and
one step's peak memory is measured with `tracemalloc`. A Markdown table goes to
stdout, with the targets of the performance issue marked met or not met.

``--sweep`` times dp, dp graph, dp fused, the floor and PyTorch on the paper's network over batch
sizes 16 to 4096, and on 784-w-w-10 (batch 256) over widths 32 to 1024, with peak
memory, prints the table and draws it (log-log) into ``--plot`` (needs matplotlib).
"""

from __future__ import annotations

import argparse
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


@dataclass(frozen=True)
class Workload:
    """A network (``sizes``, input first), a batch size and a dtype. One output means
    binary cross-entropy with 0/1 labels; k > 1 outputs softmax cross-entropy."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    dtype: type = np.float64
    activation: str = "tanh"  # of the hidden layers: "tanh" or "sigmoid"

    @property
    def classes(self) -> int:
        return 2 if self.sizes[-1] == 1 else self.sizes[-1]

    @property
    def lr(self) -> float:
        """SGD's learning rate for the summed loss: `LEARNING_RATE` / batch, i.e. 0.01 on
        the mean loss. 0.01 on the sum of 4096 rows would make training diverge
        within a few steps (tanh saturating, overflow, then dp rightly refusing a
        batch with inf), and timing would depend on how far each run got."""
        return LEARNING_RATE / self.batch

    @property
    def depth(self) -> int:
        """The number of linear layers; the last one is the output layer."""
        return len(self.sizes) - 1

    def data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (batch, sizes[0]) of ``dtype``, standard normal, and int64 labels (batch,)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, self.sizes[0])).astype(self.dtype)
        return x, rng.integers(0, self.classes, size=self.batch)


SEED = (30, 20, 10, 1)
PAPER = (784, 100, 100, 100, 10)  # Ioffe & Szegedy (2015), section 4.1: MNIST, 3 hidden layers of 100, sigmoid
WIDE = (784, 1024, 1024, 10)
WORKLOADS = {
    "seed": Workload("seed", SEED, 50),
    "seed-f32": Workload("seed-f32", SEED, 50, np.float32),
    "paper": Workload("paper", PAPER, 60, activation="sigmoid"),
    "paper-f32": Workload("paper-f32", PAPER, 60, np.float32, activation="sigmoid"),
    "wide-f64": Workload("wide-f64", WIDE, 4096),
    "wide-f32": Workload("wide-f32", WIDE, 4096, np.float32),
}


def model_for(workload: Workload, fused: bool = False) -> dp.nn.models.MLP:
    """dp's network for the workload, with its initial parameters (seed 0); ``fused``: `dp.MLP`'s option."""
    return dp.nn.models.MLP(workload.sizes, activation=workload.activation, seed=0, dtype=workload.dtype, fused=fused)


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
        labels = y.reshape(-1, 1).astype(x.dtype) if self.workload.sizes[-1] == 1 else y
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
        n = a.shape[0]
        mean = np.einsum("ij->j", a)[None, :] / n  # einsum: fewer steps than a.mean in NumPy's Python
        a -= mean
        var = np.einsum("ij,ij->j", a, a)[None, :] / n  # biased; einsum avoids an (n, f) square
        inv = 1 / np.sqrt(var + EPS)
        xhat = np.multiply(a, inv, out=a)
        out = xhat * p[f"gamma_bn{i}"]
        out += p[f"beta_bn{i}"]
        FLOOR_ACTIVATIONS[self.workload.activation][0](out)
        for key, batch_value in ((f"avg_mean_bn{i}", mean), (f"avg_variance_bn{i}", var)):
            p[key] = (1 - MOMENTUM) * p[key] + MOMENTUM * batch_value
        return xhat, inv, out

    def _hidden_backward(
        self, i: int, gh: np.ndarray, xhat: np.ndarray, inv: np.ndarray, h: np.ndarray, grads: Arrays
    ) -> np.ndarray:
        """From the gradient wrt layer i's activation output, store dgamma and dbeta in
        ``grads`` and return the gradient wrt the linear output."""
        n = gh.shape[0]
        g = FLOOR_ACTIVATIONS[self.workload.activation][1](gh, h)
        dgamma = np.einsum("ij,ij->j", g, xhat)[None, :]
        dbeta = g.sum(axis=0, keepdims=True)
        grads[f"gamma_bn{i}"], grads[f"beta_bn{i}"] = dgamma, dbeta
        d = xhat * (dgamma / n)  # gamma * inv * (g - dbeta / n - xhat * dgamma / n), in one buffer
        d += dbeta / n
        np.subtract(g, d, out=d)
        d *= self.params[f"gamma_bn{i}"] * inv
        return d

    def moving_averages(self) -> Arrays:
        return {k: v for k, v in self.params.items() if k.startswith("avg_")}


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


class TorchStep:
    """PyTorch eager on the CPU: ``nn.Sequential`` of Linear(bias=False), BatchNorm1d,
    Tanh, ..., Linear; ``BCEWithLogitsLoss`` or ``CrossEntropyLoss``, summed.

    ``update="optim"`` steps with ``torch.optim.SGD`` (zero_grad, forward, backward,
    step); ``update="manual"`` sets the gradients to None and subtracts ``lr * grad``
    under ``torch.no_grad()``. The benchmark times both and reports the faster,
    so that PyTorch is not handicapped by the choice.
    """

    name = "torch"

    def __init__(self, workload: Workload, params: Arrays, update: str = "optim") -> None:
        if torch is None:
            raise ImportError("PyTorch is not installed")
        if update not in ("optim", "manual"):
            raise ValueError(f"update must be 'optim' or 'manual', not {update!r}")
        self.workload, self.update = workload, update
        self.dtype = torch.float64 if workload.dtype == np.float64 else torch.float32
        sizes, layers = workload.sizes, []
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [
                torch.nn.Linear(fan_in, fan_out, bias=False, dtype=self.dtype),
                torch.nn.BatchNorm1d(fan_out, eps=EPS, momentum=MOMENTUM, dtype=self.dtype),
                torch.nn.Tanh() if workload.activation == "tanh" else torch.nn.Sigmoid(),
            ]
        layers.append(torch.nn.Linear(sizes[-2], sizes[-1], dtype=self.dtype))
        self.net = torch.nn.Sequential(*layers)
        binary = sizes[-1] == 1
        self.loss_fn = (torch.nn.BCEWithLogitsLoss if binary else torch.nn.CrossEntropyLoss)(reduction="sum")
        with torch.no_grad():
            for key, tensor in self._tensors().items():
                tensor.copy_(torch.from_numpy(_to_torch_layout(key, params[key])))
        self.parameters = list(self.net.parameters())
        self.optimizer = torch.optim.SGD(self.parameters, lr=workload.lr)
        # PyTorch's running_var holds the unbiased batch variance; keep the start to
        # convert it back to dp's biased average (moving_averages).
        self.initial_variance = {k: params[k].copy() for k in params if k.startswith("avg_variance_")}

    def _tensors(self) -> dict[str, Any]:
        """dp's parameter and state names -> the tensors PyTorch keeps them in."""
        modules, last = list(self.net), self.workload.depth
        tensors = {}
        for i in hidden_layers(self.workload):
            linear, norm = modules[3 * (i - 1)], modules[3 * (i - 1) + 1]
            tensors.update(
                {
                    f"weight_l{i}": linear.weight,
                    f"gamma_bn{i}": norm.weight,
                    f"beta_bn{i}": norm.bias,
                    f"avg_mean_bn{i}": norm.running_mean,
                    f"avg_variance_bn{i}": norm.running_var,
                }
            )
        tensors[f"weight_l{last}"], tensors[f"bias_l{last}"] = modules[-1].weight, modules[-1].bias
        return tensors

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        if self.workload.sizes[-1] == 1:
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
            k: _from_torch_layout(k, t.grad.numpy()) for k, t in self._tensors().items() if not k.startswith("avg_")
        }
        return loss.item(), grads

    def moving_averages(self) -> Arrays:
        n = self.workload.batch
        averages = {}
        for k, t in self._tensors().items():
            if k.startswith("avg_mean_"):
                averages[k] = _from_torch_layout(k, t.numpy())
            elif k.startswith("avg_variance_"):
                # running_var = (1 - m) start + m * var * n / (n - 1); dp stores the biased var
                kept = (1 - MOMENTUM) * self.initial_variance[k]
                averages[k] = kept + (_from_torch_layout(k, t.numpy()) - kept) * ((n - 1) / n)
        return averages


def _to_torch_layout(key: str, value: np.ndarray) -> np.ndarray:
    """dp stores weights (fan_in, fan_out) and per-feature rows (1, f); PyTorch
    stores weights (out, in) and vectors (f,)."""
    return np.ascontiguousarray(value.T) if key.startswith("weight_") else value.reshape(-1)


def _from_torch_layout(key: str, value: np.ndarray) -> np.ndarray:
    return value.T.copy() if key.startswith("weight_") else value.reshape(1, -1).copy()


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
        labels = y.reshape(-1, 1).astype(x.dtype) if self.workload.sizes[-1] == 1 else y
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
        if self.workload.sizes[-1] == 1:
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
REFERENCES = ("torch", "autograd", "floor")
DP_ROWS = ("dp", "dp graph", "dp fused")  # timed on every workload; each checked against dp graph


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
# float64 observed: <= 1e-14 relative.
TOLERANCES = {np.dtype(np.float64): Tolerance(1e-9, 1e-10), np.dtype(np.float32): Tolerance(1e-3, 1e-4, True)}


class GradientMismatch(AssertionError):
    """An implementation's loss, gradients or moving averages disagree with dp's."""


def check_gradients(workload: Workload, implementations: Sequence[str]) -> None:
    """Compare one step of each named implementation with dp's, from the same start.

    dp's initial parameters are copied into every implementation; each computes the
    loss and the gradients on the workload's batch (and updates its moving
    averages). Every gradient must have dp's keys, shape and dtype and agree with
    dp's within `TOLERANCES` (for float32, atol is scaled by the largest entry of
    dp's array); so must the loss and the moving averages. Raises `GradientMismatch`
    naming the workload, implementation and parameter; returns None if all agree.
    Nothing is timed.
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
        implementation = IMPLEMENTATIONS[name](workload, initial)
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
    workload: Workload
    seconds: dict[str, float]  # per step, by implementation ("torch" is the faster variant)
    peak_bytes: dict[str, int]
    torch_update: str | None = None  # which PyTorch variant was faster


def run_workload(workload: Workload, references: Sequence[str], repeats: int, min_block: float) -> Result:
    """Time dp and the references on one workload, interleaved, and measure peak memory."""
    x, y = workload.data()
    initial = model_for(workload).get_param()
    variants: dict[str, Any] = {name: IMPLEMENTATIONS[name](workload, initial) for name in DP_ROWS}
    for name in references:
        if name == "torch":  # both ways of updating; the faster one is reported
            variants["torch optim"] = TorchStep(workload, initial, update="optim")
            variants["torch manual"] = TorchStep(workload, initial, update="manual")
        else:
            variants[name] = IMPLEMENTATIONS[name](workload, initial)
    steps = {}
    for name, implementation in variants.items():
        batch = implementation.prepare(x, y)
        steps[name] = lambda implementation=implementation, batch=batch: implementation.step(batch)
    seconds = best_step_times(steps, repeats, min_block)
    result = Result(workload, seconds, {})
    if "torch optim" in seconds:
        faster = min(("optim", "manual"), key=lambda update: seconds[f"torch {update}"])
        seconds["torch"], result.torch_update = seconds[f"torch {faster}"], faster
    result.peak_bytes = {name: peak_step_memory(steps[name]) for name in (*DP_ROWS, "floor") if name in steps}
    return result


TARGETS = {  # from the one-path issue (#20); target: (workloads, the ratio of a result, its upper bound)
    "seed: dp <= 1.3 x floor (time)": (("seed", "seed-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.3),
    "paper: dp <= 1.1 x floor (time)": (("paper", "paper-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.1),
    "wide: dp <= 1.02 x floor (time)": (("wide-f64", "wide-f32"), lambda r: _ratio(r.seconds, "dp", "floor"), 1.02),
    "wide: dp <= 1.2 x floor (peak memory)": (
        ("wide-f64", "wide-f32"),
        lambda r: _ratio(r.peak_bytes, "dp", "floor"),
        1.2,
    ),
}


def _ratio(values: dict[str, float], a: str, b: str) -> float | None:
    return values[a] / values[b] if a in values and b in values else None


def report(results: Sequence[Result], torch_warning: str | None = None) -> str:
    """The Markdown table, the targets and the notes; a ``torch_warning`` marks the
    verdicts that involve PyTorch as unreliable and is printed last."""
    lines = [
        "| workload | dp us/step | dp graph us/step | dp fused us/step | PyTorch us/step | autograd us/step "
        "| NumPy floor us/step | dp/floor | dp graph/floor | dp fused/floor | dp/PyTorch | peak MB dp "
        "| peak MB dp fused | peak MB floor | ratio |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        *(_report_row(r) for r in results),
        "",
        "dp fused: fit's step on MLP(fused=True). us/step: the best of the rounds, each a block of steps;",
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


def _fused_table(results: Sequence[Result]) -> list[str]:
    """What the opt-in fused layer buys: dp's time and peak memory over dp fused's, per workload
    (the project keeps a second implementation only where it is 1.2 x faster or 1.3 x leaner)."""
    rows = [
        f"| {r.workload.name} | {_times(_ratio(r.seconds, 'dp', 'dp fused'))} "
        f"| {_times(_ratio(r.peak_bytes, 'dp', 'dp fused'))} |"
        for r in results
        if "dp fused" in r.seconds
    ]
    if not rows:
        return []
    return ["| workload | time, dp over dp fused | peak memory, dp over dp fused |", "|---|--:|--:|", *rows, ""]


def _report_row(r: Result) -> str:
    """One workload's line of `report`'s table."""

    def us(name: str) -> str:
        return f"{r.seconds[name] * 1e6:,.0f}" if name in r.seconds else "n/a"

    def mb(name: str) -> str:
        if name not in r.peak_bytes:
            return "n/a"
        megabytes = r.peak_bytes[name] / 2**20
        return f"{megabytes:,.1f}" if megabytes >= 10 else f"{megabytes:.3f}"

    cells = [
        r.workload.name,
        *(us(name) for name in (*DP_ROWS, "torch", "autograd", "floor")),
        *(_times(_ratio(r.seconds, name, "floor")) for name in DP_ROWS),
        _times(_ratio(r.seconds, "dp", "torch")),
        mb("dp"),
        mb("dp fused"),
        mb("floor"),
        _times(_ratio(r.peak_bytes, "dp", "floor")),
    ]
    return "| " + " | ".join(cells) + " |"


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
    parser.add_argument("--sweep", action="store_true", help="the scaling sweep instead of the workloads")
    parser.add_argument("--plot", default=None, help="with --sweep: draw it into this PNG (docs/speed.png)")
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
    workloads = [WORKLOADS[name] for name in arguments.workloads]
    if arguments.sweep:
        workloads = [w for points in sweep_workloads().values() for w in points]
    if not checked(workloads, ["dp", "dp fused", *references], verbose=not arguments.sweep):
        return 1
    if arguments.check_only:
        return 0
    min_block = 0.05 if arguments.quick else 0.2
    if arguments.sweep:
        return run_sweep(references, arguments.repeats, min_block / 2, arguments.plot)
    return run_workloads(workloads, references, arguments.repeats, min_block, arguments.out)


def announced_references() -> list[str]:
    """The references installed, after printing the machine and the ones skipped."""
    references = available()
    skipped = [name for name in REFERENCES if name not in references]
    print(machine_info())
    print(f"Skipped (not installed): {', '.join(skipped)}" if skipped else "All references installed")
    return references


def run_workloads(
    workloads: Sequence[Workload], references: Sequence[str], repeats: int, min_block: float, out: str | None = None
) -> int:
    """Time each workload and print the report (and write it, with the machine, to ``out``)."""
    torch_warning = torch_threads_stall() if "torch" in references else None  # matters on small steps only
    results = []
    for workload in workloads:
        print(f"timing {workload.name} ...", file=sys.stderr, flush=True)
        results.append(run_workload(workload, references, repeats, min_block))
    text = report(results, torch_warning)
    print()
    print(text)
    if out is not None:
        command = " ".join(["python benchmarks/step.py", *sys.argv[1:]])
        Path(out).write_text(f"`{command}`\n\n{machine_info()}\n\n{text}\n")
    return 0


def checked(workloads: Sequence[Workload], implementations: Sequence[str], verbose: bool = True) -> bool:
    """`check_gradients` on each workload; False (and the mismatch on stderr) if one fails."""
    for workload in workloads:
        try:
            check_gradients(workload, implementations)
        except GradientMismatch as error:
            print(f"Gradient check FAILED: {error}", file=sys.stderr)
            return False
        if verbose:
            others = ", ".join(implementations)
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
    shown = [name for name in references if name in SWEEP_SHOWN]
    sweeps = {}
    for axis, points in sweep_workloads().items():
        sweeps[axis] = []
        for workload in points:
            print(f"timing {workload.name} ...", file=sys.stderr, flush=True)
            sweeps[axis].append(run_workload(workload, shown, repeats, min_block))
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


if __name__ == "__main__":
    sys.exit(main())
