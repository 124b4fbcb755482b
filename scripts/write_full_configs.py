"""Write mi_course/models/full_configs/*.json: the full models' hyper-parameters, for the offline dry run.

The HookedTransformer configs come from TransformerLens's own loading code
(``transformer_lens.loading_from_pretrained.get_pretrained_model_config``, with ``from_pretrained``'s default
``fold_ln=True``), fed offline with each model's published raw config instead of the file it would download:

* GPT-2 small: ``transformers.GPT2Config()``'s defaults, which are GPT-2 small's (plus ``n_ctx`` 1024, as in
  the hub's config.json), written to a temporary folder that TransformerLens reads like a local model;
* attn-only-1l / attn-only-2l: the raw config.json of NeelNanda/Attn_Only_{1,2}L512W_C4_Code (the keys
  ``convert_neel_model_config`` reads), handed to that function in place of the download.

Only the keys that differ from ``HookedTransformerConfig``'s defaults are written. Run after upgrading
TransformerLens; tests/test_full_dry_run.py checks the files against the models' published shapes.

    python scripts/write_full_configs.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

FOLDER = Path(__file__).resolve().parents[1] / "mi_course" / "models" / "full_configs"

# The raw config.json of Neel Nanda's attention-only models (C4 + code, 512 wide, 8 heads of 64).
ATTN_ONLY_RAW = {"d_model": 512, "d_mlp": 2048, "d_head": 64, "n_heads": 8, "n_ctx": 1024, "d_vocab": 48262,
                 "tokenizer_name": "NeelNanda/gpt-neox-tokenizer-digits", "act_fn": "solu_ln", "attn_only": True,
                 "normalization": "LN", "shortformer_pos": False}

# Tokenizers: the real ones' size and special tokens; mi_course.models.dry_run builds a stand-in from this.
GPT2_TOKENIZER = {"name": "gpt2", "vocab_size": 50257, "special_tokens": {"<|endoftext|>": 50256},
                  "bos": "<|endoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>", "pad": "<|endoftext|>",
                  "split_digits": False}
NEOX_DIGITS_TOKENIZER = {"name": "NeelNanda/gpt-neox-tokenizer-digits", "vocab_size": 48262,
                         "special_tokens": {"<|endoftext|>": 0, "<|padding|>": 1},
                         "bos": "<|endoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>",
                         "pad": "<|padding|>", "split_digits": True}

SAE_GPT2_SMALL_RES_JB = {
    "source": "SAELens release gpt2-small-res-jb (Bloom, 2024): one standard ReLU SAE per residual stream "
              "input of GPT-2 small, 32x expansion",
    "release": "gpt2-small-res-jb", "architecture": "standard", "d_in": 768, "d_sae": 24576,
    "sae_ids": None,  # filled in from SAELens's own registry of the release (saelens_sae_ids)
    "apply_b_dec_to_input": True, "normalize_activations": "none",
    "metadata": {"model_name": "gpt2-small", "context_size": 128, "prepend_bos": True,
                 "dataset_path": "Skylion007/openwebtext",
                 "model_from_pretrained_kwargs": {"center_writing_weights": True}},
}


def saelens_sae_ids(release: str) -> list[str]:
    """The SAE ids of ``release`` as the installed SAELens lists them (its pretrained_saes.yaml)."""
    from importlib.resources import files

    import yaml

    registry = yaml.safe_load((files("sae_lens") / "pretrained_saes.yaml").read_text())
    return [sae["id"] for sae in registry[release]["saes"]]


def _non_default(cfg) -> dict:
    from transformer_lens import HookedTransformerConfig

    default = HookedTransformerConfig(n_layers=1, d_model=cfg.d_model, n_ctx=cfg.n_ctx, d_head=cfg.d_head,
                                      n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab, act_fn=cfg.act_fn)
    keep = {"n_layers", "d_model", "n_ctx", "d_head", "n_heads", "d_mlp", "d_vocab", "act_fn", "model_name"}
    out = {}
    for key, value in vars(cfg).items():
        if key in ("device", "dtype", "tokenizer_name", "init_weights", "n_params", "d_vocab_out"):
            continue  # the machine's, a download's, or derived from the others
        if hasattr(value, "item"):
            value = value.item()
        if key in keep or value != getattr(default, key, object()):
            out[key] = value
    return dict(sorted(out.items()))


def gpt2_small_cfg():
    from transformer_lens import loading_from_pretrained as lfp
    from transformers import GPT2Config

    with tempfile.TemporaryDirectory() as folder:
        GPT2Config(n_ctx=1024, architectures=["GPT2LMHeadModel"]).save_pretrained(folder)
        cfg = lfp.get_pretrained_model_config(folder, fold_ln=True, device="cpu")
    cfg.model_name = "gpt2"
    return cfg


def attn_only_cfg(n_layers: int):
    from transformer_lens import loading_from_pretrained as lfp

    name = f"NeelNanda/Attn_Only_{n_layers}L512W_C4_Code"
    raw = {**ATTN_ONLY_RAW, "n_layers": n_layers}
    with mock.patch.object(lfp.utils, "download_file_from_hf", return_value=raw):
        return lfp.get_pretrained_model_config(name, fold_ln=True, device="cpu")


def main() -> None:
    from importlib.metadata import version as installed

    FOLDER.mkdir(parents=True, exist_ok=True)
    version = installed("transformer-lens")
    files = {
        "gpt2-small.json": {"source": f"GPT-2 small (Radford et al., 2019) as TransformerLens {version} loads it",
                            "cfg": _non_default(gpt2_small_cfg()), "tokenizer": GPT2_TOKENIZER},
        "attn-only-1l.json": {"source": f"NeelNanda/Attn_Only_1L512W_C4_Code as TransformerLens {version} loads it",
                              "cfg": _non_default(attn_only_cfg(1)), "tokenizer": NEOX_DIGITS_TOKENIZER},
        "attn-only-2l.json": {"source": f"NeelNanda/Attn_Only_2L512W_C4_Code as TransformerLens {version} loads it",
                              "cfg": _non_default(attn_only_cfg(2)), "tokenizer": NEOX_DIGITS_TOKENIZER},
        "sae-gpt2-small-res-jb.json": {**SAE_GPT2_SMALL_RES_JB,
                                       "sae_ids": saelens_sae_ids(SAE_GPT2_SMALL_RES_JB["release"])},
    }
    for name, content in files.items():
        (FOLDER / name).write_text(json.dumps(content, indent=2) + "\n")
        print("wrote", FOLDER / name)


if __name__ == "__main__":
    main()
