# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 08, superposition: exercises."""

from __future__ import annotations

import einops
import torch
import torch.nn as nn
from jaxtyping import Float


# >>> exercise: ToyModel
class ToyModel(nn.Module):
    """The toy model of Elhage et al. (2022), "Toy Models of Superposition", as several independent copies.

    ``n_features`` sparse input features are squeezed into ``n_hidden`` dimensions (usually fewer) and
    read back out. ``n_instances`` copies ("instances") of the model live side by side in the same
    tensors and are trained in parallel; they never interact, so each can see a different sparsity.
    For one instance with weights ``W`` (``[n_hidden, n_features]``) and bias ``b`` (``[n_features]``):

        h = W x                      (the hidden vector, n_hidden numbers)
        x_hat = ReLU(W^T h + b)      = ReLU(W^T W x + b)

    Attributes:
        n_features, n_hidden, n_instances: the constructor's arguments.
        W: ``nn.Parameter`` of shape ``[n_instances, n_hidden, n_features]``; random at start, each
            instance drawn independently with Xavier-normal scale (std ``sqrt(2 / (n_hidden + n_features))``).
            Column ``W[k, :, i]`` is where instance ``k`` puts feature ``i`` in its hidden space.
        b_final: ``nn.Parameter`` of shape ``[n_instances, n_features]``, zeros at start.
    """

    def __init__(self, n_features: int, n_hidden: int, n_instances: int = 1):
        super().__init__()
        self.n_features, self.n_hidden, self.n_instances = n_features, n_hidden, n_instances
        # self.W = nn.Parameter(...)        # [n_instances, n_hidden, n_features], Xavier-normal
        # self.b_final = nn.Parameter(...)  # [n_instances, n_features], zeros
        raise NotImplementedError("exercise 08.ToyModel: not started yet")

    def forward(
        self, x: Float[torch.Tensor, "batch instances features"]
    ) -> Float[torch.Tensor, "batch instances features"]:
        """``ReLU(W^T W x + b_final)`` for every example and every instance (instance ``k`` uses ``W[k]``,
        ``b_final[k]`` and ``x[:, k]`` only). ``x`` is not changed."""
        raise NotImplementedError("exercise 08.ToyModel: not started yet")
# <<< exercise: ToyModel


# >>> exercise: sparse_feature_batch
def sparse_feature_batch(
    batch_size: int,
    n_features: int,
    feature_probability: float | Float[torch.Tensor, "instances"],
    n_instances: int = 1,
    generator: torch.Generator | None = None,
) -> Float[torch.Tensor, "batch instances features"]:
    """A batch of synthetic sparse features, shape ``[batch_size, n_instances, n_features]``.

    Every entry is drawn independently: with probability ``feature_probability`` the feature is
    *present* and its value is uniform in [0, 1); otherwise it is exactly 0. So ``feature_probability``
    is the chance of being nonzero, and the *sparsity* of Elhage et al. is ``S = 1 - feature_probability``
    (S = 0.99 means a feature is present in 1% of the examples).

    Args:
        feature_probability: a float (the same for every instance) or a 1-D tensor of ``n_instances``
            probabilities (instance ``k`` uses ``feature_probability[k]``). It is not changed.
        generator: if given, all randomness comes from it (same generator state, same batch).

    Raises:
        ValueError: if a probability is outside [0, 1], or a tensor does not have shape ``[n_instances]``.
    """
    raise NotImplementedError("exercise 08.sparse_feature_batch: not started yet")
# <<< exercise: sparse_feature_batch


# >>> exercise: importance_weighted_loss
def importance_weighted_loss(
    x: Float[torch.Tensor, "batch instances features"],
    x_hat: Float[torch.Tensor, "batch instances features"],
    importance: Float[torch.Tensor, "features"] | Float[torch.Tensor, "instances features"],
) -> Float[torch.Tensor, ""]:
    """The reconstruction loss of Elhage et al., weighted by feature importance, as a 0-dim tensor.

        loss = sum over instances k of  mean over examples b of  sum over features i of
               importance[k, i] * (x[b, k, i] - x_hat[b, k, i]) ** 2

    i.e. a *sum* over features (not a mean), a *mean* over the batch, and a *sum* over instances, so that
    each instance's parameters get exactly the gradient of that instance's own loss. ``importance`` of
    shape ``[n_features]`` is shared by all instances. No input is changed.
    """
    raise NotImplementedError("exercise 08.importance_weighted_loss: not started yet")
# <<< exercise: importance_weighted_loss


# >>> exercise: train_toy_model
def train_toy_model(
    model: nn.Module,
    feature_probability: float | Float[torch.Tensor, "instances"],
    importance: Float[torch.Tensor, "features"] | Float[torch.Tensor, "instances features"],
    steps: int,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` (a ``ToyModel``, changed in place) with Adam for ``steps`` steps.

    Each step draws a fresh batch with ``sparse_feature_batch(batch_size, model.n_features,
    feature_probability, model.n_instances, generator)``, where ``generator`` is a ``torch.Generator``
    seeded once with ``seed``, and takes one Adam step (learning rate ``lr``) on
    ``importance_weighted_loss(batch, model(batch), importance)``.

    Returns:
        the loss of every step as a Python float (``steps`` numbers).
    """
    raise NotImplementedError("exercise 08.train_toy_model: not started yet")
# <<< exercise: train_toy_model


# >>> exercise: feature_dimensionality
def feature_dimensionality(
    W: Float[torch.Tensor, "instances hidden features"],
) -> Float[torch.Tensor, "instances features"]:
    """The dimensionality of every feature (Elhage et al. 2022), per instance.

    With ``W_i = W[k, :, i]`` the column of feature ``i`` and ``W_i_hat = W_i / ||W_i||``:

        D_i = ||W_i||^2 / sum over all features j (j = i included) of (W_i_hat . W_j)^2

    D_i = 1 when feature i has a dimension to itself, 1/2 for one of an antipodal pair, 2/5 on a
    pentagon. A feature with ``W_i = 0`` (not represented) gets 0, not NaN. ``W`` is not changed.
    """
    raise NotImplementedError("exercise 08.feature_dimensionality: not started yet")
# <<< exercise: feature_dimensionality
