"""The canonical language measurements (induction stripes, logit lens, KL) on hand-made inputs and tiny
random models; the lite organisms' properties are tested in tests/test_lite_*.py."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.language import induction
from mi_course.language.logit_lens import accumulated_residuals, kl_to_final, logit_lens

SEQ_LEN = 50


def _fake_model(patterns: list[torch.Tensor]):
    """Just enough of a HookedTransformer for attention_stripe_scores: a cache of given patterns."""
    cache = {("pattern", layer): p for layer, p in enumerate(patterns)}
    cfg = SimpleNamespace(n_layers=len(patterns))
    return SimpleNamespace(cfg=cfg, run_with_cache=lambda tokens, names_filter=None: (None, cache))


def test_stripe_scores_read_the_right_diagonal():
    pos, n = 2 * SEQ_LEN + 1, SEQ_LEN
    prev = torch.zeros(1, 2, pos, pos)
    prev[0, 0, torch.arange(1, pos), torch.arange(0, pos - 1)] = 1.0  # head 0: previous token
    prev[0, 1, torch.arange(pos), torch.arange(pos)] = 1.0  # head 1: the current token
    ind = torch.zeros(1, 1, pos, pos)
    q = torch.arange(n + 1, pos)
    ind[0, 0, q, q - n + 1] = 1.0  # the token after the previous occurrence
    scores = induction.attention_stripe_scores(_fake_model([prev]), None, offset=1)
    assert scores[0, 0] == 1.0 and scores[0, 1] == 0.0
    ind_scores = induction.attention_stripe_scores(_fake_model([ind]), None, offset=n - 1, first_query=n + 1)
    assert ind_scores[0, 0] == 1.0
    off_by_one = induction.attention_stripe_scores(_fake_model([ind]), None, offset=n, first_query=n + 1)
    assert off_by_one[0, 0] == 0.0


@pytest.fixture(scope="module")
def tiny():
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, act_fn="gelu",
                                  normalization_type="LN", n_ctx=12, d_vocab=20, seed=0)
    return HookedTransformer(cfg).eval()


def test_logit_lens_rows_and_last_row_equal_logits(tiny):
    tokens = torch.randint(20, (2, 7), generator=torch.Generator().manual_seed(0))
    resid = accumulated_residuals(tiny.run_with_cache(tokens)[1])
    assert resid.shape == (3, 2, 7, 16)
    lens = logit_lens(tiny, tokens)
    assert lens.shape == (3, 2, 7, 20)
    assert torch.allclose(lens[-1], tiny(tokens), atol=1e-4)
    embed = tiny.embed(tokens) + tiny.pos_embed(tokens)
    assert torch.allclose(resid[0], embed, atol=1e-5), "row 0 is the residual after the embeddings"


def test_kl_to_final_direction_and_zero_last_row():
    logits = torch.randn(3, 2, 5, 11, generator=torch.Generator().manual_seed(1))
    kl = kl_to_final(logits)
    assert kl.shape == (3, 2, 5) and torch.all(kl[-1].abs() < 1e-6) and torch.all(kl >= -1e-6)
    # KL(final || layer): F.kl_div(input=log q_layer, target=log p_final, log_target=True)
    expected = F.kl_div(logits[0].log_softmax(-1), logits[-1].log_softmax(-1), log_target=True,
                        reduction="none").sum(-1)
    assert torch.allclose(kl[0], expected, atol=1e-5)


