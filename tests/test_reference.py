"""The reference runs that `dp train`, its figures, `dp experiment` and the accuracy
benchmark share: the network and split they train on, `dp train`'s defaults, and the
runs behind the figures, diverged ones included."""

import dataclasses

import numpy as np
import pytest

from dp import data
from dp.nn.models import MLP
from dp.optim import Adam
from dp.studies.reference import (
    FIGURE_EVAL_EVERY,
    TEST_SIZE,
    Recipe,
    batch_norm_comparison,
    split_with_validation,
    train_network,
)
from dp.train import fit


def test_the_recipe_defaults_are_dp_train_s():
    assert dataclasses.asdict(Recipe()) == dict(
        steps=300, lr=0.003, batch_size=50, optimizer="adam", schedule="cosine", seed=0
    )


def test_train_network_is_fit_on_a_fresh_reference_network_with_the_recipe():
    split = data.breast_cancer(test_size=TEST_SIZE, seed=2)
    model, optimizer, history = train_network(split, True, Recipe(steps=30, lr=0.01, seed=2), progress=False)
    again = MLP(seed=2)
    expected = fit(
        again, split.x_train, split.y_train, Adam(lr=0.01), steps=30, seed=2, schedule="cosine", progress=False
    )
    assert isinstance(optimizer, Adam) and optimizer.lr == 0.01
    assert all(model.params[k].tobytes() == again.params[k].tobytes() for k in again.params)
    assert (history.step, history.loss, history.val_accuracy) == (expected.step, expected.loss, [])


def test_train_network_evaluates_the_validation_rows_of_a_split_that_has_them():
    split = split_with_validation(seed=0)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (370, 86, 113)
    _, _, history = train_network(split, False, Recipe(steps=10, seed=0), eval_every=5, progress=False)
    assert history.step == [5, 10] and len(history.val_accuracy) == 2


def test_the_comparison_records_both_histories_and_the_first_and_last_parameters():
    histories, snapshots = batch_norm_comparison(split_with_validation(seed=0), Recipe(steps=12, seed=0))
    assert histories[True].step == histories[False].step == [FIGURE_EVAL_EVERY, 2 * FIGURE_EVAL_EVERY, 12]
    assert sorted(snapshots) == [1, 12] and "gamma_bn2" in snapshots[12]
    assert not np.array_equal(snapshots[1]["weight_l2"], snapshots[12]["weight_l2"])


def test_the_comparison_keeps_a_diverged_run_up_to_where_it_stopped():
    recipe = Recipe(steps=5, lr=1e200, optimizer="sgd", schedule="constant", seed=0)
    histories, snapshots = batch_norm_comparison(split_with_validation(seed=0), recipe)
    assert histories[True].diverged and histories[True].step == []  # batch norm diverges at step 2
    assert sorted(snapshots) == [1]


@pytest.mark.parametrize("field", ["steps", "batch_size"])
def test_a_recipe_fit_refuses_is_refused_by_fit(field):
    with pytest.raises(ValueError, match=f"{field} must be a whole number"):
        train_network(split_with_validation(seed=0), True, dataclasses.replace(Recipe(), **{field: 0}))
