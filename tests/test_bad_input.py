"""Bad input, everywhere it can enter: the model, batch norm, the losses, the optimizers,
``set_param``, checkpoints, the training loop and the scikit-learn estimator.

Each bad input is refused with an exception of a sensible type (``TypeError`` for the
wrong kind of data, ``ValueError`` for wrong values or shapes, `dp.NonFiniteError` for
NaN or inf, ``KeyError`` for unknown names, `dp.checkpoint.CheckpointError` for a bad
file, ``FileNotFoundError`` for a missing one) whose message says what is wrong, and it
changes nothing: every parameter and batch-norm moving average keeps its bytes and its
dtype, and the optimizer keeps its state and hyperparameters. docs/reliability.md has
the table.
"""

import numpy as np
import pytest

import dp
from dp import NonFiniteError
from dp.optim import OPTIMIZERS, make_optimizer
from dp.tools.checkpoint import CheckpointError, load, load_with_optimizer, save
from dp.tools.sklearn import BatchNormMLPClassifier
from dp.train import Diverged, fit

FEATURES = 4


# ----- state: a trained model and optimizer, snapshots, comparisons -----


def trained(outputs=1, optimizer="adam"):
    """A small MLP and its optimizer after a few steps: weights, moving averages and
    optimizer state all non-trivial."""
    model, optimizer = dp.MLP(sizes=(FEATURES, 6, 5, outputs), seed=0), make_optimizer(optimizer, lr=0.01)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = rng.standard_normal((8, FEATURES)), rng.integers(0, max(outputs, 2), 8)
        optimizer.step(model.params, model.loss(x, y).grad(1))
    assert model.params["avg_variance_bn2"].any()
    return model, optimizer


def snapshot(model, optimizer=None):
    return model.get_param(), (optimizer.state_dict(), optimizer.config) if optimizer else None


def assert_same_bits(got, expected, where):
    got, expected = np.asarray(got), np.asarray(expected)
    assert (got.dtype, got.shape, got.tobytes()) == (expected.dtype, expected.shape, expected.tobytes()), where


def assert_unchanged(model, optimizer, saved):
    params, optimizer_saved = saved
    assert model.params.keys() == params.keys()
    for k, v in params.items():
        assert_same_bits(model.params[k], v, k)
    if optimizer is not None:
        state, config = optimizer_saved
        assert optimizer.config == config and optimizer.state_dict().keys() == state.keys()
        for k, slots in state.items():
            assert optimizer.state_dict()[k].keys() == slots.keys()
            for slot, v in slots.items():
                assert_same_bits(optimizer.state_dict()[k][slot], v, (k, slot))


def assert_refused(action, error, message, model, optimizer=None):
    """``action()`` raises ``error`` matching ``message`` and leaves the model (and the
    optimizer) exactly as it was; returns the exception."""
    saved = snapshot(model, optimizer)
    with pytest.raises(error, match=message) as raised:
        action()
    assert_unchanged(model, optimizer, saved)
    return raised.value


def cases(table, *marks):
    return [pytest.param(*row, id=name, marks=marks) for name, row in table.items()]


# ----- the model: training steps and evaluation -----

X = np.random.default_rng(42).standard_normal((8, FEATURES))
Y = np.array([0, 1] * 4)


def x_with(value):
    x = X.copy()
    x[5, 2] = value
    return x


BAD_X = {  # name: (x, exception, message); refused in training and in evaluation
    "nan in x": (x_with(np.nan), NonFiniteError, "input has NaN or inf"),
    "inf in x": (x_with(np.inf), NonFiniteError, "input has NaN or inf"),
    "-inf in x": (x_with(-np.inf), NonFiniteError, "input has NaN or inf"),
    "strings in x": (X.astype(str), TypeError, "must be numeric"),
    "objects in x": (np.full((8, FEATURES), None), TypeError, "must be numeric"),
    "complex x": (X + 1j, TypeError, "must be numeric"),
    "too few features": (X[:, :3], ValueError, r"shape \(n, 4\); got \(8, 3\)"),
    "too many features": (np.hstack([X, X]), ValueError, r"shape \(n, 4\); got \(8, 8\)"),
    "1-d x": (X[:, 0], ValueError, r"shape \(n, 4\); got \(8,\)"),
    "3-d x": (X[None], ValueError, r"shape \(n, 4\); got \(1, 8, 4\)"),
    "no rows": (X[:0], ValueError, r"empty \(shape \(0, 4\)\); at least one row is needed"),
}
BAD_TRAINING_X = {  # refused in training only: evaluation uses no batch statistics
    "one row": (X[:1], ValueError, "at least 2 rows"),
    "values too large to square": (X * 1e200, NonFiniteError, "too large to square"),
}
BAD_LABELS = {  # name: (outputs, y, exception, message)
    "nan in y": (1, np.where(Y == 1, np.nan, 0), NonFiniteError, "labels has NaN or inf"),
    "inf in y": (1, np.where(Y == 1, np.inf, 0), NonFiniteError, "labels has NaN or inf"),
    "strings in y": (1, Y.astype(str), TypeError, "labels must be numeric"),
    "objects in y": (1, Y.astype(object), TypeError, "labels must be numeric"),
    "label 2 for one output": (1, Y * 2, ValueError, r"binary labels must lie in \[0, 1\]"),
    "label -1 for one output": (1, Y - 1, ValueError, r"binary labels must lie in \[0, 1\]"),
    "more labels than rows": (1, np.append(Y, 0), ValueError, "9 labels for a batch of 8 rows"),
    "fewer labels than rows": (1, Y[:7], ValueError, "7 labels for a batch of 8 rows"),
    "two label columns for one output": (1, np.zeros((8, 2)), ValueError, r"shape \(n,\) or \(n, 1\)"),
    "class 3 of 3": (3, np.arange(8) % 4, ValueError, r"integers in \[0, 3\)"),
    "class 1.5": (3, np.full(8, 1.5), ValueError, r"integers in \[0, 3\)"),
    "negative class": (3, -Y, ValueError, r"integers in \[0, 3\)"),
    "one-hot rows that sum to 2": (3, np.ones((8, 3)) * [1, 1, 0], ValueError, "sum to 1"),
}


def training_step(model, optimizer, x, y, **options):
    return lambda: optimizer.step(model.params, model.loss(x, y, **options).grad(1))


@pytest.mark.parametrize("x, error, message", cases(BAD_X) + cases(BAD_TRAINING_X))
def test_a_training_step_on_bad_features_raises_and_changes_nothing(x, error, message):
    model, optimizer = trained()
    y = Y[: len(x)] if np.ndim(x) == 2 and len(x) else Y  # a label per row, so that x is what is refused
    assert_refused(training_step(model, optimizer, x, y), error, message, model, optimizer)


@pytest.mark.parametrize("outputs, y, error, message", cases(BAD_LABELS))
def test_a_training_step_on_bad_labels_raises_and_changes_nothing(outputs, y, error, message):
    model, optimizer = trained(outputs)
    assert_refused(training_step(model, optimizer, X, y), error, message, model, optimizer)


@pytest.mark.parametrize("outputs, y, error, message", cases(BAD_LABELS))
def test_the_loss_in_eval_mode_refuses_bad_labels(outputs, y, error, message):
    model, _ = trained(outputs)
    assert_refused(lambda: model.loss(X, y, train=False), error, message, model)


@pytest.mark.parametrize("train", [True, False])
def test_an_unknown_reduction_is_refused_and_changes_nothing(train):
    model, optimizer = trained()
    step = training_step(model, optimizer, X, Y, train=train, reduction="max")
    assert_refused(step, ValueError, r"reduction must be one of 'sum', 'mean'; got 'max'", model, optimizer)


@pytest.mark.parametrize("x, error, message", cases(BAD_X))
@pytest.mark.parametrize("method", ["predict", "predict_proba", "forward", "logits"])
def test_evaluating_bad_features_raises_and_changes_nothing(method, x, error, message):
    model, _ = trained()
    evaluate = getattr(model, method)
    assert_refused(
        lambda: evaluate(x) if method.startswith("predict") else evaluate(x, train=False), error, message, model
    )


# ----- batch norm and the losses on their own -----

BAD_LAYER_X = {  # name: (x, exception, message, refused in evaluation too)
    "nan in x": (x_with(np.nan), NonFiniteError, "batch norm 'bn': the (batch|input) has NaN or inf", True),
    "inf in x": (x_with(np.inf), NonFiniteError, "batch norm 'bn': the (batch|input) has NaN or inf", True),
    "strings in x": (X.astype(str), TypeError, "it must be numeric", True),
    "objects in x": (np.full((8, FEATURES), None), TypeError, "it must be numeric", True),
    "complex x": (X + 1j, TypeError, "complex numbers are not supported", True),
    "too few features": (X[:, :3], ValueError, r"'bn': the input must have shape \(n, 4\); got \(8, 3\)", True),
    "1-d x, a column": (X[:, 0], ValueError, r"'bn': the input must have shape \(n, 4\); got \(8, 1\)", True),
    "no rows": (X[:0], ValueError, r"'bn': the input: empty \(shape \(0, 4\)\)", True),
    "one row": (X[:1], ValueError, "'bn': a training batch needs at least 2 rows", False),
    "values too large to square": (X * 1e200, NonFiniteError, "'bn'.*too large to square", False),
}


@pytest.mark.parametrize(
    "x, error, message, train",
    [
        pytest.param(x, error, message, train, id=f"{name}-{'training' if train else 'evaluation'}")
        for name, (x, error, message, in_evaluation) in BAD_LAYER_X.items()
        for train in ((True, False) if in_evaluation else (True,))
    ],
)
def test_a_batch_norm_layer_refuses_bad_input_before_updating_its_averages(x, error, message, train):
    net = dp.NeuralNode(seed=0)
    layer = net.batch_norm(FEATURES, "bn")
    layer(X)  # a first training batch, so that there are averages to use and to keep
    assert_refused(lambda: layer(x, train=train), error, message, net)


@pytest.mark.parametrize(
    "loss, z, y, error, message",
    [
        (dp.nn.losses.binary_cross_entropy_with_logits, X[:, :1], Y * 2, ValueError, r"\[0, 1\]"),
        (dp.nn.losses.binary_cross_entropy, np.full((8, 1), 0.5), Y[:6], ValueError, "6 labels for a batch of 8"),
        (dp.nn.losses.binary_cross_entropy_with_logits, X, Y, ValueError, r"one output column, shape \(n, 1\)"),
        (dp.nn.losses.softmax_cross_entropy, X, np.full(8, 4), ValueError, r"integers in \[0, 4\)"),
        (dp.nn.losses.softmax_cross_entropy, X, np.full(8, np.nan), NonFiniteError, "labels has NaN"),
        (dp.nn.losses.softmax_cross_entropy, X, Y.astype(str), TypeError, "labels must be numeric"),
    ],
    ids=["binary label 2", "too few labels", "binary loss of 4 columns", "class out of range", "nan", "strings"],
)
def test_losses_refuse_bad_labels_and_outputs_and_keep_the_logits(loss, z, y, error, message):
    logits = dp.Node(z.copy(), "z")
    with pytest.raises(error, match=message):
        loss(logits, y)
    assert_same_bits(logits.value, z, "z")


# ----- optimizers -----


def corrupt(grads, how):
    """A copy of ``grads`` with one gradient (or name) broken as ``how`` says."""
    grads = dict(grads)
    if how == "unknown name":
        grads["weight_l9"] = np.ones((2, 2))
    elif how == "transposed":
        grads["weight_l1"] = grads["weight_l1"].T
    elif how == "scalar":
        grads["gamma_bn1"] = np.float64(1.0)
    elif how == "strings":
        grads["beta_bn2"] = grads["beta_bn2"].astype(str)
    else:
        grads["beta_bn2"] = grads["beta_bn2"].copy()
        grads["beta_bn2"][0, 1] = {"nan": np.nan, "inf": np.inf}[how]
    return grads


GRADIENT_ERRORS = {
    "unknown name": (KeyError, r"unknown parameters \['weight_l9'\]"),
    "transposed": (ValueError, r"'weight_l1' has shape \(6, 4\), but the parameter has shape \(4, 6\)"),
    "scalar": (ValueError, r"'gamma_bn1' has shape \(\)"),
    "nan": (NonFiniteError, r"\['beta_bn2'\] have NaN or inf"),
    "inf": (NonFiniteError, r"\['beta_bn2'\] have NaN or inf"),
    "strings": (TypeError, "'beta_bn2' must be numeric"),
}


@pytest.mark.parametrize("how", GRADIENT_ERRORS)
@pytest.mark.parametrize("name", sorted({cls.name for cls in OPTIMIZERS.values()}))
def test_an_optimizer_step_with_bad_gradients_changes_nothing(name, how):
    model, optimizer = trained(optimizer=name)
    grads = corrupt(model.loss(X, Y).grad(1), how)
    error, message = GRADIENT_ERRORS[how]
    assert_refused(lambda: optimizer.step(model.params, grads), error, message, model, optimizer)


# ----- set_param, and parameters of another architecture -----

BAD_VALUES = {  # name: (values, exception, message); each but the last also holds a valid entry
    "unknown name": (
        {"weight_l1": np.zeros((4, 6)), "weight_l9": np.zeros(3)},
        KeyError,
        r"unknown parameter names \['weight_l9'\]",
    ),
    "wrong shape": (
        {"gamma_bn1": np.ones((1, 6)), "weight_l2": np.zeros((5, 6))},
        ValueError,
        r"'weight_l2'.*\(6, 5\)",
    ),
    "a 1-d row": ({"gamma_bn1": np.ones((1, 6)), "beta_bn1": np.zeros(6)}, ValueError, r"'beta_bn1'.*got \(6,\)"),
    "nan average": (
        {"gamma_bn1": np.ones((1, 6)), "avg_mean_bn2": np.full((1, 5), np.nan)},
        NonFiniteError,
        "'avg_mean",
    ),
    "inf weight": ({"weight_l3": np.full((5, 1), np.inf)}, NonFiniteError, "'weight_l3' has NaN or inf"),
}
STRINGS_AS_VALUES = {
    "strings": ({"gamma_bn1": np.ones((1, 6)), "weight_l1": np.full((4, 6), "a")}, TypeError, "'weight_l1'.*numeric")
}


@pytest.mark.parametrize(
    "values, error, message",
    cases(BAD_VALUES) + cases(STRINGS_AS_VALUES),
)
def test_set_param_refuses_bad_values_and_changes_nothing(values, error, message):
    model, _ = trained()
    assert_refused(lambda: model.set_param(values), error, message, model)


@pytest.mark.parametrize(
    "sizes, error, message",
    [
        ((FEATURES, 7, 5, 1), ValueError, r"'weight_l1' has shape \(4, 6\), got \(4, 7\)"),
        ((FEATURES, 6, 1), KeyError, r"unknown parameter names \['bias_l2'\]"),
        ((FEATURES, 6, 5, 4, 1), KeyError, r"unknown parameter names \['avg_mean_bn3'"),
        ((FEATURES, 6, 5, 3), ValueError, r"'weight_l3' has shape \(5, 1\), got \(5, 3\)"),
    ],
    ids=["wider", "shallower", "deeper", "more outputs"],
)
def test_parameters_from_a_checkpoint_of_another_architecture_do_not_fit_and_change_nothing(
    sizes, error, message, tmp_path
):
    model, _ = trained()
    path = save(dp.MLP(sizes=sizes, seed=1), tmp_path / "other.npz")
    assert_refused(lambda: model.set_param(load(path).params), error, message, model)


# ----- checkpoint files -----


def damage(path, how):
    """Damage the checkpoint at ``path`` as ``how`` says; return the path to load."""
    if how == "missing":
        return path.with_name("missing.npz")
    if how == "a .npy array":
        np.save(path.with_suffix(".npy"), np.ones(3))
        return path.with_suffix(".npy")
    if how == "another architecture":  # the arrays of one MLP under the description of another
        with np.load(path) as stored:
            arrays = dict(stored)
        arrays["__dp_model__"] = np.array(str(arrays["__dp_model__"]).replace("[4, 6, 5, 1]", "[4, 7, 5, 1]"))
        np.savez(path, **arrays)
        return path
    data = path.read_bytes()
    path.write_bytes(
        {
            "empty": b"",
            "truncated": data[: len(data) // 2],
            "a flipped byte": data[:300] + bytes([data[300] ^ 0xFF]) + data[301:],  # in the architecture's JSON
            "text": b"weights: 1, 2, 3\n",
        }[how]
    )
    return path


@pytest.mark.parametrize(
    "how, error, message",
    [
        ("missing", FileNotFoundError, "missing.npz"),
        ("empty", CheckpointError, "truncated or corrupt"),
        ("truncated", CheckpointError, "truncated or corrupt"),
        ("a flipped byte", CheckpointError, "truncated or corrupt.*CRC"),
        ("text", CheckpointError, "truncated or corrupt"),
        ("a .npy array", CheckpointError, r"single array \(.npy\)"),
        ("another architecture", CheckpointError, r"'weight_l1' has shape \(4, 6\), the architecture needs \(4, 7\)"),
    ],
)
def test_a_damaged_or_mismatched_checkpoint_is_refused_with_a_reason(how, error, message, tmp_path):
    model, optimizer = trained()
    path = damage(save(model, tmp_path / "model.npz", optimizer), how)
    for read in (load, load_with_optimizer):
        with pytest.raises(error, match=message):
            read(path)


def nan_weights(model, optimizer):
    model.params["weight_l2"] = np.full((6, 5), np.nan)  # as a diverged update would leave them


def a_step_count_of_zero(model, optimizer):
    optimizer.state["weight_l1"]["step"] = 0


@pytest.mark.parametrize(
    "break_it, message", [(nan_weights, "'weight_l2' has NaN or inf"), (a_step_count_of_zero, "int >= 1, got 0")]
)
def test_saving_a_broken_model_is_refused_and_keeps_the_old_checkpoint(break_it, message, tmp_path):
    model, optimizer = trained()
    path = save(model, tmp_path / "model.npz", optimizer)
    old = path.read_bytes()
    break_it(model, optimizer)
    assert_refused(lambda: save(model, path, optimizer), CheckpointError, message, model, optimizer)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["model.npz"]


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (lambda model, optimizer, path: (model.params, path / "m.npz"), TypeError, "needs a dp.MLP or a dp.CNN"),
        (lambda model, optimizer, path: (model, path / "m.npz", "adam"), TypeError, "dp.optim.Optimizer or None"),
        (lambda model, optimizer, path: (model, path / "no" / "m.npz", optimizer), FileNotFoundError, "no"),
    ],
    ids=["not a model", "not an optimizer", "a missing directory"],
)
def test_saving_the_wrong_objects_or_to_a_missing_directory_is_refused(arguments, error, message, tmp_path):
    model, optimizer = trained()
    assert_refused(lambda: save(*arguments(model, optimizer, tmp_path)), error, message, model, optimizer)
    assert not list(tmp_path.iterdir())


# ----- the training loop -----


TRAIN_X = np.random.default_rng(7).standard_normal((40, FEATURES))
TRAIN_Y = (TRAIN_X[:, 0] > 0).astype(float)


def train_x_with(value):
    x = TRAIN_X.copy()
    x[37, 1] = value  # a late row: with a valid first batch, fit would train before meeting it
    return x


BAD_TRAINING = {  # name: ((rows, labels), options for fit, exception, message)
    "strings": ((TRAIN_X.astype(str), TRAIN_Y), {}, TypeError, "must be numeric"),
    "too few features": ((TRAIN_X[:, :3], TRAIN_Y), {}, ValueError, r"shape \(n, 4\)"),
    "no rows": (
        (TRAIN_X[:0], TRAIN_Y[:0]),
        {},
        ValueError,
        r"the training rows: empty \(shape \(0, 4\)\); at least one row",
    ),
    "one row": (
        (TRAIN_X[:1], TRAIN_Y[:1]),
        {},
        ValueError,
        "batch_size must be at most the number of training rows, 1",
    ),
    "a batch of one": (
        (TRAIN_X, TRAIN_Y),
        {"batch_size": 1},
        ValueError,
        r"batch_size must be a whole number in \[2, inf\)",
    ),
    "no epochs": ((TRAIN_X, TRAIN_Y), {"epochs": 0}, ValueError, r"epochs must be a whole number in \[1, inf\)"),
    "steps and epochs": ((TRAIN_X, TRAIN_Y), {"steps": 3}, ValueError, "either steps or epochs"),
    "steps=True": ((TRAIN_X, TRAIN_Y), {"steps": True, "epochs": None}, TypeError, "steps must be a whole number"),
    "unknown schedule": ((TRAIN_X, TRAIN_Y), {"schedule": "linear"}, ValueError, "schedule must be one of"),
}
BAD_TRAINING_ROWS = {
    "nan in a late row": ((train_x_with(np.nan), TRAIN_Y), {}, NonFiniteError, "NaN or inf"),
    "inf in a late row": ((train_x_with(np.inf), TRAIN_Y), {}, NonFiniteError, "NaN or inf"),
    "label 2 in a late row": ((TRAIN_X, np.where(np.arange(40) == 37, 2.0, TRAIN_Y)), {}, ValueError, r"\[0, 1\]"),
    "fewer labels than rows": ((TRAIN_X, TRAIN_Y[:30]), {}, ValueError, "labels"),
    "more labels than rows": ((TRAIN_X[:30], TRAIN_Y), {}, ValueError, "labels"),
}


@pytest.mark.parametrize("data, options, error, message", cases(BAD_TRAINING) + cases(BAD_TRAINING_ROWS))
def test_fit_refuses_bad_data_before_any_step(data, options, error, message):
    model, optimizer = trained()
    train = lambda: fit(model, *data, optimizer, **{"epochs": 2, "batch_size": 8, "progress": False, **options})
    assert not isinstance(
        assert_refused(train, error, message, model, optimizer), Diverged
    )  # bad data is not divergence


# ----- the scikit-learn estimator -----


def fitted_estimator():
    return BatchNormMLPClassifier(hidden_layer_sizes=(6, 5), max_iter=2, batch_size=8, random_state=0).fit(
        TRAIN_X, TRAIN_Y
    )


def assert_estimator_refused(action, error, message, clf):
    """``action()`` raises and every attribute of ``clf`` is as before: the same network
    and optimizer objects, unchanged, and equal values for the rest."""
    attributes = dict(vars(clf))
    fitted = hasattr(clf, "model_")
    if fitted:
        assert_refused(action, error, message, clf.model_, clf.optimizer_)
    else:
        with pytest.raises(error, match=message):
            action()
    assert vars(clf).keys() == attributes.keys()
    for k, v in attributes.items():
        assert vars(clf)[k] is v or np.array_equal(vars(clf)[k], v), k


def labels_with(value):
    return np.where(np.arange(40) == 37, value, TRAIN_Y)


BAD_FIT = {  # name: (X, y, exception, message)
    "nan in X": (train_x_with(np.nan), TRAIN_Y, ValueError, "Input X contains NaN"),
    "inf in X": (train_x_with(np.inf), TRAIN_Y, ValueError, "Input X contains infinity"),
    "nan in y": (TRAIN_X, labels_with(np.nan), ValueError, "Input y contains NaN"),
    "letters in X": (np.full((40, FEATURES), "a"), TRAIN_Y, ValueError, "could not convert string to float"),
    "dicts in X": (np.full((40, FEATURES), {}), TRAIN_Y, TypeError, "must be a string or a real number, not 'dict'"),
    "complex X": (TRAIN_X + 1j, TRAIN_Y, ValueError, "Complex data not supported"),
    "one class": (TRAIN_X, np.ones(40), ValueError, r"at least 2 classes.*only one class: \[1.0\]"),
    "continuous y": (TRAIN_X, TRAIN_X[:, 0], ValueError, "Unknown label type: continuous"),
    "fewer labels than rows": (TRAIN_X, TRAIN_Y[:30], ValueError, r"inconsistent numbers of samples: \[40, 30\]"),
    "a label matrix": (TRAIN_X, np.zeros((40, 2)), ValueError, r"y should be a 1d array"),
    "no labels": (TRAIN_X, None, ValueError, "requires y to be passed"),
    "1-d X": (TRAIN_X[:, 0], TRAIN_Y, ValueError, "Expected a 2-dimensional container|Expected 2D array"),
    "3-d X": (TRAIN_X[None], TRAIN_Y, ValueError, "Found array with dim 3"),
    "one row": (TRAIN_X[:1], TRAIN_Y[:1], ValueError, r"1 sample\(s\).*minimum of 2"),
    "no rows": (TRAIN_X[:0], TRAIN_Y[:0], ValueError, r"0 sample\(s\)"),
    "values too large to square": (TRAIN_X * 1e200, TRAIN_Y, Diverged, "too large to square"),
}


@pytest.mark.parametrize("fitted", [True, False], ids=["fitted", "unfitted"])
@pytest.mark.parametrize("X, y, error, message", cases(BAD_FIT))
def test_the_estimator_refuses_bad_data_and_stays_as_it_was(X, y, error, message, fitted):
    clf = fitted_estimator() if fitted else BatchNormMLPClassifier(max_iter=2, random_state=0)
    assert_estimator_refused(lambda: clf.fit(X, y), error, message, clf)


BAD_PARTIAL_FIT = {  # name: (X, y, classes, exception, message)
    "a label outside the classes": (TRAIN_X, labels_with(5.0), None, ValueError, r"previously unseen labels: \[.*5\.0"),
    "other classes than at first": (TRAIN_X, TRAIN_Y, [0, 1, 2], ValueError, "differs from classes_"),
    "other features than at first": (TRAIN_X[:, :3], TRAIN_Y, None, ValueError, "3 features, but .* expecting 4"),
    "nan in X": (train_x_with(np.nan), TRAIN_Y, None, ValueError, "Input X contains NaN"),
    "one row": (TRAIN_X[:1], TRAIN_Y[:1], None, ValueError, r"1 sample\(s\)"),
}


@pytest.mark.parametrize("X, y, classes, error, message", cases(BAD_PARTIAL_FIT))
def test_partial_fit_refuses_bad_data_and_changes_nothing(X, y, classes, error, message):
    clf = fitted_estimator()
    assert_estimator_refused(lambda: clf.partial_fit(X, y, classes=classes), error, message, clf)


@pytest.mark.parametrize(
    "classes, message",
    [
        (None, "classes must be given at the first call"),
        ([1.0], "at least 2 classes"),
        ([0.0, 1.0, 2.0], r"previously unseen labels: \[.*3\.0"),
    ],
    ids=["no classes", "one class", "a label outside"],
)
def test_a_first_partial_fit_needs_every_class_and_leaves_an_unfitted_estimator_unfitted(classes, message):
    clf = BatchNormMLPClassifier(random_state=0)
    y = labels_with(3.0) if classes else TRAIN_Y
    assert_estimator_refused(lambda: clf.partial_fit(TRAIN_X, y, classes=classes), ValueError, message, clf)
    assert not hasattr(clf, "n_features_in_")


BAD_PREDICT = {  # name: (X, exception, message)
    "nan in X": (train_x_with(np.nan), ValueError, "Input X contains NaN"),
    "other features": (TRAIN_X[:, :3], ValueError, "X has 3 features, but BatchNormMLPClassifier is expecting 4"),
    "letters in X": (np.full((4, FEATURES), "a"), ValueError, "could not convert string to float"),
    "1-d X": (TRAIN_X[0], ValueError, "Expected a 2-dimensional container|Expected 2D array"),
    "no rows": (TRAIN_X[:0], ValueError, r"0 sample\(s\)"),
}


@pytest.mark.parametrize("X, error, message", cases(BAD_PREDICT))
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score"])
def test_the_estimator_refuses_to_predict_from_bad_data(method, X, error, message):
    clf = fitted_estimator()
    predict = getattr(clf, method)
    assert_estimator_refused(lambda: predict(X, TRAIN_Y) if method == "score" else predict(X), error, message, clf)


@pytest.mark.parametrize(
    "name, value",
    [
        ("hidden_layer_sizes", (5, 0)),
        ("hidden_layer_sizes", (5, "a")),
        ("hidden_layer_sizes", -3),
        ("hidden_layer_sizes", None),
        ("hidden_layer_sizes", "20"),
        ("activation", ["tanh"]),
        ("activation", "softmax"),
        ("optimizer", "lbfgs"),
        ("optimizer", None),
        ("schedule", "step"),
        ("max_iter", 0),
        ("max_iter", 2.5),
        ("batch_size", 1),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("learning_rate", "0.1"),
        ("batch_norm_momentum", 0.0),
        ("batch_norm_momentum", 1.5),
        ("batch_norm_eps", -1e-5),
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_hyperparameters_are_accepted_by_init_and_refused_by_fit_by_name(method, name, value):
    clf = fitted_estimator()
    clf.set_params(**{name: value})  # scikit-learn's convention: __init__ and set_params store, fit checks
    train = getattr(clf, method)
    assert_estimator_refused(lambda: train(TRAIN_X, TRAIN_Y), ValueError, f"{name} must be", clf)


def test_the_estimator_learns_from_rows_that_are_all_alike():
    X = np.zeros((10, 3))
    clf = BatchNormMLPClassifier(max_iter=2, random_state=0).fit(X, [0, 1] * 5)
    assert clf.predict(X).shape == (10,)


# ----- the words of the messages a newcomer meets -----


def test_a_node_where_an_array_is_expected_says_to_pass_its_value():
    model = dp.MLP(seed=0)
    with pytest.raises(TypeError, match=r"not a Node: pass its array, node\.value"):
        model.set_param({"weight_l1": dp.Node(np.ones((30, 20)))})
    with pytest.raises(TypeError, match=r"the training rows must be numeric .*not a Node: pass its array, node\.value"):
        fit(model, dp.Node(X), Y, make_optimizer("sgd", lr=0.1), steps=1, progress=False)


def test_no_training_rows_is_said_in_good_grammar():
    with pytest.raises(ValueError) as refused:
        fit(dp.MLP(seed=0), np.ones((0, FEATURES)), np.ones(0), make_optimizer("sgd", lr=0.1), progress=False)
    assert str(refused.value) == f"the training rows: empty (shape (0, {FEATURES})); at least one row is needed"
