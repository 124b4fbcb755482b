"""Steering the shipped lite lm with its main SAE's features (lesson 10's claims), on prompts and seeds other
than the ones the lesson shows: adding the feature that writes the bridge (the one whose decoder row raises the
bridge words' logits most; the card's bridge feature *detects* the bridge but steers weakly), or the card's
praise feature, raises the share of continuations that mention it from near 0 to at least 30% at some
strength, and as the strength grows the plain model finds the steered text ever less likely (it breaks)."""

from functools import cache

import pytest
import torch

import mi_course
from mi_course.models.registry import lite_shipped
from mi_course.saes.steering import steering_sweep

pytestmark = pytest.mark.skipif(not (lite_shipped("lm") and lite_shipped("sae")), reason="lite lm or sae missing")

WORDS = {"bridge": ("bridge", "Golden", "Gate"),
         "praise": ("wonderful", "brilliant", "talented", "amazing", "genius", "fantastic", "outstanding",
                    "incredible", "proud")}
PROMPTS = ["Then", "Every morning", "She said that", "Last year", "In the evening"]  # the lesson uses others
ALPHAS = [0, 16, 24, 32, 48]


@cache
def models():
    torch.set_num_threads(1)
    return mi_course.load_model("lm", mode="lite", device="cpu"), mi_course.load_model("sae", mode="lite", device="cpu")


def writer_feature(model, sae, words) -> int:
    """The feature whose decoder row raises the words' logits most, read directly through W_U."""
    ids = [model.to_single_token(w) for w in words]
    with torch.no_grad():
        return int((sae.W_dec @ model.W_U)[:, ids].mean(-1).argmax())


@cache
def sweep(concept):
    model, sae = models()
    if concept == "bridge":
        feature = writer_feature(model, sae, WORDS[concept])
    else:
        feature = mi_course.model_card("sae", mode="lite")["features"][concept]["feature"]
    return feature, steering_sweep(model, sae, feature, PROMPTS, ALPHAS, WORDS[concept], n=10, max_new_tokens=20,
                                   seed=4321, start=1, progress=False)


@pytest.mark.parametrize("concept", ["bridge", "praise"])
def test_steering_the_writer_feature_makes_the_model_mention_its_concept(concept):
    feature, results = sweep(concept)
    shares = {a: round(r["mention_share"], 2) for a, r in results.items()}
    assert shares[0] <= 0.1, f"unsteered, {shares[0]:.0%} of the continuations already mention {concept}"
    assert max(shares.values()) >= 0.3, f"{concept} feature {feature}: mention share by alpha {shares}"


@pytest.mark.parametrize("concept", ["bridge", "praise"])
def test_strong_steering_breaks_the_text(concept):
    feature, results = sweep(concept)
    losses = {a: round(r["loss"], 2) for a, r in results.items()}
    assert losses[ALPHAS[-1]] > losses[0] + 2, f"{concept} feature {feature}: plain-model loss by alpha {losses}"
    assert losses[ALPHAS[-1]] == max(losses.values()), f"the strongest steering should read worst: {losses}"
