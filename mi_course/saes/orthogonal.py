"""OrtSAE (Korznikov, Galichin, Dontsov, Rogov, Tutubalina and Oseledets, 2025): a BatchTopK SAE whose loss
also penalizes features that point the same way, to discourage absorption and composition.

The penalty (the seed's formula): the mean over features of each feature's largest cosine similarity to
another decoder row,

    P(W_dec) = 1/d_sae * sum_i max_{j != i} cos(W_dec[i], W_dec[j]).

Exactly that needs all d_sae^2 cosines. The chunked form splits the features at random into ``n_chunks``
groups every step and takes each maximum within the feature's group only, so with a fixed group size the
cost grows linearly in d_sae; it never exceeds the exact penalty, and with one chunk it is the exact one.
"""

from __future__ import annotations

import math

import torch
from einops import einsum
from jaxtyping import Float

from mi_course.saes.base import variant
from mi_course.saes.batch_topk import BatchTopKSAE


def _unit_rows(W: torch.Tensor) -> torch.Tensor:
    return W / W.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _max_other_cosine(rows: Float[torch.Tensor, "m d"], others: Float[torch.Tensor, "n d"],
                      self_index: torch.Tensor) -> Float[torch.Tensor, "m"]:
    """For each of ``rows``: the largest cosine to ``others``, skipping column ``self_index[r]`` (itself)."""
    cos = einsum(rows, others, "m d, n d -> m n")
    itself = torch.zeros_like(cos, dtype=torch.bool).scatter_(1, self_index[:, None], True)
    return cos.masked_fill(itself, -math.inf).max(dim=-1).values


def max_cosine_similarities(W_dec: Float[torch.Tensor, "d_sae d_in"], block: int = 1024
                            ) -> Float[torch.Tensor, "d_sae"]:
    """Each feature's largest cosine similarity to any other feature (exact; ``block`` rows at a time so
    the [d_sae, d_sae] matrix is never held whole). What OrtSAE lowers, and lesson 09 plots."""
    if W_dec.dim() != 2 or W_dec.shape[0] < 2:
        raise ValueError(f"W_dec must be [d_sae >= 2, d_in], got shape {tuple(W_dec.shape)}")
    W = _unit_rows(W_dec.detach())
    index = torch.arange(len(W), device=W.device)
    return torch.cat([_max_other_cosine(W[i:i + block], W, index[i:i + block]) for i in range(0, len(W), block)])


def orthogonality_penalty(W_dec: Float[torch.Tensor, "d_sae d_in"], n_chunks: int = 1,
                          generator: torch.Generator | None = None) -> Float[torch.Tensor, ""]:
    """The mean over features of the largest cosine to another feature of the same chunk; the features are
    permuted at random (``generator``) and split into ``n_chunks`` near-equal chunks. ``n_chunks=1`` is the
    exact penalty (no permutation needed). Differentiable in ``W_dec``."""
    d_sae = W_dec.shape[0]
    if not isinstance(n_chunks, int) or not 1 <= n_chunks <= d_sae // 2:
        raise ValueError(f"n_chunks must be an int in 1..d_sae/2={d_sae // 2} (each chunk needs two features), "
                         f"got {n_chunks!r}")
    W = _unit_rows(W_dec)
    if n_chunks == 1:
        chunks = [torch.arange(d_sae, device=W.device)]
    else:
        chunks = torch.randperm(d_sae, generator=generator).to(W.device).tensor_split(n_chunks)
    total = W.new_zeros(())
    for chunk in chunks:
        w = W[chunk]
        total = total + _max_other_cosine(w, w, torch.arange(len(chunk), device=W.device)).sum()
    return total / d_sae


@variant
class OrtSAE(BatchTopKSAE):
    """BatchTopK plus ``orthogonality_coefficient * orthogonality_penalty(W_dec, n_chunks)``. ``n_chunks``
    defaults to one chunk per 2048 features (the exact penalty up to 4096 features)."""

    architecture = "ortsae"

    def __init__(self, d_in: int, d_sae: int, k: float = 32, orthogonality_coefficient: float = 1.0,
                 n_chunks: int | None = None, threshold_momentum: float = 0.01, seed: int = 0,
                 hook_name: str | None = None):
        super().__init__(d_in, d_sae, k=k, threshold_momentum=threshold_momentum, seed=seed, hook_name=hook_name)
        if not orthogonality_coefficient >= 0:
            raise ValueError(f"orthogonality_coefficient must be >= 0, got {orthogonality_coefficient!r}")
        if n_chunks is None:
            n_chunks = max(1, min(d_sae // 2, round(d_sae / 2048)))
        if not isinstance(n_chunks, int) or not 1 <= n_chunks <= d_sae // 2:
            raise ValueError(f"n_chunks must be an int in 1..d_sae/2={d_sae // 2}, got {n_chunks!r}")
        self.orthogonality_coefficient, self.n_chunks = float(orthogonality_coefficient), n_chunks

    def extra_loss(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        penalty = orthogonality_penalty(self.W_dec, self.n_chunks, generator)
        return {"orthogonality": self.orthogonality_coefficient * penalty}

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "orthogonality_coefficient": self.orthogonality_coefficient,
                "n_chunks": self.n_chunks}
