"""Working with factored matrices (TransformerLens ``FactoredMatrix``) without multiplying them out.

Helpers that lesson 05's notebook and later lessons use beside the learner's own circuits: some rows of a
full circuit, the Frobenius norm of a product from its factors, and the chance level of composition.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens import FactoredMatrix


def circuit_rows(matrix: FactoredMatrix, rows: Int[torch.Tensor, "n"]) -> Float[torch.Tensor, "n cols"]:
    """Some rows of a factored ``[rows, cols]`` matrix, multiplied out: ``A[rows] @ B`` (cheap even when
    the whole matrix, d_vocab x d_vocab, would not fit in memory)."""
    rows = torch.as_tensor(rows, dtype=torch.long, device=matrix.A.device)
    with torch.no_grad():
        return matrix.A[rows] @ matrix.B


def frobenius_of_product(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``||left @ right||_F`` over the last two axes, from the small Gram matrices of the two factors
    (``||XY||^2 = sum((X^T X) * (Y Y^T))``), never forming the ``d_model x d_model`` product."""
    gram = (left.transpose(-1, -2) @ left) * (right @ right.transpose(-1, -2))
    return gram.sum((-1, -2)).clamp(min=0).sqrt()


def composition_baseline(d_model: int, d_head: int, n_samples: int = 200, seed: int = 0) -> float:
    """The mean composition ratio of random matrices shaped like two heads' (``W_V W_O`` of rank ``d_head``
    in ``d_model`` dimensions, Gaussian factors): what "no composition beyond chance" looks like."""
    g = torch.Generator().manual_seed(seed)
    V0, V1 = (torch.randn(n_samples, d_model, d_head, generator=g) for _ in range(2))
    O0, O1 = (torch.randn(n_samples, d_head, d_model, generator=g) for _ in range(2))
    ratio = frobenius_of_product(V0, O0 @ V1 @ O1) / (frobenius_of_product(V0, O0) * frobenius_of_product(V1, O1))
    return ratio.mean().item()
