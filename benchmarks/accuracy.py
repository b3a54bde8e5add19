"""How good and how fast is `dp train` with its defaults? (docs/training.md reports the result.)

    PYTHONPATH=src python benchmarks/accuracy.py [--first-seed 0] [--seeds 20] [--timing-runs 10]

Accuracy: the test accuracy of the default `dp train` on the splits of seeds
FIRST-SEED, FIRST-SEED + 1, ..., beside scikit-learn's logistic regression, RBF
support-vector machine and MLPClassifier, and beside five `dp train` networks
whose probabilities are averaged, all on exactly the same splits
(`dp.data.breast_cancer(seed=s)`: the same training and test rows, standardized
the same way). The ensemble is there to measure, not to ship: if averaging five
networks does not help, the errors left are in the data, not in one network's
luck. Besides median, mean, worst and best, the table gives the mean number of
test rows wrong and how many splits have at most two wrong, which is what a
median of at least 97.5 % on 113 test rows needs on half the splits.
Time: the wall time of the whole command, ``python -m dp train --quiet`` in a
new process, imports included.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from dp import data
from dp.cli import main as dp_command
from dp.nn.module import classes
from dp.studies.reference import TEST_SIZE, Recipe, train_network

ENSEMBLE_SIZE = 5


def dp_train_accuracy(seed: int) -> float:
    """The test accuracy `dp train --seed SEED` prints, run in this process."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = dp_command(["train", "--quiet", "--seed", str(seed)])
    if status != 0:
        raise RuntimeError(f"dp train --seed {seed} failed with status {status}")
    return float(output.getvalue().split()[-2]) / 100  # "test accuracy 97.35 %"


def dp_ensemble_accuracy(seed: int) -> float:
    """Five default `dp train` networks on the split of ``seed`` (initial weights and
    batch order from seeds 1000 * seed + 0 .. 4), their probabilities averaged."""
    split = data.breast_cancer(test_size=TEST_SIZE, seed=seed)
    probabilities = 0.0
    for member in range(ENSEMBLE_SIZE):
        model, _, _ = train_network(split, True, Recipe(seed=1000 * seed + member), progress=False)
        probabilities = probabilities + model.predict_proba(split.x_test) / ENSEMBLE_SIZE
    return float(np.mean(classes(probabilities) == split.y_test))


def sklearn_accuracy(model, seed: int) -> float:
    split = data.breast_cancer(test_size=TEST_SIZE, seed=seed)
    model.fit(split.x_train, split.y_train.ravel())
    return float(model.score(split.x_test, split.y_test.ravel()))


def command_seconds(runs: int) -> list[float]:
    """Wall times of ``python -m dp train --quiet`` in new processes (dp from this checkout)."""
    source = str(Path(__file__).resolve().parents[1] / "src")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dp", "train", "--quiet"], check=True, capture_output=True, env=environment
        )
        times.append(time.perf_counter() - start)
    return times


def accuracies(seeds: range) -> dict[str, list[float]]:
    """Test accuracy per seed of every model compared, by name."""
    return {
        "dp train (defaults)": [dp_train_accuracy(s) for s in seeds],
        f"{ENSEMBLE_SIZE} dp train networks averaged": [dp_ensemble_accuracy(s) for s in seeds],
        "LogisticRegression(max_iter=5000)": [sklearn_accuracy(LogisticRegression(max_iter=5000), s) for s in seeds],
        "SVC() (RBF kernel)": [sklearn_accuracy(SVC(), s) for s in seeds],
        "MLPClassifier(random_state=seed, max_iter=2000)": [
            sklearn_accuracy(MLPClassifier(random_state=s, max_iter=2000), s) for s in seeds
        ],
    }


def report(seeds: range, results: dict[str, list[float]], test_rows: int) -> str:
    """The Markdown tables: a summary per model, then correct rows per seed."""
    lines = [
        f"Test accuracy on the splits of seeds {seeds.start}-{seeds.stop - 1} ({test_rows} test rows each)",
        "",
        "| model | median | mean | worst | best | rows wrong, mean | splits with <= 2 wrong |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, accuracy in results.items():
        summary = (statistics.median(accuracy), statistics.mean(accuracy), min(accuracy), max(accuracy))
        wrong = [round(test_rows * (1 - a)) for a in accuracy]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * a:.2f} %" for a in summary)
            + f" | {statistics.mean(wrong):.2f} | {sum(w <= 2 for w in wrong)} of {len(wrong)} |"
        )
    lines += ["", f"Per seed (correct test rows of {test_rows}):", ""]
    lines.append("| seed | " + " | ".join(results) + " |")
    lines.append("| ---: |" + " ---: |" * len(results))
    for i, seed in enumerate(seeds):
        lines.append(f"| {seed} | " + " | ".join(f"{round(test_rows * a[i])}" for a in results.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-seed", type=int, default=0, help="the first split's seed (0)")
    parser.add_argument("--seeds", type=int, default=20, help="how many splits (20)")
    parser.add_argument("--timing-runs", type=int, default=10, help="runs of the command to time, 0 for none (10)")
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    test_rows = len(data.breast_cancer(test_size=TEST_SIZE, seed=seeds.start).y_test)
    print(report(seeds, accuracies(seeds), test_rows))
    if args.timing_runs:
        times = command_seconds(args.timing_runs)
        print(
            f"\n`python -m dp train --quiet`, {len(times)} runs: median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s, max {max(times):.2f} s (wall time, new process, imports included)"
        )


if __name__ == "__main__":
    main()
