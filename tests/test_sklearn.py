"""`dp.sklearn.BatchNormMLPClassifier`: scikit-learn's own estimator checks, the
meta-estimators it must work in, labels of any kind, determinism, partial_fit, pickling.

No check is expected to fail: every check scikit-learn generates for a classifier
applies to this one and passes (pandas-only checks are skipped where pandas is missing).
"""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import dp
from dp.tools.sklearn import BatchNormMLPClassifier

# Few epochs keep the checks fast; they still reach the accuracy the checks demand.
CHECKED = [
    BatchNormMLPClassifier(max_iter=20, random_state=0),
    BatchNormMLPClassifier(
        hidden_layer_sizes=(8,),
        batch_norm=False,
        activation="relu",
        optimizer="momentum",
        schedule="constant",
        max_iter=20,
        random_state=0,
    ),
]


@parametrize_with_checks(CHECKED)
def test_the_estimator_passes_scikit_learns_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def breast_cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)


def blobs(labels, rows=60, features=3, seed=0):
    """Well-separated clusters, one per label, with the labels as given (any dtype)."""
    rng = np.random.default_rng(seed)
    index = np.arange(rows) % len(labels)
    x = rng.standard_normal((rows, features)) * 0.3 + 3 * np.eye(len(labels), features)[index]
    return x, np.asarray(labels)[index]


# ----- in scikit-learn's meta-estimators -----


def test_in_a_pipeline_with_a_scaler_it_classifies_breast_cancer(breast_cancer):
    x_train, x_test, y_train, y_test = breast_cancer
    pipeline = make_pipeline(StandardScaler(), BatchNormMLPClassifier(max_iter=30, random_state=0))
    assert pipeline.fit(x_train, y_train).score(x_test, y_test) > 0.94


def test_grid_search_picks_hyperparameters_and_refits_the_best(breast_cancer):
    x_train, x_test, y_train, y_test = breast_cancer
    grid = {"batchnormmlpclassifier__learning_rate": [1e-5, 0.01]}
    pipeline = make_pipeline(StandardScaler(), BatchNormMLPClassifier(max_iter=10, random_state=0))
    search = GridSearchCV(pipeline, grid, cv=3).fit(x_train, y_train)
    assert search.best_params_ == {"batchnormmlpclassifier__learning_rate": 0.01}  # 1e-5 barely moves
    assert search.score(x_test, y_test) > 0.9


def test_cross_val_score_gives_one_good_score_per_fold():
    x, y = load_iris(return_X_y=True)
    scores = cross_val_score(make_pipeline(StandardScaler(), BatchNormMLPClassifier(random_state=0)), x, y, cv=5)
    assert scores.shape == (5,) and scores.min() > 0.85


# ----- labels and outputs -----


@pytest.mark.parametrize(
    "labels",
    [[0, 1], [-1, 1], [3, 7], ["no", "yes"], [False, True], [1.0, 2.0], ["b", "c", "a"], [-5, 0, 5, 10]],
    ids=repr,
)
def test_any_labels_are_learned_and_predicted_as_given(labels):
    x, y = blobs(labels)
    clf = BatchNormMLPClassifier(max_iter=30, random_state=0).fit(x, y)
    assert np.array_equal(clf.classes_, np.unique(labels)) and clf.classes_.dtype == np.asarray(labels).dtype
    assert clf.predict(x).dtype == clf.classes_.dtype
    assert clf.score(x, y) == 1.0


def test_two_classes_use_one_sigmoid_output_and_give_probabilities_one_minus_p_and_p():
    x, y = blobs(["cat", "dog"])
    clf = BatchNormMLPClassifier(max_iter=10, random_state=0).fit(x, y)
    assert clf.model_.sizes == (3, 20, 10, 1)
    z, proba = clf.decision_function(x), clf.predict_proba(x)
    assert z.shape == (60,) and proba.shape == (60, 2)
    assert np.array_equal(proba[:, 1], clf.model_.predict_proba(x)[:, 0]) and np.array_equal(
        proba[:, 0], 1 - proba[:, 1]
    )
    assert np.array_equal(clf.predict(x), np.where(z > 0, "dog", "cat"))


def test_k_classes_use_a_softmax_over_k_outputs():
    x, y = blobs([10, 20, 30, 40])
    clf = BatchNormMLPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(x, y)
    assert clf.model_.sizes == (3, 6, 4)
    z, proba = clf.decision_function(x), clf.predict_proba(x)
    assert z.shape == proba.shape == (60, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(clf.predict(x), clf.classes_[z.argmax(axis=1)])
    assert np.array_equal(proba.argmax(axis=1), z.argmax(axis=1))


def test_without_hidden_layers_it_is_logistic_regression():
    x, y = blobs([0, 1])
    clf = BatchNormMLPClassifier(hidden_layer_sizes=(), max_iter=10, random_state=0).fit(x, y)
    assert clf.model_.sizes == (3, 1) and sorted(clf.model_.params) == ["bias_l1", "weight_l1"]


@pytest.mark.parametrize("rows", [2, 3, 5])
def test_tiny_data_sets_train_in_one_batch(rows):
    x, y = blobs([0, 1], rows=rows)
    clf = BatchNormMLPClassifier(batch_size=50, max_iter=3, random_state=0).fit(x, y)
    assert clf.predict(x).shape == (rows,) and clf.n_iter_ == 3 and len(clf.loss_curve_) == 3


def test_the_fitted_network_is_a_dp_mlp_in_eval_mode_with_the_chosen_settings():
    x, y = blobs([0, 1])
    clf = BatchNormMLPClassifier(
        activation="relu", optimizer="rmsprop", learning_rate=0.002, batch_norm_momentum=0.2, batch_norm_eps=1e-3
    ).set_params(max_iter=2, random_state=0)
    model = clf.fit(x, y).model_
    assert isinstance(model, dp.MLP) and not model.training
    assert model.config["activation"] == "relu" and model.config["momentum"] == 0.2 and model.config["eps"] == 1e-3
    assert isinstance(clf.optimizer_, dp.optim.RMSProp) and clf.optimizer_.lr == 0.002


# ----- randomness -----


def test_a_fixed_random_state_gives_bit_identical_models():
    x, y = blobs([0, 1, 2])
    a, b = (BatchNormMLPClassifier(max_iter=5, random_state=7).fit(x, y) for _ in range(2))
    assert all(np.array_equal(a.model_.params[k], b.model_.params[k]) for k in a.model_.params)


def test_no_random_state_draws_new_initial_weights_at_every_fit():
    x, y = blobs([0, 1])
    clf = BatchNormMLPClassifier(max_iter=1)
    first = clf.fit(x, y).model_.params["weight_l1"]
    assert not np.array_equal(first, clf.fit(x, y).model_.params["weight_l1"])


# ----- partial_fit -----


def test_partial_fit_trains_one_epoch_per_call_and_continues_with_the_same_network():
    x, y = blobs(["a", "b", "c"])
    clf = BatchNormMLPClassifier(batch_size=10, random_state=0)
    clf.partial_fit(x[:30], y[:30], classes=["c", "b", "a"])
    model, optimizer = clf.model_, clf.optimizer_
    for _ in range(19):
        clf.partial_fit(x, y)
    assert clf.model_ is model and clf.optimizer_ is optimizer and clf.n_iter_ == 20 and len(clf.loss_curve_) == 20
    assert list(clf.classes_) == ["a", "b", "c"] and optimizer.state_dict()["weight_l1"]["step"] == 3 + 19 * 6
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] / 2 and clf.score(x, y) == 1.0


def test_partial_fit_continues_a_fit():
    x, y = blobs([0, 1])
    clf = BatchNormMLPClassifier(max_iter=3, random_state=0).fit(x, y)
    weights = clf.model_.params["weight_l1"]
    clf.partial_fit(x, y)
    assert clf.n_iter_ == 4 and not np.array_equal(weights, clf.model_.params["weight_l1"])


def test_partial_fit_accepts_a_batch_with_only_some_of_the_classes():
    x, y = blobs([0, 1, 2])
    clf = BatchNormMLPClassifier(random_state=0).partial_fit(x[y == 0], y[y == 0], classes=[0, 1, 2])
    assert clf.predict_proba(x).shape == (60, 3)


# ----- pickling -----


def test_a_pickled_estimator_predicts_bit_identically_and_keeps_training():
    x, y = blobs(["x", "y", "z"])
    clf = BatchNormMLPClassifier(max_iter=5, random_state=0).fit(x, y)
    copy = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(copy.predict_proba(x), clf.predict_proba(x))
    assert copy.model_ is not clf.model_ and hasattr(clf.model_, "params")  # pickling left the original intact
    for estimator in (clf, copy):
        estimator.partial_fit(x, y)
    assert np.array_equal(copy.predict_proba(x), clf.predict_proba(x))  # the optimizer state came along


# ----- hyperparameters -----


@pytest.mark.parametrize(
    "settings, sizes",
    [
        (dict(hidden_layer_sizes=7), (3, 7, 1)),  # one width
        (dict(hidden_layer_sizes=np.array([6, 4])), (3, 6, 4, 1)),
        (dict(hidden_layer_sizes=[np.int64(5)], optimizer="Adam"), (3, 5, 1)),  # optimizer names in any case
    ],
)
def test_hyperparameters_take_the_forms_they_are_documented_in(settings, sizes):
    x, y = blobs([0, 1])
    clf = BatchNormMLPClassifier(max_iter=2, random_state=0, **settings).fit(x, y)
    assert clf.model_.sizes == sizes


def test_every_bad_hyperparameter_is_named_in_one_error():
    clf = BatchNormMLPClassifier(max_iter=0, batch_norm=1, learning_rate="fast", activation="swish")
    with pytest.raises(ValueError) as raised:
        clf.fit(*blobs([0, 1]))
    message = str(raised.value)
    assert message.startswith("BatchNormMLPClassifier: ")
    for part in (
        "batch_norm must be True or False, not int",
        "activation must be one of ",  # dp.ops.ACTIVATIONS
        "got 'swish'",
        "learning_rate must be a real number, not str",
        r"max_iter must be a whole number in [1, inf), got 0",
    ):
        assert part in message


def test_without_scikit_learn_dp_sklearn_says_how_to_install_it(monkeypatch):
    import importlib
    import sys

    for name in [name for name in sys.modules if name == "sklearn" or name.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: importing it raises ImportError
    monkeypatch.delitem(sys.modules, "dp.tools.sklearn")
    with pytest.raises(ImportError, match=r'dp\.sklearn needs scikit-learn, .*pip install "\.\[train\]"'):
        importlib.import_module("dp.tools.sklearn")
