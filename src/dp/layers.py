"""`NeuralNode`, the base class of models, and its layers: linear, batch norm, layer norm, dropout.

A model's whole state is one dict, ``self.params`` (name -> ndarray). A layer
factory registers its entries there and returns the layer, a small callable
object that reads them at call time, so assigning a new array to ``params[k]``
changes the model::

    class Net(dp.NeuralNode):
        def __init__(self):
            self.params = dict()        # calling super().__init__() is optional
            self.l1 = self.linear(30, 20, "l1", bias=False)
            self.bn1 = self.batch_norm(20, "bn1")
            ...

Batch norm (Ioffe & Szegedy, 2015, Algorithm 1) is here twice, as the same
function of x, gamma and beta:

- `batch_norm_composed`: the paper's four lines in Node operations; autodiff
  derives the backward pass. This is what a student writes.
- `batch_norm_closed_form`: one primitive whose backward pass is the paper's
  closed-form formula, written out as the formula. The `BatchNorm` layer uses it,
  and `batch_norm` is the same with its arguments checked, for direct calls.

A third version, for speed, fuses the linear layer before it and the activation
after it and reuses buffers: `dp.fused`, used by `dp.models.MLP`. The tests pin
all three to each other.

Layer norm (`layer_norm_composed`) is batch norm's four lines with the axis turned:
statistics per row instead of per feature, hence no moving averages and no modes.
Dropout (`dropout`) multiplies by a random mask in training and does nothing in
evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dp import checks, losses, ops
from dp.checks import Flag, NonFiniteError, OneOf, OrNone, Real, Whole
from dp.init import weights as init_weights
from dp.node import Node, apply, primitive

ACTIVATIONS = ("tanh", "sigmoid", "relu")  # Node methods a layer may apply after batch norm
STATE_PREFIXES = ("avg_mean_", "avg_variance_", "batches_")  # params entries that are state, never learned

BATCH_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {
    "momentum": Real("(0, 1]"),
    "eps": Real("(0, inf)"),
    "unbiased_average": Flag(),
    "activation": OneOf(*ACTIVATIONS),
}

LAYER_NORM_CONSTRAINTS: dict[str, checks.Constraint] = {"eps": Real("(0, inf)")}
DROPOUT_CONSTRAINTS: dict[str, checks.Constraint] = {
    "p": Real("[0, 1)"),
    "train": Flag(),
    "seed": OrNone(Whole("[0, inf)")),
}


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

        Learned: ``gamma_{name}`` (ones) and ``beta_{name}`` (zeros), (1, fan_in).
        State, never in ``grad()``: ``avg_mean_{name}`` and ``avg_variance_{name}``
        (zeros, (1, fan_in)) and ``batches_{name}``, the number of training batches seen
        (as PyTorch's ``num_batches_tracked``), a (1, 1) array in the model's dtype like
        every entry (whole numbers are exact in it up to 2**11 in float16, 2**24 in float32, 2**53 in float64).

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
        ``1 - m``. ``unbiased_average=True`` stores the unbiased batch variance
        ``var * N / (N - 1)`` in ``avg_variance``, as PyTorch's ``running_var`` does;
        normalization itself always uses the biased one, as in the paper.
        ``activation`` ("tanh", "sigmoid" or "relu") is applied to the output.

        Errors: ``ValueError`` for an input that is not (N, fan_in); a training batch
        of fewer than 2 rows (one value per feature has no variance); NaN, inf or
        overflowing values (checked before any state changes); ``RuntimeError`` for
        evaluation before any training batch (the averages are still zeros, and
        dividing by ``sqrt(eps)`` would blow the activations up by ~300x).
        """
        what = f"batch norm {name!r}:"
        fan_in = checks.Whole("[1, inf)")(fan_in, f"{what} fan_in")
        options = {
            key: BATCH_NORM_CONSTRAINTS[key](value, f"{what} {key}")
            for key, value in (("momentum", momentum), ("eps", eps), ("unbiased_average", unbiased_average))
        }
        if activation is not None:
            BATCH_NORM_CONSTRAINTS["activation"](activation, f"{what} activation")
        row = np.zeros((1, fan_in))
        learned = {f"gamma_{name}": row + 1, f"beta_{name}": row}
        self._register({**learned, f"avg_mean_{name}": row, f"avg_variance_{name}": row, f"batches_{name}": row[:, :1]})
        return BatchNorm(self, name, fan_in, activation=activation, **options)

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
        overrides it with the exact version computed from its logits.

        The labels can only be checked once the forward pass has shown how many
        outputs there are; if they are refused, the moving averages that pass
        updated are put back, so bad labels never count as a training batch."""
        before = dict(self.params)  # arrays are replaced, never written into: this keeps the old values
        p = self.forward(x, train)
        try:
            if p.shape[1] == 1:
                return losses.binary_cross_entropy(p, y, reduction)
            return losses.categorical_cross_entropy(p, y, reduction)
        except (TypeError, ValueError):
            self.params.update(before)
            raise

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probabilities in eval mode, as an ndarray: (n, 1) for one output, else (n, k)."""
        return self.forward(x, train=False).value

    def predict(self, x: Any) -> np.ndarray:
        """Predicted classes in eval mode, as an (n, 1) int column: probability > 0.5 for
        one output, else the most probable output's index."""
        return classes(self.predict_proba(x))

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
        return np.array(given, dtype=like.dtype)


# ----- the layers: small callable objects that read their model's params at call time -----
# (Objects, not closures, so that a model pickles and a deep copy's layers use the copy's params.)


class Linear:
    """``forward(x) = x @ weight + bias`` for x (n, fan_in): see `NeuralNode.linear`."""

    def __init__(self, model: NeuralNode, name: str, fan_in: int, bias: bool) -> None:
        self.model, self.fan_in, self.what = model, fan_in, f"linear layer {name!r}"
        self.weight_key, self.bias_key = f"weight_{name}", (f"bias_{name}" if bias else None)

    def __call__(self, x: Any) -> Node:
        """The layer on a batch x, checked: (n, fan_in), numeric and finite."""
        return self.forward(checked_input(x, self.fan_in, self.what, self.model.dtype))

    def forward(self, x: Node) -> Node:
        """The layer on a Node already checked (by a model's entry point)."""
        params, bias_key = self.model.params, self.bias_key
        weight = Node(params[self.weight_key], self.weight_key)
        return linear(x, weight, None if bias_key is None else Node(params[bias_key], bias_key))


linear = primitive(ops.linear)  # x @ w + b as one node


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
        """The layer on a Node already checked (by a model's entry point)."""
        training = self.model.training if train is None else train
        statistics = batch_statistics(x.value, self.what) if training and x.shape[0] > 1 else None
        y = self.normalize(x, training)
        if statistics is not None:
            self.update_averages(*statistics, x.shape[0])
        return y if self.activation is None else getattr(y, self.activation)()

    def normalize(self, x: Node, training: bool) -> Node:
        """Batch norm of x, without the activation, changing nothing: with the batch's
        statistics (``training``) or with the moving averages."""
        gamma, beta = self.learned()
        if training:
            self.require_batch(x.shape[0])
            return batch_norm_closed_form(x, gamma, beta, eps=self.eps)
        self.require_trained()
        return batch_norm_eval(x, gamma, beta, self.average_mean(), self.average_variance(), self.eps)

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


class Dropout:
    """Inverted dropout, ``forward(x, train=None)``: see `NeuralNode.dropout`."""

    def __init__(self, model: NeuralNode, p: float, seed: int | None = None) -> None:
        self.model, self.p = model, p
        self.rng = None if seed is None else np.random.default_rng(seed)  # None: the model's generator

    def __call__(self, x: Any, train: bool | None = None) -> Node:
        """Dropout of x (a Node or a numeric array, any shape) in training, x itself in evaluation."""
        x = as_input(x, self.model.dtype)
        training = self.model.training if train is None else train
        rng = self.rng if self.rng is not None else self.model._generator()
        return dropout(x, self.p, train=training, rng=rng)


def classes(probabilities: np.ndarray) -> np.ndarray:
    """The classes `NeuralNode.predict` gives for its ``predict_proba`` output, an (n, 1)
    int column: probability > 0.5 for one output, else the most probable output's index."""
    p = probabilities
    labels = (p > 0.5) if p.shape[1] == 1 else p.argmax(axis=1)
    return labels.astype(np.int64).reshape(-1, 1)


def as_input(x: Any, dtype: Any) -> Node | np.ndarray:
    """An input in the model's ``dtype``, so that float64 data does not turn a float32
    model's computation into float64: a Node (cast, unless it needs its own gradient,
    which a cast would cut off) or an array (cast if numeric; the caller checks it)."""
    if isinstance(x, Node):
        return x if x.dtype == dtype or x.needs_grad else Node(x.value.astype(dtype))
    value = np.asarray(x)
    return value.astype(dtype, copy=False) if value.dtype.kind in "biuf" else value


def checked_input(x: Any, features: int, what: str, dtype: Any) -> Node:
    """A layer's input as a Node of the model's ``dtype`` (by `Node`'s conventions, so a
    1-D array is a column), after `dp.checks.input_batch`: (n, features), numeric, finite."""
    x = as_input(x, dtype)
    node = x if isinstance(x, Node) else Node(x)
    checks.input_batch(node.value, features, f"{what}: the input")
    return node


# ----- batch norm: the statistics, then the same normalization three ways -----


def batch_statistics(x: np.ndarray, what: str = "batch norm") -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and biased variance of a batch x (N, F), each (1, F): the values
    the moving averages take in. Raises `NonFiniteError` for values so large that
    their sum or squares overflow."""
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, with a clearer message
        mean = x.mean(axis=0, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=0, keepdims=True)
    require_finite_statistics(mean, var, what)
    return mean, var


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
def batch_norm_closed_form(x, gamma, beta, eps=1e-5):  # noqa: ANN001, ANN202 - a primitive, as in dp.ops
    """Training-mode batch norm as one primitive: the forward pass of `batch_norm_composed`,
    and the paper's closed-form backward pass. With g the gradient of y, N rows, and
    sums over the batch (axis 0), per feature::

        dbeta  = sum(g)
        dgamma = sum(g * xhat)
        dxhat  = g * gamma
        dx     = (N * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)) / (N * sqrt(var + eps))

    the last line being the paper's three terms (through xhat, var and mean) added up.
    """
    n = x.shape[0]
    mean = x.mean(axis=0, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=0, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    y = gamma * xhat + beta

    def vjp(g):  # one vjp for x, gamma and beta: they share the column sums
        dbeta = g.sum(axis=0, keepdims=True)
        dgamma = (g * xhat).sum(axis=0, keepdims=True)
        dxhat = g * gamma
        dx = (n * dxhat - dxhat.sum(axis=0, keepdims=True) - xhat * (dxhat * xhat).sum(axis=0, keepdims=True)) / (
            n * std
        )
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


# ----- dropout -----


def dropout(x: Any, p: float, train: bool = True, rng: np.random.Generator | int | None = None) -> Node:
    """Inverted dropout (Srivastava et al., 2014) of x, a Node or a numeric array of any shape.

    In training (``train=True``) each element is kept with probability 1 - p and scaled by
    1 / (1 - p), otherwise set to 0: ``y = x * mask`` with ``mask = (u >= p) / (1 - p)`` for
    uniform u. The scaling keeps every output's expected value equal to its input, so
    evaluation (``train=False``) returns x itself, unscaled. The mask is drawn once, in the
    forward pass, and is a constant of the multiplication: the backward pass multiplies by
    the same mask (dropped elements get no gradient, kept ones 1 / (1 - p)).

    ``p`` is in [0, 1) (p = 1 would drop everything and divide by 0); ``rng`` is a NumPy
    ``Generator``, a seed (an int >= 0) or None for fresh entropy. The mask has x's dtype.
    Raises ``TypeError`` or ``ValueError`` naming a bad ``p``, ``train`` or seed.
    """
    options = checks.checked(DROPOUT_CONSTRAINTS, p=p, train=train)
    node = x if isinstance(x, Node) else Node(x)
    if not options["train"] or options["p"] == 0:
        return node
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(DROPOUT_CONSTRAINTS["seed"](rng, "rng (a seed)"))
    keep = rng.random(node.shape) >= options["p"]
    mask = (keep / (1 - options["p"])).astype(node.dtype)
    return apply(ops.multiply, node, mask)  # the mask is a constant: no gradient of its own
