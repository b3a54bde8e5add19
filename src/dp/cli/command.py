"""The `dp` command (also ``python -m dp``).

    dp train [--data NAME --model mlp|cnn --steps N --lr LR --batch-size B --optimizer NAME
              --schedule NAME --no-batch-norm --seed S --save PATH --plots DIR --quiet]
    dp evaluate PATH [--seed S] [--quiet]
    dp experiment [--help for its options]
    dp paper [--quick] [--help for its options]

`dp train` trains the reference network on the breast-cancer data (or, with
``--data mnist --model cnn``, `dp.CNN` on MNIST images) and reports on the held-out
test rows in eval mode. Its defaults were chosen on data splits other than the ones
it reports on (see docs/training.md and docs/cnn.md). `dp experiment` is the
batch-norm learning-rate sweep (`dp.studies.breast_cancer`, docs/experiment.md).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

import dp
from dp import data
from dp.checks import Constraint, OrNone, Real, Whole, checked, install_hint
from dp.cli import interrupted
from dp.cli.arguments import (
    FOLDERS_RULE,
    add_training_options,
    make_folders_for,
    non_negative,
    output_file,
    output_folder,
    positive,
)
from dp.data import Split
from dp.studies.reference import TEST_SIZE, WORKLOADS, Recipe, fit_network, workload_data, workload_network

# What dp evaluate reads from a checkpoint's metadata, checked as any input is.
RECORDED_SPLIT: dict[str, Constraint] = {"seed": OrNone(Whole("[0, inf)")), "test_size": Real("(0, 1)")}
DATA = {
    "breast_cancer": "breast cancer",
    "mnist": "MNIST",
    "digits": "digits",
}  # dp train's data sets, as reports name them


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `dp` command with ``argv`` (default: the process's arguments); return
    the exit status: 0 on success, 1 on an error reported to standard error in one line,
    130 when interrupted (Ctrl-C, from the building of the parser on; `dp.cli.main` covers
    the imports before it too); argparse exits with 2 on a usage error."""
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl-C: files are written atomically, so nothing is left half-written
        return interrupted()
    except BrokenExecutor as error:  # a parallel worker died: one line, not joblib's traceback
        print(f"dp: error: {_worker_died(error)}", file=sys.stderr)
    except ImportError as error:  # dp's own ImportErrors say how to install what is missing; Python's do not
        hint = "" if "pip install" in str(error) else f"; the dp command needs its train extra, {install_hint('train')}"
        print(f"dp: {error}{hint}", file=sys.stderr)
    except (ValueError, OSError) as error:  # CheckpointError and Diverged are ValueErrors
        print(f"dp: error: {error}", file=sys.stderr)
    return 1


def _worker_died(error: BrokenExecutor) -> str:
    """What to say when a process of `dp experiment` or `dp paper` died (killed, out of
    memory, crashed): joblib's exit codes if it gave them, and what to try."""
    codes = re.search(r"exit codes of the workers are (\{.*?\})", str(error))
    detail = f" (exit codes {codes.group(1)})" if codes else f" ({' '.join(str(error).split())})"
    return f"a parallel worker stopped{detail}: killed, or out of memory? Try fewer --jobs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dp", description="Train and evaluate dp's batch-norm networks.")
    parser.add_argument("--version", action="version", version=f"dp {dp.__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train the reference network (or a CNN on MNIST) and report on the test rows",
        description="Train the reference network (30-20-10-1, batch norm, tanh) on the breast-cancer data, "
        "or with --data mnist --model cnn the LeNet-style dp.CNN on MNIST images, and report on the held-out "
        "test rows in eval mode: accuracy, confusion matrix, losses, time. The defaults were chosen on other "
        "splits than the ones reported (docs/training.md, docs/cnn.md).",
    )
    train.add_argument(
        "--data", choices=DATA, default="breast_cancer", help="the data set (%(default)s; mnist and digits are images)"
    )
    train.add_argument(
        "--model",
        choices=("mlp", "cnn"),
        help="the network: mlp, the reference 30-20-10-1 for breast_cancer; cnn, the LeNet-style dp.CNN for "
        "mnist and digits (default: mlp for breast_cancer, cnn for the images)",
    )
    add_training_options(train, per_workload=True)
    recipes = ", ".join(f"{recipe.lr} for {data} {model}" for (data, model), recipe in WORKLOADS.items())
    train.add_argument("--lr", type=positive(float), help=f"learning rate ({recipes})")
    train.add_argument("--no-batch-norm", action="store_true", help="the same network without batch norm")
    train.add_argument(
        "--save",
        metavar="PATH",
        type=output_file(),
        help=f"write the trained model to PATH (an .npz checkpoint; {FOLDERS_RULE})",
    )
    train.add_argument(
        "--plots", metavar="DIR", type=output_folder, help=f"write figures (PNG) to DIR ({FOLDERS_RULE})"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar; print only the test accuracy")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="report on the test rows for a saved model",
        description="Report on the test rows of the split a checkpoint of `dp train --save` was trained on.",
    )
    evaluate.add_argument("path", metavar="PATH", help="a checkpoint written by `dp train --save`")
    evaluate.add_argument(
        "--seed",
        type=non_negative(int),
        help="the seed of the split the model was trained on, for a checkpoint that does not record it",
    )
    evaluate.add_argument("--quiet", action="store_true", help="print only the test accuracy")
    evaluate.set_defaults(run=_evaluate)

    from dp.cli import experiment, paper  # imported here: only they need joblib

    experiment.add_command(commands)
    paper.add_command(commands)
    return parser


def _train(args: argparse.Namespace) -> int:
    from dp.tools import checkpoint

    model_name = args.model or ("mlp" if args.data == "breast_cancer" else "cnn")
    if args.plots and (args.data, model_name) != ("breast_cancer", "mlp"):
        raise ValueError("--plots draws the breast-cancer network's figures; the CNN's are in docs/cnn.md")
    recipe = _recipe(args, WORKLOADS.get((args.data, model_name), Recipe()))
    model, optimizer = workload_network(args.data, model_name, not args.no_batch_norm, recipe)
    split = workload_data(args.data, args.seed)
    if not args.quiet:  # before training: seen with the progress bar, and after Ctrl-C
        print(f"dp train: network {_describe(model)}")
        print(
            f"  {type(optimizer).__name__} lr {recipe.lr} ({recipe.schedule}), {recipe.steps} steps of "
            f"{recipe.batch_size} rows, seed {args.seed}"
        )
        name = DATA[args.data]
        print(f"  {name}: {len(split.y_train)} training rows, {len(split.y_test)} test rows", flush=True)
    history = fit_network(model, optimizer, split, recipe, progress=False if args.quiet else None)
    _report(model, split, args.quiet, history)
    if args.save:
        metadata = {"data": {"name": args.data, "test_size": TEST_SIZE, "seed": args.seed}}
        path = checkpoint.save(model, make_folders_for(args.save), optimizer, metadata=metadata)
        if not args.quiet:
            print(f"saved to {path}")
    _write_figures(args, recipe)
    return 0


def _write_figures(args: argparse.Namespace, recipe: Recipe) -> None:
    """The figures of ``dp train --plots DIR`` (none without it), each named as written."""
    if args.plots:
        for path in _training_figures(args.plots, recipe):
            if not args.quiet:
                print(f"wrote {path}")


def _recipe(args: argparse.Namespace, defaults: Recipe) -> Recipe:
    """The training settings of `dp train`: those given on the command line, the rest from
    the recipe of its data and model (``defaults``)."""
    given = {option.name: getattr(args, option.name) for option in fields(Recipe)}
    return Recipe(**{key: getattr(defaults, key) if value is None else value for key, value in given.items()})


def _training_figures(directory: str, recipe: Recipe) -> list[Path]:
    """The figures of `dp train --plots`: the reference network trained with and without
    batch norm as ``recipe`` says, on the split of its seed with a validation part
    (`dp.studies.reference.batch_norm_comparison`), drawn by `dp.plots.training_figures`."""
    from dp.studies import reference
    from dp.tools import plots

    split = reference.split_with_validation(recipe.seed)
    histories, snapshots = reference.batch_norm_comparison(split, recipe)
    return plots.training_figures(directory, histories, snapshots, split.x_train, _figure_settings(recipe, split))


def _figure_settings(recipe: Recipe, split: Split) -> str:
    """The two lines under the titles of `dp train --plots`' figures: the training settings,
    and the split, which is not the one of the model `dp train` reports: the figures'
    networks set rows aside for validation."""
    run = f"{recipe.optimizer} lr {recipe.lr:g} ({recipe.schedule}), {recipe.steps} steps of {recipe.batch_size} rows"
    rows, held_out = len(split.y_train), len(split.y_val)
    return (
        f"{run}, seed {recipe.seed}\nnetworks of their own, trained on {rows} rows of seed {recipe.seed}'s split "
        f"with {held_out} held out for validation (the model dp train reports trains on all {rows + held_out})"
    )


def _evaluate(args: argparse.Namespace) -> int:
    from dp.tools import checkpoint

    model, _, metadata = checkpoint.load_all(args.path)
    name, recorded_seed, test_size = _recorded_split(args.path, metadata, _data_of(model))
    seed = _split_seed(args.path, recorded_seed, args.seed)
    split = workload_data(name, seed, test_size)
    _require_fit(args.path, model, split, name)
    untrained = [norm.what for _, norm in model.folded_pairs() if not norm.trained]
    if untrained:
        verb = "has" if len(untrained) == 1 else "have"
        raise ValueError(
            f"{args.path} was saved before training: {' and '.join(untrained)} {verb} no moving averages yet"
        )
    if not args.quiet:
        print(f"dp evaluate: {args.path}: network {_describe(model)}")
        print(f"  {DATA[name]}, the split of seed {seed}: {len(split.y_test)} test rows")
    _report(model, split, args.quiet)
    return 0


def _require_fit(path: str, model: Any, split: Split, name: str) -> None:
    """``ValueError`` unless ``model`` classifies the data set ``name``: its inputs and outputs
    are the data's."""
    classes = len(split.target_names)
    outputs = 1 if classes == 2 else classes  # a binary classifier has one output
    try:
        model.checked_data(split.x_test[:1], split.y_test[:1], "test")
        fits = model.outputs == outputs
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{path} holds a {_architecture(model)} network; dp evaluate scores classifiers of the "
            f"{DATA[name]} data, with {split.x_test.shape[1]} inputs and {outputs} output{'s' if outputs > 1 else ''} "
            "(the data it records, or breast cancer)"
        )


def _data_of(model: Any) -> str:
    """The data set of a model whose checkpoint does not record it: a CNN's by its image size
    (mnist, digits), breast cancer for anything else."""
    image = tuple(model.config.get("image", ()))
    return next((name for name, shape in data.IMAGE_SHAPES.items() if shape == image), "breast_cancer")


def _recorded_split(path: str, metadata: dict[str, Any], default: str) -> tuple[str, int | None, float]:
    """The split a checkpoint's metadata records (`dp train --save` writes ``{"data": {"name":
    "breast_cancer", "test_size": 0.2, "seed": 0}}``): the data set's name (``default`` when
    not recorded), its seed (None when not recorded) and test fraction (dp train's when
    not recorded). A file is not trusted: anything else there, a data set dp train does not
    have, a seed that is not a whole number >= 0, a test_size that is not a fraction, is a
    ``ValueError`` that says so."""
    split_of = metadata.get("data", {})
    if not isinstance(split_of, dict):
        raise ValueError(f"{path} records its data as {split_of!r}, not as a dict such as dp train writes")
    name = split_of.get("name", default)
    if not isinstance(name, str) or name not in DATA:
        raise ValueError(f"{path} was trained on {name!r}; dp evaluate knows {', '.join(DATA)}")
    try:
        recorded = checked(RECORDED_SPLIT, seed=split_of.get("seed"), test_size=split_of.get("test_size", TEST_SIZE))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} records a split dp evaluate cannot use: the {error}") from None
    return name, recorded["seed"], recorded["test_size"]


def _architecture(model: Any) -> str:
    """The layer widths, as in "30-20-10-1"; a CNN's image, blocks and classes, as in
    "CNN 1x28x28, conv 8-16, 10 classes"."""
    if isinstance(model, dp.CNN):
        config = model.config
        hidden = f", hidden {'-'.join(map(str, config['hidden']))}" if config["hidden"] else ""
        image = "x".join(map(str, config["image"]))
        return f"CNN {image}, conv {'-'.join(map(str, config['channels']))}{hidden}, {config['classes']} classes"
    return "-".join(map(str, model.sizes))


def _describe(model: Any) -> str:
    """The network as the reports name it: "30-20-10-1, batch norm, tanh"."""
    norm = "batch norm" if model.has_batch_norm else "no batch norm"
    return f"{_architecture(model)}, {norm}, {model.config['activation']}"


def _split_seed(path: str, recorded: int | None, given: int | None) -> int:
    """The seed of the split to score a checkpoint on: the one it records (`dp train
    --save` records it), or else ``--seed``. Any other split would put rows the model
    trained on among the test rows and flatter it, so both missing, or two different
    seeds, are errors."""
    if recorded is not None:
        if given is not None and given != recorded:
            raise ValueError(
                f"{path} was trained on the split of seed {recorded}: the test rows of seed {given} "
                "include rows it trained on"
            )
        return recorded
    if given is None:
        raise ValueError(
            f"{path} does not record the split it was trained on (saved without metadata); give "
            "--seed S, the seed of its training split, so that it is scored on rows it never saw"
        )
    return given


def _report(model: Any, split: Any, quiet: bool, history: Any = None) -> None:
    """Print test accuracy, the confusion matrix, losses and time, all in eval mode; with
    the training ``history``, the final training loss and the training time too."""
    names = split.target_names
    y = split.y_test.reshape(-1).astype(int)
    predicted = model.predict(split.x_test).reshape(-1)
    correct = int((predicted == y).sum())
    if quiet:
        print(f"test accuracy {100 * correct / len(y):.2f} %")  # as the full report words it
        return
    print(f"\ntest accuracy   {100 * correct / len(y):.2f} %  ({correct} of {len(y)} rows)")
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    width = max(max(map(len, names)) + 2, len(str(len(y))) + 1)
    print("confusion matrix (rows: true class, columns: predicted)")
    print(" " * (width + 2) + "".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, confusion):
        print(f"  {name:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    test_loss = model.loss(split.x_test, split.y_test, train=False, reduction="mean").value.item()
    timing = f"{_seconds_since_start():.2f} s in all (imports included)"
    if history is None:
        print(f"test loss       {test_loss:.4f} per row")
    else:
        # The history's last loss is the mean over the steps since the evaluation before.
        window = history.step[-1] - (history.step[-2] if len(history.step) > 1 else 0)
        steps = "the last step" if window == 1 else f"mean of the last {window} steps"
        print(f"final loss      {history.loss[-1]:.4f} per row (training, {steps}); {test_loss:.4f} on the test rows")
        timing += f", {history.seconds:.2f} s training"
    print(f"time            {timing}")


def _seconds_since_start() -> float:
    """Wall time since dp was first imported: the command's imports and work, all but the
    interpreter's own start (a few tens of milliseconds). Not the process's start time:
    a shell may exec the command in a process that has been running for a while."""
    return time.perf_counter() - dp._IMPORTED_AT
