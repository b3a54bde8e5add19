"""The README's Python examples run as written (they are the first code a newcomer copies)."""

import re
from pathlib import Path

import numpy as np
import pytest

import dp

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_python_example_in_the_readme_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # an example saves a checkpoint
    names = {}  # top to bottom in one namespace, as a newcomer pastes them: nothing left to the reader
    for block in blocks:
        exec(block, names)
    np.testing.assert_allclose(
        names["folded"].predict_proba(names["split"].x_test),
        names["model"].predict_proba(names["split"].x_test),
        atol=1e-10,
    )
    assert (tmp_path / "model.npz").exists()
    split = names["split"]
    assert (names["net"].predict(split.x_test) == split.y_test).mean() > 0.9  # the classroom loop learned


# ----- every number the README states comes from a table a command wrote -----

ROOT = README.parent


def flat(text):
    """The text with every run of whitespace made one space: a phrase may wrap anywhere."""
    return " ".join(text.split())


def prose():
    """The README's prose, flattened: no fenced blocks, no inline code, no link targets."""
    text = re.sub(r"^```.*?^```", " ", README.read_text(), flags=re.M | re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return flat(re.sub(r"\]\([^)]*\)", "]", text))


def rows(path, first=None):
    """{first cell: [the other cells]} of the file's first Markdown table (or of the first whose
    heading row starts with ``first``), heading row included."""
    tables = re.findall(r"^(?:\|.*\|\n)+", (ROOT / path).read_text(), re.M)
    chosen = next(table for table in tables if first is None or table.startswith(f"| {first} |"))
    return {
        cells[0]: cells[1:]
        for line in chosen.splitlines()
        if not set(line) <= set("|-: ")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }


def header(path):
    """The line under a file's title: the settings the command ran with."""
    return (ROOT / path).read_text().splitlines()[2]


def reading_guide():
    """The first pass's size as tests/test_reading.py computes it from the guide's links."""
    from test_reading import _lines, _parts

    first = _parts()[1]["The first pass"][1]
    return f"a first pass of {_lines(first)} lines in {len({path for path, _, _ in first})} files"


def claims():
    """Each phrase of the README that states a number, made from the table the number comes from."""
    startup = rows("docs/speed/startup.md", first="command")
    runs = re.search(r"best of (\d+) fresh interpreters", (ROOT / "docs/speed/startup.md").read_text()).group(1)
    figure1 = rows("docs/paper/figure1.md")
    last = list(figure1)[-1]
    steps = re.search(r"Figure 1: ([\d,]+) steps", header("docs/paper/figure1.md")).group(1)
    seeds = re.search(r"seeds (\d+-\d+)", header("docs/paper/figure1.md")).group(1)
    small, well_scaled = (
        re.search(r"weights N\(0, ([\d.]+)\^2\)", header(path)).group(1)
        for path in ("docs/paper/figure1.md", "docs/paper/figure1_std01.md")
    )
    return [
        f"takes {startup['dp train'][0]} ms, the best of {runs} fresh processes",
        f"is at {figure1['500'][1]} % test accuracy after 500 steps",
        f"at chance ({figure1['500'][0]} %) for the first 1,000 steps",
        f"ends lower ({figure1[last][0]} % against {figure1[last][1]} % at step {last})",
        f"and {steps} steps of SGD",
        f"MNIST images, seeds {seeds}.",
        f"initial weights dp chose, N(0, {small}²)",
        f"from N(0, {well_scaled}²) the plain network",
        reading_guide(),
    ]


NOT_MEASURED = {
    "3.10": "the oldest Python that pyproject.toml's requires-python allows",
    "2015": "a paper's year",
    "2018": "a paper's year",
    "100": "the paper's hidden layers (test_the_settings_it_states_are_dps)",
    "5,000": "the MNIST images dp ships (test_the_settings_it_states_are_dps)",
    "2": "the smallest batch size of wu2018's table (test_the_small_batch_claim_is_its_table)",
    "1e-12": "the tolerance the tests hold batch norm's two forms to (test_the_settings_it_states_are_dps)",
}


@pytest.mark.parametrize("phrase", claims())
def test_each_number_it_states_is_the_tables(phrase):
    assert phrase in prose(), f"the README should say {phrase!r}: the table it comes from says so"


def test_every_number_in_its_prose_is_tied_to_a_table_or_is_no_measurement():
    text = prose()
    for phrase in claims():
        text = text.replace(phrase, " ")
    text = re.sub(r"(?:^| )\d+\. ", " ", text)  # the course's list
    text = re.sub(r"\b(?:Figure|Definition|section) \d[\d.]*(?:\([a-z, ]+\))?", " ", text)  # the papers' numbering
    text = re.sub(r"\((?:\d+|n), ?\d*\)", " ", text)  # shapes: (1, 1), (n, 1), (50,)
    numbers = re.findall(r"(?<![\w.\-])\d(?:[\d,.]*\d)?(?:e-\d+|-\d(?:[\d,.]*\d)?)?(?![\w\-])", text)
    untied = sorted(set(numbers) - set(NOT_MEASURED))
    assert not untied, f"numbers in the README tied to no table (tie them in claims(), or say why not): {untied}"


def test_the_settings_it_states_are_dps():
    """The network, the data, the Python version and the tolerance the README names, read from dp."""
    from dp.studies.ioffe2015 import PAPER_SIZES

    hidden = PAPER_SIZES[1:-1]
    assert hidden == (100,) * 3
    assert "their network of three hidden layers of 100 sigmoids" in prose()
    split = dp.data.mnist()
    assert f"{len(split.x_train) + len(split.x_test):,} MNIST images" in prose()
    assert '">=3.10"' in (ROOT / "pyproject.toml").read_text() and "Python 3.10 or newer" in prose()
    assert "TOL = 1e-12" in (ROOT / "tests/test_normalization.py").read_text()
    assert "the tests hold the two to 1e-12 of each other" in prose()


def test_the_phase_at_chance_and_the_well_scaled_start_are_the_tables():
    """The phase at chance for the first 1,000 steps and, from N(0, 0.1²), "no such phase,
    catches up and ends ahead": read from the two tables, not only their numbers."""
    small, well_scaled = rows("docs/paper/figure1.md"), rows("docs/paper/figure1_std01.md")
    chance = small["500"][0]
    assert small["1,000"][0] == chance and small["1,500"][0] != chance
    assert well_scaled["500"][0] != chance
    last = list(well_scaled)[-1]
    assert float(well_scaled[last][0]) > float(well_scaled[last][1])
    assert "no such phase, catches up and ends ahead" in prose()


def test_the_small_batch_claim_is_its_table():
    table = rows("docs/paper/wu2018_full/batch_size.md", first="batch size")
    at_two = dict(zip(table["batch size"], map(float, table["2"])))
    assert at_two["batch norm"] >= at_two["group norm"]
    assert "batch norm loses no more than group norm at a batch of 2" in prose()
    assert "(docs/paper/wu2018_full/batch_size.png)" in README.read_text()  # the figure of that table


def sample_output():
    """The block after "`dp train` prints:"."""
    return README.read_text().split("`dp train` prints:\n\n```text\n", 1)[1].split("```", 1)[0]


def test_the_sample_output_is_what_dp_train_prints_but_the_time(capsys, tmp_path, monkeypatch):
    from dp.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].startswith("time ")
    assert sample_output() == "\n".join(printed.splitlines()[:-1]) + "\n"
    assert "and a last line with the time it took" in prose()


def test_every_link_in_the_readme_points_at_a_file():
    """The course's notebooks, docs/course.md, the figures and every page linked: a student clicks them."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    assert len(targets) >= 20
    missing = sorted({target for target in targets if "://" not in target and not (ROOT / target).exists()})
    assert not missing, f"the README links files that do not exist: {missing}"
