"""The lite attention-only organisms: the 2-layer model has a previous-token head and an induction head, the
1-layer model has no induction head (thresholds from the issue), and their cards say so truthfully."""

import pytest
import torch
import torch.nn.functional as F

import mi_course
from mi_course.language import induction

SEQ_LEN, BATCH = 50, 16


def test_repeated_random_tokens_structure(lite2):
    tokens = induction.repeated_random_tokens(lite2, SEQ_LEN, 3, seed=1)
    assert tokens.shape == (3, 2 * SEQ_LEN + 1)
    assert (tokens[:, 0] == lite2.tokenizer.bos_token_id).all()
    assert torch.equal(tokens[:, 1:SEQ_LEN + 1], tokens[:, SEQ_LEN + 1:])
    assert not set(tokens[:, 1:].flatten().tolist()) & set(lite2.tokenizer.all_special_ids)
    assert torch.equal(tokens, induction.repeated_random_tokens(lite2, SEQ_LEN, 3, seed=1))
    with pytest.raises(ValueError, match="context"):
        induction.repeated_random_tokens(lite2, lite2.cfg.n_ctx, 1)


def test_per_token_loss_is_next_token_cross_entropy(lite2):
    tokens = induction.repeated_random_tokens(lite2, 10, 2)
    logits = lite2(tokens)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                               reduction="none").view(2, -1)
    assert torch.allclose(induction.per_token_loss(lite2, tokens), expected, atol=1e-5)


def test_two_layer_model_has_prev_token_and_induction_heads(lite2):
    prev = induction.prev_token_scores(lite2, SEQ_LEN, BATCH)
    ind = induction.induction_scores(lite2, SEQ_LEN, BATCH)
    assert prev[0].max() >= 0.7, f"best layer-0 previous-token score {prev[0].max():.2f} < 0.7"
    assert ind[1].max() >= 0.6, f"best layer-1 induction score {ind[1].max():.2f} < 0.6"
    assert induction.repeat_loss_ratio(lite2, SEQ_LEN, BATCH) <= 0.3


def test_two_layer_induction_lives_in_layer_one_only(lite2):
    """Induction needs composition: layer 0 cannot do it on its own, and layer 1's head attends to the
    previous-token head's output rather than to the previous token itself."""
    prev = induction.prev_token_scores(lite2, SEQ_LEN, BATCH)
    ind = induction.induction_scores(lite2, SEQ_LEN, BATCH)
    assert ind[0].max() < 0.05, f"a layer-0 head reached induction score {ind[0].max():.2f}"
    assert prev[1].max() < 0.1, "layer 1 should not be a previous-token layer"


def test_one_layer_model_has_no_induction_head(lite1):
    ind = induction.induction_scores(lite1, SEQ_LEN, BATCH)
    assert ind.max() < 0.3, f"a 1-layer head reached induction score {ind.max():.2f}"


@pytest.mark.parametrize("role", ["attn-only-1l", "attn-only-2l"])
def test_cards_state_the_measured_values(role):
    model = mi_course.load_model(role, mode="lite")
    card = mi_course.model_card(role, mode="lite")
    measured = card["measured"]
    ind = induction.induction_scores(model, SEQ_LEN, BATCH)
    prev = induction.prev_token_scores(model, SEQ_LEN, BATCH)
    assert torch.allclose(torch.tensor(measured["induction_scores"]), ind, atol=0.01)
    assert torch.allclose(torch.tensor(measured["prev_token_scores"]), prev, atol=0.01)
    assert abs(measured["repeat_loss_ratio"] - induction.repeat_loss_ratio(model, SEQ_LEN, BATCH)) < 0.01
    layer, head = measured["induction_head"]
    assert ind[layer, head] == ind.max()
    assert card["regenerate"].startswith("python scripts/train_attn_only.py")


def test_lite_models_speak_text(lite2):
    text = "Mr and Mrs Vane lived at number 13 Mill Road. Mr and Mrs"
    tokens = lite2.to_tokens(text)
    assert tokens[0, 0] == lite2.tokenizer.bos_token_id
    assert lite2.to_str_tokens(text)[1:4] == ["Mr", "and", "Mrs"]
    next_token = lite2(tokens)[0, -1].argmax()
    assert lite2.to_string(next_token) == "Vane", "the induction circuit should complete the repeated name"
