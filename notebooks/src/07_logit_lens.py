# %% [markdown]
# # 07 The logit lens
#
# A transformer's last step is always the same: the final LayerNorm, then the unembedding $W_U$, which
# turns the residual stream into one logit per vocabulary token. Nothing in the architecture says that
# only the *last* residual may be read this way. The residual stream is a running sum: every block reads
# it and adds its output back (lesson 05), so each intermediate state has the same shape as the final one,
# and, if later blocks mostly refine rather than replace it, it may already point towards the answer.
#
# The **logit lens** (nostalgebraist, 2020, "interpreting GPT: the logit lens") takes this literally: decode
# the residual stream after every layer as if it were the last, and watch the prediction form. In this
# lesson you build it and measure it:
#
# 1. the residual stream at every depth (`accumulated_residuals`)
# 2. decoding it (`logit_lens`)
# 3. what the model "would say" at each depth (`top_tokens_table`)
# 4. how far each layer is from the final answer (`kl_to_final`)
# 5. where the correct next token ranks (`correct_token_rank`)
# 6. where the logit lens misleads, and the tuned lens (`train_tuned_lens`, Belrose et al., 2023)
#
# In full mode the model is GPT-2 small (12 layers); in lite mode it is the course's 4-layer word-level
# language model, trained on a generated corpus (its card below says how). Everything runs on a CPU in
# lite mode.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

from mi_course import check, get_mode, load_model, model_card
from mi_course.organisms import corpus

FULL = get_mode() == "full"
model = load_model("lm")
print(model_card("lm").get("architecture", model_card("lm").get("source")))
print(f"n_layers {model.cfg.n_layers}, d_model {model.cfg.d_model}, d_vocab {model.cfg.d_vocab}, "
      f"normalization {model.cfg.normalization_type}")

if FULL:  # GPT-2 small: a paragraph written for this lesson
    text = ("The lighthouse keeper, Elena Marsh, climbed the one hundred and twelve steps every evening at "
            "sunset. From the top she could see the harbour, the fishing boats and the cliffs to the north. "
            "When a storm came in from the Atlantic, Elena Marsh stayed awake all night to keep the lamp burning.")
else:  # the lite model: a story from the held-out part of its corpus (never seen in training)
    text = next(d.text for d in corpus.generate_documents(40, seed=0, split="heldout") if d.genre == "story")
tokens = model.to_tokens(text)  # [1, pos], starting with the BOS token
print(text)
print(len(model.to_str_tokens(text)), "tokens:", model.to_str_tokens(text)[:12], "...")

# %% [markdown]
# ## 1. The residual stream at every depth
#
# Write $x_0$ for the residual stream after the embeddings (token embedding plus positional embedding) and
# $x_{l+1} = x_l + \text{attn}_l(\cdot) + \text{mlp}_l(\cdot)$ for the residual after block $l$. A model with
# $L$ blocks has $L + 1$ such states, $x_0, \dots, x_L$, and the logits are $W_U\,\mathrm{LN}(x_L)$.
#
# TransformerLens names them with hooks: $x_0$ is `blocks.0.hook_resid_pre` (the input of the first block,
# the same vector as `hook_embed + hook_pos_embed` for GPT-style positional embeddings), and $x_{l+1}$ is
# `blocks.{l}.hook_resid_post`. `model.run_with_cache(tokens)` records all of them in an
# `ActivationCache`; `accumulated_residuals(cache)` stacks them into one tensor
# `[n_layers + 1, batch, pos, d_model]`, row $l$ holding $x_l$. We will always number the rows this way:
# row 0 = after the embeddings, last row = the model's final residual.
#
# <details><summary>Hint: the idea</summary>
#
# You want the residual stream *between* blocks: one state before the first block and one after each
# block, so $L + 1$ states for $L$ blocks. The cache already holds each of them under a hook name; collect
# them in depth order and stack them along a new first axis, raw, without any LayerNorm.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `cache.model.cfg.n_layers` gives $L$. Build the list of names
# `["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]`, look each up in the
# cache, and `torch.stack` them (a new dimension 0). Do not use `hook_resid_mid` (halfway through a block)
# or `ln_final.hook_normalized` (already normalized). Raise a `ValueError` that says what is wrong when the
# cache has no batch dimension (`cache.has_batch_dim` is False, from `remove_batch_dim=True`) or lacks one of
# the names (a `names_filter` dropped it).
# </details>

# %% [exercise] 07.accumulated_residuals

# %%
check("07.accumulated_residuals")

# %% [markdown]
# The norm of the residual stream grows with depth: each block adds to it and little is ever removed. In
# the lite model the embeddings are tiny next to what the first block writes, so from block 0 on the
# residual is dominated by what the blocks computed. The first position is special: it is the BOS token,
# which every sequence starts with and which can attend only to itself, so its residual is the same in
# every context; many models give it an unusually large norm and use it as a resting place for attention
# (we leave it out of the plot and print it separately).

# %%
_, cache = model.run_with_cache(tokens)
resid = accumulated_residuals(cache)  # [n_layers + 1, 1, pos, d_model]
norms = resid[:, 0].norm(dim=-1)       # [n_layers + 1, pos]
fig, ax = plt.subplots(figsize=(6, 3))
for layer in range(norms.shape[0]):
    ax.plot(norms[layer, 1:].cpu(), label="embed" if layer == 0 else f"after block {layer - 1}")
ax.set_xlabel("position (BOS left out)")
ax.set_ylabel("|residual|")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
plt.show()
print("BOS norm per row:", [round(v, 1) for v in norms[:, 0].tolist()])
print("same as TransformerLens's cache.accumulated_resid():",
      torch.allclose(resid, cache.accumulated_resid(), atol=1e-5))

# %% [markdown]
# ## 2. Decoding every layer
#
# To read row $l$ as a prediction, do to it what the model does to its last residual:
#
# $$\text{lens}_l = W_U\,\mathrm{LN}_{\text{final}}(x_l) + b_U .$$
#
# Two details matter. First, the **final LayerNorm is part of the decoder**: the unembedding was trained on
# normalized vectors, and without it early layers (with small norms) and late layers (with large ones)
# would give logits on wildly different scales. Second, LayerNorm normalizes each vector by *its own* mean
# and standard deviation. `model.ln_final(x)` recomputes those statistics for whatever vector you give it,
# which is what we want. The cache also holds `ln_final.hook_scale`, but that is the scale of the *final*
# residual; dividing an earlier layer by it (which is what `cache.apply_ln_to_stack` does, a tool meant for
# direct logit attribution) gives a different, wrong lens. Models without a final LayerNorm (the lite
# attention-only models of lessons 05 and 06, `normalization_type=None`) have no `model.ln_final`: there the
# lens is just $W_U x_l + b_U$. The real attention-only models of full mode do have one (TransformerLens
# folds its weights in: `normalization_type="LNPre"`).
#
# The last row of the lens must equal the model's logits. Row 0, the decoded embeddings, is the best the
# model could say from the current token alone (a bigram guess), *if* the unembedding can read the
# embeddings; whether it can is one of the things this lesson measures.
#
# <details><summary>Hint: the idea</summary>
#
# Treat every row of the residual stack as if it were the final residual and send it through the model's
# own last two steps: the final LayerNorm, with that row's own mean and scale, then the unembedding. Your
# `accumulated_residuals` gives the rows; if the decoder is right, the last row comes out as the model's
# ordinary logits.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Check first that `tokens` is a 2-D `[batch, pos]` tensor and raise a `ValueError` otherwise (point to
# `model.to_tokens(text)`). No gradients are needed, so work under `torch.no_grad()`.
# `_, cache = model.run_with_cache(tokens)` (it removes its hooks when it returns), then
# `resid = accumulated_residuals(cache)`. `model.ln_final` and `model.unembed` accept any leading
# dimensions, so they work on the whole stack at once. Use `hasattr(model, "ln_final")` to know whether
# there is a final LayerNorm. Do not re-tokenize or add BOS: use `tokens` as given.
# </details>

# %% [exercise] 07.logit_lens

# %%
check("07.logit_lens")

# %% [markdown]
# First sanity check: the last row is the model's output. Then, one position of the text: what each layer
# would predict next.

# %%
lens = logit_lens(model, tokens)  # [n_layers + 1, 1, pos, d_vocab]
print("last row == model(tokens):", torch.allclose(lens[-1], model(tokens), atol=1e-3))

words = model.to_str_tokens(tokens)
pos = min(12, len(words) - 2)
print(f"context: ...{' '.join(words[max(1, pos - 8):pos + 1])!r}   actual next token: {words[pos + 1]!r}")
for layer in range(lens.shape[0]):
    top = lens[layer, 0, pos].topk(5)
    guesses = ", ".join(f"{model.to_single_str_token(int(i))!r}" for i in top.indices)
    print(f"{'embed' if layer == 0 else f'after block {layer - 1}':>14}: {guesses}")

# %% [markdown]
# ## 3. What the model would say at each depth
#
# A table makes the whole picture visible: one column per position, one row per layer, each cell the lens's
# top guess. `top_tokens_table(model, tokens, k)` returns that table for one sequence as a pandas
# `DataFrame` in "long" form, one row per (layer, position, rank), with the input token, the actual next
# token, the guess, its logit and whether it is correct (see the docstring for the exact columns). Long
# form is easy to filter (`table[table.layer == 2]`) and to pivot, and the plotting helper below takes it
# as is.
#
# Position $p$ predicts token $p + 1$: the guess in column $p$ is correct when it equals `tokens[p + 1]`.
# The last position has no next token, so it is never correct.
#
# <details><summary>Hint: the idea</summary>
#
# Run your logit lens on the one sequence, take the $k$ largest logits at every layer and position, and
# write each of them out as one row of the table, next to the input token and the token that really comes
# next. A guess is correct when it matches the token one position later; the last position has none.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Accept `[pos]` or `[1, pos]` (`tokens.reshape(-1)` after checking it is 1-D, or 2-D with one row) and
# raise a `ValueError` for anything else, such as `[2, pos]`; raise one too unless `k` is an int with
# `1 <= k <= model.cfg.d_vocab_out`. Call your
# `logit_lens` on `tokens[None]`, and take `.topk(k, dim=-1)` of its `[:, 0]`. `model.to_str_tokens(ids)`
# turns a 1-D tensor of ids into strings. Then loop over layer, position and rank, appending one dict per
# row (`int(...)` and `float(...)` for `token_id` and `logit`), and finish with `pd.DataFrame(rows)`.
# </details>

# %% [exercise] 07.top_tokens_table

# %%
check("07.top_tokens_table")

# %%
from mi_course.language.lens_plots import plot_kl_by_layer, plot_rank_by_layer, plot_top_tokens

n_show = 22 if FULL else 26
table = top_tokens_table(model, tokens[0, :n_show], k=3)
plot_top_tokens(table)
plt.show()
table[(table.pos == pos) & (table.layer == table.layer.max())]

# %% [markdown]
# Read the table from the bottom up.
#
# * **The embedding row.** In the lite model it is noise: decoded directly, a token's embedding points at
#   unrelated words, with small logits (pale cells). The model has separate input and output embeddings
#   and never needed the unembedding to read $x_0$. In GPT-2 small the bottom rows look different but are
#   no more useful: GPT-2 ties $W_U$ to $W_E^\top$, so the decoded embedding mostly gives back the *input*
#   token itself (nostalgebraist, 2020).
# * **After the first block** the guesses are already sensible, and many are right (framed cells). Where
#   they are wrong, look at *how* they are wrong: usually a word of the right kind in the right place, a
#   name where a name belongs (often a name from training rather than the one in this text), a verb where
#   a verb belongs. Those early guesses are wrong but sensible: the model has worked out the syntax before
#   it has worked out the details.
# * **Later rows** mostly keep the guess and sharpen it (darker colour: larger logit), and fix some of it
#   with context from further back: the right name, the right number.

# %% [markdown]
# ## 4. How far is each layer from the answer?
#
# To summarize the table in one number per layer, compare each layer's distribution $q_l =
# \mathrm{softmax}(\text{lens}_l)$ with the model's final distribution $p = q_L$ using the
# **Kullback-Leibler divergence**
#
# $$\mathrm{KL}(p \,\|\, q_l) = \sum_v p(v) \big(\log p(v) - \log q_l(v)\big),$$
#
# the expected number of extra nats you pay for coding the model's output with layer $l$'s guess. It is
# 0 when the two agree and never negative. The direction matters: $\mathrm{KL}(p \| q)$ weights by the
# *final* distribution, so it asks "does layer $l$ give enough probability to what the model ends up
# predicting?"; $\mathrm{KL}(q \| p)$ would ask the reverse. We use the first, as Belrose et al. do. The
# softmax runs over the vocabulary (the last dimension), and `log_softmax` keeps it finite when logits are
# large.
#
# <details><summary>Hint: the idea</summary>
#
# At every layer and position you compare two distributions over the vocabulary: the model's final one and
# that layer's. Turn all the logits into log-probabilities, then average the difference of the two logs
# with the final distribution's probabilities as weights; the final row is the reference for every row.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `logp = lens_logits.log_softmax(dim=-1)`, `final = logp[-1]` (broadcasts against every row), then
# `(final.exp() * (final - logp)).sum(dim=-1)`.
# </details>

# %% [exercise] 07.kl_to_final

# %%
check("07.kl_to_final")

# %% [markdown]
# One paragraph is a small sample, so we also measure on held-out corpus text: rows of documents the model
# never saw in training, each row starting with BOS (`heldout_rows`). We average the KL over sequences and
# positions, leaving out position 0: the BOS position's prediction is the same in every row (its residual
# sees nothing else), so it would be one data point counted many times.

# %%
from mi_course.language.heldout import heldout_rows

rows = heldout_rows(model, n_rows=8 if FULL else 32, seq_len=64, seed=0)
heldout_lens = logit_lens(model, rows)
kl_heldout = kl_to_final(heldout_lens)[:, :, 1:]     # [n_layers + 1, rows, pos - 1], BOS position left out
kl_paragraph = kl_to_final(lens)[:, :, 1:]
plot_kl_by_layer({"held-out corpus text": kl_heldout, "the paragraph above": kl_paragraph})
plt.show()
print("mean KL per row (nats):", [round(v, 3) for v in kl_heldout.mean(dim=(1, 2)).tolist()])

# %% [markdown]
# The KL falls layer by layer to 0 at the output: the logit lens **converges**. Each block brings the
# residual closer to what the model will finally say, and in the lite model most of the distance is covered
# by the first block. The embedding row is the exception, and an instructive one: its KL is *larger* than
# that of a uniform guess over the whole vocabulary (printed below), so under the logit lens the
# embeddings look worse than knowing nothing. Keep that in mind for section 6. The mean also hides a
# spread: some positions are settled after one block (a full stop at the end of a sentence), others only
# in the last one (a name that must be found further back).

# %%
import math

final_logp = heldout_lens[-1].log_softmax(dim=-1)
entropy = -(final_logp.exp() * final_logp).sum(dim=-1)[:, 1:].mean()
print(f"uniform guess: KL = log(d_vocab) - H(final) = {math.log(model.cfg.d_vocab) - entropy:.2f} nats on average; "
      f"the embedding row: {kl_heldout[0].mean():.2f} nats")

# %% [markdown]
# ### Explore the lens yourself
#
# The explorer below runs the course's own logit lens and KL (the same computations you just wrote)
# on a text of your choice. The sliders pick a layer (0 = the embeddings, the last = the model's
# output) and a position. The table lists that layer's top
# guesses for the next token there, with their probabilities. The plot shows KL(final || layer) at
# that position for every layer, with the selected layer circled. The text is lesson 06's sentence cut
# off at a name seen earlier, "... the dog of Clara", so the last position is a case of "a name that must
# be found further back" (the cell checks that "Clara" and "Pruitt" are one token each in this model's
# tokenizer: in GPT-2's, " Clara" and " Pruitt" with their spaces). Step through the layers: the early rows
# guess some word that fits the grammar; the surname "Pruitt" should appear part-way up and then gain
# probability; and the KL should drop to 0
# at the last row, which always agrees with the model. Then move to a position like "the" or "of"
# and compare how early its guess settles. You can type another text into the box and press Enter.

# %%
from mi_course.explorers import logit_lens_explorer

lens_text = "Then Clara Pruitt opened the old gate, and the dog of Clara"
lens_tokens = model.to_str_tokens(lens_text)
print(lens_tokens)
assert [t.strip() for t in lens_tokens].count("Clara") == 2 and [t.strip() for t in lens_tokens].count("Pruitt") == 1, (
    f"'Clara' or 'Pruitt' is not a single token in this tokenizer: {lens_tokens}; pick a name that is")
logit_lens_explorer(model, lens_text)

# %% [markdown]
# ## 5. Where does the correct token rank?
#
# KL compares a layer with the model; the **rank of the actual next token** compares it with the text.
# For every layer and position, count how many tokens the layer rates strictly higher than the token that
# really comes next: rank 0 means the layer's top guess is right. Mind the shift: the logits at position $p$
# are scored against `tokens[p + 1]`, so the result has one position less than the input,
# `[n_layers + 1, batch, pos - 1]`. Position 0 (the prediction made at BOS, of the first word) is kept.
#
# <details><summary>Hint: the idea</summary>
#
# Line each position's logits up with the token that actually follows it, read off that token's logit, and
# count how many vocabulary entries score higher. Counting strictly larger logits is the rank itself (ties
# share the better rank), so no sorting is needed.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Check the shapes first (`lens_logits` 4-D, `tokens` 2-D, with the same batch and pos) and raise a
# `ValueError` that shows both. Drop the last position of the logits (`lens_logits[:, :, :-1]`) and the first
# of the tokens (`tokens[:, 1:]`, moved to the logits' device). `torch.gather` along the last dimension picks
# each target's logit (the index needs a trailing dimension of size 1 and must be expanded over the layers);
# then `(logits > target_logit).sum(dim=-1)`. Argsort gives token ids in order, not ranks.
# </details>

# %% [exercise] 07.correct_token_rank

# %%
check("07.correct_token_rank")

# %%
ranks = correct_token_rank(heldout_lens, rows)
plot_rank_by_layer(ranks[:, :, 1:])  # BOS's prediction left out again
plt.show()
for layer in range(ranks.shape[0]):
    r = ranks[layer, :, 1:].flatten().float()
    print(f"{'embed' if layer == 0 else f'after block {layer - 1}':>14}: top-1 {(r == 0).float().mean():.0%}, "
          f"top-10 {(r < 10).float().mean():.0%}, median rank {r.median():.0f}")

# %% [markdown]
# The fraction of positions where the top guess is right climbs with depth, and the median rank falls
# fast: even where the top guess is still wrong, the right token is usually among the first few. The big
# step is the first block. Under the logit lens the embedding row gets almost nothing right in the lite
# model, with the correct token typically hundreds of places down; that is the row to watch in the next
# section.

# %% [markdown]
# ## 6. Where the logit lens misleads, and the tuned lens
#
# The logit lens assumes that every layer speaks the final layer's language: that a direction which means
# "next token: Paris" at the output means the same in layer 2. Nothing forces this. Blocks can rotate,
# rescale and shift the residual stream as it flows, and some directions are used only inside the network
# (for example, large constant components that later layers read and remove). So a layer can *know* the
# answer in a form the unembedding reads wrongly. Symptoms: early layers whose decoded distribution is far
# from anything sensible (very high KL), a bias towards a few tokens whatever the input, and, in some model
# families (Belrose et al. report BLOOM and GPT-Neo), a logit lens that is nearly useless until the last
# layers.
#
# The **tuned lens** (Belrose et al., 2023, "Eliciting Latent Predictions from Transformers with the Tuned
# Lens") fixes the basis mismatch with one learned affine **translator** per layer:
#
# $$\text{tuned}_l = W_U\,\mathrm{LN}_{\text{final}}(A_l x_l + b_l) + b_U ,$$
#
# trained so that $\mathrm{KL}(p \,\|\, \text{tuned}_l)$ is small, with the model frozen. Each translator
# starts as the identity ($A_l = I$, $b_l = 0$), so before training the tuned lens *is* the logit lens,
# and training only moves it where that helps. The last translator stays the identity. An affine map is
# deliberately weak: it can re-express what layer $l$ already knows, but it cannot compute anything new
# (no nonlinearity, no access to other positions), so a good tuned-lens prediction at layer $l$ is still
# evidence that the information is present at layer $l$.
#
# Return an `nn.ModuleList` of `n_layers + 1` `nn.Linear(d_model, d_model)`; translator $l$ acts on row
# $l$ of the accumulated residuals.
#
# <details><summary>Hint: the idea</summary>
#
# The tuned lens is the logit lens with one learned affine map put in front of the decoder, one per row.
# The residuals and the model's final distribution are fixed data; only the translators learn, by gradient
# descent on the KL of section 4, starting from the identity so that step 0 is exactly the logit lens.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Raise a `ValueError` unless `steps` is an int >= 0. Compute the residuals once, without gradients
# (`with torch.no_grad():` around `run_with_cache` and your `accumulated_residuals`), and the fixed target
# `logp_final` from the last row. Make the translators on
# the model's device (`nn.Linear(d_model, d_model, device=model.cfg.device)`, so the same code runs on a
# Colab GPU), set each `weight` to `torch.eye(d_model)` and `bias` to 0 under `torch.no_grad()`, and give only the
# parameters of the first `n_layers` to `torch.optim.Adam(..., lr=lr)`. Each step: for every layer
# `l < n_layers`, decode `translators[l](resid[l])` through `model.ln_final` (if present) and
# `model.unembed`, take `log_softmax`, compute the mean KL(final || that), average over layers, then
# `zero_grad`, `backward`, `step`, all inside `with torch.enable_grad():` (an earlier lesson in the same
# kernel may have switched gradients off). The model's parameters receive gradients too unless you switch
# them off (`p.requires_grad_(False)`, restored afterwards); they must not be given to the optimizer.
# </details>

# %% [exercise] 07.train_tuned_lens

# %%
check("07.train_tuned_lens")

# %% [markdown]
# We train the translators on one set of held-out rows and evaluate them on the rows of section 4, which
# they never saw, so that the curve measures a lens and not memorized text. Then the tuned lens goes
# through the same KL and rank measurements as the logit lens.

# %%
import time

from mi_course.language.tuned_lens import tuned_lens_logits

# Each step decodes GPT-2's 12 layers through its 50257-wide unembedding: 100 steps on 16 rows take about an
# hour on a CPU, so there full mode makes a token run (a GPU does the real one)
n_train, steps, lr = (32, 40, 2e-2) if not FULL else (16, 100, 1e-3) if tokens.is_cuda else (2, 2, 1e-3)
if FULL and not tokens.is_cuda:
    print(f"GPT-2 on a CPU: a token run of {steps} steps on {n_train} rows (on a GPU: 100 steps on 16 rows)")
train_rows = heldout_rows(model, n_rows=n_train, seq_len=64, seed=1)  # other documents (seed 1)
start = time.perf_counter()
translators = train_tuned_lens(model, train_rows, steps=steps, lr=lr)
print(f"trained {len(translators)} translators in {time.perf_counter() - start:.0f} s")

tuned = tuned_lens_logits(model, translators, rows)  # the rows of section 4
kl_tuned = kl_to_final(tuned)[:, :, 1:]
plot_kl_by_layer({"logit lens": kl_heldout, "tuned lens (text it was not trained on)": kl_tuned})
plt.show()
tuned_ranks = correct_token_rank(tuned, rows)[:, :, 1:]
for layer in range(kl_tuned.shape[0] - 1):
    print(f"{'embed' if layer == 0 else f'after block {layer - 1}':>14}: KL {kl_heldout[layer].mean():.2f} -> "
          f"{kl_tuned[layer].mean():.2f} nats, top-1 {(ranks[layer, :, 1:] == 0).float().mean():.0%} -> "
          f"{(tuned_ranks[layer] == 0).float().mean():.0%}")

# %% [markdown]
# The tuned lens's KL curve lies below the logit lens's at every layer before the last, on text it was
# not trained on: part of what looked like "the model has not worked it out yet" was only the logit lens
# reading a layer in the wrong basis. The gap is largest early, where the residual stream is least like
# the output, and the two curves meet at the last row, where the translator is the identity.
#
# The embedding row is the clearest case. The logit lens said it was worse than a uniform guess; a single
# affine map turns it into a real bigram predictor that gets a sizeable share of next tokens right. The
# information was there all along, in a basis the unembedding does not read. The gain in top-1 accuracy
# shrinks row by row and is gone by the last rows: translation cannot add information, so where a layer
# truly lacks the context (a name that a later head has yet to fetch), no translator can find it; what the
# tuned lens still fixes there is the calibration of the whole distribution, which the KL measures.
#
# Two cautions when reading either lens. Low KL to the final distribution means "agrees with the model",
# not "is right": a layer can converge early to the model's own mistake. And neither lens says *how* the
# answer got there; for that we need circuits (lesson 11) and features (Part III).

# %% [markdown]
# ## Summary
#
# * The residual stream has the same shape at every depth, so each intermediate state can be decoded with
#   the final LayerNorm (its statistics recomputed for that state) and the unembedding: the **logit lens**.
# * After the first block the guesses are sensible even when wrong, they approach the actual next token
#   layer by layer, and later layers mostly sharpen them. Decoded directly, the embeddings are unreadable.
# * **KL(final || layer)** measures agreement with the model's output and falls to 0 at the last row; the
#   **rank of the correct token** measures agreement with the text.
# * The logit lens can mislead when layers use a different basis from the output; a **tuned lens**, one
#   affine translator per layer trained on KL, corrects much of that and lowers the KL at every layer; in
#   the lite model it turns the "empty" embedding row into a working bigram predictor.
#
# The canonical versions of these functions live in `mi_course.language.logit_lens` and
# `mi_course.language.tuned_lens`, and Part III uses them again: reading a feature's direction through the
# unembedding (lesson 10's dashboards) is the logit lens applied to one vector, and the lens tells you at
# which depth a prediction becomes visible.
