"""The model registry: one call per role, verified checkpoints, clear errors offline."""

import json

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

import mi_course
from mi_course.models import checkpoints, full, registry


def _tiny_checkpoint(folder, role="attn-only-1l"):
    cfg = dict(n_layers=1, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_vocab=11, attn_only=True, act_fn=None,
               seed=0)
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    (folder / role).mkdir(parents=True)
    (folder / role / "config.json").write_text(json.dumps({"kind": "hooked_transformer", "cfg": cfg}))
    (folder / role / "card.json").write_text(json.dumps({"trained_by": "test", "heads": {"prev_token": "0.1"}}))
    checkpoints.save_state_dict(model.state_dict(), folder / role / "model.safetensors")
    checkpoints.write_manifest(folder)
    return model


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("MI_COURSE_CHECKPOINTS", str(tmp_path))
    return tmp_path, _tiny_checkpoint(tmp_path)


def test_lite_model_loads_through_registry_with_same_weights(shipped):
    _, original = shipped
    model = mi_course.load_model("attn-only-1l", mode="lite")
    assert isinstance(model, HookedTransformer) and not model.training
    tokens = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(model(tokens), original(tokens), atol=1e-6)
    card = mi_course.model_card("attn-only-1l", mode="lite")
    assert card["trained_by"] == "test" and card["role"] == "attn-only-1l" and card["input"]


def test_tampered_checkpoint_is_refused(shipped):
    folder, _ = shipped
    path = folder / "attn-only-1l" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoints.ChecksumError, match="sha256"):
        mi_course.load_model("attn-only-1l", mode="lite")


def test_unlisted_file_is_refused(shipped):
    folder, _ = shipped
    (folder / "extra.json").write_text("{}")
    with pytest.raises(checkpoints.ChecksumError, match="not in"):
        checkpoints.load_json("extra.json")


def test_unshipped_lite_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MI_COURSE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(mi_course.ModelUnavailable, match="scripts/"):
        mi_course.load_model("lm", mode="lite")
    with pytest.raises(mi_course.ModelUnavailable, match="not shipped"):
        mi_course.model_card("lm", mode="lite")


def test_unknown_role_lists_the_roles():
    with pytest.raises(KeyError, match="attn-only-2l"):
        mi_course.load_model("gpt-5")


def test_full_mode_offline_fails_fast_with_a_hint(monkeypatch):
    """No network, nothing cached: a clear error that names lite mode, without the hub's retries."""
    monkeypatch.setattr(full, "network_available", lambda *a, **k: False)
    monkeypatch.setattr(full, "_hub_file", lambda url: full.Path("/nonexistent") / "x.pth")
    for role in ("vision", "vision-b"):
        with pytest.raises(mi_course.ModelUnavailable, match="MI_COURSE_MODE=lite"):
            mi_course.load_model(role, mode="full")


def test_full_mode_offline_hub_model_sets_hf_offline(monkeypatch):
    monkeypatch.setattr(full, "network_available", lambda *a, **k: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_from_pretrained(name, **kwargs):
        import os

        calls.append((name, os.environ.get("HF_HUB_OFFLINE")))
        raise OSError("not in the local cache")

    monkeypatch.setattr(HookedTransformer, "from_pretrained", staticmethod(fake_from_pretrained))
    with pytest.raises(mi_course.ModelUnavailable, match="lite"):
        mi_course.load_model("lm", mode="full")
    assert calls == [("gpt2-small", "1")]


def test_every_role_has_a_card_and_an_input_contract():
    for role, spec in registry.ROLES.items():
        card = mi_course.model_card(role, mode="full") if spec.full_loader else None
        assert spec.input_contract and spec.description
        if card:
            assert card["source"] and card["citation"]


def test_available_models_reports_every_role(monkeypatch):
    monkeypatch.setattr(full, "network_available", lambda *a, **k: False)
    rows = mi_course.available_models()
    assert {r["role"] for r in rows} == set(registry.ROLES)
    assert all(r["lite"] in ("shipped", "not shipped", "installed", "not installed") for r in rows)
    assert {r["role"]: r["lite"] for r in rows}["smollm2-135m"] in ("installed", "not installed")


def test_normalized_wrapper_takes_unit_range_images():
    inner = torch.nn.Identity()
    wrapped = full.Normalized(inner)
    x = torch.rand(1, 3, 4, 4)
    expected = ((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    assert torch.allclose(wrapped(x), expected)


def test_full_mode_loads_any_transformer_lens_model_by_name(monkeypatch):
    """Bring your own model: in full mode a name TransformerLens knows goes to from_pretrained (its official
    name, the course's defaults); in lite mode, or for a name nobody knows, a clear error."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from mi_course.models import registry

    asked = []

    def fake_from_pretrained(name, **kwargs):
        asked.append((name, kwargs))
        cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=4, d_head=4, n_heads=2, d_vocab=5,
                                      act_fn="relu", d_mlp=16)
        return HookedTransformer(cfg)

    monkeypatch.setattr(HookedTransformer, "from_pretrained", staticmethod(fake_from_pretrained))
    monkeypatch.delenv("MI_COURSE_DRY_RUN", raising=False)
    model = registry.load_model("pythia-14m", mode="full", device="cpu")
    assert asked == [("EleutherAI/pythia-14m", {})] and not model.training
    card = registry.model_card("pythia-14m", mode="full")
    assert "EleutherAI/pythia-14m" in card["source"] and "nothing about it is measured" in card["description"]
    with pytest.raises(KeyError, match="in full mode any TransformerLens model name"):
        registry.load_model("pythia-14m", mode="lite")
    with pytest.raises(KeyError, match="unknown model role 'no-such-model'"):
        registry.load_model("no-such-model", mode="full")
    monkeypatch.setenv("MI_COURSE_DRY_RUN", "1")
    with pytest.raises(registry.ModelUnavailable, match="dry run builds only the course's own"):
        registry.load_model("pythia-14m", mode="full")
    assert len(asked) == 1
