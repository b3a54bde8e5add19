"""docs/why/wu2018.md: its tables are those of the files `dp paper wu2018` wrote
(docs/paper/wu2018/batch_size.md with --quick, docs/paper/wu2018_full/batch_size.md), and
its comparison with Wu & He quotes their numbers as the study states them and dp's errors as
100 minus the quick table's accuracies: a re-run that changes them fails here."""

import re
from pathlib import Path

from dp.studies.wu2018 import PAPER_ERROR
from test_santurkar2018_doc import DECIMAL, assert_quotes_the_monitor, tables_of

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "why" / "wu2018.md").read_text()
ROW = re.compile(r"^\|.*\|$", re.M)


def section(title):
    return DOC.split(f"### {title}\n", 1)[1].split("\n#", 1)[0]


def written(folder):
    return ROW.findall((ROOT / "docs" / "paper" / folder / "batch_size.md").read_text())


def test_the_quick_tables_are_the_ones_the_command_wrote():
    assert ROW.findall(section("Quick table")) == written("wu2018")


def test_the_larger_tables_are_the_ones_the_command_wrote():
    assert ROW.findall(section("Larger table")) == written("wu2018_full")


def test_wu_and_he_beside_dp_quotes_both_right():
    quick = {row.split("|")[1].strip(): row.split("|")[2:-1] for row in written("wu2018")[2:8]}
    beside = DOC.split("## Wu & He beside dp\n", 1)[1].split("\n## ", 1)[0]
    rows = ROW.findall(beside)[2:]
    assert len(rows) == 5
    for row in rows:
        batch, paper_bn, paper_gn, dp_bn, dp_gn = (cell.strip() for cell in row.strip("|").split("|"))
        assert float(paper_bn) == PAPER_ERROR["batch norm"][int(batch)]
        assert float(paper_gn) == PAPER_ERROR["group norm"][int(batch)]
        assert dp_bn == f"{100 - float(quick[batch][0]):.1f}" and dp_gn == f"{100 - float(quick[batch][2]):.1f}"


# ----- inside the layers: dp.train.Monitor's tables (the quick run's) -----

INSIDE = DOC.split("\n## Inside the layers\n", 1)[1].split("\n## ", 1)[0]
NAMES = ["batch norm, batch 2", "batch norm, batch 32", "group norm, batch 2", "group norm, batch 32"]


def test_the_monitor_tables_quoted_are_rows_of_those_the_command_wrote_in_order():
    assert_quotes_the_monitor(INSIDE, ROOT / "docs" / "paper" / "wu2018", NAMES)


def test_every_measured_number_in_the_monitor_section_is_a_cell_of_the_tables_it_quotes():
    cells = {cell.strip().lstrip("+-") for table in tables_of(INSIDE) for row in table for cell in row.split("|")}
    prose = "\n".join(line for line in INSIDE.splitlines() if not line.startswith("|"))
    numbers = DECIMAL.findall(prose)
    assert len(numbers) > 10
    assert [n for n in numbers if n not in cells] == []
