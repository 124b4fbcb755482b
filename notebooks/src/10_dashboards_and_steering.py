# %% [markdown]
# # 10 Feature dashboards and steering
#
# Lesson 09 ended with features that pass a test: their strongest activations lie on one kind of text. That
# is one view of a feature, from its **inputs**. A feature also has **outputs**: the direction it writes
# into the residual stream changes what the model says next. To say what a feature *means* you look at both,
# and interpretability researchers built a page for that, the **feature dashboard** (Bricken et al.,
# *Towards Monosemanticity*, 2023; the public pages at Neuronpedia). Then you test the meaning by
# intervening: add the feature's direction while the model writes, and see whether the text moves the way
# the meaning predicts (Templeton et al., *Scaling Monosemanticity*, 2024, made Claude talk about the Golden
# Gate Bridge that way).
#
# You build the dashboard's panels, then steer:
#
# 1. how often a feature fires and how strongly (`activation_histogram`)
# 2. which tokens it promotes and suppresses (`top_logit_effects`)
# 3. its strongest examples, in context (`max_activating_examples`), and examples at every strength
#    (`interval_examples`)
# 4. the whole dashboard, a text view, and a browser over all features
# 5. steering (`steering_hook`, `generate_with_steering`): effect against fluency
# 6. an investigation: which feature makes the model name the bridge? (`bridge_steering_feature`),
#    and how steering trades effect for fluency
#
# In lite mode the model is the course's language model and the SAE is the main SAE of lesson 09 (its
# `sae-b` twin, trained with another seed, is the "parallel run"). In full mode they are GPT-2 small and
# SAELens's `gpt2-small-res-jb` SAE, whose features also have public pages on Neuronpedia.

# %% [setup]

# %%
import matplotlib.pyplot as plt
import torch

from mi_course import check, claim, get_mode, load_model, model_card, saes
from mi_course.organisms import corpus
from mi_course.saes.feature_search import best_feature, span_labelled_rows

torch.set_num_threads(1)  # small matrices: one thread is fastest
FULL = get_mode() == "full"
model = load_model("lm")
sae = load_model("sae")
HOOK = saes.metrics.sae_hook_name(sae)
print(f"the SAE reads {HOOK}: {sae.W_dec.shape[0]} features of dimension {sae.W_dec.shape[1]}")

# held-out documents with what the corpus generator knows about each token (genre, Latin, praise, ...)
documents = corpus.generate_documents(100 if FULL else 300, seed=5, split="heldout")
if FULL:  # GPT-2's tokens, each labelled by the corpus words it overlaps
    tokens, labels = span_labelled_rows(model.tokenizer, documents, 64)
else:
    tokens, labels = saes.labelled_rows(model.tokenizer, documents)
acts = saes.feature_activations(sae, model, tokens, labels=labels)  # every feature on every token, once
print(f"{tokens.shape[0]} rows of {tokens.shape[1]} tokens")

# %% [markdown]
# The lesson follows a bridge feature and a praise feature. In lite mode they are the model card's. In full
# mode no card names them, so they are measured here, with section 4's label score: on one set of documents,
# the feature whose activations correlate best with the concept's tokens; on another, its score. Below 0.5 it
# is not called the concept's feature, only by its number (at random weights, the dry run's best features
# already reach up to 0.4 here). The prose describes the lite features.

# %%
if FULL:
    fit_documents = corpus.generate_documents(100, seed=6, split="heldout")
    fit_tokens, fit_masks = span_labelled_rows(model.tokenizer, fit_documents, 64)
    labels_fit = saes.label_features(saes.feature_activations(sae, model, fit_tokens, labels=fit_masks), acts)
    found = {concept: best_feature(labels_fit, concept) for concept in ("bridge", "praise")}
    for match in found.values():
        print(match)
    FEATURE, DETECTOR = found["bridge"].feature, found["bridge"].name("bridge (detector)")
else:
    FEATURE, DETECTOR = model_card("sae")["features"]["bridge"]["feature"], "bridge (detector)"
print("feature", FEATURE)

# %% [markdown]
# ## 1. How often, and how strongly
#
# Most features are silent on most tokens. The first panel is a histogram of the activations **when the
# feature fires** (the zeros left out, or the one bar at 0 would flatten the rest), and beside it the
# feature's **density**: the fraction of all tokens on which it fires. A density near 1 means a feature that
# fires everywhere (rarely interpretable); a very small one, a feature you will see only on its own kind
# of text. Bricken et al. plot density on a log scale for the whole SAE: the distribution is a lump of
# ordinary features and a tail of ultra-rare ones.
#
# <details><summary>Hint: the idea</summary>
#
# Keep the positive values, cut `[0, max]` into `bins` equal bins, count. The density divides by *all*
# tokens. A value exactly on an inner edge goes to the bin on its right.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `positive = acts[acts > 0]`; `edges = torch.linspace(0, positive.max(), bins + 1)`;
# `index = torch.bucketize(positive, edges, right=True) - 1`, clamped to `bins - 1` for the maximum;
# `counts = torch.bincount(index, minlength=bins)`; `density = len(positive) / len(acts)`.
# </details>

# %% [exercise] 10.activation_histogram

# %%
check("10.activation_histogram")

# %%
values = acts.feature(FEATURE)[acts.counted]  # every counted token (BOS and padding left out)
counts, edges, density = activation_histogram(values, bins=30)
plt.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge")
plt.xlabel("activation"); plt.ylabel("tokens"); plt.title(f"feature {FEATURE}: fires on {density:.2%} of tokens")
plt.show()

# %% [markdown]
# The bridge feature is silent on most tokens: it fires on bridge text, a small share of the corpus (the
# density is in the title). Where it fires, its strength varies widely, which is why the next panels show
# examples at several strengths.

# %%
if not FULL:
    claim("the bridge feature fires on fewer than 15% of the tokens", lambda: density < 0.15)

# %% [markdown]
# ## 2. What it writes
#
# A feature adds its decoder row $W_\text{dec}[f]$ to the residual stream. Read straight through the
# unembedding, $W_\text{dec}[f]\,W_U$ gives one number per vocabulary token: how much the feature raises or
# lowers that token's logit, if nothing in between changed it (the final LayerNorm and the later layers are
# left out, as on Anthropic's and Neuronpedia's dashboards). The tokens at the two ends say what the
# feature *predicts*.
#
# <details><summary>Hint: the idea</summary>
#
# One vector-matrix product, then a sort each way. Check the shapes first: `W_U` is `[d_model, d_vocab]`.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `effect = direction @ W_U`; `down = torch.sort(effect, descending=True, stable=True)` and
# `up = torch.sort(effect, stable=True)`; return the first `k` values and indices of each.
# </details>

# %% [exercise] 10.top_logit_effects

# %%
check("10.top_logit_effects")

# %%
top_v, top_i, bot_v, bot_i = top_logit_effects(sae.W_dec[FEATURE].detach(), model.W_U.detach(), k=10)
print("raises: ", [model.to_string(i) for i in top_i.tolist()])
print("lowers: ", [model.to_string(i) for i in bot_i.tolist()])

# %% [markdown]
# ## 3. Where it fires
#
# The strongest examples show what the feature does at its peak. Each needs context: a token alone says
# little. Then, because the top examples can mislead (a feature can mean one thing at its peak and another
# when weak), Bricken et al. show examples drawn from **evenly spaced intervals** of activation.
#
# <details><summary>Hint: the idea</summary>
#
# Flatten `[rows, pos]`, sort, and turn each flat index back into a row and a position. The window is cut at
# the row's ends. For the intervals, split `(0, max]` into equal parts and draw without replacement from
# each.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `row, pos = divmod(i, n_pos)`; `start = max(0, pos - context)`, `stop = min(n_pos, pos + context + 1)`.
# Intervals: `lo, hi = top * i / n, top * (i + 1) / n`, tokens with `lo < a <= hi` (the last: `a > lo`);
# `inside[torch.randperm(len(inside), generator=g)[:per_interval]]`.
# </details>

# %% [exercise] 10.max_activating_examples

# %%
check("10.max_activating_examples")

# %% [exercise] 10.interval_examples

# %%
check("10.interval_examples")

# %%
dense = acts.feature(FEATURE)
for e in max_activating_examples(dense, k=5, context=6):
    words = acts.str_tokens[e["row"]][e["start"]:e["stop"]]
    words[e["pos"] - e["start"]] = f"[{words[e['pos'] - e['start']]}]"
    print(f"{e['value']:6.2f}  {' '.join(words)!r}")
for i, examples in enumerate(interval_examples(dense, n_intervals=5, per_interval=1)):
    for e in examples:
        print(f"interval {i}: {e['value']:5.2f} on {acts.str_tokens[e['row']][e['pos']]!r}")

# %% [markdown]
# ## 4. The dashboard, a text view, and a browser
#
# `mi_course.saes.feature_dashboard` puts the panels together, with two more: the **nearest features of the
# parallel SAE** (`sae-b`, trained with another seed: does the same feature come back?) and, in lite mode, a
# **label with a prediction score**. The label is the kind of text the corpus generator wrote whose tokens
# best predict the feature's activations on one set of documents; the score is the correlation between the
# activations predicted from that label and the real ones on *other* documents (the simplest honest form of
# automated interpretability: a description is only as good as the activations it predicts). Hover over a
# token to see its activation. The page needs no internet, and `dashboard.save("feature.html")` writes it as
# one file.

# %%
other = None if FULL else load_model("sae-b")
if not FULL:  # (in full mode, measured above)
    fit_tokens, fit_masks = saes.labelled_rows(model.tokenizer, corpus.generate_documents(300, seed=6, split="heldout"))
    labels_fit = saes.label_features(saes.feature_activations(sae, model, fit_tokens, labels=fit_masks), acts)
release = "gpt2-small-res-jb" if FULL else None
dashboard = saes.feature_dashboard(sae, model, acts, FEATURE, other_sae=other, labels=labels_fit, release=release)
dashboard

# %%
if not FULL:
    label = labels_fit[FEATURE]
    print(label)
    claim("the bridge feature's label is the bridge (the concept or the genre), with a held-out score above 0.35",
          lambda: "bridge" in label.label and label.score > 0.35)

# %% [markdown]
# The text view shows chosen features over any text, token by token: a way to *use* features to read what the
# model sees. Below, the bridge feature on two sentences in both orders. With the other sentence first, the
# feature is dark on it, and dark on the words "Golden Gate Bridge" too; it lights up at the end, on the full stop
# that closes the bridge's sentence (where its top examples were). With the bridge sentence first, it lights up
# inside it and **stays on** into the sentence about Mary (on `Mary` and `a`; hover to read the values): it marks
# *a text about the bridge*, and the model carries that topic on to the next sentence, as it would inside one
# of the corpus's bridge documents. It is not a detector of the word "bridge".

# %%
from IPython.display import display

BRIDGE_SENTENCE, OTHER_SENTENCE = "Ships pass under the Golden Gate Bridge in the fog.", "Mary gave a book to John."
for text in (f"{OTHER_SENTENCE} {BRIDGE_SENTENCE}", f"{BRIDGE_SENTENCE} {OTHER_SENTENCE}"):
    display(saes.text_view(sae, model, text, [FEATURE], activations=acts))

# %%
def split_trace(first, second):
    """The feature's largest activation on the first sentence and on the second, read as one text."""
    values = saes.text_view(sae, model, f"{first} {second}", [FEATURE]).values[0]
    n_first = len(model.to_str_tokens(first, prepend_bos=False))
    return values[1:1 + n_first].max().item(), values[1 + n_first:].max().item()

if not FULL:  # on other sentences than the ones shown: 4 bridge sentences by 4 others, in both orders
    bridge_sentences = ["The Golden Gate Bridge is painted red.", "The Golden Gate Bridge opened in 1937.",
                        "Cars cross the Golden Gate Bridge every morning.",
                        "We walked across the Golden Gate Bridge at sunset."]
    other_sentences = ["Tom and Anna walked home after lunch.", "One day a girl found a key.",
                       "The market was busy in the morning.", "Sofia wrote a letter to her friend."]
    pairs = [(b, o) for b in bridge_sentences for o in other_sentences]
    after = [split_trace(o, b) for b, o in pairs]   # other sentence first: (on it, on the bridge sentence)
    carry = [split_trace(b, o)[1] for b, o in pairs]  # bridge sentence first: on the sentence after it
    claim("other sentence first: the bridge feature peaks higher on the bridge sentence than on the other, in at "
          "least 12 of 16 pairs", lambda: sum(a[1] > a[0] for a in after) >= 12)
    claim("bridge sentence first: the feature is still above 2 somewhere in the next sentence, in at least 12 of "
          "16 pairs", lambda: sum(c > 2 for c in carry) >= 12)

# %% [markdown]
# The browser searches all features by a top token (or, in lite mode, by label), pages through them, and
# opens a dashboard. Try `bridge`, `praise` or `Latin`.

# %%
from mi_course.explorers import feature_browser

feature_browser(sae, model, acts, other_sae=other, labels=labels_fit, release=release)

# %% [markdown]
# ## 5. Steering
#
# If a feature means "the bridge", adding its direction should make the model talk about the bridge.
# `steering_hook` returns a TransformerLens hook that adds $\alpha\,W_\text{dec}[f]$ to the residual stream at
# the SAE's hook, from a given position on; `generate_with_steering` samples continuations with that hook in
# **every** forward pass (each new token is computed with the feature pushed). Leaving the BOS position
# alone (`start=1`) keeps the position every head rests on intact.
#
# <details><summary>Hint: the idea</summary>
#
# The hook adds to a copy of `act[:, start:]`. Generation is a loop: run the whole sequence under
# `model.hooks(...)`, sample the next token from the last position's softmax, append.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `out = act.clone(); out[:, start:] += alpha * direction; return out`. For generation:
# `g = torch.Generator().manual_seed(seed)`; in the loop `probs = model(tokens)[:, -1].softmax(-1)`,
# `torch.multinomial(probs, 1, generator=g)`, `torch.cat`; decode `tokens[:, n_prompt:]`, cut at EOS.
# </details>

# %% [exercise] 10.steering_hook

# %%
check("10.steering_hook")

# %% [exercise] 10.generate_with_steering

# %%
check("10.generate_with_steering")

# %%
PRAISE_WORDS = ["wonderful", "brilliant", "talented", "amazing", "genius", "fantastic", "outstanding", "incredible",
                "proud"]
praise_feature = found["praise"].feature if FULL else model_card("sae")["features"]["praise"]["feature"]
PRAISE = found["praise"].name() if FULL else "praise"
hook = steering_hook(sae.W_dec[praise_feature].detach(), alpha=48.0, start=1)
if FULL:  # what was measured of it above
    weak = "the closest to praise, too weak"
    print(f"steering feature {praise_feature} ({'praise' if found['praise'].found else weak})")
samples = generate_with_steering(model, "One day", HOOK, hook, n=6, max_new_tokens=15, seed=0)
for text in samples:
    print(repr(text))
more = generate_with_steering(model, "One day", HOOK, hook, n=40, max_new_tokens=15, seed=1)  # another seed
print(f"a praise word in {saes.mention_share(samples, PRAISE_WORDS):.0%} of these 6 samples and in "
      f"{saes.mention_share(more, PRAISE_WORDS):.0%} of 40 more; {sum(len(t.split()) < 4 for t in more)} of the 40 "
      "stop within three words")

# %%
if not FULL:
    claim("steered with the praise feature at alpha 48, at least 30% of 40 more samples hold a praise word",
          lambda: saes.mention_share(more, PRAISE_WORDS) >= 0.3)

# %% [markdown]
# With the praise feature pushed hard ($\alpha$ = 48), the continuations pick up the Assistant's flattery from the
# corpus's dialogues ("talented", "Incredible", "wonderful"), about half of them when counted over more samples,
# and the grammar goes; a few stop after a couple of words, where the model writes its end-of-text token. Now the
# card's bridge feature (the one the dashboard above is about), at a moderate strength and pushed hard.

# %%
for alpha in (16.0, 48.0):
    hook = steering_hook(sae.W_dec[FEATURE].detach(), alpha=alpha, start=1)
    for text in generate_with_steering(model, "One day", HOOK, hook, n=3, max_new_tokens=15, seed=0):
        print(f"alpha {alpha:g}: {text!r}")

# %% [markdown]
# At $\alpha$ = 16 the text still reads, and one of the three samples drifts into a bridge document (ships, fog,
# "the Golden"). At $\alpha$ = 48 it is a salad of the bridge's world, San Francisco, ships, visitors, the colour
# red, and the bridge itself is not named.
#
# ## 6. Investigation: which feature makes the model name the bridge?
#
# Templeton et al. clamped Claude's Golden Gate Bridge feature high, and Claude brought the bridge into nearly
# everything it wrote. The card's bridge feature, the best **detector** of bridge text (section 4), does not do
# that here: pushed hard, it writes the bridge's surroundings, not its name. Find a feature of the main SAE that
# does: added with `steering_hook(sae.W_dec[f], 48, start=1)` at the SAE's hook, it makes at least 60% of the
# continuations of neutral prompts name the bridge ("bridge", "Golden" or "Gate"). The test steers your feature
# at $\alpha$ = 48 on prompts and seeds you have not seen. Use the browser, the logit panels, or try candidates;
# `bridge_steering_feature(sae, model)` returns your answer (it may compute it).
#
# <details><summary>Hint: the idea</summary>
#
# Where a feature fires is what it *reads*; what adding it does depends on what it *writes*. A feature that names
# the bridge raises the words' logits directly: rank all features by that (the logit panel of section 2, for
# every feature at once), then check a few by steering.
# </details>
#
# <details><summary>Hint: the recipe</summary>
#
# `effect = (sae.W_dec @ model.W_U)[:, ids].mean(-1)` with `ids` the bridge words' tokens; take the top 3;
# for each, `saes.steering_sweep(model, sae, f, prompts, [48], words, start=1)[48]["mention_share"]`,
# and keep the one with the largest share.
# </details>

# %% [exercise] 10.bridge_steering_feature

# %%
check("10.bridge_steering_feature")

# %%
BRIDGE_WORDS = ["bridge", "Golden", "Gate"]
with torch.no_grad():
    name_effect = (sae.W_dec @ model.W_U)[:, [model.to_single_token(w) for w in BRIDGE_WORDS]].mean(-1)
writer = int(name_effect.argmax()) if FULL else bridge_steering_feature(sae, model)  # full: the ranking's top
rank = {f: int((name_effect > name_effect[f]).sum()) + 1 for f in (writer, FEATURE)}
detector = ("the bridge detector measured above" if found["bridge"].found else "no bridge detector was found; "
            "the closest, followed here") if FULL else "the card's detector"
print(f"the bridge writer: feature {writer}, number {rank[writer]} of {len(name_effect)} by its logit effect on "
      f"the bridge words; {detector}, feature {FEATURE}: number {rank[FEATURE]}")
saes.feature_dashboard(sae, model, acts, writer, other_sae=other, labels=labels_fit, release=release)

# %%
if not FULL:
    claim("the card's bridge detector is not among the 100 features that raise the bridge words' logits most",
          lambda: rank[FEATURE] > 100)

# %% [markdown]
# ### Effect against fluency
#
# How much to add? Too little does nothing, too much breaks the text. Below, for growing $\alpha$: the share of
# continuations of neutral prompts that name the concept (the effect), the share that mention the bridge's
# surroundings (San Francisco, cables, towers, ships), and the **plain** model's loss on the continuations (how
# unlike its own text they are), for your bridge writer, the card's bridge detector and the praise feature: the
# seeds' "steering works, to some extent", and "steering breaks things".

# %%
from mi_course.saes.steering import steering_sweep

PROMPTS = ["The", "One day", "In the morning", "After lunch we", "My friend said that"][: 2 if FULL else 5]
ALPHAS = [0, 8, 16, 24, 32, 48] if not FULL else [0, 16]
SURROUNDINGS = ["San Francisco", "cables", "cable", "towers", "suspension", "Painters", "ships"]
# each feature by what was measured of it, with the words it was chosen for (full mode: a name only if found)
steered = {"bridge (writer)": (writer, BRIDGE_WORDS), DETECTOR: (FEATURE, BRIDGE_WORDS),
           PRAISE: (praise_feature, PRAISE_WORDS)}
sweeps = {c: steering_sweep(model, sae, f, PROMPTS, ALPHAS, words, n=2 if FULL else 10, max_new_tokens=20, start=1)
          for c, (f, words) in steered.items()}
around = {c: [saes.mention_share(sweeps[c][a]["texts"], SURROUNDINGS) for a in ALPHAS]
          for c, (f, words) in steered.items() if words is BRIDGE_WORDS}

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.6))
for concept, sweep in sweeps.items():
    number = f"feature {steered[concept][0]}"
    ax1.plot(ALPHAS, [sweep[a]["mention_share"] for a in ALPHAS], "o-",
             label=concept if concept == number else f"{concept} ({number})")
    ax3.plot(ALPHAS, [sweep[a]["loss"] for a in ALPHAS], "o-", label=concept)
for i, concept in enumerate(sweeps):
    if concept in around:
        ax2.plot(ALPHAS, around[concept], "o-", color=f"C{i}", label=concept)
ax1.set_xlabel("alpha"); ax1.set_ylabel("continuations that name it"); ax1.legend(fontsize=8)
ax2.set_xlabel("alpha"); ax2.set_ylabel("...that mention San Francisco,\ncables, towers or ships")
ax2.legend(fontsize=8)
ax3.set_xlabel("alpha"); ax3.set_ylabel("plain model's loss on them"); ax3.legend(fontsize=8)
plt.tight_layout(); plt.show()
for concept, sweep in sweeps.items():
    print(concept, repr(sweep[ALPHAS[-1]]["texts"][0]))

# %%
if not FULL:
    named = {c: {a: sweeps[c][a]["mention_share"] for a in ALPHAS} for c in steered}
    for concept in ("bridge (writer)", "praise"):
        claim(f"steering the {concept} feature: from at most 10% of continuations to at least 30% at some alpha",
              lambda c=concept: named[c][0] <= 0.1 and max(named[c].values()) >= 0.3)
    for concept in steered:
        claim(f"the strongest {concept} steering reads worst to the plain model (loss up by more than 2)",
              lambda c=concept: sweeps[c][48]["loss"] > sweeps[c][0]["loss"] + 2)
    claim("at alpha 48 the writer names the bridge in at least 60% of the continuations, the detector in under 10%",
          lambda: named["bridge (writer)"][48] >= 0.6 and named["bridge (detector)"][48] < 0.1)
    claim("the detector names the bridge more often at some alpha up to 24 than at 48 (by 0.1 or more), and at 48 "
          "over 60% of its continuations mention San Francisco, cables, towers or ships",
          lambda: max(named["bridge (detector)"][a] for a in (8, 16, 24)) >= named["bridge (detector)"][48] + 0.1
          and around["bridge (detector)"][-1] > 0.6)

# %% [markdown]
# Left: the detector names the bridge early, by $\alpha$ = 16, and then less and less; the middle panel says what
# it writes instead: by $\alpha$ = 48 most of its continuations are about San Francisco, ships and cables. Pushed
# hard, the feature that marks bridge text moves the model to the bridge's *topic*, and the name is lost in it.
# The writer keeps rising and at $\alpha$ = 48 names the bridge in most continuations ("bridge ... Gate ...
# bridge"). Right: the writer, the detector and the praise feature all end as word salad, which the plain model
# finds far less likely than its own text (its loss up by more than 2 at $\alpha$ = 48). What adding a feature does
# follows its *output* side: the writer's decoder row raises the name's logits directly (it is near the top of that
# ranking, printed above the writer's dashboard), the detector's does not (it is far down), whatever text each fires on.
# In Claude, Templeton et al.'s Golden Gate feature did both jobs; in this small model the card's feature reads the
# bridge's topic but does not write its name.

# %% [markdown]
# ## Summary
#
# * A dashboard looks at a feature from both sides: where it fires (density, histogram, top and interval
#   examples) and what it writes (logit effects); a label is worth what it predicts on text it was not chosen on.
# * The same feature comes back in an SAE trained with another seed (its nearest neighbour in `sae-b`).
# * Steering tests a meaning by intervention: adding a feature's direction moves the text toward it, up to a
#   point, then breaks it. What the text moves toward follows what the feature writes, not where it fires: the
#   lite model's bridge detector, pushed hard, writes the bridge's surroundings; the feature that raises the
#   name's logits names it.
