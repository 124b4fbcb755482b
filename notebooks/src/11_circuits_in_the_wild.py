# %% [markdown]
# # 11 Circuits in the wild
#
# The earlier lessons took models apart with tools made for them: circuits read off the weights of
# attention-only models (05, 06), lenses on the residual stream (07), dictionaries of features (08-10). This
# lesson follows four behaviours of trained models to the components that produce them, with the two tools
# that work on any model:
#
# 1. **Modular addition** (Nanda et al., *Progress measures for grokking*, 2023): a one-layer transformer
#    trained on $(a + b) \bmod p$ computes it with waves. You find its key frequencies (`fourier_basis`,
#    `key_frequencies`), see its embeddings sit on circles and its neurons multiply waves, and check that the
#    answer lives in those frequencies alone.
# 2. **Indirect object identification** (Wang et al., *Interpretability in the Wild*, 2022): "When Mary and John
#    went to the store, John gave a drink to" ... Mary. You measure it (`logit_diff`) and find where it is
#    computed by **activation patching** (`activation_patching`), then answer a question about the heads
#    (`ioi_answer_heads`).
# 3. **Greater-than** (Hanna, Liu and Variengien, 2023): "The war lasted from the year 1732 to the year 17"
#    ... a year after 32. The same patching says where the comparison happens.
# 4. **Where facts live** (Meng et al., *Locating and Editing Factual Associations*, 2022): **causal tracing**
#    (`causal_trace`) noises the subject of a fact and restores one hidden state at a time.
#
# In lite mode the models are the course's: the modular-addition model, the language model `lm` (IOI and
# facts) and the `greater-than` organism (a small model trained on year spans: the `lm` does not compare
# years). In full mode they are GPT-2 small, where the papers found these circuits; the modular-addition
# model is the course's in both modes.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

from mi_course import check, claim, get_mode, load_model, model_card
from mi_course.language.attention_plots import plot_head_scores
from mi_course.language.circuit_plots import plot_token_matrix

torch.set_num_threads(1)  # small matrices: one thread is fastest
FULL = get_mode() == "full"
# prompts per patching set: GPT-2 is patched hundreds of times, which a CPU does slowly
GPU = torch.cuda.is_available()
BATCH = (32 if GPU else 2) if FULL else 20

# %% [markdown]
# ## 1. Modular addition: waves on a circle
#
# The model reads three tokens, `a`, `b` and `=`, and predicts $(a + b) \bmod p$ at the last position, with
# $p = 113$. It was trained on half of all pairs with strong weight decay, and it answers the other half
# too: it found an algorithm, not a table. Nanda et al. read that algorithm off the weights:
#
# * **embed** each number $x$ as waves, $\cos(w x)$ and $\sin(w x)$ for a few frequencies $w = 2\pi k / p$:
#   a point on a circle per frequency;
# * **combine**: attention and the MLP compute $\cos(w(a + b))$ and $\sin(w(a + b))$ from the products of
#   the waves of $a$ and of $b$ (the angle-addition identities);
# * **read out**: the logit of each answer $c$ is a sum of $\cos(w(a + b - c))$, largest at $c = a + b$.
#
# To see waves in a weight matrix, change basis: write each function of $x \in \{0, \dots, p-1\}$ as a sum of
# waves. The **Fourier basis** has $p$ orthonormal rows: the constant, then $\cos$ and $\sin$ of each
# frequency $k = 1, 2, \dots$

# %%
mod = load_model("modular-addition")
P = mod.cfg.d_vocab_out
print(f"p = {P}; the card's key frequencies: {model_card('modular-addition')['measured']['key_frequencies']}")

# %% [markdown]
# <details><summary>Hint: the idea</summary>
#
# Build each row as a function of `x = torch.arange(p)`: a row of ones, then for each `k` a cosine and a
# sine; divide every row by its norm. For an even `p` the last sine, $\sin(\pi x)$, is zero everywhere: leave
# it out.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `rows = [torch.ones(p)]`; for `k in range(1, p // 2 + 1)`: append `torch.cos(2 * math.pi * k * x / p)` and,
# if `2 * k != p`, `torch.sin(...)`; `basis = torch.stack(rows)`; return
# `basis / basis.norm(dim=-1, keepdim=True)` as float32 (compute in float64 for accuracy).
# </details>

# %% [exercise] 11.fourier_basis

# %%
check("11.fourier_basis")

# %%
basis = fourier_basis(P)
fig, ax = plt.subplots(figsize=(8, 2.5))
for row, name in [(1, "cos 1"), (2, "sin 1"), (7, "cos 4")]:
    ax.plot(basis[row], label=name)
ax.set_xlabel("x"); ax.legend(); ax.set_title("rows of the Fourier basis"); plt.show()

# %% [markdown]
# ### The embedding in the Fourier basis
#
# `fourier_basis(p) @ W_E[:p]` writes every column of the embedding as waves (the `=` token's row is left
# out). A table of random numbers would spread its norm over all frequencies; this embedding puts almost all
# of it in a handful. Those are the model's **key frequencies**.
#
# <details><summary>Hint: the idea</summary>
#
# Square the Fourier coefficients and sum over `d_model`: one number per basis row. A frequency is two rows
# (its cos and its sin), so add them. Sort, and take frequencies until their share reaches `mass`.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `per_row = (fourier_basis(p) @ W_E[:p]).pow(2).sum(-1)`; the frequency of row `i` is `(i + 1) // 2`, so
# `share = torch.zeros(p // 2 + 1).index_add_(0, frequency, per_row) / per_row.sum()`; then
# `torch.sort(share, descending=True, stable=True)` and a running sum that stops once it is `>= mass`.
# </details>

# %% [exercise] 11.key_frequencies

# %%
check("11.key_frequencies")

# %%
from mi_course.language import modular

KEY = key_frequencies(mod.W_E.detach(), P)
shares = modular.embedding_frequency_norms(mod.W_E.detach(), P)
plt.figure(figsize=(8, 2.5))
plt.bar(range(len(shares)), shares)
plt.xlabel("frequency k"); plt.ylabel("share of |W_E|^2"); plt.title(f"key frequencies {KEY}"); plt.show()

# %% [markdown]
# In the plane of one key frequency each number's embedding is a point, and the points lie on a **circle**,
# number $x$ at angle $2\pi k x / p$: the model adds numbers by adding angles. Colour runs with $x$: at frequency 1
# it goes round the circle once, at frequency $k$ it goes round $k$ times, so neighbours land far apart.

# %%
fig, axes = plt.subplots(1, len(KEY), figsize=(3 * len(KEY), 3))
for ax, k in zip(axes, KEY):
    points = modular.embedding_circle(mod.W_E, P, k) if k else torch.zeros(P, 2)
    ax.scatter(points[:, 0], points[:, 1], c=range(P), cmap="hsv", s=10)
    ax.set_title(f"frequency {k}"); ax.set_aspect("equal"); ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout(); plt.show()

# %% [markdown]
# ### Neurons multiply waves
#
# Each MLP neuron's activation over all $p^2$ pairs $(a, b)$ is a picture; in the Fourier basis of $a$ and of
# $b$ it is a handful of terms like $\cos(w a)\cos(w b)$ and $\sin(w a)\sin(w b)$, all of **one** frequency:
# the products the angle-addition identities need. Drawn over $(a, b)$ as they come, a wave of frequency $k$
# repeats every $p / k$ numbers (about 5 for $k = 21$), so the full $113 \times 113$ grid is a fine lattice that
# a screen cannot show. Two ways to see it, for neuron 0, in the left and middle panels: a corner of the grid
# ($a, b < 24$), where each period spans a few cells; and the whole grid with both axes put in the order of
# $k x \bmod p$, which turns $\cos(2\pi k x / p)$ into $\cos(2\pi j / p)$, one slow wave. In that order the
# lattice becomes one smooth bump (wrapping round the edges, as angles do), zero where the ReLU cuts the neuron
# off: the neuron is a function of the angles $w a$ and $w b$ alone. On the right, the share of each neuron's
# pattern in its strongest frequency.

# %%
pairs = modular.all_pairs(P)
with torch.no_grad():
    logits, cache = mod.run_with_cache(pairs)
neurons = cache["blocks.0.mlp.hook_post"][:, -1]          # [p * p, d_mlp]
neuron_shares = modular.neuron_frequency_shares(neurons, P)
top_share, top_freq = neuron_shares.max(dim=1)
k0 = top_freq[0].item()
grid = neurons[:, 0].reshape(P, P)                         # [a, b]
order = torch.argsort(k0 * torch.arange(P) % P)            # order[j] is the x with k0 * x = j (mod p)
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
ax1.imshow(grid[:24, :24], cmap="viridis", interpolation="nearest")
ax1.set_xlabel("b"); ax1.set_ylabel("a"); ax1.set_title(f"neuron 0 (frequency {k0}), a, b < 24")
ax2.imshow(grid[order][:, order], cmap="viridis", interpolation="nearest")
ax2.set_xlabel(f"{k0} b mod {P}"); ax2.set_ylabel(f"{k0} a mod {P}"); ax2.set_title("neuron 0, every pair, reordered")
ax3.hist(top_share, bins=30); ax3.set_xlabel("share of the pattern in its top frequency"); ax3.set_ylabel("neurons")
plt.tight_layout(); plt.show()

# %%
claim("over 80% of the neurons hold more than 80% of their pattern in one frequency, always a key frequency",
      lambda: (top_share > 0.8).float().mean() > 0.8 and set(top_freq[top_share > 0.8].tolist()) <= set(KEY),
      seen=(round((top_share > 0.8).float().mean().item(), 3), sorted(set(top_freq[top_share > 0.8].tolist()))))
print(f"{(top_share > 0.8).float().mean():.0%} of the neurons hold more than 80% of their pattern in one frequency; "
      f"their top frequencies: {sorted(set(top_freq[top_share > 0.8].tolist()))}")

# %% [markdown]
# ### The answer lives in the key frequencies
#
# If the algorithm is the story, the logits (as functions of the answer $c$) are waves of the key
# frequencies. Keep only those and the model should still be right on every pair; remove only those
# (keep everything else) and it should be lost. This is Nanda et al.'s restricted and excluded loss, here in
# its simplest form, over $c$.

# %%
answers = modular.answers(pairs, P)
for keep in (True, False):
    filtered = modular.filter_frequencies(logits[:, -1], P, KEY, keep=keep)
    accuracy = (filtered.argmax(-1) == answers).float().mean().item()
    print(f"{'only' if keep else 'without'} the key frequencies {KEY}: accuracy {accuracy:.1%}")
    claim(f"accuracy {'stays above 99%' if keep else 'falls below 5%'} {'with only' if keep else 'without'} "
          "the key frequencies", (accuracy > 0.99) if keep else (accuracy < 0.05), seen=accuracy)

# %% [markdown]
# ## 2. Indirect object identification
#
# "When Eva and Daniel got to the library, Daniel sent a gift to" ... Eva. To finish the sentence the model has
# to notice which name came twice (the subject, **S**) and say the other one (the indirect object, **IO**).
# The behaviour is measured by the **logit difference** at the last position, $\text{logit}(IO) -
# \text{logit}(S)$: positive means the model prefers the right name.
#
# <details><summary>Hint: the idea</summary>
#
# Take the last position's logits, `[batch, vocab]`; for row `i` read column `correct[i]` and column
# `wrong[i]`. Indexing with two index tensors at once pairs them row by row.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `last = logits[:, -1]`; `rows = torch.arange(len(last))`; return `last[rows, correct] - last[rows, wrong]`.
# Check the shapes of `correct` and `wrong` first.
# </details>

# %% [exercise] 11.logit_diff

# %%
check("11.logit_diff")

# %% [markdown]
# Activation patching needs two sets of prompts that differ in one thing. The **clean** prompts have the
# behaviour; in the **corrupted** ones (Wang et al.'s "ABC" prompts) the subject's second mention is a third
# name, so no name is repeated and the model has no reason to prefer either of the first two. Same template,
# same length: every position means the same in both.

# %%
from mi_course.language.ioi import ioi_patching_set

model = load_model("lm")
ioi = ioi_patching_set(model, BATCH, seed=11, template=0)
print("clean:    ", model.to_string(ioi.clean[0, 1:]))
print("corrupted:", model.to_string(ioi.corrupted[0, 1:]))
with torch.no_grad():
    clean_diff = logit_diff(model(ioi.clean), ioi.io, ioi.s)
    corrupted_diff = logit_diff(model(ioi.corrupted), ioi.io, ioi.s)
print(f"mean logit difference: clean {clean_diff.mean():.2f}, corrupted {corrupted_diff.mean():.2f}")

# %%
claim("the model prefers the indirect object on clean prompts (mean logit difference above 2) and the "
      "corruption removes most of it",
      lambda: clean_diff.mean() > 2 and corrupted_diff.mean().abs() < clean_diff.mean() / 2,
      seen=[round(float(v), 3) for v in (clean_diff.mean(), corrupted_diff.mean())])

# %% [markdown]
# ### Activation patching
#
# Run the corrupted prompts, but put back **one** activation from the clean run; if the logit difference
# comes back, that activation carried what the model needed. Normalized, 0 is the corrupted run and 1 the
# clean one. Patched one cell at a time, the residual stream entering each block at each position gives a map
# of where the information is, layer by layer; one head's output at a time gives the heads that move it.
#
# <details><summary>Hint: the idea</summary>
#
# Cache the clean run once. For each cell, a hook on the corrupted run replaces the activation at that cell by
# the cached one; score the logits with `metric`. Use `model.run_with_hooks`, which removes its hooks again.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)]` (or `attn.hook_z`);
# `_, cache = model.run_with_cache(clean, names_filter=...)`; for each layer and column, a hook
# `def put_back(act, hook): act[:, pos] = cache[hook.name][:, pos]; return act` (for heads
# `act[:, :, head] = ...`); `value = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, put_back)]))`;
# store `(value - m_corrupted) / (m_clean - m_corrupted)`. Wrap it all in `torch.no_grad()`.
# </details>

# %% [exercise] 11.activation_patching

# %%
check("11.activation_patching")

# %%
def metric(logits):
    return logit_diff(logits, ioi.io, ioi.s).mean().item()

resid = activation_patching(model, ioi.clean, ioi.corrupted, metric, kind="resid")
heads = activation_patching(model, ioi.clean, ioi.corrupted, metric, kind="head")
plot_token_matrix(resid, [f"block {l}" for l in range(model.cfg.n_layers)], ioi.labels,
                  title="IOI: residual stream patched (1 = clean)", ylabel="entering")
plt.show()
plot_head_scores({"IOI: one head patched at every position": heads}, cmap="RdBu", vmin=-1, vmax=1)
plt.show()

# %% [markdown]
# What to read in the lite model. Before block 0 only the repeated name, **S2**, matters: it is the only token
# that differs. From block 1 on it no longer does; the token **after** it (`S2+1`, the verb) restores everything
# instead, until the last block, when only the last position (**END**) does. So the information that the name
# was repeated leaves S2 in block 0, waits one token on, and reaches END in block 2. The heads say who carries
# it: one head of block 0 makes the hop from S2 to S2+1 (it attends to the previous token), and heads of
# block 2 read it at END (they attend from END to S2+1: look at their patterns with lesson 06's tools). A small model
# takes a short route; in GPT-2 small Wang et al. found a circuit of 26 heads: duplicate-token and induction heads that
# notice the repeat, S-inhibition heads (7.3, 7.9, 8.6, 8.10) that carry it to END, and name movers (9.9, 9.6, 10.0)
# that copy the other name into the answer.

# %%
if not FULL:
    s2, nxt, end = ioi.positions["S2"], ioi.positions["S2+1"], ioi.positions["END"]
    claim("patching S2 before block 0 restores over 90%; S2 after it restores under 10%",
          lambda: resid[0, s2] > 0.9 and (resid[1:, s2] < 0.1).all(), seen=[round(float(v), 3) for v in resid[:, s2]])
    claim("the token after S2 restores over 90% entering blocks 1 and 2; END does entering block 3",
          lambda: (resid[1:3, nxt] > 0.9).all() and resid[3, end] > 0.9,
          seen=[round(float(v), 3) for v in (*resid[1:3, nxt], resid[3, end])])
    claim("head 0.2 restores over 80% of the logit difference", lambda: heads[0, 2] > 0.8, seen=heads[0, 2])
    _, cache = model.run_with_cache(ioi.clean, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    claim("head 0.2 attends from S2+1 to S2, heads 2.0 and 2.1 from END to S2+1 (over 50% each)",
          lambda: cache["blocks.0.attn.hook_pattern"][:, 2, nxt, s2].mean() > 0.5
          and (cache["blocks.2.attn.hook_pattern"][:, :2, end, nxt].mean(0) > 0.5).all(),
          seen=[round(float(v), 3) for v in (cache["blocks.0.attn.hook_pattern"][:, 2, nxt, s2].mean(),
                                             *cache["blocks.2.attn.hook_pattern"][:, :2, end, nxt].mean(0))])

# %% [markdown]
# ### An investigation: which heads write the answer?
#
# The head map above patches each head at **every** position. The answer is written at END; a head can matter
# elsewhere (head 0.2 does its work at S2+1). Which heads write the answer into the last position? Name at most
# three whose outputs, patched together at the last position only, restore at least 80% of the logit
# difference. The grader patches your heads on a template and prompts you have not seen.
#
# <details><summary>Hint: the idea</summary>
#
# Patch one head at a time at the last position only and rank them; then patch the best few together and
# check that they restore enough.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Your `activation_patching` loop with `act[:, -1, head] = cache[hook.name][:, -1, head]`, run for each
# `(layer, head)`; sort by the restored fraction; patch the top one, two, three together (one hook per layer
# that sets each chosen head) until the fraction is above 0.8 with a margin.
# </details>

# %% [exercise] 11.ioi_answer_heads

# %%
check("11.ioi_answer_heads")

# %%
from mi_course.language import patching

at_end = patching.activation_patching(model, ioi.clean, ioi.corrupted, metric, kind="head", position=-1)
if FULL:  # the investigation is graded on the lite lm; in GPT-2, the three heads that restore most at END
    answer_heads = [(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads) for i in at_end.flatten().topk(3).indices]
else:
    answer_heads = ioi_answer_heads(model, ioi)
print("your answer heads:", answer_heads,
      f"restore {patching.patch_heads(model, ioi.clean, ioi.corrupted, metric, answer_heads):.0%}")
plot_head_scores({"every position": heads, "last position only": at_end}, cmap="RdBu", vmin=-1, vmax=1)
plt.show()

# %%
if FULL:
    top5 = {(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads) for i in at_end.flatten().topk(5).indices}
    print("top 5 heads at END:", sorted(top5))
    claim("a name mover of Wang et al. (9.9, 9.6 or 10.0) is among the five heads that restore most at END",
          lambda: bool(top5 & {(9, 9), (9, 6), (10, 0)}), seen=sorted(top5))

# %% [markdown]
# ## 3. Greater-than
#
# "The voyage went on from the year 1631 until the year 16" ... The next token is two digits, and a model that
# understands the sentence puts its probability on years after 31. Hanna et al. measure the **probability
# difference**: the probability of two-digit tokens above the start year's minus those below. Their corrupted
# prompts set the start year to `01` ("from the year 1601"): then almost every year is later, and the
# comparison has nothing to do.

# %%
from mi_course.language.greater_than import greater_than_patching_set, mean_probability_difference, year_probabilities

years_model = load_model("greater-than")
gt = greater_than_patching_set(years_model, BATCH, seed=11, template=0)
print(years_model.to_string(gt.clean[0, 1:]), "...")
probs = year_probabilities(years_model, [years_model.to_string(gt.clean[0, 1:])])[0]
plt.figure(figsize=(8, 2.5)); plt.bar(range(100), probs); plt.axvline(gt.years[0] % 100, color="red")
plt.xlabel("the two digits that come next"); plt.ylabel("probability"); plt.show()
year_metric = mean_probability_difference(years_model, gt.years)
with torch.no_grad():
    print(f"probability difference: clean {year_metric(years_model(gt.clean)):.2f}, "
          f"corrupted {year_metric(years_model(gt.corrupted)):.2f}")

# %% [markdown]
# Now your `activation_patching` on the residual stream and the heads, and the course's version for the
# attention and MLP outputs of each block (`kind="attn"`, `kind="mlp"`), which patches a block's output at
# one position at a time: here at the two positions that the residual map points to, YY and END.

# %%
gt_resid = activation_patching(years_model, gt.clean, gt.corrupted, year_metric, kind="resid")
gt_heads = activation_patching(years_model, gt.clean, gt.corrupted, year_metric, kind="head")
two = [gt.positions["YY"], gt.positions["END"]]
gt_mlp = patching.activation_patching(years_model, gt.clean, gt.corrupted, year_metric, kind="mlp", positions=two)
gt_attn = patching.activation_patching(years_model, gt.clean, gt.corrupted, year_metric, kind="attn", positions=two)
blocks = [f"block {l}" for l in range(years_model.cfg.n_layers)]
plot_token_matrix(gt_resid, blocks, gt.labels, title="greater-than: residual stream patched", ylabel="entering")
plt.show()
fig, axes = plt.subplots(1, 2, figsize=(6, 0.4 * years_model.cfg.n_layers + 2.5))
plot_token_matrix(gt_attn, blocks, ["YY", "END"], title="attention output patched", ax=axes[0])
plot_token_matrix(gt_mlp, blocks, ["YY", "END"], title="MLP output patched", ax=axes[1])
plt.tight_layout(); plt.show()
plot_head_scores({"greater-than: heads patched": gt_heads}, cmap="RdBu", vmin=-1, vmax=1); plt.show()

# %% [markdown]
# In the lite organism the start year's digits (**YY**) matter only before block 0; after it, only END does.
# One head of block 0 carries the year to END, and the MLPs at END do the comparison: patching block 1's MLP
# output there restores most of the probability difference, while block 1's attention restores little. It is
# the same division of labour Hanna et al. found in GPT-2 small, at a larger scale: heads in the middle layers
# attend from END to YY, and MLPs 8-11 turn that into "later than YY".

# %%
if not FULL:
    yy, end = gt.positions["YY"], gt.positions["END"]
    claim("YY restores over 90% before block 0 and under 10% after it; END restores over 90% entering block 1",
          lambda: gt_resid[0, yy] > 0.9 and gt_resid[1, yy] < 0.1 and gt_resid[1, end] > 0.9,
          seen=[round(float(v), 3) for v in (gt_resid[0, yy], gt_resid[1, yy], gt_resid[1, end])])
    claim("head 0.3 restores over 60%; block 1's MLP output at END over 60%, its attention output under 20%",
          lambda: gt_heads[0, 3] > 0.6 and gt_mlp[1, 1] > 0.6 and gt_attn[1, 1].abs() < 0.2,
          seen=[round(float(v), 3) for v in (gt_heads[0, 3], gt_mlp[1, 1], gt_attn[1, 1])])

# %% [markdown]
# ## 4. Where facts live: causal tracing
#
# "The Corvin Tower is in" ... Valmont. Which hidden states hold what the model needs to recall that? Causal
# tracing corrupts without a second prompt: add Gaussian noise to the subject's token embeddings (three times
# the embeddings' standard deviation, Meng et al.'s choice), so the model can no longer tell which tower it
# is; then restore **one** hidden state (layer, position) from the clean run and see whether the answer's
# probability comes back. Average over several noise draws, and use the same draws for every cell, or the
# map is noise about noise.
#
# <details><summary>Hint: the idea</summary>
#
# One batch of `n_samples` copies of the prompt, a hook on `hook_embed` that adds the noise at the subject
# positions, and for each cell a second hook that puts back the clean `hook_resid_pre` at one position. Draw
# the noise once, before the loops.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `noise = torch.randn(n_samples, len(subject), d_model, generator=torch.Generator().manual_seed(seed)) * noise_std`;
# `def add_noise(e, hook): e[:, subject] = e[:, subject] + noise; return e`;
# `batch = tokens[None].repeat(n_samples, 1)`; clean probability from `model(tokens[None])`, corrupted from
# `run_with_hooks(batch, fwd_hooks=[("hook_embed", add_noise)])`; each cell adds a restore hook and stores
# `logits[:, -1].softmax(-1)[:, answer].mean()`.
# </details>

# %% [exercise] 11.causal_trace

# %%
check("11.causal_trace")

# %%
from mi_course.language.ioi import answer_token
from mi_course.organisms.corpus import FactPrompt, fact_prompts

if FULL:  # real facts for GPT-2 (Meng et al. traced facts like these)
    facts = [FactPrompt("The Eiffel Tower is located in the city of", "Paris", "Eiffel Tower"),
             FactPrompt("The Colosseum is located in the city of", "Rome", "Colosseum"),
             FactPrompt("Michael Jordan plays the sport of", "basketball", "Michael Jordan")]
else:
    facts = fact_prompts()
fact = facts[0]
tokens = model.to_tokens(fact.prompt)[0]
subject = patching.subject_positions(model, fact.prompt, fact.subject)
answer = answer_token(model, fact.answer)
SAMPLES = 3 if FULL and not GPU else 10  # noise draws per cell
probs, clean_p, corrupted_p = causal_trace(model, tokens, subject, answer, patching.default_noise_std(model),
                                           n_samples=SAMPLES)
print(f"{fact.prompt!r} -> {fact.answer!r}: p = {clean_p:.2f} clean, {corrupted_p:.2f} with the subject noised")

# %%
words = [w.strip() or w for w in model.to_str_tokens(tokens)]
words = [f"{w}*" if i in subject else w for i, w in enumerate(words)]
mlp_trace = patching.causal_trace(model, tokens, subject, answer, kind="mlp", n_samples=SAMPLES)
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, grid, name in [(axes[0], probs, "residual entering"), (axes[1], mlp_trace.probs, "MLP output")]:
    plot_token_matrix(grid - corrupted_p, [f"block {l}" for l in range(model.cfg.n_layers)], words,
                      title=f"{name} restored: p(answer) - corrupted", ax=ax)
plt.tight_layout(); plt.show()

# %% [markdown]
# One fact can mislead; below, the same traces averaged over many facts (normalized: 1 is the clean
# probability), at the two places that matter: the subject's last token and the last position.

# %%
def normalized_traces(kind, n):
    rows = []
    for f in facts[:n]:
        t = model.to_tokens(f.prompt)[0]
        s = patching.subject_positions(model, f.prompt, f.subject)
        tr = patching.causal_trace(model, t, s, answer_token(model, f.answer), kind=kind, n_samples=SAMPLES,
                                   positions=[s[-1], -1])
        rows.append((tr.probs - tr.corrupted) / (tr.clean - tr.corrupted))
    return torch.stack(rows).mean(0)  # [n_layers, 2]

average = {kind: normalized_traces(kind, len(facts) if FULL else 30) for kind in ("resid", "mlp")}
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, (kind, grid) in zip(axes, average.items()):
    ax.plot(grid[:, 0], "o-", label="last subject token"); ax.plot(grid[:, 1], "o-", label="last position")
    ax.set_title(f"{kind} restored"); ax.set_xlabel("block"); ax.legend()
axes[0].set_ylabel("fraction of p(answer) restored"); plt.tight_layout(); plt.show()

# %% [markdown]
# In the lite `lm` the subject's tokens matter only before block 0: restored later, they bring nothing back,
# because block 0's attention has already copied the subject to the last position, and from block 1 on the
# last position restores almost everything. The MLP trace says where the fact is looked up: **MLP 0 at the
# last position**, which takes the subject that attention brought and writes the city (the later MLPs add a
# smaller part). GPT-2 XL, in Meng et al., does it in two steps at two sites: mid-layer MLPs at the subject's
# last token recall the fact (the "early site" that ROME edits), and attention moves it to the last token
# later. A four-layer model has no room for the first step at the subject; it moves first and recalls at the
# end.

# %%
if not FULL:
    claim("after block 0, restoring the last subject token restores under 10% on average, the last position over 80%",
          lambda: average["resid"][1:, 0].mean() < 0.1 and average["resid"][1:, 1].mean() > 0.8,
          seen=[round(float(v), 3) for v in (average["resid"][1:, 0].mean(), average["resid"][1:, 1].mean())])
    claim("MLP 0's output at the last position restores over 80% on average, more than any later MLP",
          lambda: average["mlp"][0, 1] > 0.8 and average["mlp"][0, 1] > average["mlp"][1:, 1].max() + 0.3,
          seen=[round(float(v), 3) for v in (average["mlp"][0, 1], average["mlp"][1:, 1].max())])

# %% [markdown]
# ## Summary
#
# * Modular addition: the embedding writes numbers as waves of a few key frequencies (circles), neurons
#   multiply waves of one frequency, and the answer lives in those frequencies alone.
# * Activation patching puts one clean activation into a corrupted run: the map of where it restores the
#   behaviour shows where the information is, position by position and layer by layer, and which heads carry
#   it. In the lite `lm`, IOI's repeated-name signal hops from S2 to the next token in block 0 and to the end
#   in block 2.
# * Greater-than: a head brings the start year to the end, the MLPs there compare.
# * Causal tracing localises a fact without a second prompt: in the lite `lm`, attention brings the subject to
#   the last position in block 0, and MLP 0 there recalls the fact.
#
# Patching says where information *is needed*; it does not say how a component uses it. Path patching,
# attribution patching and the circuit discovery tools that followed Wang et al. refine the same idea.
