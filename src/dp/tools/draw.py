"""`draw`: the computation graph behind a Node, as a picture (SVG, or PNG).

``dp.draw(loss, grads=True)`` draws every node that ``loss.grad`` would visit, one box
each, with an arrow from each input to the operation that uses it::

    w = dp.Node([[0.5], [-1.0]], name="w")
    loss = (x @ w).tanh().sum()
    dp.draw(loss, grads=True)       # in Jupyter: shown inline
    dp.draw(loss).save("graph.png")

A box shows the primitive that made the node (``matmul``), or a parameter's name, the
shape, the value (in full for arrays of at most 6 rows and 4 columns, else its mean,
standard deviation, minimum and maximum) and, if asked for, the gradient. An arrow into
an operation of several arguments is labelled with the argument's position (0, 1, ...).

What is not drawn: dp records only inputs that lead to a parameter (a named node), so
data and constants are not in the graph. Name the data (``dp.Node(x, "x")``) to see it,
with its gradient.

Large graphs: more than `LIMIT` boxes are refused, unless grouped by layer.
``group=True`` collapses each layer into one box, the layer being read from the
parameter names, ``weight_l1`` -> ``l1``, ``gamma_bn1`` -> ``bn1`` (dp's naming
convention; or pass a function of your own from a parameter name to a layer name).
An operation belongs to the layer of the parameters it takes; an operation without
parameters belongs to the layer that uses its result (so the steps of a composed batch
norm join ``bn1``, and an activation the layer after it); everything else stands alone.
``expand=["bn1"]`` draws that layer's nodes one by one.

The layout is computed here, with no graph library: layers by longest path to the
drawn node, a few barycenter sweeps to reduce crossings, positions by least squares.
The SVG is written as text (NumPy only); the PNG draws the same layout with matplotlib
(the ``train`` extra), imported only then. Drawing never changes the graph: with
``grads=True`` it runs the reverse sweep of `Node.grad` itself, over the same vjps.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dp.checks import install_hint
from dp.node import Node, topological_order
from dp.tools.files import write_atomically, write_text

NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
LIMIT = 60  # boxes; beyond that a drawing stops being readable, so group it by layer
SHOWN = (6, 4)  # arrays of at most this many rows and columns are shown in full

# Sizes in SVG pixels; the text is monospace, so a line's width is its length times CHAR.
FONT, SMALL_FONT, CHAR, LINE, PAD = 12, 10, 7.3, 16, 8
GAP_X, GAP_Y, MARGIN, ARROW = 28, 46, 16, 7
PORT = 0.01  # how far an argument's position moves a link's end, in places within a layer
SWEEPS = 4  # rounds of barycenter ordering, and of position refinement
MONOSPACE = "DejaVu Sans Mono, Menlo, Consolas, monospace"

FILL = {"param": "#dbeafe", "op": "#ffffff", "leaf": "#f1f5f9", "group": "#fef3c7"}
STROKE = {"param": "#1e40af", "op": "#475569", "leaf": "#475569", "group": "#b45309"}
INK = {
    "title": "#0f172a",
    "shape": "#64748b",
    "label": "#64748b",
    "value": "#0f172a",
    "grad": "#b91c1c",
    "ops": "#475569",
    "param": "#1e40af",
    "note": "#64748b",
    "arg": "#334155",
}
EDGE_INK = "#64748b"

Point = tuple[float, float]


# ----- what is drawn: boxes of text, and arrows between them -----


@dataclass
class Span:
    """A piece of text in a box: at ``column`` characters from the left, or against the
    right edge; ``style`` names its color (`INK`) and is its class in the SVG."""

    text: str
    style: str
    column: int = 0
    right: bool = False


@dataclass
class Box:
    """One node (``kind`` "param", "op" or "leaf") or one collapsed layer ("group"),
    with its lines of text; ``x``, ``y`` (its center) are set by the layout."""

    key: str
    kind: str
    lines: list[list[Span]]
    tooltip: str = ""
    root: bool = False
    x: float = 0.0
    y: float = 0.0

    @property
    def width(self) -> float:
        return max(_line_length(line) for line in self.lines) * CHAR + 2 * PAD

    @property
    def height(self) -> float:
        return len(self.lines) * LINE + 2 * PAD - 2


@dataclass
class Arrow:
    """From the box ``source`` to the box ``target``, as cubic Bezier pieces: ``curve`` is
    a start point followed by (control, control, end) triples. ``argument`` is the input's
    position in the target's operation when it is worth showing."""

    source: str
    target: str
    argument: int | None
    curve: list[Point] = field(default_factory=list)


def _line_length(line: list[Span]) -> int:
    left = max((s.column + len(s.text) for s in line if not s.right), default=0)
    right = sum(len(s.text) + 2 for s in line if s.right)
    return left + right


# ----- the drawing -----


class Drawing:
    """A drawn graph: shown inline by Jupyter (`_repr_svg_`), written by `save`.

    ``svg`` is the SVG text. ``groups`` lists the layers found when drawn with
    ``group=True`` (the names ``expand`` takes), in the order of the computation.
    """

    def __init__(self, boxes: list[Box], arrows: list[Arrow], notes: list[str], groups: tuple[str, ...]) -> None:
        self.boxes, self.arrows, self.groups = boxes, arrows, groups
        right = max(box.x + box.width / 2 for box in boxes)
        bottom = max(box.y + box.height / 2 for box in boxes)
        small_char = CHAR * SMALL_FONT / FONT
        columns = max(int((right - MARGIN) / small_char), 56)  # notes wrap to the graph's width
        self.notes = [line for note in notes for line in textwrap.wrap(note, columns)]
        notes_width = MARGIN + max((len(n) for n in self.notes), default=0) * small_char
        self.width = math.ceil(max(right, notes_width) + MARGIN)  # whole pixels, so a PNG is exactly scale times
        self.height = math.ceil(bottom + GAP_Y / 2 + len(self.notes) * LINE + MARGIN / 2)

    def __repr__(self) -> str:
        groups = f", groups {', '.join(self.groups)}" if self.groups else ""
        return f"<dp drawing: {len(self.boxes)} boxes, {len(self.arrows)} arrows{groups}>"

    @property
    def svg(self) -> str:
        return _svg(self)

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | os.PathLike[str], scale: float = 2.0) -> Path:
        """Write the drawing to ``path``, atomically (an interrupted write leaves the older
        file): ``.svg`` (text) or ``.png`` (``scale`` pixels per
        SVG pixel; needs matplotlib, from the ``train`` extra). Returns the path.
        Raises ``ValueError`` for another extension, ``ImportError`` without matplotlib."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            return write_text(path, self.svg)
        if suffix == ".png":
            return _png(self, path, scale)
        raise ValueError(f"cannot save a drawing as {suffix or 'a file without extension'!r}: use .svg or .png")


def draw(
    node: Node,
    grads: bool | Mapping[str, Any] = False,
    *,
    group: bool | Callable[[str], str | None] = False,
    expand: str | Iterable[str] = (),
    limit: int = LIMIT,
) -> Drawing:
    """Draw the graph that ends at ``node``: every node ``node.grad`` would visit.

    ``grads``: ``False`` draws values only; ``True`` computes and shows the gradient of
    ``node`` with respect to every node drawn (seed 1, as ``node.grad(1)``: for a node of
    several entries, the gradient of their sum); a dict such as ``loss.grad(1)`` shows
    those gradients on the parameters of those names.

    ``group``: ``True`` collapses each layer (read from parameter names, see the module's
    docstring) into one box; a function maps a parameter name to its layer name, or None.
    ``expand`` names layers to draw node by node all the same.

    Returns a `Drawing`; the graph is left exactly as it was. Raises ``TypeError`` for a
    ``node`` that is not a Node, or ``grads`` of another kind; ``ValueError`` for more
    than ``limit`` boxes (the error says how to group), a gradient whose shape is not its
    node's, or ``expand`` naming an unknown layer.
    """
    if not isinstance(node, Node):
        raise TypeError(f"dp.draw draws the graph behind a dp.Node, not a {type(node).__name__}")
    order = topological_order(node)  # node first, each node before its inputs
    gradients = _gradients(node, order, grads)
    layer = _layer_naming(group)
    layers = _assign_layers(order, layer) if layer else dict.fromkeys(order)
    found = _in_order(layers, order)
    collapsed = set(found) - _expanded(expand, found, grouped=layer is not None)
    boxes, links = _boxes(order, gradients, layers, collapsed)
    _check_size(len(boxes), order, limit, grouped=layer is not None)
    arrows = _layout(boxes, links)
    return Drawing(boxes, arrows, _notes(order, grads), found)


# ----- checking the arguments -----


def _gradients(root: Node, order: list[Node], grads: bool | Mapping[str, Any]) -> dict[Node, np.ndarray]:
    """The gradient to show on each node (nodes without one are left out)."""
    if grads is True:
        return dict(root.reverse_sweep(1.0))  # every node's gradient, not only the named ones' (Node.grad)
    if grads is False or grads is None:
        return {}
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be True, False or a dict of gradients by name, not {type(grads).__name__}")
    shown = {n: np.asarray(grads[n.name]) for n in order if n.name is not None and n.name in grads}
    for n, g in shown.items():
        if g.shape != n.shape:
            raise ValueError(f"grads[{n.name!r}] has shape {g.shape}, but the node {n.name!r} has shape {n.shape}")
    return shown


def _in_order(layers: dict[Node, str | None], order: list[Node]) -> tuple[str, ...]:
    """The layers in the order of the computation: of their first operation, then any
    that hold only parameters."""
    forward = order[::-1]
    first = [layers[n] for n in forward if n.op is not None] + [layers[n] for n in forward]
    return tuple(name for name in dict.fromkeys(first) if name is not None)


def _layer_naming(group: bool | Callable[[str], str | None]) -> Callable[[str], str | None] | None:
    if group is True:
        return _layer_of_name
    if group is False or group is None:
        return None
    if callable(group):
        return group
    raise TypeError(f"group must be True, False or a function from a parameter name to a layer name, not {group!r}")


def _layer_of_name(name: str) -> str | None:
    """dp's convention: the layer is the part after the last underscore (``gamma_bn1`` -> ``bn1``)."""
    layer = name.rsplit("_", 1)[1] if "_" in name else ""
    return layer or None


def _expanded(expand: str | Iterable[str], found: tuple[str, ...], grouped: bool) -> set[str]:
    """The groups of ``found`` that ``expand`` names: a group by its name (``"l1/bn1"``, the
    layers of an operation that takes parameters of both) or by one of its layers' (``"bn1"``)."""
    names = {expand} if isinstance(expand, str) else set(expand)
    if names and not grouped:
        raise ValueError("expand opens layers of a grouped drawing: pass group=True as well")
    opened = {name: _groups_named(name, found) for name in names}
    unknown = sorted(name for name, groups in opened.items() if not groups)
    if unknown:
        raise ValueError(f"no layer named {', '.join(map(repr, unknown))} to expand; the layers are {list(found)}")
    return {group for groups in opened.values() for group in groups}


def _groups_named(name: str, found: tuple[str, ...]) -> list[str]:
    """The groups of ``found`` that are ``name`` or have a layer of that name."""
    return [group for group in found if name == group or name in group.split("/")]


def _check_size(boxes: int, order: list[Node], limit: int, grouped: bool) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of boxes, at least 1, not {limit!r}")
    if boxes <= limit:
        return
    if not grouped:
        raise ValueError(
            f"this graph has {len(order)} nodes, more than the {limit} a drawing keeps readable: draw it by "
            f"layer with group=True (one box per layer{_expand_example(order)}), or raise limit="
        )
    raise ValueError(
        f"grouped by layer, this graph still has {boxes} boxes, more than limit={limit}: "
        "expand fewer layers, or raise limit="
    )


def _expand_example(order: list[Node]) -> str:
    """How to open one layer of this graph drawn by layer, with a name it has (a batch norm's
    if there is one): "; expand=['bn1'] opens one", or nothing for a graph without layers."""
    layers = [name for group in _in_order(_assign_layers(order, _layer_of_name), order) for name in group.split("/")]
    if not layers:
        return ""
    example = next((name for name in layers if name.startswith("bn")), layers[0])
    return f"; expand=[{example!r}] opens one"


def _notes(order: list[Node], grads: bool | Mapping[str, Any]) -> list[str]:
    notes = []
    if any(n.op is not None for n in order):
        notes.append("Not drawn: data and constants (dp records only the inputs that lead to a parameter).")
    if grads is True:
        notes.append("grad: the gradient of the bottom node (of the sum of its entries) with respect to each node.")
    return notes


# ----- layers: which nodes a grouped drawing collapses into one box -----


def _assign_layers(order: list[Node], layer_of: Callable[[str], str | None]) -> dict[Node, str | None]:
    """The layer of each node of ``order`` (each node before its inputs), by the rules of
    the module's docstring, or None for a node that stands alone."""
    users: dict[Node, list[Node]] = {n: [] for n in order}
    for n in order:
        for _, parent in n.parents:
            users[parent].append(n)
    layers: dict[Node, str | None] = {}
    for n in order:  # every user of n comes before it, so its layer is known
        layers[n] = _layer_of_node(n, {layers[u] for u in users[n]}, layer_of)
    return layers


def _layer_of_node(node: Node, around: set[str | None], layer_of: Callable[[str], str | None]) -> str | None:
    """The layers of the parameters ``node`` takes; else the one layer of its users
    (``around``); else, for a parameter, its own name's layer."""
    own = [layer_of(p.name) for _, p in node.parents if p.name is not None]
    named = [layer for layer in dict.fromkeys(own) if layer is not None]
    if named:
        return "/".join(named)
    if len(around) == 1:
        return around.pop()
    return layer_of(node.name) if node.name is not None else None


# ----- the boxes' text -----


def _boxes(
    order: list[Node], gradients: dict[Node, np.ndarray], layers: dict[Node, str | None], collapsed: set[str]
) -> tuple[list[Box], list[tuple[str, str, int | None]]]:
    """One box per node, or per collapsed layer, in the order of the computation, and the
    links between them as (source, target, argument shown or None)."""
    forward = order[::-1]
    key = {n: _key(n, i, layers[n], collapsed) for i, n in enumerate(forward)}
    members: dict[str, list[Node]] = {}
    for n in forward:
        members.setdefault(key[n], []).append(n)
    boxes = []
    for k, nodes in members.items():
        if k.startswith("layer "):
            boxes.append(_layer_box(k, nodes, key, gradients, root=order[0]))
        else:
            boxes.append(_node_box(k, nodes[0], gradients.get(nodes[0]), root=nodes[0] is order[0]))
    return boxes, _links(forward, key)


def _key(node: Node, index: int, layer: str | None, collapsed: set[str]) -> str:
    return f"layer {layer}" if layer in collapsed else f"n{index}"


def _links(forward: list[Node], key: dict[Node, str]) -> list[tuple[str, str, int | None]]:
    """Input -> user links between boxes. Into a single node, one per argument, labelled
    with its position when the operation has several (or the first is not drawn); into
    a collapsed layer, one per box that feeds it."""
    links: dict[tuple[str, str, int | None], None] = {}
    for n in forward:
        target = key[n]
        several = len(n.parents) > 1 or any(i > 0 for i, _ in n.parents)
        for i, parent in n.parents:
            if key[parent] != target:
                shown = i if several and not target.startswith("layer ") else None
                links[(key[parent], target, shown)] = None
    return list(links)


def _node_box(key: str, node: Node, grad: np.ndarray | None, root: bool) -> Box:
    kind = "param" if node.name is not None else "op" if node.op is not None else "leaf"
    title = node.name if node.name is not None else node.op.lstrip("_") if node.op is not None else "leaf"
    lines = [[Span(title, "title"), Span(_shape(node.shape), "shape", right=True)]]
    lines += _data_lines(node.value, grad)
    return Box(key, kind, lines, _tooltip(title, node.value, grad), root)


def _layer_box(
    key: str, nodes: list[Node], keys: dict[Node, str], gradients: dict[Node, np.ndarray], root: Node
) -> Box:
    """A collapsed layer: its name, its operations, its parameters, and its output."""
    outputs = _outputs(nodes, keys, root)
    output = outputs[0] if len(outputs) == 1 else None
    ops = [n.op.lstrip("_") for n in nodes if n.op is not None]
    title = key.removeprefix("layer ")
    shape = _shape(output.shape) if output is not None else f"{len(outputs)} outputs"
    lines = [[Span(title, "title"), Span(shape, "shape", right=True)]]
    listed = f"{len(ops)} op{'s' * (len(ops) != 1)}: {' '.join(ops)}"
    lines += [[Span(text, "ops")] for text in textwrap.wrap(listed, 38, subsequent_indent="  ")]
    lines += _param_lines(_parameters(nodes), gradients)
    tooltip = f"layer {title}: {', '.join(ops)}"
    if output is not None:
        lines += _data_lines(output.value, gradients.get(output))
        tooltip += "\n" + _tooltip("output", output.value, gradients.get(output))
    return Box(key, "group", lines, tooltip, root in nodes)


def _outputs(nodes: list[Node], keys: dict[Node, str], root: Node) -> list[Node]:
    """The nodes of a layer that a node outside it uses, or that are the drawn node."""
    inside = set(nodes)
    used = {p for n in keys if n not in inside for _, p in n.parents}
    return [n for n in nodes if n in used or n is root]


def _parameters(nodes: list[Node]) -> list[Node]:
    """The named nodes among ``nodes``, in the order their operations take them
    (weight, then gamma, then beta), then any others."""
    inside = set(nodes)
    taken = [p for n in nodes for _, p in n.parents if p.name is not None and p in inside]
    return list(dict.fromkeys(taken + [n for n in nodes if n.name is not None]))


def _param_lines(params: list[Node], gradients: dict[Node, np.ndarray]) -> list[list[Span]]:
    """One line per parameter: its name and shape, and the norm of its gradient if known."""
    texts = [f"{n.name} {_shape(n.shape)}" for n in params]
    column = max(map(len, texts), default=0) + 2
    lines = []
    for n, text in zip(params, texts):
        line = [Span(text, "param")]
        if n in gradients:
            line.append(Span(f"|grad| {_number(float(np.linalg.norm(gradients[n])), 3)}", "grad", column=column))
        lines.append(line)
    return lines


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _data_lines(value: np.ndarray, grad: np.ndarray | None) -> list[list[Span]]:
    """A node's value, and its gradient if given: side by side in full when small, else
    summarized one under the other."""
    blocks = [("value", value)] + ([("grad", grad)] if grad is not None else [])
    if all(_small(a) for _, a in blocks):
        return _side_by_side([(label, _table(a)) for label, a in blocks])
    lines = []
    for label, a in blocks:
        summary = _summary(a)
        lines.append([Span(label, "label"), Span(summary[0], label, column=6)])
        lines.append([Span(summary[1], label, column=6)])
    return lines


def _small(a: np.ndarray) -> bool:
    return (
        a.size == 0
        or a.ndim <= 2
        and (a.ndim < 2 or a.shape[0] <= SHOWN[0])
        and (a.shape[-1] if a.ndim else 1) <= SHOWN[1]
    )


def _table(a: np.ndarray) -> list[str]:
    """The rows of a small array, numbers right-aligned in columns ("(empty)" for no numbers)."""
    if a.size == 0:
        return ["(empty)"]
    matrix = a if a.ndim == 2 else a.reshape(1, -1)
    rows = [[_number(float(v), 4) for v in row] for row in matrix]
    widths = [max(len(row[j]) for row in rows) for j in range(matrix.shape[1])]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]


def _side_by_side(blocks: list[tuple[str, list[str]]]) -> list[list[Span]]:
    """A header line of labels, then the blocks' rows, each block in its own columns."""
    columns, column = [], 0
    for label, rows in blocks:
        columns.append(column)
        column += max(len(label), *map(len, rows)) + 3
    lines = [[Span(label, "label", column=c) for (label, _), c in zip(blocks, columns)]]
    for i in range(len(blocks[0][1])):
        lines.append([Span(rows[i], label, column=c) for (label, rows), c in zip(blocks, columns)])
    return lines


def _summary(a: np.ndarray) -> tuple[str, str]:
    with np.errstate(all="ignore"):  # NaN and inf are shown as they are
        stats = [float(f(a)) for f in (np.mean, np.std, np.min, np.max)]
    mean, std, low, high = (_number(s, 3) for s in stats)
    return f"mean {mean}  std {std}", f"min {low}  max {high}"


def _number(v: float, digits: int) -> str:
    text = f"{v:.{digits}g}"
    return "0" if text == "-0" else text


def _tooltip(title: str, value: np.ndarray, grad: np.ndarray | None) -> str:
    def text(a: np.ndarray) -> str:
        return np.array2string(a, precision=4, threshold=40, suppress_small=True)

    tip = f"{title}: shape {_shape(value.shape)}, {value.dtype}\nvalue\n{text(value)}"
    return tip + (f"\ngrad\n{text(grad)}" if grad is not None else "")


# ----- layout: layers, order within layers, positions, arrows -----


def _layout(boxes: list[Box], links: list[tuple[str, str, int | None]]) -> list[Arrow]:
    """Place the boxes (setting their x, y) and route the arrows.

    Layers, top to bottom: a box's layer counts the longest path from it down to the
    drawn node, which is at the bottom, so every input sits right above its first use.
    A link across several layers passes through one point per layer in between (a
    "dummy"), which the ordering and the positions treat like a box of width 0.
    """
    size = {b.key: (b.width, b.height) for b in boxes}
    root = next(b.key for b in boxes if b.root)
    depth = _depths([b.key for b in boxes], links, root)
    bottom = max(depth.values())
    level = {k: bottom - d for k, d in depth.items()}
    chains = [_chain(source, target, i, level, size) for i, (source, target, _) in enumerate(links)]
    up, down = _neighbours(chains)
    ports = {(c[-2], c[-1]): PORT * (argument or 0) for c, (_, _, argument) in zip(chains, links)}
    layers = _order(_by_level(level), up, down, ports)
    x = _x_positions(layers, size, up, down)
    y = _y_positions(layers, size)
    for b in boxes:
        b.x, b.y = x[b.key], y[b.key]
    return _arrows(links, chains, x, y, size, level, layers)


def _by_level(level: dict[str, int]) -> list[list[str]]:
    """The keys of each layer, top to bottom, in the order of ``level`` (the computation's)."""
    layers: list[list[str]] = [[] for _ in range(max(level.values()) + 1)]
    for k, i in level.items():
        layers[i].append(k)
    return layers


def _depths(keys: list[str], links: list[tuple[str, str, int | None]], root: str) -> dict[str, int]:
    """The longest path from each box to ``root``, or ``ValueError`` if grouping made a
    cycle (a layer used before and after another box). A box's depth is final once all
    its users have one, as in a topological sort."""
    inputs: dict[str, set[str]] = {k: set() for k in keys}
    waiting = dict.fromkeys(keys, 0)  # users not yet done
    for source, target in dict.fromkeys((s, t) for s, t, _ in links):
        inputs[target].add(source)
        waiting[source] += 1
    depth, ready = {root: 0}, [root]
    while ready:
        k = ready.pop()
        for source in inputs[k]:
            depth[source] = max(depth.get(source, 0), depth[k] + 1)
            waiting[source] -= 1
            if waiting[source] == 0:
                ready.append(source)
    if len(depth) < len(keys) or any(waiting.values()):
        raise ValueError("grouped by layer, this graph has a cycle (a layer feeds a box that feeds it): expand it")
    return depth


def _chain(
    source: str, target: str, index: int, level: dict[str, int], size: dict[str, tuple[float, float]]
) -> list[str]:
    """The boxes and dummies a link passes, one per layer; the dummies join ``level``
    and ``size``."""
    dummies = [f"~{index}.{j}" for j in range(1, level[target] - level[source])]
    for j, dummy in enumerate(dummies, start=1):
        level[dummy], size[dummy] = level[source] + j, (0.0, 0.0)
    return [source, *dummies, target]


def _neighbours(chains: list[list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    return up, down


def _order(
    layers: list[list[str]],
    up: dict[str, list[str]],
    down: dict[str, list[str]],
    ports: dict[tuple[str, str], float],
) -> list[list[str]]:
    """Reorder each layer to reduce crossings: barycenter sweeps down and up, keeping the
    best order seen. ``ports`` shifts a link's end a little by its argument position, so
    that of several inputs of one operation, the first goes left."""
    best, fewest = [list(layer) for layer in layers], _crossings(layers, down, ports)
    for _ in range(SWEEPS):
        for i in range(1, len(layers)):
            _sort_by_barycenter(layers[i], layers[i - 1], up, ports)
        for i in range(len(layers) - 2, -1, -1):
            _sort_by_barycenter(layers[i], layers[i + 1], down, ports)
        crossings = _crossings(layers, down, ports)
        if crossings < fewest:
            best, fewest = [list(layer) for layer in layers], crossings
    return best


def _sort_by_barycenter(
    layer: list[str], fixed: list[str], neighbours: dict[str, list[str]], ports: dict[tuple[str, str], float]
) -> None:
    """Sort ``layer`` by the mean position of each key's neighbours in the layer ``fixed``
    (a key without any keeps its place, scaled to ``fixed``'s length)."""
    at = {k: i for i, k in enumerate(fixed)}
    here = {k: i * len(fixed) / max(len(layer), 1) for i, k in enumerate(layer)}

    def barycenter(k: str) -> float:
        if k not in neighbours:
            return here[k]
        return float(np.mean([at[n] + ports.get((k, n), 0.0) for n in neighbours[k]]))

    layer.sort(key=barycenter)


def _crossings(layers: list[list[str]], down: dict[str, list[str]], ports: dict[tuple[str, str], float]) -> int:
    """How many pairs of links cross (two inputs of one operation in the wrong order count)."""
    count = 0
    for upper, lower in itertools.pairwise(layers):
        at = {k: i for i, k in enumerate(lower)}
        edges = [(i, at[b] + ports.get((a, b), 0.0)) for i, a in enumerate(upper) for b in down.get(a, [])]
        count += sum((a1 - a2) * (b1 - b2) < 0 for (a1, b1), (a2, b2) in itertools.combinations(edges, 2))
    return count


def _x_positions(
    layers: list[list[str]], size: dict[str, tuple[float, float]], up: dict[str, list[str]], down: dict[str, list[str]]
) -> dict[str, float]:
    """Box centers: each layer packed, then moved, in order, as close as it can get to the
    mean of its neighbours above (sweeping down) or below (sweeping up)."""
    x: dict[str, float] = {}
    for layer in layers:
        x.update(zip(layer, _spread([0.0] * len(layer), _gaps(layer, size))))
    for _ in range(SWEEPS):
        for i in range(1, len(layers)):
            _pull(layers[i], x, size, up)
        for i in range(len(layers) - 2, -1, -1):
            _pull(layers[i], x, size, down)
    left = min(x[k] - size[k][0] / 2 for k in x)
    return {k: v - left + MARGIN for k, v in x.items()}


def _gaps(layer: list[str], size: dict[str, tuple[float, float]]) -> list[float]:
    """The least distance between neighbouring centers in a layer."""
    return [
        (size[a][0] + size[b][0]) / 2 + (GAP_X if size[a][0] and size[b][0] else GAP_X / 2)
        for a, b in itertools.pairwise(layer)
    ]


def _pull(
    layer: list[str], x: dict[str, float], size: dict[str, tuple[float, float]], neighbours: dict[str, list[str]]
) -> None:
    targets = [float(np.mean([x[n] for n in neighbours[k]])) if k in neighbours else x[k] for k in layer]
    x.update(zip(layer, _spread(targets, _gaps(layer, size))))


def _spread(targets: list[float], gaps: list[float]) -> list[float]:
    """Positions in the given order, at least ``gaps[i]`` apart, as close as possible to
    ``targets`` (least squares): subtracting the gaps' running sums leaves a
    non-decreasing sequence to fit, which pooling adjacent violators solves exactly."""
    offsets = list(itertools.accumulate([0.0, *gaps]))
    pools: list[tuple[float, int]] = []  # (sum, count) of runs that share one shifted position
    for t, o in zip(targets, offsets):
        total, count = t - o, 1
        while pools and pools[-1][0] / pools[-1][1] > total / count:
            previous_total, previous_count = pools.pop()
            total, count = total + previous_total, count + previous_count
        pools.append((total, count))
    shifted = [total / count for total, count in pools for _ in range(count)]
    return [s + o for s, o in zip(shifted, offsets)]


def _y_positions(layers: list[list[str]], size: dict[str, tuple[float, float]]) -> dict[str, float]:
    y, top = {}, float(MARGIN)
    for layer in layers:
        height = max(size[k][1] for k in layer)
        y.update(dict.fromkeys(layer, top + height / 2))
        y.update({k: top for k in layer if k.startswith("~")})  # a dummy's point: the top of its band
        top += height + GAP_Y
    return y


def _arrows(
    links: list[tuple[str, str, int | None]],
    chains: list[list[str]],
    x: dict[str, float],
    y: dict[str, float],
    size: dict[str, tuple[float, float]],
    level: dict[str, int],
    layers: list[list[str]],
) -> list[Arrow]:
    """Each link as a smooth curve from its source's bottom edge to its target's top
    edge, through its dummies; several arrows at one edge of a box are spread along it."""
    band = [max(size[k][1] for k in layer) for layer in layers]
    start = _attachments([c[0] for c in chains], [(0, x[c[1]]) for c in chains], x, size)
    order_in = [(link[2] or 0, x[c[-2]]) for link, c in zip(links, chains)]  # by argument, then from the left
    end = _attachments([c[-1] for c in chains], order_in, x, size)
    arrows = []
    for i, ((source, target, argument), chain) in enumerate(zip(links, chains)):
        points = [(start[i], y[source] + size[source][1] / 2)]
        for dummy in chain[1:-1]:
            points += [(x[dummy], y[dummy]), (x[dummy], y[dummy] + band[level[dummy]])]
        points.append((end[i], y[target] - size[target][1] / 2 - ARROW))
        arrows.append(Arrow(source, target, argument, _curve(points)))
    return arrows


def _attachments(
    boxes: list[str], towards: list[tuple[int, float]], x: dict[str, float], size: dict[str, tuple[float, float]]
) -> list[float]:
    """Where each arrow meets its box: arrows at one box spread along its edge, in the
    order of ``towards`` (argument position, then x of the other end)."""
    at = [0.0] * len(boxes)
    by_box: dict[str, list[int]] = {}
    for i, box in enumerate(boxes):
        by_box.setdefault(box, []).append(i)
    for box, indices in by_box.items():
        indices.sort(key=lambda i: towards[i])
        step = min(16.0, 0.7 * size[box][0] / max(len(indices) - 1, 1))
        for j, i in enumerate(indices):
            at[i] = x[box] + (j - (len(indices) - 1) / 2) * step
    return at


def _curve(points: list[Point]) -> list[Point]:
    """Cubic pieces through ``points``, leaving and arriving vertically."""
    curve = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        half = (y1 - y0) / 2
        curve += [(x0, y0 + half), (x1, y1 - half), (x1, y1)]
    return curve


# ----- renderers: the same boxes and arrows as SVG text, or through matplotlib -----


def _text_x(box: Box, span: Span) -> float:
    left = box.x - box.width / 2
    return left + box.width - PAD if span.right else left + PAD + span.column * CHAR


def _baseline(box: Box, row: int) -> float:
    return box.y - box.height / 2 + PAD + row * LINE + FONT - 1


def escape(text: str) -> str:
    """``text`` safe inside an XML element or a double-quoted attribute: markup characters
    as entities, and characters XML 1.0 forbids (control characters but tab and newlines,
    lone surrogates, U+FFFE, U+FFFF) written out as Python does, ``\\x00``."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return NOT_IN_XML.sub(lambda match: ascii(match.group())[1:-1], text)


def _svg(drawing: Drawing) -> str:
    w, h = f"{drawing.width:.0f}", f"{drawing.height:.0f}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{MONOSPACE}" font-size="{FONT}" xml:space="preserve">',
        f'<rect class="background" width="{w}" height="{h}" fill="#ffffff"/>',
    ]
    parts += [_svg_arrow(a) for a in drawing.arrows]
    parts += [_svg_box(b) for b in drawing.boxes]
    top = drawing.height - MARGIN / 2 - len(drawing.notes) * LINE + SMALL_FONT
    for i, note in enumerate(drawing.notes):
        parts.append(
            f'<text class="note" x="{MARGIN}" y="{top + i * LINE:.1f}" font-size="{SMALL_FONT}" '
            f'fill="{INK["note"]}">{escape(note)}</text>'
        )
    return "\n".join(parts + ["</svg>\n"])


def _svg_arrow(arrow: Arrow) -> str:
    (x0, y0), rest = arrow.curve[0], arrow.curve[1:]
    d = f"M{x0:.1f},{y0:.1f} " + " ".join(
        "C" + " ".join(f"{px:.1f},{py:.1f}" for px, py in rest[i : i + 3]) for i in range(0, len(rest), 3)
    )
    tip_x, tip_y = arrow.curve[-1][0], arrow.curve[-1][1] + ARROW
    head = f"{tip_x:.1f},{tip_y:.1f} {tip_x - 4:.1f},{tip_y - ARROW:.1f} {tip_x + 4:.1f},{tip_y - ARROW:.1f}"
    argument = "" if arrow.argument is None else f' data-argument="{arrow.argument}"'
    label = (
        ""
        if arrow.argument is None
        else f'<text class="arg" x="{tip_x + 4:.1f}" y="{tip_y - 9:.1f}" font-size="{SMALL_FONT}" '
        f'fill="{INK["arg"]}">{arrow.argument}</text>'
    )
    return (
        f'<g class="edge" data-source="{arrow.source}" data-target="{arrow.target}"{argument}>'
        f'<path d="{d}" fill="none" stroke="{EDGE_INK}" stroke-width="1.2"/>'
        f'<polygon points="{head}" fill="{EDGE_INK}"/>{label}</g>'
    )


def _svg_box(box: Box) -> str:
    left, top = box.x - box.width / 2, box.y - box.height / 2
    classes = f"node {box.kind}" + (" root" if box.root else "")
    parts = [
        f'<g class="{classes}" data-key="{escape(box.key)}"><title>{escape(box.tooltip)}</title>',
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="5" '
        f'fill="{FILL[box.kind]}" stroke="{STROKE[box.kind]}" stroke-width="{2.4 if box.root else 1.2}"/>',
    ]
    for row, line in enumerate(box.lines):
        for span in line:
            anchor = ' text-anchor="end"' if span.right else ""
            weight = ' font-weight="bold"' if span.style == "title" else ""
            parts.append(
                f'<text class="{span.style}" x="{_text_x(box, span):.1f}" y="{_baseline(box, row):.1f}"{anchor}'
                f'{weight} fill="{INK[span.style]}">{escape(span.text)}</text>'
            )
    return "".join(parts) + "</g>"


def _png(drawing: Drawing, path: Path, scale: float) -> Path:
    """The drawing as a PNG through matplotlib's Agg renderer, 1 SVG pixel = 1 point at
    72 dpi times ``scale``, in the coordinates of the SVG (y pointing down)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"saving a drawing as PNG needs matplotlib, {install_hint('train')} (or save as .svg, which needs nothing)"
        ) from error
    figure = Figure(figsize=(drawing.width / 72, drawing.height / 72), dpi=72 * scale)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, drawing.width)
    ax.set_ylim(drawing.height, 0)
    ax.axis("off")
    for arrow in drawing.arrows:
        _png_arrow(ax, arrow)
    for box in drawing.boxes:
        _png_box(ax, box)
    top = drawing.height - MARGIN / 2 - len(drawing.notes) * LINE + SMALL_FONT
    for i, note in enumerate(drawing.notes):
        ax.text(MARGIN, top + i * LINE, note, fontsize=SMALL_FONT, family="monospace", color=INK["note"], va="baseline")
    return write_atomically(path, lambda file: figure.savefig(file, format="png", facecolor="white"))


def _png_arrow(ax: Any, arrow: Arrow) -> None:
    from matplotlib.patches import PathPatch, Polygon
    from matplotlib.path import Path as Curve

    codes = [Curve.MOVETO] + [Curve.CURVE4] * (len(arrow.curve) - 1)
    ax.add_patch(PathPatch(Curve(arrow.curve, codes), fill=False, edgecolor=EDGE_INK, linewidth=1.2))
    tip_x, tip_y = arrow.curve[-1][0], arrow.curve[-1][1] + ARROW
    head = [(tip_x, tip_y), (tip_x - 4, tip_y - ARROW), (tip_x + 4, tip_y - ARROW)]
    ax.add_patch(Polygon(head, closed=True, facecolor=EDGE_INK, edgecolor="none"))
    if arrow.argument is not None:
        ax.text(tip_x + 4, tip_y - 9, str(arrow.argument), fontsize=SMALL_FONT, family="monospace", color=INK["arg"])


def _png_box(ax: Any, box: Box) -> None:
    from matplotlib.patches import FancyBboxPatch

    left, top = box.x - box.width / 2, box.y - box.height / 2
    ax.add_patch(
        FancyBboxPatch(
            (left, top),
            box.width,
            box.height,
            boxstyle="round,pad=0,rounding_size=5",
            facecolor=FILL[box.kind],
            edgecolor=STROKE[box.kind],
            linewidth=2.4 if box.root else 1.2,
        )
    )
    for row, line in enumerate(box.lines):
        for span in line:
            ax.text(
                _text_x(box, span),
                _baseline(box, row),
                span.text,
                fontsize=FONT,
                family="monospace",
                weight="bold" if span.style == "title" else "normal",
                color=INK[span.style],
                ha="right" if span.right else "left",
                va="baseline",
            )
