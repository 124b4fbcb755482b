"""Canonical synthetic stimuli: arcs (curves) and straight segments, drawn anti-aliased.

Geometry convention (used by every function here, by the tuning measurements and by the lessons):

* pixel (row i, column j) has its centre at x = j + 0.5, y = i + 0.5 (y grows downwards in the array);
* angles are in degrees, counter-clockwise **as seen on screen**, 0 = pointing right, 90 = pointing up;
* the stimulus is centred on the image centre (size / 2, size / 2), so it crosses the middle of the image.

``curve_stimulus(orientation, radius)`` is a 90-degree arc of a circle of that radius whose *midpoint* lies
on the image centre and whose circle centre lies ``radius`` pixels away in the direction opposite to
``orientation``: orientation is the direction the arc bulges towards (90 = an arch, "∩"; 270 = a cup,
"∪"; 0 = ")" bulging right; 180 = "(" bulging left). Orientations are periodic with period 360.

``line_stimulus(orientation, length)`` is a straight segment through the image centre; its orientation is
periodic with period 180.

``curvature_stimulus(orientation, curvature, length)`` holds the *length* fixed and varies the curvature
(1 / radius, per pixel): an arc of that length bulging towards ``orientation``, and at curvature 0 the
straight segment it tends to, its tangent at the midpoint (orientation + 90 degrees).

``polarity="dark"`` (default) draws a black stroke on white, ``"light"`` a white stroke on black.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mi_course.checks import int_at_least, number_above

POLARITIES = ("dark", "light")


def _check_angle(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of degrees, got {value!r}")
    return float(value)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each (size, size), with y pointing **up** and the origin at the
    image centre: the frame in which stimuli are defined."""
    size = int_at_least("size", size, 4, "the image is size x size pixels")
    c = np.arange(size) + 0.5 - size / 2
    return c[None, :].repeat(size, 0), -c[:, None].repeat(size, 1)


def stroke_alpha(distance: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a stroke of ``width`` pixels, given each pixel's distance to its
    centre line (a one-pixel linear ramp at the edge)."""
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def segment_distance(x, y, x0, y0, x1, y1) -> np.ndarray:
    """Distance from points (x, y) to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def arc_distance(x, y, cx, cy, radius, start_deg, span_deg) -> np.ndarray:
    """Distance from points (x, y) to the arc of the circle (cx, cy, radius) from angle ``start_deg``
    counter-clockwise over ``span_deg`` degrees (y up)."""
    phi = np.degrees(np.arctan2(y - cy, x - cx))
    inside = np.mod(phi - start_deg, 360.0) <= span_deg
    on_circle = np.abs(np.hypot(x - cx, y - cy) - radius)
    ends = []
    for a in (start_deg, start_deg + span_deg):
        ex, ey = cx + radius * math.cos(math.radians(a)), cy + radius * math.sin(math.radians(a))
        ends.append(np.hypot(x - ex, y - ey))
    return np.where(inside, on_circle, np.minimum(*ends))


def _paint(alpha: np.ndarray, polarity: str) -> torch.Tensor:
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    gray = 1.0 - alpha if polarity == "dark" else alpha
    return torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None].repeat(3, 1, 1)


def curve_stimulus(orientation_deg: float, radius: float = 10.0, width: float = 2.5, size: int = 64,
                   polarity: str = "dark", span_deg: float = 90.0) -> torch.Tensor:
    """A ``span_deg``-degree arc (default 90) of a circle of ``radius`` pixels, stroke ``width`` pixels,
    whose midpoint is the image centre and which bulges towards ``orientation_deg`` (see the module doc).

    Returns an RGB image in [0, 1], shape (3, size, size), float32.
    """
    orientation = _check_angle("orientation_deg", orientation_deg)
    radius = number_above("radius", radius, 0)
    width = number_above("width", width, 0)
    span = number_above("span_deg", span_deg, 0)
    if span > 360:
        raise ValueError(f"span_deg must be in (0, 360], got {span_deg!r}")
    x, y = pixel_grid(size)
    theta = math.radians(orientation)
    cx, cy = -radius * math.cos(theta), -radius * math.sin(theta)
    d = arc_distance(x, y, cx, cy, radius, orientation - span / 2, span)
    return _paint(stroke_alpha(d, width), polarity)


def line_stimulus(orientation_deg: float, length: float = 16.0, width: float = 2.5, size: int = 64,
                  polarity: str = "dark") -> torch.Tensor:
    """A straight segment of ``length`` pixels through the image centre at ``orientation_deg`` (0 =
    horizontal, 90 = vertical; period 180), stroke ``width`` pixels.

    Returns an RGB image in [0, 1], shape (3, size, size), float32.
    """
    orientation = _check_angle("orientation_deg", orientation_deg)
    length = number_above("length", length, 0)
    width = number_above("width", width, 0)
    x, y = pixel_grid(size)
    ux, uy = math.cos(math.radians(orientation)) * length / 2, math.sin(math.radians(orientation)) * length / 2
    return _paint(stroke_alpha(segment_distance(x, y, -ux, -uy, ux, uy), width), polarity)


def arc_length(radius: float, span_deg: float = 90.0) -> float:
    """Length in pixels of an arc: the segment length that matches a curve stimulus in ink."""
    return math.radians(span_deg) * radius


def curvature_stimulus(orientation_deg: float, curvature: float, length: float = 16.0, width: float = 2.5,
                       size: int = 64, polarity: str = "dark") -> torch.Tensor:
    """An arc of ``length`` pixels and ``curvature`` (1 / radius, per pixel; >= 0) whose midpoint is the
    image centre and which bulges towards ``orientation_deg``: ``curve_stimulus(orientation_deg, 1 /
    curvature, width, size, polarity, span_deg=degrees(length * curvature))``. Curvature 0 is the straight
    segment of that length through the centre at ``orientation_deg + 90`` (the arc's tangent at its
    midpoint). Raises ValueError when the arc would be longer than its circle (span above 360 degrees).

    Returns an RGB image in [0, 1], shape (3, size, size), float32.
    """
    orientation = _check_angle("orientation_deg", orientation_deg)
    curvature = number_above("curvature", curvature, 0, or_equal=True)
    length = number_above("length", length, 0)
    if curvature == 0:
        return line_stimulus(orientation + 90.0, length, width, size, polarity)
    span = math.degrees(length * curvature)
    if span > 360:
        raise ValueError(f"an arc of length {length:g} at curvature {curvature:g} would span {span:.0f} degrees, "
                         f"more than its circle: use a curvature <= {2 * math.pi / length:.4g}")
    return curve_stimulus(orientation, 1.0 / curvature, width, size, polarity, span)
