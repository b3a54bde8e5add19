"""notebooks/02_backward: each typical mistake, put into the exercise with the tasks before it
solved, makes its task's check fail with a message that names the mistake and says what to
do; and what the notebook's Markdown says about its output holds in the solutions' output.

The helpers at the top serve every course notebook built from notebooks/source/ (the CNN
notebook's tests import them)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from test_notebooks import check_error, execute, read, tagged

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAME = "02_backward"


def solution(name: str, task: int) -> str:
    """The code of ``task``'s solution cell in the notebook ``name``'s solutions."""
    solutions = read(NOTEBOOKS / f"{name}_solutions.ipynb")
    return solutions.cells[tagged(solutions, "solution")[task - 1]].source


def mistaken(name: str, task: int, right: str, wrong: str) -> str:
    """The solution of ``task`` with ``right`` replaced by ``wrong``: a student's mistake."""
    code = solution(name, task)
    assert right in code, f"the solution of Task {task} of {name} no longer has {right!r}"
    return code.replace(right, wrong)


def run_exercise(
    name: str, answers: dict[int, str], through_task: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> nbformat.NotebookNode:
    """The exercise ``name`` with ``answers`` ({task: code}) in place of those tasks' stubs, run up
    to the check of ``through_task``, errors allowed (each recorded in its cell)."""
    nb = read(NOTEBOOKS / f"{name}.ipynb")
    for task, code in answers.items():
        nb.cells[tagged(nb, "stub")[task - 1]].source = code
    nb.cells = nb.cells[: tagged(nb, "check")[through_task - 1] + 1]
    execute(nb, tmp_path, monkeypatch, allow_errors=True)
    return nb


def the_check_says(name: str, task: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The error that the check of ``task`` raises with ``code`` as that task's answer, the tasks
    before it solved; those tasks' checks must pass."""
    answers = {earlier: solution(name, earlier) for earlier in range(1, task)}
    nb = run_exercise(name, {**answers, task: code}, task, tmp_path, monkeypatch)
    assert [check_error(nb, earlier) for earlier in range(1, task)] == [None] * (task - 1)
    error = check_error(nb, task)
    assert error is not None, f"the check of Task {task} let the mistake pass"
    assert error.startswith("AssertionError: "), f"a bare error instead of a check's message: {error}"
    return error


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything the executed notebook's code cells printed."""
    return "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)


def executed_solutions(name: str, tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    nb = read(NOTEBOOKS / f"{name}_solutions.ipynb")
    with pytest.MonkeyPatch.context() as monkeypatch:
        execute(nb, tmp_path_factory.mktemp(name), monkeypatch)
    return nb


# ----- each typical mistake: (task, the solution's code, the mistake, what the message says) -----

DX = "(m * dxhat - sum_dxhat - xhat * sum_dxhat_xhat) / (m * std)"
DGAMMA = "(g * xhat).sum(axis=0, keepdims=True)"
TIMED = "        start = time.perf_counter()\n        batch_norm(*nodes).grad(g)"

MISTAKES = {
    "Task 1, the statistics as constants": (
        1,
        DX,
        "dxhat / std",
        "your dx treats the batch mean and variance as constants",
        "add the paths through them",
    ),
    "Task 1, no path through the mean": (1, DX, "(m * dxhat - xhat * sum_dxhat_xhat) / (m * std)", "through the mean"),
    "Task 1, no path through the variance": (1, DX, "(m * dxhat - sum_dxhat) / (m * std)", "through the variance"),
    "Task 1, dgamma not summed": (1, DGAMMA, "g * xhat", "a row per example", "sum over the batch"),
    "Task 1, dbeta not summed": (1, "dbeta = g.sum(axis=0, keepdims=True)", "dbeta = g", "sum over the batch"),
    "Task 1, dgamma without keepdims": (1, DGAMMA, "(g * xhat).sum(axis=0)", "shape (1, 5)", "keepdims=True"),
    "Task 1, the unbiased variance": (
        1,
        "x.var(axis=0, keepdims=True)",
        "x.var(axis=0, keepdims=True, ddof=1)",
        "unbiased variance (divided by N - 1)",
        "ddof=0",
    ),
    "Task 1, the wrong order": (1, "return dx, dgamma, dbeta", "return dgamma, dbeta, dx", "(dx, dgamma, dbeta)"),
    "Task 1, the value alone": (1, "return y, vjp", "return y", "should return a pair (y, vjp)"),
    "Task 1, no decorator": (1, "@dp.primitive\n", "", "decorate batch_norm_by_hand with @dp.primitive"),
    "Task 2, only the forward pass": (
        2,
        "batch_norm(*nodes).grad(g)",
        "batch_norm(*nodes)",
        "you timed only the forward pass",
        "call .grad(g)",
    ),
    "Task 2, all the runs": (2, "float(np.median(times))", "float(np.sum(times))", "all 10 runs", "the median"),
    "Task 2, only the backward pass": (
        2,
        TIMED,
        "        y = batch_norm(*nodes)\n        start = time.perf_counter()\n        y.grad(g)",
        "time the forward and the backward pass together",
    ),
}


def assert_the_check_says(name: str, mistake: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mistake`` is (task, code of the solution, the mistake in its place, *what the message says):
    the check of that task must fail saying each part."""
    task, right, wrong, *says = mistake
    error = the_check_says(name, task, mistaken(name, task, right, wrong), tmp_path, monkeypatch)
    missing = [part for part in says if part not in error]
    assert not missing, f"the check's message lacks {missing}: {error}"


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_typical_mistake_gets_a_message_saying_what_to_do(mistake, tmp_path, monkeypatch):
    assert_the_check_says(NAME, MISTAKES[mistake], tmp_path, monkeypatch)


# ----- what the Markdown says about the output -----


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return printed(executed_solutions(NAME, tmp_path_factory))


def number(output: str, label: str) -> float:
    found = re.search(re.escape(label) + r"\s+([-+0-9.e]+)", output)
    assert found, f"the solutions no longer print {label!r}"
    return float(found.group(1))


def test_question_3_the_sums_are_zero_up_to_rounding_and_up_to_eps(output):
    # "The first sum is zero up to rounding. The second is far above rounding, yet far below the gradients."
    size = number(output, "largest |dl/dx_i|:")
    plain = number(output, "largest |sum_i dl/dx_i| of a feature:")
    weighted = number(output, "largest |sum_i dl/dx_i * xhat_i| of a feature:")
    assert plain < 1e-12 * size
    assert 1e3 * plain < weighted < 1e-3 * size


def test_question_4_the_composed_graph_has_more_nodes_and_a_higher_peak(output):
    # "... as the node counts show; the primitive makes one" and "that is the composed graph's peak".
    versions = r"^(yours, one primitive|the four lines, through autodiff)"
    rows = dict(re.findall(versions + r"\s+(\d+) nodes", output, re.M))
    peaks = dict(re.findall(versions + r".*peak memory\s+([\d.]+)", output, re.M))
    assert int(rows["yours, one primitive"]) == 4, "the primitive's node and its three inputs"
    assert int(rows["the four lines, through autodiff"]) > 4
    assert float(peaks["the four lines, through autodiff"]) > float(peaks["yours, one primitive"])
