"""The JumpReLU SAE (Rajamanoharan et al., 2024): ``acts = pre * H(pre - threshold)``, a threshold per feature,
trained with an L0 penalty ``l0_coefficient * sum_i H(pre_i - threshold_i)``.

``H`` (the Heaviside step) has zero derivative almost everywhere, so the threshold would never learn. The
paper's straight-through estimator replaces the derivative of ``H(pre - threshold)`` with respect to the
threshold by a rectangle kernel of width ``bandwidth`` (epsilon):

    d/d threshold  [pre * H(pre - threshold)]  ~  -(threshold / epsilon) * K((pre - threshold) / epsilon)
    d/d threshold  H(pre - threshold)          ~  -(1 / epsilon)         * K((pre - threshold) / epsilon)

with ``K(u) = 1`` for ``-1/2 < u < 1/2`` and ``0`` elsewhere: only pre-activations within half a bandwidth of
the threshold move it. The gradient to ``pre`` is the ordinary one (``H`` for the activation, none through
the L0 count), so the encoder learns from the reconstruction alone.

The threshold is a parameter in the activations' own units, kept ``>= 0`` by :meth:`JumpReLUSAE.after_step_`
(SAELens 6 stores it the same way; the paper trains its logarithm, which moves slowly under Adam).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import nn

from mi_course.saes.base import SparseAutoencoder, variant


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The kernel ``K(u) = 1`` on ``(-1/2, 1/2)``, ``0`` elsewhere."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


def _sum_to_threshold(grad: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """A per-entry gradient summed over the dimensions the threshold was broadcast along (the batch)."""
    return grad.sum_to_size(threshold.shape)


class JumpReLUFunction(torch.autograd.Function):
    """``pre * H(pre - threshold)`` with the straight-through estimator for the threshold."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad_out * (pre > threshold).to(pre.dtype)
        grad_threshold = -(threshold / eps) * rectangle((pre - threshold) / eps) * grad_out
        return grad_pre, _sum_to_threshold(grad_threshold, threshold), None


class StepFunction(torch.autograd.Function):
    """``H(pre - threshold)`` with the straight-through estimator for the threshold (none for ``pre``)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_threshold = -(1.0 / eps) * rectangle((pre - threshold) / eps) * grad_out
        return None, _sum_to_threshold(grad_threshold, threshold), None


def jumprelu(pre: Float[torch.Tensor, "... d_sae"], threshold: Float[torch.Tensor, "d_sae"],
             bandwidth: float) -> Float[torch.Tensor, "... d_sae"]:
    return JumpReLUFunction.apply(pre, threshold, bandwidth)


def step(pre: Float[torch.Tensor, "... d_sae"], threshold: Float[torch.Tensor, "d_sae"],
         bandwidth: float) -> Float[torch.Tensor, "... d_sae"]:
    return StepFunction.apply(pre, threshold, bandwidth)


@variant
class JumpReLUSAE(SparseAutoencoder):
    architecture = "jumprelu"

    def __init__(self, d_in: int, d_sae: int, l0_coefficient: float = 0.1, bandwidth: float = 0.05,
                 init_threshold: float = 0.1, seed: int = 0, hook_name: str | None = None):
        super().__init__(d_in, d_sae, seed=seed, hook_name=hook_name)
        if not l0_coefficient >= 0:
            raise ValueError(f"l0_coefficient must be >= 0, got {l0_coefficient!r}")
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")
        if not init_threshold >= 0:
            raise ValueError(f"init_threshold must be >= 0, got {init_threshold!r}")
        self.l0_coefficient, self.bandwidth, self.init_threshold = float(l0_coefficient), float(bandwidth), \
            float(init_threshold)
        self.threshold = nn.Parameter(torch.full((d_sae,), self.init_threshold))

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        return jumprelu(pre, self.threshold, self.bandwidth)

    def sparsity_loss(self, pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return self.l0_coefficient * step(pre, self.threshold, self.bandwidth).sum(-1).mean()

    @torch.no_grad()
    def after_step_(self) -> None:
        super().after_step_()
        self.threshold.clamp_(min=0.0)  # below zero the gate would pass negative pre-activations

    @torch.no_grad()
    def fold_input_scale_(self, scale: float) -> None:
        super().fold_input_scale_(scale)
        self.threshold.div_(scale)

    def hyperparameters(self) -> dict:
        return {"l0_coefficient": self.l0_coefficient, "bandwidth": self.bandwidth,
                "init_threshold": self.init_threshold}
