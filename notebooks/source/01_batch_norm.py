# %% [markdown] tags=["exercise"]
# # Batch normalization: exercises
#
# This notebook walks you through batch normalization (Ioffe & Szegedy, 2015) and has you
# build it yourself on **dp**, a small automatic-differentiation library on NumPy. You will
#
# 1. show that a linear layer followed by batch norm needs no bias,
# 2. write a batch-norm layer,
# 3. give it moving averages, so that it can handle new data,
# 4. train a small network on the breast-cancer data set with gradient descent.
#
# **How to work.** Run the cells from top to bottom. Each task has a cell marked `# TODO`
# that raises `NotImplementedError` until you replace it with your code, followed by a
# **check** cell: run it, and when it prints "passed", go on to the next task. Don't edit
# the checks. Each question has a cell for your answer under it. The worked solutions
# and our answers are in `01_batch_norm_solutions.ipynb`, but try first!

# %% [markdown] tags=["solutions"]
# # Batch normalization: worked solutions
#
# The solved version of `01_batch_norm.ipynb`. It builds batch normalization
# (Ioffe & Szegedy, 2015) on **dp**, a small automatic-differentiation library on NumPy,
# in four tasks:
#
# 1. a linear layer followed by batch norm needs no bias (the derivation, then a numerical check),
# 2. a batch-norm layer written with elementary operations, checked against dp's own
#    layer and against finite differences,
# 3. moving averages, so that the layer can handle new data,
# 4. training on the breast-cancer data set, evaluation in eval mode, and what goes wrong
#    without it.
#
# It ends with a comparison of training with and without batch norm. The check cells are
# the same as in the exercise; here they all pass, and each question has our answer.

# %% tags=["solutions"]
import matplotlib.pyplot as plt  # for the figure at the end

# %%
import numpy as np

import dp  # loads dp.nn, dp.optim, dp.data and dp.train too; the tools (dp.draw, dp.plots) load on first use

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Why normalize?
#
# ### Normalizing the features
#
# Gradient descent works best when the input features have comparable scales. In the
# breast-cancer data, the "mean area" of a tumour is in the hundreds or thousands, its
# "mean smoothness" around 0.1: a step size that suits one feature is far too large or far
# too small for the other. The usual remedy is to *standardize* each feature $j$: subtract
# its mean $\mu_j$ and divide by its standard deviation $\sigma_j$,
#
# $$\hat x_{ij} = \frac{x_{ij} - \mu_j}{\sigma_j} .$$
#
# ### Deeper layers see shifting statistics
#
# Standardizing the inputs helps the first layer only. The second layer's input is the
# first layer's output, $h = \tanh(x W_1)$, and the mean and spread of $h$ depend on $W_1$,
# which changes at every step of training. So every deeper layer learns from inputs whose
# statistics keep moving under it, and when they drift far from zero they push $\tanh$
# into its flat parts, where the gradients vanish. Ioffe and Szegedy called this *internal
# covariate shift*. Their remedy: standardize inside the network too, before each
# activation, using the statistics of the current mini-batch. (That this is *why* batch
# norm helps was disputed later, by Santurkar et al., 2018: notebook 04 looks at their
# evidence.)

# %% [markdown]
# ### Batch normalization
#
# Take a mini-batch of $N$ rows $z_1, \dots, z_N$, the outputs of a linear layer. For each
# feature (each column), batch normalization computes
#
# $$\mu = \frac1N \sum_{i=1}^N z_i, \qquad
#   \sigma^2 = \frac1N \sum_{i=1}^N (z_i - \mu)^2, \qquad
#   \hat z_i = \frac{z_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
#   y_i = \gamma\, \hat z_i + \beta .$$
#
# Every column of $\hat z$ has mean 0 and standard deviation 1 (almost exactly: the small
# $\epsilon$, here $10^{-5}$, keeps the division safe when a feature hardly varies in the
# batch). The variance is the *biased* one, dividing by $N$, as in the paper.
#
# > **A correction to the classic version of this material.** It wrote the normalization
# > as $\hat z_i = (z_i - \mu) / \sigma^2$, dividing by the *variance*. That does not
# > standardize: the result has standard deviation $\sigma / \sigma^2 = 1 / \sigma$, not 1.
# > The denominator is the standard deviation, $\sqrt{\sigma^2 + \epsilon}$. A feature whose
# > standard deviation is 10:

# %%
z = np.random.default_rng(0).normal(5, 10, size=(1000, 1))  # mean 5, standard deviation 10
mu, var = z.mean(), z.var()
print("(z - mu) / variance:             std", ((z - mu) / var).std().round(4))
print("(z - mu) / sqrt(variance + eps): std", ((z - mu) / np.sqrt(var + 1e-5)).std().round(4))

# %% [markdown]
# ### Gamma and beta: a learnable scale and shift
#
# Forcing every feature to mean 0 and standard deviation 1 could cost the network
# something: the next layer might work better with inputs spread wider, or shifted. So
# batch norm ends with a scale $\gamma$ and a shift $\beta$ per feature, learned by gradient
# descent like the weights. Each output feature has mean $\beta$ and standard deviation
# $|\gamma|$. With $\gamma = \sqrt{\sigma^2 + \epsilon}$ and $\beta = \mu$ the layer would give
# back its input unchanged, so normalizing takes nothing away. What changes is *how* the
# network sets the mean and spread of a feature: directly, through two parameters, instead
# of as a side effect of all the weights below.
#
# ### New data
#
# A trained network must also classify new patients, perhaps one at a time, and a single
# row has no useful batch statistics. Task 3 deals with that.

# %% [markdown]
# ## dp in five minutes
#
# A `dp.Node` wraps a NumPy array, its `.value`. Operations on Nodes build a graph that
# dp can differentiate. The conventions you need:
#
# - A 2-D array keeps its shape; a 1-D array becomes a column (n, 1).
# - Reductions keep their axes: for `z` of shape (N, F), `z.mean(axis=0)` and
#   `z.var(axis=0)` have shape (1, F), one entry per column, so `z - z.mean(axis=0)`
#   subtracts each column's mean. `var` is the biased variance (it divides by N).
# - A Node with a *name* is a parameter: `loss.grad(1)` returns a dict
#   `{name: gradient}` for every named Node the loss depends on, each gradient with the
#   shape of its Node. Nodes without a name (data, constants) get no gradient.
# - Operations: `+ - * / **`, `@` (matrix product), `.sum()`, `.mean(axis=0)`,
#   `.var(axis=0)`, `.sqrt()`, `.tanh()`, `.sigmoid()`, and NumPy arrays or numbers
#   mixed in freely.

# %%
x = dp.Node(np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]))  # data: no name
w = dp.Node(np.array([[0.5, -1.0]]), "w")  # a parameter: a (1, 2) row
print("column means", x.mean(axis=0).value, "variances", x.var(axis=0).value, "shape", x.mean(axis=0).shape)

loss = ((x * w - x.mean(axis=0)) ** 2).sum()
print("loss", loss.value, "gradient", loss.grad(1))

# %% [markdown]
# ## The network
#
# The reference network of this course classifies breast tumours from 30 measurements:
#
#     30 features -> linear l1 -> batch norm bn1 -> tanh      (20 units)
#                 -> linear l2 -> batch norm bn2 -> tanh      (10 units)
#                 -> linear l3 -> sigmoid                     (the probability that the tumour is benign)
#
# Like every dp model, it keeps its whole state in one dict, `self.params` (name → NumPy
# array). A *layer factory* such as `self.linear(30, 20, "l1")` registers the layer's
# parameters there (`weight_l1`, and `bias_l1` unless `bias=False`) and returns a function
# that computes the layer. That function reads `self.params` every time it runs, so when
# gradient descent puts a new array into `params`, the layer uses it.
#
# `self.batch_norm(fan_in, name)` is the factory you will write. `dp.NeuralNode` has one of
# its own, dp's optimized layer, and `ReferenceNet` as written here would use it. In
# Tasks 2 and 3 you write a subclass of `ReferenceNet` whose `batch_norm` method
# **overrides** dp's: `__init__` then builds the network with *your* layer, and the checks
# test your code, not the library's.


# %%
class ReferenceNet(dp.NeuralNode):
    # 30 -> 20 -> 10 -> 1, batch norm before each tanh; forward returns P(benign), shape (N, 1)

    def __init__(self, seed=0):
        super().__init__(seed)  # self.params = {}, and a seeded generator for the initial weights
        self.l1 = self.linear(30, 20, "l1", bias=False)  # no bias before batch norm: Task 1
        self.bn1 = self.batch_norm(20, "bn1")
        self.l2 = self.linear(20, 10, "l2", bias=False)
        self.bn2 = self.batch_norm(10, "bn2")
        self.l3 = self.linear(10, 1, "l3")

    def forward(self, x, train=True):
        h = self.bn1(self.l1(x), train).tanh()
        h = self.bn2(self.l2(h), train).tanh()
        return self.l3(h).sigmoid()


# %% [markdown]
# (The classic notebook started `__init__` with `self.params = dict()`; `super().__init__(seed)`
# does that too, and seeds the random initial weights, so every run gives the same numbers.)

# %% [markdown] tags=["exercise"]
# ## Task 1: a bias before batch norm is redundant
#
# **What to do.**
#
# (a) Using the formulas of *Why normalize?*, show that when a linear layer $z_i = x_i W + b$
# is followed by batch norm, the output $y_i$ does not depend on the bias $b$. What does
# that mean for the gradient $\partial L / \partial b$ of a loss $L$? Write your argument in
# the Markdown cell below.
#
# (b) Write `normalize(z, eps=1e-5)`: the normalization step of batch norm,
# $\hat z = (z - \mu) / \sqrt{\sigma^2 + \epsilon}$ per column of a Node `z` of shape
# (N, F), with dp's Node operations.
#
# **The check** computes $z = x W + b$ for random data, and verifies that
# (1) every column of `normalize(z)` has mean 0 and standard deviation 1,
# (2) `normalize(x @ W + b)` equals `normalize(x @ W)`: the bias changes nothing, and
# (3) the gradient of a loss with respect to $b$ is zero: the bias never learns.

# %% [markdown] tags=["solutions"]
# ## Task 1: a bias before batch norm is redundant
#
# *Show that when a linear layer is followed by batch norm, its bias can be omitted; then
# write `normalize(z)`, the normalization step, and check the claim numerically.*

# %% [markdown] tags=["answer"]
# ### (a) The derivation
#
# Take a batch of $N$ rows $x_1, \dots, x_N$ and a linear layer with weights $W$ and bias $b$
# (a row, one entry per feature): $z_i = x_i W + b$. The batch mean of the $z_i$ is that of
# the $x_i W$, shifted by $b$:
#
# $$\mu_z = \frac1N \sum_{i=1}^N (x_i W + b) = \mu_{xW} + b ,$$
#
# so the bias cancels in the centered values,
#
# $$z_i - \mu_z = x_i W - \mu_{xW} ,$$
#
# and therefore also in the variance, which is computed from them:
# $\sigma_z^2 = \frac1N \sum_i (z_i - \mu_z)^2 = \sigma_{xW}^2$. The output
#
# $$y_i = \gamma\, \frac{z_i - \mu_z}{\sqrt{\sigma_z^2 + \epsilon}} + \beta
#       = \gamma\, \frac{x_i W - \mu_{xW}}{\sqrt{\sigma_{xW}^2 + \epsilon}} + \beta$$
#
# does not depend on $b$ at all. Whatever shift the bias provides, batch norm removes, and
# $\beta$ puts back a learned one.
#
# **The gradient.** Since $y$ does not depend on $b$, neither does any loss computed from it:
# $\partial L / \partial b = 0$. The bias never learns; it keeps its initial value and does
# nothing but cost computation. In eval mode (Task 3) the moving mean, collected from the
# $z_i$, absorbs $b$, and it cancels again. So we drop it: `linear(..., bias=False)`, one
# parameter fewer per feature. (`docs/bias_before_batch_norm.md` also works through the
# backward pass.)

# %% [markdown] tags=["solutions"]
# ### (b) `normalize`


# %% tags=["stub"]
def normalize(z, eps=1e-5):
    # (z - mean) / sqrt(var + eps), per column of the Node z (N, F), with the batch's mean and
    # biased variance; returns a Node of shape (N, F).
    # TODO (Task 1): replace the next line with your code.
    raise NotImplementedError("Task 1: write normalize(z)")


# %% tags=["solution"]
def normalize(z, eps=1e-5):
    # (z - mean) / sqrt(var + eps), per column of the Node z (N, F), with the batch's mean and
    # biased variance; returns a Node of shape (N, F).
    return (z - z.mean(axis=0)) / (z.var(axis=0) + eps).sqrt()


# %% tags=["check"]
# Check for Task 1
rng = np.random.default_rng(1)
x = dp.Node(rng.normal(size=(50, 30)))
W = dp.Node(rng.normal(size=(30, 20)), "W")
b = dp.Node(rng.normal(size=(1, 20)), "b")
with_bias, without_bias = normalize(x @ W + b), normalize(x @ W)
use_nodes = "use dp.Node operations on z (z.mean(axis=0), z.var(axis=0), .sqrt()), not NumPy on z.value"

assert isinstance(with_bias, dp.Node), f"normalize should return a dp.Node, not {type(with_bias).__name__}: {use_nodes}"
assert with_bias.shape == (50, 20), f"normalize should keep the shape (50, 20), got {with_bias.shape}"
assert np.allclose(with_bias.value.mean(axis=0), 0, atol=1e-10), (
    "the columns' means are not 0: subtract each column's mean, z.mean(axis=0) (axis=0: over the rows)"
)
assert np.allclose(with_bias.value.std(axis=0), 1, atol=1e-4), (
    "the columns' standard deviations are not 1: divide by the standard deviation, (z.var(axis=0) + eps).sqrt(), "
    "not by the variance"
)
assert np.allclose(with_bias.value, without_bias.value, atol=1e-10), (
    "the bias changed the output: normalize each column with its own batch mean and variance (axis=0)"
)

u = rng.normal(size=(50, 20))  # a loss L = sum(u * y): any y_i can change it
grads = (u * with_bias).sum().grad(1)
assert {"W", "b"} <= set(grads), f"the gradient has no entry for W and b: {use_nodes}, so that grad can reach b"
print("largest |dL/db|:", np.abs(grads["b"]).max(), "  largest |dL/dW|:", np.abs(grads["W"]).max())
assert np.allclose(grads["b"], 0, atol=1e-10), (
    "the bias has a gradient: compute the mean and variance as Nodes from z (z.mean(axis=0), z.var(axis=0)), "
    "not as constants from z.value, so that the gradient through them cancels b's"
)
print("Task 1 passed")

# %% [markdown]
# **Question 1.** The check printed the largest $|\partial L / \partial b|$: is it exactly 0?
# And why does `ReferenceNet` build `l1` and `l2` with `bias=False`, but `l3` with a bias?

# %% [markdown] tags=["answer"]
# The gradient of $b$ is zero up to rounding: the printed value is of the order of float64's
# rounding error (about $10^{-16}$ relative to the numbers summed), while $W$ gets a gradient
# far from zero. That is why `ReferenceNet` builds `l1` and `l2` with `bias=False`; only the
# output layer `l3`, which no batch norm follows, keeps its bias: there it does shift the
# output, the log-odds of a benign tumour.

# %% [markdown] tags=["exercise"]
# ## Task 2: implement batch norm
#
# **What to do.** Write the method `batch_norm(self, fan_in, name)` of `BatchNormNet` below.
# It must
#
# - register two parameters in `self.params`: `gamma_{name}`, ones of shape (1, fan_in), and
#   `beta_{name}`, zeros of shape (1, fan_in);
# - return a function `forward(x, train=True)` that, for a Node `x` of shape (N, fan_in),
#   returns $\gamma \hat x + \beta$ (a Node of shape (N, fan_in)), where $\hat x$ is normalized
#   with the batch's own statistics: your `normalize` does that. Ignore `train` for now;
#   Task 3 uses it.
#
# Two details matter:
#
# - Make $\gamma$ and $\beta$ *named* Nodes, `dp.Node(self.params[key], key)` with
#   `key = f"gamma_{name}"`: the name is what makes `loss.grad(1)` return their gradients
#   under those keys.
# - Read `self.params` inside `forward`, every time it runs, not once in `batch_norm`.
#   Gradient descent puts new arrays into `params`; a layer that kept the old ones would
#   never see them.
#
# **The check** builds a `BatchNormNet` and feeds `bn2` a batch of 100 rows of N(0, 1) data;
# then it puts random $\gamma$ and $\beta$ for `bn2` into `net.params` (after the layer was
# built: that tests the second detail), feeds it the same batch again, and verifies that each
# output column now has mean $\beta$ and standard deviation $|\gamma|$, to $10^{-5}$.
# (Exactly, the standard deviation is $|\gamma| \sqrt{\sigma^2 / (\sigma^2 + \epsilon)}$, a
# hair smaller because of $\epsilon$; the check keeps $|\gamma| \le 1$ so that this stays
# inside the tolerance.) It also checks that the gradient has entries for `gamma_bn2` and
# `beta_bn2`.

# %% [markdown] tags=["solutions"]
# ## Task 2: implement batch norm
#
# *Write `batch_norm(self, fan_in, name)`: register `gamma_{name}` (ones) and `beta_{name}`
# (zeros), both (1, fan_in), and return `forward(x, train=True)` computing
# $\gamma \hat x + \beta$ with the batch's statistics. Check that the output has mean $\beta$
# and standard deviation $|\gamma|$.*
#
# The parameters are *named* Nodes, so that `loss.grad(1)` returns their gradients under
# their keys, and `forward` reads `self.params` each time it runs, so that it sees the new
# arrays gradient descent puts there. This method overrides `dp.NeuralNode.batch_norm`, so
# `ReferenceNet.__init__` builds the network with it.


# %% tags=["stub"]
class BatchNormNet(ReferenceNet):
    def batch_norm(self, fan_in, name):
        # Register gamma_{name} (ones) and beta_{name} (zeros), both (1, fan_in), in self.params;
        # return forward(x, train=True): gamma * normalize(x) + beta for a Node x (N, fan_in).
        # TODO (Task 2): replace the next line with your code.
        raise NotImplementedError("Task 2: write BatchNormNet.batch_norm")


# %% tags=["solution"]
class BatchNormNet(ReferenceNet):
    def batch_norm(self, fan_in, name):
        gamma_key, beta_key = f"gamma_{name}", f"beta_{name}"
        self.params[gamma_key] = np.ones((1, fan_in))
        self.params[beta_key] = np.zeros((1, fan_in))

        def forward(x, train=True):  # train is ignored until Task 3
            gamma = dp.Node(self.params[gamma_key], gamma_key)  # read at every call
            beta = dp.Node(self.params[beta_key], beta_key)
            return gamma * normalize(x) + beta

        return forward


# %% tags=["check"]
# Check for Task 2
net = BatchNormNet()
for key in ("gamma_bn1", "beta_bn1", "gamma_bn2", "beta_bn2"):
    assert key in net.params, f"{key} is not in net.params: register it in batch_norm, self.params[key] = ..."
assert net.params["gamma_bn2"].shape == (1, 10), "gamma_bn2 should have shape (1, 10): np.ones((1, fan_in))"

rng = np.random.default_rng(2)
gamma = rng.uniform(-1, 1, size=(1, 10))
beta = rng.uniform(-2, 2, size=(1, 10))
x = dp.Node(rng.normal(0, 1, size=(100, 10)))
as_built = net.bn2(x).value  # with the gamma_bn2 (ones) and beta_bn2 (zeros) the layer was built with
net.params["gamma_bn2"], net.params["beta_bn2"] = gamma, beta  # new arrays, as gradient descent puts there

out = net.bn2(x)
mean, std = out.value.mean(axis=0), out.value.std(axis=0)
print("largest |mean - beta|:   ", np.abs(mean - beta).max())
print("largest |std - |gamma||: ", np.abs(std - np.abs(gamma)).max())
read_at_every_call = (
    "did not change when net.params got a new {0}_bn2: forward must read self.params[f'{0}_{{name}}'] each time "
    "it runs, dp.Node(self.params[key], key) inside forward, not once in batch_norm (the layer would keep the "
    "array it was built with, and never see what gradient descent puts into params)"
)
assert not np.allclose(mean, as_built.mean(axis=0), atol=1e-5), "the output's mean " + read_at_every_call.format("beta")
assert not np.allclose(std, as_built.std(axis=0), atol=1e-5), "the output's std " + read_at_every_call.format("gamma")
assert np.allclose(mean, beta, atol=1e-5), "the output's mean is not beta: return gamma * normalize(x) + beta"
assert np.allclose(std, np.abs(gamma), atol=1e-5), "the output's std is not |gamma|: return gamma * normalize(x) + beta"
grads = out.sum().grad(1)
assert {"gamma_bn2", "beta_bn2"} <= set(grads), (
    f"gamma and beta get no gradient (the gradient has {sorted(grads)}): make them named Nodes, "
    "dp.Node(self.params[key], key)"
)
print("Task 2 passed")

# %% [markdown] tags=["solutions"]
# ### Checking against dp's own layer
#
# dp's own batch norm, the layer behind `dp.NeuralNode.batch_norm` (here as the plain
# function `dp.nn.batch_norm`, without moving averages), is a single *fused* operation
# whose backward pass is written by hand, as the paper's chain rule (section 3), one line per
# gradient. Substituted into each other, those lines come to (with
# $g_i = \partial L / \partial y_i$ and sums over the batch)
#
# $$\frac{\partial L}{\partial \gamma} = \sum_i g_i \hat x_i, \qquad
#   \frac{\partial L}{\partial \beta} = \sum_i g_i, \qquad
#   \frac{\partial L}{\partial x_i} = \frac{\gamma}{N \sqrt{\sigma^2 + \epsilon}}
#   \Big( N g_i - \sum_j g_j - \hat x_i \sum_j g_j \hat x_j \Big).$$
#
# Ours is composed of elementary operations (a mean, a variance, a subtraction, a square
# root, a division, a product, a sum), and dp chains their simple derivatives. The two
# must agree, in the output and in all three gradients. We compare them on a random batch,
# with the loss $L = \sum_i u_i \cdot y_i$ for a random $u$, so that every output matters.

# %% tags=["solutions"]
rng = np.random.default_rng(3)
x, gamma, beta = rng.normal(3, 2, size=(8, 4)), rng.uniform(-2, 2, size=(1, 4)), rng.normal(size=(1, 4))
u = rng.normal(size=(8, 4))


def ours(x, gamma, beta):
    return gamma * normalize(x) + beta


def output_and_gradients(layer):
    y = layer(dp.Node(x, "x"), dp.Node(gamma, "gamma"), dp.Node(beta, "beta"))
    return y.value, (u * y).sum().grad(1)


y_ours, grads_ours = output_and_gradients(ours)
y_dp, grads_dp = output_and_gradients(dp.nn.batch_norm)
print("outputs differ by at most", np.abs(y_ours - y_dp).max())
for key in ("x", "gamma", "beta"):
    print(f"dL/d{key:<5} differ by at most", np.abs(grads_ours[key] - grads_dp[key]).max())

# %% [markdown] tags=["solutions"]
# Both agree to rounding error (the differences printed above). A second, independent check needs no
# other implementation at all: `dp.gradcheck` compares dp's gradients with *finite
# differences*, $\partial L / \partial x \approx (L(x + h) - L(x - h)) / 2h$, one input entry at a
# time, and returns the largest relative error (it raises if that exceeds $10^{-6}$).

# %% tags=["solutions"]
print("ours:     largest relative error", dp.gradcheck(ours, x, gamma, beta))
print("dp's own: largest relative error", dp.gradcheck(dp.nn.batch_norm, x, gamma, beta))

# %% [markdown] tags=["solutions"]
# Both errors are far below the tolerance: finite differences cannot resolve much smaller
# ones, since the step $h$ (here $10^{-6}$) both truncates the derivative and magnifies
# rounding error. A wrong gradient shows up as an error far above the tolerance, and
# `gradcheck` raises.

# %% [markdown] tags=["solutions"]
# ### Looking inside: the graph
#
# `dp.draw` draws the graph dp built, each node with its operation, its shape, its value and
# (with `grads=True`) the gradient of the loss with respect to it, which `grad` computes on
# the way but returns only for the named nodes. Below, the composed batch norm (the paper's
# four lines, `dp.nn.batch_norm_composed`, like our `normalize` and its $\gamma$, $\beta$)
# on a tiny batch of 3 rows and 2 features, then dp's own layer on the same batch.
#
# Follow the arrows out of `x`: it reaches the output through $x - \mu$ directly, through
# the mean $\mu$, and through the variance. The gradient of each $x_i$ adds up what comes
# back along all three paths, from every row of its feature: the three terms of the
# formula above. In dp's own layer the ten operations are one node, `batch_norm_closed_form`,
# whose vjp computes that formula: the same gradients (compare the boxes of `x`), in one step.

# %% tags=["solutions"]
tiny = dp.Node(x[:3, :2], "x"), dp.Node(gamma[:, :2], "gamma"), dp.Node(beta[:, :2], "beta")
dp.draw((u[:3, :2] * dp.nn.batch_norm_composed(*tiny)).sum(), grads=True)

# %% tags=["solutions"]
dp.draw((u[:3, :2] * dp.nn.batch_norm(*tiny)).sum(), grads=True)

# %% [markdown]
# ## Task 3: new data, moving averages
#
# After training, the network must classify new patients, perhaps one at a time. The
# statistics of one row are useless: its mean is the row itself and its variance 0, so
# $\hat x = 0$ for every patient and everyone gets the same prediction. And even in a full
# batch, the prediction for one patient should not depend on who else is in the batch.
#
# So batch norm keeps a second pair of statistics: during training, moving (exponential)
# averages of the batch means and variances, updated at every batch,
#
# $$\bar\mu \leftarrow (1 - m)\, \bar\mu + m\, \mu_B, \qquad
#   \bar\sigma^2 \leftarrow (1 - m)\, \bar\sigma^2 + m\, \sigma_B^2 ,$$
#
# with momentum $m = 0.1$, the weight of the new batch (as in PyTorch; Keras's `momentum=0.99`
# is the weight of the old average, $1 - m$). In **eval mode** (`train=False`) the layer
# normalizes with $\bar\mu$ and $\bar\sigma^2$ instead of the batch's statistics, and changes
# nothing.
#
# (PyTorch's `BatchNorm1d` differs in two details you will meet there: its `running_var`
# starts at 1, not 0, and averages the unbiased variance $\sigma_B^2 N / (N - 1)$. Here, as in
# dp's own layer, both averages start at 0 and average the biased variance. Notebook 05 looks
# at what the start costs.)

# %% [markdown] tags=["exercise"]
# **What to do.** Write `Net.batch_norm(self, fan_in, name)`: as in Task 2 (start from a copy
# of your code), and also
#
# - register `avg_mean_{name}` and `avg_variance_{name}`, zeros of shape (1, fan_in), in
#   `self.params`;
# - in `forward(x, train=True)`: if `train`, normalize with the batch's statistics and
#   update both averages (momentum 0.1); otherwise normalize with the averages, and change
#   nothing.
#
# Hints: the averages are *state*, not learned parameters. Store NumPy arrays in `params`
# (`mean.value`, not the Node `mean`), and use them in eval mode as Nodes without a name,
# `dp.Node(array)`, which get no gradient. Put new arrays into `params` (`params[key] = ...`)
# rather than changing the old ones in place, as gradient descent does.
#
# **The check** makes a fresh `Net` and verifies that the averages of `bn1` start at 0; feeds
# 100 batches of 1000 rows of N(42, 10²) data (mean 42, standard deviation 10) through `bn1`
# *without* a `train` argument, so in training mode; and verifies that `avg_mean_bn1` is 42
# (to within 1) and `avg_variance_bn1` is 100 (to within 5). Then a batch of N(52, 10²) data
# in eval mode must come out normalized with the averages, not with its own statistics (mean
# about $(52 - 42) / 10 = 1$, standard deviation about 1), leave `params` unchanged, and give
# no gradient to the averages.

# %% [markdown] tags=["solutions"]
# *Write `Net.batch_norm`: Task 2's layer plus `avg_mean_{name}` and `avg_variance_{name}`
# (zeros, (1, fan_in)), updated with momentum 0.1 in training mode and used, unchanged, in
# eval mode.*
#
# The averages are state, not learned parameters: `params` holds their NumPy arrays
# (`mean.value`, not the Node), and eval mode wraps them in Nodes without a name, which get no
# gradient. Each update puts a new array into `params` instead of writing into the old one.


# %% tags=["stub"]
class Net(ReferenceNet):
    def batch_norm(self, fan_in, name):
        # As in Task 2, plus avg_mean_{name} and avg_variance_{name} (zeros, (1, fan_in)) in
        # self.params. forward(x, train=True): if train, normalize with the batch's statistics and
        # update the averages (momentum 0.1); else normalize with the averages, changing nothing.
        # TODO (Task 3): replace the next line with your code.
        raise NotImplementedError("Task 3: write Net.batch_norm")


# %% tags=["solution"]
class Net(ReferenceNet):
    def batch_norm(self, fan_in, name, momentum=0.1, eps=1e-5):
        gamma_key, beta_key = f"gamma_{name}", f"beta_{name}"
        mean_key, variance_key = f"avg_mean_{name}", f"avg_variance_{name}"
        params = self.params
        params[gamma_key], params[beta_key] = np.ones((1, fan_in)), np.zeros((1, fan_in))
        params[mean_key], params[variance_key] = np.zeros((1, fan_in)), np.zeros((1, fan_in))

        def forward(x, train=True):
            if train:
                mean, var = x.mean(axis=0), x.var(axis=0)
                params[mean_key] = (1 - momentum) * params[mean_key] + momentum * mean.value
                params[variance_key] = (1 - momentum) * params[variance_key] + momentum * var.value
            else:
                mean, var = dp.Node(params[mean_key]), dp.Node(params[variance_key])  # no name: constants
            gamma = dp.Node(params[gamma_key], gamma_key)
            beta = dp.Node(params[beta_key], beta_key)
            return gamma * (x - mean) / (var + eps).sqrt() + beta

        return forward


# %% tags=["check"]
# Check for Task 3
net = Net()
for key in ("avg_mean_bn1", "avg_variance_bn1"):
    assert key in net.params and net.params[key].shape == (1, 20), (
        f"{key} should be in net.params, shape (1, 20): register it in batch_norm, np.zeros((1, fan_in))"
    )
    assert (net.params[key] == 0).all(), f"{key} should start at 0: np.zeros((1, fan_in))"

rng = np.random.default_rng(4)
for _ in range(100):
    net.bn1(dp.Node(rng.normal(42, 10, size=(1000, 20))))  # no train argument: training mode
not_arrays = sorted(key for key, value in net.params.items() if not isinstance(value, np.ndarray))
assert not not_arrays, (
    f"net.params holds NumPy arrays, not Nodes: store mean.value, not the Node mean ({', '.join(not_arrays)})"
)
print("avg_mean_bn1    ", net.params["avg_mean_bn1"][0, :5], "...")
print("avg_variance_bn1", net.params["avg_variance_bn1"][0, :5], "...")
update = "in training mode (train=True, the default), update it at every batch: (1 - 0.1) * average + 0.1 * "
assert np.allclose(net.params["avg_mean_bn1"], 42, atol=1), "avg_mean_bn1 is not 42: " + update + "mean.value"
assert np.allclose(net.params["avg_variance_bn1"], 100, atol=5), "avg_variance_bn1 is not 100: " + update + "var.value"

before = net.get_param()  # a copy of every entry of params
out = net.bn1(dp.Node(rng.normal(52, 10, size=(1000, 20))), train=False)
print("eval mode, a batch of mean 52: output mean", out.value.mean().round(3), "std", out.value.std().round(3))
assert all(np.array_equal(before[k], net.params[k]) for k in before), (
    "eval mode changed params: with train=False, update nothing"
)
assert abs(out.value.mean() - 1) < 0.1 and abs(out.value.std() - 1) < 0.1, (
    "eval mode should normalize with the moving averages (mean 42, variance 100), so that this batch of mean 52 "
    "comes out with mean (52 - 42) / 10 = 1: with train=False, use dp.Node(params[...]) of avg_mean and "
    "avg_variance, not the batch's own statistics"
)
grads = out.sum().grad(1)
assert not any(k.startswith("avg_") for k in grads), (
    "the moving averages should get no gradient: wrap them in Nodes without a name, dp.Node(array)"
)
print("Task 3 passed")

# %% [markdown]
# **Question 2.** The check fed `bn1` 100 batches. How much weight does the averages' start
# at zero still have after them? And over about how many of the last batches is the
# batch-to-batch noise of the averages smoothed?

# %% [markdown] tags=["answer"]
# Each update multiplies the old average by $1 - m = 0.9$, so after 100 batches the start at
# zero weighs $0.9^{100} \approx 3 \cdot 10^{-5}$: the averages have forgotten it. The batch
# $k$ steps back weighs $m (1 - m)^k$, weights that fall by a factor $e$ every
# $-1 / \ln(0.9) \approx 9.5$ batches: the averages smooth the batch-to-batch noise over
# roughly the last $1/m = 10$ batches.

# %% [markdown]
# ## Task 4: gradient descent
#
# ### The data
#
# The Wisconsin breast-cancer data set: 569 tumours, 30 measurements each, labelled 0
# (malignant) or 1 (benign). `dp.data.breast_cancer` splits it into training and test rows
# (stratified: both parts have the same share of each class) and standardizes the features.
#
# > **A second correction to the classic version.** It standardized the whole data set and
# > *then* split it. The mean and standard deviation it trained with were then computed
# > partly from the test rows: information from the test set leaked into training, and the
# > test score was no longer an honest estimate of performance on new patients. The right
# > order: split first, compute the mean and standard deviation on the training rows only,
# > and scale the test rows with those same numbers, as new patients will be scaled.
# > `dp.data.breast_cancer` does exactly that (`split.mean` and `split.std` come from the
# > training rows). So the training columns have mean 0 and standard deviation 1 exactly,
# > and the test columns only roughly: they are scaled with numbers computed from other rows.

# %%
split = dp.data.breast_cancer(test_size=0.2, seed=0)
print("training rows", split.x_train.shape, " test rows", split.x_test.shape)
for part, x in (("training", split.x_train), ("test", split.x_test)):
    means, stds = x.mean(axis=0), x.std(axis=0)
    print(f"{part:>8} columns: largest |mean| {np.abs(means).max():.3f},", end=" ")
    print(f"standard deviations from {stds.min():.3f} to {stds.max():.3f}")

# %% [markdown] tags=["exercise"]
# ### Training
#
# **What to do.** Write `gradient_descent(net, x, y, epochs, lrate, batch_size, seed)`:
# mini-batch gradient descent. In each epoch, shuffle the rows (with
# `rng = np.random.default_rng(seed)`, made once, and `rng.permutation(len(x))`), cut them
# into batches of `batch_size` rows, dropping the last, incomplete batch (a batch of a
# single row cannot be batch-normalized), and for each batch `xb, yb`:
#
# 1. `p = net.forward(xb)`: the probabilities, in training mode;
# 2. `loss = dp.nn.losses.binary_cross_entropy(p, yb)`: the cross-entropy, summed over the batch;
# 3. `grads = loss.grad(1)`, then the step
#    `net.params.update({k: net.params[k] - lrate * grads[k] for k in grads})`.
#
# `grads` has the learned parameters only (weights, biases, $\gamma$, $\beta$), so the step
# leaves the moving averages alone. Return a list with the mean loss per row of each epoch.
#
# **The check** trains a fresh `Net` for 10 epochs, verifies that the loss went down, that
# the moving averages moved (training mode), and that every batch had 50 rows, then
# evaluates it on the test rows **in eval mode** (`train=False`: the moving averages, not the
# test batch's statistics), and reports the test accuracy, which must reach 90%.

# %% [markdown] tags=["solutions"]
# ### Training
#
# *Train the reference network with mini-batch gradient descent and report its test
# accuracy.* Each epoch shuffles the rows and cuts them into batches, dropping the last,
# incomplete batch (a batch of a single row cannot be batch-normalized). Each step is the
# classic notebook's: the loss, its gradient `grads = loss.grad(1)`, and
# `params[k] - lrate * grads[k]` for every learned parameter. `grads` holds no moving
# averages, so the step leaves them alone.


# %% tags=["stub"]
def gradient_descent(net, x, y, epochs=10, lrate=0.01, batch_size=50, seed=0):
    # Mini-batch gradient descent on the rows of x (n, 30) and labels y (n, 1);
    # returns the mean loss per row of each epoch.
    # TODO (Task 4): replace the next line with your code.
    raise NotImplementedError("Task 4: write gradient_descent")


# %% tags=["solution"]
def gradient_descent(net, x, y, epochs=10, lrate=0.01, batch_size=50, seed=0):
    # Mini-batch gradient descent on the rows of x (n, 30) and labels y (n, 1);
    # returns the mean loss per row of each epoch.
    rng = np.random.default_rng(seed)
    batches = len(x) // batch_size  # the last, incomplete batch is dropped
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, batches * batch_size, batch_size):
            rows = order[start : start + batch_size]
            loss = dp.nn.losses.binary_cross_entropy(net.forward(x[rows]), y[rows])
            grads = loss.grad(1)
            net.params.update({k: net.params[k] - lrate * grads[k] for k in grads})
            total += loss.value.item()
        losses.append(total / (batches * batch_size))
    return losses


# %% tags=["check"]
# Check for Task 4
class CountingNet(Net):  # your Net, noting the number of rows of every batch it trains on
    def forward(self, x, train=True):
        if train:
            self.batch_rows.append(x.shape[0])
        return super().forward(x, train)


try:
    net = CountingNet(seed=0)
except Exception as error:  # Task 3's stub, or a Net that its check would refuse too
    raise AssertionError(f"solve Task 3 first: Net(seed=0) fails with {type(error).__name__}: {error}") from None
net.batch_rows = []
losses = gradient_descent(net, split.x_train, split.y_train, epochs=10, lrate=0.01, batch_size=50)
print("mean loss per row, by epoch:", np.round(losses, 3))
assert losses[-1] < losses[0], (
    "the training loss did not go down: for each batch, grads = loss.grad(1) of that batch's loss, then "
    "net.params[k] - lrate * grads[k] for every k in grads (minus: a step down the gradient)"
)
assert (net.params["avg_mean_bn1"] != 0).any(), (
    "the moving averages never moved (avg_mean_bn1 is still 0): train in training mode, net.forward(xb)"
)
full, left_over = divmod(len(split.x_train), 50)
print(f"{len(net.batch_rows)} batches of {sorted(set(net.batch_rows))} rows")
assert set(net.batch_rows) == {50}, (
    f"gradient_descent trained on batches of {sorted(set(net.batch_rows))} rows: drop the last, incomplete batch "
    f"of each epoch ({len(split.x_train)} rows make {full} batches of 50, and {left_over} rows are left out)"
)
assert len(net.batch_rows) == 10 * full, (
    f"10 epochs of {full} batches are {10 * full} steps, not {len(net.batch_rows)}: one step per batch, and "
    "`epochs` passes over the rows"
)

p = net.forward(split.x_test, train=False).value  # eval mode: normalized with the moving averages
accuracy = ((p > 0.5) == split.y_test).mean()
print(f"test accuracy: {accuracy:.1%} of {len(split.y_test)} tumours")
assert accuracy >= 0.9, (
    "the test accuracy is below 90%: check that each batch's rows x[rows] go with their labels y[rows], and the step"
)
print("Task 4 passed")

# %% [markdown]
# ### Why evaluation uses the moving averages
#
# What if we evaluated the test rows in training mode, normalizing them with their *own*
# batch statistics? Three ways to evaluate the trained network:
#
# - **(a)** eval mode: normalize with the moving averages from training (what we did);
# - **(b)** normalize the test rows with the test batch's own mean and variance: the whole
#   test set as one batch, then only the malignant tumours, then only the benign ones;
# - **(c)** one row at a time with "training-mode" statistics, as a clinic would see patients.
#
# Training mode also updates the moving averages (the test set would leak into the model),
# so we save `params` first and restore it afterwards.


# %%
def accuracy_of(x, y, train):
    return ((net.forward(x, train=train).value > 0.5) == y).mean()


saved = net.get_param()  # a copy: training mode below updates the moving averages
x_test, y_test = split.x_test, split.y_test
print(f"(a) eval mode, moving averages:      {accuracy_of(x_test, y_test, train=False):.1%}")
print(f"(b) the test set's own statistics:   {accuracy_of(x_test, y_test, train=True):.1%}")
for label, name in enumerate(split.target_names):
    rows = y_test[:, 0] == label
    print(
        f"    only the {rows.sum()} {name:9} tumours: eval mode {accuracy_of(x_test[rows], y_test[rows], False):.1%},"
        f" their own statistics {accuracy_of(x_test[rows], y_test[rows], True):.1%}"
    )
one_at_a_time = np.vstack([net.forward(x_test[i : i + 1], train=True).value for i in range(len(x_test))])
print(
    f"(c) one row at a time: P(benign) = {np.unique(one_at_a_time.round(6))} for every tumour;",
    f"accuracy {((one_at_a_time > 0.5) == y_test).mean():.1%}, the share of benign tumours {y_test.mean():.1%}",
)
net.set_param(saved)

# %% [markdown]
# What goes wrong:
#
# - **(b)** On the whole test set the damage is small: it is a random sample of the same
#   population as the training rows, so its statistics are close to the moving averages.
#   But a patient's prediction now depends on who else is in the batch. A batch of only
#   malignant tumours is normalized as if it were an average mix, about half of them look
#   benign, and the same happens the other way round, while in eval mode the very same rows
#   are classified as well as before. (It is also the in-network version of the second
#   classic error: the test set's statistics enter the computation.)
# - **(c)** A single row's batch mean is the row itself and its variance is 0, so
#   $x - \mu = 0$ and the layer outputs $\beta$ whatever the patient: every tumour gets the
#   same probability, and the accuracy is just the share of the class it happens to pick.
#   The layer of Tasks 2 and 3 does this silently. dp's own layer refuses, with an error that
#   says why:

# %%
model = dp.MLP(seed=0)  # the reference network with dp's own layers
try:
    model.forward(split.x_test[:1], train=True)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# dp's models also have `predict(x)`, which always uses eval mode (for the `Net` above it calls
# `forward(x, train=False)`).

# %% [markdown] tags=["solutions"]
# ## Training with and without batch norm
#
# Does batch norm help? We train dp's `MLP` (the reference network, with dp's own batch-norm
# layer, and the same network without batch norm, where the linear layers keep their biases)
# with plain gradient descent, and watch the training loss and the accuracy on a validation
# part held out from training (the test rows stay untouched). Same data, same initial
# weights, same learning rate. Then the same comparison for a deeper network: six sigmoid
# layers. A `dp.train.Monitor` looks inside each layer on the validation rows before
# training and after the last step (docs/monitor.md); it changes nothing of the run.

# %% tags=["solutions"]
data = dp.data.breast_cancer(test_size=0.2, validation_size=0.2, seed=0)
networks = {
    "reference network (2 tanh layers)": dict(),
    "deep network (6 sigmoid layers)": dict(sizes=(30, 20, 20, 20, 20, 20, 20, 1), activation="sigmoid"),
}
monitors = {}
fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
for row, (title, options) in zip(axes, networks.items()):
    for batch_norm in (True, False):
        model = dp.MLP(batch_norm=batch_norm, seed=0, **options)
        monitors[title, batch_norm] = monitor = dp.train.Monitor(data.x_val, every=300)
        history = dp.train.fit(
            model,
            data.x_train,
            data.y_train,
            dp.optim.SGD(lr=0.01),
            validation=(data.x_val, data.y_val),
            steps=300,
            batch_size=32,
            eval_every=10,
            monitor=monitor,
            progress=False,
        )
        label = "with batch norm" if batch_norm else "without batch norm"
        print(f"{title}, {label:>18}: training loss per row {history.loss[-1]:.3f},", end=" ")
        print(f"validation accuracy {history.val_accuracy[-1]:.1%} after {history.step[-1]} steps")
        row[0].plot(history.step, history.loss, label=label)
        row[1].plot(history.step, history.val_accuracy, label=label)
    row[0].set(title=title, ylabel="training loss per row", ylim=(0, None))
    row[1].set(title=title, ylabel="validation accuracy", ylim=(0.5, 1))
for ax in axes[1]:
    ax.set_xlabel("gradient descent step")
axes[0, 0].legend()
fig.tight_layout()

# %% [markdown] tags=["solutions"]
# On the reference network both versions learn quickly: the data set is small and easy,
# and with standardized inputs and only two hidden layers there is little for batch norm to
# fix. (Without batch norm the training loss even ends lower; the two validation accuracies
# printed above differ by a row or so, too little to say which version predicts better.) The
# deep sigmoid network without batch norm does not learn in 300 steps: its validation accuracy
# stays flat. What the monitor saw inside it, at the last step:

# %% tags=["solutions"]
print(f"the share of benign tumours in the validation rows: {data.y_val.mean():.1%}")
deep = "deep network (6 sigmoid layers)"
for measure, heading in (("saturated", "sigmoid inputs where it is flat (%)"), ("grad_std", "weight gradient's std")):
    print(f"\n{heading}, by layer, at step 300:")
    for batch_norm in (False, True):
        values = monitors[deep, batch_norm].series(measure)
        scale = 100 if measure == "saturated" else 1
        cells = "  ".join(f"{layer} {scale * v[-1]:<8.2g}" for layer, v in values.items() if np.isfinite(v[-1]))
        print(f"{'with' if batch_norm else 'without':>8} batch norm: {cells}")

# %% [markdown] tags=["solutions"]
# Without batch norm the deep network's flat validation accuracy is the share of benign
# tumours printed above: it answers "benign" for every tumour, the majority class. Its
# sigmoids are hardly ever in their flat parts (the first table), so saturation is not what
# stops it. Its gradients are: they shrink layer after layer on the way down, from the
# output layer `l7` to the first, `l1` (the second table). Each sigmoid passes back at most a
# quarter of the gradient that reaches it (its slope is at most 1/4), and six are stacked,
# so the first layers barely move. With batch norm before every activation, the gradients of
# all layers are of a similar size, and the deep network trains about as fast as the
# shallow one.

# %% [markdown] tags=["solutions"]
# ## Summary
#
# - Batch norm standardizes each feature with the batch's mean and the square root of its
#   variance plus $\epsilon$, then applies a learned scale $\gamma$ and shift $\beta$.
# - A bias before batch norm is redundant: the mean subtraction removes it, and its gradient is 0.
# - Training uses batch statistics and updates moving averages; evaluation uses the
#   averages, so that a prediction depends on the patient only, and works for one patient.
# - Scale the data with statistics of the training rows only, computed after splitting.
# - A layer composed of elementary operations and a fused one with a hand-derived backward
#   pass must agree; finite differences (`dp.gradcheck`) check either one independently.

# %% [markdown] tags=["exercise"]
# ## What next
#
# When all four checks pass, compare your code with `01_batch_norm_solutions.ipynb`. It also
# checks the layer against dp's own fused batch norm and against finite differences, and
# compares training with and without batch norm. The derivation of Task 1 is worked out in
# `docs/bias_before_batch_norm.md`. The next notebook, `02_backward.ipynb`, has you derive
# batch norm's backward pass yourself.
