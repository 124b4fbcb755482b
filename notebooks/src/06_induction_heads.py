# %% [markdown]
# # 06 Induction heads
#
# Give a language model a text in which something repeats, and it predicts the repeat. Seen once, the
# name "Clara Pruitt" is a surprise; the second time, after "Clara", the model is nearly certain that
# "Pruitt" comes next. This is the simplest form of **in-context learning**: using what appeared earlier
# in the context, rather than what was learned in training, to predict what comes next.
#
# Elhage et al., *A Mathematical Framework for Transformer Circuits* (Anthropic, 2021), found the circuit
# that does this in two-layer attention-only transformers, and Olsson et al., *In-context Learning and
# Induction Heads* (2022), followed it into large models. Two heads in two layers work together:
#
# 1. a **previous-token head** in layer 0: at every position it attends to the position just before and
#    copies that token's identity into the residual stream, so position $j$ now carries
#    "the token before me was $t_{j-1}$";
# 2. an **induction head** in layer 1: at a position whose token is $A$, its query looks for keys that
#    carry "the token before me was $A$", that is, for the position right *after* an earlier $A$. Its key
#    reads what the previous-token head wrote (**K-composition**: one head's output feeds another head's
#    keys). Having found the token $B$ that followed $A$ last time, its OV circuit copies $B$ to the
#    output: "$A$ was followed by $B$ before, so predict $B$".
#
# You will measure every part of that story on the course's two-layer attention-only model:
#
# 1. a test bed of repeated random tokens (`repeated_random_tokens`) and the loss on each token
#    (`per_token_loss`);
# 2. attention patterns, and a score for previous-token heads (`prev_token_scores`);
# 3. a score for induction heads, and a search for them (`induction_scores`, `find_induction_heads`);
# 4. knocking heads out (`ablate_head_loss`);
# 5. whether a head's OV circuit copies (`ov_copying_score`).
#
# In lite mode the models are the course's own word-level attention-only transformers (2 layers and 1
# layer, 4 heads each); in full mode they are the TransformerLens `attn-only-2l` / `attn-only-1l` models
# and, at the end, GPT-2 small. Nothing below assumes which heads do what: your code finds them.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

import mi_course
from mi_course import load_model, model_card
from mi_course.language.attention_plots import (
    attention_view,
    plot_attention_patterns,
    plot_head_scores,
    plot_loss_by_position,
    plot_token_losses,
)

torch.set_grad_enabled(False)  # we only look at models in this lesson, nothing is trained
model = load_model("attn-only-2l")
model_1l = load_model("attn-only-1l")
measured = model_card("attn-only-2l").get("measured")  # what the lite card says (None in full mode)
print(f"2-layer: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads, d_model {model.cfg.d_model}, "
      f"vocabulary {model.cfg.d_vocab}, context {model.cfg.n_ctx}")

# %% [markdown]
# ## 1. A test bed: repeated random tokens
#
# Real text mixes induction with everything else a model knows (grammar, facts, topic). To see induction
# alone, Olsson et al. use sequences of **random tokens repeated once**:
#
# $$[\text{bos}],\; t_1, t_2, \dots, t_n,\; t_1, t_2, \dots, t_n$$
#
# In the first half, nothing can be predicted: each token is a fresh uniform draw, so the best possible
# loss is $\log(\text{vocabulary size})$. In the second half, everything can be predicted by a model that
# looks back: after $t_i$ comes $t_{i+1}$, as it did $n$ positions earlier. Any drop in loss between the
# halves is in-context learning, pure and simple.
#
# Position 0 holds the **bos** (beginning of sequence) token, as in training: many heads park their
# attention there when they have nothing better to do. The random tokens must avoid the special tokens
# (bos, end of sequence, padding, unknown), which never occur inside a real text. So the layout is:
# position 0 is bos, positions $1 \dots n$ the random half, positions $n+1 \dots 2n$ its copy, for a
# length of $2n + 1$, which has to fit in the model's context.
#
# <details><summary>Hint: the idea</summary>
#
# You want a first half that cannot be predicted and a second half that can, from the first half alone: per
# row, draw one random half from the non-special tokens, put bos in front and append the same half again. A
# generator of your own, seeded with `seed`, makes the draw repeatable without touching the global random state.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# List the allowed ids: `[i for i in range(model.cfg.d_vocab) if i not in model.tokenizer.all_special_ids]`
# as a tensor. `torch.randint(len(allowed), (batch, seq_len), generator=g)` with
# `g = torch.Generator().manual_seed(seed)` gives indices into that list. Build the bos column with
# `torch.full((batch, 1), model.tokenizer.bos_token_id)` and `torch.cat([bos, half, half], dim=1)`.
# Check the lengths first and raise `ValueError` unless `seq_len >= 1`, `batch >= 1` and
# `2 * seq_len + 1 <= model.cfg.n_ctx` (filling the context exactly is fine); finish with `.to(model.cfg.device)`.
# </details>

# %% [exercise] 06.repeated_random_tokens

# %%
from mi_course import check

check("06.repeated_random_tokens")

# %% [markdown]
# One short example, as words (the lite models have a word-level vocabulary, so random tokens are random
# words; in full mode they are random pieces of words):

# %%
example = repeated_random_tokens(model, seq_len=8, batch=1, seed=1)
print(" ".join(model.to_str_tokens(example[0])))

# %% [markdown]
# ## 2. The loss on each token
#
# A language model's output at position $i$ is a distribution over the token at position $i + 1$. The
# loss of that prediction is the cross-entropy $-\log p(t_{i+1} \mid t_0 \dots t_i)$. Averaged over a text
# it is the number training minimizes; kept *per position*, it shows where in a text the model is good.
# A sequence of length `pos` gives `pos - 1` predictions: the last position predicts a token we do not
# have.
#
# Two classic slips: pairing the logits at position $i$ with the token *at* $i$ (off by one), and taking
# the softmax over the wrong axis (the logits are `[batch, pos, d_vocab]`; the distribution is over the
# vocabulary, the last axis).
#
# <details><summary>Hint: the idea</summary>
#
# Turn the logits into log-probabilities over the vocabulary; then, at every position but the last, read off
# the log-probability of the token that actually comes next, and negate it. The whole exercise is lining up
# each prediction with the token one step to its right.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Under `torch.no_grad()`, `logits = model(tokens)`. Then `logits[:, :-1].log_softmax(dim=-1)` holds the
# log-probabilities of the predictions you can score, and `tokens[:, 1:]` the tokens they should predict.
# `.gather(-1, targets[..., None])[..., 0]` picks one log-probability per position; negate it.
# </details>

# %% [exercise] 06.per_token_loss

# %%
check("06.per_token_loss")

# %% [markdown]
# Now the first experiment: the loss at every position of 16 repeated random sequences ($n = 50$),
# averaged over the batch, for the two-layer and the one-layer model. The grey band marks the
# predictions in the repeated half.

# %%
SEQ_LEN, BATCH = 50, 16
rep_tokens = repeated_random_tokens(model, SEQ_LEN, BATCH, seed=0)
loss_2l = per_token_loss(model, rep_tokens)
loss_1l = per_token_loss(model_1l, rep_tokens)
plot_loss_by_position({"2 layers": loss_2l.mean(0), "1 layer": loss_1l.mean(0)}, seq_len=SEQ_LEN)
plt.show()
for name, loss in [("2 layers", loss_2l), ("1 layer", loss_1l)]:
    first, second = loss[:, 1:SEQ_LEN].mean().item(), loss[:, SEQ_LEN + 1:].mean().item()
    print(f"{name}: first half {first:.2f} nats, repeated half {second:.2f} nats (ratio {second / first:.2f})")
print(f"log(vocabulary size) = {torch.log(torch.tensor(float(model.cfg.d_vocab))):.2f} nats")

# %% [markdown]
# In the first half both models are near (or above) $\log(\text{vocabulary})$: they are guessing, as they
# should. In the repeated half the two-layer model's loss falls sharply. The one-layer model barely
# improves. Something that needs two layers is reading the context.
#
# Two details to notice. The first repeated token, $t_1$ right after $t_n$, is a special case: nothing in
# $t_n$ says that a repeat begins, although a model trained on many repeats may learn to bet on it. And if
# the drop stops before the end of the sequence, the model copies only over the range of positions and
# distances that the repeats in its training data covered: induction is learned, not built in.
#
# ### A repeated name in a sentence
#
# Random tokens are a laboratory. The same effect in text: the first chapter of *Harry Potter* introduces
# "Mr and Mrs Dursley" and keeps naming them, and a model predicts "Dursley" after "Mrs" the second time
# from context alone. Here is a sentence of our own in the same spirit, with a name the model cannot know
# in advance. The story below needs each part of the name to be **one token**: "Clara" followed by "Pruitt",
# twice. The lite models read whole words (a word their vocabulary lacks becomes `<unk>`); GPT-style
# tokenizers (full mode) cut text into sub-words, and a word usually carries the space before it, so
# " Clara" after a space is one token of GPT-2's, while "Clara" at the very start of a text, with no
# space, is cut into "Cl" and "ara". That is why the sentence opens with "Then", and why the cell checks
# that both names are single tokens in the tokenizer at hand, twice each.

# %%
first, surname = "Clara", "Pruitt"
sentence = f"Then {first} {surname} opened the old gate, and the dog of {first} {surname} ran in."
str_tokens = model.to_str_tokens(sentence)
print(str_tokens)
if mi_course.get_mode() == "lite":
    assert "<unk>" not in str_tokens, "a word of the sentence is not in the lite vocabulary"
for word in (first, surname):  # " Clara" (GPT-style, with its space) or "Clara" (lite): one token, twice
    assert [t.strip() for t in str_tokens].count(word) == 2, (
        f"{word!r} is not a single token (twice) in this tokenizer: {str_tokens}; pick a name that is")
sentence_tokens = model.to_tokens(sentence)
loss_sentence = {"2 layers": per_token_loss(model, sentence_tokens)[0],
                 "1 layer": per_token_loss(model_1l, sentence_tokens)[0]}
repeats = [i for i in range(1, len(str_tokens)) if str_tokens[i] in str_tokens[1:i]]
plot_token_losses(str_tokens, loss_sentence, mark=repeats)
plt.show()
for i in repeats:
    first = str_tokens.index(str_tokens[i], 1)
    print(f"{str_tokens[i]!r:>10}: first time {loss_sentence['2 layers'][first - 1]:5.2f} nats, "
          f"again {loss_sentence['2 layers'][i - 1]:5.2f} nats (2 layers)")

# %% [markdown]
# Tokens marked in red have appeared before. The surname is the telling one: nothing in the sentence's
# grammar says which of many surnames follows "Clara", but the earlier "Clara Pruitt" does, and the
# two-layer model's loss on the second "Pruitt" collapses. (The one-layer model gains a little on names
# too: a single head can learn "a name seen earlier in the text is likely again", a skip-trigram. On random
# tokens that trick is useless, as the plot above showed.)

# %% [markdown]
# ## 3. Looking at attention
#
# An attention pattern is a matrix per head: row $q$ (the query position) is a probability distribution
# over the positions $k \le q$ (the keys) that $q$ reads from. A previous-token head shows a stripe just
# below the diagonal ($k = q - 1$). On a repeated sequence of length $n$, an induction head shows, in the
# second half, a stripe $n - 1$ positions below the diagonal ($k = q - n + 1$: the token after the earlier
# occurrence of the current one).
#
# Here are all heads of the two-layer model on a short repeated sequence ($n = 10$):

# %%
short = repeated_random_tokens(model, seq_len=10, batch=1, seed=3)
short_str = model.to_str_tokens(short[0])
_, short_cache = model.run_with_cache(short)
short_patterns = torch.stack([short_cache["pattern", layer][0] for layer in range(model.cfg.n_layers)])
plot_attention_patterns(short_patterns, short_str, label_every=1)
plt.show()

# %% [markdown]
# The same patterns, interactive (hover over a token to see where each head looks from it; circuitsvis,
# Cooney and Nanda). In layer 0, look for heads whose second-half tokens point one step back; in layer 1,
# for heads whose second-half tokens point at the token after their earlier copy.

# %%
attention_view(short_patterns, short_str)

# %% [markdown]
# ## 4. Scoring previous-token heads
#
# Pictures of one sequence are a start; a number averaged over many sequences is better. The
# **previous-token score** of a head is its mean attention from each position $q$ to $q - 1$: 1 for a
# perfect previous-token head. Position 0 (bos) has no previous token, so it does not count.
#
# The scores come from an `ActivationCache`, the record `model.run_with_cache(tokens)` makes of every
# activation. `cache["pattern", layer]` is that layer's attention, shaped `[batch, head, query, key]`.
#
# <details><summary>Hint: the idea</summary>
#
# A previous-token head puts its weight, for every query q, on key q - 1: the line just below the main diagonal
# of each pattern. Average that line over the batch and over the queries that have a previous token, for every
# head of every layer in the cache.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `pattern.diagonal(offset=-1, dim1=-2, dim2=-1)` collects `pattern[..., q, q - 1]` for `q = 1 .. pos-1`,
# shape `[batch, head, pos - 1]`; average it over the batch and the last axis. Do that for every layer
# (`cache.model.cfg.n_layers` of them) and `torch.stack` the rows.
# </details>

# %% [exercise] 06.prev_token_scores

# %%
check("06.prev_token_scores")

# %% [markdown]
# Your scores for the two-layer model, on the 16 repeated sequences from section 2:

# %%
_, rep_cache = model.run_with_cache(rep_tokens, names_filter=lambda name: name.endswith("hook_pattern"))
prev_scores = prev_token_scores(rep_cache)
plot_head_scores({"previous-token score (2 layers)": prev_scores})
plt.show()
best = divmod(prev_scores.argmax().item(), model.cfg.n_heads)
print(f"strongest previous-token head: {best[0]}.{best[1]} ({prev_scores.max():.2f})")
if measured:
    print(f"the model card says: {tuple(measured['prev_token_head'])}")

# %% [markdown]
# The previous-token attention sits in layer 0, where it has to be: a head in the last layer could look
# back one position, but no later head could use what it wrote. (Other layer-0 heads may look back a
# little too; for the circuit, what matters is the sum of what layer 0 writes.)
#
# ## 5. Scoring induction heads
#
# The **induction score** of a head is its mean attention, over the positions $q$ of the second copy
# ($q = n + 1 \dots 2n$), to $q - n + 1$. Two off-by-one traps: $q - n$ is the earlier occurrence of the
# *same* token (a "duplicate-token head" attends there), and the second copy starts at $n + 1$, because
# position 0 is bos.
#
# How does a head find $q - n + 1$? Not by position: the layer-1 induction head does not know $n$. At
# position $q$ holding token $A$, its query asks "who was preceded by $A$?"; the key at position $j$
# answers with what the previous-token head wrote there, "I was preceded by $t_{j-1}$". Query and key match
# where $t_{j-1} = A$: exactly one step after the earlier $A$. This is **K-composition**: layer 0's output
# enters layer 1's keys. It is why one layer cannot do it: a lone head's key at $j$ only knows $t_j$ (and
# the position), not the token before it.
#
# <details><summary>Hint: the idea</summary>
#
# Build a repeated sequence, record the attention, and measure for each head how much each query of the second
# copy looks at the position right after the earlier occurrence of its own token. That is again one line
# parallel to the diagonal, averaged over the second copy's queries and the batch.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `tokens = repeated_random_tokens(model, seq_len, batch, seed)`, then
# `_, cache = model.run_with_cache(tokens)`. The stripe is `pattern.diagonal(offset=-(seq_len - 1),
# dim1=-2, dim2=-1)`: its entry `i` is query `q = i + seq_len - 1`. The second copy's queries
# `seq_len + 1 .. 2*seq_len` are the entries from `i = 2` on: average those over the batch and the last axis,
# layer by layer, and stack the rows as in `prev_token_scores`.
# </details>

# %% [exercise] 06.induction_scores

# %%
check("06.induction_scores")

# %% [markdown]
# Both scores, for both models:

# %%
scores_2l = {"previous-token (2 layers)": prev_token_scores(rep_cache),
             "induction (2 layers)": induction_scores(model, SEQ_LEN, BATCH)}
_, cache_1l = model_1l.run_with_cache(rep_tokens, names_filter=lambda name: name.endswith("hook_pattern"))
scores_1l = {"previous-token (1 layer)": prev_token_scores(cache_1l),
             "induction (1 layer)": induction_scores(model_1l, SEQ_LEN, BATCH)}
plot_head_scores(scores_2l)
plot_head_scores(scores_1l)
plt.show()

# %% [markdown]
# Induction lives in layer 1 of the two-layer model, fed by previous-token attention in layer 0. The
# one-layer model has no induction head at all. (Induction attention can be shared between several
# heads, as it is in the lite model: Olsson et al. see the same redundancy in larger models.)
#
# ## 6. Finding induction heads
#
# A small convenience that the rest of the course uses: list the heads whose induction score is above a
# threshold, best first. "Above" means strictly above.
#
# <details><summary>Hint: the idea</summary>
#
# The scores already do the work: keep the heads scoring strictly above the threshold and order them from the
# highest score down, leaving heads with equal scores in (layer, head) order.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `scores = induction_scores(model, seq_len, batch, seed)`; `torch.nonzero(scores > threshold)` gives the
# `(layer, head)` rows. Turn them into tuples of `int`, and sort with `key=lambda lh: -scores[lh].item()`
# (`sorted` is stable, so ties keep their (layer, head) order).
# </details>

# %% [exercise] 06.find_induction_heads

# %%
check("06.find_induction_heads")

# %%
induction_heads = find_induction_heads(model, threshold=0.2)
print("2 layers, induction heads above 0.2:", induction_heads)
print("1 layer,  induction heads above 0.2:", find_induction_heads(model_1l, threshold=0.2))
if measured:
    print("the model card's strongest induction head:", tuple(measured["induction_head"]))

# %% [markdown]
# ### Explore the heads yourself
#
# Now that your scores work, the explorer below uses the course's own versions of them so you can
# browse every head. Move the sliders to pick a layer and a head. The heatmap is that head's attention
# on the "Clara Pruitt" sentence from section 2 (rows are queries, columns keys). The table gives its scores:
# previous-token on this sentence, and previous-token, induction and duplicate-token on repeated random tokens, each
# with its rank among all heads. Here is what to look for. In layer 0, a previous-token head shows a stripe just below
# the diagonal. In layer 1, an induction head's row for the second "Clara" is dark under the first
# "Pruitt", the token that followed "Clara" last time. Compare the heads of layer 1: not every head
# with a high induction score on random tokens does this on one short sentence. A duplicate-token head
# (if the model has one) would look at the first "Clara" itself. You can also type your own sentence
# into the box and press Enter; in lite mode a word outside the vocabulary shows up as `<unk>`.

# %%
from mi_course.explorers import attention_explorer

attention_explorer(model, sentence, layer=1)

# %% [markdown]
# ## 7. Knocking heads out
#
# Attention scores show where a head *looks*, not whether that matters. To test what a head *does*,
# remove it and measure the damage: an **ablation**. Two common ways to remove head $h$ of layer $l$:
#
# * **zero-ablation**: its output $z$ (the attention-weighted values, before $W_O$) becomes 0;
# * **mean-ablation**: its $z$ becomes its average over the data, the same vector at every position. This
#   keeps whatever constant the head always adds, and removes only what depends on the input. It is
#   usually the fairer test: downstream components never saw a zero from this head in training.
#
# With TransformerLens you change an activation with a **hook**: a function attached to a hook point
# (here `blocks.{layer}.attn.hook_z`, shape `[batch, pos, head, d_head]`) that returns a replacement.
# A hook left attached keeps changing every later run of the model, silently. So attach hooks in a way that
# always removes them: `model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])` or
# `with model.hooks(fwd_hooks=[(name, fn)]): ...`, both of which clean up even if the forward pass fails.
#
# <details><summary>Hint: the idea</summary>
#
# Knock the head out by replacing its slice of `z` at `blocks.{layer}.attn.hook_z` with zeros, or with its
# average over a clean run, leaving every other head alone; then measure the usual next-token loss while that
# replacement is in place. Attach it in a way that removes it however the run ends.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Check `layer`, `head` and `kind` first (raise `ValueError`; negative indices must not wrap around). For the
# mean: `_, cache = model.run_with_cache(tokens, names_filter=name)`, then
# `cache[name][:, :, head].mean(dim=(0, 1))`. The hook function receives `z` and `hook`; return a copy with
# `z[:, :, head]` replaced. Compute the loss inside
# `with model.hooks(fwd_hooks=[(name, hook_fn)]):`, e.g. with your `per_token_loss(model, tokens).mean()`,
# and return `.item()`.
# </details>

# %% [exercise] 06.ablate_head_loss

# %%
check("06.ablate_head_loss")

# %% [markdown]
# The increase in loss on the repeated sequences when each head is removed, one at a time:

# %%
clean_loss = per_token_loss(model, rep_tokens).mean().item()
damage = {kind: torch.tensor([[ablate_head_loss(model, rep_tokens, layer, head, kind) - clean_loss
                               for head in range(model.cfg.n_heads)] for layer in range(model.cfg.n_layers)])
          for kind in ("zero", "mean")}
plot_head_scores({f"loss increase, {kind}-ablation": d for kind, d in damage.items()}, cmap="Reds", vmax=None)
plt.show()
print(f"clean loss {clean_loss:.2f} nats")

# %% [markdown]
# Removing a previous-token head hurts as much as removing an induction head, or more: without "the
# token before me was $A$" in the residual stream, the induction head's keys have nothing to match. The
# induction heads themselves may hurt less *one at a time* if the model spread induction over several
# heads: the others make up for a missing one. So remove them all at once, and watch the loss per
# position (the hooks come from `mi_course.language.ablation.head_ablation_hook`, the course's version
# of the hook you just wrote):

# %%
from mi_course.language.ablation import head_ablation_hook

prev_heads = [(0, h) for h in range(model.cfg.n_heads) if prev_scores[0, h] > prev_scores[0].max() / 2]
curves = {"clean": per_token_loss(model, rep_tokens).mean(0)}
for label, heads in [("induction heads mean-ablated", induction_heads),
                     ("previous-token heads mean-ablated", prev_heads)]:
    with model.hooks(fwd_hooks=[head_ablation_hook(model, l, h, "mean", rep_tokens) for l, h in heads]):
        curves[label] = per_token_loss(model, rep_tokens).mean(0)
    print(f"{label} {heads}: repeated-half loss {curves[label][SEQ_LEN + 1:].mean():.2f} nats "
          f"(clean {curves['clean'][SEQ_LEN + 1:].mean():.2f})")
plot_loss_by_position(curves, seq_len=SEQ_LEN)
plt.show()

# %% [markdown]
# Both knock-outs undo most of the drop on the repeated half, while leaving the first half about where it
# was. Two components in different layers, each necessary: that is the two-head circuit of the
# introduction, found by measurement.
#
# ## 8. Does the induction head copy?
#
# The last link: having attended to the token $B$ after the earlier $A$, the induction head should raise
# the logit of $B$ itself. Lesson 05's **full OV circuit** $W_E W_V W_O W_U$, a `d_vocab x d_vocab`
# matrix, says what a head does to the logits when it attends to each token: row = the token attended to,
# column = the logit raised or lowered. A copying head has large positive entries on the diagonal, and,
# more to the point, **positive eigenvalues**: a matrix with only positive eigenvalues maps many vectors
# roughly onto themselves. Elhage et al. summarize this in one number,
#
# $$\frac{\mathrm{Re}\left(\sum_i \lambda_i\right)}{\sum_i |\lambda_i|} \in [-1, 1],$$
#
# which is 1 when all eigenvalues are positive reals (copying) and -1 when all are negative
# (suppression). It measures the share of the eigenvalue mass that is positive: with real eigenvalues,
# positive mass $P$ and negative mass $N$, it is $(P - N) / (P + N) = 2\,\frac{P}{P + N} - 1$, so a score of
# 0.8 means 90% of the mass is positive. The matrix is huge (GPT-2's would have 2.5 billion entries), but it has rank at
# most `d_head`, and its nonzero eigenvalues are those of a `d_head x d_head` product. `ov_circuit(model, layer,
# head)` returns it as a TransformerLens `FactoredMatrix`, whose `.eigenvalues` uses that trick.
#
# <details><summary>Hint: the idea</summary>
#
# A copying head raises the logit of the token it attends to, and that shows in the eigenvalues of its full OV
# circuit: mostly positive and real. Summarise them by the real part of their sum over the sum of their sizes;
# the factored form makes them cheap, since at most `d_head` of them are nonzero.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `eig = ov_circuit(model, layer, head).eigenvalues` (complex). Then `eig.sum().real / eig.abs().sum()`,
# guarding against a zero denominator (return `0.0`), and `.item()`. Not singular values: those are never
# negative. `ov_circuit` already raises `ValueError` for an out-of-range layer or head.
# </details>

# %% [exercise] 06.ov_copying_score

# %%
check("06.ov_copying_score")

# %%
copying = {name: torch.tensor([[ov_copying_score(m, layer, head) for head in range(m.cfg.n_heads)]
                               for layer in range(m.cfg.n_layers)])
           for name, m in [("OV copying score (2 layers)", model), ("OV copying score (1 layer)", model_1l)]}
plot_head_scores(copying, cmap="RdBu", vmin=-1, vmax=1)
plt.show()
for layer, head in induction_heads:
    print(f"induction head {layer}.{head}: copying score {copying['OV copying score (2 layers)'][layer, head]:.3f}")

# %% [markdown]
# The induction heads' OV circuits copy almost perfectly. But copying is necessary, not sufficient: the
# one-layer model's heads copy too (that is how a one-layer model gains a little on repeated names,
# section 2), yet they cannot find *which* token to copy. Deciding where to look needs the previous-token
# head's help, and that needs a second layer.
#
# ## 9. Full mode: induction heads in GPT-2
#
# In full mode, the cells above ran on TransformerLens's `attn-only-2l`. The same functions find induction
# heads in GPT-2 small, a 12-layer model with MLPs, where they sit in the middle layers (Olsson et al. found
# them in every model they studied). This cell only runs in full mode (a GPU is recommended).

# %%
if mi_course.get_mode() == "full":
    gpt2 = load_model("lm")
    gpt2_scores = induction_scores(gpt2, seq_len=50, batch=8)
    plot_head_scores({"induction score, GPT-2 small": gpt2_scores}, size=0.6, fmt="{:.1f}")
    plt.show()
    gpt2_heads = find_induction_heads(gpt2, threshold=0.4, batch=8)
    print("GPT-2 heads above 0.4:", gpt2_heads)
    mi_course.claim("GPT-2 small has induction heads (above 0.4), the strongest in a middle layer (4 to 8)",
                    lambda: bool(gpt2_heads) and 4 <= gpt2_heads[0][0] <= 8, seen=gpt2_heads[:5])
    gpt2_tokens = gpt2.to_tokens(sentence)
    print(list(zip(gpt2.to_str_tokens(sentence)[1:], per_token_loss(gpt2, gpt2_tokens)[0].round(decimals=2).tolist())))
else:
    print("lite mode: GPT-2 small is not loaded (set MI_COURSE_MODE=full on a machine with a GPU)")

# %% [markdown]
# ## Summary
#
# * On a repeated span, a model with induction heads predicts the second copy: its loss drops sharply
#   there, while a one-layer attention-only model's does not.
# * The circuit has two parts in two layers: a **previous-token head** (layer 0) writes "the token before
#   me was $A$" at every position; an **induction head** (layer 1) uses it through **K-composition** to
#   attend to the token after an earlier $A$, and its **OV circuit copies** that token to the output.
# * Attention scores find candidate heads; **ablations** show they matter (and that both parts are
#   needed); the **eigenvalues** of the OV circuit show the copying.
# * Hooks are powerful and sticky: attach them with `run_with_hooks` or `with model.hooks(...)` so they
#   are always removed.
#
# Olsson et al. argue that induction heads drive much of in-context learning in large models, and that
# they form in a sudden "phase change" during training, visible as a bump in the loss curve. Lesson 07
# turns from attention to the residual stream itself: what does the model "think" the next token is,
# layer by layer?
