"""The README's Python examples run as written (they are the first code a newcomer copies)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_python_example_in_the_readme_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # an example saves a checkpoint
    rng = np.random.default_rng(0)
    # The names the examples leave to the reader: a batch and some test rows.
    names = {
        "x_batch": rng.normal(size=(20, 30)),
        "y_batch": rng.integers(0, 2, 20),
        "x_test": rng.normal(size=(5, 30)),
    }
    for block in blocks:
        exec(block, names)
    np.testing.assert_allclose(
        names["folded"].predict_proba(names["split"].x_test),
        names["model"].predict_proba(names["split"].x_test),
        atol=1e-10,
    )
    assert (tmp_path / "model.npz").exists()
