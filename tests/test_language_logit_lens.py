"""The canonical logit lens and tuned lens (mi_course.language.logit_lens, .tuned_lens, .lens_plots) on tiny
random models, and the effects lesson 07 shows on the shipped lite language model (skipped until it ships)."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure
from transformer_lens import HookedTransformer, HookedTransformerConfig

import mi_course
from mi_course.language import lens_plots
from mi_course.language.logit_lens import (
    accumulated_residuals,
    correct_token_rank,
    decode_residual,
    heldout_rows,
    kl_to_final,
    logit_lens,
    top_tokens_table,
)
from mi_course.language.tuned_lens import identity_translators, train_tuned_lens, tuned_lens_logits
from mi_course.models.registry import lite_shipped
from mi_course.organisms.tokenizer import train_tokenizer


def tiny(normalization_type="LN", tokenizer=None, d_vocab=20, seed=0):
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, act_fn="gelu",
                                  normalization_type=normalization_type, n_ctx=16, d_vocab=d_vocab, seed=seed)
    model = HookedTransformer(cfg, tokenizer=tokenizer) if tokenizer is not None else HookedTransformer(cfg)
    return model.eval()


def tokens_for(model, batch=2, pos=7, seed=0):
    return torch.randint(4, model.cfg.d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("normalization_type", ["LN", "LNPre", "RMS", None])
def test_last_row_is_the_model_for_every_normalization(normalization_type):
    model = tiny(normalization_type)
    tokens = tokens_for(model)
    lens = logit_lens(model, tokens)
    assert lens.shape == (3, 2, 7, 20)
    with torch.no_grad():
        assert torch.allclose(lens[-1], model(tokens), atol=1e-4)
        if normalization_type is None:
            resid = model.embed(tokens) + model.pos_embed(tokens)
            assert torch.allclose(lens[0], resid @ model.W_U + model.b_U, atol=1e-4)


def test_accumulated_residuals_refuses_incomplete_caches():
    model = tiny()
    tokens = tokens_for(model)
    _, cache = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    with pytest.raises(ValueError, match="batch"):
        accumulated_residuals(cache)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_resid_post"))
    with pytest.raises(ValueError, match="resid_pre"):
        accumulated_residuals(cache)


def test_bad_inputs_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="batch, pos"):
        logit_lens(model, tokens_for(model)[0])
    with pytest.raises(ValueError, match="same"):
        correct_token_rank(torch.zeros(3, 2, 7, 20), torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="steps"):
        train_tuned_lens(model, tokens_for(model), steps=-1)
    with pytest.raises(ValueError, match="translators"):
        tuned_lens_logits(model, identity_translators(16, 2), tokens_for(model))


def test_top_tokens_table_refuses_batches_and_bad_k():
    tok = train_tokenizer(["the cat sat on the mat .", "a dog ran ."])
    model = tiny(tokenizer=tok, d_vocab=len(tok))
    tokens = tokens_for(model, batch=1)
    table = top_tokens_table(model, tokens, k=2)
    assert len(table) == 3 * 7 * 2 and list(table.columns[:5]) == ["layer", "pos", "input", "target", "rank"]
    with pytest.raises(ValueError, match="one sequence"):
        top_tokens_table(model, tokens.expand(2, -1), k=2)
    for k in (0, len(tok) + 1, 1.5):
        with pytest.raises(ValueError, match="k must"):
            top_tokens_table(model, tokens, k=k)
    assert isinstance(lens_plots.plot_top_tokens(table), Figure)
    with pytest.raises(ValueError, match="lacks"):
        lens_plots.plot_top_tokens(table.drop(columns=["logit"]))
    with pytest.raises(ValueError, match="positions"):
        lens_plots.plot_top_tokens(table, positions=[99])


def test_plots_take_lens_results():
    logits = torch.randn(3, 2, 6, 11)
    kl = kl_to_final(logits)
    assert isinstance(lens_plots.plot_kl_by_layer({"a": kl, "b": kl.mean(dim=(1, 2))}, log=True), Figure)
    assert isinstance(lens_plots.plot_rank_by_layer(correct_token_rank(logits, torch.randint(11, (2, 6)))), Figure)
    assert lens_plots.row_labels(3) == ["embed", "0", "1"]


def test_identity_translators_are_the_logit_lens_and_training_leaves_the_model_alone():
    model = tiny()
    tokens = tokens_for(model, batch=4, pos=8)
    assert torch.allclose(tuned_lens_logits(model, identity_translators(16, 3), tokens), logit_lens(model, tokens))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    translators = train_tuned_lens(model, tokens, steps=20, lr=1e-2)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags, "requires_grad flags are restored"
    assert all(p.grad is None for p in model.parameters()), "the model's parameters got no gradient"
    assert not any(len(hp._forward_hooks) for hp in model.hook_dict.values())
    kl_tuned = kl_to_final(tuned_lens_logits(model, translators, tokens)).mean(dim=(1, 2))
    kl_logit = kl_to_final(logit_lens(model, tokens)).mean(dim=(1, 2))
    assert (kl_tuned[:-1] < kl_logit[:-1]).all() and kl_tuned[-1] == 0
    resid = accumulated_residuals(model.run_with_cache(tokens)[1])
    assert torch.allclose(decode_residual(model, resid[-1]), model(tokens), atol=1e-4)


def test_heldout_rows_ignore_the_tokenizer_state_left_by_to_tokens():
    """TransformerLens's to_tokens turns padding and truncation on in the tokenizer; rows must not change."""
    from mi_course.organisms import corpus
    from mi_course.organisms.tokenizer import pack_documents

    tok = train_tokenizer(corpus.generate_corpus(200, seed=0))
    model = tiny(tokenizer=tok, d_vocab=len(tok))
    expected = pack_documents(tok, corpus.generate_corpus(8 * 6, seed=0, split="heldout"), 32)[:6]
    model.to_tokens("a short text")  # leaves padding and truncation (max_length n_ctx) on
    rows = heldout_rows(model, n_rows=6, seq_len=32)
    assert rows.shape == (6, 32) and torch.equal(rows, expected)
    assert (rows[:, 0] == tok.bos_token_id).all() and not (rows == tok.pad_token_id).any()


# ---------------------------------------------------------------- the shipped lite language model

lite_lm = pytest.mark.skipif(not lite_shipped("lm"), reason="the lite lm is not shipped yet (scripts/train_lm.py)")


@pytest.fixture(scope="module")
def lm():
    return mi_course.load_model("lm", mode="lite")


@pytest.fixture(scope="module")
def lm_rows(lm):
    return heldout_rows(lm, n_rows=32, seq_len=64, seed=0)


@lite_lm
def test_lite_logit_lens_converges(lm, lm_rows):
    """What lesson 07 shows: KL to the final layer falls at every layer, the next token climbs to the top."""
    lens = logit_lens(lm, lm_rows)
    kl = kl_to_final(lens)[:, :, 1:].mean(dim=(1, 2))
    assert torch.all(kl[1:] < kl[:-1]), f"KL(final || layer) should fall layer by layer: {kl.tolist()}"
    top1 = (correct_token_rank(lens, lm_rows)[:, :, 1:] == 0).float().mean(dim=(1, 2))
    assert torch.all(top1[2:] >= top1[1:-1] - 0.02), f"top-1 accuracy should grow after block 0: {top1.tolist()}"
    assert top1[-1] >= 0.45, f"the model's own top-1 accuracy on held-out text is only {top1[-1]:.2f}"
    assert top1[1] > top1[0] + 0.2, f"the first block should bring most of the gain: {top1.tolist()}"


@lite_lm
def test_lite_tuned_lens_beats_the_logit_lens_on_unseen_text(lm, lm_rows):
    """The notebook's experiment: trained on other held-out documents, evaluated on lm_rows."""
    torch.manual_seed(0)
    translators = train_tuned_lens(lm, heldout_rows(lm, n_rows=32, seq_len=64, seed=1), steps=40, lr=2e-2)
    tuned, logit = tuned_lens_logits(lm, translators, lm_rows), logit_lens(lm, lm_rows)
    kl_tuned = kl_to_final(tuned)[:, :, 1:].mean(dim=(1, 2))
    kl_logit = kl_to_final(logit)[:, :, 1:].mean(dim=(1, 2))
    assert torch.all(kl_tuned[:-1] < 0.8 * kl_logit[:-1]), f"tuned {kl_tuned.tolist()} vs logit {kl_logit.tolist()}"
    top1 = lambda lens: (correct_token_rank(lens, lm_rows)[0, :, 1:] == 0).float().mean().item()  # noqa: E731
    assert top1(tuned) > top1(logit) + 0.1, \
        f"the tuned lens should read the embedding row far better: top-1 {top1(tuned):.2f} vs {top1(logit):.2f}"


def test_tuned_lens_trains_after_an_earlier_lesson_switched_gradients_off():
    """Lessons 05 and 06 call torch.set_grad_enabled(False); 07 in the same kernel must still train."""
    model = tiny()
    tokens = tokens_for(model)
    before = kl_to_final(tuned_lens_logits(model, identity_translators(model.cfg.d_model, model.cfg.n_layers + 1),
                                           tokens))[:-1].mean()
    torch.set_grad_enabled(False)
    try:
        translators = train_tuned_lens(model, tokens, steps=20, lr=5e-2)
    finally:
        torch.set_grad_enabled(True)
    after = kl_to_final(tuned_lens_logits(model, translators, tokens))[:-1].mean()
    assert after < 0.9 * before, f"no training happened with gradients switched off: KL {before:.3f} -> {after:.3f}"


def test_each_lesson_setup_switches_gradients_back_on(capsys):
    torch.set_grad_enabled(False)
    try:
        mi_course.setup_notebook("07")
        assert torch.is_grad_enabled(), "setup_notebook must restore torch's default grad mode"
    finally:
        torch.set_grad_enabled(True)
