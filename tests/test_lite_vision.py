"""The lite vision organisms ``vision`` and ``vision-b`` and the measurements in mi_course.vision.

The checkpoint tests load the shipped models through the registry and re-measure what their cards claim
with the same code the training script used (mi_course.vision.tuning); the unit tests pin that code and the
stimuli and data generator down on small hand-made inputs.
"""

import math

import pytest
import torch
from torch import nn

import mi_course
from mi_course.models.checkpoints import read_manifest
from mi_course.models.registry import lite_shipped
from mi_course.organisms import images
from mi_course.vision.stimuli import curve_stimulus, line_stimulus, pixel_grid
from mi_course.vision.tuning import (
    ORIENTATIONS,
    curve_detector_report,
    layer_activations,
    radial_tuning_curve,
    tuning_statistics,
    union_over_cases,
)

# ---------------------------------------------------------------- stimuli


def _ink(img):
    return 1 - img[0] if img[0, 0, 0] > 0.5 else img[0]


def _ink_centroid(img):
    x, y = pixel_grid(img.shape[-1])
    ink = _ink(img).numpy()
    return (ink * x).sum() / ink.sum(), (ink * y).sum() / ink.sum()


@pytest.mark.parametrize("orientation", [0, 90, 135, 270])
def test_curve_stimulus_bulges_towards_its_orientation(orientation):
    img = curve_stimulus(orientation, radius=10, width=2, size=48)
    assert img.shape == (3, 48, 48) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1 and torch.equal(img[0], img[1])
    # the arc's midpoint is the image centre and the arc curves back from it: the ink's centroid lies
    # radius * (1 - sin(45) / (pi / 4)) ~ 0.1 radius from the centre, towards the circle's centre
    cx, cy = _ink_centroid(img)
    th = math.radians(orientation)
    assert cx * math.cos(th) + cy * math.sin(th) < -0.5, "the ink lies behind the bulge"
    ink = _ink(img)
    assert ink[24, 24] > 0.5 or ink[23, 23] > 0.5 or ink[23, 24] > 0.5 or ink[24, 23] > 0.5, \
        "the arc passes through the centre"


def test_polarity_and_lines():
    dark, light = curve_stimulus(30, polarity="dark"), curve_stimulus(30, polarity="light")
    assert torch.allclose(dark, 1 - light)
    line = line_stimulus(0, length=20, width=2, size=32)
    ink = 1 - line[0]
    assert ink[15:17].sum() > 0.9 * ink.sum(), "orientation 0 is a horizontal segment through the centre"
    assert torch.allclose(line_stimulus(10, size=32), line_stimulus(190, size=32), atol=1e-5), "period 180"


@pytest.mark.parametrize("call, match", [
    (lambda: curve_stimulus(0, radius=-1), "radius must be"),
    (lambda: curve_stimulus(0, width=0), "width must be"),
    (lambda: curve_stimulus(0, size=2), "size must be an int"),
    (lambda: curve_stimulus(0, size=32.0), "size must be an int"),
    (lambda: curve_stimulus(float("nan")), "orientation_deg must be"),
    (lambda: curve_stimulus(0, polarity="grey"), "polarity must be one of"),
    (lambda: curve_stimulus(0, span_deg=400), "span_deg must be"),
    (lambda: line_stimulus("up"), "orientation_deg must be"),
    (lambda: line_stimulus(0, length=0), "length must be"),
])
def test_bad_stimulus_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- tuning on hand-built models


class OrientedDetector(nn.Module):
    """One channel whose kernel is the ink of a curve stimulus: it prefers that orientation."""

    def __init__(self, orientation, radius=8.0):
        super().__init__()
        ink = 1 - curve_stimulus(orientation, radius=radius, width=2.5, size=21)[0]
        kernel = -(ink - ink.mean())                   # dark ink on white: respond to darkness along the arc
        self.conv = nn.Conv2d(3, 1, 21, padding=10, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(kernel.expand(1, 3, 21, 21) / 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


@pytest.mark.parametrize("orientation", [45, 200])
def test_oriented_detector_peaks_at_its_orientation(orientation):
    model = OrientedDetector(orientation)
    curve = radial_tuning_curve(model, "relu", 0, radii=(8,), size=40)
    assert curve.shape == (len(ORIENTATIONS),)
    preferred = ORIENTATIONS[curve.argmax().item()]
    assert min(abs(preferred - orientation), 360 - abs(preferred - orientation)) <= 5
    report = curve_detector_report(model, "relu", radii=(8,), size=40)
    row = report["channels"][0]
    assert row["preferred_deg"] == preferred and row["quadrant"] == orientation // 90
    assert row["peak_to_mean"] > 1 and row["line_ratio"] > 1
    assert report["curve_detectors"] == ([0] if row["curve_detector"] else [])


def test_tuning_statistics_on_hand_made_curves():
    curves = torch.zeros(3, 72)
    curves[0, 10] = 2.0                            # one orientation: peak/mean 72, half-width 2.5 degrees
    curves[1] = 1.0                                # flat: peak/mean 1, half-width 180
    stats = tuning_statistics(curves)              # channel 2 never responds
    assert stats["peak_to_mean"].tolist() == pytest.approx([72.0, 1.0, 0.0])
    assert stats["half_width_deg"].tolist() == pytest.approx([2.5, 180.0, 180.0])
    assert stats["preferred_deg"][0].item() == 50.0
    assert stats["alive"].tolist() == [True, True, False]


class TwoLayer(nn.Module):
    """l1 copies R, G, B; l2 unit 0 = R + G (a union of the 'red' and 'green' cases), unit 1 = B."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Conv2d(3, 3, 1, bias=False), nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(torch.eye(3)[:, :, None, None])
            self.l2.weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])[:, :, None, None])

    def forward(self, x):
        return self.l2(self.l1(x)).amax((2, 3))


def test_union_over_cases_on_a_hand_built_model():
    red, green, blue = (torch.zeros(4, 3, 8, 8).index_fill_(1, torch.tensor([c]), 0.8) for c in range(3))
    res = union_over_cases(TwoLayer(), "l2", "l1", red, green, images_other=blue, top_k=2)
    assert res["union_units"] == [0]
    assert res["case_units"] == {"a": [0], "b": [1]}
    unit = res["units"][0]
    assert unit["both_ratio"] == pytest.approx(1.0) and unit["selectivity"] > 1e3
    assert {i["unit"]: i["prefers"] for i in unit["top_inputs"]} == {0: "a", 1: "b"}
    assert not res["units"][1]["union"]
    with pytest.raises(ValueError, match="min_both"):
        union_over_cases(TwoLayer(), "l2", "l1", red, green, min_both=0)


def test_layer_activations_and_bad_input():
    model = TwoLayer()
    acts = layer_activations(model, torch.rand(5, 3, 8, 8), "l1", batch_size=2)
    assert acts.shape == (5, 3, 8, 8)
    assert layer_activations(model, torch.rand(3, 8, 8), "l2").shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        layer_activations(model, torch.rand(2, 1, 8, 8), "l1")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        layer_activations(model, torch.rand(2, 3, 8, 8) * 255, "l1")
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        layer_activations(model, torch.rand(2, 3, 8, 8), "conv9")
    with pytest.raises(ValueError, match="channel must be"):
        radial_tuning_curve(OrientedDetector(0), "relu", 3, radii=(8,), size=32)


# ---------------------------------------------------------------- the data generator


def test_dataset_is_seeded_and_labelled():
    a, la, ea = images.generate(40, seed=(3, 1), size=32)
    b, lb, eb = images.generate(40, seed=(3, 1), size=32)
    c, _, _ = images.generate(40, seed=(3, 2), size=32)
    assert a.shape == (40, 3, 32, 32) and a.dtype == torch.float32 and la.dtype == torch.long
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert ((ea["arc_bin"] >= 0) == (la == images.ARC)).all()
    assert ((ea["facing"] >= 0) == (la == images.FISH)).all()
    assert len(images.CLASSES) == 10


def test_fish_face_the_side_asked_for():
    import numpy as np

    left = images.class_images("fish", 6, seed=0, facing="left", size=32)
    right = images.class_images("fish", 6, seed=0, facing="right", size=32)
    assert left.shape == (6, 3, 32, 32) and not torch.equal(left, right)
    rng = np.random.default_rng(0)
    assert [images.render(images.FISH, rng, 32, facing)[2] for facing in ("left", "right")] == [0, 1]
    _, _, extra = images.generate(10, seed=0, labels=[images.FISH] * 10, size=32)
    assert set(extra["facing"].tolist()) == {0, 1}


def test_species_fish_cases_change_only_the_right_facing_fish():
    """fish_cases="species": left-facing fish are drawn as before, right-facing ones are another species
    (pointed head, fan tail), so that no early feature covers both cases."""
    for facing, same in (("left", True), ("right", False)):
        mirror = images.class_images("fish", 4, seed=3, facing=facing, size=32)
        species = images.class_images("fish", 4, seed=3, facing=facing, size=32, fish_cases="species")
        assert torch.equal(mirror, species) == same, f"{facing}-facing fish should {'' if same else 'not '}match"
    species_images, labels, _ = images.generate(40, seed=0, size=32, fish_cases="species")
    assert not torch.equal(species_images, images.generate(40, seed=0, size=32)[0])
    assert torch.equal(labels, images.generate(40, seed=0, size=32)[1]), "classes do not depend on fish_cases"


@pytest.mark.parametrize("call, match", [
    (lambda: images.generate(2, seed=0, fish_cases="flipped"), "fish_cases must be one of"),
    (lambda: images.generate(0, seed=0), "n must be an int"),
    (lambda: images.generate(3, seed=0, labels=[0, 1]), "labels must have shape"),
    (lambda: images.generate(2, seed=0, labels=[0, 10]), "label must be an int"),
    (lambda: images.class_images("dog", 2, seed=0), "name must be one of"),
    (lambda: images.class_images("arc", 2, seed=0, facing="left"), "facing must be"),
    (lambda: images.generate(2, seed=0, size=8), "size must be an int >= 16"),
])
def test_bad_dataset_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- the shipped checkpoints

ROLES = ("vision", "vision-b")
# measured properties the shipped checkpoints do not reach (see their cards and scripts/train_vision.py)
NOT_REACHED: dict = {}


def _xfail_if_not_reached(request, role, prop):
    reason = NOT_REACHED.get((role, prop))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def _needs(role):
    return pytest.mark.skipif(not lite_shipped(role), reason=f"{role} checkpoint not shipped")


@pytest.fixture(scope="module", params=[pytest.param(r, marks=_needs(r)) for r in ROLES])
def shipped(request):
    role = request.param
    model = mi_course.load_model(role, mode="lite", device="cpu")
    card = mi_course.model_card(role, mode="lite")
    layer = card["measured"]["best_curve_layer"]
    return role, model, card, curve_detector_report(model, layer)


def test_checkpoint_contract(shipped):
    role, model, card, _ = shipped
    assert card["role"] == role
    assert tuple(model.classes) == images.CLASSES
    for name in model.layer_names:
        assert isinstance(getattr(model, name), nn.Conv2d), "layers are reachable by name"
        assert getattr(model, name).padding_mode == "replicate"
    x, y, _ = images.generate(200, seed=(12345, 0))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (200, 10)
    assert (logits.argmax(-1) == y).float().mean() >= 0.9
    assert card["measured"]["accuracy_2000_fresh_images"] >= 0.95
    assert card["regenerate"].startswith(f"python scripts/train_vision.py --role {role}")
    for key in ("architecture", "training", "dataset", "training_seconds", "citation", "mechanism"):
        assert key in card, f"the card lacks {key!r}"


def test_curve_detectors_tile_the_circle(shipped, request):
    role, model, card, report = shipped
    _xfail_if_not_reached(request, role, "curve_detectors")
    assert len(report["curve_detectors"]) >= 4, f"{role} {report['layer']}: {report['curve_detectors']}"
    assert len(report["quadrants"]) >= 3, f"{role} {report['layer']}: quadrants {report['quadrants']}"


def test_card_states_the_curve_detectors(shipped):
    role, model, card, report = shipped
    stated = card["measured"]["curve_detectors"][report["layer"]]
    assert stated["curve_detectors"] == report["curve_detectors"]
    assert stated["quadrants"] == report["quadrants"]
    assert {int(c): d for c, d in stated["preferred_deg"].items()} == report["preferred_deg"]
    assert stated["stretch_detectors"] == report["stretch_detectors"]
    mech = card["mechanism"]["curve_detectors"]
    assert mech["layer"] == report["layer"] and mech["channels"] == report["curve_detectors"]
    stretch = len(report["stretch_detectors"]) >= 4 and len(report["stretch_quadrants"]) == 4
    assert card["measured"]["stretch_goal_reached"] == stretch


@pytest.fixture(scope="module")
def vision_union():
    model = mi_course.load_model("vision", mode="lite", device="cpu")
    card = mi_course.model_card("vision", mode="lite")
    seed = card["training"]["seed"] + 10_000
    cases = card["dataset"].get("fish_cases", "mirror")  # cards written before fish_cases existed used mirror
    left = images.class_images("fish", 64, seed=seed, facing="left", fish_cases=cases)
    right = images.class_images("fish", 64, seed=seed + 1, facing="right", fish_cases=cases)
    others, labels, _ = images.generate(256, seed=seed + 2, fish_cases=cases)
    layers = card["measured"]["union_layers"] or [model.layer_names[-1]]
    layer = layers[0]
    prev = card["measured"]["union_over_cases"][layer]["prev_layer"]
    params = card["measured"]["union_params"]
    return card, union_over_cases(model, layer, prev, left, right, images_other=others[labels != images.FISH],
                                  **params)


@_needs("vision")
def test_card_states_union_over_cases(vision_union):
    card, res = vision_union
    stated = card["measured"]["union_over_cases"][res["layer"]]
    assert stated["union_units"] == res["union_units"]
    assert stated["n_left_units"] == len(res["case_units"]["a"])
    assert stated["n_right_units"] == len(res["case_units"]["b"])
    assert card["mechanism"]["union_over_cases"]["reached"] == bool(card["measured"]["union_layers"])


@_needs("vision")
def test_vision_has_union_over_cases(vision_union, request):
    _xfail_if_not_reached(request, "vision", "union_over_cases")
    card, res = vision_union
    assert res["min_both"] >= 0.5 and res["min_case_ratio"] >= 3.0
    assert res["union_units"], "no unit responds to both facings while fed by left- and right-facing units"
    assert card["measured"]["union_over_cases"][res["layer"]]["union_units"] == res["union_units"]
    mech = card["mechanism"]["union_over_cases"]
    assert mech["pose_invariant_layer"] == res["layer"] and mech["pose_invariant_units"] == res["union_units"]
    assert mech["left_facing_units"] == res["case_units"]["a"]
    assert mech["right_facing_units"] == res["case_units"]["b"]


def test_lite_checkpoints_are_small():
    manifest = read_manifest()
    total = sum(e["bytes"] for e in manifest.values())
    assert total <= 60 * 2 ** 20, f"lite checkpoints take {total / 2 ** 20:.1f} MB > 60 MB"
    for role in ROLES:
        if f"{role}/model.safetensors" in manifest:
            assert manifest[f"{role}/model.safetensors"]["bytes"] <= 5 * 2 ** 20
