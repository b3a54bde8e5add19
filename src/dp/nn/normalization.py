"""Normalization: batch norm and layer norm, as layers and as functions.

Batch norm (Ioffe & Szegedy, 2015, Algorithm 1) is here twice, as the same
function of x, gamma and beta:

- `batch_norm_composed`: the paper's four lines in Node operations; autodiff
  derives the backward pass. This is what a student writes.
- `batch_norm_closed_form`: one primitive whose backward pass is the paper's chain
  rule (section 3), one line per gradient. The `BatchNorm` layer uses it,
  and `batch_norm` is the same with its arguments checked, for direct calls.

The tests pin the two to each other.

Layer norm (`layer_norm_composed`) is batch norm's four lines with the axis turned:
statistics per row instead of per feature, hence no moving averages and no modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dp import checks
from dp.checks import Flag, NonFiniteError, OneOf, Real
from dp.nn.activations import ACTIVATIONS, activate
from dp.nn.inputs import checked_input
from dp.node import Node, primitive

if TYPE_CHECKING:
    from dp.nn.module import NeuralNode

BATCH_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {
    "momentum": Real("(0, 1]"),
    "eps": Real("(0, inf)"),
    "unbiased_average": Flag(),
    "activation": OneOf(*ACTIVATIONS),
}

LAYER_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {"eps": Real("(0, inf)")}


class BatchNorm:
    """Batch norm over fan_in features, ``forward(x, train=None)``: see
    `NeuralNode.batch_norm` for the formulas, the options and the errors."""

    def __init__(
        self,
        model: NeuralNode,
        name: str,
        fan_in: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        activation: str | None = None,
    ) -> None:
        self.model, self.fan_in, self.what = model, fan_in, f"batch norm {name!r}"
        self.momentum, self.eps, self.unbiased_average, self.activation = momentum, eps, unbiased_average, activation
        self.gamma_key, self.beta_key = f"gamma_{name}", f"beta_{name}"
        self.mean_key, self.variance_key, self.batches_key = (
            f"avg_mean_{name}",
            f"avg_variance_{name}",
            f"batches_{name}",
        )

    def __call__(self, x: Any, train: bool | None = None) -> Node:
        """The layer on a batch x, checked: (N, fan_in), numeric and finite."""
        return self.forward(checked_input(x, self.fan_in, self.what, self.model.dtype), train)

    def forward(self, x: Node, train: bool | None = None) -> Node:
        """The layer on a Node already checked (by a model's entry point). In training, the
        batch's statistics are computed once: they normalize the batch and move the averages."""
        training = self.model.training if train is None else train
        if not training:
            return activate(self.normalize(x, training=False), self.activation)
        y, (mean, var) = self.with_batch_statistics(x)
        self.update_averages(mean, var, x.shape[0])
        return activate(y, self.activation)

    def normalize(self, x: Node, training: bool) -> Node:
        """Batch norm of x, without the activation, changing nothing: with the batch's
        statistics (``training``) or with the moving averages."""
        if training:
            return self.with_batch_statistics(x)[0]
        self.require_trained()
        gamma, beta = self.learned()
        return batch_norm_eval(x, gamma, beta, self.average_mean(), self.average_variance(), self.eps)

    def with_batch_statistics(self, x: Node) -> tuple[Node, tuple[np.ndarray, np.ndarray]]:
        """Training-mode batch norm of x and the batch's mean and variance, computed once and
        checked (at least 2 rows, finite statistics), for the moving averages too."""
        self.require_batch(x.shape[0])
        statistics = batch_statistics(x.value, self.what)
        gamma, beta = self.learned()
        return batch_norm_closed_form(x, gamma, beta, eps=self.eps, statistics=statistics), statistics

    def learned(self) -> tuple[Node, Node]:
        """gamma and beta, as parameter Nodes."""
        params = self.model.params
        return Node(params[self.gamma_key], self.gamma_key), Node(params[self.beta_key], self.beta_key)

    def average_mean(self) -> np.ndarray:
        return self.model.params[self.mean_key]

    def average_variance(self) -> np.ndarray:
        return self.model.params[self.variance_key]

    def update_averages(self, mean: np.ndarray, var: np.ndarray, rows: int) -> None:
        """Move the averages toward this batch's ``mean`` and ``var`` and count the batch:
        every new array is computed first (`averaged`), then all are stored together."""
        self.model.params.update(self.averaged(mean, var, rows))

    def averaged(self, mean: np.ndarray, var: np.ndarray, rows: int) -> dict[str, np.ndarray]:
        """The new moving averages and batch count after a batch of ``rows`` rows with these
        statistics, as new arrays, without storing them: ``{key: array}`` for ``params``."""
        params, momentum = self.model.params, self.momentum
        stored = var * (rows / (rows - 1)) if self.unbiased_average else var
        dtype = params[self.mean_key].dtype  # a float64 batch must not turn float32 averages into float64
        return {
            self.mean_key: ((1 - momentum) * params[self.mean_key] + momentum * mean).astype(dtype, copy=False),
            self.variance_key: ((1 - momentum) * params[self.variance_key] + momentum * stored).astype(
                dtype, copy=False
            ),
            self.batches_key: params[self.batches_key] + 1,
        }

    @property
    def trained(self) -> bool:
        """Whether the moving averages hold statistics: the layer has counted a training
        batch, or its averages were set (loaded) to something other than the initial zeros."""
        return bool(self.model.params[self.batches_key].any() or self.average_variance().any())

    def require_trained(self) -> None:
        """Raise ``RuntimeError`` unless `trained`: eval mode with the initial zero averages
        would divide by sqrt(eps) and blow the activations up by ~300x."""
        if not self.trained:
            raise RuntimeError(
                f"{self.what} has not seen a training batch yet: its moving averages are still "
                "zeros. Train first (train=True), or load trained parameters."
            )

    def require_batch(self, rows: int) -> None:
        """Raise ``ValueError`` for a training batch of fewer than 2 rows."""
        if rows < 2:
            raise ValueError(
                f"{self.what}: a training batch needs at least 2 rows, got {rows}: with one value per "
                "feature the batch variance is 0 and normalizing is meaningless. Use larger "
                "batches, or train=False to use the moving averages."
            )


class LayerNorm:
    """Layer norm over fan_in features, ``forward(x)``: see `NeuralNode.layer_norm`."""

    def __init__(self, model: NeuralNode, name: str, fan_in: int, eps: float = 1e-5) -> None:
        self.model, self.fan_in, self.eps, self.what = model, fan_in, eps, f"layer norm {name!r}"
        self.gamma_key, self.beta_key = f"gamma_{name}", f"beta_{name}"

    def __call__(self, x: Any) -> Node:
        """The layer on a batch x, checked: (N, fan_in), numeric and finite."""
        return self.forward(checked_input(x, self.fan_in, self.what, self.model.dtype))

    def forward(self, x: Node) -> Node:
        """The layer on a Node already checked (by a model's entry point)."""
        params = self.model.params
        gamma, beta = Node(params[self.gamma_key], self.gamma_key), Node(params[self.beta_key], self.beta_key)
        return layer_norm_composed(x, gamma, beta, self.eps)


# ----- batch norm: the statistics, then the same normalization two ways, and eval mode -----


def batch_statistics(x: np.ndarray, what: str = "batch norm") -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and biased variance of a batch x (N, F), each (1, F): the values
    that normalize the batch and that the moving averages take in. Raises `NonFiniteError`
    for values so large that their sum or squares overflow."""
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, with a clearer message
        mean, var = _batch_mean_and_variance(x)
    require_finite_statistics(mean, var, what)
    return mean, var


def _batch_mean_and_variance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mini-batch mean and biased variance over axis 0, as the paper defines them:
    ``mean = sum(x) / N`` and ``var = sum((x - mean)**2) / N``, per feature."""
    n = x.shape[0]
    mean = np.einsum("ij->j", x)[None, :] / n  # einsum: the sums in one call each, no (N, F) temporary for var
    centered = x - mean
    return mean, np.einsum("ij,ij->j", centered, centered)[None, :] / n


def require_finite_statistics(mean: np.ndarray, var: np.ndarray, what: str) -> None:
    """Raise `NonFiniteError` unless a batch's mean and variance are finite. Looking at the
    variance is enough, since it is the mean of the squares of ``x - mean``: a NaN or inf
    in x or in the mean makes some ``x - mean`` NaN or inf, and so the variance."""
    if not checks.all_finite(var):
        raise NonFiniteError(f"{what}: the batch has values too large to square (or to add up)")


def batch_norm_composed(x: Node, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Training-mode batch norm as the paper writes it, in Node operations: for x (N, F)
    and per-feature gamma, beta (1, F), every statistic over the batch (axis 0)::

        mean = x.mean(0)                  # the mini-batch mean
        var = ((x - mean) ** 2).mean(0)   # the mini-batch variance (biased: divided by N)
        xhat = (x - mean) / sqrt(var + eps)
        y = gamma * xhat + beta

    Its gradient is autodiff's, through every one of these steps: mean and var are
    functions of every row, so each output depends on every input of its feature.
    """
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    xhat = (x - mean) / (var + eps).sqrt()
    return gamma * xhat + beta


@primitive
def batch_norm_closed_form(x, gamma, beta, eps=1e-5, statistics=None):  # noqa: ANN001, ANN202 - a primitive
    """Training-mode batch norm as one primitive: the forward pass of `batch_norm_composed`,
    and the backward pass as Ioffe & Szegedy (2015, section 3) write it, by the chain rule
    through Algorithm 1. With g = dl/dy, m rows, and every sum over the batch (axis 0), per
    feature::

        dl/dxhat_i    = dl/dy_i * gamma
        dl/dsigma_B^2 = sum_i dl/dxhat_i * (x_i - mu_B) * -1/2 * (sigma_B^2 + eps)^(-3/2)
        dl/dmu_B      = sum_i dl/dxhat_i * -1/sqrt(sigma_B^2 + eps)
                        + dl/dsigma_B^2 * sum_i -2 (x_i - mu_B) / m
        dl/dx_i       = dl/dxhat_i / sqrt(sigma_B^2 + eps) + dl/dsigma_B^2 * 2 (x_i - mu_B) / m
                        + dl/dmu_B / m
        dl/dgamma     = sum_i dl/dy_i * xhat_i
        dl/dbeta      = sum_i dl/dy_i

    Substituted into each other, the three terms of dl/dx_i add up to the compact form
    ``(m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)) / (m * sqrt(var + eps))``:
    docs/batch_norm_backward.md derives it. The tests hold this primitive to
    `batch_norm_composed` (autodiff through the four forward lines) to 1e-12 and to
    finite differences. ``statistics``, the batch's ``(mean, var)`` when the caller has
    them already (the `BatchNorm` layer computes them once, checked, for its moving
    averages too), are used instead of computing them again. They must be x's own: the
    backward pass differentiates through them as functions of x.
    """
    m = x.shape[0]
    mean, var = _batch_mean_and_variance(x) if statistics is None else statistics  # mu_B, sigma_B^2 (biased: / m)
    centered = x - mean  # x_i - mu_B
    std = np.sqrt(var + eps)
    xhat = centered / std
    y = gamma * xhat + beta

    def vjp(g):  # one vjp for x, gamma and beta, one line per equation of the paper
        # Per-feature factors are formed on the (1, F) rows first, so each line makes as few (N, F) arrays as it can.
        dxhat = g * gamma  # dl/dxhat_i = dl/dy_i * gamma
        dvar = (dxhat * centered).sum(axis=0, keepdims=True) * (-0.5 / (std * std * std))  # dl/dsigma_B^2
        # dl/dmu_B: its second term is 0 in exact arithmetic (the x_i - mu_B sum to 0), kept as the paper has it
        dmean = dxhat.sum(axis=0, keepdims=True) * (-1 / std) + dvar * (-2 * centered.sum(axis=0, keepdims=True) / m)
        dx = dxhat * (1 / std) + centered * (dvar * 2 / m) + dmean / m  # dl/dx_i: through xhat_i, sigma_B^2, mu_B
        dgamma = (g * xhat).sum(axis=0, keepdims=True)  # dl/dgamma = sum_i dl/dy_i * xhat_i
        dbeta = g.sum(axis=0, keepdims=True)  # dl/dbeta = sum_i dl/dy_i
        return dx, dgamma, dbeta

    return y, vjp


def batch_norm_eval(x: Node, gamma: Any, beta: Any, mean: np.ndarray, var: np.ndarray, eps: float = 1e-5) -> Node:
    """Eval-mode batch norm, with fixed statistics (the moving averages): an affine map
    of each feature, ``gamma * (x - mean) / sqrt(var + eps) + beta``, in Node operations."""
    return gamma * ((x - mean) * (1 / np.sqrt(var + eps))) + beta


def batch_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Training-mode batch norm as a plain function (no moving averages): x (N, F) with
    N >= 2, gamma and beta per feature, each a Node, an array ((1, F), or (F,), taken as a
    row) or a number. Arrays take x's dtype. The closed-form primitive computes it."""
    x = x if isinstance(x, Node) else Node(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"batch norm needs a batch of shape (N, features) with N >= 2, got {x.shape}")
    eps = BATCH_NORM_CONSTRAINTS["eps"](eps, "eps")
    return batch_norm_closed_form(x, _per_feature(gamma, x, "gamma"), _per_feature(beta, x, "beta"), eps=eps)


def _per_feature(v: Any, x: Node, what: str) -> Any:
    """A per-feature gamma or beta for x (N, F) as a (1, F) row (or a number) in x's dtype:
    a float64 array must not upcast float32 x, and a 1-D array is a row here, never the
    column `Node` would make of it."""
    if isinstance(v, Node) or isinstance(v, (int, float)):
        return v
    array = np.asarray(v, dtype=x.dtype)
    features = x.shape[1]
    if array.shape not in ((), (features,), (1, features)):
        raise ValueError(f"{what} must have shape (1, {features}) or ({features},), got {array.shape}")
    return array.reshape(1, -1) if array.ndim else array


# ----- layer norm: batch norm's statistics taken per row -----


def layer_norm_composed(x: Node, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Layer norm (Ba, Kiros & Hinton, 2016) in Node operations: `batch_norm_composed` with
    the axis turned. For x (N, F) and per-feature gamma, beta (1, F), every statistic over
    the features of one row (axis 1)::

        mean = x.mean(1)                  # one mean per row
        var = ((x - mean) ** 2).mean(1)   # one variance per row (biased: divided by F)
        xhat = (x - mean) / sqrt(var + eps)
        y = gamma * xhat + beta           # gamma and beta are still per feature

    The contrast with batch norm is the lesson. Batch norm takes its statistics over the
    batch, so an output depends on the other rows, training needs a batch of at least two,
    and evaluation needs moving averages (state, and a train/eval switch). Layer norm takes
    them over one row's features: each row is normalized by itself, so training and
    evaluation are the same function, a single row works, and nothing is kept between
    batches. Its gradient is autodiff's through these four lines. With F = 1 every row
    normalizes to beta (x - mean is 0), and x gets no gradient.
    """
    mean = x.mean(axis=1)
    var = ((x - mean) ** 2).mean(axis=1)
    xhat = (x - mean) / (var + eps).sqrt()
    return gamma * xhat + beta


def layer_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Layer norm as a plain function: x (N, F) with N >= 1, gamma and beta per feature, each
    a Node, an array ((1, F), or (F,), taken as a row) or a number. Arrays take x's dtype."""
    x = x if isinstance(x, Node) else Node(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"layer norm needs rows of features, shape (N, features) with N >= 1, got {x.shape}")
    eps = LAYER_NORM_CONSTRAINTS["eps"](eps, "eps")
    return layer_norm_composed(x, _per_feature(gamma, x, "gamma"), _per_feature(beta, x, "beta"), eps=eps)
