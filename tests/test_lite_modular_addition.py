"""The lite organism ``modular-addition`` and the measurements in mi_course.language.modular.

The checkpoint tests load the shipped model through the registry and re-measure what its card claims with
the same code the training script used; the unit tests pin that code down on small hand-made inputs.
"""

import math

import pytest
import torch

import mi_course
from mi_course.language.modular import (
    accuracy_all_pairs,
    all_pairs,
    answers,
    embedding_frequency_norms,
    fourier_basis,
    frequency_of_row,
    key_frequencies,
)
from mi_course.models.registry import lite_shipped

ROLE = "modular-addition"
TOL = 1e-3


# ---------------------------------------------------------------- unit tests of mi_course.language.modular

def test_all_pairs_and_answers():
    tokens = all_pairs(5)
    assert tokens.shape == (25, 3)
    assert (tokens[:, 2] == 5).all(), "the last token is '=' (token p)"
    assert tokens[7].tolist() == [1, 2, 5], "row a * p + b holds (a, b)"
    assert answers(tokens, 5)[7].item() == 3
    assert answers(torch.tensor([[4, 4, 5]]), 5).tolist() == [3]
    assert len(set(map(tuple, tokens[:, :2].tolist()))) == 25


@pytest.mark.parametrize("p", [2, 5, 8, 13])
def test_fourier_basis_is_orthonormal(p):
    basis = fourier_basis(p)
    assert basis.shape == (p, p)
    assert torch.allclose(basis @ basis.T, torch.eye(p), atol=1e-5)
    assert torch.allclose(basis[0], torch.full((p,), 1 / math.sqrt(p)), atol=1e-6), "row 0 is the constant"
    assert len(frequency_of_row(p)) == p and frequency_of_row(p).max().item() == p // 2


def test_fourier_basis_rows_are_cos_then_sin():
    p, x = 7, torch.arange(7.0)
    basis = fourier_basis(p)
    assert torch.allclose(basis[3], torch.cos(2 * math.pi * 2 * x / p) * math.sqrt(2 / p), atol=1e-6)
    assert torch.allclose(basis[4], torch.sin(2 * math.pi * 2 * x / p) * math.sqrt(2 / p), atol=1e-6)
    assert frequency_of_row(p).tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_pure_cosine_embedding_has_all_its_norm_in_one_frequency():
    p, x = 11, torch.arange(11.0)
    # two model dimensions: cos and sin of frequency 3, plus a '=' row that must be ignored
    W_E = torch.stack([torch.cos(2 * math.pi * 3 * x / p), 2 * torch.sin(2 * math.pi * 3 * x / p)], dim=-1)
    W_E = torch.cat([W_E, torch.tensor([[100.0, -100.0]])])
    fractions = embedding_frequency_norms(W_E, p)
    assert fractions.shape == (p // 2 + 1,)
    assert fractions[3].item() == pytest.approx(1.0, abs=1e-5)
    assert fractions.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert key_frequencies(W_E, p) == [3]


def test_key_frequencies_are_the_fewest_largest_first():
    p, x = 13, torch.arange(13.0)
    W_E = torch.stack([3 * torch.cos(2 * math.pi * 2 * x / p),      # 9 parts
                       2 * torch.sin(2 * math.pi * 5 * x / p),      # 4 parts
                       torch.full((p,), math.sqrt(0.5))], dim=-1)                 # constant: 1 part
    fractions = embedding_frequency_norms(W_E, p)
    assert fractions[[2, 5, 0]].tolist() == pytest.approx([9 / 14, 4 / 14, 1 / 14], abs=1e-5)
    assert key_frequencies(W_E, p, mass=0.5) == [2]
    assert key_frequencies(W_E, p, mass=0.9) == [2, 5]
    assert key_frequencies(W_E, p, mass=1.0) == [2, 5, 0]


@pytest.mark.parametrize("call, match", [
    (lambda: fourier_basis(1), "p must be an int"),
    (lambda: fourier_basis(5.0), "p must be an int"),
    (lambda: all_pairs(-3), "p must be an int"),
    (lambda: answers(torch.zeros(4, 2, dtype=torch.long), 5), r"shape \[n, 3\]"),
    (lambda: embedding_frequency_norms(torch.randn(4, 8), 5), "needs one row per number token"),
    (lambda: embedding_frequency_norms(torch.randn(5), 5), "2-d tensor"),
    (lambda: embedding_frequency_norms(torch.zeros(5, 3), 5), "all zeros"),
    (lambda: key_frequencies(torch.randn(5, 3), 5, mass=1.5), "mass must be in"),
])
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_accuracy_all_pairs_on_a_hand_made_model():
    p = 7

    class Lookup(torch.nn.Module):  # logits that put (a + b) mod p first, except for a = 0
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, tokens):
            answer = torch.where(tokens[:, 0] == 0, (tokens[:, 1] + 1) % p, answers(tokens, p))
            return torch.nn.functional.one_hot(answer, p).float()[:, None].expand(-1, 3, -1)

    assert accuracy_all_pairs(Lookup(), p, batch_size=10) == pytest.approx(1 - 1 / p)


# ---------------------------------------------------------------- the shipped checkpoint

needs_checkpoint = pytest.mark.skipif(not lite_shipped(ROLE), reason="modular-addition checkpoint not shipped")


@pytest.fixture(scope="module")
def model():
    return mi_course.load_model(ROLE, mode="lite", device="cpu")


@pytest.fixture(scope="module")
def card():
    return mi_course.model_card(ROLE, mode="lite")


@pytest.fixture(scope="module")
def measured(model, card):
    p = card["p"]
    W_E = model.embed.W_E.detach()
    mass = card["measured"]["key_frequencies_mass"]
    keys = key_frequencies(W_E, p, mass=mass)
    return {"accuracy": accuracy_all_pairs(model, p), "keys": keys,
            "fraction": embedding_frequency_norms(W_E, p)[keys].sum().item(),
            "fraction_top6": embedding_frequency_norms(W_E, p).sort(descending=True).values[:6].sum().item()}


@needs_checkpoint
def test_checkpoint_matches_the_task(model, card):
    p = card["p"]
    assert card["role"] == ROLE
    assert p >= 53 and all(p % d for d in range(2, int(p ** 0.5) + 1)), f"p = {p} should be a prime >= 53"
    assert model.cfg.n_layers == 1 and model.cfg.normalization_type is None and not model.cfg.attn_only
    assert model.cfg.d_vocab == p + 1 and model.cfg.d_vocab_out == p and model.cfg.n_ctx == 3
    logits = model(all_pairs(p)[:5])
    assert logits.shape == (5, 3, p)


@needs_checkpoint
def test_checkpoint_is_accurate_on_all_pairs(measured):
    assert measured["accuracy"] >= 0.99, f"accuracy on all pairs {measured['accuracy']:.4f} < 0.99"


@needs_checkpoint
def test_embedding_lives_in_a_few_frequencies(measured):
    assert measured["fraction_top6"] >= 0.9, \
        f"the 6 largest frequencies hold only {measured['fraction_top6']:.3f} of the embedding's norm"
    assert len(measured["keys"]) <= 6 and measured["fraction"] >= 0.9
    assert 0 not in measured["keys"], "the constant term should not be a key frequency"


@needs_checkpoint
def test_card_states_what_is_measured(card, measured):
    stated = card["measured"]
    assert stated["accuracy_all_pairs"] == pytest.approx(measured["accuracy"], abs=TOL)
    assert sorted(stated["key_frequencies"]) == sorted(measured["keys"])
    assert stated["key_frequencies_norm_fraction"] == pytest.approx(measured["fraction"], abs=TOL)
    for key in ("architecture", "training_data", "optimizer", "steps", "seed", "training_seconds", "citation"):
        assert key in card, f"the card lacks {key!r}"
    assert card["regenerate"].startswith("python scripts/train_modular_addition.py")
    assert "Nanda" in card["citation"]
