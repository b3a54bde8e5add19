"""notebooks/03_in_practice: a student's typical mistakes in each task, each caught by its check
with a message that says what to do; and our answers to the questions held to what the
notebook prints and draws (a run of the exercise with every task solved, as a student who
finished it runs it), to the same notebook run with WEIGHT_STD = 0.1 (Question 5 asks the
student to do that), and to the tables of docs/paper that they cite.

tests/test_course.py runs the notebook as every notebook of the course (built from its source,
the solutions to the end in under a minute, the untouched exercise up to its first check).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from test_notebooks import (
    answer_to,
    assert_questions_are_answered,
    assert_tasks_are_well_formed,
    built,
    cells_with_errors,
    check_error,
    execute,
    mistaken,
    printed,
    read,
    run_exercise,
    shown_images,
    solved,
    tagged,
)

NAME = "03_in_practice"
TASKS = 3
PAPER = Path(__file__).resolve().parent.parent / "docs" / "paper"


def failed_check(nb, task):
    """The message of the check of ``task``, after the checks of the tasks before it passed."""
    assert [check_error(nb, earlier) for earlier in range(1, task)] == [None] * (task - 1)
    error = check_error(nb, task)
    assert error is not None, f"the check of Task {task} let the mistake through"
    return error


def test_tasks_say_what_to_write_and_questions_have_answers():
    assert_tasks_are_well_formed(NAME)
    assert_questions_are_answered(NAME, at_least=5)


# ----- Task 1: the watched sigmoid's input -----


@pytest.mark.parametrize(
    ("right", "wrong", "says"),
    [
        ('"bn3" if model.has_batch_norm else "l3"', '"l3"', "the sigmoid's input is the output of bn3 in eval mode"),
        ("model.record(rows, [layer])", "model.record(rows, [layer], train=True)", "(eval mode, the default)"),
        ("[layer][:, 0]", "[layer]", "one value per row, shape (500,): unit 0's column"),
    ],
    ids=["always l3", "training-mode statistics", "every unit"],
)
def test_task_1_check_says_which_layer_and_unit_to_record(right, wrong, says, tmp_path, monkeypatch):
    code = mistaken(NAME, 1, right, wrong)
    error = failed_check(run_exercise(NAME, {1: code}, tmp_path, monkeypatch, through_task=1), 1)
    assert error.startswith("AssertionError: ") and says in error


# ----- Task 2: train and watch -----


@pytest.mark.parametrize(
    ("right", "wrong", "says"),
    [
        ("        monitor=monitor,\n", "", "the monitor recorded nothing: pass monitor=monitor on to dp.train.fit"),
        ("        if step % every == 0:\n    ", "", "only when step % every == 0"),
        ('        reduction="mean",\n', "", "on the mean loss (reduction='mean')"),
    ],
    ids=["monitor not passed on", "percentiles at every step", "the summed loss"],
)
def test_task_2_check_says_what_the_training_missed(right, wrong, says, tmp_path, monkeypatch):
    code = mistaken(NAME, 2, right, wrong)
    error = failed_check(run_exercise(NAME, {**solved(NAME, 1), 2: code}, tmp_path, monkeypatch, 2), 2)
    assert error.startswith("AssertionError: ") and says in error


# ----- Task 3: Figure 1(b, c)'s bands -----


@pytest.mark.parametrize(
    ("right", "wrong", "says"),
    [
        ("percentiles[:, 0], percentiles[:, 2], alpha", "percentiles[:, 0], percentiles[:, 1], alpha", "85th"),
        ("    ax.set(title=title, ", "    ax.set(", "set the title: ax.set_title(title)"),
    ],
    ids=["band to the median", "no title"],
)
def test_task_3_check_says_what_to_draw(right, wrong, says, tmp_path, monkeypatch):
    code = mistaken(NAME, 3, right, wrong)
    error = failed_check(run_exercise(NAME, {**solved(NAME, 1, 2), 3: code}, tmp_path, monkeypatch, 3), 3)
    assert error.startswith("AssertionError: ") and says in error


# ----- our answers against what the notebook shows -----

# Appended to the run: every number the answers describe, as JSON (NaN as null).
PROBE = """
import json
finite = lambda values: [None if np.isnan(v) else float(v) for v in values]
measures = ("std", "saturated", "grad_std", "update_ratio")
shown = {"runs": {}, "monitors": {}}
for bn in (False, True):
    history, bands = runs[bn]
    shown["runs"][str(bn)] = {"step": history.step, "accuracy": history.val_accuracy, "percentiles": bands.tolist()}
    series = {m: {layer: finite(v) for layer, v in monitors[bn].series(m).items()} for m in measures}
    shown["monitors"][str(bn)] = {"steps": monitors[bn].steps, **series}
print("PROBE" + json.dumps(shown))
"""


def run_solved(tmp_path, weight_std=None, through=None):
    """The exercise with every task solved, run from the top (with ``WEIGHT_STD = weight_std``,
    and only up to the first code cell containing ``through``), then `PROBE`."""
    nb = read(built(NAME)["exercise"])
    for task, code in solved(NAME, *range(1, TASKS + 1)).items():
        nb.cells[tagged(nb, "stub")[task - 1]].source = code
    if weight_std is not None:
        cell = next(c for c in nb.cells if c.source.startswith("WEIGHT_STD = 0.01"))
        cell.source = cell.source.replace("WEIGHT_STD = 0.01", f"WEIGHT_STD = {weight_std}")
    if through is not None:
        last = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and through in c.source)
        nb.cells = nb.cells[: last + 1]
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    with pytest.MonkeyPatch.context() as monkeypatch:
        execute(nb, tmp_path, monkeypatch)
    text = printed(nb)
    return nb, json.loads(text[text.index("PROBE") + len("PROBE") :])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A student's finished exercise, run from the top: (the notebook, what `PROBE` printed)."""
    return run_solved(tmp_path_factory.mktemp("finished"))


@pytest.fixture(scope="module")
def answers():
    solutions = read(built(NAME)["solutions"])
    return {number: " ".join(answer_to(solutions, number).split()) for number in range(1, 6)}  # one line each


def at(run, step, values):
    return values[run["step"].index(step)]


def widths(percentiles):
    return [p[2] - p[0] for p in percentiles]


def test_the_finished_exercise_runs_to_the_end_and_draws_four_figures(finished):
    nb, _ = finished
    assert cells_with_errors(nb) == []
    assert all(f"Task {task} passed" in printed(nb) for task in range(1, TASKS + 1))
    assert len(shown_images(nb)) == 4, "the digits, Figure 1(a), Figure 1(b, c) and the monitors' figure"


def test_question_1_without_batch_norm_the_network_sits_at_chance_for_a_thousand_steps(finished, answers):
    _, shown = finished
    plain, normed = shown["runs"]["False"], shown["runs"]["True"]
    assert "more than a thousand steps" in answers[1] and "after 100 steps" in answers[1].lower()
    assert at(normed, 100, normed["accuracy"]) > 0.5, "with batch norm, most test images right after 100 steps"
    assert all(a <= 0.11 for s, a in zip(plain["step"], plain["accuracy"]) if s <= 1000), "at chance until 1,000"
    assert plain["accuracy"][-1] > plain["accuracy"][0], "then it starts to climb"
    assert normed["accuracy"][-1] - plain["accuracy"][-1] > 0.3, "still far behind at step 1,500"


def test_question_2_without_batch_norm_the_band_has_no_width_until_late(finished, answers):
    _, shown = finished
    plain = shown["runs"]["False"]
    band = widths(plain["percentiles"])
    assert "the band has no width" in answers[2].lower() and "opens only late" in answers[2]
    early = [w for s, w in zip(plain["step"], band) if s <= 500]
    assert max(early) < 0.05, "for hundreds of steps the three percentiles are practically one number"
    opened = next(s for s, w in zip(plain["step"], band) if w > 0.1)
    assert opened >= 1000 and band[-1] > 10 * max(early), "the band opens only late"


def test_question_2_without_batch_norm_the_median_drifts_steadily_down(finished, answers):
    _, shown = finished
    plain = shown["runs"]["False"]
    assert "drifts, steadily, downwards" in answers[2]
    until_1000 = [p[1] for s, p in zip(plain["step"], plain["percentiles"]) if s <= 1000]
    assert all(b < a for a, b in zip(until_1000, until_1000[1:]))


def test_question_3_with_batch_norm_the_band_keeps_a_standard_normal_size_around_0(finished, answers):
    _, shown = finished
    normed = shown["runs"]["True"]
    assert "-1.04 and +1.04" in answers[3]
    standard_width = 2 * 1.0364  # the 15th to the 85th percentile of N(0, 1)
    assert all(standard_width < w < 2 * standard_width for w in widths(normed["percentiles"])), "somewhat wider"
    assert all(abs(p[1]) < 0.7 for p in normed["percentiles"]), "a median near 0"


HIDDEN = ["l1", "l2", "l3"]


def test_question_4_without_batch_norm_no_saturation_but_no_spread_and_tiny_gradients(finished, answers):
    _, shown = finished
    plain, normed = shown["monitors"]["False"], shown["monitors"]["True"]
    assert "No: almost none" in answers[4] and "orders of magnitude smaller" in answers[4]
    assert all(max(plain["saturated"][layer]) < 0.01 for layer in HIDDEN), "almost none saturated"
    early = [i for i, step in enumerate(plain["steps"]) if step <= 500]
    assert all(plain["std"][layer][i] < 0.2 for layer in HIDDEN for i in early), "a tiny spread in every layer"
    for i in early[1:]:  # no gradient at step 0
        ratios = [plain["grad_std"]["l4"][i] / plain["grad_std"][layer][i] for layer in HIDDEN]
        assert min(ratios) > 10 and max(ratios) > 100, "orders of magnitude below the output layer's"
        assert plain["grad_std"]["l1"][i] < normed["grad_std"]["l1"][i] / 100


def test_question_4_with_batch_norm_a_spread_near_1_and_gradients_alike(finished, answers):
    _, shown = finished
    normed = shown["monitors"]["True"]
    assert "a spread near 1" in answers[4] and "of a similar size" in answers[4]
    assert all(0.8 < std < 2 for layer in HIDDEN for std in normed["std"][layer])
    assert all(max(normed["saturated"][layer]) < 0.02 for layer in HIDDEN), "hardly any sigmoid saturated"
    for i in range(1, len(normed["steps"])):  # no gradient at step 0
        gradients = [normed["grad_std"][layer][i] for layer in [*HIDDEN, "l4"]]
        assert max(gradients) / min(gradients) < 10
    ratios = [r for layer in [*HIDDEN, "l4"] for r in normed["update_ratio"][layer][1:]]
    assert min(ratios) > -3 and np.median(ratios) > -2.5, "well above the rule of thumb's -3"


@pytest.fixture(scope="module")
def wider_start(tmp_path_factory):
    """What the student sees after setting WEIGHT_STD = 0.1, up to the table of the experiment."""
    return run_solved(tmp_path_factory.mktemp("wider"), weight_std=0.1, through="runs, monitors = {}, {}")[1]


def test_question_5_with_weights_of_0_1_the_plain_network_leaves_chance_early_and_nearly_catches_up(
    wider_start, answers
):
    plain, normed = wider_start["runs"]["False"], wider_start["runs"]["True"]
    assert "leaves chance within a few hundred steps" in answers[5] and "close to batch norm's" in answers[5]
    left_chance = next(s for s, a in zip(plain["step"], plain["accuracy"]) if a > 0.2)
    assert left_chance <= 500
    assert normed["accuracy"][-1] - plain["accuracy"][-1] < 0.05, "ends close to batch norm's"
    assert at(plain, 500, widths(plain["percentiles"])) > 0.5, "its band opens early"
    assert normed["accuracy"][0] > plain["accuracy"][0], "batch norm still starts faster"


def table(name):
    """The rows of the first Markdown table in docs/paper/``name`` (a Figure 1 file's accuracies, not the
    sigmoid's percentiles under them), as lists of cell texts."""
    text = (PAPER / name).read_text(encoding="utf-8")
    first = re.search(r"^(?:\|.*\n)+", text, re.M).group(0)
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in first.splitlines() if line.startswith("| ")
    ]
    return rows[1:]  # without the heading


def test_question_5s_learning_rates_are_those_of_docs_paper_learning_rates(answers):
    stated = re.search(
        r"at a learning rate of ([\d.]+), ([\d.]+) times the plain network's best\s+rate of ([\d.]+)", answers[5]
    )
    assert stated, "the answer names the rate, its multiple of the best rate, and the best rate"
    rate, times, best = (float(x) for x in stated.groups())
    rows = {float(row[0]): row for row in table("learning_rates.md")}
    trained = {lr: float(row[1]) for lr, row in rows.items() if row[2] == "0/3"}
    assert max(trained, key=trained.get) == best, "the plain network's best rate"
    assert rate == times * best
    assert rows[rate][2] == "3/3" and rows[rate][4] == "0/3", "the plain network stuck in every run, batch norm's not"


def test_question_5s_deep_network_learns_only_with_batch_norm_in_docs_paper_deep():
    rows = table("deep.md")
    assert rows and all(row[2] == "3/3" and row[4] == "0/3" for row in rows), "at every rate tried"


def test_question_1s_and_5s_runs_at_the_papers_budget_are_those_of_docs_paper(answers):
    small, wide = table("figure1.md"), table("figure1_std01.md")
    assert 1 < float(small[-1][2]) - float(small[-1][1]) < 5, "a few points behind batch norm's at 50,000 steps"
    assert float(small[0][1]) == 10.0 and float(wide[0][1]) > 50, "a phase at chance with 0.01, none with 0.1"
    assert float(wide[-1][1]) > float(wide[-1][2]), "with 0.1 the plain network even ends ahead"
    assert "docs/paper/figure1.md" in answers[1] and "docs/paper/figure1_std01.md" in answers[5]
