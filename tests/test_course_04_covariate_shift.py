"""The course's notebook 04_covariate_shift (notebooks/source/04_covariate_shift.py): each check
catches its task's typical mistakes with a message that says what to do, and what the answers
say about the experiment holds for the run the solutions make.

Each mistake is put into the exercise as a student would write it (the solution with one line
changed), the tasks before it solved; one kernel per task runs, in turn, the right solution
(whose check must pass: the harness itself is tested) and each mistaken one, each followed by
the task's check.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from nbformat import v4

from dp.studies import santurkar2018 as study
from test_course import build
from test_notebooks import execute, read, tagged

SOURCE = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "04_covariate_shift.py"
TARGETS = build.targets(SOURCE)


def solution(task: int) -> str:
    solutions = read(TARGETS["solutions"])
    return solutions.cells[tagged(solutions, "solution")[task - 1]].source


def mistaken(task: int, *replacements: tuple[str, str]) -> str:
    """The solution of ``task`` with each (right, wrong) replacement made: a student's mistake."""
    code = solution(task)
    for right, wrong in replacements:
        assert right in code, f"the solution of Task {task} no longer has {right!r}"
        code = code.replace(right, wrong)
    return code


def checked(task: int, answers: list[str], tmp_path, monkeypatch) -> list[tuple[str | None, str]]:
    """Run the exercise up to Task ``task``'s stub (the tasks before solved), then each answer
    followed by the task's check; for each, (the check's error "ename: evalue" or None, what it printed)."""
    nb = read(TARGETS["exercise"])
    stubs, checks = tagged(nb, "stub"), tagged(nb, "check")
    assert checks[task - 1] == stubs[task - 1] + 1, "the check follows its stub"
    for earlier in range(1, task):
        nb.cells[stubs[earlier - 1]].source = solution(earlier)
    check = nb.cells[checks[task - 1]].source
    start = stubs[task - 1]
    nb.cells = nb.cells[:start] + [v4.new_code_cell(code) for answer in answers for code in (answer, check)]
    execute(nb, tmp_path, monkeypatch, allow_errors=True)
    results = []
    for cell in nb.cells[start + 1 :: 2]:
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
        results.append((errors[0] if errors else None, "".join(o.get("text", "") for o in cell.outputs)))
    return results


def assert_caught(task: int, mistakes: dict[str, tuple[str, str]], tmp_path, monkeypatch) -> None:
    """The right solution passes; each mistake {message part: code} fails with that message."""
    results = checked(task, [solution(task), *(code for code, _ in mistakes.values())], tmp_path, monkeypatch)
    (error, printed), *caught = results
    assert error is None and f"Task {task} passed" in printed, error
    for (name, (_, expected)), (error, _) in zip(mistakes.items(), caught):
        assert error is not None, f"Task {task}, {name}: the check let it pass"
        assert error.startswith("AssertionError") and expected in error, f"Task {task}, {name}: {error}"


def test_noisy_batch_norm_mistakes_are_caught(tmp_path, monkeypatch):
    header = "def noisy_batch_norm(x, gamma, beta, rng):\n"
    mistakes = {
        "a new generator at every call: the same noise at every step": (
            mistaken(1, (header, header + "    rng = np.random.default_rng(0)\n")),
            "the noise is the same at every step",
        ),
        "scale and shift drawn once, only the jitter fresh": (
            mistaken(
                1,
                ("rng.uniform(1.0, NOISE_SCALE", "np.random.default_rng(0).uniform(1.0, NOISE_SCALE"),
                ("rng.uniform(-NOISE_SHIFT", "np.random.default_rng(1).uniform(-NOISE_SHIFT"),
            ),
            "should be drawn anew at every call",
        ),
        "noise before normalization": (
            mistaken(
                1,
                ("y = dp.batch_norm(x, gamma, beta)", "y = x"),
                (
                    "return y * dp.Node(scale) + dp.Node(shift + jitter)",
                    "return dp.batch_norm(y * dp.Node(scale) + dp.Node(shift + jitter), gamma, beta)",
                ),
            ),
            "the noise was normalized away",
        ),
        "the output built from .value: no gradient flows": (
            mistaken(
                1,
                (
                    "return y * dp.Node(scale) + dp.Node(shift + jitter)",
                    "return dp.Node(y.value * scale + shift + jitter)",
                ),
            ),
            "build the output from Nodes",
        ),
        "scale and shift of shape (units,), which dp.Node turns into columns": (
            mistaken(1, ("(1, units))", "units)")),
            "Draw the scale and the shift as arrays of shape (1, units)",
        ),
        "one shift for all units and rows, not one per unit": (
            mistaken(
                1, ("rng.uniform(-NOISE_SHIFT, NOISE_SHIFT, (1, units))", "rng.uniform(-NOISE_SHIFT, NOISE_SHIFT)")
            ),
            "each unit should get its own scale and shift",
        ),
    }
    assert_caught(1, mistakes, tmp_path, monkeypatch)


def test_covariate_shift_mistakes_are_caught(tmp_path, monkeypatch):
    mistakes = {
        "the layer's own parameters stepped too": (
            mistaken(2, ("santurkar2018.layer_of(name) < k", "santurkar2018.layer_of(name) <= k")),
            "you stepped layer 2's own parameters too",
        ),
        "every layer stepped": (
            mistaken(2, ("if santurkar2018.layer_of(name) < k:", "if True:")),
            "you stepped every layer",
        ),
        "cosine and distance swapped": (
            mistaken(
                2,
                (
                    "return float(np.linalg.norm(g - g_after)), float(cosine)",
                    "return float(cosine), float(np.linalg.norm(g - g_after))",
                ),
            ),
            "you returned (cosine, distance)",
        ),
        "the step left in model.params": (
            mistaken(2, ("with dp.nn.module.unchanged(model.params):", "if True:")),
            "covariate_shift changed model.params",
        ),
    }
    assert_caught(2, mistakes, tmp_path, monkeypatch)


def test_landscape_mistakes_are_caught(tmp_path, monkeypatch):
    mistakes = {
        "beta-smoothness divided by eta alone": (
            mistaken(3, ("distance / (eta * gradient_norm)", "distance / eta")),
            "not by eta alone",
        ),
        "moved along +g": (
            mistaken(3, ("model.params[name] - eta * gradient", "model.params[name] + eta * gradient")),
            "you moved along +g",
        ),
        "the loss at the start left out of the range": (
            mistaken(3, ("losses, distances = [loss], []", "losses, distances = [], []")),
            "the loss range counts the loss at the start",
        ),
    }
    assert_caught(3, mistakes, tmp_path, monkeypatch)


# ----- what the answers say, held to the run of the solutions -----

DUMP = """
import json
print("RUNS=" + json.dumps({
    kind: {
        "step": found["step"], "percentiles": np.asarray(found["percentiles"]).tolist(),
        "train_mode": found["train mode"], "test": history.val_accuracy, "test_step": history.step,
        "shift": [{str(k): v for k, v in s.items()} for s in found["shift"]], "landscape": found["landscape"],
        "std_l3": monitor.series("std")["l3"].tolist(), "update_l3": monitor.series("update_ratio")["l3"].tolist(),
    }
    for kind, (history, found, monitor) in runs.items()
}))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    nb = read(TARGETS["solutions"])
    nb.cells.append(v4.new_code_cell(DUMP))
    with pytest.MonkeyPatch.context() as monkeypatch:
        execute(nb, tmp_path_factory.mktemp("solutions"), monkeypatch)
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return json.loads(printed.split("RUNS=", 1)[1])


def shifts(run: dict, step: int) -> np.ndarray:
    """(layers 2 to 4) x (distance, cosine) at the measurement of ``step``."""
    shift = run["shift"][run["step"].index(step)]
    return np.array([shift[k] for k in ("2", "3", "4")])


def test_answer_2_noisy_network_moves_learns_and_tests_worse(runs):
    noisy, normed, standard = runs["noisy batch norm"], runs["batch norm"], runs["standard"]
    median = {kind: np.array(run["percentiles"])[:, 2] for kind, run in runs.items()}
    width = {kind: np.ptp(np.array(run["percentiles"])[:, [0, 4]], axis=1) for kind, run in runs.items()}
    jumps = {kind: np.abs(np.diff(values)).mean() for kind, values in median.items()}
    assert jumps["noisy batch norm"] > 3 * jumps["batch norm"], "the noisy bands jump; batch norm's barely move"
    assert (width["noisy batch norm"] > width["batch norm"]).all(), "wider than batch norm's"
    assert width["standard"][-1] > 2 * width["standard"][0] and median["standard"][-1] > median["standard"][0], (
        "the standard network's drift"
    )
    assert (np.array(noisy["std_l3"]) > np.array(normed["std_l3"])).all(), "the Monitor: spread wider"
    assert (np.array(noisy["update_l3"][1:]) > -3).all(), "the Monitor: update-to-data ratios above -3"
    behind = zip(noisy["train_mode"][1:], standard["train_mode"][1:], normed["train_mode"][1:])
    assert noisy["train_mode"][-1] >= 0.95 and all(n < min(s, b) for n, s, b in behind), "fits, a little behind"
    tests = zip(noisy["test"], standard["test"], normed["test"])
    assert all(n < min(s, b) for n, s, b in tests), "the test accuracy behind both at every evaluation"


def test_answer_3_covariate_shift_larger_at_start_smaller_while_fitting(runs):
    standard, normed = runs["standard"], runs["batch norm"]
    start_standard, start_normed = shifts(standard, 0), shifts(normed, 0)
    assert (start_normed[:, 0] > start_standard[:, 0]).all() and (start_normed[:, 1] < start_standard[:, 1]).all()
    for step in (100, 200, 300):
        plain, bn = shifts(standard, step), shifts(normed, step)
        assert (bn[:, 0] < plain[:, 0]).all(), step
        assert (bn[1:, 1] > plain[1:, 1]).all(), f"step {step}: the cosines of layers 3 and 4"
    later = [step for step in standard["step"] if step > 300]
    order = [shifts(normed, step)[0, 0] > shifts(standard, step)[0, 0] for step in later]
    assert any(order) and not all(order), "after step 300, the order changes from one measurement to the next"
    for run in (standard, normed):
        assert (shifts(run, later[-1])[:, 0] < shifts(run, 100)[:, 0]).all(), "the values fall"


def test_answer_4_landscape(runs):
    standard, normed = (np.array(runs[kind]["landscape"]) for kind in ("standard", "batch norm"))
    steps = runs["standard"]["step"]
    assert (normed[0] > standard[0]).all(), "before the first step, every measure larger with batch norm"
    fitting = [steps.index(step) for step in (100, 200, 300, 400, 500)]
    assert (normed[fitting, 0] * 10 <= standard[fitting, 0]).all(), "loss range: an order of magnitude, steps 100-500"
    assert (normed[fitting, 1] * 3 <= standard[fitting, 1]).all(), "predictiveness: several times, steps 100-500"
    later = normed[fitting[-1] + 1 :, :2] >= standard[fitting[-1] + 1 :, :2]
    assert later.any(), "after step 500, the standard network's values fall to batch norm's at some measurement"
    beta = normed[1:, 2] > standard[1:, 2]
    assert beta.any() and not beta.all(), "the beta-smoothness changes order from one measurement to the next"


def test_the_text_states_the_experiment_the_code_runs():
    text = SOURCE.read_text(encoding="utf-8")
    noise = f"s_j \\sim U(1, {study.NOISE_SCALE:g}), \\qquad m_j \\sim U(-{study.NOISE_SHIFT:g}, {study.NOISE_SHIFT:g})"
    assert noise in text and f"+ m_j + {study.NOISE_JITTER:g}\\, z_{{ij}}" in text, "the noise the study draws"
    steps, every = map(int, re.search(r"^STEPS, EVERY = (\d+), (\d+)$", text, re.MULTILINE).groups())
    assert f"on the same batches, {steps:,} steps each" in text
    assert f"Every {every} steps (and before the first)" in text
    assert "steps=STEPS" in text and "eval_every=EVERY" in text
