"""The reference runs: the breast-cancer network trained the way `dp train` trains it,
and the convolutional networks of ``dp train --data mnist --model cnn`` (and digits).

`dp train`, its figures (``--plots``), `dp experiment` and ``benchmarks/accuracy.py``
train the same network on the same splits; this is where they agree on how::

    split = dp.data.breast_cancer(test_size=TEST_SIZE, seed=0)    # dp train's split
    model, optimizer, history = train_network(split, True, Recipe(seed=0))

A `Recipe` is the training settings of one run; its defaults are `dp train`'s, chosen
on splits other than the ones it reports on (docs/training.md). `WORKLOADS` holds the
recipe of each data set and model `dp train` offers (docs/cnn.md for the CNNs'), and
`workload_network` makes its network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dp import data
from dp.data import Split, breast_cancer
from dp.nn.models import CNN, MLP, Classifier
from dp.optim import Optimizer, make_optimizer
from dp.train import Diverged, History, fit

TEST_SIZE = 0.2  # dp train's held-out test part
VALIDATION_SIZE = 0.15  # the validation part of the runs that watch validation accuracy
FIGURE_EVAL_EVERY = 5  # steps between evaluations for the training figures: smooth curves at a small cost

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Recipe:
    """The settings of one training run of the reference network: ``steps`` optimizer
    steps of ``batch_size`` rows, the optimizer called ``optimizer`` (`dp.optim.make_optimizer`)
    at learning rate ``lr`` under ``schedule``, and ``seed`` for the initial weights and
    the order of the batches. The defaults are `dp train`'s."""

    steps: int = 300
    lr: float = 0.003
    batch_size: int = 50
    optimizer: str = "adam"
    schedule: str = "cosine"
    seed: int = 0


# (data, model) -> the recipe `dp train` uses for it. The CNNs' were chosen on a validation part
# of the training images of seed 1 (docs/cnn.md), never on the test images dp train reports.
WORKLOADS: dict[tuple[str, str], Recipe] = {
    ("breast_cancer", "mlp"): Recipe(),
    ("mnist", "cnn"): Recipe(steps=600, lr=0.01, batch_size=64, optimizer="adam", schedule="cosine"),
    ("digits", "cnn"): Recipe(steps=600, lr=0.01, batch_size=64, optimizer="adam", schedule="cosine"),
}
CNN_HIDDEN = (64,)  # dp train's CNN: dp.CNN with one hidden layer of 64 (LeNet's shape: two blocks, two linear layers)


def workload_data(name: str, seed: int, test_size: float = TEST_SIZE, validation_size: float = 0.0) -> Split:
    """The split `dp train` uses for the data set ``name`` (breast_cancer, mnist or digits):
    ``test_size`` of the rows held out for testing, by ``seed``."""
    load = getattr(data, name)  # looked up at each call, so that a test can stand in for a data set
    return load(test_size=test_size, validation_size=validation_size, seed=seed)


def workload_network(name: str, model: str, batch_norm: bool, recipe: Recipe) -> tuple[Classifier, Optimizer]:
    """The untrained network of `dp train --data name --model model` (with or without batch
    norm, initialized from ``recipe.seed``) and the optimizer ``recipe`` names: the reference
    MLP for breast_cancer, the default `dp.CNN` for the images' size for mnist and digits.
    ``ValueError`` for a pair `WORKLOADS` does not have."""
    if (name, model) not in WORKLOADS:
        offered = ", ".join(f"--data {d} --model {m}" for d, m in WORKLOADS)
        raise ValueError(f"dp train has no network for --data {name} --model {model}; it offers {offered}")
    if model == "mlp":
        return reference_network(batch_norm, recipe)
    network = CNN(image=data.IMAGE_SHAPES[name], hidden=CNN_HIDDEN, batch_norm=batch_norm, seed=recipe.seed)
    return network, make_optimizer(recipe.optimizer, lr=recipe.lr)


def train_network(split: Split, batch_norm: bool, recipe: Recipe, **fit_options: Any) -> tuple[MLP, Optimizer, History]:
    """A fresh reference network (`dp.nn.models.MLP`, with or without batch norm) trained on
    ``split``'s training rows as ``recipe`` says, its validation rows (if any) evaluated,
    with ``fit_options`` passed on to `dp.train.fit`. Returns (model, optimizer, history).
    Raises what `fit` raises, `dp.train.Diverged` included."""
    model, optimizer = reference_network(batch_norm, recipe)
    return model, optimizer, fit_network(model, optimizer, split, recipe, **fit_options)


def reference_network(batch_norm: bool, recipe: Recipe) -> tuple[MLP, Optimizer]:
    """The untrained reference network (with or without batch norm, initialized from
    ``recipe.seed``) and the optimizer ``recipe`` names: what `train_network` trains,
    for a caller that describes them before training (`dp train` does)."""
    return MLP(batch_norm=batch_norm, seed=recipe.seed), make_optimizer(recipe.optimizer, lr=recipe.lr)


def fit_network(model: Classifier, optimizer: Optimizer, split: Split, recipe: Recipe, **fit_options: Any) -> History:
    """Train ``model`` with ``optimizer`` (from `reference_network`) as `train_network` does;
    the history."""
    return fit(
        model,
        split.x_train,
        split.y_train,
        optimizer,
        validation=(split.x_val, split.y_val) if len(split.x_val) else None,
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        seed=recipe.seed,
        schedule=recipe.schedule,
        **fit_options,
    )


def split_with_validation(seed: int) -> Split:
    """The breast-cancer split of ``seed`` with a validation part, for the runs that
    watch validation accuracy while training (`dp experiment`, `dp train --plots`):
    20 % test rows as `dp train`, 15 % validation rows, the rest (65 %) training."""
    return breast_cancer(test_size=TEST_SIZE, validation_size=VALIDATION_SIZE, seed=seed)


def batch_norm_comparison(split: Split, recipe: Recipe) -> tuple[dict[bool, History], dict[int, Params]]:
    """What the figures of `dp train --plots` draw: the reference network trained on
    ``split`` as ``recipe`` says, with and without batch norm, evaluated every
    `FIGURE_EVAL_EVERY` steps. Returns the histories, ``{True: with batch norm, False:
    without}`` (a run that diverged up to where it stopped), and the parameters of the
    network with batch norm after its first step and after its last, ``{step: params}``
    (only the steps it finished)."""
    snapshots: dict[int, Params] = {}

    def keep_first_and_last(step: int, model: Any) -> None:
        if step in (1, recipe.steps):
            snapshots[step] = dict(model.params)  # the arrays are replaced, never changed: no copy needed

    histories = {
        True: _history(split, True, recipe, on_step=keep_first_and_last),
        False: _history(split, False, recipe),
    }
    return histories, snapshots


def _history(split: Split, batch_norm: bool, recipe: Recipe, **fit_options: Any) -> History:
    """The training history of one network; a diverged run's history up to where it stopped."""
    try:
        return train_network(split, batch_norm, recipe, eval_every=FIGURE_EVAL_EVERY, progress=False, **fit_options)[2]
    except Diverged as error:
        return error.history
