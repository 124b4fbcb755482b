# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 01, feature visualization: exercises."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from jaxtyping import Float

from mi_course.vision.featurevis import input_transform, redirected_relu

# An objective, as in lucent: a function of ``T``, where ``T(layer)`` gives that layer's activations for the
# current batch of images, returning a scalar **loss to minimize** (so "excite channel 5" is minus its mean).
Objective = Callable[[Callable[[str], torch.Tensor]], torch.Tensor]


# >>> exercise: get_activations
def get_activations(model: torch.nn.Module, images: Float[torch.Tensor, "batch 3 height width"],
                    layer: str) -> torch.Tensor:
    """The output of ``model``'s layer ``layer`` for ``images``, with the gradient graph kept: feature
    visualization differentiates it with respect to the images.

    ``images`` are RGB in [0, 1], ``[batch, 3, height, width]``. The model sees them on its own device and
    scaled the way it wants its input, ``input_transform(model)`` (the lite CNNs take [0, 1] as is; lucent's
    InceptionV1 wants ``x * 255 - 117``). ``layer`` is a name from ``model.named_modules()`` (``"conv4"``,
    ``"mixed3b"``). The model is left as it was found: no hook stays on it, also when its forward pass raises
    (a forgotten hook slows every later call and keeps tensors alive). Returns the layer's output
    (``[batch, channels, h, w]`` for a convolution, ``[batch, features]`` for a linear layer).

    Raises:
        ValueError: if ``images`` is not a float tensor ``[batch, 3, height, width]``, or the model has no
            module named ``layer`` (the message lists some names).
    """
    raise NotImplementedError("exercise 01.get_activations: not started yet")
# <<< exercise: get_activations


# >>> exercise: channel_objective
def channel_objective(layer: str, channel: int) -> Objective:
    """An objective that excites one channel: minus the channel's mean activation, averaged over the batch
    and every spatial position (a linear layer has no positions: its feature's mean over the batch).

    Returns a function ``objective(T)``; ``T(layer)`` gives the layer's activations ``[batch, channels, h, w]``
    (or ``[batch, features]``). Lower is better (the optimizer minimizes it).

    Raises:
        ValueError: ``channel`` is not an int >= 0 (when the objective is made), or not below the layer's
            number of channels (when it is called).
    """
    raise NotImplementedError("exercise 01.channel_objective: not started yet")
# <<< exercise: channel_objective


# >>> exercise: neuron_objective
def neuron_objective(layer: str, channel: int, x: int | None = None, y: int | None = None) -> Objective:
    """An objective that excites one neuron: channel ``channel`` at column ``x`` and row ``y`` of a
    convolution's output ``[batch, channels, h, w]`` (minus its mean over the batch). ``x`` and ``y`` default
    to the centre, ``w // 2`` and ``h // 2``.

    Raises:
        ValueError: ``channel`` is not an int >= 0 (when the objective is made); the channel, ``x`` or ``y``
            is outside the layer (when it is called).
    """
    raise NotImplementedError("exercise 01.neuron_objective: not started yet")
# <<< exercise: neuron_objective


# >>> exercise: fourier_image
def fourier_image(size: int, batch: int = 1, decay: float = 1.0, sd: float = 0.01,
                  seed: int | None = None) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """An image parameterized by its Fourier spectrum, scaled so that one optimizer step changes low
    frequencies as much as natural images vary in them (their power falls roughly like ``1 / f ** 2``), where a
    pixel parameterization makes fine noise as easy as broad shapes.

    The parameter is ``spectrum``, the real and imaginary parts of a real ``size x size`` image's 2-D spectrum
    in the layout of ``torch.fft.rfft2``, ``[batch, 3, size, size // 2 + 1, 2]``, drawn from a normal
    distribution with std ``sd`` (seeded with ``seed`` when it is given), requiring grad. The image is the
    sigmoid (so that it lies in [0, 1]) of the orthonormal (``norm="ortho"``) inverse real FFT, at
    ``size x size``, of the spectrum with each coefficient scaled by ``1 / max(f, 1 / size) ** decay``. ``f`` is
    the coefficient's spatial frequency in cycles per pixel, ``sqrt(fy ** 2 + fx ** 2)`` (``fy`` along the
    rows, ``fx`` along the columns, as ``torch.fft.fftfreq`` and ``rfftfreq`` list them); the floor at
    ``1 / size`` gives the constant term (``f = 0``) a finite scale.

    Returns ``([spectrum], image)``: the parameters for an optimizer, and a function ``image()`` that
    returns the current image ``[batch, 3, size, size]``.

    Raises:
        ValueError: ``size`` or ``batch`` is not a positive int.
    """
    raise NotImplementedError("exercise 01.fourier_image: not started yet")
# <<< exercise: fourier_image


# >>> exercise: jitter
def jitter(images: Float[torch.Tensor, "batch 3 height width"], max_shift: int,
           generator: torch.Generator | None = None) -> Float[torch.Tensor, "batch 3 height width"]:
    """``images`` shifted by a random whole number of pixels, so that a pattern optimized through it has to
    work wherever it sits. One shift for the whole batch: ``dy`` rows and ``dx`` columns, each uniform over
    ``-max_shift .. max_shift`` (both ends included), drawn with ``generator`` (the same generator state gives
    the same shift). The shift wraps around: what leaves one edge comes back at the other, so the size stays
    and no border enters. ``max_shift=0`` returns the images unchanged. Gradients flow through.

    Raises:
        ValueError: ``images`` is not ``[batch, 3, height, width]``, or ``max_shift`` is not an int >= 0.
    """
    raise NotImplementedError("exercise 01.jitter: not started yet")
# <<< exercise: jitter


# >>> exercise: visualize
def visualize(model: torch.nn.Module, objective: Objective, *, size: int = 64, steps: int = 128,
              lr: float = 0.05, shift: int = 2, seed: int = 0) -> Float[torch.Tensor, "1 3 size size"]:
    """Your own feature-visualization loop: the image that minimizes ``objective``, made with this lesson's
    own pieces, ``fourier_image``, ``jitter`` and ``get_activations`` (the test puts the course's versions in
    their place, so that this exercise is graded on its own).

    The image is ``fourier_image(size, seed=seed)``'s, optimized by Adam at learning rate ``lr`` for
    ``steps`` steps. At every step the objective sees the image shifted by ``jitter`` (at most ``shift``
    pixels, drawn from a ``torch.Generator`` seeded with ``seed``), so that only patterns that work wherever
    they sit survive: ``objective(T)``, where ``T(layer)`` is ``get_activations`` of the shifted image. The
    same ``seed`` gives the same image. The optimization runs inside ``redirected_relu(model)``: a channel
    that is silent on the grey starting image gets no gradient through a plain ReLU, and would never start.

    Only the image is learned, and the model is left as it was found. During the optimization the model is
    in eval mode (dropout and batch norm, where a model has them, behave as they will when the image is
    shown to it) and its parameters do not require grad (no gradients pile up in them). Afterwards, also
    when the objective raises, the model is back in the mode it was in before the call (training or eval)
    and every parameter's ``requires_grad`` is what it was.

    Returns the final image ``[1, 3, size, size]`` in [0, 1], detached.

    Raises:
        ValueError: ``steps`` is not a positive int.
    """
    raise NotImplementedError("exercise 01.visualize: not started yet")
# <<< exercise: visualize


# >>> exercise: diversity_objective
def diversity_objective(layer: str) -> Objective:
    """How alike a batch of images look to ``layer``: the mean cosine similarity between the images' Gram
    matrices, over every pair of two **different** images (Olah et al., *Feature Visualization*, 2017).

    For image ``i`` with activations ``A_i`` (``[channels, h * w]``), its Gram matrix is ``A_i A_i^T``
    (``[channels, channels]``: which channels fire together, wherever they fire, so style and not layout).
    The value is the mean, over every pair ``i != j``, of the cosine similarity between the two images' Gram
    matrices (each flattened to a vector): a scalar between -1 and 1, 1 when every image looks alike to the
    layer. Added to another objective with a positive weight, it pushes the images apart.

    Raises:
        ValueError: the batch has fewer than 2 images (when the objective is called).
    """
    raise NotImplementedError("exercise 01.diversity_objective: not started yet")
# <<< exercise: diversity_objective


# >>> exercise: convincing_image
def convincing_image(model: torch.nn.Module, class_index: int, logits_layer: str = "fc", size: int = 64,
                     steps: int = 128) -> Float[torch.Tensor, "1 3 size size"]:
    """An investigation: can you make an image that the model is sure shows class ``class_index``, and that
    stays convincing when it moves?

    Return one image ``[1, 3, size, size]`` in [0, 1] that the model classifies as ``class_index`` with
    probability at least 0.9, and still at least 0.9 on average over copies shifted by 1, 2, 3 and 4 pixels
    (up, down, left, right, wrapping around). ``logits_layer`` names the model's layer of class logits; ``steps`` is the
    number of optimization steps you may take (the test leaves the default). The test asks
    for classes the notebook did not try, on the lite ``vision`` model with one CPU thread: keep one call
    under 15 seconds there (the reference solution takes about 2 s).
    """
    raise NotImplementedError("exercise 01.convincing_image: not started yet")
# <<< exercise: convincing_image
