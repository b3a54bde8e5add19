"""Convolution and pooling (dp.nn.conv): the definitions, the gradients against finite
differences, the tie rule of max pooling, dtypes, bad input, and the Conv2d layer."""

import numpy as np
import pytest

import dp
from dp import Node, NonFiniteError, gradcheck
from dp.nn import Conv2d, avg_pool2d, conv2d, max_pool2d
from dp.nn.conv import avg_pool, convolve, max_pool

TOL = 1e-7


@pytest.fixture
def rng():
    return np.random.default_rng(21)


def reference_conv(x, w, b, stride, padding):
    """The convolution's definition, one output at a time: y[n, o, p, q] = b[o] + the sum over
    (c, i, j) of w[o, c, i, j] * xp[n, c, p * sh + i, q * sw + j], xp padded with zeros."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, _, height, width = xp.shape
    out, _, kh, kw = w.shape
    y = np.empty((n, out, (height - kh) // sh + 1, (width - kw) // sw + 1))
    for index in np.ndindex(*y.shape):
        k, o, p, q = index
        y[index] = b[o] + np.sum(w[o] * xp[k, :, p * sh : p * sh + kh, q * sw : q * sw + kw])
    return y


def reference_pool(x, kernel, stride, reduce):
    """A pooling's definition: ``reduce`` of each window, one output at a time."""
    (kh, kw), (sh, sw) = kernel, stride
    n, c, height, width = x.shape
    y = np.empty((n, c, (height - kh) // sh + 1, (width - kw) // sw + 1))
    for k, ch, p, q in np.ndindex(*y.shape):
        y[k, ch, p, q] = reduce(x[k, ch, p * sh : p * sh + kh, q * sw : q * sw + kw])
    return y


# batch 2, 2-3 channels, rectangular images, square and non-square kernels
CONV_CASES = [
    # (x shape, w shape, stride, padding)
    ((2, 3, 6, 5), (2, 3, 3, 3), 1, 0),
    ((2, 3, 6, 5), (2, 3, 3, 2), 2, 1),
    ((2, 2, 7, 5), (3, 2, 2, 3), (2, 1), (1, 0)),
    ((2, 3, 5, 6), (2, 3, 3, 2), 1, 1),
    ((2, 2, 6, 7), (3, 2, 3, 3), 2, 0),
]


def pair(v):
    return (v, v) if isinstance(v, int) else v


class TestConv2dComputesTheDefinition:
    @pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
    def test_the_output_is_the_sum_over_each_window(self, rng, x_shape, w_shape, stride, padding):
        x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
        y = conv2d(x, w, b, stride=stride, padding=padding)
        np.testing.assert_allclose(
            y.value, reference_conv(x, w, b, pair(stride), pair(padding)), rtol=1e-12, atol=1e-12
        )

    @pytest.mark.parametrize(
        "height, kernel, stride, padding", [(7, 3, 2, 0), (8, 3, 2, 1), (5, 5, 1, 0), (6, 2, 3, 2)]
    )
    def test_the_output_size_is_torchs_floor_formula(self, height, kernel, stride, padding):
        y = conv2d(np.ones((1, 1, height, height)), np.ones((1, 1, kernel, kernel)), stride=stride, padding=padding)
        size = (height + 2 * padding - kernel) // stride + 1
        assert y.shape == (1, 1, size, size)

    def test_without_a_bias_nothing_is_added(self, rng):
        x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3))
        np.testing.assert_allclose(conv2d(x, w).value, reference_conv(x, w, np.zeros(2), (1, 1), (0, 0)), atol=1e-12)

    def test_a_bias_of_shape_out_or_1_out_1_1_gives_the_same_output(self, rng):
        x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
        np.testing.assert_array_equal(conv2d(x, w, b).value, conv2d(x, w, b.reshape(1, 4, 1, 1)).value)

    def test_the_bias_gradient_comes_back_in_the_bias_own_shape(self, rng):
        x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
        row = Node(b.reshape(1, 4, 1, 1), "b")  # dp makes a 1-D array a column: an (out,) bias is a reshape
        g = rng.standard_normal((2, 4, 3, 3))
        from_row = conv2d(x, w, row).grad(g)["b"]
        from_vector = conv2d(x, w, row.reshape(4)).grad(g)["b"]  # the vjp answers (4,), the reshape's input
        assert from_row.shape == from_vector.shape == (1, 4, 1, 1)
        np.testing.assert_allclose(from_row.ravel(), g.sum(axis=(0, 2, 3)), rtol=1e-12)
        np.testing.assert_array_equal(from_row, from_vector)

    def test_arrays_are_constants_and_nodes_get_gradients(self, rng):
        x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 2, 2))
        grads = conv2d(x, Node(w, "w")).grad(1)
        assert set(grads) == {"w"}
        assert set(conv2d(Node(x, "x"), w.tolist()).grad(1)) == {"x"}  # a list is an array too


class TestGradientsAgainstFiniteDifferences:
    @pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
    def test_conv2d_with_a_bias(self, rng, x_shape, w_shape, stride, padding):
        x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal((1, w_shape[0], 1, 1))
        assert gradcheck(lambda x, w, b: conv2d(x, w, b, stride=stride, padding=padding), x, w, b, tol=TOL) < TOL

    @pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES[:3])
    def test_conv2d_without_a_bias(self, rng, x_shape, w_shape, stride, padding):
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        assert gradcheck(lambda x, w: conv2d(x, w, stride=stride, padding=padding), x, w, tol=TOL) < TOL

    def test_conv2d_with_an_out_shaped_bias(self, rng):
        x, w, b = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 2, 3)), rng.standard_normal((1, 2))
        assert gradcheck(lambda x, w, b: conv2d(x, w, b.reshape(2), stride=2, padding=1), x, w, b, tol=TOL) < TOL

    @pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), ((2, 3), (1, 2)), (2, 1)])
    def test_max_pool2d_on_values_without_ties(self, rng, kernel, stride):
        x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10  # distinct values, eps-stable order
        assert gradcheck(lambda x: max_pool2d(x, kernel, stride), x, tol=TOL) < TOL

    @pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), (3, 1), ((2, 3), (1, 2))])
    def test_avg_pool2d_including_overlapping_windows(self, rng, kernel, stride):
        x = rng.standard_normal((2, 3, 7, 6))
        assert gradcheck(lambda x: avg_pool2d(x, kernel, stride), x, tol=TOL) < TOL


class TestPooling:
    @pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), ((2, 3), (1, 2)), (3, 1)])
    def test_max_and_avg_pool_compute_their_definitions(self, rng, kernel, stride):
        x = rng.standard_normal((2, 3, 7, 6))
        steps = pair(kernel if stride is None else stride)
        np.testing.assert_array_equal(
            max_pool2d(x, kernel, stride).value, reference_pool(x, pair(kernel), steps, np.max)
        )
        np.testing.assert_allclose(
            avg_pool2d(x, kernel, stride).value, reference_pool(x, pair(kernel), steps, np.mean), rtol=1e-12
        )

    def test_the_stride_defaults_to_the_kernel_and_windows_that_do_not_fit_are_dropped(self):
        x = np.arange(2 * 1 * 5 * 7, dtype=float).reshape(2, 1, 5, 7)
        assert max_pool2d(x, 2).shape == avg_pool2d(x, 2).shape == (2, 1, 2, 3)
        assert max_pool2d(x, (2, 3)).shape == (2, 1, 2, 2)

    def test_max_pool_gives_a_tied_window_gradient_to_its_first_maximum_only(self):
        """All-zero windows, as after a ReLU: the gradient goes to the top-left element."""
        x = np.zeros((1, 1, 4, 4))
        x[0, 0, 2, 3] = x[0, 0, 3, 2] = 5.0  # one window with two equal maxima, not in the first place
        g = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
        grad = max_pool2d(Node(x, "x"), 2).grad(g)["x"]
        expected = np.zeros((1, 1, 4, 4))
        expected[0, 0, 0, 0], expected[0, 0, 0, 2], expected[0, 0, 2, 0] = 1.0, 2.0, 3.0
        expected[0, 0, 2, 3] = 4.0  # (2, 3) comes before (3, 2) in row-major order
        np.testing.assert_array_equal(grad, expected)

    def test_overlapping_windows_that_pick_the_same_maximum_add_their_gradients(self):
        x = np.zeros((1, 1, 3, 3))
        x[0, 0, 1, 1] = 1.0  # the maximum of all four 2 x 2 windows at stride 1
        grad = max_pool2d(Node(x, "x"), 2, 1).grad(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))["x"]
        assert grad[0, 0, 1, 1] == 10.0 and np.count_nonzero(grad) == 1

    def test_overlapping_windows_add_up_in_avg_pool(self):
        grad = avg_pool2d(Node(np.zeros((1, 1, 3, 3)), "x"), 2, 1).grad(1)["x"]
        np.testing.assert_array_equal(grad[0, 0], np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4)


class TestThePrimitives:
    """`convolve`, `max_pool` and `avg_pool`, called directly: the defaults of their signatures."""

    def test_convolve_defaults_to_stride_1_and_no_padding(self, rng):
        x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 3, 2))
        np.testing.assert_array_equal(convolve(x, w).value, conv2d(x, w, stride=1, padding=0).value)

    def test_the_poolings_default_to_2_x_2_windows_side_by_side(self, rng):
        x = rng.standard_normal((2, 3, 7, 6))
        np.testing.assert_array_equal(max_pool(x).value, max_pool2d(x, (2, 2), (2, 2)).value)
        np.testing.assert_array_equal(avg_pool(x).value, avg_pool2d(x, (2, 2), (2, 2)).value)

    def test_a_kernel_fits_with_the_padding_of_its_own_axis(self, rng):
        """Padding (1, 0) makes room for a 3 x 1 kernel in images one row high, and none across."""
        x, w = rng.standard_normal((1, 1, 1, 4)), rng.standard_normal((1, 1, 3, 1))
        np.testing.assert_allclose(
            convolve(x, w, padding=(1, 0)).value, reference_conv(x, w, np.zeros(1), (1, 1), (1, 0)), rtol=1e-12
        )


class TestDtypes:
    def test_float32_in_gives_float32_out_and_float32_gradients(self, rng):
        x = Node(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), "x")
        w = Node(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), "w")
        b = Node(np.zeros((1, 2, 1, 1), np.float32), "b")
        for y in (conv2d(x, w, b, stride=2, padding=1), max_pool2d(x, 2), avg_pool2d(x, 3, 1)):
            assert y.dtype == np.float32
            assert all(g.dtype == np.float32 for g in y.grad(1).values())

    def test_float64_weights_do_not_upcast_float32_images(self, rng):
        x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
        w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
        y = conv2d(x, Node(w, "w"), b)
        assert y.dtype == np.float32 and y.grad(1)["w"].dtype == np.float64  # each gradient in its node's dtype

    def test_integer_images_become_float64(self):
        assert conv2d(np.ones((1, 1, 3, 3), dtype=int), np.ones((1, 1, 2, 2))).dtype == np.float64


X = np.zeros((2, 3, 6, 5))
W = np.zeros((4, 3, 3, 3))


class TestBadInputIsRefusedWithItsReason:
    @pytest.mark.parametrize(
        "call, error, words",
        [
            (
                lambda: conv2d(np.zeros((3, 6, 5)), W),
                ValueError,
                r"conv2d: the input must be images \(N, C, H, W\); got shape \(3, 6, 5\)",
            ),
            (lambda: conv2d(np.zeros((2, 90)), W), ValueError, "got shape \\(2, 90\\).*reshape"),
            (lambda: conv2d(X, np.zeros((4, 3, 3))), ValueError, "the weights w must be 4-D.*\\(4, 3, 3\\)"),
            (lambda: conv2d(X, np.zeros((4, 3, 0, 3))), ValueError, "weights.*at least 1"),
            (lambda: conv2d(X, np.zeros((4, 2, 3, 3))), ValueError, "3 channels.*2 are expected"),
            (lambda: conv2d(X, np.zeros((4, 3, 7, 3))), ValueError, "kernel, 7 x 3, is larger than the input, 6 x 5"),
            (lambda: conv2d(X, np.zeros((4, 3, 9, 3)), padding=1), ValueError, "larger than the padded input, 8 x 7"),
            (lambda: conv2d(X, np.zeros((4, 3, 9, 3)), padding=(1, 2)), ValueError, "the padded input, 8 x 9"),
            (lambda: conv2d(X, W, stride=0), ValueError, "stride must be a whole number in \\[1, inf\\)"),
            (lambda: conv2d(X, W, stride=(1, 0)), ValueError, "stride"),
            (lambda: conv2d(X, W, stride=1.5), TypeError, "stride must be a whole number"),
            (lambda: conv2d(X, W, stride=(1, 2, 3)), ValueError, "stride must be one number or an \\(h, w\\) pair"),
            (lambda: conv2d(X, W, padding=-1), ValueError, "padding must be a whole number in \\[0, inf\\)"),
            (lambda: conv2d(X, W, np.zeros(3)), ValueError, "bias b must have shape \\(4,\\) or \\(1, 4, 1, 1\\)"),
            (lambda: conv2d(X, W, np.zeros((4, 1))), ValueError, "bias.*got \\(4, 1\\).*column"),
            (lambda: conv2d(np.zeros((0, 3, 6, 5)), W), ValueError, "no images"),
            (lambda: conv2d(np.full((2, 3, 6, 5), np.nan), W), NonFiniteError, "conv2d: the input has NaN or inf"),
            (lambda: conv2d(X, np.full((4, 3, 3, 3), np.inf)), NonFiniteError, "conv2d: w has NaN or inf"),
            (lambda: conv2d(X, W, np.full(4, np.nan)), NonFiniteError, "conv2d: b has NaN or inf"),
            (lambda: conv2d(X.astype(str), W), TypeError, "conv2d: the input must be numeric"),
            (lambda: max_pool2d(np.zeros((6, 5)), 2), ValueError, "max_pool2d: the input must be images.*reshape"),
            (lambda: max_pool2d(X, 0), ValueError, "kernel_size must be a whole number in \\[1, inf\\)"),
            (lambda: max_pool2d(X, 2, 0), ValueError, "stride must be a whole number in \\[1, inf\\)"),
            (lambda: max_pool2d(X, 6), ValueError, "max_pool2d: the kernel, 6 x 6, is larger than the input, 6 x 5"),
            (lambda: avg_pool2d(X, (2, 6)), ValueError, "avg_pool2d: the kernel, 2 x 6, is larger than the input"),
            (lambda: avg_pool2d(np.zeros((2, 3, 6)), 2), ValueError, "avg_pool2d: the input must be images"),
            (lambda: avg_pool2d(np.full((1, 1, 2, 2), np.inf), 2), NonFiniteError, "NaN or inf"),
        ],
    )
    def test_each_bad_input_names_its_problem(self, call, error, words):
        with pytest.raises(error, match=words):
            call()

    def test_non_finite_values_are_value_errors(self):
        assert issubclass(NonFiniteError, ValueError)


class Net(dp.NeuralNode):
    def __init__(self, dtype=np.float64):
        super().__init__(seed=0, dtype=dtype)
        self.c1 = self.conv2d(3, 4, (3, 2), "c1", stride=2, padding=1)
        self.c2 = self.conv2d(4, 2, 2, "c2", bias=False)


class TestTheConv2dLayer:
    def test_the_builder_registers_the_documented_names_and_shapes(self):
        net = Net()
        assert {k: v.shape for k, v in net.params.items()} == {
            "weight_c1": (4, 3, 3, 2),
            "bias_c1": (1, 4, 1, 1),
            "weight_c2": (2, 4, 2, 2),
        }
        assert not net.params["bias_c1"].any()
        assert isinstance(net.c1, Conv2d)

    def test_the_layer_computes_the_function_with_its_params(self, rng):
        net = Net()
        x = rng.standard_normal((2, 3, 7, 6))
        p = net.params
        expected = conv2d(x, p["weight_c1"], p["bias_c1"], stride=2, padding=1)
        np.testing.assert_array_equal(net.c1(x).value, expected.value)
        np.testing.assert_array_equal(net.c2(expected).value, conv2d(expected, p["weight_c2"]).value)

    def test_the_layer_gradients_are_named_and_shaped_as_its_params(self, rng):
        net = Net()
        y = net.c2(net.c1(rng.standard_normal((2, 3, 7, 6))).relu())
        grads = y.grad(rng.standard_normal(y.shape))
        assert {k: g.shape for k, g in grads.items()} == {k: v.shape for k, v in net.params.items()}

    def test_weights_are_he_normal_with_fan_in_over_the_kernel(self):
        net = dp.NeuralNode(seed=0)
        net.conv2d(16, 32, 3, "big")
        w = net.params["weight_big"]
        assert abs(w.std() - np.sqrt(2 / (16 * 9))) < 3e-3 and abs(w.mean()) < 3e-3

    def test_glorot_counts_fan_out_over_the_kernel_too(self):
        net = dp.NeuralNode(seed=0)
        net.conv2d(16, 32, 3, "big", init="glorot")
        assert abs(net.params["weight_big"].std() - np.sqrt(2 / (16 * 9 + 32 * 9))) < 3e-3

    def test_a_float32_model_computes_in_float32_whatever_the_input(self, rng):
        net = Net(np.float32)
        y = net.c1(rng.standard_normal((2, 3, 7, 6)))  # float64 images, cast once at the layer
        assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in y.grad(1).values())

    @pytest.mark.parametrize(
        "x, words",
        [
            (np.zeros((2, 126)), r"conv layer 'c1': the input must be images \(N, C, H, W\).*reshape"),
            (np.zeros((2, 2, 7, 6)), "conv layer 'c1': the input: 2 channels.*3 are expected"),
            (np.full((2, 3, 7, 6), np.nan), "conv layer 'c1': the input has NaN or inf"),
            (np.zeros((2, 3, 0, 4)), r"conv layer 'c1': the input: images of no pixels \(shape \(2, 3, 0, 4\)\)"),
        ],
    )
    def test_the_layer_refuses_bad_images(self, x, words):
        with pytest.raises(ValueError, match=words):
            Net().c1(x)

    @pytest.mark.parametrize(
        "options, error, words",
        [
            ({"in_channels": 0}, ValueError, "in_channels"),
            ({"out_channels": 2.0}, TypeError, "out_channels"),
            ({"kernel_size": (3, 0)}, ValueError, "kernel_size"),
            ({"stride": 0}, ValueError, "stride"),
            ({"padding": -1}, ValueError, "padding"),
            ({"init": "nope"}, ValueError, "init"),
            ({"init": "he", "std": 0.1}, ValueError, "std"),
        ],
    )
    def test_a_refused_builder_call_registers_nothing(self, options, error, words):
        net = dp.NeuralNode()
        arguments = {"in_channels": 3, "out_channels": 2, "kernel_size": 3, "name": "c"} | options
        with pytest.raises(error, match=words):
            net.conv2d(**arguments)
        assert net.params == {}

    def test_two_layers_cannot_share_a_name(self):
        net = Net()
        with pytest.raises(ValueError, match="already in use"):
            net.conv2d(3, 2, 2, "c1")


def test_the_functions_are_dps_public_names():
    assert dp.conv2d is dp.nn.conv2d is conv2d
    assert dp.max_pool2d is max_pool2d and dp.avg_pool2d is avg_pool2d
    assert {"conv2d", "max_pool2d", "avg_pool2d"} <= set(dp.__all__)
    assert {"Conv2d", "conv2d", "max_pool2d", "avg_pool2d"} <= set(dp.nn.__all__)


def test_max_pool_over_one_value_is_a_new_array_not_a_view_of_its_input():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = max_pool2d(x, 1)
    assert np.array_equal(y.value, x) and not np.shares_memory(y.value, x)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda x: conv2d(x, np.ones((2, 3, 3, 3)), stride=0), "conv2d: stride must be"),
        (lambda x: conv2d(x, np.ones((2, 3, 3, 3)), padding=-1), "conv2d: padding must be"),
        (lambda x: max_pool2d(x, 0), "max_pool2d: kernel_size must be"),
        (lambda x: avg_pool2d(x, 2, stride=0), "avg_pool2d: stride must be"),
    ],
)
def test_an_option_error_names_the_call_it_came_from(call, words):
    with pytest.raises(ValueError, match=words):
        call(np.zeros((2, 3, 6, 6)))
