"""A student's typical mistakes, put into a course notebook's exercise, and the messages its
checks give for them (the pattern of tests/test_notebooks.py's ``run_exercises`` and
``mistaken``, for the notebooks built from notebooks/source/).

Each mistake is a task's solution with one piece of code changed. Rather than one kernel per
mistake (the cells before a late task retrain their networks every time, on a machine that
CI shares), every mistake of a notebook runs in one kernel: the exercise with every task
solved, and, right before a task's solution, each of that task's mistakes followed by a copy
of the task's check. A mistake then meets exactly what the student's would (the tasks before
it solved, the cells before it run), and the solution that follows restores what the mistake
defined, so the next check tests the right code again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from test_notebooks import execute, read, tagged

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@dataclass(frozen=True)
class Mistake:
    """The solution of ``task`` with the code ``right`` replaced by ``wrong``; for ``right=None``,
    ``wrong`` is the whole cell (a solution written another way)."""

    task: int
    right: str | None
    wrong: str


def solutions_of(name: str) -> list[str]:
    """The code of each task's solution in ``NAME_solutions.ipynb``, Task 1 first."""
    nb = read(NOTEBOOKS / f"{name}_solutions.ipynb")
    return [nb.cells[i].source for i in tagged(nb, "solution")]


def mistaken_code(solutions: list[str], mistake: Mistake) -> str:
    code = solutions[mistake.task - 1]
    if mistake.right is None:
        return mistake.wrong
    assert mistake.right in code, f"the solution of Task {mistake.task} no longer has {mistake.right!r}"
    return code.replace(mistake.right, mistake.wrong)


def with_mistakes(name: str, mistakes: dict[str, Mistake]) -> tuple[nbformat.NotebookNode, dict[str, int]]:
    """The exercise ``NAME.ipynb`` with every task solved and each mistake, followed by a copy
    of its task's check, right before that task's solution; cut after the check of the last
    task that has a mistake. Returns the notebook and {mistake: the index of its check cell}."""
    exercise, solutions = read(NOTEBOOKS / f"{name}.ipynb"), solutions_of(name)
    stubs, checks = tagged(exercise, "stub"), tagged(exercise, "check")
    last = checks[max(m.task for m in mistakes.values()) - 1]
    cells, where = [], {}
    for index, cell in enumerate(exercise.cells[: last + 1]):
        if index in stubs:
            task = stubs.index(index) + 1
            for key, mistake in mistakes.items():
                if mistake.task == task:
                    cells.append(v4.new_code_cell(mistaken_code(solutions, mistake)))
                    where[key] = len(cells)
                    cells.append(v4.new_code_cell(exercise.cells[checks[task - 1]].source))
            cell = v4.new_code_cell(solutions[task - 1], metadata=cell.metadata)
        cells.append(cell)
    exercise.cells = cells
    return exercise, where


def run_mistakes(name: str, mistakes: dict[str, Mistake], tmp_path: Path) -> dict[str, str | None]:
    """Run `with_mistakes` in one kernel; return {mistake: the error its check raised, as
    "ename: evalue", or None}. The checks of the solutions must pass, each printing "Task N passed"."""
    nb, where = with_mistakes(name, mistakes)
    with pytest.MonkeyPatch.context() as monkeypatch:
        execute(nb, tmp_path, monkeypatch, allow_errors=True)
    for i in tagged(nb, "check"):
        errors = [f"{o.ename}: {o.evalue}" for o in nb.cells[i].outputs if o.output_type == "error"]
        assert not errors, f"the check after the solution failed once the mistakes had run: {errors}"
    printed = "".join(o.get("text", "") for i in tagged(nb, "check") for o in nb.cells[i].outputs)
    for task in range(1, len(tagged(nb, "check")) + 1):
        assert f"Task {task} passed" in printed, f"the check of Task {task} did not pass once the mistakes had run"
    return {key: error_of(nb.cells[i]) for key, i in where.items()}


def error_of(cell: nbformat.NotebookNode) -> str | None:
    errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
    return errors[0] if errors else None
