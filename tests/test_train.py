"""The training loop: the history it returns, steps and epochs, reproducibility, the
learning-rate schedule, divergence, the progress bar, and argument checks."""

import copy
import dataclasses
import math
import time

import numpy as np
import pytest

import dp
from dp import data
from dp.nn.models import MLP
from dp.node import Node
from dp.optim import SGD, Adam
from dp.train import CHANCE_MARGIN, SCHEDULES, Diverged, History, fit


@pytest.fixture(scope="module")
def split():
    return data.breast_cancer(validation_size=0.15, seed=0)


@pytest.fixture(scope="module")
def split_without_validation():
    return data.breast_cancer(seed=0)


def fit_on(model, split, optimizer, **options):
    """`fit` on ``split``'s training rows, its validation rows evaluated if it has some."""
    validation = (split.x_val, split.y_val) if len(split.x_val) else None
    return fit(model, split.x_train, split.y_train, optimizer, validation=validation, **options)


def train(split, steps=20, seed=0, model_seed=0, **options):
    model = MLP(seed=model_seed)
    optimizer = options.pop("optimizer", None) or Adam(lr=0.003)
    history = fit_on(model, split, optimizer, steps=steps, batch_size=50, seed=seed, progress=False, **options)
    return model, optimizer, history


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k


def test_history_has_one_entry_per_evaluation(split):
    _, _, history = train(split, steps=20, eval_every=5)
    batches_per_epoch = len(split.y_train) // 50
    assert history.step == [5, 10, 15, 20]
    assert history.epoch == [s / batches_per_epoch for s in history.step]
    assert len(history.loss) == len(history.train_accuracy) == len(history.val_accuracy) == 4
    assert all(0 < loss < 1 for loss in history.loss)  # per row, starting near log(2)
    assert all(0 <= a <= 1 for a in history.train_accuracy + history.val_accuracy)
    assert history.seconds > 0 and not history.diverged
    assert set(dataclasses.asdict(history)) == {
        "step",
        "epoch",
        "loss",
        "train_accuracy",
        "val_accuracy",
        "seconds",
        "diverged",
        "chance",
    }
    assert history.chance == pytest.approx(max(split.y_train.mean(), 1 - split.y_train.mean()))
    assert not history.stuck_at_chance


def test_training_lowers_the_loss_and_learns(split):
    _, _, history = train(split, steps=100, eval_every=10)
    assert history.loss[-1] < history.loss[0] / 3
    assert history.val_accuracy[-1] > 0.9


def test_the_last_step_is_always_evaluated(split):
    _, _, history = train(split, steps=12, eval_every=5)
    assert history.step == [5, 10, 12]


def test_epochs_count_whole_batches_and_evaluate_once_an_epoch_by_default(split):
    model = MLP(seed=0)
    batches_per_epoch = len(split.y_train) // 50  # the last, smaller batch is dropped
    steps = []
    history = fit_on(
        model, split, Adam(), epochs=2, batch_size=50, progress=False, on_step=lambda s, m: steps.append(s)
    )
    assert steps == list(range(1, 2 * batches_per_epoch + 1))
    assert history.step == [batches_per_epoch, 2 * batches_per_epoch]
    assert history.epoch == [1.0, 2.0]


def test_validation_accuracy_is_recorded_only_with_validation_rows(split, split_without_validation):
    assert len(train(split, steps=10, eval_every=5)[2].val_accuracy) == 2
    history = train(split_without_validation, steps=10, eval_every=5)[2]
    assert history.val_accuracy == []
    assert history.steps_to_reach(0.0) is None


def test_steps_to_reach_is_the_first_evaluated_step_at_the_accuracy():
    history = History(step=[5, 10, 15], val_accuracy=[0.8, 0.96, 0.94])
    assert history.steps_to_reach(0.95) == 10
    assert history.steps_to_reach(0.8) == 5
    assert history.steps_to_reach(0.97) is None


def test_on_step_is_called_after_every_step_with_the_model(split):
    calls = []
    model, _, _ = train(split, steps=7, on_step=lambda step, m: calls.append((step, m)))
    assert [step for step, _ in calls] == list(range(1, 8))
    assert all(m is model for _, m in calls)


def test_the_same_seed_gives_bit_identical_results(split):
    model_a, _, history_a = train(split, steps=30, seed=3, eval_every=5)
    model_b, _, history_b = train(split, steps=30, seed=3, eval_every=5)
    assert_same_params(model_a.params, model_b.params)
    for field in ("step", "epoch", "loss", "train_accuracy", "val_accuracy"):
        assert getattr(history_a, field) == getattr(history_b, field), field


def test_another_seed_gives_another_batch_order(split):
    model_a, _, history_a = train(split, steps=30, seed=3)
    model_b, _, history_b = train(split, steps=30, seed=4)  # same initial weights, other batches
    assert not np.array_equal(model_a.params["weight_l1"], model_b.params["weight_l1"])
    assert history_a.loss != history_b.loss


def test_the_cosine_schedule_decays_the_rate_and_restores_it(split):
    optimizer = Adam(lr=0.01)
    rates = []
    fit_on(
        MLP(seed=0),
        split,
        optimizer,
        steps=10,
        schedule="cosine",
        progress=False,
        on_step=lambda step, model: rates.append(optimizer.lr),
    )
    assert rates == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])
    assert rates[0] == 0.01 and rates == sorted(rates, reverse=True)
    assert optimizer.lr == 0.01


def test_the_constant_schedule_keeps_the_rate(split):
    optimizer = SGD(lr=0.05)
    rates = []
    fit_on(
        MLP(seed=0), split, optimizer, steps=5, progress=False, on_step=lambda step, model: rates.append(optimizer.lr)
    )
    assert rates == [0.05] * 5 and SCHEDULES["constant"](3, 5) == 1.0


def test_divergence_raises_with_the_history_and_keeps_the_last_finite_parameters(split):
    model, optimizer = MLP(seed=0), SGD(lr=1e200)
    after_step = {}
    with pytest.raises(Diverged, match="training diverged at step 2") as caught:
        fit_on(
            model,
            split,
            optimizer,
            steps=50,
            eval_every=1,
            progress=False,
            on_step=lambda step, m: after_step.update({step: m.get_param()}),
        )
    assert caught.value.history.diverged and caught.value.history.step == [1]
    assert all(np.isfinite(v).all() for v in model.params.values())
    assert_same_params(model.params, after_step[1])
    assert optimizer.lr == 1e200


def test_an_update_that_would_overflow_is_refused_and_changes_nothing(split):
    model = MLP(batch_norm=False, seed=0)
    initial = model.get_param()
    with pytest.raises(
        Diverged, match="step 1: the update of .* would make the parameters or this optimizer's state NaN or inf"
    ):
        fit_on(model, split, SGD(lr=1e308), steps=5, progress=False)
    assert_same_params(model.params, initial)


def test_a_nan_loss_undoes_the_step_moving_averages_and_optimizer_state_included(split):
    model, optimizer = MLP(seed=0), Adam(lr=0.01)
    real_loss, calls, saved = model.loss, [], {}

    def loss_that_fails_on_the_third_step(x, y):
        calls.append(1)
        loss = real_loss(x, y)  # updates the moving averages, as a real failing step would
        return Node(np.full((1, 1), np.nan)) if len(calls) == 3 else loss

    def save(step, m):
        saved.update(params=m.get_param(), state=optimizer.state_dict())

    model.loss = loss_that_fails_on_the_third_step
    with pytest.raises(Diverged, match="step 3: the loss has NaN or inf"):
        fit_on(model, split, optimizer, steps=5, progress=False, on_step=save)
    assert_same_params(model.params, saved["params"])  # avg_mean_bn1 and friends too
    state = optimizer.state_dict()
    assert state.keys() == saved["state"].keys()
    assert all(state[k]["step"] == saved["state"][k]["step"] == 2 for k in state)


class RefusesStep(Adam):
    """Adam that refuses its ``refuse_at``-th step, as an optimizer refusing bad gradients would."""

    def __init__(self, refuse_at, **options):
        super().__init__(**options)
        self.refuse_at, self.calls = refuse_at, 0

    def step(self, params, grads):
        self.calls += 1
        if self.calls == self.refuse_at:
            raise ValueError("this step is refused")
        super().step(params, grads)


def test_a_step_the_optimizer_refuses_changes_nothing_moving_averages_included(split):
    model, optimizer, saved = MLP(seed=0), RefusesStep(refuse_at=3, lr=0.01), {}

    def save(step, m):
        saved.update(params=m.get_param(), state=optimizer.state_dict())

    with pytest.raises(ValueError, match="this step is refused") as raised:
        fit_on(model, split, optimizer, steps=5, progress=False, on_step=save)
    assert not isinstance(raised.value, Diverged)  # not NaN or inf: raised as it is
    assert_same_params(model.params, saved["params"])  # the forward pass of step 3 moved avg_mean_bn1 and friends
    state = optimizer.state_dict()
    assert all(state[k]["step"] == saved["state"][k]["step"] == 2 for k in state)


def test_train_step_commits_all_or_restores_the_same_arrays(split):
    model = MLP(seed=0)
    params, before = model.params, dict(model.params)
    with pytest.raises(ValueError, match="this step is refused"):
        dp.train.train_step(model, RefusesStep(refuse_at=1), split.x_train[:50], split.y_train[:50])
    assert model.params is params and model.params.keys() == before.keys()
    assert all(model.params[k] is before[k] for k in before)  # the very arrays: nothing was written into them
    expected = copy.deepcopy(model).loss(split.x_train[:50], split.y_train[:50]).value.item()
    assert dp.train.train_step(model, Adam(), split.x_train[:50], split.y_train[:50]) == expected  # before the update
    assert all(model.params[k] is not before[k] for k in before)  # every entry replaced, moving averages too


def test_no_progress_bar_when_asked_or_when_standard_error_is_not_a_terminal(split, capsys):
    for progress in (False, None):  # under pytest, standard error is not a terminal
        fit_on(MLP(seed=0), split, Adam(), steps=3, progress=progress)
        assert capsys.readouterr().err == ""


def test_the_progress_bar_goes_to_standard_error(split, capsys):
    fit_on(MLP(seed=0), split, Adam(), steps=3, progress=True)
    captured = capsys.readouterr()
    assert "training" in captured.err and "step" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(steps=5, epochs=1), ValueError, "either steps or epochs"),
        (dict(), ValueError, "either steps or epochs"),
        (dict(steps=0), ValueError, r"steps must be a whole number in \[1, inf\), got 0"),
        (dict(steps=2.5), TypeError, "steps must be a whole number, not float"),
        (dict(steps=True), TypeError, "steps must be a whole number, not bool"),  # True once ran one step
        (dict(epochs=0), ValueError, r"epochs must be a whole number in \[1, inf\)"),
        (dict(epochs=True), TypeError, "epochs must be a whole number, not bool"),
        (dict(steps=5, eval_every=0), ValueError, r"eval_every must be a whole number in \[1, inf\)"),
        (dict(steps=5, eval_every=1.0), TypeError, "eval_every must be a whole number, not float"),
        (dict(steps=5, batch_size=1), ValueError, r"batch_size must be a whole number in \[2, inf\), got 1"),
        (dict(steps=5, batch_size=10_000), ValueError, "batch_size must be at most the number of training rows, 370"),
        (dict(steps=5, batch_size=2.5), TypeError, "batch_size must be a whole number, not float"),
        (dict(steps=5, batch_size=True), TypeError, "batch_size must be a whole number, not bool"),
        (dict(steps=5, seed=-1), ValueError, r"seed must be a whole number in \[0, inf\)"),
        (dict(steps=5, seed=0.5), TypeError, "seed must be a whole number, not float"),
        (dict(steps=5, schedule="linear"), ValueError, "schedule must be one of 'constant', 'cosine'; got 'linear'"),
        (dict(steps=5, progress="yes"), TypeError, "progress must be True or False, not str"),
        (dict(steps=5, on_step=5), TypeError, "on_step must be a function, not int"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_any_step(split, options, error, message):
    model, optimizer = MLP(seed=0), Adam()
    before = model.get_param()
    with pytest.raises(error, match=message):
        fit_on(model, split, optimizer, **{"progress": False, **options})
    assert_same_params(model.params, before)
    assert optimizer.state_dict() == {}


def test_steps_true_is_refused_not_taken_for_one_step(split):
    model = MLP(seed=0)
    before = model.get_param()
    with pytest.raises(TypeError, match="steps must be a whole number, not bool"):
        fit(model, split.x_train, split.y_train, Adam(), steps=True, progress=False)
    assert_same_params(model.params, before)


def test_numpy_integers_are_whole_numbers(split):
    history = fit_on(MLP(seed=0), split, Adam(), steps=np.int64(4), eval_every=np.int32(2), progress=False)
    assert history.step == [2, 4]


@pytest.mark.parametrize(
    "validation, error, message",
    [
        (lambda s: s.x_val, TypeError, r"validation must be an \(x_val, y_val\) pair or None, not an ndarray"),
        (lambda s: (s.x_val, s.y_val, s.y_val), TypeError, "validation must be an"),
        (lambda s: (s.x_val[:, :3], s.y_val), ValueError, r"the validation rows must have shape \(n, 30\)"),
        (lambda s: (s.x_val, s.y_val[:5]), ValueError, "5 labels for 86 validation rows"),
        (lambda s: (s.x_val, 2 * s.y_val), ValueError, r"\[0, 1\]"),
        (lambda s: (np.full_like(s.x_val, np.nan), s.y_val), dp.NonFiniteError, "validation rows has NaN or inf"),
    ],
)
def test_bad_validation_data_is_refused_before_any_step(split, validation, error, message):
    model = MLP(seed=0)
    before = model.get_param()
    with pytest.raises(error, match=message) as raised:
        fit(model, split.x_train, split.y_train, Adam(), validation=validation(split), steps=3, progress=False)
    assert not isinstance(raised.value, Diverged)
    assert_same_params(model.params, before)


def test_fit_leaves_the_model_in_the_mode_it_came_in():
    model = dp.MLP(sizes=(30, 4, 1)).eval()
    split = dp.data.breast_cancer(seed=1)
    dp.train.fit(model, split.x_train, split.y_train, dp.optim.SGD(lr=0.01), steps=3, progress=False)
    assert not model.training


def test_accuracy_counts_matches_for_columns_vectors_and_one_hot(split_without_validation):
    model = train(split_without_validation, steps=30)[0]
    x, y = split_without_validation.x_test, split_without_validation.y_test
    expected = float((model.predict(x) == y).mean())
    assert dp.train.accuracy(model, x, y) == dp.train.accuracy(model, x, y.ravel()) == expected
    three = MLP((30, 4, 3), seed=0)
    fit_on(three, split_without_validation, Adam(lr=0.01), steps=5, progress=False)
    classes = np.arange(len(x)) % 3
    assert dp.train.accuracy(three, x, classes) == dp.train.accuracy(three, x, np.eye(3)[classes])


@pytest.mark.parametrize(
    "labels, error, message",
    [
        (lambda y: y.reshape(1, -1), ValueError, "1 labels for 113 evaluation rows"),  # a row is not one-hot
        (lambda y: y[:10], ValueError, "10 labels for 113 evaluation rows"),
        (lambda y: np.eye(2)[y.astype(int).ravel()], ValueError, r"binary labels must have shape \(n,\) or \(n, 1\)"),
        (lambda y: np.array(["a"] * len(y)), TypeError, r"labels must be numeric \(bool, int or float\), not <U1"),
        (lambda y: y * 2, ValueError, r"\[0, 1\]"),
    ],
)
def test_accuracy_refuses_labels_the_loss_would_refuse(split_without_validation, labels, error, message):
    model = train(split_without_validation, steps=5)[0]
    with pytest.raises(error, match=message):
        dp.train.accuracy(model, split_without_validation.x_test, labels(split_without_validation.y_test))


def test_a_custom_model_trains_and_is_scored_with_its_own_labels_and_predict(split_without_validation):
    class Hinge(dp.NeuralNode):  # labels -1/+1, a hinge loss and its own predict
        def __init__(self):
            super().__init__(seed=0)
            self.l1 = self.linear(30, 1, "l1")

        def forward(self, x, train=None):
            return self.l1(x)

        def loss(self, x, y, train=None, reduction="sum"):
            return (1 - Node(np.asarray(y, float).reshape(-1, 1)) * self.forward(x, train)).relu().sum()

        def predict(self, x):
            return np.where(self.predict_proba(x) > 0, 1, -1)

    split = split_without_validation
    history = fit(Hinge(), split.x_train, 2 * split.y_train - 1, SGD(lr=0.01), epochs=3, batch_size=50, progress=False)
    assert len(history.train_accuracy) == 3 and min(history.train_accuracy) > 0.9
    with pytest.raises(TypeError, match=r"labels must be numeric \(bool, int or float\), not <U3"):
        dp.train.accuracy(Hinge(), split.x_test, np.array(["yes"] * len(split.x_test)))


def test_the_mean_loss_steps_as_the_summed_loss_with_the_rate_divided_by_the_batch(split):
    runs = {}
    for reduction, lr in (("sum", 0.01), ("mean", 0.01 * 50)):
        model = MLP(seed=0)
        history = fit(model, split.x_train, split.y_train, SGD(lr=lr), steps=5, reduction=reduction, progress=False)
        runs[reduction] = model.params, history.loss
    for k in runs["sum"][0]:
        np.testing.assert_allclose(runs["sum"][0][k], runs["mean"][0][k], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(runs["sum"][1], runs["mean"][1], rtol=1e-12)  # both per row


def test_training_accuracy_is_measured_on_a_fixed_sample_of_score_rows(split, monkeypatch):
    scored = []
    monkeypatch.setattr(dp.train, "_fraction_correct", lambda model, x, y: scored.append(len(x)) or 0.5)
    fit(MLP(seed=0), split.x_train, split.y_train, Adam(), steps=4, eval_every=2, score_rows=100, progress=False)
    assert scored == [100, 100]
    scored.clear()
    fit(MLP(seed=0), split.x_train, split.y_train, Adam(), steps=2, score_rows=None, progress=False)
    assert scored == [len(split.x_train)]


def test_the_score_sample_does_not_change_the_batches(split):
    a, b = MLP(seed=0), MLP(seed=0)
    fit(a, split.x_train, split.y_train, Adam(), steps=5, score_rows=10, progress=False)
    fit(b, split.x_train, split.y_train, Adam(), steps=5, score_rows=None, progress=False)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])


def test_a_run_that_learns_nothing_is_reported_stuck_at_chance(split):
    model = MLP(seed=0, batch_norm=False)
    history = fit(model, split.x_train, split.y_train, SGD(lr=1e-12), steps=3, progress=False)
    assert history.stuck_at_chance and history.chance > 0.6


@pytest.mark.parametrize("options", [{"reduction": "max"}, {"score_rows": 0}, {"score_rows": 2.5}])
def test_bad_reduction_or_score_rows_are_refused(split, options):
    with pytest.raises((TypeError, ValueError), match="reduction|score_rows"):
        fit(MLP(seed=0), split.x_train, split.y_train, Adam(), steps=1, progress=False, **options)


# ----- History, Diverged and chance -----


def test_a_new_history_is_empty_took_no_time_and_has_no_chance_level():
    history = History()
    assert history.step == history.epoch == history.loss == history.train_accuracy == history.val_accuracy == []
    assert history.seconds == 0.0 and history.chance == 0.0 and history.diverged is False
    assert not history.stuck_at_chance  # nothing evaluated: nothing to be stuck at


def test_stuck_at_chance_judges_the_last_evaluation_within_the_margin_inclusive():
    at_margin = 0.6 + CHANCE_MARGIN
    assert History(val_accuracy=[0.95, 0.6], chance=0.6).stuck_at_chance  # learned, then lost it
    assert not History(val_accuracy=[0.6, 0.95], chance=0.6).stuck_at_chance  # stuck at first, then learned
    assert History(val_accuracy=[0.62], chance=0.6).stuck_at_chance  # above chance, but within the margin
    assert History(val_accuracy=[at_margin], chance=0.6).stuck_at_chance
    assert not History(val_accuracy=[np.nextafter(at_margin, 1)], chance=0.6).stuck_at_chance
    assert History(val_accuracy=[0.3], chance=0.6).stuck_at_chance  # worse than chance: stuck too
    assert History(train_accuracy=[0.6], chance=0.6).stuck_at_chance  # training accuracy without validation
    assert not History(train_accuracy=[0.6], val_accuracy=[0.9], chance=0.6).stuck_at_chance  # validation first


def test_diverged_says_only_its_message():
    history = History(step=[5])
    error = Diverged("training diverged at step 6: the loss has NaN or inf values", history)
    assert str(error) == "training diverged at step 6: the loss has NaN or inf values"
    assert error.args == ("training diverged at step 6: the loss has NaN or inf values",)
    assert error.history is history and isinstance(error, dp.NonFiniteError)


@pytest.mark.parametrize(
    "y, chance",
    [
        (np.array([0, 0, 1, 2]), 0.5),  # class indices
        (np.array([[0], [0], [1], [2]]), 0.5),  # as a column
        (np.eye(3)[[0, 0, 1, 2]], 0.5),  # one-hot rows: the most frequent class, not the most frequent 0/1 entry
        (np.eye(4)[[3, 1, 3, 3, 0]], 0.6),
        (np.array([[1.0], [0.0], [1.0]]), 2 / 3),  # binary
    ],
)
def test_chance_accuracy_is_the_share_of_the_most_frequent_class(y, chance):
    assert dp.train.chance_accuracy(y) == pytest.approx(chance, abs=1e-15)


# ----- fit's defaults and its time -----


def test_fit_draws_its_batches_from_seed_0_by_default(split):
    runs = []
    for seed_option in ({}, {"seed": 0}):
        model = MLP(seed=0)
        fit(model, split.x_train, split.y_train, Adam(lr=0.01), steps=4, progress=False, **seed_option)
        runs.append(model.params)
    assert_same_params(*runs)


def test_fit_scores_training_accuracy_on_1000_rows_by_default(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1100, 30))
    y = (x[:, 0] > 0).astype(float)
    scored = []

    def count_distinct_rows(model, x, y):
        scored.append(len(np.unique(x, axis=0)))
        return 0.5

    monkeypatch.setattr(dp.train, "_fraction_correct", count_distinct_rows)
    fit(MLP(seed=0), x, y, SGD(lr=0.001), steps=1, progress=False)
    assert scored == [1000]


def test_fit_trains_in_training_mode_whatever_the_mode_it_came_in(split):
    model, modes = MLP(seed=0).eval(), []
    fit_on(model, split, Adam(), steps=3, progress=False, on_step=lambda step, m: modes.append(m.training))
    assert modes == [True, True, True]
    assert not model.training


def test_history_seconds_is_the_time_fit_took(split):
    start = time.perf_counter()
    history = fit_on(MLP(seed=0), split, Adam(), steps=3, progress=False)
    took = time.perf_counter() - start
    assert 0 < history.seconds <= took


def test_a_batch_of_every_training_row_is_allowed(split):
    rows = len(split.x_train)
    history = fit(MLP(seed=0), split.x_train, split.y_train, Adam(), epochs=2, batch_size=rows, progress=False)
    assert history.step == [1, 2] and history.epoch == [1.0, 2.0]


# ----- the training rows scored -----


def test_the_scored_rows_are_distinct_sorted_training_rows():
    for rows, score_rows in ((370, 100), (370, 369), (50, 49)):
        scored = dp.train._scored_rows(rows, score_rows, seed=0)
        assert len(np.unique(scored)) == len(scored) == score_rows  # drawn without replacement
        assert np.array_equal(scored, np.sort(scored)) and 0 <= scored[0] and scored[-1] < rows
    assert np.array_equal(dp.train._scored_rows(10, 10, seed=0), np.arange(10))
    assert np.array_equal(dp.train._scored_rows(10, None, seed=0), np.arange(10))


def test_the_scored_rows_of_a_seed_stay_the_same_from_version_to_version():
    """A recorded run's training accuracies can be reproduced only if its seed scores the same rows."""
    assert dp.train._scored_rows(370, 8, seed=0).tolist() == [84, 111, 189, 203, 294, 323, 353, 362]
    assert not np.array_equal(dp.train._scored_rows(370, 8, seed=1), dp.train._scored_rows(370, 8, seed=0))


def test_the_plan_of_a_run_cannot_change_once_made(split):
    options = dict(steps=5, epochs=None, batch_size=50, seed=0, eval_every=None, schedule="constant", reduction="sum")
    plan = dp.train._Plan.make(MLP(seed=0), split.x_train, split.y_train, None, score_rows=None, **options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps = 6  # type: ignore[misc]


# ----- all or nothing -----


def test_all_or_nothing_removes_the_entries_a_failing_step_added_and_puts_the_optimizer_state_back():
    model, optimizer = MLP((4, 2), seed=0), dp.optim.Adam()
    before, state_before = dict(model.params), optimizer.state

    def step():
        model.params["lazily_made"] = np.zeros((1, 1))
        model.params["weight_l1"] = np.ones((4, 2))
        optimizer.state = {"weight_l1": {"step": 3}}
        raise ValueError("this step fails")

    with pytest.raises(ValueError, match="this step fails"):
        dp.train.all_or_nothing(model, optimizer, step)
    assert model.params.keys() == before.keys()
    assert all(model.params[k] is before[k] for k in before)
    assert optimizer.state is state_before


# ----- the progress bar -----


class RecordingBar:
    """Stands in for tqdm's bar: records how it was made and every call."""

    made: list = []

    def __init__(self, **options):
        self.options, self.updates, self.postfixes, self.closed = options, [], [], 0
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.updates.append(n)

    def set_postfix(self, *args, **kwargs):
        self.postfixes.append((args, kwargs))

    def close(self):
        self.closed += 1


@pytest.fixture
def recording_bar(monkeypatch):
    import tqdm

    RecordingBar.made = []
    monkeypatch.setattr(tqdm, "tqdm", RecordingBar)
    return RecordingBar.made


def test_the_progress_bar_counts_steps_shows_each_evaluation_and_clears_itself(split, recording_bar):
    history = fit_on(MLP(seed=0), split, Adam(), steps=5, eval_every=2, progress=True)
    [bar] = recording_bar
    assert bar.options == dict(total=5, desc="training", unit="step", leave=False, dynamic_ncols=True)
    assert bar.updates == [1] * 5
    shown = [
        {"loss": f"{loss:.4f}", "train": f"{train:.3f}", "val": f"{val:.3f}"}
        for loss, train, val in zip(history.loss, history.train_accuracy, history.val_accuracy)
    ]
    assert bar.postfixes == [((postfix,), {"refresh": False}) for postfix in shown]  # no redraw of its own
    assert len(shown) == 3 and bar.closed == 1


def test_the_progress_bar_shows_no_validation_accuracy_without_validation_rows(split_without_validation, recording_bar):
    fit_on(MLP(seed=0), split_without_validation, Adam(), steps=2, progress=True)
    [bar] = recording_bar
    [((postfix,), _)] = bar.postfixes
    assert postfix.keys() == {"loss", "train"}


def test_the_progress_bar_is_closed_when_training_diverges(split, recording_bar):
    with pytest.raises(Diverged):
        fit_on(MLP(batch_norm=False, seed=0), split, SGD(lr=1e308), steps=5, progress=True)
    [bar] = recording_bar
    assert bar.closed == 1 and bar.updates == []


# ----- one path: every model trains through the graph, and its own methods are honoured -----


def test_fit_calls_an_mlp_subclasss_own_loss_at_every_step():
    """An override fit does not know about is never bypassed: fit builds the graph through it."""
    calls = []

    class Penalized(MLP):
        def loss(self, x, y, train=None, reduction="sum"):
            calls.append(len(x))
            l1 = sum((Node(self.params[k], k).abs().sum() for k in self.params if k.startswith("weight")), Node(0.0))
            return super().loss(x, y, train, reduction) + 0.01 * l1

    split = data.breast_cancer(seed=0)
    plain, penalized = MLP(seed=0), Penalized(seed=0)
    for model in (plain, penalized):
        fit(model, split.x_train, split.y_train, SGD(lr=0.01), steps=5, batch_size=50, progress=False)
    assert calls == [50] * 5
    assert np.abs(penalized.params["weight_l1"]).sum() < np.abs(plain.params["weight_l1"]).sum()


def test_fit_calls_a_helper_an_mlp_subclass_adds_on_the_steps_path():
    seen = []

    class Watched(MLP):
        def logits(self, x, train=None):
            seen.append("logits")
            return super().logits(x, train)

        def forward(self, x, train=None):
            return self.logits(x, train).sigmoid()

        def loss(self, x, y, train=None, reduction="sum"):
            return dp.nn.losses.binary_cross_entropy(self.forward(x, train), y, reduction)

    split = data.breast_cancer(seed=0)
    fit(Watched(seed=0), split.x_train, split.y_train, SGD(lr=0.01), steps=3, batch_size=50, progress=False,
        eval_every=100)  # fmt: skip
    assert seen.count("logits") >= 3


def test_fit_trains_through_an_mlp_subclasss_own_logits_when_only_logits_is_overridden():
    class Frozen(MLP):  # logits that ignore the hidden layers: they must get no gradient in training
        def logits(self, x, train=None):
            return super().logits(x, train) * 0.0 + Node(self.params["bias_l3"], "bias_l3")

    split = data.breast_cancer(seed=0)
    model = Frozen(seed=0)
    before = model.params["weight_l1"].copy()
    fit(model, split.x_train, split.y_train, SGD(lr=0.01), steps=3, batch_size=50, progress=False, eval_every=100)
    np.testing.assert_array_equal(model.params["weight_l1"], before)


@pytest.mark.parametrize("kind", ["seed-style", "classic"])
def test_fit_trains_seed_style_and_classic_models_through_the_same_loop(kind):
    split = data.breast_cancer(seed=0)

    class Seed(dp.NeuralNode):
        def __init__(self):
            super().__init__(seed=0)
            self.l1 = self.linear(30, 8, "l1", bias=False)
            self.bn1 = self.batch_norm(8, "bn1")
            self.l2 = self.linear(8, 1, "l2")

        def forward(self, x, train=None):
            return self.l2(self.bn1(self.l1(x), train).tanh()).sigmoid()

    class Classic(dp.Model):
        def __init__(self):
            super().__init__()
            self.h = self.Linear_Layer(30, 8, "h")
            self.out = self.Linear_Layer(8, 1, "out")

        def forward(self, x, train=None):
            return self.out(self.h(x).relu()).sigmoid()

        def loss(self, x, y, train=None, reduction="sum"):  # the original course defines its own loss
            return dp.nn.losses.binary_cross_entropy(self.forward(x, train), y, reduction)

    model = Seed() if kind == "seed-style" else Classic()
    history = fit(model, split.x_train, split.y_train, Adam(lr=0.01), steps=60, batch_size=50, progress=False)
    assert history.loss[-1] < history.loss[0] and history.train_accuracy[-1] > 0.9


def _interrupt_at(line_number):
    """A trace function that raises KeyboardInterrupt at the ``line_number``-th line dp runs."""
    count = [0]

    def trace(frame, event, arg):
        if "/dp/" not in frame.f_code.co_filename:
            return None
        if event == "line":
            count[0] += 1
            if count[0] == line_number:
                raise KeyboardInterrupt
        return trace

    return trace, count


@pytest.mark.parametrize("optimizer", [SGD(lr=0.1), Adam(lr=0.1), dp.optim.Momentum(lr=0.1), dp.optim.RMSProp()])
def test_ctrl_c_at_any_line_of_a_training_step_leaves_the_model_and_the_optimizer_before_or_after_it(optimizer):
    """Interrupt consistency at every line of a step: the parameters, the moving averages and
    the optimizer's state are all as before the step, or all as after it, never a mix."""
    import sys

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 2, (6, 1)).astype(float)
    model = MLP((4, 3, 1), seed=0)
    dp.train.train_step(model, optimizer, x, y)  # a first step: the optimizer has state to lose

    def snapshot():
        state = {
            k: {s: getattr(v, "copy", lambda v=v: v)() for s, v in slots.items()}
            for k, slots in optimizer.state.items()
        }
        return {k: v.copy() for k, v in model.params.items()}, state

    def same(a, b):
        (pa, sa), (pb, sb) = a, b
        return (pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa) and sa.keys() == sb.keys()
                and all(np.array_equal(sa[k][s], sb[k][s]) for k in sa for s in sa[k]))  # fmt: skip

    before = snapshot()
    trace, count = _interrupt_at(10**9)
    sys.settrace(trace)
    try:
        dp.train.train_step(model, optimizer, x, y)
    finally:
        sys.settrace(None)
    after, lines = snapshot(), count[0]
    for line in range(1, lines + 1):
        model.params.clear()
        model.params.update({k: v.copy() for k, v in before[0].items()})
        optimizer.state = {
            k: {s: getattr(v, "copy", lambda v=v: v)() for s, v in slots.items()} for k, slots in before[1].items()
        }
        floating_point = np.geterr()  # a Ctrl-C inside np.errstate's own exit would leave its setting behind
        sys.settrace(_interrupt_at(line)[0])
        try:
            dp.train.train_step(model, optimizer, x, y)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
            np.seterr(**floating_point)  # for the tests after this one, which read NumPy's warnings
        now = snapshot()
        assert same(now, before) or same(now, after), f"a Ctrl-C at line {line} of {lines} left a mix"


def test_a_training_step_changes_neither_the_rows_nor_the_labels():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 30)), rng.integers(0, 2, (8, 1)).astype(float)
    x_before, y_before = x.copy(), y.copy()
    for model in (MLP(seed=0), MLP(seed=0, fused=True)):
        dp.train.train_step(model, Adam(lr=0.1), x, y)
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(y, y_before)


class _Divides(dp.NeuralNode):
    """A model whose logits are divided by ``scale(train)``: by 0 where the test says so."""

    def __init__(self, scale):
        super().__init__(seed=0)
        self.scale, self.l1 = scale, self.linear(30, 1, "l1")

    def forward(self, x, train=None):
        training = self.training if train is None else train
        return (self.l1(x) / Node(self.scale(training))).sigmoid()


def test_a_loss_divided_by_zero_is_divergence_not_a_numpy_warning(split):
    """fit checks the loss for NaN and inf itself: NumPy's divide-by-zero warning is not raised."""
    with pytest.raises(Diverged, match="step 1"):
        fit(_Divides(lambda training: 0.0), split.x_train, split.y_train, SGD(lr=0.01), steps=3, progress=False)


def test_an_evaluation_that_divides_by_zero_raises_no_numpy_warning(split):
    model = _Divides(lambda training: 1.0 if training else 0.0)  # eval mode only: saturated, finite
    history = fit(model, split.x_train, split.y_train, SGD(lr=0.01), steps=2, eval_every=1, progress=False)
    assert history.step == [1, 2]


# ----- recalibrate: batch norm's moving averages recomputed after training -----


def trained_mlp(split, **options):
    model = MLP(seed=0, **options)
    fit(model, split.x_train, split.y_train, Adam(lr=0.003), steps=30, batch_size=50, progress=False)
    return model


def per_batch_statistics(model, x, batch_size, seed):
    """Each recalibration batch's mean and variance at each batch-norm layer's input, by hand:
    the batches `recalibrate` draws, through the trained layers in training mode, each
    normalized by its batch's own statistics (a plain MLP with the model's parameters: no
    renorm correction)."""
    plain = MLP(seed=0)
    plain.set_param(model.get_param())
    order = np.random.default_rng(seed).permutation(len(x))
    statistics = {}
    for start in range(0, len(x) - batch_size + 1, batch_size):
        inputs = plain.record(x[order[start : start + batch_size]], train=True)
        for i in (1, 2):
            statistics.setdefault(i, []).append((inputs[f"l{i}"].mean(0), inputs[f"l{i}"].var(0)))
    return statistics


@pytest.mark.parametrize("options", [{}, {"momentum": 0.3, "renorm": True}], ids=["plain", "renorm"])
def test_recalibrated_averages_are_the_mean_of_the_per_batch_statistics(split, options):
    model = trained_mlp(split, **options)
    before = model.get_param()
    expected = per_batch_statistics(model, split.x_train, 40, seed=5)
    assert dp.train.recalibrate(model, split.x_train, batch_size=40, seed=5) == len(split.x_train) // 40
    for i, stats in expected.items():
        np.testing.assert_allclose(model.params[f"avg_mean_bn{i}"][0], np.mean([m for m, _ in stats], 0), atol=1e-12)
        np.testing.assert_allclose(
            model.params[f"avg_variance_bn{i}"][0], np.mean([v for _, v in stats], 0), atol=1e-12
        )
    for key, value in before.items():
        if not key.startswith("avg_"):  # learned parameters and batch counts: as they were, to the bit
            np.testing.assert_array_equal(model.params[key], value, err_msg=key)
    norms = [norm for _, norm in model.hidden]
    assert [(n.momentum, n.renorm) for n in norms] == [(options.get("momentum", 0.1), bool(options))] * 2


def test_recalibrating_a_cnn_and_a_fused_mlp_rebuilds_every_layers_averages(split):
    fused = trained_mlp(split, fused=True)
    plain = trained_mlp(split)
    for model in (fused, plain):
        dp.train.recalibrate(model, split.x_train, batch_size=50, seed=1)
    for key in plain.params:
        np.testing.assert_allclose(fused.params[key], plain.params[key], atol=1e-12, err_msg=key)
    images = np.random.default_rng(0).random((30, 1, 8, 8))
    cnn = dp.CNN(image=(1, 8, 8), channels=(3,), hidden=(4,), seed=0, momentum=None)
    cnn.loss(images[:10], np.arange(10)).grad(1)
    assert dp.train.recalibrate(cnn, images, batch_size=10) == 3
    assert cnn.params["batches_bn1"][0, 0] == cnn.params["batches_bn2"][0, 0] == 1  # training batches only
    assert cnn.params["avg_mean_bn1"].shape == (1, 3, 1, 1) and cnn.params["avg_variance_bn2"].any()


def test_recalibration_narrows_the_gap_between_training_and_eval_mode_outputs(split):
    """After recalibration, eval mode's normalization of the training rows is their batch
    statistics' average: on one batch of all rows, training and eval mode agree closely."""
    model = trained_mlp(split, momentum=0.9)  # averages that remember the last batch only
    x = split.x_train
    gap = lambda: np.abs(model.logits(x, train=False).value - model.record(x, train=True)["l3"]).mean()  # noqa: E731
    before = gap()
    dp.train.recalibrate(model, x, batch_size=len(x))  # one batch: the averages become its statistics
    assert gap() < 1e-6 < before


class TwoNorms(dp.NeuralNode):
    """A seed-style model whose layers sit in a dict, and a third norm nobody holds."""

    def __init__(self, hide=False):
        super().__init__(seed=0)
        self.layers = {"a": [self.batch_norm(3, "bn1")], "b": (self.batch_norm(3, "bn2", momentum=None),)}
        if hide:
            self.batch_norm(3, "bn3")

    def forward(self, x, train=None):
        return self.layers["b"][0](self.layers["a"][0](x, train), train)


RECALIBRATE_REFUSALS = {  # name: (model, rows, options, exception, message)
    "batch_size 1": (TwoNorms, np.ones((8, 3)), {"batch_size": 1}, ValueError, r"batch_size must be .* \[2, inf\)"),
    "batch_size 2.5": (TwoNorms, np.ones((8, 3)), {"batch_size": 2.5}, TypeError, "batch_size must be a whole"),
    "seed -1": (TwoNorms, np.ones((8, 3)), {"seed": -1}, ValueError, "seed must be a whole number"),
    "fewer rows than a batch": (TwoNorms, np.ones((8, 3)), {"batch_size": 9}, ValueError, r"at least batch_size = 9"),
    "a vector": (TwoNorms, np.ones(8), {"batch_size": 4}, ValueError, r"got shape \(8,\)"),
    "strings": (TwoNorms, np.full((8, 3), "a"), {"batch_size": 4}, TypeError, "must be numeric"),
    "nan": (TwoNorms, np.full((8, 3), np.nan), {"batch_size": 4}, dp.NonFiniteError, "NaN or inf"),
    "rows of the wrong width": (TwoNorms, np.ones((8, 4)), {"batch_size": 4}, ValueError, r"\(n, 3\)"),
    "no batch norm": (lambda: MLP(batch_norm=False), np.ones((8, 30)), {"batch_size": 4}, ValueError, "no batch-norm"),
    "a norm it cannot reach": (lambda: TwoNorms(hide=True), np.ones((8, 3)), {}, ValueError, "no layer among"),
}


@pytest.mark.parametrize("make, x, options, error, message", RECALIBRATE_REFUSALS.values(), ids=RECALIBRATE_REFUSALS)
def test_recalibrate_refuses_bad_input_clearly_and_changes_nothing(make, x, options, error, message):
    model = make()
    rows = np.random.default_rng(0).normal(size=(8, model.params.get("gamma_bn1", np.ones((1, 30))).shape[1]))
    if "batches_bn1" in model.params:
        model.forward(rows, train=True)  # trained averages to keep
    before = model.get_param()
    with pytest.raises(error, match=message):
        dp.train.recalibrate(model, x, **options)
    assert model.params.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value, err_msg=key)


def test_a_batch_refused_midway_restores_every_average_and_each_layers_settings():
    model = TwoNorms()
    model.forward(np.random.default_rng(0).normal(size=(6, 3)), train=True)
    before = model.get_param()
    x = np.random.default_rng(1).normal(size=(8, 3))
    x[4:] = 1e200  # the second batch's statistics overflow, after the first batch moved the averages
    with pytest.raises(dp.NonFiniteError, match="too large to square"):
        dp.train.recalibrate(model, x, batch_size=4)
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value, err_msg=key)
    assert [model.layers["a"][0].momentum, model.layers["b"][0].momentum] == [0.1, None]


def test_recalibrate_keeps_a_float32_model_float32(split):
    model = trained_mlp(split, dtype=np.float32)
    dp.train.recalibrate(model, split.x_train)
    assert all(value.dtype == np.float32 for value in model.params.values())
