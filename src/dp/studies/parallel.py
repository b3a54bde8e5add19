"""The sweep the studies share: independent runs, each a picklable value, through joblib
(the caller's ``joblib.parallel_config`` backend, local processes by default), each run with
one BLAS thread wherever it runs, in order, with one progress bar. The runs themselves are
the parallel work: a BLAS pool per run would only fight the others for the cores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

R = TypeVar("R")
T = TypeVar("T")


def one_blas_thread(work: Callable[[R], T], run: R) -> T:
    """``work(run)`` with BLAS limited to one thread (threadpoolctl)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1):
        return work(run)


def sweep(work: Callable[[R], T], runs: Sequence[R], jobs: int, progress: bool, desc: str = "dp paper") -> list[T]:
    """``[work(run) for run in runs]``, each in `one_blas_thread`, through ``joblib.Parallel``
    with ``n_jobs=jobs``; ``work`` must be a module-level function (it is pickled by name)."""
    from joblib import Parallel, delayed  # type: ignore[import-untyped]

    bar = _bar(len(runs), progress, desc)
    collected = []
    for result in Parallel(n_jobs=jobs, return_as="generator")(delayed(one_blas_thread)(work, run) for run in runs):
        collected.append(result)
        bar.update(1)
    bar.close()
    return collected


def _bar(total: int, progress: bool, desc: str) -> Any:
    if not progress:
        from dp.train import _NoBar

        return _NoBar()
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True)
