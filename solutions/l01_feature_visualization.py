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
    # BEGIN SOLUTION
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 \
            or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor [batch, 3, height, width], got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    try:
        module = model.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        raise ValueError(f"the model has no layer {layer!r}; layers: {', '.join(names[:20])} ...") from None
    caught = []
    handle = module.register_forward_hook(lambda mod, inputs, output: caught.append(output))
    try:
        model(input_transform(model)(images.to(next(model.parameters()).device)))
    finally:
        handle.remove()
    return caught[0]
    # STUB: raise NotImplementedError("exercise 01.get_activations: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise ValueError(f"channel must be an int >= 0, got {channel!r}")

    def objective(T):
        acts = T(layer)
        if channel >= acts.shape[1]:
            raise ValueError(f"{layer} has {acts.shape[1]} channels: channel {channel} is out of range")
        return -acts[:, channel].mean()
    return objective
    # STUB: raise NotImplementedError("exercise 01.channel_objective: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise ValueError(f"channel must be an int >= 0, got {channel!r}")

    def objective(T):
        acts = T(layer)
        _, channels, h, w = acts.shape
        col = w // 2 if x is None else x
        row = h // 2 if y is None else y
        if channel >= channels or not (0 <= col < w and 0 <= row < h):
            raise ValueError(f"{layer} is {channels} channels of {h} x {w}: channel {channel} at x={col}, "
                             f"y={row} is outside it")
        return -acts[:, channel, row, col].mean()
    return objective
    # STUB: raise NotImplementedError("exercise 01.neuron_objective: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    for name, value in (("size", size), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    spectrum = (torch.randn(batch, 3, size, size // 2 + 1, 2, generator=generator) * sd).requires_grad_()
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    # natural images have power falling like 1/f^2: the same step in every coefficient is then a natural image
    scale = 1.0 / torch.sqrt(fy ** 2 + fx ** 2).clamp(min=1.0 / size) ** decay

    def image():
        coefficients = torch.view_as_complex(spectrum) * scale
        return torch.sigmoid(torch.fft.irfft2(coefficients, s=(size, size), norm="ortho"))
    return [spectrum], image
    # STUB: raise NotImplementedError("exercise 01.fourier_image: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor [batch, 3, height, width], got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(-2, -1))
    # STUB: raise NotImplementedError("exercise 01.jitter: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    params, image = fourier_image(size, seed=seed)
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with redirected_relu(model):
            for _ in range(steps):
                optimizer.zero_grad()
                shifted = jitter(image(), shift, generator)
                loss = objective(lambda layer: get_activations(model, shifted, layer))
                loss.backward()
                optimizer.step()
    finally:
        model.train(was_training)
        for p, flag in flags:
            p.requires_grad_(flag)
    return image().detach()
    # STUB: raise NotImplementedError("exercise 01.visualize: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    def objective(T):
        acts = T(layer)
        batch = acts.shape[0]
        if batch < 2:
            raise ValueError(f"diversity needs a batch of at least 2 images, got {batch}")
        flat = acts.flatten(2)                                    # [batch, channels, positions]
        grams = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)
        similarity = grams @ grams.T                              # [batch, batch], 1 on the diagonal
        return (similarity.sum() - similarity.diagonal().sum()) / (batch * (batch - 1))
    return objective
    # STUB: raise NotImplementedError("exercise 01.diversity_objective: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if isinstance(class_index, bool) or not isinstance(class_index, int) or class_index < 0:
        raise ValueError(f"class_index must be an int >= 0, got {class_index!r}")
    # the logit alone can grow with every class's logit; the log-probability pushes the others down
    def objective(T):
        return -torch.log_softmax(T(logits_layer), dim=-1)[:, class_index].mean()
    return visualize(model, objective, size=size, steps=steps, lr=0.05, shift=4, seed=0)
    # STUB: raise NotImplementedError("exercise 01.convincing_image: not started yet")
    # END SOLUTION
# <<< exercise: convincing_image
