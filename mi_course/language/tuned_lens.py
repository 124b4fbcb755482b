"""The tuned lens (Belrose et al., 2023, "Eliciting Latent Predictions from Transformers with the Tuned Lens").

The logit lens decodes an intermediate residual as if it were the last one. But the residual stream drifts
from layer to layer (directions rotate, get rescaled, pick up a bias), so an early layer may *know* the next
token in a basis that the unembedding reads wrongly. The tuned lens learns one affine **translator** per
layer, ``h -> A_l h + b_l``, that maps the residual after layer ``l`` to what the final layer would hold, and
decodes the result the logit lens's way (final LayerNorm, unembedding):

    tuned lens at row l = unembed(ln_final(A_l h_l + b_l))

Each translator starts as the identity (``A_l = I``, ``b_l = 0``, so an untrained tuned lens *is* the logit
lens) and is trained to minimize KL(final || translated layer) on some text, with the model frozen.

Representation used throughout the course: an ``nn.ModuleList`` of ``n_layers + 1`` ``nn.Linear(d_model,
d_model)``; translator ``l`` acts on row ``l`` of :func:`mi_course.language.logit_lens.accumulated_residuals`
(row 0 = the embeddings). The last one stays the identity: the final residual needs no translation.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
from jaxtyping import Float, Int

from mi_course.language.logit_lens import accumulated_residuals, decode_residual


def identity_translators(d_model: int, n: int, device=None) -> nn.ModuleList:
    """``n`` affine maps ``nn.Linear(d_model, d_model)`` set to the identity (weight I, bias 0)."""
    translators = nn.ModuleList(nn.Linear(d_model, d_model, device=device) for _ in range(n))
    with torch.no_grad():
        for t in translators:
            t.weight.copy_(torch.eye(d_model, device=device))
            t.bias.zero_()
    return translators


@contextmanager
def frozen(model):
    """Turn off gradients for the model's own parameters for a while (they get none, and nothing changes)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def residuals(model, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "layer_plus_1 batch pos d_model"]:
    """The accumulated residuals of ``tokens`` (no gradients, hooks removed afterwards)."""
    names = {"blocks.0.hook_resid_pre", *(f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers))}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return accumulated_residuals(cache)


def train_tuned_lens(model, tokens: Int[torch.Tensor, "batch pos"], steps: int = 50,
                     lr: float = 1e-2) -> nn.ModuleList:
    """Train one translator per layer on ``tokens`` (full batch, deterministic: identity start, no sampling).

    Loss of a step: the mean over layers ``l < n_layers``, sequences and positions of KL(final || tuned lens
    at l), the final distribution being the model's own (fixed) output. Adam with learning rate ``lr``,
    ``steps`` steps on the translators of rows 0 .. n_layers - 1; the last translator stays the identity and
    the model is not changed. Each layer's term is backpropagated on its own, so only one layer's
    ``[batch, pos, d_vocab]`` logits are held at a time (GPT-2's vocabulary is 50257 wide).
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    resid = residuals(model, tokens)
    translators = identity_translators(d_model, n_layers + 1, device=resid.device)
    with torch.no_grad():
        target = decode_residual(model, resid[-1]).log_softmax(dim=-1)  # log p_final, fixed
        p_target = target.exp()
    trained = translators[:-1]
    optimizer = torch.optim.Adam(trained.parameters(), lr=lr)
    # enable_grad: an earlier lesson's torch.set_grad_enabled(False) in the same kernel must not stop training
    with frozen(model), torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            for layer in range(n_layers):
                logq = decode_residual(model, trained[layer](resid[layer])).log_softmax(dim=-1)
                kl = (p_target * (target - logq)).sum(dim=-1).mean()
                (kl / n_layers).backward()
            optimizer.step()
    return translators


def tuned_lens_logits(model, translators: nn.ModuleList, tokens: Int[torch.Tensor, "batch pos"]
                      ) -> Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]:
    """The tuned lens: row ``l`` is ``decode_residual(model, translators[l](resid_l))``; with identity
    translators this is exactly the logit lens."""
    if len(translators) != model.cfg.n_layers + 1:
        raise ValueError(f"expected {model.cfg.n_layers + 1} translators (one per row of the logit lens), got "
                         f"{len(translators)}")
    resid = residuals(model, tokens)
    with torch.no_grad():
        return torch.stack([decode_residual(model, t(r)) for t, r in zip(translators, resid)])
