"""Feature visualization: optimize images so that they excite a neuron, a channel or a direction.

Built from lucent's pieces (its image parameterizations, transforms and objectives: Olah, Mordvintsev and
Schubert, *Feature Visualization*, Distill 2017), with what lucent's ``render_vis`` lacks for a course that
renders many channels on a CPU:

* the forward pass **stops** at the deepest layer the objectives read (the rest of the network would only
  cost time: nothing after it changes the objective);
* several objectives are optimized as **one batch**, one image each ("layer:channel" strings read in one
  indexing);
* the standard transformations (jitter, scale, rotate, and the upsampling to 224 for ImageNet models) are
  drawn as lucent draws them and applied as **one** resampling instead of four (:class:`_Warp`); for the lite
  CNNs scaled to their 64 pixels and without lucent's grey frame (:data:`LITE_JITTER` and the note there);
* the model's own parameters get no gradients during the call, its convolutions run channels-last, lucent
  InceptionV1's redirected ReLU and local response norm run as vectorized equivalents (same values and
  gradients, a fraction of the time), and the lite CNNs' first convolution computes the image's gradient in
  2x2 pixel phases (:class:`_FewInputsConv`: the same sums, half the time);
* the model's input scaling is handled here (lite CNNs take [0, 1]; lucent's InceptionV1 wants
  ``x * 255 - 117``; the registry's torchvision models normalize inside), never by the caller;
* seeded: the same ``seed`` gives the same images, and the caller's random state is left alone;
* every hook is removed again, also when the objective raises.

    images = render(model, ["conv4:49", "conv4:50"], steps=256, size=64)   # [2, 3, 64, 64] in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from mi_course.vision.activations import LayerCapture, lucent_name, module_names, run_capture

PARAMS = ("fourier", "pixel")


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


def _spelt_for_lucent(model: torch.nn.Module, objective):
    """A ``"layer:channel"`` string with the layer as lucent names it (``"model.features.4:3"`` becomes
    ``"model_features_4:3"``: lucent's objectives read layers by those names); anything else as it is."""
    if not isinstance(objective, str):
        return objective
    as_objective(objective)  # its form checked first: "layer:channel"
    layer, _, channel = objective.rpartition(":")
    return f"{lucent_name(model, layer)}:{channel}"


def input_transform(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """How images in [0, 1] become this model's input, the course's one rule: lucent's InceptionV1 (returned
    unwrapped by the registry) takes ``x * 255 - 117``; every other course model normalizes inside (the lite
    CNNs, and the torchvision models the registry wraps in :class:`mi_course.models.full.Normalized`), so it
    takes [0, 1] as it is."""
    if model._get_name() == "InceptionV1":
        return lambda x: x * 255 - 117
    return lambda x: x


# lucent's standard transforms (made for 224-pixel images) scaled to the lite CNNs' 64 pixels, and without its
# grey frame: a frame shapes what the render excites beside it, and the returned image comes without one (with
# a 4-pixel frame the render of the lite vision's conv4:7 excited its channel less than the strongest of 2,000
# data-set images in 5 seeds of 6 (256 steps); without, more in all 6, and in 10 of 10 at 512 steps:
# tests/test_featurevis_quality.py)
LITE_JITTER, LITE_SCALES, LITE_ANGLES = 2, [1 + (i - 5) / 100 for i in range(11)], list(range(-5, 6))


def lite_transforms() -> list:
    """lucent's standard transforms scaled to a 64-pixel image (they are made for 224), as lucent callables:
    jitter 2, scale 0.95-1.05, rotate -5..5 degrees, jitter 2 (no padding). ``render``'s ``"standard"`` for a
    lite CNN draws the same and applies them as one resampling (:class:`_Warp`)."""
    from lucent.optvis import transform

    return [transform.jitter(LITE_JITTER), transform.random_scale(LITE_SCALES),
            transform.random_rotate(LITE_ANGLES), transform.jitter(LITE_JITTER)]


class _Warp:
    """A chain like lucent's standard transforms (pad with grey, jitter, random scale, random rotate, jitter,
    and for the ImageNet models the upsampling to ``out`` pixels) as **one** bilinear resampling
    (``affine_grid`` + ``grid_sample``) instead of four (kornia's translate and rotate, an upsample for the
    scale, an upsample to 224): the same random draws from the same lists (numpy's generator, as lucent),
    one per step for the whole batch; the padding and whatever the shifts and the rotation bring in are
    grey (lucent's pad is grey, its kornia warps bring in black); the canvas keeps its padded size where
    lucent's scale grows or shrinks it by a pixel or two."""

    def __init__(self, pad: int, jitter1: int, scales: Sequence[float], angles: Sequence[float], jitter2: int,
                 out: int | None = None):
        self.pad, self.jitter1, self.jitter2, self.out = pad, jitter1, jitter2, out
        self.scales, self.angles = list(scales), list(angles)

    def matrix(self, h: int, w: int) -> np.ndarray:
        """Draw one transformation; the 2x3 ``affine_grid`` matrix from output to input coordinates
        (normalized, corners aligned)."""
        dx1, dy1 = np.random.choice(self.jitter1), np.random.choice(self.jitter1)
        scale = float(np.random.choice(self.scales))
        angle = np.deg2rad(float(np.random.choice(self.angles)))
        dx2, dy2 = np.random.choice(self.jitter2), np.random.choice(self.jitter2)
        ph, pw = h + 2 * self.pad, w + 2 * self.pad
        oh, ow = (self.out, self.out) if self.out else (ph, pw)
        cx, cy = (pw - 1) / 2, (ph - 1) / 2
        cos, sin = np.cos(angle), np.sin(angle)
        # in pixels (x to the right, y down): output pixel -> padded canvas -> undo the second jitter, the
        # rotation (kornia's: counter-clockwise on screen) and the scale about the centre, the first jitter,
        # the padding
        to_canvas = np.diag([(pw - 1) / max(ow - 1, 1), (ph - 1) / max(oh - 1, 1), 1.0])
        shift = lambda x, y: np.array([[1.0, 0, x], [0, 1, y], [0, 0, 1]])
        unrotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]) / np.array([scale, scale, 1])[:, None]
        m = (shift(-self.pad - dx1 + cx, -self.pad - dy1 + cy) @ unrotate @ shift(-dx2 - cx, -dy2 - cy)
             @ to_canvas)
        normalize = lambda width, height: np.array([[2 / (width - 1), 0, -1], [0, 2 / (height - 1), -1], [0, 0, 1]])
        return (normalize(w, h) @ m @ np.linalg.inv(normalize(ow, oh)))[:2]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        n, c, h, w = image.shape
        theta = torch.tensor(self.matrix(h, w), dtype=image.dtype, device=image.device)[None]
        oh, ow = (self.out, self.out) if self.out else (h + 2 * self.pad, w + 2 * self.pad)
        # one grid, the same for every image (a batch's grid costs 7 times as much)
        grid = torch.nn.functional.affine_grid(theta, [1, c, oh, ow], align_corners=True).expand(n, oh, ow, 2)
        return torch.nn.functional.grid_sample(image - 0.5, grid, mode="bilinear", padding_mode="zeros",
                                               align_corners=True) + 0.5


def _transforms(spec, model, size: int) -> list:
    """The transformation chain; ``"standard"`` as one :class:`_Warp` (for ImageNet models up to 224)."""
    if spec in (None, "none"):
        chain = []
    elif spec == "standard":
        if _is_lite(model):  # lite_transforms(), fused
            return [_Warp(0, LITE_JITTER, LITE_SCALES, LITE_ANGLES, LITE_JITTER)]
        # lucent's transform.standard_transforms, fused
        return [_Warp(12, 8, [1 + (i - 5) / 50.0 for i in range(11)], list(range(-10, 11)) + 5 * [0], 4,
                      out=224 if size < 224 else None)]
    elif isinstance(spec, (list, tuple)):
        chain = list(spec)
    else:
        raise ValueError(f"transforms must be 'standard', 'none' or a list of callables, got {spec!r}")
    # ImageNet models see what lucent shows them: small renders upsampled to 224
    if not _is_lite(model) and size < 224:
        chain.append(torch.nn.Upsample(size=224, mode="bilinear", align_corners=True))
    return chain


def _image(size: int, n: int, param: str) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """lucent's ``param.image``: its FFT spectrum (or pixels) drawn the same way, then the decorrelated
    colour (``"fourier"`` only) and the sigmoid; the colour mixing as a 1x1 convolution (the same numbers as
    lucent's permute-and-matmul, a sixth of the time). On lucent's device: inside ``render``, the model's
    (:func:`_lucent_on`)."""
    from lucent.optvis.param.color import color_correlation_normalized
    from lucent.optvis.param.spatial import fft_image, pixel_image

    params, spatial = (fft_image if param == "fourier" else pixel_image)([n, 3, size, size])
    if param != "fourier":
        return params, lambda: torch.sigmoid(spatial())
    mix = torch.tensor(color_correlation_normalized).view(3, 3, 1, 1)

    def image():
        x = spatial()
        return torch.sigmoid(torch.nn.functional.conv2d(x, mix.to(x.device)))
    return params, image


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
def _lucent_on(device: torch.device):
    """lucent makes its tensors (the FFT image's spectrum and scale, its transforms' shifts and rotation
    matrices) on a module-level ``device``, "cuda:0" whenever CUDA exists, whatever device the model is on:
    for the length of a render that device is the model's, then lucent's own again."""
    from lucent.optvis import transform
    from lucent.optvis.param import spatial

    saved = [(module, module.device) for module in (spatial, transform)]
    for module, _ in saved:
        module.device = device
    try:
        yield
    finally:
        for module, old in saved:
            module.device = old


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
    (the incoming gradient, times 0.1 where the unit is off), as one fused kernel (the leaky ReLU's backward,
    read off the output) instead of its masked indexing, which is half of a render's time on a CPU, or a
    ``torch.where``, which is 40 times slower than this on channels-last tensors. (A unit exactly at 0 gets
    0.1, lucent's 1: it never happens on a convolution's output.)"""

    @staticmethod
    def forward(ctx, x):
        y = x.clamp(min=0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, = ctx.saved_tensors
        return torch.ops.aten.leaky_relu_backward(grad, y, 0.1, True)


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


def _phase_weight(weight: torch.Tensor) -> torch.Tensor:
    """The weights of :class:`_FewInputsConv`'s backward: the transposed convolution with ``weight`` (out, in,
    k, k) as a stride-2 convolution of the output gradient with ``4 * in`` output channels, one per input
    channel ``c`` and pixel phase ``(a, b)`` (channel ``4c + 2a + b``, the order of ``pixel_shuffle``): the
    flipped kernel shifted by ``(a, b)`` in a ``k + 1`` square."""
    out, inp, k, _ = weight.shape
    flipped = weight.detach().flip(-1, -2).transpose(0, 1)  # (in, out, k, k): the transposed convolution
    phases = weight.new_zeros(inp, 2, 2, out, k + 1, k + 1)
    for a in range(2):
        for b in range(2):
            phases[:, a, b, :, a:a + k, b:b + k] = flipped
    return phases.reshape(4 * inp, out, k + 1, k + 1).contiguous(memory_format=torch.channels_last)


class _FewInputsConv(torch.autograd.Function):
    """A stride-1 convolution (no padding: the input comes padded) of an image with few channels, whose input
    gradient is computed in 2x2 pixel phases. The usual backward, a convolution with as many output channels
    as the image has (3), runs as slowly as one with 16 (the CPU kernels pad channels to the vector width);
    the same sums as one stride-2 convolution with 12 output channels (3 channels x 4 phases) and a
    ``pixel_shuffle`` take half the time. Exact up to float rounding (a test compares it with autograd's);
    only the input gets a gradient (the weights are frozen during a render)."""

    @staticmethod
    def forward(ctx, x, weight, bias, phases):
        ctx.phases, ctx.k, ctx.size = phases, weight.shape[-1], x.shape[-2:]
        return torch.nn.functional.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        k, (h, w) = ctx.k, ctx.size
        # the transposed convolution reads the gradient padded by k - 1 on every side (and a row or column
        # more where the size is odd)
        rows, cols = 2 * ((h + 1) // 2) + k - 1, 2 * ((w + 1) // 2) + k - 1
        padded = torch.nn.functional.pad(grad, [k - 1, cols - grad.shape[-1] - (k - 1),
                                                k - 1, rows - grad.shape[-2] - (k - 1)])
        grad_x = torch.nn.functional.pixel_shuffle(torch.nn.functional.conv2d(padded, ctx.phases, stride=2), 2)
        return grad_x[..., :h, :w], None, None, None


def _few_inputs_forward(module: torch.nn.Conv2d, phases: torch.Tensor):
    """``module``'s forward (its padding, then :class:`_FewInputsConv`) and the redirected ReLU; the plain
    convolution where the weights want a gradient (a learner's own loop inside :func:`_fast_layers`)."""
    def forward(x):
        if module.weight.requires_grad or not torch.is_grad_enabled():
            return _RedirectedReLU.apply(torch.nn.Conv2d.forward(module, x))
        if module.padding_mode != "zeros":
            x = torch.nn.functional.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        else:
            x = torch.nn.functional.pad(x, module._reversed_padding_repeated_twice)
        return _RedirectedReLU.apply(_FewInputsConv.apply(x, module.weight, module.bias, phases))
    return forward


def _phases_apply(module: torch.nn.Conv2d) -> bool:
    """Whether :class:`_FewInputsConv` can stand in for ``module``: an image's few channels, stride 1, square
    kernel, no dilation or groups."""
    return (module.in_channels <= 4 and module.stride == (1, 1) and module.dilation == (1, 1)
            and module.groups == 1 and module.kernel_size[0] == module.kernel_size[1] and module.kernel_size[0] > 1)


@contextmanager
def _fast_layers(model: torch.nn.Module):
    """For the length of a render, lucent InceptionV1's redirected ReLUs and local response norms run as the
    equivalents above, and the lite CNNs' ReLUs redirect their gradient the same way: the ReLU modules get an
    instance ``forward``, and the module that defines the model
    (it calls ``F.local_response_norm``) sees a ``F`` with the faster one. Both are undone after. Reentrant:
    a module already swapped (by an enclosing block) is left to the block that swapped it."""
    import sys

    from mi_course.models.lite_vision import ConvReLU

    def unswapped(kind):
        return [m for m in model.modules() if kind(m) and "forward" not in vars(m)]

    swapped = unswapped(lambda m: type(m).__name__ == "RedirectedReluLayer")
    for module in swapped:
        module.forward = _RedirectedReLU.apply
    # the lite CNNs get the same redirected gradient: a channel that is silent on the starting image would
    # otherwise get no gradient at all (the reason lucid and lucent redirect InceptionV1's ReLUs)
    lite = unswapped(lambda m: isinstance(m, ConvReLU) and m.bn is None)
    for module in lite:
        if _phases_apply(module):  # the first convolution, on the image: a faster input gradient
            module.forward = _few_inputs_forward(module, _phase_weight(module.weight))
        else:
            module.forward = lambda x, m=module: _RedirectedReLU.apply(torch.nn.Conv2d.forward(m, x))
    swapped += lite
    # and so do their ReLU modules (the one after a residual block's addition, role vision-c)
    relus = unswapped(lambda m: type(m) is torch.nn.ReLU) if _is_lite(model) else []
    for module in relus:
        module.forward = _RedirectedReLU.apply
    swapped += relus
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


# The pieces a loop of one's own (lesson 01's visualize, lesson 02's DeepDream) reuses, under public names
redirected_relu = _fast_layers
"""``with redirected_relu(model):`` a render's layer swaps for a loop of one's own: the ReLUs pass a tenth of
the gradient where they are off (lucid's and lucent's redirected ReLU), faster equivalents as in a render."""
frozen = _frozen
"""``with frozen(model):`` no gradients for the model's parameters, restored after."""


@contextmanager
def _channels_last(model: torch.nn.Module):
    """Convolutions in the channels-last layout (faster on a CPU), the parameters restored after."""
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def _run(model, x, capture: LayerCapture):
    run_capture(model, x.contiguous(memory_format=torch.channels_last), capture)


def _layers_read(model, modules, objective, x) -> tuple[list[str], str | None]:
    """Which layers ``objective`` reads, and the one the forward pass reaches last: found with one pass that
    records every module's output and the order in which they ran."""
    order: list[str] = []
    capture = LayerCapture(modules, list(modules), last=None)
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
    ``"standard"`` (lucent's pad, jitter, scale, rotate, fused into one resampling; for the lite CNNs the
    same scaled to their 64-pixel inputs and without the pad, :func:`lite_transforms`), ``"none"``, or a list
    of callables (applied one after another, e.g. lucent's). Adam with learning rate ``lr``
    for ``steps`` steps. Returns a float tensor ``[n, 3, size, size]`` in [0, 1] on the CPU.
    """
    from lucent.optvis import transform as lucent_transform

    if param not in PARAMS:
        raise ValueError(f"param must be one of {PARAMS}, got {param!r}")
    for name, value in (("steps", steps), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    several = isinstance(objectives, (list, tuple))
    if several:
        objectives = [_spelt_for_lucent(model, o) for o in objectives]
    else:
        objectives = _spelt_for_lucent(model, objectives)
    objs = [as_objective(o) for o in (objectives if several else [objectives])]
    if not objs:
        raise ValueError("objectives is empty: give at least one objective")
    if batch is not None and (several or not isinstance(batch, int) or batch < 1):
        raise ValueError("batch (a positive int) is for one objective; a list of objectives gives one image each")
    n = len(objs) if several else (batch or 1)

    # "layer:channel" strings, one per image: lucent's channel objective (minus the channel's mean) for all
    # of a layer's images in one indexing, instead of one slice and one mean each
    strings: dict[str, tuple[list[int], list[int]]] = {}
    others = []
    for i, o in enumerate(objectives if several else []):
        if isinstance(o, str):
            layer, _, channel = o.rpartition(":")
            strings.setdefault(layer, ([], []))
            strings[layer][0].append(i)
            strings[layer][1].append(int(channel))
        else:
            others.append((i, objs[i]))
    strings = {layer: (torch.tensor(images), torch.tensor(channels)) for layer, (images, channels) in strings.items()}

    def total(hook):
        if not several:
            return objs[0](hook)
        loss = 0
        for layer, (images, channels) in strings.items():
            loss = loss - hook(layer)[images, channels].mean(dim=(1, 2)).sum()
        # objective i sees only image i of the batch
        return loss + sum(o(lambda layer, i=i: hook(layer)[i:i + 1]) for i, o in others)

    model_was_training = model.training
    model.eval()
    modules = module_names(model)
    scale_input = input_transform(model)
    chain = _transforms(transforms, model, size)
    transform_f = lucent_transform.compose(chain)
    device = next(model.parameters()).device
    try:
        with _seeded(seed), _lucent_on(device), _frozen(model), _fast_layers(model), _channels_last(model):
            params, image_f = _image(size, n, param)
            layers, last = _layers_read(model, modules, total, scale_input(transform_f(image_f())))
            capture = LayerCapture(modules, layers, last)
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


is_lite = _is_lite
