"""`dp paper [STUDY]`: the command line of the reproductions in `dp.studies`.

    dp paper [ioffe2015] [--quick ...]    the batch-norm paper's MNIST experiment (the default)
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

from dp.cli.arguments import FOLDERS_RULE, jobs, learning_rates, make_folders_for, output_folder, positive
from dp.studies import santurkar2018
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
        f"--quick {santurkar2018.QUICK.steps:,} steps, {santurkar2018.QUICK.seeds} seeds (under a minute).",
    )
    parser.add_argument(
        "study", nargs="?", default="ioffe2015", choices=tuple(STUDIES), help="the study to run (%(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="a reduced budget with the same qualitative result")
    parser.add_argument("--data", choices=("mnist", "digits"), default="mnist", help="the images (%(default)s)")
    parser.add_argument("--seeds", type=positive(int), help=f"seeds per setting ({FULL.seeds}; quick {QUICK.seeds})")
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
        option for option, study in STUDY_OPTIONS.items() if getattr(args, option) is not None and study != args.study
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


def _ioffe2015(args: argparse.Namespace) -> int:
    """`dp paper ioffe2015`: Figure 1, the learning rates, the deep network (and the CNN on request)."""
    budget = QUICK if args.quick else FULL
    if args.seeds:
        budget = dataclasses.replace(budget, seeds=args.seeds)
    lrs = args.lrs or (QUICK_LRS if args.quick else DEFAULT_LRS)
    args.weight_std = 0.01 if args.weight_std is None else args.weight_std
    args.experiments = args.experiments or DEFAULT_EXPERIMENTS
    runs = plan(budget, args.data, args.weight_std, lrs, args.seed, args.experiments)
    _require_data(args.data)
    out = make_folders_for(args.out, folder=True)
    header = _header(args, budget, len(runs))
    print(header, flush=True)
    start = time.perf_counter()
    results = sweep(runs, args.jobs, progress=sys.stderr.isatty())
    for line in report(results, budget, out, header):
        print(line)
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


def _santurkar2018(args: argparse.Namespace) -> int:
    """`dp paper santurkar2018`: standard, batch-norm and noisy batch-norm networks; the internal
    covariate shift of Definition 2.1; the landscape along the gradient."""
    study = santurkar2018
    budget = study.QUICK if args.quick else study.FULL
    if args.seeds:
        budget = dataclasses.replace(budget, seeds=args.seeds)
    runs = study.plan(budget, args.data, args.seed)
    _require_data(args.data)
    out = make_folders_for(args.out, folder=True)
    header = (
        f"dp paper santurkar2018: {args.data}, {len(runs)} runs, seeds {args.seed}-{args.seed + budget.seeds - 1}; "
        f"MLP {'-'.join(map(str, runs[0].sizes))}, {study.ACTIVATION}, {study.INIT} init; SGD on the mean loss of "
        f"{study.BATCH} rows, lr {study.LR:g}, {budget.steps:,} steps; noise: scale U(1, {study.NOISE_SCALE:g}), "
        f"shift U(-{study.NOISE_SHIFT:g}, {study.NOISE_SHIFT:g}) per unit and step, jitter N(0, "
        f"{study.NOISE_JITTER:g}^2) per sample"
    )
    print(header, flush=True)
    start = time.perf_counter()
    results = study.sweep(runs, args.jobs, progress=sys.stderr.isatty())
    for text in study.report(results, budget, out, header):
        print(text)
    print(f"\n{len(runs)} runs in {time.perf_counter() - start:.0f} s; tables and figures in {out}/")
    return 0


# study -> (what it reproduces, the function that runs it)
STUDIES: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "ioffe2015": ("Ioffe & Szegedy (2015), batch norm's MNIST experiment", _ioffe2015),
    "santurkar2018": ("Santurkar et al. (2018), how batch norm helps optimization", _santurkar2018),
}
# option (its argparse dest) -> the study it belongs to: refused with any other
STUDY_OPTIONS = {"weight_std": "ioffe2015", "lrs": "ioffe2015", "experiments": "ioffe2015"}
