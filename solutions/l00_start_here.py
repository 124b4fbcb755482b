"""Lesson 00, start here: the warm-up exercise."""

import torch
from jaxtyping import Float


# >>> exercise: cosine_similarity_matrix
def cosine_similarity_matrix(vectors: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n n"]:
    """Cosine similarity between every pair of rows of ``vectors``.

    Entry (i, j) is <v_i, v_j> / (|v_i| |v_j|). A row of zeros has similarity 0 with everything (not NaN).
    The input must not be changed.
    """
    # BEGIN SOLUTION
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T
    # END SOLUTION
# <<< exercise: cosine_similarity_matrix
