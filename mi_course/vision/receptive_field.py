"""Receptive fields: which input pixels a unit of a convolutional layer can see, and crops of them.

A unit at row ``i``, column ``j`` of a layer's (h, w) map sees the input rows ``offset + stride * i`` up to
``offset + stride * i + size - 1`` (and the same columns with ``j``): a square of ``size`` pixels that moves
by ``stride`` pixels per unit. ``offset`` is usually negative: the first unit's field starts in the padding.

Two ways to find the three numbers:

* **arithmetic** over a chain of convolutions and pools, each ``(kernel, stride, padding)``
  (:func:`receptive_field_of`): every layer widens the field by ``(kernel - 1)`` times the stride of the
  layers before it (Araujo, Norris and Sim, *Computing Receptive Fields of Convolutional Neural Networks*,
  Distill 2019). The lite CNNs are such chains (:func:`layer_geometry` reads it off their config).
* **measurement**, for any network, branching ones like InceptionV1 included (its ``mixed`` layers
  concatenate 1x1, 3x3, 5x5 and pooling branches: the field is the widest branch's): the input pixels whose
  gradient reaches the centre unit (:func:`measured_receptive_field`).

    rf = receptive_field(model, "conv4")          # ReceptiveField(size=44, stride=8, offset=-18) for `vision`
    rf.box(2, 3)                                  # (top, left, bottom, right), bottom and right excluded
    rf.crop(image, 2, 3)                          # (3, 44, 44), grey where the field leaves the image
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

FILL = 0.5  # what a crop shows outside the image: grey, so that the image's own edges stay visible


class ReceptiveField(NamedTuple):
    """``size`` pixels square, moving ``stride`` pixels per unit, the unit (0, 0)'s field starting at pixel
    ``offset`` (row and column)."""

    size: int
    stride: int
    offset: int

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in input pixels of unit (row, col)'s field; bottom and right excluded."""
        top, left = self.offset + self.stride * int(row), self.offset + self.stride * int(col)
        return top, left, top + self.size, left + self.size

    def crop(self, image: torch.Tensor, row: int, col: int, fill: float = FILL) -> torch.Tensor:
        """The part of ``image`` (C, H, W) that unit (row, col) sees, (C, size, size); pixels of the field
        outside the image are ``fill``."""
        return crop_box(image, self.box(row, col), fill)


def crop_box(image: torch.Tensor, box: tuple[int, int, int, int], fill: float = FILL) -> torch.Tensor:
    """``image[:, top:bottom, left:right]`` of a (C, H, W) image, padded with ``fill`` where the box leaves it."""
    top, left, bottom, right = box
    _, h, w = image.shape
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    padded = F.pad(image, pad, value=fill)
    top, left = top + pad[2], left + pad[0]
    return padded[:, top:top + bottom - box[0], left:left + right - box[1]]


def receptive_field_of(layers: Sequence[tuple[int, int, int]]) -> ReceptiveField:
    """The receptive field after a chain of convolutions and pools, each ``(kernel, stride, padding)``, from
    the input (size 1, stride 1, offset 0): each layer adds ``(kernel - 1) * stride_so_far`` to the size,
    moves the offset by ``- padding * stride_so_far`` and multiplies the stride by its own."""
    size, stride, offset = 1, 1, 0
    for kernel, step, padding in layers:
        size += (kernel - 1) * stride
        offset -= padding * stride
        stride *= step
    return ReceptiveField(size, stride, offset)


def layer_geometry(model, layer: str) -> list[tuple[int, int, int]]:
    """For a lite CNN (:class:`~mi_course.models.lite_vision.LiteCNN`): the ``(kernel, stride, padding)`` of
    every convolution and max pool from the input up to ``layer``'s output (its own pool not included: a
    forward hook on ``layer`` sees the output before the pool; a residual block counts as its two
    convolutions)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "convs" not in config:
        raise ValueError("layer_geometry reads a lite CNN's config; measure other models' fields with "
                         "measured_receptive_field(model, layer)")
    chain = []
    for conv in config["convs"]:
        # a residual block is two same-size convolutions (its shortcut sees less)
        repeats = 2 if conv.get("block", "plain") == "residual" else 1
        chain += [(conv["kernel"], 1, conv["kernel"] // 2)] * repeats
        if conv["name"] == layer:
            return chain
        if int(conv.get("pool", 1)) > 1:
            chain.append((int(conv["pool"]), int(conv["pool"]), 0))
    raise ValueError(f"the model has no convolution {layer!r}; layers: {', '.join(c['name'] for c in config['convs'])}")


def measured_receptive_field(model, layer: str, size: int = 224, n_images: int = 4, seed: int = 0
                             ) -> ReceptiveField:
    """The receptive field of ``layer`` measured with gradients: the input pixels whose gradient reaches a unit
    (summed over channels and ``n_images`` random images, so that every path through a ReLU or a max pool is
    taken by some channel or image), for the centre unit and its diagonal neighbour: the field is the square
    of the larger side found, the stride how far the neighbour's field has moved. ``size`` must hold both
    units' whole fields (a ValueError says when it does not)."""
    from mi_course.vision.activations import get_module, input_scaling, model_device

    module = get_module(model, layer)
    device = model_device(model)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n_images, 3, size, size, generator=generator).to(device).requires_grad_()
    caught = []

    class Stop(Exception):
        pass

    def hook(mod, inputs, output):
        caught.append(output)
        raise Stop

    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    handle = module.register_forward_hook(hook)
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            model(input_scaling(model)(x))
        except Stop:
            pass
        out = caught[0]
        if out.dim() != 4:
            raise ValueError(f"layer {layer!r} has no spatial map (output {tuple(out.shape)})")
        h, w = out.shape[-2:]
        if h < 3 or w < 3:
            raise ValueError(f"a {size}-pixel input gives {layer!r} a {h} x {w} map: measure with a larger size")
        i, j = h // 2, w // 2
        boxes = []
        for di in (0, 1):
            grad, = torch.autograd.grad(out[:, :, i + di, j + di].abs().sum(), x, retain_graph=di == 0)
            seen = grad.abs().sum((0, 1)) > 0
            rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
            if len(rows) == 0:
                raise ValueError(f"no gradient reaches the input from {layer!r}: is the model differentiable?")
            if rows[0] == 0 or cols[0] == 0 or rows[-1] == size - 1 or cols[-1] == size - 1:
                raise ValueError(f"the field of a unit of {layer!r} reaches the edge of a {size}-pixel input: "
                                 f"measure with a larger size")
            boxes.append((int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1))
    finally:
        handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    (top, left, bottom, right), (top2, left2, _, _) = boxes
    stride = top2 - top
    if stride < 1 or left2 - left != stride:
        raise ValueError(f"the fields of {layer!r}'s neighbouring units moved by ({top2 - top}, {left2 - left}) px: "
                         "not a convolutional layer with one stride")
    side = max(bottom - top, right - left)
    # the field is square: its top-left corner from whichever axis reached the full side
    start = top - stride * i if bottom - top == side else left - stride * j
    return ReceptiveField(side, stride, start)


_MEASURED: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def _is_lite_chain(model) -> bool:
    config = getattr(model, "config", None)
    return isinstance(config, dict) and "convs" in config


def receptive_field(model, layer: str) -> ReceptiveField:
    """``layer``'s receptive field: by arithmetic for a lite CNN, measured with gradients otherwise
    (remembered per model and layer)."""
    if _is_lite_chain(model):
        return receptive_field_of(layer_geometry(model, layer))
    known = _MEASURED.setdefault(model, {})
    if layer not in known:
        known[layer] = measured_receptive_field(model, layer)
    return known[layer]
