"""The TopK SAE (Gao et al., 2024): keep the ``k`` largest pre-activations of each row, ReLU them, zero the
rest. The sparsity is set by ``k`` itself, so there is no sparsity penalty.

Ties are broken toward the lower feature index, so that the same input always selects the same features
(``torch.topk`` leaves the order of equal values unspecified). Training decodes only the ``k`` active rows
of ``W_dec`` (:meth:`~mi_course.saes.base.SparseAutoencoder.decode_rows`), forward and backward.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from mi_course.saes.base import SparseAutoencoder, TrainStep, fired_features, variant


def top_k(scores: Float[torch.Tensor, "n m"], k: int
          ) -> tuple[Float[torch.Tensor, "n k"], Int[torch.Tensor, "n k"]]:
    """``(values, indices)`` of the ``k`` largest entries of each row; among equal values at the cut the
    lower indices win. Gradients flow to ``scores`` through ``values``."""
    if scores.dim() != 2:
        raise ValueError(f"top_k takes [rows, entries], got shape {tuple(scores.shape)}")
    if not isinstance(k, int) or not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"k must be an int in 1..{scores.shape[-1]}, got {k!r}")
    values, indices = scores.topk(k, dim=-1, sorted=False)
    kth = values.min(-1, keepdim=True).values
    tied = (scores >= kth).sum(-1) > k  # more entries reach the k-th value than there are places
    if tied.any():
        # a stable sort keeps equal values in index order, so the first k are the lowest-indexed
        indices = indices.clone()
        indices[tied] = scores[tied].detach().sort(dim=-1, descending=True, stable=True).indices[:, :k]
        values = scores.gather(-1, indices)
    return values, indices


def topk_activation(pre: Float[torch.Tensor, "... d_sae"], k: int) -> Float[torch.Tensor, "... d_sae"]:
    """Dense TopK: ``ReLU`` of the ``k`` largest entries of each row, zeros elsewhere."""
    flat = pre.reshape(-1, pre.shape[-1])
    values, indices = top_k(flat, k)
    return torch.zeros_like(flat).scatter(-1, indices, values.relu()).reshape(pre.shape)


@variant
class TopKSAE(SparseAutoencoder):
    architecture = "topk"
    sparse_decoding = True

    def __init__(self, d_in: int, d_sae: int, k: int = 32, seed: int = 0, hook_name: str | None = None):
        super().__init__(d_in, d_sae, seed=seed, hook_name=hook_name)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d_sae:
            raise ValueError(f"k must be an int in 1..d_sae={d_sae}, got {k!r}")
        self.k = k

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        return topk_activation(pre, self.k)

    def training_terms(self, x: Float[torch.Tensor, "batch d_in"]) -> TrainStep:
        pre = self.pre_activations(x)
        values, indices = top_k(pre, self.k)
        values = values.relu()
        return TrainStep(pre=pre, x_hat=self.decode_rows(indices, values) + self.b_dec, acts=None,
                         fired=fired_features(indices, values, self.d_sae), l0=(values > 0).sum(-1).float().mean())

    def hyperparameters(self) -> dict:
        return {"k": self.k}
