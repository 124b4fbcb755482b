# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 00, start here: the warm-up exercise."""

import torch
from jaxtyping import Float


# >>> exercise: cosine_similarity_matrix
def cosine_similarity_matrix(vectors: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n n"]:
    """Cosine similarity between every pair of rows of ``vectors``.

    Entry (i, j) is <v_i, v_j> / (|v_i| |v_j|). A row of zeros has similarity 0 with everything (not NaN).
    The input must not be changed.
    """
    raise NotImplementedError("exercise 00.cosine_similarity_matrix: not started yet")
# <<< exercise: cosine_similarity_matrix
