"""The lite language model: its logit lens converges layer by layer, it does IOI on templates it never saw, it
copies repeated spans (thresholds from the issue), and its card states what is measured here."""

import pytest
import torch

import mi_course
from mi_course.language.induction import repeat_loss_ratio
from mi_course.language.ioi import answer_token, ioi_logit_diffs
from mi_course.language.logit_lens import kl_to_final, logit_lens
from mi_course.models.registry import lite_shipped
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import pack_documents
from mi_course.saes import hook_activations

if not lite_shipped("lm"):
    pytest.skip("the lite lm is not shipped yet (scripts/train_lm.py)", allow_module_level=True)

@pytest.fixture(scope="module")
def lm():
    return mi_course.load_model("lm", mode="lite")


@pytest.fixture(scope="module")
def heldout_ioi_diffs(lm):
    return ioi_logit_diffs(lm, corpus.ioi_prompts(200, seed=0, split="heldout"))


@pytest.fixture(scope="module")
def heldout_rows(lm):
    heldout = corpus.generate_corpus(200, seed=0, split="heldout")
    return pack_documents(lm.tokenizer, heldout, lm.cfg.n_ctx)[:32]


def test_logit_lens_kl_decreases_layer_by_layer(lm, heldout_rows):
    kl = kl_to_final(logit_lens(lm, heldout_rows)).mean(dim=(1, 2))
    assert torch.all(kl[1:] < kl[:-1]), f"KL to final per layer should fall: {kl.tolist()}"


def test_ioi_on_training_templates(lm):
    """What lessons can rely on: on the templates of its corpus the lm names the indirect object."""
    diffs = ioi_logit_diffs(lm, corpus.ioi_prompts(200, seed=0, split="train"))
    assert (diffs > 0).float().mean() >= 0.95, f"IO > S on only {(diffs > 0).float().mean():.0%} of prompts"
    assert diffs.median() > 2.0, f"median logit difference {diffs.median():.2f}: IO should win clearly"


def test_ioi_on_heldout_templates(heldout_ioi_diffs):
    """The issue's threshold, on templates whose verb and opening the lm never saw in an IOI sentence."""
    diffs = heldout_ioi_diffs
    assert (diffs > 0).float().mean() >= 0.9, f"IO > S on only {(diffs > 0).float().mean():.0%} of prompts"
    assert diffs.mean() > 2.0, f"mean logit difference {diffs.mean():.2f}: IO should win clearly"


def test_repeated_spans_are_copied(lm):
    assert repeat_loss_ratio(lm) <= 0.5


def test_answer_tokens_are_single_words(lm):
    assert lm.to_str_tokens(torch.tensor([answer_token(lm, "Mary")]))[0] == "Mary"
    with pytest.raises(ValueError, match="single token"):
        answer_token(lm, "Mary Vane")


def test_card_states_the_measured_values(lm, heldout_rows, heldout_ioi_diffs):
    card = mi_course.model_card("lm", mode="lite")
    measured = card["measured"]
    kl = kl_to_final(logit_lens(lm, heldout_rows)).mean(dim=(1, 2))
    assert torch.allclose(torch.tensor(measured["logit_lens_kl_per_layer"]), kl, atol=1e-3)
    assert abs(measured["repeat_loss_ratio"] - repeat_loss_ratio(lm)) < 0.01
    assert abs(measured["ioi_fraction_positive"] - (heldout_ioi_diffs > 0).float().mean().item()) < 1e-3
    assert card["regenerate"].startswith("python scripts/train_lm.py")


def _resid_after_block_0(lm, documents):
    rows = pack_documents(lm.tokenizer, [d.text for d in documents], lm.cfg.n_ctx)
    resid = torch.cat(list(hook_activations(lm, rows, "blocks.1.hook_resid_pre", progress=False)))
    return rows[:, 1:].reshape(-1), resid


def test_misspelt_keywords_share_one_direction_after_block_0(lm):
    """Phase 3's claim, measured on keywords other than the ones the direction is found with: the mean
    difference between the misspellings of def/return/print/range/while and every other code token, on fresh
    training-split snippets, ranks the misspellings of for/len/import/append/else first among the tokens of
    fresh held-out text (code and every other genre). Before phase 3 this precision was 0.0."""
    vocab = lm.tokenizer.get_vocab()

    def typo_ids(keywords):
        return torch.tensor(sorted(i for w, i in vocab.items()
                                   if any(w.split(".")[-1] in corpus.KEYWORD_TYPOS[k] for k in keywords)))

    found_with, held_out = typo_ids(["def", "return", "print", "range", "while"]), typo_ids(
        ["for", "len", "import", "append", "else"])
    tokens, resid = _resid_after_block_0(lm, corpus.generate_documents(2000, seed=17, split="train",
                                                                       proportions={"code": 1.0}))
    typo = torch.isin(tokens, found_with)
    direction = resid[typo].mean(0) - resid[~typo & ~torch.isin(tokens, held_out)].mean(0)
    fresh = (corpus.generate_documents(1500, seed=17, split="heldout", proportions={"code": 1.0})
             + corpus.generate_documents(1500, seed=17, split="heldout"))
    tokens, resid = _resid_after_block_0(lm, fresh)
    keep = ~torch.isin(tokens, found_with)
    target = torch.isin(tokens, held_out)[keep]
    n = int(target.sum())
    assert n >= 30, f"only {n} held-out misspellings in the fresh text"
    precision = target[(resid[keep] @ direction).topk(n).indices].float().mean().item()
    assert precision >= 0.8, f"precision at n={n}: {precision:.2f} (the card's phase 3)"


def test_card_states_phase_3():
    card = mi_course.model_card("lm", mode="lite")
    phase = card["training"]["typo_phase"]
    assert phase["hook_name"] == "blocks.1.hook_resid_pre" and "every other weight frozen" in phase["optimizer"]
    assert card["measured"]["typo_marker"]["precision_at_n_marked"] >= 0.8
    assert "phase 3" in card["data"] and "train_token_marker" in card["data"]
