"""`NeuralNode`, the base class of models: one params dict, layer builders, train/eval, prediction.

A model's whole state is one dict, ``self.params`` (name -> ndarray). A layer
builder registers its entries there and returns the layer, a small callable
object that reads them at call time, so assigning a new array to ``params[k]``
changes the model::

    class Net(dp.NeuralNode):
        def __init__(self):
            self.params = dict()        # calling super().__init__() is optional
            self.l1 = self.linear(30, 20, "l1", bias=False)
            self.bn1 = self.batch_norm(20, "bn1")
            ...

The layers live in files by kind (`dp.nn.linear`, `dp.nn.conv`, `dp.nn.normalization`,
`dp.nn.dropout`) and never import this module back: they are handed the model.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import numpy as np

from dp import checks
from dp.checks import NonFiniteError
from dp.nn import losses
from dp.nn.conv import CONV_CONSTRAINTS, Conv2d
from dp.nn.dropout import DROPOUT_CONSTRAINTS, Dropout
from dp.nn.init import weights as init_weights
from dp.nn.linear import Linear
from dp.nn.normalization import (
    BATCH_NORM_CONSTRAINTS,
    GROUP_NORM_CONSTRAINTS,
    LAYER_NORM_CONSTRAINTS,
    BatchNorm,
    GroupNorm,
    LayerNorm,
)
from dp.node import Node

STATE_PREFIXES = ("avg_mean_", "avg_variance_", "batches_")  # params entries that are state, never learned
TRANSACTIONS = ("forward", "logits", "loss")  # a model's methods that run as one transaction on its params

Method = TypeVar("Method", bound=Callable[..., Any])


def transaction(method: Method) -> Method:
    """``method`` of a model as one transaction on the model's ``params``: if it raises, every
    entry is put back as it was (`restore`), moving averages and batch counts included."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        before = dict(self.params)  # cheap: arrays in params are replaced, never written into
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            restore(self.params, before)
            raise

    run.transaction = True  # type: ignore[attr-defined]
    return cast(Method, run)


def restore(params: dict[str, Any], before: dict[str, Any]) -> None:
    """Put ``params`` back, in place (layers hold the dict), to ``before``, a shallow copy taken
    earlier: replaced entries get their old arrays back, added ones go. The old arrays go back
    in one ``update`` call, which a Ctrl-C cannot split."""
    params.update(before)
    for key in params.keys() - before.keys():
        del params[key]


@contextlib.contextmanager
def unchanged(params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``params`` put back as they were (`restore`) when the block ends, however it ends: for
    work that runs a model's forward passes to measure it, not to train it (a training-mode
    pass moves the moving averages and batch counts). Yields the shallow copy taken first."""
    before = dict(params)
    try:
        yield before
    finally:
        restore(params, before)


def is_state(key: str) -> bool:
    """Whether ``params[key]`` is state that training updates without a gradient (batch
    norm's moving averages and batch count), rather than a learned parameter."""
    return key.startswith(STATE_PREFIXES)


class NeuralNode:
    """Base class of dp models: ``params``, layer factories, train/eval mode, prediction.

    Subclasses build layers in ``__init__`` and define ``forward(x, train=None)``
    returning probabilities (a Node). ``train=None`` means "the model's mode",
    which is training until ``eval()`` is called; ``predict`` and
    ``predict_proba`` always run in eval mode. ``loss`` (the cross-entropy of
    ``forward``'s probabilities) makes any such model trainable with `dp.train.fit`.

    Initial weights come from ``rng``, made from ``seed``: a subclass that sets
    ``self.params = dict()`` instead of calling ``super().__init__(seed)`` can set
    ``self.seed = 0`` before creating layers to make them reproducible.

    A model's ``forward``, ``logits`` and ``loss`` are transactions on ``params``
    (`transaction`): the base class wraps a subclass's own definitions of them, so that
    when a later layer refuses a batch, the moving averages an earlier layer already moved
    are put back. A layer called on its own (``net.bn1(x)``) updates its averages at once.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in TRANSACTIONS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "transaction", False):
                setattr(cls, name, transaction(method))

    training: bool = True  # class-level defaults: a subclass need not call __init__
    seed: int | None = None
    rng: np.random.Generator | None = None
    dtype: Any = np.float64

    def __init__(self, seed: int | None = None, dtype: Any = np.float64) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":  # an integer model would truncate every weight to 0
            raise TypeError(f"dtype must be a floating-point type, not {self.dtype}")
        if self.dtype.itemsize < 4:
            raise TypeError(
                f"dtype {self.dtype} is too small to train in: its largest value is 65504 and small steps "
                "underflow (Adam's epsilon, 1e-8, is 0 in it); use float32 (half of float64's memory) or float64"
            )

    # ----- layers -----

    def linear(
        self, fan_in: int, fan_out: int, name: str, bias: bool = True, init: str = "glorot", std: float | None = None
    ) -> Linear:
        """Register ``weight_{name}`` (fan_in, fan_out) and, if ``bias``, ``bias_{name}``
        (1, fan_out); return ``forward(x) = x @ weight + bias`` for x of shape (n, fan_in).

        Weights are drawn by the rule ``init`` (`dp.init`: "glorot", "he", "normal" and
        "uniform" with a given ``std``, ...), biases start at 0. The default, Glorot-normal,
        N(0, 2 / (fan_in + fan_out)), keeps the variance of activations and of gradients
        roughly constant through tanh layers (Glorot & Bengio, 2010), the reference
        network's activation. Before batch norm, the scale matters little (batch norm
        undoes it), so one rule serves both.
        """
        fan_in, fan_out = (checks.Whole("[1, inf)")(n, what) for n, what in ((fan_in, "fan_in"), (fan_out, "fan_out")))
        weight = init_weights(init, self._generator(), fan_in, fan_out, std)
        self._register({f"weight_{name}": weight, **({f"bias_{name}": np.zeros((1, fan_out))} if bias else {})})
        return Linear(self, name, fan_in, bias)

    def conv2d(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        name: str,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        init: str = "he",
        std: float | None = None,
    ) -> Conv2d:
        """Register ``weight_{name}`` (out_channels, in_channels, kh, kw), PyTorch's layout, and,
        if ``bias``, ``bias_{name}`` (1, out_channels, 1, 1); return ``forward(x)``, the
        convolution (`dp.nn.conv.conv2d`) of images x (N, in_channels, H, W)::

            y[n, o, p, q] = bias[o] + sum over c, i, j of weight[o, c, i, j] * xp[n, c, p * sh + i, q * sw + j]

        with xp the images padded with ``padding`` zeros on each side; y is (N, out_channels,
        OH, OW), OH = (H + 2 ph - kh) // sh + 1 and OW likewise. ``kernel_size``, ``stride``
        and ``padding`` are ints or (h, w) pairs. The bias is stored as (1, out, 1, 1), not
        PyTorch's (out,), so that it broadcasts over (N, C, H, W) as dp's (1, n) rows do over
        (N, F); its gradient has that shape too.

        Weights are drawn by the rule ``init`` (`dp.init`), with fan_in = in_channels * kh * kw
        and fan_out = out_channels * kh * kw, as PyTorch counts them; biases start at 0. The
        default, He-normal, N(0, 2 / fan_in), keeps the variance of activations roughly constant
        through ReLU layers (He et al., 2015), the activation convolutional networks use.

        Errors: ``ValueError`` for channels or a kernel < 1, a stride < 1, a padding < 0
        (``TypeError`` for one that is not a whole number) and, when the layer is called,
        for an input that is not (N, in_channels, H, W), numeric and finite, or smaller
        than the kernel once padded.
        """
        size, what = checks.Whole("[1, inf)"), f"conv layer {name!r}: "
        in_channels, out_channels = size(in_channels, what + "in_channels"), size(out_channels, what + "out_channels")
        kh, kw = checks.Pair(size)(kernel_size, what + "kernel_size")
        options = checks.checked(CONV_CONSTRAINTS, what, stride=stride, padding=padding)
        shape = (out_channels, in_channels, kh, kw)
        weight = init_weights(init, self._generator(), in_channels * kh * kw, out_channels * kh * kw, std, shape)
        self._register(
            {f"weight_{name}": weight, **({f"bias_{name}": np.zeros((1, out_channels, 1, 1))} if bias else {})}
        )
        return Conv2d(self, name, in_channels, options["stride"], options["padding"], bias)

    def batch_norm(
        self,
        fan_in: int,
        name: str,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        activation: str | None = None,
        renorm: bool = False,
        rmax: float = 3.0,
        dmax: float = 5.0,
        renorm_warmup: int = 0,
    ) -> BatchNorm:
        """Register batch norm over ``fan_in`` features; return ``forward(x, train=None)``.

        Learned: ``gamma_{name}`` (ones) and ``beta_{name}`` (zeros), (1, fan_in).
        State, never in ``grad()``: ``avg_mean_{name}`` and ``avg_variance_{name}``
        (zeros, (1, fan_in)) and ``batches_{name}``, the number of training batches seen
        (as PyTorch's ``num_batches_tracked``), a (1, 1) array in the model's dtype like
        every entry (whole numbers are exact in it up to 2**24 in float32, 2**53 in float64).

        Training (``train=True``, or ``None`` while the model is in training mode),
        for a batch x of shape (N, fan_in), per feature::

            mean = x.mean(0)        var = ((x - mean) ** 2).mean(0)     # biased
            y = gamma * (x - mean) / sqrt(var + eps) + beta
            avg_mean     <- (1 - momentum) * avg_mean     + momentum * mean
            avg_variance <- (1 - momentum) * avg_variance + momentum * var
            batches      <- batches + 1

        Evaluation (``train=False``) uses ``avg_mean`` and ``avg_variance`` instead of
        the batch's statistics, and changes nothing.

        ``momentum`` is the weight of the *new* batch, as in PyTorch
        (``BatchNorm1d(momentum=0.1)``). Keras's ``momentum`` is the weight of the
        *old* average (``BatchNormalization(momentum=0.99)``): Keras m equals dp
        ``1 - m``. ``momentum=None`` is a cumulative average, as PyTorch's
        ``BatchNorm1d(momentum=None)``: the k-th training batch (``batches`` + 1 = k) has
        the weight 1 / k, so after k batches the averages are the plain mean of the k
        batches' statistics (and they owe nothing to the initial zeros, which a fixed
        momentum m forgets only as (1 - m)^k: docs/running_statistics.md).
        ``unbiased_average=True`` stores the unbiased batch variance
        ``var * N / (N - 1)`` in ``avg_variance``, as PyTorch's ``running_var`` does;
        normalization itself always uses the biased one, as in the paper.
        ``activation`` (one of `dp.nn.activations.ACTIVATIONS`) is applied to the output.

        ``renorm=True`` is batch renormalization (Ioffe, 2017, Algorithm 1). In training,
        per feature, with the averages as they are before the batch moves them::

            sigma_B = sqrt(var + eps)        sigma = sqrt(avg_variance + eps)
            r = clip(sigma_B / sigma, 1 / rmax, rmax)                  # constants: no gradient
            d = clip((mean - avg_mean) / sigma, -dmax, dmax)
            y = gamma * ((x - mean) / sigma_B * r + d) + beta

        then the averages move as above, and evaluation is batch norm's. Unclipped,
        training computes what evaluation will, ``(x - avg_mean) / sigma``. The first
        batch (averages still zeros) is plain batch norm (r = 1, d = 0). ``renorm_warmup``
        W > 0 ramps the bounds linearly with the batches counted, from (1, 0), batch norm,
        at the first batch to (``rmax``, ``dmax``) after W batches (`BatchNorm.renorm_limits`;
        the paper holds (1, 0) for 5000 steps, then relaxes rmax to 3 by 40k and dmax to 5
        by 25k). ``rmax`` >= 1, ``dmax`` >= 0; without ``renorm`` they are not used.

        Errors: ``ValueError`` for an input that is not (N, fan_in); a training batch
        of fewer than 2 rows (one value per feature has no variance); NaN, inf or
        overflowing values (checked before any state changes); ``RuntimeError`` for
        evaluation before any training batch (the averages are still zeros, and
        dividing by ``sqrt(eps)`` would blow the activations up by ~300x). A setting out
        of its range (`BATCH_NORM_CONSTRAINTS`) is a ``ValueError`` (``TypeError`` for the
        wrong kind), and nothing is registered.
        """
        settings = (momentum, eps, unbiased_average, activation, renorm, rmax, dmax, renorm_warmup)
        return self._batch_norm(fan_in, name, settings, images=False)

    def _batch_norm(self, fan_in: int, name: str, settings: tuple[Any, ...], images: bool) -> BatchNorm:
        """`batch_norm` (or, with ``images``, `batch_norm2d`): the settings, given in the order
        of `BATCH_NORM_CONSTRAINTS` (momentum, eps, unbiased_average, activation, renorm, rmax,
        dmax, renorm_warmup), checked against it, the entries registered, the layer made."""
        what = f"batch norm {name!r}:"
        fan_in = checks.Whole("[1, inf)")(fan_in, f"{what} {'channels' if images else 'fan_in'}")
        options = {
            key: constraint(value, f"{what} {key}")
            for (key, constraint), value in zip(BATCH_NORM_CONSTRAINTS.items(), settings, strict=True)
        }
        zeros = np.zeros((1, fan_in, 1, 1) if images else (1, fan_in))  # shaped to broadcast against the input
        learned = {f"gamma_{name}": zeros + 1, f"beta_{name}": zeros}
        state = {f"avg_mean_{name}": zeros, f"avg_variance_{name}": zeros, f"batches_{name}": np.zeros((1, 1))}
        self._register({**learned, **state})
        return BatchNorm(self, name, fan_in, images=images, **options)

    def batch_norm2d(
        self,
        channels: int,
        name: str,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        activation: str | None = None,
        renorm: bool = False,
        rmax: float = 3.0,
        dmax: float = 5.0,
        renorm_warmup: int = 0,
    ) -> BatchNorm:
        """Register batch norm over the ``channels`` channels of NCHW images, as PyTorch's
        ``BatchNorm2d``; return ``forward(x, train=None)`` for x (N, channels, H, W).

        It is `batch_norm` with each channel as a feature whose values are all of the
        batch's positions: per channel c, the mean and biased variance are taken over the
        N * H * W values ``x[:, c, :, :]`` (axes (0, 2, 3)). A feature map's statistics are
        shared over its positions, as its convolution's weights are (docs/cnn.md). Everything
        else is `batch_norm`'s: the momentum convention (and ``momentum=None``),
        ``unbiased_average`` (N * H * W / (N * H * W - 1)), the batch count, train and eval,
        ``activation``, batch renormalization (``renorm``, ``rmax``, ``dmax``,
        ``renorm_warmup``, with r and d per channel) and the errors, with "at least 2 values
        per channel" (N * H * W >= 2) for a training batch.

        Learned: ``gamma_{name}`` (ones) and ``beta_{name}`` (zeros); state:
        ``avg_mean_{name}`` and ``avg_variance_{name}`` (zeros), each (1, channels, 1, 1) so
        that it broadcasts against the images as the (1, F) rows do against rows; and
        ``batches_{name}`` (1, 1).
        """
        settings = (momentum, eps, unbiased_average, activation, renorm, rmax, dmax, renorm_warmup)
        return self._batch_norm(channels, name, settings, images=True)

    def group_norm(self, channels: int, groups: int, name: str, eps: float = 1e-5) -> GroupNorm:
        """Register group norm (Wu & He, 2018) over the ``channels`` channels of NCHW images in
        ``groups`` groups of consecutive channels, as PyTorch's ``GroupNorm(groups, channels)``;
        return ``forward(x)`` for x (N, channels, H, W). Per sample and group, the mean and
        biased variance are taken over the group's channels and every position
        (`dp.nn.normalization.group_norm`); no state and no modes, as layer norm.

        Learned: ``gamma_{name}`` (ones) and ``beta_{name}`` (zeros), per channel,
        (1, channels, 1, 1). One group is layer norm over (C, H, W); ``channels`` groups are
        instance norm. ``ValueError`` when ``groups`` does not divide ``channels``.
        """
        what = f"group norm {name!r}:"
        channels = checks.Whole("[1, inf)")(channels, f"{what} channels")
        options = checks.checked(GROUP_NORM_CONSTRAINTS, f"{what} ", groups=groups, eps=eps)
        if channels % options["groups"]:
            raise ValueError(f"{what} {options['groups']} groups do not divide the {channels} channels")
        shape = (1, channels, 1, 1)
        self._register({f"gamma_{name}": np.ones(shape), f"beta_{name}": np.zeros(shape)})
        return GroupNorm(self, name, channels, options["groups"], options["eps"])

    def layer_norm(self, fan_in: int, name: str, eps: float = 1e-5) -> LayerNorm:
        """Register layer norm over ``fan_in`` features; return ``forward(x)``.

        Learned: ``gamma_{name}`` (ones) and ``beta_{name}`` (zeros), (1, fan_in), as in
        batch norm. For x of shape (N, fan_in), per *row* (see `layer_norm_composed`)::

            mean = x.mean(1)        var = ((x - mean) ** 2).mean(1)     # biased
            y = gamma * (x - mean) / sqrt(var + eps) + beta

        No state and no modes: each row is normalized by its own statistics, so the
        layer computes the same function in training and evaluation, never updates
        anything, and works on a single row. It takes no ``train`` argument.

        Errors: ``ValueError`` for an input that is not (N, fan_in), numeric and finite.
        """
        fan_in = checks.Whole("[1, inf)")(fan_in, "fan_in")
        eps = checks.checked(LAYER_NORM_CONSTRAINTS, eps=eps)["eps"]
        row = np.zeros((1, fan_in))
        self._register({f"gamma_{name}": row + 1, f"beta_{name}": row})
        return LayerNorm(self, name, fan_in, eps)

    def dropout(self, p: float = 0.5, seed: int | None = None) -> Dropout:
        """Return inverted dropout with drop probability ``p`` in [0, 1): ``forward(x, train=None)``.

        Training (``train=True``, or ``None`` while the model is in training mode): each
        element is kept with probability 1 - p and divided by 1 - p, so every output has
        the expected value of its input; evaluation returns x unchanged (see `dropout`).
        Masks come from the model's random generator (``NeuralNode(seed=...)``), or from
        a generator of the layer's own made from ``seed``. Nothing is registered in
        ``params``: dropout has no parameters and no state.
        """
        options = checks.checked(DROPOUT_CONSTRAINTS, p=p, seed=seed)
        return Dropout(self, options["p"], options["seed"])

    def _register(self, entries: dict[str, np.ndarray]) -> None:
        clash = sorted(key for key in entries if key in self.params)  # not set(params): linear in the entries
        if clash:
            raise ValueError(f"parameter names already in use: {clash}; give each layer its own name")
        self.params.update({k: v.astype(self.dtype) for k, v in entries.items()})

    def _generator(self) -> np.random.Generator:
        if self.rng is None:
            self.rng = np.random.default_rng(self.seed)
        return self.rng

    # ----- modes and prediction -----

    def train(self, mode: bool = True) -> NeuralNode:
        """Set training mode (``mode=True``) or eval mode for every batch-norm layer
        called without an explicit ``train`` argument. Returns the model."""
        self.training = bool(mode)
        return self

    def eval(self) -> NeuralNode:
        """Eval mode: batch norm uses its moving averages. Same as ``train(False)``."""
        return self.train(False)

    @transaction
    def forward(self, x: Any, train: bool | None = None) -> Node:
        """The model's output probabilities for a batch ``x``; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(x, train=None)")

    @transaction
    def loss(self, x: Any, y: Any, train: bool | None = None, reduction: str = "sum") -> Node:
        """The cross-entropy of ``forward(x, train)`` against labels y, summed over rows
        by default: binary for one output column (labels 0/1), categorical for more
        (class indices or one-hot). From probabilities, so clipped; `dp.nn.models.MLP`
        overrides it with the exact version computed from its logits.

        The labels can only be checked once the forward pass has shown how many
        outputs there are; if they are refused, the moving averages that pass
        updated are put back (a transaction), so bad labels never count as a training batch."""
        p = self.forward(x, train)
        if p.shape[1] == 1:
            return losses.binary_cross_entropy(p, y, reduction)
        return losses.categorical_cross_entropy(p, y, reduction)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probabilities in eval mode, as an ndarray: (n, 1) for one output, else (n, k).
        Raises `NonFiniteError` when finite rows are too large for the network (the sums of
        a layer overflow, and a NaN would be a silent class 0)."""
        # A sum that overflows to inf and meets a -inf is NaN: refused, never read as class 0. (An inf
        # that a saturating activation turns back into a number is not an error here: `fit` evaluates
        # diverging models this way, and training mode refuses such batches by their statistics.)
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, with a message that says why
            p = self.forward(x, train=False).value
        if not checks.all_finite(p):
            raise NonFiniteError(
                "the network's output is NaN or inf for these rows: their values are too large for it "
                "(a layer's sums overflow); scale them as the training rows were"
            )
        return p

    def predict(self, x: Any) -> np.ndarray:
        """Predicted classes in eval mode, as an (n, 1) int column: probability > 0.5 for
        one output, else the most probable output's index."""
        return classes(self.predict_proba(x))

    def checked_data(self, x: Any, y: Any, what: str = "training") -> tuple[np.ndarray, np.ndarray]:
        """Rows ``x`` and labels ``y`` as arrays this model trains on, after the checks that
        training on them would make, so that `dp.train.fit` can refuse bad data before the
        first step (and never mistake it for divergence). ``what`` names the data in errors
        ("training", "validation"). Here: x a finite numeric (n, features) array with n >= 1
        (or images, (n, channels, height, width)), y finite numbers, one per row; returned as
        given, y as a column if it is a vector. A model whose input or loss takes particular
        shapes or labels overrides this (`dp.nn.models.MLP` and `CNN` do)."""
        x = checks.numeric_array(x, f"the {what} rows")
        if x.ndim not in (2, 4):
            raise ValueError(
                f"the {what} rows must be a 2-D array (rows, features) or images (n, channels, height, width), "
                f"got shape {x.shape}"
            )
        x = (
            checks.input_batch(x, x.shape[1], f"the {what} rows")
            if x.ndim == 2
            else checks.input_images(x, x.shape[1], f"the {what} rows")
        )
        y = checks.finite(checks.numeric_array(y, f"the {what} labels"), f"the {what} labels")
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"{len(y) if y.ndim else 'a scalar: no'} labels for {len(x)} {what} rows")
        return x, y.reshape(-1, 1) if y.ndim == 1 else y

    # ----- state -----

    def get_param(self) -> dict[str, np.ndarray]:
        """A copy of ``params``: learned parameters and batch-norm state."""
        return {k: v.copy() for k, v in self.params.items()}

    def set_param(self, values: dict[str, Any]) -> None:
        """Replace some or all of ``params`` (copies are stored, in each entry's dtype).
        Every name must already exist (else ``KeyError``), every array keep its shape
        (``ValueError``) and be finite (`NonFiniteError`); moving variances and batch
        counts cannot be negative, counts must be whole. On any error nothing changes."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise KeyError(f"unknown parameter names {unknown}; this model has {sorted(self.params)}")
        self.params.update({k: self._checked_param(k, v) for k, v in values.items()})

    def _checked_param(self, key: str, value: Any) -> np.ndarray:
        """A copy of ``value`` fit to replace ``params[key]``, or the error that says why not."""
        what, like = f"parameter {key!r}", self.params[key]
        given = checks.finite(checks.numeric_array(value, what), what)
        if given.shape != like.shape:
            raise ValueError(f"{what} has shape {like.shape}, got {given.shape}")
        if key.startswith(("avg_variance_", "batches_")) and (given < 0).any():
            raise ValueError(f"{what} is a {'variance' if key.startswith('avg') else 'count'}: it cannot be negative")
        if key.startswith("batches_") and (given != np.round(given)).any():
            raise ValueError(f"{what} counts batches: it must hold a whole number")
        return checks.in_dtype(given, like.dtype, what, "the parameter's", copy=True)


def classes(probabilities: np.ndarray) -> np.ndarray:
    """The classes `NeuralNode.predict` gives for its ``predict_proba`` output, an (n, 1)
    int column: probability > 0.5 for one output, else the most probable output's index."""
    p = probabilities
    labels = (p > 0.5) if p.shape[1] == 1 else p.argmax(axis=1)
    return labels.astype(np.int64).reshape(-1, 1)
