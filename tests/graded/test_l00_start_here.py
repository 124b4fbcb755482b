"""Graded tests for lesson 00 (warm-up)."""

import pytest
import torch
import torch.nn.functional as F

from mi_course.grading.asserts import assert_close, assert_finite, assert_shape, call_unmutated

LESSON = "l00_start_here"


def pairwise_cosine(v):
    """Reference built a different way: one F.cosine_similarity per pair."""
    n = v.shape[0]
    return torch.tensor([[F.cosine_similarity(v[i], v[j], dim=0).item() for j in range(n)] for i in range(n)])


@pytest.mark.exercise("cosine_similarity_matrix", points=1)
def test_cosine_shape_and_diagonal(impl):
    v = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    sims = assert_shape(call_unmutated(impl.cosine_similarity_matrix, v), (5, 5), "cosine_similarity_matrix(v)")
    assert_close(sims.diagonal(), torch.ones(5), "the diagonal (each vector with itself)", atol=1e-5,
                 hint="Every vector has similarity 1 with itself: divide by both norms.")


@pytest.mark.exercise("cosine_similarity_matrix", points=2)
def test_cosine_matches_reference(impl):
    v = torch.randn(4, 7, generator=torch.Generator().manual_seed(1)) * torch.tensor([[1.0], [10.0], [0.1], [3.0]])
    got = call_unmutated(impl.cosine_similarity_matrix, v)
    dots = v @ v.T
    if isinstance(got, torch.Tensor) and got.shape == dots.shape and torch.allclose(got, dots, atol=1e-4):
        pytest.fail("You returned plain dot products: divide each row by its norm first.")
    col = F.normalize(v, dim=0)
    if isinstance(got, torch.Tensor) and got.shape == (4, 4) and torch.allclose(got, col @ col.T, atol=1e-4):
        pytest.fail("You normalized the columns (dim=0); each row is a vector, so normalize along dim=-1.")
    centred = F.normalize(v - v.mean(dim=-1, keepdim=True), dim=-1)
    if isinstance(got, torch.Tensor) and got.shape == (4, 4) and torch.allclose(got, centred @ centred.T, atol=1e-4):
        pytest.fail("You subtracted each vector's mean first (that is the Pearson correlation): cosine similarity "
                    "uses the vectors as they are.")
    assert_close(got, pairwise_cosine(v), "cosine_similarity_matrix(v)", atol=1e-5,
                 hint="Entry (i, j) is <v_i, v_j> / (|v_i| |v_j|), with the Euclidean norm of each row.")


@pytest.mark.exercise("cosine_similarity_matrix", points=1)
def test_cosine_zero_row_is_zero_not_nan(impl):
    v = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    sims = assert_finite(call_unmutated(impl.cosine_similarity_matrix, v), "similarities with a zero row")
    assert sims[1].abs().max() < 1e-6, "a zero vector should have similarity 0 with everything"
