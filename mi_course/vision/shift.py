"""How much of a visualization survives a shift: the test of a feature against an adversarial accident.

    kept = shift_kept(model, renders, "conv4", channels, shifts=range(1, 9))   # (8, n)

A render made for one neuron (lucent's ``objectives.neuron``: one channel at the centre of the map) is read
again after the whole image is rolled by ``s`` pixels, right, left, down and up; ``kept[k, i]`` is the mean of
the four over the activation before, for image ``i`` and shift ``shifts[k]``. The neuron read stays the same,
so the pattern arrives ``s`` pixels away from where it was made: a feature the neuron really detects is
still mostly there, a pixel pattern tuned to one exact alignment is not. (A channel's maximum over space
would follow the pattern and see no shift at all.)

Rolling wraps the image around, so no padding or new border enters; for a render the size of the input,
the centre neuron's receptive field lies inside the image for the shifts that matter (a few pixels).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from jaxtyping import Float

from mi_course.vision.activations import check_images, layer_activations


def centre_activation(model: torch.nn.Module, images: Float[torch.Tensor, "n 3 height width"], layer: str,
                      channels: Sequence[int]) -> Float[torch.Tensor, "n"]:
    """Image ``i``'s activation at the centre position of channel ``channels[i]`` of ``layer`` (the neuron
    ``objectives.neuron(layer, channels[i])`` maximizes), no gradients, on the CPU."""
    images = check_images(images)
    channels = [int(c) for c in channels]
    if len(channels) != len(images):
        raise ValueError(f"channels must name one channel per image: {len(images)} images, {len(channels)} "
                         f"channels")
    acts = layer_activations(model, images, layer)
    if acts.dim() != 4:
        raise ValueError(f"layer {layer!r} has no spatial map (output shape {tuple(acts.shape)}): a shift needs "
                         f"a convolutional layer")
    if not all(0 <= c < acts.shape[1] for c in channels):
        raise ValueError(f"channels must be in 0..{acts.shape[1] - 1} for layer {layer!r}, got {channels}")
    return acts[torch.arange(len(channels)), torch.tensor(channels), acts.shape[-2] // 2, acts.shape[-1] // 2]


def shift_kept(model: torch.nn.Module, images: Float[torch.Tensor, "n 3 height width"], layer: str,
               channels: Sequence[int], shifts: Iterable[int]) -> Float[torch.Tensor, "shifts n"]:
    """The fraction of each image's centre-neuron activation (:func:`centre_activation`) left when the image
    is rolled by each of ``shifts`` pixels: the mean over a roll right, left, down and up, divided by the
    activation unshifted. 1 means the shift changed nothing; a shift of 0 gives exactly 1. A fraction of
    nothing is undefined: NaN for an image whose unshifted activation is not positive (a render that never
    excited its neuron)."""
    images = check_images(images)
    shifts = [int(s) for s in shifts]
    if not shifts or min(shifts) < 0:
        raise ValueError(f"shifts must be one or more whole numbers of pixels >= 0, got {shifts}")
    base = centre_activation(model, images, layer, channels)
    base = base.where(base > 0, torch.tensor(float("nan")))
    # every roll of every image in one probe: [shift, roll (right, down, left, up), image]
    rolled = torch.cat([torch.roll(images, sign * s, dims=dim) for s in shifts for sign in (1, -1)
                        for dim in (-2, -1)])
    acts = centre_activation(model, rolled, layer, list(channels) * (4 * len(shifts)))
    return acts.view(len(shifts), 4, len(images)).mean(1) / base
