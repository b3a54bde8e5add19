"""Helpers for the tests of the course's notebooks, and what every notebook must be.

Each notebook is built by notebooks/build.py from notebooks/source/NAME.py into an exercise,
NAME.ipynb, and its solutions, NAME_solutions.ipynb; tests/test_course.py checks every
source the same way (built, solutions run, the untouched exercise stops at its first check).
A notebook's own tests (tests/test_course_NAME.py) put a student's typical mistakes into
its exercise and check the message, with the helpers here: `run_exercise` runs the
exercise with some tasks answered (`solved`, or `mistaken`: a solution with a mistake put
in), up to a task's check, and `check_error` is the message that check raised.

Cell tags (notebooks/build.py): ``stub`` for a task's cell in the exercise, ``solution`` for
its solved counterpart, ``check`` for the cell that checks it, ``answer`` for our answer to a
question (a blank one in the exercise).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

import dp

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


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


def built(name: str) -> dict[str, Path]:
    """The two notebooks built from notebooks/source/``name``.py: {"exercise": path, "solutions": path}."""
    return {"exercise": NOTEBOOKS / f"{name}.ipynb", "solutions": NOTEBOOKS / f"{name}_solutions.ipynb"}


def solution(name: str, task: int) -> str:
    """The code of the solution of ``task`` (from 1) in notebook ``name``'s solutions."""
    solutions = read(built(name)["solutions"])
    return solutions.cells[tagged(solutions, "solution")[task - 1]].source


def solved(name: str, *tasks: int) -> dict[int, str]:
    """{task: its solution}, for `run_exercise`."""
    return {task: solution(name, task) for task in tasks}


def mistaken(name: str, task: int, right: str, wrong: str) -> str:
    """The solution of ``task`` with its code ``right`` replaced by ``wrong``: a student's mistake."""
    code = solution(name, task)
    assert right in code, f"the solution of Task {task} of {name} no longer has {right!r}"
    return code.replace(right, wrong)


def run_exercise(
    name: str, answers: dict[int, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through_task: int
) -> nbformat.NotebookNode:
    """Notebook ``name``'s exercise with ``answers`` ({task: code}) in place of those tasks'
    stubs (the other stubs stay), run up to the check of ``through_task``, errors allowed."""
    nb = read(built(name)["exercise"])
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


def printed(nb: nbformat.NotebookNode, cells: list[int] | None = None) -> str:
    """The text the executed notebook's code cells (or only ``cells``) printed, all of it."""
    chosen = code_cells(nb) if cells is None else cells
    return "".join(o.get("text", "") for i in chosen for o in nb.cells[i].get("outputs", []))


def check_outputs(nb: nbformat.NotebookNode) -> str:
    """The text the executed notebook's check cells printed, all of it."""
    return printed(nb, tagged(nb, "check"))


def shown_images(nb: nbformat.NotebookNode) -> list:
    """The PNG outputs of the executed notebook's code cells."""
    return [o for i in code_cells(nb) for o in nb.cells[i].outputs if "image/png" in o.get("data", {})]


def answer_to(nb: nbformat.NotebookNode, number: int) -> str:
    """Our answer to Question ``number`` in the solutions ``nb``: the cell after the question."""
    asked = [i for i, c in enumerate(nb.cells) if c.source.startswith(f"**Question {number}.**")]
    assert asked, f"no Question {number}"
    return nb.cells[asked[0] + 1].source


def assert_questions_are_answered(name: str, at_least: int) -> None:
    """Notebook ``name`` asks at least ``at_least`` questions, numbered from 1, each followed by an
    ``answer`` cell: ours in the solutions, a blank one in the exercise."""
    for version, path in built(name).items():
        nb = read(path)
        starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("**Question ")]
        assert len(starts) >= at_least
        for number, i in enumerate(starts, start=1):
            assert nb.cells[i].source.startswith(f"**Question {number}.**")
            assert "answer" in nb.cells[i + 1].metadata.get("tags", []), f"{path.name}: Question {number} has no answer"
            blank = nb.cells[i + 1].source == "*Your answer:*"
            assert blank == (version == "exercise"), f"{path.name}: Question {number}'s answer"


def assert_tasks_are_well_formed(name: str) -> None:
    """Each stub of notebook ``name`` says what to do (# TODO) and raises NotImplementedError("Task N: ..."),
    its solution defines what the stub defines, and the solutions never raise NotImplementedError."""
    exercise, solutions = (read(path) for path in built(name).values())
    stubs, answers = tagged(exercise, "stub"), tagged(solutions, "solution")
    for task, (stub, answer) in enumerate(zip(stubs, answers), start=1):
        stub_code, answer_code = exercise.cells[stub].source, solutions.cells[answer].source
        assert "# TODO" in stub_code and f'raise NotImplementedError("Task {task}: ' in stub_code
        defined = re.findall(r"^(?:def|class) (\w+)", stub_code, flags=re.MULTILINE)
        assert defined and defined == re.findall(r"^(?:def|class) (\w+)", answer_code, flags=re.MULTILINE)
    assert "NotImplementedError" not in code_of(solutions)


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


# ----- what every notebook of the course must be -----


def test_every_notebook_is_built_from_a_source():
    sources = {path.stem for path in (NOTEBOOKS / "source").glob("*.py")}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        name = path.stem.removesuffix("_solutions")
        assert name in sources, f"{path.name} has no source: write notebooks/source/{name}.py and run build.py"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.stem)
def test_committed_notebooks_are_valid_and_stripped_of_outputs(path):
    nb = read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], "commit notebooks without outputs"
            assert cell.execution_count is None, "commit notebooks without execution counts"
