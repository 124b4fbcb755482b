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
        # BEGIN SOLUTION
        for name, value in (("d_in", d_in), ("d_sae", d_sae)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.d_in, self.d_sae = d_in, d_sae
        directions = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed))
        directions = directions / directions.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(directions)
        self.W_enc = nn.Parameter(directions.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        # STUB: self.d_in, self.d_sae = d_in, d_sae
        # STUB: # self.W_enc, self.W_dec, self.b_enc, self.b_dec = nn.Parameter(...), ...
        # STUB: raise NotImplementedError("exercise 09.SAE: not started yet")
        # END SOLUTION

    def encode(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """``ReLU((x - b_dec) @ W_enc + b_enc)``, for any number of leading dimensions."""
        # BEGIN SOLUTION
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)
        # END SOLUTION

    def decode(self, y: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_in"]:
        """``y @ W_dec + b_dec``."""
        # BEGIN SOLUTION
        return y @ self.W_dec + self.b_dec
        # END SOLUTION

    def forward(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_in"]:
        """The reconstruction ``decode(encode(x))``."""
        # BEGIN SOLUTION
        return self.decode(self.encode(x))
        # END SOLUTION
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
    # BEGIN SOLUTION
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    if y.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"y must have one row per row of x: x is {tuple(x.shape)}, y is {tuple(y.shape)}")
    if not l1_coefficient >= 0:
        raise ValueError(f"l1_coefficient must be >= 0, got {l1_coefficient!r}")
    squared_error = (x - x_hat).pow(2).sum(dim=-1)
    l1 = y.abs().sum(dim=-1)
    return (squared_error + l1_coefficient * l1).mean()
    # END SOLUTION
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
    # BEGIN SOLUTION
    d_sae = pre.shape[-1]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d_sae:
        raise ValueError(f"k must be an int in 1..d_sae={d_sae}, got {k!r}")
    # a stable sort keeps equal values in index order, so the lower index comes first at a tie
    order = torch.sort(pre.detach(), dim=-1, descending=True, stable=True).indices
    keep = torch.zeros_like(pre, dtype=torch.bool).scatter(-1, order[..., :k], True)
    return torch.where(keep, torch.relu(pre), torch.zeros_like(pre))
    # END SOLUTION
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
    # BEGIN SOLUTION
    if pre.dim() != 2:
        raise ValueError(f"batch_topk takes [batch, d_sae], got shape {tuple(pre.shape)}")
    n = int(k * pre.shape[0])
    if not 1 <= n <= pre.numel():
        raise ValueError(f"k * batch = {k} * {pre.shape[0]} must keep between 1 and {pre.numel()} entries")
    scores = torch.relu(pre).flatten()
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter(0, order[:n], True)
    return torch.where(keep, scores, torch.zeros_like(scores)).view(pre.shape)
    # END SOLUTION
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
        # BEGIN SOLUTION
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_out):
        # BEGIN SOLUTION
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad_out * (pre > threshold).to(pre.dtype)
        grad_threshold = grad_out * -(threshold / eps) * rectangle((pre - threshold) / eps)
        grad_threshold = grad_threshold.reshape(-1, threshold.shape[-1]).sum(dim=0)
        return grad_pre, grad_threshold, None
        # END SOLUTION


def jumprelu(pre: Float[torch.Tensor, "... d_sae"], threshold: Float[torch.Tensor, "d_sae"],
             bandwidth: float = 0.05) -> Float[torch.Tensor, "... d_sae"]:
    """``JumpReLUFunction.apply(pre, threshold, bandwidth)``: a feature passes its pre-activation where it
    exceeds the feature's own threshold, else 0.

    Raises:
        ValueError: if ``threshold`` is not of shape ``[d_sae]`` or ``bandwidth`` is not > 0.
    """
    # BEGIN SOLUTION
    if threshold.shape != pre.shape[-1:]:
        raise ValueError(f"threshold must have shape [d_sae={pre.shape[-1]}], got {tuple(threshold.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")
    return JumpReLUFunction.apply(pre, threshold, bandwidth)
    # END SOLUTION
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
    # BEGIN SOLUTION
    if W_dec.dim() != 2 or W_dec.shape[0] < 2:
        raise ValueError(f"W_dec must be [d_sae >= 2, d_in], got shape {tuple(W_dec.shape)}")
    unit = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit.T
    itself = torch.eye(len(W_dec), dtype=torch.bool, device=W_dec.device)
    return cos.masked_fill(itself, float("-inf")).max(dim=-1).values.mean()
    # END SOLUTION
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
    # BEGIN SOLUTION
    d_in = sae.W_dec.shape[-1]
    if activations.dim() != 2 or activations.shape[-1] != d_in:
        raise ValueError(f"activations must be [n_tokens, d_in={d_in}], got {tuple(activations.shape)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    with torch.no_grad():
        sae.b_dec.copy_(activations.mean(dim=0))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = activations[torch.randint(0, len(activations), (batch_size,), generator=generator)]
        y = sae.encode(x)
        loss = sae_loss(x, sae.decode(y), y, l1_coefficient)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            sae.W_dec.div_(sae.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        losses.append(loss.item())
    return losses
    # END SOLUTION
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
    # BEGIN SOLUTION
    if hook_name not in model.hook_dict:
        raise ValueError(f"{hook_name!r} is not a hook of this model (e.g. 'blocks.2.hook_resid_pre')")
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook_name)
        act = cache[hook_name][:, 1:]
        x = act.reshape(-1, act.shape[-1])
        y = sae.encode(x)
        x_hat = sae.decode(y)
        metrics = {
            "l0": (y > 0).sum(dim=-1).float().mean().item(),
            "explained_variance": (1 - (x - x_hat).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()).item(),
            "dead_fraction": ((y > 0).sum(dim=0) == 0).float().mean().item(),
        }

        def cross_entropy(replace=None):
            def hook(activation, hook):
                activation = activation.clone()
                activation[:, 1:] = replace(activation[:, 1:])
                return activation

            hooks = [] if replace is None else [(hook_name, hook)]
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)  # removes its hooks when it returns
            logprobs = logits[:, 1:-1].log_softmax(dim=-1)
            return -logprobs.gather(-1, tokens[:, 2:, None]).mean().item()

        metrics["ce_clean"] = cross_entropy()
        metrics["ce_sae"] = cross_entropy(lambda a: sae.decode(sae.encode(a)).to(a.dtype))
        metrics["ce_zero_ablated"] = cross_entropy(torch.zeros_like)
    metrics["ce_loss_recovered"] = ((metrics["ce_zero_ablated"] - metrics["ce_sae"])
                                   / (metrics["ce_zero_ablated"] - metrics["ce_clean"]))
    return metrics
    # END SOLUTION
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
    # BEGIN SOLUTION
    if in_kind.dtype != torch.bool or in_kind.shape != activations.shape[:1]:
        raise ValueError(f"in_kind must be a bool tensor [{len(activations)}], got "
                         f"{in_kind.dtype} {tuple(in_kind.shape)}")
    if not in_kind.any():
        raise ValueError("in_kind marks no token: there is nothing to find")
    with torch.no_grad():
        y = sae.encode(activations)
    n_top = min(100, len(y))
    top = y.topk(n_top, dim=0).indices               # [n_top, d_sae]: each feature's strongest tokens
    precision = in_kind[top].float().mean(dim=0)     # the fraction of them that are of the kind
    recall = ((y > 0) & in_kind[:, None]).float().sum(dim=0) / in_kind.sum()
    fires = (y > 0).sum(dim=0) >= n_top              # enough firing tokens to judge
    score = torch.where(fires, precision + 0.1 * recall, torch.full_like(precision, -1.0))
    return int(score.argmax())
    # END SOLUTION
# <<< exercise: find_feature
