"""`NeuralNode`, the base class of models, and its layers: linear and batch norm.

A model's whole state is one dict, ``self.params`` (name -> ndarray). A layer
factory registers its entries there and returns the layer's forward function (a
small callable object, `Linear` or `BatchNorm`) that reads them at call time, so
assigning a new array to ``params[k]`` changes the model:

    class Net(dp.NeuralNode):
        def __init__(self):
            self.params = dict()        # calling super().__init__() is optional
            self.l1 = self.linear(30, 20, "l1", bias=False)
            self.bn1 = self.batch_norm(20, "bn1")
            ...

Batch norm is one fused primitive with the closed-form backward pass; the same
layer written with elementary Node operations is in the tests (and in the
solutions notebook), where it is checked against this one.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from dp import checks, losses, ops
from dp.checks import NonFiniteError, finite
from dp.node import Node, SharedWork, primitive


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
    """

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

    # ----- layers -----

    def linear(self, fan_in: int, fan_out: int, name: str, bias: bool = True) -> Linear:
        """Register ``weight_{name}`` (fan_in, fan_out) and, if ``bias``, ``bias_{name}``
        (1, fan_out); return ``forward(x) = x @ weight + bias`` for x of shape (n, fan_in).

        Weights start as Glorot-normal, N(0, 2 / (fan_in + fan_out)), biases at 0:
        that keeps the variance of activations and of gradients roughly constant
        through tanh layers (Glorot & Bengio, 2010), the reference network's
        activation. Before batch norm, the scale matters little (batch norm
        undoes it), so one rule serves both.
        """
        weight_key, bias_key = f"weight_{name}", f"bias_{name}"
        self._register(
            {
                weight_key: self._generator().normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out)),
                **({bias_key: np.zeros((1, fan_out))} if bias else {}),
            }
        )
        return Linear(self, name, fan_in, bias)

    def batch_norm(
        self,
        fan_in: int,
        name: str,
        momentum: float = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        activation: str | None = None,
    ) -> BatchNorm:
        """Register batch norm over ``fan_in`` features; return ``forward(x, train=None)``.

        Learned: ``gamma_{name}`` (ones) and ``beta_{name}`` (zeros). State, never in
        ``grad()``: ``avg_mean_{name}`` and ``avg_variance_{name}`` (zeros). All (1, fan_in).

        Training (``train=True``, or ``None`` while the model is in training mode),
        for a batch x of shape (N, fan_in), per feature::

            mean = x.mean(0)        var = ((x - mean) ** 2).mean(0)     # biased
            y = gamma * (x - mean) / sqrt(var + eps) + beta
            avg_mean     <- (1 - momentum) * avg_mean     + momentum * mean
            avg_variance <- (1 - momentum) * avg_variance + momentum * var

        Evaluation (``train=False``) uses ``avg_mean`` and ``avg_variance`` instead of
        the batch's statistics, and changes nothing.

        ``momentum`` is the weight of the *new* batch, as in PyTorch
        (``BatchNorm1d(momentum=0.1)``). Keras's ``momentum`` is the weight of the
        *old* average (``BatchNormalization(momentum=0.99)``): Keras m equals dp
        ``1 - m``. ``unbiased_average=True`` stores the unbiased batch variance
        ``var * N / (N - 1)`` in ``avg_variance``, as PyTorch's ``running_var`` does;
        normalization itself always uses the biased one, as in the paper.

        ``activation`` ("tanh", "sigmoid" or "relu") is applied inside the same
        primitive, so ``forward`` returns activation(batch norm(x)) and the batch-norm
        output is never kept (the activation's derivative needs only its own output):
        one array fewer per layer for large batches. `dp.models.MLP` uses it, and also
        lets the layer normalize in its linear layers' fresh outputs (`BatchNorm._forward`).

        Errors: ``ValueError`` for an input that is not (N, fan_in); a training batch
        of fewer than 2 rows (one value per feature has no variance); NaN, inf or
        overflowing values (checked before any state changes); ``RuntimeError`` for
        evaluation before any training batch (the averages are still zeros, and
        dividing by ``sqrt(eps)`` would blow the activations up by ~300x).
        """
        if not (isinstance(momentum, numbers.Real) and 0 < momentum <= 1):
            raise ValueError(f"batch norm {name!r}: momentum must be in (0, 1], got {momentum!r}")
        if not (isinstance(eps, numbers.Real) and eps > 0):
            raise ValueError(f"batch norm {name!r}: eps must be > 0, got {eps!r}")
        if activation is not None and activation not in ops.ACTIVATIONS:
            raise ValueError(f"batch norm {name!r}: activation must be one of {sorted(ops.ACTIVATIONS)} or None")
        row = (1, fan_in)
        self._register(
            {
                f"gamma_{name}": np.ones(row),
                f"beta_{name}": np.zeros(row),
                f"avg_mean_{name}": np.zeros(row),
                f"avg_variance_{name}": np.zeros(row),
            }
        )
        return BatchNorm(self, name, fan_in, momentum, eps, unbiased_average, activation)

    def _register(self, entries: dict[str, np.ndarray]) -> None:
        clash = sorted(set(entries) & set(self.params))
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

    def forward(self, x: Any, train: bool | None = None) -> Node:
        """The model's output probabilities for a batch ``x``; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(x, train=None)")

    def loss(self, x: Any, y: Any, train: bool | None = None, reduction: str = "sum") -> Node:
        """The cross-entropy of ``forward(x, train)`` against labels y, summed over rows
        by default: binary for one output column (labels 0/1), categorical for more
        (class indices or one-hot). From probabilities, so clipped; `dp.models.MLP`
        overrides it with the exact version computed from its logits."""
        with self.unchanged_on_error():  # bad labels must not leave this batch in the moving averages
            p = self.forward(x, train)
            if p.shape[1] == 1:
                return losses.binary_cross_entropy(p, y, reduction)
            return losses.categorical_cross_entropy(p, y, reduction)

    def checked_data(self, x: Any, y: Any, what: str = "training") -> tuple[np.ndarray, np.ndarray]:
        """Rows ``x`` and labels ``y`` as arrays this model trains on, after the checks that
        training on them would make, so that `dp.train.fit` can refuse bad data before the
        first step (and never mistake it for divergence). ``what`` names the data in errors
        ("training", "validation"). Here: x a finite numeric (n, features) array with n >= 1,
        y finite numbers, one per row; returned as given, y as a column if it is a vector.
        A model whose loss takes particular labels overrides this (`dp.models.MLP` does)."""
        x = checks.numeric_array(x, f"the {what} rows")
        if x.ndim != 2:
            raise ValueError(f"the {what} rows must be a 2-D array (rows, features), got shape {x.shape}")
        x = checks.input_batch(x, x.shape[1], f"the {what} rows")
        y = checks.finite(checks.numeric_array(y, f"the {what} labels"), f"the {what} labels")
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"{len(y) if y.ndim else 'a scalar: no'} labels for {len(x)} {what} rows")
        return x, y.reshape(-1, 1) if y.ndim == 1 else y

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probabilities in eval mode, as an ndarray: (n, 1) for one output, else (n, k)."""
        with self.unchanged_on_error():
            return self.forward(x, train=False).value

    def predict(self, x: Any) -> np.ndarray:
        """Predicted classes in eval mode, as an (n, 1) int column: probability > 0.5 for
        one output, else the most probable output's index."""
        return classes(self.predict_proba(x))

    # ----- state -----

    def get_param(self) -> dict[str, np.ndarray]:
        """A copy of ``params``: learned parameters and batch-norm state."""
        return {k: v.copy() for k, v in self.params.items()}

    def set_param(self, values: dict[str, Any]) -> None:
        """Replace some or all of ``params`` (copies are stored, in the model's dtype).
        Every name must already exist (else ``KeyError``), every array keep its shape
        (``ValueError``) and be finite (`NonFiniteError`); on any error nothing changes."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise KeyError(f"unknown parameter names {unknown}; this model has {sorted(self.params)}")
        new = {}
        for k, v in values.items():
            if np.asarray(v).dtype.kind not in "biuf":
                raise TypeError(f"parameter {k!r} must be numeric, not {np.asarray(v).dtype}")
            array = np.array(v, dtype=self.params[k].dtype)
            if array.shape != self.params[k].shape:
                raise ValueError(f"parameter {k!r} has shape {self.params[k].shape}, got {array.shape}")
            finite(array, f"parameter {k!r}")
            if k.startswith("avg_variance_") and (array < 0).any():
                raise ValueError(f"parameter {k!r} is a variance: it cannot be negative")
            new[k] = array
        self.params.update(new)

    def unchanged_on_error(self) -> _Unchanged:
        """A context manager for a block that may update ``params`` (batch-norm averages
        do): if the block raises, every entry is put back as it was. Cheap: layers
        replace arrays, they never write into them, so keeping the old references
        keeps the old values."""
        return _Unchanged(self.params)


class _Unchanged:
    """`NeuralNode.unchanged_on_error`, as a class: it runs at every forward pass, and a
    generator-based context manager costs several times more."""

    __slots__ = ("params", "saved")

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params, self.saved = params, dict(params)

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is not None:
            self.params.clear()
            self.params.update(self.saved)


# ----- the layers: small callable objects that read their model's params at call time -----
# (Objects, not closures, so that a model pickles and a deep copy's layers use the copy's params.)


class Linear:
    """``forward(x) = x @ weight + bias`` for x (n, fan_in): see `NeuralNode.linear`."""

    def __init__(self, model: NeuralNode, name: str, fan_in: int, bias: bool) -> None:
        self.model, self.fan_in, self.what = model, fan_in, f"linear layer {name!r}"
        self.weight_key, self.bias_key = f"weight_{name}", (f"bias_{name}" if bias else None)

    def __call__(self, x: Any) -> Node:
        x = _input(x, self.fan_in, self.what, self.model.dtype)
        params, bias_key = self.model.params, self.bias_key
        weight = Node(params[self.weight_key], self.weight_key)
        return ops.linear(x, weight, None if bias_key is None else Node(params[bias_key], bias_key))


class BatchNorm:
    """Batch norm over fan_in features, ``forward(x, train=None)``: see
    `NeuralNode.batch_norm` for the formulas, the options and the errors."""

    def __init__(
        self,
        model: NeuralNode,
        name: str,
        fan_in: int,
        momentum: float,
        eps: float,
        unbiased_average: bool,
        activation: str | None,
    ) -> None:
        self.model, self.fan_in, self.what = model, fan_in, f"batch norm {name!r}"
        self.momentum, self.eps, self.unbiased_average, self.activation = momentum, eps, unbiased_average, activation
        self.keys = tuple(f"{kind}_{name}" for kind in ("gamma", "beta", "avg_mean", "avg_variance"))
        # The variance array the last training batch wrote: see `trained`.
        self._trained_variance: np.ndarray | None = None

    @property
    def trained(self) -> bool:
        """Whether the moving averages hold statistics: non-zero ones (trained, set or
        loaded), or zeros that a training batch wrote (features constant in every batch).
        Training replaces the arrays, never writes into them, so a failed step that puts
        the old arrays back makes this false again if it was."""
        variance = self.model.params[self.keys[3]]
        return variance is self._trained_variance or bool(variance.any())

    def require_trained(self) -> None:
        """Raise ``RuntimeError`` unless `trained`: eval mode with the initial zero averages
        would divide by sqrt(eps) and blow the activations up by ~300x."""
        if not self.trained:
            raise RuntimeError(
                f"{self.what} has not seen a training batch yet: its moving averages are still "
                "zeros. Train first (train=True), or load trained parameters."
            )

    def __call__(self, x: Any, train: bool | None = None) -> Node:
        return self._forward(x, train, reuse_input=False)

    def _forward(self, x: Any, train: bool | None, reuse_input: bool) -> Node:
        """The layer; ``reuse_input`` normalizes in x's own buffer, overwriting x's value.
        Only for an input nobody reads again, not even its own vjp (tanh's reads its
        output): `dp.models.MLP` passes its linear layers' fresh outputs."""
        x = _input(x, self.fan_in, self.what, self.model.dtype)
        model, what = self.model, self.what
        params, (gamma_key, beta_key, mean_key, variance_key) = model.params, self.keys
        gamma, beta = Node(params[gamma_key], gamma_key), Node(params[beta_key], beta_key)
        if not (model.training if train is None else train):
            self.require_trained()
            finite(x.value, f"{what}: the input")
            mean, variance = params[mean_key], params[variance_key]
            return normalize_with(x, gamma, beta, mean, variance, self.eps, self.activation, reuse_input)
        count = x.shape[0]
        if count < 2:
            raise ValueError(
                f"{what}: a training batch needs at least 2 rows, got {count}: with one value per "
                "feature the batch variance is 0 and normalizing is meaningless. Use larger "
                "batches, or train=False to use the moving averages."
            )
        mean, centered, var = batch_statistics(x.value, what, reuse_input)
        stored = var * (count / (count - 1)) if self.unbiased_average else var
        momentum, dtype = self.momentum, params[variance_key].dtype
        # astype: a float64 batch must not turn a float32 model's averages into float64
        params[mean_key] = ((1 - momentum) * params[mean_key] + momentum * mean).astype(dtype, copy=False)
        params[variance_key] = self._trained_variance = (
            (1 - momentum) * params[variance_key] + momentum * stored
        ).astype(dtype, copy=False)
        return normalize_batch(x, gamma, beta, centered, var, self.eps, self.activation)


def classes(probabilities: np.ndarray) -> np.ndarray:
    """The classes `NeuralNode.predict` gives for its ``predict_proba`` output, an (n, 1)
    int column: probability > 0.5 for one output, else the most probable output's index."""
    p = probabilities
    labels = (p > 0.5) if p.shape[1] == 1 else p.argmax(axis=1)
    return labels.astype(np.int64).reshape(-1, 1)


def _per_feature(v: Any, x: Node, what: str) -> Any:
    """A per-feature gamma or beta for x (N, F) as a (1, F) row (or a number) in x's dtype:
    a float64 array must not upcast float32 x, and a 1-D array is a row here, never the
    column `Node` would make of it."""
    if isinstance(v, Node) or isinstance(v, numbers.Real):
        return v
    array = np.asarray(v, dtype=x.dtype)
    features = x.shape[1]
    if array.shape not in ((), (features,), (1, features)):
        raise ValueError(f"{what} must have shape (1, {features}) or ({features},), got {array.shape}")
    return array.reshape(1, -1) if array.ndim else array


def as_input(x: Any, dtype: Any) -> Node | np.ndarray:
    """An input in the model's ``dtype``, so that float64 data does not turn a float32
    model's computation into float64: a Node (cast, unless it needs its own gradient,
    which a cast would cut off) or an array (cast if numeric; the caller checks it)."""
    if isinstance(x, Node):
        return x if x.dtype == dtype or x.needs_grad else Node(x.value.astype(dtype))
    value = np.asarray(x)
    return value.astype(dtype, copy=False) if value.dtype.kind in "biuf" else value


def _input(x: Any, fan_in: int, what: str, dtype: Any) -> Node:
    """A layer's input as a Node of the model's dtype, with its shape checked."""
    x = as_input(x, dtype)
    x = x if isinstance(x, Node) else Node(x)
    shape = x.value.shape
    if len(shape) != 2 or shape[1] != fan_in:
        raise ValueError(f"{what} expects a batch of shape (n, {fan_in}), with {fan_in} features per row; got {shape}")
    if shape[0] == 0:
        raise ValueError(f"{what}: the batch is empty (0 rows)")
    return x


# ----- batch norm, as primitives with their closed-form backward passes -----


def batch_statistics(
    x: np.ndarray, what: str = "batch norm", reuse_input: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature ``mean``, ``x - mean`` (in x's own buffer if ``reuse_input``) and
    biased variance of a batch x (N, F).

    Raises `NonFiniteError` if x has NaN or inf (or values so large that their sum
    or squares overflow). The check is on the (1, F) sums, not on x: any NaN or
    inf in a column makes its sum NaN or inf, and a check of x would cost a pass.
    """
    total = x.sum(axis=0, keepdims=True)
    if not np.isfinite(total).all():
        raise NonFiniteError(f"{what}: the batch has NaN or inf values (or values too large to add up)")
    mean = total / x.shape[0]
    centered = np.subtract(x, mean, out=x if reuse_input else None)
    var = column_dot(centered, centered) / x.shape[0]
    if not np.isfinite(var).all():
        raise NonFiniteError(f"{what}: the batch has values too large to square")
    return mean, centered, var


def column_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(axis=0, keepdims=True)`` without the (N, F) temporary: faster at every size."""
    return np.einsum("ij,ij->j", a, b)[None, :]


def _scale_shift_activate(xhat, gamma, beta, activation):
    """``y = activation(gamma * xhat + beta)``, in one new array, and the function that
    takes the gradient of y back through the activation."""
    y = xhat * gamma
    y += beta
    if activation is None:
        return y, lambda g: g
    _, in_place, vjp = ops.ACTIVATIONS[activation]
    in_place(y)
    return y, lambda g: vjp(g, y)


@primitive
def normalize_batch(x, gamma, beta, centered, var, eps=1e-5, activation=None):
    """Training-mode batch norm of x (N, F), given its `batch_statistics` ``centered``
    (which this takes over and overwrites) and ``var``; then ``activation`` if given.
    The backward pass is closed-form, with xhat = (x - mean) / sqrt(var + eps), g the
    gradient of the batch-norm output and column sums over the batch::

        dgamma = sum(g * xhat)     dbeta = sum(g)
        dx = gamma / sqrt(var + eps) / N * (N * g - dbeta - xhat * dgamma)
    """
    n = x.shape[0]
    inv = 1 / np.sqrt(var + eps)
    xhat = np.multiply(centered, inv, out=centered)
    y, through_activation = _scale_shift_activate(xhat, gamma, beta, activation)

    def column_sums(dy):
        return column_dot(dy, xhat), dy.sum(axis=0, keepdims=True)

    sums = SharedWork(lambda g: column_sums(through_activation(g)))  # for gamma and beta, if x's vjp didn't run

    def vjp_x(g):
        dy = through_activation(g)
        dgamma, dbeta = sums.put(g, column_sums(dy))
        d = xhat * (dgamma / n)  # gamma * inv * (dy - dbeta / N - xhat * dgamma / N), in one temporary
        d += dbeta / n
        np.subtract(dy, d, out=d)
        d *= gamma * inv
        return d

    return y, (vjp_x, lambda g: sums(g)[0], lambda g: sums(g)[1])


@primitive
def normalize_with(x, gamma, beta, mean, var, eps=1e-5, activation=None, reuse_input=False):
    """Eval-mode batch norm: normalize with fixed ``mean`` and ``var`` (the moving
    averages), an affine map of x: ``dx = g * gamma / sqrt(var + eps)``; then
    ``activation`` if given. With ``reuse_input``, xhat is computed in x's buffer."""
    inv = 1 / np.sqrt(var + eps)
    xhat = np.subtract(x, mean, out=x if reuse_input else None)
    xhat *= inv
    y, through_activation = _scale_shift_activate(xhat, gamma, beta, activation)
    dy = SharedWork(through_activation)
    return y, (
        lambda g: dy(g) * (gamma * inv),
        lambda g: column_dot(dy(g), xhat),
        lambda g: dy(g).sum(axis=0, keepdims=True),
    )


def batch_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Node:
    """Training-mode batch norm as a plain function (no moving averages): x (N, F),
    gamma and beta (1, F); each a Node or an array."""
    x = x if isinstance(x, Node) else Node(x)
    gamma, beta = _per_feature(gamma, x, "gamma"), _per_feature(beta, x, "beta")
    _, centered, var = batch_statistics(x.value)
    return normalize_batch(x, gamma, beta, centered, var, eps)
