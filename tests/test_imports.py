"""The import graph of src/dp: the data loop runs downward through the rooms of the package
and never climbs back (DESIGN.md). Imports are read from the source with `ast`, at module
level and inside functions alike: an import deferred into a function is still a
dependency, and a cycle through one is still a knot.

Modules are named by their dotted path inside dp ("node", "nn.module", "tools.checkpoint");
a package is named by its folder ("nn"), and the top-level package is "dp"."""

import ast
from pathlib import Path

import pytest

import dp

SOURCE = Path(dp.__file__).resolve().parent


def _name(path):
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "dp"


MODULES = {_name(path): path for path in sorted(SOURCE.rglob("*.py"))}

# The rooms, lowest first: a module may import from its own room and the rooms below it.
ROOMS = {
    "engine": ("ops", "node", "checks", "finite_differences"),
    "nn": ("nn",),
    "optim": ("optim",),
    "train": ("train", "data"),
    "tools": ("tools",),
    "studies": ("studies",),
    "cli": ("cli", "__main__"),
}
RANK = {room: rank for rank, room in enumerate(ROOMS)}


def room(module):
    """The room of a module: the first part of its dotted name, looked up in `ROOMS`."""
    head = module.split(".")[0]
    return next(name for name, members in ROOMS.items() if head in members)


def imported_modules(name):
    """The modules of dp that module ``name`` imports (``"dp"`` for the top-level package)."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found = set()
    for node in _walk_at_run_time(tree):
        if isinstance(node, ast.Import):
            found.update(_module(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:  # from dp.nn import losses: the module dp.nn.losses, or a name of dp.nn
                found.add(_module(f"{node.module}.{alias.name}") or _module(node.module))
    found.discard(None)
    return found - {name}


def _walk_at_run_time(tree):
    """The nodes of ``tree`` outside ``if TYPE_CHECKING:`` blocks (imports for type hints
    only, which never run: how a layer names the model class it is handed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def test_imports_for_type_hints_only_are_not_dependencies():
    assert "nn.module" not in GRAPH["nn.linear"]
    assert "nn.module" in ast.unparse(ast.parse(MODULES["nn.linear"].read_text()))


def _module(dotted):
    """The longest module of dp that an import of ``dotted`` names, or None outside dp."""
    parts = dotted.split(".")
    if parts[0] != "dp":
        return None
    for end in range(len(parts), 1, -1):
        candidate = ".".join(parts[1:end])
        if candidate in MODULES:
            return candidate
    return "dp" if len(parts) == 1 or dotted != "dp" else None


GRAPH = {name: imported_modules(name) for name in MODULES}
PACKAGE_INITS = {"dp", "nn", "cli", "tools", "studies"}  # a package imports its own modules


def find_cycle(graph):
    """A cycle of ``graph`` (``{node: successors}``) as a list of nodes, first repeated at
    the end, or None. Depth first, with an explicit stack."""
    state = {}  # node -> "open" while on the current path, "done" after
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [], [(root, iter(sorted(graph[root])))]
        state[root] = "open"
        path.append(root)
        while stack:
            node, successors = stack[-1]
            successor = next(successors, None)
            if successor is None:
                stack.pop()
                path.pop()
                state[node] = "done"
            elif state.get(successor) == "open":
                return path[path.index(successor) :] + [successor]
            elif successor not in state:
                state[successor] = "open"
                path.append(successor)
                stack.append((successor, iter(sorted(graph[successor]))))
    return None


def test_the_import_parser_sees_module_and_function_level_imports():
    assert "studies.reference" in GRAPH["cli.command"]  # at module level
    assert "tools.plots" in GRAPH["cli.command"] and "cli.experiment" in GRAPH["cli.command"]  # inside functions
    assert "dp" in GRAPH["cli.command"]  # import dp: the clock dp train reads
    assert "nn.module" in GRAPH["train"]
    assert "nn.losses" in GRAPH["nn.module"]  # from dp.nn import losses: the module


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_modules_of_dp_import_each_other_without_a_cycle():
    graph = {name: GRAPH[name] - PACKAGE_INITS for name in MODULES if name not in PACKAGE_INITS}
    assert find_cycle(graph) is None


def test_every_module_has_a_room():
    assert {room(name) for name in MODULES if name != "dp"} == set(ROOMS)


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"dp"}))
def test_no_module_imports_a_room_above_its_own(name):
    above = {other for other in GRAPH[name] - {"dp"} if RANK[room(other)] > RANK[room(name)]}
    assert not above, f"{name} ({room(name)}) imports {sorted(above)} from a room above it"


def test_the_engine_imports_nothing_above_it():
    """node.py needs only the primitive table, and the table only NumPy."""
    assert GRAPH["ops"] == set()
    assert GRAPH["node"] == {"ops"}


def test_the_layers_never_import_the_model_base_class():
    """The base class's builders import the layers; the layers are handed the model."""
    for layer in ("nn.linear", "nn.conv", "nn.normalization", "nn.fused", "nn.dropout", "nn.inputs", "nn.activations"):
        assert not GRAPH[layer] & {"nn.module", "nn.models", "nn"}, layer


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"cli", "cli.command", "__main__", "dp"}))
def test_no_module_imports_the_command_back(name):
    assert not {other for other in GRAPH[name] if room(other) == "cli"} or room(name) == "cli"


def test_figures_train_nothing_and_the_training_loop_knows_no_command():
    assert not GRAPH["tools.plots"] & {"train", "studies.reference", "optim", "data", "cli"}
    assert not {m for m in GRAPH["train"] if room(m) in ("tools", "studies", "cli")}
    assert not GRAPH["train"] & {"nn.models", "data"}


def test_argparse_lives_only_in_the_command():
    outside = [name for name, path in MODULES.items() if "import argparse" in path.read_text() and room(name) != "cli"]
    assert outside == []


def test_import_dp_loads_what_training_needs_and_no_tool_study_or_command():
    import subprocess
    import sys

    code = "import sys, dp; print(' '.join(sorted(m for m in sys.modules if m == 'dp' or m.startswith('dp.'))))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(run.stdout.split())
    assert {"dp.node", "dp.ops", "dp.nn.models", "dp.nn.normalization", "dp.optim", "dp.train", "dp.data"} <= loaded
    assert not {m for m in loaded if m.split(".")[1:2] in (["tools"], ["studies"], ["cli"])}
