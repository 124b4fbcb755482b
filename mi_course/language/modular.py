"""Modular addition, (a + b) mod p: the task, its Fourier basis, and what a trained model is measured by.

The one place the course computes these: the training script (scripts/train_modular_addition.py) writes its
model card with them, the tests check the shipped checkpoint with them, and lesson 11 compares the learner's
``fourier_basis`` and ``key_frequencies`` with them.

Inputs are ``[a, b, "="]`` with ``"="`` the token ``p`` (so ``d_vocab = p + 1``); the answer is read at the
last position. Frequencies: ``0`` is the constant term, ``k = 1 .. p // 2`` the pair ``cos(2 pi k x / p)``,
``sin(2 pi k x / p)`` (for even ``p`` the last frequency ``p / 2`` has only the cosine).
"""

from __future__ import annotations

import math

import torch

from mi_course.checks import int_at_least


def all_pairs(p: int) -> torch.Tensor:
    """Every input ``[a, b, p]`` for ``a, b`` in ``0 .. p-1``, shape ``[p*p, 3]``; row ``a * p + b``."""
    p = int_at_least("p", p, 2, "the modulus")
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(-1)
    return torch.stack([a, b, torch.full_like(a, p)], dim=-1)


def answers(tokens: torch.Tensor, p: int) -> torch.Tensor:
    """The correct answers ``(a + b) mod p`` for inputs ``tokens`` of shape ``[n, 3]``."""
    p = int_at_least("p", p, 2, "the modulus")
    if tokens.ndim != 2 or tokens.shape[-1] != 3:
        raise ValueError(f"tokens must have shape [n, 3] (a, b, '='), got {tuple(tokens.shape)}")
    return (tokens[:, 0] + tokens[:, 1]) % p


@torch.no_grad()
def accuracy_all_pairs(model, p: int, batch_size: int = 4096) -> float:
    """Fraction of all ``p*p`` pairs whose argmax logit at the last position is ``(a + b) mod p``."""
    tokens = all_pairs(p)
    device = next(model.parameters()).device
    correct = 0
    for chunk in tokens.split(batch_size):
        logits = model(chunk.to(device))[:, -1]
        correct += (logits.argmax(-1).cpu() == answers(chunk, p)).sum().item()
    return correct / len(tokens)


def fourier_basis(p: int) -> torch.Tensor:
    """The real Fourier basis of functions on ``0 .. p-1``, shape ``[p, p]``, orthonormal rows.

    Row 0 is the constant, then ``cos k, sin k`` for ``k = 1, 2, ...`` (row ``2k - 1`` is ``cos k``, row ``2k``
    is ``sin k``); for even ``p`` the last row is ``cos(p / 2)``. Column ``x`` is the input ``x``.
    """
    p = int_at_least("p", p, 2, "the modulus")
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * x / p))
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=-1, keepdim=True)).float()


def frequency_of_row(p: int) -> torch.Tensor:
    """For each row of :func:`fourier_basis` (p), its frequency: ``[0, 1, 1, 2, 2, ...]``."""
    p = int_at_least("p", p, 2, "the modulus")
    return torch.tensor([(i + 1) // 2 for i in range(p)])


def embedding_frequency_norms(W_E: torch.Tensor, p: int) -> torch.Tensor:
    """The fraction of the number tokens' embedding norm (squared Frobenius) in each frequency, ``[p//2 + 1]``.

    ``W_E`` is ``[d_vocab, d_model]``; its first ``p`` rows (the tokens ``0 .. p-1``) are used, so the ``"="``
    row of a ``d_vocab = p + 1`` model is ignored. Entry 0 is the constant term; the entries sum to 1.
    """
    p = int_at_least("p", p, 2, "the modulus")
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2:
        raise ValueError(f"W_E must be a 2-d tensor [d_vocab, d_model], got {getattr(W_E, 'shape', type(W_E))}")
    if W_E.shape[0] < p:
        raise ValueError(f"W_E has {W_E.shape[0]} rows but p = {p}: it needs one row per number token 0 .. p-1")
    coeffs = fourier_basis(p).double() @ W_E[:p].detach().cpu().double()  # [p, d_model]
    per_row = coeffs.pow(2).sum(-1)
    total = per_row.sum()
    if total <= 0:
        raise ValueError("W_E is all zeros: its norm cannot be split into frequencies")
    per_freq = torch.zeros(p // 2 + 1, dtype=torch.float64).index_add_(0, frequency_of_row(p), per_row)
    return (per_freq / total).float()


def key_frequencies(W_E: torch.Tensor, p: int, mass: float = 0.9) -> list[int]:
    """The fewest frequencies, largest first, that together hold at least ``mass`` of the embedding's norm.

    Frequency 0 (the constant term) is ranked like the others; in a grokked model it holds almost nothing. At a
    tie the lower frequency comes first.
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}")
    fractions = embedding_frequency_norms(W_E, p)
    order = torch.sort(fractions, descending=True, stable=True).indices  # at a tie the lower frequency first
    cumulative = fractions[order].cumsum(0)
    # the 1e-6 slack absorbs float rounding when mass = 1
    count = int((cumulative < mass - 1e-6).sum().item()) + 1
    return [int(k) for k in order[:min(count, len(order))]]


def _frequency_rows(p: int, freqs) -> torch.Tensor:
    freqs = [int(k) for k in freqs]
    if any(not 0 <= k <= p // 2 for k in freqs):
        raise ValueError(f"frequencies must be in 0..{p // 2}, got {freqs}")
    return torch.isin(frequency_of_row(p), torch.tensor(freqs, dtype=torch.long))


def filter_frequencies(logits: torch.Tensor, p: int, freqs, keep: bool = True) -> torch.Tensor:
    """The logits ``[..., p]`` (one per answer ``c``) with only the frequencies ``freqs`` kept (``keep=True``),
    or with exactly those removed (``keep=False``), in the Fourier basis over ``c``. A model that computes
    ``cos(w (a + b - c))`` for its key frequencies ``w`` keeps its accuracy with only those and loses it
    without them (Nanda et al., 2023, section 5's restricted and excluded loss, here over ``c`` alone)."""
    p = int_at_least("p", p, 2, "the modulus")
    if logits.shape[-1] != p:
        raise ValueError(f"logits must end in p = {p} answers, got shape {tuple(logits.shape)}")
    basis = fourier_basis(p).to(logits)
    rows = _frequency_rows(p, freqs).to(logits.device)
    rows = rows if keep else ~rows
    return (logits @ basis[rows].T) @ basis[rows]


def embedding_circle(W_E: torch.Tensor, p: int, k: int) -> torch.Tensor:
    """Each number token's embedding in the plane of frequency ``k``: the components of ``W_E[x]`` along the
    two directions of ``d_model`` that ``cos(2 pi k x / p)`` and ``sin(2 pi k x / p)`` load on, ``[p, 2]``.
    For a key frequency the points lie on a circle, token ``x`` at angle ``2 pi k x / p``."""
    p = int_at_least("p", p, 2, "the modulus")
    if not 1 <= k <= (p - 1) // 2:
        raise ValueError(f"k must be a frequency with both cos and sin, 1..{(p - 1) // 2}, got {k!r}")
    E = W_E[:p].detach().cpu().double()
    coeffs = fourier_basis(p).double() @ E                  # [p, d_model]: row 2k-1 is cos k, row 2k sin k
    plane, _ = torch.linalg.qr(coeffs[[2 * k - 1, 2 * k]].T)  # [d_model, 2], orthonormal
    return (E @ plane).float()


def neuron_frequency_shares(acts: torch.Tensor, p: int) -> torch.Tensor:
    """For each neuron, the share of its activation pattern over the ``(a, b)`` grid that lies in each
    frequency, ``[d_mlp, p // 2 + 1]``: 2-D Fourier coefficients (basis over ``a`` times basis over ``b``),
    the constant term left out; frequency ``k`` holds every term whose ``a`` and ``b`` parts are of frequency
    ``k`` or constant (``cos(w a)``, ``sin(w a) cos(w b)``, ...). ``acts`` is ``[p * p, d_mlp]`` in the order
    of :func:`all_pairs`. A neuron of a grokked model holds almost all of its pattern in one key frequency."""
    p = int_at_least("p", p, 2, "the modulus")
    if acts.dim() != 2 or acts.shape[0] != p * p:
        raise ValueError(f"acts must be [p * p, d_mlp] = [{p * p}, d_mlp] in all_pairs order, got "
                         f"{tuple(acts.shape)}")
    basis = fourier_basis(p).double()
    grid = acts.detach().cpu().double().T.reshape(-1, p, p)            # [d_mlp, a, b]
    energy = torch.einsum("ia,nab,jb->nij", basis, grid, basis).pow(2)  # [d_mlp, freq row a, freq row b]
    energy[:, 0, 0] = 0  # the mean activation says nothing about frequencies
    freq = frequency_of_row(p)
    n_freq = p // 2 + 1
    per = torch.zeros(energy.shape[0], n_freq, dtype=torch.float64)
    for k in range(1, n_freq):
        rows = (freq == k) | (freq == 0)
        per[:, k] = energy[:, rows][:, :, rows].sum((1, 2))  # the (0, 0) term is already 0
    total = energy.sum((1, 2)).clamp_min(1e-30)
    return (per / total[:, None]).float()
