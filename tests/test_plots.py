"""Figures: the hidden-layer values they draw are the network's own, computing them does
not disturb training, and every figure is written as a PNG, diverged runs included."""

from argparse import Namespace

import numpy as np
import pytest

from dp import data, plots
from dp.experiment import Cell
from dp.models import MLP
from dp.optim import Adam
from dp.train import fit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def split():
    return data.breast_cancer(validation_size=0.15, seed=0)


def trained(split, steps=20, on_step=None):
    model = MLP(seed=0)
    fit(model, split, Adam(lr=0.01), steps=steps, progress=False, on_step=on_step)
    return model


def test_second_layer_values_are_those_the_network_computes_on_the_whole_batch(split):
    model = trained(split)
    before, after = plots._second_layer(split.x_train, model.params)
    logits = np.tanh(after) @ model.params["weight_l3"] + model.params["bias_l3"]
    np.testing.assert_allclose(logits, model.logits(split.x_train, train=True).value, rtol=1e-12, atol=1e-12)
    assert before.shape == after.shape == (len(split.x_train), 10)


def test_after_batch_norm_each_unit_has_mean_beta_and_deviation_gamma(split):
    params = trained(split).params
    _, after = plots._second_layer(split.x_train, params)
    np.testing.assert_allclose(after.mean(axis=0, keepdims=True), params["beta_bn2"], atol=1e-12)
    np.testing.assert_allclose(after.std(axis=0, keepdims=True), np.abs(params["gamma_bn2"]), rtol=1e-3)


def test_computing_the_histograms_values_does_not_disturb_training(split):
    plain = trained(split)
    watched = trained(split, on_step=lambda step, model: plots._second_layer(split.x_train, model.params))
    for name, value in plain.params.items():
        assert value.tobytes() == watched.params[name].tobytes(), name


def test_training_figures_draw_a_diverged_run_up_to_where_it_stopped(tmp_path):
    options = Namespace(steps=5, lr=1e200, batch_size=50, optimizer="sgd", schedule="constant", seed=0)
    paths = plots.training_figures(tmp_path / "new" / "directory", options)  # batch norm diverges at step 2
    assert [p.name for p in paths] == ["training_curves.png"]  # and no histograms of its huge values
    assert paths[0].read_bytes().startswith(PNG_SIGNATURE)


def test_experiment_figure_is_written_with_diverged_and_unreached_cells(tmp_path):
    def cell(lr, batch_norm, accuracies, steps, diverged=0):
        return Cell(lr, batch_norm, runs=4, diverged=diverged, accuracies=accuracies, steps_to_target=steps)

    cells = [
        cell(0.01, True, (0.97, 0.96, 0.98, 0.95), (20, 25, 30, 35)),
        cell(0.01, False, (0.96, 0.96, 0.97, 0.95), (30, 30, 40, np.inf)),
        cell(1.0, True, (0.90, 0.80), (np.inf,) * 4, diverged=2),
        cell(1.0, False, (), (np.inf,) * 4, diverged=4),
    ]
    path = plots.experiment_figure(tmp_path / "sweep.png", cells, target=0.95, settings="made-up cells")
    assert path == tmp_path / "sweep.png" and path.read_bytes().startswith(PNG_SIGNATURE)
