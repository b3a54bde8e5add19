# %% [markdown]
# # Batch norm in a convolutional network
#
# *Prerequisites: 01_batch_norm (batch norm from `dp.Node` operations) and 02_backward (its
# backward pass).*
#
# Batch norm's headline results are convolutional networks, and PyTorch's most used form of it
# is `BatchNorm2d`. What changes when batch norm moves from the rows of an (N, F) matrix to the
# feature maps of a convolution is **which values share a mean and a variance**: the axes,
# and nothing else. In this notebook you
#
# 1. write `batch_norm2d` for images by choosing its axes, and meet layer, instance and group
#    norm as other choices;
# 2. train a small CNN on 8 x 8 digits with and without batch norm, and look inside its
#    layers with `dp.train.Monitor`;
# 3. fold a trained batch norm into the convolution before it, as inference engines do.
#
# Images are NCHW (N images, C channels, H x W positions) and convolution weights
# (out, in, kh, kw), as in PyTorch.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import dp

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Which values share a mean?
#
# A convolution applies the same kernel at every position of the image: its output channel
# $c$ is one feature (an edge of one orientation, say) detected everywhere. Its values at
# different positions are samples of the same feature, and Ioffe and Szegedy (2015,
# section 3.2) normalize them as such:
#
# > For convolutional layers, we additionally want the normalization to obey the
# > convolutional property – so that different elements of the same feature map, at
# > different locations, are normalized in the same way. To achieve this, we jointly
# > normalize all the activations in a mini-batch, over all locations. [...] We learn a pair
# > of parameters γ(k) and β(k) per feature map, rather than per activation.
#
# So for images x of shape (N, C, H, W), channel $c$'s mean and (biased) variance are taken over
# the batch **and** every position, the axes (0, 2, 3): $m' = N \cdot H \cdot W$ values each. The
# statistics have shape (1, C, 1, 1), and so do $\gamma$ and $\beta$, one per channel, so that
# they broadcast against NCHW images:
#
# $$\mu_c = \frac{1}{m'} \sum_{n, h, w} x_{nchw}, \qquad
#   \sigma_c^2 = \frac{1}{m'} \sum_{n, h, w} (x_{nchw} - \mu_c)^2, \qquad
#   y_{nchw} = \gamma_c \frac{x_{nchw} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c .$$
#
# `Node.mean(axis=(0, 2, 3))` keeps the reduced axes, as every dp reduction does.
#
# PyTorch keeps `BatchNorm2d`'s $\gamma$ and $\beta$ (its `weight` and `bias`) as (C,) arrays. A
# (C,) array does not line up with the channels of NCHW images: NumPy broadcasts from the last
# axis, and dp takes a 1-D array as a column (C, 1). Reshape it to (1, C, 1, 1).

# %% [markdown]
# ## Task 1: batch norm for images
#
# *Write `batch_norm2d(x, gamma, beta, eps=1e-5)`: training-mode batch norm of a Node of images
# x (N, C, H, W), with gamma and beta given as (C,) arrays, in `dp.Node` operations (so that
# the gradient reaches x).*


# %% tags=["stub"]
def batch_norm2d(x, gamma, beta, eps=1e-5):
    # x: a Node of images (N, C, H, W); gamma, beta: NumPy arrays (C,), one value per channel, as
    # PyTorch keeps BatchNorm2d's weight and bias. Returns a Node (N, C, H, W): each channel
    # normalized with its mean and biased variance, then scaled by its gamma and shifted by its beta.
    # TODO: choose the axes; use Node operations on x (x.mean(axis=...), ** 2, .sqrt())
    raise NotImplementedError("Task 1: write batch_norm2d")


# %% tags=["solution"]
def batch_norm2d(x, gamma, beta, eps=1e-5):
    # x: a Node of images (N, C, H, W); gamma, beta: NumPy arrays (C,), one value per channel, as
    # PyTorch keeps BatchNorm2d's weight and bias. Returns a Node (N, C, H, W): each channel
    # normalized with its mean and biased variance, then scaled by its gamma and shifted by its beta.
    gamma, beta = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)  # per channel, against NCHW
    axes = (0, 2, 3)  # a channel's statistics: over the batch and every position
    mean = x.mean(axis=axes)  # (1, C, 1, 1)
    var = ((x - mean) ** 2).mean(axis=axes)  # biased: divided by N * H * W
    return gamma * (x - mean) / (var + eps).sqrt() + beta


# %% tags=["check"]
# Check for Task 1
rng = np.random.default_rng(0)
# Like conv1's output on the digits: 16 images, 8 channels of 8 x 8, each channel with a scale and an offset of its own.
x = rng.normal(size=(16, 8, 8, 8)) * rng.uniform(0.5, 3, size=(1, 8, 1, 1)) + rng.normal(0, 2, size=(1, 8, 1, 1))
gamma, beta = rng.uniform(0.5, 2, size=8), rng.normal(size=8)
per_channel = {"gamma": gamma.reshape(1, 8, 1, 1), "beta": beta.reshape(1, 8, 1, 1)}

out = batch_norm2d(dp.Node(x, "x"), gamma, beta)
assert isinstance(out, dp.Node), f"batch_norm2d should return a dp.Node, not {type(out).__name__}: use Node operations"
assert out.shape == x.shape, f"batch_norm2d should keep the images' shape {x.shape}, got {out.shape}"

normalized = dp.normalize(x, axes=(0, 2, 3)).value  # per channel, before gamma and beta
unbiased = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), ddof=1, keepdims=True) + 1e-5)
mistakes = [
    (
        dp.normalize(x, axes=0, **per_channel).value,
        "you normalized over axis 0 only: a mean and variance per channel *and position*, as batch norm after a dense "
        "layer; a channel is one feature at every position, so take its statistics over the batch and every position, "
        "axes (0, 2, 3)",
    ),
    (
        dp.instance_norm(x, gamma, beta).value,
        "you normalized over axes (2, 3): that is instance norm, each image's channel by itself; batch norm takes a "
        "channel's statistics over the batch too, axes (0, 2, 3)",
    ),
    (
        dp.layer_norm(x, gamma, beta).value,
        "you normalized over axes (1, 2, 3): that is layer norm, each image by itself; batch norm takes each "
        "channel's statistics over the batch and every position, axes (0, 2, 3)",
    ),
    (
        normalized * gamma[:, None] + beta[:, None],
        "gamma and beta were applied along the height: dp takes a 1-D array as a column (C, 1), which lines up with "
        "the (H, W) axes of NCHW images; reshape them to (1, C, 1, 1), one value per channel",
    ),
    (
        normalized * gamma + beta,
        "gamma and beta were applied along the width: NumPy lines a (C,) or (1, C) array up with the last axis of "
        "NCHW images; reshape them to (1, C, 1, 1), one value per channel",
    ),
    (
        per_channel["gamma"] * unbiased + per_channel["beta"],
        "you used the unbiased variance (divided by N * H * W - 1): batch norm divides by the count, ddof=0",
    ),
]
for wrong, message in mistakes:
    assert not np.allclose(out.value, wrong, atol=1e-8), message
expected = dp.batch_norm2d(x, gamma, beta).value
difference = np.abs(out.value - expected).max()
assert difference < 1e-10, (
    f"your batch_norm2d differs from dp.batch_norm2d by up to {difference:.3g}: each channel's mean and biased "
    "variance over axes (0, 2, 3), then gamma * (x - mean) / sqrt(var + eps) + beta with gamma, beta (1, C, 1, 1)"
)
grads = (rng.normal(size=x.shape) * out).sum().grad(1)
assert "x" in grads, "the gradient does not reach x: use dp.Node operations on x, not NumPy on x.value"
print(f"your batch_norm2d and dp.batch_norm2d differ by at most {difference:.1e}")
print("Task 1 passed")

# %% [markdown]
# **Question 1.** Why not normalize a convolution's output as batch norm does after a dense
# layer, with a mean and variance per channel *and position* (axis 0 only)? Give two
# reasons: what it would do to the convolution's weight sharing, and how many values would
# estimate each mean, against how many per channel, for a batch of N images of H x W.

# %% [markdown] tags=["answer"]
# *Our answer.* A channel is one feature detected everywhere by the same kernel; normalizing
# each position with its own mean, variance, and (then) its own $\gamma$ and $\beta$ would
# give that feature a different scale and shift at every position. The next layer would see
# an edge in the corner scaled differently from the same edge in the middle: the weight
# sharing that makes a convolution a convolution would be undone one layer later. And each
# statistic would come from the N values of one position, while per channel it comes from
# N · H · W values: the batch is, in effect, H · W times larger, and the statistics
# correspondingly less noisy.

# %% [markdown]
# ## One normalization, four choices of axes
#
# Batch norm is one member of a family: every member computes
# $\gamma (x - \text{mean}) / \sqrt{\text{var} + \epsilon} + \beta$, and they differ only in which
# values share one mean and variance (Wu & He, 2018, Figure 2, drawn here by dp):

# %%
dp.plots.normalization_axes()

# %% [markdown]
# `dp.normalize(x, axes, eps, gamma, beta)` is the function itself; `dp.batch_norm2d`,
# `dp.layer_norm`, `dp.instance_norm` and `dp.group_norm` choose the axes. Group norm reshapes
# the images to (N, G, C/G, H, W) and normalizes over the axes (2, 3, 4): each image's group
# of channels, over every position. On the batch of the check above:

# %%
for name, axes, named in (
    ("batch norm", (0, 2, 3), dp.batch_norm2d(x, gamma, beta)),
    ("layer norm", (1, 2, 3), dp.layer_norm(x, gamma, beta)),
    ("instance norm", (2, 3), dp.instance_norm(x, gamma, beta)),
):
    difference = np.abs(dp.normalize(x, axes, **per_channel).value - named.value).max()
    print(f"{name:14} is normalize over axes {str(axes):10} (differing by {difference:.1e})")
groups = 4  # of 2 channels each: (N, C, H, W) seen as (N, G, C/G, H, W)
by_groups = dp.normalize(x.reshape(16, groups, 2, 8, 8), (2, 3, 4)).value.reshape(x.shape)
by_groups = by_groups * per_channel["gamma"] + per_channel["beta"]
difference = np.abs(by_groups - dp.group_norm(x, groups, gamma, beta).value).max()
print(f"{'group norm':14} is normalize over axes (2, 3, 4) of (N, G, C/G, H, W) (differing by {difference:.1e})")

# %% [markdown]
# **Question 2.** Which of the four normalize each image by itself, whatever the other images
# of the batch? For those, what happens to the moving averages, to the difference between
# training and evaluation, and to a batch of one image? Why do Wu and He (2018) propose group
# norm for small batches, and what does group norm keep that instance norm loses?

# %% [markdown] tags=["answer"]
# *Our answer.* Layer, instance and group norm take every statistic within one image (axis 0
# is never among their axes), so an image's output does not depend on the rest of the batch.
# They need no moving averages: training and evaluation compute the same function, and a batch
# of one image works (instance norm needs H · W ≥ 2). Only batch norm's statistics come from the
# batch, so only batch norm needs running statistics, a train/eval switch, and a minimum batch.
#
# Batch norm's statistics get noisy as the batch shrinks (a few images per GPU, in detection
# or video models), and its error grows (Wu & He, 2018, Figure 1); group norm's do not depend on the batch size at all
# (07_small_batches measures this). Instance norm normalizes each channel by itself and so
# removes each channel's own mean and contrast in every image, information a classifier may
# need; group norm normalizes a group of channels together, keeping the relative scale of
# the channels within a group (with one group it is layer norm, with C groups instance norm).

# %% [markdown]
# ## A CNN with and without batch norm, seen from inside
#
# `dp.CNN` is a LeNet-style network: blocks of a 3 x 3 convolution, batch norm per channel
# (`batch_norm2d` inside the model, with moving averages), ReLU and a 2 x 2 max pool, then linear
# layers. Below, two of them on scikit-learn's 8 x 8 digits: convolutions of 8 and 16 channels,
# a hidden linear layer of 32, the same seed, the same 300 steps of SGD, one with batch norm
# after every hidden layer and one without.
#
# `dp.train.Monitor` watches a fixed set of test images while `fit` trains, and records for
# each hidden layer its **pre-activations** (the input of its ReLU: batch norm's output with
# batch norm, the layer's own without), their mean and spread, and the fraction of units that
# are exactly 0 on every watched image (dead ReLU units, which no gradient reaches). It changes
# nothing of the run. (docs/monitor.md explains every measure; `monitor.table()` prints them all.)

# %%
split = dp.data.digits(test_size=0.2, seed=0)  # scikit-learn's digits: 8 x 8 pixels in [0, 1], as rows of 64
watched = split.x_test[:200]  # the monitor's fixed images


def train(batch_norm):
    model = dp.CNN(image=(1, 8, 8), channels=(8, 16), hidden=(32,), batch_norm=batch_norm, seed=0)
    monitor = dp.train.Monitor(watched, every=50)
    optimizer = dp.optim.SGD(lr=0.1)
    dp.train.fit(
        model,
        split.x_train,
        split.y_train,
        optimizer,
        steps=300,
        batch_size=32,
        reduction="mean",
        monitor=monitor,
        progress=False,
    )
    return model, monitor


runs = {"without": train(batch_norm=False), "with": train(batch_norm=True)}
for label, (model, _) in runs.items():
    accuracy = dp.train.accuracy(model, split.x_test, split.y_test)
    print(f"{label} batch norm: test accuracy {100 * accuracy:.1f} %")

# %%
steps = runs["with"][1].steps
print("The pre-activations' standard deviation at each recorded step, and the dead units at the last one")
print(f"{'batch norm':11} {'layer':7}", *(f"{step:5d}" for step in steps), "| dead %")
for label, (_, monitor) in runs.items():
    spreads, dead = monitor.series("std"), monitor.series("dead")
    for layer in monitor.inputs:  # the hidden layers: conv1, conv2, fc1
        print(f"{label:11} {layer:7}", *(f"{s:5.2f}" for s in spreads[layer]), f"| {100 * dead[layer][-1]:5.1f}")

figure, (spread_axes, dead_axes) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for (label, (_, monitor)), style in zip(runs.items(), ("--", "-")):
    for color, layer in zip(("tab:blue", "tab:orange", "tab:green"), monitor.inputs):
        spread_axes.plot(steps, monitor.series("std")[layer], style, color=color, marker=".", label=f"{layer}, {label}")
        dead_axes.plot(steps, 100 * monitor.series("dead")[layer], style, color=color, marker=".")
spread_axes.set(xlabel="SGD step", ylabel="standard deviation", title="Pre-activations' spread, per layer")
dead_axes.set(xlabel="SGD step", ylabel="% of the layer's units", title="Dead ReLU units (0 on every watched image)")
spread_axes.legend(title="layer, batch norm", fontsize="small", ncols=2)
figure.suptitle("A CNN on 8 x 8 digits with (solid) and without (dashed) batch norm, seen by dp.train.Monitor")
plt.show()

# %% [markdown]
# **Question 3.** Read the table and the figure. What does batch norm do to each layer's
# pre-activation spread, before and during training? Without it, what sets a layer's spread,
# and why does it differ from layer to layer and move as the network trains? What does the
# dead-units column add?

# %% [markdown] tags=["answer"]
# *Our answer.* With batch norm, each layer's pre-activations are normalized per channel (per
# unit for fc1) on every batch, so their spread is $|\gamma|$: 1 at the start, for every layer,
# and it stays near 1 as training goes (the convolutions' rows barely move; fc1's drifts a
# little as its $\gamma$ learns). Batch norm decides the spread, through two parameters per
# channel, whatever the weights below do.
#
# Without it, a layer's spread is whatever its weights and its input make it: the He-normal
# start keeps it of order 1, but the input pixels are not standardized, each ReLU passes on
# only the positive half, and every SGD step changes the weights, so the spreads differ from
# layer to layer and move during training (the rows "without" of the table), each layer
# seeing its input's statistics shift under it: what Ioffe and Szegedy called internal
# covariate shift (04_covariate_shift asks whether that is really why batch norm helps).
#
# The dead-units column shows one consequence: without batch norm, some units of fc1 are 0 on
# every watched image, so they pass no gradient and never learn again. With batch norm each
# unit's pre-activations are centered on every batch, spread $|\gamma|$ around $\beta$: a unit is 0
# on every image only if its $\beta$ has moved far below 0 against its $\gamma$, and the table
# shows none that has.

# %% [markdown]
# ## Folding batch norm into the convolution
#
# After training, batch norm runs in **eval mode**: it normalizes with its moving averages,
# fixed numbers. For output channel $o$ it is then an affine map,
#
# $$y_o = \gamma_o \frac{z_o - \bar\mu_o}{\sqrt{\bar\sigma_o^2 + \epsilon}} + \beta_o
#   = s_o z_o + (\beta_o - s_o \bar\mu_o),
#   \qquad s_o = \frac{\gamma_o}{\sqrt{\bar\sigma_o^2 + \epsilon}},$$
#
# and so is a convolution of each output channel, $z_o = w_o \star x + b_o$. Their composition is
# one convolution:
#
# $$y_o = (s_o w_o) \star x + (b_o - \bar\mu_o) s_o + \beta_o ,$$
#
# with the kernels $w'_o = s_o w_o$ (every weight of filter $o$ scaled by $s_o$) and the bias
# $b'_o = (b_o - \bar\mu_o) s_o + \beta_o$ ($b_o = 0$ for a convolution without a bias, as one before
# batch norm is). Inference engines fold batch norm this way, and the folded network does one
# operation fewer per block. In dp's layout $\gamma$, $\beta$, $\bar\mu$, $\bar\sigma^2$ and the
# bias are (1, O, 1, 1), and a convolution's weight is (O, in, kh, kw): filter $o$ is `weight[o]`,
# along axis 0.

# %% [markdown]
# ## Task 2: fold a trained batch norm
#
# *Write `fold(weight, gamma, beta, mean, var, eps=1e-5, bias=0.0)`: the convolution (weight
# (O, in, kh, kw), bias (1, O, 1, 1) or 0) with the eval-mode batch norm after it folded in
# (gamma, beta and the moving averages mean and var, each (1, O, 1, 1)). Return
# `(folded_weight, folded_bias)`, NumPy arrays of shapes (O, in, kh, kw) and (1, O, 1, 1).*


# %% tags=["stub"]
def fold(weight, gamma, beta, mean, var, eps=1e-5, bias=0.0):
    # weight (O, in, kh, kw), bias (1, O, 1, 1) or 0: the convolution; gamma, beta, mean, var (1, O, 1, 1): the
    # eval-mode batch norm after it. Returns (folded_weight (O, in, kh, kw), folded_bias (1, O, 1, 1)).
    # TODO: the scale s per output channel, then w' = s w (filter by filter) and b' = (b - mean) s + beta
    raise NotImplementedError("Task 2: write fold")


# %% tags=["solution"]
def fold(weight, gamma, beta, mean, var, eps=1e-5, bias=0.0):
    # weight (O, in, kh, kw), bias (1, O, 1, 1) or 0: the convolution; gamma, beta, mean, var (1, O, 1, 1): the
    # eval-mode batch norm after it. Returns (folded_weight (O, in, kh, kw), folded_bias (1, O, 1, 1)).
    scale = gamma / np.sqrt(var + eps)  # (1, O, 1, 1): one factor per output channel
    folded_weight = weight * scale.reshape(-1, 1, 1, 1)  # filter o times scale_o: axis 0 of (O, in, kh, kw)
    folded_bias = (bias - mean) * scale + beta
    return folded_weight, folded_bias


# %% tags=["check"]
# Check for Task 2
model = runs["with"][0]  # the CNN trained with batch norm above: conv1 (no bias) then bn1, and so on
params = model.params
weight, gamma, beta = params["weight_conv1"], params["gamma_bn1"], params["beta_bn1"]
mean, var = params["avg_mean_bn1"], params["avg_variance_bn1"]  # the moving averages: eval mode's statistics
folded_weight, folded_bias = (np.asarray(a) for a in fold(weight, gamma, beta, mean, var))
channels = weight.shape[0]

assert folded_weight.shape == weight.shape, (
    f"the folded weight has shape {folded_weight.shape}, the convolution's is {weight.shape}: scale_o multiplies "
    f"every weight of filter o, along axis 0 of (out, in, kh, kw); reshape the per-channel scale (1, {channels}, 1, 1) "
    f"to ({channels}, 1, 1, 1)"
)
assert folded_bias.shape == gamma.shape, f"the folded bias should have shape {gamma.shape}, got {folded_bias.shape}"

reference = dp.fold_batch_norm(model).params  # dp's fold of the whole network: conv1's entries among them
for wrong, message in (
    (weight * (gamma / np.sqrt(var)).reshape(-1, 1, 1, 1), "add eps to the variance before the square root"),
    (weight * (gamma / (var + 1e-5)).reshape(-1, 1, 1, 1), "divide by the standard deviation sqrt(var + eps)"),
):
    assert not np.allclose(folded_weight, wrong, rtol=1e-10, atol=0), f"the folded weight is off: {message}"
assert np.allclose(folded_weight, reference["weight_conv1"], rtol=1e-10, atol=1e-14), (
    "the folded weight differs from dp.fold_batch_norm's: scale_o = gamma_o / sqrt(var_o + eps) times filter o"
)
for wrong, message in (
    (beta, "the bias must take the moving mean out: (b - mean) * scale + beta"),
    (beta - mean, "scale the moving mean too: (b - mean) * scale + beta"),
    (-mean / np.sqrt(var + 1e-5) + beta, "scale by gamma / sqrt(var + eps), gamma included: (b - mean) * scale + beta"),
):
    assert not np.allclose(folded_bias, wrong, rtol=1e-10, atol=0), f"the folded bias is off: {message}"
assert np.allclose(folded_bias, reference["bias_conv1"], rtol=1e-10, atol=1e-14), (
    "the folded bias differs from dp.fold_batch_norm's: (b - mean) * scale + beta, with b = 0 here"
)

# The test that matters: one convolution now computes what the convolution and eval-mode batch norm did.
images = watched.reshape(-1, 1, 8, 8)
unfolded = model.record(images, ["bn1"])["bn1"]  # conv1 then bn1 in eval mode (record changes nothing)
folded = dp.conv2d(images, folded_weight, folded_bias, padding=1).value
difference = np.abs(folded - unfolded).max()
print(f"the folded convolution and conv1 -> bn1 (eval mode) differ by at most {difference:.1e}")
assert difference < 1e-10, f"the folded convolution differs from conv1 -> bn1 by {difference:.3g}"
print("Task 2 passed")

# %% [markdown]
# `dp.fold_batch_norm` folds every batch norm of a `dp.CNN` (or `dp.MLP`) this way, into a copy
# without batch-norm layers. The folded network predicts what the trained one predicts in eval
# mode:

# %%
folded_model = dp.fold_batch_norm(model)
gap = np.abs(folded_model.predict_proba(split.x_test) - model.predict_proba(split.x_test)).max()
print(f"largest difference between the two networks' probabilities on the test images: {gap:.1e}")
for name, network in (("trained", model), ("folded", folded_model)):
    accuracy = dp.train.accuracy(network, split.x_test, split.y_test)
    kinds = sorted({key.rsplit("_", 1)[0] for key in network.params})  # the kinds of entries in params
    print(f"{name:8} test accuracy {100 * accuracy:.1f} %, params: {', '.join(kinds)}")

# %% [markdown]
# **Question 4.** Why can batch norm be folded only for evaluation, not during training?
# And what if a network put batch norm *after* the ReLU, as some do: could it still be folded
# into the convolution before it?

# %% [markdown] tags=["answer"]
# *Our answer.* The fold needs batch norm to be a fixed affine map of each channel. In eval
# mode it is: the moving averages, $\gamma$ and $\beta$ are numbers. In training, the mean and
# variance are the current batch's, different at every step and functions of every image in
# the batch: the map changes with the batch, and the gradient must flow through the
# statistics (02_backward), which a folded weight would hide. So one trains with batch norm
# and folds the trained network for inference.
#
# With the ReLU between them, convolution, ReLU, batch norm: the ReLU is not affine, so
# $\mathrm{BN}(\mathrm{ReLU}(w \star x))$ is not a convolution of $x$, and batch norm cannot be
# folded into the convolution before it. Being affine, it could be folded into the layer
# *after* it instead (the next convolution or linear layer), except where that layer pads its
# input with zeros: the folded bias would count the shift $\beta - s \bar\mu$ at the padded
# positions too, where the network it replaces sees zeros.
