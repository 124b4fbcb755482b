"""DeepDream: change a photo so that a layer sees more of what it already sees.

Mordvintsev, Olah and Tyka, *Inceptionism: Going Deeper into Neural Networks* (Google Research blog, 2015):
gradient **ascent** on the photo itself, on the squared activations of one layer (the "layer" objective of
Olah, Mordvintsev and Schubert, *Feature Visualization*, Distill 2017). Three pieces, each here once:

* :func:`dream_step`: one step along the gradient of :func:`activation_norm`, divided by its mean absolute
  value (so ``lr`` is the mean change per pixel, whatever the layer's scale), clamped to [0, 1];
* :func:`octave_pyramid`: the photo at ``n_octaves`` scales, **smallest first**, each ``scale`` times the
  one before;
* :func:`deep_dream`: dream the smallest octave, carry what the dream added (the *detail*) up to the next
  scale, add it to that octave of the photo, dream again; at every step the image is rolled by a random
  shift that is undone after the step, so no pixel position is favoured (the network's strides would
  otherwise print a grid on the dream).

Any course vision model works: the lite CNNs (layers ``conv1`` ... ``conv4``), lucent's InceptionV1
(``mixed3b``, ``mixed4c``, ...) and torchvision models (``features_8``: lucent-style names, the module path
joined by ``_``; the dotted path works too). Each model's input scaling comes from
:func:`mi_course.vision.featurevis.input_transform`. The forward pass stops at the dreamed layer, the model's
parameters get no gradients, every hook is removed after each step (also when it raises), and a dream with
the same ``seed`` gives the same image while the caller's random state is left alone.

    photo = sample_photo("chelsea", size=128)
    dream = deep_dream(model, photo, "conv4", steps=10, lr=0.02, octaves=3)    # [3, 128, 128] in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from jaxtyping import Float
from tqdm.auto import tqdm

from mi_course.checks import int_at_least, number_above
from mi_course.vision.activations import lucent_name
from mi_course.vision.featurevis import frozen, is_lite, redirected_relu
from mi_course.vision.photos import PHOTOS, activation_norm, class_logits, layer_norm, layer_output, sample_photo

__all__ = [
    "Image", "MIN_OCTAVE_SIZE", "EPS", "Step", "Dream",
    "check_image", "dreaming", "dream_step", "octave_sizes", "octave_pyramid", "deep_dream", "logit_gains",
    # the photos and probes a dream uses, from mi_course.vision.photos
    "PHOTOS", "activation_norm", "class_logits", "layer_norm", "layer_output", "sample_photo",
]

Image = Float[torch.Tensor, "3 height width"]
MIN_OCTAVE_SIZE = 8  # pixels on a side: below this a network has nothing left to see
EPS = 1e-8           # keeps a zero gradient (a silent layer) from dividing by zero


def check_image(image, what: str = "image") -> None:
    """ValueError unless ``image`` is one RGB float image ``[3, H, W]``."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3 \
            or not image.is_floating_point():
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{what} must be one RGB float image [3, height, width] in [0, 1], got {got}")


@contextmanager
def dreaming(model: torch.nn.Module):
    """For the length of a dream: eval mode, no parameter gradients, lucent InceptionV1's ReLUs and local
    response norms as featurevis's faster equivalents (same values and gradients). The lite CNNs keep their
    own ReLUs: a photo gives them gradient enough, and their dream follows the true gradient. Nests: a
    :func:`dream_step` called inside :func:`deep_dream` (a learner's, passed as ``step``) restores only what
    it changed, and the outer dream the rest."""
    training = model.training
    model.eval()
    try:
        with frozen(model), (nullcontext() if is_lite(model) else redirected_relu(model)):
            yield
    finally:
        model.train(training)


def _step(model: torch.nn.Module, image: Image, layer: str, lr: float) -> Image:
    device = next(model.parameters()).device
    x = image.detach().to(device, torch.float32)[None].requires_grad_(True)
    grad, = torch.autograd.grad(activation_norm(layer_output(model, x, layer)), x)
    # divided by its mean absolute value: lr is the mean change per pixel, at any layer and any photo
    grad = grad / (grad.abs().mean() + EPS)
    return (x.detach() + lr * grad)[0].clamp(0, 1).to(image.device)


def dream_step(model: torch.nn.Module, image: Image, layer: str, lr: float = 0.01) -> Image:
    """One step of gradient ascent on ``layer``'s :func:`activation_norm`: ``image + lr * g / mean(|g|)``,
    clamped to [0, 1], as a new tensor (``image`` is not changed)."""
    check_image(image)
    number_above("lr", lr, 0)
    lucent_name(model, layer)
    with dreaming(model):
        return _step(model, image, layer, lr)


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # antialias: a downscaled octave is a smaller photo, not an aliased one (a no-op when upsampling)
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def octave_sizes(height: int, width: int, n_octaves: int, scale: float) -> list[tuple[int, int]]:
    """``(round(height / scale**k), round(width / scale**k))`` for ``k = n_octaves - 1 ... 0``."""
    return [(round(height / scale ** k), round(width / scale ** k)) for k in reversed(range(n_octaves))]


def octave_pyramid(image: Image, n_octaves: int = 3, scale: float = 1.4) -> list[Image]:
    """The photo at ``n_octaves`` scales, **smallest first**: octave ``k`` from the top is ``scale**k`` times
    smaller (sizes from :func:`octave_sizes`); the last entry is the photo itself (a copy).

    Raises:
        ValueError: a bad image, ``n_octaves`` not an int >= 1, ``scale`` not a number > 1, or a smallest
            octave under ``MIN_OCTAVE_SIZE`` pixels on a side.
    """
    check_image(image)
    int_at_least("n_octaves", n_octaves, 1)
    number_above("scale", scale, 1)
    sizes = octave_sizes(image.shape[1], image.shape[2], n_octaves, scale)
    if min(sizes[0]) < MIN_OCTAVE_SIZE:
        raise ValueError(f"{n_octaves} octaves of scale {scale} make a {sizes[0][0]} x {sizes[0][1]} image from "
                         f"{tuple(image.shape[1:])}: the smallest octave needs >= {MIN_OCTAVE_SIZE} pixels a side")
    return [_resize(image, size) for size in sizes[:-1]] + [image.clone()]


Step = Callable[[torch.nn.Module, Image, str, float], Image]


def deep_dream(model: torch.nn.Module, image: Image, layer: str, *, steps: int = 10, lr: float = 0.01,
               octaves: int = 3, octave_scale: float = 1.4, shift: int = 8, seed: int = 0, progress: bool = True,
               step: Step | None = None) -> Image:
    """DeepDream ``image`` at ``layer``: ``steps`` dream steps at each of ``octaves`` scales, smallest first.

    At each octave the detail dreamed so far (``dreamed - photo`` at the previous scale) is upsampled and
    added to that octave of the photo; at each step the image is rolled by a random ``(dy, dx)`` in
    ``[-shift, shift]`` (``torch.randint`` with ``torch.Generator().manual_seed(seed)``), stepped, and rolled
    back. ``step`` replaces :func:`dream_step` (a learner's own, called as ``step(model, image, layer, lr)``).
    Returns a new ``[3, H, W]`` image in [0, 1] on the photo's device.

    Raises:
        ValueError: for a bad image, layer, ``steps``, ``lr``, ``octaves``, ``octave_scale`` or ``shift``.
    """
    check_image(image)
    lucent_name(model, layer)
    int_at_least("steps", steps, 1)
    number_above("lr", lr, 0)
    int_at_least("shift", shift, 0)
    pyramid = octave_pyramid(image, octaves, octave_scale)
    generator = torch.Generator().manual_seed(seed)  # its own generator: the caller's random state is untouched
    one_step = step or _step
    with dreaming(model), tqdm(total=octaves * steps, desc=f"dream {layer}", disable=not progress, leave=False) as bar:
        detail = torch.zeros_like(pyramid[0])
        for base in pyramid:
            dreamed = base + _resize(detail, tuple(base.shape[1:]))
            for _ in range(steps):
                dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator).tolist()
                rolled = one_step(model, dreamed.roll((dy, dx), dims=(1, 2)), layer, lr)
                dreamed = rolled.roll((-dy, -dx), dims=(1, 2))  # undone: the photo stays where it was
                bar.update()
            # what the dream added at this scale, carried up; the next octave's photo brings its own detail
            detail = dreamed - base
    return dreamed.clamp(0, 1)


Dream = Callable[[torch.nn.Module, Image, str], Image]


def logit_gains(model: torch.nn.Module, photos: Sequence[Image], layers: Sequence[str], *,
                dream: Dream | None = None, **dream_kwargs) -> Float[torch.Tensor, "layer photo classes"]:
    """How much each layer's dream raises each class logit: ``class_logits(dream) - class_logits(photo)``
    for every layer and photo (photos may differ in size). ``dream(model, photo, layer)`` makes the dream
    (default: :func:`deep_dream` with ``dream_kwargs``)."""
    photos, layers = list(photos), list(layers)
    if not photos or not layers:
        raise ValueError(f"give at least one photo and one layer, got {len(photos)} photos and {len(layers)} layers")
    for i, photo in enumerate(photos):
        check_image(photo, f"photos[{i}]")
    if dream is None:
        dream_kwargs.setdefault("progress", False)

        def dream(model, photo, layer):
            return deep_dream(model, photo, layer, **dream_kwargs)
    before = torch.cat([class_logits(model, p[None]) for p in photos])  # one at a time: sizes may differ
    after = torch.stack([torch.cat([class_logits(model, dream(model, p, layer)[None]) for p in photos])
                         for layer in layers])
    return after - before[None]
