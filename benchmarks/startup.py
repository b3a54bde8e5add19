"""Start-up: what importing dp and its heavy dependencies costs, and what `dp train` loads.

    PYTHONPATH=src python benchmarks/startup.py [--runs 5]

Each figure is the best of ``--runs`` fresh interpreters (the first of which also warms
the disk cache and writes the bytecode caches: they run with ``PYTHONDONTWRITEBYTECODE``
unset, as an installed package runs, whose modules pip compiled when it installed them;
without the caches every start compiles dp's 8,000 lines again, about 50 ms here):

- the import time of each module, from ``python -X importtime -c "import <module>"``
  (the cumulative microseconds of its own line: itself and everything it imports,
  without the interpreter's start);
- the wall time of ``python -c pass`` (the interpreter alone), of ``python -c "import dp"``
  and of the whole ``dp train`` (imports, data, 300 steps, evaluation, report);
- which heavy packages ``import dp`` and ``dp train`` leave in ``sys.modules`` (none is
  the goal: tests/test_cli.py checks it too).

A Markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

MODULES = (  # the core, then what each extra brings
    "numpy",
    "dp",
    "dp.cli",
    "tqdm",
    "joblib",
    "matplotlib.pyplot",
    "sklearn.datasets",
    "mlxtend.data",
    "dp.tools.plots",
    "dp.tools.sklearn",
    "dp.studies.ioffe2015",
)
ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
HEAVY = ("matplotlib", "sklearn", "scipy", "mlxtend", "joblib", "tqdm", "dask", "pandas", "threadpoolctl")
LOADED = (
    "import sys, io, contextlib{setup}\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    {work}\n"
    "print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))"
)


def import_seconds(module: str, runs: int) -> float | None:
    """The best cumulative import time of ``module`` in a fresh interpreter, or None if it is not installed."""
    best = None
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=ENVIRONMENT,
        )
        if done.returncode != 0:
            return None
        line = next(line for line in reversed(done.stderr.splitlines()) if line.rstrip().endswith(f"| {module}"))
        seconds = int(line.split("|")[1]) / 1e6
        best = seconds if best is None else min(best, seconds)
    return best


def wall_seconds(argv: Sequence[str], runs: int) -> float:
    """The best wall time of running ``argv``, output discarded."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=ENVIRONMENT)
        best = min(best, time.perf_counter() - start)
    return best


def heavy_loaded(setup: str, work: str) -> str:
    """The heavy packages in ``sys.modules`` after ``work`` (after ``setup``), comma-separated."""
    code = LOADED.format(setup=setup, work=work, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENVIRONMENT)
    return done.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per figure (the best is kept)")
    runs = parser.parse_args(argv).runs
    print(f"Python {sys.version.split()[0]}; best of {runs} fresh interpreters\n")
    print("| module | import ms (itself and what it imports) |")
    print("|---|--:|")
    for module in MODULES:
        seconds = import_seconds(module, runs)
        print(f"| {module} | {'not installed' if seconds is None else f'{seconds * 1e3:,.0f}'} |")
    train = [sys.executable, "-m", "dp", "train"]
    print("\n| command | wall ms | heavy packages loaded |")
    print("|---|--:|---|")
    print(f"| python -c pass | {wall_seconds([sys.executable, '-c', 'pass'], runs) * 1e3:,.0f} | |")
    loaded = heavy_loaded("", "import dp") or "none"
    print(
        f"| python -c 'import dp' | {wall_seconds([sys.executable, '-c', 'import dp'], runs) * 1e3:,.0f} | {loaded} |"
    )
    loaded = heavy_loaded("\nimport dp.cli", "dp.cli.main(['train'])") or "none"
    print(f"| dp train | {wall_seconds(train, runs) * 1e3:,.0f} | {loaded} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
