"""Training histories and final parameters of the seed and paper workloads, to hold a rewrite
of the training path to the numbers of the code before it.

    PYTHONPATH=src python benchmarks/histories.py --out tests/data/histories_03eca92.npz [--paper-steps 300]

Runs (one BLAS thread): the reference network (`dp.MLP()`, breast cancer, seed 0's split,
300 steps of 50 rows, cosine schedule) with and without batch norm under SGD, Momentum,
RMSProp and Adam, and in float64 and float32 under Adam; the paper's MNIST network
(784-100-100-100-10, sigmoid, N(0, 0.01^2), SGD lr 0.5 on the mean loss of 60 rows) with and
without batch norm. Saved per run: the loss and training-accuracy history and, for the
reference network, every final parameter (for the paper's network, each parameter's sum and
sum of squares). Only the public API is used, so the same script runs on older commits:
tests/data/histories_03eca92.npz was written by it at commit 03eca92, before `fit` took
every step through the graph; tests/test_histories.py compares today's runs with it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

import numpy as np

import dp
from dp.optim import SGD, Adam, Momentum, RMSProp
from dp.train import fit

OPTIMIZERS = {"sgd": lambda: SGD(lr=0.01), "momentum": lambda: Momentum(lr=0.01), "rmsprop": lambda: RMSProp(lr=0.001),
              "adam": lambda: Adam(lr=0.003)}  # fmt: skip


def seed_runs() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """The reference network's runs: (name, {entry: array})."""
    split = dp.data.breast_cancer(test_size=0.2, seed=0)
    settings = [(f"seed-{name}-{'bn' if bn else 'plain'}", name, bn, np.float64) for name in OPTIMIZERS
                for bn in (True, False)] + [("seed-adam-bn-float32", "adam", True, np.float32)]  # fmt: skip
    for run, name, batch_norm, dtype in settings:
        model = dp.MLP(batch_norm=batch_norm, dtype=dtype)
        history = fit(model, split.x_train, split.y_train, OPTIMIZERS[name](), steps=300, batch_size=50,
                      schedule="cosine", progress=False)  # fmt: skip
        yield run, {**_history(history), **{f"param/{k}": v for k, v in model.params.items()}}


def paper_runs(steps: int) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """The paper's MNIST network, with and without batch norm: (name, {entry: array})."""
    split = dp.data.mnist(test_size=0.2, seed=1)
    for batch_norm in (True, False):
        model = dp.MLP((784, 100, 100, 100, 10), batch_norm=batch_norm, activation="sigmoid", seed=1, init="normal",
                       init_std=0.01)  # fmt: skip
        history = fit(model, split.x_train, split.y_train, SGD(lr=0.5), steps=steps, batch_size=60, seed=1,
                      reduction="mean", eval_every=50, score_rows=100, progress=False)  # fmt: skip
        sums = {f"sum/{k}": np.array([v.sum(), (v * v).sum()]) for k, v in model.params.items()}
        yield f"paper-{'bn' if batch_norm else 'plain'}", {**_history(history), **sums}


def _history(history: dp.train.History) -> dict[str, np.ndarray]:
    return {"loss": np.array(history.loss), "train_accuracy": np.array(history.train_accuracy)}


def all_runs(paper_steps: int) -> dict[str, np.ndarray]:
    """Every run's entries, keyed ``run/entry``."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1):
        runs = [*seed_runs(), *paper_runs(paper_steps)]
    return {f"{run}/{key}": value for run, entries in runs for key, value in entries.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--paper-steps", type=int, default=300)
    arguments = parser.parse_args(argv)
    np.savez_compressed(arguments.out, paper_steps=arguments.paper_steps, **all_runs(arguments.paper_steps))
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
