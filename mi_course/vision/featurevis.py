"""Feature visualization: optimize images so that they excite a neuron, a channel or a direction.

Built from lucent's pieces (its image parameterizations, transforms and objectives: Olah, Mordvintsev and
Schubert, *Feature Visualization*, Distill 2017), with what lucent's ``render_vis`` lacks for a course that
renders many channels on a CPU:

* the forward pass **stops** at the deepest layer the objectives read (the rest of the network would only
  cost time: nothing after it changes the objective);
* several objectives are optimized as **one batch**, one image each;
* the model's own parameters get no gradients during the call, its convolutions run channels-last, and
  lucent InceptionV1's redirected ReLU and local response norm run as vectorized equivalents (same values
  and gradients, a fraction of the time);
* the model's input scaling is handled here (lite CNNs take [0, 1]; lucent's InceptionV1 wants
  ``x * 255 - 117``; torchvision models ImageNet normalization), never by the caller;
* seeded: the same ``seed`` gives the same images, and the caller's random state is left alone;
* every hook is removed again, also when the objective raises.

    images = render(model, ["conv4:49", "conv4:50"], steps=256, size=64)   # [2, 3, 64, 64] in [0, 1]
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

PARAMS = ("fourier", "pixel")


class _Stop(Exception):
    """Raised by the hook on the deepest layer an objective reads: the rest of the forward pass is skipped."""


def module_names(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every submodule under lucent's names ("mixed3b", "mixed3b_conv_3x3", "conv4"): the path joined by "_"."""
    return {name.replace(".", "_"): module for name, module in model.named_modules() if name}


def as_objective(objective):
    """A lucent ``Objective`` from a ``"layer:channel"`` string, or the objective itself."""
    from lucent.optvis import objectives

    if isinstance(objective, str):
        layer, sep, channel = objective.rpartition(":")
        if not sep or not layer or not channel.strip().isdigit():
            raise ValueError(f"an objective string is 'layer:channel' (e.g. 'conv4:49'), got {objective!r}")
        return objectives.as_objective(objective)
    if isinstance(objective, objectives.Objective):
        return objective
    raise ValueError(f"an objective is a 'layer:channel' string or a lucent Objective, got {type(objective).__name__}")


def input_transform(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """How images in [0, 1] become this model's input: the lite CNNs normalize inside, lucent's InceptionV1
    takes ``x * 255 - 117``, other (torchvision) models ImageNet mean and std."""
    if _is_lite(model):
        return lambda x: x
    if model._get_name() == "InceptionV1":
        return lambda x: x * 255 - 117
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return lambda x: (x - mean.to(x)) / std.to(x)


def lite_transforms() -> list:
    """lucent's standard transforms scaled to a 64-pixel image (they are made for 224): pad 4, jitter 2,
    scale 0.95-1.05, rotate -5..5 degrees, jitter 2."""
    from lucent.optvis import transform

    return [transform.pad(4, mode="constant", constant_value=0.5), transform.jitter(2),
            transform.random_scale([1 + (i - 5) / 100 for i in range(11)]),
            transform.random_rotate(list(range(-5, 6))), transform.jitter(2)]


def _transforms(spec, model) -> list:
    from lucent.optvis import transform

    if spec in (None, "none"):
        return []
    if spec == "standard":
        return lite_transforms() if _is_lite(model) else list(transform.standard_transforms)
    if isinstance(spec, (list, tuple)):
        return list(spec)
    raise ValueError(f"transforms must be 'standard', 'none' or a list of callables, got {spec!r}")


@contextmanager
def _seeded(seed: int):
    """torch and numpy (lucent's random transforms) seeded inside, the caller's state restored after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


@contextmanager
def _frozen(model: torch.nn.Module):
    """No gradients for the model's parameters (the image's are all we need), restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _RedirectedReLU(torch.autograd.Function):
    """lucent InceptionV1's redirected ReLU, vectorized: the same forward (clamp at 0) and the same gradient
    (the incoming gradient, times 0.1 where the input is negative), without its masked indexing, which is
    half of a render's time on a CPU."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * torch.where(x < 0, 0.1, 1.0).to(grad.dtype)


def _local_response_norm(x, size=5, alpha=9.999999747378752e-05, beta=0.75, k=1.0):
    """``F.local_response_norm`` (the mean of squares over ``size`` neighbouring channels, zero-padded) as a
    sum of shifted slices instead of a 3-D average pool, whose backward is slow on a CPU."""
    squares = torch.nn.functional.pad(x * x, (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window = sum(squares[:, i:i + x.shape[1]] for i in range(size)) / size
    return x / (window * alpha + k).pow(beta)


class _FastFunctional:
    """``torch.nn.functional`` with :func:`_local_response_norm` in place of ``local_response_norm``."""

    def __getattr__(self, name):
        return _local_response_norm if name == "local_response_norm" else getattr(torch.nn.functional, name)


@contextmanager
def _fast_layers(model: torch.nn.Module):
    """For the length of a render, lucent InceptionV1's redirected ReLUs and local response norms run as the
    equivalents above, and the lite CNNs' ReLUs redirect their gradient the same way: the ReLU modules get an
    instance ``forward``, and the module that defines the model
    (it calls ``F.local_response_norm``) sees a ``F`` with the faster one. Both are undone after."""
    import sys

    from mi_course.models.lite_vision import ConvReLU

    swapped = [m for m in model.modules() if type(m).__name__ == "RedirectedReluLayer"]
    for module in swapped:
        module.forward = _RedirectedReLU.apply
    # the lite CNNs get the same redirected gradient: a channel that is silent on the starting image would
    # otherwise get no gradient at all (the reason lucid and lucent redirect InceptionV1's ReLUs)
    lite = [m for m in model.modules() if isinstance(m, ConvReLU) and m.bn is None]
    for module in lite:
        module.forward = lambda x, m=module: _RedirectedReLU.apply(torch.nn.Conv2d.forward(m, x))
    swapped += lite
    defining = sys.modules.get(type(model).__module__) if type(model).__name__ == "InceptionV1" else None
    functional = getattr(defining, "F", None) if defining is not None else None
    if functional is torch.nn.functional:
        defining.F = _FastFunctional()
    try:
        yield
    finally:
        for module in swapped:
            del module.forward
        if functional is torch.nn.functional:
            defining.F = functional


@contextmanager
def _channels_last(model: torch.nn.Module):
    """Convolutions in the channels-last layout (faster on a CPU), the parameters restored after."""
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


class _Capture:
    """Forward hooks on the layers an objective reads: stores their outputs and stops after the deepest."""

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


def _run(model, x, capture: _Capture):
    capture.features.clear()
    try:
        model(x.contiguous(memory_format=torch.channels_last))
    except _Stop:
        pass


def _layers_read(model, modules, objective, x) -> tuple[list[str], str | None]:
    """Which layers ``objective`` reads, and the one the forward pass reaches last: found with one pass that
    records every module's output and the order in which they ran."""
    order: list[str] = []
    capture = _Capture(modules, list(modules), last=None)
    extra = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n)) for n, m in modules.items()]
    read: list[str] = []
    try:
        with torch.no_grad():
            _run(model, x, capture)

            def hook(layer):
                if layer not in modules:
                    raise ValueError(f"no layer {layer!r} in this model; layers: {', '.join(list(modules)[:12])} ...")
                read.append(layer)
                return capture.features[layer]
            objective(hook)
    finally:
        capture.remove()
        for h in extra:
            h.remove()
    layers = sorted(set(read), key=order.index)
    return layers, (layers[-1] if layers else None)


def render(model: torch.nn.Module, objectives, *, steps: int = 256, size: int = 128, param: str = "fourier",
           transforms="standard", seed: int = 0, progress: bool = True, lr: float = 0.05,
           batch: int | None = None) -> Float[torch.Tensor, "n 3 size size"]:
    """Images that maximize ``objectives``: one per objective (a list is optimized as one batch), or
    ``batch`` images for a single objective (with lucent's ``diversity`` in it, several different ones).

    ``objectives``: a ``"layer:channel"`` string, a lucent ``Objective`` (``objectives.neuron``,
    ``direction``, sums and products of them, ``diversity``), or a list of these. ``param``: ``"fourier"``
    (lucent's FFT image with decorrelated colour) or ``"pixel"`` (naive pixel ascent). ``transforms``:
    ``"standard"`` (lucent's jitter, scale, rotate; for the lite CNNs the same scaled to their 64-pixel
    inputs, :func:`lite_transforms`), ``"none"``, or a list. Adam with learning rate ``lr``
    for ``steps`` steps. Returns a float tensor ``[n, 3, size, size]`` in [0, 1] on the CPU.
    """
    from lucent.optvis import param as lucent_param
    from lucent.optvis import transform as lucent_transform

    if param not in PARAMS:
        raise ValueError(f"param must be one of {PARAMS}, got {param!r}")
    for name, value in (("steps", steps), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    several = isinstance(objectives, (list, tuple))
    objs = [as_objective(o) for o in (objectives if several else [objectives])]
    if not objs:
        raise ValueError("objectives is empty: give at least one objective")
    if batch is not None and (several or not isinstance(batch, int) or batch < 1):
        raise ValueError("batch (a positive int) is for one objective; a list of objectives gives one image each")
    n = len(objs) if several else (batch or 1)

    def total(hook):
        if not several:
            return objs[0](hook)
        # objective i sees only image i of the batch
        return sum(o(lambda layer, i=i: hook(layer)[i:i + 1]) for i, o in enumerate(objs))

    model_was_training = model.training
    model.eval()
    modules = module_names(model)
    scale_input = input_transform(model)
    chain = _transforms(transforms, model)
    # ImageNet models see what lucent shows them: small renders upsampled to 224
    if not _is_lite(model) and size < 224:
        chain.append(torch.nn.Upsample(size=224, mode="bilinear", align_corners=True))
    transform_f = lucent_transform.compose(chain)
    device = next(model.parameters()).device
    try:
        with _seeded(seed), _frozen(model), _fast_layers(model), _channels_last(model):
            params, image_f = lucent_param.image(size, batch=n, fft=param == "fourier", decorrelate=param == "fourier")
            for p in params:
                p.data = p.data.to(device)
            layers, last = _layers_read(model, modules, total, scale_input(transform_f(image_f())))
            capture = _Capture(modules, layers, last)
            hook = capture.features.__getitem__
            optimizer = torch.optim.Adam(params, lr=lr)
            try:
                bar = tqdm(range(steps), desc="render", disable=not progress or steps * n < 64, leave=False)
                for _ in bar:
                    optimizer.zero_grad()
                    _run(model, scale_input(transform_f(image_f())), capture)
                    loss = total(hook)
                    loss.backward()
                    optimizer.step()
            finally:
                capture.remove()
            return image_f().detach().cpu().clamp(0, 1)
    finally:
        model.train(model_was_training)


def _is_lite(model) -> bool:
    from mi_course.models.lite_vision import LiteCNN

    return isinstance(model, LiteCNN)
