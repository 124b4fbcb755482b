"""The canonical circuits of mi_course.language.circuits (lesson 05) on tiny random models, the lesson's
figure and table helpers, and the claims the lesson makes about the shipped lite attention-only models."""

import itertools
import random

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure
from transformer_lens import FactoredMatrix, HookedTransformer, HookedTransformerConfig

import mi_course
from mi_course.language import circuit_plots, circuits
from mi_course.organisms.corpus import generate_corpus

matplotlib.use("Agg")


def tiny(n_layers=2, *, norm=None, pos="standard", attn_only=True, d_vocab=11, seed=0):
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=16, n_ctx=12, d_head=4, n_heads=3, d_vocab=d_vocab,
                                  attn_only=attn_only, d_mlp=None if attn_only else 32, act_fn="gelu",
                                  normalization_type=norm, positional_embedding_type=pos,
                                  rotary_dim=4 if pos == "rotary" else None, device="cpu")
    model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(0.5 + torch.rand(p.shape, generator=g) if name.endswith(".w")
                    else 0.4 * torch.randn(p.shape, generator=g))
    return model.eval()


# ------------------------------------------------------------------------------------ canonical functions


@pytest.mark.parametrize("norm,pos,attn_only", [
    (None, "shortformer", True), (None, "standard", True), ("LN", "standard", False),
    ("LNPre", "standard", False), ("RMS", "standard", False), ("RMSPre", "rotary", False), ("LN", "shortformer", True),
])
def test_decompose_logits_sums_to_the_logits(norm, pos, attn_only):
    model = tiny(norm=norm, pos=pos, attn_only=attn_only)
    tokens = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    components, labels = circuits.decompose_logits(model, cache)
    assert components.shape == (len(labels), 3, 9, 11)
    assert ("pos_embed" in labels) == (pos == "standard")
    assert ("L1 MLP" in labels) == (not attn_only)
    assert labels[0] == "embed" and labels[-1] == "b_U" and len(set(labels)) == len(labels)
    assert torch.allclose(components.sum(0), logits, atol=1e-5)


def test_bigram_logits_rows_and_layernorm():
    model = tiny(norm="LN")
    full = circuits.bigram_logits(model)
    with torch.no_grad():
        assert torch.allclose(full, model.ln_final(model.W_E[None])[0] @ model.W_U + model.b_U, atol=1e-6)
    assert torch.allclose(circuits.bigram_logits(model, torch.tensor([3, 1, 3])), full[[3, 1, 3]])
    with pytest.raises(ValueError):
        circuits.bigram_logits(model, torch.tensor([11]))


def brute_force(model, layer, head, ids):
    with torch.no_grad():
        E, U = model.W_E[ids], model.W_U[:, ids]
        qk = (E @ model.W_Q[layer, head]) @ (E @ model.W_K[layer, head]).T
        ov = E @ model.W_V[layer, head] @ model.W_O[layer, head] @ U
        qk, ov = qk - qk.mean(1, keepdim=True), ov - ov.mean(1, keepdim=True)
    out = [(float(qk[b, a] * ov[a, c]), ids[a], ids[b], ids[c])
           for a, b, c in itertools.product(range(len(ids)), repeat=3) if qk[b, a] > 0 and ov[a, c] > 0]
    return sorted(out, reverse=True)


@pytest.mark.parametrize("chunk", [1, 3, 2048])
def test_top_skip_trigrams_matches_brute_force(chunk):
    model = tiny(d_vocab=10, seed=2)
    for ids in (list(range(10)), [0, 2, 5, 7, 9]):
        triples, scores = circuits.top_skip_trigrams(model, 1, 2, 15, torch.tensor(ids), chunk=chunk)
        best = brute_force(model, 1, 2, ids)[:15]
        assert torch.allclose(scores, torch.tensor([b[0] for b in best]), atol=1e-5)
        assert [tuple(t) for t in triples.tolist()] == [b[1:] for b in best]


def test_composition_scores_match_explicit_products():
    model = tiny(seed=3)
    for kind in "QKV":
        got = circuits.composition_scores(model, kind.lower())
        with torch.no_grad():
            for h0, h1 in itertools.product(range(3), repeat=2):
                ov0 = model.W_V[0, h0] @ model.W_O[0, h0]
                qk1 = model.W_Q[1, h1] @ model.W_K[1, h1].T
                ov1 = model.W_V[1, h1] @ model.W_O[1, h1]
                M, W1 = {"Q": (ov0 @ qk1, qk1), "K": (qk1 @ ov0.T, qk1), "V": (ov0 @ ov1, ov1)}[kind]
                assert abs(float(got[h0, h1] - M.norm() / (ov0.norm() * W1.norm()))) < 1e-5
    with pytest.raises(ValueError, match="kind"):
        circuits.composition_scores(model, "O")
    with pytest.raises(ValueError, match="two layers"):
        circuits.composition_scores(tiny(1), "Q")


def test_composition_baseline_is_about_one_over_sqrt_d_model():
    for d_model, d_head in [(64, 16), (128, 32)]:
        assert abs(circuits.composition_baseline(d_model, d_head, n_samples=50) * d_model ** 0.5 - 1) < 0.1


def test_circuits_and_rows():
    model = tiny(seed=4)
    ov, qk = circuits.ov_circuit(model, 1, 0), circuits.qk_circuit(model, 0, 2)
    virtual = circuits.virtual_head_ov(model, 2, 1)
    assert all(isinstance(m, FactoredMatrix) and tuple(m.shape) == (11, 11) for m in (ov, qk, virtual))
    with torch.no_grad():
        assert torch.allclose(virtual.AB, model.W_E @ model.OV[0, 2].AB @ model.OV[1, 1].AB @ model.W_U, atol=1e-5)
        assert torch.allclose(qk.AB, model.W_E @ model.QK[0, 2].AB @ model.W_E.T, atol=1e-5)
        assert torch.allclose(circuits.circuit_rows(ov, torch.tensor([4, 2])), ov.AB[[4, 2]], atol=1e-6)
    with pytest.raises(ValueError):
        circuits.ov_circuit(model, 0, -1)
    with pytest.raises(ValueError):
        circuits.virtual_head_ov(model, 0, 3)


def test_plot_and_table_helpers():
    model = tiny(seed=5)
    assert "W_E" in circuit_plots.matrix_sizes(model) and "full OV circuit" in circuit_plots.matrix_sizes(model)
    assert isinstance(circuit_plots.plot_logit_attribution(torch.randn(3, 4), list("abc"), list("wxyz")), Figure)
    assert isinstance(circuit_plots.plot_token_matrix(torch.randn(2, 3), ["a", "b"], list("xyz")), Figure)
    assert isinstance(circuit_plots.plot_composition({k: torch.rand(3, 3) for k in "QKV"}, 0.1), Figure)
    assert isinstance(circuit_plots.plot_path_sizes({"direct": 0.3, "0.0": 0.2}, torch.rand(3, 3)), Figure)
    with pytest.raises(ValueError):
        circuit_plots.plot_logit_attribution(torch.randn(3, 4), list("ab"), list("wxyz"))
    table = circuit_plots.skip_trigram_table(model, torch.tensor([[1, 2, 3]]), torch.tensor([5.0]), seen={(1, 2, 3)})
    assert table.count("\n") == 0 and table.endswith("*")
    matplotlib.pyplot.close("all")


# ------------------------------------------------------------------------------------ the lite models


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(2000, seed=1)


def test_lite_decomposition_is_exact(lite2):
    tokens = lite2.to_tokens(["When Mary and John went to the store, John gave a drink to Mary."])
    with torch.no_grad():
        logits, cache = lite2.run_with_cache(tokens)
    components, labels = circuits.decompose_logits(lite2, cache)
    assert "pos_embed" not in labels  # shortformer
    assert (components.sum(0) - logits).abs().max() < 1e-4


def test_lite_direct_path_holds_the_corpus_bigrams(lite1, corpus):
    """The 1-layer model's W_E W_U predicts the most frequent follower of common tokens far above chance."""
    counts = circuit_plots.corpus_bigrams(lite1, corpus)
    firsts, best = {}, {}
    for (a, c), n in counts.items():
        firsts[a] = firsts.get(a, 0) + n
        if n > best.get(a, (0, None))[0]:
            best[a] = (n, c)
    common = sorted(firsts, key=firsts.get, reverse=True)[:300]
    predicted = circuits.bigram_logits(lite1, torch.tensor(common)).argmax(-1).tolist()
    agree = sum(p == best[a][1] for a, p in zip(common, predicted)) / 300
    baseline = sum(best[a][1] == common[0] for a in common) / 300
    print(f"direct path top-1 = corpus top follower: {agree:.2f} (always the commonest token: {baseline:.2f})")
    assert agree >= 0.35 and agree >= 1.4 * baseline
    tok = lite1.tokenizer
    for word, follower in [("Golden", "Gate"), ("Assistant", ":")]:
        row = circuits.bigram_logits(lite1, torch.tensor([tok.convert_tokens_to_ids(word)]))
        assert tok.convert_ids_to_tokens(int(row.argmax())) == follower


def test_lite_skip_trigrams_are_corpus_patterns(lite1, corpus):
    """The heads' top skip-trigrams occur in the corpus (A within 30 tokens before B, C right after B) far
    more often than random triples of corpus tokens do."""
    seen = circuit_plots.corpus_skip_trigrams(lite1, corpus, window=30)
    vocab = torch.arange(4, lite1.cfg.d_vocab)
    found = total = 0
    for head in range(lite1.cfg.n_heads):
        triples, _ = circuits.top_skip_trigrams(lite1, 0, head, 50, vocab)
        found += sum(tuple(t) in seen for t in triples.tolist())
        total += len(triples)
    stream = [t for ids in lite1.tokenizer(corpus, add_special_tokens=False)["input_ids"] for t in ids]
    rng = random.Random(0)
    chance = sum((rng.choice(stream), rng.choice(stream), rng.choice(stream)) in seen for _ in range(20_000)) / 20_000
    print(f"top skip-trigrams seen in the corpus: {found}/{total} = {found / total:.3f}; random triples: {chance:.3f}")
    assert found / total >= 2.5 * chance


def test_lite_layer1_heads_copy(lite2):
    """The notebook's claim: layer-1 heads of the 2-layer model copy (OV top-1 is the token itself), layer-0 do not."""
    sample = torch.arange(4, lite2.cfg.d_vocab)
    frac = torch.tensor([[(circuits.circuit_rows(circuits.ov_circuit(lite2, l, h), sample).argmax(-1) == sample)
                          .float().mean().item() for h in range(lite2.cfg.n_heads)] for l in range(2)])
    print("OV copying fraction per head:", frac.numpy().round(2).tolist())
    assert frac[1].max() >= 0.3 and frac[0].max() <= 0.05


def test_lite_induction_head_k_composes_with_the_previous_token_heads(lite2):
    """Layer-1 induction heads read the previous-token heads' output through their keys (Olsson et al.).

    The card's induction head gets its strongest K-composition from a previous-token head, that score is
    well above its Q- and V-composition with the same head, above the random baseline, and above the
    K-composition from the layer-0 heads that are not previous-token heads."""
    card = mi_course.model_card("attn-only-2l")["measured"]
    _, ind = card["induction_head"]
    prev_scores = torch.tensor(card["prev_token_scores"][0])
    prev_heads = [h for h in range(len(prev_scores)) if prev_scores[h] >= 0.5 * prev_scores.max()]
    other_heads = [h for h in range(len(prev_scores)) if h not in prev_heads]
    scores = {kind: circuits.composition_scores(lite2, kind) for kind in "QKV"}
    baseline = circuits.composition_baseline(lite2.cfg.d_model, lite2.cfg.d_head)
    column = scores["K"][:, ind]
    best = int(column.argmax())
    print(f"induction head 1.{ind}; previous-token heads {prev_heads}; baseline {baseline:.3f}")
    for kind in "QKV":
        print(f"  {kind}: " + ", ".join(f"0.{h}: {scores[kind][h, ind]:.3f}" for h in range(len(column))))
    assert best in prev_heads
    assert column[best] >= 1.5 * max(scores["Q"][best, ind], scores["V"][best, ind])
    assert column[best] >= 1.5 * baseline
    assert not other_heads or column[best] >= 1.5 * column[other_heads].max()
