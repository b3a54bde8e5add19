"""Normalization, one idea over axes: batch, layer, instance and group norm, as layers and
as functions.

Every member of the family computes, for a choice of axes of x::

    mean = x.mean(axes)    var = ((x - mean) ** 2).mean(axes)    # biased: divided by the count
    y = gamma * (x - mean) / sqrt(var + eps) + beta

and they differ only in the axes (images are NCHW; rows of features are (N, F)):

    batch norm      (0,) for rows, (0, 2, 3) for images: per feature or channel, over the batch
    layer norm      (1,) for rows, (1, 2, 3) for images: per sample, over its features
    instance norm   (2, 3): per sample and channel, over the positions
    group norm      per sample and group of C/G channels, over those channels and the positions

`normalize` is that function; the named forms choose the axes. gamma and beta are per
feature (per channel for images) in every form.

Batch norm (Ioffe & Szegedy, 2015, Algorithm 1) is here twice, as the same function of x,
gamma and beta:

- `batch_norm_composed`: the paper's four lines in Node operations; autodiff
  derives the backward pass. This is what a student writes.
- `batch_norm_closed_form`: one primitive whose backward pass is the paper's chain
  rule (section 3), one line per gradient, for any set of axes. The `BatchNorm` layer
  uses it, and so do `normalize` and every named form.

The tests pin the two to each other. Only batch norm has moving averages and modes: its
statistics depend on the batch. The others normalize each sample by itself.

Batch renormalization (Ioffe, 2017) is a mode of the batch-norm layer (``renorm=True``),
not a second computation: the layer hands the primitive two per-feature constants r and d
(`BatchNorm.correction`), and both ways of writing batch norm take them, ``xhat = (x - mu_B)
/ sigma_B * r + d``. With r = 1 and d = 0 that is batch norm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dp import checks
from dp.checks import Flag, NonFiniteError, OneOf, OrNone, Real, Whole
from dp.nn.activations import ACTIVATIONS, activate
from dp.nn.inputs import checked_images, checked_input, numeric_operand
from dp.node import Node, primitive

if TYPE_CHECKING:
    from dp.nn.module import NeuralNode

EPS = Real("(0, inf)")  # every normalization's eps: added to the variance before its square root

BATCH_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {
    "momentum": OrNone(Real("(0, 1]")),  # None: the cumulative average, as PyTorch's momentum=None
    "eps": EPS,
    "unbiased_average": Flag(),
    "activation": OrNone(OneOf(*ACTIVATIONS)),
    "renorm": Flag(),
    "rmax": Real("[1, inf)"),  # r is clipped to [1 / rmax, rmax]: rmax = 1 holds it at 1
    "dmax": Real("[0, inf)"),  # d is clipped to [-dmax, dmax]: dmax = 0 holds it at 0
    "renorm_warmup": Whole("[0, inf)"),
}

LAYER_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {"eps": EPS}
GROUP_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {"eps": EPS, "groups": Whole("[1, inf)")}

ROWS, IMAGES = (0,), (0, 2, 3)  # batch norm's axes: over the rows of (N, F), over batch and positions of NCHW


class BatchNorm:
    """Batch norm over fan_in features, ``forward(x, train=None)``: see
    `NeuralNode.batch_norm` for the formulas, the options and the errors. With ``images``,
    over the fan_in channels of NCHW images, each channel's statistics taken over the batch
    and every position (`NeuralNode.batch_norm2d`). With ``renorm``, batch renormalization
    (`correction`)."""

    def __init__(
        self,
        model: NeuralNode,
        name: str,
        fan_in: int,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        activation: str | None = None,
        images: bool = False,
        renorm: bool = False,
        rmax: float = 3.0,
        dmax: float = 5.0,
        renorm_warmup: int = 0,
    ) -> None:
        self.model, self.fan_in, self.what = model, fan_in, f"batch norm {name!r}"
        self.images, self.axes = images, IMAGES if images else ROWS
        self.momentum, self.eps, self.unbiased_average, self.activation = momentum, eps, unbiased_average, activation
        self.renorm, self.rmax, self.dmax, self.renorm_warmup = renorm, rmax, dmax, renorm_warmup
        self.gamma_key, self.beta_key = f"gamma_{name}", f"beta_{name}"
        self.mean_key, self.variance_key, self.batches_key = (
            f"avg_mean_{name}",
            f"avg_variance_{name}",
            f"batches_{name}",
        )

    def __call__(self, x: Any, train: bool | None = None) -> Node:
        """The layer on a batch x, checked: (N, fan_in) (images: (N, fan_in, H, W)), numeric
        and finite."""
        dtype = self.model.dtype
        checked = (
            checked_images(x, self.fan_in, self.what, dtype)
            if self.images
            else checked_input(x, self.fan_in, self.what, dtype)
        )
        return self.forward(checked, train)

    def forward(self, x: Node, train: bool | None = None) -> Node:
        """The layer on a Node already checked (by a model's entry point). In training, the
        batch's statistics are computed once: they normalize the batch and move the averages."""
        training = self.model.training if train is None else train
        if not training:
            return activate(self.normalize(x, training=False), self.activation)
        y, (mean, var) = self.with_batch_statistics(x)
        self.update_averages(mean, var, group_size(x.shape, self.axes))
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
        """Training-mode batch norm of x (renormalized, with ``renorm``: `correction`) and the
        batch's mean and variance, computed once and checked (at least 2 values per feature,
        finite statistics), for the moving averages too."""
        self.require_batch(group_size(x.shape, self.axes))
        mean, var = statistics = batch_statistics(x.value, self.what, self.axes)
        gamma, beta = self.learned()
        r, d = self.correction(mean, var)
        y = batch_norm_closed_form(x, gamma, beta, eps=self.eps, statistics=statistics, axes=self.axes, r=r, d=d)
        return y, statistics

    def correction(self, mean: np.ndarray, var: np.ndarray) -> tuple[Any, Any]:
        """Batch renormalization's r and d (Ioffe, 2017, Algorithm 1) for a training batch of
        this mean and (biased) variance, per feature, in the batch's dtype::

            sigma_B = sqrt(var + eps)             sigma = sqrt(avg_variance + eps)
            r = clip(sigma_B / sigma, 1 / rmax, rmax)
            d = clip((mean - avg_mean) / sigma, -dmax, dmax)

        with (rmax, dmax) from `renorm_limits`, the moving averages as they are before this
        batch moves them. Unclipped, ``(x - mean) / sigma_B * r + d`` is ``(x - avg_mean) /
        sigma``, exactly what eval mode computes (`batch_norm_eval`): sigma is taken from the
        stored variance (unbiased, with ``unbiased_average``) and eps as eval mode takes them,
        rather than from a moving average of sigma_B as the paper keeps one. (1.0, 0.0), which
        is batch norm, without ``renorm``, and before the averages hold statistics (not
        `trained`: their zeros would make r = sigma_B / sqrt(eps), clipped to rmax)."""
        if not (self.renorm and self.trained):
            return 1.0, 0.0
        rmax, dmax = self.renorm_limits()
        sigma = np.sqrt(self.average_variance() + self.eps)
        r = np.clip(np.sqrt(var + self.eps) / sigma, 1 / rmax, rmax)
        d = np.clip((mean - self.average_mean()) / sigma, -dmax, dmax)
        return r.astype(mean.dtype, copy=False), d.astype(mean.dtype, copy=False)

    def renorm_limits(self) -> tuple[float, float]:
        """(rmax, dmax) for the next training batch. With ``renorm_warmup`` W > 0 they ramp
        linearly with the training batches counted so far, t (``batches_{name}``), from (1, 0),
        batch norm, to the layer's (rmax, dmax) at t = W::

            f = min(t / W, 1)        (1 + f * (rmax - 1), f * dmax)

        Without warmup (W = 0), the layer's (rmax, dmax) from the first batch."""
        if not self.renorm_warmup:
            return self.rmax, self.dmax
        f = min(self.model.params[self.batches_key].item() / self.renorm_warmup, 1.0)
        return 1 + f * (self.rmax - 1), f * self.dmax

    def learned(self) -> tuple[Node, Node]:
        """gamma and beta, as parameter Nodes."""
        return learned(self.model.params, self.gamma_key, self.beta_key)

    def average_mean(self) -> np.ndarray:
        return self.model.params[self.mean_key]

    def average_variance(self) -> np.ndarray:
        return self.model.params[self.variance_key]

    def update_averages(self, mean: np.ndarray, var: np.ndarray, rows: int) -> None:
        """Move the averages toward this batch's ``mean`` and ``var`` and count the batch:
        every new array is computed first (`averaged`), then all are stored together."""
        self.model.params.update(self.averaged(mean, var, rows))

    def averaged(self, mean: np.ndarray, var: np.ndarray, rows: int) -> dict[str, np.ndarray]:
        """The new moving averages and batch count after a batch with these statistics, each
        taken over ``rows`` values per feature (N, or N * H * W for images), as new arrays,
        without storing them: ``{key: array}`` for ``params``."""
        params, momentum = self.model.params, self.weight_of_the_batch()
        stored = var * (rows / (rows - 1)) if self.unbiased_average else var
        dtype = params[self.mean_key].dtype  # a float64 batch must not turn float32 averages into float64
        return {
            self.mean_key: ((1 - momentum) * params[self.mean_key] + momentum * mean).astype(dtype, copy=False),
            self.variance_key: ((1 - momentum) * params[self.variance_key] + momentum * stored).astype(
                dtype, copy=False
            ),
            self.batches_key: params[self.batches_key] + 1,
        }

    def weight_of_the_batch(self) -> float:
        """The weight of the next training batch's statistics in the moving averages: the
        layer's ``momentum``, or, for ``momentum=None``, 1 / k for the k-th batch counted
        (``batches_{name}`` + 1), as PyTorch's 1 / num_batches_tracked: after k batches the
        averages are the plain mean of the k batches' statistics."""
        if self.momentum is not None:
            return self.momentum
        return 1 / (self.model.params[self.batches_key].item() + 1)

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

    def require_batch(self, values: int) -> None:
        """Raise ``ValueError`` for a training batch of fewer than 2 values per feature (rows;
        for images, N * H * W per channel)."""
        if values < 2:
            counted = "values per channel (N x H x W)" if self.images else "rows"
            raise ValueError(
                f"{self.what}: a training batch needs at least 2 {counted}, got {values}: with one value per "
                f"{'channel' if self.images else 'feature'} the batch variance is 0 and normalizing is "
                "meaningless. Use larger batches, or train=False to use the moving averages."
            )


class WithoutModes:
    """What layer norm and group norm share: each sample is normalized by its own statistics,
    so there is no training or eval mode and no state. ``forward(x, train)`` and
    ``normalize(x, training)`` take batch norm's arguments and ignore the mode, so that a
    model runs (and `record`s) any of them through one path (`dp.nn.models.before_activation`)."""

    def forward(self, x: Node, train: bool | None = None) -> Node:
        raise NotImplementedError

    def normalize(self, x: Node, training: bool) -> Node:
        """The layer on x, as `forward` (it changes nothing in either mode)."""
        return self.forward(x)


class LayerNorm(WithoutModes):
    """Layer norm over fan_in features, ``forward(x)``: see `NeuralNode.layer_norm`."""

    def __init__(self, model: NeuralNode, name: str, fan_in: int, eps: float = 1e-5) -> None:
        self.model, self.fan_in, self.eps, self.what = model, fan_in, eps, f"layer norm {name!r}"
        self.gamma_key, self.beta_key = f"gamma_{name}", f"beta_{name}"

    def __call__(self, x: Any) -> Node:
        """The layer on a batch x, checked: (N, fan_in), numeric and finite."""
        return self.forward(checked_input(x, self.fan_in, self.what, self.model.dtype))

    def forward(self, x: Node, train: bool | None = None) -> Node:
        """The layer on a Node already checked (by a model's entry point); ``train`` is ignored."""
        gamma, beta = learned(self.model.params, self.gamma_key, self.beta_key)
        return normalized(x, (1,), gamma, beta, self.eps, self.what)


class GroupNorm(WithoutModes):
    """Group norm over the channels of NCHW images in ``groups`` groups, ``forward(x)``: see
    `NeuralNode.group_norm`."""

    def __init__(self, model: NeuralNode, name: str, channels: int, groups: int, eps: float = 1e-5) -> None:
        self.model, self.channels, self.groups, self.eps = model, channels, groups, eps
        self.what = f"group norm {name!r}"
        self.gamma_key, self.beta_key = f"gamma_{name}", f"beta_{name}"

    def __call__(self, x: Any) -> Node:
        """The layer on images x, checked: (N, channels, H, W), numeric and finite."""
        return self.forward(checked_images(x, self.channels, self.what, self.model.dtype))

    def forward(self, x: Node, train: bool | None = None) -> Node:
        """The layer on a Node already checked (by a model's entry point); ``train`` is ignored."""
        gamma, beta = learned(self.model.params, self.gamma_key, self.beta_key)
        return grouped(x, self.groups, gamma, beta, self.eps, self.what)


def learned(params: dict[str, np.ndarray], gamma_key: str, beta_key: str) -> tuple[Node, Node]:
    """A layer's gamma and beta, as parameter Nodes."""
    return Node(params[gamma_key], gamma_key), Node(params[beta_key], beta_key)


# ----- the statistics: per group of values, over the axes -----


def group_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """How many values share one mean and variance: the product of the sizes along ``axes``
    (N for batch norm on rows, N * H * W per channel for batch norm on images)."""
    return int(np.prod([shape[axis] for axis in axes]))


def batch_statistics(
    x: np.ndarray, what: str = "batch norm", axes: tuple[int, ...] = ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and biased variance of x over ``axes``, with those axes kept (so (1, F) for a
    batch of rows, (1, C, 1, 1) per channel of images): the values that normalize the batch
    and that the moving averages take in. Raises `NonFiniteError` for NaN or inf in x, or
    values so large that their sum or squares overflow."""
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, with a clearer message
        mean, var = mean_and_variance(x, axes)
    require_finite_statistics(mean, var, what)
    return mean, var


def mean_and_variance(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The mean and biased variance over ``axes``, as the paper defines them for the batch:
    ``mean = sum(x) / m`` and ``var = sum((x - mean)**2) / m``, m values per group, axes kept."""
    m = group_size(x.shape, axes)
    mean = summed(x, axes) / m
    centered = x - mean
    return mean, summed(centered, axes, times=centered) / m


def summed(a: np.ndarray, axes: tuple[int, ...], times: np.ndarray | None = None) -> np.ndarray:
    """The sum of ``a`` over ``axes``, those axes kept (``a.sum(axes, keepdims=True)``), or of
    ``a * times`` without forming the product. One einsum call: it sums NCHW images over
    (0, 2, 3) several times faster than ``sum`` does, and makes no temporary of x's size for
    a product."""
    letters = "abcdefgh"[: a.ndim]
    kept = "".join(letter for axis, letter in enumerate(letters) if axis not in axes)
    shape = tuple(1 if axis in axes else size for axis, size in enumerate(a.shape))
    operands = (a,) if times is None else (a, times)
    return np.einsum(",".join([letters] * len(operands)) + "->" + kept, *operands).reshape(shape)


def broadcast_axes(v: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of an array of ``shape`` along which ``v`` (a number, or an array that
    broadcasts against it) is broadcast: where its gradient is summed."""
    sizes = (1,) * (len(shape) - np.ndim(v)) + np.shape(v)
    return tuple(axis for axis, (own, full) in enumerate(zip(sizes, shape)) if own == 1 and full != 1)


def require_finite_statistics(mean: np.ndarray, var: np.ndarray, what: str) -> None:
    """Raise `NonFiniteError` unless a batch's mean and variance are finite. Looking at the
    variance is enough, since it is the mean of the squares of ``x - mean``: a NaN or inf
    in x or in the mean makes some ``x - mean`` NaN or inf, and so the variance."""
    if not checks.all_finite(var):
        raise NonFiniteError(f"{what}: the batch has values too large to square (or to add up)")


# ----- batch norm: the same normalization two ways, and eval mode -----


def batch_norm_composed(
    x: Node, gamma: Any, beta: Any, eps: float = 1e-5, axes: tuple[int, ...] = ROWS, r: Any = None, d: Any = None
) -> Node:
    """Training-mode batch norm as the paper writes it, in Node operations: for x (N, F)
    and per-feature gamma, beta (1, F), every statistic over the batch (axis 0)::

        mean = x.mean(0)                  # the mini-batch mean
        var = ((x - mean) ** 2).mean(0)   # the mini-batch variance (biased: divided by N)
        xhat = (x - mean) / sqrt(var + eps)
        y = gamma * xhat + beta

    Its gradient is autodiff's, through every one of these steps: mean and var are
    functions of every row, so each output depends on every input of its feature.
    ``axes`` turns the same four lines into every other member of the family: (0, 2, 3)
    for images (per channel), (1,) for layer norm, (2, 3) for instance norm.

    Given ``r`` or ``d`` (numbers or arrays of the statistics' shape; one left out is 1 or 0),
    it is batch renormalization (Ioffe, 2017): ``xhat = (x - mean) / sqrt(var + eps) * r + d``. They
    are constants, not Nodes, so autodiff gives them no gradient, the paper's stop_gradient.
    """
    mean = x.mean(axis=axes)
    var = ((x - mean) ** 2).mean(axis=axes)
    xhat = (x - mean) / (var + eps).sqrt()
    if r is not None or d is not None:  # left out, batch norm's graph keeps the four lines the paper has
        xhat = xhat * (1.0 if r is None else r) + (0.0 if d is None else d)
    return gamma * xhat + beta


@primitive
def batch_norm_closed_form(x, gamma, beta, eps=1e-5, statistics=None, axes=ROWS, r=1.0, d=0.0):  # noqa: ANN001, ANN202 - a primitive
    """Training-mode batch norm as one primitive: the forward pass of `batch_norm_composed`,
    and the backward pass as Ioffe & Szegedy (2015, section 3) write it, by the chain rule
    through Algorithm 1. With g = dl/dy, m values per feature, and every sum over the batch
    (``axes``: axis 0 for rows), per feature::

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
    finite differences.

    ``axes`` are the axes the statistics are taken over, (0,) by default: the same lines
    serve batch norm on images ((0, 2, 3): m = N * H * W per channel) and the rest of the
    family (`normalize`). gamma and beta broadcast against x; their gradients are summed over
    every axis they are broadcast along: over the batch for batch norm, the paper's sum_i.
    ``statistics``, the batch's ``(mean, var)`` when the caller has them already (the
    `BatchNorm` layer computes them once, checked, for its moving averages too), are used
    instead of computing them again. They must be x's own: the backward pass differentiates
    through them as functions of x.

    ``r`` and ``d`` make it batch renormalization (Ioffe, 2017, Algorithm 1): numbers or
    arrays of the statistics' shape, ``xhat_i = (x_i - mu_B) / sqrt(sigma_B^2 + eps) * r + d``.
    They are constants (the paper's stop_gradient): the chain rule above runs through
    ``(x_i - mu_B) / sqrt(sigma_B^2 + eps)``, whose gradient is ``dl/dxhat_i * r``, and d gets
    none. The defaults, r = 1 and d = 0, are batch norm, to the bit.
    """
    m = group_size(x.shape, axes)
    mean, var = mean_and_variance(x, axes) if statistics is None else statistics  # mu_B, sigma_B^2 (biased: / m)
    centered = x - mean  # x_i - mu_B
    std = np.sqrt(var + eps)
    xhat = centered / (std / r)  # (x_i - mu_B) / sigma_B * r, r applied to the per-feature std: no x-sized product
    xhat += d  # renorm's shift (0 for batch norm), in place
    y = xhat * gamma
    y += beta  # y = gamma * xhat + beta; in place, y being new: one x-sized array fewer

    def vjp(g):  # one vjp for x, gamma and beta, one line per equation of the paper
        # Per-feature factors are formed on the statistics' shape first, and the sums over the batch are
        # `summed`'s (einsum): as few x-sized arrays and passes over them as can be.
        dxhat = g * (gamma * r)  # dl/dxhat_i = dl/dy_i * gamma; times r: through (x_i - mu_B) / sigma_B * r
        dvar = summed(dxhat, axes, times=centered) * (-0.5 / (std * std * std))  # dl/dsigma_B^2
        # dl/dmu_B: its second term is 0 in exact arithmetic (the x_i - mu_B sum to 0), kept as the paper has it
        dmean = summed(dxhat, axes) * (-1 / std) + dvar * (-2 * summed(centered, axes) / m)
        dx = dxhat * (1 / std)  # dl/dx_i, term by term: through xhat_i,
        dx += centered * (dvar * 2 / m)  # through sigma_B^2,
        dx += dmean / m  # and through mu_B (in place: one x-sized array, not four)
        dgamma = summed(g, broadcast_axes(gamma, x.shape), times=xhat)  # dl/dgamma = sum_i dl/dy_i * xhat_i
        dbeta = summed(g, broadcast_axes(beta, x.shape))  # dl/dbeta = sum_i dl/dy_i
        return dx, dgamma, dbeta

    return y, vjp


def batch_norm_eval(x: Node, gamma: Any, beta: Any, mean: np.ndarray, var: np.ndarray, eps: float = 1e-5) -> Node:
    """Eval-mode batch norm, with fixed statistics (the moving averages): an affine map
    of each feature, ``gamma * (x - mean) / sqrt(var + eps) + beta``, in Node operations."""
    return gamma * ((x - mean) * (1 / np.sqrt(var + eps))) + beta


# ----- the family as functions: one normalize over axes, and the named forms -----


def normalize(x: Any, axes: Any, eps: float = 1e-5, gamma: Any = 1.0, beta: Any = 0.0) -> Node:
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` with the mean and the biased variance
    taken over ``axes`` of x (an int or a tuple; negative axes count from the end): the one
    function every normalization is. gamma and beta (numbers, Nodes or arrays that broadcast
    against x; arrays take x's dtype) default to 1 and 0, which leaves the normalized x.
    Computed by the closed-form primitive, so its gradient is the paper's chain rule::

        >>> dp.normalize(np.array([[1.0, 3.0], [3.0, 5.0]]), axes=0).value.round(4)
        array([[-1., -1.],
               [ 1.,  1.]])

    gamma and beta broadcast NumPy's way, from the last axis: per channel of images is
    (1, C, 1, 1) here (a (C,) array would line up with the width); the named forms, which
    know where the channels are, take (C,) too.

    Errors: ``ValueError`` for an empty x, axes that x does not have (or repeated), gamma or
    beta that do not broadcast against x, eps <= 0; `NonFiniteError` for NaN or inf in x,
    gamma or beta.
    """
    x = as_node(x, "normalize")
    if x.value.size == 0:
        raise ValueError(f"normalize: x is empty (shape {x.shape}): there is nothing to normalize")
    axes = _axes(axes, x.ndim)
    eps = EPS(eps, "eps")
    gamma, beta = (_broadcasting(v, x, what) for v, what in ((gamma, "gamma"), (beta, "beta")))
    return normalized(x, axes, gamma, beta, eps, "normalize")


def normalized(x: Node, axes: tuple[int, ...], gamma: Any, beta: Any, eps: float, what: str) -> Node:
    """`normalize` of arguments already checked, the statistics checked finite: the one call
    every named form and layer makes."""
    statistics = batch_statistics(x.value, what, axes)
    return batch_norm_closed_form(x, gamma, beta, eps=eps, statistics=statistics, axes=axes)


def batch_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Training-mode batch norm as a plain function (no moving averages): x (N, F) with
    N >= 2, gamma and beta per feature, each a Node, an array ((1, F), or (F,), taken as a
    row) or a number. Arrays take x's dtype. Statistics over the batch, axis 0."""
    x = _checked_shape(x, "batch norm", "a batch of shape (N, features) with N >= 2", ndim=2, at_least=(ROWS, 2))
    return _named(x, ROWS, gamma, beta, eps, "batch norm")


def batch_norm2d(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Training-mode batch norm of NCHW images as a plain function (no moving averages), as
    PyTorch's ``BatchNorm2d`` in training: each channel normalized by its mean and biased
    variance over the batch and every position, axes (0, 2, 3). gamma and beta per channel,
    (C,) or (1, C, 1, 1) (or numbers); arrays take x's dtype. A channel needs at least 2
    values (N * H * W >= 2), else ``ValueError``."""
    x = _checked_shape(x, "batch_norm2d", "images (N, C, H, W) with N * H * W >= 2", ndim=4, at_least=(IMAGES, 2))
    return _named(x, IMAGES, gamma, beta, eps, "batch_norm2d")


def layer_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Layer norm as a plain function: each sample normalized over its features, axis 1 for
    rows x (N, F), or (1, 2, 3) for images x (N, C, H, W). gamma and beta per feature (per
    channel for images), each a Node, an array ((F,), or the keepdims shape (1, F) or
    (1, C, 1, 1)) or a number. Arrays take x's dtype. For images it is `group_norm` with one
    group (PyTorch's ``GroupNorm(1, C)``)."""
    x = _checked_shape(
        x, "layer norm", "rows of features, shape (N, features) with N >= 1, or images (N, C, H, W)", ndim=(2, 4)
    )
    return _named(x, (1,) if x.ndim == 2 else (1, 2, 3), gamma, beta, eps, "layer norm")


def instance_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Instance norm (Ulyanov et al., 2016) of NCHW images: each sample's each channel
    normalized over its positions, axes (2, 3), as PyTorch's ``InstanceNorm2d(affine=True)``
    in training. gamma and beta per channel, (C,) or (1, C, 1, 1). Needs H * W >= 2."""
    x = _checked_shape(x, "instance norm", "images (N, C, H, W) with H * W >= 2", ndim=4, at_least=((2, 3), 2))
    return _named(x, (2, 3), gamma, beta, eps, "instance norm")


def group_norm(x: Any, groups: int, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Group norm (Wu & He, 2018) of NCHW images: the C channels in ``groups`` groups of
    C / groups consecutive channels, each sample's each group normalized over its channels
    and positions, as PyTorch's ``GroupNorm(groups, C)``. gamma and beta per channel, (C,)
    or (1, C, 1, 1). One group is layer norm; C groups are instance norm. ``ValueError``
    when groups does not divide C."""
    x = _checked_shape(x, "group norm", "images (N, C, H, W)", ndim=4)
    groups = GROUP_NORM_CONSTRAINTS["groups"](groups, "group norm: groups")
    if x.shape[1] % groups:
        raise ValueError(f"group norm: {groups} groups do not divide the {x.shape[1]} channels")
    return grouped(x, groups, *_affine(x, gamma, beta, eps), "group norm")


def grouped(x: Node, groups: int, gamma: Any, beta: Any, eps: float, what: str) -> Node:
    """Group norm of checked images x (N, C, H, W): seen as (N, G, C / G, H, W), normalized
    over axes (2, 3, 4), with gamma and beta per channel seen the same way (1, G, C / G, 1, 1)."""
    n, c, h, w = x.shape
    split = (n, groups, c // groups, h, w)
    gamma, beta = (_regrouped(v, (1, groups, c // groups, 1, 1)) for v in (gamma, beta))
    return normalized(x.reshape(split), (2, 3, 4), gamma, beta, eps, what).reshape(x.shape)


def _regrouped(v: Any, shape: tuple[int, ...]) -> Any:
    """A per-channel gamma or beta (an array or Node of C values) in ``shape``; one value (a
    number, a () array, a (1, 1) Node) as it is: it broadcasts, and it cannot take ``shape``."""
    return v if isinstance(v, (int, float)) or v.shape in ((), (1, 1)) else v.reshape(shape)


def _named(x: Node, axes: tuple[int, ...], gamma: Any, beta: Any, eps: float, what: str) -> Node:
    """A named form on checked x: its gamma, beta and eps checked (`_affine`), then `normalized`."""
    return normalized(x, axes, *_affine(x, gamma, beta, eps), what)


def _affine(x: Node, gamma: Any, beta: Any, eps: float) -> tuple[Any, Any, float]:
    """A named form's gamma and beta per channel (`_per_channel`), and its eps, checked."""
    return _per_channel(gamma, x, "gamma"), _per_channel(beta, x, "beta"), EPS(eps, "eps")


# ----- the checks of the functions' arguments -----


def as_node(x: Any, what: str) -> Node:
    """x as a Node (an array becomes a constant), its values numeric and finite (else the
    statistics' check would call a NaN "too large to square")."""
    node = x if isinstance(x, Node) else Node(x)
    numeric_operand(node, f"{what}: x")
    return node


def _checked_shape(
    x: Any, what: str, needs: str, ndim: Any, at_least: tuple[tuple[int, ...], int] | None = None
) -> Node:
    """x as a Node of ``ndim`` dimensions (one of them, for a tuple), with at least
    ``at_least[1]`` values along the axes ``at_least[0]`` (and at least one value), else a
    ``ValueError`` saying that the form ``what`` ``needs`` such an x."""
    node = as_node(x, what)
    axes, least = at_least or ((0,), 1)
    if node.ndim not in np.atleast_1d(ndim) or node.value.size == 0 or group_size(node.shape, axes) < least:
        raise ValueError(f"{what} needs {needs}, got {node.shape}")
    return node


def _axes(axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` (an int or a sequence of ints) as a sorted tuple of distinct axes of an
    ndim-dimensional x, negative ones counted from the end."""
    listed = [axes] if checks.is_whole(axes) else list(axes) if isinstance(axes, (tuple, list)) else None
    if not listed or not all(checks.is_whole(a) and -ndim <= a < ndim for a in listed):
        raise ValueError(f"normalize: axes must be axes of x, which has {ndim} dimensions; got {axes!r}")
    chosen = sorted({int(a) % ndim for a in listed})
    if len(chosen) != len(listed):
        raise ValueError(f"normalize: axes {axes!r} repeat an axis")
    return tuple(chosen)


def _broadcasting(v: Any, x: Node, what: str) -> Any:
    """gamma or beta for `normalize`: a number or a Node as given, an array in x's dtype;
    ``ValueError`` unless it broadcasts against x without changing x's shape."""
    if isinstance(v, (int, float)):
        return v
    checked = numeric_operand(v, f"normalize: {what}")  # numbers, none NaN or inf
    value = v if isinstance(v, Node) else checked.astype(x.dtype, copy=False)
    shape = np.shape(value.value if isinstance(value, Node) else value)
    try:
        fits = np.broadcast_shapes(shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"normalize: {what} of shape {shape} does not broadcast against x of shape {x.shape}")
    return value


def _per_channel(v: Any, x: Node, what: str) -> Any:
    """A per-feature (per-channel, for images) gamma or beta for x, in the keepdims shape of
    the statistics' kept axis 1, (1, F) or (1, C, 1, 1) (or a number), in x's dtype: a float64
    array must not upcast float32 x, and a 1-D array is a row here, never the column `Node`
    would make of it. Given as (F,) / (C,), or already in that shape; a Node as it is, so in
    that shape (or (1, 1), one value): a column Node (C, 1) would broadcast along H or N."""
    if isinstance(v, (int, float)):
        return v
    channels = x.shape[1]
    shape = (1, channels) + (1,) * (x.ndim - 2)
    numeric_operand(v, what)  # numbers, none NaN or inf: a NaN gamma would make every output NaN
    if isinstance(v, Node):
        if v.shape not in ((1, 1), shape):
            raise ValueError(
                f"{what}, a Node, must have shape {shape} (a Node of a 1-D array is a column), got {v.shape}"
            )
        return v
    array = np.asarray(v, dtype=x.dtype)
    if array.shape not in ((), (channels,), shape):
        raise ValueError(f"{what} must have shape {shape} or ({channels},), got {array.shape}")
    return array.reshape(shape) if array.ndim else array


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
    normalizes to beta (x - mean is 0), and x gets no gradient. (`layer_norm` and the layer
    compute the same with the closed-form primitive, ``axes=(1,)``.)
    """
    return batch_norm_composed(x, gamma, beta, eps, axes=(1,))
