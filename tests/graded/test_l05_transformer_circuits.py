"""Graded tests for lesson 05 (transformer circuits).

Expected values come from a different route than the reference solution: explicit loops over tokens,
positions and heads on tiny random HookedTransformers, a hand-written LayerNorm, brute force over every
(A, B, C) triple of a small vocabulary, and hand-built weights in which only one kind of composition is
possible. The lite checkpoints are used where the lesson's claim needs a trained model.
"""

import itertools

import pytest
import torch
from transformer_lens import FactoredMatrix, HookedTransformer, HookedTransformerConfig

from mi_course.grading.asserts import assert_close, assert_finite, assert_shape, call_unmutated, expect_value_error

LESSON = "l05_transformer_circuits"


# ---------------------------------------------------------------- tiny models


def make_model(n_layers=1, *, d_vocab=11, d_model=12, n_heads=3, d_head=4, attn_only=True, norm=None,
               pos="standard", seed=0, scale=0.4):
    """A tiny HookedTransformer whose every parameter (biases and LayerNorm gains included) is random."""
    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=d_model, n_ctx=16, d_head=d_head, n_heads=n_heads, d_vocab=d_vocab,
        attn_only=attn_only, d_mlp=None if attn_only else 2 * d_model, act_fn="gelu", normalization_type=norm,
        positional_embedding_type=pos, rotary_dim=d_head if pos == "rotary" else None, device="cpu")
    model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".w"):  # LayerNorm / RMSNorm gains: positive, not all 1
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


RANGES = "layer in 0 .. n_layers - 1 and head in 0 .. n_heads - 1: check the range first, negative indices must " \
         "not wrap around"


def run(model, batch=2, pos=7, seed=0):
    tokens = torch.randint(0, model.cfg.d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return tokens, logits, cache


def hand_norm(model, x, scale=None):
    """The final norm of a residual vector, written out (scale: recomputed unless given)."""
    kind = model.cfg.normalization_type
    if kind is None:
        return x
    if kind in ("LN", "LNPre"):
        x = x - x.mean()
    if scale is None:
        scale = (x.pow(2).mean() + model.cfg.eps).sqrt()
    x = x / scale
    if kind in ("LN", "RMS"):
        x = x * model.ln_final.w
    if kind == "LN":
        x = x + model.ln_final.b
    return x


# ---------------------------------------------------------------- bigram_logits


def loop_bigrams(model, rows):
    with torch.no_grad():
        return torch.stack([hand_norm(model, model.W_E[t]) @ model.W_U + model.b_U for t in rows])


@pytest.mark.exercise("bigram_logits", points=1)
def test_bigram_logits_without_layernorm(impl):
    model = make_model(d_vocab=9, d_model=6)
    out = assert_shape(call_unmutated(impl.bigram_logits, model), (9, 9), "bigram_logits(model) ([d_vocab, d_vocab])")
    out = assert_finite(out.detach(), "bigram_logits(model)")
    expected = loop_bigrams(model, range(9))
    with torch.no_grad():
        if torch.allclose(out, expected - model.b_U, atol=1e-4):
            pytest.fail("The table misses b_U: the direct path's logits are W_E @ W_U + b_U.")
        if torch.allclose(out, expected.T, atol=1e-4):
            pytest.fail("The table is transposed: row t should be the logits *after* token t (W_E[t] @ W_U).")
    assert_close(out, expected, "bigram_logits(model)", atol=1e-4,
                 hint="Row t should be W_E[t] @ W_U + b_U.")


@pytest.mark.exercise("bigram_logits", points=1)
def test_bigram_logits_through_the_final_layernorm(impl):
    for norm in ("LN", "LNPre", "RMS"):
        model = make_model(d_vocab=9, d_model=6, norm=norm, seed=1)
        out = assert_shape(impl.bigram_logits(model), (9, 9), f"bigram_logits of a model with {norm}")
        out = out.detach()
        with torch.no_grad():
            plain = model.W_E @ model.W_U + model.b_U
        if torch.allclose(out, plain, atol=1e-4):
            pytest.fail(f"This model has a final LayerNorm ({norm}): pass W_E through model.ln_final before W_U.")
        assert_close(out, loop_bigrams(model, range(9)), f"bigram_logits of a model with {norm}", atol=1e-4,
                     hint="Each row is ln_final(W_E[t]) @ W_U + b_U, normalised with that row's own statistics "
                          "(model.ln_final wants a [batch, pos, d_model] input: add and remove a batch axis).")


@pytest.mark.exercise("bigram_logits", points=1)
def test_bigram_logits_rows_and_learned_bigrams(impl, lite1):
    model = make_model(d_vocab=9, d_model=6, norm="LN", seed=2)
    rows = torch.tensor([4, 0, 4, 7])
    out = assert_shape(call_unmutated(impl.bigram_logits, model, rows), (4, 9),
                       "bigram_logits(model, tokens) ([len(tokens), d_vocab])")
    assert_close(out.detach(), loop_bigrams(model, rows.tolist()), "bigram_logits(model, tokens)", atol=1e-4,
                 hint="Keep only the rows of the given tokens, in their order (repeats included).")
    tok = lite1.tokenizer
    for word, follower in [("Golden", "Gate"), ("Assistant", ":"), ("Mr", "and")]:
        t = tok.convert_tokens_to_ids(word)
        row = impl.bigram_logits(lite1, torch.tensor([t]))
        best = tok.convert_ids_to_tokens(int(row[0].argmax()))
        assert best == follower, (f"the lite attn-only-1l direct path should predict {follower!r} after {word!r} "
                                  f"(a bigram of its corpus) but your table's top entry is {best!r}")


# ---------------------------------------------------------------- decompose_logits


def expected_labels(model):
    cfg = model.cfg
    labels = ["embed"] + (["pos_embed"] if cfg.positional_embedding_type == "standard" else [])
    for l in range(cfg.n_layers):
        labels += [f"L{l}H{h}" for h in range(cfg.n_heads)] + [f"L{l} b_O"]
        labels += [] if cfg.attn_only else [f"L{l} MLP"]
    return labels + ["b_U"]


def loop_head_logits(model, cache, layer, head):
    """What one head adds to the logits: sum over keys of pattern * value, through W_O, the norm and W_U."""
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]  # [batch, q, k]
    v = cache[f"blocks.{layer}.attn.hook_v"][:, :, head]  # [batch, k, d_head]
    batch, n = pattern.shape[:2]
    out = torch.zeros(batch, n, model.cfg.d_vocab)
    with torch.no_grad():
        for b in range(batch):
            for q in range(n):
                moved = sum(pattern[b, q, k] * v[b, k] for k in range(n)) @ model.W_O[layer, head]
                normed = moved
                if model.cfg.normalization_type is not None:
                    scale = cache["ln_final.hook_scale"][b, q]
                    normed = moved - moved.mean() if model.cfg.normalization_type in ("LN", "LNPre") else moved
                    normed = normed / scale
                    if model.cfg.normalization_type in ("LN", "RMS"):
                        normed = normed * model.ln_final.w
                out[b, q] = normed @ model.W_U
    return out


def call_decompose(impl, model, cache, what):
    result = impl.decompose_logits(model, cache)
    assert isinstance(result, tuple) and len(result) == 2, f"{what} should return (components, labels)"
    components, labels = result
    assert isinstance(labels, list) and all(isinstance(l, str) for l in labels), \
        f"{what}: labels should be a list of str"
    batch, pos = cache["hook_embed"].shape[:2]
    components = assert_shape(components, (None, batch, pos, model.cfg.d_vocab),
                              f"{what}: components ([n_components, batch, pos, d_vocab])")
    assert components.shape[0] == len(labels), f"{what}: {components.shape[0]} components but {len(labels)} labels"
    return assert_finite(components.detach(), f"{what}: components"), labels


@pytest.mark.exercise("decompose_logits", points=1)
def test_decompose_logits_labels(impl):
    cases = {"attn-only, shortformer, 2 layers": make_model(2, pos="shortformer"),
             "attn-only, standard positions": make_model(1),
             "LayerNorm and MLPs": make_model(2, attn_only=False, norm="LN"),
             "rotary positions": make_model(1, pos="rotary")}
    for what, model in cases.items():
        _, _, cache = run(model)
        try:
            _, labels = call_decompose(impl, model, cache, f"decompose_logits ({what})")
        except KeyError as err:
            if model.cfg.positional_embedding_type == "rotary" and "pos_embed" in str(err):
                pytest.fail("With rotary positions the positions act inside attention (queries and keys are "
                            "rotated): there is no hook_pos_embed. Add 'pos_embed' only when "
                            "positional_embedding_type == 'standard'.")
            raise
        want = expected_labels(model)
        if model.cfg.positional_embedding_type == "shortformer" and "pos_embed" in labels:
            pytest.fail("With shortformer positions the positional embedding is added to queries and keys only: it "
                        "is not in the residual stream, so it is not a component.")
        assert labels == want, f"decompose_logits ({what}): the labels should be {want}, got {labels}"


@pytest.mark.exercise("decompose_logits", points=1)
def test_decompose_logits_sum_to_the_logits_attn_only(impl):
    for pos in ("shortformer", "standard"):
        model = make_model(2, pos=pos, seed=3)
        _, logits, cache = run(model, seed=1)
        components, labels = call_decompose(impl, model, cache, f"decompose_logits ({pos} positions)")
        total = components.sum(0)
        if pos == "standard" and "pos_embed" not in labels:
            pytest.fail("With standard positions, hook_pos_embed is added to the residual stream: it needs its "
                        "own component, 'pos_embed'.")
        if pos == "shortformer" and torch.allclose(total - (cache["hook_pos_embed"] @ model.W_U).detach(), logits,
                                                   atol=1e-4):
            pytest.fail("With shortformer positions the positional embedding never enters the residual stream; "
                        "leave it out.")
        with torch.no_grad():
            if torch.allclose(total + model.b_U, logits, atol=1e-4):
                pytest.fail("The components miss b_U: add it as the last component, 'b_U'.")
            if torch.allclose(total + model.b_O.sum(0) @ model.W_U, logits, atol=1e-4):
                pytest.fail("The components miss the attention output biases b_O: one component per layer.")
        assert_close(total, logits, f"the sum of the components ({pos} positions)", atol=1e-4,
                     hint="Every term written into the residual stream needs a component.")


@pytest.mark.exercise("decompose_logits", points=1)
def test_decompose_logits_head_components(impl):
    for what, model in {"attn-only": make_model(2, pos="shortformer", seed=4),
                        "LayerNorm": make_model(2, attn_only=False, norm="LN", seed=5)}.items():
        _, _, cache = run(model, seed=2)
        components, labels = call_decompose(impl, model, cache, f"decompose_logits ({what})")
        for layer, head in [(0, 1), (1, 2)]:
            label = f"L{layer}H{head}"
            assert label in labels, f"no component labelled {label!r}"
            got = components[labels.index(label)]
            expected = loop_head_logits(model, cache, layer, head)
            if model.cfg.normalization_type and torch.allclose(got, expected + (model.ln_final.b @ model.W_U).detach(),
                                                               atol=1e-4):
                pytest.fail("The LayerNorm bias b is added to every component: it belongs to 'b_U' only, once.")
            assert_close(got, expected, f"component {label} ({what})", atol=1e-4,
                         hint="A head's output is z[:, :, h] @ W_O[l, h] (z from blocks.{l}.attn.hook_z); with a final "
                              "LayerNorm centre it, divide by ln_final.hook_scale and multiply by ln_final.w "
                              "before W_U.")


@pytest.mark.exercise("decompose_logits", points=1)
def test_decompose_logits_with_layernorm_and_mlps(impl):
    for norm in ("LN", "LNPre", "RMS"):
        model = make_model(2, attn_only=False, norm=norm, seed=6)
        _, logits, cache = run(model, seed=3)
        components, labels = call_decompose(impl, model, cache, f"decompose_logits ({norm} and MLPs)")
        total = components.sum(0)
        with torch.no_grad():  # the same sum without dividing by the scale
            resid = cache["blocks.1.hook_resid_post"]
            unscaled = resid if norm == "RMS" else resid - resid.mean(-1, keepdim=True)
            if norm in ("LN", "RMS"):
                unscaled = unscaled * model.ln_final.w
            if norm == "LN":
                unscaled = unscaled + model.ln_final.b
            unscaled = unscaled @ model.W_U + model.b_U
        if torch.allclose(total, unscaled, atol=1e-3):
            pytest.fail("Divide every component by the final LayerNorm's scale, cache['ln_final.hook_scale'].")
        assert "L1 MLP" in labels, "models with MLPs need one component per MLP layer, 'L{l} MLP'"
        mlp = components[labels.index("L1 MLP")]
        out = cache["blocks.1.hook_mlp_out"]
        scale = cache["ln_final.hook_scale"]
        with torch.no_grad():
            expected = torch.stack([torch.stack([hand_norm(model, out[b, p], scale[b, p])
                                                 for p in range(out.shape[1])]) for b in range(out.shape[0])])
            if norm == "LN":
                expected = expected - model.ln_final.b
            expected = expected @ model.W_U
            if norm == "RMS":
                centred = (out - out.mean(-1, keepdim=True)) / scale * model.ln_final.w @ model.W_U
                if torch.allclose(mlp, centred, atol=1e-4):
                    pytest.fail("RMSNorm does not subtract the mean (only LN and LNPre centre): with "
                                "normalization_type 'RMS', norm(x) = x / scale * ln_final.w.")
        assert_close(mlp, expected, f"component 'L1 MLP' ({norm})", atol=1e-4,
                     hint="Centre each component (LayerNorm subtracts the mean of the sum, i.e. of every term), "
                          "divide by the cached scale, multiply by ln_final.w if there is one.")
        assert_close(total, logits, f"the sum of the components ({norm} and MLPs)", atol=1e-4,
                     hint="With a final LayerNorm, its bias b goes once into 'b_U' (as b @ W_U), not into every term.")


@pytest.mark.exercise("decompose_logits", points=1)
def test_decompose_logits_on_the_lite_model(impl, lite2):
    tokens = lite2.to_tokens(["When Mary and John went to the store , John gave a drink to Mary .",
                              "The Corvin Tower is in Valmont . The Corvin Tower is tall ."])
    with torch.no_grad():
        logits, cache = lite2.run_with_cache(tokens)
    components, labels = call_decompose(impl, lite2, cache, "decompose_logits (lite attn-only-2l)")
    assert_close(components.sum(0), logits, "the sum of the components (lite attn-only-2l)", atol=1e-4)


# ---------------------------------------------------------------- ov_circuit and qk_circuit


def check_factored(m, shape, what):
    assert isinstance(m, FactoredMatrix), (f"{what} should be a transformer_lens FactoredMatrix (e.g. "
                                           f"FactoredMatrix(left, right)), got {type(m).__name__}")
    assert tuple(m.shape) == shape, f"{what} should have shape {shape}, got {tuple(m.shape)}"
    return m.AB.detach()


@pytest.mark.exercise("ov_circuit", points=1)
def test_ov_circuit_entries(impl):
    model = make_model(2, d_vocab=8, seed=7)
    V = model.cfg.d_vocab
    for layer, head in [(0, 0), (1, 2)]:
        out = check_factored(call_unmutated(impl.ov_circuit, model, layer, head), (V, V),
                             f"ov_circuit(model, {layer}, {head})")
        with torch.no_grad():
            expected = torch.tensor([[float(model.W_E[a] @ model.W_V[layer, head] @ model.W_O[layer, head]
                                            @ model.W_U[:, c])
                                      for c in range(V)] for a in range(V)])
            if torch.allclose(out, expected.T, atol=1e-4):
                pytest.fail("The OV circuit is transposed: rows are the attended-to token A, columns the output C.")
            wrong_unembed = model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_E.T
            if torch.allclose(out, wrong_unembed, atol=1e-4):
                pytest.fail("The OV circuit ends with the unembedding W_U, not W_E.T.")
        assert_close(out, expected, f"ov_circuit(model, {layer}, {head})", atol=1e-4,
                     hint="W_E @ W_V[layer, head] @ W_O[layer, head] @ W_U, as FactoredMatrix(left, right).")


@pytest.mark.exercise("ov_circuit", points=1)
def test_ov_circuit_checks_its_arguments(impl):
    model = make_model(2, d_vocab=8)
    for layer, head in [(2, 0), (-1, 0), (0, 3), (0, -1)]:
        expect_value_error(impl.ov_circuit, model, layer, head, what=f"ov_circuit(2-layer model, {layer}, {head})",
                           expected=RANGES)


@pytest.mark.exercise("qk_circuit", points=1)
def test_qk_circuit_entries(impl):
    model = make_model(2, d_vocab=8, seed=8)
    V = model.cfg.d_vocab
    for layer, head in [(0, 2), (1, 1)]:
        out = check_factored(call_unmutated(impl.qk_circuit, model, layer, head), (V, V),
                             f"qk_circuit(model, {layer}, {head})")
        with torch.no_grad():
            expected = torch.tensor([[float((model.W_E[b] @ model.W_Q[layer, head])
                                            @ (model.W_E[a] @ model.W_K[layer, head]))
                                      for a in range(V)] for b in range(V)])
        if torch.allclose(out, expected.T, atol=1e-4):
            pytest.fail("The QK circuit is transposed: rows are queries (W_E @ W_Q), columns keys (W_E @ W_K).")
        assert_close(out, expected, f"qk_circuit(model, {layer}, {head})", atol=1e-4,
                     hint="W_E @ W_Q[layer, head] @ W_K[layer, head].T @ W_E.T: "
                          "FactoredMatrix(W_E @ W_Q, (W_E @ W_K).T).")


@pytest.mark.exercise("qk_circuit", points=1)
def test_qk_circuit_checks_its_arguments(impl):
    model = make_model(2, d_vocab=8)
    for layer, head in [(2, 0), (-1, 0), (0, 3), (1, -1)]:
        expect_value_error(impl.qk_circuit, model, layer, head, what=f"qk_circuit(2-layer model, {layer}, {head})",
                           expected=RANGES)


# ---------------------------------------------------------------- top_skip_trigrams


def brute_force_trigrams(model, layer, head, ids, centre=True, swap=False, swap_after_centre=False):
    """Every counting triple (score, A, B, C), best first, by explicit loops over the vocabulary."""
    with torch.no_grad():
        E, U = model.W_E, model.W_U
        qk = torch.tensor([[float(E[b] @ model.W_Q[layer, head] @ model.W_K[layer, head].T @ E[a]) for a in ids]
                           for b in ids])
        ov = torch.tensor([[float(E[a] @ model.W_V[layer, head] @ model.W_O[layer, head] @ U[:, c]) for c in ids]
                           for a in ids])
    if swap:
        qk = qk.T
    if centre:
        qk = qk - qk.mean(1, keepdim=True)
        ov = ov - ov.mean(1, keepdim=True)
    if swap_after_centre:
        qk = qk.T
    out = []
    for ia, ib, ic in itertools.product(range(len(ids)), repeat=3):
        if qk[ib, ia] > 0 and ov[ia, ic] > 0:
            out.append((float(qk[ib, ia] * ov[ia, ic]), ids[ia], ids[ib], ids[ic]))
    return sorted(out, reverse=True)


def check_trigrams(result, k, what):
    assert isinstance(result, tuple) and len(result) == 2, f"{what} should return (triples, scores)"
    triples, scores = result
    triples = assert_shape(triples, (None, 3), f"{what}: triples ([k, 3])")
    scores = assert_shape(scores, (triples.shape[0],), f"{what}: scores ([k])")
    assert triples.shape[0] <= k, f"{what}: asked for {k} triples, got {triples.shape[0]}"
    assert not triples.is_floating_point(), f"{what}: triples should be token ids (a long tensor)"
    return triples.detach().long(), scores.detach().float()


@pytest.mark.exercise("top_skip_trigrams", points=2)
def test_top_skip_trigrams_brute_force(impl):
    k = 12
    for seed, (layer, head) in [(9, (0, 1)), (10, (0, 2)), (11, (1, 0))]:
        model = make_model(2, d_vocab=9, d_model=8, seed=seed)
        what = f"top_skip_trigrams(model, {layer}, {head}, {k})"
        triples, scores = check_trigrams(call_unmutated(impl.top_skip_trigrams, model, layer, head, k), k, what)
        best = brute_force_trigrams(model, layer, head, list(range(9)))[:k]
        got = [(round(float(s), 4), *map(int, t)) for s, t in zip(scores, triples)]
        for variant, message in [(dict(swap=True), "qk[B, A] is the query B's score on the key A: rows of the QK "
                                  "circuit are queries, so index it [B, A], not [A, B]."),
                                 (dict(swap_after_centre=True), "qk[B, A] is the query B's score on the key A: "
                                  "rows of the QK circuit are queries, so index it [B, A], not [A, B]."),
                                 (dict(centre=False), "Centre the circuits first: subtract from each row of QK "
                                  "(and of OV) its mean over the columns.")]:
            alt = brute_force_trigrams(model, layer, head, list(range(9)), **variant)[:k]
            if len(alt) == len(got) and all(abs(a[0] - g[0]) < 1e-3 and a[1:] == g[1:] for a, g in zip(alt, got)):
                pytest.fail(message)
        assert len(got) == len(best), f"{what}: expected {len(best)} triples, got {len(got)}"
        assert torch.allclose(scores, torch.tensor([b[0] for b in best]), atol=1e-4), (
            f"{what}: the scores should be {[round(b[0], 3) for b in best]}, highest first, got "
            f"{[round(float(s), 3) for s in scores]}. Only triples with qk > 0 and ov > 0 count (two negatives "
            f"do not make a skip-trigram).")
        assert [tuple(b[1:]) for b in best] == [tuple(map(int, t)) for t in triples], (
            f"{what}: the scores are right but the triples are not (A, B, C) = (key token, query token, output "
            f"token); expected {[b[1:] for b in best]}")


@pytest.mark.exercise("top_skip_trigrams", points=1)
def test_top_skip_trigrams_tokens_k_and_the_lite_model(impl, lite1):
    model = make_model(1, d_vocab=9, d_model=8, seed=12)
    ids = [1, 3, 4, 6, 8]
    what = "top_skip_trigrams(model, 0, 2, 500, tokens)"
    triples, scores = check_trigrams(impl.top_skip_trigrams(model, 0, 2, 500, torch.tensor(ids)), 500, what)
    best = brute_force_trigrams(model, 0, 2, ids)
    assert len(best) < 500
    assert triples.shape[0] == len(best), (f"{what}: only {len(best)} triples count, return just those "
                                           f"(got {triples.shape[0]})")
    assert set(triples.flatten().tolist()) <= set(ids), f"{what}: with tokens given, A, B and C come from them only"
    assert torch.allclose(scores, torch.tensor([b[0] for b in best]), atol=1e-4), (
        f"{what}: wrong scores; with tokens given, take the means over those tokens only")
    for layer, head, k in [(0, 0, 0), (0, 5, 3), (1, 0, 3)]:
        expect_value_error(impl.top_skip_trigrams, model, layer, head, k,
                           what=f"top_skip_trigrams(1-layer model, {layer}, {head}, k={k})",
                           expected=f"{RANGES}; k at least 1")
    # The lite model: the best triple is the best A's best B times its best C. 400 tokens (no specials), so
    # that a learner's brute force over all triples (400^3) still fits in memory.
    keep = torch.arange(4, 404)
    triples, scores = check_trigrams(impl.top_skip_trigrams(lite1, 0, 0, 5, keep), 5,
                                     "top_skip_trigrams(lite, 0, 0, 5)")
    with torch.no_grad():
        E, U = lite1.W_E[keep], lite1.W_U[:, keep]
        qk = (E @ lite1.W_Q[0, 0]) @ (E @ lite1.W_K[0, 0]).T
        ov = E @ lite1.W_V[0, 0] @ lite1.W_O[0, 0] @ U
        qk = (qk - qk.mean(1, keepdim=True)).clamp(min=0)
        ov = (ov - ov.mean(1, keepdim=True)).clamp(min=0)
        per_a = qk.max(0).values * ov.max(1).values
    assert triples.shape[0] == 5 and abs(float(scores[0]) - float(per_a.max())) < 1e-3 * float(per_a.max()), (
        f"on the lite attn-only-1l model the best score should be {float(per_a.max()):.2f}, got "
        f"{float(scores[0]) if len(scores) else None}")
    assert int(triples[0, 0]) == int(keep[per_a.argmax()]), "on the lite model the best triple has the wrong A"


# ---------------------------------------------------------------- composition_scores


def hand_built_composition_model(seed=13):
    """d_model 8. Layer-0 head h reads dims 6-7 and writes dims 2h, 2h+1. Layer-1 head 0 reads its query
    from 0-1 (head 0's output), its key from 2-3 (head 1's), its value from 4-5 (head 2's); layer-1 head 1
    reads only dims 6-7 (what layer 0 reads, never writes); layer-1 head 2 reads everything."""
    model = make_model(2, d_vocab=5, d_model=8, n_heads=3, d_head=2, seed=seed)
    g = torch.Generator().manual_seed(seed)

    def block(rows, cols, shape):
        """A zero matrix of ``shape`` with random entries in the rows and columns given (slices)."""
        m = torch.zeros(shape)
        m[rows, cols] = torch.randn(m[rows, cols].shape, generator=g)
        return m

    everything = slice(None)
    a0, a1 = model.blocks[0].attn, model.blocks[1].attn  # model.W_Q etc. are stacked copies: set the blocks'
    with torch.no_grad():
        for h in range(3):
            a0.W_V[h] = block(slice(6, 8), everything, (8, 2))
            a0.W_O[h] = block(everything, slice(2 * h, 2 * h + 2), (2, 8))
        a1.W_Q[0] = block(slice(0, 2), everything, (8, 2))
        a1.W_K[0] = block(slice(2, 4), everything, (8, 2))
        a1.W_V[0] = block(slice(4, 6), everything, (8, 2))
        a1.W_O[0] = block(everything, slice(6, 8), (2, 8))
        for W in (a1.W_Q, a1.W_K, a1.W_V):
            W[1] = block(slice(6, 8), everything, (8, 2))
        a1.W_O[1] = block(everything, slice(6, 8), (2, 8))
    return model


def frobenius_ratio(M, A, B):
    return float(M.pow(2).sum().sqrt() / (A.pow(2).sum().sqrt() * B.pow(2).sum().sqrt()))


def loop_composition(model, kind):
    out = torch.zeros(model.cfg.n_heads, model.cfg.n_heads)
    with torch.no_grad():
        for h0, h1 in itertools.product(range(model.cfg.n_heads), repeat=2):
            ov0 = model.W_V[0, h0] @ model.W_O[0, h0]
            qk1 = model.W_Q[1, h1] @ model.W_K[1, h1].T
            ov1 = model.W_V[1, h1] @ model.W_O[1, h1]
            M, W1 = {"Q": (ov0 @ qk1, qk1), "K": (qk1 @ ov0.T, qk1), "V": (ov0 @ ov1, ov1)}[kind]
            out[h0, h1] = frobenius_ratio(M, ov0, W1)
    return out


@pytest.mark.exercise("composition_scores", points=2)
def test_composition_scores_tell_q_k_and_v_apart(impl):
    model = hand_built_composition_model()
    reads = {"Q": 0, "K": 1, "V": 2}  # the layer-0 head whose output layer-1 head 0 reads on that side
    for kind, source in reads.items():
        out = assert_shape(call_unmutated(impl.composition_scores, model, kind), (3, 3),
                           f"composition_scores(model, {kind!r}) ([n_heads layer 0, n_heads layer 1])")
        out = assert_finite(out.detach().float(), f"composition_scores(model, {kind!r})")
        assert (out <= 1 + 1e-5).all() and (out >= 0).all(), (
            f"composition_scores(model, {kind!r}) should lie in [0, 1]: divide ||M|| by the product of the two "
            f"heads' Frobenius norms")
        if out[:, 1].abs().max() > 1e-4:
            pytest.fail(f"{kind}-composition: layer-1 head 1 only reads the dimensions that layer-0 heads *read* "
                        f"(never write), so its scores must be 0. A product is probably transposed (row-vector "
                        f"convention: a head writes x @ W_V @ W_O).")
        for h0 in range(3):
            if h0 == source:
                assert out[h0, 0] > 0.05, (f"{kind}-composition[{h0}, 0] should be clearly positive: layer-1 head 0 "
                                           f"reads layer-0 head {h0}'s output on its {kind} side")
            else:
                assert out[h0, 0] < 1e-4, (
                    f"{kind}-composition[{h0}, 0] should be 0: layer-1 head 0 reads layer-0 head {h0}'s output only "
                    f"on its {'QKV'[h0]} side. Check which side of W_QK the product uses (Q: W_OV0 @ W_QK1, K: "
                    f"W_QK1 @ W_OV0.T) or the order of the two OV matrices (V: W_OV0 @ W_OV1).")
        assert_close(out, loop_composition(model, kind), f"composition_scores(model, {kind!r})", atol=1e-4)


@pytest.mark.exercise("composition_scores", points=1)
def test_composition_scores_values_and_arguments(impl):
    model = make_model(2, d_model=10, n_heads=3, d_head=3, seed=14)
    for kind in ("Q", "K", "V", "k"):
        try:
            out = impl.composition_scores(model, kind)
        except ValueError as err:
            pytest.fail(f"composition_scores(model, {kind!r}) raised ValueError ({err}): lower-case kinds are allowed "
                        f"too (kind.upper())")
        assert_close(out.detach().float(), loop_composition(model, kind.upper()),
                     f"composition_scores(random model, {kind!r})", atol=1e-4,
                     hint="||M||_F / (||W_OV0||_F ||W1||_F) with W1 = W_QK1 for Q and K, W_OV1 for V; "
                          "lower-case kinds are allowed.")
    expect_value_error(impl.composition_scores, model, "X", what="composition_scores(model, 'X')",
                       expected="kind must be 'Q', 'K' or 'V'")
    expect_value_error(impl.composition_scores, make_model(1), "K", what="composition_scores(1-layer model, 'K')",
                       expected="composition needs a model with two layers: check n_layers first")


# ---------------------------------------------------------------- virtual_head_ov


@pytest.mark.exercise("virtual_head_ov", points=1)
def test_virtual_head_ov_entries(impl):
    model = make_model(2, d_vocab=7, seed=15)
    V = model.cfg.d_vocab
    for h0, h1 in [(2, 0), (0, 1)]:
        out = check_factored(call_unmutated(impl.virtual_head_ov, model, h0, h1), (V, V),
                             f"virtual_head_ov(model, {h0}, {h1})")
        with torch.no_grad():
            def path(first, second):
                return torch.tensor([[float(model.W_E[a] @ model.W_V[first[0], first[1]] @ model.W_O[first[0], first[1]]
                                            @ model.W_V[second[0], second[1]] @ model.W_O[second[0], second[1]]
                                            @ model.W_U[:, c]) for c in range(V)] for a in range(V)])
            expected = path((0, h0), (1, h1))
            if torch.allclose(out, path((1, h1), (0, h0)), atol=1e-4):
                pytest.fail("The two heads are in the wrong order: the token goes through layer 0's head first "
                            "(W_E @ W_OV[0, head0] @ W_OV[1, head1] @ W_U in the row-vector convention).")
            if torch.allclose(out, path((0, h1), (1, h0)), atol=1e-4):
                pytest.fail("head0 indexes layer 0 and head1 layer 1: the indices are swapped.")
        assert_close(out, expected, f"virtual_head_ov(model, {h0}, {h1})", atol=1e-4)


@pytest.mark.exercise("virtual_head_ov", points=1)
def test_virtual_head_ov_checks_its_arguments(impl):
    model = make_model(2, d_vocab=7)
    for h0, h1 in [(3, 0), (0, 3), (-1, 0)]:
        expect_value_error(impl.virtual_head_ov, model, h0, h1, what=f"virtual_head_ov(model, {h0}, {h1})",
                           expected="heads in 0 .. n_heads - 1: check the range first, negative indices must not "
                                    "wrap around")
    expect_value_error(impl.virtual_head_ov, make_model(1), 0, 0, what="virtual_head_ov(1-layer model, 0, 0)",
                       expected="a virtual head needs a model with two layers: check n_layers first")
