# %% [markdown]
# # Does batch norm reduce internal covariate shift?
#
# The first notebooks showed what Ioffe and Szegedy (2015) claimed for batch norm, and what a
# small run of their MNIST experiment shows: the network trains in far fewer steps, it tolerates
# higher learning rates, and the input of a sigmoid keeps a steady distribution while without
# batch norm it drifts. Their explanation was *internal covariate shift*: each layer's input
# distribution moves as the layers below it learn, the layer keeps chasing it, and batch norm
# helps by holding that distribution still.
#
# Santurkar, Tsipras, Ilyas and Madry (2018), "How Does Batch Normalization Help Optimization?"
# (NeurIPS), put that explanation to three tests, which you repeat here at a small scale:
#
# 1. **Noisy batch norm** (their section 2.1, Figure 2). After each batch-norm layer, add noise
#    whose mean and variance change at every step: the layers' inputs now shift *more* than
#    without batch norm. If holding the inputs still were what makes batch norm work, this
#    network should train badly. Theirs trained about as well as with plain batch norm.
# 2. **Internal covariate shift, measured** (their Definition 2.1, Figure 3). Not as a change of
#    a distribution but as what it would do to learning: how much a layer's gradient changes
#    when the layers before it take their step. Batch norm did not reduce it in their networks.
# 3. **The landscape along the gradient** (their Figure 4). What batch norm does change: along
#    the gradient the loss varies less, the gradient changes less (it is more *predictive*),
#    and the gradient's largest change per distance moved (the *effective beta-smoothness*) is
#    smaller.
#
# Their networks were a VGG on CIFAR-10 and a deep linear network; yours is the MNIST network of
# the previous notebooks, trained for seconds. dp's study, `dp paper santurkar2018`
# (docs/why/santurkar2018.md), runs the same measurements longer and over several seeds; it
# replicates some of their findings and not others, and so may this notebook.
#
# **How to work.** Three tasks, each a cell whose function raises `NotImplementedError` until
# you write it, followed by a check cell: run it, and when it prints "passed", go on. Then the
# experiment runs your three functions, and questions ask what you see.

# %%
import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import dp
from dp.studies import santurkar2018
from dp.studies.santurkar2018 import BATCH, LR, NOISE_JITTER, NOISE_SCALE, NOISE_SHIFT  # dp's study's settings

# Small matrices (batches of 60 rows, layers of 100 units): one BLAS thread is faster here than
# several waiting for each other, most of all on a busy machine.
threadpool_limits(limits=1)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## The data and the networks
#
# 5,000 MNIST images (`dp.data.mnist`), 4,000 to train and 1,000 to test, and the 784-100-100-100-10
# network of the previous notebooks, with the settings of dp's study:
#
# - **ReLU** and **He-normal** initial weights, $N(0, 2 / \text{fan\_in})$, instead of the
#   sigmoid and $N(0, 0.01^2)$: with those, the plain network stays at chance for a long time
#   (notebook 03), and every comparison below would be one between a network that learns and one
#   that does not. Here both learn from the first steps, so the comparisons are fair.
# - plain SGD on the mean loss of batches of 60 rows, the same learning rate for every network
#   (`LR`).

# %%
split = dp.data.mnist(test_size=0.2, seed=0)
x_train, y_train, x_test, y_test = split.x_train, split.y_train, split.x_test, split.y_test
SIZES = (784, 100, 100, 100, 10)
x_batch, y_batch = x_train[:BATCH], y_train[:BATCH]  # one fixed batch, for the checks and the measurements
print(f"{len(x_train)} training and {len(x_test)} test images; SGD at lr {LR} on batches of {BATCH}")

# %% [markdown]
# ## Task 1: noisy batch norm
#
# Santurkar et al. (2018, section 2.1): "we perturb each activation for each sample in the batch
# using i.i.d. noise sampled from a non-zero mean and non-unit variance distribution. We
# emphasize that this noise distribution changes at each time step". The exact distribution
# is in their appendix, which dp's study could not check (docs/why/santurkar2018.md says so);
# the study chose the one you write here. At every step, for each unit $j$ of the layer, a scale
# and a shift, and for each sample $i$ a jitter of its own:
#
# $$s_j \sim U(1, 2), \qquad m_j \sim U(-1, 1), \qquad z_{ij} \sim N(0, 1), \qquad
# y'_{ij} = s_j\, y_{ij} + m_j + 0.5\, z_{ij},$$
#
# where $y$ is batch norm's output, after $\gamma$ and $\beta$. So unit $j$'s values are spread
# by $s_j$ and moved by $m_j$, different ones at every step: a distribution that shifts at every
# step by construction. (`NOISE_SCALE`, `NOISE_SHIFT` and `NOISE_JITTER`, imported from the study,
# hold the 2, the 1 and the 0.5.)
#
# **What to do.** Write `noisy_batch_norm(x, gamma, beta, rng)`: training-mode batch norm of the
# batch `x` (a `dp.Node` of shape (rows, units)) with `dp.batch_norm(x, gamma, beta)`, then this
# step's noise, drawn from `rng` (a NumPy `Generator`: `rng.uniform(low, high, shape)`,
# `rng.standard_normal(shape)`): the scale and the shift as arrays of shape (1, units), one
# value per unit that broadcasts over the rows, and the jitter of shape (rows, units). Each call
# is one training step: draw new noise at every call. Build the result from Node operations
# (`y * dp.Node(scale) + dp.Node(shift)`), so that the gradient flows through it to $\gamma$,
# $\beta$ and the layers below. (Not shape (units,): `dp.Node` turns a 1-D array into a column.)
#
# **The check** calls it for 20 "steps" on one batch: it recovers each step's scale and shift of
# every unit (by fitting $y'$ against batch norm's clean output) and checks that they fall where
# they should and change from step to step; then that the gradient is right
# (`dp.gradcheck`).


# %% tags=["stub"]
def noisy_batch_norm(x, gamma, beta, rng):
    # Batch norm of x (a Node (rows, units)) with gamma and beta, then noise from rng: per unit a
    # scale U(1, NOISE_SCALE) and a shift U(-NOISE_SHIFT, NOISE_SHIFT), each an array of shape (1, units),
    # per value NOISE_JITTER * N(0, 1), an array of shape (rows, units). Returns a Node of x's shape.
    # TODO (Task 1): replace the next line with your code.
    raise NotImplementedError("Task 1: write noisy_batch_norm(x, gamma, beta, rng)")


# %% tags=["solution"]
def noisy_batch_norm(x, gamma, beta, rng):
    y = dp.batch_norm(x, gamma, beta)  # first normalize: noise added before it would be normalized away
    units = y.shape[1]
    scale = rng.uniform(1.0, NOISE_SCALE, (1, units))  # this step's, one per unit
    shift = rng.uniform(-NOISE_SHIFT, NOISE_SHIFT, (1, units))
    jitter = NOISE_JITTER * rng.standard_normal(y.shape)  # one per value: each sample its own
    return y * dp.Node(scale) + dp.Node(shift + jitter)


# %% tags=["check"]
# Check for Task 1
batch = dp.Node(np.random.default_rng(5).normal(3.0, 2.0, (200, 4)))  # 200 rows of 4 units, mean 3, spread 2
gamma, beta = dp.Node(np.full((1, 4), 1.5), "gamma"), dp.Node(np.full((1, 4), 0.5), "beta")
clean = dp.batch_norm(batch, gamma, beta).value
rng = np.random.default_rng(1)
try:
    steps = [noisy_batch_norm(batch, gamma, beta, rng) for _ in range(20)]
except ValueError as error:
    if "cannot be broadcast" not in str(error):
        raise
    raise AssertionError(
        f"your noise does not line up with the batch (200 rows, 4 units): {error}\nDraw the scale and the shift as "
        "arrays of shape (1, units), rng.uniform(low, high, (1, units)): dp.Node turns a 1-D array of shape (units,) "
        "into a column (units, 1), which does not broadcast over the rows; the jitter has shape (rows, units)"
    ) from None
assert all(isinstance(out, dp.Node) for out in steps), "return a dp.Node (y * dp.Node(scale) + ...), not an array"
assert all(out.shape == clean.shape for out in steps), f"return one value per row and unit, shape {clean.shape}"
noisy = np.array([out.value for out in steps])  # (steps, rows, units)
assert not np.allclose(noisy, clean), "the output is batch norm's alone: add the noise after it"
means, stds = noisy.mean(axis=1), noisy.std(axis=1)  # each step's, per unit
assert not (np.allclose(means, 0.5, atol=1e-4) and np.allclose(stds, 1.5, atol=1e-4)), (
    "the noise was normalized away: each unit's output still has mean beta and spread gamma at every step. "
    "Add the noise to batch norm's output, not to its input x"
)
assert not np.allclose(noisy, noisy[0]), (
    "the noise is the same at every step (every call): draw it from rng at each call, and do not make a new "
    "generator with a fixed seed inside the function"
)
# Fit each step's y' = s * y + m + residual, unit by unit, against the clean (standardized) output.
standard = (clean - clean.mean(axis=0)) / clean.std(axis=0)
slopes = np.einsum("trj,rj->tj", noisy - means[:, None, :], standard) / len(clean) / clean.std(axis=0)
shifts = means - slopes * clean.mean(axis=0)
residual = (noisy - slopes[:, None, :] * clean - shifts[:, None, :]).std(axis=1)
assert np.ptp(slopes, axis=0).min() > 0.2 and np.ptp(shifts, axis=0).min() > 0.3, (
    "each step's scale and shift per unit should be drawn anew at every call: yours stay the same from step "
    "to step (only the jitter changes), so the distribution does not shift"
)
assert np.ptp(slopes, axis=1).min() > 0.05 and np.ptp(shifts, axis=1).min() > 0.05, (
    "each unit should get its own scale and shift, arrays of shape (1, units): yours are the same for every unit"
)
assert slopes.min() > 0.9 and slopes.max() < NOISE_SCALE + 0.1, (
    f"each unit's scale should lie in [1, {NOISE_SCALE}] (rng.uniform(1.0, NOISE_SCALE, (1, units))); "
    f"yours range from {slopes.min():.2f} to {slopes.max():.2f}"
)
assert np.abs(shifts).max() < NOISE_SHIFT + 0.15, (
    f"each unit's shift should lie in [-{NOISE_SHIFT}, {NOISE_SHIFT}] (one per unit, shape (1, units)); "
    f"yours reach {np.abs(shifts).max():.2f}"
)
assert 0.8 * NOISE_JITTER < residual.mean() < 1.2 * NOISE_JITTER, (
    f"each value should get its own jitter NOISE_JITTER * N(0, 1), shape (rows, units): what is left "
    f"after each unit's scale and shift has spread {residual.mean():.2f}, not {NOISE_JITTER}"
)
try:  # with the same noise at every call, the function is smooth: its gradient must match finite differences
    dp.gradcheck(
        lambda x, g, b: noisy_batch_norm(x, g, b, np.random.default_rng(2)), batch.value[:8], gamma.value, beta.value
    )
except dp.GradcheckError as error:
    raise AssertionError(
        "the gradient through your noise is wrong (or does not flow): build the output from Nodes, "
        f"y * dp.Node(scale) + dp.Node(shift), not from y.value\n{error}"
    ) from None
print("each unit's scale, step by step (first 5 steps):\n", slopes[:5])
print("Task 1 passed")

# %% [markdown]
# ### Noisy batch norm in a network
#
# `dp.MLP` builds its batch-norm layers with `self.batch_norm(...)`, and a batch-norm layer
# computes its training-mode output in `with_batch_statistics`. The two classes below swap in your
# function; the moving averages still follow the clean batch's statistics, and in eval mode (at
# test time) the layer is dp's, without noise. The noise of a step is drawn from the layer and
# the step's number, so every forward pass of one step (a `Monitor`'s, a measurement's) sees the
# same noise, and the next step new noise.


# %%
class NoisyBatchNorm(dp.nn.BatchNorm):
    """dp's batch-norm layer whose training-mode output is `noisy_batch_norm` (eval mode: no noise)."""

    def with_batch_statistics(self, x):
        statistics = dp.nn.batch_statistics(x.value)  # the clean batch's mean and variance, for the moving averages
        gamma, beta = self.learned()
        return noisy_batch_norm(x, gamma, beta, self.step_rng()), statistics

    def step_rng(self):
        step = int(self.model.params[self.batches_key].item())  # the training batches this layer has seen
        layer = int(self.gamma_key.removeprefix("gamma_bn"))
        return np.random.default_rng([layer, step])


class NoisyMLP(dp.MLP):
    """`dp.MLP` whose batch-norm layers are `NoisyBatchNorm`."""

    def batch_norm(self, fan_in, name, **options):
        super().batch_norm(fan_in, name, **options)  # registers gamma, beta and the moving averages
        return NoisyBatchNorm(self, name, fan_in, **options)


KINDS = ("standard", "batch norm", "noisy batch norm")


def network(kind):
    """A new network of ``kind``, one of KINDS, from the same initial weights for all three."""
    make = NoisyMLP if kind == "noisy batch norm" else dp.MLP
    return make(SIZES, batch_norm=kind != "standard", activation="relu", init="he", seed=0)


demo = network("noisy batch norm")
for step in range(3):  # unit 0 of the last hidden layer on 500 test images, as three training steps see it
    values = demo.record(x_test[:500], ["bn3"], train=True)["bn3"][:, 0]
    print(f"step {step + 1}: unit 0's input has mean {values.mean():+.2f} and std {values.std():.2f}")
    dp.train.train_step(demo, dp.optim.SGD(lr=LR), x_batch, y_batch, reduction="mean")

# %% [markdown]
# ## Task 2: internal covariate shift, as Santurkar et al. define it
#
# A layer's input distribution is hard to compare from step to step, and whether it shifts says
# nothing by itself about learning. Santurkar et al. (2018, Definition 2.1) measure the shift by
# its effect on the gradient. For layer $k$ at step $t$, on the step's batch $(x^t, y^t)$:
#
# $$G_{t,k} = \nabla_{W_k} L(W_1^t, \dots, W_K^t;\ x^t, y^t), \qquad
# G'_{t,k} = \nabla_{W_k} L(W_1^{t+1}, \dots, W_{k-1}^{t+1}, W_k^t, \dots, W_K^t;\ x^t, y^t).$$
#
# $G$ is the gradient that step $t$ gives layer $k$; $G'$ the gradient it would get after the
# layers *before* $k$ (and only those) took their step. The internal covariate shift of layer
# $k$ is $\lVert G - G' \rVert_2$; they also report $\cos(G, G')$ (1: the same direction).
# If the updates of the layers below change what layer $k$ should do, $G'$ differs from $G$.
#
# **What to do.** Write `covariate_shift(model, x, y, k, lr)`: $(\lVert G - G' \rVert_2,
# \cos(G, G'))$ for the weight `weight_l{k}` of layer `k` (2 or more; layer 1 has no layer before
# it), two floats. Helpers:
#
# - `santurkar2018.loss_and_gradients(model, x, y)`: the mean loss of the batch in training mode
#   and its gradients `{name: array}` (every learned parameter: `weight_l1`, `bias_l1`, or with
#   batch norm `gamma_bn1`, `beta_bn1`, ...), with `model.params` put back as they were;
# - `santurkar2018.layer_of(name)`: the layer a parameter belongs to (2 for `weight_l2`,
#   `gamma_bn2`);
# - the step of the layers before $k$ is SGD's, `p - lr * gradient`, for every learned parameter
#   of those layers. Write it into `model.params` inside `with dp.nn.module.unchanged(model.params):`,
#   which puts every entry back when the block ends: measuring must change nothing.
#
# **The check** compares your values for layers 2 to 4 of a network with and without batch norm
# with the study's `santurkar2018.internal_covariate_shift`.


# %% tags=["stub"]
def covariate_shift(model, x, y, k, lr):
    # (||G - G'||, cos(G, G')) for weight_l{k} on the batch (x, y): G the gradient now, G' after every
    # learned parameter of the layers before k took the step p - lr * gradient. Changes nothing.
    # TODO (Task 2): replace the next line with your code.
    raise NotImplementedError("Task 2: write covariate_shift(model, x, y, k, lr)")


# %% tags=["solution"]
def covariate_shift(model, x, y, k, lr):
    _, gradients = santurkar2018.loss_and_gradients(model, x, y)
    weight = f"weight_l{k}"
    with dp.nn.module.unchanged(model.params):
        for name, gradient in gradients.items():
            if santurkar2018.layer_of(name) < k:  # the layers before k, and only those
                model.params[name] = model.params[name] - lr * gradient
        g, g_after = gradients[weight], santurkar2018.loss_and_gradients(model, x, y)[1][weight]
    cosine = np.sum(g * g_after) / (np.linalg.norm(g) * np.linalg.norm(g_after))
    return float(np.linalg.norm(g - g_after)), float(cosine)


# %% tags=["check"]
# Check for Task 2
def stepped_gradients(model, x, y, k, moved):
    """G and G' of weight_l{k}, G' after the layers for which moved(layer) is true took the SGD step."""
    _, grads = santurkar2018.loss_and_gradients(model, x, y)
    with dp.nn.module.unchanged(model.params):
        model.params.update({n: model.params[n] - LR * g for n, g in grads.items() if moved(santurkar2018.layer_of(n))})
        return grads[f"weight_l{k}"], santurkar2018.loss_and_gradients(model, x, y)[1][f"weight_l{k}"]


def shift_of(g, g_after):
    return np.linalg.norm(g - g_after), np.sum(g * g_after) / (np.linalg.norm(g) * np.linalg.norm(g_after))


def diagnosis(model, k, got, distance, cosine):
    """What a wrong (||G - G'||, cos) most likely comes from."""
    if np.allclose(got, (cosine, distance)):
        return "you returned (cosine, distance): return (||G - G'||, cos(G, G')), in that order"
    if np.allclose(got, shift_of(*stepped_gradients(model, x_batch, y_batch, k, lambda layer: layer <= k))):
        return (
            f"you stepped layer {k}'s own parameters too. Definition 2.1 moves only the layers before it "
            f"(1 to {k - 1}): G' is the gradient layer {k} would get after the layers below it changed"
        )
    if np.allclose(got, shift_of(*stepped_gradients(model, x_batch, y_batch, k, lambda layer: True))):
        return f"you stepped every layer: step only the layers before {k}"
    return (
        f"expected (||G - G'||, cos) = ({distance:.6g}, {cosine:.6g}). G and G' are the gradients of weight_l{k} "
        "on the same batch, of the mean loss (santurkar2018.loss_and_gradients); the step is p - lr * gradient"
    )


for kind in ("standard", "batch norm"):
    model = network(kind)
    dp.train.fit(
        model, x_train, y_train, dp.optim.SGD(lr=LR), steps=20, batch_size=BATCH, reduction="mean", progress=False
    )
    expected, before = santurkar2018.internal_covariate_shift(model, x_batch, y_batch, LR), model.get_param()
    for k in (2, 3, 4):
        got = covariate_shift(model, x_batch, y_batch, k, LR)
        assert all(np.array_equal(before[n], model.params[n]) for n in before), (
            "covariate_shift changed model.params: step the layers inside "
            "`with dp.nn.module.unchanged(model.params):`, which puts every entry back (a training-mode pass also "
            "moves the moving averages)"
        )
        assert np.shape(got) == (2,), f"return two numbers, (||G - G'||, cos(G, G')); got {got!r}"
        distance, cosine = expected[f"l{k}"]
        assert np.allclose(got, (distance, cosine), rtol=1e-6), f"{kind}, layer {k}: " + diagnosis(
            model, k, got, distance, cosine
        )
    print(f"{kind:>10}: " + ", ".join(f"{layer}: ({d:.4f}, {c:.4f})" for layer, (d, c) in sorted(expected.items())))
print("Task 2 passed")


# %% [markdown]
# ## Task 3: the landscape along the gradient
#
# Santurkar et al. (2018, section 3.1, Figure 4) look at the loss around the current point $w$
# along the gradient $g = \nabla L(w)$ of the step's batch, all the parameters taken as one
# vector, at several step sizes $\eta$:
#
# - the **loss range**: the largest minus the smallest of $L(w - \eta g)$ over the step sizes,
#   the start $\eta = 0$ included: how much the loss changes along the way;
# - the **gradient predictiveness**: $\max_\eta \lVert \nabla L(w - \eta g) - g \rVert$, how far
#   the gradient there is from the one we followed (smaller: the gradient predicts the
#   landscape better);
# - the **effective beta-smoothness**: $\max_\eta \lVert \nabla L(w - \eta g) - g \rVert \,/\,
#   \lVert \eta g \rVert$, the gradient's change per distance moved: a local, measured version
#   of the Lipschitz constant of the gradient, $\beta$.
#
# **What to do.** Write `landscape_measures(model, x, y, etas)`: those three numbers, in that
# order, for the step sizes `etas`, with the same helpers as Task 2 (every learned parameter
# moves: `p - eta * gradient`), changing nothing.
#
# **The check** compares them with the study's `santurkar2018.landscape`.


# %% tags=["stub"]
def landscape_measures(model, x, y, etas):
    # (loss range, gradient predictiveness, effective beta-smoothness) along the gradient g of the batch
    # (x, y), at w - eta * g for each eta in etas (the loss range also counts eta = 0). Changes nothing.
    # TODO (Task 3): replace the next line with your code.
    raise NotImplementedError("Task 3: write landscape_measures(model, x, y, etas)")


# %% tags=["solution"]
def landscape_measures(model, x, y, etas):
    loss, gradients = santurkar2018.loss_and_gradients(model, x, y)
    gradient_norm = np.sqrt(sum(np.sum(g * g) for g in gradients.values()))
    losses, distances = [loss], []
    for eta in etas:
        with dp.nn.module.unchanged(model.params):
            for name, gradient in gradients.items():
                model.params[name] = model.params[name] - eta * gradient
            moved_loss, moved = santurkar2018.loss_and_gradients(model, x, y)
        losses.append(moved_loss)
        distances.append(np.sqrt(sum(np.sum((moved[n] - g) ** 2) for n, g in gradients.items())))
    betas = [distance / (eta * gradient_norm) for distance, eta in zip(distances, etas)]
    return max(losses) - min(losses), max(distances), max(betas)


# %% tags=["check"]
# Check for Task 3
FACTORS = santurkar2018.STEP_FACTORS  # the step sizes, in learning rates


def diagnosis(model, got, ours):
    """What a wrong (loss range, predictiveness, beta-smoothness) most likely comes from."""
    backwards = santurkar2018.landscape(model, x_batch, y_batch, -LR, FACTORS)  # at w + eta g
    if np.allclose(got[:2], (backwards.loss_range, backwards.predictiveness)):
        return "you moved along +g: look where gradient descent goes, w - eta * g"
    if np.isclose(got[2], max(d / eta for d, eta in zip(ours.distances, ours.etas))):
        return "the beta-smoothness divides the gradient's change by the distance moved, ||eta * g||, not by eta alone"
    if np.isclose(got[0], max(ours.losses[1:]) - min(ours.losses[1:])):
        return "the loss range counts the loss at the start (eta = 0) too"
    expected = (ours.loss_range, ours.predictiveness, ours.beta_smoothness)
    return (
        f"expected (loss range, predictiveness, beta-smoothness) = ({', '.join(f'{v:.6g}' for v in expected)}). "
        "The gradient g takes every learned parameter, as one vector, and each eta moves all of them"
    )


for kind in ("standard", "batch norm"):
    model = network(kind)
    dp.train.fit(
        model, x_train, y_train, dp.optim.SGD(lr=LR), steps=20, batch_size=BATCH, reduction="mean", progress=False
    )
    before = model.get_param()
    got = landscape_measures(model, x_batch, y_batch, [LR * f for f in FACTORS])
    assert all(np.array_equal(before[n], model.params[n]) for n in before), (
        "landscape_measures changed model.params: move the parameters inside "
        "`with dp.nn.module.unchanged(model.params):`, which puts every entry back"
    )
    assert np.shape(got) == (3,), f"return three numbers (loss range, predictiveness, beta-smoothness); got {got!r}"
    ours = santurkar2018.landscape(model, x_batch, y_batch, LR, FACTORS)
    expected = (ours.loss_range, ours.predictiveness, ours.beta_smoothness)
    assert np.allclose(got, expected, rtol=1e-6), f"{kind}: " + diagnosis(model, got, ours)
    print(f"{kind:>10}: loss range {expected[0]:.4f}, predictiveness {expected[1]:.4f}, beta {expected[2]:.3f}")
print("Task 3 passed")

# %% [markdown]
# ## The experiment
#
# The three networks train from the same initial weights on the same batches, 800 steps each.
# Every 100 steps (and before the first) a function `measure`, which `fit` calls after each step,
# records:
#
# - for a figure like their Figure 2, the input of unit 0 of the last hidden layer's ReLU (`bn3`
#   with batch norm, `l3` without) on 500 test images, in training mode (each network as a
#   training step sees it: batch statistics, and for the noisy network the step's noise): its
#   5th, 25th, 50th, 75th and 95th percentiles;
# - the accuracy on 1,000 training images in training mode, noise included: what the training
#   steps optimize. (`fit`'s test accuracy is measured in eval mode, as a network is used:
#   moving averages, and no noise.)
# - for the standard and the batch-norm network, your `covariate_shift` for layers 2 to 4 and
#   your `landscape_measures` at the study's step sizes, on one fixed batch of 60 training
#   images, the same at every measurement so that the measurements compare. (dp's study measures
#   on the batch of the step about to be taken, as the paper does.)
#
# A `dp.train.Monitor` watches each network too (docs/monitor.md): per layer, the pre-activations'
# mean and spread, the gradients, and the update-to-data ratio of the weights.

# %%
STEPS, EVERY = 800, 100
watched, scored = x_test[:500], (x_train[:1000], y_train[:1000])
ETAS = [LR * f for f in FACTORS]


def train(kind):
    model, found = network(kind), {"step": [], "percentiles": [], "train mode": [], "shift": [], "landscape": []}

    def measure(step, model):
        if step % EVERY:
            return
        layer = model.activation_inputs()["l3"]  # "bn3" with batch norm, "l3" without
        unit = model.record(watched, [layer], train=True)[layer][:, 0]
        logits = model.record(scored[0], ["l4"], train=True)["l4"]
        found["step"].append(step)
        found["percentiles"].append(np.percentile(unit, [5, 25, 50, 75, 95]))
        found["train mode"].append(np.mean(logits.argmax(axis=1) == scored[1].ravel()))
        if kind != "noisy batch norm":
            found["shift"].append({k: covariate_shift(model, x_batch, y_batch, k, LR) for k in (2, 3, 4)})
            found["landscape"].append(landscape_measures(model, x_batch, y_batch, ETAS))

    measure(0, model)  # before the first step
    monitor = dp.train.Monitor(watched, every=EVERY)
    history = dp.train.fit(
        model,
        x_train,
        y_train,
        dp.optim.SGD(lr=LR),
        validation=(x_test, y_test),
        steps=STEPS,
        batch_size=BATCH,
        reduction="mean",
        eval_every=EVERY,
        on_step=measure,
        monitor=monitor,
        progress=False,
    )
    return history, found, monitor


runs = {kind: train(kind) for kind in KINDS}
print("step | test accuracy (eval mode): standard, batch norm, noisy | training rows, training mode: the same")
for i, step in enumerate(runs["standard"][0].step):
    test = " ".join(f"{runs[kind][0].val_accuracy[i]:7.1%}" for kind in KINDS)
    train_mode = " ".join(f"{runs[kind][1]['train mode'][i + 1]:7.1%}" for kind in KINDS)
    print(f"{step:5,} | {test} | {train_mode}")

# %% [markdown]
# ### As their Figure 2: standard, batch norm and noisy batch norm
#
# Left, the test accuracy (eval mode). Then, for each network, the watched unit's input over
# training: the median (line), the middle half of the 500 test images (25th to 75th
# percentile, dark band) and 90 % of them (5th to 95th percentile, light band).

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for kind, color in zip(KINDS, ("tab:orange", "tab:blue", "tab:green")):
    history, found, _ = runs[kind]
    axes[0].plot(history.step, history.val_accuracy, color=color, label=kind)
for ax, kind, color in zip(axes[1:], KINDS, ("tab:orange", "tab:blue", "tab:green")):
    steps, bands = runs[kind][1]["step"], np.array(runs[kind][1]["percentiles"])
    ax.fill_between(steps, bands[:, 0], bands[:, 4], color=color, alpha=0.2, label="5th to 95th percentile")
    ax.fill_between(steps, bands[:, 1], bands[:, 3], color=color, alpha=0.4, label="25th to 75th")
    ax.plot(steps, bands[:, 2], color=color, label="median")
    ax.set(title=f"{kind}: unit 0's input", xlabel="training step")
axes[2].sharey(axes[1])
axes[3].sharey(axes[1])
axes[0].set(title="test accuracy (eval mode)", xlabel="training step", ylim=(0.8, 1))
axes[0].legend()
axes[3].legend(fontsize="small")
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ### What the Monitor saw
#
# The noise is per unit: averaged over the 100 units of a layer, the shifts $m_j$ nearly cancel,
# so the Monitor's layer-wide mean says little; its spread does not cancel. And the update-to-data
# ratio, $\log_{10}(\lVert \Delta W \rVert / \lVert W \rVert)$, says whether each layer still
# learns at a healthy pace (about -3, Karpathy's rule of thumb) while its inputs jump around
# (none at step 0, before any update: `nan`).

# %%
print("layer l3 | pre-activation std: standard, batch norm, noisy | log10 update/data: standard, batch norm, noisy")
series = {kind: (runs[kind][2].series("std")["l3"], runs[kind][2].series("update_ratio")["l3"]) for kind in KINDS}
for i, step in enumerate(runs["standard"][2].steps):
    spread = " ".join(f"{series[kind][0][i]:6.2f}" for kind in KINDS)
    ratio = " ".join(f"{series[kind][1][i]:6.2f}" for kind in KINDS)
    print(f"{step:5,} | {spread} | {ratio}")

# %% [markdown]
# ### As their Figure 3: internal covariate shift (Definition 2.1)
#
# $\lVert G - G' \rVert$ (log scale) and $\cos(G, G')$ for layers 2 to 4, without and with batch
# norm, measured with your `covariate_shift`.

# %%
print("step | layer | ||G - G'||: standard, batch norm | cos(G, G'): standard, batch norm")
measured = {kind: runs[kind][1] for kind in KINDS[:2]}
for i, step in enumerate(measured["standard"]["step"]):
    for k in (2, 3, 4):
        (d0, c0), (d1, c1) = (measured[kind]["shift"][i][k] for kind in KINDS[:2])
        print(f"{step:5,} | l{k} | {d0:9.4f} {d1:9.4f} | {c0:7.4f} {c1:7.4f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for kind, color in zip(KINDS[:2], ("tab:orange", "tab:blue")):
    for k, style in zip((2, 3, 4), ("-", "--", ":")):
        for ax, which in zip(axes, (0, 1)):
            values = [shift[k][which] for shift in measured[kind]["shift"]]
            ax.plot(measured[kind]["step"], values, color=color, linestyle=style, label=f"{kind}, l{k}")
axes[0].set(title="||G - G'||", xlabel="training step", yscale="log")
axes[1].set(title="cos(G, G')", xlabel="training step")
axes[1].legend(fontsize="small")
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ### As their Figure 4: the landscape along the gradient
#
# Each measure at each measurement, without and with batch norm, with your `landscape_measures`
# (log scale: they change by orders of magnitude over training).

# %%
names = ("loss range", "gradient predictiveness", "beta-smoothness")
print("step | " + " | ".join(f"{name}: standard, batch norm" for name in names))
for i, step in enumerate(measured["standard"]["step"]):
    cells = [f"{measured[kind]['landscape'][i][j]:9.4g}" for j in range(3) for kind in KINDS[:2]]
    print(f"{step:5,} | " + " | ".join(" ".join(cells[j : j + 2]) for j in (0, 2, 4)))

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
for kind, color in zip(KINDS[:2], ("tab:orange", "tab:blue")):
    values = np.array(measured[kind]["landscape"])
    for j, ax in enumerate(axes):
        ax.plot(measured[kind]["step"], values[:, j], color=color, label=kind)
for ax, name in zip(axes, names):
    ax.set(title=name, xlabel="training step", yscale="log")
    ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()

# %% [markdown]
# ## Questions
#
# Answer from the tables and figures above (and from `runs`, if you want to look closer).

# %% [markdown]
# **Question 1.** What did Ioffe and Szegedy (2015) claim batch norm does, and why it helps? What
# should the noisy network do if their explanation were the whole story?

# %% [markdown] tags=["answer"]
# They claimed that batch norm makes networks train faster, at higher learning rates, and keeps the
# distribution of each layer's inputs steady, and they explained the speed by the steadiness:
# without batch norm each layer's input distribution moves as the layers below learn ("internal
# covariate shift"), and each layer keeps re-adapting to it.
#
# If that were the whole story, a network whose layer inputs are made to shift at every step, more
# than without batch norm at all, should lose batch norm's advantage: train no better than the
# standard network, or worse. Santurkar et al. (2018) found that their noisy network trained about
# as well as with plain batch norm: the steadiness of the inputs, at least, is not what decides.

# %% [markdown]
# **Question 2.** In your run, does the noisy network's watched input hold still, as batch norm's
# does? Does the noisy network learn? Compare the two groups of columns of the accuracy table: why
# is its test accuracy behind the others' when its training-mode accuracy is close to theirs?

# %% [markdown] tags=["answer"]
# It does not hold still: in the figure above (as their Figure 2), the noisy network's bands jump up
# and down from one measurement to the next and are wider than batch norm's, which barely move; the
# standard network's drift slowly, as in the previous notebook. The Monitor's table adds the
# layer-wide view: the noisy network's pre-activations in layer 3 are spread wider than batch norm's
# at every recorded step, and yet the update-to-data ratios of that layer's weights stay above -3: it
# learns at a healthy pace.
#
# It learns: in training mode, with its noise, it fits the training images, a little behind the
# other two networks. That is the part consistent with Santurkar et al. (2018): a network whose layer
# inputs shift more than without batch norm at all still trains.
#
# Its test accuracy, in eval mode, is behind both other networks' at every evaluation. In eval mode
# there is no noise: the network was trained with each unit scaled by 1 to 2 and shifted by up to 1
# at every step (and its layers learned to work with that), and at test time it sees unscaled,
# unshifted values. A mismatch between training and test that this noise creates, not a failure to
# optimize. dp's study finds the same gap in longer runs and says plainly that this part of their
# Figure 2 does not replicate here (docs/why/santurkar2018.md); their text, as far as dp could check,
# does not say whether their test accuracy was measured with the noise on.

# %% [markdown]
# **Question 3.** Why do Santurkar et al. measure internal covariate shift through the gradient, and
# why step only the layers *before* layer $k$? In your table, is the shift smaller with batch norm
# before the first step? During the first few hundred steps? Is that what they found?

# %% [markdown] tags=["answer"]
# A shifting input distribution is not a problem by itself; it is one if it changes what the layer
# should learn. Layer $k$ learns from its gradient, so comparing $G$, the gradient it uses at this
# step, with $G'$, the one it would get after the layers below took the same step, measures exactly
# the mismatch that internal covariate shift was supposed to cause. Stepping layer $k$ itself (or the
# layers above it) would mix in changes that do not come from the layers below.
#
# Before the first step (step 0 in the table), batch norm's $\lVert G - G' \rVert$ is larger than the
# standard network's in every layer, and its cosines are lower: consistent with their Figure 3, where
# batch norm does not reduce this shift (and for their deep linear network increases it).
#
# At the next three measurements (steps 100 to 300), while both networks are still fitting, it is the
# other way round here: batch norm's $\lVert G - G' \rVert$ is smaller in every layer, and its cosines
# are higher in layers 3 and 4. dp's study finds the same over several seeds and reports it as the
# part of their Figure 3 that does not replicate on this network. A reason it may not, which neither
# this notebook nor the study tests: $\lVert G - G' \rVert$ grows with the size of the gradients, and
# a 4-layer ReLU network started with He's weights is a much easier problem than a deep VGG or a deep
# linear network. Later, once both networks fit their 4,000 training images, the values fall and the
# order changes from one measurement to the next.

# %% [markdown]
# **Question 4.** What do the three landscape measures say about batch norm, and when? How does that
# compare with their Figure 4, and how does it explain what batch norm does?

# %% [markdown] tags=["answer"]
# Before the first step, the batch-norm network's three measures are larger than the standard
# network's (dp's study finds the same at initialization). From step 100 to step 500, while the
# networks fit, its loss range is smaller at every measurement by an order of magnitude or more, and
# its gradient predictiveness several times smaller: along the gradient the loss changes less, and
# the gradient a step lands on is closer to the one it followed. That is consistent with their
# Figure 4. After step 500 the gap is no longer consistent: at some measurements the standard
# network's values fall to batch norm's level, as in dp's study once the networks fit their data.
# The effective beta-smoothness, a maximum of a ratio, does not separate the two networks in this
# run: which is larger changes from one measurement to the next.
#
# Their explanation of batch norm follows from the first two measures: if the gradient stays
# predictive over a longer step, gradient descent can take longer steps without overshooting, hence
# the higher learning rates and faster training of the first notebooks, whatever the layers' input
# distributions do.

# %% [markdown]
# **Question 5.** What can this notebook's run not tell you about their claims, and what would you
# change to test them more seriously?

# %% [markdown] tags=["answer"]
# It is one seed, one fixed batch for every measurement, a short run of a 4-layer ReLU network with
# He initialization on 4,000 images: a well-conditioned problem that the standard network also learns
# quickly, so batch norm has little to fix. A difference seen once may be chance. To test their
# claims: several seeds and their medians (dp's study, `dp paper santurkar2018`), the batch of each
# step as they measure, deeper networks or a harder data set where the standard network struggles,
# and the noisy network's accuracy measured both with and without its noise. What this run does
# show: the noisy network's shifting inputs do not stop it from fitting its training data; batch
# norm does not reduce this measure of covariate shift at the start; and while the networks learn,
# the landscape along the gradient is smoother with batch norm.

# %% [markdown]
# ## Going further
#
# - `dp paper santurkar2018 --quick` (in a clone of dp, after `pip install ".[paper]"`) runs these
#   measurements over two seeds, on the batch of each step; docs/why/santurkar2018.md reports the
#   full runs and compares them with the paper, finding by finding.
# - Make the noise stronger (`NOISE_SCALE = 3`) or weaker and run the experiment again: where does
#   the noisy network stop fitting its training images?
# - Measure the noisy network's covariate shift too (your functions work for it: its noise is the
#   same within a step). Is it larger than batch norm's?
# - Train longer (`STEPS = 2000`): what happens to every measure once both networks fit their
#   training images?
