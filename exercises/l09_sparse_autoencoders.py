# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 09, sparse autoencoders: exercises."""

from __future__ import annotations

import torch
import torch.nn as nn
from jaxtyping import Float, Int


# >>> exercise: SAE
class SAE(nn.Module):
    """A sparse autoencoder with a ReLU (Bricken et al., 2023, "Towards Monosemanticity").

    Activations are rows (the course's and SAELens's convention), so "``W_enc x``" is ``x @ W_enc``:

        y     = ReLU((x - b_dec) @ W_enc + b_enc)      feature activations  [..., d_sae]
        x_hat = y @ W_dec + b_dec                      the reconstruction   [..., d_in]

    Subtracting ``b_dec`` before encoding centres the input on the point the decoder adds back, so that
    ``b_dec`` learns the data's mean and the features describe what differs from it.

    Attributes (all ``nn.Parameter``):
        W_enc: ``[d_in, d_sae]``, column ``i`` is the direction feature ``i`` reads.
        W_dec: ``[d_sae, d_in]``, row ``i`` is the direction feature ``i`` writes; at start random unit
            vectors (``torch.randn`` with a ``torch.Generator`` seeded with ``seed``, each row divided by
            its norm).
        b_enc: ``[d_sae]``, zeros at start.   b_dec: ``[d_in]``, zeros at start.
    At start ``W_enc`` is a copy of ``W_dec.T`` (each feature reads the direction it writes), so the same
    ``seed`` gives the same SAE. ``d_in``, ``d_sae`` are kept as attributes.

    Raises:
        ValueError: if ``d_in`` or ``d_sae`` is not a positive int.
    """

    def __init__(self, d_in: int, d_sae: int, seed: int = 0):
        super().__init__()
        self.d_in, self.d_sae = d_in, d_sae
        # self.W_enc, self.W_dec, self.b_enc, self.b_dec = nn.Parameter(...), ...
        raise NotImplementedError("exercise 09.SAE: not started yet")

    def encode(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """``ReLU((x - b_dec) @ W_enc + b_enc)``, for any number of leading dimensions."""
        raise NotImplementedError("exercise 09.SAE: not started yet")

    def decode(self, y: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_in"]:
        """``y @ W_dec + b_dec``."""
        raise NotImplementedError("exercise 09.SAE: not started yet")

    def forward(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_in"]:
        """The reconstruction ``decode(encode(x))``."""
        raise NotImplementedError("exercise 09.SAE: not started yet")
# <<< exercise: SAE


# >>> exercise: sae_loss
def sae_loss(
    x: Float[torch.Tensor, "batch d_in"],
    x_hat: Float[torch.Tensor, "batch d_in"],
    y: Float[torch.Tensor, "batch d_sae"],
    l1_coefficient: float,
) -> Float[torch.Tensor, ""]:
    """The SAE's training loss, a 0-dim tensor:

        L = mean over the batch of ( sum over d_in of (x - x_hat)^2
                                     + l1_coefficient * sum over d_sae of |y| )

    i.e. the squared error is *summed* over the dimensions of one activation (``||x - x_hat||^2``) and the
    L1 norm over its features (``||y||_1``); both are *averaged* over the batch, so the loss does not grow
    with the batch size. Differentiable in ``x_hat`` and ``y``; no input is changed.

    Raises:
        ValueError: if ``x`` and ``x_hat`` differ in shape, ``y`` has another number of rows, or
            ``l1_coefficient`` is negative.
    """
    raise NotImplementedError("exercise 09.sae_loss: not started yet")
# <<< exercise: sae_loss


# >>> exercise: topk
def topk(pre: Float[torch.Tensor, "... d_sae"], k: int) -> Float[torch.Tensor, "... d_sae"]:
    """The TopK activation (Gao et al., 2024): in every row (the last dimension) keep the ``k`` largest
    pre-activations, apply a ReLU to them, and set every other entry to 0.

    Ties: among equal values at the cut, the *lower* feature index is kept, so exactly ``k`` entries per
    row are kept (fewer are nonzero only where kept values are <= 0). Gradients flow to the kept entries.

    Raises:
        ValueError: if ``k`` is not an int in ``1..d_sae``.
    """
    raise NotImplementedError("exercise 09.topk: not started yet")
# <<< exercise: topk


# >>> exercise: batch_topk
def batch_topk(pre: Float[torch.Tensor, "batch d_sae"], k: float) -> Float[torch.Tensor, "batch d_sae"]:
    """The BatchTopK activation (Bussmann et al., 2024): keep the ``n = int(k * batch)`` largest entries of
    ``ReLU(pre)`` over the *whole batch* (not ``k`` per row), zero the rest. Rows may keep more or fewer
    than ``k`` features; on average they keep ``k``.

    Ties: entries are ranked in row-major order (``pre.flatten()``) and at a tie the earlier one is kept.

    Raises:
        ValueError: if ``pre`` is not 2-D, or ``n`` is not in ``1..pre.numel()``.
    """
    raise NotImplementedError("exercise 09.batch_topk: not started yet")
# <<< exercise: batch_topk


# >>> exercise: jumprelu
def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The kernel ``K(u) = 1`` for ``-1/2 < u < 1/2``, else ``0`` (given)."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLUFunction(torch.autograd.Function):
    """``pre * H(pre - threshold)`` (``H`` the Heaviside step: 1 where ``pre > threshold``), with the
    straight-through estimator of Rajamanoharan et al. (2024) for the threshold's gradient.

    Backward, for an incoming gradient ``g`` (the shape of ``pre``), with ``eps = bandwidth``:

        d/d pre       = g * H(pre - threshold)
        d/d threshold = sum over the leading (batch) dimensions of
                        g * -(threshold / eps) * K((pre - threshold) / eps)

    so only pre-activations within half a bandwidth of the threshold move it (``K`` is :func:`rectangle`).
    """

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth: float):
        raise NotImplementedError("exercise 09.jumprelu: not started yet")

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError("exercise 09.jumprelu: not started yet")


def jumprelu(pre: Float[torch.Tensor, "... d_sae"], threshold: Float[torch.Tensor, "d_sae"],
             bandwidth: float = 0.05) -> Float[torch.Tensor, "... d_sae"]:
    """``JumpReLUFunction.apply(pre, threshold, bandwidth)``: a feature passes its pre-activation where it
    exceeds the feature's own threshold, else 0.

    Raises:
        ValueError: if ``threshold`` is not of shape ``[d_sae]`` or ``bandwidth`` is not > 0.
    """
    raise NotImplementedError("exercise 09.jumprelu: not started yet")
# <<< exercise: jumprelu


# >>> exercise: orthogonality_penalty
def orthogonality_penalty(W_dec: Float[torch.Tensor, "d_sae d_in"]) -> Float[torch.Tensor, ""]:
    """OrtSAE's penalty (Korznikov et al., 2025), a 0-dim tensor: the mean over features ``i`` of the
    largest cosine similarity between decoder row ``i`` and any *other* row ``j != i``:

        P = 1/d_sae * sum_i max_{j != i} cos(W_dec[i], W_dec[j])

    The cosine is signed (a feature pointing opposite another is not penalized) and computed on unit
    rows, whatever the rows' norms (a zero row counts as cosine 0 with everything). Differentiable in
    ``W_dec``; ``W_dec`` is not changed.

    Raises:
        ValueError: if ``W_dec`` is not 2-D with at least 2 rows.
    """
    raise NotImplementedError("exercise 09.orthogonality_penalty: not started yet")
# <<< exercise: orthogonality_penalty


# >>> exercise: train_sae
def train_sae(
    sae: nn.Module,
    activations: Float[torch.Tensor, "n_tokens d_in"],
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    l1_coefficient: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Train ``sae`` (any module with ``encode``, ``decode``, ``W_dec`` and ``b_dec``) in place on
    ``activations``, and return the loss of every step as a Python float.

    1. Set ``sae.b_dec`` to the mean of ``activations`` (over tokens) before the first step.
    2. Create ``generator = torch.Generator().manual_seed(seed)`` and
       ``torch.optim.Adam(sae.parameters(), lr=lr)``.
    3. Every step: a batch ``activations[torch.randint(0, n_tokens, (batch_size,), generator=generator)]``,
       ``y = sae.encode(x)``, ``x_hat = sae.decode(y)``, the loss ``sae_loss(x, x_hat, y, l1_coefficient)``,
       one Adam step, then (without gradients) every row of ``sae.W_dec`` divided by its norm: unit decoder
       rows stop the SAE from shrinking ``y`` and growing ``W_dec`` to dodge the L1 penalty.

    Raises:
        ValueError: if ``activations`` is not [n_tokens, sae.d_in] or ``steps`` is not a positive int.
    """
    raise NotImplementedError("exercise 09.train_sae: not started yet")
# <<< exercise: train_sae


# >>> exercise: sae_metrics
def sae_metrics(sae, model, tokens: Int[torch.Tensor, "batch pos"], hook_name: str) -> dict[str, float]:
    """How good ``sae`` (anything with ``encode`` and ``decode``) is at ``hook_name`` of ``model`` (a
    TransformerLens model) on ``tokens``, whose position 0 is BOS. Position 0 is left out of everything:
    its activation is neither measured nor replaced. With ``x`` the activations at positions ``1..`` of
    every row, flattened to ``[n, d_in]``, ``y = sae.encode(x)``, ``x_hat = sae.decode(y)``:

        "l0":                 mean over the n tokens of the number of features with y > 0
        "explained_variance": 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, mean(x) the mean over the n
                              tokens (a vector [d_in]), both sums over tokens and dimensions
        "dead_fraction":      the fraction of the d_sae features that are 0 on all n tokens
        "ce_clean", "ce_sae", "ce_zero_ablated":
                              the model's mean next-token cross-entropy (natural log) of the predictions
                              made at positions 1 .. pos-2 (of tokens 2 .. pos-1), clean, with the
                              activation at positions 1.. replaced by ``x_hat`` through a hook, and replaced
                              by zeros
        "ce_loss_recovered":  (ce_zero_ablated - ce_sae) / (ce_zero_ablated - ce_clean)

    Every value is a Python float. No gradients are needed; the model has no hook left when it returns.

    Raises:
        ValueError: if ``hook_name`` is not a hook of ``model``.
    """
    raise NotImplementedError("exercise 09.sae_metrics: not started yet")
# <<< exercise: sae_metrics


# >>> exercise: find_feature
def find_feature(sae, activations: Float[torch.Tensor, "n_tokens d_in"],
                 in_kind: torch.Tensor) -> int:
    """An investigation: the feature of ``sae`` that stands for one kind of text.

    ``activations`` are a model's activations at the SAE's hook, one row per token, and ``in_kind``
    (bool, ``[n_tokens]``) marks the tokens that belong to documents of the kind (say, Latin). Return the
    id (a Python int) of a feature whose **strongest activations are mostly on tokens of that kind**: the
    test takes your feature to fresh documents you did not see and checks that at least 80% of its 100
    largest activations there fall on text of the kind.

    Any sound measure works. Features that fire everywhere are not the answer, nor are features that fire
    once, very strongly, on a single token of the kind: rank features by how selective they are.

    Raises:
        ValueError: if ``in_kind`` is not a bool tensor with one entry per row of ``activations``, or marks
            no token.
    """
    raise NotImplementedError("exercise 09.find_feature: not started yet")
# <<< exercise: find_feature
