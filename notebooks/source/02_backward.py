# %% [markdown]
# # Derive batch norm's backward pass yourself
#
# *Prerequisite: 01_batch_norm, where you wrote batch norm from `dp.Node` operations.*
#
# In 01 you wrote batch norm from Node operations: `normalize(z)`,
# $(z - \mu)/\sqrt{\sigma^2 + \epsilon}$ per column, and the layer $\gamma \hat z + \beta$ around
# it. dp found its gradient by walking back through the graph they built, a node per operation,
# each with its own small derivative. The paper writes the same computation as four lines (the
# batch mean, the batch variance, the normalization, the scale and shift), and dp has them as
# Node operations, `dp.nn.batch_norm_composed`. Here you do what Ioffe and Szegedy (2015) do in
# section 3 of their paper: derive the gradient of batch norm's output with respect to $x$,
# $\gamma$ and $\beta$ by hand, with the chain rule, and simplify it to a compact form. Then you
#
# 1. write it as **one** dp primitive, a forward pass in NumPy beside its vector-Jacobian
#    product, and check it against finite differences (`dp.gradcheck`) and against
#    autodiff through the four lines;
# 2. time the two, forward and backward, and see what the graph of the four lines costs.
#
# The checks after each task catch the usual mistakes and say what to change.

# %%
import time
import tracemalloc

import numpy as np

import dp

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## The forward pass, one feature at a time
#
# Batch norm treats each feature (each column of a batch $x$ of shape (N, F)) by itself, so
# the derivation can look at one feature: a batch $x_1, \dots, x_m$ of $m = N$ values.
# Algorithm 1 of the paper computes
#
# $$\mu_B = \frac1m \sum_{i=1}^m x_i, \qquad
#   \sigma_B^2 = \frac1m \sum_{i=1}^m (x_i - \mu_B)^2, \qquad
#   \hat x_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \qquad
#   y_i = \gamma \hat x_i + \beta .$$
#
# The variance is the *biased* one, divided by $m$. Write $\sigma = \sqrt{\sigma_B^2 + \epsilon}$.
#
# Some loss $\ell$ is computed from the $y_i$, and the backward pass receives
# $g_i = \partial \ell / \partial y_i$ for every $i$. It must return $\partial \ell / \partial x_i$,
# $\partial \ell / \partial \gamma$ and $\partial \ell / \partial \beta$.
#
# What makes batch norm's backward pass more than "divide by $\sigma$": $\mu_B$ and
# $\sigma_B^2$ are computed *from the batch*. Every $x_i$ moves the mean and the variance, and
# through them every other $\hat x_j$ of its feature. So $x_i$ reaches the loss by three paths:
# through its own $\hat x_i$, through $\sigma_B^2$ and through $\mu_B$.

# %% [markdown]
# ## The chain rule, step by step
#
# Go backwards through Algorithm 1, one line at a time.
#
# **Through $y_i = \gamma \hat x_i + \beta$.** Each $\hat x_i$ reaches the loss through $y_i$
# only, but $\gamma$ and $\beta$ are used by *every* row, so each row adds its share:
#
# $$\frac{\partial \ell}{\partial \hat x_i} = g_i \gamma, \qquad
#   \frac{\partial \ell}{\partial \gamma} = \sum_{i=1}^m g_i \hat x_i, \qquad
#   \frac{\partial \ell}{\partial \beta} = \sum_{i=1}^m g_i .$$
#
# For a batch of F features, $\partial \ell / \partial \gamma$ is one number per feature, shape
# (1, F) like $\gamma$: the sum over the batch, not a value per row.
#
# **Through the variance.** Every $\hat x_i$ depends on $\sigma_B^2$, through
# $(\sigma_B^2 + \epsilon)^{-1/2}$:
#
# $$\frac{\partial \ell}{\partial \sigma_B^2} = \sum_{i=1}^m \frac{\partial \ell}{\partial \hat x_i}\,
#   (x_i - \mu_B) \cdot \frac{-1}{2} (\sigma_B^2 + \epsilon)^{-3/2} .$$
#
# **Through the mean.** $\mu_B$ enters every $\hat x_i$ directly, and $\sigma_B^2$ through the
# $(x_i - \mu_B)^2$:
#
# $$\frac{\partial \ell}{\partial \mu_B} = \sum_{i=1}^m \frac{\partial \ell}{\partial \hat x_i} \cdot \frac{-1}{\sigma}
#   + \frac{\partial \ell}{\partial \sigma_B^2} \cdot \frac{1}{m} \sum_{i=1}^m -2 (x_i - \mu_B) .$$
#
# **The input**, by its three paths:
#
# $$\frac{\partial \ell}{\partial x_i} = \frac{\partial \ell}{\partial \hat x_i} \cdot \frac{1}{\sigma}
#   + \frac{\partial \ell}{\partial \sigma_B^2} \cdot \frac{2 (x_i - \mu_B)}{m}
#   + \frac{\partial \ell}{\partial \mu_B} \cdot \frac{1}{m} .$$
#
# These are the paper's lines. Substituted into each other, with $\hat d_i = \partial \ell / \partial \hat x_i$,
# they collapse into one **compact form**:
#
# $$\frac{\partial \ell}{\partial x_i} = \frac{1}{m \sigma} \Big( m \hat d_i - \sum_{j=1}^m \hat d_j
#   - \hat x_i \sum_{j=1}^m \hat d_j \hat x_j \Big) .$$

# %% [markdown]
# **Question 1.** Derive the compact form from the paper's lines. Hints: $x_i - \mu_B = \sigma \hat x_i$,
# and the deviations from a mean add up to zero.

# %% [markdown] tags=["answer"]
# *Our answer.* **The variance:** $(x_i - \mu_B)(\sigma_B^2 + \epsilon)^{-3/2} = \sigma \hat x_i / \sigma^3
# = \hat x_i / \sigma^2$, so $\partial \ell / \partial \sigma_B^2 = -\frac{1}{2\sigma^2} \sum_j \hat d_j \hat x_j$.
#
# **The mean:** its second term holds $\sum_i (x_i - \mu_B) = \sum_i x_i - m \mu_B = 0$, so only
# $\partial \ell / \partial \mu_B = -\frac{1}{\sigma} \sum_j \hat d_j$ is left.
#
# **The input:** with $2 (x_i - \mu_B) / m = 2 \sigma \hat x_i / m$,
#
# $$\frac{\partial \ell}{\partial x_i} = \frac{\hat d_i}{\sigma}
#   - \frac{1}{2\sigma^2} \sum_j \hat d_j \hat x_j \cdot \frac{2 \sigma \hat x_i}{m}
#   - \frac{1}{\sigma} \sum_j \hat d_j \cdot \frac{1}{m}
#   = \frac{1}{m\sigma} \Big( m \hat d_i - \sum_j \hat d_j - \hat x_i \sum_j \hat d_j \hat x_j \Big).$$
#
# The second term of the bracket is the path through the mean, the third the path through
# the variance. (docs/batch_norm_backward.md writes the same steps out.)

# %% [markdown]
# **Question 2.** A common first attempt treats $\mu_B$ and $\sigma_B^2$ as constants and
# writes $\partial \ell / \partial x_i = \hat d_i / \sigma$. Which terms of the compact form does it
# drop? Is there a mode of batch norm in which this *is* the gradient? What did Ioffe and
# Szegedy (2015, section 2) say happens when gradient descent ignores that the
# normalization depends on the parameters?

# %% [markdown] tags=["answer"]
# *Our answer.* It keeps only $m \hat d_i$ of the bracket and drops both sums: the paths through
# the mean and through the variance. It is the right gradient of **eval mode**, where the
# layer normalizes with its moving averages, numbers fixed during the step that do not depend
# on the batch. In training they are the batch's own statistics, and the gradient must flow
# through them.
#
# Section 2 of the paper shows what goes wrong otherwise, with a layer that only subtracts
# the mean, $\hat x = x - \mathrm{E}[x]$ with $x = u + b$: if the gradient step for $b$ ignores
# that $\mathrm{E}[x]$ depends on $b$, it moves $b$, while the output $u + b - \mathrm{E}[u + b]$
# and the loss do not change at all, and "b will grow indefinitely while the loss remains
# fixed". Hence their conclusion: the normalization must be inside the gradient step, its
# statistics differentiated as functions of the parameters.

# %% [markdown]
# ## A primitive: a forward pass beside its backward pass
#
# Every dp operation is a *primitive*: a function of NumPy arrays that returns its value and
# its vector-Jacobian product (vjp), the function that maps $\partial \ell / \partial \text{output}$ to
# the gradient of each argument. `@dp.primitive` makes it an operation on Nodes. For example:


# %%
@dp.primitive
def cube(x):
    return x**3, (lambda g: g * 3 * x**2,)  # the value, and one vjp per argument


a = dp.Node(np.array([[2.0]]), "a")
print("cube(2):", cube(a).value, "  its gradient:", cube(a).grad(1))
print("largest relative error against finite differences:", dp.gradcheck(cube, np.array([[0.5, -1.0, 2.0]])))

# %% [markdown]
# A vjp may also be **one** function returning a tuple with a gradient per positional
# argument, in the order of the arguments: `vjp(g) -> (dx, dgamma, dbeta)`. That is the
# shape you need here, because the three gradients share work (the sums over the batch).
# Keyword options such as `eps` are not arguments: they get no gradient.
#
# Inside the forward function, `x`, `gamma` and `beta` are plain NumPy arrays: use
# `x.mean(axis=0, keepdims=True)`, `x.var(axis=0, keepdims=True)` (biased: `ddof=0`, NumPy's
# default), `np.sqrt`, `.sum(axis=0, keepdims=True)`. Return each gradient in the shape of its
# argument: dp would quietly sum a gradient of shape (N, F) down to the (1, F) of $\gamma$, so
# the check calls your function without dp (`batch_norm_by_hand.forward`, the function under
# the decorator) to look at what your vjp really returns.

# %% [markdown]
# ## Task 1: batch norm as one primitive
#
# *Write `batch_norm_by_hand(x, gamma, beta, eps=1e-5)`: training-mode batch norm of x (N, F)
# with gamma and beta (1, F), returning `(y, vjp)` with `vjp(g) -> (dx, dgamma, dbeta)`. Use the
# compact form for dx (or the paper's lines, one per gradient).*


# %% tags=["stub"]
@dp.primitive
def batch_norm_by_hand(x, gamma, beta, eps=1e-5):
    # x (N, F), gamma and beta (1, F): NumPy arrays. Returns (y, vjp), y (N, F), and
    # vjp(g) -> (dx, dgamma, dbeta) for g = dl/dy (N, F), each gradient in its argument's shape.
    # TODO: the forward pass (Algorithm 1), then def vjp(g): ... return dx, dgamma, dbeta
    raise NotImplementedError("Task 1: write batch_norm_by_hand, its forward pass and its vjp")


# %% tags=["solution"]
@dp.primitive
def batch_norm_by_hand(x, gamma, beta, eps=1e-5):
    # x (N, F), gamma and beta (1, F): NumPy arrays. Returns (y, vjp), y (N, F), and
    # vjp(g) -> (dx, dgamma, dbeta) for g = dl/dy (N, F), each gradient in its argument's shape.
    m = x.shape[0]
    mean = x.mean(axis=0, keepdims=True)  # mu_B
    var = x.var(axis=0, keepdims=True)  # sigma_B^2, biased: divided by m
    std = np.sqrt(var + eps)  # sigma
    xhat = (x - mean) / std
    y = gamma * xhat + beta

    def vjp(g):
        dxhat = g * gamma  # dl/dxhat_i
        sum_dxhat = dxhat.sum(axis=0, keepdims=True)  # the path through mu_B
        sum_dxhat_xhat = (dxhat * xhat).sum(axis=0, keepdims=True)  # the path through sigma_B^2
        dx = (m * dxhat - sum_dxhat - xhat * sum_dxhat_xhat) / (m * std)  # the compact form
        dgamma = (g * xhat).sum(axis=0, keepdims=True)  # gamma is shared by every row: a sum over the batch
        dbeta = g.sum(axis=0, keepdims=True)
        return dx, dgamma, dbeta

    return y, vjp


# %% tags=["check"]
# Check for Task 1
rng = np.random.default_rng(1)
x = rng.normal(3, 2, size=(16, 5))  # a batch of 16 rows of 5 features
gamma, beta = rng.uniform(0.5, 2, size=(1, 5)), rng.normal(size=(1, 5))
g = rng.normal(size=(16, 5))  # dl/dy, for the loss l = sum(g * y)

# The reference: the paper's four lines in Node operations, and autodiff through them.
nodes = dp.Node(x, "x"), dp.Node(gamma, "gamma"), dp.Node(beta, "beta")
composed = dp.nn.batch_norm_composed(*nodes)
expected = composed.grad(g)  # {"x": dl/dx, "gamma": dl/dgamma, "beta": dl/dbeta}


def close(a, b):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-8, atol=1e-10)


assert hasattr(batch_norm_by_hand, "forward"), "decorate batch_norm_by_hand with @dp.primitive"
returned = batch_norm_by_hand.forward(x, gamma, beta)  # the function under @dp.primitive, on NumPy arrays
assert isinstance(returned, tuple) and len(returned) == 2, (
    "batch_norm_by_hand should return a pair (y, vjp): the output, and the function that maps dl/dy to the gradients"
)
y, vjp = returned

# The forward pass.
assert np.shape(y) == x.shape, f"y should have x's shape {x.shape}, got {np.shape(y)}"
with_unbiased_variance = gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + 1e-5) + beta
assert not close(y, with_unbiased_variance), (
    "y uses the unbiased variance (divided by N - 1): batch norm divides by N, x.var(axis=0) with NumPy's default "
    "ddof=0, as Algorithm 1 does"
)
assert close(y, composed.value), (
    f"y differs from batch norm's output by up to {np.abs(y - composed.value).max():.3g}: per column (axis=0), "
    "mu = mean, var = biased variance, y = gamma * (x - mu) / sqrt(var + eps) + beta"
)

# The backward pass: the three gradients, in the order of the arguments, each in its argument's shape.
grads = vjp(g) if callable(vjp) else tuple(one(g) for one in vjp)
assert len(grads) == 3, f"the vjp returned {len(grads)} gradients: return three, (dx, dgamma, dbeta)"
dx, dgamma, dbeta = (np.asarray(grad) for grad in grads)
names, wanted = ("dx", "dgamma", "dbeta"), (expected["x"], expected["gamma"], expected["beta"])
found = [next((name for name, w in zip(names, wanted) if close(grad, w)), "?") for grad in (dx, dgamma, dbeta)]
assert sorted(found) != sorted(names) or found == list(names), (
    f"the vjp returned ({', '.join(found)}): return the gradients in the order of the arguments x, gamma, beta, "
    "(dx, dgamma, dbeta)"
)
for name, grad, like, want in (("dgamma", dgamma, gamma, wanted[1]), ("dbeta", dbeta, beta, wanted[2])):
    assert not (grad.shape == x.shape and close(grad.sum(axis=0, keepdims=True), want)), (
        f"{name} has shape {grad.shape}, a row per example: {name[1:]} is used by every row, so its gradient is the "
        f"sum over the batch, .sum(axis=0, keepdims=True), shape {like.shape}"
    )
    assert grad.shape == like.shape, (
        f"{name} should have {name[1:]}'s shape {like.shape}, got {grad.shape}: sum with keepdims=True"
    )
assert close(dgamma, wanted[1]), "dgamma should be sum_i dl/dy_i * xhat_i, per column"
assert close(dbeta, wanted[2]), "dbeta should be sum_i dl/dy_i, per column"

# dx, and the three paths: through xhat_i, through the mean, through the variance.
std = np.sqrt(x.var(axis=0) + 1e-5)
xhat, dxhat = (x - x.mean(axis=0)) / std, g * gamma
through_xhat = dxhat / std
through_mean = -dxhat.mean(axis=0) / std
through_variance = -xhat * (dxhat * xhat).mean(axis=0) / std
assert dx.shape == x.shape, f"dx should have x's shape {x.shape}, got {dx.shape}"
assert not close(dx, through_xhat), (
    "your dx treats the batch mean and variance as constants (dl/dxhat / sqrt(var + eps) only): every x_i also "
    "moves mu_B and sigma_B^2, which every row uses; add the paths through them (the compact form)"
)
assert not close(dx, through_xhat + through_variance), (
    "your dx leaves out the path through the mean mu_B: the term - sum_j dl/dxhat_j in the compact form"
)
assert not close(dx, through_xhat + through_mean), (
    "your dx leaves out the path through the variance sigma_B^2: the term - xhat_i * sum_j dl/dxhat_j xhat_j"
)
assert close(dx, wanted[0]), (
    f"dx differs from autodiff's through the four lines by up to {np.abs(dx - wanted[0]).max():.3g}: "
    "check it term by term against the compact form"
)

# The same, through dp: your primitive in a graph, against the four lines and against finite differences.
by_hand = batch_norm_by_hand(*nodes).grad(g)
for name in ("x", "gamma", "beta"):
    difference = np.abs(by_hand[name] - expected[name]).max()
    print(f"dl/d{name:<5}: yours and autodiff's through the four lines differ by at most {difference:.1e}")
    assert difference < 1e-10, f"through dp, dl/d{name} differs from autodiff's by {difference:.3g}"
print("largest relative error against finite differences:", dp.gradcheck(batch_norm_by_hand, x, gamma, beta))
print("Task 1 passed")

# %% [markdown]
# The differences are at the level of rounding. `dp.gradcheck` compares with central
# finite differences in float64, one input entry at a time; an error far below its
# tolerance, $10^{-6}$, is as small as finite differences can resolve, and a wrong gradient
# shows errors of order 1.
#
# The compact form says more than how to compute the gradient. Its bracket removes from
# $m \hat d$ its mean over the batch and its component along $\hat x$. Look at the sums of
# your dx over the batch, plain and weighted by $\hat x$, per feature, beside the size of dx
# itself:

# %%
dx = batch_norm_by_hand(*nodes).grad(g)["x"]
print(f"largest |dl/dx_i|:                              {np.abs(dx).max():.1e}")
print(f"largest |sum_i dl/dx_i| of a feature:           {np.abs(dx.sum(axis=0)).max():.1e}")
print(f"largest |sum_i dl/dx_i * xhat_i| of a feature:  {np.abs((dx * xhat).sum(axis=0)).max():.1e}")

# %% [markdown]
# **Question 3.** The first sum is zero up to rounding. The second is far above rounding, yet
# far below the gradients themselves. Show both from the compact form (use
# $\sum_i \hat x_i = 0$ and $\sum_i \hat x_i^2 = m \sigma_B^2 / \sigma^2$): what would the second be for
# $\epsilon = 0$? What do the two sums say about adding a constant to every $x_i$ of a feature,
# or multiplying them all by one? What does the first say about a bias in the layer before
# batch norm?

# %% [markdown] tags=["answer"]
# *Our answer.* Summing the bracket over $i$: $m \sum_i \hat d_i - m \sum_j \hat d_j - \sum_i \hat x_i \sum_j
# \hat d_j \hat x_j = 0$, since $\sum_i \hat x_i = 0$. Weighting it by $\hat x_i$:
# $m \sum_i \hat d_i \hat x_i - 0 - \sum_i \hat x_i^2 \sum_j \hat d_j \hat x_j
# = m \frac{\epsilon}{\sigma^2} \sum_j \hat d_j \hat x_j$, since $\sigma^2 - \sigma_B^2 = \epsilon$: exactly 0 for
# $\epsilon = 0$, and a factor $\epsilon / \sigma^2$ smaller than the gradient's own terms otherwise.
#
# So the gradient of the input is orthogonal to the vector of ones (a shift of the feature)
# and, for $\epsilon = 0$, to $\hat x$ (a scaling of it about its mean). That is because the
# output does not change when every $x_i$ is shifted by the same amount, nor (for
# $\epsilon = 0$) when all are scaled: the loss cannot change along those directions. A bias
# $b$ in the layer before adds the same $b$ to every row, a shift: its gradient,
# $\sum_i \partial \ell / \partial x_i$, is zero, and it never learns (01's first task).

# %% [markdown]
# ## Task 2: what one primitive buys
#
# *Write `forward_backward_seconds(batch_norm, x, gamma, beta, g, repeats=20)`: the time, in
# seconds, of one forward and backward pass of `batch_norm` (a function of three Nodes, as
# `batch_norm_by_hand` and `dp.nn.batch_norm_composed` are) on the arrays x, gamma, beta, with
# the output gradient g; the median over `repeats` runs. Time with `time.perf_counter()`.*
#
# The backward pass is `y.grad(g)`: the gradients of every named Node for the loss
# $\ell = \sum g \cdot y$. Build the Nodes once, outside the timed part.


# %% tags=["stub"]
def forward_backward_seconds(batch_norm, x, gamma, beta, g, repeats=20):
    # The median, over `repeats` runs, of the seconds one batch_norm(x, gamma, beta) and its .grad(g) take.
    # TODO: Nodes named "x", "gamma", "beta"; time each forward and backward pass with time.perf_counter()
    raise NotImplementedError("Task 2: write forward_backward_seconds")


# %% tags=["solution"]
def forward_backward_seconds(batch_norm, x, gamma, beta, g, repeats=20):
    # The median, over `repeats` runs, of the seconds one batch_norm(x, gamma, beta) and its .grad(g) take.
    nodes = dp.Node(x, "x"), dp.Node(gamma, "gamma"), dp.Node(beta, "beta")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batch_norm(*nodes).grad(g)  # the forward pass builds the graph, grad walks it back
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# %% tags=["check"]
# Check for Task 2
calls = {"forward": 0, "backward": 0}


@dp.primitive
def slow_identity(x, gamma, beta):  # a stand-in for batch norm whose forward pass takes 0.01 s, counting its calls
    calls["forward"] += 1
    time.sleep(0.01)

    def vjp(g):
        calls["backward"] += 1
        return g, None, None

    return x.copy(), vjp


seconds = forward_backward_seconds(
    slow_identity, np.ones((4, 3)), np.ones((1, 3)), np.zeros((1, 3)), np.ones((4, 3)), 10
)
assert calls["forward"] >= 10, f"batch_norm ran {calls['forward']} times for repeats=10: run it once per repeat"
assert calls["backward"] > 0, "you timed only the forward pass: call .grad(g) on each output, inside the timed part"
assert calls["backward"] >= calls["forward"] - 1, "call .grad(g) on the output of every forward pass you time"
assert isinstance(seconds, float), f"return the seconds as a float, not {type(seconds).__name__}"
assert seconds >= 0.01, (
    f"{seconds:.4f} s is less than the 0.01 s the stand-in's forward pass sleeps: time the forward and the backward "
    "pass together, from before the call to after .grad(g)"
)
assert seconds < 0.06, (
    f"{seconds:.3f} s looks like the time of all 10 runs: return the time of one forward and backward pass, "
    "the median over the runs"
)
print(f"the stand-in: {seconds:.4f} s a pass (its forward pass sleeps 0.01 s)")
print("Task 2 passed")

# %% [markdown]
# Now a realistic batch: 256 rows of a layer of 512 features, in float64. Three versions of
# the same function: yours, the four lines through autodiff, and dp's own closed form
# (`dp.nn.batch_norm_closed_form`, the paper's lines with the sums done by `np.einsum`). Timings
# on a shared machine move from run to run; the median of 20 runs steadies them.

# %%
rng = np.random.default_rng(2)
x, g = rng.normal(size=(256, 512)), rng.normal(size=(256, 512))
gamma, beta = rng.uniform(0.5, 2, size=(1, 512)), rng.normal(size=(1, 512))
versions = {
    "yours, one primitive": batch_norm_by_hand,
    "the four lines, through autodiff": dp.nn.batch_norm_composed,
    "dp's closed form": dp.nn.batch_norm_closed_form,
}
seconds = {name: forward_backward_seconds(f, x, gamma, beta, g) for name, f in versions.items()}
for name, s in seconds.items():
    print(f"{name:34} {1000 * s:6.2f} ms for the forward and backward pass")
ratio = seconds["the four lines, through autodiff"] / seconds["yours, one primitive"]
print(f"the four lines take {ratio:.1f} times as long as yours")

# %% [markdown]
# Speed is one side; memory the other. The graph keeps, until the backward pass, whatever its
# nodes and their vjps need. `tracemalloc` (Python's standard library, which sees NumPy's
# arrays) measures the peak memory of one forward and backward pass; below it is counted in
# arrays of x's size, with the number of nodes the forward pass made.


# %%
def nodes_in_graph(y):
    """The nodes of the graph that ends at y, y and its inputs included."""
    seen, waiting = set(), [y]
    while waiting:
        node = waiting.pop()
        if id(node) not in seen:
            seen.add(id(node))
            waiting.extend(parent for _, parent in node.parents)
    return len(seen)


nodes = dp.Node(x, "x"), dp.Node(gamma, "gamma"), dp.Node(beta, "beta")
for name, f in versions.items():
    tracemalloc.start()
    y = f(*nodes)
    y.grad(g)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{name:34} {nodes_in_graph(y):3d} nodes, peak memory {peak / x.nbytes:5.1f} times x's size")
    del y

# %% [markdown]
# **Question 4.** Use the two tables above. Why is one primitive faster than the four lines
# through autodiff (the first table's last line), and what does the composed graph keep in
# memory that the primitive does not? When would the difference matter less?

# %% [markdown] tags=["answer"]
# *Our answer.* The four lines make a node per operation (the mean, x − μ twice, its square,
# the variance, + ε, the square root, the division, the product with $\gamma$, the sum with
# $\beta$), as the node counts show; the primitive makes one. Each node is a separate NumPy call
# with its own fixed cost, most of them allocating an x-sized result in the forward pass, and
# each vjp makes one or more x-sized arrays again in the backward pass (broadcasting back,
# then summing down), each a full pass over memory. Every intermediate value the vjps need
# (x − μ, its square, the division's operands) stays alive until `grad` has walked past it:
# that is the composed graph's peak in the second table.
#
# The primitive computes the forward pass in a few NumPy expressions, keeps only what its vjp
# needs ($\hat x$, and per-feature numbers: σ, γ), and its vjp shares work between the three
# gradients (the sums over the batch are computed once) and makes a handful of x-sized
# arrays. dp's own closed form writes the paper's lines one by one, so it keeps x − μ_B as
# well as $\hat x$ for them, and does its sums with `np.einsum`, which forms no product of
# two x-sized arrays: compare its row of each table with yours.
#
# The difference matters less when batch norm is a small part of a training step whose cost
# is matrix products or convolutions: then a few passes over memory more or less hardly show
# in the step's time. (Try your function on a tiny batch: the time is then mostly each node's
# fixed cost, which the four lines pay once per node, so the ratio need not shrink, but the
# absolute time is small.) The gain is speed and memory; the price is a derivation that must be right, which is why the
# checks above compare it with autodiff and with finite differences.
