"""How good and how fast is `dp train` with its defaults? (docs/training.md reports the result.)

    PYTHONPATH=src python benchmarks/accuracy.py [--seeds 20] [--timing-runs 10]

Accuracy: the test accuracy of the default `dp train` on the splits of seeds
0, 1, ..., beside scikit-learn's logistic regression and MLPClassifier on exactly
the same splits (`dp.data.breast_cancer(seed=s)`: the same training and test
rows, standardized the same way). Time: the wall time of the whole command,
``python -m dp train --quiet`` in a new process, imports included.
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

from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from dp import data
from dp.cli import main as dp_command


def dp_train_accuracy(seed: int) -> float:
    """The test accuracy `dp train --seed SEED` prints, run in this process."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = dp_command(["train", "--quiet", "--seed", str(seed)])
    if status != 0:
        raise RuntimeError(f"dp train --seed {seed} failed with status {status}")
    return float(output.getvalue().split()[-1])  # "test accuracy 0.9735"


def sklearn_accuracy(model, seed: int) -> float:
    split = data.breast_cancer(seed=seed)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="splits 0 .. SEEDS-1 (20)")
    parser.add_argument("--timing-runs", type=int, default=10, help="runs of the command to time (10)")
    args = parser.parse_args(argv)
    seeds = range(args.seeds)
    results = {
        "dp train (defaults)": [dp_train_accuracy(s) for s in seeds],
        "LogisticRegression(max_iter=5000)": [sklearn_accuracy(LogisticRegression(max_iter=5000), s) for s in seeds],
        "MLPClassifier(random_state=seed, max_iter=2000)": [
            sklearn_accuracy(MLPClassifier(random_state=s, max_iter=2000), s) for s in seeds
        ],
    }
    print(f"Test accuracy on the splits of seeds {seeds.start}-{seeds.stop - 1} (113 test rows each)\n")
    print("| model | median | mean | worst | best |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, accuracies in results.items():
        summary = (statistics.median(accuracies), statistics.mean(accuracies), min(accuracies), max(accuracies))
        print(f"| {name} | " + " | ".join(f"{100 * a:.2f} %" for a in summary) + " |")
    print("\nPer seed (correct test rows of 113):\n")
    print("| seed | " + " | ".join(results) + " |")
    print("| ---: |" + " ---: |" * len(results))
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(f"{round(113 * a[i])}" for a in results.values()) + " |")
    times = command_seconds(args.timing_runs)
    print(
        f"\n`python -m dp train --quiet`, {len(times)} runs: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s (wall time, new process, imports included)"
    )


if __name__ == "__main__":
    main()
