"""Reproductions and experiments, each a function that returns tables and figures (no argparse:
the command lines are in `dp.cli`): `reference` (the runs `dp train` and its figures share),
`breast_cancer` (the learning-rate sweep, `dp experiment`) and `ioffe2015` (the batch-norm
paper's MNIST experiment, `dp paper`)."""
