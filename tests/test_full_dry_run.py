"""The dry run (MI_COURSE_DRY_RUN=1): full mode builds the real architectures at random weights, offline.

The expected shapes are the published ones (Radford et al. 2019 for GPT-2 small; TransformerLens's model
table for the attention-only models; Olah et al. for InceptionV1's mixed3b; Bloom 2024 for the res-jb SAEs),
not read back from the configs under test.
"""

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
import torch

import mi_course
from mi_course import config, load_model
from mi_course.lessons import run_notebook
from mi_course.models import dry_run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LIMIT_SECONDS = 900  # a hang guard per notebook, not a benchmark (`make dry-run` prints the times)
# The notebook dry runs take minutes each on a CPU (00-08: 341 s together on an idle 2-core machine; 09: 895 s),
# too long for CI's default run: they run with MI_COURSE_DRY_RUN=1 set, as in `make dry-run`.
RUN_NOTEBOOKS = os.environ.get(config.DRY_RUN_ENV) == "1"


@pytest.fixture
def dry(monkeypatch):
    monkeypatch.setenv(config.DRY_RUN_ENV, "1")
    monkeypatch.setenv(config.MODE_ENV, "full")
    config.set_mode(None)


@pytest.fixture(scope="module")
def gpt2():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(config.DRY_RUN_ENV, "1")
        return load_model("lm", mode="full", device="cpu")


def test_gpt2_small_has_the_real_shape(gpt2):
    cfg = gpt2.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == (12, 768, 12, 64, 3072)
    assert (cfg.d_vocab, cfg.n_ctx, cfg.act_fn, cfg.positional_embedding_type) == (50257, 1024, "gelu_new",
                                                                                    "standard")
    assert cfg.normalization_type == "LNPre", "from_pretrained folds the LayerNorms: full mode sees LNPre"
    assert gpt2.W_E.shape == (50257, 768) and gpt2.W_pos.shape == (1024, 768)
    logits = gpt2(torch.tensor([[50256, 464, 3290]]))
    assert logits.shape == (1, 3, 50257) and torch.isfinite(logits).all()


def test_gpt2_stand_in_tokenizer_is_shaped_like_gpt2s(gpt2):
    tok = gpt2.tokenizer
    assert len(tok) == 50257
    assert tok.bos_token_id == tok.eos_token_id == 50256 and tok.all_special_ids == [50256]
    tokens = gpt2.to_tokens("When Mary and John went to the store, John gave a drink to Mary.")
    assert tokens[0, 0].item() == 50256, "to_tokens starts with <|endoftext|> as GPT-2's does"
    assert gpt2.to_str_tokens(" Mary", prepend_bos=False) == [" Mary"], "a common word is one token, space first"
    text = "The lighthouse keeper, Elena Marsh, climbed 112 steps.\ndef f(x):\n    return x"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text, "byte-level BPE round-trips any text"
    assert (gpt2.to_tokens("zqxj ✓ 日本", prepend_bos=False) < 50256).all(), "unknown text falls back to bytes"


@pytest.mark.parametrize("role, n_layers", [("attn-only-1l", 1), ("attn-only-2l", 2)])
def test_attn_only_models_have_the_real_shape(dry, role, n_layers):
    model = load_model(role, device="cpu")
    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.n_ctx) == (n_layers, 512, 8, 64, 1024)
    assert cfg.attn_only and cfg.d_vocab == 48262 and cfg.normalization_type == "LNPre"
    assert len(model.tokenizer) == 48262 and model.tokenizer.bos_token_id == 0  # gpt-neox: <|endoftext|> is 0
    assert model.to_str_tokens("1732", prepend_bos=False) == ["1", "7", "3", "2"], "the digits tokenizer splits"
    _, cache = model.run_with_cache("When Mary and John went to the store")
    assert cache["pattern", n_layers - 1].shape[1] == 8
    unfolded = dry_run.hooked_transformer(role, fold_ln=False)  # from_pretrained's argument, as in full mode
    assert unfolded.cfg.normalization_type == "LN" and unfolded.ln_final.w.shape == (512,)


def test_inceptionv1_and_alexnet_are_the_real_architectures(dry):
    inception = load_model("vision", device="cpu")
    acts = {}
    inception.mixed3b.register_forward_hook(lambda module, args, out: acts.setdefault("mixed3b", out))
    with torch.no_grad():
        inception(torch.rand(1, 3, 224, 224))
    assert acts["mixed3b"].shape == (1, 480, 28, 28), "mixed3b: 128 + 192 + 96 + 64 channels"
    alexnet = load_model("vision-b", device="cpu")
    with torch.no_grad():
        assert alexnet(torch.rand(2, 3, 224, 224)).shape == (2, 1000)
    assert sum(p.numel() for p in alexnet.parameters()) == 61_100_840


def test_sae_has_the_res_jb_shape_and_reads_its_hook(dry):
    sae = load_model("sae", device="cpu")
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (768, 24576)
    assert sae.cfg.metadata.hook_name == "blocks.8.hook_resid_pre" and sae.cfg.metadata.model_name == "gpt2-small"
    features = sae.encode(torch.randn(3, 768))
    assert features.shape == (3, 24576) and (features >= 0).all()
    assert dry_run.saelens_sae(sae_id="blocks.3.hook_resid_pre").cfg.metadata.hook_name == "blocks.3.hook_resid_pre"
    with pytest.raises(KeyError, match="blocks.8.hook_resid_post"):
        dry_run.saelens_sae(sae_id="blocks.8.hook_resid_post")


def test_the_dry_runs_sae_ids_are_saelenss_own_for_the_release():
    """The ids come from SAELens's registry (its pretrained_saes.yaml), not from a pattern of ours: res-jb has
    blocks.11.hook_resid_post and no blocks.12.hook_resid_pre (issue 25)."""
    from importlib.resources import files

    import yaml

    spec = dry_run.full_config("sae-gpt2-small-res-jb")
    registry = yaml.safe_load((files("sae_lens") / "pretrained_saes.yaml").read_text())
    assert spec["sae_ids"] == [sae["id"] for sae in registry[spec["release"]]["saes"]]
    assert dry_run.saelens_sae(sae_id="blocks.11.hook_resid_post").cfg.metadata.hook_name == "blocks.11.hook_resid_post"
    with pytest.raises(KeyError, match="blocks.12.hook_resid_pre"):
        dry_run.saelens_sae(sae_id="blocks.12.hook_resid_pre")


def test_sae_loads_without_saelenss_processing_warning_only_when_the_course_meets_it(dry, monkeypatch):
    # res-jb asks for center_writing_weights=True, which from_pretrained's defaults (the course's) already do
    import warnings

    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from mi_course.models import full

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full.saelens_sae()
    assert not [w for w in caught if full.SAE_KWARGS_WARNING in str(w.message)], [str(w.message) for w in caught]

    def asks(kwargs):
        meta = SAEMetadata(hook_name="blocks.8.hook_resid_pre", model_from_pretrained_kwargs=kwargs)
        return lambda *a, **k: StandardSAE(StandardSAEConfig(d_in=8, d_sae=16, metadata=meta))

    for kwargs in ({"center_writing_weights": False}, {"fold_ln": False}, {"some_new_option": 1}):
        monkeypatch.setattr(full, "_load_saelens_sae", asks(kwargs))
        with pytest.warns(UserWarning, match="model_from_pretrained_kwargs"):
            full.saelens_sae()


def test_builds_are_seeded_and_leave_the_callers_random_state_alone(dry):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = load_model("attn-only-1l", device="cpu")
    assert torch.equal(torch.rand(3), expected_next), "building a model must not consume the caller's RNG"
    second = load_model("attn-only-1l", device="cpu")
    assert torch.equal(first.W_Q, second.W_Q) and torch.equal(first.W_E, second.W_E)


def test_lite_mode_ignores_the_dry_run(dry):
    model = load_model("attn-only-1l", mode="lite", device="cpu")
    assert model.cfg.d_vocab != 48262, "lite mode loads the shipped checkpoint, dry run or not"


def test_configs_match_what_transformer_lens_computes():
    spec = importlib.util.spec_from_file_location("write_full_configs", ROOT / "scripts" / "write_full_configs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert dry_run.full_config("gpt2-small")["cfg"] == script._non_default(script.gpt2_small_cfg()), \
        "full_configs/gpt2-small.json is stale: run python scripts/write_full_configs.py"
    for n in (1, 2):
        assert dry_run.full_config(f"attn-only-{n}l")["cfg"] == script._non_default(script.attn_only_cfg(n)), \
            f"full_configs/attn-only-{n}l.json is stale: run python scripts/write_full_configs.py"
    with pytest.raises(KeyError, match="known: "):
        dry_run.full_config("gpt2-xl")


def test_claim_is_skipped_in_a_dry_run_and_checked_otherwise(dry, capsys, monkeypatch):
    called = []
    assert mi_course.claim("an induction head exists", lambda: called.append(1) or True) is None
    assert not called, "a skipped claim must not compute anything"
    assert "dry run: random weights, claim not checked: an induction head exists" in capsys.readouterr().out
    monkeypatch.setenv(config.MODE_ENV, "lite")
    assert mi_course.claim("two is more than one", 2 > 1) is None, "a cell ending in a claim would show True"
    assert "\u2713 two is more than one" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="the loss falls"):
        mi_course.claim("the loss falls", lambda: False)


def test_run_dry_run_sets_full_mode_and_the_variable_for_the_kernels(monkeypatch, tmp_path):
    from mi_course import cli, lessons

    seen = []

    def fake_run(path, out_dir, cell_timeout, impl, mode):
        seen.append((mode, os.environ.get(config.DRY_RUN_ENV), Path(out_dir).name))
        return lessons.RunResult(Path(path).stem, "ok", 0.0)

    monkeypatch.delenv(config.DRY_RUN_ENV, raising=False)
    monkeypatch.setattr(lessons, "run_notebook", fake_run)
    assert cli.main(["run", "--dry-run", "00", "--out", str(tmp_path / "out")]) == 0
    assert seen == [("full", "1", "out")]
    assert config.DRY_RUN_ENV not in os.environ, "the variable is restored after the run"


def _printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


@pytest.mark.slow
@pytest.mark.skipif(not RUN_NOTEBOOKS, reason="run with MI_COURSE_DRY_RUN=1 (minutes per notebook)")
@pytest.mark.timeout(LIMIT_SECONDS + 60)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_runs_in_full_mode_at_random_weights(notebook, tmp_path, monkeypatch):
    """`make dry-run` for one notebook: every code cell executes in full mode, every check() passes (graded
    on the lite models), and the notebook says it ran at random weights."""
    monkeypatch.setenv(config.DRY_RUN_ENV, "1")
    result = run_notebook(notebook, tmp_path, impl="solutions", cell_timeout=LIMIT_SECONDS, mode="full")
    assert result.status == "ok", f"{notebook.name} in the dry run: {result.error}"
    cells = [c for c in nbformat.read(tmp_path / notebook.name, as_version=4).cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells), "a code cell did not run"
    assert "mode full (dry run" in _printed(cells[0]), "the setup cell should say that this is a dry run"
    feedback = [_printed(c) for c in cells if "check(" in c.source]
    assert all(t.startswith("PASS") for t in feedback), feedback
