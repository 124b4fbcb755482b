"""What every course SAE shares: the parameters, encode / decode / forward, and the training hooks.

    pre    = (x - b_dec) @ W_enc + b_enc        [..., d_sae]   (b_dec centres the input, Bricken et al. 2023)
    acts   = activation(pre)                    [..., d_sae]   (ReLU, TopK, BatchTopK, JumpReLU: the variants)
    x_hat  = acts @ W_dec + b_dec               [..., d_in]

Shapes are SAELens's: ``W_enc`` [d_in, d_sae], ``W_dec`` [d_sae, d_in] (row ``i`` of ``W_dec`` is feature
``i``'s direction), ``b_enc`` [d_sae], ``b_dec`` [d_in].

Decoder norms. Every variant keeps the rows of ``W_dec`` at unit norm: the training loop calls
:meth:`SparseAutoencoder.after_step_`, which renormalizes them after each optimizer step. Without it a ReLU
SAE lowers its L1 penalty for free by shrinking ``acts`` and growing ``W_dec`` by the same factor; with it
the plain L1 of ``acts`` *is* the decoder-norm-weighted L1 (Anthropic's April 2024 form) at every step, TopK
compares activations in the same units for every feature, a JumpReLU threshold means the same for every
feature, and the OrtSAE penalty's cosines are plain dot products. An SAE loaded from elsewhere may have
other norms; encode and decode never assume unit rows.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import nn

VARIANTS: dict[str, type["SparseAutoencoder"]] = {}


def variant(cls):
    """Register an SAE class under its ``architecture`` name (for :func:`sae_from_config`); a second class
    under a name already taken is refused (a renamed copy must never replace a variant silently)."""
    if cls.architecture in VARIANTS and VARIANTS[cls.architecture] is not cls:
        raise ValueError(f"an SAE variant named {cls.architecture!r} is already registered "
                         f"({VARIANTS[cls.architecture].__qualname__}): give {cls.__qualname__} its own architecture")
    VARIANTS[cls.architecture] = cls
    return cls


class TrainStep(NamedTuple):
    """One batch's forward pass for training."""

    pre: Float[torch.Tensor, "batch d_sae"]
    x_hat: Float[torch.Tensor, "batch d_in"]
    acts: Float[torch.Tensor, "batch d_sae"] | None  # None where the variant decodes sparsely
    fired: Bool[torch.Tensor, " d_sae"]  # which features fired on the batch
    l0: Float[torch.Tensor, ""]  # mean active features per row


class Losses(NamedTuple):
    """``total = mse + sparsity_scale * sparsity + sum(penalties)`` and the forward pass they came from."""

    mse: Float[torch.Tensor, ""]  # ||x - x_hat||^2, summed over d_in, mean over the batch
    sparsity: Float[torch.Tensor, ""]  # the variant's penalty, before its warm-up factor
    penalties: dict[str, torch.Tensor]  # penalties on the weights, by name (OrtSAE's "orthogonality")
    total: Float[torch.Tensor, ""]
    step: TrainStep


def random_directions(n: int, d: int, generator: torch.Generator) -> Float[torch.Tensor, "n d"]:
    """``n`` unit vectors in ``d`` dimensions, uniform on the sphere."""
    w = torch.randn(n, d, generator=generator)
    return w / w.norm(dim=-1, keepdim=True)


class SparseAutoencoder(nn.Module):
    """The shared part of every variant; a subclass defines :meth:`activation` (and its loss terms).

    ``seed`` makes the initialization reproducible: ``W_dec`` rows are random unit vectors, ``W_enc`` starts
    as their transpose (so at step 0 each feature reads the direction it writes; Conerly et al. 2024,
    Gao et al. 2024), both biases start at zero (the training loop sets ``b_dec`` to the data's mean).
    ``hook_name`` records where in a model the SAE reads (metrics and the SAELens export use it).
    """

    architecture: ClassVar[str] = ""
    sparse_decoding: ClassVar[bool] = False  # decode only the active rows of W_dec while training

    def __init__(self, d_in: int, d_sae: int, seed: int = 0, hook_name: str | None = None):
        super().__init__()
        for name, value in (("d_in", d_in), ("d_sae", d_sae)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.d_in, self.d_sae, self.seed, self.hook_name = d_in, d_sae, seed, hook_name
        directions = random_directions(d_sae, d_in, torch.Generator().manual_seed(seed))
        self.W_dec = nn.Parameter(directions)
        self.W_enc = nn.Parameter(directions.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    # ------------------------------------------------------------------------------------------ interface

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.shape[-1:] != (self.d_in,):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the SAE reads activations [..., d_in={self.d_in}], got {shape}")
        return x.to(self.W_enc.dtype)

    def pre_activations(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """``(x - b_dec) @ W_enc + b_enc``, computed as ``x @ W_enc + (b_enc - b_dec @ W_enc)``: the same
        number, but backward then needs no [batch, d_in] gradient for the input (one matmul fewer)."""
        x = self._check_input(x)
        bias = self.b_enc - self.b_dec @ self.W_enc
        if x.dim() == 2:
            return torch.addmm(bias, x, self.W_enc)
        return x @ self.W_enc + bias

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        raise NotImplementedError

    def encode(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        return self.activation(self.pre_activations(x))

    def decode(self, acts: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_in"]:
        if acts.shape[-1:] != (self.d_sae,):
            raise ValueError(f"decode takes feature activations [..., d_sae={self.d_sae}], got {tuple(acts.shape)}")
        acts = acts.to(self.W_dec.dtype)
        if acts.dim() == 2:
            return torch.addmm(self.b_dec, acts, self.W_dec)
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_in"]:
        return self.decode(self.encode(x))

    def decode_rows(self, indices: Int[torch.Tensor, "n k"], values: Float[torch.Tensor, "n k"],
                    offsets: Int[torch.Tensor, "n"] | None = None) -> Float[torch.Tensor, "n d_in"]:
        """``sum_j values[:, j] * W_dec[indices[:, j]]`` without ``b_dec``: a gather of the active rows
        instead of a dense [n, d_sae] @ [d_sae, d_in] matmul, forward and backward (``embedding_bag``).
        With ``offsets``, ``indices`` and ``values`` are flat and row ``r`` owns ``offsets[r]:offsets[r+1]``."""
        return F.embedding_bag(indices, self.W_dec, offsets, mode="sum",
                               per_sample_weights=values.to(self.W_dec.dtype))

    # ------------------------------------------------------------------------------------------ training

    def sparsity_loss(self, pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """The variant's penalty (before its coefficient's warm-up factor); zero for TopK-style variants."""
        return pre.new_zeros(())

    def extra_loss(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Penalties on the weights rather than the activations (OrtSAE's orthogonality); none by default."""
        return {}

    def training_terms(self, x: Float[torch.Tensor, "batch d_in"]) -> TrainStep:
        """One batch's forward pass for training (dense here; sparse variants override it)."""
        pre = self.pre_activations(x)
        acts = self.activation(pre)
        # activations are >= 0 for every variant, so a feature fired iff its column's max is > 0
        return TrainStep(pre=pre, x_hat=self.decode(acts), acts=acts, fired=acts.amax(0) > 0,
                         l0=torch.count_nonzero(acts) / len(x))

    def loss(self, x: Float[torch.Tensor, "batch d_in"], sparsity_scale: float = 1.0,
             generator: torch.Generator | None = None) -> Losses:
        """The training loss of one batch, its terms and the forward pass (see :class:`Losses`)."""
        step = self.training_terms(x)
        mse = (step.x_hat - x).pow(2).sum(-1).mean()
        sparsity = self.sparsity_loss(step.pre, step.acts)
        penalties = self.extra_loss(generator)
        return Losses(mse=mse, sparsity=sparsity, penalties=penalties,
                      total=mse + sparsity_scale * sparsity + sum(penalties.values()), step=step)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def after_step_(self) -> None:
        """Called after every optimizer step: project the parameters back onto their constraints."""
        self.normalize_decoder_()

    @torch.no_grad()
    def fold_input_scale_(self, scale: float) -> None:
        """Make an SAE trained on ``scale * x`` read and write ``x`` itself. Every activation is positively
        homogeneous (ReLU, TopK, a threshold scaled along), so dividing the biases (and thresholds) by
        ``scale`` turns ``acts`` into ``acts / scale`` and ``x_hat`` into ``x_hat / scale``, and the
        decoder rows stay unit vectors."""
        self.b_dec.div_(scale)
        self.b_enc.div_(scale)

    # ------------------------------------------------------------------------------------------ config

    def hyperparameters(self) -> dict[str, Any]:
        """The variant's own settings (``k``, coefficients ...), what :func:`sae_from_config` needs."""
        return {}

    def config(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "d_in": self.d_in, "d_sae": self.d_sae, "seed": self.seed,
                "hook_name": self.hook_name, **self.hyperparameters()}

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.hyperparameters().items())
        return f"d_in={self.d_in}, d_sae={self.d_sae}{extra}, hook_name={self.hook_name!r}"


def sae_from_config(config: dict, state: dict[str, torch.Tensor] | None = None) -> SparseAutoencoder:
    """The SAE a :meth:`SparseAutoencoder.config` describes, with ``state`` (a state dict) loaded if given."""
    config = dict(config)
    architecture = config.pop("architecture", None)
    if architecture not in VARIANTS:
        raise ValueError(f"unknown SAE architecture {architecture!r}; known: {', '.join(VARIANTS)}")
    sae = VARIANTS[architecture](**config)
    if state is not None:
        sae.load_state_dict(state)
    return sae


def fired_features(indices: Int[torch.Tensor, "..."], values: Float[torch.Tensor, "..."],
                   d_sae: int) -> Bool[torch.Tensor, "d_sae"]:
    """Which features have a positive value among sparse ``(indices, values)``."""
    fired = torch.zeros(d_sae, dtype=torch.bool, device=indices.device)
    fired[indices[values > 0]] = True
    return fired
