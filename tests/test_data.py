"""Data: the breast-cancer loader against scikit-learn's, stratified and reproducible splits,
and standardization fitted on the training part only (no leakage)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from hypothesis import given
from hypothesis import strategies as st

import dp
from dp import data
from dp.data import breast_cancer, make_split, standardize, stratified_split

PARTS = ("train", "val", "test")


@pytest.fixture(scope="module")
def raw():
    return data.breast_cancer_arrays()


def parts_of(split):
    return {name: tuple(getattr(split, f"{kind}_{name}") for kind in ("x", "y", "rows")) for name in PARTS}


# ----- the data set -----


def test_the_loaded_data_equals_scikit_learns_loader_exactly(raw):
    x, y = raw
    reference = sklearn.datasets.load_breast_cancer()
    np.testing.assert_array_equal(x, reference.data)
    np.testing.assert_array_equal(y.ravel(), reference.target)
    assert list(data.FEATURE_NAMES) == list(reference.feature_names)
    assert list(data.TARGET_NAMES) == list(reference.target_names)


def test_raw_arrays_are_float64_with_a_label_column_keeping_scikit_learns_encoding(raw):
    x, y = raw
    assert x.shape == (569, 30) and x.dtype == np.float64
    assert y.shape == (569, 1) and y.dtype == np.float64
    assert data.TARGET_NAMES == ("malignant", "benign")
    assert (y == 0).sum() == 212 and (y == 1).sum() == 357  # 212 malignant, 357 benign


def test_loading_never_imports_scikit_learn():
    # A fresh interpreter, which finds dp where this one did; importing sklearn.datasets would cost ~1 s.
    code = "import sys, dp; dp.data.breast_cancer(); print('sklearn' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(dp.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "False"


def test_without_scikit_learn_the_error_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(ImportError, match=r'from a clone of dp, install it with: pip install "\.\[train\]"'):
        breast_cancer()


def test_split_parts_have_the_documented_shapes_dtypes_and_names():
    split = breast_cancer()
    # test: round(0.2 * 212) + round(0.2 * 357) = 42 + 71 rows
    sizes = {"train": 569 - 113, "val": 0, "test": 113}
    for name, (x, y, rows) in parts_of(split).items():
        assert x.shape == (sizes[name], 30) and x.dtype == np.float64
        assert y.shape == (sizes[name], 1) and y.dtype == np.float64
        assert rows.shape == (sizes[name],) and rows.dtype.kind == "i"
        assert set(np.unique(y)) <= {0.0, 1.0}
    assert split.mean.shape == (1, 30) and split.std.shape == (1, 30)
    assert split.feature_names == data.FEATURE_NAMES and split.target_names == ("malignant", "benign")


def test_a_validation_part_is_taken_from_the_rest_by_the_same_rule():
    split = breast_cancer(test_size=0.2, validation_size=0.1, seed=3)
    assert len(split.y_test) == 42 + 71
    assert len(split.y_val) == 21 + 36  # round(0.1 * 212) + round(0.1 * 357)
    assert len(split.y_train) == 569 - 113 - 57
    assert (split.y_val == 0).sum() == 21


@pytest.mark.parametrize("validation_size", [0.0, 0.15])
def test_parts_are_disjoint_and_cover_every_row(validation_size):
    split = breast_cancer(validation_size=validation_size)
    rows = np.concatenate([split.rows_train, split.rows_val, split.rows_test])
    assert np.array_equal(np.sort(rows), np.arange(569))


def test_parts_hold_the_labels_of_their_rows(raw):
    split = breast_cancer(validation_size=0.1)
    for _, y, rows in parts_of(split).values():
        np.testing.assert_array_equal(y, raw[1][rows])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_part_keeps_the_class_proportions_within_one_row(seed, raw):
    whole = raw[1].mean()
    for _, y, _ in parts_of(breast_cancer(validation_size=0.1, seed=seed)).values():
        assert abs(y.sum() - whole * len(y)) <= 1


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    a, b, c = breast_cancer(seed=7), breast_cancer(seed=7), breast_cancer(seed=8)
    for field in ("x_train", "y_train", "x_test", "y_test", "mean", "std", "rows_train", "rows_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(np.sort(a.rows_test), np.sort(c.rows_test))


def test_parts_interleave_the_classes_instead_of_grouping_them():
    y = breast_cancer().y_train.ravel()
    assert np.count_nonzero(np.diff(y)) > 50  # grouped by class, there would be 1 change


def test_the_split_is_frozen():
    split = breast_cancer()
    with pytest.raises(AttributeError):
        split.x_train = np.zeros((1, 30))


# ----- standardization: fitted on the training part only -----


def test_mean_and_std_are_the_raw_training_rows_statistics(raw):
    split = breast_cancer(validation_size=0.1)
    training = raw[0][split.rows_train]
    np.testing.assert_array_equal(split.mean, training.mean(axis=0, keepdims=True))
    np.testing.assert_array_equal(split.std, training.std(axis=0, keepdims=True))
    assert not np.allclose(split.mean, raw[0].mean(axis=0, keepdims=True))  # not the whole data set's


def test_every_part_is_scaled_with_the_training_statistics(raw):
    split = breast_cancer(validation_size=0.1)
    for x, _, rows in parts_of(split).values():
        np.testing.assert_array_equal(x, (raw[0][rows] - split.mean) / split.std)
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(split.x_train.std(axis=0), 1, rtol=1e-12)


def test_changing_only_test_rows_leaves_the_training_part_unchanged(raw):
    x, y = raw
    before = make_split(x, y, 0.2, 0.1, seed=5)
    changed = x.copy()
    changed[before.rows_test] = 1e6 * np.random.default_rng(0).standard_normal((len(before.rows_test), 30))
    after = make_split(changed, y, 0.2, 0.1, seed=5)
    for field in ("x_train", "y_train", "x_val", "y_val", "mean", "std", "rows_test"):
        assert getattr(before, field).tobytes() == getattr(after, field).tobytes()
    assert not np.array_equal(before.x_test, after.x_test)


def test_the_split_owns_its_arrays():
    x, y = np.arange(40.0).reshape(20, 2), np.tile([0, 1], 10)
    split = make_split(x, y, 0.2)
    x[:] = 0
    assert split.x_train.std() > 0


def test_a_constant_training_column_is_centered_not_divided_by_zero():
    (train, other), mean, std = standardize(np.array([[1.0, 2.0], [1.0, 4.0]]), np.array([[3.0, 3.0]]))
    np.testing.assert_array_equal(std, [[1.0, 1.0]])
    np.testing.assert_array_equal(mean, [[1.0, 3.0]])
    np.testing.assert_array_equal(train, [[0.0, -1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(other, [[2.0, 0.0]])


def test_a_constant_column_is_recognized_even_when_rounding_gives_it_a_tiny_std():
    train = np.column_stack([np.full(10, 0.1), np.arange(10.0)])  # std of ten 0.1s is 1.4e-17, not 0
    (train_out, test_out), mean, std = standardize(train, np.array([[0.2, 3.0]]))
    assert std[0, 0] == 1.0 and mean[0, 0] == 0.1
    np.testing.assert_array_equal(train_out[:, 0], 0.0)
    np.testing.assert_allclose(test_out[0, 0], 0.1)


def test_standardize_accepts_empty_other_parts():
    (train, empty), _, _ = standardize(np.ones((3, 2)), np.empty((0, 2)))
    assert empty.shape == (0, 2) and empty.dtype == np.float64


@pytest.mark.parametrize(
    "arrays, message",
    [
        ((np.ones(3),), r"train must have shape"),
        ((np.ones((3, 2)), np.ones((1, 3))), r"array 1 of others must have shape \(rows, 2\)"),
        ((np.empty((0, 2)),), "empty"),
        ((np.array([[1.0, np.nan]]),), "NaN or inf"),
    ],
)
def test_standardize_refuses_misshapen_empty_or_non_finite_input(arrays, message):
    with pytest.raises(ValueError, match=message):
        standardize(*arrays)


# ----- stratified_split in general -----

class_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=4)
fraction_lists = st.lists(st.floats(0.01, 0.6), min_size=1, max_size=3)


@given(sizes=class_sizes, fractions=fraction_lists, seed=st.integers(0, 2**32 - 1))
def test_each_class_is_cut_by_the_documented_rounding_rule_or_refused(sizes, fractions, seed):
    y = np.repeat(np.arange(len(sizes)), sizes)
    counts = [[round(f * c) for f in fractions] for c in sizes]
    if sum(fractions) >= 1 or any(min(row) < 1 or sum(row) >= c for row, c in zip(counts, sizes)):
        with pytest.raises(ValueError):
            stratified_split(y, *fractions, seed=seed)
        return
    rest, *parts = stratified_split(y, *fractions, seed=seed)
    assert np.array_equal(np.sort(np.concatenate([rest, *parts])), np.arange(len(y)))
    for label, row in enumerate(counts):
        assert [np.count_nonzero(y[p] == label) for p in parts] == row
    again = stratified_split(y, *fractions, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip((rest, *parts), again))


@given(n=st.integers(60, 300), share=st.floats(0.2, 0.8), seed=st.integers(0, 2**32 - 1))
def test_binary_parts_keep_the_class_proportion_within_one_row(n, share, seed):
    y = (np.arange(n) < round(share * n)).astype(float)
    for part in stratified_split(y, 0.2, 0.1, seed=seed):
        assert abs(y[part].sum() - y.mean() * len(part)) <= 1


def test_labels_may_be_a_column_or_strings():
    column = np.array([[0], [1]] * 10)
    strings = np.array(["a", "b"] * 10)
    for y in (column, strings):
        rest, test = stratified_split(y, 0.2)
        assert len(test) == 4 and len(rest) == 16


# ----- errors -----


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"test_size": 0.0}, ValueError, r"test_size must be a finite number in \(0, 1\)"),
        ({"test_size": 1.0}, ValueError, r"test_size must be a finite number in \(0, 1\)"),
        ({"test_size": float("nan")}, ValueError, r"test_size must be a finite number in \(0, 1\)"),
        ({"test_size": "0.2"}, TypeError, "test_size must be a real number, not str"),
        ({"test_size": True}, TypeError, "test_size must be a real number, not bool"),
        ({"validation_size": 1.0}, ValueError, r"validation_size must be a finite number in \[0, 1\)"),
        ({"validation_size": -0.1}, ValueError, r"validation_size must be a finite number in \[0, 1\)"),
        ({"test_size": 0.6, "validation_size": 0.4}, ValueError, "sum to 1; they must leave rows to train on"),
    ],
)
def test_bad_fractions_are_refused_by_name(kwargs, error, message):
    with pytest.raises(error, match=message):
        breast_cancer(**kwargs)


@pytest.mark.parametrize(
    "fraction, error, message",
    [
        (0.0, ValueError, r"each fraction must be a finite number in \(0, 1\), got 0.0"),
        (1.5, ValueError, r"each fraction must be a finite number in \(0, 1\)"),
        ("0.2", TypeError, "each fraction must be a real number, not str"),
    ],
)
def test_stratified_split_refuses_a_fraction_outside_0_1(fraction, error, message):
    with pytest.raises(error, match=message):
        stratified_split(np.tile([0, 1], 10), 0.2, fraction)


def test_a_class_too_small_for_every_part_is_refused_naming_it():
    y = np.array([0] * 20 + [1] * 2)
    with pytest.raises(ValueError, match="class 1 has 2 rows"):
        stratified_split(y, 0.2)  # round(0.2 * 2) = 0 test rows of class 1


@pytest.mark.parametrize(
    "y, message",
    [
        (np.zeros((4, 2)), r"shape \(n,\) or \(n, 1\)"),
        (np.array([]), r"n >= 1"),
        (np.array([0.0, np.nan, 1.0]), "NaN"),
    ],
)
def test_labels_must_be_one_per_row_and_not_nan(y, message):
    with pytest.raises(ValueError, match=message):
        stratified_split(y, 0.2)


def test_stratified_split_needs_a_fraction():
    with pytest.raises(ValueError, match="at least one fraction"):
        stratified_split(np.zeros(10))


@pytest.mark.parametrize(
    "x, kwargs, message",
    [
        (np.ones((19, 2)), {}, r"n = 20 rows"),
        (np.ones(20), {}, r"shape \(n, features\)"),
        (np.full((20, 2), np.inf), {}, "NaN or inf"),
        (np.ones((20, 2)), {"feature_names": ["a"]}, "1 feature names for 2 columns"),
    ],
)
def test_make_split_refuses_features_that_do_not_fit_the_labels(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_split(x, np.tile([0, 1], 10), **kwargs)


@pytest.mark.parametrize("load, rows, pixels", [(data.mnist, 5000, 784), (data.digits, 1797, 64)])
def test_image_data_sets_are_stratified_seeded_splits_of_pixels_in_0_1(load, rows, pixels):
    split = load(test_size=0.2, seed=3)
    assert split.x_train.shape[1] == split.x_test.shape[1] == pixels
    assert len(split.y_train) + len(split.y_test) == rows
    for x in (split.x_train, split.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(split.y_test.ravel().astype(int), minlength=10)
    assert counts.max() - counts.min() <= 2  # stratified: about a tenth of each digit
    assert split.target_names == tuple("0123456789") and not split.mean.any()
    again = load(test_size=0.2, seed=3)
    assert np.array_equal(again.rows_test, split.rows_test)
    assert not np.array_equal(load(test_size=0.2, seed=4).rows_test, split.rows_test)


def test_a_missing_data_package_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r'pip install "\.\[paper\]"'):
        data.mnist()


def test_a_text_column_is_named_as_text_not_as_numpy_words():
    x = [[1.0, "blue"], [2.0, "red"]] * 5
    with pytest.raises(TypeError, match="x must be numeric .*text must be turned into numbers first") as refused:
        make_split(x, [0, 1] * 5)
    assert "could not convert" not in str(refused.value)
