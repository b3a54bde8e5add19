"""Every ```python block of README.md and docs/ runs when pasted into a Python REPL, in order, as a
reader does: one `code.InteractiveConsole` per file, fed line by line, so the REPL's own rules
hold (a blank line inside a class body ends it; a block that ends inside a `for` loop needs the
Enter a reader presses after pasting). Not `exec`: `exec` accepts code a REPL refuses.

A block that needs an optional package says so just above it, visibly in the source:
`<!-- requires: torch -->` (or `ray`, `dask`, ...). The test skips such a block, with the
reason, when the package is missing, and runs it otherwise; the other blocks still run. Output,
shell commands and pseudo-code are fenced as `text`, `bash` or `console`, never `python`."""

import code
import importlib.util
import re
import sys
import traceback
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
REQUIRES = re.compile(r"<!--\s*requires:\s*([\w.,\s-]+?)\s*-->\s*\Z")


def python_blocks(path):
    """[(first line number, source, required packages)] of the file's ```python blocks, in order."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        marker = REQUIRES.search(before)
        packages = [name.strip() for name in marker.group(1).split(",")] if marker else []
        blocks.append((before.count("\n") + 2, match.group(1), packages))
    return blocks


class Reader(code.InteractiveConsole):
    """A REPL that remembers its first error instead of printing it and carrying on."""

    def __init__(self):
        super().__init__(locals={"__name__": "__console__"})
        self.error = None

    def showtraceback(self):
        self.error = self.error or traceback.format_exc()

    def showsyntaxerror(self, filename=None, **kwargs):
        self.error = self.error or "".join(traceback.format_exception_only(*sys.exc_info()[:2]))


def missing(packages):
    return [name for name in packages if importlib.util.find_spec(name) is None]


def paste(reader, path, first_line, source):
    """Type the block line by line, then the Enter a reader presses after a paste; fail on the
    first error, naming the file, the block's first line and the line that failed."""
    lines = source.splitlines() + [""]
    for offset, line in enumerate(lines):
        reader.push(line)
        if reader.error:
            where = f"{path.relative_to(ROOT)}, the block at line {first_line - 1}, line {first_line + offset}"
            pytest.fail(f"{where}: {line!r}\n{reader.error}", pytrace=False)
    assert not reader.buffer, f"{path.relative_to(ROOT)}: the block at line {first_line - 1} leaves the REPL at '...'"


DOCUMENTED = [path for path in FILES if python_blocks(path)]


def test_the_docs_have_python_blocks_to_check():
    assert ROOT / "README.md" in DOCUMENTED
    assert len(DOCUMENTED) >= 5


@pytest.mark.parametrize("path", DOCUMENTED, ids=[str(path.relative_to(ROOT)) for path in DOCUMENTED])
def test_each_python_block_runs_pasted_into_a_repl_in_order(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # blocks write files (model.npz, figures)
    reader = Reader()
    skipped = []
    for first_line, source, packages in python_blocks(path):
        if missing(packages):
            skipped.append(f"the block at line {first_line - 1} requires {', '.join(missing(packages))}")
            continue
        paste(reader, path, first_line, source)
    if skipped:
        pytest.skip(f"{path.relative_to(ROOT)}: the other blocks ran; " + "; ".join(skipped))


def test_a_block_a_repl_refuses_fails_even_though_exec_accepts_it(tmp_path):
    """The test's own check: the README's old model example (a blank line in the class body, no
    blank line after the loop) runs under exec and must fail here."""
    source = "class A:\n    x = 1\n\n    def f(self):\n        return 1\nfor i in range(2):\n    pass\nA().f()\n"
    exec(compile(source, "<block>", "exec"), {})
    with pytest.raises(pytest.fail.Exception, match="line"):
        paste(Reader(), ROOT / "README.md", 2, source)
