"""The logit lens (nostalgebraist, 2020): decode the residual stream after every layer as if it were the last.

Canonical versions for model cards, property tests and later lessons; lesson 07 asks learners to write their
own. Each intermediate residual goes through the final LayerNorm (its own statistics, recomputed) and the
unembedding, so the last row equals the model's logits.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int


def accumulated_residuals(model, tokens: Int[torch.Tensor, "batch pos"]
                          ) -> Float[torch.Tensor, "layer_plus_1 batch pos d_model"]:
    """The residual stream after the embeddings (row 0) and after each layer (rows 1..n_layers)."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return torch.stack([cache[n] for n in names])


def logit_lens(model, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]:
    with torch.no_grad():
        resid = accumulated_residuals(model, tokens)
        return model.unembed(model.ln_final(resid)) if model.cfg.normalization_type else model.unembed(resid)


def kl_to_final(lens_logits: Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]
                ) -> Float[torch.Tensor, "layer_plus_1 batch pos"]:
    """KL(final || layer) in nats for every layer; the last row is 0."""
    logp = lens_logits.log_softmax(-1)
    final = logp[-1]
    return (final.exp() * (final - logp)).sum(-1)
