# Your answers go in this file: the notebook's %%exercise cells write them here.
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
    raise NotImplementedError("exercise 04.expanded_weights: not started yet")
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
    raise NotImplementedError("exercise 04.top_inputs: not started yet")
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
    raise NotImplementedError("exercise 04.equivariance_map: not started yet")
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
    raise NotImplementedError("exercise 04.union_over_cases: not started yet")
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
    raise NotImplementedError("exercise 04.polysemanticity_report: not started yet")
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
    raise NotImplementedError("exercise 04.polysemantic_unit: not started yet")
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
    raise NotImplementedError("exercise 04.compare_tuning_across_models: not started yet")
# <<< exercise: compare_tuning_across_models
