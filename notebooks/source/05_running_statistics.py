# %% [markdown]
# # Running statistics: what batch norm uses at test time
#
# *Prerequisite: 01_batch_norm (batch norm, its moving averages, evaluation in eval mode).*
#
# In training, batch norm normalizes each batch by its own mean and variance. A trained
# network must also predict one row at a time, so the layer keeps **moving averages** of
# those statistics and, in eval mode, normalizes by them instead. In 01 you wrote the update
# with momentum 0.1 and saw what goes wrong when a batch of test rows of one class is
# normalized by its own statistics. This notebook looks at the averages themselves:
#
# 1. momentum as an averaging window: which batches the average remembers, and how much;
# 2. the zero start: what the averages hold after the first few batches, and what eval mode
#    does with that;
# 3. the train/eval gap: a row's prediction in training mode depends on the batch around it;
# 4. recalibration: the averages recomputed after training, with the final weights.
#
# Each task is a function you write, followed by a check. Questions ask you to interpret
# what you see; write your answers in the cells below them.

# %%
import matplotlib.pyplot as plt
import numpy as np

import dp
from dp.studies.running_statistics import zero_start_batches, zero_start_factor

np.set_printoptions(precision=4, suppress=True)
digits = dp.data.digits(test_size=0.2, seed=0)  # scikit-learn's 8x8 digits: 64 pixels in [0, 1], 10 classes
print("training rows", digits.x_train.shape, " test rows", digits.x_test.shape)

# %% [markdown]
# ## 1. Momentum as an averaging window
#
# After each training batch, with its mean $\mu_B$ and (biased) variance $\sigma_B^2$, the layer
# moves its averages by
#
# $$\bar\mu \leftarrow (1 - m)\,\bar\mu + m\,\mu_B, \qquad
#   \bar\sigma^2 \leftarrow (1 - m)\,\bar\sigma^2 + m\,\sigma_B^2 .$$
#
# The **momentum** $m$ is the weight of the *new* batch: 0.1 by default, in dp as in PyTorch
# (`torch.nn.BatchNorm1d(momentum=0.1)`). Keras names the other weight: its
# `BatchNormalization(momentum=0.99)` is the weight of the *old* average, so Keras's $m$ is
# PyTorch's $1 - m$. PyTorch's `momentum=None`, which dp has too, is a **cumulative average**:
# the $k$-th batch gets the weight $1/k$, so after $k$ batches the average is the plain mean of
# their statistics.
#
# ### Task 1: the moving average
#
# *Write `moving_average(statistics, momentum, start)`: the average after each batch, for one
# feature, from `start` (the average before the first batch). With `momentum=None`, the
# cumulative average.* The check compares it with dp's batch-norm layer.


# %% tags=["stub"]
def moving_average(statistics, momentum=0.1, start=0.0):
    # statistics: a 1-D array, one batch statistic (a batch mean, say) per training batch, in order.
    # Returns a 1-D array of the same length: the average after batch 1, 2, ..., starting from `start`,
    # with avg <- (1 - momentum) * avg + momentum * statistic (momentum: the weight of the NEW batch),
    # or, for momentum=None, the k-th batch weighing 1 / k.
    # TODO
    raise NotImplementedError("Task 1: write moving_average")


# %% tags=["solution"]
def moving_average(statistics, momentum=0.1, start=0.0):
    # statistics: a 1-D array, one batch statistic (a batch mean, say) per training batch, in order.
    # Returns a 1-D array of the same length: the average after batch 1, 2, ..., starting from `start`,
    # with avg <- (1 - momentum) * avg + momentum * statistic (momentum: the weight of the NEW batch),
    # or, for momentum=None, the k-th batch weighing 1 / k.
    averages, average = [], start
    for k, statistic in enumerate(statistics, start=1):
        weight = 1 / k if momentum is None else momentum
        average = (1 - weight) * average + weight * statistic
        averages.append(average)
    return np.array(averages)


# %% tags=["check"]
# Check for Task 1
k = np.arange(1, 31)
steady = moving_average(np.ones(30), momentum=0.1, start=0.0)
assert isinstance(steady, np.ndarray) and steady.shape == (30,), (
    f"moving_average should return a 1-D array with one average per batch, shape (30,); got {type(steady).__name__} "
    f"{np.shape(steady)}"
)
print("30 batches of the statistic 1, from 0: the averages after batches 1 to 5:", steady[:5])
assert not np.allclose(steady, 1 - 0.1**k), (
    "the first batch got the weight 0.9 and the old average 0.1: that is Keras's convention (its momentum weighs "
    "the OLD average). Here, as in PyTorch, momentum is the weight of the NEW batch: "
    "avg <- (1 - momentum) * avg + momentum * statistic"
)
assert steady[0] != 1, (
    "after one batch the average already equals the statistic: with a fixed momentum it moves from `start` by "
    "momentum * (statistic - start), so the first average is 0.1, not 1 (only momentum=None forgets the start at once)"
)
assert np.allclose(steady, 1 - 0.9**k), "from 0, after k batches of the statistic 1 the average should be 1 - 0.9**k"
assert np.allclose(moving_average(np.ones(30), 0.1, start=5.0), 1 + 4 * 0.9**k), (
    "start the average at `start`, not at 0"
)
try:
    cumulative = moving_average(np.arange(1.0, 31.0), momentum=None, start=7.0)
except TypeError as error:
    raise AssertionError(
        f"moving_average(..., momentum=None) fails ({error}): for None, give the k-th batch the weight 1 / k"
    ) from None
assert not np.allclose(cumulative, (7.0 + np.cumsum(np.arange(1.0, 31.0))) / (k + 1)), (
    "with momentum=None the FIRST batch weighs 1 / 1 = 1 (k counts from 1): the start is forgotten at once"
)
assert np.allclose(cumulative, np.cumsum(np.arange(1.0, 31.0)) / k), (
    "with momentum=None the k-th batch weighs 1 / k: the average is the plain mean of the statistics so far"
)


class OneFeature(dp.NeuralNode):  # one batch-norm layer over one feature
    def __init__(self, momentum, unbiased_average=False):
        super().__init__(seed=0)
        self.bn = self.batch_norm(1, "bn", momentum=momentum, unbiased_average=unbiased_average)


rng = np.random.default_rng(5)
batches = [rng.normal(3, 2, size=(16, 1)) for _ in range(30)]
for momentum in (0.1, 0.3, None):
    layer = OneFeature(momentum)
    dp_averages = []
    for batch in batches:
        layer.bn(batch)  # training mode: normalizes the batch and moves the averages
        dp_averages.append(layer.params["avg_mean_bn"].item())
    ours = moving_average(np.array([batch.mean() for batch in batches]), momentum)
    assert np.allclose(ours, dp_averages), f"with momentum={momentum}, dp's avg_mean differs from moving_average"
print("dp's avg_mean, batch after batch, equals moving_average of the batch means (momentum 0.1, 0.3 and None)")
print("Task 1 passed")

# %% [markdown]
# ### What dp stores as the variance
#
# The averaged variance is a moving average of batch variances, but which ones: the biased
# variance (divided by $N$, what normalization uses) or the unbiased one (divided by $N - 1$)?
# PyTorch's `running_var` stores the **unbiased** one. dp stores the **biased** one by default,
# and the unbiased one with `unbiased_average=True`. Measured on the batches of the check:

# %%
for unbiased in (False, True):
    layer = OneFeature(0.1, unbiased_average=unbiased)
    for batch in batches:
        layer.bn(batch)
    stored = layer.params["avg_variance_bn"].item()
    biased, unbiased_var = (moving_average(np.array([batch.var(ddof=ddof) for batch in batches])) for ddof in (0, 1))
    print(
        f"unbiased_average={unbiased!s:5}: avg_variance {stored:.6f};  moving average of the biased batch variances "
        f"{biased[-1]:.6f}, of the unbiased ones {unbiased_var[-1]:.6f}"
    )

# %% [markdown]
# Normalization itself always uses the biased variance, in dp, in PyTorch and in the paper. The
# two conventions for the *average* differ by the factor $N/(N-1)$: about 3 % for batches of 32,
# a factor 2 for batches of 2. Loading PyTorch's `running_var` into dp's `avg_variance` (or the
# other way) is exact only with `unbiased_average=True`.
#
# ### How far back the average remembers
#
# The update is linear, so the average after $K$ batches is a weighted sum of the $K$ batch
# statistics (plus the start). To see the weight of one batch, feed `moving_average` the
# statistic 1 for that batch and 0 for all the others: what comes out is its weight.

# %%
K = 300  # long enough for momentum 0.03's weights to fade too; the figure shows the last 150
ages = np.arange(K)  # a batch's age: 0 for the last batch, K - 1 for the first
fig, ax = plt.subplots(figsize=(7, 4))
for momentum in (0.1, 0.03, None):
    # the weight of the batch of each age in the average after K batches (start 0)
    weights = np.array([moving_average(np.eye(K)[K - 1 - age], momentum)[-1] for age in ages])
    ax.semilogy(ages, weights, ".", label=f"momentum={momentum}" + (" (cumulative)" if momentum is None else ""))
    if momentum is None:
        print(f"momentum=None: every batch weighs {weights.min():.5f} to {weights.max():.5f} (1 / K = {1 / K:.5f})")
        continue
    ax.semilogy(ages, momentum * (1 - momentum) ** ages, "k-", lw=0.7)
    slope = np.polyfit(ages, np.log(weights), 1)[0]
    mean_age = (ages * weights).sum() / weights.sum()
    window = round(1 / momentum)
    print(
        f"momentum {momentum}: log(weight) falls by {-slope:.4f} per batch "
        f"(-log(1 - m) = {-np.log(1 - momentum):.4f}); "
        f"mean age {mean_age:.1f} batches ((1 - m) / m = {(1 - momentum) / momentum:.1f}); "
        f"the last 1/m = {window} batches carry {weights[:window].sum():.0%} of the weight"
    )
ax.set(xlabel="age of the batch (0: the last one)", ylabel="its weight in the average")
ax.set(xlim=(-2, 150), ylim=(1e-5, 0.2))
ax.set_title(f"The weight of each batch in the moving average after K = {K} batches")
ax.legend(title="dots: measured; lines: m (1 - m)^age")
fig.tight_layout()

# %% [markdown]
# The weights fall geometrically, by the factor $1 - m$ per batch of age: the batch of age $a$
# weighs $m(1-m)^a$, a straight line on the log scale. The printed lines say how many batches
# carry the weight: about $1/m$, ten for PyTorch's default. With `momentum=None` every batch
# weighs $1/K$, the first as much as the last.

# %% [markdown]
# **Question 1.** A colleague ports a model from Keras, where the batch-norm layers used
# `BatchNormalization(momentum=0.99)`, to PyTorch and keeps `momentum=0.99`. How many batches
# does each framework's average effectively remember, and what should the PyTorch momentum be?

# %% [markdown] tags=["answer"]
# Keras's 0.99 is the weight of the old average, so the new batch weighs 0.01: a window of about
# 1/0.01 = 100 batches. Kept as PyTorch's `momentum=0.99`, the new batch weighs 0.99: the
# "average" is essentially the last batch alone, as noisy as the batch statistics themselves,
# and eval mode inherits that noise. The PyTorch (and dp) momentum is 1 - 0.99 = 0.01.

# %% [markdown]
# **Question 2.** `momentum=None` weighs every batch alike. Why is that a poor choice for the
# averages of a whole training run, and a good one for a network whose weights no longer change?

# %% [markdown] tags=["answer"]
# During training the weights change, so the statistics of a layer's input drift: the batches of
# the first epochs were taken through weights the network no longer has. The cumulative average
# gives them as much weight as the last batches, so at the end it describes the average network
# of the run, not the final one. A fixed momentum forgets them geometrically and keeps the last
# few dozen batches. For fixed weights there is no drift, every batch is an equally good sample,
# and the plain mean is the best estimate: that is why recalibration (Task 4) uses it.

# %% [markdown]
# ## 2. The zero start
#
# Before the first batch the averages must hold *something*. Which values do dp's
# `avg_mean_{name}` and `avg_variance_{name}` start at? Read the docstring of
# `dp.NeuralNode.batch_norm`, or look at a fresh model's `params`. (PyTorch starts
# `running_mean` at 0 and `running_var` at 1.)
#
# From a start $s$, after $k$ batches that all have the statistic $t$, the average is
# $t + (1-m)^k (s - t)$: the start fades as $(1-m)^k$.
#
# ### Task 2: how long the start lingers
#
# *Set `DP_START_MEAN` and `DP_START_VARIANCE` to the numbers dp's averages start at. Write
# `batches_until_close(target, start, momentum, within)`: the least number of batches $k$ after
# which a moving average that starts at `start` and sees the statistic `target` at every batch
# is within the fraction `within` of it, $|\bar a_k - t| \le$ `within` $\cdot |t|$.* You may use
# your `moving_average`.

# %% tags=["stub"]
DP_START_MEAN = None  # TODO: the number dp's avg_mean_{name} starts at
DP_START_VARIANCE = None  # TODO: the number dp's avg_variance_{name} starts at


def batches_until_close(target, start, momentum=0.1, within=0.01):
    # The least k >= 0 such that, after k batches of the statistic `target`, the moving average from `start`
    # (momentum as in moving_average, None included) is within `within` * |target| of target.
    # TODO
    raise NotImplementedError("Task 2: write batches_until_close")


# %% tags=["solution"]
DP_START_MEAN = 0.0  # dp.MLP(seed=0).params["avg_mean_bn1"]: zeros
DP_START_VARIANCE = 0.0  # and "avg_variance_bn1": zeros too (PyTorch's running_var starts at ones)


def batches_until_close(target, start, momentum=0.1, within=0.01):
    # The least k >= 0 such that, after k batches of the statistic `target`, the moving average from `start`
    # (momentum as in moving_average, None included) is within `within` * |target| of target.
    k, average = 0, start
    while abs(average - target) > within * abs(target):
        k += 1
        average = moving_average(np.full(k, target), momentum, start)[-1]
    return k


# %% tags=["check"]
# Check for Task 2
fresh = dp.MLP(seed=0)
for name, value, key in (
    ("DP_START_MEAN", DP_START_MEAN, "avg_mean_bn1"),
    ("DP_START_VARIANCE", DP_START_VARIANCE, "avg_variance_bn1"),
):
    assert value is not None, f"set {name} to the number dp's {key.rsplit('_', 1)[0]} starts at"
    assert np.all(fresh.params[key] == value), (
        f"{name} = {value}, but a fresh model's {key} holds {np.unique(fresh.params[key])}: look at "
        f"dp.MLP(seed=0).params[{key!r}] (dp does not start the variance at 1 as PyTorch does)"
    )


def reference(target, start, momentum):  # counted with your moving_average, checked in Task 1
    averages = moving_average(np.full(500, target), momentum, start)
    close = np.abs(np.concatenate([[start], averages]) - target) <= 0.01 * abs(target)
    return int(np.argmax(close))


cases = [(4.0, DP_START_VARIANCE, 0.1), (4.0, 1.0, 0.1), (1.0, 1.0, 0.1), (1.02, 1.0, 0.1), (-3.0, 0.0, 0.3)]
for target, start, momentum in cases:
    got, expected = batches_until_close(target, start, momentum), reference(target, start, momentum)
    assert got != expected - 1 or expected == 0, (
        f"batches_until_close({target}, start={start}, momentum={momentum}) = {got}: after {got} batches the "
        f"average is {moving_average(np.full(max(got, 1), target), momentum, start)[-1]:.4f}, not yet within 1 % of "
        f"{target}; count the batch that brings it there"
    )
    assert got == expected, (
        f"batches_until_close({target}, start={start}, momentum={momentum}) = {got}, expected {expected}: the least "
        f"k with |average after k batches - target| <= within * |target| (k = 0 if the start is already close)"
    )
try:
    at_once = batches_until_close(4.0, 0.0, momentum=None)
except TypeError as error:
    raise AssertionError(
        f"batches_until_close(..., momentum=None) fails ({error}): handle None as Task 1 does"
    ) from None
assert at_once == 1, f"with momentum=None one batch is enough (the first weighs 1); got {at_once}"
dp_batches = batches_until_close(4.0, DP_START_VARIANCE)
assert dp_batches == zero_start_batches(0.01), "dp's zero start should need zero_start_batches(0.01) batches"
print(f"From dp's zero start, the averages come within 1 % of a steady statistic after {dp_batches} batches;")
print(f"PyTorch's running_var, from 1, of a variance of 4.0 after {batches_until_close(4.0, 1.0)} batches;")
print(f"with momentum=None, after {at_once}.")
print("Task 2 passed")

# %% [markdown]
# `dp.studies.running_statistics.zero_start_table` prints the same fading for a few $k$ (and
# docs/running_statistics.md discusses it). What does it do to a network stopped early? Below,
# the digits network `dp.MLP((64, 32, 32, 10))` (batch norm before each tanh) is trained for
# $k$ steps of Adam on batches of 32, then its first batch-norm layer `bn1` is looked at on the
# training rows in eval mode (`model.record`, which changes nothing): its averaged variance
# against the variance its input really has (through the current weights), and the mean and
# standard deviation of its output, which training mode makes 0 and 1 (times $\gamma$, plus
# $\beta$, both still near 1 and 0). The same network with `momentum=None` is beside it.

# %%
x, y = digits.x_train, digits.y_train
print(
    "   k | 1 - 0.9^k | momentum 0.1: avg_variance / variance | eval-mode bn1: |mean|  std | accuracy",
    "| momentum=None: variance ratio  std | accuracy",
)
early = {}  # k: the row's numbers
for k in (1, 2, 5, 10, 20, 50, 100):
    row = []
    for momentum in (0.1, None):
        model = dp.MLP((64, 32, 32, 10), momentum=momentum, seed=0)
        dp.train.fit(model, x, y, dp.optim.Adam(lr=0.003), steps=k, batch_size=32, progress=False)
        seen = model.record(x, ["l1", "bn1"])  # eval mode: l1's output, and bn1's normalized by the averages
        ratio = np.median(model.params["avg_variance_bn1"] / seen["l1"].var(axis=0))
        mean, std = np.median(np.abs(seen["bn1"].mean(axis=0))), np.median(seen["bn1"].std(axis=0))
        row.append((ratio, mean, std, dp.train.accuracy(model, x, y)))
    (ratio, mean, std, accuracy), (ratio_none, _, std_none, accuracy_none) = early[k] = row
    print(
        f"{k:4} | {zero_start_factor(k):9.3f} | {ratio:38.2f} | {mean:21.2f} {std:5.2f} | {accuracy:8.1%}",
        f"| {ratio_none:29.2f} {std_none:5.2f} | {accuracy_none:8.1%}",
    )

# %% tags=["solutions"]
# The text below describes the table above; this cell checks that it still does.
for k, ((ratio, mean, std, accuracy), (ratio_none, _, std_none, accuracy_none)) in early.items():
    assert abs(ratio - zero_start_factor(k)) < 0.1, "the averaged variance no longer follows 1 - 0.9^k"
    assert k > 10 or (std > 1.2 and mean > 0.3), "eval mode no longer spreads and shifts bn1's outputs early on"
    assert 0.8 < ratio_none < 1 and std_none < 1.1, "momentum=None's averages are no longer close from the start"
    assert abs(accuracy - accuracy_none) < 0.03, "the two columns' accuracies are no longer close"
assert early[100][0][2] < 1.1, "the distortion no longer fades by step 100"

# %% [markdown]
# The table above reads (medians over bn1's 32 features):
#
# - with momentum 0.1 the averaged variance follows the factor $1 - 0.9^k$ (the weights move
#   between the steps, which the factor leaves out). Eval mode divides by the square root of
#   that average, so bn1's outputs come out spread about $1/\sqrt{1 - 0.9^k}$ times too wide,
#   and their mean is off too: the pixels are in $[0, 1]$, so `l1`'s outputs have a mean, which
#   the zero-started `avg_mean` holds only a fraction of. The next layers see inputs no
#   training batch ever gave them;
# - the distortion fades over the first few dozen steps, as Task 2 counted;
# - with `momentum=None` the averages hold the mean of the batches' statistics from the first
#   step: no zero start. (They stay a little below the variance of all rows, because a batch
#   variance is biased by $(N-1)/N$ and the early batches came through smaller weights.)
#
# The accuracies of the two columns stay close: a network this early is poor in any mode, and
# its eval-mode errors are hidden among its other errors. The layer's outputs show what the
# accuracy hides. dp refuses eval mode *before* the first batch (the averages are then
# exactly zero and eval mode would divide by $\sqrt\epsilon$), but not after it.

# %% [markdown]
# **Question 3.** PyTorch starts `running_var` at 1, not 0. For which features is that start
# harmless, and for which is it as wrong as dp's? (Think of the output of a linear layer whose
# weights give it a variance of 100.)

# %% [markdown] tags=["answer"]
# After $k$ batches PyTorch's averaged variance is $(1 - 0.9^k)\,\sigma^2 + 0.9^k$: the start is
# harmless for a feature whose variance is near 1 (standardized inputs, or a layer initialized to
# keep variances near 1), since it starts close to the truth. For a variance of 100 it starts a
# hundred times too small, as far off as dp's zero start is (which starts infinitely too small,
# but is refused in eval mode before the first batch). A linear layer's output before batch norm
# has whatever scale its weights give it, so neither start is right in general; only the fading
# $0.9^k$ repairs it, or `momentum=None`, or recalibration.

# %% [markdown]
# **Question 4.** Adam corrects the same zero-start bias in its moment estimates by dividing by
# $1 - \beta^k$. What would that correction give here after $k$ batches of a steady statistic, and
# what would it not repair?

# %% [markdown] tags=["answer"]
# Dividing the zero-started average by $1 - (1-m)^k$ gives exactly the statistic after any
# number of batches of a steady statistic (here $(1 - 0.9^k)t / (1 - 0.9^k) = t$): the start no
# longer matters, as with `momentum=None` at first. It would not repair the other weakness of
# the averages: they mix batches taken through weights that have since changed. Neither dp nor
# PyTorch corrects the bias; the zero start only matters in the first few dozen batches.

# %% [markdown]
# ## 3. The train/eval gap
#
# In eval mode a row's prediction depends on the row alone. In training mode it depends on the
# batch around it: the batch's statistics normalize it. 01 showed the extreme case, batches of a
# single class normalized by their own statistics. Here the batches are random, and only their
# size changes. The network is the digits network, trained for 300 steps.

# %%
trained = dp.MLP((64, 32, 32, 10), seed=0)
dp.train.fit(trained, x, y, dp.optim.Adam(lr=0.003), steps=300, batch_size=32, progress=False)
x_test, y_test = digits.x_test[:320], digits.y_test[:320]  # 320 rows: whole batches of 2, 4, ..., 64
print(f"eval-mode accuracy on {len(x_test)} test rows: {dp.train.accuracy(trained, x_test, y_test):.1%}")

# %% [markdown]
# ### Task 3: predictions in training mode
#
# *Write `training_mode_classes(model, x, batch_size)`: the classes the model predicts for the
# rows `x` taken in consecutive batches of `batch_size`, each normalized by its own statistics,
# as in a training step; an (n, 1) column of ints, as `model.predict` gives in eval mode.*
# A forward pass in training mode also moves the moving averages: your function must leave
# `model.params` as it found them (`model.get_param()` copies them, `model.set_param` puts them
# back).


# %% tags=["stub"]
def training_mode_classes(model, x, batch_size):
    # The predicted classes of the rows x (n, features), n a multiple of batch_size, in training mode,
    # batch by batch; an (n, 1) int column. model.params must be unchanged afterwards.
    # TODO
    raise NotImplementedError("Task 3: write training_mode_classes")


# %% tags=["solution"]
def training_mode_classes(model, x, batch_size):
    # The predicted classes of the rows x (n, features), n a multiple of batch_size, in training mode,
    # batch by batch; an (n, 1) int column. model.params must be unchanged afterwards.
    saved = model.get_param()  # training mode moves the moving averages: put them back afterwards
    try:
        probabilities = [model.forward(x[i : i + batch_size], train=True).value for i in range(0, len(x), batch_size)]
    finally:
        model.set_param(saved)
    return np.vstack(probabilities).argmax(axis=1).reshape(-1, 1)


# %% tags=["check"]
# Check for Task 3
before = trained.get_param()
classes = training_mode_classes(trained, x_test, 4)
changed = sorted(key for key in before if not np.array_equal(before[key], trained.params[key]))
trained.set_param(before)
assert not changed, (
    f"training_mode_classes changed model.params ({', '.join(changed)}): a forward pass in training mode moves the "
    "moving averages; copy them first (saved = model.get_param()) and put them back (model.set_param(saved))"
)
assert isinstance(classes, np.ndarray) and classes.shape == (len(x_test), 1), (
    f"return an (n, 1) column of classes, as model.predict does; got {type(classes).__name__} {np.shape(classes)}"
)


def by_batches(batch_size):  # the logits of each batch in training mode (record changes nothing)
    return np.vstack(
        [
            trained.record(x_test[i : i + batch_size], ["l3"], train=True)["l3"]
            for i in range(0, len(x_test), batch_size)
        ]
    )


expected = by_batches(4).argmax(axis=1).reshape(-1, 1)
assert not np.array_equal(classes, trained.predict(x_test)) or np.array_equal(expected, trained.predict(x_test)), (
    "these are eval mode's predictions (the moving averages): normalize each batch by its own statistics, "
    "model.forward(batch, train=True)"
)
assert not np.array_equal(classes, by_batches(len(x_test)).argmax(axis=1).reshape(-1, 1)), (
    "these are the predictions of all rows normalized together: take the rows in batches of batch_size, "
    "each normalized by its own statistics"
)
assert np.array_equal(classes, expected), (
    "the classes differ from training mode's: the most probable class of each row, each batch of batch_size "
    "consecutive rows through model.forward(batch, train=True)"
)
print("Task 3 passed")

# %% [markdown]
# How often does training mode agree with eval mode, and how accurate is it, as the batch shrinks?

# %%
sizes = [2, 4, 8, 16, 32, 64, 320]
eval_classes = trained.predict(x_test)
agreement, accuracy = [], []
for size in sizes:
    classes = training_mode_classes(trained, x_test, size)
    agreement.append((classes == eval_classes).mean())
    accuracy.append((classes == y_test).mean())
    print(
        f"batches of {size:3}: training mode agrees with eval mode on {agreement[-1]:6.1%} of the rows,",
        f"accuracy {accuracy[-1]:6.1%} (eval mode {(eval_classes == y_test).mean():.1%})",
    )

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogx(sizes, agreement, "o-", base=2, label="agreement with eval mode")
ax.semilogx(sizes, accuracy, "s-", base=2, label="accuracy in training mode")
ax.set_xticks(sizes, [str(size) for size in sizes])
ax.axhline((eval_classes == y_test).mean(), color="k", lw=0.8, ls="--", label="accuracy in eval mode")
ax.set(xlabel="batch size (rows normalized together)", ylabel="fraction of the test rows", ylim=(0, 1.02))
ax.set_title("Test rows in training mode, batch by batch")
ax.legend()
fig.tight_layout()

# %% tags=["solutions"]
# The text below and the answer to Question 5 describe the figure above; this cell checks that they still do.
in_eval = (eval_classes == y_test).mean()
assert accuracy[0] < in_eval - 0.2 and agreement[0] < 0.8, "training mode at batches of 2 is no longer far off"
assert min(agreement[4:]) > 0.95, "training mode at large batches no longer agrees with eval mode"

# %% [markdown]
# With large batches the batch statistics are close to the averages, and the two modes mostly
# agree (the figure's right side). As the batch shrinks, each batch's mean and variance are
# noisier estimates, and in training mode a row's class depends more and more on which rows
# share its batch; at two rows per batch each feature of a row is normalized by its difference
# from a single other row. That noise is what the network trained with at its batch size, and
# what a small batch does to training itself: 07_small_batches takes it up.

# %% [markdown]
# **Question 5.** The network was trained on batches of 32. Why is its training-mode accuracy
# at batches of 2 so far below its eval-mode accuracy, when both use the same weights?

# %% [markdown] tags=["answer"]
# Because the weights after batch norm were learned for features normalized by the statistics of
# 32 rows, which are close to the averages. Normalized by the statistics of 2 rows, every feature
# of a row becomes about $\pm 1$ (its sign relative to the other row, scaled by $\gamma$, shifted
# by $\beta$): the next layer receives inputs unlike anything it was trained on. Eval mode
# normalizes each row by the averages, the statistics of many batches, and so gives inputs like
# those of training. The gap is the noise of small-batch statistics, not a fault of the weights.

# %% [markdown]
# ## 4. Recalibration after training
#
# The moving averages weigh the last few dozen batches, taken while the weights still moved. After
# training one can do better: run the training rows through the *final* network once, in training
# mode, and set each layer's averages to the plain mean of the batches' statistics. dp does it
# with `dp.train.recalibrate(model, x, batch_size, seed)`; PyTorch with
# `torch.optim.swa_utils.update_bn`, which resets the running statistics and passes the data with
# `momentum=None`.
#
# ### Task 4: recalibrate by hand
#
# *Write `recalibrate_by_hand(model, x, batch_size)` for a `dp.MLP`: take the rows `x` in order in
# consecutive batches of `batch_size` (drop the last, incomplete one) and set each batch-norm
# layer's `avg_mean_bn{i}` and `avg_variance_bn{i}` to the mean, over the batches, of the batch
# means and batch variances of its input, as training mode computes them. Return the number of
# batches.* `model.record(batch, train=True)` gives every layer's values in training mode and
# changes nothing; the input of `bn{i}` is `"l{i}"`, the output of the linear layer before it.


# %% tags=["stub"]
def recalibrate_by_hand(model, x, batch_size):
    # Set every avg_mean_bn{i} and avg_variance_bn{i} of the dp.MLP model (NumPy arrays of shape (1, width)) to the
    # mean over the batches of x of bn{i}'s input's batch mean and batch variance (as batch norm computes them);
    # return the number of batches.
    # TODO
    raise NotImplementedError("Task 4: write recalibrate_by_hand")


# %% tags=["solution"]
def recalibrate_by_hand(model, x, batch_size):
    # Set every avg_mean_bn{i} and avg_variance_bn{i} of the dp.MLP model (NumPy arrays of shape (1, width)) to the
    # mean over the batches of x of bn{i}'s input's batch mean and batch variance (as batch norm computes them);
    # return the number of batches.
    layers = [key.removeprefix("avg_mean_bn") for key in model.params if key.startswith("avg_mean_bn")]
    means, variances = {i: [] for i in layers}, {i: [] for i in layers}
    batches = len(x) // batch_size
    for start in range(0, batches * batch_size, batch_size):
        seen = model.record(x[start : start + batch_size], train=True)  # each layer as training mode computes it
        for i in layers:
            means[i].append(seen[f"l{i}"].mean(axis=0, keepdims=True))
            variances[i].append(seen[f"l{i}"].var(axis=0, keepdims=True))  # biased, as batch norm normalizes
    for i in layers:
        model.params[f"avg_mean_bn{i}"] = np.mean(means[i], axis=0)
        model.params[f"avg_variance_bn{i}"] = np.mean(variances[i], axis=0)
    return batches


# %% tags=["check"]
# Check for Task 4
mine = dp.MLP((64, 32, 32, 10), seed=0)
dp.train.fit(mine, x, y, dp.optim.Adam(lr=0.003), steps=10, batch_size=32, progress=False)
theirs = dp.MLP((64, 32, 32, 10), seed=0)
theirs.set_param(mine.get_param())
before = mine.get_param()

order = np.random.default_rng(0).permutation(len(x))  # the order dp.train.recalibrate(..., seed=0) visits the rows in
count = recalibrate_by_hand(mine, x[order], 32)
expected_count = dp.train.recalibrate(theirs, x, batch_size=32, seed=0)
state = [f"avg_{kind}_bn{i}" for i in (1, 2) for kind in ("mean", "variance")]
unchanged = [key for key in state if np.array_equal(before[key], mine.params[key])]
assert not unchanged, (
    f"{', '.join(unchanged)} did not change: store the new averages in model.params (a forward pass in eval mode, "
    "train=False, changes nothing, and record never changes anything)"
)
learned = sorted(key for key in before if key not in state and not np.array_equal(before[key], mine.params[key]))
assert not learned, f"recalibration changed {', '.join(learned)}: only the averages may change"
for key in state:
    assert np.shape(mine.params[key]) == before[key].shape, f"{key} should keep its shape {before[key].shape}"
for i in (1, 2):
    mean_key, variance_key = f"avg_mean_bn{i}", f"avg_variance_bn{i}"
    ratio = np.median(mine.params[variance_key] / theirs.params[variance_key])
    assert not np.isclose(ratio, 32 / 31, rtol=1e-6), (
        f"{variance_key} is 32/31 times dp's: that is the unbiased batch variance (divided by N - 1), which PyTorch's "
        "running_var stores; dp stores the biased one (divided by N), as batch norm normalizes with it"
    )
    if i == 2 and np.allclose(mine.params["avg_mean_bn1"], theirs.params["avg_mean_bn1"]):
        assert np.allclose(mine.params[mean_key], theirs.params[mean_key]), (
            "bn1's averages match dp's but bn2's do not: bn2's input depends on how bn1 normalized its batch, so take "
            "every batch through the network in training mode, model.record(batch, train=True)"
        )
    for key in (mean_key, variance_key):
        assert np.allclose(mine.params[key], theirs.params[key], rtol=1e-10, atol=1e-12), (
            f"{key} differs from dp.train.recalibrate's: the mean over the batches of x (in order, batches of "
            f"batch_size, the last incomplete one dropped) of the batch {key.split('_')[1]}s of l{i}'s output, "
            "in training mode"
        )
assert count == expected_count, f"return the number of batches: {expected_count} here, not {count}"
print(
    "largest difference from dp.train.recalibrate:",
    max(np.abs(mine.params[key] - theirs.params[key]).max() for key in state),
)
print("Task 4 passed")

# %% [markdown]
# ### The gap, before and after
#
# Networks trained for a few numbers of steps, measured on their training rows (those of the
# whole batches of 32): the accuracy in training mode (batches of 32, as the steps saw
# them: your `training_mode_classes`), in eval mode with the moving averages, and in eval mode
# after your recalibration; the gaps are training mode minus eval mode, in percentage points.

# %%
rows = len(x) // 32 * 32
x_rows, y_rows = x[:rows], y[:rows]
print(f"{rows} training rows, {rows // 32} batches of 32")
print("steps | training mode | eval mode | gap   | recalibrated | gap   | bn1 moving / recalibrated variance")
gaps = {}  # steps: (training mode, eval mode, recalibrated, variance ratio)
for steps in (5, 10, 20, 50, 200):
    model = dp.MLP((64, 32, 32, 10), seed=0)
    dp.train.fit(model, x, y, dp.optim.SGD(lr=0.1), steps=steps, batch_size=32, reduction="mean", progress=False)
    in_training = (training_mode_classes(model, x_rows, 32) == y_rows).mean()
    in_eval, moving = dp.train.accuracy(model, x_rows, y_rows), model.params["avg_variance_bn1"]
    recalibrate_by_hand(model, x_rows, 32)
    recalibrated = dp.train.accuracy(model, x_rows, y_rows)
    ratio = np.median(moving / model.params["avg_variance_bn1"])
    gaps[steps] = (in_training, in_eval, recalibrated, ratio)
    print(
        f"{steps:5} | {in_training:13.1%} | {in_eval:9.1%} | {100 * (in_training - in_eval):+5.1f} |",
        f"{recalibrated:12.1%} | {100 * (in_training - recalibrated):+5.1f} | {ratio:.2f}",
    )

# %% tags=["solutions"]
# The text below and the answer to Question 6 describe the table above; this cell checks that they still do.
for steps, (in_training, in_eval, recalibrated, ratio) in gaps.items():
    assert steps > 10 or (ratio < 0.7 and in_eval < in_training), f"after {steps} steps: no longer the zero start's gap"
    assert steps < 20 or in_eval > in_training, f"after {steps} steps eval mode is no longer above training mode"
    assert recalibrated > in_training, f"after {steps} steps recalibrated eval mode is no longer above training mode"
assert abs(gaps[200][2] - gaps[200][1]) < 0.01, "recalibration no longer changes little after 200 steps"

# %% [markdown]
# The table above: after a few steps the moving variance is a fraction of the recalibrated one
# (the zero start again, its last column), and eval mode normalizes by statistics the data does
# not have; its accuracy is that of a slightly different network, here below training mode's.
# Once the averages have forgotten their start (from a few dozen steps on), eval mode is a little
# *above* training mode instead (Question 6). Recalibrated, eval mode normalizes by the
# statistics of the data through the final weights, and every network is in that second case,
# the early ones included. After a few hundred steps recalibration changes little. docs/running_statistics.md measures
# the same on the breast-cancer and MNIST networks.

# %% [markdown]
# **Question 6.** After recalibration, eval-mode accuracy is often a little *above* training-mode
# accuracy on the very rows it was recalibrated on. Why can normalizing by averages beat
# normalizing by each batch's own statistics?

# %% [markdown] tags=["answer"]
# Training mode normalizes each batch by its own mean and variance, estimates from 32 rows that
# vary from batch to batch: each row gets a little noise that depends on its batch-mates (Section
# 3). The recalibrated averages are the mean of those estimates over all batches, so eval mode
# applies the same normalization to every row, without that noise. The network learned to cope
# with the noise (it acts as a regularizer), but predicts slightly better without it.

# %% [markdown]
# **Question 7.** Name situations in which recalibrating after training matters, beyond a network
# stopped early.

# %% [markdown] tags=["answer"]
# Whenever the weights a network is evaluated with are not the ones its averages were collected
# with: after averaging weights (stochastic weight averaging, Izmailov et al., 2018: the averaged
# weights never saw a batch, hence PyTorch's `update_bn`); after loading or editing weights (pruning,
# quantizing, copying layers into another model); when the last steps moved the weights fast (a
# large final learning rate). And when the data at test time differ from the training data: the
# averages recomputed on the new data adapt the network to it (AdaBN, Li et al., 2016). When the
# averages were collected at a batch size very different from training's, too.

# %% [markdown]
# ## Summary
#
# - The momentum $m$ is the weight of the new batch (PyTorch, dp; Keras's momentum is $1 - m$):
#   batch weights fall as $(1-m)^{\text{age}}$, a window of about $1/m$ batches.
#   `momentum=None` is the plain mean of all batches so far.
# - dp's averages start at zeros (PyTorch's variance at ones); the start fades as $(1-m)^k$, so a
#   network evaluated in its first few dozen steps is normalized by wrong statistics.
# - dp stores the biased batch variance in the average (`unbiased_average=True` stores PyTorch's
#   unbiased one); normalization always uses the biased one.
# - Training mode makes a row's prediction depend on its batch, more so as the batch shrinks;
#   eval mode does not.
# - Recalibrating (`dp.train.recalibrate`, PyTorch's `update_bn`) replaces the averages by the
#   plain mean of the statistics through the final weights.
