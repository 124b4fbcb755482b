"""Reading a vision model's layers: the probes behind every measurement of Part I and behind the engine.

    acts = layer_activations(model, images, "conv4")      # (B, C, h, w) on the CPU
    resp = channel_responses(model, images, "conv4")      # (B, C): each channel's maximum over positions

Images are RGB in [0, 1], (B, 3, H, W), the input contract of every course vision model. The lite CNNs and
the torchvision models (wrapped in :class:`mi_course.models.full.Normalized`) normalize inside; lucent's
InceptionV1 is returned unwrapped and wants ``x * 255 - 117`` (lucent's ``render_vis`` scales for it, a
hand-written probe must too), which :func:`input_scaling` applies. The forward pass **stops** at the layer
read: nothing after it can change its output, and lucent's InceptionV1, whose head needs 224-pixel inputs,
can then be probed at any size its early layers take (64 px and up for ``mixed3b``).

A *layer* is a module name, either as in ``model.get_submodule(name)`` (``"conv4"``, ``"mixed3b"``, a
wrapped torchvision model's ``"model.features.4"``) or lucent's spelling of it, the path joined by ``"_"``
(``"model_features_4"``): :func:`lucent_name` turns one into the other.

The one mechanism every probe and the feature-visualization engine use: :class:`LayerCapture` keeps the
outputs of some layers and stops the forward pass after the deepest, :func:`run_capture` runs it.
:func:`layer_output` keeps the graph (for gradients: DeepDream, a render of one's own);
:func:`layer_activations` measures, without gradients, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float


class _Stop(Exception):
    """Raised by the hook on the deepest layer read: the rest of the forward pass is skipped."""


def module_names(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every submodule under lucent's names ("mixed3b", "mixed3b_conv_3x3", "conv4"): the path joined by "_"."""
    return {name.replace(".", "_"): module for name, module in model.named_modules() if name}


def lucent_name(model: torch.nn.Module, layer: str) -> str:
    """``layer`` (a module path, ``"model.features.4"``, or lucent's ``"model_features_4"``) as lucent names
    it, the key of :func:`module_names`; a ValueError that lists the names if the model has no such layer."""
    names = module_names(model)
    key = layer.replace(".", "_") if isinstance(layer, str) else None
    if key not in names:
        raise ValueError(f"the model has no layer {layer!r}; layers: {', '.join(list(names)[:30])}")
    return key


class LayerCapture:
    """Forward hooks on ``layers`` (lucent names, keys of ``modules``): each call keeps their outputs in
    ``features`` and stops the forward pass after ``last`` (``None``: runs to the end). Remove the hooks with
    :meth:`remove`, in a ``finally``."""

    def __init__(self, modules: dict[str, torch.nn.Module], layers: Sequence[str], last: str | None):
        self.features: dict[str, torch.Tensor] = {}
        self.handles = []
        for name in layers:
            def hook(module, inputs, output, name=name):
                self.features[name] = output
                if name == last:
                    raise _Stop
            self.handles.append(modules[name].register_forward_hook(hook))

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def run_capture(model: torch.nn.Module, x: torch.Tensor, capture: LayerCapture) -> None:
    """``model(x)`` (already scaled for the model), up to the capture's last layer; the outputs in
    ``capture.features``."""
    capture.features.clear()
    try:
        model(x)
    except _Stop:
        pass


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
        return module_names(model)[lucent_name(model, layer)]


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def layer_output(model: torch.nn.Module, images: Float[torch.Tensor, "batch 3 height width"],
                 layer: str) -> torch.Tensor:
    """``layer``'s output for ``images`` (RGB in [0, 1], on the model's device), the graph kept: the forward
    pass stops at the layer (nothing after it is needed), and its hook is removed also when it raises."""
    key = lucent_name(model, layer)
    capture = LayerCapture(module_names(model), [key], last=key)
    try:
        run_capture(model, input_scaling(model)(images), capture)
    finally:
        capture.remove()
    if key not in capture.features:
        raise ValueError(f"the forward pass never reached layer {layer!r}")
    return capture.features[key]


@torch.no_grad()
def layer_activations(model: torch.nn.Module, images: torch.Tensor, layer: str,
                      batch_size: int = 256) -> torch.Tensor:
    """The output of ``model``'s module named ``layer`` for ``images`` (B, 3, H, W) (a single (3, H, W)
    image is treated as a batch of one): (B, C, h, w) for a conv layer, (B, C) for a linear one. Runs in
    batches of ``batch_size`` under ``torch.no_grad()`` on the model's device, with the model's input scaling
    (:func:`input_scaling`), stopping at the layer (:func:`layer_output`); returns a float CPU tensor."""
    images = check_images(images)
    lucent_name(model, layer)  # a bad name fails before any batch runs
    device = model_device(model)
    return torch.cat([layer_output(model, images[start:start + batch_size].to(device), layer).float().cpu()
                      for start in range(0, len(images), batch_size)])


def channel_responses(model, images, layer, batch_size: int = 256) -> torch.Tensor:
    """Each channel's response to each image: its maximum over spatial positions, (B, C)."""
    acts = layer_activations(model, images, layer, batch_size)
    return acts.flatten(2).amax(-1) if acts.dim() == 4 else acts
