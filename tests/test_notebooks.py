"""The teaching notebooks run against dp: the solutions from top to bottom, the exercises
up to the first task a student must write, and no further.

Cells are tagged (cell metadata ``tags``): ``stub`` for a task's cell that raises
``NotImplementedError`` in the exercises, ``solution`` for its solved counterpart in the
solutions, ``check`` for the cell that checks a task, the same in both notebooks.

``batch_norm_in_practice.ipynb`` is one notebook with the same tags: each task's ``stub``
is followed by its ``solution`` (folded) and then its ``check``. Run whole, it must finish
in under a minute; without its solution cells, it stops at the first check.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

import dp

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXERCISES = NOTEBOOKS / "batch_norm_exercises.ipynb"
SOLUTIONS = NOTEBOOKS / "batch_norm_solutions.ipynb"
TASKS = 4
PRACTICE = NOTEBOOKS / "batch_norm_in_practice.ipynb"
PRACTICE_TASKS = 3
ALL_NOTEBOOKS = [EXERCISES, SOLUTIONS, PRACTICE]


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[int]:
    """Indices of the cells carrying ``tag``."""
    return [i for i, cell in enumerate(nb.cells) if tag in cell.metadata.get("tags", [])]


def code_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def code_of(nb: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def execute(
    nb: nbformat.NotebookNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow_errors: bool = False
) -> None:
    """Run ``nb`` in place, in a fresh kernel working in a new directory under ``tmp_path``:
    up to the first error (raising `CellExecutionError`), or with ``allow_errors`` every
    cell, each error recorded in its cell's outputs.

    The kernel is this very Python (a "python3" kernel spec of our own, found first on
    JUPYTER_PATH), and it inherits this process's environment: putting the directory
    that holds the dp these tests imported first on its PYTHONPATH makes the notebooks'
    ``import dp`` find the same dp, whether it is installed or found through PYTHONPATH.
    """
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    package_parent = str(Path(dp.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    workdir = tmp_path / "work"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()


def cells_with_errors(nb: nbformat.NotebookNode) -> list[int]:
    return [
        i for i, cell in enumerate(nb.cells) if any(output.output_type == "error" for output in cell.get("outputs", []))
    ]


def solution(task: int) -> str:
    """The solutions' code for ``task`` (1 to `TASKS`)."""
    solutions = read(SOLUTIONS)
    return solutions.cells[tagged(solutions, "solution")[task - 1]].source


def mistaken(task: int, right: str, wrong: str) -> str:
    """The solution of ``task`` with its code ``right`` replaced by ``wrong``: a student's mistake."""
    code = solution(task)
    assert right in code, f"the solution of Task {task} no longer has {right!r}"
    return code.replace(right, wrong)


def run_exercises(
    answers: dict[int, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through_task: int = TASKS
) -> nbformat.NotebookNode:
    """The exercises with ``answers`` ({task: code}) in place of those tasks' stubs (the other
    stubs stay), run up to the check of ``through_task`` with errors allowed."""
    nb = read(EXERCISES)
    for task, code in answers.items():
        nb.cells[tagged(nb, "stub")[task - 1]].source = code
    nb.cells = nb.cells[: tagged(nb, "check")[through_task - 1] + 1]
    execute(nb, tmp_path, monkeypatch, allow_errors=True)
    return nb


def check_error(nb: nbformat.NotebookNode, task: int) -> str | None:
    """The error the check of ``task`` raised, "ename: evalue", or None if it raised none."""
    cell = nb.cells[tagged(nb, "check")[task - 1]]
    errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
    return errors[0] if errors else None


def solved(*tasks: int) -> dict[int, str]:
    return {task: solution(task) for task in tasks}


def check_outputs(nb):
    """The text the executed notebook's check cells printed, all of it."""
    return "".join(o.get("text", "") for i in tagged(nb, "check") for o in nb.cells[i].outputs)


def shown_images(nb):
    """The PNG outputs of the executed notebook's code cells."""
    return [o for i in code_cells(nb) for o in nb.cells[i].outputs if "image/png" in o.get("data", {})]


def test_solutions_run_from_top_to_bottom(tmp_path, monkeypatch):
    nb = read(SOLUTIONS)
    execute(nb, tmp_path, monkeypatch)
    assert cells_with_errors(nb) == []
    outputs = check_outputs(nb)
    for task in range(1, TASKS + 1):
        assert f"Task {task} passed" in outputs
    images = shown_images(nb)
    assert len(images) == 1, "the solutions should draw one figure: training with and without batch norm"


def test_exercises_stop_at_the_first_stub(tmp_path, monkeypatch):
    nb = read(EXERCISES)
    with pytest.raises(CellExecutionError) as raised:
        execute(nb, tmp_path, monkeypatch)
    assert raised.value.ename == "NotImplementedError"
    assert "Task 1" in raised.value.evalue
    # The first stub only defines a function; the check right after it calls it and fails.
    first_stub = tagged(nb, "stub")[0]
    first_check = tagged(nb, "check")[0]
    assert first_check == next(i for i in code_cells(nb) if i > first_stub)
    assert cells_with_errors(nb) == [first_check]
    ran = [i for i in code_cells(nb) if nb.cells[i].execution_count is not None]
    assert ran == [i for i in code_cells(nb) if i <= first_check], "every cell up to the first check ran, none after"


def test_exercises_with_the_solutions_filled_in_run_to_the_end(tmp_path, monkeypatch):
    exercises, solutions = read(EXERCISES), read(SOLUTIONS)
    stubs, answers = tagged(exercises, "stub"), tagged(solutions, "solution")
    assert len(stubs) == len(answers) == TASKS
    for stub, answer in zip(stubs, answers):
        exercises.cells[stub].source = solutions.cells[answer].source
    execute(exercises, tmp_path, monkeypatch)
    assert cells_with_errors(exercises) == []


# A student's typical mistakes, each put into the exercises with the tasks before it solved:
# the task's check must fail with a message that says what to do, not a bare Python error.


WITH_NUMPY = "(v - v.mean(axis=0)) / np.sqrt(v.var(axis=0) + eps)"


@pytest.mark.parametrize(
    ("returned", "says"),
    [(f"dp.Node({WITH_NUMPY})", "so that grad can reach b"), (WITH_NUMPY, "should return a dp.Node, not ndarray")],
    ids=["wrapped in a Node", "an array"],
)
def test_task_1_check_says_to_use_node_operations_when_normalize_computes_with_numpy(
    returned, says, tmp_path, monkeypatch
):
    with_numpy = f"def normalize(z, eps=1e-5):\n    v = z.value\n    return {returned}\n"
    nb = run_exercises({1: with_numpy}, tmp_path, monkeypatch, through_task=1)
    error = check_error(nb, 1)
    assert error is not None and error.startswith("AssertionError: ")
    assert "use dp.Node operations" in error and says in error


def test_task_3_check_says_params_holds_arrays_when_the_averages_are_stored_as_nodes(tmp_path, monkeypatch):
    nodes_in_params = mistaken(3, "momentum * mean.value", "momentum * mean")
    nb = run_exercises({**solved(1, 2), 3: nodes_in_params}, tmp_path, monkeypatch, through_task=3)
    assert [check_error(nb, task) for task in (1, 2)] == [None, None]
    error = check_error(nb, 3)
    assert error is not None and error.startswith("AssertionError: ")
    assert "params holds NumPy arrays, not Nodes" in error and "avg_mean_bn1" in error


def test_task_4_check_says_to_solve_task_3_first_when_its_stub_is_left(tmp_path, monkeypatch):
    nb = run_exercises(solved(1, 2, 4), tmp_path, monkeypatch)
    assert check_error(nb, 3) == "NotImplementedError: Task 3: write Net.batch_norm"
    error = check_error(nb, 4)
    assert error is not None and error.startswith("AssertionError: ")
    assert "solve Task 3 first" in error


def test_task_4_check_says_the_averages_never_moved_when_training_in_eval_mode(tmp_path, monkeypatch):
    in_eval_mode = mistaken(4, "net.forward(x[rows])", "net.forward(x[rows], train=False)")
    nb = run_exercises({**solved(1, 2, 3), 4: in_eval_mode}, tmp_path, monkeypatch)
    assert [check_error(nb, task) for task in (1, 2, 3)] == [None, None, None]
    error = check_error(nb, 4)
    assert error is not None and error.startswith("AssertionError: ")
    assert "moving averages never moved" in error and "training mode" in error


def test_task_4_check_says_to_drop_the_incomplete_last_batch(tmp_path, monkeypatch):
    keeping_it = mistaken(4, "range(0, batches * batch_size, batch_size)", "range(0, len(x), batch_size)")
    nb = run_exercises({**solved(1, 2, 3), 4: keeping_it}, tmp_path, monkeypatch)
    assert [check_error(nb, task) for task in (1, 2, 3)] == [None, None, None]
    error = check_error(nb, 4)
    assert error is not None and error.startswith("AssertionError: ")
    assert "batches of [6, 50] rows" in error and "drop the last, incomplete" in error


def test_both_notebooks_have_the_same_checks_each_after_its_task():
    exercises, solutions = read(EXERCISES), read(SOLUTIONS)
    checks = [[nb.cells[i].source for i in tagged(nb, "check")] for nb in (exercises, solutions)]
    assert checks[0] == checks[1]
    assert len(checks[0]) == TASKS
    for nb, task_tag in ((exercises, "stub"), (solutions, "solution")):
        for task, (cell, check) in enumerate(zip(tagged(nb, task_tag), tagged(nb, "check")), start=1):
            assert cell < check
            assert nb.cells[check].source.startswith(f"# Check for Task {task}\n")
    for task, stub in enumerate(tagged(exercises, "stub"), start=1):
        assert f'raise NotImplementedError("Task {task}: ' in exercises.cells[stub].source
        assert "# TODO" in exercises.cells[stub].source
    assert "NotImplementedError" not in code_of(solutions)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_are_valid_and_stripped_of_outputs(path):
    nb = read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], "commit notebooks without outputs"
            assert cell.execution_count is None, "commit notebooks without execution counts"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_only_dps_public_api(path):
    uses_only_public_api(path)


def uses_only_public_api(path: Path) -> None:
    """Assert that the notebook at ``path`` imports and names only dp's public API."""
    source = code_of(read(path))
    imported = re.findall(r"^\s*(?:import|from)\s+(dp[\w.]*)", source, flags=re.MULTILINE)
    assert "dp" in imported
    for module in imported:
        assert module != "dp.node" and not any(part.startswith("_") for part in module.split("."))
    assert re.search(r"\._(?!_)\w", source) is None, "no private attributes (a leading underscore)"
    references = set(re.findall(r"\bdp(?:\.\w+)+", source))
    assert references, "the notebooks use dp"
    for reference in sorted(references):
        parts = reference.split(".")[1:]
        assert parts[0] != "node", f"{reference}: dp.node is internal; use dp.Node"
        assert not any(part.startswith("_") for part in parts), f"{reference} is private"
        resolve(reference)


def test_practice_runs_from_top_to_bottom_in_under_a_minute(tmp_path, monkeypatch):
    nb = read(PRACTICE)
    start = time.perf_counter()
    execute(nb, tmp_path, monkeypatch)
    seconds = time.perf_counter() - start
    assert cells_with_errors(nb) == []
    outputs = check_outputs(nb)
    for task in range(1, PRACTICE_TASKS + 1):
        assert f"Task {task} passed" in outputs
    images = shown_images(nb)
    assert len(images) == 3, "the digits, Figure 1(a) and Figure 1(b, c); the check's test figure is not shown"
    assert seconds < 60, f"the notebook took {seconds:.0f} s; students and CI expect under a minute"


def test_practice_without_its_solutions_stops_at_the_first_check(tmp_path, monkeypatch):
    nb = read(PRACTICE)
    solutions = set(tagged(nb, "solution"))
    nb.cells = [cell for i, cell in enumerate(nb.cells) if i not in solutions]
    with pytest.raises(CellExecutionError) as raised:
        execute(nb, tmp_path, monkeypatch)
    assert raised.value.ename == "NotImplementedError"
    assert "Task 1" in raised.value.evalue
    first_check = tagged(nb, "check")[0]
    assert cells_with_errors(nb) == [first_check]
    ran = [i for i in code_cells(nb) if nb.cells[i].execution_count is not None]
    assert ran == [i for i in code_cells(nb) if i <= first_check], "every cell up to the first check ran, none after"


def test_practice_gives_each_task_a_stub_a_folded_solution_then_a_check():
    nb = read(PRACTICE)
    stubs, solutions, checks = tagged(nb, "stub"), tagged(nb, "solution"), tagged(nb, "check")
    assert len(stubs) == len(solutions) == len(checks) == PRACTICE_TASKS
    code = code_cells(nb)
    for task, (stub, solution, check) in enumerate(zip(stubs, solutions, checks), start=1):
        assert code[code.index(stub) + 1] == solution and code[code.index(solution) + 1] == check
        assert "# TODO" in nb.cells[stub].source
        assert f'raise NotImplementedError("Task {task}: ' in nb.cells[stub].source
        assert nb.cells[solution].source.startswith(f"# Solution to Task {task} ")
        assert nb.cells[solution].metadata.get("jupyter", {}).get("source_hidden") is True, "fold the solutions"
        assert "NotImplementedError" not in nb.cells[solution].source
        assert nb.cells[check].source.startswith(f"# Check for Task {task}\n")
        # The solution defines what the stub defines, under the same name.
        defined = re.findall(r"^def (\w+)", nb.cells[stub].source, flags=re.MULTILINE)
        assert defined and defined == re.findall(r"^def (\w+)", nb.cells[solution].source, flags=re.MULTILINE)


def test_practice_asks_questions_and_folds_its_answers():
    sources = [cell.source for cell in read(PRACTICE).cells if cell.cell_type == "markdown"]
    questions = [i for i, source in enumerate(sources) if source.startswith("**Question ")]
    assert len(questions) >= 3
    for i in questions:
        assert sources[i + 1] == "*Your answer:*"
        assert sources[i + 2].startswith("<details><summary>Our answer")


def resolve(reference: str) -> object:
    """The object that ``reference`` ("dp.a.b") names, importing submodules as ``import dp.a`` would."""
    parts = reference.split(".")
    obj: object = dp
    for i in range(1, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))  # ModuleNotFoundError if there is none
    return obj
