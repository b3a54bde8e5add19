"""Build the course's notebooks, each an exercise and its solutions, from one source.

Every notebook of the course is written once, in ``notebooks/source/NAME.py``, and built
into two files: ``NAME.ipynb``, the exercise a student completes, and
``NAME_solutions.ipynb``. Two files, not one with folded solutions, because "Run All" in
a single notebook would run the solution right after the student's stub and the checks
would test ours. ``tests/test_course.py`` checks that the committed notebooks are
exactly what this script writes, so edit the source and run::

    .venv/bin/python notebooks/build.py          # rebuild every notebook from notebooks/source/
    .venv/bin/python notebooks/build.py --check  # exit 1 if a committed notebook differs from its source

The source is the "percent" format that Jupytext and VS Code read: a line ``# %%`` starts a
code cell, ``# %% [markdown]`` a Markdown cell (each of its lines commented with ``# ``),
and ``tags=["..."]`` after either gives the cell's tags. A Jupyter magic in a code cell is
commented, as Jupytext writes it (``# %matplotlib inline``), and built uncommented.

- ``stub``: a task's cell as the student gets it (the exercise only). It defines what the
  task asks for with a body that raises ``NotImplementedError``, so an untouched exercise
  runs up to its first ``check`` and stops there, with a message saying what to write.
- ``solution``: the same cell solved (the solutions only), right after its stub.
- ``check``: the check of the task above, the same in both files; every message it can
  raise says what to do next.
- ``answer``: a Markdown answer to a question: ours in the solutions, a blank "*Your
  answer:*" in the exercise.
- ``exercise`` or ``solutions``: any other cell that belongs to one file only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"
MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")
# "# %matplotlib inline": a Jupyter magic, commented so the source stays Python (only these, so
# that a comment like "# %d is the old format" stays a comment).
MAGIC = re.compile(r"^# %(matplotlib|timeit|time|load_ext|autoreload|pip|config)\b")
TAGS = {"stub", "solution", "check", "answer", "exercise", "solutions"}
ONLY_IN = {"exercise": {"stub", "exercise"}, "solutions": {"solution", "solutions"}}
BLANK_ANSWER = "*Your answer:*"


def parse(text: str) -> list[dict]:
    """The cells of a percent-format source: each {"markdown": bool, "tags": [...], "source": str}."""
    cells: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# %%"):
            cells.append(_cell(line, number))
        elif cells:
            cells[-1]["lines"].append(line)
        elif line.strip():
            raise ValueError(f"line {number}: text before the first '# %%' cell marker: {line!r}")
    return [_finished(cell) for cell in cells]


def _cell(line: str, number: int) -> dict:
    """A new cell from its marker ``line`` (line ``number`` of the source); a marker this
    builder does not read, or tags it does not know, are refused rather than guessed: a
    misread marker would put a solution into the student's notebook."""
    marker = MARKER.match(line)
    if not marker:
        raise ValueError(
            f'line {number}: a malformed cell marker {line!r}: write "# %%", "# %% [markdown]", then tags=[...]'
        )
    try:
        tags = json.loads(marker["tags"]) if marker["tags"] else []
    except json.JSONDecodeError:
        raise ValueError(f'line {number}: tags must be a JSON list of strings, as tags=["stub"]: {line!r}') from None
    unknown = set(tags) - TAGS
    if unknown or {"stub", "solution"} <= set(tags) or ("answer" in tags and not marker["markdown"]):
        raise ValueError(
            f"line {number}: tags {tags}: use the tags {sorted(TAGS)}, stub and solution on separate cells, "
            "and answer on Markdown cells only"
        )
    return {"markdown": bool(marker["markdown"]), "tags": tags, "lines": []}


def _finished(cell: dict) -> dict:
    lines = cell.pop("lines")
    if cell["markdown"]:
        lines = [_uncommented(line) for line in lines]
    else:
        lines = [line[2:] if MAGIC.match(line) else line for line in lines]
    cell["source"] = "\n".join(lines).strip("\n")
    return cell


def _uncommented(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    if line.strip() in ("", "#"):
        return ""
    raise ValueError(f"a Markdown line must start with '# ': {line!r}")


def notebook(cells: list[dict], version: str, name: str) -> nbformat.NotebookNode:
    """The ``version`` ("exercise" or "solutions") of a parsed source, as a notebook."""
    other = "solutions" if version == "exercise" else "exercise"
    kept = [cell for cell in cells if not ONLY_IN[other] & set(cell["tags"])]
    nb = v4.new_notebook(
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
    )
    for index, cell in enumerate(kept):
        source = BLANK_ANSWER if version == "exercise" and "answer" in cell["tags"] else cell["source"]
        make = v4.new_markdown_cell if cell["markdown"] else v4.new_code_cell
        metadata = {"tags": cell["tags"]} if cell["tags"] else {}
        nb.cells.append(make(source, metadata=metadata, id=f"{name[:20]}-{index:02d}"))
    return nb


def targets(source: Path) -> dict[str, Path]:
    """The two notebooks built from ``source``: {"exercise": path, "solutions": path}."""
    return {"exercise": HERE / f"{source.stem}.ipynb", "solutions": HERE / f"{source.stem}_solutions.ipynb"}


def built(source: Path) -> dict[Path, str]:
    """{path: the text of the notebook} for both notebooks of ``source``."""
    cells = parse(source.read_text(encoding="utf-8"))
    return {
        path: nbformat.writes(notebook(cells, version, source.stem)) + "\n" for version, path in targets(source).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report notebooks that differ from their source")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("*.py")):
        for path, text in built(source).items():
            if path.exists() and path.read_text(encoding="utf-8") == text:
                continue
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    verb = "differs from its source" if args.check else "written"
    for path in stale:
        print(f"{path.relative_to(HERE.parent)}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
