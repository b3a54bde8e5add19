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
