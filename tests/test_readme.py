"""The README's Python examples run as written (they are the first code a newcomer copies)."""

import re
from pathlib import Path

import numpy as np

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
