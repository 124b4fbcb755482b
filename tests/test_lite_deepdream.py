"""Lesson 02's claims about the shipped lite `vision` model, as tests with the notebook's thresholds, measured on
photos other than the notebook's (it dreams chelsea at 128 px, and asks its question on chelsea, astronaut and
coffee at 96 px), with the notebook's settings (lr 0.01, 10 steps at each of 3 octaves, shifts up to 8).

A dream raises the dreamed layer's norm several times and stays close to the photo at a small lr; the early
(conv2) and the late (conv4) layer dream differently, each raising its own norm more; the octaves make the
change coarser and the shifts spread it evenly over the pixel grid; and the layer whose dream raises a class
most follows the hierarchy: lines at conv2, corners at conv3, shapes at conv4.
"""

import pytest
import torch

import mi_course
from mi_course.vision.deepdream import deep_dream, dream_step, logit_gains
from mi_course.vision.photos import grid_unevenness, layer_norm, mean_frequency, sample_photo

SIZE, STEPS, OCTAVES, SHIFT = 128, 10, 3, 8
PHOTOS = ("astronaut", "coffee", "rocket")


@pytest.fixture(scope="module")
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


def up(model, dream, photo, layer) -> float:
    return (layer_norm(model, dream[None], layer) / layer_norm(model, photo[None], layer)).item()


def dream(model, photo, layer, **kwargs):
    settings = dict(steps=STEPS, octaves=OCTAVES, shift=SHIFT, progress=False) | kwargs
    return deep_dream(model, photo, layer, **settings)


@pytest.mark.parametrize("name", PHOTOS[:2])
def test_steps_and_dreams_raise_the_norm_and_a_faint_dream_stays_close(vision, name):
    photo = sample_photo(name, size=SIZE)
    x = photo
    for _ in range(20):
        x = dream_step(vision, x, "conv4", lr=0.01)
    assert up(vision, x, photo, "conv4") > 3, "20 steps of lr 0.01 raise conv4's norm more than 3 times"
    assert up(vision, dream(vision, photo, "conv4"), photo, "conv4") > 2
    faint = dream(vision, photo, "conv4", lr=0.001)
    r = torch.corrcoef(torch.stack([faint.flatten(), photo.flatten()]))[0, 1].item()
    assert r > 0.99 and up(vision, faint, photo, "conv4") > 1, f"at lr 0.001: r = {r:.4f}"


@pytest.mark.parametrize("name", PHOTOS[1:])
def test_each_layer_raises_its_own_norm_most_and_octaves_and_shifts_do_what_is_said(vision, name):
    photo = sample_photo(name, size=SIZE)
    early, late = dream(vision, photo, "conv2"), dream(vision, photo, "conv4")
    for layer, own, other in [("conv2", early, late), ("conv4", late, early)]:
        assert layer_norm(vision, own[None], layer) > layer_norm(vision, other[None], layer), layer
    flat = dream(vision, photo, "conv4", steps=STEPS * OCTAVES, octaves=1)
    still = dream(vision, photo, "conv4", steps=STEPS * OCTAVES, octaves=1, shift=0)
    ratio = mean_frequency(late - photo) / mean_frequency(flat - photo)
    assert ratio < 0.8, f"the octaves' change has {ratio:.2f} of the one-octave change's mean frequency"
    ratio = grid_unevenness(flat - photo) / grid_unevenness(still - photo)
    assert ratio < 0.9, f"with shifts the grid unevenness is {ratio:.2f} of the unshifted dream's"


def test_the_layer_that_raises_a_class_most_follows_the_hierarchy(vision):
    photos = [sample_photo(name, size=96) for name in ("hubble_deep_field", "immunohistochemistry", "coins")]
    layers = list(vision.layer_names)
    gains = logit_gains(vision, photos, layers).mean(1)
    best = {name: layers[int(gains[:, vision.classes.index(name)].argmax())] for name in ("line", "corner", "shape")}
    assert best == {"line": "conv2", "corner": "conv3", "shape": "conv4"}, best
