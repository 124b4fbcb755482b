"""Canonical measurements on vision models: activations by layer name, radial tuning curves, curve
detectors, curvature tuning, and union over cases. Lesson 03/04 exercises are graded against these.
(The activation probe itself lives in :mod:`mi_course.vision.activations`, imported here.)

Conventions: images are RGB in [0, 1], (B, 3, H, W); a *layer* is a module name as in
``model.get_submodule(name)`` (e.g. ``"conv3"``), and its activations are that module's output,
(B, C, h, w) (or (B, C) for a linear layer). A channel's *response* to an image is its maximum over spatial
positions. Orientations follow :mod:`mi_course.vision.stimuli` (degrees, counter-clockwise on screen,
0 = right; a curve's orientation is the direction it bulges towards).

    report = curve_detector_report(model, "conv3")
    report["curve_detectors"], report["quadrants"]          # channel ids, quadrants their preferences fall in
"""

from __future__ import annotations

from functools import lru_cache

import torch

from mi_course.vision.activations import channel_responses, check_images, get_module, layer_activations
from mi_course.vision.stimuli import POLARITIES, arc_length, curvature_stimulus, curve_stimulus, line_stimulus

__all__ = [
    "ORIENTATIONS", "LINE_ORIENTATIONS", "RADII", "WIDTH", "SIZE", "THRESHOLDS", "STRETCH_THRESHOLDS",
    "CURVATURES", "CURVE_LENGTH",
    "tuning_curves", "radial_tuning_curve", "line_responses", "curvature_tuning", "tuning_statistics",
    "curve_detector_report", "find_curve_detectors", "union_over_cases",
    # the activation probe, from mi_course.vision.activations
    "channel_responses", "check_images", "get_module", "layer_activations",
]

ORIENTATIONS = tuple(range(0, 360, 5))        # curves: every 5 degrees around the circle
LINE_ORIENTATIONS = tuple(range(0, 180, 5))   # lines have period 180
RADII = (6.0, 10.0, 14.0)
WIDTH = 2.5
SIZE = 64
# a channel is a curve detector when all three hold (the course's criterion) ...
THRESHOLDS = {"min_peak_to_mean": 2.5, "max_half_width_deg": 60.0, "min_line_ratio": 1.5}
# ... and a clean one when these stricter ones hold
STRETCH_THRESHOLDS = {"min_peak_to_mean": 3.0, "max_half_width_deg": 45.0, "min_line_ratio": 2.0}


# ------------------------------------------------------------------ activations
# (they live in mi_course.vision.activations, which scales InceptionV1's input and stops at the layer read;
# imported here under their old names)

_check_images = check_images
_module = get_module


# ------------------------------------------------------------------ tuning curves

def _float_tuple(name, values):
    try:
        values = tuple(float(v) for v in values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must not be empty")
    return values


def _check_polarities(polarities):
    polarities = (polarities,) if isinstance(polarities, str) else tuple(polarities)
    if not polarities or any(p not in POLARITIES for p in polarities):
        raise ValueError(f"polarities must be a non-empty subset of {POLARITIES}, got {polarities!r}")
    return polarities


@lru_cache(maxsize=8)
def _curve_batch(orientations, radii, width, size, polarities) -> torch.Tensor:
    return torch.stack([curve_stimulus(o, r, width, size, p) for o in orientations for r in radii
                        for p in polarities])


@lru_cache(maxsize=8)
def _line_batch(orientations, lengths, width, size, polarities) -> torch.Tensor:
    return torch.stack([line_stimulus(o, n, width, size, p) for o in orientations for n in lengths
                        for p in polarities])


def tuning_curves(model, layer: str, orientations=ORIENTATIONS, radii=RADII, width: float = WIDTH,
                  size: int = SIZE, polarities=POLARITIES) -> torch.Tensor:
    """Radial tuning curves of every channel of ``layer``: (C, len(orientations)). Entry [c, k] is
    channel c's largest response (max over spatial positions, ``radii`` and ``polarities``) to the 90-degree
    arcs of orientation ``orientations[k]`` drawn through the image centre by
    :func:`~mi_course.vision.stimuli.curve_stimulus`."""
    orientations, radii = _float_tuple("orientations", orientations), _float_tuple("radii", radii)
    polarities = _check_polarities(polarities)
    stim = _curve_batch(orientations, radii, float(width), int(size), polarities)
    resp = channel_responses(model, stim, layer)                       # (O * R * P, C)
    return resp.view(len(orientations), len(radii) * len(polarities), -1).amax(1).T.contiguous()


def radial_tuning_curve(model, layer: str, channel: int, orientations=ORIENTATIONS, radii=RADII,
                        width: float = WIDTH, size: int = SIZE, polarities=POLARITIES) -> torch.Tensor:
    """One channel's radial tuning curve, (len(orientations),): see :func:`tuning_curves`."""
    curves = tuning_curves(model, layer, orientations, radii, width, size, polarities)
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < len(curves):
        raise ValueError(f"channel must be an int in [0, {len(curves)}) for layer {layer!r}, got {channel!r}")
    return curves[channel]


def line_responses(model, layer: str, orientations=LINE_ORIENTATIONS, radii=RADII, width: float = WIDTH,
                   size: int = SIZE, polarities=POLARITIES) -> torch.Tensor:
    """Each channel's best response to straight segments through the image centre, (C,): max over
    ``orientations``, ``polarities`` and lengths equal to the 90-degree arc lengths of ``radii`` (the same
    ink as the curve stimuli)."""
    orientations, radii = _float_tuple("orientations", orientations), _float_tuple("radii", radii)
    lengths = tuple(arc_length(r) for r in radii)
    stim = _line_batch(orientations, lengths, float(width), int(size), _check_polarities(polarities))
    return channel_responses(model, stim, layer).amax(0)


# curvature tuning: arcs of one length, from straight (0) to tight (radius 5 px)
CURVATURES = (0.0, 1 / 40, 1 / 28, 1 / 20, 1 / 14, 1 / 10, 1 / 7, 1 / 5)
CURVE_LENGTH = 16.0


@lru_cache(maxsize=8)
def _curvature_batch(orientation, curvatures, length, width, size, polarities) -> torch.Tensor:
    return torch.stack([curvature_stimulus(orientation, k, length, width, size, p) for k in curvatures
                        for p in polarities])


def curvature_tuning(model, layer: str, channel: int, curvatures=CURVATURES, orientation_deg: float | None = None,
                     length: float = CURVE_LENGTH, width: float = WIDTH, size: int = SIZE,
                     polarities=POLARITIES) -> torch.Tensor:
    """One channel's response to arcs of the same ``length`` and growing curvature, (len(curvatures),).

    Entry k is the channel's largest response (max over positions and ``polarities``) to
    :func:`~mi_course.vision.stimuli.curvature_stimulus` ``(orientation_deg, curvatures[k], length)``:
    curvature 0 is the straight segment (the arc's tangent), 1/r an arc of radius r. ``orientation_deg``
    defaults to the channel's preferred orientation, the peak of its :func:`radial_tuning_curve` (the first
    one on ties)."""
    curvatures = _float_tuple("curvatures", curvatures)
    if any(k < 0 for k in curvatures):
        raise ValueError(f"curvatures must be >= 0 (1 / radius, per pixel), got {curvatures}")
    polarities = _check_polarities(polarities)
    if orientation_deg is None:  # (this checks the channel too)
        curve = radial_tuning_curve(model, layer, channel, width=width, size=size, polarities=polarities)
        orientation_deg = ORIENTATIONS[int(curve.argmax())]
    stim = _curvature_batch(float(orientation_deg), curvatures, float(length), float(width), int(size), polarities)
    resp = channel_responses(model, stim, layer)
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < resp.shape[1]:
        raise ValueError(f"channel must be an int in [0, {resp.shape[1]}) for layer {layer!r}, got {channel!r}")
    return resp[:, channel].view(len(curvatures), len(polarities)).amax(1)


def tuning_statistics(curves: torch.Tensor, orientations=ORIENTATIONS) -> dict[str, torch.Tensor]:
    """Peak, mean, peak/mean, half-width and preferred orientation of tuning curves (C, O) (or one (O,)).

    half-width (degrees) = (share of orientations whose response is >= peak / 2) x 180, so a curve that
    is above half its peak over a third of the circle has half-width 60. Channels that never respond get
    peak_to_mean 0 and half-width 180."""
    orientations = torch.tensor(_float_tuple("orientations", orientations))
    if curves.dim() == 1:
        curves = curves[None]
    if curves.dim() != 2 or curves.shape[1] != len(orientations):
        raise ValueError(f"curves must have shape (C, {len(orientations)}), got {tuple(curves.shape)}")
    peak, arg = curves.max(1)
    mean = curves.mean(1)
    alive = peak > 1e-6
    ratio = torch.where(alive, peak / mean.clamp_min(1e-12), torch.zeros_like(peak))
    share = (curves >= peak[:, None] / 2).float().mean(1)
    half = torch.where(alive, share * 180.0, torch.full_like(peak, 180.0))
    return {"peak": peak, "mean": mean, "peak_to_mean": ratio, "half_width_deg": half,
            "preferred_deg": orientations[arg], "alive": alive}


def _passes(ratio, half, line_ratio, alive, t):
    return alive & (ratio >= t["min_peak_to_mean"]) & (half <= t["max_half_width_deg"]) & \
        (line_ratio >= t["min_line_ratio"])


def curve_detector_report(model, layer: str, thresholds: dict | None = None, stretch: dict | None = None,
                          orientations=ORIENTATIONS, radii=RADII, width: float = WIDTH, size: int = SIZE,
                          polarities=POLARITIES) -> dict:
    """Which channels of ``layer`` are curve detectors, and how cleanly (a JSON-serializable dict).

    A channel counts when its radial tuning curve has peak >= ``min_peak_to_mean`` x its mean, half-width
    <= ``max_half_width_deg`` and peak >= ``min_line_ratio`` x its best response to straight segments
    (defaults :data:`THRESHOLDS`; ``stretch`` defaults to :data:`STRETCH_THRESHOLDS`). Returns
    ``{"layer", "thresholds", "stretch_thresholds", "channels": [per-channel dicts with peak, mean,
    peak_to_mean, half_width_deg, line_ratio, preferred_deg, quadrant, curve_detector, stretch], 
    "curve_detectors": [ids], "preferred_deg": {id: deg}, "quadrants": [quadrants covered, 0-3],
    "stretch_detectors": [ids], "stretch_quadrants": [...]}``; quadrant q covers [90q, 90q + 90) degrees.
    """
    t = {**THRESHOLDS, **(thresholds or {})}
    s = {**STRETCH_THRESHOLDS, **(stretch or {})}
    for name, d in (("thresholds", t), ("stretch", s)):
        if set(d) != set(THRESHOLDS):
            raise ValueError(f"{name} keys must be {sorted(THRESHOLDS)}, got {sorted(d)}")
    curves = tuning_curves(model, layer, orientations, radii, width, size, polarities)
    stats = tuning_statistics(curves, orientations)
    lines = line_responses(model, layer, radii=radii, width=width, size=size, polarities=polarities)
    line_ratio = torch.where(stats["alive"], stats["peak"] / lines.clamp_min(1e-12), torch.zeros_like(lines))
    ok = _passes(stats["peak_to_mean"], stats["half_width_deg"], line_ratio, stats["alive"], t)
    clean = _passes(stats["peak_to_mean"], stats["half_width_deg"], line_ratio, stats["alive"], s)
    quadrant = (stats["preferred_deg"] // 90).long() % 4
    channels = [{"channel": c, "peak": round(stats["peak"][c].item(), 5), "mean": round(stats["mean"][c].item(), 5),
                 "peak_to_mean": round(stats["peak_to_mean"][c].item(), 4),
                 "half_width_deg": round(stats["half_width_deg"][c].item(), 2),
                 "line_ratio": round(line_ratio[c].item(), 4), "preferred_deg": stats["preferred_deg"][c].item(),
                 "quadrant": quadrant[c].item(), "curve_detector": bool(ok[c]), "stretch": bool(clean[c])}
                for c in range(len(curves))]
    detectors = [c for c in range(len(curves)) if ok[c]]
    stretch_ids = [c for c in range(len(curves)) if clean[c]]
    return {"layer": layer, "thresholds": t, "stretch_thresholds": s,
            "stimuli": {"orientations_deg": [min(orientations), max(orientations), len(orientations)],
                        "radii": list(radii), "width": width, "size": size, "polarities": list(polarities)},
            "channels": channels, "curve_detectors": detectors,
            "preferred_deg": {c: channels[c]["preferred_deg"] for c in detectors},
            "quadrants": sorted({channels[c]["quadrant"] for c in detectors}),
            "stretch_detectors": stretch_ids,
            "stretch_quadrants": sorted({channels[c]["quadrant"] for c in stretch_ids})}


def find_curve_detectors(model, layer: str, **kwargs) -> list[int]:
    """The channel ids of ``layer`` that :func:`curve_detector_report` counts as curve detectors."""
    return curve_detector_report(model, layer, **kwargs)["curve_detectors"]


# ------------------------------------------------------------------ union over cases

def union_over_cases(model, layer: str, prev_layer: str, images_a: torch.Tensor, images_b: torch.Tensor,
                     images_other: torch.Tensor | None = None, min_both: float = 0.5,
                     min_case_ratio: float = 3.0, top_k: int = 3, min_selectivity: float = 0.0) -> dict:
    """Units of ``layer`` that respond to both cases of a two-sided class and are fed by case-specific units.

    A unit's response to a case is its response (max over positions) averaged over that case's images.
    Unit u of ``layer`` is a *union* unit when

    * min(r_a, r_b) >= ``min_both`` x max(r_a, r_b) (it responds to both cases), and, when
      ``images_other`` is given, mean(r_a, r_b) >= ``min_selectivity`` x its mean response to those;
    * among its ``top_k`` inputs from ``prev_layer`` with the largest positive total weight (the weight
      ``model.<layer>.weight[u, i]`` summed over kernel positions) there is at least one unit preferring case
      a by >= ``min_case_ratio`` (r_a >= ratio x r_b) and one preferring case b likewise.

    ``layer`` must be directly fed by ``prev_layer`` (its weight has one input per ``prev_layer`` channel).
    Returns a JSON-serializable dict: ``units`` (per-unit: r_a, r_b, both_ratio, selectivity, top inputs
    with their weights and case ratios, union flag), ``union_units`` (ids), ``case_units`` (prev-layer
    ids preferring a, and b), ``prev_responses`` (every prev-layer unit's r_a and r_b) and the parameters.
    """
    if not 0 < min_both <= 1 or min_case_ratio < 1 or top_k < 1:
        raise ValueError(f"need 0 < min_both <= 1, min_case_ratio >= 1, top_k >= 1; got {min_both}, "
                         f"{min_case_ratio}, {top_k}")
    weight = getattr(_module(model, layer), "weight", None)
    if weight is None or weight.dim() not in (2, 4):
        raise ValueError(f"layer {layer!r} must be a conv or linear module with a weight")
    total = weight.detach().float().cpu()
    total = total.sum((2, 3)) if total.dim() == 4 else total              # (out, in)
    ra, rb = (channel_responses(model, imgs, layer).mean(0) for imgs in (images_a, images_b))
    pa, pb = (channel_responses(model, imgs, prev_layer).mean(0) for imgs in (images_a, images_b))
    if total.shape != (len(ra), len(pa)):
        raise ValueError(f"{layer!r} weight has shape {tuple(weight.shape)}: it is not fed by {prev_layer!r} "
                         f"({len(pa)} channels)")
    other = channel_responses(model, images_other, layer).mean(0) if images_other is not None else None
    eps = 1e-6
    prefers_a = pa >= min_case_ratio * pb.clamp_min(eps)
    prefers_b = pb >= min_case_ratio * pa.clamp_min(eps)
    prefers_a &= pa > eps
    prefers_b &= pb > eps
    units, union_ids = [], []
    for u in range(len(ra)):
        hi, lo = max(ra[u].item(), rb[u].item()), min(ra[u].item(), rb[u].item())
        both = lo / hi if hi > eps else 0.0
        sel = ((ra[u] + rb[u]).item() / 2 / max(other[u].item(), eps)) if other is not None else None
        w, idx = total[u].sort(descending=True)
        top = [(int(i), float(x)) for i, x in zip(idx[:top_k], w[:top_k]) if x > 0]
        inputs = [{"unit": i, "weight": round(x, 5), "r_a": round(pa[i].item(), 5), "r_b": round(pb[i].item(), 5),
                   "prefers": "a" if prefers_a[i] else "b" if prefers_b[i] else None} for i, x in top]
        fed = {x["prefers"] for x in inputs} >= {"a", "b"}
        is_union = hi > eps and both >= min_both and fed and (sel is None or sel >= min_selectivity)
        units.append({"unit": u, "r_a": round(ra[u].item(), 5), "r_b": round(rb[u].item(), 5),
                      "both_ratio": round(both, 4), "selectivity": None if sel is None else round(sel, 4),
                      "top_inputs": inputs, "union": bool(is_union)})
        if is_union:
            union_ids.append(u)
    return {"layer": layer, "prev_layer": prev_layer, "min_both": min_both, "min_case_ratio": min_case_ratio,
            "top_k": top_k, "min_selectivity": min_selectivity, "units": units, "union_units": union_ids,
            "case_units": {"a": prefers_a.nonzero().flatten().tolist(), "b": prefers_b.nonzero().flatten().tolist()},
            "prev_responses": {"a": [round(v, 5) for v in pa.tolist()], "b": [round(v, 5) for v in pb.tolist()]}}
