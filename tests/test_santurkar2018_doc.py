"""docs/why/santurkar2018.md: the tables it quotes are those of the files `dp paper santurkar2018`
wrote (docs/paper/santurkar2018/full/*.md), so a re-run that changes them fails here, and its
figures exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "why" / "santurkar2018.md").read_text()
ROW = re.compile(r"^\|.*\|$", re.M)
WRITTEN = ROOT / "docs" / "paper" / "santurkar2018"


def contains_in_order(rows, table):
    """Whether ``table``'s rows appear in ``rows`` one after another."""
    return any(rows[i : i + len(table)] == table for i in range(len(rows) - len(table) + 1))


@pytest.mark.parametrize("name", ["standard_vs_noisy", "ics", "landscape"])
def test_each_table_is_the_one_the_command_wrote(name):
    table = ROW.findall((WRITTEN / "full" / f"{name}.md").read_text())
    assert len(table) > 10
    assert contains_in_order(ROW.findall(DOC), table)


@pytest.mark.parametrize("name", ["standard_vs_noisy", "ics", "landscape"])
def test_each_figure_linked_exists(name):
    assert f"](../paper/santurkar2018/full/{name}.png)" in DOC
    assert (WRITTEN / "full" / f"{name}.png").stat().st_size > 10_000
    assert (WRITTEN / f"{name}.md").exists()  # the quick budget's, which the doc points to


def test_the_settings_stated_are_those_of_the_study():
    from dp.studies import santurkar2018 as study

    assert f"lr {study.LR:g}" in DOC
    assert f"s_tj ~ U(1, {study.NOISE_SCALE:g})" in DOC and f"m_tj ~ U(−{study.NOISE_SHIFT:g}, " in DOC
    assert f"{study.NOISE_JITTER:g} · z_ij" in DOC
    assert "(1/4, 1/2, 1, 2, 4, 8)" in DOC and study.STEP_FACTORS == (0.25, 0.5, 1, 2, 4, 8)
    assert f"{study.FULL.steps:,} steps × {study.FULL.seeds} seeds" in DOC


# ----- inside the layers: dp.train.Monitor's tables (the quick run's) -----

INSIDE = DOC.split("\n## Inside the layers\n", 1)[1].split("\n## ", 1)[0]
DECIMAL = re.compile(r"(?<![\w.])[-+−]?(\d+\.\d+)")


def tables_of(markdown):
    """The Markdown tables of ``markdown``, each a list of its rows, in order."""
    return [block.splitlines() for block in re.findall(r"^\|.*\|$(?:\n\|.*\|$)*", markdown, re.M)]


def test_the_monitor_tables_quoted_are_rows_of_those_the_command_wrote_in_order():
    assert_quotes_the_monitor(INSIDE, WRITTEN, ["standard", "batch norm", "noisy batch norm"])


def assert_quotes_the_monitor(inside: str, written: Path, names: list[str]) -> None:
    """``inside`` (a doc's section) quotes, under a bold title per run, rows of the table that
    `dp paper` wrote for that run in ``written``/monitor.md, in order, and links its figure."""
    tables = (written / "monitor.md").read_text()
    quoted = tables_of(inside)
    assert re.findall(r"^\*\*(.+)\*\*$", inside, re.M) == names and len(quoted) == len(names)
    for name, table in zip(names, quoted):
        (full,) = tables_of(tables.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0])
        assert table[:2] == full[:2] and len(table) > 2
        rows = iter(full[2:])
        assert all(row in rows for row in table[2:])  # a subsequence: the same rows, in the same order
    assert f"](../paper/{written.name}/monitor.png)" in inside
    assert (written / "monitor.png").stat().st_size > 10_000


def test_every_measured_number_in_the_monitor_section_is_a_cell_of_the_tables_it_quotes():
    cells = {cell.strip().lstrip("+-") for table in tables_of(INSIDE) for row in table for cell in row.split("|")}
    prose = "\n".join(line for line in INSIDE.splitlines() if not line.startswith("|"))
    numbers = DECIMAL.findall(prose)
    assert len(numbers) > 20
    assert [n for n in numbers if n not in cells] == []


def test_the_cnn_step_ratio_that_keeps_the_cnn_out_is_the_step_benchmarks():
    def step_us(table: str, workload: str) -> float:
        row = next(
            line
            for line in (ROOT / "docs" / "speed" / table).read_text().splitlines()
            if line.startswith(f"| {workload} |")
        )
        return float(row.split("|")[2].replace(",", ""))

    ratio = step_us("step-cnn.md", "cnn-f64") / step_us("step.md", "paper")
    assert f"takes {round(ratio)} times as long as one of this" in DOC.replace("\n  ", " ")
