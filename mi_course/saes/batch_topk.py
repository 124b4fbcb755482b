"""The BatchTopK SAE (Bussmann, Leask and Nanda, 2024): in training, keep the ``k * batch`` largest
activations of the whole batch, so that rows share a budget of ``k`` per row on average (a hard row can use
more features, an easy one fewer). At inference a row cannot see its batch, so a single threshold replaces
the selection: ``acts = pre * (pre > threshold)``, the threshold being the running average (EMA) of the
smallest activation kept in each training batch.

``sae.train()`` selects over the batch, ``sae.eval()`` uses the threshold (until the first training step
has estimated one, eval also selects over the batch).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from mi_course.saes.base import SparseAutoencoder, TrainStep, fired_features, variant
from mi_course.saes.topk import top_k


def batch_top_k(pre: Float[torch.Tensor, "batch d_sae"], k: float
                ) -> tuple[Float[torch.Tensor, "n"], Int[torch.Tensor, "n"]]:
    """``(values, positions)``: the ``int(k * batch)`` largest entries of ``ReLU(pre)`` over the whole batch,
    as flat positions ``row * d_sae + feature`` in increasing order (ties at a positive cut go to the lower
    position; where fewer entries are positive, the zeros among the kept are irrelevant)."""
    if pre.dim() != 2:
        raise ValueError(f"batch_top_k takes [batch, d_sae], got shape {tuple(pre.shape)}")
    n_keep = int(k * pre.shape[0])
    if not 1 <= n_keep <= pre.numel():
        raise ValueError(f"k * batch = {k} * {pre.shape[0]} must keep between 1 and {pre.numel()} entries")
    scores = pre.relu().flatten()
    values, positions = scores.topk(n_keep, sorted=False)
    kth = values.min()
    if kth > 0 and (scores >= kth).sum() > n_keep:
        values, positions = (t[0] for t in top_k(scores[None], n_keep))
    positions, order = positions.sort()  # row-major, so each row's entries are contiguous
    return values[order], positions


def batch_topk_activation(pre: Float[torch.Tensor, "batch d_sae"], k: float) -> Float[torch.Tensor, "batch d_sae"]:
    values, positions = batch_top_k(pre, k)
    return torch.zeros_like(pre).flatten().scatter(0, positions, values).view(pre.shape)


@variant
class BatchTopKSAE(SparseAutoencoder):
    architecture = "batchtopk"
    sparse_decoding = True

    def __init__(self, d_in: int, d_sae: int, k: float = 32, threshold_momentum: float = 0.01, seed: int = 0,
                 hook_name: str | None = None):
        super().__init__(d_in, d_sae, seed=seed, hook_name=hook_name)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= d_sae:
            raise ValueError(f"k (active features per row, on average) must be in (0, d_sae={d_sae}], got {k!r}")
        if not 0 < threshold_momentum <= 1:
            raise ValueError(f"threshold_momentum must be in (0, 1], got {threshold_momentum!r}")
        self.k, self.threshold_momentum = k, float(threshold_momentum)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.long))

    def _selects_over_batch(self) -> bool:
        return self.training or int(self.threshold_updates) == 0

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        if self._selects_over_batch():
            return batch_topk_activation(pre.reshape(-1, self.d_sae), self.k).reshape(pre.shape)
        return pre * (pre > self.threshold)

    @torch.no_grad()
    def update_threshold_(self, kept: Float[torch.Tensor, "n"]) -> None:
        """Move the threshold toward the smallest positive activation kept in this batch."""
        positive = kept[kept > 0]
        if positive.numel() == 0:
            return
        smallest = positive.min().to(self.threshold.dtype)
        if int(self.threshold_updates) == 0:
            self.threshold.copy_(smallest)
        else:
            self.threshold.lerp_(smallest, self.threshold_momentum)
        self.threshold_updates += 1

    def training_terms(self, x: Float[torch.Tensor, "batch d_in"]) -> TrainStep:
        if not self.training:  # an evaluation pass: the thresholded activation, dense
            return super().training_terms(x)
        pre = self.pre_activations(x)
        values, positions = batch_top_k(pre, self.k)
        rows, features = positions // self.d_sae, positions % self.d_sae
        offsets = torch.searchsorted(rows, torch.arange(len(x), device=rows.device))
        self.update_threshold_(values)
        return TrainStep(pre=pre, x_hat=self.decode_rows(features, values, offsets) + self.b_dec, acts=None,
                         fired=fired_features(features, values, self.d_sae), l0=(values > 0).sum().float() / len(x))

    @torch.no_grad()
    def fold_input_scale_(self, scale: float) -> None:
        super().fold_input_scale_(scale)
        self.threshold.div_(scale)

    def hyperparameters(self) -> dict:
        return {"k": self.k, "threshold_momentum": self.threshold_momentum}
