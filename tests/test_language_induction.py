"""mi_course.language.induction on tiny random models and hand-made caches (lesson 06's canonical code); the
lite organisms' induction heads are tested in tests/test_lite_attn_only.py."""

import copy

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import ActivationCache, HookedTransformer, HookedTransformerConfig

from mi_course.language import induction


@pytest.fixture(scope="module")
def tiny():
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=4, attn_only=True, n_ctx=24,
                                  d_vocab=20, normalization_type=None, seed=0)
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        model.blocks[1].attn.b_O.normal_(generator=torch.Generator().manual_seed(1))
    return model


def tokens_for(model, seq_len=5, batch=3, seed=0):
    half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), half, half], dim=1)


def hooks_left(model):
    return [n for n, hp in model.hook_dict.items() if hp._forward_hooks]


def test_from_cache_scores_read_the_right_stripes(tiny):
    n = 4
    pos = 2 * n + 1
    p = torch.zeros(1, 2, pos, pos)
    p[0, :, 0, 0] = 1.0
    q = torch.arange(1, pos)
    p[0, 0, q, q - 1] = 1.0  # head 0: previous token
    p[0, 1, : n + 1] = torch.eye(pos)[: n + 1]  # head 1: itself in the first copy ...
    q2 = torch.arange(n + 1, pos)
    p[0, 1, q2, q2 - n + 1] = 1.0  # ... and induction in the second
    cache = ActivationCache({"blocks.0.attn.hook_pattern": p, "blocks.1.attn.hook_pattern": p.flip(1)}, tiny)
    assert induction.cached_layers(cache) == 2
    prev = induction.prev_token_scores_from_cache(cache)
    assert torch.allclose(prev, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ind = induction.induction_scores_from_cache(cache, n)
    assert torch.allclose(ind, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="positions"):
        induction.induction_scores_from_cache(cache, n + 1)
    with pytest.raises(ValueError, match="no attention patterns"):
        induction.cached_layers(ActivationCache({}, tiny))


def test_model_level_scores_equal_from_cache(tiny):
    tokens = tokens_for(tiny)
    _, cache = tiny.run_with_cache(tokens)
    assert torch.allclose(induction.attention_stripe_scores(tiny, tokens, offset=1),
                          induction.prev_token_scores_from_cache(cache))


def test_heads_above_is_strict_and_sorted():
    scores = torch.tensor([[0.5, 0.25], [0.75, 0.125]])
    assert induction.heads_above(scores, 0.25) == [(1, 0), (0, 0)]
    assert induction.heads_above(scores, 0.0) == [(1, 0), (0, 0), (0, 1), (1, 1)]
    assert induction.heads_above(scores, 1.0) == []
    assert all(type(v) is int for lh in induction.heads_above(scores, 0) for v in lh)


def test_repeated_random_tokens_validates(tiny):
    assert induction.repeated_random_tokens(tiny, 1, 2).shape == (2, 3)
    for seq_len, batch in [(0, 1), (2, 0), (12, 1)]:
        with pytest.raises(ValueError):
            induction.repeated_random_tokens(tiny, seq_len, batch)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        induction.repeat_loss_ratio(tiny, 1, 2)


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_ablation_equals_editing_the_weights(tiny, kind):
    tokens = tokens_for(tiny, seed=3)
    layer, head = 1, 1
    m = copy.deepcopy(tiny)
    attn = m.blocks[layer].attn
    with torch.no_grad():
        if kind == "mean":
            _, cache = tiny.run_with_cache(tokens)
            attn.b_O += cache["z", layer][:, :, head].mean((0, 1)) @ attn.W_O[head]
        attn.W_O[head] = 0
        logits = m(tokens)
    expected = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()
    assert abs(induction.ablate_head_loss(tiny, tokens, layer, head, kind) - expected) < 1e-5
    assert not hooks_left(tiny)


def test_ablation_validates_and_cleans_up_on_error(tiny, monkeypatch):
    tokens = tokens_for(tiny, seed=4)
    for layer, head, kind in [(2, 0, "zero"), (-1, 0, "zero"), (0, 2, "zero"), (0, 0, "random")]:
        with pytest.raises(ValueError):
            induction.ablate_head_loss(tiny, tokens, layer, head, kind)
    with pytest.raises(ValueError, match="tokens"):
        induction.head_ablation_hook(tiny, 0, 0, "mean")

    def boom(x):
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny.unembed, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        induction.ablate_head_loss(tiny, tokens, 0, 1, "zero")
    assert not hooks_left(tiny)


def test_ov_copying_score_extremes_and_full_matrix(tiny):
    full = (tiny.W_E @ tiny.W_V[0, 1] @ tiny.W_O[0, 1] @ tiny.W_U).double()
    eig = torch.linalg.eigvals(full)
    expected = (eig.sum().real / eig.abs().sum()).item()
    assert abs(induction.ov_copying_score(tiny, 0, 1) - expected) < 1e-4
    m = copy.deepcopy(tiny)
    with torch.no_grad():
        m.unembed.W_U.copy_(m.embed.W_E.T)
        m.blocks[0].attn.W_O[0] = m.blocks[0].attn.W_V[0].T
        m.blocks[0].attn.W_O[1] = 0
    assert abs(induction.ov_copying_score(m, 0, 0) - 1.0) < 1e-5
    assert induction.ov_copying_score(m, 0, 1) == 0.0
    with pytest.raises(ValueError):
        induction.ov_copying_score(m, 0, 2)
