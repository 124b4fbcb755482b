"""Dead features: which features have not fired lately, and the auxiliary loss that revives them.

A feature is dead once it has not fired (activation > 0) on any of the last ``window`` training tokens. The
AuxK loss (Gao et al., 2024) asks the ``k_aux`` most active dead features of each row to reconstruct what
the live ones missed, ``e = x - x_hat``: ``||e - e_hat||^2`` with ``e_hat`` decoded from the dead features
only (no ``b_dec``: it is already in ``x_hat``). Dead features then get gradients toward directions the SAE
lacks. It needs only pre-activations, so the course uses it for every variant (Gao et al. use
``k_aux = d_in / 2`` and a coefficient of 1/32).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float


class FiringTracker:
    """Counts, per feature, the training tokens since it last fired."""

    def __init__(self, d_sae: int, window: int, device=None):
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"the dead-feature window must be a positive number of tokens, got {window!r}")
        self.window = window
        self.tokens_since_fired = torch.zeros(d_sae, dtype=torch.long, device=device)

    def update(self, fired: Bool[torch.Tensor, "d_sae"], n_tokens: int) -> None:
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[fired] = 0

    def dead(self) -> Bool[torch.Tensor, "d_sae"]:
        return self.tokens_since_fired >= self.window


def auxk_loss(sae, x: Float[torch.Tensor, "batch d_in"], x_hat: Float[torch.Tensor, "batch d_in"],
              pre: Float[torch.Tensor, "batch d_sae"], dead: Bool[torch.Tensor, "d_sae"],
              k_aux: int | None = None) -> Float[torch.Tensor, ""]:
    """``||(x - x_hat) - e_hat||^2`` (summed over d_in, mean over the batch), ``e_hat`` decoded from each
    row's ``k_aux`` largest dead pre-activations (ReLU'd); zero when no feature is dead."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre.new_zeros(())
    k_aux = min(n_dead, k_aux or max(1, x.shape[-1] // 2))
    residual = (x - x_hat).detach()
    values, indices = pre.masked_fill(~dead, -torch.inf).topk(k_aux, dim=-1, sorted=False)
    e_hat = sae.decode_rows(indices, values.relu())
    return (e_hat - residual).pow(2).sum(-1).mean()
