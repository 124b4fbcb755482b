"""Curves and lines drawn a second way, with PIL, to test that a curve detector is not a detector of the
course's own renderer (:mod:`mi_course.vision.stimuli`).

The geometry follows the stimuli's convention (orientation = the direction the arc bulges towards, degrees
counter-clockwise on screen; the arc's midpoint at the image centre plus ``offset``), but every pixel comes
from PIL's own rasterizer: anti-aliased by drawing at ``SUPERSAMPLE`` times the size and averaging down, or
aliased (``antialias=False``: the same coverage thresholded at one half, hard 0/1 pixels).

:func:`robustness_report` measures the course's criteria (:data:`~mi_course.vision.tuning.THRESHOLDS`) for
chosen channels under one variation at a time (:data:`VARIATIONS`): radii 5-25 px, strokes 1.5-4 px, both
polarities, offsets up to 8 px, arc spans 60-180 degrees, with and without anti-aliasing; and
:data:`COMBINED` cases that change several at once.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from mi_course.vision.tuning import THRESHOLDS, _passes, channel_responses, tuning_statistics

SUPERSAMPLE = 8
# the canonical case, and each variation changes one thing about it
CANONICAL = {"radius": 10.0, "width": 2.5, "polarity": "dark", "offset": (0.0, 0.0), "span": 90.0,
             "antialias": True}
VARIATIONS = {
    "canonical": {},
    **{f"radius {r:g}": {"radius": r} for r in (5.0, 7.0, 15.0, 20.0, 25.0)},
    **{f"stroke {w:g}": {"width": w} for w in (1.5, 4.0)},
    "light on dark": {"polarity": "light"},
    **{f"offset {dx:+g},{dy:+g}": {"offset": (dx, dy)} for dx, dy in ((8, 0), (0, -8), (-6, 6))},
    **{f"span {s:g}": {"span": s} for s in (60.0, 180.0)},
    "aliased": {"antialias": False},
}
# ... and some that change several things at once
COMBINED = {
    "radius 20, stroke 1.5, light, aliased": {"radius": 20.0, "width": 1.5, "polarity": "light", "antialias": False},
    "radius 6, stroke 4, offset -8,+8": {"radius": 6.0, "width": 4.0, "offset": (-8.0, 8.0)},
    "radius 15, span 150, light, offset +5,-5": {"radius": 15.0, "span": 150.0, "polarity": "light",
                                                 "offset": (5.0, -5.0)},
    "radius 25, span 60, stroke 3": {"radius": 25.0, "span": 60.0, "width": 3.0},
}
ORIENTATIONS = tuple(range(0, 360, 10))
LINE_ORIENTATIONS = tuple(range(0, 180, 10))


def _canvas(size: int, polarity: str):
    if polarity not in ("dark", "light"):
        raise ValueError(f"polarity must be 'dark' or 'light', got {polarity!r}")
    scale = size * SUPERSAMPLE
    return Image.new("L", (scale, scale), 0), scale  # ink is drawn as 255 on 0, painted at the end


def _finish(ink: Image.Image, size: int, polarity: str, antialias: bool) -> torch.Tensor:
    coverage = np.asarray(ink.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    if not antialias:
        coverage = (coverage >= 0.5).astype(np.float32)
    gray = 1.0 - coverage if polarity == "dark" else coverage
    return torch.from_numpy(np.ascontiguousarray(gray))[None].repeat(3, 1, 1)


def drawn_curve(orientation_deg: float, radius: float = 10.0, width: float = 2.5, size: int = 64,
                polarity: str = "dark", span_deg: float = 90.0, offset=(0.0, 0.0),
                antialias: bool = True) -> torch.Tensor:
    """An arc drawn by PIL: ``span_deg`` degrees of a circle of ``radius`` px, stroke ``width`` px, midpoint at
    the image centre moved by ``offset`` = (right, up) px, bulging towards ``orientation_deg``. (3, size, size)."""
    ink, scale = _canvas(size, polarity)
    s = SUPERSAMPLE
    theta = math.radians(orientation_deg)
    # the midpoint, in pixels with y down; the circle's centre lies radius px behind it
    mx, my = size / 2 + offset[0], size / 2 - offset[1]
    cx, cy = mx - radius * math.cos(theta), my + radius * math.sin(theta)
    outer, inner = radius + width / 2, max(radius - width / 2, 0.0)
    box = [(cx - outer) * s, (cy - outer) * s, (cx + outer) * s, (cy + outer) * s]
    # PIL measures angles clockwise from 3 o'clock (y down): the bulge direction is at -orientation
    start, end = -orientation_deg - span_deg / 2, -orientation_deg + span_deg / 2
    ImageDraw.Draw(ink).arc(box, start, end, fill=255, width=max(1, round((outer - inner) * s)))
    return _finish(ink, size, polarity, antialias)


def drawn_line(orientation_deg: float, length: float = 16.0, width: float = 2.5, size: int = 64,
               polarity: str = "dark", offset=(0.0, 0.0), antialias: bool = True) -> torch.Tensor:
    """A straight segment drawn by PIL through the image centre moved by ``offset``, (3, size, size)."""
    ink, scale = _canvas(size, polarity)
    s = SUPERSAMPLE
    phi = math.radians(orientation_deg)
    mx, my = size / 2 + offset[0], size / 2 - offset[1]
    dx, dy = math.cos(phi) * length / 2, -math.sin(phi) * length / 2
    ImageDraw.Draw(ink).line([((mx - dx) * s, (my - dy) * s), ((mx + dx) * s, (my + dy) * s)], fill=255,
                             width=max(1, round(width * s)))
    return _finish(ink, size, polarity, antialias)


@lru_cache(maxsize=64)
def _stimuli(case: tuple, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = dict(case)
    curves = torch.stack([drawn_curve(o, c["radius"], c["width"], size, c["polarity"], c["span"], c["offset"],
                                      c["antialias"]) for o in ORIENTATIONS])
    length = math.radians(c["span"]) * c["radius"]  # the same ink as the arc
    lines = torch.stack([drawn_line(o, length, c["width"], size, c["polarity"], c["offset"], c["antialias"])
                         for o in LINE_ORIENTATIONS])
    return curves, lines


def variation_statistics(model, layer: str, channels, variation: dict, size: int = 64) -> dict:
    """The course's tuning statistics of ``channels`` on PIL-drawn stimuli of one variation of the canonical
    case: ``{"peak_to_mean", "half_width_deg", "line_ratio", "preferred_deg", "passes"}``, one entry per channel."""
    case = {**CANONICAL, **variation}
    curves, lines = _stimuli(tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                                          for k, v in case.items())), size)
    channels = list(channels)
    curve_resp = channel_responses(model, curves, layer)[:, channels].T          # (C, O)
    line_resp = channel_responses(model, lines, layer)[:, channels].amax(0)       # (C,)
    stats = tuning_statistics(curve_resp, ORIENTATIONS)
    line_ratio = torch.where(stats["alive"], stats["peak"] / line_resp.clamp_min(1e-12), torch.zeros_like(line_resp))
    passes = _passes(stats["peak_to_mean"], stats["half_width_deg"], line_ratio, stats["alive"], THRESHOLDS)
    return {"peak_to_mean": stats["peak_to_mean"], "half_width_deg": stats["half_width_deg"],
            "line_ratio": line_ratio, "preferred_deg": stats["preferred_deg"], "passes": passes}


def robustness_report(model, layer: str, channels, variations: dict | None = None, size: int = 64) -> dict:
    """For each channel, which variations it meets the course's criteria in, and its preferred orientation in
    each: ``{channel: {"passed": [names], "failed": [names], "share": float, "preferred_deg": {name: deg}}}``."""
    variations = VARIATIONS if variations is None else variations
    channels = list(channels)
    out = {c: {"passed": [], "failed": [], "preferred_deg": {}} for c in channels}
    for name, variation in variations.items():
        stats = variation_statistics(model, layer, channels, variation, size)
        for i, c in enumerate(channels):
            out[c]["passed" if stats["passes"][i] else "failed"].append(name)
            out[c]["preferred_deg"][name] = float(stats["preferred_deg"][i])
    for c in channels:
        out[c]["share"] = len(out[c]["passed"]) / len(variations)
    return out
