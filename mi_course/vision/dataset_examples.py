"""Dataset examples: the images that excite a channel most, cut to what its unit sees.

The second kind of evidence that a channel is a feature (Olah et al., *Feature Visualization*, Distill
2017; Cammarata et al., *Curve Detectors*, Distill 2020): feature visualization says what the channel
*can* respond to, dataset examples what it *does* respond to in real data. For each image the channel's
strongest position counts (its maximum over the map), so every image gives at most one example; the
``k`` images with the largest maxima win (ties go to the earlier image), and each example is cropped to the
receptive field of the unit that fired (:mod:`mi_course.vision.receptive_field`), grey where the field
leaves the image.

    ex = dataset_examples(model, images, "conv4", 3, k=8)
    ex.values, ex.indices, ex.positions, ex.crops        # (8,), (8,), (8, 2) rows and columns, (8, 3, 44, 44)
    many = top_examples(model, images, "conv4", [0, 1, 2], k=8)   # one pass over the images for several
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from mi_course.vision.activations import check_images, layer_activations
from mi_course.vision.receptive_field import FILL, ReceptiveField, receptive_field


class DatasetExamples(NamedTuple):
    """One channel's top examples, best first: activation ``values`` (k,), the images' ``indices`` (k,),
    ``positions`` (k, 2) of the firing unit as (row, column) in the layer's map, and ``crops``
    (k, 3, rf.size, rf.size) of the images to that unit's receptive field ``rf``."""

    channel: int
    values: torch.Tensor
    indices: torch.Tensor
    positions: torch.Tensor
    crops: torch.Tensor
    rf: ReceptiveField


def _check_k(k, n_images: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > n_images:
        raise ValueError(f"k={k} examples asked for from {n_images} images: each image gives at most one")
    return k


def image_maxima(model, images: torch.Tensor, layer: str, channels: Sequence[int], batch_size: int = 128
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """For every image and each of ``channels``: the channel's maximum over the layer's map and where it is
    (the first such position in row-major order), ``(values (N, len(channels)), flat positions (N,
    len(channels)), (h, w))``. Runs in batches, keeping only these, so it works on thousands of images."""
    images = check_images(images)
    channels = list(channels)
    values, where, shape = [], [], None
    for start in range(0, len(images), batch_size):
        acts = layer_activations(model, images[start:start + batch_size], layer, batch_size)
        if acts.dim() != 4:
            raise ValueError(f"layer {layer!r} has no spatial map (its output is {tuple(acts.shape)})")
        n_channels = acts.shape[1]
        bad = [c for c in channels if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n_channels]
        if bad:
            raise ValueError(f"channels must be ints in [0, {n_channels}) for layer {layer!r}, got {bad}")
        shape = tuple(acts.shape[-2:])
        best = acts[:, channels].flatten(2).max(-1)
        values.append(best.values)
        where.append(best.indices)
    return torch.cat(values), torch.cat(where), shape


def top_examples(model, images: torch.Tensor, layer: str, channels: Sequence[int], k: int = 8,
                 rf: ReceptiveField | None = None, fill: float = FILL, batch_size: int = 128
                 ) -> dict[int, DatasetExamples]:
    """:func:`dataset_examples` for several channels with one pass over ``images``: ``{channel: examples}``."""
    images = check_images(images)
    k = _check_k(k, len(images))
    rf = receptive_field(model, layer) if rf is None else rf
    values, where, (_, w) = image_maxima(model, images, layer, channels, batch_size)
    out = {}
    for i, channel in enumerate(channels):
        order = torch.sort(values[:, i], descending=True, stable=True).indices[:k]
        flat = where[order, i]
        positions = torch.stack([flat // w, flat % w], dim=1)
        crops = torch.stack([rf.crop(images[int(n)], int(r), int(c), fill) for n, (r, c) in zip(order, positions)])
        out[channel] = DatasetExamples(channel, values[order, i], order, positions, crops, rf)
    return out


def dataset_examples(model, images: torch.Tensor, layer: str, channel: int, k: int = 8,
                     rf: ReceptiveField | None = None, fill: float = FILL, batch_size: int = 128) -> DatasetExamples:
    """The ``k`` images of ``images`` (N, 3, H, W) that excite ``channel`` of ``layer`` most (each image's
    maximum over positions; ties to the earlier image), with crops to the firing unit's receptive field
    (``rf``: :func:`~mi_course.vision.receptive_field.receptive_field` by default), ``fill`` outside the image.

    Raises:
        ValueError: bad images, a layer without a spatial map, a channel out of range, or ``k`` not in
            1..N.
    """
    return top_examples(model, images, layer, [channel], k, rf, fill, batch_size)[channel]
