"""`dp paper [STUDY]`: the command line of the reproductions in `dp.studies`.

    dp paper [ioffe2015] [--quick ...]    the batch-norm paper's MNIST experiment (the default)
    dp paper wu2018 [--batch-sizes ...]   Wu & He's Figure 1: normalizations against the batch size
    dp paper santurkar2018 [--quick ...]  how batch norm helps optimization: noise, covariate shift, landscape

Each study is a function of the parsed arguments in `STUDIES`; the options every study takes
(--quick, --data, --seed, --seeds, --jobs, --out) are shared, the others belong to one study
and are refused with another (`STUDY_OPTIONS`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from dp.cli.arguments import FOLDERS_RULE, at_least, jobs, learning_rates, make_folders_for, output_folder, positive
from dp.studies import santurkar2018, wu2018
from dp.studies.ioffe2015 import (
    BATCH,
    CNN_LR,
    DEFAULT_EXPERIMENTS,
    DEFAULT_LRS,
    EXPERIMENTS,
    FULL,
    QUICK,
    QUICK_LRS,
    Budget,
    plan,
    report,
    sweep,
)


def add_command(commands: Any) -> None:
    """Register `dp paper` on the `dp` command's subparsers."""
    parser = commands.add_parser(
        "paper",
        help="reproduce batch norm's MNIST experiment (Ioffe & Szegedy, Figure 1) and more",
        description="STUDY is one of: "
        + "; ".join(f"{name}, {what}" for name, (what, _) in STUDIES.items())
        + f". ioffe2015 (the default): Figure 1 of the batch-norm paper (test accuracy and sigmoid-input "
        "percentiles over training), the learning-rate claim and a deep sigmoid network, with and without batch "
        f"norm. Default budget: Figure 1 at the paper's {FULL.figure_steps:,} steps, the others "
        f"{FULL.sweep_steps:,} steps, {FULL.seeds} seeds (about 15-30 minutes on 2 cores); --quick: a few "
        "minutes' worth in under 2 minutes. santurkar2018: standard, batch-norm and noisy batch-norm networks, the "
        "internal covariate shift of their Definition 2.1 and the landscape along the gradient; "
        f"{santurkar2018.FULL.steps:,} steps, {santurkar2018.FULL.seeds} seeds (about 5-15 minutes on 2 cores); "
        f"--quick {santurkar2018.QUICK.steps:,} steps, {santurkar2018.QUICK.seeds} seeds (under a minute). "
        "santurkar2018 and wu2018 also write monitor.md and monitor.png: what dp.train.Monitor saw inside the "
        "layers of some of their runs (the first seed's).",
    )
    parser.add_argument(
        "study", nargs="?", default="ioffe2015", choices=tuple(STUDIES), help="the study to run (%(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="a reduced budget with the same qualitative result")
    parser.add_argument("--data", choices=("mnist", "digits"), default="mnist", help="the images (%(default)s)")
    parser.add_argument(
        "--seeds",
        type=positive(int),
        help=f"seeds per setting (ioffe2015 {FULL.seeds}, wu2018 {wu2018.FULL.seeds}; quick {QUICK.seeds})",
    )
    parser.add_argument("--seed", type=positive(int), default=1, help="the first seed (%(default)s)")
    parser.add_argument("--weight-std", type=positive(float), help="ioffe2015: initial weights N(0, std^2) (0.01)")
    parser.add_argument(
        "--lrs",
        type=learning_rates,
        help="ioffe2015: the learning rates of the sweep ("
        + ",".join(f"{lr:g}" for lr in DEFAULT_LRS)
        + "; quick: "
        + ",".join(f"{lr:g}" for lr in QUICK_LRS)
        + ")",
    )
    parser.add_argument(
        "--experiments",
        type=_experiments,
        help="ioffe2015: comma-separated, from "
        + ",".join(EXPERIMENTS)
        + " ("
        + ",".join(DEFAULT_EXPERIMENTS)
        + "; cnn, the "
        "same comparison with dp.CNN, on request)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        help="wu2018: comma-separated batch sizes, each from 2 to the training rows ("
        + ",".join(map(str, wu2018.BATCH_SIZES))
        + f"); budget: {wu2018.FULL.epochs} epochs over {wu2018.FULL.rows:,} rows, {wu2018.FULL.seeds} seeds (about "
        f"10-15 minutes on 2 cores); quick: {wu2018.QUICK.epochs} epoch over {wu2018.QUICK.rows:,} rows, "
        f"{wu2018.QUICK.seeds} seeds",
    )
    parser.add_argument("--jobs", type=jobs, default=-1, help="parallel workers, joblib's n_jobs (-1: all cores)")
    parser.add_argument(
        "--out",
        type=output_folder,
        default="paper",
        help=f"folder for the tables and figures (%(default)s; {FOLDERS_RULE})",
    )
    parser.set_defaults(run=_paper)


def _paper(args: argparse.Namespace) -> int:
    """Run the study the arguments name, after refusing the options of another study."""
    given = [
        option
        for option, study in STUDY_OPTIONS.items()
        if getattr(args, option, None) is not None and study != args.study
    ]
    if given:
        flags = ", ".join("--" + option.replace("_", "-") for option in given)
        raise ValueError(f"{flags}: an option of {STUDY_OPTIONS[given[0]]}, not of {args.study}")
    return STUDIES[args.study][1](args)


def _experiments(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown experiment {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}"
        )
    return names


def _batch_sizes(text: str) -> tuple[int, ...]:
    """An argparse ``type``: comma-separated whole numbers, each >= 2 (a batch of one cannot
    be batch-normalized); the upper bound, the training rows, is checked with the data."""
    parse = at_least(int, 2)
    try:
        return tuple(parse(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def _ioffe2015(args: argparse.Namespace) -> int:
    """`dp paper ioffe2015`: Figure 1, the learning rates, the deep network (and the CNN on request)."""
    budget = _budget(args, QUICK, FULL)
    lrs = args.lrs or (QUICK_LRS if args.quick else DEFAULT_LRS)
    args.weight_std = 0.01 if args.weight_std is None else args.weight_std
    args.experiments = args.experiments or DEFAULT_EXPERIMENTS
    runs = plan(budget, args.data, args.weight_std, lrs, args.seed, args.experiments)
    _require_data(args.data)
    return _sweep_and_report(args, runs, budget, _header(args, budget, len(runs)), (sweep, report))


def _budget(args: argparse.Namespace, quick: Any, full: Any) -> Any:
    """A study's budget: ``quick`` with --quick, else ``full``, with --seeds seeds if given."""
    budget = quick if args.quick else full
    return dataclasses.replace(budget, seeds=args.seeds) if args.seeds else budget


def _sweep_and_report(args: argparse.Namespace, runs: Any, budget: Any, header: str, study: tuple[Any, Any]) -> int:
    """What every study does with its runs: print the settings, make the output folder, run them
    (``study`` = its sweep and report functions), write and print each table, say how long it took."""
    sweep_runs, report_results = study
    out = make_folders_for(args.out, folder=True)
    print(header, flush=True)
    start = time.perf_counter()
    results = sweep_runs(runs, args.jobs, progress=sys.stderr.isatty())
    for text in report_results(results, budget, out, header):
        print(text)
    print(f"\n{len(runs)} runs in {time.perf_counter() - start:.0f} s; tables and figures in {out}/")
    return 0


def _require_data(data: str) -> None:
    """Load the data set once before any work, so that a missing package (an ``ImportError``
    naming the extra to install, `dp.data.mnist`) stops the command before it makes the output
    folder and starts the runs, where it would surface late, once per run, from a worker."""
    from dp import data as datasets

    getattr(datasets, data)()


def _header(args: argparse.Namespace, budget: Budget, runs: int) -> str:
    return (
        f"dp paper: {args.data}, {runs} runs, seeds {args.seed}-{args.seed + budget.seeds - 1}; SGD on the mean loss "
        f"of {BATCH} rows; Figure 1: {budget.figure_steps:,} steps, lr 0.5, weights N(0, {args.weight_std:g}^2); "
        f"learning rates: {budget.sweep_steps:,} steps; deep: {budget.deep_steps:,} steps"
        + (f"; cnn: {budget.cnn_steps:,} steps, lr {CNN_LR:g}" if "cnn" in args.experiments else "")
    )


def _wu2018(args: argparse.Namespace) -> int:
    """`dp paper wu2018`: test accuracy against the batch size, five normalizations."""
    budget = _budget(args, wu2018.QUICK, wu2018.FULL)
    _require_data(args.data)
    rows = wu2018.training_rows(args.data, budget)
    runs = wu2018.plan(budget, args.data, rows, args.seed, args.batch_sizes or wu2018.BATCH_SIZES)
    header = (
        f"dp paper wu2018: {args.data}, {len(runs)} runs, seeds {args.seed}-{args.seed + budget.seeds - 1}; "
        f"{budget.epochs} epoch(s) over {rows:,} training rows (at most {budget.max_steps:,} steps); SGD with "
        f"momentum {wu2018.MOMENTUM:g} on the mean loss, lr {wu2018.BASE_LR:g} * batch / {wu2018.BASE_BATCH}; group "
        f"norm in {wu2018.GROUPS} groups; renorm rmax {wu2018.RMAX:g}, dmax {wu2018.DMAX:g}, opened over the first "
        f"{wu2018.RENORM_WARMUP:.0%} of the steps; eval mode"
    )
    return _sweep_and_report(args, runs, budget, header, (wu2018.sweep, wu2018.report))


def _santurkar2018(args: argparse.Namespace) -> int:
    """`dp paper santurkar2018`: standard, batch-norm and noisy batch-norm networks; the internal
    covariate shift of Definition 2.1; the landscape along the gradient."""
    study = santurkar2018
    budget = _budget(args, study.QUICK, study.FULL)
    runs = study.plan(budget, args.data, args.seed)
    _require_data(args.data)
    header = (
        f"dp paper santurkar2018: {args.data}, {len(runs)} runs, seeds {args.seed}-{args.seed + budget.seeds - 1}; "
        f"MLP {'-'.join(map(str, runs[0].sizes))}, {study.ACTIVATION}, {study.INIT} init; SGD on the mean loss of "
        f"{study.BATCH} rows, lr {study.LR:g}, {budget.steps:,} steps; noise: scale U(1, {study.NOISE_SCALE:g}), "
        f"shift U(-{study.NOISE_SHIFT:g}, {study.NOISE_SHIFT:g}) per unit and step, jitter N(0, "
        f"{study.NOISE_JITTER:g}^2) per sample"
    )
    return _sweep_and_report(args, runs, budget, header, (study.sweep, study.report))


# study -> (what it reproduces, the function that runs it)
STUDIES: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "ioffe2015": ("Ioffe & Szegedy (2015), batch norm's MNIST experiment", _ioffe2015),
    "wu2018": ("Wu & He (2018), normalization against the batch size", _wu2018),
    "santurkar2018": ("Santurkar et al. (2018), how batch norm helps optimization", _santurkar2018),
}
# option (its argparse dest) -> the study it belongs to: refused with any other
STUDY_OPTIONS = {
    "weight_std": "ioffe2015",
    "lrs": "ioffe2015",
    "experiments": "ioffe2015",
    "batch_sizes": "wu2018",
}
