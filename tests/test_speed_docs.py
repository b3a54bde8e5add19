"""The speed numbers in the README and docs/speed.md are the tables the benchmarks wrote, in
docs/speed/ (each file starts with the command that wrote it): every table row and every
target line they quote must stand in one of those files, word for word, so a re-run that
changes a number and a doc that is not updated with it fail here."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITTEN = "\n".join(path.read_text() for path in sorted((ROOT / "docs" / "speed").glob("*.md")))
ROW = re.compile(r"^\|(?! *-).*\|$", re.M)  # a table row, not a separator
TARGET = re.compile(r"^- \w[\w-]*: dp <= .*(?:met|NOT met)$", re.M)


def quoted(path, section=None):
    text = (ROOT / path).read_text()
    if section is not None:
        text = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return ROW.findall(text) + TARGET.findall(text)


def test_every_file_says_which_command_wrote_it():
    files = sorted((ROOT / "docs" / "speed").glob("*.md"))
    assert len(files) >= 4
    for path in files:
        assert path.read_text().startswith("`python benchmarks/"), path.name


def test_the_readme_leaves_speed_to_docs_speed_and_quotes_only_what_the_benchmarks_wrote():
    """The speed tables moved from the README to docs/speed.md (the README states one time,
    tied to docs/speed/startup.md by tests/test_readme.py); any row it quotes must still be written."""
    readme = (ROOT / "README.md").read_text()
    assert "(docs/speed.md)" in readme
    missing = [line for line in quoted("README.md") if line not in WRITTEN]
    assert not missing, missing


def test_docs_speed_quotes_only_what_the_benchmarks_wrote():
    lines = quoted("docs/speed.md")
    assert len(lines) >= 20
    missing = [line for line in lines if line not in WRITTEN]
    assert not missing, missing
