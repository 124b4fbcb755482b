"""Lesson 04's full-mode tuning stimuli: lesson 03's arcs for mixed3b scaled to a layer's receptive field
(mi_course.vision.circuits.field_stimuli), and the matching between models' curve detectors that
compare_tuning_across_models returns (orientation_matching), usable on reports made one model at a time."""

from collections import OrderedDict

import pytest
import torch

from mi_course.vision import circuits as C


def one_conv(kernel: int) -> torch.nn.Module:
    """A network whose only layer, ``conv``, sees ``kernel`` x ``kernel`` pixels."""
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(3, 2, kernel))).eval()


def test_a_91_pixel_field_gets_lesson_03s_stimuli_for_mixed3b():
    assert C.field_stimuli(one_conv(91), "conv") == {"radii": (10.0, 16.0, 24.0), "width": 3.0, "size": 112}
    assert {k: C.FIELD_STIMULI[k] for k in ("radii", "width", "size")} == C.field_stimuli(one_conv(91), "conv")


@pytest.mark.parametrize("kernel", [45, 51, 137])
def test_radii_and_canvas_scale_with_the_field_and_the_stroke_does_not(kernel):
    got = C.field_stimuli(one_conv(kernel), "conv")
    scale = kernel / 91
    assert got["radii"] == pytest.approx(tuple(r * scale for r in (10.0, 16.0, 24.0)), abs=0.05)
    assert got["size"] == round(112 * scale) and got["size"] > kernel  # the canvas holds the whole field
    assert got["width"] == 3.0


def test_the_lite_cnns_field_is_computed_by_arithmetic():
    from mi_course import load_model

    got = C.field_stimuli(load_model("vision", mode="lite"), "conv4")  # conv4 sees 44 px
    assert got == {"radii": (4.8, 7.7, 11.6), "width": 3.0, "size": 54}


def test_orientation_matching_is_the_mean_distance_to_the_nearest_detector():
    models = {"A": {"preferred_deg": {0: 0.0, 1: 90.0}}, "B": {"preferred_deg": {3: 350.0}},
              "C": {"preferred_deg": {}}}
    assert C.orientation_matching(models) == {"A": {"B": pytest.approx(55.0), "C": None},
                                              "B": {"A": pytest.approx(10.0), "C": None},
                                              "C": {"A": None, "B": None}}


def test_reports_made_one_model_at_a_time_match_like_one_comparison():
    from mi_course import load_model

    entries = [(role, load_model(role, mode="lite"), "conv4") for role in ("vision", "vision-b")]
    kwargs = dict(orientations=tuple(range(0, 360, 30)), radii=(10.0,))
    together = C.compare_tuning_across_models(entries, **kwargs)
    apart = {}
    for entry in entries:
        apart.update(C.compare_tuning_across_models([entry], **kwargs)["models"])
    assert apart == together["models"]
    assert C.orientation_matching(apart) == together["matching"]
