"""`Node` and the backward pass: the whole reverse-mode engine.

A `Node` holds a NumPy array, ``.value``. Every operation on Nodes (``w * x``,
``x.tanh()``, ``x.sum()``) is a *primitive*: a forward function from `dp.ops` that
computes the output value and, right beside it, a *vector-Jacobian product* (vjp):
given ``g``, the gradient of some scalar objective with respect to the output, it
returns the gradient with respect to each input. The new Node remembers its
inputs and that vjp, and nothing else::

    z = x * w        # z.value = x.value * w.value;  z's vjp: g -> (g * w, g * x)

``loss.grad(1)`` then walks the graph backwards from ``loss`` (the reverse sweep):
it visits every node after all the nodes that use it, so that the node's gradient
is complete, and pushes it through the node's vjp to its inputs (the chain rule).
Gradients reaching a node along several paths add up.

Only nodes that lead to a *named* node take part: a named node is a parameter,
and an operation none of whose inputs leads to one records no inputs at all, so
data flowing through a network costs nothing in the backward pass.

Read this module top to bottom: the Node and its operators, then `grad` and the
reverse sweep with its `topological_order`, then `apply` (how an operation records
itself). What follows them is defence: helpers that keep user input, vjp answers
and handed-out gradients honest, each saying why it exists. A first reading can
stop before them.
"""

from __future__ import annotations

import functools
import numbers
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn, cast

import numpy as np

from dp import ops

Forward = Callable[..., tuple[Any, Any]]  # values -> (output value, vjps): see `apply`


class Node:
    """An n-d array in a differentiable computation.

    ``Node(value, name=None)``. ``value`` becomes a float ndarray by dp's conventions:
    a number is shape (1, 1), a 1-D array a column (n, 1), 2-D and higher keep
    their shape. A floating dtype is kept (float32 stays float32); integers and
    booleans become float64; anything else (strings, objects, complex) is a
    ``TypeError``. The array is not copied, and dp never writes into it.

    A node with a name is a parameter: ``loss.grad(1)`` returns its gradient under
    that name. Give the name when the node is made (the graph does not expect it to change).

    Operators and methods follow NumPy's broadcasting and shapes, except that
    reductions keep their axes by default. Numbers and arrays may stand on either
    side of an operator (``1 - x``, ``array * x``). NumPy functions do not take a Node
    (``np.tanh(x)`` raises, naming ``x.tanh()``; ``np.mean(x)`` names ``x.mean()``): only
    Node operations record gradients.

    ``print(loss)`` shows the value; ``float(loss)`` and ``loss.item()`` give it as a
    Python float when the node has one element. There is no ``backward()``: gradients
    are returned by ``loss.grad(1)``, never stored on the nodes.

    >>> w = Node([1.0, 2.0], name="w")      # a column, shape (2, 1)
    >>> loss = (w * w).sum()
    >>> loss.grad(1)["w"].ravel().tolist()
    [2.0, 4.0]
    """

    __slots__ = ("value", "name", "op", "parents", "vjp", "needs_grad")
    __iter__ = None  # Iterating a Node would silently build one node per row.

    def __init__(self, value: Any, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a Node's name must be a str or None, not {type(name).__name__}")
        self.value: np.ndarray = as_value(value)
        self.name = name
        self.op: str | None = None  # the primitive that made this node; None for a leaf
        self.parents: list[tuple[int, Node]] = []  # (argument position, input) for each input that needs a gradient
        self.vjp: Any = None  # the primitive's vjps (see `apply`)
        self.needs_grad = name is not None  # a parameter, or made from one

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.value.dtype

    def __repr__(self) -> str:
        """The value, then the name (if any), shape and dtype: ``Node(0.0705, shape=(1, 1),
        dtype=float64)``. An array of several elements is printed as NumPy prints it (4
        decimals), summarized with ``...`` beyond 20 elements."""
        name = f", name={self.name!r}" if self.name is not None else ""
        return f"Node({_shown(self.value)}{name}, shape={self.shape}, dtype={self.dtype})"

    def item(self) -> float:
        """The value of a node with one element as a Python float, as PyTorch's
        ``loss.item()``; ``ValueError`` for a node with more (use ``.value``)."""
        if self.value.size != 1:
            raise ValueError(_not_one_number("item()", self.shape))
        return float(self.value.item())

    def __float__(self) -> float:
        """``float(loss)`` for a node with one element; ``TypeError`` for more (use ``.value``)."""
        if self.value.size != 1:
            raise TypeError(_not_one_number("float()", self.shape))
        return float(self.value.item())

    # ----- arithmetic: each operator applies one primitive of dp.ops -----

    def __add__(self, other: Any) -> Node:
        return binary(ops.add, self, other)

    def __radd__(self, other: Any) -> Node:
        return binary(ops.add, other, self)

    def __sub__(self, other: Any) -> Node:
        return binary(ops.subtract, self, other)

    def __rsub__(self, other: Any) -> Node:
        return binary(ops.subtract, other, self)

    def __mul__(self, other: Any) -> Node:
        return binary(ops.multiply, self, other)

    def __rmul__(self, other: Any) -> Node:
        return binary(ops.multiply, other, self)

    def __truediv__(self, other: Any) -> Node:
        return binary(ops.divide, self, other)

    def __rtruediv__(self, other: Any) -> Node:
        return binary(ops.divide, other, self)

    def __pow__(self, other: Any) -> Node:
        return binary(ops.power, self, other)

    def __rpow__(self, other: Any) -> Node:
        return binary(ops.power, other, self)

    def __matmul__(self, other: Any) -> Node:
        return binary(ops.matmul, self, other)

    def __rmatmul__(self, other: Any) -> Node:
        return binary(ops.matmul, other, self)

    def dot(self, other: Any) -> Node:
        """The matrix product ``self @ other``."""
        return binary(ops.matmul, self, other)

    def __neg__(self) -> Node:
        return apply(ops.negative, self)

    def __pos__(self) -> Node:
        return self

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """What NumPy calls for ``array + node`` (any operator with an array on the left)
        and for a NumPy function on a Node, ``np.tanh(node)``. An operator is the Node
        operation, as with a number on the left (``array * node`` is ``node.__rmul__``);
        ``array == node`` is False, as for any other object. Anything else raises
        ``TypeError`` naming what to write instead (``node.tanh()``): NumPy would loop
        over a Node as an object and the result would have no gradient."""
        if method == "__call__" and not kwargs and len(inputs) == 2:
            forward = _UFUNC_OPERATORS.get(ufunc)
            if forward is not None:
                return binary(forward, *inputs)
            if ufunc is np.equal or ufunc is np.not_equal:  # a Node equals only itself
                return ufunc is np.not_equal
        raise _ufunc_error(ufunc, method, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """What NumPy calls for a NumPy function on a Node that is not a ufunc: ``np.mean(node)``,
        ``np.sum(node, axis=0)``, ``np.concatenate([node, node])``. ``np.shape``, ``np.ndim``
        and ``np.size`` answer for the value; anything else raises ``TypeError`` naming what
        to write instead (``node.mean()``). Without this, NumPy would call ``node.mean(axis,
        dtype, out)`` and fail on a keyword the student never wrote, or make an array of
        objects."""
        if func in _ABOUT_THE_SHAPE:  # the value in the Node's place, every other argument kept: np.size(node, 1)
            return func(*_values_for(self, args), **dict(zip(kwargs, _values_for(self, kwargs.values()))))
        raise _function_error(func)

    def __array__(self, dtype: Any = None, copy: Any = None) -> NoReturn:
        """Always raises ``TypeError``: a Node is not an array. Without this, NumPy would make
        it a 0-d array of objects (``np.asarray(node)``, or a masked array times a node) and
        compute without a gradient. ``node.value`` is the array."""
        raise TypeError("a dp.Node is not an array: use node.value for its array (without a gradient)")

    # ----- elementwise functions -----

    def exp(self) -> Node:
        return apply(ops.exp, self)

    def log(self) -> Node:
        return apply(ops.log, self)

    def sqrt(self) -> Node:
        return apply(ops.sqrt, self)

    def square(self) -> Node:
        return apply(ops.square, self)

    def abs(self) -> Node:
        return apply(ops.abs, self)

    def tanh(self) -> Node:
        return apply(ops.tanh, self)

    def sigmoid(self) -> Node:
        return apply(ops.sigmoid, self)

    def relu(self) -> Node:
        return apply(ops.relu, self)

    def leaky_relu(self, slope: float = 0.01) -> Node:
        """``x`` where x > 0, ``slope * x`` elsewhere; ``slope`` a finite number >= 0."""
        return apply(ops.leaky_relu, self, slope=slope)

    def elu(self, alpha: float = 1.0) -> Node:
        """``x`` where x > 0, ``alpha * (exp(x) - 1)`` elsewhere; ``alpha`` a finite number >= 0."""
        return apply(ops.elu, self, alpha=alpha)

    def softplus(self) -> Node:
        """``log(1 + exp(x))``, computed without overflow."""
        return apply(ops.softplus, self)

    def softmax(self, axis: int = -1) -> Node:
        return apply(ops.softmax, self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Node:
        return apply(ops.log_softmax, self, axis=axis)

    # ----- reductions: they keep the reduced axes unless keepdims=False -----

    def sum(self, axis: Any = None, keepdims: bool = True) -> Node:
        return apply(ops.sum, self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = True) -> Node:
        return apply(ops.mean, self, axis=axis, keepdims=keepdims)

    def var(self, axis: Any = None, keepdims: bool = True, ddof: int = 0) -> Node:
        return apply(ops.var, self, axis=axis, keepdims=keepdims, ddof=ddof)

    def max(self, axis: Any = None, keepdims: bool = True) -> Node:
        return apply(ops.max, self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = True) -> Node:
        """``log(sum(exp(x)))`` over ``axis`` (all axes for None), without overflow for large x."""
        return apply(ops.logsumexp, self, axis=axis, keepdims=keepdims)

    # ----- shape and indexing -----

    @property
    def T(self) -> Transposed:  # noqa: N802 - NumPy's name
        """The transpose (axes reversed), as NumPy's ``a.T``. In the original dp, ``T`` was a
        method, so it may also be called: ``x.T()`` is ``x.T`` (see `Transposed`)."""
        return _callable_transpose(apply(ops.transpose, self))

    def transpose(self, *axes: Any) -> Node:
        """Axes permuted as ``ndarray.transpose`` does: ``x.transpose(1, 0)`` or ``x.transpose((1, 0))``."""
        return apply(ops.transpose, self, axes=(axes[0] if len(axes) == 1 else axes) or None)

    def reshape(self, *shape: Any) -> Node:
        """The value reshaped as ``ndarray.reshape`` does: ``x.reshape(2, 3)`` or ``x.reshape((2, 3))``."""
        return apply(ops.reshape, self, shape=shape[0] if len(shape) == 1 else shape)

    def __getitem__(self, index: Any) -> Node:
        return apply(ops.getitem, self, index)

    def concatenate(self, other: Any, axis: int = 0) -> Node:
        """This node and ``other`` joined along ``axis``: `concatenate` ``([self, other], axis)``."""
        return concatenate([self, other], axis=axis)

    # ----- the backward pass -----

    def grad(self, seed: Any = 1.0) -> dict[str, np.ndarray]:
        """Gradients of this node with respect to every named node it depends on.

        ``seed`` is the gradient of some scalar objective with respect to this
        node: a number (broadcast to this node's shape, so ``loss.grad(1)``) or an
        array of exactly this node's shape. Returns ``{name: gradient}``; each
        gradient has the shape and dtype of its node's value, is an array of its
        own (never shared with another name's or with the graph), and nodes
        sharing a name add up (tied weights). Unnamed nodes are not in the result.

        Raises ``ValueError`` for a seed of another shape, ``TypeError`` for a seed
        that is not numeric.

        ``grad`` is a method, also on a parameter: dp returns gradients and stores none
        on the nodes (PyTorch's ``loss.backward()`` fills ``w.grad``; here
        ``loss.grad(1)["w"]``), so nothing needs zeroing between steps and one graph
        can be differentiated again with another seed.
        """
        gradients: dict[str, np.ndarray] = {}
        handed_out: set[int] = set()  # ids of the arrays in gradients, for `_collect`
        for node, g in self.reverse_sweep(seed):
            if node.name is not None:
                _collect(gradients, node.name, g, handed_out)
        return gradients

    def reverse_sweep(self, seed: Any = 1.0) -> Iterator[tuple[Node, np.ndarray]]:
        """The reverse sweep, as a generator: every node below this one that leads to a
        parameter, with the gradient of the objective with respect to it (``seed`` as in
        `grad`), each node before its inputs. A node's gradient is complete when it is
        reached, because every node that uses it came before and pushed its share through
        the chain rule. `grad` keeps the named nodes' gradients; `dp.draw` shows them all."""
        pending = {self: _seed_array(seed, self.value)}  # node -> the sum of what its users pushed so far
        for node in topological_order(self):
            g = pending.pop(node, None)  # complete: every node that uses this one has pushed into it
            if g is None:
                continue  # its users' vjps gave it no gradient (None): nothing flows through it
            yield node, g
            if not node.parents:
                continue  # a leaf: nothing to push into
            for parent, parent_grad in node.input_grads(g):  # the chain rule, through this node's vjp
                parent_grad = _conform(parent_grad, parent.value, node.op)
                pending[parent] = pending[parent] + parent_grad if parent in pending else parent_grad

    def input_grads(self, g: np.ndarray) -> list[tuple[Node, Any]]:
        """The chain rule at this node: given ``g``, the gradient of the objective with
        respect to this node, the gradient with respect to each input that needs one,
        as ``(input, gradient)`` pairs."""
        if callable(self.vjp):  # one vjp for all the arguments, returning a gradient for each
            grads = self.vjp(g)
            if not (isinstance(grads, (tuple, list)) and len(grads) > self.parents[-1][0]):
                raise _bad_answer(self.op, grads)
            return [(parent, grads[i]) for i, parent in self.parents if grads[i] is not None]
        return [(parent, self.vjp[i](g)) for i, parent in self.parents if self.vjp[i] is not None]  # one per argument

    def backward(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Always raises ``TypeError``, saying what to write instead: PyTorch's
        ``loss.backward()`` stores gradients on the tensors, while dp returns them,
        ``grads = loss.grad(1)`` (see `grad`)."""
        raise TypeError(
            "dp returns gradients instead of storing them: write grads = loss.grad(1), a dict "
            "{name: gradient} for every named node (PyTorch's loss.backward() followed by w.grad)"
        )


def topological_order(root: Node) -> list[Node]:
    """``root`` and every node below it that leads to a parameter, each before its inputs:
    the order of the reverse sweep (`Node.reverse_sweep`), ``root`` first and the parameters last.

    A depth-first walk with an explicit stack, not recursion, so a chain of any length
    works: a node goes into ``order`` once all its inputs are in it (post-order), and the
    reversed list puts every node before its inputs.
    """
    order: list[Node] = []
    visited: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))  # comes back here after all its inputs
            for _, parent in node.parents:
                if parent.parents:
                    stack.append((parent, False))
                elif parent not in visited:  # a leaf (a parameter) has no inputs: it goes in at once
                    visited.add(parent)
                    order.append(parent)
    order.reverse()
    return order


# ----- operations: how a primitive records itself -----


def apply(forward: Forward, *args: Any, **options: Any) -> Node:
    """Run the primitive ``forward`` on ``args`` (Nodes and constants) and return its
    output as a Node that remembers how to take a gradient back to its inputs.

    ``forward`` receives NumPy values (a Node argument's ``.value``; other
    arguments as given) and ``options``, and returns ``(value, vjp)``, where ``vjp``
    is either

    - a tuple with one function per positional argument: ``vjp[i](g)`` is the
      gradient of argument i given the gradient ``g`` of the output (``None`` for
      an argument that has none, such as labels); or
    - one function for all of them: ``vjp(g)`` returns a tuple with one gradient
      (or ``None``) per positional argument, so that a fused primitive computes
      the work its gradients share once.

    A gradient may come back in a broadcast shape, or as a number: the backward pass
    sums it back or spreads it out to the argument's shape (`unbroadcast`). vjps are
    only called when some argument leads to a parameter.
    """
    value, vjp = forward(*[a.value if isinstance(a, Node) else a for a in args], **options)
    node = object.__new__(Node)  # bypasses __init__: the value is an operation's output, already an array
    node.value = value if value.__class__ is np.ndarray else np.asarray(value)  # NumPy may give scalars
    node.name = None
    node.op = forward.__name__
    node.parents = parents = [(i, a) for i, a in enumerate(args) if isinstance(a, Node) and a.needs_grad]
    if not callable(vjp) and len(vjp) < len(args):
        raise TypeError(f"{node.op} returned {len(vjp)} vjps for {len(args)} arguments: give one per argument")
    node.vjp = vjp if parents else None  # a graph of data keeps no closures alive
    node.needs_grad = bool(parents)
    return node


def primitive(forward: Forward) -> Callable[..., Node]:
    """Make an operation on Nodes from ``forward(*values, **options) -> (value, vjp)``
    (the contract is `apply`'s). The result takes Nodes and constants and returns a Node.

    >>> @primitive
    ... def cube(x):
    ...     return x ** 3, (lambda g: g * 3 * x ** 2,)
    """

    @functools.wraps(forward)
    def operation(*args: Any, **options: Any) -> Node:
        return apply(forward, *args, **options)

    operation.forward = forward  # type: ignore[attr-defined]
    return operation


def binary(forward: Forward, a: Any, b: Any) -> Node:
    """Apply a binary primitive with a Node on at least one side, and a number or an
    array (see `constant`) allowed on the other."""
    if not isinstance(a, Node) and not isinstance(b, Node):
        raise TypeError(
            f"{forward.__name__} needs at least one Node, got {type(a).__name__} and {type(b).__name__} "
            "(for two arrays, use NumPy)"
        )
    like = a.value if isinstance(a, Node) else b.value
    left = a if isinstance(a, Node) else constant(a, like)
    right = b if isinstance(b, Node) else constant(b, like)
    try:
        return apply(forward, left, right)
    except ValueError as error:
        raise _broadcast_error(forward, left, right, given=(a, b)) or error from None


def dot(a: Any, b: Any) -> Node:
    """Matrix product of two Nodes (or a Node and a constant): ``a @ b``."""
    return binary(ops.matmul, a, b)


def concatenate(nodes: Iterable[Any], axis: int = 0) -> Node:
    """Join Nodes (and constants) along an existing axis, like `numpy.concatenate`. Constants
    take the dtype of the first Node; constants only give a Node of NumPy's result dtype,
    by `Node`'s conventions (float32 parts stay float32, integers become float64)."""
    parts = list(nodes)
    like = next((n.value for n in parts if isinstance(n, Node)), None)
    if like is None:
        return Node(np.concatenate([plain_array(n, "a part to concatenate") for n in parts], axis=axis))
    return apply(ops.concatenate, *[n if isinstance(n, Node) else constant(n, like) for n in parts], axis=axis)


# ----- defence: what keeps the sweep's input and output honest -----
#
# Each helper below exists for a case the lesson above does not need, and says which.


class Transposed(Node):
    """What ``x.T`` returns: the transpose, a Node like any other, that can also be called.

    NumPy's ``T`` is a property (``x.T``) and the original dp's was a method (``x.T()``).
    Both spellings appear in teaching material, so both work: calling a transposed node
    returns that same node, so ``x.T()`` is ``x.T`` and nothing is transposed twice.
    """

    __slots__ = ()

    def __call__(self) -> Transposed:
        return self


def _callable_transpose(node: Node) -> Transposed:
    """``node`` (a transpose `apply` just made) as a `Transposed`, so that ``x.T()`` works too.
    Why a class swap: `apply` makes every node the same way, and `Transposed` has the same
    slots and one method more, so changing the class of the new node costs nothing."""
    node.__class__ = Transposed
    return cast(Transposed, node)


def _seed_array(seed: Any, like: np.ndarray) -> np.ndarray:
    """``grad``'s seed as a new array of ``like``'s shape and dtype. Why: a seed is user
    input, so it is checked here, once per sweep, and copied, so that the caller's array
    is never handed back as a gradient."""
    if isinstance(seed, Node):
        raise TypeError("grad's seed is a gradient, an array or a number, not a Node")
    if isinstance(seed, numbers.Real) and not isinstance(seed, bool):
        return np.full(like.shape, seed, dtype=like.dtype)
    array = plain_array(seed, "grad's seed")
    if array.dtype.kind not in "fiu":
        raise TypeError(f"grad's seed must be a number or a numeric array, not {array.dtype}")
    if array.shape == ():
        return np.full(like.shape, array, dtype=like.dtype)
    if array.shape != like.shape:
        raise ValueError(
            f"grad's seed has shape {array.shape}, but the node it starts from has shape "
            f"{like.shape}: pass a number, or an array of shape {like.shape}"
        )
    return array.astype(like.dtype)  # a copy: the caller's array is never handed back as a gradient


def _bad_answer(op: str | None, grads: Any) -> TypeError:
    """The error for a vjp for all arguments that did not answer with one gradient per argument.
    Why: a primitive written by a student may get the contract wrong; this says how."""
    return TypeError(
        f"the vjp of {op} must return a tuple with one gradient (or None) per argument, "
        f"got {type(grads).__name__}; a vjp per argument is a tuple of functions: (lambda g: ...,)"
    )


def _conform(g: Any, value: np.ndarray, op: str | None) -> np.ndarray:
    """A vjp's answer as a gradient of ``value``: an ndarray of its shape (broadcast axes
    summed back by `unbroadcast`, a smaller answer spread out) and dtype. ``op`` names the
    primitive whose vjp answered, for the error an answer of a shape that does not fit gets.

    Why: a vjp may answer in the output's broadcast shape, as a number, or in a wider dtype
    (a float64 constant meeting a float32 node), and each gradient must fit its node
    exactly. The common answer, an ndarray of the right shape and dtype, passes two
    comparisons and nothing else."""
    if g.__class__ is not np.ndarray or g.shape != value.shape:
        g = np.asarray(g)
        if g.shape != value.shape:
            g = _reshaped(g, value.shape, op)
    gradient: np.ndarray = g if g.dtype == value.dtype else g.astype(value.dtype)
    return gradient


def _reshaped(g: np.ndarray, shape: tuple[int, ...], op: str | None) -> np.ndarray:
    """``g`` summed down or spread out to ``shape`` by NumPy's broadcasting rules. A number
    spreads anywhere; an answer with fewer axes than ``shape`` is refused, because dp makes
    a 1-D array a column while NumPy would align it as a row."""
    problem = g.ndim < len(shape) and g.size != 1
    if not problem:
        g = unbroadcast(g, shape)
        problem = not _broadcastable(g.shape, shape) or np.broadcast_shapes(g.shape, shape) != shape
    if problem:
        raise ValueError(f"the vjp of {op} answered with shape {g.shape} for an input of shape {shape}")
    return np.broadcast_to(g, shape)


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` down to ``shape``: the vjp of NumPy broadcasting an array of ``shape`` up
    to ``g.shape``. Leading axes that broadcasting added are summed away, and so are
    axes where ``shape`` has 1 and ``g`` more. This is the only place where dp undoes
    broadcasting; axes where ``g`` is not larger are left as they are."""
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    offset = len(shape) - g.ndim  # g may have fewer axes than shape: align from the right
    axes = tuple(i for i in range(g.ndim) if shape[offset + i] == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _collect(gradients: dict[str, np.ndarray], name: str, g: np.ndarray, handed_out: set[int]) -> None:
    """Add ``g`` to ``gradients[name]``, as an array of its own: never a view of another
    array, read-only, or an array already handed out under another name (vjps may pass
    one array to several inputs; ``handed_out`` holds the ids of those in ``gradients``),
    so a caller may change each gradient freely.

    Why: vjps are free to answer with views and shared arrays (``add`` hands ``g`` itself
    to both inputs, ``transpose`` a view), which is cheap inside the sweep; only what
    leaves the engine is made safe to change, and only when it is not already."""
    if name in gradients:
        total = gradients[name]
        if total.shape != g.shape:  # broadcasting them together would fit neither node
            raise ValueError(f"two nodes named {name!r} have different shapes, {total.shape} and {g.shape}")
        g = total + g
    elif g.base is not None or not g.flags.writeable or id(g) in handed_out:
        g = g.copy()
    gradients[name] = g
    handed_out.add(id(g))


def _broadcast_error(forward: Forward, a: Any, b: Any, given: tuple[Any, Any]) -> ValueError | None:
    """A clear error for operands whose shapes do not broadcast (None if they do); ``given``
    are the operands as the caller gave them, before a 1-D array became a column. Why:
    NumPy's message names neither the operation nor dp's column convention."""
    shapes = [np.shape(x.value if isinstance(x, Node) else x) for x in (a, b)]
    if forward is ops.matmul or _broadcastable(*shapes):
        return None
    vector = any(np.ndim(x) == 1 for x in given if not isinstance(x, Node))
    hint = " A 1-D array is a column in dp: reshape it to (1, n) for a row." if vector else ""
    return ValueError(
        f"{forward.__name__}: shapes {shapes[0]} and {shapes[1]} cannot be broadcast together "
        f"(NumPy's rule: aligned from the right, each pair of sizes must be equal or 1).{hint}"
    )


def _broadcastable(*shapes: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


# NumPy's ufuncs that are Node operators: NumPy calls them for `array + node` (`Node.__array_ufunc__`).
_UFUNC_OPERATORS: dict[Any, Forward] = {
    np.add: ops.add,
    np.subtract: ops.subtract,
    np.multiply: ops.multiply,
    np.true_divide: ops.divide,
    np.power: ops.power,
    np.matmul: ops.matmul,
}

# How to write a NumPy ufunc or function on a Node where it is not the Node method of the same name.
_NODE_SPELLING = {
    "absolute": "node.abs()",
    "negative": "-node",
    "positive": "+node",
    "amax": "node.max()",
    "min": "-(-node).max()",
    "amin": "-(-node).max()",
    "std": "node.var().sqrt()",
    "dot": "a @ b",
    "concatenate": "dp.concatenate([a, b], axis)",
    "hstack": "dp.concatenate([a, b], axis=1)",
    "vstack": "dp.concatenate([a, b], axis=0)",
    "stack": "dp.concatenate of the nodes reshaped to have the new axis",
}

# NumPy functions whose result has no gradient to record (a test, an index, a sign, a rounding, a
# new array of the same shape): on the Node's value they are exactly right, and that is the advice.
_NO_GRADIENT = {
    *("isnan", "isinf", "isfinite", "isclose", "allclose", "array_equal", "array_equiv", "sign"),
    *("argmax", "argmin", "argsort", "nonzero", "count_nonzero", "floor", "ceil", "round", "rint"),
    *("zeros_like", "ones_like", "empty_like", "full_like", "result_type"),
}

# NumPy functions that only read a Node's shape, which `Node.__array_function__` answers.
_ABOUT_THE_SHAPE = {np.shape, np.ndim, np.size}


def _values_for(node: Node, arguments: Any) -> list[Any]:
    """``arguments`` with ``node`` replaced by its value."""
    return [node.value if argument is node else argument for argument in arguments]


def _ufunc_error(ufunc: Any, method: str, kwargs: dict[str, Any]) -> TypeError:
    """The error for a NumPy ufunc called on a Node, naming what to write instead. Why: with
    a Node, NumPy would fail with a message about ``__array_ufunc__``, or compute a result
    without a gradient; a student's ``np.tanh(x)`` should lead to ``x.tanh()``."""
    name = ufunc.__name__
    call = f"np.{name}" if method == "__call__" else f"np.{name}.{method}"
    if "out" in kwargs:
        return TypeError(f"{call}: an array cannot hold a Node; write a = a + node (a new Node), not a += node")
    if method != "__call__" or ufunc in _UFUNC_OPERATORS:
        return _refused(call, "use the Node's operators and methods (a + node, node.sum(axis))")
    if name in _NO_GRADIENT:
        return _without_gradient(call)
    return _refused(call, _instead(name))


def _function_error(func: Any) -> TypeError:
    """The error for a NumPy function that is not a ufunc (``np.mean``, ``np.sum``) called on
    a Node, naming what to write instead. Why: NumPy would call ``node.mean(axis, dtype,
    out)`` and fail on ``dtype``, a keyword the student never wrote."""
    module = func.__module__.replace("numpy", "np", 1)  # np.linalg.norm, not np.norm
    if func.__name__ in _NO_GRADIENT:
        return _without_gradient(f"{module}.{func.__name__}")
    return _refused(f"{module}.{func.__name__}", _instead(func.__name__))


def _without_gradient(call: str) -> TypeError:
    """The error for NumPy's ``call`` on a Node when its result has no gradient anyway."""
    return TypeError(f"{call} does not take a dp.Node: write {call}(node.value) (its result has no gradient to record)")


def _instead(name: str) -> str:
    """What to write on a Node instead of NumPy's ``name``: a Node method, or composing one."""
    if name in _NODE_SPELLING or callable(getattr(Node, name, None)):
        return f"use {_NODE_SPELLING.get(name, f'node.{name}()')}"
    return f"dp has no {name} for Nodes: compose it from Node operations"


def _refused(call: str, instead: str) -> TypeError:
    """The error for NumPy's ``call`` on a Node: what to write ``instead``, and why."""
    return TypeError(
        f"{call} does not take a dp.Node: {instead} (Node operations record the gradient; "
        f"{call} on node.value gives a plain array, without one)"
    )


def _shown(value: np.ndarray) -> str:
    """A value as `Node.__repr__` shows it. Why: a node printed during training should show
    its number, and a large one should not flood the screen."""
    if value.size == 1:
        value = value.reshape(())  # 0.0705, not [[0.0705]]
    return np.array2string(value, precision=4, threshold=20, edgeitems=3, separator=", ", prefix="Node(")


def _not_one_number(call: str, shape: tuple[int, ...]) -> str:
    """The error for ``float(node)`` or ``node.item()`` on a node that is not one number."""
    return f"{call} needs a node with one element, this one has shape {shape}: use node.value for the array"


# ----- values from users -----


def as_value(value: Any) -> np.ndarray:
    """A Node's value from user input, by dp's conventions (see `Node`): always a plain
    ``np.ndarray``, never a subclass of it.

    ndarray subclasses, decided: a subclass (``np.matrix``, ``np.memmap``) becomes a plain
    ndarray holding the same numbers (`plain_array`), because dp's operations are NumPy's on
    plain arrays: on an ``np.matrix``, ``a * a`` would be the matrix product and the
    gradients right for neither reading. A masked array is refused with a ``TypeError``
    that says to pass ``m.filled(value)`` or ``m.data``: dp cannot honour a mask (a sum
    over it, a batch's statistics), and dropping it silently would compute with the
    values under the mask, which the caller said to leave out.
    """
    if isinstance(value, Node):
        raise TypeError("this is already a Node; to start a new leaf from it, use Node(node.value)")
    if value.__class__ is np.ndarray and value.dtype.kind == "f" and value.ndim >= 2:
        return value  # the common case, kept fast: parameters wrapped at every forward pass
    array = plain_array(value, "a Node's value")
    kind = array.dtype.kind
    if kind in "biu":
        array = array.astype(np.float64)
    elif kind != "f":
        why = {"c": "complex numbers are not supported (dp differentiates real functions)"}.get(
            kind, "it must be numeric (bool, int or float)"
        )
        raise TypeError(f"a Node's value cannot have dtype {array.dtype}: {why}")
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array


def plain_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a plain ndarray (``np.asarray``: not copied when it is one), for every
    array dp takes from a user (`as_value`, `dp.checks.numeric_array`, a layer's input).
    A subclass of ndarray becomes a plain ndarray of the same numbers; a masked array is a
    ``TypeError`` naming ``what`` (see `as_value` for why)."""
    if value.__class__ is not np.ndarray and _is_masked(value):
        raise TypeError(
            f"{what} is a masked array, and dp would ignore its mask: pass m.filled(value) to "
            "replace the masked entries, or m.data to use the values under the mask"
        )
    return np.asarray(value)


def _is_masked(value: Any) -> bool:
    """Whether ``value`` is a NumPy masked array. Why through ``sys.modules``: importing
    ``numpy.ma`` costs about 10 ms, and a masked array exists only if it was imported."""
    ma = sys.modules.get("numpy.ma")
    return ma is not None and isinstance(value, ma.MaskedArray)


def constant(value: Any, like: np.ndarray) -> Any:
    """An operand that is not a Node, as a primitive sees it.

    Numbers stay Python floats, so that they neither change a shape nor upcast
    float32 (NumPy treats Python scalars as "weak"). Arrays follow `as_value`
    (a 1-D array is a column) and take the dtype of the Node they meet, so a
    float64 mask does not turn a float32 graph into float64.
    """
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return float(value)
    array = as_value(value)
    return array if array.dtype == like.dtype else array.astype(like.dtype)
