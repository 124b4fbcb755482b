# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 03, curve detectors: exercises.

Geometry (as in the whole course): pixel (row i, column j) has its centre at x = j + 0.5 - size / 2,
y = size / 2 - (i + 0.5), so the origin is the image centre and **y points up**; angles are in degrees,
counter-clockwise as seen on screen, 0 = pointing right, 90 = pointing up. A curve's *orientation* is the
direction it bulges towards (90 = an arch, 270 = a cup). Images are RGB in [0, 1], ``[3, size, size]`` or
``[batch, 3, size, size]``.

``layer_activations(model, images, layer)`` (given) returns the output of ``model``'s module named ``layer``
for ``images``, ``[batch, channels, h, w]`` on the CPU, with no gradients: it applies the model's input
scaling (lucent's InceptionV1 wants ``x * 255 - 117``) and stops the forward pass at the layer.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float

from mi_course.vision.activations import layer_activations  # noqa: F401 (for your answers)

ORIENTATIONS = tuple(range(0, 360, 5))        # curves: every 5 degrees around the circle
LINE_ORIENTATIONS = tuple(range(0, 180, 5))   # a straight segment repeats after 180 degrees
RADII = (6.0, 10.0, 14.0)
POLARITIES = ("dark", "light")                # dark ink on white, light ink on black
CURVATURES = (0.0, 1 / 40, 1 / 28, 1 / 20, 1 / 14, 1 / 10, 1 / 7, 1 / 5)


# >>> exercise: curve_stimulus
def curve_stimulus(orientation_deg: float, radius: float = 10.0, width: float = 2.5, size: int = 64,
                   polarity: str = "dark", span_deg: float = 90.0) -> Float[torch.Tensor, "3 size size"]:
    """An arc: ``span_deg`` degrees of a circle of ``radius`` pixels, drawn with a stroke ``width`` pixels wide,
    whose **midpoint is the image centre** and which **bulges towards** ``orientation_deg``.

    The circle's centre lies ``radius`` pixels from the image centre in the direction opposite to the
    orientation, at ``(-radius cos θ, -radius sin θ)`` (y up). The arc is the part of the circle within
    ``span_deg / 2`` degrees on either side of direction θ, seen from that centre. For every pixel centre
    ``(x, y)`` let ``d`` be its distance to the arc: inside the arc's angular range the distance to the circle,
    ``|hypot(x - cx, y - cy) - radius|``; outside it the distance to the nearer of the arc's two end points.
    The pixel's ink is ``clamp(width / 2 + 0.5 - d, 0, 1)`` (a one-pixel anti-aliasing ramp). ``"dark"``
    paints ``1 - ink`` (black on white), ``"light"`` paints ``ink`` (white on black).

    Returns a float32 tensor ``[3, size, size]`` in [0, 1], the three colour channels equal.

    Raises:
        ValueError: ``radius`` or ``width`` not a number > 0, ``size`` not an int >= 4, ``span_deg`` not in
            (0, 360], or ``polarity`` not ``"dark"`` / ``"light"``.
    """
    raise NotImplementedError("exercise 03.curve_stimulus: not started yet")
# <<< exercise: curve_stimulus


# >>> exercise: line_stimulus
def line_stimulus(orientation_deg: float, length: float = 16.0, width: float = 2.5, size: int = 64,
                  polarity: str = "dark") -> Float[torch.Tensor, "3 size size"]:
    """A straight segment of ``length`` pixels whose midpoint is the image centre, at ``orientation_deg``
    (0 = horizontal, 90 = vertical), drawn like :func:`curve_stimulus`: ``d`` is a pixel centre's distance
    to the segment (to its nearer end point beyond the ends), the ink ``clamp(width / 2 + 0.5 - d, 0, 1)``.

    Raises:
        ValueError: ``length`` or ``width`` not a number > 0, ``size`` not an int >= 4, a bad ``polarity``.
    """
    raise NotImplementedError("exercise 03.line_stimulus: not started yet")
# <<< exercise: line_stimulus


# >>> exercise: radial_tuning_curve
def radial_tuning_curve(model: torch.nn.Module, layer: str, channel: int | None = None,
                        orientations=ORIENTATIONS, radii=RADII, width: float = 2.5, size: int = 64,
                        polarities=POLARITIES) -> torch.Tensor:
    """A channel's radial tuning curve: how strongly it responds to a curve of each orientation.

    Entry ``k`` is the channel's largest response to the 90-degree arcs ``curve_stimulus(orientations[k], r,
    width, size, p)`` over every radius ``r`` in ``radii`` and polarity ``p`` in ``polarities``, where a
    channel's response to an image is its **maximum over spatial positions** (the curve may sit anywhere
    in the unit's view). Run the model once on the whole batch of stimuli (``layer_activations``).

    Returns ``[len(orientations)]`` for one ``channel``, or ``[channels, len(orientations)]`` (every
    channel of the layer) when ``channel`` is None.

    Raises:
        ValueError: ``channel`` is not None or an int in ``0 .. channels - 1``.
    """
    raise NotImplementedError("exercise 03.radial_tuning_curve: not started yet")
# <<< exercise: radial_tuning_curve


# >>> exercise: find_curve_detectors
def find_curve_detectors(model: torch.nn.Module, layer: str, min_peak_to_mean: float = 2.5,
                         max_half_width_deg: float = 60.0, min_line_ratio: float = 1.5,
                         orientations=ORIENTATIONS, radii=RADII, width: float = 2.5, size: int = 64,
                         polarities=POLARITIES) -> dict[int, float]:
    """The curve detectors of ``layer`` and their preferred orientations, ``{channel: degrees}`` in channel order.

    A channel is a curve detector when its radial tuning curve (``radial_tuning_curve`` with these
    ``orientations``, ``radii``, ``width``, ``size`` and ``polarities``)

    * is **peaked**: its peak is at least ``min_peak_to_mean`` times its mean over the orientations;
    * is **narrow**: its half-width is at most ``max_half_width_deg``, where the half-width is the share of
      orientations whose response is at least half the peak, times 180 (a curve above half its peak over a
      third of the circle has half-width 60);
    * prefers **curves to lines**: its peak is at least ``min_line_ratio`` times its best response to
      straight segments, ``line_stimulus(o, length, width, size, p)`` for every ``o`` in
      :data:`LINE_ORIENTATIONS`, every polarity, and lengths equal to the 90-degree arcs' (``pi / 2 * r`` for
      each ``r`` in ``radii``: the same amount of ink).

    A channel that never responds (peak 0) is not a detector. Its preferred orientation is where its tuning
    curve peaks (the first such orientation on ties), a float.
    """
    raise NotImplementedError("exercise 03.find_curve_detectors: not started yet")
# <<< exercise: find_curve_detectors


# >>> exercise: receptive_field
def receptive_field(layers) -> tuple[int, int, int]:
    """The receptive field of a unit after a chain of convolutions and pools, as ``(size, stride, offset)``.

    ``layers`` lists each layer from the input up, as ``(kernel, stride, padding)``. A unit at row ``i`` of
    the last layer's map sees input rows ``offset + stride * i`` to ``offset + stride * i + size - 1`` (the
    same for columns). Start from the input itself, a field of size 1, stride 1, offset 0; each layer
    widens the field by ``kernel - 1`` units of **the stride of the layers before it**, moves the offset back
    by its ``padding`` in those units, and then multiplies the stride by its own.

    Raises:
        ValueError: a layer is not three ints with ``kernel >= 1``, ``stride >= 1`` and ``padding >= 0``.
    """
    raise NotImplementedError("exercise 03.receptive_field: not started yet")
# <<< exercise: receptive_field


# >>> exercise: dataset_examples
def dataset_examples(model: torch.nn.Module, images: Float[torch.Tensor, "n 3 height width"], layer: str,
                     channel: int, k: int, rf: tuple[int, int, int], fill: float = 0.5):
    """The ``k`` images that excite ``channel`` of ``layer`` most, and what the firing unit saw in each.

    An image's score is the channel's **maximum over positions** in its map, so each image gives at most one
    example: the ``k`` images with the highest scores, best first (ties: the earlier image first). For each,
    the position (row, column) of that maximum in the map (the first in row-major order on ties), and the crop of
    the image to that unit's receptive field ``rf = (size, stride, offset)`` (see ``receptive_field``): rows
    ``offset + stride * row`` to ``offset + stride * row + size - 1`` and the same for columns, with ``fill``
    where the field leaves the image.

    Returns ``(values [k], indices [k] (long), positions [k, 2] (long; row, column), crops [k, 3, size, size])``.

    Raises:
        ValueError: ``k`` is not an int in ``1 .. n``; ``channel`` is not an int in ``0 .. channels - 1``.
    """
    raise NotImplementedError("exercise 03.dataset_examples: not started yet")
# <<< exercise: dataset_examples


# >>> exercise: curvature_tuning
def curvature_tuning(model: torch.nn.Module, layer: str, channel: int, curvatures=CURVATURES,
                     orientation_deg: float | None = None, length: float = 16.0, width: float = 2.5,
                     size: int = 64, polarities=POLARITIES) -> torch.Tensor:
    """How a channel's response changes with curvature, the length of the curve held fixed: ``[len(curvatures)]``.

    Curvature is 1 / radius, per pixel. For curvature ``κ > 0`` the stimulus is an arc of ``length`` pixels
    of a circle of radius ``1 / κ``, bulging towards ``orientation_deg``: ``curve_stimulus(orientation_deg,
    1 / κ, width, size, p, span_deg=...)`` with the span in **degrees** that makes the arc ``length`` long.
    For ``κ = 0`` it is the straight segment the arc tends to: its tangent at the midpoint,
    ``line_stimulus(orientation_deg + 90, length, width, size, p)``. Entry ``k`` is the channel's largest
    response (max over positions and ``polarities``) to curvature ``curvatures[k]``. ``orientation_deg``
    defaults to the channel's preferred orientation: the peak of its ``radial_tuning_curve`` over
    :data:`ORIENTATIONS` (the first on ties), with this ``width``, ``size`` and ``polarities``.

    Raises:
        ValueError: a curvature is negative, or so large that the arc would go round its circle more than
            once (span above 360 degrees); ``channel`` out of range.
    """
    raise NotImplementedError("exercise 03.curvature_tuning: not started yet")
# <<< exercise: curvature_tuning


# >>> exercise: robust_curve_detectors
def robust_curve_detectors(model: torch.nn.Module, layer: str) -> list[int]:
    """An investigation: which channels of ``layer`` are curve detectors in a way that survives a change of
    stimulus?

    A channel can meet the criteria of ``find_curve_detectors`` on the stimuli it was measured with and fail
    them when the curve is drawn a little differently. Return the channels (a list of ints) that are
    curve detectors robustly. The test measures your channels with the course's criteria (the defaults of
    ``find_curve_detectors``) on arcs and lines drawn by a **different renderer** (PIL), in 64 variations of
    its own that no module of the course holds (so not those of ``mi_course.vision.drawn``): other radii
    (5-25 px), strokes (1.5-4 px), light on dark, positions up to 8 px off centre, arc spans of 60-180
    degrees, no anti-aliasing, one change at a time and two or three at once. Every channel you name must pass
    in at least 60% of those cases, and every channel that passes in at least 95% of them must be in your
    list. The test runs your function on more than one model: the answer must come from measuring the model
    you are given. Keep it under 60 seconds per model on one CPU thread for the lite ``vision`` model (the
    reference solution takes under 10 s there; the test, which also draws and measures its own cases, allows
    240 s in all).
    """
    raise NotImplementedError("exercise 03.robust_curve_detectors: not started yet")
# <<< exercise: robust_curve_detectors
