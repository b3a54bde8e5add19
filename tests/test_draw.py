"""dp.draw: the drawing of a graph shows exactly its nodes, labels and edges, saves as SVG
and PNG, collapses layers on request, refuses what it cannot draw, and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import dp
from dp.tools.draw import LIMIT

SVG = "{http://www.w3.org/2000/svg}"
DOCS_GRAPH = Path(__file__).resolve().parents[1] / "docs" / "graph.svg"


def parse(svg: str) -> tuple[dict[str, dict], set[tuple[str, str, int | None]]]:
    """The boxes of a drawing by key (title, classes, shape, value and grad texts, rect),
    and its edges as (source title, target title, argument or None)."""
    root = ET.fromstring(svg)
    boxes = {}
    for g in root.iter(f"{SVG}g"):
        if "node" not in g.get("class", "").split():
            continue
        texts = {}
        for t in g.iter(f"{SVG}text"):
            texts.setdefault(t.get("class"), []).append(t.text.strip())
        rect = g.find(f"{SVG}rect")
        boxes[g.get("data-key")] = {
            "title": texts["title"][0],
            "classes": set(g.get("class").split()),
            "shape": texts["shape"][0],
            "value": texts.get("value", []),
            "grad": texts.get("grad", []),
            "ops": " ".join(texts.get("ops", [])),
            "param": texts.get("param", []),
            "rect": tuple(float(rect.get(a)) for a in ("x", "y", "width", "height")),
        }
    edges = set()
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "edge":
            argument = g.get("data-argument")
            edge = (boxes[g.get("data-source")]["title"], boxes[g.get("data-target")]["title"])
            edges.add((*edge, None if argument is None else int(argument)))
    return boxes, edges


def by_title(boxes: dict[str, dict]) -> dict[str, dict]:
    titles = [b["title"] for b in boxes.values()]
    assert len(set(titles)) == len(titles), f"titles repeat: {titles}"
    return {b["title"]: b for b in boxes.values()}


class Net(dp.NeuralNode):
    """The README's network: linear, batch norm, tanh, linear, sigmoid."""

    def __init__(self):
        super().__init__(seed=0)
        self.l1 = self.linear(5, 4, "l1", bias=False)
        self.bn1 = self.batch_norm(4, "bn1")
        self.l2 = self.linear(4, 1, "l2")

    def forward(self, x, train=None):
        return self.l2(self.bn1(self.l1(x), train).tanh()).sigmoid()


class ComposedNet(Net):
    """The same network with the batch norm of the paper's four lines."""

    def forward(self, x, train=None):
        gamma, beta = self.bn1.learned()
        return self.l2(dp.nn.batch_norm_composed(self.l1(x), gamma, beta).tanh()).sigmoid()


def net_loss(model, rows=6):
    rng = np.random.default_rng(1)
    return model.loss(rng.normal(size=(rows, model.sizes[0] if isinstance(model, dp.MLP) else 5)), np.arange(rows) % 2)


def small_graph():
    a, b = dp.Node(2.0, "a"), dp.Node(-3.0, "b")
    return a * b + a


# ----- what a drawing shows -----


def test_a_small_graph_draws_exactly_its_nodes_labels_values_gradients_and_edges():
    boxes, edges = parse(dp.draw(small_graph(), grads=True).svg)
    shown = {t: (sorted(b["classes"]), b["shape"], b["value"], b["grad"]) for t, b in by_title(boxes).items()}
    assert shown == {
        "a": (["node", "param"], "(1, 1)", ["2"], ["-2"]),  # d(ab + a)/da = b + 1
        "b": (["node", "param"], "(1, 1)", ["-3"], ["2"]),
        "multiply": (["node", "op"], "(1, 1)", ["-6"], ["1"]),
        "add": (["node", "op", "root"], "(1, 1)", ["-4"], ["1"]),
    }
    assert edges == {("a", "multiply", 0), ("b", "multiply", 1), ("multiply", "add", 0), ("a", "add", 1)}


def test_one_argument_operations_have_unlabelled_edges_and_missing_data_is_noted():
    w = dp.Node(np.array([[0.5], [-1.0]]), name="w")
    x = dp.Node(np.array([[1.0, 2.0], [3.0, 4.0]]))  # data: not recorded, not drawn
    svg = dp.draw((x @ w).tanh().sum()).svg
    boxes, edges = parse(svg)
    assert sorted(b["title"] for b in boxes.values()) == ["matmul", "sum", "tanh", "w"]
    assert edges == {("w", "matmul", 1), ("matmul", "tanh", None), ("tanh", "sum", None)}
    assert by_title(boxes)["w"]["value"] == ["0.5", "-1"]  # small: in full, one row a line
    assert all(b["grad"] == [] for b in boxes.values())  # no gradients unless asked for
    assert "Not drawn: data and constants" in svg


def test_large_arrays_are_summarized():
    w = dp.Node(np.arange(70.0).reshape(7, 10), "w")
    boxes, _ = parse(dp.draw(w.sum(), grads=True).svg)
    w_box = by_title(boxes)["w"]
    assert w_box["value"] == ["mean 34.5  std 20.2", "min 0  max 69"]
    assert w_box["grad"] == ["mean 1  std 0", "min 1  max 1"]


def test_a_dict_of_gradients_shows_on_the_parameters_only():
    loss = small_graph()
    boxes = by_title(parse(dp.draw(loss, grads=loss.grad(1)).svg)[0])
    assert (boxes["a"]["grad"], boxes["b"]["grad"]) == (["-2"], ["2"])
    assert boxes["multiply"]["grad"] == boxes["add"]["grad"] == []


def test_the_gradient_of_every_node_is_the_gradient_grad_gives_from_the_bottom():
    x = dp.Node(np.random.default_rng(0).normal(size=(3, 2)), "x")
    mean = x.mean(axis=0)
    loss = ((x - mean) ** 2).sum()
    boxes = by_title(parse(dp.draw(loss, grads=True).svg)[0])
    np.testing.assert_allclose(numbers(boxes["x"]["grad"]), loss.grad(1)["x"], rtol=1e-3)
    np.testing.assert_allclose(numbers(boxes["mean"]["grad"]), 0, atol=1e-12)  # the squares are flat in the mean
    np.testing.assert_allclose(numbers(boxes["power"]["grad"]), 1)


def numbers(lines: list[str]) -> np.ndarray:
    return np.array([[float(v) for v in line.split()] for line in lines])


def test_a_leaf_alone_is_one_box():
    boxes, edges = parse(dp.draw(dp.Node(3.0), grads=True).svg)
    assert [(b["title"], b["value"], b["grad"]) for b in boxes.values()] == [("leaf", ["3"], ["1"])]
    assert edges == set()


def test_boxes_do_not_overlap_and_stay_inside_the_picture():
    drawing = dp.draw(net_loss(ComposedNet()), grads=True)
    root = ET.fromstring(drawing.svg)
    width, height = float(root.get("width")), float(root.get("height"))
    rects = [b["rect"] for b in parse(drawing.svg)[0].values()]
    for x, y, w, h in rects:
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    for i, (x1, y1, w1, h1) in enumerate(rects):
        for x2, y2, w2, h2 in rects[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


# ----- layers -----


def test_grouping_collapses_each_layer_and_expand_opens_one():
    loss = net_loss(Net())
    drawing = dp.draw(loss, grads=True, group=True)
    assert drawing.groups == ("l1", "bn1", "l2")
    boxes, edges = parse(drawing.svg)
    titles = by_title(boxes)
    assert set(titles) == {"l1", "bn1", "l2", "sigmoid", "binary_cross_entropy"}
    assert titles["bn1"]["ops"] == "1 op: batch_norm_closed_form"
    assert [p.split()[0] for p in titles["bn1"]["param"]] == ["gamma_bn1", "beta_bn1"]
    assert titles["l2"]["ops"] == "2 ops: tanh linear"  # an activation joins the layer that uses it
    assert edges == {
        ("l1", "bn1", None),
        ("bn1", "l2", None),
        ("l2", "sigmoid", None),
        ("sigmoid", "binary_cross_entropy", None),
    }

    opened = by_title(parse(dp.draw(loss, group=True, expand="bn1").svg)[0])
    assert set(opened) == {
        "l1",
        "batch_norm_closed_form",
        "gamma_bn1",
        "beta_bn1",
        "l2",
        "sigmoid",
        "binary_cross_entropy",
    }


def test_the_steps_of_a_composed_batch_norm_join_its_layer():
    titles = by_title(parse(dp.draw(net_loss(ComposedNet()), group=True).svg)[0])
    assert titles["bn1"]["ops"].replace("\n", " ") == (
        "10 ops: mean subtract power mean add sqrt subtract divide multiply add"  # x - mean, twice
    )


def test_each_layer_of_the_mlp_is_one_box_with_its_parameters():
    """The MLP is made of the seed-style layers, so it draws as a seed-style network does."""
    titles = by_title(parse(dp.draw(net_loss(dp.MLP(seed=0)), grads=True, group=True).svg)[0])
    assert set(titles) == {"l1", "bn1", "l2", "bn2", "l3", "binary_cross_entropy_with_logits"}
    assert [p.split()[0] for p in titles["l1"]["param"]] == ["weight_l1"]
    assert [p.split()[0] for p in titles["bn1"]["param"]] == ["gamma_bn1", "beta_bn1"]


def test_a_layer_function_may_name_the_layers():
    a, b = dp.Node(1.0, "first.w"), dp.Node(2.0, "second.w")
    drawing = dp.draw((a * 3).tanh() * b, group=lambda name: name.split(".")[0])
    assert drawing.groups == ("first", "second")


def test_a_layer_used_on_both_sides_of_another_must_be_expanded():
    w, gamma = dp.Node(np.ones((2, 2)), "weight_l1"), dp.Node(np.ones((1, 2)), "gamma_bn1")
    loss = (((dp.Node(np.ones((3, 2))) @ w) * gamma) @ w).sum()
    with pytest.raises(ValueError, match="cycle.*expand"):
        dp.draw(loss, group=True)
    assert dp.draw(loss, group=True, expand=["l1"]).groups == ("l1", "bn1")


# ----- files and Jupyter -----


def test_save_writes_the_svg_and_jupyter_shows_it(tmp_path):
    drawing = dp.draw(small_graph(), grads=True)
    assert drawing._repr_svg_() == drawing.svg
    assert drawing.svg.startswith("<svg xmlns=")
    path = drawing.save(tmp_path / "graph.svg")
    assert path.read_text(encoding="utf-8") == drawing.svg
    assert "4 boxes, 4 arrows" in repr(drawing)


def test_png_is_a_valid_image_of_the_drawings_size(tmp_path):
    import matplotlib.image

    drawing = dp.draw(net_loss(Net()), grads=True)
    path = drawing.save(tmp_path / "graph.PNG", scale=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (2 * drawing.height, 2 * drawing.width)
    assert pixels.min() < 0.5 < pixels.max()  # something is drawn on the white background


def test_png_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r'pip install "\.\[train\]"'):
        dp.draw(small_graph()).save(tmp_path / "graph.png")
    dp.draw(small_graph()).save(tmp_path / "graph.svg")  # SVG needs nothing


def test_import_dp_does_not_import_matplotlib_and_dp_draw_stays_the_function():
    code = "import sys, dp, dp.tools.draw; assert 'matplotlib' not in sys.modules; assert callable(dp.draw)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readmes_drawing_is_up_to_date():
    w = dp.Node(np.array([[0.5], [-1.0]]), name="w")  # the README's first example
    x = dp.Node(np.array([[1.0, 2.0], [3.0, 4.0]]))
    loss = (x @ w).tanh().sum()
    assert DOCS_GRAPH.read_text(encoding="utf-8") == dp.draw(loss, grads=True).svg, (
        "docs/graph.svg is out of date: regenerate it with the README's example"
    )


# ----- drawing changes nothing -----


@pytest.mark.parametrize("make", [Net, ComposedNet, lambda: dp.MLP(seed=0)], ids=["net", "composed", "mlp"])
def test_drawing_changes_nothing_in_the_graph(make, tmp_path):
    loss = net_loss(make())
    order = dp.node.topological_order(loss)
    values = [n.value.copy() for n in order]
    before = loss.grad(1)
    for options in (dict(grads=True), dict(grads=before), dict(grads=True, group=True)):
        dp.draw(loss, **options).save(tmp_path / "graph.png")
    after = loss.grad(1)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    for node, value in zip(order, values):
        np.testing.assert_array_equal(node.value, value)


# ----- bad input -----


@pytest.mark.parametrize("thing", [np.ones((2, 2)), 3.0, None, "loss"])
def test_drawing_something_that_is_not_a_node_is_a_type_error(thing):
    with pytest.raises(TypeError, match="dp.Node"):
        dp.draw(thing)


def test_a_graph_beyond_the_limit_asks_for_grouping():
    h = dp.Node(np.ones((1, 1)), "weight_l1")
    for _ in range(LIMIT):
        h = h.tanh()
    loss = (h * dp.Node(2.0, "scale_l1")).sum()  # 64 nodes, all but the sum in layer l1
    with pytest.raises(ValueError, match=r"64 nodes, more than the 60.*group=True"):
        dp.draw(loss)
    with pytest.raises(ValueError, match="still has 64 boxes.*limit=60"):
        dp.draw(loss, group=True, expand="l1")
    assert [len(dp.draw(loss, group=True).boxes), len(dp.draw(loss, limit=64).boxes)] == [2, 64]


def test_saving_with_an_unknown_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'\.pdf'.*\.svg or \.png"):
        dp.draw(small_graph()).save(tmp_path / "graph.pdf")
    with pytest.raises(ValueError, match="without extension"):
        dp.draw(small_graph()).save(tmp_path / "graph")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(grads="yes"), TypeError, "grads must be"),
        (dict(grads={"a": np.ones((2, 2))}), ValueError, r"grads\['a'\] has shape \(2, 2\)"),
        (dict(group="l1"), TypeError, "group must be"),
        (dict(expand="bn1"), ValueError, "pass group=True"),
        (dict(group=True, expand="bn7"), ValueError, "no layer named 'bn7'"),
        (dict(limit=0), ValueError, "limit must be"),
    ],
)
def test_bad_options_are_refused_clearly(options, error, message):
    with pytest.raises(error, match=message):
        dp.draw(small_graph(), **options)


def interrupted_savefig(self, file, **kwargs):
    """Figure.savefig stopped by Ctrl-C halfway through the file (given as a path or a file)."""
    if isinstance(file, (str, os.PathLike)):
        file = open(file, "wb")  # noqa: SIM115 - left open, as an interrupted writer leaves it
    file.write(b"\x89PNG\r\n\x1a\n half a figure")
    file.flush()
    raise KeyboardInterrupt


def test_a_drawing_interrupted_while_it_is_saved_leaves_the_older_file_and_no_partial_one(tmp_path, monkeypatch):
    drawing = dp.draw((dp.Node([[1.0, 2.0]], name="w") * 3).sum())
    path = drawing.save(tmp_path / "graph.png")
    older = path.read_bytes()
    monkeypatch.setattr("matplotlib.figure.Figure.savefig", interrupted_savefig)
    with pytest.raises(KeyboardInterrupt):
        drawing.save(path)
    assert path.read_bytes() == older and [p.name for p in tmp_path.iterdir()] == [path.name]


# ----- attacks and README habits -----


def test_expand_takes_a_layers_own_name_as_the_readme_writes_it_on_the_mlp():
    loss = net_loss(dp.MLP(seed=0))
    opened = dp.draw(loss, group=True, expand=["bn1"])
    assert opened.groups == ("l1", "bn1", "l2", "bn2", "l3")
    titles = {b["title"] for b in parse(opened.svg)[0].values()}
    assert {"batch_norm_closed_form", "gamma_bn1", "beta_bn1", "l1", "bn2"} <= titles and "bn1" not in titles
    with pytest.raises(ValueError, match="no layer named 'bn9'"):
        dp.draw(loss, group=True, expand=["bn9"])


def test_expand_takes_one_layers_name_for_a_box_that_two_layers_share():
    """A primitive that reads the parameters of two layers is one box, "l1/bn1": either name opens it."""
    w, gamma = dp.Node(np.ones((2, 2)), "weight_l1"), dp.Node(np.ones((1, 2)), "gamma_bn1")
    both = dp.primitive(
        lambda x, w, g: (x @ w * g, lambda d: (None, x.T @ (d * g), (d * (x @ w)).sum(0, keepdims=True)))
    )
    loss = both(dp.Node(np.ones((3, 2))), w, gamma).sum()
    assert dp.draw(loss, group=True).groups == ("l1/bn1",)
    for name in ("bn1", "l1", "l1/bn1"):
        titles = {b["title"] for b in parse(dp.draw(loss, group=True, expand=[name]).svg)[0].values()}
        assert {"weight_l1", "gamma_bn1"} <= titles, name


def test_the_over_the_limit_message_suggests_a_layer_the_graph_has():
    h = dp.Node(np.ones((1, 1)), "weight_l1")
    for _ in range(LIMIT):
        h = h.tanh()
    with pytest.raises(ValueError, match=r"expand=\['l1'\] opens one"):
        dp.draw((h * 2).sum())
    h = dp.Node(np.ones((1, 1)))
    for i in range(LIMIT):
        h = h * dp.Node(1.0, f"w{i}")  # named, but by no layer
    with pytest.raises(ValueError, match=r"group=True \(one box per layer\), or raise"):
        dp.draw(h.sum())


@pytest.mark.parametrize("name", ["a\x00b", "esc\x1b[31m", "page\x0cbreak", "bell\x07", "\ud800", "\uffff"])
def test_names_with_control_characters_give_well_formed_svg(name):
    w = dp.Node([[1.0, -2.0]], name=name)
    svg = dp.draw((w * 3).tanh().sum(), grads=True).svg
    titles = {b["title"] for b in parse(svg)[0].values()}  # parses: well-formed XML
    assert ascii(name)[1:-1] in titles


@pytest.mark.parametrize("shape", [(0, 3), (0, 100), (3, 0)])
def test_an_empty_node_draws_as_empty(shape):
    w = dp.Node(np.zeros(shape), name="w")
    boxes, _ = parse(dp.draw((w * 2).sum(), grads=True).svg)
    assert "(empty)" in by_title(boxes)["w"]["value"]
