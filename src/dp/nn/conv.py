"""Convolution and pooling on images (N, C, H, W), with PyTorch's layouts and output sizes.

Each operation is here twice, as batch norm is in `dp.nn.normalization`:

- a primitive, `convolve`, `max_pool` and `avg_pool`: the forward pass in NumPy beside its
  vector-Jacobian products, written as the math. It trusts its arguments, except for the one
  shape check it cannot do without (the kernel must fit), as `dp.ops.linear` checks its shapes;
- the same with every argument checked, once, for direct calls: `conv2d`, `max_pool2d` and
  `avg_pool2d`.

The `Conv2d` layer (`NeuralNode.conv2d`) checks its input and runs `convolve`.

Everything here is about windows. Output position (p, q) reads the kh x kw window of the input
whose top-left corner is (p * sh, q * sw), for a stride (sh, sw); windows that do not fit are
dropped, so the output is ((H - kh) // sh + 1, (W - kw) // sw + 1), as PyTorch's. `windows`
takes them all as a view of the input, and every backward pass goes through its adjoint,
`add_windows`: for each kernel position (i, j), the input positions that kernel position read,
a strided slice, receive what went out through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dp import checks
from dp.checks import OrNone, Pair, Whole
from dp.nn.inputs import checked_images, numeric_operand
from dp.node import Node, primitive

if TYPE_CHECKING:
    from dp.nn.module import NeuralNode

CONV_CONSTRAINTS: dict[str, checks.Constraint] = {
    "stride": Pair(Whole("[1, inf)")),
    "padding": Pair(Whole("[0, inf)")),
}
POOL_CONSTRAINTS: dict[str, checks.Constraint] = {
    "kernel_size": Pair(Whole("[1, inf)")),
    "stride": OrNone(Pair(Whole("[1, inf)"))),
}

Pair2 = tuple[int, int]  # (along the height, along the width)


class Conv2d:
    """``forward(x) = conv2d(x, weight, bias)`` for images x (N, in_channels, H, W): see
    `NeuralNode.conv2d`."""

    def __init__(
        self, model: NeuralNode, name: str, in_channels: int, stride: Pair2, padding: Pair2, bias: bool
    ) -> None:
        self.model, self.in_channels, self.what = model, in_channels, f"conv layer {name!r}"
        self.stride, self.padding = stride, padding
        self.weight_key, self.bias_key = f"weight_{name}", (f"bias_{name}" if bias else None)

    def __call__(self, x: Any) -> Node:
        """The layer on images x, checked: (N, in_channels, H, W), numeric and finite."""
        return self.forward(checked_images(x, self.in_channels, self.what, self.model.dtype))

    def forward(self, x: Node) -> Node:
        """The layer on a Node already checked (by a model's entry point)."""
        params, bias_key = self.model.params, self.bias_key
        weight = Node(params[self.weight_key], self.weight_key)
        bias = None if bias_key is None else Node(params[bias_key], bias_key)
        return convolve(x, weight, bias, stride=self.stride, padding=self.padding)


# ----- windows: what every operation here reads, and where its gradient goes back -----


def windows(x: np.ndarray, kernel: Pair2, stride: Pair2) -> np.ndarray:
    """A view (N, C, OH, OW, kh, kw) of images x (N, C, H, W), nothing copied: element
    [n, c, p, q] is the kh x kw window that output position (p, q) reads, rows p * sh to
    p * sh + kh - 1 and columns q * sw to q * sw + kw - 1. OH = (H - kh) // sh + 1, OW likewise."""
    every = sliding_window_view(x, kernel, axis=(2, 3))  # the windows at every position: stride 1
    return every[:, :, :: stride[0], :: stride[1]]


def add_windows(
    parts: Callable[[int, int], np.ndarray], shape: tuple[int, ...], kernel: Pair2, stride: Pair2, dtype: Any
) -> np.ndarray:
    """The adjoint of `windows`: zeros of ``shape`` (N, C, H, W) and ``dtype``, to which, for each
    kernel position (i, j), ``parts(i, j)`` (N, C, OH, OW) is added at the input positions that
    kernel position read in each window: rows i, i + sh, ..., columns j, j + sw, ....
    Where windows overlap (stride < kernel), an input position is read by several windows, and
    what comes back from each adds up."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (shape[2] - kh) // sh + 1, (shape[3] - kw) // sw + 1
    total = np.zeros(shape, dtype)
    for i in range(kh):
        for j in range(kw):
            total[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += parts(i, j)
    return total


def require_fit(shape: tuple[int, ...], kernel: Pair2, padding: Pair2, what: str) -> None:
    """Raise ``ValueError`` unless a kh x kw kernel fits in images of ``shape`` (N, C, H, W)
    once padded: a larger one has no window to read (PyTorch refuses it too)."""
    height, width = shape[2] + 2 * padding[0], shape[3] + 2 * padding[1]
    if kernel[0] > height or kernel[1] > width:
        padded = "padded " if any(padding) else ""
        raise ValueError(
            f"{what}: the kernel, {kernel[0]} x {kernel[1]}, is larger than the {padded}input, {height} x {width}"
        )


# ----- the primitives: NumPy values in, (value, vjps) out, as in dp.ops -----


@primitive
def convolve(x, w, b=None, stride=(1, 1), padding=(0, 0)):  # noqa: ANN001, ANN202 - a primitive
    """The convolution of images x (N, C, H, W) with kernels w (O, C, kh, kw), plus a bias b
    per output channel ((O,) or (1, O, 1, 1); None for none), as PyTorch's ``conv2d`` (which,
    like every deep-learning library, does not flip the kernel: a cross-correlation)::

        y[n, o, p, q] = b[o] + sum over c, i, j of w[o, c, i, j] * xp[n, c, p * sh + i, q * sw + j]

    where xp is x with ``padding`` (ph, pw) rows and columns of zeros on each side. y is
    (N, O, OH, OW) with OH = (H + 2 ph - kh) // sh + 1, OW likewise, in x's dtype (w and b
    are cast to it). Computed as im2col: the windows become the rows of one matrix, and one
    matrix product with the kernels gives every output.
    """
    w = w.astype(x.dtype, copy=False)
    (out, channels, kh, kw), (ph, pw) = w.shape, padding
    require_fit(x.shape, (kh, kw), padding, "conv2d")
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x  # xp: zeros around each image
    patches = windows(padded, (kh, kw), stride)  # (N, C, OH, OW, kh, kw), a view
    n, _, oh, ow = patches.shape[:4]
    # im2col: one row per output position (n, p, q), one column per (c, i, j), in w's order
    columns = patches.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, channels * kh * kw)
    kernels = w.reshape(out, channels * kh * kw)  # one row per output channel
    y = np.ascontiguousarray((columns @ kernels.T).reshape(n, oh, ow, out).transpose(0, 3, 1, 2))
    if b is not None:
        y += b.reshape(1, out, 1, 1)  # y is new: adding in place saves an array

    def rows(g):  # the output gradient with one row per output position, as in `columns`
        return g.transpose(0, 2, 3, 1).reshape(n * oh * ow, out)

    def x_vjp(g):
        # A transposed convolution. Output position (p, q) read xp[:, :, p * sh + i, q * sw + j]
        # through w[:, :, i, j], for each kernel position (i, j): g[:, :, p, q] goes back to that
        # input position through the same weights, dl/dxp[n, c, ...] += sum_o g[n, o, p, q] * w[o, c, i, j].
        # For every window at once, that is one matrix product, the transpose of the forward one
        # (what each window sends back to each of its inputs, in the columns' order); col2im then adds
        # each kernel position's part to the input positions it read.
        sent = (rows(g) @ kernels).reshape(n, oh, ow, channels, kh, kw)

        def through(i, j):  # what every output position sends back through kernel position (i, j)
            return sent[..., i, j].transpose(0, 3, 1, 2)

        dpadded = add_windows(through, padded.shape, (kh, kw), stride, x.dtype)
        return dpadded[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]  # the padding is no input: cut off

    def w_vjp(g):
        # dl/dw[o, c, i, j] = sum over n, p, q of g[n, o, p, q] * xp[n, c, p * sh + i, q * sw + j]:
        # the correlation of the input with the output gradient, which im2col makes one matrix product.
        return (rows(g).T @ columns).reshape(w.shape)

    def b_vjp(g):
        return g.sum(axis=(0, 2, 3)).reshape(b.shape)  # b[o] is added at every image and position

    return y, (x_vjp, w_vjp, b_vjp)


@primitive
def max_pool(x, kernel=(2, 2), stride=(2, 2)):  # noqa: ANN001, ANN202 - a primitive
    """The largest value of each kh x kw window of images x (N, C, H, W), windows ``stride``
    apart: (N, C, OH, OW) in x's dtype, OH = (H - kh) // sh + 1, OW likewise.

    Each output is one of its window's inputs, so its gradient goes to that one input: the
    first maximum in row-major order within the window when several are equal (PyTorch's
    choice, and what matters after a ReLU, where whole windows are 0).
    """
    require_fit(x.shape, kernel, (0, 0), "max_pool2d")
    patches = windows(x, kernel, stride)
    positions = list(np.ndindex(*kernel))  # the kernel positions (i, j), in row-major order
    # One kernel position at a time, each (N, C, OH, OW) a strided view of x: NumPy compares these
    # far faster than it reduces the windows' last two axes, and nothing of the windows' size is copied.
    y = patches[..., 0, 0].copy()  # a new array (a view of x must not be the output: x's Node owns it)
    for i, j in positions[1:]:
        np.maximum(y, patches[..., i, j], out=y)
    first, taken = {}, np.zeros(y.shape, dtype=bool)
    for i, j in positions:  # where each window's first maximum is: the first position equal to y not yet taken
        first[i, j] = (patches[..., i, j] == y) & ~taken
        taken |= first[i, j]

    def vjp(g):  # g[n, c, p, q] goes to the input at the kernel position of its window's first maximum
        return add_windows(lambda i, j: g * first[i, j], x.shape, kernel, stride, x.dtype)

    return y, (vjp,)


@primitive
def avg_pool(x, kernel=(2, 2), stride=(2, 2)):  # noqa: ANN001, ANN202 - a primitive
    """The mean of each kh x kw window of images x (N, C, H, W), windows ``stride`` apart:
    (N, C, OH, OW) in x's dtype, OH = (H - kh) // sh + 1, OW likewise.

    Each output is the mean of its kh * kw inputs, so each input receives g / (kh kw) from
    every window it is in (from several when stride < kernel: they add up).
    """
    require_fit(x.shape, kernel, (0, 0), "avg_pool2d")
    y = windows(x, kernel, stride).mean(axis=(4, 5))

    def vjp(g):
        share = g / (kernel[0] * kernel[1])  # the same share for every input of a window
        return add_windows(lambda i, j: share, x.shape, kernel, stride, x.dtype)

    return y, (vjp,)


# ----- the same, with their arguments checked, for direct calls -----


def conv2d(x: Any, w: Any, b: Any = None, stride: int | Pair2 = 1, padding: int | Pair2 = 0) -> Node:
    """The convolution of images x (N, C, H, W) with kernels w (O, C, kh, kw), plus a bias per
    output channel b ((O,), as PyTorch's, or (1, O, 1, 1), as `NeuralNode.conv2d` stores it;
    None for none), as PyTorch's ``torch.nn.functional.conv2d``::

        y[n, o, p, q] = b[o] + sum over c, i, j of w[o, c, i, j] * xp[n, c, p * sh + i, q * sw + j]

    with xp the images padded with ``padding`` zeros on each side. ``stride`` and ``padding``
    are ints or (h, w) pairs. Returns a Node (N, O, OH, OW), OH = (H + 2 ph - kh) // sh + 1
    and OW likewise, in x's dtype (float32 stays float32; w and b are cast to it). x, w and
    b may be Nodes or arrays; arrays are constants (no gradient). See `convolve`.

    Errors (``ValueError``; nothing is computed): x not 4-D (N >= 1); w not 4-D with every
    size >= 1; x's channels not w.shape[1]; a bias of another shape; NaN or inf in any of
    them (`dp.NonFiniteError`); a stride < 1 or a padding < 0 (``TypeError`` for one that is
    not a whole number); a kernel larger than the padded images.
    """
    options = checks.checked(CONV_CONSTRAINTS, "conv2d: ", stride=stride, padding=padding)
    w_value = numeric_operand(w, "conv2d: w")
    if w_value.ndim != 4 or min(w_value.shape) < 1:
        raise ValueError(
            "conv2d: the weights w must be 4-D, (out_channels, in_channels, kh, kw) as PyTorch's, "
            f"every size at least 1; got shape {w_value.shape}"
        )
    x = checked_images(x, w_value.shape[1], "conv2d")
    b_value = None if b is None else numeric_operand(b, "conv2d: b")
    _require_bias_shape(b_value, w_value.shape[0])
    return convolve(x, w if isinstance(w, Node) else w_value, b if isinstance(b, Node) else b_value, **options)


def max_pool2d(x: Any, kernel_size: int | Pair2, stride: int | Pair2 | None = None) -> Node:
    """The largest value of each window of images x (N, C, H, W), as PyTorch's
    ``torch.nn.functional.max_pool2d`` without padding: windows of ``kernel_size`` (an int
    or an (h, w) pair) every ``stride`` (the same by default: windows side by side); windows
    that do not fit are dropped. Returns a Node (N, C, OH, OW), OH = (H - kh) // sh + 1 and
    OW likewise, in x's dtype. The gradient of each output goes to one input, the first
    maximum of its window in row-major order (as PyTorch's). See `max_pool`.

    Errors (``ValueError``): x not 4-D (N >= 1), with NaN or inf (`dp.NonFiniteError`); a
    kernel or stride < 1 (``TypeError`` for one that is not a whole number); a kernel larger
    than the images.
    """
    x, options = _pooling(x, kernel_size, stride, "max_pool2d")
    return max_pool(x, **options)


def avg_pool2d(x: Any, kernel_size: int | Pair2, stride: int | Pair2 | None = None) -> Node:
    """The mean of each window of images x (N, C, H, W), as PyTorch's
    ``torch.nn.functional.avg_pool2d`` without padding: windows as `max_pool2d`'s. Returns
    a Node (N, C, OH, OW) in x's dtype; each input gets g / (kh kw) from every window it is
    in. Errors as `max_pool2d`'s. See `avg_pool`.
    """
    x, options = _pooling(x, kernel_size, stride, "avg_pool2d")
    return avg_pool(x, **options)


def _pooling(x: Any, kernel_size: Any, stride: Any, what: str) -> tuple[Node, dict[str, Pair2]]:
    """A pooling's images, checked, and its options: ``kernel`` and ``stride``, (h, w) pairs,
    the stride the kernel's by default (PyTorch's)."""
    options = checks.checked(POOL_CONSTRAINTS, f"{what}: ", kernel_size=kernel_size, stride=stride)
    kernel = options["kernel_size"]
    return checked_images(x, None, what), {"kernel": kernel, "stride": options["stride"] or kernel}


def _require_bias_shape(b: np.ndarray | None, out: int) -> None:
    """Raise ``ValueError`` unless a bias for ``out`` output channels is (out,) or (1, out, 1, 1)."""
    if b is None or b.shape in ((out,), (1, out, 1, 1)):
        return
    column = " (a Node makes a 1-D array a column: reshape it)" if b.shape == (out, 1) else ""
    raise ValueError(
        f"conv2d: the bias b must have shape ({out},) or (1, {out}, 1, 1), one per output channel; "
        f"got {b.shape}{column}"
    )
