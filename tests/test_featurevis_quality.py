"""What the feature-visualization engine's images are worth, on the shipped lite ``vision`` (issue 10, item 1):
renders beat the data set, each detector's render is its own, and the lesson's claim about naive pixel ascent
(noisy, brittle under a shift) against the Fourier parameterization with transformations.

Thresholds are the claims themselves (more than the data set, more than the other channels, more or less than
half); the numbers measured for them, with the margins over other seeds, are in the comments. One render of
each kind, shared by the tests (module fixtures), seed 0.
"""

import pytest
import torch
from lucent.optvis import objectives

import mi_course
from mi_course.organisms.images import generate
from mi_course.vision.featurevis import render
from mi_course.vision.shift import shift_kept
from mi_course.vision.tuning import channel_responses

LAYER = "conv4"
# the data set the model never saw: training streams use seeds (0, step), the card's measurements
# (0, 1000002) and 10000-10002
DATA_SEED = (2024, 7)
SHIFT = 3  # pixels; why not 4: test_naive_pixel_ascent_is_brittle_under_a_shift


@pytest.fixture(scope="module")
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def card():
    return mi_course.model_card("vision", mode="lite")


@pytest.fixture(scope="module")
def detectors(card) -> list[int]:
    """Every conv4 curve detector the card names (21: the 8 planted ones and 13 the network grew)."""
    found = card["mechanism"]["curve_detectors"]
    assert found["layer"] == LAYER
    return list(found["channels"])


@pytest.fixture(scope="module")
def planted(card, detectors) -> list[int]:
    """The 8 planted detectors, one per 45 degrees (the card: 'conv4 channels 0-7: unit k trained ... to fire
    on arcs of orientation bin k')."""
    assert card["training"]["aux_heads"]["curve_units"].startswith("conv4 channels 0-7")
    channels = list(range(8))
    assert set(channels) <= set(detectors)
    return channels


@pytest.fixture(scope="module")
def data_max(vision) -> torch.Tensor:
    """Each conv4 channel's strongest response (max over space) to 2,000 generated images, (128,)."""
    images, _, _ = generate(2000, seed=DATA_SEED, fish_cases="species")  # the shipped model's training classes
    return channel_responses(vision, images, LAYER).amax(0)


@pytest.fixture(scope="module")
def channel_renders(vision, planted):
    """The planted detectors' channel objectives ("conv4:k"), Fourier + standard transforms, 512 steps."""
    return render(vision, [f"{LAYER}:{c}" for c in planted], steps=512, size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def neuron_renders(vision, detectors):
    """Every card detector's centre neuron, Fourier + standard transforms, 256 steps."""
    return render(vision, [objectives.neuron(LAYER, c) for c in detectors], steps=256, size=64, seed=0,
                  progress=False)


@pytest.fixture(scope="module")
def pixel_renders(vision, planted):
    """Naive ascent on the planted detectors' centre neurons: pixels, no transforms, 256 steps."""
    return render(vision, [objectives.neuron(LAYER, c) for c in planted], steps=256, size=64, param="pixel",
                  transforms="none", seed=0, progress=False)


def own_response(model, images, channels) -> torch.Tensor:
    """Image i's response (max over space) in channel ``channels[i]``."""
    return channel_responses(model, images, LAYER)[torch.arange(len(channels)), torch.tensor(channels)]


def test_each_planted_detectors_render_beats_every_dataset_image(vision, planted, channel_renders, data_max):
    # measured (seed 0): 1.20-1.83 x the data-set maximum (conv4:1 lowest); seeds 0-4: at least 1.20, medians
    # 1.51-1.83. Not so for the 13 detectors the network grew itself: their channel renders (512 steps, seeds
    # 0-2) reach 0.46-1.81 x: conv4:18, 36 and 59 0.46-0.74 in every seed, 55, 86, 96, 105 and 118 under 1 in
    # at least one: a channel objective is a mean over space and tiles the image with middling curves. Their
    # neuron renders do beat the data set (next test)
    ratio = own_response(vision, channel_renders, planted) / data_max[planted]
    weak = {c: round(float(r), 2) for c, r in zip(planted, ratio) if r <= 1}
    assert not weak, (f"the channel render of these planted detectors excites its channel less than the strongest "
                      f"of 2,000 data-set images (render / data-set max): {weak}")


def test_every_card_detectors_neuron_render_beats_every_dataset_image(vision, detectors, neuron_renders, data_max):
    # measured (seed 0): 1.44-2.99 x (conv4:7 lowest); seeds 0-4: at least 1.15 (conv4:7, seed 1)
    ratio = own_response(vision, neuron_renders, detectors) / data_max[detectors]
    weak = {c: round(float(r), 2) for c, r in zip(detectors, ratio) if r <= 1}
    assert not weak, (f"the centre-neuron render of these card detectors excites its channel less than the "
                      f"strongest of 2,000 data-set images (render / data-set max): {weak}")


def test_each_planted_render_is_its_own_detectors(vision, planted, channel_renders, data_max):
    """Render i against detector j, each channel's response over its data-set maximum: every image excites its
    own channel more than the other channels (rows), and every channel is excited by its own render more than
    by the other renders (columns)."""
    # measured (seed 0): the diagonal beats the rest of its row by at least 1.09 x and of its column by 1.27 x;
    # seeds 0-4: at least 1.09 and 1.01 (seed 2), seeds 0-9: 1.04 and 1.01. Neighbouring detectors are 45
    # degrees apart and about 30 degrees wide; at 256 steps a column fails in 2 seeds of 10
    m = channel_responses(vision, channel_renders, LAYER)[:, planted] / data_max[planted]
    diag, off = m.diag(), m.masked_fill(torch.eye(len(planted), dtype=torch.bool), float("-inf"))
    rows, cols = diag / off.amax(1), diag / off.amax(0)
    assert (rows > 1).all(), (f"render i excites another detector more than detector i (own / strongest other, "
                              f"by render): {dict(zip(planted, rows.tolist()))}")
    assert (cols > 1).all(), (f"detector j responds to another render more than to its own (own / strongest "
                              f"other, by detector): {dict(zip(planted, cols.tolist()))}")


def high_frequency(images) -> torch.Tensor:
    """The share of each image's (mean-removed) spectral power above 0.25 cycles per pixel, over colours."""
    x = images - images.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs() ** 2
    f = torch.fft.fftfreq(images.shape[-1])
    high = (f[:, None] ** 2 + f[None, :] ** 2).sqrt() > 0.25
    return (power[..., high].sum(-1) / power.flatten(-2).sum(-1)).mean(-1)


def test_naive_pixel_ascent_is_brittle_under_a_shift(vision, planted, pixel_renders, neuron_renders, detectors):
    """The lesson's claim (01, "...and brittle"): naive ascent (pixels, no transformations) finds a pattern
    that loses more than half of its activation when moved by a pixel or a few, and partly recovers only
    where a shift lines it up with the network's 2x2 pooling grids again (a zig-zag, highest at 4 px); the
    Fourier render with transformations falls smoothly and keeps most of it up to 4 px.

    Measured as here (``shift_kept``: conv4's centre neurons, the 8 planted detectors, the fixtures' renders),
    the fraction kept, each seed's median over the 8 (the range over all renders), seeds 0-4 for 1-4 px and
    0-2 for 5-8 px:

        shift   pixel, no transforms    Fourier, standard transforms
        1 px    0.36-0.42 (0.24-0.56)   0.93-1.01 (0.84-1.11)
        2 px    0.48-0.52 (0.31-0.62)   0.82-0.91 (0.67-1.08)
        3 px    0.22-0.30 (0.13-0.41)   0.73-0.81 (0.55-0.95)
        4 px    0.56-0.60 (0.49-0.68)   0.66-0.69 (0.51-0.82)
        5 px    0.19-0.22 (0.12-0.32)   0.54-0.60 (0.46-0.70)
        6 px    0.21-0.22 (0.15-0.37)   0.41-0.45 (0.34-0.60)
        7 px    0.09-0.10 (0.03-0.21)   0.31-0.32 (0.22-0.47)
        8 px    0.18-0.19 (0.08-0.29)   0.20-0.21 (0.12-0.33)

    The notebook's own setting (its 4 stretch detectors, 128 steps, seeds 0-4) gives the same profile.

    Issue 10 words the naive half at 4 pixels, and there it does NOT hold on `vision`: 4 px is a whole step
    of conv3's grid (conv1's and conv2's pools), and 39 of 40 naive renders keep more than half, about as
    much as the Fourier ones. So the test checks the profile: below half at every shift from 1 to 8 px but
    2 and 4 (3 px: all 40 renders), the zig-zag at 4 px for every render, and the Fourier render above half to
    4 px and falling at every step.
    """
    fourier = neuron_renders[: len(planted)]
    assert detectors[: len(planted)] == planted
    shifts = list(range(1, 9))
    naive, robust = (shift_kept(vision, r, LAYER, planted, shifts) for r in (pixel_renders, fourier))
    fmt = lambda t: [round(v, 2) for v in t.tolist()]  # noqa: E731
    for s in (1, 3, 5, 6, 7, 8):
        k = naive[s - 1]
        assert k.median() < 0.5, (f"naive pixel ascent kept {fmt(k)} of its centre-neuron activation under a "
                                  f"{s}-pixel shift: expected less than half (median)")
    assert (naive[SHIFT - 1] < 0.5).sum() >= 6, (
        f"naive pixel ascent kept {fmt(naive[SHIFT - 1])} under a {SHIFT}-pixel shift: expected less than half "
        "for at least 6 of 8")
    assert (naive[3] > naive[[2, 4]].amax(0)).all(), (
        f"naive renders should keep more at 4 px (a whole step of conv3's grid) than at 3 or 5 px, every one: "
        f"3 px {fmt(naive[2])}, 4 px {fmt(naive[3])}, 5 px {fmt(naive[4])}")
    for s in range(1, 5):
        k = robust[s - 1]
        assert k.median() > 0.5 and (k > 0.5).sum() >= 6, (
            f"the Fourier render with transformations kept only {fmt(k)} under a {s}-pixel shift: expected "
            "more than half (median, and at least 6 of 8)")
    medians = robust.median(1).values
    assert (medians[1:] < medians[:-1]).all(), (
        f"the Fourier render's median kept should fall at every step from 1 to 8 px, got {fmt(medians)}")


def test_naive_pixel_ascent_is_high_frequency_noise(planted, pixel_renders, neuron_renders):
    # measured (seeds 0-4): 0.57-0.64 of the power above 0.25 cycles/pixel for pixel renders, 0.10-0.16 for
    # Fourier ones; per detector the naive share is at least 3.8 x the Fourier one
    naive, fourier = high_frequency(pixel_renders), high_frequency(neuron_renders[: len(planted)])
    assert (naive > 2 * fourier).all(), (
        f"high-frequency share, naive {[round(v, 3) for v in naive.tolist()]} vs Fourier "
        f"{[round(v, 3) for v in fourier.tolist()]}: naive pixel ascent should be at least twice as high")
