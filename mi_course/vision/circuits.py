"""Circuits in vision models: the weights between features, and what they say (lesson 04).

Olah et al. (*Zoom In: An Introduction to Circuits*, Distill 2020) read a network's weights between features
it has already understood: curve detectors built from earlier curves (Cammarata et al., *Curve Circuits*,
Distill 2021), rotated copies of one feature (Olah et al., *Naturally Occurring Equivariance in Neural
Networks*, Distill 2020), a pose-invariant detector built as a union of left- and right-facing ones, units
that respond to unrelated things (polysemanticity), and the same features in different networks
(universality). This module is the course's canonical version of each measurement; lesson 04's exercises are
graded against its behaviour.

    W = expanded_weights([bottleneck.weight, conv5x5.weight])     # one kernel for a chain of convolutions
    W, below = layer_weights(model, "mixed3b")                    # every branch of an Inception block
    top_inputs(W, 59, k=5)                                        # strongest excitatory / inhibitory inputs
    equivariance_map(model, "conv4", [0, 2], [345, 95], images)   # rotated copies of a feature
    union_over_cases(model.conv4.weight, 86, left, right)         # the union in the weights
    polysemanticity_report(responses, labels, classes)            # units that answer to several classes
    compare_tuning_across_models([("vision", m1, "conv4"), ...])  # curve detectors across networks

Conventions as in :mod:`mi_course.vision.tuning`: images RGB in [0, 1], (B, 3, H, W); a layer is a module
name; a channel's response to an image is its maximum over positions; orientations in degrees,
counter-clockwise on screen, 0 = bulging right. Weights are PyTorch's, ``[out, in, kh, kw]``, and a
convolution is PyTorch's (a cross-correlation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mi_course.vision.tuning import channel_responses, curve_detector_report

# ------------------------------------------------------------------ expanded weights


def _check_kernels(kernels) -> list[torch.Tensor]:
    if isinstance(kernels, torch.Tensor):
        kernels = [kernels]
    kernels = list(kernels)
    if not kernels:
        raise ValueError("expanded_weights needs at least one kernel")
    for i, k in enumerate(kernels):
        if not isinstance(k, torch.Tensor) or k.dim() != 4:
            raise ValueError(f"kernel {i} must be a conv weight [out, in, kh, kw], got "
                             f"{tuple(k.shape) if isinstance(k, torch.Tensor) else type(k).__name__}")
    for i, (a, b) in enumerate(zip(kernels, kernels[1:])):
        if b.shape[1] != a.shape[0]:
            raise ValueError(f"kernel {i + 1} reads {b.shape[1]} channels but kernel {i} writes {a.shape[0]}: the "
                             "chain is in forward order, each weight [out, in, kh, kw]")
    return kernels


def expanded_weights(kernels: Sequence[torch.Tensor]) -> torch.Tensor:
    """One kernel for a chain of convolutions (stride 1, no nonlinearity between them, biases left out).

    ``kernels`` are conv weights ``[out, in, kh, kw]`` in forward order (the first is applied first). Applying
    PyTorch's convolution (a cross-correlation) with each in turn equals applying it once with the result,
    ``[out_last, in_first, sum(kh) - n + 1, sum(kw) - n + 1]``, away from the borders. Composing two
    cross-correlations gives a true *convolution* of their kernels, summed over the channels between them.
    """
    kernels = _check_kernels(kernels)
    out = kernels[0].detach().float()
    for nxt in kernels[1:]:
        nxt = nxt.detach().float().to(out.device)
        kh, kw = nxt.shape[-2:]
        # out[m, i] composed with nxt[o, m]: conv2d over the (in -> batch, mid -> channels) view, with the
        # second kernel flipped so that the cross-correlation becomes a convolution
        composed = F.conv2d(out.transpose(0, 1), nxt.flip(-2, -1), padding=(kh - 1, kw - 1))
        out = composed.transpose(0, 1).contiguous()
    return out


def total_weights(weights: torch.Tensor) -> torch.Tensor:
    """``[out, in]``: each kernel summed over its positions (a conv weight), or the matrix itself (linear)."""
    if not isinstance(weights, torch.Tensor) or weights.dim() not in (2, 4):
        raise ValueError(f"weights must be [out, in, kh, kw] or [out, in], got "
                         f"{tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__}")
    weights = weights.detach().float()
    return weights.sum((2, 3)) if weights.dim() == 4 else weights


def _pad_to(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    dh, dw = size[0] - kernel.shape[-2], size[1] - kernel.shape[-1]
    return F.pad(kernel, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


# lucent InceptionV1: the module each mixed block reads (a max pool between stages)
INCEPTION_INPUTS = {"mixed3a": "maxpool1", "mixed3b": "mixed3a", "mixed4a": "maxpool4", "mixed4b": "mixed4a",
                    "mixed4c": "mixed4b", "mixed4d": "mixed4c", "mixed4e": "mixed4d", "mixed5a": "maxpool10",
                    "mixed5b": "mixed5a"}
INCEPTION_BRANCHES = (("1x1", ("1x1",)), ("3x3", ("3x3_bottleneck", "3x3")), ("5x5", ("5x5_bottleneck", "5x5")),
                      ("pool", ("pool_reduce",)))


def inception_branches(model, layer: str) -> list[dict]:
    """The branches of an InceptionV1 mixed block in the order it concatenates them (1x1, 3x3, 5x5, pool):
    per branch its name, the first concatenated channel, its width and its conv modules (lucent's names,
    ``{layer}_{part}_pre_relu_conv``). The 3x3 and 5x5 branches read a 1x1 bottleneck; the pool branch a 3x3
    max pool (a nonlinearity that :func:`layer_weights` leaves out)."""
    if layer not in INCEPTION_INPUTS:
        raise ValueError(f"{layer!r} is not a mixed block of InceptionV1; blocks: {', '.join(INCEPTION_INPUTS)}")
    out, start = [], 0
    for name, parts in INCEPTION_BRANCHES:
        modules = [f"{layer}_{part}_pre_relu_conv" for part in parts]
        convs = [getattr(model, m) for m in modules]
        width = convs[-1].out_channels
        out.append({"branch": name, "start": start, "width": width, "modules": modules})
        start += width
    return out


def inception_channel(model, layer: str, channel: int) -> dict:
    """Where a concatenated channel of an InceptionV1 mixed block lives: ``{"branch", "index", "modules"}``.
    mixed3b's channel 379 is index 379 - 128 - 192 = 59 of its 5x5 branch (Cammarata et al., 2020)."""
    for b in inception_branches(model, layer):
        if b["start"] <= channel < b["start"] + b["width"]:
            return {"branch": b["branch"], "index": channel - b["start"], "modules": b["modules"]}
    raise ValueError(f"{layer} has {sum(b['width'] for b in inception_branches(model, layer))} channels, "
                     f"not {channel}")


def layer_weights(model, layer: str) -> tuple[torch.Tensor, str]:
    """The expanded weights into ``layer`` from the layer below it, ``([out, in, K, K], below)``.

    * lite CNN (``model.layers``): ``model.<layer>.weight``, read from the previous conv layer (pooled);
    * a residual block (``conv_a``, ``conv_b``, ``shortcut``): both paths, ``conv_a`` then ``conv_b`` expanded,
      plus the 1x1 shortcut (or the identity) at the centre (the ReLU after ``conv_a`` left out);
    * lucent's InceptionV1 mixed block: each branch expanded through its bottleneck and padded to the
      largest kernel, concatenated as the block concatenates them (the pool branch's max pool left out).
    """
    if layer in INCEPTION_INPUTS and hasattr(model, f"{layer}_1x1_pre_relu_conv"):
        parts = []
        for b in inception_branches(model, layer):
            parts.append(expanded_weights([getattr(model, m).weight for m in b["modules"]]))
        size = max(p.shape[-1] for p in parts)
        return torch.cat([_pad_to(p, (size, size)) for p in parts]), INCEPTION_INPUTS[layer]
    names = list(getattr(model, "layer_names", ()))
    if layer not in names or names.index(layer) == 0:
        raise ValueError(f"layer_weights knows lite CNN layers after the first ({', '.join(names[1:])}) and "
                         f"InceptionV1 mixed blocks, got {layer!r}")
    module, below = model.get_submodule(layer), names[names.index(layer) - 1]
    if hasattr(module, "conv_a") and hasattr(module, "conv_b"):  # a residual block
        main = expanded_weights([module.conv_a.weight, module.conv_b.weight])
        short = getattr(module.shortcut, "weight", None)
        if short is None:  # identity shortcut
            short = torch.eye(main.shape[0], main.shape[1], device=main.device)[:, :, None, None]
        return main + _pad_to(short.detach().float(), main.shape[-2:]), below
    return module.weight.detach().float().clone(), below


# ------------------------------------------------------------------ top inputs


def top_inputs(weights: torch.Tensor, unit: int, k: int = 5) -> dict:
    """Unit ``unit``'s strongest excitatory and inhibitory inputs.

    A connection's strength is its kernel's total weight (summed over positions; a linear layer's weight as
    it is). Returns ``{"excitatory": [(input, weight), ...], "inhibitory": [(input, weight), ...]}``, at most
    ``k`` each, positive weights largest first and negative ones most negative first (weights keep their
    sign), Python ints and floats, ties to the lower input index."""
    total = total_weights(weights)
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < total.shape[0]:
        raise ValueError(f"unit must be an int in [0, {total.shape[0]}), got {unit!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    row = total[unit]
    order = torch.sort(-row, stable=True).indices.tolist()          # largest first, ties low index first
    exc = [(i, float(row[i])) for i in order if row[i] > 0][:k]
    order = torch.sort(row, stable=True).indices.tolist()           # most negative first
    inh = [(i, float(row[i])) for i in order if row[i] < 0][:k]
    return {"excitatory": exc, "inhibitory": inh}


def orientation_difference(a, b):
    """Angular distance in degrees, in [0, 180] (works on numbers and tensors)."""
    d = (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)) % 360
    d = torch.minimum(d, 360 - d)
    return d.item() if d.dim() == 0 else d


def weights_by_orientation(weights: torch.Tensor, units: Sequence[int], preferred_out: Sequence[float],
                           inputs: Sequence[int], preferred_in: Sequence[float]) -> dict:
    """Every connection from ``inputs`` (with preferred orientations ``preferred_in``) to ``units`` (with
    ``preferred_out``): ``{"difference": [deg], "weight": [total weight]}`` and their Pearson correlation.
    Curve circuits (Cammarata et al., 2021): similar orientations excite, opposite ones inhibit."""
    total = total_weights(weights)
    diffs, ws = [], []
    for u, pu in zip(units, preferred_out):
        for i, pi in zip(inputs, preferred_in):
            diffs.append(orientation_difference(pu, pi))
            ws.append(float(total[u, i]))
    d, w = torch.tensor(diffs), torch.tensor(ws)
    r = torch.corrcoef(torch.stack([d, w]))[0, 1].item() if len(d) > 1 else float("nan")
    return {"difference": diffs, "weight": ws, "correlation": r}


def plot_weight_images(weights: torch.Tensor, unit: int, inputs: Sequence[int], titles: Sequence[str] | None = None,
                       renders: torch.Tensor | None = None, size: float = 1.3, suptitle: str | None = None):
    """The kernels from ``inputs`` into ``unit`` as weight images, excitation red and inhibition blue on one
    symmetric scale (Voss et al., *Visualizing Weights*, Distill 2021), with each input's feature
    visualization above its kernel when ``renders`` ([len(inputs), 3, H, W]) are given. Returns the figure."""
    import matplotlib.pyplot as plt

    w = weights.detach().float().cpu()
    kernels = w[unit, list(inputs)] if w.dim() == 4 else w[unit, list(inputs)][:, None, None]
    scale = max(kernels.abs().max().item(), 1e-12)
    rows = 2 if renders is not None else 1
    fig, axes = plt.subplots(rows, len(inputs), figsize=(size * len(inputs), size * rows + 0.5), squeeze=False)
    titles = list(titles) if titles is not None else [str(i) for i in inputs]
    for j, i in enumerate(inputs):
        ax = axes[-1, j]
        im = ax.imshow(kernels[j].numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_title(titles[j], fontsize=8)
        if renders is not None:
            axes[0, j].imshow(renders[j].detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
        for a in axes[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    fig.colorbar(im, ax=axes[-1].tolist(), shrink=0.9, pad=0.01, label="weight")
    fig.suptitle((suptitle + "\n" if suptitle else "") + "red excites, blue inhibits", fontsize=10)
    return fig


# ------------------------------------------------------------------ equivariance


def disc_mask(images: torch.Tensor) -> torch.Tensor:
    """Each image inside the disc inscribed in it, the outside filled with the image's median colour: a
    rotation about the centre then moves no content out of the frame and brings none in."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError("images must be [batch, 3, H, W]")
    _, _, h, w = images.shape
    y = torch.arange(h, dtype=torch.float32) + 0.5 - h / 2
    x = torch.arange(w, dtype=torch.float32) + 0.5 - w / 2
    inside = (y[:, None] ** 2 + x[None, :] ** 2 <= (min(h, w) / 2) ** 2).to(images.dtype)
    fill = images.flatten(2).median(-1).values[:, :, None, None]
    return images * inside + fill * (1 - inside)


def rotate_images(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Disc-masked images (:func:`disc_mask`) rotated counter-clockwise on screen by ``degrees`` about their
    centre (bilinear). The surround colour is read from each image's corner and kept."""
    from torchvision.transforms.functional import InterpolationMode, rotate

    fill = images[:, :, :1, :1]
    out = rotate(images - fill, float(degrees), interpolation=InterpolationMode.BILINEAR) + fill
    return out.clamp(0, 1)


def _pearson_columns(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp_min(1e-12)


def equivariance_map(model, layer: str, channels: Sequence[int], preferred_deg: Sequence[float],
                     images: torch.Tensor) -> torch.Tensor:
    """How well each detector is a rotated copy of each other one, ``[n, n]``.

    ``M[i, j]`` is the Pearson correlation, over ``images`` (disc-masked, [N, 3, H, W]), between channel
    ``channels[i]``'s response to each image and channel ``channels[j]``'s response to that image rotated by
    ``preferred_deg[j] - preferred_deg[i]`` degrees (:func:`rotate_images`). If j is i's copy rotated by the
    difference of their preferred orientations, j sees in a rotated image what i sees in the original, and
    ``M[i, j]`` is near 1 (Olah et al., *Naturally Occurring Equivariance*, 2020). Rotating the *input*
    rotates every layer below at once, with each channel mapped to its rotated counterpart: the transformation
    under which an equivariant network's weights would be rotated copies."""
    channels, preferred = [int(c) for c in channels], [float(p) for p in preferred_deg]
    if len(channels) != len(preferred) or not channels:
        raise ValueError("channels and preferred_deg must be non-empty and of the same length")
    n = len(channels)
    base = channel_responses(model, images, layer)[:, channels]
    rotated: dict[float, torch.Tensor] = {}  # responses to the images rotated by each angle, computed once
    out = torch.empty(n, n)
    for j in range(n):
        for i in range(n):
            angle = round((preferred[j] - preferred[i]) % 360, 6)
            if angle not in rotated:
                rotated[angle] = channel_responses(model, rotate_images(images, angle), layer)[:, channels]
            out[i, j] = _pearson_columns(base[:, i:i + 1], rotated[angle][:, j:j + 1])[0]
    return out


def kernel_rotation_map(weights: torch.Tensor, channels: Sequence[int], preferred_deg: Sequence[float]) -> torch.Tensor:
    """The naive test, for comparison: ``M[i, j]`` = correlation of kernel j with kernel i rotated by the
    multiple of 90 degrees nearest to ``preferred_deg[j] - preferred_deg[i]`` (``torch.rot90``), all input
    channels in place. It ignores that the inputs are oriented features too: a rotated copy of a unit reads
    the rotated copies of its inputs, through other channels."""
    w = weights.detach().float()
    n = len(channels)
    out = torch.empty(n, n)
    for i, (ci, pi) in enumerate(zip(channels, preferred_deg)):
        for j, (cj, pj) in enumerate(zip(channels, preferred_deg)):
            k = round((pj - pi) / 90) % 4
            a, b = torch.rot90(w[ci], k, (-2, -1)).flatten(), w[cj].flatten()
            a, b = a - a.mean(), b - b.mean()
            out[i, j] = (a @ b / (a.norm() * b.norm()).clamp_min(1e-12)).item()
    return out


# ------------------------------------------------------------------ union over cases


def case_units(model, layer: str, images_a: torch.Tensor, images_b: torch.Tensor, min_ratio: float = 3.0,
               min_response: float = 0.3, exclude: Sequence[int] = ()) -> dict:
    """The units of ``layer`` that prefer one case: mean response (max over positions) to case a at least
    ``min_ratio`` times that to case b and at least ``min_response`` (and the same for b), ``exclude`` left
    out. Returns ``{"a": [...], "b": [...], "r_a": [...], "r_b": [...]}`` (ids ascending, every unit's means)."""
    ra = channel_responses(model, images_a, layer).mean(0)
    rb = channel_responses(model, images_b, layer).mean(0)
    skip = set(int(u) for u in exclude)
    a = [u for u in range(len(ra)) if u not in skip and ra[u] >= min_ratio * rb[u] and ra[u] >= min_response]
    b = [u for u in range(len(ra)) if u not in skip and rb[u] >= min_ratio * ra[u] and rb[u] >= min_response]
    return {"a": a, "b": b, "r_a": ra.tolist(), "r_b": rb.tolist()}


def _unit_list(name, units, n):
    units = list(units)
    if any(isinstance(u, bool) or not isinstance(u, int) or not 0 <= u < n for u in units):
        raise ValueError(f"{name} must be ints in [0, {n}), got {units}")
    return units


def union_over_cases(weights: torch.Tensor, unit: int, case_a: Sequence[int], case_b: Sequence[int],
                     out_a: Sequence[int] = (), out_b: Sequence[int] = ()) -> dict:
    """The union-over-cases motif tested in the weights (Olah et al., *Zoom In*, 2020).

    ``weights`` go from the case layer to the union layer (``[out, in, kh, kw]`` or ``[out, in]``); a
    connection's strength is its total weight. ``case_a`` and ``case_b`` are the input units that prefer each
    case (e.g. left- and right-facing), ``out_a`` and ``out_b`` optional units of the union layer that still
    prefer one case. Returns ``{"excitation": (a, b), "union": bool, "inhibition": (a_to_b, b_to_a) or None,
    "mutual_inhibition": bool or None}``: ``excitation`` the mean total weight from each case's inputs into
    ``unit`` (a union when both are positive); ``inhibition`` the mean over every pair of the weight from
    ``case_a`` into ``out_b`` and from ``case_b`` into ``out_a`` (mutual inhibition when both are negative)."""
    total = total_weights(weights)
    n_out, n_in = total.shape
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < n_out:
        raise ValueError(f"unit must be an int in [0, {n_out}), got {unit!r}")
    case_a, case_b = _unit_list("case_a", case_a, n_in), _unit_list("case_b", case_b, n_in)
    out_a, out_b = _unit_list("out_a", out_a, n_out), _unit_list("out_b", out_b, n_out)
    if not case_a or not case_b or set(case_a) & set(case_b):
        raise ValueError("case_a and case_b must be non-empty and share no unit")
    if bool(out_a) != bool(out_b) or set(out_a) & set(out_b):
        raise ValueError("give out_a and out_b both or neither, sharing no unit")
    exc = (total[unit, case_a].mean().item(), total[unit, case_b].mean().item())
    result = {"excitation": exc, "union": exc[0] > 0 and exc[1] > 0, "inhibition": None, "mutual_inhibition": None}
    if out_a:
        inh = (total[out_b][:, case_a].mean().item(), total[out_a][:, case_b].mean().item())
        result.update(inhibition=inh, mutual_inhibition=inh[0] < 0 and inh[1] < 0)
    return result


def mirror_split(model, layer: str, units: Sequence[int], renders: torch.Tensor) -> tuple[list[int], list[int]]:
    """Split units into two mirror cases: ``renders[i]`` is a feature visualization of ``units[i]``; unit j is
    i's mirror partner when the mirrored render of i excites j (relative to j's own render) more than any other
    unit. Pairs are formed greedily from the strongest; an odd one out joins the side of its best partner's
    opposite. Returns (case_a, case_b)."""
    units = [int(u) for u in units]
    resp = channel_responses(model, renders.flip(-1), layer)[:, units]        # [i, j]: j on mirrored render i
    own = channel_responses(model, renders, layer)[:, units].diagonal().clamp_min(1e-6)
    score = (resp / own[None]).clone()
    score.fill_diagonal_(-float("inf"))
    score = torch.maximum(score, score.T)
    a, b, left = [], [], set(range(len(units)))
    while len(left) >= 2:
        idx = sorted(left)
        sub = score[idx][:, idx]
        i, j = divmod(int(sub.argmax()), len(idx))
        a.append(units[idx[i]])
        b.append(units[idx[j]])
        left -= {idx[i], idx[j]}
    for i in left:  # an odd one out: opposite its best partner
        j = int(score[i].argmax())
        (b if units[j] in a else a).append(units[i])
    return a, b


# ------------------------------------------------------------------ polysemanticity

# pairs of classes of mi_course.organisms.images that share parts, as the generator draws them: a response to
# both can be one feature (round heads are circles, forked tails are corners, fish bodies are straight lines)
SHARED_PARTS = frozenset(frozenset(p) for p in [
    ("arc", "circle"), ("line", "corner"), ("line", "edge"), ("corner", "edge"), ("edge", "shape"),
    ("corner", "shape"), ("fish", "double"), ("line", "texture"), ("edge", "texture"),
    *[(f, o) for f in ("fish", "double") for o in ("arc", "circle", "line", "corner", "shape")],
])


def class_means(responses: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``[units, classes]``: each unit's mean response over the images of each class."""
    if not isinstance(responses, torch.Tensor) or responses.dim() != 2:
        got = tuple(responses.shape) if isinstance(responses, torch.Tensor) else type(responses).__name__
        raise ValueError(f"responses must be [images, units], got {got}")
    labels = torch.as_tensor(labels)
    if labels.shape != (responses.shape[0],):
        raise ValueError(f"labels must be [images] = [{responses.shape[0]}], got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes})")
    counts = torch.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"every class needs at least one image; none of class {missing}")
    sums = torch.zeros(n_classes, responses.shape[1], dtype=torch.float64).index_add_(0, labels, responses.double())
    return (sums / counts[:, None]).T.float()


def polysemanticity_report(responses: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                           min_ratio: float = 1.5, min_share: float = 0.5) -> dict:
    """Which classes each unit responds to, and which units respond to several.

    ``responses`` ``[images, units]`` (each unit's response to each image), ``labels`` ``[images]`` class
    indices into ``classes``. A unit responds to class k when its mean response over class k's images is
    positive, at least ``min_ratio`` times its mean over the class means (every class weighted equally) and at
    least ``min_share`` times its largest class mean. Returns ``{"classes", "class_means" [units, classes],
    "responds_to": per unit the class names, largest mean first (ties: the lower class index first),
    "polysemantic": the units that respond to two classes or more, ascending}``."""
    classes = list(classes)
    means = class_means(responses, labels, len(classes))
    baseline = means.mean(1, keepdim=True)
    top = means.max(1, keepdim=True).values
    ok = (means > 0) & (means >= min_ratio * baseline) & (means >= min_share * top)
    responds = []
    for u in range(means.shape[0]):
        order = torch.sort(-means[u], stable=True).indices.tolist()
        responds.append([classes[k] for k in order if ok[u, k]])
    return {"classes": classes, "class_means": means, "responds_to": responds,
            "polysemantic": [u for u, r in enumerate(responds) if len(r) >= 2]}


def responds_to_both(responses: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], unit: int, a: str,
                     b: str, min_ratio: float = 2.0, min_share: float = 0.5) -> dict:
    """The investigation's test: does ``unit`` respond to classes ``a`` and ``b`` each at least ``min_ratio``
    times its mean over the *other* classes, and each at least ``min_share`` of its largest class mean?"""
    classes = list(classes)
    means = class_means(responses, labels, len(classes))[unit]
    ia, ib = classes.index(a), classes.index(b)
    others = [k for k in range(len(classes)) if k not in (ia, ib)]
    base = means[others].mean().item()
    ratio = (means[ia].item() / max(base, 1e-12), means[ib].item() / max(base, 1e-12))
    share = (means[ia].item() / max(means.max().item(), 1e-12), means[ib].item() / max(means.max().item(), 1e-12))
    return {"ratio": ratio, "share": share,
            "holds": min(ratio) >= min_ratio and min(share) >= min_share}


# ------------------------------------------------------------------ universality


def orientation_histogram(degrees: Sequence[float], bins: int = 8) -> list[int]:
    """Counts per bin of ``360 / bins`` degrees centred on multiples of it (bin k holds the orientations within
    half a bin of ``k * 360 / bins``; 350 is in bin 0)."""
    width = 360 / bins
    counts = [0] * bins
    for d in degrees:
        counts[int(math.floor((float(d) + width / 2) / width)) % bins] += 1
    return counts


def _nearest_distance(src: Sequence[float], dst: Sequence[float]) -> float | None:
    if not src or not dst:
        return None
    return sum(min(orientation_difference(s, d) for d in dst) for s in src) / len(src)


# lesson 03's tuning stimuli for InceptionV1's mixed3b, whose units see 91 x 91 input pixels: arcs of radius 10, 16
# and 24 px, drawn 3 px wide on a 112 px canvas (the lite defaults of mi_course.vision.tuning are for conv4's 44 px)
FIELD_STIMULI = {"field": 91, "radii": (10.0, 16.0, 24.0), "width": 3.0, "size": 112}


def field_stimuli(model, layer: str) -> dict:
    """Tuning stimuli sized to ``layer``'s receptive field, as keyword arguments of the tuning functions
    (``curve_detector_report(model, layer, **field_stimuli(model, layer))``): lesson 03's stimuli for mixed3b
    (:data:`FIELD_STIMULI`) with the radii and the canvas scaled by the field's size over mixed3b's 91 px. The
    stroke stays 3 px wide: the full-mode networks all read 224 px ImageNet images, so an edge is equally wide
    for each. The field is :func:`mi_course.vision.receptive_field.receptive_field` (measured for the full
    models, by arithmetic for the lite ones, whose tuning keeps the defaults)."""
    from mi_course.vision.receptive_field import receptive_field

    scale = receptive_field(model, layer).size / FIELD_STIMULI["field"]
    return {"radii": tuple(round(r * scale, 1) for r in FIELD_STIMULI["radii"]), "width": FIELD_STIMULI["width"],
            "size": round(FIELD_STIMULI["size"] * scale)}


def orientation_matching(models: dict) -> dict:
    """``{a: {b: mean over a's curve detectors of the angular distance to the nearest of b's, or None}}`` for
    ``models`` as :func:`compare_tuning_across_models` returns them (name -> a dict with ``preferred_deg``)."""
    return {a: {b: _nearest_distance(list(models[a]["preferred_deg"].values()),
                                     list(models[b]["preferred_deg"].values()))
                for b in models if b != a} for a in models}


def compare_tuning_across_models(entries: Sequence[tuple], **kwargs) -> dict:
    """Curve detectors of several models, found by one criterion on the same stimuli (universality).

    ``entries`` are ``(name, model, layer)`` triples (names unique); ``kwargs`` go to
    :func:`mi_course.vision.tuning.curve_detector_report` for every model. Returns ``{"models": {name:
    {"layer", "n_channels", "curve_detectors", "preferred_deg" {id: deg}, "histogram" (8 bins of 45 degrees
    centred on 0, 45, ...), "quadrants"}}, "matching": {a: {b: mean over a's detectors of the angular distance
    to the nearest of b's, or None}}}``."""
    entries = list(entries)
    if not entries:
        raise ValueError("entries must hold at least one (name, model, layer)")
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    models = {}
    for name, model, layer in entries:
        report = curve_detector_report(model, layer, **kwargs)
        pref = {int(c): float(d) for c, d in report["preferred_deg"].items()}
        models[name] = {"layer": layer, "n_channels": len(report["channels"]),
                        "curve_detectors": list(report["curve_detectors"]), "preferred_deg": pref,
                        "histogram": orientation_histogram(pref.values()), "quadrants": list(report["quadrants"])}
    return {"models": models, "matching": orientation_matching(models)}


def plot_preferred_orientations(comparison: dict, title: str = "preferred orientations of curve detectors"):
    """One polar figure: each model on its own ring, a dot at each curve detector's preferred orientation."""
    import matplotlib.pyplot as plt

    models = comparison["models"] if "models" in comparison else comparison
    fig = plt.figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot(projection="polar")
    for ring, (name, m) in enumerate(models.items(), start=1):
        degs = list(m["preferred_deg"].values())
        ax.scatter([math.radians(d) for d in degs], [ring] * len(degs), s=40, label=f"{name} ({len(degs)})")
    ax.set_yticks(range(1, len(models) + 1))
    ax.set_yticklabels([])
    ax.set_ylim(0, len(models) + 0.6)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return fig


def universality_set(mode: str | None = None) -> list[tuple[str, str]]:
    """``(role, curve layer)`` for the vision roles of the universality comparison in ``mode``, as the model
    registry lists them (lite roles only where their checkpoint is shipped)."""
    from mi_course.config import get_mode
    from mi_course.models import registry

    mode = get_mode(mode)
    if hasattr(registry, "universality_roles") and hasattr(registry, "curve_layer"):
        roles = [(r, registry.curve_layer(r, mode)) for r in registry.universality_roles(mode)]
    else:  # an older registry: the two vision roles it has
        roles = [("vision", "mixed3b" if mode == "full" else "conv4"),
                 ("vision-b", "model.features.4" if mode == "full" else "conv4")]
    return [(r, layer) for r, layer in roles if mode == "full" or registry.lite_shipped(r)]
