"""Lesson 04, circuits, motifs and universality: exercises."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float

from mi_course.organisms.images import CLASSES, generate  # noqa: F401 (the generated image set)
from mi_course.vision.circuits import SHARED_PARTS  # noqa: F401 (class pairs that share parts: polysemantic_unit)
from mi_course.vision.tuning import channel_responses, curve_detector_report  # noqa: F401


# >>> exercise: expanded_weights
def expanded_weights(kernels: Sequence[Float[torch.Tensor, "out in kh kw"]]) -> Float[torch.Tensor, "out in KH KW"]:
    """One kernel for a chain of convolutions: the *expanded weights* from the chain's input to its output.

    ``kernels`` are conv weights ``[out, in, kh, kw]`` in **forward order** (``kernels[0]`` is applied
    first), with stride 1 and nothing between them (the ReLUs and biases are left out, as Olah et al. do).
    Applying PyTorch's ``F.conv2d`` with each kernel in turn (no padding) must equal applying it once with the
    result, a float tensor ``[out_last, in_first, sum(kh) - n + 1, sum(kw) - n + 1]`` for ``n`` kernels. A
    single kernel is returned as it is (a float copy).

    Raises:
        ValueError: if ``kernels`` is empty, a kernel is not 4-D, or a kernel does not read as many channels
            as the one before it writes (``kernels[i + 1].shape[1] != kernels[i].shape[0]``).
    """
    # BEGIN SOLUTION
    kernels = list(kernels)
    if not kernels:
        raise ValueError("expanded_weights needs at least one kernel")
    for i, k in enumerate(kernels):
        if not isinstance(k, torch.Tensor) or k.dim() != 4:
            raise ValueError(f"kernel {i} must be a conv weight [out, in, kh, kw], got "
                             f"{tuple(k.shape) if isinstance(k, torch.Tensor) else type(k).__name__}")
    for i in range(len(kernels) - 1):
        if kernels[i + 1].shape[1] != kernels[i].shape[0]:
            raise ValueError(f"kernel {i + 1} reads {kernels[i + 1].shape[1]} channels, but kernel {i} writes "
                             f"{kernels[i].shape[0]}: give the chain in forward order, each [out, in, kh, kw]")
    result = kernels[0].detach().float().clone()
    for nxt in kernels[1:]:
        nxt = nxt.detach().float()
        kh, kw = nxt.shape[-2:]
        # y[o] = sum_m nxt[o, m] (x) (result[m, i] (x) x[i]): the kernels compose by a true convolution
        # (cross-correlation with the second kernel flipped), with the middle channels summed over
        composed = F.conv2d(result.transpose(0, 1), nxt.flip(-2, -1), padding=(kh - 1, kw - 1))
        result = composed.transpose(0, 1).contiguous()
    return result
    # STUB: raise NotImplementedError("exercise 04.expanded_weights: not started yet")
    # END SOLUTION
# <<< exercise: expanded_weights


# >>> exercise: top_inputs
def top_inputs(weights: torch.Tensor, unit: int, k: int = 5) -> dict[str, list[tuple[int, float]]]:
    """The strongest excitatory and inhibitory inputs of output unit ``unit``.

    ``weights`` are ``[out, in, kh, kw]`` (a convolution, or expanded weights) or ``[out, in]`` (a linear
    layer). A connection's strength is its **total weight**: the kernel summed over its positions (how much a
    uniform input on that channel moves the unit). Returns ``{"excitatory": [...], "inhibitory": [...]}``,
    each a list of at most ``k`` pairs ``(input_channel, total_weight)`` (Python int, float): the positive
    weights, largest first, and the negative ones, most negative first, keeping their sign. A channel with
    weight exactly 0 is in neither list; at a tie the lower channel comes first.

    Raises:
        ValueError: if ``weights`` is not 2-D or 4-D, ``unit`` is not an int in ``[0, out)`` or ``k`` not an
            int >= 1.
    """
    # BEGIN SOLUTION
    if not isinstance(weights, torch.Tensor) or weights.dim() not in (2, 4):
        raise ValueError(f"weights must be [out, in, kh, kw] or [out, in], got "
                         f"{tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__}")
    total = weights.detach().float()
    if total.dim() == 4:
        total = total.sum((2, 3))
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < total.shape[0]:
        raise ValueError(f"unit must be an int in [0, {total.shape[0]}), got {unit!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    row = total[unit]
    largest = torch.sort(row, descending=True, stable=True).indices.tolist()
    smallest = torch.sort(row, stable=True).indices.tolist()
    return {"excitatory": [(i, row[i].item()) for i in largest if row[i] > 0][:k],
            "inhibitory": [(i, row[i].item()) for i in smallest if row[i] < 0][:k]}
    # STUB: raise NotImplementedError("exercise 04.top_inputs: not started yet")
    # END SOLUTION
# <<< exercise: top_inputs


# >>> exercise: equivariance_map
def equivariance_map(model: torch.nn.Module, layer: str, channels: Sequence[int], preferred_deg: Sequence[float],
                     images: Float[torch.Tensor, "n 3 h w"]) -> Float[torch.Tensor, "c c"]:
    """Is each detector a rotated copy of each other one? ``[n, n]`` for ``n = len(channels)``.

    ``M[i, j]`` is the Pearson correlation, over the images, between channel ``channels[i]``'s response to
    each image and channel ``channels[j]``'s response to the same image rotated **counter-clockwise** by
    ``preferred_deg[j] - preferred_deg[i]`` degrees. A response is ``channel_responses(model, images,
    layer)`` (each channel's maximum over positions). The diagonal is 1.

    ``images`` are *disc-masked*: everything outside the inscribed disc has one colour, that of the corner
    pixel ``images[:, :, :1, :1]``. A rotated image is the image turned about its centre with bilinear
    interpolation, as torchvision's ``rotate`` turns it (counter-clockwise for a positive angle), with the
    corners the rotation brings in in the surround's colour (not black), clamped to [0, 1]: rotation then
    neither cuts content off nor brings a new edge in.

    Raises:
        ValueError: if ``channels`` is empty, its length differs from ``preferred_deg``'s, or a channel is not
            in the layer.
    """
    # BEGIN SOLUTION
    from torchvision.transforms.functional import InterpolationMode, rotate

    channels, preferred = [int(c) for c in channels], [float(p) for p in preferred_deg]
    if not channels or len(channels) != len(preferred):
        raise ValueError(f"channels and preferred_deg must be non-empty and of one length, got {len(channels)} "
                         f"and {len(preferred)}")
    base = channel_responses(model, images, layer)
    if any(not 0 <= c < base.shape[1] for c in channels):
        raise ValueError(f"{layer} has {base.shape[1]} channels; got {channels}")
    corner = images[:, :, :1, :1]

    def rotated_responses(angle: float) -> torch.Tensor:
        turned = rotate(images - corner, angle, interpolation=InterpolationMode.BILINEAR) + corner
        return channel_responses(model, turned.clamp(0, 1), layer)

    def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a - a.mean(), b - b.mean()
        return (a @ b / (a.norm() * b.norm()).clamp_min(1e-12)).item()

    n = len(channels)
    cache: dict[float, torch.Tensor] = {}  # one forward pass per angle
    out = torch.empty(n, n)
    for i in range(n):
        for j in range(n):
            angle = preferred[j] - preferred[i]
            if angle not in cache:
                cache[angle] = rotated_responses(angle)
            out[i, j] = pearson(base[:, channels[i]], cache[angle][:, channels[j]])
    return out
    # STUB: raise NotImplementedError("exercise 04.equivariance_map: not started yet")
    # END SOLUTION
# <<< exercise: equivariance_map


# >>> exercise: union_over_cases
def union_over_cases(weights: torch.Tensor, unit: int, case_a: Sequence[int], case_b: Sequence[int],
                     out_a: Sequence[int] = (), out_b: Sequence[int] = ()) -> dict:
    """The union-over-cases motif, tested in the weights.

    ``weights`` go from the *case layer* (below) to the *union layer*: ``[out, in, kh, kw]`` or
    ``[out, in]``; a connection's strength is its total weight (summed over kernel positions). ``case_a`` and
    ``case_b`` are input units that prefer each case (say left- and right-facing); ``out_a`` and ``out_b``
    (optional, both or neither) units of the union layer that still prefer one case.

    Returns a dict:

    * ``"excitation"``: ``(a, b)``, the mean total weight from the ``case_a`` inputs into ``unit``, and from the
      ``case_b`` inputs (Python floats);
    * ``"union"``: both are positive: each pathway excites the unit;
    * ``"inhibition"``: ``(a_to_b, b_to_a)``, the mean total weight from the ``case_a`` inputs into the
      ``out_b`` units (over every pair), and from ``case_b`` into ``out_a``; ``None`` without ``out_a``;
    * ``"mutual_inhibition"``: both are negative: each pathway inhibits the other; ``None`` without ``out_a``.

    Raises:
        ValueError: if ``unit`` or a listed unit is not an int in its layer, ``case_a`` or ``case_b`` is empty,
            the two cases share a unit, or only one of ``out_a`` and ``out_b`` is given.
    """
    # BEGIN SOLUTION
    if not isinstance(weights, torch.Tensor) or weights.dim() not in (2, 4):
        raise ValueError("weights must be [out, in, kh, kw] or [out, in]")
    total = weights.detach().float()
    if total.dim() == 4:
        total = total.sum((2, 3))
    n_out, n_in = total.shape

    def units(name, values, n):
        values = list(values)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
                raise ValueError(f"{name} must hold ints in [0, {n}), got {v!r}")
        return values

    unit = units("unit", [unit], n_out)[0]
    case_a, case_b = units("case_a", case_a, n_in), units("case_b", case_b, n_in)
    out_a, out_b = units("out_a", out_a, n_out), units("out_b", out_b, n_out)
    if not case_a or not case_b:
        raise ValueError("case_a and case_b must each hold at least one input unit")
    if set(case_a) & set(case_b):
        raise ValueError(f"a unit cannot prefer both cases: {sorted(set(case_a) & set(case_b))}")
    if bool(out_a) != bool(out_b):
        raise ValueError("give out_a and out_b both, or neither")
    excitation = (total[unit, case_a].mean().item(), total[unit, case_b].mean().item())
    result = {"excitation": excitation, "union": excitation[0] > 0 and excitation[1] > 0,
              "inhibition": None, "mutual_inhibition": None}
    if out_a:
        a_to_b = total[out_b][:, case_a].mean().item()
        b_to_a = total[out_a][:, case_b].mean().item()
        result["inhibition"] = (a_to_b, b_to_a)
        result["mutual_inhibition"] = a_to_b < 0 and b_to_a < 0
    return result
    # STUB: raise NotImplementedError("exercise 04.union_over_cases: not started yet")
    # END SOLUTION
# <<< exercise: union_over_cases


# >>> exercise: polysemanticity_report
def polysemanticity_report(responses: Float[torch.Tensor, "images units"], labels: torch.Tensor,
                           classes: Sequence[str], min_ratio: float = 1.5, min_share: float = 0.5) -> dict:
    """Which classes does each unit respond to, and which units respond to several?

    ``responses[n, u]`` is unit ``u``'s response to image ``n``; ``labels[n]`` the image's class, an index into
    ``classes``. Let ``m[u, k]`` be unit ``u``'s mean response over the images of class ``k``. Unit ``u``
    *responds to* class ``k`` when all three hold:

    * ``m[u, k] > 0``;
    * ``m[u, k] >= min_ratio * baseline[u]``, where ``baseline[u]`` is the mean of ``m[u, :]`` over the classes
      (every class counts once, however many images it has);
    * ``m[u, k] >= min_share * max_k m[u, k]``.

    Returns ``{"classes": list(classes), "class_means": m (float tensor [units, classes]), "responds_to": a
    list with, for each unit, the names of the classes it responds to, largest mean first (at a tie the lower
    class index first), "polysemantic": the units that respond to at least two classes, ascending}``.

    Raises:
        ValueError: if ``responses`` is not 2-D, ``labels`` is not one label per image, a label is outside
            ``classes``, or a class has no image.
    """
    # BEGIN SOLUTION
    if not isinstance(responses, torch.Tensor) or responses.dim() != 2:
        raise ValueError("responses must be a tensor [images, units]")
    labels = torch.as_tensor(labels)
    classes = list(classes)
    if labels.shape != (responses.shape[0],):
        raise ValueError(f"labels must hold one class per image, shape ({responses.shape[0]},), got "
                         f"{tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must be class indices in [0, {len(classes)})")
    means = []
    for k in range(len(classes)):
        rows = responses[labels == k]
        if len(rows) == 0:
            raise ValueError(f"class {classes[k]!r} has no image: every class needs at least one")
        means.append(rows.double().mean(0))
    m = torch.stack(means, dim=1).float()                    # [units, classes]
    baseline = m.mean(dim=1, keepdim=True)
    largest = m.max(dim=1, keepdim=True).values
    ok = (m > 0) & (m >= min_ratio * baseline) & (m >= min_share * largest)
    responds_to = []
    for u in range(m.shape[0]):
        order = torch.sort(m[u], descending=True, stable=True).indices.tolist()
        responds_to.append([classes[k] for k in order if ok[u, k]])
    return {"classes": classes, "class_means": m, "responds_to": responds_to,
            "polysemantic": [u for u in range(m.shape[0]) if len(responds_to[u]) >= 2]}
    # STUB: raise NotImplementedError("exercise 04.polysemanticity_report: not started yet")
    # END SOLUTION
# <<< exercise: polysemanticity_report


# >>> exercise: polysemantic_unit
def polysemantic_unit(model: torch.nn.Module, layer: str = "conv4") -> tuple[int, str, str]:
    """An investigation: find a unit of the lite ``vision`` model's ``layer`` that responds to two classes
    which share no part.

    Return ``(unit, class_a, class_b)``: a Python int and two names from
    ``mi_course.organisms.images.CLASSES``, a pair that is **not** in ``SHARED_PARTS`` (pairs whose images
    the generator draws from the same parts: a fish's round head is a circle, its forked tail a corner). The
    test draws fresh images of every class (``fish_cases="species"``, as the model was trained) and requires
    that the unit's mean response (maximum over positions) to each of your two classes is at least twice its
    mean response over the other eight classes, and at least half its strongest class mean. Choose with a
    margin: the test's images are not yours.
    """
    # BEGIN SOLUTION
    images, labels, _ = generate(1500, seed=404, fish_cases="species")
    responses = channel_responses(model, images, layer)
    report = polysemanticity_report(responses, labels, CLASSES)
    m = report["class_means"]
    best, best_margin = None, -math.inf
    for u in range(m.shape[0]):
        for a, b in combinations(range(len(CLASSES)), 2):
            if frozenset((CLASSES[a], CLASSES[b])) in SHARED_PARTS:
                continue
            others = [k for k in range(len(CLASSES)) if k not in (a, b)]
            base = m[u, others].mean().clamp_min(1e-6)
            margin = min(m[u, a] / base / 2, m[u, b] / base / 2, m[u, a] / m[u].max() / 0.5,
                         m[u, b] / m[u].max() / 0.5).item()
            if margin > best_margin:
                best, best_margin = (u, CLASSES[a], CLASSES[b]), margin
    return int(best[0]), best[1], best[2]
    # STUB: raise NotImplementedError("exercise 04.polysemantic_unit: not started yet")
    # END SOLUTION
# <<< exercise: polysemantic_unit


# >>> exercise: compare_tuning_across_models
def compare_tuning_across_models(entries: Sequence[tuple[str, torch.nn.Module, str]], **kwargs) -> dict:
    """Universality: the curve detectors of several models, found by one criterion on the same stimuli.

    ``entries`` are ``(name, model, layer)`` triples. A model's curve detectors and their preferred
    orientations are those that ``curve_detector_report(model, layer, **kwargs)`` reports (the course's
    criterion, lesson 03). Returns::

        {"models": {name: {"layer": layer, "n_channels": channels in the layer,
                           "curve_detectors": [ids], "preferred_deg": {id: degrees},
                           "histogram": [8 counts], "quadrants": the report's quadrants}},
         "matching": {a: {b: distance, ...}, ...}}

    ``histogram`` counts the detectors in 8 bins of 45 degrees **centred** on 0, 45, ..., 315: bin ``k``
    holds orientations within 22.5 degrees of ``45 * k`` (so 350 is in bin 0, 40 in bin 1).
    ``matching[a][b]`` (for every pair of different names) is, over model ``a``'s detectors, the mean angular
    distance (degrees, the short way round the circle, at most 180) to the nearest of model ``b``'s detectors:
    small when every orientation ``a`` has, ``b`` has too. ``None`` when ``a`` or ``b`` has no detector.

    Raises:
        ValueError: if ``entries`` is empty or two entries have the same name.
    """
    # BEGIN SOLUTION
    entries = list(entries)
    if not entries:
        raise ValueError("entries must hold at least one (name, model, layer) triple")
    names = [name for name, _, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"every model needs its own name, got {names}")

    def distance(x: float, y: float) -> float:
        d = abs(x - y) % 360
        return min(d, 360 - d)

    models = {}
    for name, model, layer in entries:
        report = curve_detector_report(model, layer, **kwargs)
        preferred = {int(c): float(d) for c, d in report["preferred_deg"].items()}
        histogram = [0] * 8
        for d in preferred.values():
            histogram[int(math.floor((d + 22.5) / 45)) % 8] += 1
        models[name] = {"layer": layer, "n_channels": len(report["channels"]),
                        "curve_detectors": list(report["curve_detectors"]), "preferred_deg": preferred,
                        "histogram": histogram, "quadrants": list(report["quadrants"])}
    matching = {}
    for a in names:
        matching[a] = {}
        for b in names:
            if b == a:
                continue
            src, dst = list(models[a]["preferred_deg"].values()), list(models[b]["preferred_deg"].values())
            matching[a][b] = (sum(min(distance(s, d) for d in dst) for s in src) / len(src)) if src and dst else None
    return {"models": models, "matching": matching}
    # STUB: raise NotImplementedError("exercise 04.compare_tuning_across_models: not started yet")
    # END SOLUTION
# <<< exercise: compare_tuning_across_models
