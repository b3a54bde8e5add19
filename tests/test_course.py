"""The course's notebooks, each built by notebooks/build.py from notebooks/source/NAME.py into
an exercise (NAME.ipynb) and its solutions (NAME_solutions.ipynb).

For every source: the committed notebooks are what the source builds; the solutions run
from top to bottom in under a minute, every check passing; the untouched exercise stops
at its first check (every cell before it runs, none after), with a message that names the
task; and the two files differ only where the builder says they may.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

from test_notebooks import cells_with_errors, code_cells, execute, read, tagged, uses_only_public_api

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted((NOTEBOOKS / "source").glob("*.py"))
SECONDS = 60  # what a student waits for a notebook, and what CI gives each


def builder():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = builder()
by_name = pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)


def test_there_is_a_course():
    assert len(SOURCES) >= 1


@by_name
def test_committed_notebooks_are_built_from_their_source(source):
    for path, text in build.built(source).items():
        assert path.exists(), f"{path.name} is missing: run python notebooks/build.py"
        assert path.read_text(encoding="utf-8") == text, f"{path.name} differs from {source.name}: run build.py"


@by_name
def test_solutions_run_to_the_end_in_under_a_minute(source, tmp_path, monkeypatch):
    nb = read(build.targets(source)["solutions"])
    start = time.perf_counter()
    execute(nb, tmp_path, monkeypatch)
    seconds = time.perf_counter() - start
    assert cells_with_errors(nb) == []
    printed = "".join(o.get("text", "") for i in tagged(nb, "check") for o in nb.cells[i].outputs)
    for task in range(1, len(tagged(nb, "solution")) + 1):
        assert f"Task {task} passed" in printed, f"the check of Task {task} should print 'Task {task} passed'"
    assert seconds < SECONDS, f"{source.stem}: {seconds:.0f} s; students and CI expect under a minute"


@by_name
def test_untouched_exercise_stops_at_its_first_check(source, tmp_path, monkeypatch):
    nb = read(build.targets(source)["exercise"])
    first_check = tagged(nb, "check")[0]
    with pytest.raises(CellExecutionError) as raised:
        execute(nb, tmp_path, monkeypatch)
    assert "Task 1" in raised.value.evalue, "the message names the task and says what to write"
    assert cells_with_errors(nb) == [first_check]
    ran = [i for i in code_cells(nb) if nb.cells[i].execution_count is not None]
    assert ran == [i for i in code_cells(nb) if i <= first_check], "every cell up to the first check ran, none after"


@by_name
def test_exercise_and_solutions_differ_only_in_tasks_and_answers(source):
    exercise, solutions = (read(path) for path in build.targets(source).values())
    assert tagged(exercise, "solution") == [] and tagged(solutions, "stub") == []
    stubs, answers = tagged(exercise, "stub"), tagged(solutions, "solution")
    assert len(stubs) == len(answers) == len(tagged(exercise, "check")) >= 1
    for task, (stub, check) in enumerate(zip(stubs, tagged(exercise, "check")), start=1):
        assert stub < check and f"Task {task}" in exercise.cells[stub].source
        assert "NotImplementedError" in exercise.cells[stub].source
        assert exercise.cells[check].source.startswith(f"# Check for Task {task}")
    assert [c.source for c in exercise.cells if "check" in c.metadata.get("tags", [])] == [
        c.source for c in solutions.cells if "check" in c.metadata.get("tags", [])
    ]
    for nb in (exercise, solutions):
        assert all(c.source.strip() for c in nb.cells), "no empty cells"


@by_name
def test_notebooks_use_only_dps_public_api(source):
    for path in build.targets(source).values():
        uses_only_public_api(path)


def test_the_builder_reads_cells_tags_markdown_and_magics():
    source = '# %% [markdown]\n# # Title\n#\n# text\n\n# %% tags=["stub"]\n# %matplotlib inline\nx = 1  # %d\n'
    cells = build.parse(source)
    assert cells == [
        {"markdown": True, "tags": [], "source": "# Title\n\ntext"},
        {"markdown": False, "tags": ["stub"], "source": "%matplotlib inline\nx = 1  # %d"},
    ]
    exercise, solutions = (build.notebook(cells, version, "n") for version in ("exercise", "solutions"))
    assert [c.source for c in exercise.cells] == ["# Title\n\ntext", "%matplotlib inline\nx = 1  # %d"]
    assert [c.source for c in solutions.cells] == ["# Title\n\ntext"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("x = 1\n# %%\n", "line 1: text before the first"),
        ("# %% [markdown]\nnot commented\n", "must start with"),
        ('# %%\na = 1\n# %%  tags=["solution"]\nanswer = 42\n', "line 3: a malformed cell marker"),
        ("# %% Title\nx = 1\n", "line 1: a malformed cell marker"),
        ('# %% tags=["Solution"]\nx = 1\n', "line 1: tags ['Solution']: use the tags"),
        ('# %% tags=["stub", "solution"]\nx = 1\n', "stub and solution on separate cells"),
        ('# %% tags=["answer"]\nx = 42\n', "answer on Markdown cells only"),
        ("# %% tags=['stub']\nx = 1\n", "line 1: tags must be a JSON list"),
    ],
    ids=[
        "text first",
        "markdown",
        "two spaces",
        "a title",
        "a tag's case",
        "stub and solution",
        "code answer",
        "quotes",
    ],
)
def test_the_builder_refuses_what_it_would_otherwise_misread(text, says):
    # Each of these, guessed at, could put a solution into the student's notebook or break it.
    with pytest.raises(ValueError, match=re.escape(says)):
        build.parse(text)


def test_a_comment_that_only_looks_like_a_magic_stays_a_comment():
    (cell,) = build.parse("# %%\n# %d is the old format\nx = 1\n")
    assert cell["source"] == "# %d is the old format\nx = 1"


def test_the_course_page_lists_every_notebook_in_order_with_its_solutions():
    page = (NOTEBOOKS.parent / "docs" / "course.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ") and "../notebooks/" in line]
    named = [re.search(r"\[(\w+)\]\(\.\./notebooks/(\w+)\.ipynb\)", row).groups() for row in rows]
    assert [stem for stem, _ in named] == [source.stem for source in SOURCES], "one row per notebook, in order"
    for row, source in zip(rows, SOURCES):
        assert f"(../notebooks/{source.stem}_solutions.ipynb)" in row
        assert row.startswith(f"| {int(source.stem[:2])} |")
    weeks = page.split("## A four-week module")[1]
    assert all(source.stem in weeks for source in SOURCES), "every notebook has its week"
