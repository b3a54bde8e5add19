"""The numbers the docs state in their prose are read here from the tables they come from, so a re-run
that changes a table, and a doc that is not updated with it, fail loudly.

Each sentence is rebuilt from its table (docs/paper/*.md written by `dp paper`, the tables a doc quotes
from a command's output, docs/monitor_tables.md, docs/speed/*.md) and must stand in the doc word for
word (line breaks and bold marks aside). The tables a doc quotes are held to the files the commands
wrote by the tests of each doc (tests/test_cnn_doc.py, test_monitor.py, test_speed_docs.py, ...) and here.
"""

import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "paper"


def read(path):
    return (ROOT / path).read_text()


def prose(text):
    """``text`` on one line, without bold marks: a sentence reads the same across a line break."""
    return " ".join(text.replace("**", "").split())


def says(text, *sentences):
    """Every one of ``sentences`` stands in ``text`` (as `prose`)."""
    flat = prose(text)
    missing = [sentence for sentence in sentences if sentence not in flat]
    assert not missing, missing


def section(text, heading):
    """The part of ``text`` under ``heading`` (a whole heading line), up to the next heading of any level."""
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"^#+ ", text[start:], re.M)
    return text[start : start + following.start()] if following else text[start:]


def tables(text):
    """The Markdown tables of ``text``, each a list of rows (header first, the alignment row left
    out), each row a list of its cells."""
    found, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def lines_of_tables(text):
    return [line for line in text.splitlines() if line.startswith("|")]


def number(cell):
    """A table cell as a number: "1,500" -> 1500, "97.3 %" -> 97.3, "3/3" -> 3 (the count)."""
    return float(cell.replace(",", "").replace("%", "").split("/")[0])


def by_first_cell(table):
    """``{first cell as a number: the other cells as numbers}`` of a table's rows (header left out)."""
    return {number(row[0]): [number(cell) for cell in row[1:]] for row in table[1:]}


def half_up(value, step):
    """``value`` rounded to ``step`` ("0.01") as a person rounds it, halves up (0.305 -> 0.31; ``f"{0.305:.2f}"``
    gives 0.30, the nearest binary float being below)."""
    from decimal import ROUND_HALF_UP, Decimal

    return str(Decimal(str(value)).quantize(Decimal(step), rounding=ROUND_HALF_UP))


def percent(value):
    return f"{value:.1f} %"


# ----- docs/experiment.md: dp paper -----

EXPERIMENT = read("docs/experiment.md")
FIGURE1_MD, FIGURE1_STD01_MD = read("docs/paper/figure1.md"), read("docs/paper/figure1_std01.md")


def accuracy_curve(markdown):
    """``{step: (without batch norm, with batch norm)}`` of a Figure 1 file's accuracy table."""
    (table,) = [t for t in tables(markdown) if t[0] == ["step", "without batch norm", "with batch norm"]]
    return {int(step): tuple(values) for step, values in by_first_cell(table).items()}


def first_step(curve, column, at_least):
    return min(step for step, values in curve.items() if values[column] >= at_least)


def last_step_while(curve, holds):
    """The last step up to which ``holds(values)`` is true at every evaluation."""
    steps = sorted(curve)
    failing = [step for step in steps if not holds(curve[step])]
    return steps[-1] if not failing else max(step for step in steps if step < failing[0])


FIGURE1 = accuracy_curve(FIGURE1_MD)
FIGURE1_STD01 = accuracy_curve(FIGURE1_STD01_MD)
PLAIN, NORMED = 0, 1


def test_the_figure1_rows_quoted_are_the_tables_and_the_doc_says_which():
    quoted = section(EXPERIMENT, "### Figure 1: faster, and steady inputs")
    assert set(lines_of_tables(quoted)) <= set(lines_of_tables(FIGURE1_MD))
    steps = [int(number(row[0])) for row in tables(quoted)[0][1:]]
    assert steps == [500, 1000, 1500, 2000, 3000, 5000, 10000, *range(20000, max(FIGURE1) + 1, 10000)]
    says(quoted, "at steps 500 to 2,000, 3,000, 5,000, 10,000 and every 10,000 after")
    assert sorted(FIGURE1) == list(range(500, 50001, 500)), "the whole table: one row per 500 steps"
    says(quoted, "the whole table, one row per 500 steps")
    std01 = section(EXPERIMENT, "### Where it does not help: well-scaled weights")
    assert set(lines_of_tables(std01)) <= set(lines_of_tables(FIGURE1_STD01_MD))
    assert len(tables(std01)[0]) == 1 + 6


def test_figure1s_paragraph_reads_its_numbers_from_the_table():
    last = max(FIGURE1)
    plain, normed = FIGURE1[last]
    chance = last_step_while(FIGURE1, lambda values: values[PLAIN] == 10.0)
    says(
        EXPERIMENT,
        f"With batch norm the network is at {percent(FIGURE1[500][NORMED])} after 500 steps; without it, it is at "
        f"chance (10 %) for the first {chance:,} steps",
        f"passes 85 % at step {first_step(FIGURE1, PLAIN, 85):,}, first reaches 90 % at step "
        f"{first_step(FIGURE1, PLAIN, 90):,} and ends at {percent(plain)}, {normed - plain:.1f} points behind batch "
        f"norm's {percent(normed)}",
        f"From N(0, 0.1²) (below) the plain network is at {percent(FIGURE1_STD01[500][PLAIN])} after 500 steps, "
        "with no such phase",
    )
    assert FIGURE1_STD01[500][PLAIN] > 50, "no phase at chance with the larger start"


def percentile_curve(markdown):
    """``{step: (without: 15th, 50th, 85th, with: 15th, 50th, 85th)}`` of a Figure 1 file's table of the
    watched sigmoid's input."""
    (table,) = [t for t in tables(markdown) if t[0][:2] == ["step", "without: 15th"]]
    return {int(step): tuple(values) for step, values in by_first_cell(table).items()}


def test_figure1s_reading_of_the_percentiles_holds_on_their_table():
    percentiles = percentile_curve(FIGURE1_MD)
    first, last = min(percentiles), max(percentiles)
    assert sorted(percentiles) == sorted(FIGURE1)
    says(EXPERIMENT, "the table of percentiles under the accuracies in [paper/figure1.md](paper/figure1.md)")
    plain_median = [percentiles[step][1] for step in sorted(percentiles)]
    widths = [percentiles[step][2] - percentiles[step][0] for step in range(10000, last + 1, 10000)]
    assert plain_median[-1] < plain_median[0] and widths == sorted(set(widths)), "drifts down, widens to the end"
    assert percentiles[last][1] < -3, "the median far down the flat tail: a slope under a fifth of the slope at 0"
    says(EXPERIMENT, "input drifts down and its 15th-85th percentile band widens over the whole run")
    normed = [values[3:] for values in percentiles.values()]
    assert all(abs(median) < 0.3 and -2.5 < low and high < 2.5 for low, median, high in normed)
    normed_width = {step: percentiles[step][5] - percentiles[step][3] for step in percentiles}
    assert normed_width[first] < normed_width[5000] and normed_width[last] < 1.5 * normed_width[first]
    says(
        EXPERIMENT,
        "with batch norm the median stays near 0 from the first evaluation to the last, and the band, a little wider "
        "after the first few thousand steps than at the first evaluation, stays where the sigmoid has a slope",
    )


def test_the_well_scaled_starts_paragraph_reads_its_numbers_from_the_table():
    last = max(FIGURE1_STD01)
    plain, normed = FIGURE1_STD01[last]
    ahead = last_step_while(FIGURE1_STD01, lambda values: values[NORMED] > values[PLAIN])
    says(
        EXPERIMENT,
        f"Batch norm is still ahead at every evaluation up to step {ahead:,}, but the plain network catches up and "
        f"ends ahead, {percent(plain)} against {percent(normed)}",
    )
    assert plain > normed


def test_the_well_scaled_starts_reading_of_the_percentiles_and_the_noise_holds_on_its_tables():
    percentiles = percentile_curve(FIGURE1_STD01_MD)
    first, last = min(percentiles), max(percentiles)
    assert all(-1 < values[1] < 0 for values in percentiles.values()), "the median a little below 0 throughout"
    plain_width, normed_width = percentiles[last][2] - percentiles[last][0], percentiles[last][5] - percentiles[last][3]
    assert percentiles[5000][2] - percentiles[5000][0] > 2 * (percentiles[first][2] - percentiles[first][0])
    assert abs(plain_width / normed_width - 1) < 0.15 and -3 < percentiles[last][0] and percentiles[last][2] < 3
    says(
        EXPERIMENT,
        "Its sigmoid's input hardly drifts (panel b, and the table of percentiles in paper/figure1_std01.md): the "
        "median stays a little below 0 from the first evaluation to the last, and the band, which widens over the "
        "first few thousand steps, ends about as wide as batch norm's and where the sigmoid has a slope",
    )
    later = [FIGURE1_STD01[step] for step in sorted(FIGURE1_STD01) if step >= 5000]
    jumps = [sum(abs(b[column] - a[column]) for a, b in zip(later, later[1:])) for column in (PLAIN, NORMED)]
    assert jumps[NORMED] > 3 * jumps[PLAIN]
    says(EXPERIMENT, "With batch norm the test accuracy is noisier from evaluation to evaluation")


LEARNING_RATES_MD, DEEP_MD = read("docs/paper/learning_rates.md"), read("docs/paper/deep.md")


def sweep(markdown):
    """``{rate: (median without, stuck without, median with, stuck with)}`` of a sweep file's table."""
    (table,) = tables(markdown)
    assert table[0] == ["learning rate", "without batch norm", "stuck", "with batch norm", "stuck"]
    return by_first_cell(table)


RATES = sweep(LEARNING_RATES_MD)
CRITERION = 85  # the doc's: a network trains at a rate when its median reaches 85 % in the steps


def window(column, threshold=CRITERION):
    """The smallest and largest rate at which the median of ``column`` (0: without, 2: with batch
    norm) reaches ``threshold``; the rates between them must all reach it too."""
    rates = sorted(RATES)
    trains = [lr for lr in rates if RATES[lr][column] >= threshold]
    assert trains == rates[rates.index(trains[0]) : rates.index(trains[-1]) + 1], "one window, no gap"
    return trains[0], trains[-1]


def test_the_learning_rate_table_quoted_is_the_one_dp_paper_wrote():
    quoted = section(EXPERIMENT, "### Higher learning rates")
    assert tables(quoted) == tables(LEARNING_RATES_MD)


def test_the_learning_rate_window_is_stated_with_its_criterion_and_read_from_the_table():
    low, high = window(0)
    best = max(RATES, key=lambda lr: RATES[lr][0])
    assert all(window(0, threshold) == (low, high) for threshold in range(65, 90))
    says(
        EXPERIMENT,
        f"its median over the three seeds reaches {CRITERION} % within the 10,000 steps (any threshold from 65 % to "
        "89 % draws the same window on this table)",
        f"By it the plain network trains from {low:g} to {high:g} (its best, {percent(RATES[best][0])})",
    )
    slow = max(lr for lr in RATES if lr < low)
    assert RATES[slow][1] == 0 and RATES[slow][0] > 10 + 5, "below the window: off chance, but slow"
    stuck_below = [lr for lr in sorted(RATES) if lr < slow]
    assert all(RATES[lr][1] == 3 for lr in stuck_below)
    says(
        EXPERIMENT,
        f"at {slow:g} every run has left chance, but the median is only {percent(RATES[slow][0])} after 10,000 steps; "
        f"at {stuck_below[1]:g} and {stuck_below[0]:g} no run has left chance by then",
    )
    assert [lr for lr in sorted(RATES) if lr > high and RATES[lr][1] < 3] == []
    cliff = min(lr for lr in RATES if lr > high)
    says(EXPERIMENT, f"at {cliff:g} ({cliff / best:g} times its best rate) and every larger rate, every run ends at")


def test_the_window_with_batch_norm_and_its_width_are_read_from_the_table():
    from dp.studies.ioffe2015 import DEFAULT_LRS

    low, high = window(0)
    normed_low, normed_high = window(2)
    best = max(RATES, key=lambda lr: RATES[lr][2])
    says(
        EXPERIMENT,
        f"With batch norm the network trains at every rate tried from {normed_low:g} to {normed_high:g}: on the small "
        f"side {low / normed_low:g} times below the plain network's smallest ({normed_low:g} is the smallest rate the "
        f"sweep tries: the window may reach further), on the large side {normed_high / high:g} times above its largest",
        f"It is best at {best:g} ({percent(RATES[best][2])}), a rate at which the plain network learns nothing",
    )
    assert normed_low == min(DEFAULT_LRS) == min(RATES) and RATES[best][1] == 3
    larger = [lr for lr in RATES if lr > normed_high]
    assert larger == [50, 125] and all(RATES[lr][3] == 3 for lr in larger)
    says(EXPERIMENT, "at 50 and 125 every run ends at chance too")


def test_figure1s_rate_is_placed_in_the_window_by_the_table():
    plain_best = max(RATES, key=lambda lr: RATES[lr][0])
    low, high = window(0)
    assert low <= 0.5 <= high and plain_best == high
    cliff = min(lr for lr in RATES if lr > high)
    says(
        EXPERIMENT,
        f"It is not its best rate, {plain_best:g}, which ends {RATES[plain_best][0] - RATES[0.5][0]:.1f} points higher "
        f"after 10,000 steps but is the last rate of the window: the next one, {cliff:g}, fails",
    )
    # Figure 1 at 0.5 and the sweep at 0.5 are the same runs (seeds, rate, start) up to 10,000 steps
    assert FIGURE1[10000] == (RATES[0.5][0], RATES[0.5][2])


def test_the_sweeps_rates_reach_from_a_hundredth_of_the_plain_best_to_25_times_it():
    from dp.studies.ioffe2015 import DEFAULT_LRS, QUICK, QUICK_LRS

    best = max(RATES, key=lambda lr: RATES[lr][0])
    assert sorted(RATES) == list(DEFAULT_LRS)
    assert math.isclose(min(DEFAULT_LRS), best / 100) and max(DEFAULT_LRS) == 25 * best
    says(EXPERIMENT, "from a hundredth of the plain network's best rate to 25 times it")
    assert (QUICK.figure_steps, QUICK.sweep_steps, QUICK.deep_steps, QUICK.seeds) == (2000, 2000, 1000, 2)
    says(
        EXPERIMENT,
        f"`--quick` runs Figure 1 and the learning rates ({min(QUICK_LRS):g} to {max(QUICK_LRS):g} only) for 2,000 "
        "steps, the deep network for 1,000, two seeds",
    )


def test_the_deep_networks_numbers_are_read_from_its_table():
    from dp.studies.ioffe2015 import DEEP_LAYERS, DEEP_WIDTH

    quoted = section(EXPERIMENT, "### A deep sigmoid network")
    assert tables(quoted) == tables(DEEP_MD)
    deep = sweep(DEEP_MD)
    stuck, runs = sum(row[1] for row in deep.values()), 3 * len(deep)
    assert (stuck, runs, DEEP_LAYERS, DEEP_WIDTH) == (9, 9, 10, 50)
    assert all(row[3] == 0 for row in deep.values())
    medians = [row[2] for row in deep.values()]
    says(
        EXPERIMENT,
        "Ten hidden sigmoid layers of 50 units",
        f"0.14 between two layers of {DEEP_WIDTH}",
        "nine of nine runs end at chance",
        f"With batch norm no run is stuck, and the medians are {percent(min(medians))} to {percent(max(medians))}",
    )
    assert f"{math.sqrt(2 / (DEEP_WIDTH + DEEP_WIDTH)):.2f}" == "0.14"  # Glorot's s between two layers of 50


# ----- docs/experiment.md: dp experiment on the breast-cancer data -----


def breast_cancer_sweep():
    """``{(rate, "yes" | "no"): cells}`` of the table `dp experiment` printed, as the doc quotes it."""
    table = tables(EXPERIMENT.split("It printed:", 1)[1])[0]
    return {(number(row[0]), row[1]): row[2:] for row in table[1:]}


def test_the_breast_cancer_paragraphs_read_their_numbers_from_the_printed_table():
    cells = breast_cancer_sweep()
    rates = sorted({lr for lr, _ in cells})
    assert len(cells) == 2 * len(rates) == 16 and all(row[4] == "0/50" for row in cells.values())
    says(EXPERIMENT, f"dp experiment: {len(rates)} learning rates x with/without batch norm x 50 seeds", "800 runs")
    small = [lr for lr in rates if lr <= 0.03]
    assert {cells[lr, bn][0] for lr in small for bn in ("yes", "no")} == {"97.3 %"} == {percent(100 * 110 / 113)}
    says(
        EXPERIMENT,
        "Both networks reach the same median test accuracy, 97.3 % (110 of 113 test rows), from 0.001 to 0.03",
    )
    normed = [number(cells[lr, "yes"][0]) for lr in (1, 3)]
    plain = [number(cells[lr, "no"][0]) for lr in (1, 3)]
    worst = min(number(cells[lr, "yes"][1]) for lr in (1, 3))
    says(
        EXPERIMENT,
        f"a median of {min(normed):.0f}-{max(normed):.0f} % against {min(plain):.0f}-{max(plain):.0f} % without it, "
        f"and a worst run of {percent(worst)}",
        f"(3 at 0.03 for both; {cells[0.003, 'yes'][2]} and {cells[0.003, 'no'][2]} at 0.003)",
        f"{cells[0.001, 'yes'][2]} steps with batch norm, {cells[0.001, 'no'][2]} without",
    )
    assert cells[0.03, "yes"][2] == cells[0.03, "no"][2] == "3"
    assert cells[1, "yes"][2] == cells[3, "yes"][2] == "> 300", "beyond 0.3, batch norm fails to get there"
    assert min(number(row[2]) for (lr, bn), row in cells.items() if bn == "no") == 3
    assert all(number(cells[lr, "no"][0]) > 89 for lr in rates if lr >= 0.03) and 3 / 0.03 == pytest.approx(100)
    says(
        EXPERIMENT,
        "reaches 95 % in 3 steps at a good rate, and keeps a median test accuracy above 89 % up to rates 100 times "
        "higher",
    )


def test_the_worst_run_is_the_accuracy_of_answering_malignant_for_every_test_row():
    from dp import data

    cells = breast_cancer_sweep()
    worst = min(number(row[1]) for row in cells.values())
    split = data.breast_cancer(validation_size=0.15, seed=0)
    malignant = int((split.y_test == 0).sum())  # label 0, as scikit-learn
    assert percent(100 * malignant / len(split.y_test)) == percent(worst)
    says(EXPERIMENT, f'a worst run of {percent(worst)}, which is predicting "malignant" for every row')


# ----- docs/training.md -----

TRAINING = read("docs/training.md")


def accuracy_tables():
    """The two tables of benchmarks/accuracy.py the doc quotes (seeds 0-19, seeds 20-79), each
    ``{model: cells}``."""
    quoted = [table for table in tables(TRAINING) if table[0][0] == "model"]
    assert len(quoted) == 2
    return [{row[0]: row[1:] for row in table[1:]} for table in quoted]


def rows_wrong(table, model):
    return float(table[model][4])


DP, LOGISTIC, SVC, MLP = (
    "`dp train` (defaults)",
    "`LogisticRegression(max_iter=5000)`",
    "`SVC()` (RBF kernel)",
    "`MLPClassifier(random_state=seed, max_iter=2000)`",
)


def test_the_data_and_batches_stated_are_those_dp_train_uses():
    from dp import data
    from dp.studies.reference import WORKLOADS

    recipe = WORKLOADS["breast_cancer", "mlp"]
    split = data.breast_cancer(test_size=0.2, seed=0)
    rows, test = len(split.y_train), len(split.y_test)
    assert (rows + test, rows, test) == (569, 456, 113)
    batches, left_out = divmod(rows, recipe.batch_size)
    says(
        TRAINING,
        f"the {rows + test} rows of the Wisconsin breast-cancer data, split stratified into {rows} training rows and "
        f"{test} test rows",
        f"{recipe.steps} steps of Adam (lr {recipe.lr:g}, betas 0.9 and 0.999) on batches of {recipe.batch_size} rows",
        f"every epoch ({batches} batches; the last {left_out} rows of each shuffle are left out",
        f"so {recipe.steps} steps are about {recipe.steps // batches} epochs",
        f"with {recipe.steps} steps and {batches} steps an epoch these are the last {recipe.steps % batches}",
        f"moves the accuracy by {100 / test:.3f} points",
    )
    assert (recipe.optimizer, recipe.schedule, recipe.seed) == ("adam", "cosine", 0)
    says(TRAINING, "dp train [--steps 300] [--lr 0.003] [--batch-size 50] [--optimizer adam] [--schedule cosine]")


def test_the_quiet_line_is_what_dp_train_prints(capsys):
    from dp.cli import main

    assert main(["train", "--quiet"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    says(TRAINING, f"`--quiet` prints one line, `{line}`")


def test_the_figures_sentence_is_what_the_figures_networks_did():
    import numpy as np

    from dp.studies import reference

    recipe = reference.WORKLOADS["breast_cancer", "mlp"]
    histories, _ = reference.batch_norm_comparison(reference.split_with_validation(recipe.seed), recipe)
    for history in histories.values():
        accuracy, steps = np.asarray(history.val_accuracy), np.asarray(history.step)
        assert accuracy[steps <= 50].max() >= 0.95
    assert histories[False].loss[-1] < histories[True].loss[-1]
    says(
        TRAINING,
        "both networks pass 95 % validation accuracy within the first 50 steps, and the one without batch norm ends "
        "with the lower training loss",
    )


def test_the_reading_of_the_accuracy_tables_is_read_from_them():
    first, later = accuracy_tables()
    assert [f"{100 * right / 113:.2f}" for right in (110, 110.5, 111)] == ["97.35", "97.79", "98.23"]
    says(TRAINING, "97.35 % is 110 of 113 test rows; 97.79 % is the middle of 110 and 111; 98.23 % is 111")
    assert first[DP][5] == "8 of 20" and first[LOGISTIC][5] == "10 of 20" and later[DP][5] == "30 of 60"
    says(
        TRAINING,
        "`dp train` has 8 of the 20 splits with at most two rows wrong; it needed 10",
        "Logistic regression makes it on seeds 0 to 19 with exactly 10 of 20; `dp train` makes it on seeds 20 to 79 "
        "with exactly 30 of 60",
    )
    means = [rows_wrong(table, model) for table in (first, later) for model in table]
    says(TRAINING, f"gets about three of 113 rows wrong on average ({min(means):.1f} to {max(means):.1f})")

    def behind(table, model):
        return f"{round(rows_wrong(table, DP) - rows_wrong(table, model), 2):g}"

    ahead = {f"{round(rows_wrong(later, model) - rows_wrong(later, DP), 1):g}" for model in (SVC, MLP)}
    assert ahead == {"0.3"}
    says(
        TRAINING,
        f"`dp train` is {behind(first, LOGISTIC)} rows behind logistic regression, {behind(first, SVC)} behind the RBF "
        f"support-vector machine and {behind(first, MLP)} behind scikit-learn's MLPClassifier on seeds 0 to 19; on "
        f"seeds 20 to 79 it is {behind(later, LOGISTIC)} rows behind logistic regression and 0.3 ahead of the other "
        "two",
    )
    spread = rows_wrong(first, DP) - rows_wrong(later, DP)
    assert all(abs(rows_wrong(t, DP) - rows_wrong(t, m)) < spread for t in (first, later) for m in (LOGISTIC, SVC, MLP))


# ----- docs/cnn.md -----

CNN = read("docs/cnn.md")


def test_the_cnns_numbers_are_read_from_the_table_dp_paper_wrote():
    from dp.studies.ioffe2015 import CNN_EVALUATIONS, CNN_LR, FULL

    curve = {int(step): values for step, values in by_first_cell(tables(read("docs/paper/cnn.md"))[0]).items()}
    first, last = min(curve), max(curve)
    plain_late = [values[PLAIN] for step, values in curve.items() if step >= 750]
    says(
        CNN,
        f"one constant learning rate for both, `{CNN_LR:g}`",
        f"{FULL.seeds} seeds each, and evaluates the test accuracy {CNN_EVALUATIONS} times",
        f"With batch norm the CNN is ahead from the first evaluation ({percent(curve[first][NORMED])} against "
        f"{percent(curve[first][PLAIN])} at step {first}) and ends higher ({percent(curve[last][NORMED])} against "
        f"{percent(curve[last][PLAIN])} at step {last:,}, the medians of {FULL.seeds} seeds)",
        f"the curve stays between {percent(min(plain_late))} and {percent(max(plain_late))} from step 750 on",
    )
    assert len(curve) == CNN_EVALUATIONS


def test_the_cnns_training_report_and_the_statistics_per_channel_are_read_from_their_sources():
    written = read("docs/paper/cnn_train.md")
    accuracy = re.search(r"test accuracy +(\d+\.\d+) %", written).group(1)
    seconds = float(re.search(r"time +(\d+\.\d+) s in all", written).group(1))
    says(CNN, f"{accuracy} % of the 1,000 test images, in about {5 * round(seconds / 5)} seconds here")
    says(CNN, "Adam lr 0.01 (cosine), 600 steps of 64 rows")
    assert "Adam lr 0.01 (cosine), 600 steps of 64 rows" in written
    says(CNN, f"a batch of 64 images of 28 x 28 estimates each mean from {64 * 28 * 28:,} values")


# ----- docs/monitor.md -----

MONITOR = read("docs/monitor.md")


def monitor_rows(batch_norm):
    """``{(step, layer): cells}`` of the table docs/monitor_tables.md holds for one run."""
    text = read("docs/monitor_tables.md").split(f"## batch_norm={batch_norm}\n", 1)[1].split("\n## ", 1)[0]
    (table,) = tables(text)
    return {(int(number(row[0])), row[1]): row[2:] for row in table[1:]}


def column(rows, step, index, layers=("l1", "l2", "l3")):
    return [float(rows[step, layer][index]) for layer in layers]


SATURATED, GRADIENT, RATIO = 2, 4, 5
TIMES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def test_the_monitors_reading_without_batch_norm_is_read_from_its_table():
    rows = monitor_rows(False)
    last = max(step for step, _ in rows)
    start, end = column(rows, 0, SATURATED), column(rows, last, SATURATED)
    shrink = float(rows[50, "l1"][GRADIENT]) / float(rows[last, "l1"][GRADIENT])
    ratios = {step: column(rows, step, RATIO, ("l1", "l2", "l3", "l4")) for step in (50, last)}
    says(
        MONITOR,
        f"Before the first step, {min(start):.0f} to {max(start):.0f} % of the pre-activations lie where tanh is "
        f"flat, and training makes it worse ({min(end):.0f} to {max(end):.0f} % at step {last:,})",
        f"the first layer's {TIMES[round(shrink)]}fold from step 50 to step {last:,}",
        f"from between {min(ratios[50]):.1f} and {max(ratios[50]):.1f} at step 50 to between {min(ratios[last]):.1f} "
        f"and {max(ratios[last]):.1f}: the first layer, at {rows[last, 'l1'][RATIO]}, has almost stopped learning",
        f"tanh is flat beyond ±{math.atanh(0.97):.2f}",
        f"(tanh's derivative there is 1 - 0.97², {1 - 0.97**2:.2f} or less)",
    )
    assert all(float(rows[step, layer][3]) == 0 for step, layer in rows if layer != "l4"), "no unit is dead"


def test_the_monitors_reading_with_batch_norm_is_read_from_its_table():
    rows = monitor_rows(True)
    last = max(step for step, _ in rows)
    saturated = column(rows, 0, SATURATED) + column(rows, last, SATURATED)
    shrink = float(rows[50, "l1"][GRADIENT]) / float(rows[last, "l1"][GRADIENT])
    later = [value for step, _ in rows if step >= 100 for value in column(rows, step, RATIO, ("l1", "l2", "l3", "l4"))]
    assert 1 < shrink < 2
    says(
        MONITOR,
        f"{min(saturated):.0f} to {max(saturated):.0f} % of the values are saturated, before training and after, the "
        "first layer's gradient shrinks less than twofold over the run, and the ratios stay between "
        f"{min(later):.1f} and {max(later):.1f} from step 100 on",
    )


def test_the_monitors_cost_is_read_from_its_benchmark():
    (table,) = tables(read("docs/speed/monitor.md"))
    paper = [row for row in table[1:] if row[0].startswith("paper") and row[3] == "100"]
    assert paper and all(number(row[8]) < 10 for row in paper)
    says(MONITOR, "under 10 % of the steps' time when recording every 100 steps on the paper's network")


# ----- docs/running_statistics.md (its tables are held to the functions that made them by
# tests/test_running_statistics_doc.py; here, its reading of the gap table) -----


def test_the_reading_of_the_gap_table_is_what_the_table_shows():
    from dp.studies.running_statistics import zero_start_factor

    text = read("docs/running_statistics.md")
    (table,) = [t for t in tables(text) if t[0][0] == "network"]
    rows = [(row[0], int(number(row[1])), [number(cell) for cell in row[3:]]) for row in table[1:]]
    ratio = {(network, steps): values[-1] for network, steps, values in rows}
    for steps in (5, 10):
        assert abs(ratio["breast_cancer", steps] - zero_start_factor(steps)) < 0.05
    says(text, "after 5 and 10 steps it is close to the table's factor for k = 5 and 10")
    recalibrated_gaps = [values[4] for _, _, values in rows]
    assert max(abs(gap) for gap in recalibrated_gaps) <= 1.1
    says(text, "its accuracy follows training mode's within about a point")
    assert sum(gap < 0 for gap in recalibrated_gaps) > len(rows) / 2
    says(text, "It is often a little above it")
    assert all(values[-1] >= 0.95 for _, steps, values in rows if steps >= 300)
    says(text, "After a few hundred steps the moving averages have forgotten their zero start (the ratio is near 1)")


# ----- docs/speed.md: its reading of the tables (the tables are held to docs/speed/ by test_speed_docs.py) -----

SPEED = read("docs/speed.md")


def cell(table, row, heading):
    header, rows = table
    return number(rows[row][header.index(heading) - 1])


def test_the_fused_layers_ratios_are_those_of_the_step_table_and_clear_the_rules_bar():
    step = [t for t in tables(SPEED) if t[0][:2] == ["workload", "dp us/step"] and "dp fused us/step" in t[0]][0]
    step = (step[0], {row[0]: row[1:] for row in step[1:]})
    fused = [t for t in tables(SPEED) if t[0][1:] == ["time, dp over dp fused", "peak memory, dp over dp fused"]][0]
    for workload, time, memory in fused[1:]:
        assert number(time) == pytest.approx(
            cell(step, workload, "dp us/step") / cell(step, workload, "dp fused us/step"), abs=0.01
        )
        assert number(memory) == pytest.approx(
            cell(step, workload, "peak MB dp") / cell(step, workload, "peak MB dp fused"), abs=0.02
        )
        assert number(time) >= 1.2 or number(memory) >= 1.3, workload
    wide = [number(memory) for workload, _, memory in fused[1:] if workload.startswith("wide")]
    assert all(1.8 < ratio < 2.2 for ratio in wide)
    says(
        SPEED,
        "It clears the rule's bar on every workload of the run, by time (1.2 x faster or more) or by memory (1.3 x "
        "leaner or more), and on the wide network it holds about half of the plain path's memory",
        f"This is the wide workload's {cell(step, 'wide-f64', 'ratio'):.2f} x memory",
    )


def test_the_profiles_reading_is_read_from_its_table():
    (table,) = tables(read("docs/speed/profile.md"))
    own = {row[0].split(" ")[0].strip("`"): number(row[2]) for row in table[1:]}
    engine = own["apply"] + own["reverse_sweep"] + own["topological_order"]
    assert 2 < engine < 10
    says(SPEED, "The engine itself (`apply`, `reverse_sweep`, `topological_order`) is a few per cent")
    assert 7 < own["stable_sigmoid"] < 13
    says(SPEED, "On the paper's network that is about a tenth of the step")


def test_the_cnn_sections_reading_is_read_from_its_tables():
    runs = [t for t in tables(SPEED) if t[0][0] == "workload" and "floor nhwc us/step" in t[0]]
    assert len(runs) == 2
    ratios = [number(row[t[0].index("dp/floor")]) for t in runs for row in t[1:]]
    sweep = [t for t in tables(SPEED) if t[0][0] == "point"][0]
    column = {heading: [row[i] for row in sweep[1:]] for i, heading in enumerate(sweep[0])}
    swept = [number(value) for value in column["dp/floor"]]
    says(
        SPEED,
        f"The goal, dp at most 1.2 x the floor, is not met: {min(ratios):.2f}-{max(ratios):.2f} x in these runs, "
        f"{min(swept):.2f}-{max(swept):.2f} x over the sweep",
    )
    peak = {number(row[t[0].index("peak dp/floor")]) for t in runs for row in t[1:] if row[0] == "cnn-f64"}
    says(SPEED, f"hence the {peak.pop():.2f} x peak memory")
    nhwc = [number(row[runs[0][0].index("floor nhwc/floor")]) for t in runs for row in t[1:]]
    says(SPEED, f"within the noise of NCHW at batch 64 ({min(nhwc):.2f}-{max(nhwc):.2f} x)")
    floor, floor_nhwc = ([number(value) for value in column[name]] for name in ("floor us/step", "floor nhwc us/step"))
    faster = max(1 - b / a for a, b in zip(floor, floor_nhwc))
    says(SPEED, f"up to {100 * faster:.0f} % faster at the other batch sizes of the sweep")
    per_image = [number(value) for value in column["dp us/image"]]
    assert (
        max(per_image[:4]) / min(per_image[:4]) < 1.05
        and per_image[4] < per_image[5]
        and per_image[4] > max(per_image[:4])
    )
    says(SPEED, "The cost per image is flat from 8 to 64 images")
    # conv2 of dp.CNN() on 64 images, float64: its input (64, 8, 14, 14), its columns 64 x 14 x 14 rows of 8 x 3 x 3
    columns, images = 64 * 14 * 14 * 8 * 9 * 8 / 2**20, 64 * 8 * 14 * 14 * 8 / 2**20
    says(SPEED, f"conv2: {columns:.1f} MB of columns for a {images:.1f} MB input")


def test_the_monitors_cost_in_speed_md_is_read_from_its_table():
    (table,) = tables(read("docs/speed/monitor.md"))
    rows = {(row[0].split(" ")[0], row[1]): row for row in table[1:]}
    per_recording = {key: number(row[7]) for key, row in rows.items()}
    paper = [number(row[5]) for (network, _), row in rows.items() if network == "paper"]
    steps_ms = 100 * sum(paper) / len(paper) / 1000  # fit's 100 steps without the monitor, the two runs' mean
    says(
        SPEED,
        f"under 1 ms on the reference network, {per_recording['paper', '500']:.0f} ms on 500 rows and "
        f"{per_recording['paper', '1,000']:.0f} ms on 1,000 rows of the paper's network, whose 100 steps take about "
        f"{10 * round(steps_ms / 10)} ms",
    )
    assert per_recording["seed", "456"] < 1 and all(number(row[8]) <= 10 for row in rows.values())


def test_the_gamma_diagnostic_prints_what_the_doc_shows_and_says(capsys):
    block = re.search(r"The diagnostic, for anyone who wants to check it:\n\n```python\n(.*?)```", EXPERIMENT, re.S)
    shown = re.search(r"It prints:\n\n```text\n(.*?)```", EXPERIMENT.split(block.group(0), 1)[1], re.S).group(1)
    exec(block.group(1), {})  # 30 short runs: a few seconds
    printed = capsys.readouterr().out
    assert printed == shown
    lines = [
        re.search(r"\|γ\| ([\d,.]+); accuracy ([\d.]+) % in eval mode, ([\d.]+) %", line) for line in shown.splitlines()
    ]
    gammas = [line.group(1) for line in lines]
    says(EXPERIMENT, f"grows from {gammas[0]} at lr 0.1 to {gammas[1]} at 0.3 and {gammas[2]} at 1")
    assert all(abs(float(line.group(2)) - float(line.group(3))) <= 1.5 for line in lines)
    says(EXPERIMENT, "averages gives about the same accuracy")


# ----- docs/why/wu2018.md: its reading of the tables `dp paper wu2018` wrote -----

WU2018 = read("docs/why/wu2018.md")


def wu2018_tables(folder):
    """The accuracy table ``{batch: {normalization: accuracy}}`` and the recalibration table, same form."""
    accuracy, recalibrated = tables(read(f"docs/paper/{folder}/batch_size.md"))
    return [
        {number(row[0]): dict(zip(table[0][1:], map(number, row[1:]))) for row in table[1:]}
        for table in (accuracy, recalibrated)
    ]


def test_wu2018s_quick_reading_is_read_from_the_quick_table():
    quick, recalibrated = wu2018_tables("wu2018")
    bn, gn, renorm = "batch norm", "group norm", "batch renorm"
    says(
        WU2018,
        f"batch norm at a batch of 2 ({percent(quick[2][bn])}) is level with group norm ({percent(quick[2][gn])})",
        f"(quick: {percent(quick[2][bn])} against {percent(quick[2][gn])}, error {percent(100 - quick[2][bn])} "
        f"against {percent(100 - quick[2][gn])};",
        f"({quick[8][renorm] - quick[8][bn]:.1f} points above it at 8)",
    )
    assert all(abs(quick[b][renorm] - quick[b][bn]) <= 0.25 for b in (2, 4))
    small = [value for b in (2, 4, 8) for value in quick[b].values()]
    assert 89.5 <= min(small) and max(small) <= 93
    says(WU2018, "every normalization (and none) reaches about 90-93 % at batches of 2 to 8 in one epoch")
    assert quick[64]["none"] > 80 > max(value for name, value in quick[64].items() if name != "none")


def test_wu2018s_larger_reading_is_read_from_the_larger_table():
    full, recalibrated = wu2018_tables("wu2018_full")
    bn, gn, renorm = "batch norm", "group norm", "batch renorm"
    best = max(full, key=lambda b: full[b][bn])
    says(
        WU2018,
        f"batch norm at a batch of 2 ({percent(full[2][bn])}) is {full[best][bn] - full[2][bn]:.1f} points below its "
        f"best ({percent(full[best][bn])} at {best:g}), and batch renorm holds {percent(full[2][renorm])}",
        f"({percent(full[4][gn])} at 4 to {percent(full[2][gn])} at 2)",
        f"the network without normalization ({percent(full[16]['none'])} at 16 to {percent(full[2]['none'])} at 2)",
        f"larger: {percent(full[2][bn])} against {percent(full[2][gn])})",
        f"(the unnormalized one, at the same rates, reaches {full[64]['none']:.0f}-{full[32]['none']:.0f} %)",
    )
    assert full[2]["layer norm"] >= max(full[b]["layer norm"] for b in (4, 8, 16)), "layer norm does not fall"
    changes = [abs(row[f"{name}, recalibrated"] - row[name]) for row in recalibrated.values() for name in (bn, renorm)]
    assert max(changes) <= 0.5
    says(WU2018, "Recalibrating changes nothing (at most 0.5 points)")
    quick, quick_recalibrated = wu2018_tables("wu2018")
    assert all(
        abs(table[b][f"{bn}, recalibrated"] - table[b][bn]) < 0.5
        for table in (quick_recalibrated, recalibrated)
        for b in (2, 4, 8)
    )
    says(WU2018, "Recalibrating the moving averages moves batch norm by less than half a point at batches of 2 to 8")


def test_wu2018s_steps_are_those_the_command_wrote():
    def steps(folder):
        line = re.search(r"Steps per run, by batch size .*", read(f"docs/paper/{folder}/batch_size.md")).group(0)
        return {int(b): s for b, s in re.findall(r"(\d+): ([\d,]+) \(", line)}

    quick, full = steps("wu2018"), steps("wu2018_full")
    says(WU2018, f"One epoch is {quick[2]} steps at a batch of 2 and {quick[64]} at 64")
    says(WU2018, f"({full[2]} steps at a batch of 2, {full[64]} at 64)")
    says(WU2018, f"a batch of 64 takes {quick[64]} steps in the quick budget")


# ----- docs/why/santurkar2018.md: its findings beside the paper's, read from the tables the command wrote -----

SANTURKAR = read("docs/why/santurkar2018.md")


def santurkar(name, quick=False):
    """The tables of one of `dp paper santurkar2018`'s files, each ``{(step, more first cells...): numbers}``."""
    text = read(f"docs/paper/santurkar2018/{'' if quick else 'full/'}{name}.md")
    keyed = 2 if name == "ics" else 1
    return [
        {
            tuple(number(c) if i == 0 else c for i, c in enumerate(row[:keyed])): [number(c) for c in row[keyed:]]
            for row in t[1:]
        }
        for t in tables(text)
    ]


def test_santurkar2018s_accuracy_and_distributions_are_read_from_the_tables():
    full_test, full_training, percentiles = santurkar("standard_vs_noisy")
    quick_test = santurkar("standard_vs_noisy", quick=True)[0]
    standard, normed, noisy = 0, 1, 2
    at_1000 = full_test[1000,][:2]
    last = max(full_test)
    noisy_test = [row[noisy] for row in full_test.values()]
    says(
        SANTURKAR,
        f"quick, step 300: {percent(quick_test[300,][normed])} against {percent(quick_test[300,][standard])} test "
        f"accuracy; by step 1,000 both are at {min(at_1000):.1f}-{max(at_1000):.1f} % and stay there "
        f"({percent(full_test[last][normed])} against {percent(full_test[last][standard])} at {last[0]:,.0f})",
        f"{min(noisy_test):.0f}-{max(noisy_test):.0f} % against 94 %",
        f"(training-mode accuracy {min(full_training[1000,][:2]):.1f}-{max(full_training[1000,][:2]):.0f} % at step "
        "1,000)",
    )
    first = {level: min(step for (step,), row in full_training.items() if row[noisy] >= level) for level in (99.9, 100)}
    says(
        SANTURKAR,
        f"{percent(full_training[1000,][noisy])} of the training rows at step 1,000, 99.9 % by {first[99.9]:,.0f}, "
        f"100 % by {first[100]:,.0f} (batch norm: 100 % at 1,000)",
    )
    medians = [row[7] for row in percentiles.values()]
    says(
        SANTURKAR,
        f"(median between −{-min(medians):.2f} and {max(medians):.2f})",
        "(about −1.6 to 2.2)",
        f"(95th percentile {percentiles[1000,][2]:.1f} at step 1,000 to {percentiles[last][2]:.1f} at 20,000)",
    )
    assert all(-1.7 < row[3] < -1.5 and 2.0 < row[5] < 2.35 for row in percentiles.values()), "about -1.6 to 2.2"


def test_santurkar2018s_covariate_shift_and_landscape_are_read_from_the_tables():
    (full_ics,), (quick_ics,) = santurkar("ics"), santurkar("ics", quick=True)
    at_start = [full_ics[0, layer][1] / full_ics[0, layer][0] for layer in ("l2", "l3", "l4")]
    says(
        SANTURKAR,
        f"batch norm's ‖G − G′‖ is {min(at_start):.1f}-{max(at_start):.1f}x larger in every layer (layer 2: "
        f"{full_ics[0, 'l2'][1]:.2f} against {half_up(full_ics[0, 'l2'][0], '0.01')}) and its cosines lower (layer 2: "
        f"{full_ics[0, 'l2'][3]:.2f} against {full_ics[0, 'l2'][2]:.2f})",
        f"quick, step 600, layer 4: ‖G − G′‖ {quick_ics[600, 'l4'][1]:.2f} against {quick_ics[600, 'l4'][0]:.2f}, "
        f"cosine {quick_ics[600, 'l4'][3]:.2f} against {quick_ics[600, 'l4'][2]:.2f}; full, step 1,000: "
        f"{full_ics[1000, 'l4'][1]:.3f} against {full_ics[1000, 'l4'][0]:.3f}",
    )
    during = [(quick_ics, step) for step in (300, 600, 900, 1200, 1500)] + [(full_ics, s) for s in (1000, 2000)]
    assert all(table[s, layer][1] < table[s, layer][0] for table, s in during for layer in ("l2", "l3", "l4"))
    assert all(table[s, "l4"][3] > table[s, "l4"][2] for table, s in during)
    (full,), (quick,) = santurkar("landscape"), santurkar("landscape", quick=True)
    fit = [quick[step,] for step in (300, 600, 900)]
    says(
        SANTURKAR,
        f"the opposite ({full[0,][1]:.2f} against {full[0,][0]:.2f}); during the fit, consistent: quick, steps "
        f"300-900: {min(r[1] for r in fit):.2f}-{max(r[1] for r in fit):.2f} against {min(r[0] for r in fit):.1f}-"
        f"{max(r[0] for r in fit):.1f}; full, step 1,000: {full[1000,][1]:.3f} against {full[1000,][0]:.3f}",
        f"worse at initialization ({full[0,][3]:.1f} against {full[0,][2]:.1f}), much better during the fit (quick, "
        f"step 600: {quick[600,][3]:.2f} against {quick[600,][2]:.0f}; full, step 1,000: {full[1000,][3]:.2f} against "
        f"{full[1000,][2]:.2f})",
        f"larger at initialization ({full[0,][5]:.0f} against {full[0,][4]:.0f}), close during the fit in the quick "
        f"runs (steps 300-900: {min(r[5] for r in fit):.1f}-{max(r[5] for r in fit):.1f} against "
        f"{min(r[4] for r in fit):.1f}-{max(r[4] for r in fit):.0f}), smaller at the full runs' step 1,000 "
        f"({full[1000,][5]:.1f} against {full[1000,][4]:.1f})",
    )


# ----- docs/reliability.md: each mutation score is its row's own arithmetic -----


def test_each_mutation_score_is_killed_over_the_mutants_not_set_aside():
    scores = [t for t in tables(read("docs/reliability.md")) if t[0][:3] == ["module", "run", "mutants"]]
    assert len(scores) >= 2
    for table in scores:
        for module, _, mutants, equivalent, killed, survivors, score, _ in table[1:]:
            mutants, equivalent, killed, survivors = (int(number(c)) for c in (mutants, equivalent, killed, survivors))
            assert killed + survivors + equivalent == mutants, module
            assert score == percent(100 * killed / (mutants - equivalent)), module


def test_the_sweep_figures_band_and_counts_are_explained_next_to_them():
    from dp.studies.ioffe2015 import BAND

    after = EXPERIMENT.split("](paper/learning_rates.png)", 1)[1].split("](paper/deep.png)", 1)[0]
    says(after, "each line is the median over the three seeds, its shaded band spans the worst to the best run")
    assert "its shaded band spans the worst to the best run" in BAND  # and the Markdown dp paper writes says it too
