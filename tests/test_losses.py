"""Cross-entropy losses: values, stability, gradients and label checking."""

import numpy as np
import pytest

from dp import Node, gradcheck
from dp.nn.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    categorical_cross_entropy,
    softmax_cross_entropy,
)

rng = np.random.default_rng(0)
Z = rng.normal(size=(6, 1))
Y = rng.integers(0, 2, size=(6, 1)).astype(float)
P = 1 / (1 + np.exp(-Z))
LOGITS = rng.normal(size=(5, 3))
CLASSES = np.array([0, 2, 1, 2, 0])


def reference_bce(p, y):
    return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))


class TestBinaryFromProbabilities:
    def test_value_is_the_summed_cross_entropy(self):
        np.testing.assert_allclose(binary_cross_entropy(Node(P), Y).value, [[reference_bce(P, Y)]])

    def test_gradient(self):
        assert gradcheck(lambda p: binary_cross_entropy(p, Y), P) < 1e-6

    def test_certain_mistakes_cost_a_large_finite_loss(self):
        p = Node(np.array([[0.0], [1.0]]), "p")
        loss = binary_cross_entropy(p, np.array([1.0, 0.0]))
        assert np.isfinite(loss.value).all() and loss.value[0, 0] > 50
        assert np.isfinite(loss.grad(1)["p"]).all()

    @pytest.mark.parametrize("dtype", [np.float32, np.float16])
    def test_saturated_probabilities_stay_finite_in_low_precision(self, dtype):
        # In float32, 1 - 1e-12 rounds to 1: a clip at that bound would take log(0).
        z = Node(np.array([[20.0], [-20.0], [40.0], [-40.0]], dtype=dtype), "z")
        loss = binary_cross_entropy(z.sigmoid(), np.array([1, 0, 0, 1]))  # right, right, wrong, wrong
        grads = loss.grad(1)
        assert loss.dtype == dtype and np.isfinite(loss.value).all() and np.isfinite(grads["z"]).all()
        assert loss.value[0, 0] > 2 * 8  # each confident mistake costs at least -log(largest p < 1) > 8


class TestBinaryFromLogits:
    def test_value_equals_the_cross_entropy_of_the_sigmoid(self):
        np.testing.assert_allclose(binary_cross_entropy_with_logits(Node(Z), Y).value, [[reference_bce(P, Y)]])

    def test_gradient_is_sigmoid_minus_label(self):
        grads = binary_cross_entropy_with_logits(Node(Z, "z"), Y).grad(1)
        np.testing.assert_allclose(grads["z"], P - Y, rtol=1e-14)
        assert gradcheck(lambda z: binary_cross_entropy_with_logits(z, Y), Z) < 1e-6

    def test_logits_of_magnitude_1000_are_finite_and_exact(self):
        z = Node(np.array([[1000.0], [-1000.0], [1000.0]]), "z")
        loss = binary_cross_entropy_with_logits(z, np.array([0.0, 1.0, 1.0]))
        np.testing.assert_allclose(loss.value, [[2000.0]])
        np.testing.assert_allclose(loss.grad(1)["z"], [[1.0], [-1.0], [0.0]])

    def test_mean_reduction_divides_by_the_batch_size(self):
        total = binary_cross_entropy_with_logits(Node(Z), Y).value
        np.testing.assert_allclose(binary_cross_entropy_with_logits(Node(Z), Y, reduction="mean").value, total / 6)


class TestSoftmax:
    def reference(self):
        log_p = LOGITS - np.log(np.exp(LOGITS).sum(axis=1, keepdims=True))
        return -log_p[np.arange(5), CLASSES].sum()

    @pytest.mark.parametrize("labels", [CLASSES, CLASSES.reshape(-1, 1), np.eye(3)[CLASSES], CLASSES.astype(float)])
    def test_integer_column_and_one_hot_labels_give_the_same_loss(self, labels):
        np.testing.assert_allclose(softmax_cross_entropy(Node(LOGITS), labels).value, [[self.reference()]])

    def test_gradient_is_softmax_minus_one_hot(self):
        grads = softmax_cross_entropy(Node(LOGITS, "z"), CLASSES).grad(1)
        p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(grads["z"], p - np.eye(3)[CLASSES], rtol=1e-13)
        assert gradcheck(lambda z: softmax_cross_entropy(z, CLASSES), LOGITS) < 1e-6

    def test_logits_of_magnitude_1000_are_finite(self):
        z = Node(np.array([[1000.0, -1000.0, 0.0]]), "z")
        loss = softmax_cross_entropy(z, [1])
        np.testing.assert_allclose(loss.value, [[2000.0]])
        assert np.isfinite(loss.grad(1)["z"]).all()

    @pytest.mark.parametrize("labels", [[0, 1, 3, 0, 0], [0, 1, -1, 0, 0], [0, 0.5, 1, 0, 0]])
    def test_labels_outside_the_classes_are_refused(self, labels):
        with pytest.raises(ValueError, match="integers in"):
            softmax_cross_entropy(Node(LOGITS), np.array(labels))

    def test_one_hot_rows_must_sum_to_one(self):
        with pytest.raises(ValueError, match="one-hot"):
            softmax_cross_entropy(Node(LOGITS), np.ones((5, 3)))


class TestLabels:
    @pytest.mark.parametrize("loss", [binary_cross_entropy_with_logits, binary_cross_entropy])
    def test_vector_and_column_labels_give_the_same_loss_never_an_n_by_n_broadcast(self, loss):
        z = Node(P)
        column, vector = loss(z, Y).value, loss(z, Y.ravel()).value
        assert column.shape == vector.shape == (1, 1)
        np.testing.assert_array_equal(column, vector)

    @pytest.mark.parametrize("loss", [binary_cross_entropy_with_logits, binary_cross_entropy, softmax_cross_entropy])
    def test_a_label_count_that_differs_from_the_batch_is_an_error(self, loss):
        z = Node(LOGITS) if loss is softmax_cross_entropy else Node(P)
        with pytest.raises(ValueError, match="labels for a batch of"):
            loss(z, np.zeros(z.shape[0] - 1))

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_non_finite_labels_are_refused(self, bad):
        y = Y.copy()
        y[2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            binary_cross_entropy_with_logits(Node(Z), y)

    def test_binary_labels_must_lie_in_zero_one(self):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            binary_cross_entropy_with_logits(Node(Z), Y * 2)

    def test_string_labels_are_refused(self):
        with pytest.raises(TypeError, match="numeric"):
            binary_cross_entropy_with_logits(Node(Z), np.array(["a"] * 6))

    def test_binary_losses_need_one_output_column(self):
        with pytest.raises(ValueError, match=r"\(n, 1\)"):
            binary_cross_entropy_with_logits(Node(LOGITS), CLASSES)

    def test_an_unknown_reduction_is_refused(self):
        with pytest.raises(ValueError, match="reduction"):
            binary_cross_entropy_with_logits(Node(Z), Y, reduction="max")


class TestCategoricalFromProbabilities:
    def test_value_equals_softmax_cross_entropy_of_the_logits(self):
        p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
        expected = softmax_cross_entropy(Node(LOGITS), CLASSES).value
        np.testing.assert_allclose(categorical_cross_entropy(Node(p), CLASSES).value, expected, rtol=1e-13)

    def test_gradient(self):
        p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
        assert gradcheck(lambda q: categorical_cross_entropy(q, CLASSES), p) < 1e-6

    def test_a_zero_probability_for_the_label_costs_a_large_finite_loss(self):
        p = Node(np.array([[1.0, 0.0, 0.0]]), "p")
        loss = categorical_cross_entropy(p, [1])
        assert np.isfinite(loss.value).all() and loss.value[0, 0] > 25
        assert np.isfinite(loss.grad(1)["p"]).all()


ALL_LOSSES = {
    "binary": (binary_cross_entropy, P, Y),
    "binary from logits": (binary_cross_entropy_with_logits, Z, Y),
    "categorical": (categorical_cross_entropy, np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True), CLASSES),
    "softmax": (softmax_cross_entropy, LOGITS, CLASSES),
}


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_mean_reduction_divides_the_loss_and_its_gradient_by_the_batch_size(name):
    loss, x, y = ALL_LOSSES[name]
    total, average = loss(Node(x, "x"), y), loss(Node(x, "x"), y, reduction="mean")
    rows = x.shape[0]
    np.testing.assert_allclose(average.value, total.value / rows, rtol=1e-14)
    np.testing.assert_allclose(average.grad(1)["x"], total.grad(1)["x"] / rows, rtol=1e-14)
    np.testing.assert_allclose(average.grad(3.0)["x"], 3 * total.grad(1)["x"] / rows, rtol=1e-14)


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_a_loss_is_a_one_by_one_node_in_the_dtype_of_its_input(name):
    loss, x, y = ALL_LOSSES[name]
    value = loss(Node(x.astype(np.float32), "x"), y)
    assert value.shape == (1, 1) and value.dtype == np.float32
    assert value.grad(1)["x"].dtype == np.float32


class TestBinaryClipping:
    def test_where_the_clip_bites_the_loss_is_that_of_the_bound(self):
        p = Node(np.array([[0.0], [1.0]]), "p")
        loss = binary_cross_entropy(p, np.array([1.0, 0.0]))
        np.testing.assert_allclose(loss.value, [[-2 * np.log(1e-12)]], rtol=1e-6)
        np.testing.assert_allclose(
            binary_cross_entropy(p, np.array([1.0, 0.0]), clip=1e-3).value, [[-2 * np.log(1e-3)]]
        )

    def test_where_the_clip_bites_the_gradient_is_exactly_zero(self):
        p = Node(np.array([[0.0], [1.0], [1e-13], [0.3]]), "p")
        grads = binary_cross_entropy(p, np.array([1.0, 0.0, 1.0, 1.0])).grad(1)["p"]
        np.testing.assert_array_equal(grads[:3], np.zeros((3, 1)))
        np.testing.assert_allclose(grads[3], [-1 / 0.3])

    def test_at_the_bounds_themselves_the_gradient_is_the_plain_one(self):
        low, high = 1e-3, 1 - 1e-3
        p = Node(np.array([[low], [high]]), "p")
        grads = binary_cross_entropy(p, np.array([1.0, 0.0]), clip=1e-3).grad(1)["p"]
        np.testing.assert_allclose(grads, [[-1 / low], [1 / (1 - high)]], rtol=1e-12)

    def test_in_float32_the_upper_bound_is_the_largest_float32_below_one(self):
        # 1 - 1e-12 is 1 in float32: the bound is the next float32 below 1, so log(1 - p) stays finite.
        top = np.nextafter(np.float32(1), np.float32(0))
        p = Node(np.array([[1.0], [top]], np.float32), "p")
        loss = binary_cross_entropy(p, np.array([0.0, 0.0]))
        np.testing.assert_allclose(loss.value, [[-2 * np.log1p(-np.float64(top))]], rtol=1e-6)
        grads = loss.grad(1)["p"]
        assert grads[0, 0] == 0 and grads[1, 0] > 1e6

    def test_in_float32_the_lower_bound_is_the_clip(self):
        p = Node(np.array([[0.0], [1e-3]], np.float32), "p")
        loss = binary_cross_entropy(p, np.array([1.0, 1.0]), clip=1e-3)
        np.testing.assert_allclose(loss.value, [[-2 * np.log(1e-3)]], rtol=1e-5)


class TestCategoricalClipping:
    def test_at_the_clip_itself_the_gradient_is_the_plain_one_and_below_it_zero(self):
        p = Node(np.array([[1e-3, 1 - 1e-3], [1e-4, 1 - 1e-4]]), "p")
        loss = categorical_cross_entropy(p, [0, 0], clip=1e-3)
        np.testing.assert_allclose(loss.value, [[-2 * np.log(1e-3)]])
        np.testing.assert_allclose(loss.grad(1)["p"], [[-1e3, 0.0], [0.0, 0.0]])


class TestSoftmaxLabels:
    def test_two_classes_with_one_hot_labels_are_softmax_not_binary(self):
        z = np.array([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0]])
        onehot = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = softmax_cross_entropy(Node(z, "z"), onehot)
        np.testing.assert_allclose(loss.value, [[-(onehot * log_p).sum()]])
        np.testing.assert_allclose(loss.grad(1)["z"], np.exp(log_p) - onehot)
        np.testing.assert_allclose(softmax_cross_entropy(Node(z), [0, 1, 1]).value, loss.value)

    def test_labels_given_as_a_node_are_its_value(self):
        expected = softmax_cross_entropy(Node(LOGITS), CLASSES).value
        np.testing.assert_array_equal(softmax_cross_entropy(Node(LOGITS), Node(CLASSES)).value, expected)
        np.testing.assert_array_equal(
            binary_cross_entropy(Node(P), Node(Y)).value, binary_cross_entropy(Node(P), Y).value
        )

    def test_labels_of_shape_n_1_1_are_refused(self):
        with pytest.raises(ValueError, match="shape"):
            softmax_cross_entropy(Node(LOGITS), CLASSES.reshape(-1, 1, 1))

    def test_logits_that_are_not_a_matrix_are_refused(self):
        with pytest.raises(ValueError, match=r"\(n, k\)"):
            softmax_cross_entropy(Node(LOGITS.reshape(5, 3, 1)), CLASSES)
