# %% [markdown]
# # Small batches: batch norm, batch renorm and group norm
#
# *Prerequisites: 05_running_statistics (the moving averages, and how a row's prediction in
# training mode depends on its batch) and 06_cnn (batch norm in a convolutional network, per
# channel over the batch and every position).*
#
# Batch norm normalizes with statistics of the batch, so its quality depends on the batch. Wu
# and He (2018, "Group Normalization", Figure 1) trained ResNet-50 on ImageNet with fewer and
# fewer images per device: with batch norm the error rose steeply from 32 images to 2, while
# with group norm, which normalizes each image over groups of its own channels and never looks
# at the batch, it stayed flat. Ioffe (2017, "Batch Renormalization") kept batch norm but
# corrected each batch's statistics toward the moving averages, and recovered much of the loss.
#
# In this notebook you:
#
# 1. measure how noisy batch statistics get as the batch shrinks;
# 2. write batch renormalization's forward pass and check it against dp's;
# 3. build a network with each normalization and train it at batches of 2, 8 and 32;
#
# and then see the same experiment on a small CNN, where the result is not Wu and He's. Each
# task is followed by a check; questions ask you to interpret what you see.

# %%
import matplotlib.pyplot as plt
import numpy as np

import dp
from dp.studies.wu2018 import NormalizedCNN

np.set_printoptions(precision=4, suppress=True)
digits = dp.data.digits(test_size=0.2, seed=0)  # scikit-learn's 8x8 digits: 64 pixels in [0, 1], 10 classes
print("training rows", digits.x_train.shape, " test rows", digits.x_test.shape)

# %% [markdown]
# ## 1. How noisy are batch statistics?
#
# A batch of $N$ rows estimates each feature's mean and variance from $N$ values. For
# independent rows with standard deviation $\sigma$, the batch mean's standard deviation is
# $\sigma/\sqrt N$; the batch variance (biased, as batch norm computes it) of normal data has
# the standard deviation $\sigma^2\sqrt{2(N-1)}/N$, about $\sigma^2\sqrt{2/N}$ for large $N$.
# The mean's spread shrinks exactly as $1/\sqrt N$, the variance's nearly so: a batch of 2
# estimates the mean four times worse than a batch of 32 ($\sqrt{32/2}$), the variance about
# three times worse ($\sqrt 2/2$ against $\sqrt{62}/32$: at $N = 2$ the exact formula is below
# $\sigma^2\sqrt{2/N}$). The check below prints both formulas' values.
#
# ### Task 1: the spread of batch statistics
#
# *Write `spread_of_batch_statistics(values, batch_size, draws, seed)`: draw `draws` batches of
# `batch_size` distinct rows of `values` (n, F) at random and return, per feature, the standard
# deviation over the draws of the batch mean and of the batch variance: two arrays of shape (F,).*


# %% tags=["stub"]
def spread_of_batch_statistics(values, batch_size, draws=400, seed=0):
    # values: (n, F). With rng = np.random.default_rng(seed), draw `draws` batches of batch_size distinct rows
    # (rng.choice(n, batch_size, replace=False)); per feature, each batch's mean and variance as batch norm computes
    # them. Returns (std of the batch means over the draws, std of the batch variances over the draws), each (F,).
    # TODO
    raise NotImplementedError("Task 1: write spread_of_batch_statistics")


# %% tags=["solution"]
def spread_of_batch_statistics(values, batch_size, draws=400, seed=0):
    # values: (n, F). With rng = np.random.default_rng(seed), draw `draws` batches of batch_size distinct rows
    # (rng.choice(n, batch_size, replace=False)); per feature, each batch's mean and variance as batch norm computes
    # them. Returns (std of the batch means over the draws, std of the batch variances over the draws), each (F,).
    rng = np.random.default_rng(seed)
    batches = np.stack([values[rng.choice(len(values), batch_size, replace=False)] for _ in range(draws)])
    return batches.mean(axis=1).std(axis=0), batches.var(axis=1).std(axis=0)  # var: biased, divided by N


# %% tags=["check"]
# Check for Task 1
normal = np.random.default_rng(1).normal(5.0, 2.0, size=(5000, 3))  # three features, mean 5, standard deviation 2
DRAWS = 5000
# What a correct implementation returns: for N rows drawn from this population, the batch mean's standard deviation
# is sqrt(m2 / N) and the biased batch variance's sqrt(((N - 1)^2 m4 - (N - 1) (N - 3) m2^2) / N^3), from the
# population's own moments m2, m4 (for normal data m4 = 3 m2^2, and these are sigma / sqrt(N) and
# sigma^2 sqrt(2 (N - 1)) / N). Your estimate, the spread of DRAWS random batches, has its own sampling error: a
# relative standard error sqrt((kurtosis - 1) / (4 DRAWS)), the kurtosis of the batch mean of normal data being 3 and
# that of its batch variance 3 + 12 / (N - 1). The check allows 7 standard errors: a correct implementation, however
# it draws its batches, fails it less than once in a million runs.
m2, m4 = normal.var(axis=0), ((normal - normal.mean(axis=0)) ** 4).mean(axis=0)
for n in (2, 8, 32):
    spread = spread_of_batch_statistics(normal, n, draws=DRAWS, seed=2)
    assert isinstance(spread, tuple) and len(spread) == 2, "return two arrays: (std of the means, std of the variances)"
    of_means, of_variances = (np.asarray(s) for s in spread)
    assert of_means.shape == of_variances.shape == (3,), (
        f"return one value per feature, shape (3,) here, not {of_means.shape} and {of_variances.shape}: the standard "
        "deviation over the draws (the axis of the draws), of each feature's batch statistic"
    )
    expected_means = np.sqrt(m2 / n)
    expected_variances = np.sqrt(((n - 1) ** 2 * m4 - (n - 1) * (n - 3) * m2**2) / n**3)
    rtol_means, rtol_variances = 7 * np.sqrt(2 / (4 * DRAWS)), 7 * np.sqrt((2 + 12 / (n - 1)) / (4 * DRAWS))
    print(
        f"batches of {n:2}: std of the batch means {of_means.round(3)} (sigma / sqrt(N) = {2.0 / np.sqrt(n):.3f}),",
        f"of the batch variances {of_variances.round(3)} (sigma^2 sqrt(2 (N - 1)) / N = "
        f"{4.0 * np.sqrt(2 * (n - 1)) / n:.3f}; sigma^2 sqrt(2 / N) = {4.0 * np.sqrt(2 / n):.3f})",
    )
    assert np.allclose(of_means, expected_means, rtol=rtol_means, atol=0), (
        f"at batches of {n} the batch means should spread as sigma / sqrt(N), {expected_means.round(3)} for this "
        f"population, not {of_means.round(3)}: draw batches of batch_size distinct rows and take each one's mean over "
        "its rows (axis 0 of the batch)"
    )
    unbiased = np.allclose(of_variances, expected_variances * n / (n - 1), rtol=rtol_variances, atol=0)
    assert not (n == 2 and unbiased), (
        "the batch variances spread N / (N - 1) times too much: batch norm normalizes with the biased variance, "
        "divided by N (np.var's default, ddof=0), not the unbiased one"
    )
    assert np.allclose(of_variances, expected_variances, rtol=rtol_variances, atol=0), (
        f"at batches of {n} the (biased) batch variances should spread as about sigma^2 sqrt(2 (N - 1)) / N, "
        f"{expected_variances.round(3)} for this population, not {of_variances.round(3)}: each batch's variance over "
        "its rows as batch norm computes it (np.var, divided by N), then its standard deviation over the draws"
    )
print("Task 1 passed")

# %% [markdown]
# ### In a network: a feature, and a channel
#
# The same measure inside two untrained networks on the digits: (a) the 32 features of the first
# linear layer of `dp.MLP((64, 32, 32, 10))`, which batch norm normalizes over the $N$ rows of a
# batch; (b) the 8 channels of the first convolution of `dp.CNN(image=(1, 8, 8))`, which batch
# norm normalizes over the $N$ images *and* their $8 \times 8$ positions, $64N$ values. Both are
# relative to the statistic over all the training rows (medians over features or channels).
# `model.record` gives each layer's output.

# %%
sizes = [2, 4, 8, 16, 32, 64, 128]
rows = dp.MLP((64, 32, 32, 10), seed=0).record(digits.x_train, ["l1"], train=True)["l1"]  # (1438, 32)
images = dp.CNN(image=(1, 8, 8), seed=0).record(digits.x_train, ["conv1"], train=True)["conv1"]  # (1438, 8, 8, 8)
per_image = images.mean(axis=(2, 3))  # a batch's channel mean is the mean of its images' channel means
feature_means, feature_variances, channel_means = [], [], []
for n in sizes:
    of_means, of_variances = spread_of_batch_statistics(rows, n, draws=300)
    feature_means.append(np.median(of_means / rows.std(axis=0)))
    feature_variances.append(np.median(of_variances / rows.var(axis=0)))
    of_channel_means = spread_of_batch_statistics(per_image, n, draws=300)[0]
    channel_means.append(np.median(of_channel_means / images.std(axis=(0, 2, 3))))

n = np.array(sizes)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
left.loglog(n, feature_means, "o-", label="batch mean (std / the feature's std)")
left.loglog(n, feature_variances, "s-", label="batch variance (std / the feature's variance)")
left.loglog(n, 1 / np.sqrt(n), "k--", lw=0.8, label="1 / sqrt(N)")
left.loglog(n, np.sqrt(2 * (n - 1)) / n, "k:", lw=0.8, label="sqrt(2 (N - 1)) / N (normal data)")
left.set(title="(a) MLP: a feature, over N rows", xlabel="batch size N", ylabel="spread of the batch statistic")
right.loglog(n, channel_means, "o-", label="batch mean (std / the channel's std)")
right.loglog(n, 1 / np.sqrt(n), "k--", lw=0.8, label="1 / sqrt(N): as noisy as N independent values")
right.loglog(n, 1 / np.sqrt(64 * n), "k-.", lw=0.8, label="1 / sqrt(64 N): as 64 N independent values")
right.set(title="(b) CNN: a channel, over N images x 8 x 8 positions", xlabel="batch size N")
for ax in (left, right):
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.legend(fontsize=8)
fig.tight_layout()

# %% tags=["solutions"]
# The text below describes the figure above; this cell checks that it still does.
assert all(abs(m - 1 / np.sqrt(b)) < 0.15 / np.sqrt(b) for m, b in zip(feature_means, sizes)), "(a) off its line"
assert all(m < 1 / np.sqrt(64 * b) for m, b in zip(channel_means, sizes)), "(b) no longer below 1 / sqrt(64 N)"
assert channel_means[0] < feature_means[-1], "(b) at a batch of 2 is no longer steadier than (a) at the largest"
# The text of Section 1: a batch of 2 against one of 32, four times worse for the mean, about three for the variance.
assert np.sqrt(32 / 2) == 4 and round((np.sqrt(2) / 2) / (np.sqrt(62) / 32)) == 3
# Question 3's answer counts the values per channel at a batch of 2: 2 x 8 x 8 in block 1, 2 x 4 x 4 in block 2.
blocks = dp.CNN(image=(1, 8, 8), seed=0).record(digits.x_train[:2], ["conv1", "conv2"], train=True)
assert [block[:, 0].size for block in blocks.values()] == [128, 32], "the values per channel at a batch of 2"

# %% [markdown]
# In (a) the measured spreads follow the lines: a feature's statistics over $N$ rows are as noisy
# as $N$ independent values make them. In (b) a channel's batch mean is less noisy still than
# $64N$ independent values would make it. Its values are not a sample of one distribution: much
# of a channel's spread is between positions (the strokes of a digit against the background, at
# about the same places in every image), and averaging over the positions removes that part;
# what is left, the difference between the images' channel means, is small. Relative to its
# spread, a channel's batch mean at a batch of 2 is steadier than a feature's at the largest
# batch in (a). Keep that in mind for Section 3.
#
# At the extreme, $N = 2$, batch norm over rows leaves almost nothing: each feature's two values
# become $-1$ and $+1$ (up to $\epsilon$) whatever they were.

# %%
two_rows = np.array([[0.3, 12.0, -5.0], [0.1, 40.0, -4.9]])
print("two rows:\n", two_rows, "\nafter batch norm:\n", dp.batch_norm(two_rows, 1.0, 0.0).value.round(4))

# %% [markdown]
# **Question 1.** What information about a row does batch norm pass on to the next layer at a
# batch of 2, and what does it throw away? Why is eval mode then a different function from the
# one the network trained with?

# %% [markdown] tags=["answer"]
# For each feature only the sign of the row's difference from the other row survives: $-1$ for
# the smaller value, $+1$ for the larger (then $\gamma$ and $\beta$), whatever the size of the
# difference or the values themselves. The network trains on these binary features. In eval
# mode each feature is normalized by the moving averages instead, a continuous value around 0:
# inputs the next layer never saw in training (05 measured the disagreement between the two
# modes as the batch shrinks). Nor is its spread 1, as in training: dp averages the *biased*
# batch variance, on average $(N-1)/N$ of the feature's variance, half of it at $N = 2$ (05), so
# in eval mode each feature has a standard deviation of about $\sqrt 2$ (about 1 with
# `unbiased_average=True`, which averages the batch variances times $N/(N-1)$). The cell below
# measures it.

# %% tags=["solutions"]
# The answer above, measured: the moving averages of an MLP's first batch norm, recomputed over the training rows
# in batches of 2 (dp.train.recalibrate, with the weights as they are), against the features' own variance.
for unbiased_average in (False, True):
    model = dp.MLP((64, 32, 32, 10), unbiased_average=unbiased_average, seed=0)
    dp.train.recalibrate(model, digits.x_train, batch_size=2, seed=1)
    z = model.record(digits.x_train, ["l1"], train=False)["l1"]  # bn1's input
    averaged = model.params["avg_variance_bn1"] / z.var(axis=0)
    in_eval_mode = ((z - model.params["avg_mean_bn1"]) / np.sqrt(model.params["avg_variance_bn1"] + 1e-5)).std(axis=0)
    print(
        f"unbiased_average={unbiased_average!s:5}: averaged variance / the feature's variance, median over the "
        f"features {np.median(averaged):.2f}; the feature's spread in eval mode {np.median(in_eval_mode):.2f}"
    )
    assert abs(np.median(in_eval_mode) - (1.0 if unbiased_average else np.sqrt(2))) < 0.1, "no longer sqrt(2) and 1"

# %% [markdown]
# ## 2. Batch renormalization
#
# Ioffe (2017) keeps batch norm's normalization by the batch statistics, but corrects it toward
# the moving averages $\bar\mu, \bar\sigma^2$ with two per-feature numbers:
#
# $$\sigma_B = \sqrt{\tfrac1N \textstyle\sum_i (x_i - \mu_B)^2 + \epsilon}, \qquad
#   \sigma = \sqrt{\bar\sigma^2 + \epsilon},$$
#
# $$r = \mathrm{clip}\Big(\frac{\sigma_B}{\sigma}, \frac{1}{r_{\max}}, r_{\max}\Big), \qquad
#   d = \mathrm{clip}\Big(\frac{\mu_B - \bar\mu}{\sigma}, -d_{\max}, d_{\max}\Big),$$
#
# $$y = \gamma \Big(\frac{x - \mu_B}{\sigma_B}\, r + d\Big) + \beta .$$
#
# Unclipped, $\frac{x - \mu_B}{\sigma_B} r + d = \frac{x - \bar\mu}{\sigma}$: training computes
# exactly what eval mode will. The clipping keeps the correction bounded while the averages are
# still poor; with $r_{\max} = 1$ and $d_{\max} = 0$ it is plain batch norm. And $r$ and $d$ are
# **constants in the backward pass** (the paper's stop-gradient): the gradient flows as in
# batch norm, through $\mu_B$ and $\sigma_B$, times $r$. dp's layer has it:
# `self.batch_norm(width, name, renorm=True, rmax=3, dmax=5)`, with $\sigma$ taken from the
# stored variance as eval mode takes it (the paper keeps a moving average of $\sigma_B$ instead).
#
# ### Task 2: batch renorm's forward pass
#
# *Write `batch_renorm(x, gamma, beta, avg_mean, avg_variance, rmax, dmax)` for a training batch:
# x a `dp.Node` (N, F), gamma and beta Nodes (1, F), the averages NumPy arrays (1, F); return y, a
# Node (N, F).* Compute $r$ and $d$ with NumPy from `x.value`, so that they are constants; the
# rest with Node operations (`x.mean(axis=0)`, `x.var(axis=0)`, `.sqrt()`), so that the gradient
# flows through $\mu_B$ and $\sigma_B$.


# %% tags=["stub"]
def batch_renorm(x, gamma, beta, avg_mean, avg_variance, rmax, dmax, eps=1e-5):
    # Training-mode batch renormalization of the Node x (N, F): r and d as NumPy arrays (1, F) from x.value and the
    # averages, clipped; y = gamma * ((x - mu_B) / sigma_B * r + d) + beta as Node operations. Returns y.
    # TODO
    raise NotImplementedError("Task 2: write batch_renorm")


# %% tags=["solution"]
def batch_renorm(x, gamma, beta, avg_mean, avg_variance, rmax, dmax, eps=1e-5):
    # Training-mode batch renormalization of the Node x (N, F): r and d as NumPy arrays (1, F) from x.value and the
    # averages, clipped; y = gamma * ((x - mu_B) / sigma_B * r + d) + beta as Node operations. Returns y.
    sigma = np.sqrt(avg_variance + eps)
    batch_mean, batch_sigma = x.value.mean(axis=0, keepdims=True), np.sqrt(x.value.var(axis=0, keepdims=True) + eps)
    r = np.clip(batch_sigma / sigma, 1 / rmax, rmax)  # NumPy: constants in the backward pass
    d = np.clip((batch_mean - avg_mean) / sigma, -dmax, dmax)
    xhat = (x - x.mean(axis=0)) / (x.var(axis=0) + eps).sqrt()  # Nodes: the gradient flows through mu_B and sigma_B
    return gamma * (xhat * r + d) + beta


# %% tags=["check"]
# Check for Task 2
class Renormalized(dp.NeuralNode):  # dp's batch renorm layer over F features, its averages set by hand
    def __init__(self, avg_mean, avg_variance, gamma, beta, rmax, dmax):
        super().__init__(seed=0)
        self.bn = self.batch_norm(avg_mean.shape[1], "bn", renorm=True, rmax=rmax, dmax=dmax)
        self.set_param(
            {
                "avg_mean_bn": avg_mean,
                "avg_variance_bn": avg_variance,
                "batches_bn": np.ones((1, 1)),
                "gamma_bn": gamma,
                "beta_bn": beta,
            }
        )


def output_and_gradients(layer, x):  # y and the gradients of L = sum(u * y) for x, gamma and beta
    y = layer(dp.Node(x, "x"))
    assert isinstance(y, dp.Node), f"batch_renorm should return a dp.Node, not {type(y).__name__}"
    assert y.shape == x.shape, f"batch_renorm should return the batch's shape {x.shape}, not {y.shape}"
    return y.value, (u * y).sum().grad(1)


rng = np.random.default_rng(3)
x = rng.normal(size=(16, 6))  # a batch of 16 rows, 6 features of mean 0 and variance 1
avg_mean = np.array([[0.0, 0.0, -3.0, 3.0, 0.2, -0.1]])  # features 2 and 3: the batch mean far from the average
avg_variance = np.array([[0.05, 20.0, 1.0, 1.0, 1.3, 0.8]])  # 0: sigma_B / sigma large; 1: small; 4, 5: unclipped
gamma, beta, u = rng.uniform(0.5, 2, size=(1, 6)), rng.normal(size=(1, 6)), rng.normal(size=(16, 6))
rmax, dmax = 2.0, 1.0
dp_layer = Renormalized(avg_mean, avg_variance, gamma, beta, rmax, dmax)
y_dp, grads_dp = output_and_gradients(lambda node: dp_layer.bn(node, train=True), x)


def yours(node, rmax=rmax, dmax=dmax):
    return batch_renorm(node, dp.Node(gamma, "gamma_bn"), dp.Node(beta, "beta_bn"), avg_mean, avg_variance, rmax, dmax)


y, grads = output_and_gradients(yours, x)
sigma = np.sqrt(avg_variance + 1e-5)
mu_b, sigma_b = x.mean(axis=0, keepdims=True), np.sqrt(x.var(axis=0, keepdims=True) + 1e-5)


def renormalized(r, d):  # the layer's output for these r and d
    return gamma * ((x - mu_b) / sigma_b * r + d) + beta


r, d = sigma_b / sigma, (mu_b - avg_mean) / sigma  # unclipped
r_clipped, d_clipped = np.clip(r, 1 / rmax, rmax), np.clip(d, -dmax, dmax)
for wrong, what in (
    (renormalized(r, d), "r and d"),
    (renormalized(r, d_clipped), "r"),
    (renormalized(r_clipped, d), "d"),
):
    assert not np.allclose(y, wrong), (
        f"{what} not clipped: clip r to [1 / rmax, rmax] and d to [-dmax, dmax] (np.clip), so that the correction "
        "stays bounded while the moving averages are poor"
    )
assert not np.allclose(y, renormalized(np.clip(1 / r, 1 / rmax, rmax), d_clipped)), (
    "r is inverted: r = sigma_B / sigma, the batch's standard deviation over the moving one (so that "
    "(x - mu_B) / sigma_B * r = (x - mu_B) / sigma), not sigma / sigma_B"
)
assert np.allclose(y, y_dp), (
    "your output differs from dp's renorm layer: sigma_B = sqrt(biased batch variance + eps), sigma = "
    "sqrt(avg_variance + eps), r = clip(sigma_B / sigma, 1 / rmax, rmax), d = clip((mu_B - avg_mean) / sigma, "
    "-dmax, dmax), y = gamma * ((x - mu_B) / sigma_B * r + d) + beta"
)
for key in ("x", "gamma_bn", "beta_bn"):
    assert key in grads, f"no gradient reaches {key}: compute (x - mu_B) / sigma_B with Node operations on x"
    assert np.allclose(grads[key], grads_dp[key]), (
        f"the output is right but the gradient of {key} differs from dp's: in the backward pass r and d are "
        "constants (NumPy arrays computed from x.value) while mu_B and sigma_B are not: normalize x with Node "
        "operations (x.mean(axis=0), x.var(axis=0), .sqrt()) so that the gradient flows through them"
    )
print(
    "largest difference from dp's renorm layer: output",
    np.abs(y - y_dp).max(),
    " gradient of x",
    np.abs(grads["x"] - grads_dp["x"]).max(),
)

y_bn, grads_bn = output_and_gradients(
    lambda node: dp.batch_norm(node, dp.Node(gamma, "gamma_bn"), dp.Node(beta, "beta_bn")), x
)
y1, grads1 = output_and_gradients(lambda node: yours(node, rmax=1.0, dmax=0.0), x)
assert np.allclose(y1, y_bn) and all(np.allclose(grads1[k], grads_bn[k]) for k in grads_bn), (
    "with rmax = 1 and dmax = 0 (r = 1, d = 0) batch_renorm should be batch norm, dp.batch_norm, output and gradients"
)
print("with rmax = 1, dmax = 0: batch norm, to", np.abs(y1 - y_bn).max())
print("Task 2 passed")

# %% [markdown]
# How often does the clipping bind? For normal data whose moving averages are exact, the
# fraction of features whose $r$ (with dp's default $r_{\max} = 3$) and $d$ ($d_{\max} = 5$) the
# clipping changes, as the batch shrinks:

# %%
population = np.random.default_rng(4).normal(size=(20000, 50))  # 50 features, mean 0, variance 1: the averages
clipped = {}  # batch size: the fraction of r clipped
for n in (2, 4, 8, 32):
    picks = np.random.default_rng(5).choice(len(population), size=(500, n))  # 500 batches of n rows
    batches = population[picks]  # (500, n, 50)
    r = np.sqrt(batches.var(axis=1) + 1e-5) / np.sqrt(1 + 1e-5)
    d = batches.mean(axis=1) / np.sqrt(1 + 1e-5)
    clipped[n] = np.mean((r < 1 / 3) | (r > 3))
    print(
        f"batches of {n:2}: r clipped in {np.mean((r < 1 / 3) | (r > 3)):6.1%} of the features,",
        f"d clipped in {np.mean(np.abs(d) > 5):5.1%}",
    )

# %% tags=["solutions"]
# The answer to Question 4 describes the fractions above; this cell checks that it still does.
assert clipped[2] > 0.2 and clipped[32] < 0.01, "the clipping of r no longer binds often at 2 and rarely at 32"

# %% [markdown]
# **Question 2.** Why must $r$ and $d$ be constants in the backward pass? What would the gradient
# be if they were differentiated as functions of the batch (unclipped)?

# %% [markdown] tags=["answer"]
# Unclipped, $\frac{x - \mu_B}{\sigma_B} r + d = \frac{x - \bar\mu}{\sigma}$ exactly. Differentiated
# through $r$ and $d$, the batch statistics would cancel out of the gradient too: it would be the
# gradient of a normalization by the moving averages, which do not depend on the batch, as if the
# layer did not normalize at all. Ioffe and Szegedy (2015, Section 2) showed what that does:
# gradient descent then ignores that the normalization will undo a change of the mean or scale,
# and the parameters can grow without bound while the loss does not change. Held constant, $r$
# and $d$ leave batch norm's gradient (times $r$), which accounts for the normalization.

# %% [markdown]
# ## 3. Training at small batches
#
# Now the experiment of Wu and He's Figure 1 at the scale of the digits: the same network with
# each normalization, trained at batches of 2, 8 and 32, for the same number of epochs (so a
# batch of 2 takes 16 times the steps of a batch of 32), with SGD with momentum 0.9 and the
# learning rate scaled linearly with the batch, $0.1 \cdot N / 32$, as they do.
#
# ### Task 3: one network, four normalizations
#
# *Write `Normalized(normalization, groups, renorm_warmup, seed)`: the MLP 64 → 64 → 64 → 10 with
# two hidden layers, each linear → normalization → ReLU, and a linear output layer with a softmax.*
# The normalization is one of:
#
# - `"batch_norm"`: `self.batch_norm(64, name)`;
# - `"batch_renorm"`: the same with `renorm=True, rmax=3.0, dmax=5.0, renorm_warmup=renorm_warmup`
#   (the bounds open gradually from plain batch norm over the first `renorm_warmup` batches, as
#   Ioffe's do);
# - `"group_norm"`: `self.group_norm(64, groups, name)` (Wu & He, 2018): each row's 64 features
#   in `groups` groups of consecutive features, each group normalized over its own features. dp's
#   group norm takes images (N, C, H, W): give it the features as C channels of 1 x 1 images,
#   `z.reshape(n, 64, 1, 1)`, and reshape its output back to (n, 64);
# - `"none"`: no normalization.
#
# Name the linear layers `l1`, `l2`, `l3` and the normalizations `n1`, `n2`; give a linear layer
# followed by a normalization no bias (`bias=False`), the others one. That is a design choice,
# as in Wu and He's ResNets, where no convolution before a normalization has a bias; the bias is
# exactly redundant only before batch norm (and batch renorm), whose statistics per feature over
# the batch take it out, so that its gradient is 0 (01, Task 1). Group norm takes out of each
# row only the mean of the bias over each group's features, and layer norm (group norm in one
# group) only its mean over all the features: what is left shifts the features against each
# other, and gets a gradient (the cell after the check measures it). Draw the weights with
# `init="he"`, for ReLU. `forward(x, train)` passes `train` to batch norm and returns the
# probabilities (n, 10).

# %% tags=["stub"]
GROUPS = 8  # group norm's groups per layer


class Normalized(dp.NeuralNode):
    def __init__(self, normalization, groups=GROUPS, renorm_warmup=0, seed=0):
        super().__init__(seed)
        # TODO: the layers
        raise NotImplementedError("Task 3: write Normalized")

    def forward(self, x, train=None):
        # TODO: the probabilities (n, 10)
        raise NotImplementedError("Task 3: write Normalized.forward")


# %% tags=["solution"]
GROUPS = 8  # group norm's groups per layer


class Normalized(dp.NeuralNode):
    def __init__(self, normalization, groups=GROUPS, renorm_warmup=0, seed=0):
        super().__init__(seed)
        self.normalization, self.hidden = normalization, []
        for i, fan_in in enumerate((64, 64), start=1):
            linear = self.linear(fan_in, 64, f"l{i}", bias=normalization == "none", init="he")
            self.hidden.append((linear, self.normalization_layer(i, groups, renorm_warmup)))
        self.output = self.linear(64, 10, "l3", init="he")

    def normalization_layer(self, i, groups, renorm_warmup):
        if self.normalization == "batch_norm":
            return self.batch_norm(64, f"n{i}")
        if self.normalization == "batch_renorm":
            return self.batch_norm(64, f"n{i}", renorm=True, rmax=3.0, dmax=5.0, renorm_warmup=renorm_warmup)
        if self.normalization == "group_norm":
            return self.group_norm(64, groups, f"n{i}")
        return None

    def forward(self, x, train=None):
        h = x
        for linear, norm in self.hidden:
            z = linear(h)
            if self.normalization == "group_norm":  # the features as channels of 1 x 1 images, and back
                z = norm(z.reshape(z.shape[0], 64, 1, 1)).reshape(z.shape[0], 64)
            elif norm is not None:
                z = norm(z, train)
            h = z.relu()
        return self.output(h).softmax(axis=1)


# %% tags=["check"]
# Check for Task 3
NORMALIZATIONS = ("batch_norm", "batch_renorm", "group_norm", "none")
nets = {}
for normalization in NORMALIZATIONS:
    try:
        nets[normalization] = Normalized(normalization)
    except ValueError as error:
        raise AssertionError(
            f"dp refuses Normalized({normalization!r}): {error}. Group norm splits the 64 features into groups of "
            "equal size, so the number of groups must divide 64 (8 groups of 8, say)"
        ) from None
for normalization, net in nets.items():
    keys = set(net.params)
    expected = {"weight_l1", "weight_l2", "weight_l3", "bias_l3"}
    if normalization == "none":
        expected |= {"bias_l1", "bias_l2"}
    else:
        expected |= {f"{kind}_n{i}" for kind in ("gamma", "beta") for i in (1, 2)}
    if normalization in ("batch_norm", "batch_renorm"):
        expected |= {f"{kind}_n{i}" for kind in ("avg_mean", "avg_variance", "batches") for i in (1, 2)}
    assert keys == expected, (
        f"Normalized({normalization!r}) has the parameters {sorted(keys)}; expected {sorted(expected)} (give a linear "
        "layer followed by a normalization no bias, bias=False; name the layers l1, l2, l3 and the normalizations "
        "n1, n2)"
    )


def reference(net, x, normalization, groups=GROUPS, eps=1e-5):  # the network computed with NumPy, in training mode
    p, h = net.params, x
    for i in (1, 2):
        z = h @ p[f"weight_l{i}"] + p.get(f"bias_l{i}", 0.0)
        if normalization == "group_norm":
            g = z.reshape(len(z), groups, -1)
            z = ((g - g.mean(axis=2, keepdims=True)) / np.sqrt(g.var(axis=2, keepdims=True) + eps)).reshape(z.shape)
        elif normalization != "none":
            z = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + eps)
        if normalization != "none":
            z = z * p[f"gamma_n{i}"].reshape(1, -1) + p[f"beta_n{i}"].reshape(1, -1)
        h = np.maximum(z, 0)
    logits = h @ p["weight_l3"] + p["bias_l3"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


rng = np.random.default_rng(6)
batch = digits.x_train[:16]
for normalization, net in nets.items():
    learned = {
        k: rng.uniform(0.5, 1.5, v.shape) if k.startswith("gamma") else rng.normal(0, 0.3, v.shape)
        for k, v in net.params.items()
        if k.startswith(("gamma", "beta"))
    }
    net.set_param(learned)
    out = net.forward(batch, train=True)
    assert isinstance(out, dp.Node) and out.shape == (16, 10), (
        f"Normalized({normalization!r}).forward should return a Node of probabilities (n, 10)"
    )
    what = {"group_norm": f"group norm in {GROUPS} groups of consecutive features, per row", "none": "nothing"}.get(
        normalization, "batch norm (the first batch of batch renorm is plain batch norm)"
    )
    assert np.allclose(out.value, reference(net, batch, normalization)), (
        f"Normalized({normalization!r}) computes something else than linear -> {what} -> relu, twice, then linear "
        "-> softmax"
    )
shifted = 3 * digits.x_train[16:32] + 1  # a batch whose statistics are far from the first one's
renormalized = nets["batch_renorm"].forward(shifted, train=True).value
assert not np.allclose(renormalized, reference(nets["batch_renorm"], shifted, "batch_norm")), (
    "Normalized('batch_renorm') behaves as plain batch norm after its first batch: pass renorm=True, rmax=3.0, "
    "dmax=5.0 and renorm_warmup to self.batch_norm"
)
print("Task 3 passed")

# %% [markdown]
# What a bias before each normalization would get: the largest gradient of a loss with respect to
# a bias `b` in `normalization(x W + b)`, on a batch of 16 rows of 64 features.

# %%
rng = np.random.default_rng(7)
x, w, u = rng.normal(size=(16, 64)), rng.normal(size=(64, 64)) / 8, rng.normal(size=(16, 64))
before = {
    "batch norm": lambda z: dp.batch_norm(z, 1.0, 0.0),
    f"group norm, {GROUPS} groups": lambda z: dp.group_norm(z.reshape(16, 64, 1, 1), GROUPS, 1.0, 0.0).reshape(16, 64),
    "layer norm": lambda z: dp.layer_norm(z, 1.0, 0.0),
}
bias_gradient = {}
for name, normalization in before.items():
    b = dp.Node(rng.normal(size=(1, 64)), "b")
    loss = (dp.Node(u) * normalization(dp.Node(x) @ dp.Node(w) + b)).sum()  # L = sum(u * y)
    bias_gradient[name] = np.abs(loss.grad(1)["b"]).max()
    print(f"before {name:>21}: largest |dL/db| {bias_gradient[name]:.2g}")

# %% tags=["solutions"]
# The text of Task 3 describes the gradients above; this cell checks that it still does.
assert bias_gradient["batch norm"] < 1e-12 and min(bias_gradient.values()) == bias_gradient["batch norm"]
assert all(g > 0.1 for name, g in bias_gradient.items() if name != "batch norm"), "a bias before group norm learns"

# %% [markdown]
# ### The experiment
#
# Each normalization at batches of 2, 8 and 32, three epochs over the first 600 training rows,
# one seed; test accuracy on the test rows in eval mode. Batch norm's and renorm's accuracy is
# also measured after `dp.train.recalibrate` (05), which recomputes the moving averages over the
# training rows with the final weights, and then, in the MLP, with the recalibrated variances
# multiplied by $N/(N-1)$. Recalibration alone keeps dp's biased average, $(N-1)/N$ of each
# feature's variance, half of it at $N = 2$ (Question 1); times $N/(N-1)$ it is the unbiased
# average. What both together leave is the cost of training on noisy statistics, not the noise or
# the bias of the moving averages.

# %%
EPOCHS, BATCHES = 3, (2, 8, 32)


def trained_accuracy(model, rows, batch_size, over_rows):
    """Train `model` on the first `rows` training rows for EPOCHS epochs as Wu & He do (SGD with momentum 0.9, the
    learning rate 0.1 N / 32, the mean loss of the batch); return its test accuracy, its test accuracy after
    recalibration, and after recalibration with the averaged variances times N / (N - 1), the unbiased average (None
    for a model without batch norm, and the last for batch norm that is not `over_rows`, the N rows of the batch).
    NaN if training diverged."""
    x_train, y_train = digits.x_train[:rows], digits.y_train[:rows]
    optimizer = dp.optim.Momentum(lr=0.1 * batch_size / 32, beta=0.9)
    steps = EPOCHS * (rows // batch_size)
    options = dict(steps=steps, batch_size=batch_size, reduction="mean", seed=1, progress=False, score_rows=100)
    try:
        dp.train.fit(model, x_train, y_train, optimizer, **options)
    except dp.train.Diverged:
        return float("nan"), None, None
    accuracy = dp.train.accuracy(model, digits.x_test, digits.y_test)
    if not any(key.startswith("avg_mean") for key in model.params):
        return accuracy, None, None
    dp.train.recalibrate(model, x_train, batch_size=batch_size, seed=1)
    recalibrated = dp.train.accuracy(model, digits.x_test, digits.y_test)
    if not over_rows:
        return accuracy, recalibrated, None
    unbiased = {k: v * batch_size / (batch_size - 1) for k, v in model.params.items() if k.startswith("avg_variance")}
    model.set_param(unbiased)
    return accuracy, recalibrated, dp.train.accuracy(model, digits.x_test, digits.y_test)


def sweep(network, normalizations, rows, over_rows):
    """{normalization: {batch size: trained_accuracy's three}}, each network made by network(normalization,
    renorm_warmup) with batch renorm's bounds opening over the first fifth of the steps."""
    results = {}
    for normalization in normalizations:
        for batch_size in BATCHES:
            model = network(normalization, EPOCHS * (rows // batch_size) // 5)
            results.setdefault(normalization, {})[batch_size] = trained_accuracy(model, rows, batch_size, over_rows)
    return results


def cell(accuracy, recalibrated, unbiased):
    """An accuracy in %, then in parentheses the recalibrated one and the one with the unbiased average, if any."""
    after = [f"{100 * a:5.1f}" for a in (recalibrated, unbiased) if a is not None]
    return f"{100 * accuracy:5.1f}" + (f" ({', '.join(after)})" if after else "")


def table(results, rows):
    """The sweep's test accuracies in %, a row per batch size; recalibrated ones in parentheses."""
    print("batch size | steps | " + " | ".join(f"{n.replace('_', ' '):<20}" for n in results))
    for b in BATCHES:
        cells = [cell(*results[n][b]) for n in results]
        print(f"{b:10} | {EPOCHS * (rows // b):5} | " + " | ".join(f"{c:<20}" for c in cells))


mlp = sweep(
    lambda normalization, warmup: Normalized(normalization, renorm_warmup=warmup), NORMALIZATIONS, 600, over_rows=True
)
print("MLP: test accuracy (%); in parentheses after recalibration, then with the variances times N / (N - 1)")
table(mlp, rows=600)

# %% [markdown]
# ### The same on a CNN
#
# `dp.studies.wu2018.NormalizedCNN` is dp's small CNN (two blocks of 3 x 3 convolutions with 8
# and 16 channels, each followed by the normalization, ReLU and a 2 x 2 max pool, then a linear
# layer) with the normalization chosen. The same sweep on the digits as 8 x 8 images, for batch
# norm only and on the first 300 training rows (a convolution step costs more: this keeps the
# notebook under a minute; docs/why/wu2018.md has every normalization on MNIST). Recalibration
# only: a channel's statistics are over the $N$ images and every position, $N \times H \times W$
# values, and the factor $NHW/(NHW - 1)$ is at most $32/31$ here (the second block at a batch of
# 2, $2 \times 4 \times 4$ values).

# %%
cnn = sweep(
    lambda normalization, warmup: NormalizedCNN(normalization, image=(1, 8, 8), groups=4, renorm_warmup=warmup),
    ("batch_norm",),
    rows=300,
    over_rows=False,
)
print("CNN: test accuracy (%), after recalibration in parentheses")
table(cnn, rows=300)

fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, (title, results) in zip(
    axes, (("(a) MLP: normalized over rows", mlp), ("(b) CNN: batch norm per channel", cnn))
):
    for normalization, by_batch in results.items():
        style = "k:" if normalization == "none" else "o-"
        accuracies = [100 * by_batch[b][0] for b in BATCHES]
        ax.semilogx(BATCHES, accuracies, style, base=2, label=normalization.replace("_", " "))
    ax.set(title=title, xlabel="batch size (learning rate 0.1 N / 32, same epochs)", ylim=(0, 100))
    ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
axes[0].set_ylabel("test accuracy (%), eval mode")
axes[0].legend()
fig.tight_layout()

# %% tags=["solutions"]
# The text below describes the tables above; this cell checks that it still does.
bn, brn, gn = (mlp[n] for n in ("batch_norm", "batch_renorm", "group_norm"))
assert bn[2][0] < bn[32][0] - 0.15 and bn[2][1] < bn[32][0] - 0.15, "the MLP's batch norm no longer falls at batch 2"
assert bn[2][0] < brn[2][0] < bn[32][0] - 0.05, "batch renorm no longer recovers part of the loss, and part only"
assert max(abs(gn[b][0] - gn[32][0]) for b in BATCHES) < 0.08, "the MLP's group norm no longer holds steady"
assert bn[2][2] < bn[32][0] - 0.15, "with the variances times N / (N - 1), the MLP's batch norm now recovers at 2"
cnn_bn = cnn["batch_norm"]
assert cnn_bn[2][0] > max(cnn_bn[b][0] for b in BATCHES) - 0.03, "the CNN's batch norm now loses at a batch of 2"
assert cnn_bn[32][1] > cnn_bn[32][0] + 0.02, "recalibration no longer helps the CNN's batch norm at 32"
assert mlp["none"][2][0] > mlp["none"][32][0] - 0.05, "the MLP without normalization now loses at a batch of 2"

# %% [markdown]
# What the tables and the figure show (one seed: a point or two is noise):
#
# - **In the MLP the result is consistent with Wu and He's.** Batch norm's accuracy falls far at
#   a batch of 2, and recalibrating its moving averages does not bring it back, nor does
#   correcting their variance by $N/(N-1)$: the loss is in the training, on features reduced to
#   $\pm 1$ (Question 1), not in the averages. Batch renorm
#   recovers part of it, not all. Group norm, which never looks at the batch, holds steady across
#   the batch sizes, and so does the network without normalization (dotted): the small batch
#   hurts batch norm, not training as such.
# - **In the CNN it does not replicate.** Batch norm at a batch of 2 is as good as at its best
#   batch size. docs/why/wu2018.md, with dp's CNN on MNIST and every normalization, concludes
#   more narrowly that batch norm does not lose accuracy at small batches against group norm
#   (at a batch of 2 it is level with it), where Wu and He's batch norm falls far behind their
#   group norm; it discusses why (Question 3).
# - At 32, every network has had few steps (the tables' steps column): the comparison across
#   batch sizes is one of fixed epochs, as theirs is, not of converged networks. The CNN's batch
#   norm at 32 gains from recalibration: after so few steps its moving averages still carry their
#   zero start (05).

# %% [markdown]
# **Question 3.** Batch norm in the CNN does not lose accuracy at a batch of 2, while the MLP's
# does, and Wu and He's ResNet-50's does. Why? Use the figure of Section 1, and think of what
# differs between this CNN and ResNet-50 on ImageNet.

# %% [markdown] tags=["answer"]
# A convolution's batch norm takes each channel's statistics over the batch *and* every position:
# at a batch of 2 on 8 x 8 digits, 128 values per channel in the first block, not 2. Section 1(b)
# showed that a channel's batch mean over them is steadier at a batch of 2 than a feature's over
# 128 rows, so the first block's output is not reduced to signs. Values per channel alone do not
# explain it, though: after pooling, the second block has 32 per channel at a batch of 2
# (2 x 4 x 4), fewer than the 98 of ResNet-50's last stage (2 x 7 x 7). What differs is depth
# and scale. This network has two normalized layers, so little noise to stack up, the data are
# easy and the runs short; ResNet-50 has about fifty normalization layers, whose noise adds up
# from layer to layer, and trains for 100 epochs on ImageNet, where a few points of accuracy are
# hard-won. To see the effect in a CNN one needs a deep network, many normalized layers with the
# small maps late, or batch norm on the rows of its fully connected layers.

# %% [markdown]
# **Question 4.** Batch renorm recovers only part of batch norm's loss in the MLP at a batch of 2.
# Use the printed fractions of clipped $r$ and $d$ in Section 2 to explain why, and say what else
# limits it.

# %% [markdown] tags=["answer"]
# Unclipped, batch renorm normalizes exactly by the moving averages and the batch's noise would
# vanish from the forward pass. At a batch of 2 the clipping binds often: $r = \sigma_B/\sigma$
# from two values is often below $1/3$ (two close values): the fractions printed in Section 2
# show how often, and then the output keeps much of the batch's noise. The bounds open only
# gradually, over the first fifth of the steps (the warmup), so the network starts out learning
# from $\pm 1$ features as batch norm does. And the moving averages themselves are averages of
# very noisy statistics. Ioffe (2017) reports the same: renorm improves small-batch training a
# lot, without fully matching large batches.

# %% [markdown]
# **Question 5.** Why scale the learning rate with the batch, and why keep the number of epochs
# fixed rather than the number of steps?

# %% [markdown] tags=["answer"]
# With the mean loss of the batch, each row's gradient enters a step with the weight
# $\text{lr}/N$. Scaling the learning rate with $N$ keeps that weight the same at every batch
# size, so one epoch moves the weights about as far whatever the batch (Goyal et al., 2017's
# linear scaling rule, which Wu and He follow). Fixed epochs then give every network the same
# data and about the same total movement: the comparison measures the batch's statistics, not a
# training budget. Fixed steps would give a batch of 2 sixteen times less data than a batch of 32.

# %% [markdown]
# ## Summary
#
# - Batch statistics from $N$ rows are noisy as about $1/\sqrt N$; at $N = 2$ batch norm over rows
#   reduces every feature to $\pm 1$. A convolution's batch norm averages over positions too.
# - Batch renorm corrects the batch statistics toward the moving averages with clipped $r$ and $d$,
#   constants in the backward pass; with $r_{\max} = 1$, $d_{\max} = 0$ it is batch norm.
# - Group norm normalizes each sample by itself: no batch dependence, no moving averages, the same
#   function in training and evaluation. dp refuses groups that do not divide the channels.
# - At the digits' scale, batch norm's small-batch loss shows in an MLP and not in a CNN: check
#   what a result depends on before carrying it from one scale to another.
