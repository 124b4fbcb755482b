"""Reading a vision model's layers without gradients: the probe behind every measurement of Part I.

    acts = layer_activations(model, images, "conv4")      # (B, C, h, w) on the CPU
    resp = channel_responses(model, images, "conv4")      # (B, C): each channel's maximum over positions

Images are RGB in [0, 1], (B, 3, H, W), the input contract of every course vision model. The lite CNNs and
the torchvision models (wrapped in :class:`mi_course.models.full.Normalized`) normalize inside; lucent's
InceptionV1 is returned unwrapped and wants ``x * 255 - 117`` (lucent's ``render_vis`` scales for it, a
hand-written probe must too), which :func:`input_scaling` applies. The forward pass **stops** at the layer
read: nothing after it can change its output, and lucent's InceptionV1, whose head needs 224-pixel inputs,
can then be probed at any size its early layers take (64 px and up for ``mixed3b``).

A *layer* is a module name as in ``model.get_submodule(name)`` (``"conv4"``, ``"mixed3b"``).
"""

from __future__ import annotations

from typing import Callable

import torch


class _Stop(Exception):
    """Raised by the hook on the layer read: the rest of the forward pass is skipped."""


def input_scaling(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """How images in [0, 1] become ``model``'s input: :func:`mi_course.vision.featurevis.input_transform`, the
    course's one rule (``x * 255 - 117`` for lucent's InceptionV1, unchanged for every model that normalizes
    inside), imported when called so that this low-level module does not import the engine."""
    from mi_course.vision.featurevis import input_transform

    return input_transform(model)


def check_images(images) -> torch.Tensor:
    """``images`` as a (B, 3, H, W) float batch in [0, 1] (a single (3, H, W) image becomes a batch of one),
    or a ValueError that says what is wrong."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, 3, H, W), got {type(images).__name__}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (B, 3, H, W) (RGB, B >= 1), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got dtype {images.dtype}")
    lo, hi = images.min().item(), images.max().item()
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"images must be RGB in [0, 1] (models normalize internally), got values in "
                         f"[{lo:.3g}, {hi:.3g}]")
    return images


def get_module(model: torch.nn.Module, layer: str) -> torch.nn.Module:
    """``model``'s module named ``layer``, or a ValueError that lists the names."""
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a module name (str) such as 'conv3', got {layer!r}")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"model has no layer {layer!r}; layers: {', '.join(names[:30])}") from None


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def layer_activations(model: torch.nn.Module, images: torch.Tensor, layer: str,
                      batch_size: int = 256) -> torch.Tensor:
    """The output of ``model``'s module named ``layer`` for ``images`` (B, 3, H, W) (a single (3, H, W)
    image is treated as a batch of one): (B, C, h, w) for a conv layer, (B, C) for a linear one. Runs in
    batches of ``batch_size`` under ``torch.no_grad()`` on the model's device, with the model's input scaling
    (:func:`input_scaling`), stopping at the layer; returns a float CPU tensor. No hook is left behind."""
    images = check_images(images)
    module = get_module(model, layer)
    device, scale = model_device(model), input_scaling(model)
    captured, outs = [], []

    def hook(mod, inputs, output):
        captured.append(output.detach())
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        for start in range(0, len(images), batch_size):
            captured.clear()
            try:
                model(scale(images[start:start + batch_size].to(device)))
            except _Stop:
                pass
            if not captured:
                raise ValueError(f"the forward pass never reached layer {layer!r}")
            outs.append(captured[0].float().cpu())
    finally:
        handle.remove()
    return torch.cat(outs)


def channel_responses(model, images, layer, batch_size: int = 256) -> torch.Tensor:
    """Each channel's response to each image: its maximum over spatial positions, (B, C)."""
    acts = layer_activations(model, images, layer, batch_size)
    return acts.flatten(2).amax(-1) if acts.dim() == 4 else acts
