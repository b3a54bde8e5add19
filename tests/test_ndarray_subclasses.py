"""Subclasses of ndarray (issue 24, item 5): dp computes on plain ndarrays only.

An ``np.matrix`` is taken as the plain array of its numbers (on a matrix, ``*`` would be
the matrix product); a masked array is refused with a ``TypeError`` that says to pass
``m.filled(value)`` or ``m.data``, wherever data enters: a Node, an operand, a seed, a
layer, a model, its labels, its parameters, training."""

import warnings

import numpy as np
import pytest

import dp
from dp import Node


def matrix(rows):
    """An np.matrix, without NumPy's warning that the class is not recommended (a user may still have one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(rows)


MATRIX = matrix([[1.0, 2.0], [3.0, 4.0]])
PLAIN = np.array([[1.0, 2.0], [3.0, 4.0]])
MASKED = np.ma.masked_array(PLAIN, mask=[[False, True], [False, False]])
REFUSED = r"is a masked array, and dp would ignore its mask: pass m\.filled\(value\).*m\.data"


class TestMatrix:
    def test_a_matrix_node_multiplies_elementwise_and_its_gradient_is_right(self):
        a = Node(MATRIX, name="a")
        assert a.value.__class__ is np.ndarray
        np.testing.assert_array_equal((a * a).value, PLAIN * PLAIN)  # not the matrix product
        np.testing.assert_array_equal((a * a).sum().grad(1)["a"], 2 * PLAIN)

    def test_a_matrix_operand_on_either_side_is_a_plain_array(self):
        x = Node(PLAIN, "x")
        for out in (x * MATRIX, MATRIX * x, x + MATRIX, MATRIX @ x):
            assert isinstance(out, Node) and out.value.__class__ is np.ndarray
        np.testing.assert_array_equal((MATRIX * x).value, PLAIN * PLAIN)
        np.testing.assert_array_equal((MATRIX * x).sum().grad(1)["x"], PLAIN)

    def test_a_model_takes_a_matrix_as_the_plain_array(self):
        model, x = dp.MLP((2, 3, 1), seed=0), np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])
        expected = model.loss(x, [0, 1, 1]).value
        model = dp.MLP((2, 3, 1), seed=0)
        np.testing.assert_array_equal(model.loss(matrix(x), matrix([[0], [1], [1]])).value, expected)


class TestMaskedArray:
    def test_a_masked_node_is_refused(self):
        with pytest.raises(TypeError, match="a Node's value " + REFUSED):
            Node(MASKED)

    def test_a_masked_operand_is_refused_on_either_side(self):
        x = Node(PLAIN, "x")
        with pytest.raises(TypeError, match=REFUSED):
            x * MASKED
        with pytest.raises(TypeError):
            3 * MASKED * x  # the masked array's operator meets the Node first

    def test_the_issue_reproduction_gives_no_sum_at_all(self):
        with pytest.raises(TypeError, match=REFUSED):
            (3 * Node(MASKED)).sum()

    def test_a_masked_seed_is_refused(self):
        with pytest.raises(TypeError, match="grad's seed " + REFUSED):
            (Node(PLAIN, "x") * 2).grad(MASKED)

    def test_filled_and_data_are_the_two_ways_in(self):
        assert Node(MASKED.filled(0.0)).value.sum() == 8.0
        assert Node(MASKED.data).value.sum() == 10.0

    def test_a_layer_refuses_a_masked_batch(self):
        net = dp.NeuralNode(seed=0)
        layer, norm = net.linear(2, 3, "l1"), net.batch_norm(2, "bn1")
        with pytest.raises(TypeError, match="the input " + REFUSED):
            layer(MASKED)
        with pytest.raises(TypeError, match="the input " + REFUSED):
            norm(MASKED)
        assert net.params["batches_bn1"][0, 0] == 0

    def test_a_model_refuses_masked_rows_labels_and_parameters(self):
        model = dp.MLP((2, 3, 1), seed=0)
        before = model.get_param()
        with pytest.raises(TypeError, match=REFUSED):
            model.loss(MASKED, [0, 1])
        with pytest.raises(TypeError, match=REFUSED):
            model.loss(PLAIN, np.ma.masked_array([0.0, 1.0], mask=[True, False]))
        with pytest.raises(TypeError, match=REFUSED):
            model.set_param({"weight_l1": np.ma.masked_array(np.ones((2, 3)), mask=np.eye(2, 3))})
        with pytest.raises(TypeError, match=REFUSED):
            model.checked_data(MASKED, [0, 1])
        for k, v in before.items():
            np.testing.assert_array_equal(model.params[k], v)

    def test_training_refuses_masked_rows_before_the_first_step(self):
        model = dp.MLP((2, 3, 1), seed=0)
        before = model.get_param()
        with pytest.raises(TypeError, match=REFUSED):
            dp.train.fit(model, MASKED, [0, 1], dp.optim.SGD(lr=0.1), steps=1, batch_size=2)
        for k, v in before.items():
            np.testing.assert_array_equal(model.params[k], v)
