"""Course tests. Graded tests live in tests/graded and grade --impl (default: exercises/)."""

import pytest

import mi_course


# module scope: a learner's hook left attached stays inside the one test file that attached it
@pytest.fixture(scope="module")
def lite1():
    """The lite 1-layer attention-only model (CPU)."""
    return mi_course.load_model("attn-only-1l", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def lite2():
    """The lite 2-layer attention-only model (CPU)."""
    return mi_course.load_model("attn-only-2l", mode="lite", device="cpu")
