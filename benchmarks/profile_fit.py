"""Where `fit`'s time goes on the paper's network: a cProfile of `dp.train.fit`, as a Markdown table.

    PYTHONPATH=src python benchmarks/profile_fit.py [--steps 300] [--rows 15] [--out docs/speed/profile.md]

The network of benchmarks/step.py's ``paper`` workload (784-100-100-100-10, batch norm, sigmoid,
softmax cross-entropy, SGD), trained by `dp.train.fit` on the workload's rows (evaluated once, at
the end), one BLAS thread.
The table lists the functions with the most time of their own (``tottime``) and, for the
engine's and the layers' entry points, the time under them (``cumtime``); cProfile's own cost
inflates the share of small Python functions, so read it for where the time goes, not for
absolute times (benchmarks/step.py measures those).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Sequence
from pathlib import Path

import dp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step as bench  # noqa: E402  # the workloads

PACKAGE = str(Path(dp.__file__).parent) + "/"  # dp's files as the profiler names them, in src/ or installed
ENTRY_POINTS = ("train_step", "loss", "grad", "step", "forward", "vjp", "batch_norm_closed_form", "apply")


def profile(steps: int) -> pstats.Stats:
    """cProfile's statistics of `fit` on the paper workload for ``steps`` steps."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    workload = bench.WORKLOADS["paper"]
    x, y = workload.data()
    model = bench.model_for(workload)
    with threadpool_limits(limits=1):
        profiler = cProfile.Profile()
        profiler.enable()
        dp.train.fit(model, x, y, dp.optim.SGD(lr=workload.lr), steps=steps, batch_size=len(x), eval_every=steps,
                     progress=False)  # fmt: skip
        profiler.disable()
    return pstats.Stats(profiler)


def table(stats: pstats.Stats, rows: int) -> str:
    """The ``rows`` functions with the most own time, then the entry points' time under them."""
    entries = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, calls, tottime, cumtime, callers)}
    total = sum(own for _, _, own, _, _ in entries.values())

    def where(key: tuple[str, int, str]) -> str:
        path, line, name = key
        short = path[len(PACKAGE) :] if path.startswith(PACKAGE) else Path(path).name if path != "~" else ""
        return f"`{name}` ({short}:{line})" if short else f"`{name}`"

    by_own = sorted(entries.items(), key=lambda item: -item[1][2])[:rows]
    lines = ["| function | calls | own time, % of all | time under it, % of all |", "|---|--:|--:|--:|"]
    lines += [f"| {where(k)} | {v[1]:,} | {100 * v[2] / total:.1f} | {100 * v[3] / total:.1f} |" for k, v in by_own]
    shown = dict(by_own)
    under = [(k, v) for k, v in entries.items() if k[2] in ENTRY_POINTS and k[0].startswith(PACKAGE) and k not in shown]
    lines += [f"| {where(k)} | {v[1]:,} | {100 * v[2] / total:.1f} | {100 * v[3] / total:.1f} |"
              for k, v in sorted(under, key=lambda item: -item[1][3])]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--out", default=None, help="also write the table into this file")
    arguments = parser.parse_args(argv)
    text = table(profile(arguments.steps), arguments.rows)
    print(text)
    if arguments.out:
        command = " ".join(["python benchmarks/profile_fit.py", *(argv if argv is not None else sys.argv[1:])])
        Path(arguments.out).write_text(f"`{command}`\n\n{bench.machine_info()}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
