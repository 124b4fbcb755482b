# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 02, DeepDream: exercises.

Images are RGB float tensors ``[3, height, width]`` in [0, 1], one photo at a time (a model wants a batch:
``image[None]``). A *layer* is a module name from ``model.named_modules()`` (``"conv4"`` in the lite CNN,
``"mixed4c"`` in InceptionV1). Models want their own input scaling: ``input_transform(model)`` turns a batch
in [0, 1] into what the model takes (the lite CNNs take it as is; lucent's InceptionV1 wants ``x * 255 - 117``).
``layer_activations(model, batch, layer)`` (from :mod:`mi_course.vision.photos`) does both: it scales the batch,
runs the model up to ``layer`` and returns that layer's output with the gradient graph kept, leaving no hook.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float

from mi_course.vision.featurevis import input_transform  # noqa: F401 (for your own forward pass)
from mi_course.vision.photos import class_logits, layer_activations  # noqa: F401 (for your answers)


# >>> exercise: dream_step
def dream_step(model: torch.nn.Module, image: Float[torch.Tensor, "3 height width"], layer: str,
               lr: float = 0.01) -> Float[torch.Tensor, "3 height width"]:
    """One step of DeepDream: gradient **ascent** on the photo itself, on ``layer``'s activation norm.

    The objective is the mean of the squares of ``layer``'s activations for ``image`` (every channel and
    position: ``acts.pow(2).mean()``). Take its gradient ``g`` with respect to the image and **normalize** it:
    divide by its mean absolute value (plus ``1e-8``, for a layer that is silent), so that a step moves a pixel
    by ``lr`` on average whatever the layer's scale (dividing by its standard deviation is accepted too). Step
    uphill, ``image + lr * g``, and clamp to [0, 1].

    The model may sit on another device than the image: compute on the model's device
    (``next(model.parameters()).device``) and return on the image's. Returns a new ``[3, height, width]``
    tensor without a gradient graph; ``image`` itself is not changed, and no hook stays on the model.

    Raises:
        ValueError: if ``image`` is not a float tensor ``[3, height, width]``, ``lr`` is not a number > 0, or
            the model has no layer ``layer`` (the message lists some names).
    """
    raise NotImplementedError("exercise 02.dream_step: not started yet")
# <<< exercise: dream_step


# >>> exercise: octave_pyramid
def octave_pyramid(image: Float[torch.Tensor, "3 height width"], n_octaves: int = 3,
                   scale: float = 1.4) -> list[Float[torch.Tensor, "3 h w"]]:
    """The photo at ``n_octaves`` scales, **smallest first** (the order DeepDream dreams them in).

    Octave ``k`` counted from the full size (``k = n_octaves - 1, ..., 1, 0``) is the photo resized to
    ``round(height / scale**k)`` by ``round(width / scale**k)`` pixels; the last entry (``k = 0``) is the
    photo itself, a copy. Resize the whole photo (do not crop), e.g. with
    ``torch.nn.functional.interpolate(image[None], size=..., mode="bilinear", antialias=True)[0]``
    (antialiasing keeps a smaller octave a smaller photo rather than a sample of its pixels). Returns a list
    of ``n_octaves`` tensors ``[3, h, w]``; ``image`` itself is not changed.

    Raises:
        ValueError: if ``image`` is not a float tensor ``[3, height, width]``, ``n_octaves`` is not an
            int >= 1, ``scale`` is not a number > 1, or the smallest octave would be under 8 pixels on a side.
    """
    raise NotImplementedError("exercise 02.octave_pyramid: not started yet")
# <<< exercise: octave_pyramid


# >>> exercise: deep_dream
def deep_dream(model: torch.nn.Module, image: Float[torch.Tensor, "3 height width"], layer: str,
               steps: int = 10, lr: float = 0.01, octaves: int = 3, octave_scale: float = 1.4, shift: int = 8,
               seed: int = 0) -> Float[torch.Tensor, "3 height width"]:
    """DeepDream (Mordvintsev, Olah and Tyka, 2015): ``steps`` calls of your ``dream_step`` at each octave of
    your ``octave_pyramid(image, octaves, octave_scale)``, smallest octave first.

    * **Octaves.** Keep the *detail*, what the dream has added so far: zeros at the smallest octave. At each
      octave, resize the detail to that octave's size (``interpolate(..., mode="bilinear")``), add it to that
      octave of the photo, dream, and keep ``detail = dreamed - octave`` for the next. The photo's own fine
      detail comes from its larger octave, so nothing is lost by upsampling.
    * **Random shifts.** Before each step roll the image by a random ``(dy, dx)``,
      ``image.roll((dy, dx), dims=(1, 2))``, call ``dream_step(model, rolled, layer, lr)``, and roll the
      result back by ``(-dy, -dx)``: the network's strides then land on a different pixel grid at every step,
      and the photo stays where it was. Draw the shifts from your own generator,
      ``generator = torch.Generator().manual_seed(seed)`` (made once per call), one pair per step:
      ``dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator).tolist()``.
    * **Clamping.** Return the last octave's dream clamped to [0, 1].

    Returns a new ``[3, height, width]`` tensor (the photo's size) without a gradient graph; ``image`` itself
    is not changed. The same ``seed`` gives the same dream.

    Raises:
        ValueError: for a bad ``image``, ``layer``, ``lr``, ``octaves`` or ``octave_scale`` (as your
            ``dream_step`` and ``octave_pyramid`` raise), ``steps`` not an int >= 1, or ``shift`` not an int >= 0.
    """
    raise NotImplementedError("exercise 02.deep_dream: not started yet")
# <<< exercise: deep_dream


# >>> exercise: dream_layer_for
def dream_layer_for(model: torch.nn.Module, photos: Sequence[Float[torch.Tensor, "3 height width"]], target: int,
                    layers: Sequence[str]) -> str:
    """An investigation: at which of ``layers`` should you dream to make the model see more of class
    ``target``?

    Return the layer whose dream raises the logit of class ``target`` most, on average over ``photos``. The
    test measures each layer's dream with the course's ``deep_dream`` at its defaults (``steps=10, lr=0.01,
    octaves=3, octave_scale=1.4, shift=8, seed=0``) on photos you did not see, and accepts your layer if its
    rise is the largest (a near tie with another layer counts too).

    One sound method: for each layer and photo, ``dream = deep_dream(model, photo, layer)`` (yours, at its
    defaults), and the rise ``class_logits(model, dream[None])[0, target] - class_logits(model, photo[None])[0,
    target]`` (``class_logits`` from :mod:`mi_course.vision.photos` returns the logits, also for InceptionV1,
    whose forward returns probabilities). Average over the photos; return the layer with the largest mean.

    Raises:
        ValueError: if ``photos`` or ``layers`` is empty, or ``target`` is not a class of the model.
    """
    raise NotImplementedError("exercise 02.dream_layer_for: not started yet")
# <<< exercise: dream_layer_for
