"""The engine's contract: Node's conventions, grad()'s result, the backward sweep."""

import numpy as np
import pytest

import dp
from dp import Node


class TestValueConventions:
    def test_a_number_becomes_a_one_by_one_float64_array(self):
        for number in (3, 2.5, True, np.float64(1.5)):
            node = Node(number)
            assert node.value.shape == (1, 1)
            assert node.value.dtype == np.float64

    def test_a_vector_becomes_a_column(self):
        assert Node(np.arange(5.0)).shape == (5, 1)
        assert Node([1.0, 2.0, 3.0]).shape == (3, 1)

    def test_two_and_more_dimensions_are_kept(self):
        assert Node(np.zeros((2, 3))).shape == (2, 3)
        assert Node(np.zeros((2, 3, 4))).shape == (2, 3, 4)

    def test_float32_stays_float32_and_other_floats_keep_their_dtype(self):
        assert Node(np.ones((2, 2), np.float32)).dtype == np.float32
        assert Node(np.float32(1)).dtype == np.float32

    @pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.bool_])
    def test_integer_and_bool_input_becomes_float64(self, dtype):
        assert Node(np.ones((2, 2), dtype=dtype)).dtype == np.float64

    @pytest.mark.parametrize("bad", ["abc", np.array(["a", "b"]), np.array([object(), 1], dtype=object), [1j, 2]])
    def test_strings_objects_and_complex_are_refused_with_a_reason(self, bad):
        with pytest.raises(TypeError, match="dtype"):
            Node(bad)

    def test_a_node_is_not_wrapped_twice(self):
        with pytest.raises(TypeError, match="already a Node"):
            Node(Node(1.0))

    def test_a_name_must_be_a_string(self):
        with pytest.raises(TypeError, match="name"):
            Node(1.0, name=3)

    def test_the_value_is_not_copied(self):
        array = np.ones((2, 2))
        assert Node(array).value is array


class TestGradResult:
    def test_every_named_node_and_only_named_nodes_get_a_gradient(self):
        w, b, x = Node(np.ones((3, 2)), "w"), Node(np.ones((1, 2)), "b"), Node(np.ones((4, 3)))
        grads = (x @ w + b).sum().grad(1)
        assert set(grads) == {"w", "b"}

    def test_each_gradient_has_the_shape_and_dtype_of_its_node(self):
        for dtype in (np.float32, np.float64):
            w = Node(np.ones((1, 3), dtype), "w")  # broadcast against (4, 3)
            s = Node(np.ones((1, 1), dtype), "s")
            grads = ((Node(np.ones((4, 3), dtype)) * w) * s).sum(axis=0).grad(np.ones((1, 3), dtype))
            assert grads["w"].shape == (1, 3) and grads["w"].dtype == dtype
            assert grads["s"].shape == (1, 1) and grads["s"].dtype == dtype
            np.testing.assert_array_equal(grads["w"], np.full((1, 3), 4.0))
            np.testing.assert_array_equal(grads["s"], [[12.0]])

    def test_a_gradient_keeps_its_node_dtype_when_dtypes_mix(self):
        w32 = Node(np.ones((2, 2), np.float32), "w32")
        w64 = Node(np.ones((2, 2)), "w64")
        grads = (w32 * w64).sum().grad(1)
        assert grads["w32"].dtype == np.float32 and grads["w64"].dtype == np.float64

    def test_nodes_sharing_a_name_add_up_like_tied_weights(self):
        a = np.array([[1.0, 2.0], [3.0, 4.0]])
        first, second = Node(a, "w"), Node(a, "w")
        grads = (first * 3 + second * second).sum().grad(1)
        np.testing.assert_allclose(grads["w"], 3 + 2 * a)

    def test_a_scalar_seed_is_broadcast_to_the_root(self):
        w = Node(np.arange(6.0).reshape(2, 3), "w")
        np.testing.assert_array_equal((w * 2).grad(1)["w"], np.full((2, 3), 2.0))
        np.testing.assert_array_equal((w * 2).grad(0.5)["w"], np.full((2, 3), 1.0))
        np.testing.assert_array_equal((w * 2).grad(np.float32(2))["w"], np.full((2, 3), 4.0))

    def test_an_array_seed_of_the_root_shape_weights_each_output(self):
        w = Node(np.ones((2, 3)), "w")
        seed = np.arange(6.0).reshape(2, 3)
        np.testing.assert_array_equal((w * 2).grad(seed)["w"], 2 * seed)

    @pytest.mark.parametrize("seed", [np.ones(3), np.ones((3, 2)), np.ones((1, 3))])
    def test_a_seed_of_another_shape_says_what_was_expected(self, seed):
        w = Node(np.ones((2, 3)), "w")
        with pytest.raises(ValueError, match=r"expected|shape \(2, 3\)"):
            (w * 2).grad(seed)

    @pytest.mark.parametrize("seed", ["1", Node(1.0), np.array(["a"])])
    def test_a_seed_that_is_not_numeric_is_refused(self, seed):
        with pytest.raises(TypeError):
            (Node(1.0, "w") * 2).grad(seed)

    def test_a_graph_without_named_nodes_gives_an_empty_dict(self):
        assert (Node(np.ones((2, 2))) * 3).sum().grad(1) == {}

    def test_a_named_root_gets_the_seed(self):
        np.testing.assert_array_equal(Node(np.ones((2, 2)), "w").grad(3)["w"], np.full((2, 2), 3.0))

    def test_gradients_under_two_names_are_distinct_writable_arrays(self):
        a, b = Node(np.ones((2, 2)), "a"), Node(np.ones((2, 2)), "b")
        grads = (a + b).sum().grad(1)
        assert grads["a"] is not grads["b"]
        grads["a"] *= 10  # must not change the other
        np.testing.assert_array_equal(grads["b"], np.ones((2, 2)))

    def test_grad_can_be_called_twice_with_the_same_result(self):
        w = Node(np.array([[0.5, -1.0]]), "w")
        loss = (w.tanh() * w).sum()
        np.testing.assert_array_equal(loss.grad(1)["w"], loss.grad(1)["w"])


def _count_vjp_calls(root):
    """Wrap every vjp below root with a counter; return the counter (a one-item list)."""
    calls, seen, stack = [0], set(), [root]

    def counting(vjp):
        def wrapped(g):
            calls[0] += 1
            return vjp(g)

        return wrapped

    while stack:
        node = stack.pop()
        if id(node) not in seen and node.vjp is not None:
            seen.add(id(node))
            node.vjp = tuple(counting(v) if v is not None else None for v in node.vjp)
            stack.extend(parent for _, parent in node.parents)
    return calls


class TestBackwardSweep:
    def test_a_shared_subgraph_gives_the_exact_derivative_in_linear_time(self):
        x0 = 0.01
        x = Node(x0, "x")
        y = x
        for _ in range(40):
            y = y * y + y
        # The derivative by forward mode: y' <- (2 y + 1) y'.
        value, derivative = x0, 1.0
        for _ in range(40):
            value, derivative = value * value + value, (2 * value + 1) * derivative
        calls = _count_vjp_calls(y)
        np.testing.assert_allclose(y.grad(1)["x"], [[derivative]], rtol=1e-13)
        # Each of the 80 operations has two input edges: one vjp call per edge, not one per path (2**40).
        assert calls[0] == 160

    def test_a_chain_of_100000_operations_needs_no_recursion(self):
        x = Node(1.0, "x")
        y = x
        for _ in range(100_000):
            y = y * 1.0
        assert y.grad(1)["x"][0, 0] == 1.0

    def test_data_that_reaches_no_parameter_records_no_inputs(self):
        data = Node(np.ones((3, 3)))
        hidden = (data * 2).tanh()
        assert hidden.parents == [] and hidden.vjp is None and not hidden.needs_grad
        w = Node(np.ones((3, 1)), "w")
        out = hidden @ w
        assert [parent for _, parent in out.parents] == [w]

    def test_the_vjp_of_an_input_that_reaches_no_parameter_is_never_called(self):
        @dp.primitive
        def pair(a, b):
            def refuse(g):
                raise AssertionError("called the vjp of a constant input")

            return a * b, (refuse, lambda g: g * a)

        w = Node(np.ones((2, 2)), "w")
        assert "w" in pair(Node(np.ones((2, 2))), w).sum().grad(1)


def test_a_vjp_that_answers_with_a_number_is_broadcast_to_its_argument():
    @dp.primitive
    def total(a):
        return a.sum(keepdims=True), (lambda g: float(g[0, 0]),)  # d total / d a_ij = 1, as a plain number

    grads = total(Node(np.ones((1, 3)), "a")).grad(2.0)
    np.testing.assert_array_equal(grads["a"], np.full((1, 3), 2.0))


def test_the_seed_array_is_never_handed_back_as_a_gradient():
    seed = np.ones((2, 2))
    grads = (Node(np.ones((2, 2)), "w") + 1).grad(seed)
    assert grads["w"] is not seed
    grads["w"] *= 5
    np.testing.assert_array_equal(seed, np.ones((2, 2)))


def test_gradients_of_different_names_never_share_memory():
    rng = np.random.default_rng(0)
    w, v = Node(rng.standard_normal((2, 3)), "w"), Node(rng.standard_normal((3, 2)), "v")
    grads = ((w + v.T) * rng.standard_normal((2, 3))).sum().grad(1)
    assert not np.shares_memory(grads["w"], grads["v"])
    before = grads["v"].copy()
    grads["w"] *= 0  # clipping one gradient in place must leave the other alone
    np.testing.assert_array_equal(grads["v"], before)


def test_nodes_sharing_a_name_must_share_a_shape():
    a, b = Node(np.ones((2, 1)), "w"), Node(np.ones((1, 3)), "w")
    with pytest.raises(ValueError, match="two nodes named 'w' have different shapes"):
        (a * b).sum().grad(1)
    tied = Node(np.ones((2, 2)), "t")
    np.testing.assert_array_equal((tied * Node(np.full((2, 2), 3.0), "t")).sum().grad(1)["t"], np.full((2, 2), 4.0))


def test_dot_of_two_arrays_says_it_needs_a_node():
    with pytest.raises(TypeError, match="matmul needs at least one Node, got ndarray and ndarray"):
        dp.dot(np.ones((2, 2)), np.ones((2, 2)))


def test_a_primitive_may_return_one_vjp_for_all_its_arguments():
    calls = []

    @dp.primitive
    def scaled_sum(a, b, scale):
        def vjp(g):
            calls.append(1)
            return g * scale, g * scale, None

        return (a + b) * scale, vjp

    a, b = Node(np.ones((2, 1)), "a"), Node(np.full((2, 1), 2.0), "b")
    grads = scaled_sum(a, b, 3.0).grad(np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(grads["a"], [[3.0], [6.0]])
    np.testing.assert_array_equal(grads["b"], [[3.0], [6.0]])
    assert grads["a"] is not grads["b"] and len(calls) == 1  # one call for both, and arrays of their own


def test_a_vjp_answering_with_a_number_is_spread_to_the_argument_shape():
    @dp.primitive
    def total(a):
        return a.sum(keepdims=True), (lambda g: float(g[0, 0]),)

    assert total(Node(np.ones((2, 3)), "a")).grad(2.0)["a"].tolist() == [[2.0] * 3] * 2


def test_unbroadcast_only_sums_down():
    from dp.node import unbroadcast

    assert unbroadcast(np.ones((4, 2, 3)), (2, 1)).shape == (2, 1)
    assert unbroadcast(np.ones((2, 3)), (2, 3)).shape == (2, 3)
    assert unbroadcast(np.ones((1, 3)), (2, 3)).shape == (1, 3)  # never broadcast up


def test_a_vjp_for_all_arguments_must_return_a_tuple():
    @dp.primitive
    def double(x):
        return 2 * x, lambda g: 2 * g  # meant (lambda g: 2 * g,): a one-function vjp must return a tuple

    with pytest.raises(TypeError, match="the vjp of double must return a tuple with one gradient"):
        (double(Node(np.ones((3, 2)), "x")) * 1.0).sum().grad(1)


def test_a_primitive_must_give_one_vjp_per_argument():
    @dp.primitive
    def pair(a, b):
        return a + b, (lambda g: g,)

    with pytest.raises(TypeError, match="pair returned 1 vjps for 2 arguments"):
        pair(Node(1.0, "a"), Node(2.0, "b"))


def test_a_none_gradient_from_a_vjp_for_all_arguments_stops_there():
    @dp.primitive
    def masked(x, mask):
        return x * mask, lambda g: (g * mask, None)

    w, t = Node(np.ones((2, 2)), "w"), Node(np.full((2, 2), 0.5), "t")
    grads = masked(w, t * 2).sum().grad(1)
    assert set(grads) == {"w"} and np.array_equal(grads["w"], np.ones((2, 2)))


def test_a_vjp_answer_with_fewer_axes_than_its_input_is_refused_not_misaligned():
    @dp.primitive
    def double(x):
        return 2 * x, (lambda g: (2 * g).ravel(),)  # (3,) for a (3, 1) column: NumPy would align it as a row

    with pytest.raises(
        ValueError, match=r"the vjp of double answered with shape \(3,\) for an input of shape \(3, 1\)"
    ):
        double(Node([1.0, 2.0, 3.0], "x")).sum().grad(1)


def test_unary_plus_is_the_node_itself():
    w = Node(np.ones((2, 2)), "w")
    assert +w is w


class TestShowingAValue:
    def test_repr_shows_the_value_names_a_parameter_and_gives_shape_and_dtype(self):
        assert repr(Node(np.ones((2, 2), np.float32), "w")) == (
            "Node([[1., 1.],\n      [1., 1.]], name='w', shape=(2, 2), dtype=float32)"
        )
        assert repr(Node(1.0)) == "Node(1., shape=(1, 1), dtype=float64)"
        assert str(Node(0.070534)) == "Node(0.0705, shape=(1, 1), dtype=float64)"  # print(loss)

    def test_repr_of_a_large_node_is_summarized(self):
        shown = repr(Node(np.linspace(1.0, 2.0, 3000).reshape(100, 30)))
        assert "..." in shown and len(shown.splitlines()) == 7 and shown.startswith("Node([[1.    , 1.0003,")
        assert shown.endswith("shape=(100, 30), dtype=float64)")

    def test_repr_summarizes_beyond_20_elements(self):
        assert "..." not in repr(Node(np.arange(20.0)))
        assert "[ 2.],\n      ...,\n      [18.]" in repr(Node(np.arange(21.0)))

    def test_repr_shows_three_items_at_each_edge_whatever_numpys_print_options(self):
        with np.printoptions(edgeitems=1, precision=8):
            shown = repr(Node(np.arange(100.0).reshape(1, 100) / 3))
        assert shown.startswith("Node([[ 0.    ,  0.3333,  0.6667, ..., 32.3333, 32.6667, 33.    ]]")

    def test_repr_of_an_empty_node(self):
        assert repr(Node(np.ones((0, 3)))) == "Node([], shape=(0, 3), dtype=float64)"

    @pytest.mark.parametrize("value", [0.25, np.float32(0.25), np.full((1, 1, 1), 0.25)])
    def test_float_and_item_give_a_python_float_for_one_element(self, value):
        node = Node(value)
        assert float(node) == node.item() == 0.25
        assert type(float(node)) is float and type(node.item()) is float

    def test_float_and_item_refuse_a_node_of_several_elements_naming_value(self):
        node = Node(np.ones(3))
        with pytest.raises(
            TypeError, match=r"float\(\) needs a node with one element, this one has shape \(3, 1\): use node\.value"
        ):
            float(node)
        with pytest.raises(ValueError, match=r"item\(\) needs a node with one element.*node\.value"):
            node.item()


class TestSeeds:
    @pytest.mark.parametrize("seed", [2, np.float64(2), np.int64(2), np.array(2.0), np.full((2, 2), 2), 2.0])
    def test_every_seed_gives_gradients_in_the_dtype_of_the_parameter(self, seed):
        w = Node(np.ones((2, 2), np.float32), "w")
        g = (w * 3).grad(seed)["w"]
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, np.full((2, 2), 6.0))

    @pytest.mark.parametrize("seed", [2, np.array(2.0)], ids=["a number", "a 0-d array"])
    def test_a_named_root_gets_the_seed_in_its_own_dtype(self, seed):
        w = Node(np.ones((2, 2), np.float32), "w")
        g = w.grad(seed)["w"]  # the seed itself, no vjp between: nothing else casts it
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, np.full((2, 2), 2.0))

    def test_a_bool_seed_is_refused(self):
        with pytest.raises(TypeError, match="not bool"):
            (Node(1.0, "w") * 2).grad(True)

    @pytest.mark.parametrize(("seed", "error"), [(np.ones(3), ValueError), ("1", TypeError), (Node(1.0), TypeError)])
    def test_a_bad_seed_is_refused_even_on_a_graph_without_parameters(self, seed, error):
        with pytest.raises(error):
            (Node(np.ones((2, 2))) * 2).grad(seed)

    def test_backward_yields_each_node_with_its_gradient_root_first(self):
        w = Node(np.full((1, 2), 3.0), "w")
        doubled = w * 2
        pairs = list((doubled * doubled).reverse_sweep(1.0))
        assert [node for node, _ in pairs][1:] == [doubled, w]
        np.testing.assert_array_equal(pairs[-1][1], np.full((1, 2), 24.0))  # d(2w)²/dw = 8w


def test_a_vjp_for_all_arguments_must_answer_for_the_last_argument_too():
    @dp.primitive
    def pair(a, b):
        return a * b, lambda g: (g * b,)  # no gradient for b

    with pytest.raises(TypeError, match="the vjp of pair must return a tuple with one gradient"):
        pair(Node(np.ones((2, 2)), "a"), Node(np.ones((2, 2)), "b")).grad(1)


def test_grad_and_backward_start_from_a_seed_of_one_by_default():
    w = Node(np.array([[1.0, -2.0]]), "w")
    loss = (w * w).sum()
    np.testing.assert_array_equal(loss.grad()["w"], [[2.0, -4.0]])
    np.testing.assert_array_equal(next(iter(loss.reverse_sweep()))[1], [[1.0]])


def test_concatenate_as_a_method_joins_rows_by_default():
    a, b = Node(np.ones((2, 3)), "a"), Node(np.zeros((1, 3)), "b")
    joined = a.concatenate(b)
    assert joined.shape == (3, 3)
    grads = joined.grad(np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(grads["b"], [[6.0, 7.0, 8.0]])


def test_a_vjp_answer_of_a_shape_that_does_not_broadcast_is_refused_by_name():
    @dp.primitive
    def bad(x):
        return 2 * x, (lambda g: np.ones((2, 2)),)

    with pytest.raises(ValueError, match=r"the vjp of bad answered with shape \(2, 2\) for an input of shape \(2, 3\)"):
        bad(Node(np.ones((2, 3)), "x")).grad(1)


def test_a_primitive_returning_a_numpy_scalar_gives_an_array_value():
    @dp.primitive
    def total(a):
        return a.sum(), (lambda g: g,)  # ndarray.sum() is a NumPy scalar, not an array

    out = total(Node(np.ones((2, 2)), "a"))
    assert out.value.__class__ is np.ndarray and out.value.shape == ()
    np.testing.assert_array_equal(out.grad(3.0)["a"], np.full((2, 2), 3.0))


def test_concatenate_joins_rows_by_default_and_gives_a_node_even_for_constants_only():
    joined = dp.concatenate([Node(np.ones((1, 2)), "a"), np.zeros((2, 2))])
    assert joined.shape == (3, 2)
    constants = dp.concatenate([np.ones((1, 2)), np.zeros((1, 2))])
    assert isinstance(constants, Node) and constants.dtype == np.float64
    np.testing.assert_array_equal(constants.value, [[1.0, 1.0], [0.0, 0.0]])


def test_a_matrix_product_of_shapes_that_do_not_fit_says_so_not_broadcast():
    with pytest.raises(
        ValueError, match=r"dot: shapes \(2, 3\) and \(4, 5\) don't fit: the left operand has 3 columns"
    ):
        Node(np.ones((2, 3))) @ Node(np.ones((4, 5)))


class TestGradientsAreArraysOfTheirOwn:
    def test_one_array_passed_to_two_names_is_copied_for_the_second(self):
        a, b = Node(np.ones((2, 2)), "a"), Node(np.ones((2, 2)), "b")
        grads = (a + b).grad(np.full((2, 2), 3.0))  # add's vjp hands the same array to both
        assert not np.shares_memory(grads["a"], grads["b"])
        grads["a"] *= 0
        np.testing.assert_array_equal(grads["b"], np.full((2, 2), 3.0))

    def test_one_array_passed_to_three_names_gives_each_an_array_of_its_own(self):
        a, b, c = (Node(np.ones((2, 2)), name) for name in "abc")
        grads = (a + b + c).grad(np.full((2, 2), 3.0))  # both adds hand the same array on
        for first, second in (("a", "b"), ("a", "c"), ("b", "c")):
            assert not np.shares_memory(grads[first], grads[second]), (first, second)

    def test_a_fresh_array_of_a_vjp_is_handed_out_as_it_is_not_copied(self):
        answered = {}

        @dp.primitive
        def double(x):
            def vjp(g):
                answered["x"] = g * 2  # a new array, which nothing else holds
                return answered["x"]

            return 2 * x, (vjp,)

        grads = double(Node(np.ones((2, 2)), "x")).grad(1)
        assert grads["x"] is answered["x"], "copied only when it must be: a view, read-only, or handed out already"

    def test_two_views_of_one_array_are_copied(self):
        w, v = Node(np.ones((3, 2)), "w"), Node(np.ones((3, 2)), "v")
        grads = (w.T + v.T).grad(np.arange(6.0).reshape(2, 3))  # each gets a transposed view of the seed
        assert not np.shares_memory(grads["w"], grads["v"])
        assert grads["w"].base is None and grads["v"].base is None
        np.testing.assert_array_equal(grads["w"], np.arange(6.0).reshape(2, 3).T)

    def test_a_read_only_answer_of_a_vjp_is_copied_so_that_it_can_be_changed(self):
        @dp.primitive
        def frozen(x):
            def vjp(g):
                out = g * 2
                out.flags.writeable = False
                return out

            return 2 * x, (vjp,)

        grads = frozen(Node(np.ones((2, 2)), "x")).grad(1)
        grads["x"] += 1  # would raise for a read-only array
        np.testing.assert_array_equal(grads["x"], np.full((2, 2), 3.0))


def test_a_parameter_broadcast_over_an_empty_batch_gets_a_zero_gradient():
    b = Node(np.ones((1, 3)), "b")
    grads = (Node(np.ones((0, 3))) + b).grad(1)
    np.testing.assert_array_equal(grads["b"], np.zeros((1, 3)))


def test_a_number_never_changes_the_shape_of_a_0_d_or_1_d_node():
    x = Node(np.array([[1.0, 2.0, 3.0]]), "x")
    row = x.reshape(3)
    assert (row * 2).shape == (3,) and (2 - row).shape == (3,)
    total = x.sum(keepdims=False)
    assert (total + 1).shape == () and (total + np.float64(1)).shape == ()
    np.testing.assert_array_equal((row * 2).grad(1)["x"], np.full((1, 3), 2.0))


def test_the_reverse_order_holds_each_node_once_even_a_leaf_with_several_users():
    from dp.node import topological_order

    w = Node(np.ones((2, 2)), "w")
    loss = ((w * w) + w).sum()  # w is used three times
    order = topological_order(loss)
    assert len(order) == len(set(order)) == 4 and order[0] is loss and order[-1] is w


class TestPyTorchHabits:
    def test_backward_raises_and_says_that_grad_returns_the_gradients(self):
        w = Node(np.ones((2, 2)), "w")
        loss = (w * w).sum()
        for call in (loss.backward, lambda: loss.backward(1.0), lambda: loss.backward(gradient=np.ones((1, 1)))):
            with pytest.raises(
                TypeError, match=r"dp returns gradients instead of storing them: write grads = loss\.grad\(1\)"
            ):
                call()

    def test_grad_is_a_method_on_a_parameter_too_and_stores_nothing(self):
        w = Node(np.full((1, 2), 3.0), "w")
        grads = (w * w).sum().grad(1)
        assert callable(w.grad)
        np.testing.assert_array_equal(grads["w"], [[6.0, 6.0]])
        own = w.grad(1)  # d w / d w: nothing from the loss was stored on w
        assert own.keys() == {"w"}
        np.testing.assert_array_equal(own["w"], np.ones((1, 2)))

    def test_the_reverse_sweep_is_a_generator_under_its_own_name(self):
        loss = (Node(np.ones((1, 2)), "w") * 2).sum()
        assert [node.name for node, _ in loss.reverse_sweep(1.0)][-1] == "w"


class TestNumPyOnNodes:
    @pytest.mark.parametrize(
        ("function", "hint"),
        [
            (np.tanh, "use node.tanh()"),
            (np.exp, "use node.exp()"),
            (np.log, "use node.log()"),
            (np.sqrt, "use node.sqrt()"),
            (np.absolute, "use node.abs()"),
            (np.negative, "use -node"),
            (np.sin, "dp has no sin for Nodes"),
        ],
    )
    def test_a_numpy_function_on_a_node_raises_and_names_what_to_write(self, function, hint):
        x = Node(np.full((2, 2), 0.5), "x")
        with pytest.raises(TypeError, match=rf"np\.{function.__name__} does not take a dp\.Node: {hint}.*node\.value"):
            function(x)

    @pytest.mark.parametrize(
        ("call", "refused", "hint"),
        [
            (lambda x: np.mean(x), "np.mean", r"use node\.mean\(\)"),
            (lambda x: np.mean(x, axis=0), "np.mean", r"use node\.mean\(\)"),
            (lambda x: np.sum(x, axis=0, keepdims=True), "np.sum", r"use node\.sum\(\)"),
            (lambda x: np.var(x, axis=0), "np.var", r"use node\.var\(\)"),
            (lambda x: np.max(x), "np.max", r"use node\.max\(\)"),
            (lambda x: np.amax(x), "np.amax", r"use node\.max\(\)"),
            (lambda x: np.min(x), "np.min", r"use -\(-node\)\.max\(\)"),
            (lambda x: np.std(x), "np.std", r"use node\.var\(\)\.sqrt\(\)"),
            (lambda x: np.dot(x, x), "np.dot", "use a @ b"),
            (lambda x: np.concatenate([x, x]), "np.concatenate", r"use dp\.concatenate\(\[a, b\], axis\)"),
            (lambda x: np.hstack([x, x]), "np.hstack", r"use dp\.concatenate\(\[a, b\], axis=1\)"),
            (lambda x: np.vstack([x, x]), "np.vstack", r"use dp\.concatenate\(\[a, b\], axis=0\)"),
            (lambda x: np.stack([x, x]), "np.stack", "use dp.concatenate of the nodes reshaped to have the new axis"),
            (lambda x: np.transpose(x), "np.transpose", r"use node\.transpose\(\)"),
            (lambda x: np.clip(x, 0, 1), "np.clip", "dp has no clip for Nodes: compose it from Node operations"),
            (
                lambda x: np.linalg.norm(x),
                r"np\.linalg\.norm",
                "dp has no norm for Nodes: compose it from Node operations",
            ),
        ],
        ids=[
            "mean",
            "mean over an axis",
            "sum",
            "var",
            "max",
            "amax",
            "min",
            "std",
            "dot",
            "concatenate",
            "hstack",
            "vstack",
            "stack",
            "transpose",
            "clip",
            "linalg.norm",
        ],
    )
    def test_a_numpy_function_that_is_not_a_ufunc_on_a_node_names_the_node_method(self, call, refused, hint):
        """np.mean(node) used to fail with "Node.mean() got an unexpected keyword argument 'dtype'"."""
        x = Node(np.full((2, 2), 0.5), "x")
        message = rf"^{refused} does not take a dp\.Node: {hint} \(Node operations record the gradient; "
        with pytest.raises(TypeError, match=message + rf"{refused} on node\.value gives a plain array, without one\)$"):
            call(x)

    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda x: np.isnan(x), "np.isnan"),
            (lambda x: np.sign(x), "np.sign"),
            (lambda x: np.isclose(x, 1), "np.isclose"),
            (lambda x: np.zeros_like(x), "np.zeros_like"),
            (lambda x: np.argmax(x), "np.argmax"),
        ],
        ids=["a ufunc test", "a ufunc sign", "a comparison", "a new array", "an index"],
    )
    def test_a_numpy_function_whose_result_has_no_gradient_is_told_to_take_the_value(self, call, name):
        with pytest.raises(TypeError, match=rf"^{name} does not take a dp\.Node: write {name}\(node\.value\) "):
            call(Node(np.full((2, 2), 0.5), "x"))

    def test_numpy_functions_that_read_only_the_shape_answer_for_the_value(self):
        x = Node(np.ones((3, 2)), "x")
        assert (np.shape(x), np.ndim(x), np.size(x)) == ((3, 2), 2, 6)
        assert (np.size(x, 0), np.size(x, axis=1), np.size(a=x, axis=0), np.shape(a=x)) == (3, 2, 3, (3, 2))

    @pytest.mark.parametrize(
        "operator",
        [
            lambda a, x: a + x,
            lambda a, x: a - x,
            lambda a, x: a * x,
            lambda a, x: a / x,
            lambda a, x: a**x,
            lambda a, x: a @ x,
        ],
        ids=["+", "-", "*", "/", "**", "@"],
    )
    def test_an_array_on_the_left_of_an_operator_gives_the_node_operation_and_its_gradient(self, operator):
        a, x = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5, 1.5], [2.5, -1.0]])
        out = operator(a, Node(x, "x"))
        assert isinstance(out, Node)
        np.testing.assert_allclose(out.value, operator(a, x), rtol=1e-15)
        assert dp.gradcheck(lambda node: operator(a, node), x) < 1e-6

    def test_a_list_on_the_left_of_at_gives_the_matrix_product_and_its_gradient(self):
        x = Node(np.array([[3.0], [4.0]]), "x")
        out = [[1.0, 2.0]] @ x  # a list has no @: Python asks the Node (__rmatmul__)
        assert isinstance(out, Node)
        np.testing.assert_array_equal(out.value, [[11.0]])
        np.testing.assert_array_equal(out.grad(1)["x"], [[1.0], [2.0]])

    def test_a_numpy_scalar_on_the_left_gives_a_node(self):
        out = np.float64(2.0) * Node(np.ones((1, 2)), "x")
        assert isinstance(out, Node)
        np.testing.assert_array_equal(out.grad(1)["x"], [[2.0, 2.0]])

    def test_an_array_equals_a_node_never_as_any_object_but_the_node_itself(self):
        a, x = np.ones((2, 2)), Node(np.ones((2, 2)))
        assert (a == x) is False and (x == a) is False
        assert (a != x) is True and (x != a) is True

    def test_an_array_cannot_hold_a_node_in_place(self):
        a = np.ones((2, 2))
        with pytest.raises(TypeError, match=r"an array cannot hold a Node; write a = a \+ node"):
            a += Node(np.ones((2, 2)))
        np.testing.assert_array_equal(a, np.ones((2, 2)))

    @pytest.mark.parametrize(
        "call",
        [np.asarray, lambda x: np.ma.masked_array(np.ones((2, 2)), mask=np.eye(2)) * x],
        ids=["asarray", "masked array on the left"],
    )
    def test_numpy_never_makes_an_array_of_objects_from_a_node(self, call):
        with pytest.raises(TypeError, match=r"a dp\.Node is not an array: use node\.value"):
            call(Node(np.ones((2, 2)), "x"))

    def test_a_ufunc_method_or_keyword_on_a_node_is_refused(self):
        x = Node(np.ones((2, 2)), "x")
        operators = "does not take a dp\\.Node: use the Node's operators and methods"
        with pytest.raises(TypeError, match=r"np\.add\.reduce " + operators):
            np.add.reduce(x)
        with pytest.raises(TypeError, match=r"np\.minimum\.reduce " + operators):  # not an operator's ufunc
            np.minimum.reduce(x)
        with pytest.raises(TypeError, match=r"np\.multiply " + operators):  # an operator's, with a keyword
            np.multiply(np.ones((2, 2)), x, where=True)


class TestConcatenatingConstantsOnly:
    """The dtype is NumPy's for the parts, then `Node`'s conventions: float64 only where NumPy
    would say so (a float64 or an integer part), never because the parts were constants."""

    @pytest.mark.parametrize(
        ("dtypes", "expected"),
        [
            ((np.float32, np.float32), np.float32),
            ((np.float32, np.float64), np.float64),
            ((np.float32, np.int64), np.float64),
            ((np.int64, np.int64), np.float64),
            ((np.bool_, np.int8), np.float64),
        ],
    )
    def test_the_dtype_is_numpys_then_nodes_conventions(self, dtypes, expected):
        joined = dp.concatenate([np.ones((1, 2), dtypes[0]), np.zeros((2, 2), dtypes[1])])
        assert joined.dtype == expected and joined.shape == (3, 2)

    def test_constants_are_joined_along_the_axis_asked_for(self):
        assert dp.concatenate([np.ones((2, 1)), np.zeros((2, 3))], axis=1).shape == (2, 4)

    def test_python_lists_are_float64(self):
        assert dp.concatenate([[[1, 2]], [[3.5, 4]]], axis=0).dtype == np.float64

    def test_complex_and_masked_parts_are_refused_not_cast(self):
        with pytest.raises(TypeError, match="complex numbers are not supported"):
            dp.concatenate([np.ones((1, 2)), np.ones((1, 2)) * 1j])
        with pytest.raises(TypeError, match="a part to concatenate is a masked array"):
            dp.concatenate([np.ones((1, 2)), np.ma.masked_array(np.ones((1, 2)), mask=[[True, False]])])
