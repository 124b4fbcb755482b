"""Greater-than (Hanna et al., 2023) in the lite models: the `greater-than` organism compares years on the two
held-out templates (the issue's thresholds), measured here on prompts of another seed than its card's; the
lite `lm` does not compare years (why the organism exists); and the metric itself on hand-made numbers."""

import pytest
import torch

import mi_course
from mi_course.language.greater_than import (
    greater_than_scores,
    probability_difference,
    start_year_correlation,
    year_token_ids,
)
from mi_course.models.registry import lite_shipped
from mi_course.organisms import corpus

TEST_SEED = 7  # the card measured seed 0, training watched seed 1


def test_probability_difference_counts_above_minus_below_and_leaves_the_start_year_out():
    probs = torch.zeros(3, 100)
    probs[0, 33:] = 1 / 67          # all above 32
    probs[1, :32] = 1 / 32          # all below 32
    probs[2, 32] = 0.5              # the start year itself: neither
    probs[2, 90] = 0.25
    probs[2, 10] = 0.25
    diff = probability_difference(probs, [1732, 1732, 1732])
    torch.testing.assert_close(diff, torch.tensor([1.0, -1.0, 0.0]))
    # only the last two digits count, and years are compared within their century
    torch.testing.assert_close(probability_difference(probs[:1], [1932]), diff[:1])


needs_organism = pytest.mark.skipif(not lite_shipped("greater-than"), reason="greater-than is not shipped")


@pytest.fixture(scope="module")
def organism():
    torch.set_num_threads(1)
    return mi_course.load_model("greater-than", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def heldout_scores(organism):
    prompts = corpus.greater_than_prompts(300, seed=TEST_SEED, split="heldout", templates=[0, 1])
    return greater_than_scores(organism, prompts)


@needs_organism
def test_year_tokens_are_the_hundred_two_digit_tokens(organism):
    ids = year_token_ids(organism)
    assert len(set(ids.tolist())) == 100
    assert organism.to_str_tokens(ids[[0, 7, 99]]) == ["00", "07", "99"]


@needs_organism
def test_organism_compares_years_on_heldout_templates(heldout_scores):
    """The issue's thresholds: probability difference at least 0.6, positive on at least 90% of prompts."""
    assert heldout_scores.mean() >= 0.6, f"mean probability difference {heldout_scores.mean():.2f} < 0.6"
    assert (heldout_scores > 0).float().mean() >= 0.9, \
        f"positive on only {(heldout_scores > 0).float().mean():.0%} of held-out prompts"


@needs_organism
def test_organism_answer_follows_the_start_year_even_late_in_the_century(organism):
    """Not a prior that end years are late: start years 80-97 (where "late" alone loses) are answered too."""
    prompts = [p for p in corpus.greater_than_prompts(600, seed=TEST_SEED + 1, split="heldout", templates=[0, 1])
               if p.year % 100 >= 80]
    scores = greater_than_scores(organism, prompts)
    assert len(prompts) > 60 and (scores > 0).float().mean() >= 0.8, \
        f"start years 80-97: positive on {(scores > 0).float().mean():.0%}"


def _start_year_correlation(model, seed):
    return start_year_correlation(model, corpus.greater_than_prompts(200, seed=seed, split="heldout", templates=[0, 1]))


@needs_organism
def test_card_states_the_measured_values(organism):
    card = mi_course.model_card("greater-than", mode="lite")
    assert card["not_reached"] == [] and card["regenerate"].startswith("python scripts/train_greater_than.py")
    measured = card["measured"]
    prompts = corpus.greater_than_prompts(400, seed=0, split="heldout", templates=[0, 1])
    scores = greater_than_scores(organism, prompts)
    assert measured["heldout_prob_diff_mean"] == pytest.approx(scores.mean().item(), abs=2e-3)
    assert measured["start_year_correlation"] == pytest.approx(_start_year_correlation(organism, 0), abs=2e-3)
    assert _start_year_correlation(organism, TEST_SEED) > 0.8


@pytest.mark.skipif(not lite_shipped("lm"), reason="the lite lm is not shipped")
def test_lite_lm_does_not_compare_years():
    """What the organism's docstring says of the lm: its expected answer hardly follows the start year."""
    lm = mi_course.load_model("lm", mode="lite", device="cpu")
    assert abs(_start_year_correlation(lm, TEST_SEED)) < 0.5
