"""`dp experiment`: the command line of the breast-cancer learning-rate sweep (`dp.studies.breast_cancer`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from dp.cli.arguments import (
    FOLDERS_RULE,
    add_training_options,
    jobs,
    learning_rates,
    make_folders_for,
    output_file,
    positive,
)
from dp.studies.breast_cancer import DEFAULT_LRS, DEFAULT_SEEDS, Settings, markdown_table, summarize, sweep


def add_command(commands: Any) -> None:
    """Register `dp experiment` on the `dp` command's subparsers."""
    parser = commands.add_parser(
        "experiment",
        help="sweep learning rates with and without batch norm",
        description="Train the reference network at each learning rate, with and without batch norm, "
        "from several seeds; print a Markdown table and save a figure.",
    )
    # Plain SGD at a constant rate: the claim is about the learning rate itself, which
    # adaptive optimizers (Adam) and schedules would rescale.
    add_training_options(parser, optimizer="sgd", schedule="constant")
    parser.add_argument(
        "--lrs",
        type=learning_rates,
        default=DEFAULT_LRS,
        help="comma-separated learning rates (" + ",".join(f"{lr:g}" for lr in DEFAULT_LRS) + ")",
    )
    parser.add_argument(
        "--seeds",
        type=positive(int),
        default=DEFAULT_SEEDS,
        help="runs per learning rate and setting, seeds SEED, SEED+1, ... (%(default)s)",
    )
    parser.add_argument(
        "--target",
        type=_fraction,
        default=0.95,
        help="the validation accuracy to reach, a fraction or a percentage: 0.95 or 95 (%(default)s)",
    )
    # Every step by default: steps to the target are often under 10, and evaluating every
    # 5 steps would round them all up to 5 or 10.
    parser.add_argument("--eval-every", type=positive(int), default=1, help="steps between evaluations (%(default)s)")
    parser.add_argument("--jobs", type=jobs, default=-1, help="parallel workers, joblib's n_jobs (-1: all)")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        type=output_file(".png"),
        default="experiment.png",
        help=f"the figure to write, a .png (%(default)s; {FOLDERS_RULE})",
    )
    parser.set_defaults(run=_experiment)


def _experiment(args: argparse.Namespace) -> int:
    from dp.tools import plots

    settings = Settings(args.steps, args.batch_size, args.optimizer, args.schedule, args.eval_every, args.target)
    seeds = range(args.seed, args.seed + args.seeds)
    description = (
        f"{args.optimizer} ({args.schedule} learning rate), {args.steps} steps of {args.batch_size} rows, "
        f"seeds {seeds.start}-{seeds.stop - 1}"
    )
    print(
        f"dp experiment: {len(args.lrs)} learning rates x with/without batch norm x {args.seeds} seeds; "
        f"{description}; test accuracy in eval mode, validation accuracy "
        + ("after every step\n" if args.eval_every == 1 else f"every {args.eval_every} steps\n"),
        flush=True,  # before the long wait
    )
    start = time.perf_counter()
    cells = summarize(sweep(settings, args.lrs, seeds, args.jobs))
    print(markdown_table(cells, args.target, args.steps))
    path = plots.experiment_figure(make_folders_for(args.plot), cells, args.target, description)
    print(f"\n{len(cells) * args.seeds} runs in {time.perf_counter() - start:.1f} s; wrote {path}")
    return 0


def _fraction(text: str) -> float:
    """An accuracy as a fraction in (0, 1], given as one (0.95) or as a percentage (95),
    as the table prints it: a number above 1 is taken for a percentage."""
    value = float(text)
    fraction = value / 100 if 1 < value <= 100 else value
    if not (np.isfinite(fraction) and 0 < fraction <= 1):
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1] or a percentage in (1, 100], got {text}")
    return fraction
