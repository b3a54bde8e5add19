"""What stands between dp's training step and the hand-written NumPy floor: dp's step with
its safeguards switched off, one at a time and all together, timed beside the floor.

    PYTHONPATH=src python benchmarks/overhead.py [--workloads seed,paper] [--repeats 5] [--min-block 0.2]

The variants (each on the workload of benchmarks/step.py, from the same parameters):

- ``floor``: benchmarks/step.py's floor of the workload (`FloorStep`; `ConvFloorStep` for the CNN).
- ``dp``: the step `dp.train.fit` takes, `dp.train.train_step` with `dp.optim.SGD`: the
  graph (``model.loss(x, y).grad(1)``), the loss checked, the checked ``optimizer.step``,
  the rollback point.
- ``no transaction``: the same step without the rollback point (`dp.train.all_or_nothing`:
  a copy of the params dict, a try).
- ``no finiteness checks``: without the checks of the batch statistics, of the gradients
  and of the update (the loss's, one float, stays).
- ``neither``: without both: what dp's step costs with no safeguard at all.
- ``gradients``, ``floor gradients``: the loss and gradients only, no update.

Switched off by replacing the functions that do them (``require_finite_statistics`` of
`dp.nn.normalization`, ``dp.optim.all_finite`` and ``dp.optim._all_finite``) for the
timed blocks of that variant only. This is a measurement, not a mode of dp: nothing here
is an option of the library. Timing as in benchmarks/step.py: interleaved rounds, the
best block of each; use one BLAS thread.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

import dp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step as bench  # noqa: E402  # benchmarks/step.py: the workloads, the floor and the timing

SWITCHES = (  # (module, name, what it becomes while switched off)
    (dp.nn.normalization, "require_finite_statistics", lambda mean, var, what: None),
    (dp.optim, "all_finite", lambda value: True),
    (dp.optim, "_all_finite", lambda *values: True),
)


@contextlib.contextmanager
def switched_off(checks: bool) -> Iterator[None]:
    """With ``checks``, dp's finiteness checks of the batch statistics, the gradients and the update do nothing."""
    if not checks:
        yield
        return
    saved = [getattr(module, name) for module, name, _ in SWITCHES]
    for module, name, stand_in in SWITCHES:
        setattr(module, name, stand_in)
    try:
        yield
    finally:
        for (module, name, _), value in zip(SWITCHES, saved):
            setattr(module, name, value)


def variants(workload: bench.AnyWorkload) -> dict[str, tuple[Callable[[], object], bool]]:
    """name -> (one step, whether the finiteness checks are off during it)."""
    x, y = workload.data()
    initial = bench.model_for(workload).get_param()
    floor = workload.implementations["floor"](workload, initial)
    floor_batch = floor.prepare(x, y)
    made = {}
    for name in ("dp", "no transaction", "no finiteness checks", "neither", "gradients"):
        step = bench.DpStep(workload, initial)
        made[name] = (step, step.prepare(x, y))

    def bare(step: bench.DpStep, batch: tuple[np.ndarray, np.ndarray]) -> Callable[[], float]:
        return lambda: dp.train._graph_step(step.model, step.optimizer, *batch, "sum")

    def full(step: bench.DpStep, batch: tuple[np.ndarray, np.ndarray]) -> Callable[[], None]:
        return lambda: step.step(batch)

    def gradients(step: bench.DpStep, batch: tuple[np.ndarray, np.ndarray]) -> Callable[[], object]:
        return lambda: step.loss_and_gradients(batch)

    return {
        "floor": (lambda: floor.step(floor_batch), False),
        "dp": (full(*made["dp"]), False),
        "no transaction": (bare(*made["no transaction"]), False),
        "no finiteness checks": (full(*made["no finiteness checks"]), True),
        "neither": (bare(*made["neither"]), True),
        "gradients": (gradients(*made["gradients"]), False),
        "floor gradients": (lambda: floor.loss_and_gradients(floor_batch), False),
    }


def best_times(steps: dict[str, tuple[Callable[[], object], bool]], repeats: int, min_block: float) -> dict[str, float]:
    """Seconds per step of each variant: the best block over ``repeats`` interleaved rounds."""
    counts = {}
    for name, (call, checks) in steps.items():
        with switched_off(checks):
            counts[name] = bench._steps_per_block(call, min_block)
    best = dict.fromkeys(steps, float("inf"))
    names = list(steps)
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            call, checks = steps[name]
            with switched_off(checks):
                best[name] = min(best[name], bench._seconds_for(call, counts[name]) / counts[name])
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="seed,paper", help="comma-separated, from benchmarks/step.py")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-block", type=float, default=0.2, help="seconds a timed block lasts at least")
    arguments = parser.parse_args(argv)
    print(bench.machine_info())
    print("\n| workload | variant | us/step | / floor (whole step) |")
    print("|---|---|--:|--:|")
    for name in arguments.workloads.split(","):
        seconds = best_times(variants(bench.WORKLOADS[name]), arguments.repeats, arguments.min_block)
        for variant, value in seconds.items():
            base = seconds["floor gradients" if variant == "gradients" else "floor"]
            ratio = f"{value / base:.2f}" if variant not in ("floor", "floor gradients") else ""
            if variant == "gradients":
                ratio += " (of floor gradients)"
            print(f"| {name} | {variant} | {value * 1e6:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
