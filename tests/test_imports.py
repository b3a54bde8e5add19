"""The import graph of src/dp: the data loop runs downward through the modules and never
climbs back (docs: DESIGN.md). Imports are read from the source with `ast`, at module
level and inside functions alike: an import deferred into a function is still a
dependency, and a cycle through one is still a knot."""

import ast
from pathlib import Path

import pytest

import dp

SOURCE = Path(dp.__file__).resolve().parent
MODULES = sorted(path.stem for path in SOURCE.glob("*.py"))


def imported_modules(name):
    """The src/dp modules that module ``name`` imports (``"__init__"`` for the package itself)."""
    tree = ast.parse((SOURCE / f"{name}.py").read_text(), filename=f"{name}.py")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_module(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "dp":  # from dp import plots: the module plots, or a name of the package
                found.update(_module(f"dp.{alias.name}") for alias in node.names)
            else:
                found.add(_module(node.module))
    found.discard(None)
    return found - {name}


def _module(dotted):
    """The src/dp module that an import of ``dotted`` loads, or None outside dp."""
    parts = dotted.split(".")
    if parts[0] != "dp":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1] if parts[1] in MODULES else "__init__"


GRAPH = {name: imported_modules(name) for name in MODULES}


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
    assert "reference" in GRAPH["cli"]  # at module level
    assert "plots" in GRAPH["cli"] and "experiment" in GRAPH["cli"]  # inside functions
    assert "__init__" in GRAPH["cli"]  # import dp: the clock dp train reads
    assert "layers" in GRAPH["train"]


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_modules_of_dp_import_each_other_without_a_cycle():
    graph = {name: GRAPH[name] - {"__init__"} for name in MODULES}  # the package imports its modules
    assert find_cycle(graph) is None


def test_the_engine_imports_nothing_above_it():
    """node.py needs only the primitive table, and the table only NumPy."""
    assert GRAPH["ops"] == set()
    assert GRAPH["node"] == {"ops"}
    assert not GRAPH["layers"] & {"models", "fused", "train", "optim", "checkpoint", "cli"}


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"cli", "__main__"}))
def test_no_module_imports_the_command_back(name):
    assert "cli" not in GRAPH[name]  # only python -m dp (__main__) runs it


def test_figures_train_nothing_and_the_training_loop_knows_no_command():
    assert not GRAPH["plots"] & {"train", "reference", "optim", "data", "experiment", "cli"}
    assert not GRAPH["train"] & {"reference", "cli", "experiment", "plots", "arguments", "models", "data"}
