"""The feature-visualization engine (mi_course.vision.featurevis.render): its contract (shapes, range, seeds,
objectives, errors), that it stops at the deepest layer it needs and leaves no hook behind, and that it runs on
the full-mode architectures at random weights."""

import pytest
import torch
from lucent.optvis import objectives

import mi_course
from mi_course.vision.featurevis import module_names, render
from mi_course.vision.tuning import channel_responses


@pytest.fixture(scope="module")
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


def hooks_on(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_render_returns_one_image_per_objective_in_range_and_is_seeded(vision):
    imgs = render(vision, ["conv4:3", "conv3:7"], steps=8, size=32, progress=False)
    assert imgs.shape == (2, 3, 32, 32) and imgs.dtype == torch.float32
    assert imgs.min() >= 0 and imgs.max() <= 1
    again = render(vision, ["conv4:3", "conv3:7"], steps=8, size=32, progress=False)
    other = render(vision, ["conv4:3", "conv3:7"], steps=8, size=32, progress=False, seed=1)
    assert torch.equal(imgs, again) and not torch.equal(imgs, other)
    state = torch.random.get_rng_state()
    render(vision, "conv4:3", steps=2, size=32, progress=False)
    assert torch.equal(state, torch.random.get_rng_state()), "render must leave the caller's random state alone"
    assert hooks_on(vision) == 0 and all(p.requires_grad for p in vision.parameters())


def test_rendering_raises_its_channel(vision):
    before = render(vision, "conv4:10", steps=1, size=48, progress=False, lr=1e-6)
    after = render(vision, "conv4:10", steps=64, size=48, progress=False)
    r0, r1 = channel_responses(vision, torch.cat([before, after]), "conv4")[:, 10]
    assert r1 > 2 * r0 + 1e-3, f"64 steps took channel 10 from {r0:.3f} to only {r1:.3f}"


def test_objectives_of_every_kind_and_a_diverse_batch(vision):
    objs = [objectives.neuron("conv4", 5), objectives.direction("conv3", torch.randn(128)),
            objectives.channel("conv4", 1) - objectives.channel("conv4", 2)]
    assert render(vision, objs, steps=3, size=32, progress=False).shape == (3, 3, 32, 32)
    diverse = render(vision, objectives.channel("conv4", 1) - 10 * objectives.diversity("conv4"), batch=3,
                     steps=3, size=32, progress=False)
    assert diverse.shape == (3, 3, 32, 32) and not torch.equal(diverse[0], diverse[1])


def test_the_forward_pass_stops_at_the_deepest_layer_read(vision):
    calls = {"conv3": 0, "conv4": 0}
    handles = [getattr(vision, n).register_forward_hook(lambda m, i, o, n=n: calls.__setitem__(n, calls[n] + 1))
               for n in calls]
    try:
        render(vision, "conv2:4", steps=5, size=32, progress=False)
    finally:
        for h in handles:
            h.remove()
    assert calls == {"conv3": 1, "conv4": 1}, f"layers after conv2 ran {calls} times (only the one probing pass may)"


def test_bad_input_gets_clear_errors_and_leaves_no_hook(vision):
    for bad, match in [("conv4", "layer:channel"), ("conv4:x", "layer:channel"), (3, "lucent Objective"),
                       ([], "empty")]:
        with pytest.raises(ValueError, match=match):
            render(vision, bad, steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        render(vision, "conv9:1", steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="param must be"):
        render(vision, "conv4:1", steps=1, size=32, param="cppn", progress=False)
    with pytest.raises(ValueError, match="batch"):
        render(vision, ["conv4:1"], batch=2, steps=1, size=32, progress=False)

    def broken(hook):
        hook("conv3")
        raise RuntimeError("a learner's objective fails")
    with pytest.raises(RuntimeError, match="learner"):
        render(vision, objectives.Objective(broken), steps=2, size=32, progress=False)
    assert hooks_on(vision) == 0 and all(p.requires_grad for p in vision.parameters())


def test_lucent_names_every_inceptionv1_layer_and_render_runs_at_random_weights():
    from lucent.modelzoo import inceptionv1

    torch.manual_seed(0)
    model = inceptionv1(pretrained=False).eval()
    names = module_names(model)
    assert "mixed3b" in names and "mixed4a" in names
    imgs = render(model, ["mixed3b:379", "mixed3b:406"], steps=2, size=64, progress=False)
    assert imgs.shape == (2, 3, 64, 64) and torch.isfinite(imgs).all()
    assert hooks_on(model) == 0
