"""The shared argument checks: what they accept, what they return, and the messages learners read."""

import numpy as np
import pytest
import torch

from mi_course.checks import index_in, int_at_least, number_above


def test_int_at_least():
    assert int_at_least("n", 3, 1) == 3 and type(int_at_least("n", np.int64(3), 1)) is int
    for bad in (True, 2.0, "3", None, torch.tensor(3)):
        with pytest.raises(ValueError, match=r"n must be an int >= 1, got"):
            int_at_least("n", bad, 1)
    with pytest.raises(ValueError, match=r"p must be an int >= 2 \(the modulus\), got 1"):
        int_at_least("p", 1, 2, "the modulus")


def test_index_in():
    assert index_in("feature", 4, 5, "5 features") == 4 and index_in("feature", torch.tensor(2), 5, "x") == 2
    with pytest.raises(ValueError, match=r"feature must be in 0..4 \(the SAE has 5\), got 5"):
        index_in("feature", 5, 5, "the SAE has 5")
    for bad in (-1,):
        with pytest.raises(ValueError, match=r"must be in 0..4"):
            index_in("feature", bad, 5, "x")
    for bad in (1.0, True, torch.tensor(1.0)):
        with pytest.raises(ValueError, match=r"feature must be an int in 0..4 \(x\), got"):
            index_in("feature", bad, 5, "x")


def test_number_above():
    assert number_above("lr", 0.5, 0) == 0.5 and number_above("c", 0, 0, or_equal=True) == 0.0
    with pytest.raises(ValueError, match=r"lr must be a number > 0, got 0"):
        number_above("lr", 0, 0)
    with pytest.raises(ValueError, match=r"scale must be a number > 1, got 0.5"):
        number_above("scale", 0.5, 1)
    for bad in (float("nan"), float("inf"), True, "1", None):
        with pytest.raises(ValueError, match=r"lr must be a finite number, got"):
            number_above("lr", bad, 0)
