"""docs/cnn.md: its examples run as written, and the numbers it states are those of the files the
commands wrote (docs/paper/cnn.md by ``dp paper --experiments cnn``, docs/paper/cnn_train.md by
``dp train --data mnist --model cnn``), so a re-run that changes them fails here."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "cnn.md").read_text()
ROW = re.compile(r"^\|.*\|$", re.M)


def test_the_python_examples_run_and_the_fold_predicts_what_the_model_does():
    blocks = re.findall(r"```python\n(.*?)```", DOC, re.S)
    assert len(blocks) == 2
    names = {}  # in one namespace, top to bottom, as a reader pastes them
    for block in blocks:
        exec(block, names)
    split = names["split"]
    x = split.x_test[:200]
    np.testing.assert_allclose(names["folded"].predict_proba(x), names["model"].predict_proba(x), atol=1e-10)
    images = split.x_test.reshape(-1, 1, 28, 28)
    assert (names["net"].predict(images).ravel() == split.y_test.ravel()).mean() > 0.9  # the LeNet of one's own learned


def test_the_cnn_table_is_the_one_dp_paper_wrote():
    written = (ROOT / "docs" / "paper" / "cnn.md").read_text()
    table = ROW.findall(written)
    assert len(table) == 2 + 20  # header, alignment, 20 evaluations
    section = DOC.split("### Figure 1 with a CNN", 1)[1]
    assert ROW.findall(section) == table


def test_the_dp_train_report_quoted_is_the_one_the_command_wrote():
    written = (ROOT / "docs" / "paper" / "cnn_train.md").read_text()
    assert written.startswith("`dp train --data mnist --model cnn`")
    (report,) = re.findall(r"```text\n(.*?)```", DOC, re.S)
    assert report.strip() and all(line in written.splitlines() for line in report.splitlines())
    accuracy = re.search(r"test accuracy +(\d+\.\d+) %", written).group(1)
    assert f"{accuracy} %" in DOC.split("```text", 1)[1].split("```", 2)[-1]  # the prose states the reported number
