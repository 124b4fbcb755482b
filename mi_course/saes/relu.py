"""The ReLU SAE with an L1 penalty (Bricken et al., 2023): ``acts = ReLU(pre)``,
``L = ||x - x_hat||^2 + l1_coefficient * ||acts||_1``.

The decoder's rows are kept at unit norm (see :mod:`mi_course.saes.base`), so ``||acts||_1`` is also the
decoder-norm-weighted L1, ``sum_i acts_i ||W_dec[i]||``, that SAELens's standard SAE trains with.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from mi_course.saes.base import SparseAutoencoder, variant


@variant
class ReLUSAE(SparseAutoencoder):
    architecture = "relu"

    def __init__(self, d_in: int, d_sae: int, l1_coefficient: float = 1.0, seed: int = 0,
                 hook_name: str | None = None):
        super().__init__(d_in, d_sae, seed=seed, hook_name=hook_name)
        if not l1_coefficient >= 0:
            raise ValueError(f"l1_coefficient must be >= 0, got {l1_coefficient!r}")
        self.l1_coefficient = float(l1_coefficient)

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        return torch.relu(pre)

    def sparsity_loss(self, pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        # acts >= 0, so the L1 norm is the plain sum; the mean is over the batch
        return self.l1_coefficient * acts.sum() / len(acts)

    def hyperparameters(self) -> dict:
        return {"l1_coefficient": self.l1_coefficient}
