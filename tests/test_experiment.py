"""The learning-rate sweep: one run's measurements, divergence caught and counted, the
summary statistics, the Markdown table, and the same results on any joblib backend."""

import numpy as np
import pytest
from joblib import parallel_config

import dp.nn.models
from dp.studies.breast_cancer import Cell, Run, Settings, markdown_table, run_one, summarize, sweep

SETTINGS = Settings(steps=30, batch_size=50, optimizer="sgd", schedule="constant", eval_every=5, target=0.9)


def test_a_run_measures_test_accuracy_and_steps_to_the_target():
    run = run_one(SETTINGS, lr=0.03, batch_norm=True, seed=1)
    assert (run.lr, run.batch_norm, run.seed, run.diverged) == (0.03, True, 1, False)
    assert 0.9 <= run.test_accuracy <= 1
    assert run.steps_to_target in range(5, 31, 5)  # evaluated every 5 steps
    assert run_one(SETTINGS, lr=0.03, batch_norm=True, seed=1) == run  # seeded: the same run again


def test_a_run_that_never_reaches_the_target_says_so():
    run = run_one(Settings(**{**SETTINGS.__dict__, "steps": 5, "target": 1.0}), lr=0.001, batch_norm=False, seed=0)
    assert run.steps_to_target is None and not run.diverged


def test_a_diverging_run_is_caught_and_counted():
    run = run_one(SETTINGS, lr=1e200, batch_norm=True, seed=0)
    assert run.diverged and run.test_accuracy is None and run.steps_to_target is None


def test_nan_predictions_at_the_end_count_as_divergence(monkeypatch):
    monkeypatch.setattr(dp.nn.models.MLP, "predict_proba", lambda self, x: np.full((len(x), 1), np.nan))
    assert run_one(SETTINGS, lr=0.03, batch_norm=False, seed=0).diverged


def runs(lr, batch_norm, accuracies, steps):
    """Runs with the given outcomes; an accuracy of None is a diverged run."""
    return [
        Run(lr, batch_norm, seed, accuracy, step if accuracy is not None else None, accuracy is None)
        for seed, (accuracy, step) in enumerate(zip(accuracies, steps))
    ]


def test_summarize_groups_runs_by_learning_rate_and_setting():
    cells = summarize(
        runs(0.1, False, [0.9, 0.8, 0.95, None], [10, None, 20, None])
        + runs(0.01, True, [0.97, 0.96, 0.98, 0.99], [40, 30, 20, 10])
        + runs(0.1, True, [0.97, None, None, None], [5, 5, 5, 5])
    )
    assert [(c.lr, c.batch_norm) for c in cells] == [(0.01, True), (0.1, True), (0.1, False)]
    clean, mostly_diverged, mixed = cells
    assert (clean.median_accuracy, clean.worst_accuracy, clean.median_steps, clean.reached) == (0.975, 0.96, 25, 4)
    assert (mixed.runs, mixed.diverged, mixed.accuracies) == (4, 1, (0.9, 0.8, 0.95))  # diverged: not in accuracy
    assert (mixed.median_accuracy, mixed.worst_accuracy, mixed.reached) == (0.9, 0.8, 2)
    assert mixed.median_steps is None  # the median of 10, 20, never, never is "never"
    assert (mostly_diverged.diverged, mostly_diverged.reached) == (3, 1)  # diverged runs never reach the target


def test_a_cell_where_every_run_diverged_has_no_accuracy():
    cell = Cell(1.0, True, runs=2, diverged=2, accuracies=(), steps_to_target=(np.inf, np.inf))
    assert cell.median_accuracy is None and cell.worst_accuracy is None and cell.median_steps is None


def test_the_table_has_one_row_per_cell_in_markdown():
    cells = summarize(runs(0.3, True, [0.95, None], [15, None]) + runs(0.3, False, [0.97, 0.96], [10, 20]))
    header, rule, *rows = markdown_table(cells, target=0.95, steps=300).splitlines()
    assert header.count("|") == rule.count("|") == 8 and "95 % val. accuracy" in header
    assert rows == [
        "| 0.3 | yes | 95.0 % | 95.0 % | > 300 | 1/2 | 1/2 |",  # half the runs got there: no median
        "| 0.3 | no | 96.5 % | 96.0 % | 15 | 2/2 | 0/2 |",
    ]
    never = summarize(runs(3, False, [0.6, None], [None, None]))
    assert (
        markdown_table(never, target=0.95, steps=300).splitlines()[-1]
        == "| 3 | no | 60.0 % | 60.0 % | > 300 | 0/2 | 1/2 |"
    )


@pytest.mark.parametrize("backend, jobs", [("loky", 2), ("threading", 2)])
def test_the_sweep_gives_the_same_runs_on_any_backend(backend, jobs):
    settings = Settings(**{**SETTINGS.__dict__, "steps": 10})
    one_by_one = sweep(settings, lrs=[0.01, 0.1], seeds=[0, 1], jobs=1)
    assert len(one_by_one) == 8
    assert {(r.lr, r.batch_norm, r.seed) for r in one_by_one} == {
        (lr, bn, s) for lr in (0.01, 0.1) for bn in (True, False) for s in (0, 1)
    }
    with parallel_config(backend=backend):
        assert sweep(settings, lrs=[0.01, 0.1], seeds=[0, 1], jobs=jobs) == one_by_one
