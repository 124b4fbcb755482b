"""SAELens both ways: save a course SAE in SAELens's folder format, and turn a SAELens SAE into a course one.

    save_saelens(sae, "out/my_sae", model_name="lite-lm")      # cfg.json + sae_weights.safetensors
    sae_lens.SAE.load_from_disk("out/my_sae")                  # the same encode and decode
    from_saelens(sae_lens.SAE.load_from_disk("out/my_sae"))    # and back to a course SAE

SAELens architectures (sae-lens 6; ``sae_lens/saes/*.py``): every one computes
``pre = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc`` and ``x_hat = acts @ W_dec + b_dec``, with

    standard   acts = ReLU(pre)                                       <- course ReLUSAE
    topk       acts = ReLU of the k largest pre, zeros elsewhere       <- course TopKSAE
    jumprelu   acts = ReLU(pre) * (pre > threshold), per feature      <- course JumpReLUSAE, and BatchTopKSAE /
                                                                          OrtSAE at inference (one threshold
                                                                          repeated, as SAELens saves BatchTopK)

The course subtracts ``b_dec`` from the input too, so the export is exact (``apply_b_dec_to_input: true``).
The course's own settings ride along in ``cfg.metadata.mi_course``. Only ``normalize_activations: none`` SAEs
import (an SAE with a runtime normalization does not fit the course's interface).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from mi_course.saes.base import SparseAutoencoder
from mi_course.saes.jumprelu import JumpReLUSAE
from mi_course.saes.relu import ReLUSAE
from mi_course.saes.topk import TopKSAE

CFG_FILENAME = "cfg.json"  # sae_lens.constants.SAE_CFG_FILENAME
WEIGHTS_FILENAME = "sae_weights.safetensors"  # sae_lens.constants.SAE_WEIGHTS_FILENAME
SAELENS_ARCHITECTURE = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu",
                        "ortsae": "jumprelu"}


def _sae_lens_version() -> str:
    try:
        from sae_lens import __version__
        return str(__version__)
    except ImportError:  # the files are written for SAELens 6 either way
        return "6.0.0"


def saelens_state(sae: SparseAutoencoder) -> tuple[str, dict[str, torch.Tensor], dict]:
    """(architecture, weights, architecture-specific cfg fields) of ``sae`` as SAELens stores it."""
    if sae.architecture not in SAELENS_ARCHITECTURE:
        raise ValueError(f"no SAELens architecture for {type(sae).__name__} ({sae.architecture!r})")
    architecture = SAELENS_ARCHITECTURE[sae.architecture]
    state = {k: getattr(sae, k).detach().float().cpu().contiguous() for k in ("W_enc", "W_dec", "b_enc", "b_dec")}
    fields: dict = {}
    if architecture == "topk":
        fields = {"k": sae.k, "rescale_acts_by_decoder_norm": False}
    elif sae.architecture == "jumprelu":
        state["threshold"] = sae.threshold.detach().float().cpu().contiguous()
    elif architecture == "jumprelu":  # BatchTopK at inference: one threshold for every feature
        if int(sae.threshold_updates) == 0:
            raise ValueError(f"this {type(sae).__name__} has no inference threshold yet: train it first")
        state["threshold"] = torch.full((sae.d_sae,), float(sae.threshold))
    return architecture, state, fields


def save_saelens(sae: SparseAutoencoder, path: str | Path, hook_name: str | None = None,
                 model_name: str | None = None, **metadata) -> Path:
    """Write ``cfg.json`` and ``sae_weights.safetensors`` in the folder ``path`` (made if missing) so that
    ``sae_lens.SAE.load_from_disk(path)`` loads an SAE with the same encode and decode. ``hook_name``
    defaults to ``sae.hook_name``; further keyword arguments (``context_size``, ``prepend_bos`` ...) go into
    ``cfg.metadata``."""
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"save_saelens saves a course SAE (mi_course.saes), got {type(sae).__name__}")
    architecture, state, fields = saelens_state(sae)
    hook_name = hook_name or sae.hook_name
    cfg = {
        "architecture": architecture, "d_in": sae.d_in, "d_sae": sae.d_sae, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none",
        "reshape_activations": "hook_z" if hook_name and hook_name.endswith("hook_z") else "none",
        **fields,
        "metadata": {"sae_lens_version": _sae_lens_version(), "hook_name": hook_name, "model_name": model_name,
                     **metadata, "mi_course": sae.config()},
    }
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / WEIGHTS_FILENAME))
    (folder / CFG_FILENAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return folder


@torch.no_grad()
def from_saelens(sae_lens_sae) -> SparseAutoencoder:
    """A course SAE with the same encode and decode as a SAELens ``standard``, ``topk`` or ``jumprelu`` SAE
    (``from_pretrained`` or ``load_from_disk``), on the CPU in float32."""
    cfg = sae_lens_sae.cfg
    architecture = cfg.architecture()
    if cfg.normalize_activations != "none":
        raise ValueError(f"the SAE normalizes its input at run time ({cfg.normalize_activations!r}); the course's "
                         "SAEs read raw activations")
    W_enc, W_dec, b_enc, b_dec = (getattr(sae_lens_sae, k).detach().float().cpu().clone()
                                  for k in ("W_enc", "W_dec", "b_enc", "b_dec"))
    if not cfg.apply_b_dec_to_input:  # x @ W_enc + b_enc == (x - b_dec) @ W_enc + (b_enc + b_dec @ W_enc)
        b_enc = b_enc + b_dec @ W_enc
    d_in, d_sae = W_enc.shape
    hook_name = getattr(cfg.metadata, "hook_name", None)
    if architecture == "standard":
        sae = ReLUSAE(d_in, d_sae, hook_name=hook_name)
    elif architecture == "topk":
        sae = TopKSAE(d_in, d_sae, k=int(cfg.k), hook_name=hook_name)
        if getattr(cfg, "rescale_acts_by_decoder_norm", False):
            # TopK ranked pre * ||W_dec[i]|| and decoded acts / ||W_dec[i]||: fold the norms in (exact)
            norms = W_dec.norm(dim=-1).clamp_min(1e-8)
            W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    elif architecture == "jumprelu":
        sae = JumpReLUSAE(d_in, d_sae, hook_name=hook_name)
        # ReLU(pre) * (pre > t) equals pre * (pre > max(t, 0)), the course's form
        sae.threshold.copy_(sae_lens_sae.threshold.detach().float().cpu().clamp(min=0.0))
    else:
        raise ValueError(f"SAELens architecture {architecture!r} has no course counterpart "
                         f"(standard, topk and jumprelu do)")
    for name, value in (("W_enc", W_enc), ("W_dec", W_dec), ("b_enc", b_enc), ("b_dec", b_dec)):
        getattr(sae, name).copy_(value)
    return sae.eval()


def load_saelens(path: str | Path) -> SparseAutoencoder:
    """A SAELens folder (``cfg.json`` + ``sae_weights.safetensors``) as a course SAE, through SAELens."""
    from sae_lens import SAE

    return from_saelens(SAE.load_from_disk(str(path)))
