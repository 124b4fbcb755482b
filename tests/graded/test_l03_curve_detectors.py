"""Graded tests for lesson 03 (curve detectors).

Expected values come from another route than the reference solution: the course's canonical
``mi_course.vision`` code used as an oracle on behaviour (``stimuli``, ``tuning``, ``receptive_field``,
``dataset_examples``), properties checked by hand (where the ink of an arc lies, a receptive field worked
out on paper and measured with gradients), and, for the investigation, the shipped lite models themselves,
measured on arcs and lines drawn by another renderer (PIL, ``mi_course.vision.drawn``).

Tests that grade one exercise replace the learner's earlier functions by the canonical ones (``monkeypatch``),
so that a mistake in ``curve_stimulus`` costs the points of ``curve_stimulus`` only.
"""

import math
from functools import cache

import pytest
import torch

import mi_course
from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive
from mi_course.vision import stimuli, tuning

LESSON = "l03_curve_detectors"


@cache
def lite(role="vision"):
    torch.set_num_threads(1)
    return mi_course.load_model(role, mode="lite", device="cpu")


def canonical_stimuli(monkeypatch, impl):
    """Grade one exercise at a time: the learner's stimuli replaced by the course's."""
    monkeypatch.setattr(impl, "curve_stimulus", stimuli.curve_stimulus)
    monkeypatch.setattr(impl, "line_stimulus", stimuli.line_stimulus)


def canonical_tuning(model, layer, channel=None, orientations=tuning.ORIENTATIONS, radii=tuning.RADII, width=2.5,
                     size=64, polarities=("dark", "light")):
    curves = tuning.tuning_curves(model, layer, orientations, radii, width, size, polarities)
    return curves if channel is None else curves[channel]


# Drivers (``drive``): they run next to the learner's module (in the grading subject under --judge), swap in the
# course's functions there and return data only; the tests' asserts check what they return.

def _with_course_stimuli(impl, exercise, *args, **kwargs):
    """``impl.<exercise>(*args, **kwargs)`` with the learner's stimuli replaced by the course's."""
    with pytest.MonkeyPatch.context() as mp:
        canonical_stimuli(mp, impl)
        return getattr(impl, exercise)(*args, **kwargs)


def _with_course_tuning(impl, exercise, *args, **kwargs):
    """``impl.<exercise>(*args, **kwargs)`` with the course's stimuli and tuning curves (``canonical_tuning``)."""
    with pytest.MonkeyPatch.context() as mp:
        canonical_stimuli(mp, impl)
        mp.setattr(impl, "radial_tuning_curve", canonical_tuning)
        return getattr(impl, exercise)(*args, **kwargs)


# ---------------------------------------------------------------- curve_stimulus

CASES = [dict(orientation_deg=37.0), dict(orientation_deg=120.0, radius=6.0, width=1.5),
         dict(orientation_deg=250.0, radius=14.0, width=4.0, size=48, polarity="light"),
         dict(orientation_deg=300.0, radius=9.0, span_deg=150.0),
         dict(orientation_deg=90.0, radius=20.0, span_deg=60.0)]


def _same(a, b, atol=1e-4):
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


@pytest.mark.exercise("curve_stimulus", points=2)
def test_curve_stimulus_draws_the_courses_arc(impl):
    for case in CASES:
        check_arc(impl, case)


def check_arc(impl, case):
    got = impl.curve_stimulus(**case)
    size = case.get("size", 64)
    assert_shape(got, (3, size, size), f"curve_stimulus(**{case})")
    assert got.dtype == torch.float32, f"return float32 (got {got.dtype})"
    assert got.min() >= 0 and got.max() <= 1, "the image must lie in [0, 1]"
    assert torch.equal(got[0], got[1]) and torch.equal(got[0], got[2]), "the three colour channels must be equal"
    expected = stimuli.curve_stimulus(**case)
    if _same(got, expected):
        return
    o = case["orientation_deg"]
    if _same(got, 1 - expected):
        pytest.fail("the polarity is swapped: 'dark' paints 1 - ink (black on white), 'light' paints the ink")
    if _same(got, stimuli.curve_stimulus(**{**case, "orientation_deg": -o})):
        pytest.fail("the arc is mirrored top to bottom: y must point UP (y = size / 2 - (row + 0.5)); "
                    "rows grow downwards on screen")
    if _same(got, stimuli.curve_stimulus(**{**case, "orientation_deg": o + 180})):
        pytest.fail("the arc bulges the wrong way: its circle's centre lies radius px BEHIND the midpoint, "
                    "at (-radius cos θ, -radius sin θ)")
    if _same(got, stimuli.curve_stimulus(**{**case, "orientation_deg": 180 - o})):
        pytest.fail("the arc is mirrored left to right: x grows to the right, angles counter-clockwise")
    if _same(got, stimuli.curve_stimulus(**{**case, "orientation_deg": math.degrees(o)})):
        pytest.fail("the orientation is used as radians: convert degrees with math.radians")
    if _same(got, stimuli.curve_stimulus(**{**case, "radius": case.get("radius", 10.0) / 2})) or \
            _same(got, stimuli.curve_stimulus(**{**case, "radius": case.get("radius", 10.0) * 2})):
        pytest.fail("the arc's size is off by a factor 2: radius is the circle's radius, not its diameter")
    shifted = [stimuli.curve_stimulus(**case).roll(s, d) for s in (-1, 1) for d in (1, 2)]
    if any(_same(got, s, atol=2e-2) for s in shifted):
        pytest.fail("the arc is one pixel off: pixel centres are at row + 0.5 and column + 0.5, measured from "
                    "the image centre (size / 2)")
    ink, want = 1 - got[0] if case.get("polarity", "dark") == "dark" else got[0], \
        1 - expected[0] if case.get("polarity", "dark") == "dark" else expected[0]
    if ink.sum() < 0.97 * want.sum() and torch.all(ink <= want + 1e-4):
        pytest.fail("the arc is shorter than it should be (its ends are cut square?): beyond the arc's angular "
                    "range, d is the distance to the nearer end point (round caps)")
    diff = (got - expected).abs()[0]
    row, col = divmod(int(diff.argmax()), diff.shape[1])
    pytest.fail(f"curve_stimulus(**{case}) differs from the course's arc by up to {diff.max():.3f}, first at row "
                f"{row}, column {col}. Check d: inside the arc's range the distance to the circle, outside it the "
                "distance to the nearer end point; ink = clamp(width / 2 + 0.5 - d, 0, 1)")


@pytest.mark.exercise("curve_stimulus", points=1)
def test_curve_stimulus_bulges_towards_its_orientation(impl):
    """Worked out from the geometry, not from the course's renderer: a half-circle (span 180) of radius 12 has its
    ink's centre of mass 2r / pi px from the circle's centre, so 12 - 7.64 = 4.4 px behind the midpoint."""
    for orientation in (0.0, 65.0, 90.0, 200.0, 315.0):
        check_bulge(impl, orientation)


def check_bulge(impl, orientation):
    image = impl.curve_stimulus(orientation, radius=12.0, width=2.5, size=64, span_deg=180.0)
    ink = 1 - image[0].double()
    c = torch.arange(64, dtype=torch.float64) + 0.5 - 32
    x, y = c[None, :].expand(64, 64), -c[:, None].expand(64, 64)
    assert ink[31:33, 31:33].max() > 0.9, "the arc's midpoint must lie on the image centre"
    mx, my = (ink * x).sum() / ink.sum(), (ink * y).sum() / ink.sum()
    behind = math.hypot(mx, my)
    assert 3.4 < behind < 5.4, (f"the ink's centre of mass lies {behind:.2f} px from the image centre; a half circle "
                                "of radius 12 through the centre puts it 4.4 px behind the midpoint")
    pointing = math.degrees(math.atan2(-my, -mx)) % 360
    off = min(abs(pointing - orientation), 360 - abs(pointing - orientation))
    assert off < 3, (f"curve_stimulus({orientation:g}) bulges towards {pointing:.0f} degrees: the orientation is "
                     "counter-clockwise on screen from 'pointing right' (90 = an arch, bulging up)")
    length = math.pi * 12 * 2.5
    assert 0.85 * length < ink.sum() < 1.25 * length, (f"the arc holds {ink.sum():.0f} px of ink; a half circle of "
                                                       f"radius 12 and stroke 2.5 holds about {length:.0f}")


@pytest.mark.exercise("curve_stimulus", points=1)
def test_curve_stimulus_rejects_bad_arguments(impl):
    for kwargs, expected in [(dict(radius=0), "radius > 0"), (dict(radius=-3.0), "radius > 0"),
                             (dict(width=0.0), "width > 0"), (dict(size=3), "size an int >= 4"),
                             (dict(size=32.0), "size an int"), (dict(polarity="grey"), "polarity dark or light"),
                             (dict(span_deg=0.0), "span in (0, 360]"), (dict(span_deg=400.0), "span in (0, 360]")]:
        expect_value_error(impl.curve_stimulus, 45.0, **kwargs, what=f"curve_stimulus(45, {kwargs})", expected=expected)


# ---------------------------------------------------------------- line_stimulus

@pytest.mark.exercise("line_stimulus", points=2)
def test_line_stimulus_draws_the_courses_segment(impl):
    for o, length, width, size, polarity in [(0.0, 16.0, 2.5, 64, "dark"), (30.0, 20.0, 1.5, 40, "light"),
                                             (90.0, 9.0, 4.0, 64, "dark"), (135.0, 30.0, 2.0, 48, "dark")]:
        got = impl.line_stimulus(o, length, width, size, polarity)
        assert_shape(got, (3, size, size), f"line_stimulus({o}, {length}, ...)")
        expected = stimuli.line_stimulus(o, length, width, size, polarity)
        if _same(got, stimuli.line_stimulus(o + 90, length, width, size, polarity)) and o % 90:
            pytest.fail("the segment is rotated by 90 degrees: orientation 0 is horizontal")
        if _same(got, stimuli.line_stimulus(-o, length, width, size, polarity)) and o % 90:
            pytest.fail("the segment is mirrored: y points up, angles counter-clockwise on screen")
        if _same(got, stimuli.line_stimulus(o, 2 * length, width, size, polarity)):
            pytest.fail("the segment is twice too long: it reaches length / 2 on either side of the centre")
        assert_close(got, expected, f"line_stimulus({o}, {length}, {width}, {size}, {polarity!r})", atol=1e-4,
                     hint="d is the distance to the nearest point of the segment (the position along it clamped to "
                          "[-length / 2, length / 2]); ink = clamp(width / 2 + 0.5 - d, 0, 1)")
    assert torch.allclose(impl.line_stimulus(20.0), impl.line_stimulus(200.0), atol=1e-5), \
        "a segment at 20 and at 200 degrees is the same segment"


@pytest.mark.exercise("line_stimulus", points=1)
def test_line_stimulus_rejects_bad_arguments(impl):
    for kwargs, expected in [(dict(length=0.0), "length > 0"), (dict(width=-1.0), "width > 0"),
                             (dict(size=2), "size an int >= 4"), (dict(polarity="white"), "polarity dark or light")]:
        expect_value_error(impl.line_stimulus, 45.0, **kwargs, what=f"line_stimulus(45, {kwargs})", expected=expected)


# ---------------------------------------------------------------- radial_tuning_curve

SOME = dict(orientations=tuple(range(0, 360, 20)), radii=(6.0, 12.0))


@pytest.mark.exercise("radial_tuning_curve", points=2)
def test_radial_tuning_curve_matches_the_course_measurement(impl):
    model = lite()
    every = drive(impl, _with_course_stimuli, "radial_tuning_curve", model, "conv4", None, **SOME)
    expected = canonical_tuning(model, "conv4", None, **SOME)
    assert_shape(every, tuple(expected.shape), "radial_tuning_curve(model, 'conv4', None): one row per channel")
    if not torch.allclose(every, expected, atol=1e-4):
        stim = torch.stack([stimuli.curve_stimulus(o, r, 2.5, 64, p) for o in SOME["orientations"]
                            for r in SOME["radii"] for p in ("dark", "light")])
        acts = tuning.layer_activations(model, stim, "conv4").view(len(SOME["orientations"]), 4, 128, 8, 8)
        if torch.allclose(every, acts.mean((3, 4)).amax(1).T, atol=1e-4):
            pytest.fail("the response is the mean over positions: a channel's response is its MAXIMUM over positions")
        if torch.allclose(every, acts.amax((3, 4)).mean(1).T, atol=1e-4):
            pytest.fail("the radii and polarities are averaged: take the largest response over them")
        if torch.allclose(every, canonical_tuning(model, "conv4", None, **SOME, polarities=("dark",)), atol=1e-4):
            pytest.fail("only dark curves were shown: take the maximum over every polarity in polarities")
        assert_close(every, expected, "radial_tuning_curve on conv4", atol=1e-4,
                     hint="curves[c, k]: channel c's largest response (max over positions, radii, polarities) to "
                          "curves of orientation orientations[k]")
    for channel in (0, 5, 77):
        one = call_unmutated(drive, impl, _with_course_stimuli, "radial_tuning_curve", model, "conv4", channel, **SOME)
        assert_close(one, expected[channel], f"radial_tuning_curve(model, 'conv4', {channel})", atol=1e-4,
                     hint="one channel's curve is row `channel` of every channel's curves")


class OrientedDetector(torch.nn.Module):
    """One channel whose kernel is the ink of an arc: it prefers that orientation (made by hand, here)."""

    def __init__(self, orientation):
        super().__init__()
        c = torch.arange(21, dtype=torch.float32) + 0.5 - 10.5
        x, y = c[None, :].expand(21, 21), -c[:, None].expand(21, 21)
        t = math.radians(orientation)
        cx, cy = -8 * math.cos(t), -8 * math.sin(t)
        angle = torch.atan2(y - cy, x - cx) - t
        near = ((torch.hypot(x - cx, y - cy) - 8).abs() < 1.5) & (torch.cos(angle) > math.cos(math.radians(45)))
        kernel = near.float() - near.float().mean()
        self.conv = torch.nn.Conv2d(3, 1, 21, padding=10, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(-kernel.expand(1, 3, 21, 21) / 3)  # dark ink on white excites it
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


def _detector_curve(impl, orientation, *args, **kwargs):
    """radial_tuning_curve(OrientedDetector(orientation), *args, **kwargs) with the course's stimuli."""
    return _with_course_stimuli(impl, "radial_tuning_curve", OrientedDetector(orientation), *args, **kwargs)


@pytest.mark.exercise("radial_tuning_curve", points=1)
def test_a_hand_made_detector_peaks_at_its_orientation(impl):
    for orientation in (45, 200):
        curve = drive(impl, _detector_curve, orientation, "relu", 0, radii=(8.0,), size=40)
        assert_shape(curve, (72,), "the tuning curve over the 72 default orientations")
        preferred = tuning.ORIENTATIONS[int(curve.argmax())]
        off = min(abs(preferred - orientation), 360 - abs(preferred - orientation))
        assert off <= 10, f"a detector built for arcs bulging towards {orientation} peaks at {preferred} degrees"
    expect_value_error(drive, impl, _detector_curve, 0, "relu", 1, radii=(8.0,), size=40,
                       what="channel 1 of a one-channel layer", expected="an int in 0..0")
    expect_value_error(drive, impl, _detector_curve, 0, "relu", -1, radii=(8.0,), size=40,
                       what="channel -1", expected="an int in 0..0")


# ---------------------------------------------------------------- find_curve_detectors

def _report(model, layer, **kwargs):
    t = {k: kwargs.pop(k) for k in list(kwargs) if k in tuning.THRESHOLDS}
    return tuning.curve_detector_report(model, layer, thresholds=t, **kwargs)


def _check_found(got, report, what):
    assert isinstance(got, dict), \
        f"{what} should return a dict {{channel: preferred orientation}}, got {type(got).__name__}"
    assert all(isinstance(c, int) and not isinstance(c, bool) for c in got), f"{what}: the keys are channel ints"
    assert all(isinstance(v, float) for v in got.values()), f"{what}: preferred orientations are floats (degrees)"
    return sorted(got) == report["curve_detectors"] and \
        all(abs(got[c] - report["preferred_deg"][c]) < 1e-6 for c in got)


@pytest.mark.exercise("find_curve_detectors", points=2)
def test_find_curve_detectors_applies_the_three_criteria(impl):
    model = lite()
    for layer, thresholds in [("conv4", {}), ("conv3", {}),
                              ("conv4", dict(min_peak_to_mean=3.0, max_half_width_deg=45.0, min_line_ratio=2.0))]:
        got = drive(impl, _with_course_tuning, "find_curve_detectors", model, layer, **thresholds)
        report = _report(model, layer, **thresholds)
        what = f"find_curve_detectors(model, {layer!r}, **{thresholds})"
        if _check_found(got, report, what):
            continue
        if thresholds and _check_found(got, _report(model, layer), what):
            pytest.fail("the thresholds passed in are ignored: use min_peak_to_mean, max_half_width_deg and "
                        "min_line_ratio")
        half = {**tuning.THRESHOLDS, **thresholds}
        if _check_found(got, _report(model, layer, **{**half, "max_half_width_deg": half["max_half_width_deg"] / 2}),
                        what):
            pytest.fail("the half-width is twice too large: it is the share of orientations at or above half the "
                        "peak times 180 (not 360)")
        if _check_found(got, _report(model, layer, **{**half, "min_line_ratio": 0.0}), what):
            pytest.fail("curves are not compared with lines: the peak must be >= min_line_ratio x the best "
                        "response to straight segments")
        if _check_found(got, _report(model, layer, **{**half, "min_peak_to_mean": 0.0}), what):
            pytest.fail("the peak is not compared with the mean of the tuning curve (min_peak_to_mean)")
        missing = sorted(set(report["curve_detectors"]) - set(got))
        extra = sorted(set(got) - set(report["curve_detectors"]))
        wrong = [c for c in set(got) & set(report["curve_detectors"])
                 if abs(got[c] - report["preferred_deg"][c]) > 1e-6]
        pytest.fail(f"{what}: missing {missing}, not detectors {extra}, wrong preferred orientation for {wrong}. The "
                    "lines have the arcs' lengths (pi / 2 x radius), every orientation in LINE_ORIENTATIONS and every "
                    "polarity; the preferred orientation is where the tuning curve peaks")


class WithDeadChannels(torch.nn.Module):
    """The lite vision model's conv4, then a channel that never fires and one that fires the same everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.probe = torch.nn.Identity()

    def forward(self, x):
        acts = {}
        handle = self.model.conv4.register_forward_hook(lambda m, i, o: acts.update(out=o))
        try:
            self.model(x)
        finally:
            handle.remove()
        out = acts["out"]
        return self.probe(torch.cat([out, torch.zeros_like(out[:, :1]), torch.ones_like(out[:, :1])], dim=1))


def _dead_channels_found(impl, model, *args, **kwargs):
    """find_curve_detectors(WithDeadChannels(model), *args, **kwargs) with the course's stimuli and tuning."""
    return _with_course_tuning(impl, "find_curve_detectors", WithDeadChannels(model), *args, **kwargs)


@pytest.mark.exercise("find_curve_detectors", points=1)
def test_find_curve_detectors_skips_silent_and_flat_channels(impl):
    got = drive(impl, _dead_channels_found, lite(), "probe")
    assert isinstance(got, dict), "return a dict {channel: preferred orientation}"
    assert 128 not in got, ("channel 128 never responds (peak 0): 0 >= 2.5 x 0 holds, but a silent channel "
                            "is no curve detector; skip channels whose peak is 0")
    assert 129 not in got, "channel 129 responds the same to everything: it is not peaked"
    assert sorted(got) == tuning.curve_detector_report(lite(), "conv4")["curve_detectors"], \
        "the other channels are conv4's: the same detectors as before"
    assert list(got) == sorted(got), "list the detectors in channel order"
    # with no limit on the half-width, only the check for a silent channel keeps channel 128 out
    loose = drive(impl, _dead_channels_found, lite(), "probe", max_half_width_deg=180.0)
    assert 128 not in loose, ("with max_half_width_deg=180 the silent channel 128 passes every inequality (0 >= "
                              "2.5 x 0): skip channels whose peak is 0")
    assert sorted(loose) == _report(lite(), "conv4", max_half_width_deg=180.0)["curve_detectors"], \
        "find_curve_detectors(..., max_half_width_deg=180) on conv4's channels"


# ---------------------------------------------------------------- receptive_field

@pytest.mark.exercise("receptive_field", points=2)
def test_receptive_field_worked_out_on_paper(impl):
    cases = [
        ([(3, 1, 1)], (3, 1, -1), "one 3x3 convolution with padding 1"),
        ([(5, 1, 2), (2, 2, 0), (5, 1, 2)], (14, 2, -6), "conv 5, pool 2, conv 5 (5 + 1 + 4 x 2 = 14)"),
        ([(7, 2, 3), (3, 2, 1), (3, 1, 1)], (19, 4, -9), "conv 7 stride 2, pool 3 stride 2, conv 3"),
        ([(2, 2, 0), (2, 2, 0), (2, 2, 0)], (8, 8, 0), "three 2x2 pools"),
        ([], (1, 1, 0), "no layers: a pixel sees itself"),
    ]
    for layers, expected, what in cases:
        got = impl.receptive_field(layers)
        assert isinstance(got, tuple) and len(got) == 3, f"return (size, stride, offset), got {got!r}"
        got = tuple(int(v) for v in got)
        if got == expected:
            continue
        if len(layers) > 1:
            size, stride = 1, 1
            for k, s, _ in layers:
                stride *= s
                size += (k - 1) * stride
            if got[0] == size:
                pytest.fail(f"{what}: the size grew with the stride AFTER the layer; a layer widens the field by "
                            "kernel - 1 in units of the stride of the layers BEFORE it (update the stride last)")
        if got[2] == -expected[2] and expected[2]:
            pytest.fail(f"{what}: the offset has the wrong sign: padding moves the field's start back, before pixel 0")
        if got[2] == 0 and expected[2]:
            pytest.fail(f"{what}: the padding is ignored: each layer moves the offset by - padding x stride so far")
        pytest.fail(f"{what}: expected (size, stride, offset) = {expected}, got {got}")


@pytest.mark.exercise("receptive_field", points=1)
def test_receptive_field_of_the_lite_model_agrees_with_a_gradient_measurement(impl):
    from mi_course.vision.receptive_field import layer_geometry, measured_receptive_field

    for role in ("vision", "vision-b"):
        model = lite(role)
        for layer in ("conv2", "conv4"):
            got = tuple(int(v) for v in impl.receptive_field(layer_geometry(model, layer)))
            measured = tuple(measured_receptive_field(model, layer, size=128))
            assert got == measured, (f"{role} {layer}: the pixels whose gradient reaches a unit span (size, stride, "
                                     f"offset) = {measured}; your arithmetic says {got}")
    for bad in ([(0, 1, 0)], [(3, 0, 1)], [(3, 1, -1)], [(3, 1)], [(3.0, 1, 1)]):
        expect_value_error(impl.receptive_field, bad, what=f"receptive_field({bad})",
                           expected="kernel >= 1, stride >= 1, padding >= 0, ints")


# ---------------------------------------------------------------- dataset_examples

@cache
def wide_images():
    """Held-out generated images, two side by side: 64 rows, 128 columns, so rows and columns differ."""
    from mi_course.organisms.images import generate

    images = generate(160, seed=(31, 7))[0]
    return torch.cat([images[0::2], images[1::2]], dim=3)


def _examples(got, k, size):
    assert isinstance(got, tuple) and len(got) == 4, "return (values, indices, positions, crops)"
    values, indices, positions, crops = got
    assert_shape(values, (k,), "values")
    assert_shape(indices, (k,), "indices")
    assert_shape(positions, (k, 2), "positions (row, column)")
    assert_shape(crops, (k, 3, size, size), f"crops (a {size}-pixel receptive field each)")
    assert not indices.is_floating_point() and not positions.is_floating_point(), "indices and positions are ints"
    return values, indices, positions, crops


@pytest.mark.exercise("dataset_examples", points=2)
def test_dataset_examples_match_the_course_top_examples(impl):
    for channel in (2, 6, 40):
        check_examples(impl, channel)


def check_examples(impl, channel):
    from mi_course.vision.dataset_examples import dataset_examples
    from mi_course.vision.receptive_field import receptive_field

    model, images = lite(), wide_images()
    rf = receptive_field(model, "conv4")
    got = call_unmutated(impl.dataset_examples, model, images, "conv4", channel, 8, tuple(rf))
    values, indices, positions, crops = _examples(got, 8, rf.size)
    expected = dataset_examples(model, images, "conv4", channel, 8, rf)
    maps = tuning.layer_activations(model, images, "conv4")[:, channel]          # [80, 8, 16]
    if len(set(indices.tolist())) < 8:
        pytest.fail("an image appears twice: each image gives one example, at its channel's maximum over positions")
    if indices.tolist() == torch.sort(maps.mean((1, 2)), descending=True, stable=True).indices[:8].tolist() and \
            indices.tolist() != expected.indices.tolist():
        pytest.fail("the images are ranked by their mean activation: rank by the MAXIMUM over positions")
    assert indices.tolist() == expected.indices.tolist(), \
        f"the top images are {expected.indices.tolist()}, got {indices.tolist()} (rank by each image's maximum)"
    assert_close(values, expected.values, "the examples' activations", atol=1e-4)
    if positions.flip(1).tolist() == expected.positions.tolist():
        pytest.fail("positions are (column, row): give (row, column); the map is 8 rows by 16 columns here")
    assert positions.tolist() == expected.positions.tolist(), (
        f"the firing units are at {expected.positions.tolist()}, got {positions.tolist()}: (row, column) of the "
        "maximum in the map (row = flat index // width)")
    for i in range(8):
        if torch.allclose(crops[i], expected.crops[i], atol=1e-5):
            continue
        r, c = expected.positions[i].tolist()
        pytest.fail(f"example {i}: the crop is not the receptive field of unit (row {r}, column {c}): rows "
                    f"{rf.offset + rf.stride * r} to {rf.offset + rf.stride * r + rf.size - 1} of the image (offset "
                    f"{rf.offset}, stride {rf.stride}), the same for columns, {0.5} outside the image")


class DarkBlocks(torch.nn.Module):
    """A layer whose unit (row, column) is the darkness of the 8 x 8 block of pixels it covers: made by hand, so
    where it fires is known."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.AvgPool2d(8)

    def forward(self, x):
        return self.blocks(1 - x)


def dotted(size, spots):
    """White images with one dark 2 x 2 dot each, at (row, column) pixel positions."""
    images = torch.ones(len(spots), 3, *size)
    for i, (row, col) in enumerate(spots):
        images[i, :, row:row + 2, col:col + 2] = 0.0
    return images


def _dark_blocks_examples(impl, *args, **kwargs):
    """dataset_examples(DarkBlocks(), *args, **kwargs)."""
    return impl.dataset_examples(DarkBlocks(), *args, **kwargs)


@pytest.mark.exercise("dataset_examples", points=1)
def test_dataset_examples_on_a_hand_made_layer(impl):
    rf = (24, 8, -8)
    # 48 rows x 80 columns: a 6 x 10 map; the dots sit in blocks (1, 7), (4, 2) and (0, 0)
    images = dotted((48, 80), [(10, 60), (35, 20), (2, 3)])
    images[1, :, 36:38, 20:22] = 0.0  # image 1's block is darker than the others: it comes first
    values, indices, positions, crops = _examples(drive(impl, _dark_blocks_examples, images, "blocks", 0, 3, rf), 3, 24)
    assert indices.tolist()[0] == 1, f"image 1 excites the channel most, got order {indices.tolist()}"
    where = dict(zip(indices.tolist(), positions.tolist()))
    if where.get(0) == [7, 1]:
        pytest.fail("positions are (column, row): image 0's dot is in map row 1, column 7; give (row, column)")
    assert where == {0: [1, 7], 1: [4, 2], 2: [0, 0]}, (
        f"the dots lie in map positions (row, column) {{0: (1, 7), 1: (4, 2), 2: (0, 0)}}, got {where}")
    assert indices.tolist() == [1, 0, 2], f"images 0 and 2 tie: the earlier first, so 1, 0, 2; got {indices.tolist()}"
    assert_close(values, torch.tensor([6 / 64, 4 / 64, 4 / 64]), "the activations (the dots' share of their block)",
                 atol=1e-5)
    # image 2's unit (0, 0) sees rows and columns -8 .. 15: eight rows and columns of fill, then the image
    crop = crops[indices.tolist().index(2)]
    if torch.allclose(crop, images[2, :, 0:24, 0:24]):
        pytest.fail("the crop starts at the image's corner: the field starts at offset -8, outside the image")
    assert torch.allclose(crop[:, :8], torch.full_like(crop[:, :8], 0.5)) and \
        torch.allclose(crop[:, :, :8], torch.full_like(crop[:, :, :8], 0.5)), \
        "the part of the field outside the image must be `fill` (0.5)"
    assert torch.allclose(crop[:, 8:, 8:], images[2, :, 0:16, 0:16]), \
        "inside the image, the crop of unit (0, 0) holds the image's rows and columns 0 .. 15"
    crop = crops[indices.tolist().index(0)]
    assert torch.allclose(crop, images[0, :, 0:24, 48:72]), \
        "unit (row 1, column 7) sees rows 0 .. 23 and columns 48 .. 71 (offset -8 + stride 8 x position)"
    _, _, _, filled = drive(impl, _dark_blocks_examples, images[2:], "blocks", 0, 1, rf, fill=0.0)
    assert torch.allclose(filled[0, :, :8], torch.zeros(3, 8, 24)), "fill=0.0 fills the outside with 0"
    # ties: the same image three times, and the earlier copy first
    same = dotted((48, 80), [(40, 40), (10, 10), (40, 40), (10, 10), (40, 40)])
    _, indices, _, _ = drive(impl, _dark_blocks_examples, same, "blocks", 0, 5, rf)
    assert indices.tolist() == [0, 1, 2, 3, 4], (
        f"every image excites the channel equally: ties go to the earlier image, so the order is 0, 1, 2, 3, 4; "
        f"got {indices.tolist()} (sort with stable=True)")
    for k in (0, 4):
        expect_value_error(drive, impl, _dark_blocks_examples, images, "blocks", 0, k, rf, what=f"k={k} of 3 images",
                           expected="an int in 1..3")
    expect_value_error(drive, impl, _dark_blocks_examples, images, "blocks", 3, 2, rf, what="channel 3 of 3",
                       expected="an int in 0..2")


# ---------------------------------------------------------------- curvature_tuning

@pytest.mark.exercise("curvature_tuning", points=2)
def test_curvature_tuning_matches_the_course_measurement(impl):
    for channel in (0, 5, 105):
        check_curvature(impl, channel)


def check_curvature(impl, channel):
    model = lite()
    got = drive(impl, _with_course_tuning, "curvature_tuning", model, "conv4", channel)
    expected = tuning.curvature_tuning(model, "conv4", channel)
    assert_shape(got, (len(tuning.CURVATURES),), "curvature_tuning over the default curvatures")
    if torch.allclose(got, expected, atol=1e-4):
        return
    preferred = tuning.ORIENTATIONS[int(tuning.radial_tuning_curve(model, "conv4", channel).argmax())]
    if torch.allclose(got[1:], expected[1:], atol=1e-4):
        parallel = tuning.channel_responses(model, torch.stack([stimuli.line_stimulus(preferred, 16.0, 2.5, 64, p)
                                                                for p in ("dark", "light")]), "conv4")[:, channel]
        if abs(got[0] - parallel.max()) < 1e-4:
            pytest.fail("at curvature 0 the segment points along the orientation: it is the arc's tangent, "
                        "perpendicular to the bulge (orientation + 90)")
        pytest.fail("curvature 0 is wrong: it is the straight segment line_stimulus(orientation + 90, length, ...)")
    if torch.allclose(got, tuning.curvature_tuning(model, "conv4", channel, orientation_deg=0.0), atol=1e-4) \
            and preferred != 0:
        pytest.fail("the default orientation is 0: it is the channel's preferred orientation (the peak of its "
                    "radial tuning curve)")
    assert_close(got, expected, f"curvature_tuning(model, 'conv4', {channel})", atol=1e-4,
                 hint="for curvature k > 0: radius 1 / k and span degrees(length * k), so every arc is `length` px "
                      "long; max over positions and polarities")
    got = drive(impl, _with_course_tuning, "curvature_tuning", model, "conv4", channel, curvatures=(0.0, 0.1),
                orientation_deg=200.0, length=20.0)
    assert_close(got, tuning.curvature_tuning(model, "conv4", channel, (0.0, 0.1), 200.0, 20.0),
                 "curvature_tuning with orientation 200 and length 20", atol=1e-4)


@pytest.mark.exercise("curvature_tuning", points=1)
def test_curvature_tuning_checks_its_curvatures(impl):
    model = lite()
    got = drive(impl, _with_course_tuning, "curvature_tuning", model, "conv4", 2, curvatures=(0.05, 0.1),
                orientation_deg=90.0, length=16.0, polarities=("dark",))
    assert_close(got, tuning.curvature_tuning(model, "conv4", 2, (0.05, 0.1), 90.0, 16.0, polarities=("dark",)),
                 "curvature_tuning with dark curves only", atol=1e-4)
    expect_value_error(drive, impl, _with_course_tuning, "curvature_tuning", model, "conv4", 2, curvatures=(-0.1,),
                       orientation_deg=90.0, what="a negative curvature", expected="curvatures >= 0")
    expect_value_error(drive, impl, _with_course_tuning, "curvature_tuning", model, "conv4", 2, curvatures=(0.5,),
                       orientation_deg=90.0, length=16.0, what="curvature 0.5 over 16 px (an arc of 458 degrees)",
                       expected="at most 2 pi / length")
    expect_value_error(drive, impl, _with_course_tuning, "curvature_tuning", model, "conv4", 200,
                       orientation_deg=90.0, what="channel 200 of 128", expected="an int in 0..127")


# ---------------------------------------------------------------- robust_curve_detectors (investigation)
#
# Graded on held-out cases drawn here, with seeds, and held in no module a learner imports (the notebook's
# figure uses the public ``drawn.VARIATIONS`` and ``drawn.COMBINED``; none of those cases is among these).
# Each case changes the canonical PIL-drawn stimulus (radius 10, stroke 2.5, dark, centred, span 90,
# anti-aliased) in one of its radius, stroke, offset or span (40 cases), or in two or three of all six
# properties at once, light on dark and no anti-aliasing among them (24 cases), to values the public cases do
# not use (a public case changes polarity or aliasing alone, or changes a radius, stroke or span to a value
# excluded here). Measured on the shipped lite models with the course's criteria (tuning.THRESHOLDS), seed 303:
#   vision:   the planted channels 0-7 pass in 0.98-1.00 of the cases; the reference solution's other channels
#             (11, 50, 55) in 0.83, 0.70 and 0.70; the channel it leaves out that passes most (96) in 0.88, the
#             next (86) in 0.64; the stretch criterion's extra channel 105 in 0.47; the weakest canonical
#             detector (100) in 0.11; a line detector (vision-b's 59) in 0.
#   vision-b: the reference solution's only channel (7) in 0.80; no other channel above 0.69; vision's planted
#             channels 0-6 (a guess that does not measure) in 0.
# Hence the two thresholds: every channel named must pass in at least ROBUST_SHARE of the cases (the solution's
# weakest is 0.10 above it, the stretch channel 0.13 below), and every channel that passes in at least
# REQUIRED_SHARE (only the planted channels, 0.03 above it) must be named (the solution's best omission, 96, is
# 0.075 below it). Seeds 0, 1, 2 and 5 give planted channels 0.97-1.00, channel 96 0.83-0.88, the solution's
# weakest 0.70-0.80 (vision-b's 7: 0.72-0.83), channel 105 0.44-0.53: no verdict changes.

ROBUST_SHARE, REQUIRED_SHARE = 0.6, 0.95
HELD_OUT_SEED, N_SINGLE, N_COMBINED = 303, 40, 24
PROPERTIES = ("radius", "width", "polarity", "offset", "span", "antialias")
SINGLE = ("radius", "width", "offset", "span")  # changed alone, polarity and aliasing would be public cases


def _held_out_value(rng, prop):
    if prop == "radius":  # 5-25 px, none of the public radii (5, 7, 10, 15, 20, 25)
        return float(rng.choice([r for r in range(6, 25) if r not in (7, 10, 15, 20)]))
    if prop == "width":  # 1.5-4 px, none of the public strokes (1.5, 2.5, 3, 4)
        return rng.choice((1.75, 2.0, 3.25, 3.5))
    if prop == "polarity":
        return "light"
    if prop == "offset":  # up to 8 px each way, neither the centre nor a public offset
        while True:
            offset = (float(rng.randint(-8, 8)), float(rng.randint(-8, 8)))
            if offset not in ((0.0, 0.0), (8.0, 0.0), (0.0, -8.0), (-6.0, 6.0), (-8.0, 8.0), (5.0, -5.0)):
                return offset
    if prop == "span":  # 60-180 degrees, none of the public spans (60, 90, 150, 180)
        return float(rng.choice([s for s in range(65, 180, 5) if s not in (90, 150)]))
    return False  # antialias


@cache
def held_out_cases() -> tuple:
    """The graded variations of the canonical PIL-drawn stimulus: N_SINGLE that change one property and
    N_COMBINED that change two or three, as ((name, variation), ...)."""
    import random

    rng = random.Random(HELD_OUT_SEED)
    cases: dict = {}
    while len(cases) < N_SINGLE + N_COMBINED:
        props = rng.sample(SINGLE, 1) if len(cases) < N_SINGLE else rng.sample(PROPERTIES, rng.choice((2, 3)))
        case = {prop: _held_out_value(rng, prop) for prop in props}
        cases.setdefault(", ".join(f"{prop} {value}" for prop, value in sorted(case.items())), case)
    return tuple(cases.items())


@cache
def drawn_shares() -> dict:
    """{role: {channel: share}}: each conv4 channel's share of the held-out cases in which it meets the
    course's criteria, for both lite models (each case's stimuli are drawn once, for both)."""
    from mi_course.vision import drawn

    roles = ("vision", "vision-b")
    passed = {role: torch.zeros(128) for role in roles}
    cases = held_out_cases()
    for _, variation in cases:
        for role in roles:
            passed[role] += drawn.variation_statistics(lite(role), "conv4", range(128), variation)["passes"].float()
    return {role: {c: passed[role][c].item() / len(cases) for c in range(128)} for role in roles}


@pytest.mark.exercise("robust_curve_detectors", points=4)
@pytest.mark.timeout(240)
def test_robust_curve_detectors_survive_another_renderer(impl):
    """Graded by what the channels do in the model: measured on arcs and lines drawn by PIL in 64 held-out
    cases the learner does not see, on two models (the answer must come from measuring)."""
    for role in ("vision", "vision-b"):
        check_robust(impl, role)


def check_robust(impl, role):
    model = lite(role)
    got = drive(impl, _with_course_stimuli, "robust_curve_detectors", model, "conv4")
    assert isinstance(got, (list, tuple)), f"return a list of channel ints, got {type(got).__name__}"
    assert all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 128 for c in got), \
        f"channels are ints in 0..127, got {got}"
    assert len(set(got)) == len(got), "a channel is listed twice"
    shares = drawn_shares()[role]
    impostors = {c: round(shares[c], 2) for c in got if shares[c] < ROBUST_SHARE}
    assert not impostors, (
        f"{role}: these channels meet the criteria in fewer than {ROBUST_SHARE:.0%} of the held-out drawn cases "
        f"(share shown): {impostors}. A channel that passes on one set of stimuli can fail when the radius, stroke "
        "or polarity changes: vary them, and keep only the channels that pass in most variations")
    missed = [c for c, share in shares.items() if share >= REQUIRED_SHARE and c not in got]
    assert not missed, (f"{role}: channels {missed} meet the criteria in at least {REQUIRED_SHARE:.0%} of the "
                        "held-out drawn cases but are not in your list")
