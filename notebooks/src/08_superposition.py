# %% [markdown]
# # 08 Superposition
#
# In lesson 04 you met neuron 4e:55 of InceptionV1, which fires for cat faces, fronts of cars and cat legs.
# Such *polysemantic* neurons are everywhere, and they are a puzzle: if a network has a neuron to spare
# for every concept, why mix unrelated concepts in one? The *superposition hypothesis* says that the
# network does not have a neuron to spare. It wants to track more features than it has dimensions, and
# when most features are absent most of the time (they are **sparse**), it can store them along
# directions that are not orthogonal, accepting a little interference between them.
#
# Elhage et al., *Toy Models of Superposition* (Anthropic, 2022), made this concrete with a model small
# enough to see all of: a few sparse features squeezed through an even smaller hidden layer and read
# back out. In this lesson you build that model, train it, and watch superposition appear as the
# features get sparser:
#
# 1. the toy model, and features as arrows (`ToyModel`)
# 2. sparse synthetic data (`sparse_feature_batch`)
# 3. importance and the loss (`importance_weighted_loss`)
# 4. training many models at once, and the geometry they find (`train_toy_model`)
# 5. how much of a dimension each feature gets (`feature_dimensionality`)
#
# Everything here trains in seconds on a CPU, in either mode.

# %% [setup]

# %% [markdown]
# ## 1. A model with more features than dimensions
#
# Imagine an input of $n$ features $x_1, \dots, x_n$ and a hidden layer of only $m < n$ numbers. The toy
# model of Elhage et al. embeds the input with a matrix $W$ of shape $m \times n$, then tries to recover
# it with the transpose of the same matrix, a bias and a ReLU:
#
# $$h = W x, \qquad x' = \mathrm{ReLU}(W^\top h + b) = \mathrm{ReLU}(W^\top W x + b).$$
#
# Read $W$ by columns: column $W_i$ is the **direction** in the hidden space where feature $i$ is
# written, so $h = \sum_i x_i W_i$ is a sum of arrows, one per active feature, scaled by its value.
# Reading feature $i$ back out takes the dot product $W_i \cdot h$. If the columns were orthogonal,
# each read-out would see only its own feature; but $m$ dimensions hold at most $m$ orthogonal arrows.
# With more features than that, the model has three options for each feature: give it its own
# direction, drop it ($W_i = 0$), or share directions and live with **interference**, the
# $W_i \cdot W_j$ terms that leak feature $j$ into the read-out of feature $i$. The ReLU and the bias
# are what make sharing workable, as you will see below.
#
# We will want to train many such models at once (one per sparsity), so `ToyModel` holds
# `n_instances` independent copies in one set of tensors: `W` has shape
# `[n_instances, n_hidden, n_features]`, the bias `b_final` has shape `[n_instances, n_features]`, and a
# batch has shape `[batch, n_instances, n_features]`. Instance $k$ only ever touches `W[k]`,
# `b_final[k]` and `x[:, k]`.
#
# <details><summary>Hint: the idea</summary>
#
# Each instance is one small model: a matrix whose columns are the features' directions in the hidden
# space, and a bias per feature. The forward pass writes the input into the hidden space with `W`, reads it
# back out with the same `W` transposed, adds the bias and applies the ReLU, for every instance on its own;
# the care goes into keeping the instance axis lined up.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Create the parameters with `nn.Parameter(...)`: `torch.randn(...) * std` for `W` with the std from the
# docstring, `torch.zeros(...)` for `b_final`. In `forward`, two `einops.einsum` calls keep the axes
# straight: first contract over features, `"inst hidden feat, batch inst feat -> batch inst hidden"`,
# then contract the hidden vector with `W` again over `hidden` to get back to features. Add
# `self.b_final` (it broadcasts over the batch) and apply `torch.relu` last.
# </details>

# %% [exercise] 08.ToyModel

# %%
from mi_course import check

check("08.ToyModel")

# %% [markdown]
# ### Sharing directions: a pentagon by hand
#
# Before training anything, wire a model by hand. Put all five features of a 5-feature model into 2
# dimensions as the corners of a regular pentagon (`regular_polygon(5)`, unit arrows 72° apart). Then
# read-outs interfere: feature 0 leaks $\cos 72° \approx 0.31$ of its value into its two neighbours and
# $\cos 144° \approx -0.81$ into the other two. We compare two copies of that model, with bias 0 and with
# bias $-0.31$, on three inputs.

# %%
import matplotlib.pyplot as plt
import torch

from mi_course.superposition import plot_features_2d, plot_outputs, regular_polygon

torch.set_num_threads(1)  # the models of this lesson are tiny: one CPU thread runs them fastest
demo = ToyModel(n_features=5, n_hidden=2, n_instances=2)
with torch.no_grad():
    demo.W[:] = regular_polygon(5)   # the same pentagon in both instances
    demo.b_final[0] = 0.0
    demo.b_final[1] = -0.31

cases = torch.zeros(3, 2, 5)          # [case, instance, feature]
cases[0, :, 0] = 1.0                  # feature 0 alone
cases[1, :, [0, 1]] = 1.0             # neighbours on the pentagon (72 degrees apart)
cases[2, :, [0, 2]] = 1.0             # two features 144 degrees apart
with torch.no_grad():
    out = demo(cases)

plot_features_2d(demo.W[:1], ["the pentagon"]);
plot_outputs(cases[:, 0], {"bias 0": out[:, 0], "bias -0.31": out[:, 1]},
             ["feature 0 alone", "features 0 and 1", "features 0 and 2"])
plt.show()

# %% [markdown]
# Read the bars from left to right:
#
# * **One feature active.** The ReLU throws away the negative leaks (into features 2 and 3) for free;
#   the positive leaks of 0.31 into the neighbours survive with bias 0, and the bias of $-0.31$ removes
#   them, at the price of shaving 0.31 off the true feature. A single active feature is recovered
#   almost perfectly.
# * **Two neighbours active.** Each leaks $+0.31$ into the other. With bias 0 both come back 0.31 too
#   large; with bias $-0.31$ the leak happens to pay the bias and they come back right. The absent
#   features read negative sums, which the ReLU removes.
# * **Two features 144° apart.** Each receives $-0.81$ from the other: with bias 0 they come back as
#   0.19, with the bias they vanish. Worse, feature 1, which is absent but sits between them, collects
#   $0.31 + 0.31$ and lights up.
#
# So superposition is nearly free when features occur one at a time and costly when they co-occur. How
# often they co-occur depends on how sparse they are, which is what the next exercise controls.

# %% [markdown]
# ## 2. Sparse features
#
# The synthetic data of Elhage et al. has no structure except sparsity: each feature, in each example,
# is independently *present* with probability $p$, and then takes a value uniform in $[0, 1)$;
# otherwise it is exactly 0. The paper describes data by its **sparsity** $S = 1 - p$, the probability
# that a feature is zero. Keep the two apart: our function takes `feature_probability` $= p$; high
# sparsity ($S = 0.99$) means $p = 0.01$, a feature present in one example in a hundred. With $n$
# features, an example has on average $np$ active ones.
#
# `feature_probability` may be one number for all instances or a tensor with one probability per
# instance, so that a single call serves a model whose instances each see a different sparsity.
#
# <details><summary>Hint: the idea</summary>
#
# Every entry needs two independent random draws: one that decides whether the feature is present, with
# its instance's probability, and one that gives its value if it is. Validate the probability before
# drawing anything, and take all the randomness from the generator, so that the same state gives the same
# batch.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Draw two tensors of shape `[batch, n_instances, n_features]` with `torch.rand(..., generator=generator)`:
# the values, and a second one compared with the probability to decide presence (`rand < p` is `True`
# with probability `p`). A tensor `p` of shape `[n_instances]` has to become `[n_instances, 1]` to line up
# with the instance axis. Multiply values by the mask. Check first, raising a `ValueError` that says what
# was expected: `torch.as_tensor(p, dtype=torch.float32)` turns a float into a 0-dim tensor, which you
# expand to `[n_instances]`, so one test covers both cases; the shape must then be `[n_instances]` and
# every value in [0, 1].
# </details>

# %% [exercise] 08.sparse_feature_batch

# %%
check("08.sparse_feature_batch")

# %% [markdown]
# Three instances with sparsity 0, 0.7 and 0.95: the dense one is full, the sparse one mostly white.

# %%
from mi_course.superposition import plot_feature_batch

probabilities = torch.tensor([1.0, 0.3, 0.05])
batch = sparse_feature_batch(2000, 20, probabilities, n_instances=3, generator=torch.Generator().manual_seed(0))
plot_feature_batch(batch, [f"S = {1 - p:.2f}" for p in probabilities.tolist()])
plt.show()
active = (batch != 0).float().sum(dim=-1).mean(dim=0)
for p, a in zip(probabilities.tolist(), active.tolist()):
    print(f"p = {p:.2f}: {a:5.2f} active features per example (expected n * p = {20 * p:.1f})")

# %% [markdown]
# ## 3. Importance and the loss
#
# Not every feature is worth the same to a real network. The toy model encodes this with an
# **importance** $I_i$ per feature that weights its reconstruction error:
#
# $$L = \sum_{\text{instances } k} \; \mathbb{E}_x \Big[ \sum_i I_{k,i} \, (x_{k,i} - x'_{k,i})^2 \Big].$$
#
# The expectation is the mean over the batch. Features are *summed*, so a dropped feature costs its full
# importance-weighted error. Instances are *summed* too, not averaged: instance $k$'s parameters then get
# exactly the gradient of instance $k$'s own loss, whatever the number of instances, as if each were
# trained alone. Importance can be one vector shared by all instances or one row per instance.
#
# <details><summary>Hint: the idea</summary>
#
# The loss is a weighted squared error; what matters is how each axis is reduced. Importance weights each
# feature's error, the features add up, the examples are averaged, and the instances add up again, so that
# each instance is trained as if it were alone.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `importance * (x - x_hat) ** 2` broadcasts both shapes of `importance` against
# `[batch, n_instances, n_features]`. Then sum over the feature axis, take the mean over the batch axis,
# and sum what is left (one number per instance).
# </details>

# %% [exercise] 08.importance_weighted_loss

# %%
check("08.importance_weighted_loss")

# %% [markdown]
# Now compare two hand-made strategies for 5 features in 2 dimensions, all of importance 1:
#
# * **orthogonal**: features 0 and 1 get one axis each, features 2, 3, 4 are dropped (what a linear
#   model, or PCA, would do);
# * **pentagon**: all five features on a pentagon with bias $-0.31$, as above.
#
# We measure each strategy's loss on fresh batches as the features get sparser. The loss shrinks with
# $p$ for both (fewer features to get wrong), so we plot it divided by $p$: the cost per unit of feature
# activity.

# %%
probs = torch.logspace(0, -2.5, 11)
orthogonal = torch.zeros(2, 5)
orthogonal[0, 0] = orthogonal[1, 1] = 1.0
strategies = ToyModel(n_features=5, n_hidden=2, n_instances=2)
with torch.no_grad():
    strategies.W[:] = torch.stack([orthogonal, regular_polygon(5)])
    strategies.b_final[:] = torch.tensor([[0.0], [-0.31]])

g = torch.Generator().manual_seed(0)
cost = []
for p in probs.tolist():
    x = sparse_feature_batch(50_000, 5, p, n_instances=2, generator=g)
    with torch.no_grad():
        x_hat = strategies(x)
    cost.append([importance_weighted_loss(x[:, k:k + 1], x_hat[:, k:k + 1], torch.ones(5)).item() / p
                 for k in range(2)])
cost = torch.tensor(cost)

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.loglog(1 / probs, cost[:, 0], "o-", label="orthogonal: 2 features, 3 dropped")
ax.loglog(1 / probs, cost[:, 1], "o-", label="pentagon: 5 features in superposition")
ax.set_xlabel("1 / (1 - S) = 1 / feature_probability")
ax.set_ylabel("loss / feature_probability")
ax.legend()
plt.show()

# %% [markdown]
# With dense features the pentagon is worse: everything interferes with everything all the time.
# The orthogonal strategy's cost per unit of activity is flat, since each dropped feature always costs
# its full error. The pentagon's cost falls as co-occurrences get rarer; it wins from a sparsity of
# about $S \approx 0.4$ on, and by a wide margin once features are rare. That crossing is the heart of the paper:
# **sparsity makes superposition worth its interference**. A trained model does better than both of our hand-made
# guesses, since it also tunes the lengths of the arrows and the biases; let's train some.

# %% [markdown]
# ## 4. Training: the geometry depends on sparsity
#
# Training is a plain loop: draw a fresh sparse batch, compute the importance-weighted loss of the
# model's reconstruction, take an Adam step. Because the instances never interact and the loss sums over
# them, one loop trains all of them at once, each with its own sparsity (and, if you like, its own
# importance). Seeding a `torch.Generator` once and passing it to `sparse_feature_batch` makes a run
# repeatable.
#
# <details><summary>Hint: the idea</summary>
#
# A standard training loop: every step a new sparse batch, the model's reconstruction of it, the
# importance-weighted loss, one optimizer step. The batches come from one generator seeded once before the
# loop, so each step sees new data but two runs with the same seed see the same sequence of batches.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Create `generator = torch.Generator().manual_seed(seed)` and
# `optimizer = torch.optim.Adam(model.parameters(), lr=lr)` before the loop. In the loop: batch with
# `sparse_feature_batch(batch_size, model.n_features, feature_probability, model.n_instances, generator)`,
# `loss = importance_weighted_loss(batch, model(batch), importance)`, then `optimizer.zero_grad()`,
# `loss.backward()`, `optimizer.step()`, and keep `loss.item()`.
# </details>

# %% [exercise] 08.train_toy_model

# %%
check("08.train_toy_model")

# %% [markdown]
# Here is a small version of the experiment in the opening figure of Elhage et al.: five features of
# decaying importance in two dimensions (we use $0.9^i$, so feature 0 matters most), one instance per
# sparsity, all trained together. Each panel draws one instance's columns $W_i$ as arrows; darker arrows are more
# important features.

# %%
sparsities = torch.tensor([0.0, 0.7, 0.8, 0.9, 0.95])
importance = 0.9 ** torch.arange(5.0)
model = ToyModel(n_features=5, n_hidden=2, n_instances=len(sparsities))
losses = train_toy_model(model, 1 - sparsities, importance, steps=2000, batch_size=512, lr=2e-2)

titles = [f"S = {s:.2f}" for s in sparsities.tolist()]
plot_features_2d(model.W, titles, importance=importance)
plt.show()

fig, ax = plt.subplots(figsize=(5, 2.5))
ax.semilogy(losses)
ax.set_xlabel("step")
ax.set_ylabel("loss (summed over instances)")
plt.show()

# %% [markdown]
# From left to right (a rerun with another seed differs in details, such as the rotation or which
# features pair up):
#
# * **Dense ($S = 0$)**: no superposition. The two most important features get orthogonal directions,
#   the other three are dropped, exactly what a linear model would do.
# * **$S = 0.7$** (and usually $0.8$): four features, stored as two **antipodal pairs**: one feature
#   points exactly opposite another. Opposite arrows interfere only negatively, and the ReLU removes
#   negative interference, so a pair shares a dimension at little cost. One feature is still dropped.
# * **$S \geq 0.9$**: all five features on a **pentagon**, the arrangement we built by hand, with arrows
#   slightly longer than 1 to make up for the negative bias.
#
# Training does not always find the best arrangement: now and then a feature whose arrow starts short
# gets a negative bias early, its ReLU never fires again, and it stays dropped ("dead") even where a
# pentagon would be better. Training several instances per setting and keeping the best is the usual
# remedy.
#
# Elhage et al. describe the same progression, and map which regime wins as a function of a feature's
# importance and sparsity: whether a feature gets a dimension, shares one, or is dropped changes
# abruptly at sharp boundaries, like a phase change (their "phase diagrams").
#
# ### Interference
#
# The matrix $W^\top W$ shows all the interference at once: entry $(i, j) = W_i \cdot W_j$ is how much of
# feature $j$ lands in the read-out of feature $i$. Its diagonal holds the squared lengths.

# %%
from mi_course.superposition import plot_interference

plot_interference(model.W, titles)
plt.show()
print("biases of the sparsest instance:", model.b_final[-1].detach().numpy().round(2))

# %% [markdown]
# The dense model is diagonal: two features, no interference. Antipodal pairs add entries of $-1$ (blue),
# harmless behind a ReLU. The pentagon has both: negative interference with the far features, and
# positive interference (red) with the neighbours, which the negative biases printed above absorb as
# long as features rarely arrive together.

# %% [markdown]
# ### A sparsity slider
#
# The explorer below trains *your* `ToyModel` with *your* `train_toy_model`: five features in two
# dimensions, one instance per sparsity from $S = 0$ to $S = 0.98$, with importance $d^i$ for the
# decay $d$ you pick. Each decay is trained once, the first time you choose it (about a second),
# and after that the sliders only redraw. The arrows are the columns $W_i$, numbered, darker for more
# important features. The table gives each feature's arrow length and bias, and counts a feature as
# represented when its arrow is longer than 0.5. Slide the sparsity up from 0 and watch the count
# rise: 2 orthogonal features, then antipodal pairs, then all five on a pentagon. Then lower the
# decay. With importance falling fast ($d = 0.5$) the least important feature is not worth the
# interference it would cause, and it stays dropped even at the highest sparsity.

# %%
from mi_course.explorers import superposition_explorer

superposition_explorer(ToyModel, train_toy_model)

# %% [markdown]
# ## 5. Feature dimensionality
#
# How much of a dimension does each feature get? Elhage et al. define the **dimensionality** of feature
# $i$ as
#
# $$D_i = \frac{\lVert W_i \rVert^2}{\sum_j \big(\hat W_i \cdot W_j\big)^2},
# \qquad \hat W_i = \frac{W_i}{\lVert W_i \rVert},$$
#
# with the sum over all features, $j = i$ included. The numerator says how much feature $i$ is
# represented; the denominator how many features, itself included, share its direction, each weighted
# by how much of it falls along $\hat W_i$. A feature with a dimension to itself gets
# $\lVert W_i \rVert^2 / \lVert W_i \rVert^2 = 1$; each of an antipodal pair gets $1/2$; a regular
# pentagon of unit arrows gives $\sum_j \cos^2(72° j) = 5/2$ in the denominator, so $2/5$. A dropped
# feature ($W_i = 0$) gets 0.
#
# <details><summary>Hint: the idea</summary>
#
# For each feature, set how strongly it is represented (its squared column length) against how crowded its
# direction is: project every feature's column, its own included, onto this feature's unit direction and
# add up the squared projections. Do it for all pairs of features at once, per instance, and decide up front
# what a zero column gives.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Column norms are `W.norm(dim=1)` (shape `[n_instances, n_features]`). Divide `W` by them (where they
# are nonzero) to get the unit columns, then one `einops.einsum` with pattern
# `"inst hidden i, inst hidden j -> inst i j"` gives every $\hat W_i \cdot W_j$. Square, sum over `j`, and
# divide; use `torch.where` so that zero norms and zero denominators give 0 instead of NaN.
# </details>

# %% [exercise] 08.feature_dimensionality

# %%
check("08.feature_dimensionality")

# %% [markdown]
# On the five-feature model of section 4 the numbers match the pictures: 1 for the two dense features,
# $1/2$ for antipodal pairs, $2/5$ on the pentagons, 0 for dropped features.

# %%
dims = feature_dimensionality(model.W.detach())
for title, row in zip(titles, dims.tolist()):
    print(f"{title}:  " + "  ".join(f"{d:.2f}" for d in row))

# %% [markdown]
# ### Dimensionality against sparsity
#
# Now a bigger model: 40 features of equal importance in 5 dimensions, ten instances from $S = 0.5$ to
# $S = 0.98$. The black line is the average number of dimensions per feature, $m / \lVert W \rVert_F^2$
# ($\lVert W \rVert_F^2 = \sum_i \lVert W_i \rVert^2$ counts the represented features, each of length about
# 1). Each dot is one represented feature's $D_i$.

# %%
from mi_course.superposition import plot_dimensionality

probabilities = torch.logspace(-0.3, -1.7, 10)   # from p = 0.5 to p = 0.02
big = ToyModel(n_features=40, n_hidden=5, n_instances=len(probabilities))
train_toy_model(big, probabilities, torch.ones(40), steps=2000, batch_size=256, lr=1e-2)
W_big = big.W.detach()
plot_dimensionality(probabilities, W_big, feature_dimensionality(W_big))
plt.show()

# %% [markdown]
# The dimensions per feature do not fall smoothly as sparsity grows. They **stick** at special fractions
# and then jump. Here the clearest plateau is at $1/2$: for the densest instances, every represented
# feature sits in an antipodal pair, ten features in five dimensions. Sparser instances pack more, and
# their features spread over smaller values. Elhage et al. trained longer, over a wider range of
# sparsities, and saw features cluster at $1$, $3/4$ (tetrahedra), $2/3$ (triangles), $1/2$ (antipodal pairs), $2/5$
# (pentagons) and $3/8$ (square antiprisms): the model splits its space into orthogonal subspaces,
# each holding a small regular polytope of features. Our short CPU run shows the first plateaus and the
# trend; the rest needs more steps.
#
# The interference matrices of the densest and the sparsest instance tell the same story. At
# $p = 0.5$, ten features are represented, each with a single $-1$ entry: its antipodal partner; the
# other thirty rows are blank (dropped). At $p = 0.02$ nearly every feature is represented, and each
# overlaps many others by small amounts of either sign, interference the model accepts because two of
# them rarely arrive together.

# %%
plot_interference(W_big[[0, -1]], [f"p = {probabilities[0]:.2f}", f"p = {probabilities[-1]:.2f}"], size=3.5)
plt.show()

# %% [markdown]
# ## Summary
#
# * A layer with $m$ dimensions can store more than $m$ features by giving them non-orthogonal
#   directions: **superposition**. The price is interference between the features' read-outs.
# * A ReLU removes negative interference and a negative bias removes small positive interference, which
#   only works while features rarely co-occur: **sparsity** is what makes superposition pay.
# * **Importance** decides which features get their own dimension, which share, and which are dropped.
# * Features arrange themselves into regular geometry (antipodal pairs, pentagons, ...), and their
#   **dimensionality** sticks at simple fractions.
#
# If real networks do this, their neurons are the wrong unit of analysis: a neuron is one coordinate of
# a space in which many feature directions overlap. Lesson 09 takes the next step of Bricken et al.
# (2023): train a *sparse autoencoder* that learns an overcomplete set of directions, one per feature,
# to undo the superposition.
