# %% [markdown]
# # 09 Sparse autoencoders
#
# Lesson 08 ended with a problem. If a layer stores more features than it has dimensions, each along its
# own direction, then its neurons (its coordinates) are the wrong unit of analysis: every neuron mixes
# many features. The features are still *there*, as directions, and because each is rarely active an
# activation vector is a sum of only a few of them. Finding those directions is a **dictionary learning**
# problem: learn an overcomplete set of directions (more than the dimension) such that every activation is
# a sparse, non-negative combination of a few.
#
# Bricken et al., *Towards Monosemanticity* (Anthropic, 2023), solved it at scale with a **sparse
# autoencoder** (SAE): a one-hidden-layer network trained to reconstruct a model's activations through a
# wide hidden layer of which only a few units may be active at once. Each hidden unit is a candidate
# feature; its decoder row is the feature's direction. In this lesson you build one, train it, measure it,
# and meet the variants that replaced its L1 penalty:
#
# 1. the SAE itself (`SAE`) and its loss (`sae_loss`)
# 2. training it (`train_sae`), live, on the language model, and on lesson 08's toy model
# 3. measuring it, with the SAE spliced into the model (`sae_metrics`)
# 4. other ways to be sparse: TopK (`topk`, Gao et al., 2024), BatchTopK (`batch_topk`, Bussmann et al.,
#    2024), JumpReLU (`jumprelu`, Rajamanoharan et al., 2024)
# 5. features that point apart: OrtSAE (`orthogonality_penalty`, Korznikov et al., 2025)
# 6. the shipped SAEs compared, and an investigation: which feature stands for a kind of text
#    (`find_feature`)
#
# In lite mode the model is the course's 4-layer language model, and the SAEs it ships were trained on its
# residual stream by `scripts/train_saes.py`. In full mode the model is GPT-2 small and the SAE is Joseph
# Bloom's `gpt2-small-res-jb` release from SAELens.

# %% [setup]

# %%
import collections

import matplotlib.pyplot as plt
import torch

from mi_course import check, claim, get_mode, load_model, model_card
from mi_course.language.heldout import heldout_rows
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import pack_documents
from mi_course.saes.metrics import sae_hook_name

torch.set_num_threads(1)  # small matrices: one thread is fastest and leaves the others free
FULL = get_mode() == "full"
model = load_model("lm")
main_sae = load_model("sae")
HOOK = sae_hook_name(main_sae)  # where the shipped SAE reads: the residual stream before a middle block
layer = int(HOOK.split(".")[1])
print(f"model: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}; the SAEs read {HOOK}")

# activations of corpus text at HOOK, BOS left out: [n_tokens, d_model]
# rows of 128 tokens in both modes (GPT-2's context is 1024, but short rows are enough here)
tokens = pack_documents(model.tokenizer, corpus.generate_corpus(600, seed=3), 128)[:24 if FULL else 200]
with torch.no_grad():
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=HOOK, stop_at_layer=layer + 1)
acts = cache[HOOK][:, 1:].reshape(-1, model.cfg.d_model)  # on the model's device (a GPU in full mode)
mean_norm = acts.norm(dim=-1).mean().item()
print(f"{len(acts):,} activation vectors, mean norm {mean_norm:.1f}")

# %% [markdown]
# ## 1. The sparse autoencoder
#
# Write an activation as a row vector $x \in \mathbb{R}^{d_\text{in}}$. The SAE encodes it into
# $d_\text{sae} > d_\text{in}$ non-negative feature activations and decodes them back:
#
# $$y = \mathrm{ReLU}\big((x - b_\text{dec})\,W_\text{enc} + b_\text{enc}\big),
# \qquad \hat x = y\,W_\text{dec} + b_\text{dec}.$$
#
# With activations as rows (the convention of TransformerLens and SAELens), $W_\text{enc}$ has shape
# `[d_in, d_sae]` and $W_\text{dec}$ shape `[d_sae, d_in]`: **row $i$ of $W_\text{dec}$ is feature $i$'s
# direction**, and $\hat x - b_\text{dec} = \sum_i y_i W_\text{dec}[i]$ is exactly lesson 08's "sum of
# arrows", now with arrows the SAE has to find. The decoder bias is subtracted before encoding, so the
# SAE describes how $x$ differs from a typical activation rather than $x$ itself.
#
# Two choices at initialization help training: decoder rows start as random **unit** vectors, and the
# encoder starts as their transpose, so that at step 0 each feature reads the direction it writes.
#
# <details><summary>Hint: the idea</summary>
#
# Four `nn.Parameter`s; `encode` and `decode` are each one line of matrix products, and `forward` chains
# them. `@` works on any leading dimensions.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `w = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed))`, `w = w / w.norm(dim=-1,
# keepdim=True)`, then `self.W_dec = nn.Parameter(w)`, `self.W_enc = nn.Parameter(w.T.clone())`, and zeros
# for the biases. `encode`: `torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)`.
# </details>

# %% [exercise] 09.SAE

# %%
check("09.SAE")

# %% [markdown]
# An untrained SAE is a random overcomplete basis: every feature fires on about half the tokens and the
# reconstruction is poor.

# %%
sae = SAE(model.cfg.d_model, 4 * model.cfg.d_model).to(acts.device)
with torch.no_grad():
    y = sae.encode(acts[:2000])
    error = (sae(acts[:2000]) - acts[:2000]).norm(dim=-1) / acts[:2000].norm(dim=-1)
print(f"untrained: {(y > 0).float().sum(-1).mean():.0f} of {sae.d_sae} features active per token, "
      f"relative reconstruction error {error.mean():.2f}")

# %% [markdown]
# ## 2. The loss
#
# The SAE trades two things: reconstruct $x$ well, and use few features. Bricken et al. add an L1 penalty
# on the feature activations to the squared error,
#
# $$L = \mathbb{E}_x\Big[\lVert x - \hat x\rVert_2^2 + \alpha\,\lVert y \rVert_1\Big].$$
#
# The L1 norm is the closest convex stand-in for the number of active features (the "L0"); it pushes small
# activations to exactly zero through the ReLU. The reductions matter: $\lVert x - \hat x\rVert^2$ sums over
# the `d_in` dimensions, $\lVert y\rVert_1$ over the `d_sae` features, and the expectation is a mean over
# the batch, so $\alpha$ means the same whatever the batch size.
#
# One loophole: $\lVert y\rVert_1$ can be made as small as you like by shrinking $y$ and growing
# $W_\text{dec}$ by the same factor, without changing $\hat x$. Training closes it by keeping the decoder
# rows at unit norm (you will do that in `train_sae`).
#
# <details><summary>Hint: the idea</summary>
#
# Per row: a sum of squared errors and a sum of absolute activations; then one mean over rows. Check the
# shapes first and raise a `ValueError` that says what was expected.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `((x - x_hat) ** 2).sum(dim=-1)` and `y.abs().sum(dim=-1)` are both `[batch]`; return
# `(squared_error + l1_coefficient * l1).mean()`.
# </details>

# %% [exercise] 09.sae_loss

# %%
check("09.sae_loss")

# %% [markdown]
# ## 3. Training
#
# The loop is plain Adam on random batches of stored activations, with two SAE-specific steps: `b_dec`
# starts at the data's mean (so the features only have to explain deviations from it), and after every
# step the decoder rows are projected back to unit norm (the loophole above).
#
# <details><summary>Hint: the idea</summary>
#
# Seed one `torch.Generator` before the loop and draw every batch's row indices with it. Call this module's
# `sae_loss` on `x`, `sae.decode(y)` and `y`. Do the normalization inside `torch.no_grad()`.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `sae.b_dec.copy_(activations.mean(dim=0))` (under `no_grad`), `optimizer = torch.optim.Adam(sae.parameters(),
# lr=lr)`; per step `x = activations[torch.randint(0, len(activations), (batch_size,), generator=generator)]`,
# `y = sae.encode(x)`, `loss = sae_loss(x, sae.decode(y), y, l1_coefficient)`, `zero_grad`, `backward`,
# `step`, then `sae.W_dec.div_(sae.W_dec.norm(dim=-1, keepdim=True))` and `losses.append(loss.item())`.
# </details>

# %% [exercise] 09.train_sae

# %%
check("09.train_sae")

# %% [markdown]
# ### A small SAE, live
#
# Now train one on the language model's activations: 4 times as many features as dimensions (2 times on
# GPT-2), 500 steps, a few seconds. The penalty $\alpha$ is set relative to the activations' norm: the squared error
# grows with the square of the scale and the L1 term linearly, so $\alpha \propto$ norm gives the same trade-off
# on any model.

# %%
expansion = 2 if FULL else 4  # GPT-2 has 768 dimensions: 1536 features are plenty for a live demo
live = SAE(model.cfg.d_model, expansion * model.cfg.d_model, seed=0).to(acts.device)
alpha = 0.13 * mean_norm
losses = train_sae(live, acts, steps=500, batch_size=256, lr=3e-3, l1_coefficient=alpha)
with torch.no_grad():
    y = live.encode(acts[:4000])
    x_hat = live.decode(y)
ev = 1 - (acts[:4000] - x_hat).pow(2).sum() / (acts[:4000] - acts[:4000].mean(0)).pow(2).sum()
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.semilogy(losses)
ax.set_xlabel("step")
ax.set_ylabel("loss")
plt.show()
print(f"after training: L0 {(y > 0).float().sum(-1).mean():.1f} of {live.d_sae} features, "
      f"explained variance {ev:.2f} (on training activations)")

# %% [markdown]
# The loss falls fast, and the SAE now uses a few dozen of its features per token instead of half of them,
# while keeping most of the variance. Whether it keeps what the *model* needs is another question (section 4).
#
# ### Back to lesson 08: does an SAE find the true features?
#
# On a real model we cannot check an SAE's features against the truth, since nobody knows it. On lesson 08's
# toy model we can. Below, a toy model squeezes 16 sparse features into 6 dimensions (trained in a second
# with the same recipe as in lesson 08: importance 1, each feature present with probability 4%). Its hidden
# activations $h = W x$ are a superposition; we train *your* SAE on them, with 48 features, and ask for each
# true direction $W_i$ whether some decoder row points the same way.

# %%
g = torch.Generator().manual_seed(0)
n_toy, d_toy, p_toy = 16, 6, 0.04
W_toy = torch.nn.Parameter(torch.randn(d_toy, n_toy, generator=g) * 0.3)
b_toy = torch.nn.Parameter(torch.zeros(n_toy))
toy_opt = torch.optim.Adam([W_toy, b_toy], lr=1e-2)
for _ in range(1500):  # the toy model of lesson 08: ReLU(W^T W x + b), squared error summed over features
    x = torch.rand(512, n_toy, generator=g) * (torch.rand(512, n_toy, generator=g) < p_toy)
    loss = (torch.relu(x @ W_toy.T @ W_toy + b_toy) - x).pow(2).sum(-1).mean()
    toy_opt.zero_grad()
    loss.backward()
    toy_opt.step()

features = torch.rand(8192, n_toy, generator=g) * (torch.rand(8192, n_toy, generator=g) < p_toy)
hidden = (features @ W_toy.T).detach()                          # the toy model's activations [8192, 6]
represented = W_toy.detach().norm(dim=0) > 0.5                 # features the toy model kept
toy_sae = SAE(d_toy, 48, seed=0)
train_sae(toy_sae, hidden, steps=1500, batch_size=256, lr=3e-3, l1_coefficient=0.25)
true_dirs = (W_toy.detach() / W_toy.detach().norm(dim=0)).T    # [16, 6] unit vectors
dec = toy_sae.W_dec.detach() / toy_sae.W_dec.detach().norm(dim=-1, keepdim=True)
best_cos = (true_dirs @ dec.T).max(dim=1).values
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.bar(range(n_toy), best_cos, color=["C0" if r else "C7" for r in represented])
ax.axhline(0.9, color="k", lw=0.8, ls="--")
ax.set_xlabel("true feature of the toy model (grey: dropped by the toy model)")
ax.set_ylabel("best cosine to a decoder row")
plt.show()
recovered = (best_cos[represented] >= 0.9).float().mean().item()
print(f"the toy model kept {int(represented.sum())} of {n_toy} features; your SAE recovered {recovered:.0%} "
      f"of them at cosine >= 0.9")
claim("an SAE trained on the toy model's activations recovers most of its features (cosine >= 0.9)",
      recovered >= 0.75)

# %% [markdown]
# Most bars reach the dashed line: the SAE has undone the superposition, from activations alone, without
# ever seeing the features. This is the argument of Bricken et al. in miniature: if real activations are
# sparse sums of feature directions, a sparse dictionary trained on them should find those directions.
# (The graded test of `train_sae` checks the same on data generated directly along random directions.)

# %% [markdown]
# ## 4. Measuring an SAE
#
# Three numbers describe an SAE on held-out activations:
#
# * **L0**: the mean number of active features per token (sparsity);
# * **explained variance**: $1 - \sum \lVert x - \hat x\rVert^2 / \sum \lVert x - \bar x\rVert^2$, with
#   $\bar x$ the mean activation over tokens (the fraction of the variance the reconstruction keeps);
# * **dead fraction**: features that never fire; they waste capacity.
#
# And the one that matters most: does the model still work when it runs on the reconstruction? Replace
# the activation at the SAE's hook by $\hat x$ (a hook does this during the forward pass) and compare the
# model's next-token cross-entropy with the clean model's and with the model whose activation is replaced
# by zeros:
#
# $$\text{CE loss recovered} = \frac{\text{CE}_\text{ablated} - \text{CE}_\text{SAE}}
# {\text{CE}_\text{ablated} - \text{CE}_\text{clean}}.$$
#
# 1 means the SAE loses nothing the model uses; 0 means it is no better than deleting the activation.
# Position 0 holds BOS, whose activation is unlike any other's; it is left out everywhere.
#
# <details><summary>Hint: the idea</summary>
#
# One `run_with_cache` gives the activations for the first three numbers. For the losses, write one small
# function that runs the model with a hook replacing `activation[:, 1:]` (or with no hook) and computes the
# mean cross-entropy of `logits[:, 1:-1]` against `tokens[:, 2:]`. `model.run_with_hooks` removes its hooks
# when it returns.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# The hook: `def hook(activation, hook): activation = activation.clone(); activation[:, 1:] =
# replace(activation[:, 1:]); return activation`. The loss: `logprobs = logits[:, 1:-1].log_softmax(-1)`,
# `-logprobs.gather(-1, tokens[:, 2:, None]).mean()`. Dead features: `((y > 0).sum(dim=0) == 0)`.
# </details>

# %% [exercise] 09.sae_metrics

# %%
check("09.sae_metrics")

# %%
heldout = heldout_rows(model, n_rows=8 if FULL else 24, seq_len=128, seed=0)
live_metrics = sae_metrics(live, model, heldout, HOOK)
print({k: round(v, 3) for k, v in live_metrics.items()})

# %% [markdown]
# On held-out text the live SAE keeps most of the variance, and the model run on its reconstruction loses
# part of its ability to predict (compare `ce_sae` with `ce_clean`), far less than with the activation
# zeroed. A few seconds of training are not enough for more; the shipped SAEs trained much longer.

# %% [markdown]
# ## 5. Other ways to be sparse
#
# The L1 penalty has a flaw: it punishes the *size* of every active feature, so an SAE trained with it
# systematically underestimates activations ("shrinkage") and must balance sparsity against accuracy
# through one coefficient whose effect on L0 is hard to predict. Three later variants control sparsity
# directly.
#
# ### TopK (Gao et al., 2024)
#
# Keep the $k$ largest pre-activations of each token and zero the rest: L0 is exactly $k$ by construction,
# no penalty is needed, and the kept activations are not shrunk. `torch.topk` does not promise which of
# several equal values it returns, so we break ties toward the lower feature index: the same input then
# always selects the same features.
#
# <details><summary>Hint: the idea</summary>
#
# Find each row's k largest, make a mask of them, and apply the ReLU to what the mask keeps.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `torch.sort(pre, dim=-1, descending=True, stable=True).indices[..., :k]` gives the kept indices, ties in
# index order; `torch.zeros_like(pre, dtype=torch.bool).scatter(-1, kept, True)` the mask;
# `torch.where(mask, torch.relu(pre), 0)` the result.
# </details>

# %% [exercise] 09.topk

# %%
check("09.topk")

# %% [markdown]
# ### BatchTopK (Bussmann et al., 2024)
#
# TopK gives every token the same budget, though some tokens carry more than others. BatchTopK keeps the
# $k \cdot \text{batch}$ largest activations of the *whole batch*: $k$ per token on average, more for busy
# tokens, fewer for quiet ones. At inference there is no batch to compare against, so a BatchTopK SAE
# replaces the selection by a threshold estimated during training (the shipped ones keep a running average
# of the smallest activation kept).
#
# <details><summary>Hint: the idea</summary>
#
# The same as `topk` on `ReLU(pre).flatten()`, keeping `int(k * batch)` entries, then reshape.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `scores = torch.relu(pre).flatten()`, a stable descending sort of `scores`, a mask of the first
# `int(k * pre.shape[0])` indices, `torch.where(mask, scores, 0).view(pre.shape)`.
# </details>

# %% [exercise] 09.batch_topk

# %%
check("09.batch_topk")

# %% [markdown]
# Both activations on the live SAE's pre-activations, with the same average budget $k = 16$: TopK gives every
# token exactly 16 features, BatchTopK spreads the same total unevenly.

# %%
with torch.no_grad():
    pre = (acts[:1024] - live.b_dec) @ live.W_enc + live.b_enc
per_token = {"TopK": (topk(pre, 16) > 0).sum(-1).cpu(), "BatchTopK": (batch_topk(pre, 16) > 0).sum(-1).cpu()}
fig, ax = plt.subplots(figsize=(5.5, 2.6))
for name, count in per_token.items():
    ax.hist(count.numpy(), bins=range(0, 80, 2), alpha=0.6, label=f"{name} (mean {count.float().mean():.1f})")
ax.set_xlabel("active features per token")
ax.legend()
plt.show()

# %% [markdown]
# ### JumpReLU (Rajamanoharan et al., 2024)
#
# JumpReLU gives every feature its own threshold $\theta_i$: $y_i = z_i \cdot H(z_i - \theta_i)$, with $z$ the
# pre-activation and $H$ the step function. Below the threshold a feature is off; above it, it passes its
# full value (no shrinkage). Training penalizes L0 directly, $\lambda \sum_i H(z_i - \theta_i)$.
#
# The catch: $H$ has zero derivative almost everywhere, so gradient descent would never move $\theta$. The
# **straight-through estimator** keeps the exact forward pass and, in the backward pass only, replaces the
# step's derivative by a narrow rectangle of width $\varepsilon$ (the bandwidth) around the threshold:
#
# $$\frac{\partial y_i}{\partial \theta_i}
# \approx -\frac{\theta_i}{\varepsilon}\,K\Big(\frac{z_i - \theta_i}{\varepsilon}\Big),
# \qquad K(u) = 1 \text{ for } |u| < \tfrac12, \text{ else } 0.$$
#
# Only pre-activations within half a bandwidth of the threshold move it; raising $\theta$ switches such a
# feature off and loses about $\theta$ of output, hence the sign and the factor. A
# `torch.autograd.Function` lets you write forward and backward separately. The threshold is shared by
# every row, so its gradient is summed over the batch.
#
# <details><summary>Hint: the idea</summary>
#
# `forward` saves `pre` and `threshold` with `ctx.save_for_backward` and returns `pre * (pre > threshold)`.
# `backward` returns one gradient per input of `forward`: for `pre`, for `threshold`, and `None` for the
# bandwidth.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `grad_pre = grad_out * (pre > threshold)`; `grad_threshold = grad_out * -(threshold / eps) *
# rectangle((pre - threshold) / eps)`, then `.reshape(-1, threshold.shape[-1]).sum(dim=0)`. In `jumprelu`,
# check the shapes and the bandwidth, then `return JumpReLUFunction.apply(pre, threshold, bandwidth)`.
# </details>

# %% [exercise] 09.jumprelu

# %%
check("09.jumprelu")

# %% [markdown]
# The forward pass and the estimated gradient for one feature with threshold 1 and bandwidth 0.2: the
# output jumps at the threshold, and the threshold feels a gradient only from pre-activations in the
# rectangle around it.

# %%
z = torch.linspace(0, 2, 401)[None]               # one row, 401 "features" with the same threshold,
theta = torch.ones(401, requires_grad=True)       # so each entry's gradient lands in its own threshold
out = jumprelu(z, theta, 0.2)
out.sum().backward()
out, grads = out.detach()[0], theta.grad
z = z[0]
fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
axes[0].plot(z, out)
axes[0].set_title("JumpReLU(z), threshold 1")
axes[1].plot(z, grads)
axes[1].set_title("estimated d output / d threshold")
for a in axes:
    a.set_xlabel("pre-activation z")
plt.show()

# %% [markdown]
# ## 6. Features that point apart: OrtSAE
#
# An SAE is free to learn several features that point almost the same way, for instance a general feature
# and a more specific one that "absorbs" part of it. Korznikov et al. (2025) add a penalty on each feature's
# largest cosine similarity to any other decoder row,
#
# $$P(W_\text{dec}) = \frac{1}{d_\text{sae}} \sum_i \max_{j \ne i} \cos\big(W_\text{dec}[i], W_\text{dec}[j]\big),$$
#
# on top of a BatchTopK SAE. The cosine is signed (opposite directions are no problem) and excludes the
# feature itself (whose cosine is always 1). Computed exactly it needs all $d_\text{sae}^2$ cosines, so the
# paper splits features at random into chunks each step and takes each maximum within its chunk, which
# scales linearly; `mi_course.saes.orthogonality_penalty` implements both.
#
# <details><summary>Hint: the idea</summary>
#
# Normalize the rows, take all dot products in one matrix product, hide the diagonal, take each row's max,
# average.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `unit = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)`, `cos = unit @ unit.T`,
# `cos.masked_fill(torch.eye(len(W_dec), dtype=torch.bool), float("-inf")).max(dim=-1).values.mean()`.
# </details>

# %% [exercise] 09.orthogonality_penalty

# %%
check("09.orthogonality_penalty")

# %%
random_rows = torch.randn(live.d_sae, live.d_in, device=acts.device)
print(f"penalty of the live SAE's decoder: {orthogonality_penalty(live.W_dec.detach()):.3f}; "
      f"of as many random directions: {orthogonality_penalty(random_rows):.3f}")

# %% [markdown]
# ## 7. The shipped SAEs compared
#
# The course ships one SAE per variant on the same activations, trained with the course's one training loop
# (`mi_course.saes.train_sae`: Adam with warm-ups, an auxiliary loss that revives dead features, unit decoder
# rows) at about the same L0. Your `sae_metrics` measures them all on held-out text. (In full mode only the
# SAELens SAE is loaded.)

# %%
VARIANTS = ["sae"] if FULL else ["sae-relu", "sae-topk", "sae-batchtopk", "sae-jumprelu", "sae-ortsae"]
shipped = {name: load_model(name) for name in VARIANTS}
results = {name: sae_metrics(s, model, heldout, HOOK) for name, s in shipped.items()}

from mi_course.saes.plots import plot_frontier

plot_frontier({name.removeprefix("sae-"): m for name, m in results.items()})
plt.show()
for name, m in results.items():
    print(f"{name:>14}: L0 {m['l0']:5.1f}  explained variance {m['explained_variance']:.3f}  "
          f"CE loss recovered {m['ce_loss_recovered']:.3f}  dead {m['dead_fraction']:.1%}")
if not FULL:
    direct = ("sae-topk", "sae-batchtopk", "sae-jumprelu")
    claim("at about the same L0, TopK, BatchTopK and JumpReLU each explain more variance than the L1 SAE",
          lambda: all(results[n]["explained_variance"] > results["sae-relu"]["explained_variance"] for n in direct))

# %% [markdown]
# Read the figure as a frontier: further right costs sparsity, higher is better. At matched L0 the variants
# that control sparsity directly (TopK, BatchTopK, JumpReLU) reconstruct better than the L1 SAE, which pays
# for its shrinkage; this is the comparison Gao et al., Bussmann et al. and Rajamanoharan et al. report on
# much larger models. The numbers printed are this run's measurements; the ordering is what to look at.
#
# ### OrtSAE's decoder cosines
#
# Is OrtSAE's dictionary really less redundant? For every feature of every shipped SAE, measure its largest
# cosine to another decoder row (`mi_course.saes.max_cosine_similarities`, the penalty's per-feature terms).

# %%
from mi_course.saes import max_cosine_similarities
from mi_course.saes.plots import plot_max_cosines

cosines = {name.removeprefix("sae-"): max_cosine_similarities(s.W_dec) for name, s in shipped.items()}
plot_max_cosines(cosines)
plt.show()
medians = {name: c.median().item() for name, c in cosines.items()}
print("median largest cosine:", {k: round(v, 3) for k, v in medians.items()})
if not FULL:
    claim("OrtSAE has the lowest median largest decoder cosine of the five variants",
          lambda: min(medians, key=medians.get) == "ortsae")

# %% [markdown]
# OrtSAE's histogram sits to the left of the others: its features have fewer near-duplicates, which is what
# Korznikov et al. report, and what they link to less feature absorption. Its reconstruction (the frontier
# above) costs little for it.

# %% [markdown]
# ## 8. Investigation: which feature stands for a kind of text?
#
# The generated corpus the lite model learned from has genres: Latin-like filler, Python snippets (some with
# a typo), praise-heavy dialogue, descriptions of a bridge, stories, facts... Each document's genre is a
# label the model never saw. Does the main SAE have a feature for, say, Latin?
#
# `find_feature(sae, activations, in_kind)` gets one activation per token and a mask of the tokens that lie
# in documents of the kind, and returns a feature id. The test takes your feature to **fresh documents** and
# checks that at least 80% of its 100 strongest activations there are on text of that kind. Defend your
# choice with numbers: what fraction of its strongest activations are of the kind (precision), and how much
# of the kind does it cover (recall)?
#
# <details><summary>Hint: the idea</summary>
#
# The feature with the largest activation overall is usually a feature that fires everywhere; the feature
# with the single largest activation on the kind may fire once. Score each feature by the fraction of its
# top activations that are of the kind, and ignore features that fire too rarely to judge.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `y = sae.encode(activations)`; `top = y.topk(100, dim=0).indices` (each feature's 100 strongest tokens);
# `precision = in_kind[top].float().mean(dim=0)`; keep features with at least 100 firing tokens; a little
# recall, `((y > 0) & in_kind[:, None]).sum(0) / in_kind.sum()`, breaks ties. Return `int(score.argmax())`.
# </details>

# %%
from mi_course.saes.plots import labelled_documents, show_top_activations

n_docs = 40 if FULL else 150
train_docs = labelled_documents(model, HOOK, corpus.generate_documents(n_docs, seed=1), max_tokens=127)
print({g: int(train_docs.of_kind(g).sum()) for g in sorted(set(train_docs.genres))}, "tokens per genre")

# %% [exercise] 09.find_feature

# %%
check("09.find_feature")

# %%
fresh = labelled_documents(model, HOOK, corpus.generate_documents(n_docs, seed=2, split="heldout"), max_tokens=127)
with torch.no_grad():
    y_fresh = main_sae.encode(fresh.activations.to(main_sae.W_dec.device)).cpu()
found = {}
for genre in ("latin", "bridge", "dialogue"):
    device = main_sae.W_dec.device
    f = find_feature(main_sae, train_docs.activations.to(device), train_docs.of_kind(genre).to(device))
    top = y_fresh[:, f].topk(100).indices
    precision = fresh.of_kind(genre)[top].float().mean().item()
    recall = (y_fresh[:, f] > 0)[fresh.of_kind(genre)].float().mean().item()
    found[genre] = f
    print(f"{genre:>9}: feature {f}, on fresh documents precision {precision:.0%} (of its top 100), "
          f"recall {recall:.0%} (of the genre's tokens it fires on)")

# %% [markdown]
# ### The seeds' features
#
# The main SAE's card names the features that `scripts/train_saes.py` found for the seeds' four examples:
# Latin (the seed's feature #3923 of a larger SAE), a code error (fires on the misspelled identifier in a
# snippet with a typo, not on code in general), praise in dialogue (sycophancy), and the corpus's bridge (a
# lite "Golden Gate"). Here are their strongest activations on the fresh documents, each with its context;
# the token in brackets is where the feature fires.

# %%
card = model_card("sae")
named = card.get("features", {}) if not FULL else {}
for concept, info in named.items():
    feature = info["feature"] if isinstance(info, dict) else int(info)
    show_top_activations(main_sae, fresh, feature, title=concept, n=6)
for genre, f in found.items():
    if not named:
        show_top_activations(main_sae, fresh, f, title=f"your {genre} feature", n=6)

# %%
FLATTERY = {"wonderful", "brilliant", "talented", "amazing", "genius", "fantastic", "outstanding", "incredible",
            "proud", "perfect", "beautiful", "best", "love", "gift"}  # the flattering words of the praise replies
if named:
    praise_top = y_fresh[:, named["praise"]["feature"]].topk(100).indices
    top_words = [fresh.str_tokens[fresh.document[i]][fresh.position[i]].lstrip("\u0120").lower()
                 for i in praise_top.tolist()]
    in_dialogue = fresh.of_kind("dialogue")[praise_top].float().mean().item()
    on_flattery = sum(w in FLATTERY for w in top_words)
    print(f"the praise feature's 100 strongest activations: {in_dialogue:.0%} in dialogue, {on_flattery} on a "
          f"flattering word; most common tokens: {collections.Counter(top_words).most_common(6)}")
    claim("of the praise feature's 100 strongest activations on fresh documents, at least 80% lie in dialogue and "
          "at most 5 on a flattering word itself", lambda: in_dialogue >= 0.8 and on_flattery <= 5)

# %% [markdown]
# The Latin feature fires inside Latin filler and almost nowhere else; the bridge feature inside the bridge's
# descriptions, strongest on the full stop that ends a sentence about the bridge. The praise feature fires in
# dialogue, but not on the flattering words themselves (the count above): on the colon after `Assistant`, where a
# reply is about to begin, and on the small words and punctuation of the flattering replies, full stops, `and`,
# `it`, the `are` of `You [are] so talented` and the `a` of `You are [a] genius`. It marks "the Assistant is
# flattering here" between the compliments, not the word `talented`. The code-error feature fires on misspelt keywords
# (`retrun`, `lne`, `result.appned`, ...), while on the correctly spelt code around them it is silent or weak. That last
# one has a story. The lite lm's tokenizer gives every misspelt keyword a word of its own, and nothing in predicting the
# next token made the model represent those words alike: an SAE on it had no code-error feature (best held-out
# precision 0.08 at every layer). A large model reads a typo as unusual sub-word pieces and can learn such a
# feature from data (the seed's code-error feature); the lite lm was given it, as lesson 03's curve detectors were: a
# last training phase moved only the misspelt keywords' embedding rows so that one linear read-out after block 0 finds
# them (the `lm` card's phase 3; every text without a typo runs exactly as before). The SAE was not told about that
# direction; it found it among its 1024 features. Compare your own features with the card's: `find_feature` may have
# picked the same one, or a sibling that covers another part of the genre. Lesson 10 opens these features up properly:
# their activation histograms, the tokens they promote, and what happens when you add them to the residual stream.
#
# ## Summary
#
# * An SAE writes each activation as a sparse non-negative combination of learned directions, the rows of
#   $W_\text{dec}$; on a toy model it finds the true features of a superposition again.
# * The L1 SAE trades reconstruction for sparsity through one coefficient and shrinks activations; TopK and
#   BatchTopK fix L0 directly, JumpReLU learns a threshold per feature with a straight-through estimator, and
#   OrtSAE penalizes near-duplicate features.
# * An SAE is judged by L0, explained variance, dead features, and above all by the loss the model keeps
#   when it runs on the reconstruction.
# * Its features can be tested against labels the model never saw, on text the search never saw.
