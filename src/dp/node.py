"""`Node`, the `primitive` decorator and the backward pass: the whole autodiff engine.

A `Node` holds a NumPy value. Operations on Nodes (see `dp.ops`) are *primitives*:
a forward function on NumPy values that also returns, for each argument, its
vector-Jacobian product (vjp): a function that maps the gradient of the output
to the gradient of that argument. The new Node remembers the Nodes it was made
from and their vjps, and nothing else.

`loss.grad(seed)` walks that graph once, in reverse topological order, without
recursion: every node's gradient is complete (all its consumers have pushed
into it) before it is pushed on to its own inputs, so a node used many times
costs one visit, and a chain of any length works.

Only nodes that lead to a *named* node take part: a named node is a parameter,
and an operation whose inputs reach no parameter records no inputs at all, so
data flowing through the graph costs nothing in the backward pass.
"""

from __future__ import annotations

import functools
import numbers
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

Vjp = Callable[[np.ndarray], Any]


class Node:
    """An n-d array in a differentiable computation.

    ``Node(value, name=None)``. ``value`` becomes a float ndarray by dp's conventions:
    a number is shape (1, 1), a 1-D array a column (n, 1), 2-D and higher keep
    their shape. A floating dtype is kept (float32 stays float32); integers and
    booleans become float64; anything else (strings, objects, complex) is a
    ``TypeError``. The array is not copied, and dp never writes into it.

    A node with a name is a parameter: ``loss.grad(1)`` returns its gradient under
    that name. The name is fixed when the node is made.

    Operators and methods (``+ - * / ** @``, ``sum``, ``tanh``, indexing, ...) are
    the primitives of `dp.ops`; they follow NumPy's broadcasting and shapes, except
    that reductions keep their axes by default.

    >>> w = Node([1.0, 2.0], name="w")      # a column, shape (2, 1)
    >>> loss = (w * w).sum()
    >>> loss.grad(1)["w"].ravel().tolist()
    [2.0, 4.0]
    """

    __slots__ = ("value", "name", "edges", "needs_grad", "__weakref__")
    __array_ufunc__ = None  # `ndarray * node` defers to Node.__rmul__ instead of looping over elements.

    def __init__(self, value: Any, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a Node's name must be a str or None, not {type(name).__name__}")
        self.value = as_value(value)
        self.name = name
        self.edges: list[tuple[Node, Vjp]] = []  # (input, its vjp) for each input that needs a gradient
        self.needs_grad = name is not None

    shape = property(lambda self: self.value.shape, doc="The value's shape.")
    ndim = property(lambda self: self.value.ndim, doc="The value's number of dimensions.")
    dtype = property(lambda self: self.value.dtype, doc="The value's dtype.")

    def __repr__(self) -> str:
        name = f"name={self.name!r}, " if self.name is not None else ""
        return f"Node({name}shape={self.shape}, dtype={self.dtype})"

    __iter__ = None  # Iterating a Node would silently build one node per row.

    def grad(self, seed: Any = 1.0) -> dict[str, np.ndarray]:
        """Gradients of this node with respect to every named node it depends on.

        ``seed`` is the gradient of some scalar objective with respect to this
        node: a number (broadcast to this node's shape, so ``loss.grad(1)``) or an
        array of exactly this node's shape. Returns ``{name: gradient}``; each
        gradient has the shape and dtype of its node's value, and nodes sharing a
        name add up (tied weights). Unnamed nodes are not in the result.

        Raises ``ValueError`` for a seed of another shape, ``TypeError`` for a seed
        that is not numeric.
        """
        result: dict[str, np.ndarray] = {}
        if not self.needs_grad:
            _seed_array(seed, self.value)  # still refuse a bad seed
            return result
        consumers = _count_consumers(self)
        grads: dict[Node, np.ndarray] = {self: _seed_array(seed, self.value)}
        handed_out: set[int] = set()
        ready = [self]
        while ready:
            node = ready.pop()
            g = grads.pop(node)  # complete: every consumer has pushed into it
            if node.name is not None:
                # Each name gets an array of its own: not a view, not one already handed out.
                if g.base is not None or id(g) in handed_out or not g.flags.writeable:
                    g = g.copy()
                handed_out.add(id(g))
                if node.name in result:
                    result[node.name] = _add_tied(node.name, result[node.name], g)
                else:
                    result[node.name] = g
            for parent, vjp in node.edges:
                pg = vjp(g)
                value = parent.value
                if pg.__class__ is not np.ndarray or pg.shape != value.shape or pg.dtype is not value.dtype:
                    pg = _fit(pg, value)
                grads[parent] = grads[parent] + pg if parent in grads else pg
                left = consumers[parent] - 1
                consumers[parent] = left
                if not left:
                    ready.append(parent)
        return result


def _add_tied(name: str, total: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The sum of the gradients of two nodes sharing ``name`` (tied weights), which
    must have one shape: broadcasting them together would fit neither node."""
    if total.shape != g.shape:
        raise ValueError(f"two nodes named {name!r} have different shapes, {total.shape} and {g.shape}")
    return total + g


def _count_consumers(root: Node) -> dict[Node, int]:
    """For each node below ``root``, how many edges of the graph point into it."""
    consumers = {root: 0}
    stack = [root]
    while stack:
        for parent, _ in stack.pop().edges:
            if parent in consumers:
                consumers[parent] += 1
            else:
                consumers[parent] = 1
                stack.append(parent)
    return consumers


def _seed_array(seed: Any, like: np.ndarray) -> np.ndarray:
    if isinstance(seed, Node):
        raise TypeError("grad's seed is a gradient, an array or a number, not a Node")
    if isinstance(seed, numbers.Real) and not isinstance(seed, bool):
        return np.full(like.shape, seed, dtype=like.dtype)
    array = np.asarray(seed)
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


def _fit(g: Any, value: np.ndarray) -> np.ndarray:
    """Give a vjp's result the shape and dtype of the argument it is the gradient of."""
    if not isinstance(g, np.ndarray) or g.shape != value.shape:
        g = unbroadcast(np.asarray(g), value.shape)
    if g.dtype != value.dtype:
        g = g.astype(value.dtype)
    return g


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` back to ``shape``: the vjp of NumPy broadcasting ``shape`` up to ``g.shape``.

    This is the only place where dp undoes broadcasting. A ``g`` smaller than
    ``shape`` (a reduction's gradient) is broadcast up instead.
    """
    if g.ndim > len(shape):
        g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    elif g.ndim < len(shape):  # a vjp that answered with a number or a lower-rank array
        g = g.reshape((1,) * (len(shape) - g.ndim) + g.shape)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if g.shape != shape:
        g = np.broadcast_to(g, shape)
    return g


def as_value(value: Any) -> np.ndarray:
    """A Node's value from user input, by dp's conventions (see `Node`)."""
    if isinstance(value, Node):
        raise TypeError("this is already a Node; to start a new leaf from it, use Node(node.value)")
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim >= 2:
        return value  # the common case, kept fast: parameters wrapped at every forward pass
    array = np.asarray(value)
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


def primitive(forward: Callable[..., tuple[np.ndarray, tuple]]) -> Callable[..., Node]:
    """Make an operation on Nodes from ``forward(*values, **options) -> (value, vjps)``.

    ``forward`` receives NumPy values (a Node argument's ``.value``; other
    arguments as given) and returns the output value and a tuple with one vjp per
    positional argument: ``vjp(g)`` is the gradient of that argument given the
    gradient ``g`` of the output (``None`` where there is none, e.g. labels). A
    vjp may return a broadcast shape; the backward pass sums it back with
    `unbroadcast`. vjps are only called for arguments that lead to a parameter.

    >>> @primitive
    ... def cube(x):
    ...     return x ** 3, (lambda g: g * 3 * x ** 2,)
    """

    @functools.wraps(forward)
    def operation(*args: Any, **options: Any) -> Node:
        value, vjps = forward(*[a.value if isinstance(a, Node) else a for a in args], **options)
        node = new_node(Node)  # bypasses __init__: value is an operation's output, already an array
        node.value = value if value.__class__ is np.ndarray else np.asarray(value)  # NumPy may give scalars
        node.name = None
        node.edges = edges = [
            (arg, vjp) for arg, vjp in zip(args, vjps) if isinstance(arg, Node) and arg.needs_grad and vjp is not None
        ]
        node.needs_grad = bool(edges)
        return node

    operation.forward = forward  # type: ignore[attr-defined]
    return operation


new_node = object.__new__


class SharedWork:
    """Work that several vjps of one fused primitive need (batch norm's column sums),
    done once per gradient. ``shared(g)`` computes ``compute(g)`` unless a result for
    this very ``g`` is already there (from an earlier call, or from ``put``). ``g`` is
    held weakly: the backward pass keeps it alive while the node's vjps run, no longer."""

    __slots__ = ("compute", "g", "result")

    def __init__(self, compute: Callable[[np.ndarray], Any]) -> None:
        self.compute, self.g, self.result = compute, None, None

    def __call__(self, g: np.ndarray) -> Any:
        if self.g is None or self.g() is not g:
            self.put(g, self.compute(g))
        return self.result

    def put(self, g: np.ndarray, result: Any) -> Any:
        """Remember ``result`` as the work for ``g`` (a vjp that computed it on the way)."""
        self.g, self.result = weakref.ref(g), result
        return result
