# %% [markdown]
# # 05 Transformer circuits
#
# In the vision lessons we read circuits off convolution weights. A transformer looks harder: attention
# patterns change with every input, and everything flows through one wide vector per position. Elhage et
# al., *A Mathematical Framework for Transformer Circuits* (Anthropic, 2021), showed that small
# attention-only transformers can nevertheless be read from their weights, once you write the model as a
# **sum of paths**. This lesson follows their argument from the bottom up:
#
# 1. the residual stream is a sum; heads read from it and add to it independently
# 2. zero layers: the direct path is a table of bigram statistics (`bigram_logits`)
# 3. one layer: the logits split into a direct path plus one term per head (`decompose_logits`)
# 4. each head is two circuits: QK decides where to attend, OV what to move (`ov_circuit`, `qk_circuit`)
# 5. together they implement skip-trigrams "A ... B → C" (`top_skip_trigrams`)
# 6. two layers: heads compose through their queries, keys and values (`composition_scores`)
# 7. virtual heads: two heads acting as one (`virtual_head_ov`)
#
# We use the course's attention-only transformers. In full mode they are the TransformerLens models
# `attn-only-1l` and `attn-only-2l` of Elhage et al. and Olsson et al.; in lite mode, the small models
# this course trained on its generated corpus (word-level vocabulary of 1596 tokens, `d_model` 128, 4
# heads of 32 dimensions). Everything runs on a CPU in a minute or two in lite mode.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

import mi_course
from mi_course import load_model

torch.set_grad_enabled(False)  # we only read weights and activations in this lesson
lite = mi_course.get_mode() == "lite"
model1 = load_model("attn-only-1l")
model2 = load_model("attn-only-2l")


def to_ids(model, words):
    """Token ids of whole words: bare words in lite mode, with GPT-2's leading space in full mode."""
    return torch.tensor([model.to_single_token(w if lite else " " + w) for w in words])


print(model2.cfg.n_layers, "layers,", model2.cfg.n_heads, "heads per layer, d_model", model2.cfg.d_model,
      ", positions:", model2.cfg.positional_embedding_type, ", final norm:", model2.cfg.normalization_type)

# %% [markdown]
# ## 1. The residual stream is a sum
#
# A transformer keeps one vector per position, the **residual stream** (`d_model` numbers). The
# embedding writes the first value into it; after that, every layer *reads* the stream and *adds* its
# output back. Nothing is ever overwritten. The final stream is therefore a sum of everything that was
# written: token embedding, (maybe) positional embedding, and the output of every attention head and MLP.
# The unembedding `W_U` reads that sum.
#
# An attention layer looks like one big operation (concatenate the heads' results, multiply by `W_O`),
# but splitting `W_O` by rows shows that each head writes `z_h @ W_O[h]` on its own: **heads are
# independent and additive**. Each head reads the stream through its own `W_Q`, `W_K`, `W_V`
# (`[d_model, d_head]`), computes its own attention pattern, and writes through its own
# `W_O` (`[d_head, d_model]`). Because `d_head` is much smaller than `d_model`, a head reads and writes
# small subspaces of the stream, and different heads can talk to each other through them.
#
# A quick check on a real input: the stream after layer 0 equals the stream before it plus the sum of the
# four heads' outputs and the output bias.

# %%
prompt = "When Mary and John went to the store, John gave a drink to Mary."
tokens = model2.to_tokens(prompt)
logits, cache = model2.run_with_cache(tokens)

z = cache["blocks.0.attn.hook_z"]                                     # [batch, pos, head, d_head]
per_head = torch.einsum("bphd,hdm->bphm", z, model2.W_O[0])           # what each head writes
rebuilt = cache["blocks.0.hook_resid_pre"] + per_head.sum(dim=2) + model2.b_O[0]
print("largest difference:", (rebuilt - cache["blocks.0.hook_resid_post"]).abs().max().item())

# %% [markdown]
# ### How big is everything?
#
# Circuits are products of these matrices. The table lists the weights of the one-layer model, and the
# size of one head's full OV circuit (defined in section 4), a `d_vocab x d_vocab` matrix. For GPT-2
# (`d_vocab` 50257, `d_model` 768) one such matrix would take 10 GB; kept as two factors
# (`d_vocab x d_head` and `d_head x d_vocab`) it takes 25 MB. That is why the circuits below are
# TransformerLens `FactoredMatrix` objects.

# %%
from mi_course.language.circuit_plots import matrix_sizes

print(matrix_sizes(model1))
try:
    lm = load_model("lm")  # GPT-2 small in full mode; the lite language model once it ships
    print("\nThe course's language model:\n" + matrix_sizes(lm))
except mi_course.ModelUnavailable as err:
    lm = None
    print("\n(no language model here:", str(err)[:80], "...)")

# %% [markdown]
# ## 2. Zero layers: bigram statistics
#
# Strip every layer away and the model is `logits = W_E[t] @ W_U + b_U`: it sees only the current token
# `t`, so the best it can do is predict the next token from the current one, a table of **bigram**
# statistics. A model with layers keeps this term: it is the **direct path**, embedding straight to
# unembedding, and in a trained model it usually holds the model's bigram knowledge. As a matrix,
# `W_E @ W_U` is `d_vocab x d_vocab`: row = current token, column = next token.
#
# **The final LayerNorm.** Models with LayerNorm normalise the stream just before `W_U`:
# `ln_final(x) = (x - mean(x)) / scale(x) * w + b`, with `scale(x) = sqrt(mean((x - mean(x))^2) + eps)`.
# To read the direct path as the model would, pass each embedding through `ln_final` on its own (its own
# mean and scale) before `W_U`. Forgetting it gives rows at the wrong scale and with a spurious constant
# direction. Our lite attention-only models have no LayerNorm; the full-mode ones (and GPT-2) do.
# TransformerLens *folds* the LayerNorm's `w` and `b` into `W_U` and `b_U` when it loads a pretrained model,
# leaving `LNPre` (centre and scale only); `model.ln_final` does the right thing in every case.
#
# <details><summary>Hint: the idea</summary>
#
# The direct path is what the logits would be if the residual stream held only the current token's embedding.
# So send each embedding row, on its own, through whatever the model applies just before the unembedding (the
# final norm, where there is one), and then through the unembedding and its bias.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Take `E = model.W_E` (or `model.W_E[tokens]`). If `model.cfg.normalization_type` is not `None`,
# replace it by `model.ln_final(E[None])[0]`: the norm expects `[batch, pos, d_model]`, so the rows
# become positions of one batch, and each row is normalised with its own statistics. Then return
# `E @ model.W_U + model.b_U` under `torch.no_grad()`. First raise `ValueError` when `tokens` is empty or holds
# an id outside `0 .. d_vocab - 1`.
# </details>

# %% [exercise] 05.bigram_logits

# %%
from mi_course import check

check("05.bigram_logits")

# %% [markdown]
# What bigrams did the one-layer model's direct path learn? For a few words, the five most likely next
# tokens according to the direct path alone. In lite mode we can compare with the truth: the most
# frequent followers of the same words in a sample of the training corpus.

# %%
from mi_course.language.circuit_plots import corpus_bigrams, next_token_table

words = ["Golden", "Mr", "year", "went", "Assistant", "the"] if lite else ["Mr", "year", "went", "New", "United", "the"]
counts = None
if lite:
    from mi_course.organisms.corpus import generate_corpus

    corpus = generate_corpus(2000, seed=1)   # a sample drawn like the training data
    counts = corpus_bigrams(model1, corpus)
table = bigram_logits(model1, to_ids(model1, words))
print(next_token_table(model1, words if lite else [" " + w for w in words], table, counts=counts))

# %% [markdown]
# In lite mode, "Golden" is followed by "Gate" (the bridge descriptions), "Mr" by "and" ("Mr and Mrs
# Pellow") or a surname, "year" by a century ("19", "17", ...), "Assistant" by ":". How much of the table
# is right? For the 300 most frequent tokens of the sample, compare the direct path's top prediction with
# the token that most often follows in the corpus, and with a baseline that always predicts the most
# frequent token of the sample.

# %%
if lite:
    from collections import Counter

    firsts = Counter()
    for (a, c), n in counts.items():
        firsts[a] += n
    common = [a for a, _ in firsts.most_common(300)]
    best_follower = {a: max(((c, n) for (a2, c), n in counts.items() if a2 == a), key=lambda x: x[1])[0]
                     for a in common}
    predicted = bigram_logits(model1, torch.tensor(common)).argmax(-1).tolist()
    print("direct path's top-1 = corpus's top follower:",
          sum(p == best_follower[a] for a, p in zip(common, predicted)) / len(common))
    print("always predicting the most frequent token:  ",
          sum(best_follower[a] == common[0] for a in common) / len(common))

# %% [markdown]
# About half of the frequent tokens get the right top follower from the direct path alone, almost twice
# the baseline. The rest is left to the heads: the one-layer model's direct path does not have to know
# everything, because the heads' terms add to it.
#
# ## 3. One layer: the path expansion
#
# Take an attention-only model with one layer. At position $i$ the final stream is
#
# $$x_i = e_i + \sum_h \sum_j A^h_{ij} \, e_j W_{OV}^h + \text{biases}, \qquad W_{OV}^h = W_V^h W_O^h,$$
#
# where $e_j$ is the embedding at position $j$ and $A^h$ head $h$'s attention pattern. The logits are
# $x_i W_U$, so they split into a **direct path** ($e_i W_U$: the bigram table again) plus **one term per
# head** ($\sum_j A^h_{ij} e_j W_{OV}^h W_U$), plus bias terms. With more layers the same bookkeeping
# gives one term per head of every layer (and per MLP). This is the *path expansion*: a model is a sum of
# simpler models, and we can ask which term did what.
#
# Three details make the sum exact:
#
# * **Positions.** With *standard* positional embeddings, `hook_pos_embed` is added to the stream and
#   needs its own term. The lite attention-only models use *shortformer* positions: they are added to the
#   queries' and keys' inputs only, so they shape attention patterns but never enter the stream. The real
#   ones of full mode (TransformerLens's `attn-only-1l`, `-2l`) add *standard* positions, so there
#   `hook_pos_embed` is one more term (the first cell of this lesson prints which kind the model has).
# * **Biases.** `b_O` (one per layer) and `b_U` are terms too. (A head's `b_V` is inside its `z`.)
# * **The final LayerNorm** is not linear: it divides by the stream's scale. But for *one* input that
#   scale is a fixed number per position, cached as `ln_final.hook_scale`. Dividing every term by it, and
#   centring each term (the mean of a sum is the sum of the means), makes the LayerNorm linear, and the
#   terms add up to the logits exactly. Its bias `b` goes once into the `b_U` term.
#
# Models with MLPs (GPT-2, the lite language model) get one term per MLP layer as well.
#
# <details><summary>Hint: the idea</summary>
#
# List everything that was written into the final stream, each as its own `[batch, pos, d_model]` term read
# from the cache, and send every term separately through the final norm and `W_U`. Holding this input's
# cached scale fixed makes the norm linear, so the terms still add up; the constant biases make one last term.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Collect residual-stream terms `[batch, pos, d_model]` in a list with their labels:
# `cache["hook_embed"]`, `cache["hook_pos_embed"]` if the positions are standard, then per layer the
# heads (`torch.einsum("bphd,hdm->hbpm", cache[f"blocks.{l}.attn.hook_z"], model.W_O[l])` gives all of
# them at once), `model.b_O[l].expand(...)` and, without `cfg.attn_only`, `cache[f"blocks.{l}.hook_mlp_out"]`.
# Stack them and, if `cfg.normalization_type` is not `None`, apply the norm from the docstring: subtract
# `x.mean(-1, keepdim=True)` for "LN" and "LNPre" only (RMS norms do not centre), divide by
# `cache["ln_final.hook_scale"]`, then `* model.ln_final.w` if it exists. Multiply by `W_U`, and append
# the bias term (`b_U`, plus `model.ln_final.b @ W_U` if it exists) expanded to `[1, batch, pos, d_vocab]`.
# </details>

# %% [exercise] 05.decompose_logits

# %%
check("05.decompose_logits")

# %% [markdown]
# **Direct logit attribution.** At each position of our sentence, how much does each term push the
# logit of the token that actually comes next? We subtract each term's mean over the vocabulary (adding a
# constant to all logits changes nothing after the softmax).

# %%
from mi_course.language.circuit_plots import plot_logit_attribution


def attribution(model, text):
    tokens = model.to_tokens(text)
    logits, cache = model.run_with_cache(tokens)
    components, labels = decompose_logits(model, cache)
    print(f"{len(labels)} terms; largest |sum - logits|: {(components.sum(0) - logits).abs().max().item():.1e}")
    centred = components - components.mean(-1, keepdim=True)
    nxt = tokens[0, 1:]
    values = centred[:, 0, torch.arange(len(nxt), device=nxt.device), nxt]   # [component, pos - 1]
    str_tokens = model.to_str_tokens(tokens)
    positions = [f"{a} → {b}" for a, b in zip(str_tokens[:-1], str_tokens[1:])]
    return values, labels, positions


values, labels, positions = attribution(model1, prompt)
plot_logit_attribution(values, labels, positions, "one-layer model: push on the correct next token")
plt.show()

# %% [markdown]
# Read it column by column. The direct path ("embed") gives steady but small pushes; most of the work is
# done by the heads, even on steps that look like bigrams ("went → to", "to → the"). A head that attends
# to the current or the previous token is an extra bigram or trigram table, and this model, whose heads
# can use positions, leans on them. The column "to → Mary" is the interesting one: "Mary" cannot be
# predicted from "to" alone, so the heads pushing it must have looked back. Where did each head look from
# that position?

# %%
str_tokens = model1.to_str_tokens(prompt)
_, cache1 = model1.run_with_cache(prompt)
query = len(str_tokens) - 3                                     # the last "to", which must predict "Mary"
for h in range(model1.cfg.n_heads):
    pattern = cache1["pattern", 0][0, h, query]
    top = pattern.topk(3)
    print(f"head 0.{h} at {str_tokens[query]!r} attends to", ", ".join(
        f"{str_tokens[k]!r} ({w:.2f})" for w, k in zip(top.values.tolist(), top.indices.tolist())))

# %% [markdown]
# In lite mode one head spreads its attention over the names earlier in the sentence and, through its
# OV circuit, raises them: a rule "Mary ... to → Mary" learned from the corpus's IOI-style stories. It
# raises "John" too, since it cannot tell which name is the right one; telling them apart takes more
# layers (lesson 11). Sections 4 and 5 read such rules from the weights.
#
# The same call works for models with LayerNorm and MLPs; the next cell runs it on the language model
# when one is available (GPT-2 small in full mode: the embedding, the positions, 12 layers x 12 heads, 12 MLPs,
# 12 attention-output biases and `b_U`, 171 terms).

# %%
if lm is not None:
    values_lm, labels_lm, positions_lm = attribution(lm, prompt)
    keep = values_lm.abs().amax(dim=1).topk(12).indices.sort().values   # the 12 strongest terms
    plot_logit_attribution(values_lm[keep], [labels_lm[i] for i in keep], positions_lm,
                           "language model: the 12 strongest terms")
    plt.show()

# %% [markdown]
# ## 4. QK and OV circuits
#
# Look again at one head's term, $\sum_j A^h_{ij} \, e_j W_{OV}^h W_U$. Two things happen in it, and they
# are independent:
#
# * **where to attend**: the pattern $A^h$ is the softmax of scores
#   $e_i W_Q^h (e_j W_K^h)^\top = e_i W_{QK}^h e_j^\top$, with $W_{QK}^h = W_Q^h W_K^{h\top}$;
# * **what to move**: once the head attends to token $j$, it adds $e_j W_{OV}^h W_U$ to the logits.
#
# Put the embeddings around them and both become `d_vocab x d_vocab` tables of tokens
# (row-vector convention, as TransformerLens writes them):
#
# * the **full QK circuit** $W_E W_Q W_K^\top W_E^\top$: entry $[B, A]$ is how much a query at token $B$
#   wants to attend to a key at token $A$ (before scaling and softmax);
# * the **full OV circuit** $W_E W_V W_O W_U$: entry $[A, C]$ is how much attending to token $A$ raises
#   the logit of token $C$.
#
# Elhage et al. write column vectors, so their matrices are the transposes of these ($W_U W_{OV} W_E$, etc.).
# Both circuits leave out positions and LayerNorms: they describe what the head does with *tokens*.
# `FactoredMatrix(left, right)` stores the product `left @ right` without computing it; `.AB` multiplies it
# out, and `mi_course.language.factored.circuit_rows(m, ids)` multiplies out just some rows.
#
# <details><summary>Hint: the idea</summary>
#
# Both circuits restate a head's weights in tokens. OV asks "if the head attends to token A, which logits go
# up?", so it needs the embedding in front and the unembedding behind; QK asks "how much does a query at B like
# a key at A?", so it has the embedding on both sides. Keep each as two thin factors meeting in `d_head`.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `model.W_V[layer, head]` is `[d_model, d_head]` and `model.W_O[layer, head]` is `[d_head, d_model]`.
# Build the two factors so that the middle dimension is `d_head`: `FactoredMatrix(model.W_E @ W_V, W_O @ model.W_U)`.
# For QK: `FactoredMatrix(model.W_E @ W_Q, (model.W_E @ W_K).T)`. Check `0 <= layer < model.cfg.n_layers`
# and `0 <= head < model.cfg.n_heads` first and raise `ValueError` otherwise (a negative index would
# silently pick the last head).
# </details>

# %% [exercise] 05.ov_circuit

# %%
check("05.ov_circuit")

# %% [exercise] 05.qk_circuit

# %%
check("05.qk_circuit")

# %% [markdown]
# **Which heads copy?** A head whose OV circuit has its largest entry of row $A$ at column $A$ raises the
# very token it attends to: it *copies*. For every head of the two-layer model, the fraction of (sampled,
# non-special) tokens whose top OV output is the token itself; chance is $1/d_{vocab}$.

# %%
from mi_course.language.factored import circuit_rows

sample = torch.arange(4, model2.cfg.d_vocab) if lite else torch.randint(256, 10_000, (2000,))
for layer in range(2):
    fractions = []
    for head in range(model2.cfg.n_heads):
        rows = circuit_rows(ov_circuit(model2, layer, head), sample)     # [n, d_vocab]
        fractions.append((rows.argmax(-1) == sample.to(rows.device)).float().mean().item())
    print(f"layer {layer}: " + "  ".join(f"{layer}.{h}: {f:.2f}" for h, f in enumerate(fractions)))

# %% [markdown]
# In the two-layer model the layer-1 heads copy (in lite mode, 40-97% of tokens; chance is 0.06%) and
# the layer-0 heads do not. Copying is what an induction head needs ("... A B ... A → B": attend to B,
# predict B); lesson 06 takes it apart. Here is the OV circuit of the strongest copier on a few names:
# a bright diagonal.

# %%
from mi_course.language.circuit_plots import plot_token_matrix

names = ["Mary", "John", "Alice", "Tom", "Emma", "Paul", "Lucy", "David"]
names = [n for n in names if len(model2.to_str_tokens(n if lite else " " + n, prepend_bos=False)) == 1]
name_ids = to_ids(model2, names)
copy_scores = [(circuit_rows(ov_circuit(model2, 1, h), sample).argmax(-1) == sample.to(model2.W_E.device))
               .float().mean().item() for h in range(model2.cfg.n_heads)]
best = max(range(model2.cfg.n_heads), key=lambda h: copy_scores[h])
block = circuit_rows(ov_circuit(model2, 1, best), name_ids)[:, name_ids.to(model2.W_E.device)]
plot_token_matrix(block, names, names, f"OV circuit of head 1.{best} on names",
                  xlabel="logit raised (C)", ylabel="token attended to (A)")
plt.show()

# %% [markdown]
# ## 5. Skip-trigrams
#
# Combine the two circuits of one head. If the QK circuit makes a query at token $B$ attend to an earlier
# token $A$, and the OV circuit makes $A$ raise the logit of $C$, the head implements the rule
# **"A ... B → C"**: whenever $A$ appeared somewhere before, predict $C$ after $B$. Elhage et al. call
# these *skip-trigrams*, and showed that one-layer attention-only models are largely tables of them
# (plus bigrams). They also showed the flaw of such tables: a head cannot express "A ... B → C" without
# also raising $C$ after other queries that attend to $A$ (and other tokens that $A$ predicts after $B$),
# because the QK and OV circuits are learned separately.
#
# To rank triples we score $\text{qk}[B, A] \cdot \text{ov}[A, C]$, with each circuit centred per row (the
# softmax over keys ignores a constant added to a query's row of scores, and the softmax over the
# vocabulary ignores a constant added to all logits), and count only triples where both factors are
# positive. A vocabulary of $n$ tokens has $n^3$ triples (four billion for the lite model), so we never
# form them all: the top $k$ triples use, for each $A$, only its $k$ best $B$ and its $k$ best $C$.
#
# <details><summary>Hint: the idea</summary>
#
# A rule "A ... B → C" is strong when a query at B favours the key A and moving A favours C, so a triple scores
# the product of the two centred circuit entries. For a fixed A the best triples can only use A's few best B's
# and few best C's: rank that small candidate set for every A instead of all $n^3$ triples.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# 0. Check `layer`, `head` and `k >= 1` first and raise `ValueError` otherwise.
# 1. `E = model.W_E[tokens]` (or all of `W_E`), `U = model.W_U[:, tokens]`. Full circuits:
#    `qk = (E @ W_Q) @ (E @ W_K).T` (`[B, A]`) and `ov = E @ W_V @ W_O @ U` (`[A, C]`), both `[n, n]`.
# 2. Centre: `qk - qk.mean(1, keepdim=True)`, the same for `ov`; then `.clamp(min=0)` so that only
#    positive factors can score.
# 3. With `kk = min(k, n)` (`k` may exceed the number of tokens), `qk.topk(kk, dim=0)` gives for every A
#    (column) its kk best B; `ov.topk(kk, dim=1)` its kk best C.
# 4. The products `[A, kk, kk]` (broadcast the two) hold every candidate; `flatten().topk(min(k, numel))` and
#    integer division turn flat indices back into (A, B-rank, C-rank), then into token ids (positions in
#    `tokens`, when it is given, go back through `tokens[...]`). Drop scores of 0.
# </details>

# %% [exercise] 05.top_skip_trigrams

# %%
check("05.top_skip_trigrams")

# %% [markdown]
# The strongest skip-trigrams of each head of the one-layer model, leaving out the special tokens (in
# full mode, the 10,000 most common tokens: a BPE vocabulary is roughly sorted by frequency). In lite mode a
# `*` marks triples that occur in the corpus sample, with A within the 30 tokens before B.

# %%
from mi_course.language.circuit_plots import corpus_skip_trigrams, skip_trigram_table

vocab = torch.arange(4, model1.cfg.d_vocab) if lite else torch.arange(256, 10_256)
seen = corpus_skip_trigrams(model1, corpus, window=30) if lite else None
trigrams = {}
for head in range(model1.cfg.n_heads):
    trigrams[head] = top_skip_trigrams(model1, 0, head, 8, vocab)
    print(f"head 0.{head}:   score       A  ...  B          ->  C")
    print(skip_trigram_table(model1, *trigrams[head], seen=seen), "\n")

# %% [markdown]
# In lite mode you should find rules from the corpus's genres (when this was written: place names such as
# "The ... Great → Dome" and "The ... Iron → Market", descriptions such as "a ... known → for" and
# "the ... most → famous", Python's "( ... self → ," and "( ... self → )", "a ... company → called"). Many
# rules have A right before B (a one-layer model also uses attention for plain trigrams: positions steer
# the pattern, tokens decide the content). A missing `*` does not mean the rule is wrong: a head's rule
# "A ... B → C" covers every B that attends to A, seen together in the corpus or not, which is exactly
# the generalisation (and the bug) Elhage et al. describe.
#
# The two circuits behind one head's best rules, side by side: QK on the B's (queries) and A's (keys), OV
# on the A's and C's.

# %%
head = 0
(tri, _) = trigrams[head]
A, B, Cs = [list(dict.fromkeys(tri[:, i].tolist()))[:6] for i in range(3)]
dev = model1.W_E.device
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
tok = lambda ids: [model1.to_single_str_token(i) for i in ids]
plot_token_matrix(circuit_rows(qk_circuit(model1, 0, head), torch.tensor(B))[:, torch.tensor(A, device=dev)],
                  tok(B), tok(A), f"QK of head 0.{head}", "key A", "query B", ax=axes[0])
plot_token_matrix(circuit_rows(ov_circuit(model1, 0, head), torch.tensor(A))[:, torch.tensor(Cs, device=dev)],
                  tok(A), tok(Cs), f"OV of head 0.{head}", "output C", "attended A", ax=axes[1])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Two layers: composition
#
# With a second layer, a layer-1 head reads a stream that already holds the layer-0 heads' outputs. It
# can use them in three places, the three kinds of **composition**:
#
# * **Q-composition**: layer-0 output in the *query*: what the layer-1 head looks for depends on what an
#   earlier head moved;
# * **K-composition**: layer-0 output in the *key*: where it looks depends on what an earlier head moved
#   into that position. An induction head is the classic case: a layer-0 *previous-token head* writes
#   "the token before me was A" into every position, and the induction head's key reads it, so that a
#   query at A finds the token *after* the earlier A;
# * **V-composition**: layer-0 output in the *value*: what it moves is what an earlier head moved, a
#   **virtual head** (section 7).
#
# Q- and K-composition change attention patterns, which makes the model more than a sum of fixed paths;
# V-composition adds new paths. How much a layer-1 head reads from a layer-0 head on each side is measured
# by how much of one matrix passes through the other, relative to their sizes (Frobenius norms):
#
# $$\text{Q: } \frac{\lVert W_{OV}^{0} W_{QK}^{1} \rVert_F}
# {\lVert W_{OV}^{0} \rVert_F \lVert W_{QK}^{1} \rVert_F},
# \qquad \text{K: } \frac{\lVert W_{QK}^{1} W_{OV}^{0\top} \rVert_F}
# {\lVert W_{OV}^{0} \rVert_F \lVert W_{QK}^{1} \rVert_F},
# \qquad \text{V: } \frac{\lVert W_{OV}^{0} W_{OV}^{1} \rVert_F}
# {\lVert W_{OV}^{0} \rVert_F \lVert W_{OV}^{1} \rVert_F}.$$
#
# These are the row-vector forms of Elhage et al.'s scores. Why each product: a layer-0 head turns a
# vector $y$ into $y W_{OV}^0$. In the query, the score is $(y W_{OV}^0) W_{QK}^1 x^\top$: product
# $W_{OV}^0 W_{QK}^1$. In the key, it is $x W_{QK}^1 (y W_{OV}^0)^\top = x \, W_{QK}^1 W_{OV}^{0\top} y^\top$. In
# the value, the output is $y W_{OV}^0 W_{OV}^1$. Random matrices of these shapes give about
# $1/\sqrt{d_\text{model}}$, the baseline to beat.
#
# <details><summary>Hint: the idea</summary>
#
# Each score asks how much of what a layer-0 head writes lands in the subspace that a layer-1 head reads on one
# side: chain the layer-0 head's OV matrix into the layer-1 head's QK or OV matrix on that side, and compare the
# size of the product with the sizes of the two matrices. Which side of $W_{QK}$ it enters is what tells Q from K.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Loop over `h0` and `h1` (or broadcast). `ov0 = model.W_V[0, h0] @ model.W_O[0, h0]`,
# `qk1 = model.W_Q[1, h1] @ model.W_K[1, h1].T`, `ov1 = model.W_V[1, h1] @ model.W_O[1, h1]`, all
# `[d_model, d_model]`; `torch.linalg.matrix_norm` is the Frobenius norm. Check `kind.upper()` against
# `"Q"`, `"K"`, `"V"` and the number of layers first, raising `ValueError` (lower case is allowed). (For big
# models you can avoid the `d_model x d_model` products altogether: for factors $X$, $Y$,
# $\lVert XY \rVert_F^2 = \sum (X^\top X) \odot (Y Y^\top)$.)
# </details>

# %% [exercise] 05.composition_scores

# %%
check("05.composition_scores")

# %% [markdown]
# The composition scores of the two-layer model. Row labels give each layer-0 head's previous-token score
# (its mean attention to the previous position on random text), column labels each layer-1 head's induction
# score, both measured on repeated random tokens by `mi_course.language.induction` (lesson 06 derives them).

# %%
from mi_course.language import induction
from mi_course.language.circuit_plots import plot_composition
from mi_course.language.factored import composition_baseline

prev = induction.prev_token_scores(model2)[0]
ind = induction.induction_scores(model2)[1]
scores = {kind: composition_scores(model2, kind) for kind in "QKV"}
plot_composition(scores, composition_baseline(model2.cfg.d_model, model2.cfg.d_head),
                 [f"0.{h} prev {p:.2f}" for h, p in enumerate(prev.tolist())],
                 [f"1.{h} ind {s:.2f}" for h, s in enumerate(ind.tolist())])
plt.show()
p, i = int(prev.argmax()), int(ind.argmax())
print(f"previous-token head 0.{p} -> induction head 1.{i}: "
      + ", ".join(f"{k} {scores[k][p, i]:.3f}" for k in "QKV"))

# %% [markdown]
# In the lite model the picture is clean: the previous-token heads (0.0 and 0.1 when this was written)
# have the strongest **K-composition** with every layer-1 head, about twice the random baseline, while their
# Q- and V-composition is far below it: they write into a subspace that layer 1 reads with its keys and
# nowhere else. That is the induction mechanism, found from weights alone. The other two layer-0 heads
# compose more evenly. In full mode, look for the same structure around the heads with high
# previous-token and induction scores.
#
# ## 7. Virtual heads
#
# V-composition gives the path expansion of a two-layer model new terms. Substitute layer 0's output into
# layer 1's values: besides the direct path, one term per layer-0 head and one per layer-1 head reading
# embeddings, there is one term per *pair* of heads $(h_0, h_1)$,
#
# $$A^{h_1} A^{h_0} \; e \; W_{OV}^{h_0} W_{OV}^{h_1} W_U,$$
#
# a **virtual head** whose attention pattern is the product of the two patterns (attend to where $h_0$
# attended from the positions $h_1$ attends to) and whose OV circuit is $W_E W_{OV}^{h_0} W_{OV}^{h_1} W_U$.
#
# <details><summary>Hint: the idea</summary>
#
# The virtual head is the path on which the layer-0 head moves a token and the layer-1 head then moves that
# output on, so its OV circuit chains the two heads' OV maps between the embedding and the unembedding, in the
# order the signal flows. Return it factored, as `ov_circuit` does.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# Check `model.cfg.n_layers >= 2` and both head indices (raise `ValueError`; no negative indices), then
# `FactoredMatrix(model.W_E @ model.W_V[0, head0], right)` with
# `right = model.W_O[0, head0] @ model.W_V[1, head1] @ model.W_O[1, head1] @ model.W_U`.
# The order matters: the token passes through layer 0's head first.
# </details>

# %% [exercise] 05.virtual_head_ov

# %%
check("05.virtual_head_ov")

# %% [markdown]
# **How large are the virtual heads?** On a batch of text, we measure each term of the path expansion by
# the root-mean-square over the vocabulary of its centred logits, averaged over positions: the direct
# path, each layer-0 head, each layer-1 head applied to the embeddings (its own OV circuit), and the 16
# virtual heads (their OV circuit, with both attention patterns of this input). In full mode the models
# have a final LayerNorm, which this rough measure ignores.

# %%
from mi_course.language.circuit_plots import plot_path_sizes

texts = corpus[:16] if lite else [prompt, "The Golden Gate Bridge is a suspension bridge in San Francisco.",
                                  "def add(a, b):\n    return a + b\n", "Mr and Mrs Dursley lived at number four."]
batch = model2.to_tokens(texts)[:, :48]
_, cache2 = model2.run_with_cache(batch)
components, labels = decompose_logits(model2, cache2)


def size(logit_terms):
    centred = logit_terms - logit_terms.mean(-1, keepdim=True)
    return centred.pow(2).mean(-1).sqrt().mean().item()


def moved(pattern, matrix):
    """A head's term for this batch: attention pattern times the circuit rows of the tokens."""
    return pattern @ circuit_rows(matrix, batch.flatten()).view(*batch.shape, -1)


sizes = {"direct path": size(components[labels.index("embed")])}
for h in range(model2.cfg.n_heads):
    sizes[f"0.{h}"] = size(components[labels.index(f"L0H{h}")])
for h in range(model2.cfg.n_heads):
    sizes[f"1.{h} on embeddings"] = size(moved(cache2["pattern", 1][:, h], ov_circuit(model2, 1, h)))
virtual = torch.zeros(model2.cfg.n_heads, model2.cfg.n_heads)
for h0 in range(model2.cfg.n_heads):
    for h1 in range(model2.cfg.n_heads):
        both = cache2["pattern", 1][:, h1] @ cache2["pattern", 0][:, h0]   # the virtual head's pattern
        virtual[h0, h1] = size(moved(both, virtual_head_ov(model2, h0, h1)))
plot_path_sizes(sizes, virtual)
plt.show()

# %% [markdown]
# In the lite model the virtual heads are not negligible: each is a quarter to a half the size of a
# layer-1 head reading embeddings directly, and the ones through layer-0 heads 0.2 and 0.3 (which have the
# higher V-composition in the heatmap above) tend to be the larger ones. Elhage et al. found the
# interesting composition of their two-layer models in the keys (induction heads) and report V-composition
# playing a smaller role; a model trained on a small generated corpus need not agree, and measuring the
# terms tells you which paths deserve study rather than assuming.
#
# ## Summary
#
# * The residual stream is a sum, and a transformer's logits are a sum of **paths**: the direct path
#   (bigram statistics, `bigram_logits`), one term per head (`decompose_logits`), and with two layers
#   virtual heads (`virtual_head_ov`).
# * Each head is two separate circuits over tokens: **QK** decides where to attend, **OV** what to move
#   (`qk_circuit`, `ov_circuit`). Together, one-layer heads implement **skip-trigrams** "A ... B → C"
#   (`top_skip_trigrams`).
# * Heads in different layers **compose** through queries, keys and values (`composition_scores`); the
#   K-composition of a previous-token head with a layer-1 head is the signature of an **induction head**.
#
# Lesson 06 finds those induction heads by their behaviour, measures the previous-token and induction
# stripes, and ablates them to see what they are worth.
