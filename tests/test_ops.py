"""Every primitive against central finite differences (float64), over hypothesis-drawn shapes.

Values are drawn by NumPy from a hypothesis-drawn seed, from ranges that keep each
function smooth where it is evaluated (log and sqrt of positive numbers, relu and
abs away from 0); continuous draws keep max's winners apart.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import dp
from dp import Node, gradcheck, ops
from dp.nn.linear import linear

TOLERANCE = 1e-6
shapes = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)


def draw(seed, shape, low=-2.0, high=2.0, away_from_zero=False):
    rng = np.random.default_rng(seed)
    values = rng.uniform(low, high, size=shape)
    if away_from_zero:
        values = np.sign(values) * (0.1 + np.abs(values))
    return values


def check(f, *arrays):
    assert gradcheck(f, *arrays) < TOLERANCE


# ----- elementwise unary -----

UNARY = {
    "negative": (lambda x: -x, {}),
    "exp": (Node.exp, {}),
    "log": (Node.log, {"low": 0.2, "high": 3.0}),
    "sqrt": (Node.sqrt, {"low": 0.2, "high": 3.0}),
    "square": (Node.square, {}),
    "abs": (Node.abs, {"away_from_zero": True}),
    "tanh": (Node.tanh, {}),
    "sigmoid": (Node.sigmoid, {"low": -6.0, "high": 6.0}),
    "relu": (Node.relu, {"away_from_zero": True}),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes, seed=seeds)
def test_unary_gradient(name, shape, seed):
    f, ranges = UNARY[name]
    check(f, draw(seed, shape, **ranges))


@pytest.mark.parametrize("name", UNARY)
def test_unary_value_matches_numpy(name):
    x = draw(0, (3, 4), **UNARY[name][1])
    expected = {
        "negative": np.negative,
        "exp": np.exp,
        "log": np.log,
        "sqrt": np.sqrt,
        "square": np.square,
        "abs": np.abs,
        "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "relu": lambda v: np.maximum(v, 0),
    }[name](x)
    np.testing.assert_allclose(UNARY[name][0](Node(x)).value, expected, rtol=1e-14)


# ----- elementwise binary, with broadcasting -----

BINARY = {
    "add": (lambda a, b: a + b, {}),
    "subtract": (lambda a, b: a - b, {}),
    "multiply": (lambda a, b: a * b, {}),
    "divide": (lambda a, b: a / b, {"away_from_zero": True}),
    "power": (lambda a, b: a**b, {"low": 0.2, "high": 2.0}),
}


@pytest.mark.parametrize("name", BINARY)
@given(pair=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3), seed=seeds)
def test_binary_gradient_with_broadcasting(name, pair, seed):
    f, ranges = BINARY[name]
    a_shape, b_shape = pair.input_shapes
    # Node makes a 1-D array a column; build 2-D+ inputs so the drawn shapes are the shapes used.
    a_shape, b_shape = (1,) * (2 - len(a_shape)) + a_shape, (1,) * (2 - len(b_shape)) + b_shape
    check(f, draw(seed, a_shape, **ranges), draw(seed + 1, b_shape, **ranges))


@pytest.mark.parametrize("name", BINARY)
def test_numbers_and_arrays_work_on_either_side(name):
    f, ranges = BINARY[name]
    x, c = draw(1, (2, 3), **ranges), draw(2, (2, 3), **ranges)
    expected_left, expected_right = f(x, c), f(c, x)
    for constant in (c, 1.5):
        left, right = f(Node(x), constant), f(constant, Node(x))
        assert isinstance(left, Node) and isinstance(right, Node)
    np.testing.assert_allclose(f(Node(x), c).value, expected_left)
    np.testing.assert_allclose(f(c, Node(x)).value, expected_right)
    check(lambda a: f(a, c), x)
    check(lambda a: f(c, a), x)
    check(lambda a: f(a, 1.5), x)
    check(lambda a: f(1.5, a), x)


def test_an_ndarray_on_the_left_gives_a_node():
    x = Node(np.ones((2, 2)))
    assert isinstance(np.ones((2, 2)) * x, Node)
    assert isinstance(np.ones((2, 2)) @ x, Node)
    assert isinstance(1 - x, Node) and isinstance(-1 * x, Node)
    np.testing.assert_array_equal((1 - x).value, np.zeros((2, 2)))


def test_a_vector_constant_lines_up_as_a_column_not_an_outer_broadcast():
    out = Node(np.ones((4, 1))) - np.arange(4.0)
    assert out.shape == (4, 1)


def test_the_exponent_may_be_a_node():
    check(lambda a, b: a**b, draw(3, (2, 3), 0.5, 2.0), draw(4, (1, 3)))


def test_the_gradient_of_a_power_of_zero_is_finite():
    grads = (Node(np.zeros((1, 2)), "a") ** Node(2.0, "b")).sum().grad(1)
    assert np.isfinite(grads["a"]).all() and np.isfinite(grads["b"]).all()


@pytest.mark.parametrize("exponent", [2.0, 0.0, 3])  # numbers reach a primitive as Python numbers
def test_a_number_exponent_keeps_float32_in_the_backward_pass(exponent):
    a = np.array([[0.5, 2.0, 3.0]], np.float32)
    y, (vjp_a, _) = ops.power(a, exponent)  # the table's forward, on arrays
    assert vjp_a(np.ones_like(y)).dtype == np.float32  # no float64 temporaries


def test_the_power_zero_is_constant_so_its_gradient_is_zero_even_at_zero():
    grads = (Node(np.array([[0.0, 1.5]]), "a") ** 0).sum().grad(1)
    np.testing.assert_array_equal(grads["a"], [[0.0, 0.0]])
    exponents = (Node(np.array([[0.0, 0.0, 2.0]]), "a") ** np.array([[0.0, 2.0, 0.0]])).sum().grad(1)
    np.testing.assert_array_equal(exponents["a"], [[0.0, 0.0, 0.0]])  # 2 * 0**1 = 0 in the middle


# ----- linear algebra -----

matmul_shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))


@given(mkn=matmul_shapes, seed=seeds)
def test_dot_and_matmul_gradient(mkn, seed):
    m, k, n = mkn
    a, b = draw(seed, (m, k)), draw(seed + 1, (k, n))
    check(lambda x, y: x @ y, a, b)
    check(lambda x, y: dp.dot(x, y), a, b)
    check(lambda x, y: x.dot(y), a, b)


@given(mkn=matmul_shapes, seed=seeds)
def test_batched_matmul_broadcasts_the_batch_dimensions(mkn, seed):
    m, k, n = mkn
    check(lambda x, y: x @ y, draw(seed, (3, m, k)), draw(seed + 1, (1, k, n)))
    check(lambda x, y: x @ y, draw(seed, (2, 1, m, k)), draw(seed + 1, (3, k, n)))


@given(mkn=matmul_shapes, seed=seeds, bias=st.booleans())
def test_linear_gradient(mkn, seed, bias):
    m, k, n = mkn
    x, w, b = draw(seed, (m, k)), draw(seed + 1, (k, n)), draw(seed + 2, (1, n))
    if bias:
        check(lambda x, w, b: linear(x, w, b), x, w, b)
        np.testing.assert_allclose(linear(Node(x), Node(w), Node(b)).value, x @ w + b)
    else:
        check(lambda x, w: linear(x, w), x, w)


def test_dot_of_shapes_that_do_not_fit_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        Node(np.ones((2, 3))) @ Node(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        dp.dot(Node(np.ones((2, 3))), np.ones((4, 5)))


def test_a_mismatched_broadcast_names_both_shapes():
    for f in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a - b, lambda a, b: a**b):
        with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\).*broadcast"):
            f(Node(np.ones((2, 3))), Node(np.ones((4, 5))))


# ----- reductions -----

axes_for = {1: [None, 0, -1], 2: [None, 0, 1, (0, 1)], 3: [None, 0, 2, (0, 2), (1, 2)]}


@pytest.mark.parametrize("reduction", ["sum", "mean", "var", "max"])
@given(shape=shapes, seed=seeds, keepdims=st.booleans(), pick=st.integers(0, 4))
def test_reduction_gradient(reduction, shape, seed, keepdims, pick):
    x = draw(seed, shape)
    ndim = len(as_node_shape := Node(x).shape)
    axis = axes_for[ndim][pick % len(axes_for[ndim])]
    check(lambda a: getattr(a, reduction)(axis=axis, keepdims=keepdims), x)
    expected = getattr(np, reduction)(x.reshape(as_node_shape), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(getattr(Node(x), reduction)(axis=axis, keepdims=keepdims).value, expected, rtol=1e-12)


def test_reductions_keep_dimensions_by_default():
    x = Node(np.ones((4, 3)))
    for reduction in ("sum", "mean", "var", "max"):
        assert getattr(x, reduction)(axis=0).shape == (1, 3)
        assert getattr(x, reduction)(axis=1).shape == (4, 1)
        assert getattr(x, reduction)().shape == (1, 1)


def test_var_with_ddof_is_the_unbiased_estimate():
    x = draw(5, (6, 2))
    np.testing.assert_allclose(Node(x).var(axis=0, ddof=1).value, x.var(axis=0, ddof=1, keepdims=True))
    check(lambda a: a.var(axis=0, ddof=1), x)


def test_max_splits_the_gradient_between_ties():
    grads = Node(np.array([[1.0, 3.0, 3.0]]), "x").max(axis=1).grad(1)
    np.testing.assert_array_equal(grads["x"], [[0.0, 0.5, 0.5]])


# ----- softmax family -----


@pytest.mark.parametrize("op", [Node.softmax, Node.log_softmax])
@given(shape=shapes, seed=seeds, axis=st.sampled_from([0, -1]))
def test_softmax_gradient(op, shape, seed, axis):
    check(lambda a: op(a, axis=axis), draw(seed, shape, -4.0, 4.0))


def test_softmax_rows_sum_to_one_and_log_softmax_is_its_log():
    x = draw(6, (5, 4))
    p = Node(x).softmax().value
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(Node(x).log_softmax().value, np.log(p), atol=1e-14)


@pytest.mark.parametrize("op", [Node.sigmoid, Node.softmax, Node.log_softmax])
def test_saturating_functions_are_finite_for_inputs_of_magnitude_1000(op):
    x = Node(np.array([[-1000.0, 0.0, 1000.0], [1000.0, -1000.0, 999.0]]), "x")
    out = op(x)
    assert np.isfinite(out.value).all()
    assert np.isfinite(out.grad(np.arange(6.0).reshape(2, 3))["x"]).all()
    assert gradcheck(lambda a: op(a), x.value) < TOLERANCE


def test_sigmoid_keeps_full_precision_in_the_tails():
    np.testing.assert_allclose(Node(-30.0).sigmoid().value, [[1 / (1 + np.exp(30.0))]], rtol=1e-14)


# ----- shape and indexing -----


@given(shape=shapes, seed=seeds)
def test_transpose_and_T_gradient(shape, seed):
    x = draw(seed, shape)
    check(lambda a: a.T, x)
    check(lambda a: a.transpose(), x)
    axes = tuple(reversed(range(Node(x).ndim)))[1:] + (Node(x).ndim - 1,)
    check(lambda a: a.transpose(axes) * np.arange(np.prod(x.shape)).reshape(np.transpose(Node(x).value, axes).shape), x)


@pytest.mark.parametrize("axes", [(0, -1, -2), (-1, 0, 1), (2, -3, -2)])
def test_transpose_with_negative_axes_gradient(axes):
    rng = np.random.default_rng(0)
    for shape in ((3, 3, 3), (2, 3, 4)):  # equal sizes once hid a wrong inverse permutation
        x, w = rng.standard_normal(shape), rng.standard_normal(np.transpose(np.empty(shape), axes).shape)
        check(lambda a, w=w: a.transpose(axes) * w, x)


@pytest.mark.parametrize("axes", [0, -1, (0,), [-1]])
def test_transpose_of_a_vector_with_one_axis_gradient(axes):
    vector = Node(np.arange(3.0).reshape(3, 1), "x").reshape((3,))
    grads = (vector.transpose(axes) * 2.0).sum().grad(1)
    np.testing.assert_array_equal(grads["x"], np.full((3, 1), 2.0))


@given(shape=shapes, seed=seeds)
def test_reshape_gradient(shape, seed):
    x = draw(seed, shape)
    check(lambda a: a.reshape(-1, 1) * np.arange(x.size).reshape(-1, 1), x)
    check(lambda a: a.reshape((1, -1)), x)


def test_indexing_and_slicing_gradient():
    x = draw(7, (4, 5))
    check(lambda a: a[1:3], x)
    check(lambda a: a[:, ::2], x)
    check(lambda a: a[2, 3] * 1.0, x)
    check(lambda a: a[[0, 0, 3]], x)  # a row taken twice collects twice the gradient
    check(lambda a: a[x > 0], x)
    check(lambda a: a[..., None], x)


def test_repeated_fancy_indices_add_their_gradients():
    grads = Node(np.ones((3, 1)), "x")[[0, 0, 2]].sum().grad(1)
    np.testing.assert_array_equal(grads["x"], [[2.0], [0.0], [1.0]])


@given(widths=st.lists(st.integers(1, 3), min_size=1, max_size=4), seed=seeds, axis=st.sampled_from([0, 1]))
def test_concatenate_gradient(widths, seed, axis):
    arrays = [draw(seed + i, (w, 2) if axis == 0 else (2, w)) for i, w in enumerate(widths)]
    check(lambda *nodes: dp.concatenate([n * (i + 1) for i, n in enumerate(nodes)], axis=axis), *arrays)
    np.testing.assert_array_equal(dp.concatenate([Node(a) for a in arrays], axis).value, np.concatenate(arrays, axis))


def test_concatenate_accepts_constants():
    out = dp.concatenate([Node(np.ones((2, 1)), "x"), np.zeros((2, 2))], axis=1)
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out.sum().grad(1)["x"], np.ones((2, 1)))


# ----- dtypes -----

ALL_OPS = [
    lambda a: a + 1,
    lambda a: 2 - a,
    lambda a: a * np.ones((3, 3)),
    lambda a: a / 3,
    lambda a: a**2,
    lambda a: -a,
    lambda a: a @ a,
    lambda a: a.T,
    lambda a: a.reshape(9, 1),
    lambda a: a[1:],
    lambda a: dp.concatenate([a, a]),
    *[lambda a, r=r: getattr(a, r)(axis=0) for r in ("sum", "mean", "var", "max")],
    *[lambda a, u=u: getattr(a, u)() for u in ("exp", "sqrt", "square", "abs", "tanh", "sigmoid", "relu")],
    lambda a: a.log(),
    lambda a: a.softmax(),
    lambda a: a.log_softmax(),
    lambda a: linear(a, a, a[:1]),
]


@pytest.mark.parametrize("f", ALL_OPS)
def test_float32_stays_float32_through_every_operation_and_its_gradient(f):
    x = Node(np.random.default_rng(0).uniform(0.5, 1.5, (3, 3)).astype(np.float32), "x")
    out = f(x)
    assert out.dtype == np.float32
    assert x.dtype == out.grad(np.ones(out.shape, np.float32))["x"].dtype == np.float32


def test_a_vector_that_cannot_broadcast_as_a_column_gets_a_hint():
    with pytest.raises(ValueError, match=r"1-D array is a column in dp: reshape it to \(1, n\)"):
        Node(np.ones((5, 3))) * np.arange(3.0)


def test_var_with_no_degrees_of_freedom_is_nan_with_a_warning_and_nan_gradients():
    """As NumPy's forward (NaN) and PyTorch's backward (NaN gradients), never a ZeroDivisionError."""
    x = Node(np.array([[1.0, 2.0, 3.0]]), "x")  # one row: var over axis 0 with ddof=1 has no degrees of freedom
    with pytest.warns(RuntimeWarning, match="no degrees of freedom"):
        out = x.var(axis=0, ddof=1)
    assert np.isnan(out.value).all()
    with np.errstate(invalid="ignore"):
        assert np.isnan(out.sum().grad(1)["x"]).all()


# ----- defaults, dtypes and edge points that the finite differences above do not reach -----


def test_method_defaults_are_the_documented_ones():
    x = Node(np.array([[-2.0, 0.5], [1.0, -0.25]]))
    np.testing.assert_array_equal(x.leaky_relu().value, x.leaky_relu(0.01).value)
    np.testing.assert_array_equal(x.elu().value, x.elu(1.0).value)
    np.testing.assert_allclose(x.elu().value[0, 0], np.expm1(-2.0))
    np.testing.assert_allclose(x.leaky_relu().value[0, 0], -0.02)
    for method in ("sum", "mean", "var", "max", "logsumexp"):
        assert getattr(x, method)().shape == (1, 1)
        assert getattr(x, method)(axis=0).shape == (1, 2)
    np.testing.assert_allclose(x.var().value, [[np.var(x.value)]])  # ddof=0: divided by n


def test_softmax_and_log_softmax_work_along_the_last_axis_by_default():
    x = draw(5, (2, 3, 4))
    rows = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(Node(x).softmax().value, rows, rtol=1e-14)
    np.testing.assert_allclose(Node(x).log_softmax().value, np.log(rows), rtol=1e-13)
    g = draw(6, (2, 3, 4))
    for method in (Node.softmax, Node.log_softmax):
        default = method(Node(x, "x")).grad(g)["x"]
        np.testing.assert_allclose(default, method(Node(x, "x"), axis=2).grad(g)["x"], rtol=1e-14)
        assert not np.allclose(default, method(Node(x, "x"), axis=1).grad(g)["x"])


@pytest.mark.parametrize("entry", [ops.softmax, ops.log_softmax])
def test_the_softmax_table_entries_work_along_the_last_axis_of_a_3d_array_by_default(entry):
    """The table's own default, not the Node method's (which passes its axis explicitly):
    on a 3-D array the last axis is not axis 1."""
    x, g = draw(9, (2, 3, 4)), draw(10, (2, 3, 4))
    y, (vjp,) = entry(x)
    expected, (expected_vjp,) = entry(x, axis=2)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(vjp(g), expected_vjp(g))
    probabilities = y if entry is ops.softmax else np.exp(y)
    np.testing.assert_allclose(probabilities.sum(axis=-1), np.ones((2, 3)), rtol=1e-14)


LEFT_OPERATORS = [lambda c, x: c + x, lambda c, x: c - x, lambda c, x: c * x, lambda c, x: c / x]
LEFT_OPERATORS += [lambda c, x: c**x, lambda c, x: c @ x]


@pytest.mark.parametrize("f", LEFT_OPERATORS)
def test_a_float64_ndarray_on_the_left_of_a_float32_node_keeps_float32(f):
    x = Node(np.full((2, 2), 1.5, np.float32), "x")
    out = f(np.full((2, 2), 2.0), x)
    assert out.dtype == np.float32 and out.grad(1)["x"].dtype == np.float32


def test_an_ndarray_at_a_node_is_the_matrix_product_with_its_gradient():
    a, w = draw(7, (3, 2)), draw(8, (2, 4))
    out = a @ Node(w, "w")
    np.testing.assert_allclose(out.value, a @ w)
    np.testing.assert_allclose(out.grad(np.ones((3, 4)))["w"], a.T @ np.ones((3, 4)))
    np.testing.assert_allclose(Node(a, "a").dot(w).grad(np.ones((3, 4)))["a"], np.ones((3, 4)) @ w.T)
    np.testing.assert_allclose(dp.dot(Node(a, "a"), w).value, a @ w)


def test_the_derivative_of_abs_at_zero_is_zero_and_its_sign_elsewhere():
    grads = Node(np.array([[-2.0, 0.0, 3.0]]), "x").abs().grad(1)
    np.testing.assert_array_equal(grads["x"], [[-1.0, 0.0, 1.0]])


@pytest.mark.parametrize(("exponent", "expected"), [(0, [0.0, 0.0, 0.0]), (1, [1.0, 1.0, 1.0]), (2, [0.0, 4.0, -6.0])])
def test_the_gradient_of_x_to_a_number_power(exponent, expected):
    x = Node(np.array([[0.0, 2.0, -3.0]]), "x")
    np.testing.assert_array_equal((x**exponent).grad(1)["x"], [expected])
    np.testing.assert_array_equal((x ** float(exponent)).grad(1)["x"], [expected])


@pytest.mark.parametrize("exponent", [0.0, 1.0])
def test_the_gradient_of_x_to_an_array_of_exponents_0_or_1(exponent):
    x, b = np.array([[0.0, 2.0, 3.0]]), np.full((1, 3), exponent)
    grads = (Node(x, "x") ** Node(b, "b")).grad(1)
    np.testing.assert_array_equal(grads["x"], np.zeros((1, 3)) if exponent == 0 else np.ones((1, 3)))
    np.testing.assert_allclose(grads["b"], x**exponent * np.log(np.where(x == 0, 1, x)))


def test_the_gradient_of_a_huge_float32_base_to_exponents_0_and_1_warns_of_nothing():
    """d(a**b)/da = b a**(b-1), with a**(b-1) taken where b == 0 at exponent 1 (its value is
    discarded there): any other stand-in exponent overflows float32 for a = 1e20."""
    a = Node(np.full((1, 2), 1e20, np.float32), "a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or an invalid value is an error here
        grads = (a ** np.array([[0.0, 1.0]], np.float32)).grad(1)
    assert grads["a"].dtype == np.float32
    np.testing.assert_array_equal(grads["a"], [[0.0, 1.0]])


def test_relu_passes_the_gradient_only_where_the_input_is_positive():
    grads = Node(np.array([[-1.0, 0.0, 2.0]]), "x").relu().grad(np.array([[5.0, 5.0, 5.0]]))
    np.testing.assert_array_equal(grads["x"], [[0.0, 0.0, 5.0]])


def test_the_table_entries_have_the_documented_defaults():
    a = np.array([[-2.0, 3.0]])
    np.testing.assert_array_equal(ops.leaky_relu(a)[0], [[-0.02, 3.0]])
    np.testing.assert_allclose(ops.elu(a)[0], [[np.expm1(-2.0), 3.0]])
    rows = np.array([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_allclose(ops.softmax(rows)[0].sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(np.exp(ops.log_softmax(rows)[0]).sum(axis=1), [1.0, 1.0])
    expected = [rows.sum(), rows.mean(), rows.var(), rows.max(), np.log(np.exp(rows).sum())]
    for reduction, value in zip((ops.sum, ops.mean, ops.var, ops.max, ops.logsumexp), expected):
        out = reduction(rows)[0]
        assert out.shape == (1, 1)  # the axes are kept
        np.testing.assert_allclose(out, [[value]])  # over all axes, ddof=0


def test_at_zero_leaky_relu_and_elu_take_the_slope_of_the_negative_side():
    x = np.array([[0.0, -1.0, 1.0]])
    np.testing.assert_allclose(Node(x, "x").leaky_relu(0.1).grad(1)["x"], [[0.1, 0.1, 1.0]])
    np.testing.assert_allclose(Node(x, "x").elu(0.5).grad(1)["x"], [[0.5, 0.5 * np.exp(-1.0), 1.0]])
    np.testing.assert_array_equal(Node(x, "x").relu().grad(1)["x"], [[0.0, 0.0, 1.0]])


def test_linear_refuses_shapes_that_do_not_fit_by_name():
    with pytest.raises(ValueError, match=r"dot: shapes \(2, 3\) and \(4, 5\) don't fit"):
        linear(Node(np.ones((2, 3))), Node(np.ones((4, 5))))
    with pytest.raises(ValueError, match="both operands need 2 or more dimensions"):
        linear(Node(np.ones((2, 3))), np.ones(3))  # NumPy would give a vector
