"""The shipped lite SAEs (``scripts/train_saes.py``), measured again here on held-out text the script never saw
(``split="heldout"``, seed 7; the script evaluated on seed 0 and chose its features on training text)."""

from functools import cache

import pytest
import torch

import mi_course
from mi_course import saes
from mi_course.models import checkpoints
from mi_course.models.checkpoints import regenerate_script
from mi_course.models.registry import lite_shipped
from mi_course.organisms import corpus

ROLES = ("sae", "sae-b", "sae-relu", "sae-topk", "sae-batchtopk", "sae-jumprelu", "sae-ortsae")
VARIANTS = ("sae-relu", "sae-topk", "sae-batchtopk", "sae-jumprelu", "sae-ortsae")
TEST_SEED = 7
METRIC_ROWS = 128
FEATURE_DOCS = 5000


def needs(*roles):
    missing = [r for r in roles if not lite_shipped(r)]
    return pytest.mark.skipif(bool(missing), reason=f"lite SAE checkpoint(s) not shipped: {', '.join(missing)}")


@cache
def lm():
    torch.set_num_threads(1)
    return mi_course.load_model("lm", mode="lite", device="cpu")


@cache
def sae(role):
    return mi_course.load_model(role, mode="lite", device="cpu")


@cache
def card(role):
    return mi_course.model_card(role, mode="lite")


@cache
def script():
    return regenerate_script(card("sae"))[0]


@cache
def heldout(n_docs):
    """Documents, and labelled rows in the script's layout, of held-out text with the test's own seed."""
    docs = corpus.generate_documents(n_docs, seed=TEST_SEED, split="heldout")
    return docs, script().labelled_rows(lm().tokenizer, docs, lm().cfg.n_ctx)


@cache
def main_metrics():
    _, (tokens, _, _) = heldout(FEATURE_DOCS)
    return saes.sae_metrics(sae("sae"), lm(), tokens[:METRIC_ROWS], progress=False)


@cache
def l0_of(role):
    _, (tokens, _, _) = heldout(FEATURE_DOCS)
    store = saes.ActivationStore.from_model(lm(), tokens[:METRIC_ROWS], sae(role).hook_name, progress=False)
    return saes.reconstruction_metrics(sae(role), store)["l0"]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_loads_its_verified_checkpoint(role):
    if not lite_shipped(role):
        pytest.skip(f"{role} is not shipped")
    manifest = checkpoints.read_manifest()
    folder = checkpoints.checkpoint_dir() / role
    for name in ("config.json", "model.safetensors", "card.json"):
        assert checkpoints.sha256(folder / name) == manifest[f"{role}/{name}"]["sha256"], f"{role}/{name}"
    model = sae(role)
    assert isinstance(model, saes.SparseAutoencoder), type(model)
    assert model.hook_name == card(role)["hook_name"] and model.hook_name in lm().hook_dict
    assert not model.training
    state = checkpoints.load_state_dict(f"{role}/model.safetensors")
    assert torch.equal(state["W_dec"], model.W_dec.detach())
    assert model.config() == card(role)["architecture"]


@needs("sae")
def test_main_sae_meets_its_thresholds_on_fresh_heldout_text():
    m = main_metrics()
    assert m["l0"] <= 32, f"L0 {m['l0']:.1f} > 32"
    assert m["explained_variance"] >= 0.85, f"explained variance {m['explained_variance']:.3f} < 0.85"
    assert m["dead_fraction"] <= 0.05, f"{m['dead_fraction']:.1%} dead features on {m['n_tokens']} tokens"
    assert m["ce_loss_recovered_zero"] >= 0.90, f"CE loss recovered (zero) {m['ce_loss_recovered_zero']:.3f}"
    assert m["ce_loss_recovered_mean"] >= 0.80, f"CE loss recovered (mean) {m['ce_loss_recovered_mean']:.3f}"


@needs("sae")
def test_main_card_states_what_the_test_measures():
    m, stated = main_metrics(), card("sae")["measured"]
    assert m["l0"] == pytest.approx(stated["l0"], abs=2.0)
    assert m["explained_variance"] == pytest.approx(stated["explained_variance"], abs=0.03)
    assert m["ce_loss_recovered_zero"] == pytest.approx(stated["ce_loss_recovered_zero"], abs=0.03)
    assert m["kl_sae"] == pytest.approx(stated["kl_sae"], rel=0.5)


@needs(*VARIANTS)
def test_variants_are_at_matched_l0():
    l0 = {role: l0_of(role) for role in VARIANTS}
    assert max(l0.values()) / min(l0.values()) <= 1.5, f"L0 not matched across variants: {l0}"
    for role, value in l0.items():
        assert 32 * 0.8 <= value <= 32 * 1.2, f"{role}: L0 {value:.1f} outside 32 +- 20%"
        assert value == pytest.approx(card(role)["measured"]["l0"], abs=3.0), role


@cache
def explained_variance_of(role):
    _, (tokens, _, _) = heldout(FEATURE_DOCS)
    store = saes.ActivationStore.from_model(lm(), tokens[:METRIC_ROWS], sae(role).hook_name, progress=False)
    return saes.reconstruction_metrics(sae(role), store)["explained_variance"]


@needs(*VARIANTS)
def test_direct_sparsity_variants_beat_the_l1_sae_at_matched_l0():
    """Lesson 09's frontier claim: TopK, BatchTopK and JumpReLU each explain more variance than the L1 SAE."""
    ev = {role: explained_variance_of(role) for role in VARIANTS}
    for role in ("sae-topk", "sae-batchtopk", "sae-jumprelu"):
        assert ev[role] > ev["sae-relu"], f"{role} does not beat the L1 SAE at matched L0: {ev}"


@needs(*VARIANTS)
def test_ortsae_has_the_lowest_decoder_cosines():
    mean_max = {role: saes.max_cosine_similarities(sae(role).W_dec.detach()).mean().item() for role in VARIANTS}
    others = {r: v for r, v in mean_max.items() if r != "sae-ortsae"}
    assert mean_max["sae-ortsae"] < min(others.values()), f"mean largest cosine per variant: {mean_max}"
    assert mean_max["sae-ortsae"] == pytest.approx(card("sae-ortsae")["measured"]["max_cosine_to_another_feature"]
                                                   ["mean"], abs=1e-3)


@cache
def feature_precision():
    docs, data = heldout(FEATURE_DOCS)
    scan = script().feature_scan(sae("sae"), lm(), data, sae("sae").hook_name)
    return script().precision_table(scan)


@needs("sae")
def test_main_card_names_every_seed_feature():
    assert set(card("sae")["features"]) == set(corpus.SEED_FEATURES)


@needs("sae")
@pytest.mark.parametrize("concept", corpus.SEED_FEATURES)
def test_named_feature_is_precise_on_fresh_heldout_text(concept):
    stated = card("sae")["features"][concept]
    p = float(feature_precision()[concept][stated["feature"]])
    assert p == pytest.approx(stated["heldout_precision_top100"], abs=0.12), f"the card states {stated}"
    if any(line.startswith(f"{concept} feature") for line in card("sae")["not_reached"]):
        # the card says plainly that this one is not reached; the test keeps measuring it
        pytest.xfail(f"{concept}: top-100 precision {p:.2f} < 0.8, stated as not reached in the card")
    assert p >= 0.8, f"{concept} feature {stated['feature']}: top-100 precision {p:.2f} < 0.8"


@needs("sae")
def test_code_error_feature_is_not_a_code_feature():
    """The seed's wording: it fires on the misspelt identifier, not on code in general. On fresh held-out text,
    among the tokens of code documents: it is silent on at least 90% of the correctly spelt ones, and a typical
    misspelt keyword activates it more than 99.9% of them; it fires on the misspelt keyword in most documents
    with one. (Like most SAE features it also fires weakly elsewhere: the card's fires_in_error_free_code_docs
    counts any firing at all.)"""
    docs, data = heldout(FEATURE_DOCS)
    tokens, doc_of, labels = data
    feature = card("sae")["features"]["code_error"]["feature"]
    acts = torch.cat([a[:, feature] for a in script().feature_acts(sae("sae"), lm(), tokens, sae("sae").hook_name)])
    typo = labels["code_error"][:, 1:].reshape(-1)
    in_code = torch.tensor([d >= 0 and docs[d].genre == "code" for d in doc_of[:, 1:].reshape(-1).tolist()])
    spelt = acts[in_code & ~typo]
    silent = (spelt == 0).float().mean().item()
    assert silent >= 0.9, f"feature {feature} fires on {1 - silent:.0%} of correctly spelt code tokens"
    assert acts[typo].median() > spelt.quantile(0.999), (
        f"median on misspelt keywords {acts[typo].median():.2f}, 99.9th percentile on other code tokens "
        f"{spelt.quantile(0.999):.2f}")
    chosen = {c: {"feature": f["feature"]} for c, f in card("sae")["features"].items()}
    measured = script().measure_features(sae("sae"), lm(), data, sae("sae").hook_name, chosen, docs)
    recall = measured["code_error"]["heldout_doc_recall"]
    assert recall >= 0.8, f"feature {feature} fires on the misspelt keyword in {recall:.0%} of documents with one"


def test_token_labels_mark_what_the_generator_made():
    docs = corpus.generate_documents(400, seed=TEST_SEED, split="heldout")
    for doc in docs:
        pieces, labels = corpus.token_labels(doc)
        assert all(len(v) == len(pieces) for v in labels.values())
        if doc.genre != "code":
            assert not any(labels["code_error"])
        if doc.genre != "dialogue":
            assert not any(labels["praise"])
    typo_docs = [d for d in docs if d.genre == "code" and any(corpus.token_labels(d)[1]["code_error"])]
    assert typo_docs and all(any(t in d.text for t in corpus.TYPO_WORDS) for d in typo_docs)
    dialogues = [d for d in docs if d.genre == "dialogue"]
    share = sum(map(corpus.is_praise_dialogue, (d.text for d in dialogues))) / len(dialogues)
    assert 0.6 <= share <= 0.9, f"praise dialogues {share:.2f}; the generator makes {corpus.DIALOGUE_PRAISE_RATE}"
