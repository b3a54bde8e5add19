"""Reproductions and experiments, each a function that returns tables and figures (no argparse:
the command lines are in `dp.cli`): `reference` (the runs `dp train` and its figures share),
`breast_cancer` (the learning-rate sweep, `dp experiment`), `ioffe2015` (the batch-norm
paper's MNIST experiment, `dp paper`), `santurkar2018` (how batch norm helps optimization,
`dp paper santurkar2018`), `wu2018` (normalizations against the batch size, `dp paper wu2018`),
`parallel` (the sweep they share), `monitored` (the tables and figure of their
`dp.train.Monitor`s) and `running_statistics` (batch norm's moving averages:
their zero-start bias, and recalibration measured, for docs/running_statistics.md)."""
