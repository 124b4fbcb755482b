"""mi_course.saes.feature_search: the feature chosen for a concept is the one that separates its tokens, scored
on other documents; a weak best is reported as no feature found; any fast tokenizer's tokens get the corpus's
labels by the characters they cover."""

import pytest
import torch

import mi_course
from mi_course.models.registry import lite_shipped
from mi_course.organisms import corpus
from mi_course.saes.dashboard import FeatureActivations, label_features, labelled_rows, prediction_score
from mi_course.saes.feature_search import FOUND_THRESHOLD, FeatureMatch, best_feature, span_labelled_rows

ROWS, POS, D_SAE, TRACKER = 8, 40, 6, 4


def fake_activations(seed: int) -> FeatureActivations:
    """Six features on random tokens: feature 4 fires on the "bridge" tokens (a little noise), feature 1 on
    every token, the others at random; nothing follows the "praise" tokens."""
    g = torch.Generator().manual_seed(seed)
    bridge = torch.rand(ROWS, POS, generator=g) < 0.2
    praise = torch.rand(ROWS, POS, generator=g) < 0.2
    acts = torch.rand(ROWS, POS, D_SAE, generator=g) * (torch.rand(ROWS, POS, D_SAE, generator=g) < 0.3)
    acts[..., 1] = 1.0 + 0.1 * torch.rand(ROWS, POS, generator=g)
    acts[..., TRACKER] = bridge * (3.0 + torch.rand(ROWS, POS, generator=g)) + 0.2 * acts[..., 0]
    tokens = torch.randint(5, 50, (ROWS, POS), generator=g)
    return FeatureActivations.from_dense(tokens, acts, labels={"bridge": bridge, "praise": praise})


@pytest.fixture(scope="module")
def fake_labels():
    return label_features(fake_activations(0), fake_activations(1))


def test_the_feature_that_tracks_the_concept_is_found_and_scored_held_out(fake_labels):
    match = best_feature(fake_labels, "bridge")
    assert match.feature == TRACKER and match.found
    assert match.score > 0.9 and match.fit_score > 0.9
    # the score is the lesson's held-out prediction score of the concept for that feature
    assert match.score == pytest.approx(prediction_score(fake_activations(0), fake_activations(1), TRACKER,
                                                         "bridge"), abs=1e-4)
    assert str(match).startswith(f"feature {TRACKER}: best separates bridge tokens")
    assert "measured here" in str(match) and f"{match.score:.2f}" in str(match)
    assert match.name("bridge (detector)") == "bridge (detector)"


def test_a_weak_best_is_reported_as_not_found(fake_labels):
    match = best_feature(fake_labels, "praise")
    assert not match.found and match.score < FOUND_THRESHOLD
    assert str(match).startswith("no praise feature found")
    assert match.name() == match.name("praise (detector)") == f"feature {match.feature}"
    # a strict enough threshold turns even the good match down
    assert not best_feature(fake_labels, "bridge", threshold=1.01).found


def test_bad_arguments(fake_labels):
    with pytest.raises(ValueError, match="concept must be one of"):
        best_feature(fake_labels, "latin")
    with pytest.raises(ValueError, match="FeatureLabels"):
        best_feature({"bridge": None}, "bridge")
    assert FeatureMatch("x", 3, 0.5, FOUND_THRESHOLD - 0.01).name() == "feature 3"


@pytest.fixture(scope="module")
def documents():
    return corpus.generate_documents(60, seed=5, split="heldout")


def test_span_labels_are_the_word_level_labels_for_the_lite_tokenizer(documents):
    if not lite_shipped("lm"):
        pytest.skip("the lite lm is not shipped")
    tokenizer = mi_course.load_model("lm", mode="lite", device="cpu").tokenizer
    tokens, labels = labelled_rows(tokenizer, documents, n_ctx=64)
    span_tokens, span_labels = span_labelled_rows(tokenizer, documents, n_ctx=64)
    assert torch.equal(tokens, span_tokens) and list(labels) == list(span_labels)
    for name in labels:
        assert torch.equal(labels[name], span_labels[name]), name


def test_span_labels_for_a_subword_tokenizer(documents):
    from mi_course.models.dry_run import full_config, stand_in_tokenizer

    tokenizer = stand_in_tokenizer(full_config("gpt2-small")["tokenizer"])  # GPT-2's kind: byte-level BPE
    tokens, labels = span_labelled_rows(tokenizer, documents, n_ctx=64)
    strings = [tokenizer.convert_ids_to_tokens(row) for row in tokens.tolist()]
    special = tokens == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert special[:, 0].all() and not any(mask[special].any() for mask in labels.values())
    # every token of a bridge document is bridge text, and no other token is
    n_bridge = sum(len(tokenizer(d.text, add_special_tokens=False)["input_ids"]) for d in documents
                   if d.genre == "bridge")
    assert int(labels["genre:bridge"].sum()) == n_bridge > 0
    # the Assistant's praise is praise; "Assistant" and the User's turn are not
    assert labels["praise"].any()
    marked = [s for row, mask in zip(strings, labels["praise"]) for s, m in zip(row, mask) if m]
    assert "Assistant" not in marked and "User" not in marked
    # "Golden Gate Bridge" is bridge wherever it is written
    golden = [(r, p) for r, row in enumerate(strings) for p, s in enumerate(row[:-2])
              if (s, row[p + 1], row[p + 2]) == ("ĠGolden", "ĠGate", "ĠBridge")]
    assert golden and all(labels["bridge"][r, p:p + 3].all() for r, p in golden)


def test_span_labels_need_documents_and_a_fast_tokenizer(documents):
    with pytest.raises(ValueError, match="Documents"):
        span_labelled_rows(object(), ["plain text"])
    with pytest.raises(ValueError, match="fast tokenizer"):
        span_labelled_rows(object(), documents)


def test_the_lite_bridge_and_praise_are_found(documents):
    """The method, on the lite model and its main SAE, finds a bridge and a Latin feature above the threshold
    (what full mode does with GPT-2, here where the answer is known to exist); Latin's is the card's."""
    for role in ("lm", "sae"):
        if not lite_shipped(role):
            pytest.skip(f"the lite {role} is not shipped")
    model = mi_course.load_model("lm", mode="lite", device="cpu")
    sae = mi_course.load_model("sae", mode="lite", device="cpu")

    def acts(seed):
        tokens, masks = labelled_rows(model.tokenizer, corpus.generate_documents(150, seed=seed, split="heldout"))
        return mi_course.saes.feature_activations(sae, model, tokens, labels=masks)

    labels = label_features(acts(6), acts(5))
    card = mi_course.model_card("sae", "lite")["features"]
    for concept in ("bridge", "latin"):
        match = best_feature(labels, concept)
        assert match.found, match
        assert labels[match.feature].label in (concept, f"genre:{concept}")
    assert best_feature(labels, "latin").feature == card["latin"]["feature"]
