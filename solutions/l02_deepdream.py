"""Lesson 02, DeepDream: exercises.

Images are RGB float tensors ``[3, height, width]`` in [0, 1], one photo at a time (a model wants a batch:
``image[None]``). A *layer* is a module name from ``model.named_modules()`` (``"conv4"`` in the lite CNN,
``"mixed4c"`` in InceptionV1). Models want their own input scaling: ``input_transform(model)`` turns a batch
in [0, 1] into what the model takes (the lite CNNs take it as is; lucent's InceptionV1 wants ``x * 255 - 117``).
``layer_output(model, batch, layer)`` (from :mod:`mi_course.vision.photos`) does both: it scales the batch,
runs the model up to ``layer`` and returns that layer's output with the gradient graph kept, leaving no hook.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float

from mi_course.vision.featurevis import input_transform  # noqa: F401 (for your own forward pass)
from mi_course.vision.photos import class_logits, layer_output  # noqa: F401 (for your answers)


# >>> exercise: dream_step
def dream_step(model: torch.nn.Module, image: Float[torch.Tensor, "3 height width"], layer: str,
               lr: float = 0.01) -> Float[torch.Tensor, "3 height width"]:
    """One step of DeepDream: gradient **ascent** on the photo itself, on ``layer``'s activation norm.

    The objective is ``layer``'s activation norm for ``image``: the mean of the squares of all its activations
    (every channel and position), with the model's own input scaling applied. With ``g`` its gradient with
    respect to the image, the result is ``clamp(image + lr * g / (mean(|g|) + 1e-8), 0, 1)``: the gradient is
    **normalized** by its mean absolute value (the ``1e-8`` for a layer that is silent), so that a step moves a
    pixel by ``lr`` on average whatever the layer's scale (normalizing by its standard deviation is accepted
    too), and the pixels stay valid.

    The model may sit on another device than the image; the result is on the image's device. Returns a new
    ``[3, height, width]`` tensor without a gradient graph; ``image`` itself is not changed, and no hook stays
    on the model.

    Raises:
        ValueError: if ``image`` is not a float tensor ``[3, height, width]``, ``lr`` is not a number > 0, or
            the model has no layer ``layer`` (the message lists some names).
    """
    # BEGIN SOLUTION
    # Check the arguments first, so that a bad one fails with a message rather than deep inside torch.
    if not (isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3
            and image.is_floating_point()):
        got = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"image must be a float RGB image [3, height, width], got {got}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:  # bool is an int: refuse it
        raise ValueError(f"lr must be a number > 0, got {lr!r}")

    weight = next(model.parameters())  # only to learn the model's device
    # A fresh leaf: the photo as a batch of one, [1, 3, H, W], on the model's device. The gradient is taken
    # with respect to it (not the weights), and the caller's image never enters the graph.
    x = image.detach()[None].to(device=weight.device, dtype=torch.float32).requires_grad_(True)
    # layer_output scales x as this model wants it, runs the model only up to `layer` (a ValueError that
    # lists the layers if there is no such one) and removes its hook; the graph back to x is kept.
    acts = layer_output(model, x, layer)  # e.g. [1, channels, h, w]
    norm = acts.pow(2).mean()  # the objective: the mean square over every channel and position
    (grad,) = torch.autograd.grad(norm, x)  # d norm / d x, [1, 3, H, W]
    # Divided by its mean absolute value, the gradient moves a pixel by lr on average at any layer (deep
    # layers' gradients are orders of magnitude smaller than early ones'). 1e-8: a silent layer's zero grad.
    grad = grad / (grad.abs().mean() + 1e-8)
    # ASCENT (+, not -): more of what the layer already sees. Clamping keeps the pixels valid.
    dreamed = (x.detach() + lr * grad).clamp(0, 1)
    return dreamed[0].to(image.device)  # [3, H, W] without a graph, back where the photo was
    # STUB: raise NotImplementedError("exercise 02.dream_step: not started yet")
    # END SOLUTION
# <<< exercise: dream_step


# >>> exercise: octave_pyramid
def octave_pyramid(image: Float[torch.Tensor, "3 height width"], n_octaves: int = 3,
                   scale: float = 1.4) -> list[Float[torch.Tensor, "3 h w"]]:
    """The photo at ``n_octaves`` scales, **smallest first** (the order DeepDream dreams them in).

    Octave ``k`` counted from the full size (``k = n_octaves - 1, ..., 1, 0``) is the photo resized to
    ``round(height / scale**k)`` by ``round(width / scale**k)`` pixels; the last entry (``k = 0``) is the
    photo itself, a copy. Every octave is the **whole** photo (not a crop), resampled bilinearly with
    antialiasing, so that a smaller octave is a smaller photo rather than a sample of its pixels. Returns a list
    of ``n_octaves`` tensors ``[3, h, w]``; ``image`` itself is not changed.

    Raises:
        ValueError: if ``image`` is not a float tensor ``[3, height, width]``, ``n_octaves`` is not an
            int >= 1, ``scale`` is not a number > 1, or the smallest octave would be under 8 pixels on a side.
    """
    # BEGIN SOLUTION
    if not (isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3
            and image.is_floating_point()):
        got = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"image must be a float RGB image [3, height, width], got {got}")
    if isinstance(n_octaves, bool) or not isinstance(n_octaves, int) or n_octaves < 1:
        raise ValueError(f"n_octaves must be an int >= 1, got {n_octaves!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 1:
        raise ValueError(f"scale must be a number > 1, got {scale!r}")

    height, width = image.shape[1:]
    # Octave k is scale**k times smaller than the photo; k counts DOWN to 0, so the smallest comes first.
    sizes = [(round(height / scale ** k), round(width / scale ** k)) for k in range(n_octaves - 1, -1, -1)]
    if min(sizes[0]) < 8:  # so small an octave leaves the network nothing to see
        raise ValueError(f"{n_octaves} octaves of scale {scale} shrink a {height} x {width} photo to "
                         f"{sizes[0][0]} x {sizes[0][1]}: the smallest octave needs at least 8 pixels on a side")
    # interpolate works on batches, [1, 3, H, W] -> [1, 3, h, w]. Antialiasing averages all the pixels that
    # a smaller octave merges (plain bilinear would read only the 4 nearest, a sample of the photo).
    smaller = [torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", align_corners=False,
                                               antialias=True)[0] for size in sizes[:-1]]
    return smaller + [image.clone()]  # k = 0 is the photo itself: a copy, so no one changes the original
    # STUB: raise NotImplementedError("exercise 02.octave_pyramid: not started yet")
    # END SOLUTION
# <<< exercise: octave_pyramid


# >>> exercise: deep_dream
def deep_dream(model: torch.nn.Module, image: Float[torch.Tensor, "3 height width"], layer: str,
               steps: int = 10, lr: float = 0.01, octaves: int = 3, octave_scale: float = 1.4, shift: int = 8,
               seed: int = 0) -> Float[torch.Tensor, "3 height width"]:
    """DeepDream (Mordvintsev, Olah and Tyka, 2015): ``steps`` calls of your ``dream_step`` at each octave of
    your ``octave_pyramid(image, octaves, octave_scale)``, smallest octave first.

    * **Octaves.** Each octave's dream starts from that octave of the photo plus the *detail*, what the dream
      has added so far (nothing at the smallest octave), resized bilinearly to the octave's size; after its
      steps, the detail is what they added to that octave. Only the detail is resized up, never the dreamed
      image, so the photo keeps its own fine detail (it comes from the photo's larger octave).
    * **Random shifts.** Each step dreams the image rolled by ``(dy, dx)`` pixels along (height, width), as
      ``image.roll((dy, dx), dims=(1, 2))`` rolls it, and rolls the result back by ``(-dy, -dx)``: the
      network's strides land on a different pixel grid at every step, and the photo stays where it was. The
      shifts are reproducible: one pair per step, in the order the steps run, integers uniform in
      ``[-shift, shift]``, drawn two at a time by ``torch.randint`` from one ``torch.Generator`` seeded with
      ``seed`` when the call starts (the test checks where each step's change lands).
    * **Clamping.** The result, the last octave's dream, is clamped to [0, 1].

    Returns a new ``[3, height, width]`` tensor (the photo's size) without a gradient graph; ``image`` itself
    is not changed. The same ``seed`` gives the same dream.

    Raises:
        ValueError: for a bad ``image``, ``layer``, ``lr``, ``octaves`` or ``octave_scale`` (as your
            ``dream_step`` and ``octave_pyramid`` raise), ``steps`` not an int >= 1, or ``shift`` not an int >= 0.
    """
    # BEGIN SOLUTION
    # dream_step and octave_pyramid check the image, layer, lr, octaves and octave_scale; the rest is ours.
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise ValueError(f"shift must be an int >= 0, got {shift!r}")

    photos = octave_pyramid(image, octaves, octave_scale)  # smallest first, each [3, h, w]
    # A generator of our own, seeded once per call: the same seed gives the same shifts, and the global
    # random state is neither used nor changed.
    rng = torch.Generator().manual_seed(seed)
    detail = torch.zeros_like(photos[0])  # what the dream has added so far: nothing yet
    for photo in photos:
        # Carry the detail up to this octave's size (interpolate wants a batch: [1, 3, h, w]) and add it to
        # this octave of the PHOTO: the photo's own fine detail comes from its larger octave, not from
        # blowing up the smaller dream.
        detail = torch.nn.functional.interpolate(detail[None], size=tuple(photo.shape[1:]), mode="bilinear",
                                                 align_corners=False)[0]
        dream = photo + detail
        for _ in range(steps):
            # A new random shift each step, so the network's strides meet a different pixel grid every time.
            dy, dx = torch.randint(-shift, shift + 1, (2,), generator=rng).tolist()
            stepped = dream_step(model, dream.roll((dy, dx), dims=(1, 2)), layer, lr)
            dream = stepped.roll((-dy, -dx), dims=(1, 2))  # undo the shift: the photo stays in place
        detail = dream - photo  # what this octave's steps (and the ones before) added
    return dream.clamp(0, 1)  # the last octave's dream, the photo's size
    # STUB: raise NotImplementedError("exercise 02.deep_dream: not started yet")
    # END SOLUTION
# <<< exercise: deep_dream


# >>> exercise: dream_layer_for
def dream_layer_for(model: torch.nn.Module, photos: Sequence[Float[torch.Tensor, "3 height width"]], target: int,
                    layers: Sequence[str]) -> str:
    """An investigation: at which of ``layers`` should you dream to make the model see more of class
    ``target``?

    Return the layer whose dream raises the logit of class ``target`` most, on average over ``photos``. A
    photo's *rise* at a layer is the class's logit for the photo dreamed at that layer (``deep_dream`` at its
    defaults) minus its logit for the photo itself; logits as ``class_logits`` (:mod:`mi_course.vision.photos`)
    gives them, also for InceptionV1, whose forward returns probabilities. The test measures each layer's dream
    with the course's ``deep_dream`` at its defaults (``steps=10, lr=0.01, octaves=3, octave_scale=1.4,
    shift=8, seed=0``) on photos you did not see, and accepts your layer if its mean rise is the largest (a near
    tie with another layer counts too).

    Raises:
        ValueError: if ``photos`` or ``layers`` is empty, or ``target`` is not a class of the model.
    """
    # BEGIN SOLUTION
    from mi_course.vision import deepdream as canonical  # the canonical version: mi_course/vision/deepdream.py

    photos, layers = list(photos), list(layers)
    if not photos or not layers:
        raise ValueError(f"give at least one photo and one layer, got {len(photos)} photos and {len(layers)} layers")
    n_classes = class_logits(model, photos[0][None]).shape[1]
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < n_classes:
        raise ValueError(f"target must be a class index in 0..{n_classes - 1}, got {target!r}")
    gains = canonical.logit_gains(model, photos, layers, dream=deep_dream)  # [layer, photo, class]
    return layers[int(gains[:, :, target].mean(1).argmax())]
    # STUB: raise NotImplementedError("exercise 02.dream_layer_for: not started yet")
    # END SOLUTION
# <<< exercise: dream_layer_for
