"""The DeepDream helpers (mi_course.vision.deepdream) and the photos and probes they use (mi_course.vision.photos):
their contract (shapes, range, seeds, errors), that they leave no hook, no frozen parameter, no changed mode and
no used-up random state behind (also when a step raises), and that they run on the full-mode architectures at
random weights (lucent's InceptionV1, torchvision's AlexNet) at a small size."""

import numpy as np
import pytest
import torch

import mi_course
from mi_course.vision import deepdream
from mi_course.vision.photos import (
    PHOTOS,
    activation_norm,
    class_logits,
    grid_unevenness,
    layer_activations,
    layer_norm,
    sample_photo,
)


@pytest.fixture(scope="module")
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def cat():
    return sample_photo("chelsea", size=48)


def hooks_on(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def untouched(model) -> bool:
    return hooks_on(model) == 0 and all(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------- photos

def test_sample_photos_are_rgb_in_range_at_the_size_asked():
    for name in ("chelsea", "coffee", "camera"):
        photo = sample_photo(name, size=32)
        assert photo.shape == (3, 32, 32) and photo.dtype == torch.float32
        assert 0 <= photo.min() and photo.max() <= 1 and photo.std() > 0.05
    grey = sample_photo("camera", size=(20, 30))
    assert grey.shape == (3, 20, 30) and torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    full = sample_photo("chelsea")
    assert full.shape == (3, 300, 451), "size=None keeps the photo's own size"
    assert set(PHOTOS) >= {"chelsea", "astronaut", "coffee", "rocket", "camera"}


def test_a_photo_from_a_file_is_cropped_to_the_aspect_not_stretched(tmp_path):
    from PIL import Image

    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, 20:60] = 255  # a white middle half: a centre crop to a square keeps only white
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    photo = sample_photo(tmp_path / "wide.png", size=16)
    assert photo.shape == (3, 16, 16) and photo.min() > 0.95
    assert sample_photo(str(tmp_path / "wide.png")).shape == (3, 40, 80)


def test_bad_photos_and_sizes_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="chelsea"):
        sample_photo("no-such-cat")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        sample_photo(tmp_path / "notes.txt")
    for bad in (0, (3,), (4, 0), 2.5, True):
        with pytest.raises(ValueError, match="size must be"):
            sample_photo("chelsea", size=bad)


# ---------------------------------------------------------------- probes

def test_layer_activations_keep_the_graph_stop_at_the_layer_and_leave_no_hook(vision, cat):
    calls = []
    handle = vision.conv4.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        x = cat[None].clone().requires_grad_(True)
        acts = layer_activations(vision, x, "conv2")
    finally:
        handle.remove()
    assert acts.requires_grad and acts.shape[:2] == (1, 32)
    assert not calls, "the forward pass should stop at conv2: conv4 ran"
    assert untouched(vision)
    assert torch.allclose(layer_norm(vision, cat[None], "conv2"), acts.detach().pow(2).mean(), atol=1e-6)
    assert activation_norm(torch.tensor([[1.0, -3.0]])).item() == 5.0
    with pytest.raises(ValueError, match="no layer 'conv9'.*conv1"):
        layer_activations(vision, cat[None], "conv9")
    assert untouched(vision)


def test_class_logits_and_grid_unevenness(vision, cat):
    logits = class_logits(vision, cat[None])
    assert logits.shape == (1, len(vision.classes))
    with torch.no_grad():
        assert torch.allclose(logits, vision(cat[None]))
    assert grid_unevenness(torch.ones(3, 8, 8)) < 1e-6
    even = torch.zeros(3, 8, 8)
    even[:, ::2, ::2] = 1.0
    assert grid_unevenness(even) > 1.0
    assert grid_unevenness(torch.rand(3, 64, 64)) < 0.1


# ---------------------------------------------------------------- dream_step, octave_pyramid

def test_dream_step_is_one_normalized_uphill_step_and_restores_the_model(vision, cat):
    vision.train()
    try:
        out = deepdream.dream_step(vision, cat, "conv3", lr=0.004)
        assert vision.training, "the model's training mode should be restored"
    finally:
        vision.eval()
    assert out.shape == cat.shape and not out.requires_grad and out is not cat
    inside = (out > 0) & (out < 1)
    assert abs((out - cat).abs()[inside].mean().item() - 0.004) < 0.001, "lr is the mean change per pixel"
    assert layer_norm(vision, out[None], "conv3") > layer_norm(vision, cat[None], "conv3")
    assert untouched(vision)
    for bad, match in [(cat[None], r"\[3, height, width\]"), (cat[:1], r"\[3, height, width\]")]:
        with pytest.raises(ValueError, match=match):
            deepdream.dream_step(vision, bad, "conv3")
    for lr in (0, -1, "0.1", True):
        with pytest.raises(ValueError, match="lr must be"):
            deepdream.dream_step(vision, cat, "conv3", lr=lr)


def test_octave_pyramid_smallest_first_and_its_errors():
    x = torch.rand(3, 50, 70)
    pyramid = deepdream.octave_pyramid(x, 3, 1.4)
    assert [tuple(p.shape[1:]) for p in pyramid] == [(26, 36), (36, 50), (50, 70)]
    assert torch.equal(pyramid[-1], x) and pyramid[-1] is not x
    assert deepdream.octave_sizes(100, 100, 2, 2.0) == [(50, 50), (100, 100)]
    for args, match in [((0, 1.4), "n_octaves"), ((2, 1), "scale"), ((2, 0.5), "scale"), ((9, 1.4), "8 pixels")]:
        with pytest.raises(ValueError, match=match):
            deepdream.octave_pyramid(x, *args)


# ---------------------------------------------------------------- deep_dream

def test_deep_dream_is_seeded_leaves_the_random_state_and_raises_its_layer(vision, cat):
    state = torch.random.get_rng_state()
    a = deepdream.deep_dream(vision, cat, "conv4", steps=3, octaves=2, shift=4, progress=False)
    assert torch.equal(state, torch.random.get_rng_state()), "deep_dream must leave the caller's random state alone"
    b = deepdream.deep_dream(vision, cat, "conv4", steps=3, octaves=2, shift=4, progress=True)
    c = deepdream.deep_dream(vision, cat, "conv4", steps=3, octaves=2, shift=4, seed=1, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == cat.shape and 0 <= a.min() and a.max() <= 1 and not a.requires_grad
    assert layer_norm(vision, a[None], "conv4") > 1.3 * layer_norm(vision, cat[None], "conv4")
    assert untouched(vision)


def test_deep_dream_calls_a_given_step_and_cleans_up_when_it_raises(vision, cat):
    seen = []

    def step(model, image, layer, lr):
        seen.append((tuple(image.shape), layer, lr))
        return deepdream.dream_step(model, image, layer, lr)
    deepdream.deep_dream(vision, cat, "conv2", steps=2, lr=0.02, octaves=2, progress=False, step=step)
    assert seen == [((3, 34, 34), "conv2", 0.02)] * 2 + [((3, 48, 48), "conv2", 0.02)] * 2

    def broken(model, image, layer, lr):
        layer_activations(model, image[None], layer)
        raise RuntimeError("a learner's step fails")
    with pytest.raises(RuntimeError, match="learner"):
        deepdream.deep_dream(vision, cat, "conv2", steps=2, octaves=1, progress=False, step=broken)
    assert untouched(vision) and not vision.training


def test_deep_dream_rejects_bad_arguments_before_dreaming(vision, cat):
    for kwargs, match in [({"steps": 0}, "steps"), ({"shift": -1}, "shift"), ({"lr": 0}, "lr"),
                          ({"octaves": 0}, "n_octaves"), ({"octave_scale": 1.0}, "scale")]:
        with pytest.raises(ValueError, match=match):
            deepdream.deep_dream(vision, cat, "conv4", progress=False, **kwargs)
    with pytest.raises(ValueError, match="no layer"):
        deepdream.deep_dream(vision, cat, "mixed4c", progress=False)
    assert untouched(vision)


def test_logit_gains_per_layer_photo_and_class(vision, cat):
    photos = [cat, sample_photo("coffee", size=(40, 56))]
    gains = deepdream.logit_gains(vision, photos, ["conv2", "conv4"], steps=2, octaves=1)
    assert gains.shape == (2, 2, len(vision.classes))
    dream = deepdream.deep_dream(vision, photos[1], "conv4", steps=2, octaves=1, progress=False)
    expected = class_logits(vision, dream[None])[0] - class_logits(vision, photos[1][None])[0]
    assert torch.allclose(gains[1, 1], expected, atol=1e-4)
    with pytest.raises(ValueError, match="at least one photo"):
        deepdream.logit_gains(vision, [], ["conv2"])


# ---------------------------------------------------------------- full-mode architectures at random weights

def test_deep_dream_on_lucent_inceptionv1_at_random_weights():
    from lucent.modelzoo import inceptionv1

    torch.manual_seed(0)
    model = inceptionv1(pretrained=False).eval()
    photo = sample_photo("astronaut", size=64)
    dream = deepdream.deep_dream(model, photo, "mixed3b", steps=2, lr=0.02, octaves=2, shift=4, progress=False)
    assert dream.shape == photo.shape and torch.isfinite(dream).all() and not torch.equal(dream, photo)
    # a learner's deep_dream calls dream_step inside the dream: the same faster layers, set up once
    nested = deepdream.deep_dream(model, photo, "mixed3b", steps=2, lr=0.02, octaves=2, shift=4, progress=False,
                                  step=deepdream.dream_step)
    assert torch.allclose(nested, dream, atol=1e-5)
    assert all("forward" not in vars(m) for m in model.modules()), "the faster layers must be undone"
    assert layer_norm(model, dream[None], "mixed3b") > layer_norm(model, photo[None], "mixed3b")
    assert class_logits(model, photo[None]).shape == (1, 1008), "InceptionV1's logits, read before its softmax"
    assert untouched(model)


def test_deep_dream_on_torchvision_alexnet_at_random_weights():
    from torchvision.models import alexnet

    torch.manual_seed(0)
    model = alexnet(weights=None).eval()
    photo = sample_photo("coffee", size=96)
    dream = deepdream.deep_dream(model, photo, "features.8", steps=2, lr=0.02, octaves=2, shift=4, progress=False)
    assert dream.shape == photo.shape and 0 <= dream.min() and dream.max() <= 1
    assert layer_norm(model, dream[None], "features_8") > layer_norm(model, photo[None], "features_8")
    assert untouched(model)
