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


def test_the_first_convolutions_phase_gradient_is_autograds(vision):
    from mi_course.vision import featurevis as fv

    torch.manual_seed(0)
    for k, h, w, cin, cout in [(5, 68, 68, 3, 16), (3, 33, 30, 3, 8), (4, 17, 19, 1, 5)]:
        weight, bias = torch.randn(cout, cin, k, k), torch.randn(cout)
        x = torch.randn(2, cin, h, w, requires_grad=True)
        y = torch.nn.functional.conv2d(x, weight, bias)
        g = torch.randn_like(y)
        expected, = torch.autograd.grad(y, x, g)
        x2 = x.detach().requires_grad_(True)
        y2 = fv._FewInputsConv.apply(x2, weight, bias, fv._phase_weight(weight))
        got, = torch.autograd.grad(y2, x2, g)
        assert torch.equal(y, y2) and torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())

    # and through the lite model, inside a render's context: the same image gradient as the plain convolution
    def image_gradient(phases: bool):
        saved = fv._phases_apply
        if not phases:
            fv._phases_apply = lambda module: False
        try:
            x = torch.rand(3, 3, 64, 64, requires_grad=True)
            with fv._frozen(vision), fv._fast_layers(vision), fv._channels_last(vision):
                return torch.autograd.grad(vision.features(x)[:, :8].mean(), x)[0]
        finally:
            fv._phases_apply = saved
    torch.manual_seed(1)
    fast = image_gradient(True)
    torch.manual_seed(1)
    plain = image_gradient(False)
    assert torch.allclose(fast, plain, rtol=1e-4, atol=1e-4 * plain.abs().max())
    assert hooks_on(vision) == 0 and all(p.requires_grad for p in vision.parameters())


def test_standard_transforms_are_lucents_in_one_resampling(vision, monkeypatch):
    """The fused warp applies the draws lucent's chain would (pad, jitter, rotate, jitter) to within
    interpolation error; the lite CNNs' standard keeps the image's size, InceptionV1's ends at 224."""
    import numpy as np
    from kornia.geometry.transform import get_rotation_matrix2d, translate, warp_affine

    from mi_course.vision import featurevis as fv

    torch.manual_seed(0)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=64, mode="bicubic", align_corners=True)
    for dx1, dy1, angle, dx2, dy2 in [(1, 0, 5, 0, 1), (0, 1, -3, 1, 1)]:
        x = torch.nn.functional.pad(image, [4] * 4, value=0.5)
        x = translate(x, torch.tensor([[dx1, dy1]]).float())
        x = warp_affine(x, get_rotation_matrix2d(torch.tensor([[35.5, 35.5]]), torch.tensor([float(angle)]),
                                                 torch.ones(1, 2)), dsize=(72, 72))
        lucent = translate(x, torch.tensor([[dx2, dy2]]).float())
        draws = iter([dx1, dy1, 1.0, angle, dx2, dy2])
        monkeypatch.setattr(np.random, "choice", lambda options: next(draws))
        fused = fv._Warp(4, 2, [1.0], [angle], 2)(image)
        monkeypatch.undo()
        inside = (slice(None), slice(None), slice(8, -8), slice(8, -8))
        assert fused.shape == lucent.shape and (fused - lucent)[inside].abs().max() < 0.01

    from lucent.modelzoo import inceptionv1
    assert fv._transforms("standard", vision, 48)[0](torch.rand(2, 3, 48, 48)).shape == (2, 3, 48, 48)
    assert fv._transforms("standard", inceptionv1(pretrained=False), 128)[0](torch.rand(2, 3, 128, 128)).shape == (
        2, 3, 224, 224)


def test_render_follows_the_models_device_not_lucents(vision, monkeypatch):
    """lucent puts its FFT scale and its transforms' matrices on "cuda:0" whenever CUDA exists; a model on
    another device (the CPU on a Colab GPU runtime, or a second GPU) must still render. Simulated here by
    pointing lucent's device at "meta": every tensor lucent made there would make the render fail."""
    from lucent.optvis import transform
    from lucent.optvis.param import spatial

    for module in (spatial, transform):
        monkeypatch.setattr(module, "device", torch.device("meta"))
    lucent_chain = [transform.jitter(2), transform.random_rotate([-5, 5])]
    for param in ("fourier", "pixel"):
        for transforms in ("standard", lucent_chain):
            imgs = render(vision, "conv4:3", steps=2, size=32, param=param, transforms=transforms, progress=False)
            assert imgs.device.type == "cpu" and torch.isfinite(imgs).all()
    assert spatial.device == torch.device("meta") and transform.device == torch.device("meta"), (
        "render must give lucent its own device back")


def test_redirected_relu_nests_and_undoes_only_its_own_swaps(vision):
    """A learner's loop inside ``with redirected_relu(model):`` may call ``render`` (which swaps the same
    layers): the inner block must leave the outer one's swaps in place and the outer one undo them all."""
    from lucent.modelzoo import inceptionv1

    from mi_course.vision.featurevis import redirected_relu

    for model in (vision, inceptionv1(pretrained=False).eval()):
        def swapped():
            return sum("forward" in vars(m) for m in model.modules())

        with redirected_relu(model):
            outer = swapped()
            with redirected_relu(model):
                assert swapped() == outer
            assert swapped() == outer > 0, "the inner block undid the outer block's swaps"
        assert swapped() == 0, "a nested redirected_relu left swapped layers behind"
    with redirected_relu(vision):
        render(vision, "conv4:3", steps=2, size=32, progress=False)
        assert sum("forward" in vars(m) for m in vision.modules()) > 0
    assert sum("forward" in vars(m) for m in vision.modules()) == 0


def test_both_spellings_of_a_layer_work_everywhere(vision):
    """The registry names a wrapped torchvision model's layers by module path ("model.features.4"), lucent by
    the path joined with "_": the engine and both probes take either, and the probes agree."""
    import torchvision

    from mi_course.models.full import Normalized
    from mi_course.vision.activations import layer_activations, layer_output

    torch.manual_seed(0)
    alexnet = Normalized(torchvision.models.alexnet()).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        reference = alexnet.model.features[:5]((x - alexnet.mean) / alexnet.std)
    for layer in ("model.features.4", "model_features_4"):
        measured, kept = layer_activations(alexnet, x, layer), layer_output(alexnet, x.requires_grad_(True), layer)
        assert kept.requires_grad and torch.allclose(measured, kept.detach(), atol=1e-6)
        assert torch.allclose(measured, reference, atol=1e-5), "the probe must read model.features.4's output"
        assert render(alexnet, f"{layer}:3", steps=2, size=32, progress=False).shape == (1, 3, 32, 32)
    for bad in ("model.features.99", "conv9"):
        with pytest.raises(ValueError, match="no layer"):
            layer_activations(alexnet, x, bad)
        with pytest.raises(ValueError, match="no layer"):
            render(alexnet, f"{bad}:3", steps=2, size=32, progress=False)
    assert hooks_on(alexnet) == 0


def test_shift_kept_is_one_where_a_roll_changes_nothing_and_checks_its_arguments(vision):
    from mi_course.vision.shift import centre_activation, shift_kept

    images = render(vision, [objectives.neuron("conv4", c) for c in (0, 5)], steps=16, size=32, progress=False)
    # a roll by the whole image is the identity, a uniform image looks the same after any roll
    assert torch.allclose(shift_kept(vision, images, "conv4", [0, 5], [0, 32]), torch.ones(2, 2))
    uniform = torch.full((1, 3, 32, 32), 0.3)
    assert centre_activation(vision, uniform, "conv4", [113]) > 0  # measured 1.37, the strongest of conv4
    assert torch.allclose(shift_kept(vision, uniform, "conv4", [113], [1, 5]), torch.ones(2, 1))
    # a partly shifted image does change: the fraction is not 1 for both images
    assert not torch.allclose(shift_kept(vision, images, "conv4", [0, 5], [3]), torch.ones(1, 2))
    for bad, match in (([0], "one channel per image"), ([0, 128], "0..127")):
        with pytest.raises(ValueError, match=match):
            shift_kept(vision, images, "conv4", bad, [1])
    with pytest.raises(ValueError, match="shifts"):
        shift_kept(vision, images, "conv4", [0, 5], [-1])
    with pytest.raises(ValueError, match="spatial"):
        centre_activation(vision, images, "fc", [0, 5])
    # a neuron the image never excites has no fraction to keep (on black, conv4:0 and 5 are 0 at the centre)
    dark = torch.zeros(2, 3, 32, 32)
    assert (centre_activation(vision, dark, "conv4", [0, 5]) == 0).all()
    assert torch.isnan(shift_kept(vision, dark, "conv4", [0, 5], [1])).all()
