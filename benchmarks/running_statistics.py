"""Batch norm's running statistics: writes docs/running_statistics.md, the zero-start bias of the
moving averages and the gap between training and eval mode before and after recalibration.

    PYTHONPATH=src python benchmarks/running_statistics.py --out docs/running_statistics.md

Every number comes from `dp.studies.running_statistics` (the zero-start table is computed, the
gaps measured: about 10 seconds, one BLAS thread); tests/test_running_statistics_doc.py holds
the document to those functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dp.studies.running_statistics import (
    GAP_WORKLOADS,
    MOMENTUM,
    gap_table,
    measure_gap,
    zero_start_batches,
    zero_start_factor,
    zero_start_table,
)

COMMAND = "`python benchmarks/running_statistics.py --out docs/running_statistics.md`"

DOCUMENT = """{command}

# Batch norm's running statistics

Written by the command above from `dp.studies.running_statistics`; tests/test_running_statistics_doc.py
holds every table here to the functions that made it.

In training, batch norm normalizes each batch by its own mean and variance; in evaluation, by
moving averages of them (`NeuralNode.batch_norm`). How well those averages stand for the data
decides how far evaluation is from what training saw. This page measures two things about
them, and what dp offers for each: ``momentum=None`` and `dp.train.recalibrate`.

## The zero-start bias

dp's moving averages start at zeros and move by ``avg <- (1 - m) avg + m stat`` with the
momentum m = {momentum:g}, PyTorch's default. After k batches that all have the statistic s, the
average is ``(1 - (1 - m)^k) s``, computed by `zero_start_factor`:

{zero_start}

After one batch the moving variance is {first:g} of the batch's, so eval mode divides a feature by
sqrt({first:g}) of its standard deviation: a feature that training standardizes comes out of eval
mode with a standard deviation of {first_std:.1f}. The bias fades as {old:g}^k: it is under 1 % of the
variance only after {within:d} batches. dp refuses eval mode before the first training batch (the averages are
then exact zeros, a ``RuntimeError``), but not during the batches after it.

PyTorch starts ``running_mean`` at 0 and ``running_var`` at 1, so its moving variance after k
batches is ``(1 - 0.9^k) var + 0.9^k``: biased toward 1 instead of toward 0, harmless for a
feature whose variance is near 1 and as wrong as dp's for one whose variance is far from it (a
linear layer's output before batch norm has whatever scale its weights give it). Neither library
corrects the bias, as Adam corrects its moments by dividing by ``1 - beta^k``.

What dp offers:

- ``momentum=None`` (`NeuralNode.batch_norm`, ``dp.MLP(momentum=None)``, ``dp.CNN(...)``), as
  PyTorch's ``BatchNorm1d(momentum=None)``: the k-th batch weighs 1 / k, so after k batches the
  averages are the plain mean of the k batches' statistics, with no zero start. But over a whole
  training run that mean weighs the first batches, taken with the first weights, as much as the
  last ones.
- `dp.train.recalibrate` after training: the averages recomputed as the plain mean of the
  statistics of batches of the training rows, through the final weights.

## Training mode, eval mode, and recalibration

Two networks, each trained for a few numbers of steps, then measured on their training rows
(those of the whole batches recalibration forms: the column rows): accuracy in training mode
(each batch of the training size normalized by its own statistics, as the steps saw it), in
eval mode (the moving averages, momentum {momentum:g}), and in eval mode after
`dp.train.recalibrate` (same batches); the gaps are training mode minus eval mode, in
percentage points. The last column is the first batch-norm layer's moving variance over its
recalibrated one (the median over its features).

- breast_cancer: `dp train`'s network and recipe (30-20-10-1, tanh, Adam 0.003 with a cosine
  schedule, batches of 50 rows, seed 0), on its breast-cancer training rows.
- mnist: the paper's network of `dp paper` (784-100-100-100-10, sigmoid, weights N(0, 0.01^2),
  SGD 0.5 on the mean loss of 60 rows, seed 1), on its MNIST training images.

{gaps}

How to read it:

- The variance ratio of the briefly trained networks is the zero-start bias at work: after 5 and
  10 steps it is close to the table's factor for k = 5 and 10 (the weights also move between
  the batches, which the table leaves out). Eval mode then normalizes by averages the data does
  not have, and its accuracy is that of another network: higher or lower than training mode's.
- Recalibrated, eval mode normalizes by the statistics of the data through the final weights,
  and its accuracy follows training mode's within about a point. It is often a little above it:
  training mode normalizes each batch by its own noisy statistics, eval mode by their mean.
- After a few hundred steps the moving averages have forgotten their zero start (the ratio is
  near 1), and recalibration changes little. It matters for networks evaluated early, for
  weights that moved fast at the end of training, and after changing the weights by other
  means than training steps (averaging them, or loading them into another model).

## Batch renormalization

``renorm=True`` (Ioffe, 2017) attacks the gap from the training side: each batch is normalized
by its own statistics corrected toward the moving averages, ``(x - mean) / sigma_B * r + d`` with
``r = sigma_B / sigma`` and ``d = (mean - avg_mean) / sigma`` clipped to ``rmax`` and ``dmax`` and
held constant in the backward pass, so that unclipped, training computes what evaluation will
(`NeuralNode.batch_norm` has the formulas, `BatchNorm.correction` the code). It relies on the
moving averages being right: with the zero start above, the first batches' r would be about
{first_std:.1f}, clipped to rmax. dp makes the first batch plain batch norm (the averages are
still zeros) and offers ``renorm_warmup``, which ramps (rmax, dmax) from (1, 0) as the paper does;
``momentum=None`` avoids the zero start altogether.
"""


def document() -> str:
    """docs/running_statistics.md, every table computed or measured now."""
    gaps = [measure_gap(workload, steps) for workload in GAP_WORKLOADS for steps in workload.steps]
    first = zero_start_factor(1)
    return DOCUMENT.format(
        command=COMMAND,
        momentum=MOMENTUM,
        old=1 - MOMENTUM,
        first=first,
        first_std=first**-0.5,
        within=zero_start_batches(0.01),
        zero_start=zero_start_table(),
        gaps=gap_table(gaps),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="the file to write (default: standard output)")
    arguments = parser.parse_args(argv)
    text = document()
    if arguments.out:
        Path(arguments.out).write_text(text)
        print(f"wrote {arguments.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
