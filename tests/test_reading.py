"""docs/reading.md points at lines of the source: each link must cover exactly one whole
definition, and a link whose text is a name in backticks must point at that name."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[([^\]]+)\]\(\.\./(src/dp/[\w/]+\.py)#L(\d+)-L(\d+)\)")


def definitions(path):
    """{(first line, last line): qualified name} for every function and class in the file."""
    spans = {}

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                spans[(start, child.end_lineno)] = prefix + child.name
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(path.read_text()), "")
    return spans


LINKS = LINK.findall((ROOT / "docs" / "reading.md").read_text())


def test_the_reading_guide_links_to_the_source():
    assert len(LINKS) >= 10


@pytest.mark.parametrize("text, path, first, last", LINKS, ids=[link[0] for link in LINKS])
def test_each_link_covers_one_whole_definition_of_its_name(text, path, first, last):
    spans = definitions(ROOT / path)
    name = spans.get((int(first), int(last)))
    assert name is not None, f"{path} lines {first}-{last} are not one whole definition"
    if text.startswith("`"):
        shown = text.strip("`")
        assert name == shown or name.endswith("." + shown), f"{path} lines {first}-{last} are {name}, not {shown}"


def _parts():
    """The guide's two parts: {title: (stated lines, [(path, first, last), ...])}."""
    text = (ROOT / "docs" / "reading.md").read_text()
    parts = {}
    for match in re.finditer(r"^## (The first pass|The full path) \((\d+) (?:more )?lines\)\n(.*?)(?=^## |\Z)", text,
                             re.M | re.S):  # fmt: skip
        spans = {(path, int(first), int(last)) for _, path, first, last in LINK.findall(match.group(3))}
        parts[match.group(1)] = (int(match.group(2)), spans)
    return text, parts


def _lines(spans):
    return sum(last - first + 1 for _, first, last in spans)


def test_each_part_states_the_lines_its_links_cover():
    _, parts = _parts()
    assert set(parts) == {"The first pass", "The full path"}
    for title, (stated, spans) in parts.items():
        assert stated == _lines(spans), f"{title}: the links cover {_lines(spans)} lines, the heading says {stated}"


def test_the_introduction_states_each_parts_lines_and_files():
    text, parts = _parts()
    first, full = parts["The first pass"][1], parts["The full path"][1] - parts["The first pass"][1]
    for spans, words in ((first, "lines in"), (full, "more lines in")):
        files = len({path for path, _, _ in spans})
        assert f"{_lines(spans)} {words} {files} files" in text, (words, _lines(spans), files)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"a first pass of {_lines(first)} lines in {len({path for path, _, _ in first})} files" in readme
