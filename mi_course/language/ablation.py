"""Head ablation: replace one attention head's output by zeros or by its mean, through a hook.

Lessons use it after their own ``ablate_head_loss`` exercise (to remove several heads at once), and later
lessons (activation patching, circuits in the wild) build on the same hook names:

    name, hook = head_ablation_hook(model, layer=1, head=2, kind="mean", tokens=tokens)
    with model.hooks(fwd_hooks=[(name, hook)]):
        logits = model(tokens)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Int

ABLATIONS = ("zero", "mean")


def check_head(model, layer: int, head: int) -> None:
    if not (isinstance(layer, int) and 0 <= layer < model.cfg.n_layers):
        raise ValueError(f"layer must be an int in 0..{model.cfg.n_layers - 1}, got {layer!r}")
    if not (isinstance(head, int) and 0 <= head < model.cfg.n_heads):
        raise ValueError(f"head must be an int in 0..{model.cfg.n_heads - 1}, got {head!r}")


def head_ablation_hook(model, layer: int, head: int, kind: str = "zero",
                       tokens: Int[torch.Tensor, "batch pos"] | None = None) -> tuple[str, Callable]:
    """``(hook name, hook function)`` that replaces one head's output ``z`` (``blocks.{layer}.attn.hook_z``,
    ``[batch, pos, head, d_head]``) by zeros (``kind="zero"``) or by its mean over batch and positions on
    ``tokens`` (``kind="mean"``; needs ``tokens``). Attach it with ``model.hooks([...])`` or
    ``model.run_with_hooks``, which remove it again. The head's output is ``z @ W_O``, so ablating ``z``
    ablates exactly that head's contribution to the residual stream (the layer's bias ``b_O`` stays)."""
    check_head(model, layer, head)
    if kind not in ABLATIONS:
        raise ValueError(f"kind must be one of {ABLATIONS}, got {kind!r}")
    name = f"blocks.{layer}.attn.hook_z"
    if kind == "zero":
        replacement = torch.zeros(model.cfg.d_head, device=model.cfg.device)
    else:
        if tokens is None:
            raise ValueError("mean ablation needs the tokens to average the head's output over")
        _, cache = model.run_with_cache(tokens, names_filter=name)
        replacement = cache[name][:, :, head].mean(dim=(0, 1))  # [d_head]: one vector for every position

    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = replacement
        return z

    return name, hook
