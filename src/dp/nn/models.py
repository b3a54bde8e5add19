"""Models: `MLP` (whose defaults are the reference breast-cancer network), `CNN` (a
LeNet-style network for MNIST and digits images) and `fold_batch_norm`, which bakes
eval-mode batch norm into the linear layers and convolutions before it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np

from dp import checks
from dp.checks import Flag, OneOf, Whole, checked
from dp.nn import fused as dp_fused
from dp.nn import init as dp_init
from dp.nn import losses
from dp.nn.activations import ACTIVATIONS, activate
from dp.nn.conv import Conv2d, max_pool
from dp.nn.inputs import as_input
from dp.nn.linear import Linear
from dp.nn.module import NeuralNode
from dp.nn.normalization import BATCH_NORM_CONSTRAINTS, BatchNorm
from dp.node import Node

MLP_CONSTRAINTS: dict[str, checks.Constraint] = {
    "batch_norm": Flag(),
    "activation": OneOf(*ACTIVATIONS),
    "seed": lambda seed, name: None if seed is None else Whole("[0, inf)")(seed, name),
    "fused": Flag(),
}


RENORM_SETTINGS = ("renorm", "rmax", "dmax", "renorm_warmup")  # batch renormalization's options


def batch_norm_options(
    momentum: float | None, eps: float, unbiased_average: bool, renorm: bool, rmax: float, dmax: float, warmup: int
) -> dict[str, Any]:
    """A model's batch-norm settings checked (`BATCH_NORM_CONSTRAINTS`), as the keyword
    arguments of its layers' builders (`NeuralNode.batch_norm`)."""
    return checked(
        BATCH_NORM_CONSTRAINTS,
        momentum=momentum,
        eps=eps,
        unbiased_average=unbiased_average,
        renorm=renorm,
        rmax=rmax,
        dmax=dmax,
        renorm_warmup=warmup,
    )


def norm_config(options: dict[str, Any]) -> dict[str, Any]:
    """What a model's ``config`` holds of its checked batch-norm options: ``momentum``,
    ``eps`` and ``unbiased_average`` always, batch renormalization's settings only with
    ``renorm=True``, so that every other model's config (and every checkpoint's) stays as it
    was, and a checkpoint written before renorm existed describes the same model."""
    return {key: value for key, value in options.items() if options["renorm"] or key not in RENORM_SETTINGS}


def fused_config(fused: bool, batch_norm: bool, activation: str, renorm: bool = False) -> dict[str, bool]:
    """What ``MLP(fused=...)`` adds to the model's ``config``: ``{"fused": True}``, or nothing
    for the default, so that a plain model's config (and every checkpoint's) stays as it was.
    Raises ``ValueError`` for ``fused=True`` unless the hidden layers can be fused: each needs
    batch norm and an activation the fused layer applies in place, and plain batch norm (the
    fused layer has no batch renormalization; ``momentum=None`` it has, through the layer's
    `BatchNorm.update_averages`)."""
    if not fused:
        return {}
    if not batch_norm or activation not in dp_fused.FUSED_ACTIVATIONS:
        raise ValueError(
            f"fused=True needs batch_norm=True and an activation the fused layer has in place, one of "
            f"{', '.join(dp_fused.FUSED_ACTIVATIONS)}; got batch_norm={batch_norm!r}, activation={activation!r}"
        )
    if renorm:
        raise ValueError(
            "fused=True does not implement batch renormalization (renorm=True): use the plain layers (fused=False)"
        )
    return {"fused": True}


class Classifier(NeuralNode):
    """What `MLP` and `CNN` share: a network of layers ending in ``logits``, read as a
    sigmoid (one output) or a softmax (more), trained on the exact cross-entropy of the
    logits. A subclass defines ``outputs``, ``_input`` (its input, checked, as a Node) and
    ``_logits`` (its layers on that input), and keeps its settings in ``config``."""

    config: dict[str, Any]

    def __repr__(self) -> str:
        """The constructor call that makes this architecture: ``MLP(sizes=(30, 20, 10, 1), ...)``."""
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({settings})"

    @property
    def outputs(self) -> int:
        raise NotImplementedError

    @property
    def has_batch_norm(self) -> bool:
        return self.config["batch_norm"]

    def folded_pairs(self) -> list[tuple[Any, BatchNorm]]:
        """(layer, the batch norm after it) for every layer followed by batch norm."""
        raise NotImplementedError

    def logits(self, x: Any, train: bool | None = None) -> Node:
        """The last linear layer's output, (n, outputs), for a batch x."""
        return self._logits(self._input(x), train)

    def forward(self, x: Any, train: bool | None = None) -> Node:
        """Probabilities: a sigmoid column for one output, else a softmax over the outputs."""
        z = self.logits(x, train)
        return z.sigmoid() if z.shape[1] == 1 else z.softmax(axis=1)

    def loss(self, x: Any, y: Any, train: bool | None = None, reduction: str = "sum") -> Node:
        """The cross-entropy of the batch (summed over rows by default), computed stably
        from the logits. y: labels (n,) or (n, 1); for k > 1 outputs, class indices or one-hot.
        Everything is checked before the forward pass, which may update moving averages. The
        logits are the model's own ``logits``, so that a subclass's override of it is trained."""
        x = self._input(x)
        labels = checks.labels(y, x.shape[0], self.outputs)
        scale = losses.scale(reduction, x.shape[0])
        return losses.from_logits(self.logits(x, train), labels.astype(self.dtype, copy=False), scale)

    def checked_data(self, x: Any, y: Any, what: str = "training") -> tuple[np.ndarray, np.ndarray]:
        """As `NeuralNode.checked_data`, for this network: rows it takes (see ``_input``), and
        labels its loss takes (binary for one output, class indices or one-hot for more),
        which are returned as given (y a column if it is a vector)."""
        x, y = super().checked_data(x, y, what)
        self._input(x, f"the {what} rows")
        checks.labels(y, len(x), self.outputs)
        return x, y

    def record(self, x: Any, layers: Sequence[str] | None = None, train: bool = False) -> dict[str, np.ndarray]:
        """The values inside the network for a batch x, by layer name, without changing
        anything (the moving averages and batch counts stay as they are, so it can watch a
        fixed batch of test rows at any point of training):

        - the output of each linear layer (`MLP`: ``"l{i}"``, the last one's is the logits)
          or convolution (`CNN`: ``"conv{i}"``, then ``"fc{j}"`` for its linear layers);
        - ``"bn{i}"``: the output of each batch norm (with batch norm), before the activation.

        The input of each hidden layer's activation is its batch norm's output with batch
        norm and the layer's own without (`activation_inputs` names them). ``train=False``
        (the default) normalizes with the moving averages, as the network predicts;
        ``train=True`` with the batch's own statistics, as in a training step. ``layers``
        selects some names (default: all, in the order of the network); an unknown name is a
        ``ValueError`` that lists the known ones. Each value is (n, width), or (n, channels,
        height, width) for a convolution and its batch norm.
        """
        wanted = self._layer_names(layers)
        values: dict[str, np.ndarray] = {}
        self._logits(self._input(x), train, seen=values)
        return {name: values[name] for name in wanted}

    def activation_inputs(self) -> dict[str, str]:
        """``{layer: the name under which `record` gives the input of its activation}`` for each
        hidden layer, in order: ``{"l1": "bn1", "l2": "bn2"}`` for the reference `MLP`,
        ``{"l1": "l1", ...}`` without batch norm; a `CNN`'s convolutions and hidden linear
        layers likewise. The layer is named as its weight is (``weight_{layer}``)."""
        return {_name(layer): _name(norm or layer) for layer, norm in self._hidden_layers()}

    def _layer_names(self, layers: Sequence[str] | None) -> list[str]:
        """``layers`` checked against the names `record` knows (all of them for None)."""
        known = [_name(part) for pair in self._hidden_layers() for part in pair if part is not None]
        known.append(_name(self._output_layer()))
        if layers is None:
            return known
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"this network has no layer {', '.join(map(repr, unknown))}; its layers are {known}")
        return names

    def _hidden_layers(self) -> list[tuple[Any, BatchNorm | None]]:
        """(layer, its batch norm or None) for each layer followed by an activation, in order."""
        raise NotImplementedError

    def _output_layer(self) -> Linear:
        raise NotImplementedError

    def _input(self, x: Any, what: str = "the input") -> Node:
        raise NotImplementedError

    def _logits(self, h: Node, train: bool | None, seen: dict[str, np.ndarray] | None = None) -> Node:
        raise NotImplementedError


def _name(layer: Any) -> str:
    """The name a layer was built with: ``"l1"`` for a layer whose weight is ``weight_l1``,
    ``"bn1"`` for a batch norm whose gamma is ``gamma_bn1`` (any normalization layer by its
    gamma: ``"gn1"`` for a group norm's ``gamma_gn1``, which a subclass may build)."""
    key = layer.gamma_key if hasattr(layer, "gamma_key") else layer.weight_key
    return key.split("_", 1)[1]


def before_activation(
    layer: Any, norm: BatchNorm | None, h: Node, train: bool | None, seen: dict[str, np.ndarray] | None
) -> Node:
    """A hidden layer on h up to its activation: ``layer`` (linear, or a convolution), then
    ``norm`` if any. With a ``seen`` dict, both outputs are recorded in it by name and nothing
    changes (batch norm normalizes without moving its averages: `Classifier.record`)."""
    z = layer.forward(h)
    y = z if norm is None else norm.forward(z, train) if seen is None else norm.normalize(z, bool(train))
    if seen is not None:
        seen.update({_name(layer): z.value, **({_name(norm): y.value} if norm is not None else {})})
    return y


class MLP(Classifier):
    """A multi-layer perceptron, by default the reference network of the seed notebook::

        30 -> linear l1 (30, 20) -> batch norm bn1 -> tanh
           -> linear l2 (20, 10) -> batch norm bn2 -> tanh
           -> linear l3 (10, 1)  -> sigmoid

    ``sizes`` lists the widths, input first. Each hidden layer is ``linear(l{i})``,
    then batch norm ``bn{i}`` when ``batch_norm``, then the ``activation``, any of
    `dp.nn.activations.ACTIVATIONS` ("tanh", "sigmoid", "relu", "leaky_relu", "elu",
    "softplus"). A linear layer followed by batch norm has no bias: batch
    norm subtracts the batch mean, which removes any bias (docs/bias_before_batch_norm.md).
    One output uses a sigmoid and binary cross-entropy; k > 1 outputs a softmax
    and softmax cross-entropy. ``seed`` fixes the initial weights; ``dtype`` is
    that of the parameters and of the computation (inputs are converted to it).
    ``momentum`` (None: a cumulative average), ``eps``, ``unbiased_average`` and batch
    renormalization's ``renorm``, ``rmax``, ``dmax`` and ``renorm_warmup`` are batch norm's
    (`NeuralNode.batch_norm`); ``config`` holds the last four only with ``renorm=True``.
    ``init`` (and ``init_std`` for "normal" and "uniform") draws every weight matrix
    (`dp.init`; the default is Glorot-normal).

    The layers are those of `NeuralNode`, the very objects a seed-style model builds:
    `dp.nn.linear.Linear`, `dp.nn.normalization.BatchNorm` (the closed-form primitive) and
    the activation as a `dp.Node` method. Training builds the graph of these and calls
    ``grad``, as for any model.

    ``fused=True`` (off by default) runs each hidden layer, linear -> batch norm ->
    activation, as one primitive (`dp.nn.fused`): the same math and the same parameters,
    gradients and moving averages (to rounding: the tests hold the two to 1e-12 in float64),
    with fewer arrays kept for the backward pass. It pays where the step is many small
    operations, e.g. the paper's 784-100-100-100-10 network on batches of 60: about 1.25x
    faster and 1.45x leaner in peak memory (docs/speed.md). It needs ``batch_norm=True`` and
    an activation of `dp.nn.fused.FUSED_ACTIVATIONS` (tanh, sigmoid, relu), and no
    ``renorm``, else a ``ValueError``. The plain path is what the course teaches and reads; `record` always
    runs it, and `fold_batch_norm` of a fused model is a plain one. ``config`` holds
    ``fused`` only when True.

    ``train=None`` in the methods below means "the model's mode" (training,
    until ``eval()``); ``predict`` and ``predict_proba`` always use eval mode.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (30, 20, 10, 1),
        batch_norm: bool = True,
        activation: str = "tanh",
        seed: int | None = 0,
        dtype: Any = np.float64,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        init: str = "glorot",
        init_std: float | None = None,
        fused: bool = False,
        renorm: bool = False,
        rmax: float = 3.0,
        dmax: float = 5.0,
        renorm_warmup: int = 0,
    ) -> None:
        sizes = tuple(sizes)
        if not all(checks.is_whole(s) for s in sizes):
            raise TypeError(f"sizes must be whole numbers, got {sizes}")  # int() would truncate 20.9
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least an input and an output width, all >= 1; got {sizes}")
        flags = checked(MLP_CONSTRAINTS, batch_norm=batch_norm, activation=activation, seed=seed, fused=fused)
        norm_options = batch_norm_options(momentum, eps, unbiased_average, renorm, rmax, dmax, renorm_warmup)
        super().__init__(seed, dtype)
        self.config = dict(sizes=sizes, batch_norm=flags["batch_norm"], activation=activation, dtype=self.dtype.name)
        self.config.update(norm_config(norm_options))
        init, init_std = dp_init.check(init, init_std)
        self.config.update(init=init, init_std=init_std)
        self.config.update(fused_config(flags["fused"], flags["batch_norm"], activation, norm_options["renorm"]))
        self.hidden: list[tuple[Linear, BatchNorm | None]] = []  # per hidden layer: linear, batch norm or None
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            linear = self.linear(fan_in, fan_out, f"l{i}", bias=not batch_norm, init=init, std=init_std)
            norm = self.batch_norm(fan_out, f"bn{i}", **norm_options) if batch_norm else None
            self.hidden.append((linear, norm))
        self.output = self.linear(sizes[-2], sizes[-1], f"l{len(sizes) - 1}", init=init, std=init_std)

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.config["sizes"]

    @property
    def outputs(self) -> int:
        return self.sizes[-1]

    @property
    def fused(self) -> bool:
        """Whether the hidden layers run as `dp.nn.fused` primitives (``MLP(fused=True)``)."""
        return self.config.get("fused", False)

    def _input(self, x: Any, what: str = "the input") -> Node:
        """The network's input as a Node of its dtype, checked as it was given: (n, inputs)
        (a 1-D array is refused, not taken for a column)."""
        x = as_input(x, self.dtype)
        value = checks.input_batch(x.value if isinstance(x, Node) else x, self.sizes[0], what)
        return x if isinstance(x, Node) else Node(value)

    def _logits(self, h: Node, train: bool | None, seen: dict[str, np.ndarray] | None = None) -> Node:
        """The layers on an input already checked: linear, batch norm, activation per hidden
        layer, then the output layer. In training, each batch-norm layer moves its averages
        as it runs; should a later layer fail, the model's entry point puts them back (its
        ``forward`` and ``loss`` are transactions: see `NeuralNode`). With a ``seen`` dict,
        each layer's output value is recorded under its name and nothing changes (`record`)."""
        if self.fused and seen is None:  # opt-in: the same math, fewer arrays; `record` reads the layers below
            return self._fused_logits(h, train)
        for linear, norm in self.hidden:
            h = activate(before_activation(linear, norm, h, train, seen), self.config["activation"])
        logits = self.output.forward(h)
        if seen is not None:
            seen[_name(self.output)] = logits.value
        return logits

    def _hidden_layers(self) -> list[tuple[Linear, BatchNorm | None]]:
        return self.hidden

    def _output_layer(self) -> Linear:
        return self.output

    def folded_pairs(self) -> list[tuple[Linear, BatchNorm]]:
        """(layer, its batch norm) for every linear layer followed by batch norm, for
        `fold_batch_norm`: l{i} and bn{i}."""
        return [(linear, norm) for linear, norm in self.hidden if norm is not None]

    def _fused_logits(self, h: Node, train: bool | None) -> Node:
        """`_logits` of a `fused` model: each hidden layer as one `dp.nn.fused.hidden_layer`
        primitive (the same math, fewer arrays), then the output layer."""
        for linear, norm in self.hidden:
            h = dp_fused.hidden_layer(h, linear, cast(BatchNorm, norm), self.config["activation"], train)
        return self.output.forward(h)


CNN_CONSTRAINTS: dict[str, checks.Constraint] = {
    "kernel_size": Whole("[1, inf)"),
    "classes": Whole("[2, inf)"),
    "batch_norm": Flag(),
    "activation": OneOf(*ACTIVATIONS),
    "seed": MLP_CONSTRAINTS["seed"],
}


class CNN(Classifier):
    """A LeNet-style convolutional network for images, by default for MNIST's 28 x 28::

        (1, 28, 28) -> conv1 3x3, 8 channels  -> batch norm bn1 -> relu -> 2x2 max pool -> (8, 14, 14)
                    -> conv2 3x3, 16 channels -> batch norm bn2 -> relu -> 2x2 max pool -> (16, 7, 7)
                    -> flatten (784) -> linear fc1 (784, 10) -> softmax

    ``image`` is (channels, height, width): (1, 8, 8) for scikit-learn's digits. Each entry
    of ``channels`` is a block: a convolution ``conv{i}`` of ``kernel_size`` with padding
    kernel_size // 2 (the image keeps its size for an odd kernel), batch norm per channel
    ``bn{i}`` when ``batch_norm`` (`NeuralNode.batch_norm2d`), the ``activation``, and a 2 x 2
    max pool (halving the height and width, rounding down). Then the feature maps are
    flattened into rows, go through the ``hidden`` linear layers (``fc{j}``, each followed
    by batch norm ``bn{k}`` when ``batch_norm``, then the activation), and a last linear
    layer gives the ``classes`` logits. As in `MLP`, a layer followed by batch norm has no
    bias (the batch mean removes it). ``init`` draws every weight (default "he", for ReLU),
    ``momentum``, ``eps``, ``unbiased_average``, ``renorm``, ``rmax``, ``dmax`` and
    ``renorm_warmup`` are batch norm's, ``seed`` and ``dtype`` as in `MLP`.

    Input: images (n, channels, height, width), or rows of their pixels (n, channels *
    height * width) as `dp.data.mnist` gives them, which are taken as images (row-major,
    as ``x.reshape(n, channels, height, width)``). Trains with `dp.train.fit`, saves and
    loads with `dp.checkpoint`, folds with `fold_batch_norm`, draws with
    ``dp.draw(model.loss(x, y), group=True)``.
    """

    def __init__(
        self,
        image: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 3,
        hidden: Sequence[int] = (),
        classes: int = 10,
        batch_norm: bool = True,
        activation: str = "relu",
        seed: int | None = 0,
        dtype: Any = np.float64,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        unbiased_average: bool = False,
        init: str = "he",
        init_std: float | None = None,
        renorm: bool = False,
        rmax: float = 3.0,
        dmax: float = 5.0,
        renorm_warmup: int = 0,
    ) -> None:
        image, channels, hidden = (
            _widths(v, what) for v, what in ((image, "image"), (channels, "channels"), (hidden, "hidden"))
        )
        options = checked(
            CNN_CONSTRAINTS,
            kernel_size=kernel_size,
            classes=classes,
            batch_norm=batch_norm,
            activation=activation,
            seed=seed,
        )
        norm_options = batch_norm_options(momentum, eps, unbiased_average, renorm, rmax, dmax, renorm_warmup)
        init, init_std = dp_init.check(init, init_std)
        if len(image) != 3 or not channels:
            raise ValueError(
                f"image must be (channels, height, width) and channels list at least one block; got {image}, {channels}"
            )
        feature_maps(image, channels, options["kernel_size"])  # an image too small: refused before any weight is drawn
        super().__init__(seed, dtype)
        self.config = dict(image=image, channels=channels, kernel_size=options["kernel_size"], hidden=hidden)
        self.config.update(classes=options["classes"], batch_norm=options["batch_norm"], activation=activation)
        self.config.update(dtype=self.dtype.name, **norm_config(norm_options), init=init, init_std=init_std)
        self.blocks = self._blocks(norm_options)
        self.dense = self._dense(self.flat_size, norm_options)

    def _blocks(self, norm_options: dict[str, Any]) -> list[tuple[Any, BatchNorm | None]]:
        """The convolution blocks, each (conv{i}, bn{i} or None); ``ValueError`` when the image
        becomes smaller than the kernel or the 2 x 2 pool on the way."""
        config, blocks = self.config, []
        k, batch_norm, init = config["kernel_size"], config["batch_norm"], config["init"]
        for i, (fan_in, fan_out) in enumerate(
            zip(config["image"][:1] + config["channels"], config["channels"]), start=1
        ):
            conv = self.conv2d(
                fan_in, fan_out, k, f"conv{i}", padding=k // 2, bias=not batch_norm, init=init, std=config["init_std"]
            )
            norm = self.batch_norm2d(fan_out, f"bn{i}", **norm_options) if batch_norm else None
            blocks.append((conv, norm))
        return blocks

    @property
    def feature_maps(self) -> list[tuple[int, int, int]]:
        """The shape (channels, height, width) after each block, for one image."""
        return feature_maps(self.config["image"], self.config["channels"], self.config["kernel_size"])

    @property
    def flat_size(self) -> int:
        """The width of the rows the feature maps are flattened into."""
        return int(np.prod(self.feature_maps[-1]))

    def _dense(self, fan_in: int, norm_options: dict[str, Any]) -> list[tuple[Linear, BatchNorm | None]]:
        """The linear layers after the blocks, each (fc{j}, bn{k} or None); the last, to the
        classes, has a bias and no batch norm."""
        config, layers = self.config, []
        widths = (fan_in, *config["hidden"], config["classes"])
        first_norm = len(config["channels"]) + 1
        for j, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            last = j == len(widths) - 1
            norm_here = config["batch_norm"] and not last
            linear = self.linear(a, b, f"fc{j}", bias=not norm_here, init=config["init"], std=config["init_std"])
            norm = self.batch_norm(b, f"bn{first_norm + j - 1}", **norm_options) if norm_here else None
            layers.append((linear, norm))
        return layers

    @property
    def outputs(self) -> int:
        return self.config["classes"]

    def _input(self, x: Any, what: str = "the input") -> Node:
        """The network's input as a Node of its dtype: images (n, C, H, W) of the network's
        size, or rows of their C * H * W pixels, taken as images; checked as given."""
        x = as_input(x, self.dtype)
        value = x.value if isinstance(x, Node) else x  # as given: a 1-D array is not made a column
        c, h, w = self.config["image"]
        rows = value.ndim == 2 and value.shape[1] == c * h * w  # rows of pixels, as dp.data gives them
        if value.ndim == 2 and not rows:
            raise ValueError(
                f"{what}: expected rows of {c * h * w} pixels or images (n, {c}, {h}, {w}); got shape {value.shape}"
            )
        images = checks.input_images(value.reshape(-1, c, h, w) if rows else value, c, what)
        if images.shape[2:] != (h, w):
            raise ValueError(
                f"{what} must be images of shape (n, {c}, {h}, {w}) (or rows of {c * h * w} pixels); got {value.shape}"
            )
        return Node(images) if not isinstance(x, Node) else x.reshape(-1, c, h, w) if rows else x

    def _logits(self, h: Node, train: bool | None, seen: dict[str, np.ndarray] | None = None) -> Node:
        """The layers on an input already checked: each block (convolution, batch norm,
        activation, pool), the feature maps flattened into rows, then the linear layers. With
        a ``seen`` dict, each layer's output value is recorded under its name and nothing
        changes (`record`)."""
        activation = self.config["activation"]
        for conv, norm in self.blocks:
            h = max_pool(
                activate(before_activation(conv, norm, h, train, seen), activation), kernel=(2, 2), stride=(2, 2)
            )
        h = h.reshape(h.shape[0], -1)
        for linear, norm in self.dense[:-1]:
            h = activate(before_activation(linear, norm, h, train, seen), activation)
        logits = self.dense[-1][0].forward(h)
        if seen is not None:
            seen[_name(self.dense[-1][0])] = logits.value
        return logits

    def _hidden_layers(self) -> list[tuple[Any, BatchNorm | None]]:
        return [*self.blocks, *self.dense[:-1]]

    def _output_layer(self) -> Linear:
        return self.dense[-1][0]

    def folded_pairs(self) -> list[tuple[Conv2d | Linear, BatchNorm]]:
        """(layer, its batch norm) for every layer followed by batch norm, for
        `fold_batch_norm`: conv{i} and bn{i}, then the hidden fc{j} and theirs."""
        return [(layer, norm) for layer, norm in [*self.blocks, *self.dense] if norm is not None]


def feature_maps(image: Sequence[int], channels: Sequence[int], kernel_size: int) -> list[tuple[int, int, int]]:
    """The shape (channels, height, width) after each block of a `CNN` for an ``image`` of
    shape (channels, height, width): a convolution of ``kernel_size`` with padding
    kernel_size // 2, then a 2 x 2 max pool. ``ValueError`` when the image becomes smaller
    than the pool on the way."""
    _, height, width = image
    k, shapes = kernel_size, []
    for c in channels:
        height, width = (size + 2 * (k // 2) - k + 1 for size in (height, width))  # the convolution
        if min(height, width) < 2:
            raise ValueError(
                f"the image {tuple(image)} is too small for {len(channels)} blocks "
                f"of a {k} x {k} convolution and a 2 x 2 pool"
            )
        height, width = height // 2, width // 2  # the pool
        shapes.append((c, height, width))
    return shapes


def cnn_weights(config: dict[str, Any]) -> int:
    """How many weights a `CNN` of ``config`` has, from its settings alone (to refuse an
    architecture too large to build before building it)."""
    (c, _, _), k = config["image"], config["kernel_size"]
    convs = sum(a * b * k * k for a, b in zip((c, *config["channels"]), config["channels"]))
    widths = (
        int(np.prod(feature_maps(config["image"], config["channels"], k)[-1])),
        *config["hidden"],
        config["classes"],
    )
    return convs + sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def _widths(values: Sequence[int], what: str) -> tuple[int, ...]:
    """A sequence of whole numbers >= 1 (``image``, ``channels``, ``hidden``) as a tuple."""
    listed = isinstance(values, Iterable) and not isinstance(values, (str, bytes))  # channels=16 lists nothing
    widths = tuple(values) if listed else ()
    if not listed or not all(checks.is_whole(v) and v >= 1 for v in widths):
        raise ValueError(f"{what} must list whole numbers >= 1, got {values!r}")
    return tuple(int(v) for v in widths)


def fold_batch_norm(model: MLP | CNN) -> MLP | CNN:
    """A copy of ``model`` (an `MLP` or a `CNN`) in which each eval-mode batch norm is folded
    into the linear layer or convolution before it, for inference. Per output feature (a
    column of a linear layer's weight, an output channel of a convolution's)::

        s = gamma / sqrt(avg_variance + eps)
        W' = W * s        b' = (b - avg_mean) * s + beta      (b = 0 without a bias)

    so that ``x @ W' + b'`` (or the convolution with W' and b') equals batch norm (eval mode)
    of ``x @ W + b``: both are affine in x, and the fold multiplies out the scale and the
    shift (docs/cnn.md derives it). The result has no batch-norm layers (so it is never
    `MLP.fused`) and predicts what ``model`` predicts in eval mode.
    """
    if not isinstance(model, (MLP, CNN)):
        raise TypeError("fold_batch_norm needs a dp.MLP or a dp.CNN: it must know which layer feeds which batch norm")
    folded = type(model)(
        **{**model.config, "batch_norm": False, **({"fused": False} if isinstance(model, MLP) else {})}
    )
    new = {key: value for key, value in model.params.items() if key in folded.params}  # layers without batch norm
    for layer, norm in model.folded_pairs():
        new.update(fold_layer(layer, norm))
    folded.set_param(new)
    return folded


def require_pair(layer: Conv2d | Linear, norm: BatchNorm) -> None:
    """Raise ``ValueError`` unless ``norm`` can follow ``layer``: as many features as the layer
    has outputs, and batch norm over images after a convolution, over rows after a linear layer."""
    weight = layer.model.params[layer.weight_key]
    convolution = isinstance(layer, Conv2d)
    outputs = weight.shape[0] if convolution else weight.shape[1]  # (out, in, kh, kw) or (in, out)
    if norm.fan_in != outputs or norm.images != convolution:
        kind = "images" if norm.images else "rows"
        raise ValueError(
            f"{norm.what} (over {norm.fan_in} features of {kind}) does not follow {layer.what} ({outputs} outputs): "
            "fold a layer into the batch norm of its own outputs"
        )


def fold_layer(layer: Conv2d | Linear, norm: BatchNorm) -> dict[str, np.ndarray]:
    """The weight and bias of ``layer`` (a convolution or a linear layer of a model) with the
    eval-mode batch norm ``norm`` after it folded in (see `fold_batch_norm` for the formula),
    as new ``params`` entries ``{"weight_{name}": W', "bias_{name}": b'}``: for a model of
    your own, set them into a copy without the batch norm and with a bias on that layer. Only
    the affine map folds: an ``activation`` of ``norm`` is for the folded network to apply.
    ``ValueError`` when ``norm`` is not the batch norm of ``layer``'s outputs (another width,
    or rows for a convolution's images); ``RuntimeError`` when ``norm`` has not seen a
    training batch (its averages are zeros)."""
    require_pair(layer, norm)
    norm.require_trained()
    p, q = layer.model.params, norm.model.params
    scale = q[norm.gamma_key] / np.sqrt(q[norm.variance_key] + norm.eps)  # per output: (1, out) or (1, out, 1, 1)
    weight = p[layer.weight_key]
    per_output = scale.reshape(-1, 1, 1, 1) if weight.ndim == 4 else scale  # a convolution's is (out, in, kh, kw)
    name = layer.weight_key.removeprefix("weight_")
    shift = p[layer.bias_key] if layer.bias_key else 0.0
    return {
        layer.weight_key: weight * per_output,
        f"bias_{name}": (shift - q[norm.mean_key]) * scale + q[norm.beta_key],
    }
