"""Graded tests for lesson 02 (DeepDream).

Expected values come from another route than the reference solution: steps worked out by hand (the chain rule
through 1x1 convolutions written as einsums) on toy CNNs whose weights are set here, octave sizes computed from
the rule, stand-in dream steps whose effect on a correct deep_dream is known exactly (the identity gives the
photo back; adding a constant adds it once per step; a mark at one pixel lands where the documented shifts put
it), and properties measured on the shipped lite `vision` model with the test's own forward hook (the dream
raises its layer's norm, keeps size and range, stays close to the photo at low strength, and an early and a
late layer dream differently). The investigation is graded by what the layers' dreams do to the model's
logits, measured with the course's deep_dream on photos the notebook does not use.

The learner's functions run in a *driver* (``_run`` below, see ``mi_course.grading.judge.drive``) wherever a test
needs what does not cross as data: the toy CNN and the InceptionV1 stand-in (built there, named by a str), the
stand-ins for dream_step and octave_pyramid, the hooks left on a model. It returns data, and every check runs in
the test.
"""

from functools import cache

import pytest
import torch

import mi_course
from mi_course.grading.asserts import assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive
from mi_course.grading.secret_seed import learner_generator, run_seed
from mi_course.models.lite_vision import LiteCNN

LESSON = "l02_deepdream"


@cache
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


@cache
def _photo(name: str, size: int) -> torch.Tensor:
    from mi_course.vision.photos import sample_photo

    return sample_photo(name, size=size)


def photo(name: str = "chelsea", size: int = 64) -> torch.Tensor:
    return _photo(name, size).clone()  # a learner's in-place change must not reach the next test


def hooks_on(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def norm_by_hand(model, image: torch.Tensor, layer: str) -> float:
    """The mean squared activation of ``layer`` for one image, with this test's own hook (lite models take
    [0, 1] as they are)."""
    out = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.append(o))
    try:
        with torch.no_grad():
            model(image[None])
    finally:
        handle.remove()
    return out[0].pow(2).mean().item()


# ---------------------------------------------------------------- toy models, stepped by hand

W1 = torch.tensor([[1.0, -0.5, 0.25], [-0.5, 1.0, 0.5]])
B1 = torch.tensor([-0.3, 0.1])
W2 = torch.tensor([[0.5, -1.0], [1.0, 0.5]])
B2 = torch.tensor([0.2, -0.1])


def toy_cnn() -> LiteCNN:
    """Two 1x1 convolutions with ReLUs (``conv1``: 3 -> 2 channels, ``conv2``: 2 -> 2), no normalization, so
    each pixel's activations are ``relu(W1 x + B1)`` and ``relu(W2 a1 + B2)``."""
    config = {"kind": "cnn", "in_channels": 3, "mean": [0.0] * 3, "std": [1.0] * 3, "global_pool": "max",
              "convs": [{"name": "conv1", "out": 2, "kernel": 1, "pool": 1},
                        {"name": "conv2", "out": 2, "kernel": 1, "pool": 1}], "classes": ["a", "b"]}
    model = LiteCNN(config)
    with torch.no_grad():
        model.conv1.weight.copy_(W1[:, :, None, None])
        model.conv1.bias.copy_(B1)
        model.conv2.weight.copy_(W2[:, :, None, None])
        model.conv2.bias.copy_(B2)
    return model.eval()


def toy_image(seed: int = 0, lo: float = 0.1, hi: float = 0.9) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(3, 8, 10, generator=torch.Generator().manual_seed(seed))


def uphill_by_hand(x: torch.Tensor, layer: str, scale=None, squared: bool = True) -> torch.Tensor:
    """The direction of steepest ascent of the mean squared activation (any positive multiple of it), by the
    chain rule: d/dx of sum(a^2)/2 is W^T a where the ReLU is on. ``scale`` divides the input channel-wise
    first (the ImageNet normalization's std); ``squared=False`` gives the gradient of the plain mean."""
    s = torch.ones(3) if scale is None else scale
    pre1 = torch.einsum("oc,chw->ohw", W1 / s, x) + B1[:, None, None]
    a1 = pre1.clamp(min=0)
    on1 = (pre1 > 0).float()
    if layer == "conv1":
        back = a1 if squared else on1
    else:
        pre2 = torch.einsum("oc,chw->ohw", W2, a1) + B2[:, None, None]
        a2 = pre2.clamp(min=0)
        back = torch.einsum("oc,ohw->chw", W2, a2 if squared else (pre2 > 0).float()) * on1
    return torch.einsum("oc,ohw->chw", W1 / s, back)


def accepted_steps(x, direction, lr):
    """The two accepted normalizations of the gradient: by its mean absolute value, or by its std."""
    return {"mean absolute value": (x + lr * direction / direction.abs().mean()).clamp(0, 1),
            "standard deviation": (x + lr * direction / direction.std()).clamp(0, 1)}


def matches(out, candidates: dict, atol: float = 2e-4) -> bool:
    return any(torch.allclose(out, c, atol=atol) for c in candidates.values())


def check_one_step(out, x, lr, expected: dict, wrong: dict, what: str) -> None:
    """Name the learner's mistake if ``out`` is one of the ``wrong`` steps; else it must be an ``expected`` one."""
    assert_shape(out, tuple(x.shape), what)
    assert not out.requires_grad, f"{what} returns a tensor that requires grad: detach the result"
    change = out - x
    if change.abs().max() < 1e-9:
        pytest.fail(f"{what} did not change the image")
    for mistake, candidates in wrong.items():
        if matches(out, candidates):
            pytest.fail(f"{what}: {mistake}")
    if matches(out, expected):
        return
    direction = next(iter(expected.values())) - x
    cosine = torch.nn.functional.cosine_similarity(change.flatten(), direction.flatten(), dim=0).item()
    if cosine > 0.99:
        pytest.fail(f"{what} steps the right way but moves a pixel by {change.abs().mean():.2g} on average, "
                    f"not lr = {lr}: divide the gradient by its mean absolute value (the gradient is not "
                    "normalized)")
    pytest.fail(f"{what} is wrong (largest difference {min((out - c).abs().max() for c in expected.values()):.3g}"
                "): ascend the gradient of acts.pow(2).mean() at that layer, divided by its mean absolute value")


# ---------------------------------------------------------------- running the learner's functions

def built(model):
    """The model a test names: the test-local models (no codec can send them) are named by a str and built
    where the learner's code runs; a shipped model crosses as it is."""
    if model == "toy":
        return toy_cnn()
    if model == "inception":
        return InceptionV1().eval()
    return model


def stand_ins(monkeypatch, impl, stand_in):
    """Put stand-ins in the learner's module: None, none; "course", the course's dream_step and octave_pyramid
    (deep_dream graded on its own); else a FakeStep doing ``CHANGES[stand_in]`` and the course's octave_pyramid.
    Returns the FakeStep (or None)."""
    from mi_course.vision import deepdream

    if stand_in is None:
        return None
    fake = None if stand_in == "course" else FakeStep(CHANGES[stand_in])
    monkeypatch.setattr(impl, "dream_step", deepdream.dream_step if fake is None else fake, raising=False)
    monkeypatch.setattr(impl, "octave_pyramid", deepdream.octave_pyramid, raising=False)
    return fake


def _run(impl, stand_in, name, model, *args, **kwargs):
    """Driver: ``impl.<name>(model, *args, **kwargs)`` with ``stand_ins(..., stand_in)``; its value, the hooks
    then on the model, and the calls FakeStep saw (None without one)."""
    model = built(model)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake = stand_ins(monkeypatch, impl, stand_in)
        value = getattr(impl, name)(model, *args, **kwargs)
    return {"value": value, "hooks": hooks_on(model), "calls": None if fake is None else fake.calls}


def _hooks_after_rejected_calls(impl, stand_in, name, model, calls):
    """Driver: ``impl.<name>(model, *args, **kwargs)`` for each ``(args, kwargs)`` of ``calls`` on one model (the
    test has checked that each raises a ValueError), then the hooks left on it."""
    model = built(model)
    with pytest.MonkeyPatch.context() as monkeypatch:
        stand_ins(monkeypatch, impl, stand_in)
        for args, kwargs in calls:
            try:
                getattr(impl, name)(model, *args, **kwargs)
            except Exception:  # noqa: BLE001 - what each call raises is checked in the test
                pass
    return hooks_on(model)


def remote(impl, name, stand_in=None):
    """``impl.<name>`` run by the driver: called as the learner's function, it returns ``{"value", "hooks",
    "calls"}``; the learner's exceptions come through."""
    return lambda model, *args, **kwargs: drive(impl, _run, stand_in, name, model, *args, **kwargs)


# ---------------------------------------------------------------- dream_step

@pytest.mark.exercise("dream_step", points=2)
@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_dream_step_by_hand_on_a_toy_cnn_and_named_mistakes(impl, layer):
    model, x, lr = "toy", toy_image(), 0.02  # toy_cnn(), built where the learner's code runs
    got = call_unmutated(remote(impl, "dream_step"), model, x, layer, lr)
    out = got["value"]
    assert got["hooks"] == 0, "a hook is still on the model after dream_step: remove it (in a finally block)"
    d = uphill_by_hand(x, layer)
    other = "conv2" if layer == "conv1" else "conv1"
    wrong = {"it steps downhill (gradient descent): DeepDream ASCENDS the activation norm, image + lr * g":
             accepted_steps(x, -d, lr),
             f"it follows {other}'s activations: read the layer you were given, {layer}":
             accepted_steps(x, uphill_by_hand(x, other), lr),
             "it ascends the mean of the activations: the objective is the mean of their SQUARES":
             accepted_steps(x, uphill_by_hand(x, layer, squared=False), lr)}
    check_one_step(out, x, lr, accepted_steps(x, d, lr), wrong, f"dream_step(toy, x, {layer!r}, lr={lr})")


@pytest.mark.exercise("dream_step", points=1)
def test_dream_step_clamps_to_the_valid_range(impl):
    model, x, lr = "toy", toy_image(1, 0.0, 1.0), 0.3
    out = remote(impl, "dream_step")(model, x, "conv1", lr)["value"]
    if out.max() > 1 + 1e-6 or out.min() < -1e-6:
        pytest.fail(f"dream_step returns values in [{out.min():.2f}, {out.max():.2f}]: clamp the image to [0, 1]")
    check_one_step(out, x, lr, accepted_steps(x, uphill_by_hand(x, "conv1"), lr), {},
                   f"dream_step(toy, x, 'conv1', lr={lr})")


class InceptionV1(torch.nn.Module):
    """Named as lucent's InceptionV1, so it takes its input as lucent's does, x * 255 - 117 (input_transform
    tells by the class name): one 1x1 convolution with a ReLU, ``conv1``."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU())
        with torch.no_grad():
            self.conv1[0].weight.copy_(W1[:, :, None, None] / 100)  # pre-activation: W1 (255 x - 117) / 100 + B1
            self.conv1[0].bias.copy_(B1)

    def forward(self, x):
        return self.conv1(x)


@pytest.mark.exercise("dream_step", points=1)
def test_dream_step_applies_the_models_input_scaling(impl):
    model, x, lr = "inception", toy_image(2, 0.3, 0.7), 0.02  # InceptionV1().eval(), built there
    out = remote(impl, "dream_step")(model, x, "conv1", lr)["value"]
    # by hand, with x' = (255 x - 117) / 100: the chain rule's factor 2.55 is a positive scale, which the
    # normalization removes
    wrong = {"it feeds the model [0, 1] pixels: apply input_transform(model) to the batch before the forward "
             "pass (lucent's InceptionV1 wants x * 255 - 117)": accepted_steps(x, uphill_by_hand(x / 100, "conv1"), lr)}
    check_one_step(out, x, lr, accepted_steps(x, uphill_by_hand((255 * x - 117) / 100, "conv1"), lr), wrong,
                   "dream_step on a model that wants x * 255 - 117")


@pytest.mark.exercise("dream_step", points=1)
def test_dream_step_raises_the_layer_norm_of_the_lite_model(impl):
    model, x = vision(), photo(size=48)
    before = norm_by_hand(model, x, "conv3")
    out, hooks = x, 0
    for _ in range(3):
        got = remote(impl, "dream_step")(model, out, "conv3", 0.01)
        out, hooks = got["value"], hooks + got["hooks"]
    assert hooks == 0, "a hook is still on the model after dream_step"
    after = norm_by_hand(model, out, "conv3")
    assert after > 1.2 * before, (f"three steps at conv3 took its activation norm from {before:.3f} to only "
                                  f"{after:.3f} (more than 1.2 times is expected): step uphill")
    assert (out - x).abs().mean() < 0.04, "three steps of lr = 0.01 should move a pixel by about 0.03 on average"


@pytest.mark.exercise("dream_step", points=1)
def test_dream_step_validates_and_leaves_no_hook_on_errors(impl):
    model, x = "toy", toy_image()
    step, rejected = remote(impl, "dream_step"), []

    def reject(*args, what, expected):
        rejected.append((args, {}))
        return expect_value_error(step, model, *args, what=what, expected=expected)
    reject(x[None], "conv1", what="a batch [1, 3, H, W]", expected="one image [3, height, width]")
    reject(x[:2], "conv1", what="a 2-channel image", expected="RGB")
    reject((x * 255).to(torch.uint8), "conv1", what="a uint8 image", expected="a float image")
    reject(x, "conv1", 0.0, what="lr=0", expected="lr > 0")
    reject(x, "conv1", -0.01, what="lr=-0.01", expected="lr > 0")
    message = reject(x, "conv9", what="layer 'conv9'", expected="a layer of the model")
    assert "conv1" in message, f"the message for a missing layer should list the model's layers, got {message!r}"
    hooks = drive(impl, _hooks_after_rejected_calls, None, "dream_step", model, rejected)
    assert hooks == 0, "a hook is still on the model after dream_step raised"


# ---------------------------------------------------------------- octave_pyramid

def sizes_of(pyramid) -> list[tuple[int, int]]:
    return [tuple(p.shape[1:]) for p in pyramid]


@pytest.mark.exercise("octave_pyramid", points=2)
def test_octave_pyramid_count_order_and_sizes(impl):
    x = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(0))
    pyramid = call_unmutated(impl.octave_pyramid, x, 3, 1.5)
    assert isinstance(pyramid, (list, tuple)), f"return a list of images, got {type(pyramid).__name__}"
    for i, p in enumerate(pyramid):
        assert_shape(p, (3, None, None), f"octave {i}")
    # by hand: 40 / 1.5**2 = 17.8, 60 / 1.5**2 = 26.7; 40 / 1.5 = 26.7, 60 / 1.5 = 40
    expected = [(18, 27), (27, 40), (40, 60)]
    got = sizes_of(pyramid)
    if len(got) != 3:
        pytest.fail(f"3 octaves gave {len(got)} images {got}: one per octave, the full size included")
    if got == expected[::-1] or got[0] == (40, 60):
        pytest.fail(f"sizes {got}: put the SMALLEST octave first (DeepDream dreams it first)")
    if any(h > 40 or w > 60 for h, w in got):
        pytest.fail(f"sizes {got}: octaves are the photo made SMALLER, height / scale**k")
    assert all(abs(h - eh) <= 1 and abs(w - ew) <= 1 for (h, w), (eh, ew) in zip(got, expected)), \
        f"sizes {got}, expected {expected}: octave k from the top is round(height / scale**k) x round(width / scale**k)"
    assert torch.equal(pyramid[-1], x), "the last octave is the photo itself, unchanged"
    assert sizes_of(impl.octave_pyramid(x, 1, 1.5)) == [(40, 60)], "one octave is the photo alone"
    square = impl.octave_pyramid(torch.rand(3, 64, 64), 4, 2.0)
    assert sizes_of(square) == [(8, 8), (16, 16), (32, 32), (64, 64)], \
        f"4 octaves of scale 2 from 64 x 64: expected 8, 16, 32, 64 pixels, got {sizes_of(square)}"


@pytest.mark.exercise("octave_pyramid", points=1)
def test_octave_pyramid_resizes_the_whole_photo(impl):
    """A linear ramp resized (by any smooth method) is the same ramp sampled at the small grid's pixel centres."""
    h, w = 36, 48
    ramp = torch.stack([torch.linspace(0, 1, w).expand(h, w), torch.linspace(0, 1, h)[:, None].expand(h, w),
                        torch.full((h, w), 0.4)])
    pyramid = impl.octave_pyramid(ramp, 2, 2.0)
    small = pyramid[0]
    assert_shape(small, (3, 18, 24), "the smaller octave of a 36 x 48 image at scale 2")
    centres = ((torch.arange(24) + 0.5) * 2 - 0.5) / (w - 1)  # where each small pixel's centre falls
    row = small[0, 9, 2:-2]
    if row.min() > 0.15 and row.max() < 0.85:
        pytest.fail("the small octave holds only the middle of the photo: resize the whole photo, do not crop")
    assert (row - centres[2:-2]).abs().max() < 0.05, \
        "the small octave is not the photo resized: resize with interpolate(image[None], size=..., mode='bilinear')"
    assert (small[2] - 0.4).abs().max() < 1e-4, "a flat channel must stay flat when resized"


@pytest.mark.exercise("octave_pyramid", points=1)
def test_octave_pyramid_validates(impl):
    x = torch.rand(3, 32, 32)
    expect_value_error(impl.octave_pyramid, x, 0, 1.4, what="n_octaves=0", expected="an int >= 1")
    expect_value_error(impl.octave_pyramid, x, 2.0, 1.4, what="n_octaves=2.0", expected="an int")
    expect_value_error(impl.octave_pyramid, x, 2, 1.0, what="scale=1", expected="scale > 1")
    expect_value_error(impl.octave_pyramid, x, 2, 0.7, what="scale=0.7", expected="scale > 1")
    expect_value_error(impl.octave_pyramid, x, 4, 2.0, what="4 octaves of scale 2 from 32 pixels (4 pixels left)",
                       expected="a smallest octave of at least 8 pixels")
    expect_value_error(impl.octave_pyramid, x[None], 2, 1.4, what="a batch [1, 3, H, W]", expected="[3, H, W]")


# ---------------------------------------------------------------- deep_dream

class FakeStep:
    """Stands in for dream_step: ``change(image)`` is what it does; it records what it was called with."""

    def __init__(self, change):
        self.change, self.calls = change, []

    def __call__(self, model, image, layer, lr=0.01):
        self.calls.append((tuple(image.shape), layer, lr))
        return self.change(image.detach().clone())


def mark(im):
    """Marks pixel (0, 0) of the image it is given."""
    im[:, 0, 0] += 0.05
    return im


# what FakeStep does to the image: the identity (a dream that changes nothing), adding a constant (without
# clamping), marking one pixel
CHANGES = {"identity": lambda im: im, "add 0.01": lambda im: im + 0.01, "add 0.3": lambda im: im + 0.3,
           "mark": mark}


def textured(h: int = 40, w: int = 48) -> torch.Tensor:
    """Fine detail (a checkerboard) over a smooth gradient, in [0.2, 0.6]: upsampling a smaller octave of it
    cannot give it back."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    checker = ((yy + xx) % 2).float()
    return (0.2 + 0.2 * checker + 0.2 * xx / w).expand(3, h, w).clone()


@pytest.mark.exercise("deep_dream", points=3)
def test_deep_dream_with_stand_in_steps_octaves_and_detail(impl):
    model, x = "toy", textured()  # toy_cnn(), built where the learner's code runs
    # the identity: a dream that changes nothing
    got = call_unmutated(remote(impl, "deep_dream", "identity"), model, x, "conv2", steps=2, lr=0.03, octaves=3,
                         octave_scale=1.5, shift=3, seed=1)
    out, calls = got["value"], got["calls"]  # calls: what FakeStep was called with
    assert_shape(out, tuple(x.shape), "deep_dream's result")
    assert len(calls) == 6, f"3 octaves x 2 steps should call dream_step 6 times, it was called {len(calls)}"
    assert all(layer == "conv2" and lr == 0.03 for _, layer, lr in calls), \
        f"pass the layer and lr on to dream_step: it was called with {sorted({c[1:] for c in calls})}"
    sizes = [shape[1:] for shape, _, _ in calls]
    assert sizes == [(18, 21)] * 2 + [(27, 32)] * 2 + [(40, 48)] * 2, \
        f"dream_step saw sizes {sizes}: dream each octave `steps` times, smallest first"
    if not torch.allclose(out, x, atol=1e-5):
        rolled = [(dy, dx) for dy in range(-6, 7) for dx in range(-6, 7) if (dy, dx) != (0, 0)
                  and torch.allclose(out, x.roll((dy, dx), dims=(1, 2)), atol=1e-5)]
        if rolled:
            pytest.fail(f"with a step that changes nothing the dream is the photo rolled by {rolled[0]}: roll the "
                        "result of each step back by (-dy, -dx)")
        pytest.fail("with a step that changes nothing, deep_dream does not give the photo back: the photo's fine "
                    "detail was lost. Upsample only the DETAIL (dreamed - octave) and add it to the next, larger "
                    "octave of the photo; do not upsample the dreamed image itself")
    # a step that adds 0.01 everywhere: every step of every octave must add up, 3 x 2 x 0.01
    out = remote(impl, "deep_dream", "add 0.01")(model, x, "conv2", steps=2, lr=0.03, octaves=3, octave_scale=1.5,
                                                 shift=3, seed=1)["value"]
    gained = (out - x).mean().item()
    if abs(gained - 0.02) < 2e-3:
        pytest.fail("only the last octave's steps reach the result: carry the detail (dreamed - octave) from each "
                    "octave up to the next")
    assert abs(gained - 0.06) < 1e-3 and (out - x - 0.06).abs().max() < 1e-3, \
        f"a step that adds 0.01, 2 steps at each of 3 octaves, should add 0.06 everywhere; it added {gained:.4f}"


def marked_positions(out, x, h, w) -> dict:
    changed = ((out - x).abs().sum(0) > 1e-6).nonzero().tolist()
    return {tuple(p): round((out - x)[0, p[0], p[1]].item() / 0.05) for p in changed}


@pytest.mark.exercise("deep_dream", points=2)
def test_deep_dream_random_shifts_as_documented(impl):
    """A step that marks pixel (0, 0) of the image it is given: the mark lands at (-dy, -dx) of the photo."""
    h, w, shift, steps, seed = 24, 24, 3, 10, run_seed(5)
    x = torch.full((3, h, w), 0.5)
    dream = remote(impl, "deep_dream", "mark")
    out = dream("toy", x, "conv1", steps=steps, lr=0.01, octaves=1, shift=shift, seed=seed)["value"]
    got = marked_positions(out, x, h, w)
    generator = learner_generator(seed)  # seeded as the learner's code seeds it
    expected: dict = {}
    for _ in range(steps):
        dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator).tolist()
        position = ((-dy) % h, (-dx) % w)
        expected[position] = expected.get(position, 0) + 1
    if list(got) == [(0, 0)]:
        pytest.fail("every step marked the same pixel: roll the image by a random (dy, dx) before each step")
    near = all(min(p, h - p) <= shift and min(q, w - q) <= shift for p, q in got)
    if not near:
        pytest.fail(f"marks landed at {sorted(got)}, more than shift = {shift} pixels from where the step put them: "
                    "draw dy and dx in [-shift, shift], and roll back by (-dy, -dx)")
    assert got == expected, (f"marks landed at {sorted(got)}, expected {sorted(expected)}: draw the shifts from "
                             "generator = torch.Generator().manual_seed(seed), made once per call, one "
                             "`dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator).tolist()` "
                             "per step, and roll with image.roll((dy, dx), dims=(1, 2))")
    out = dream("toy", x, "conv1", steps=4, lr=0.01, octaves=1, shift=0, seed=seed)["value"]
    assert marked_positions(out, x, h, w) == {(0, 0): 4}, "with shift=0 nothing moves: all marks at (0, 0)"


@pytest.mark.exercise("deep_dream", points=1)
def test_deep_dream_clamps_its_result(impl):
    x = torch.full((3, 24, 24), 0.6)
    # a step that does not clamp
    out = remote(impl, "deep_dream", "add 0.3")("toy", x, "conv1", steps=2, lr=0.01, octaves=2, shift=2)["value"]
    assert out.max() <= 1 + 1e-6 and out.min() >= -1e-6, \
        f"deep_dream returned values up to {out.max():.2f}: clamp the result to [0, 1]"


@pytest.mark.exercise("deep_dream", points=3)
def test_deep_dream_on_the_lite_model_properties(impl):
    # deep_dream graded on its own: the course's dream_step and octave_pyramid stand in for the learner's
    alone, model, x = remote(impl, "deep_dream", "course"), vision(), photo(size=64)
    got = call_unmutated(alone, model, x, "conv4", steps=4, lr=0.01, octaves=2, shift=4, seed=0)
    dream = got["value"]
    assert_shape(dream, tuple(x.shape), "the dream")
    assert dream.dtype == torch.float32 and not dream.requires_grad, "return a float32 tensor without a graph"
    assert dream.min() >= 0 and dream.max() <= 1, "the dream must stay in [0, 1]"
    assert got["hooks"] == 0, "a hook is still on the model after deep_dream"
    factor = norm_by_hand(model, dream, "conv4") / norm_by_hand(model, x, "conv4")
    assert factor > 1.5, f"the dream raised conv4's activation norm only {factor:.2f} times (more than 1.5 expected)"
    # low strength: one octave, two small steps: still the photo, measurably
    faint = alone(model, x, "conv4", steps=2, lr=0.002, octaves=1, shift=4, seed=0)["value"]
    change = (faint - x).abs().mean().item()
    corr = torch.corrcoef(torch.stack([faint.flatten(), x.flatten()]))[0, 1].item()
    assert change < 0.006 and corr > 0.99, (f"two steps of lr = 0.002 changed a pixel by {change:.4f} on average "
                                            f"(correlation with the photo {corr:.3f}): "
                                            "a faint dream is still the photo")
    assert norm_by_hand(model, faint, "conv4") > norm_by_hand(model, x, "conv4"), "even a faint dream raises the norm"
    again = alone(model, x, "conv4", steps=4, lr=0.01, octaves=2, shift=4, seed=0)["value"]
    other = alone(model, x, "conv4", steps=4, lr=0.01, octaves=2, shift=4, seed=1)["value"]
    assert torch.equal(dream, again), "the same seed must give the same dream"
    assert not torch.equal(dream, other), "another seed should give other shifts, so another dream"


@pytest.mark.exercise("deep_dream", points=2)
def test_deep_dream_an_early_and_a_late_layer_dream_differently(impl):
    alone, model, x = remote(impl, "deep_dream", "course"), vision(), photo("astronaut", size=64)
    early = alone(model, x, "conv2", steps=4, lr=0.01, octaves=2, shift=4)["value"]
    late = alone(model, x, "conv4", steps=4, lr=0.01, octaves=2, shift=4)["value"]
    apart = (early - late).abs().mean().item()
    assert apart > 0.5 * (late - x).abs().mean().item(), \
        f"conv2's and conv4's dreams differ by only {apart:.4f} per pixel: dream the layer you are given"
    for layer, own, foreign in [("conv2", early, late), ("conv4", late, early)]:
        mine, theirs = norm_by_hand(model, own, layer), norm_by_hand(model, foreign, layer)
        assert mine > theirs, (f"{layer}'s own dream raises its norm to {mine:.3f}, the other layer's dream to "
                               f"{theirs:.3f}: each dream should raise its own layer most")


@pytest.mark.exercise("deep_dream", points=1)
def test_deep_dream_validates_and_leaves_no_hook(impl):
    alone, model, x = remote(impl, "deep_dream", "course"), vision(), photo(size=32)
    rejected = []

    def reject(*args, what, expected="", **kwargs):
        rejected.append((args, kwargs))
        expect_value_error(alone, model, *args, what=what, expected=expected, **kwargs)
    reject(x, "conv4", steps=0, what="steps=0", expected="an int >= 1")
    reject(x, "conv4", shift=-1, what="shift=-1", expected="an int >= 0")
    reject(x, "conv4", lr=0.0, what="lr=0", expected="lr > 0")
    reject(x, "conv4", octaves=0, what="octaves=0", expected="an int >= 1")
    reject(x, "conv9", steps=1, octaves=1, what="layer 'conv9'")
    reject(x[None], "conv4", what="a batch [1, 3, H, W]")
    hooks = drive(impl, _hooks_after_rejected_calls, "course", "deep_dream", model, rejected)
    assert hooks == 0, "a hook is still on the model after deep_dream raised"


# ---------------------------------------------------------------- dream_layer_for (investigation)

HELD_OUT = ("rocket", "camera", "retina")  # the notebook asks its question on chelsea, astronaut and coffee
LAYERS = ("conv1", "conv2", "conv3", "conv4")


@cache
def measured_gains() -> torch.Tensor:
    """[layer, class]: the mean rise of each class logit when the held-out photos are dreamed at each layer,
    with the course's deep_dream at its defaults."""
    from mi_course.vision.deepdream import logit_gains

    photos = [photo(name, 96) for name in HELD_OUT]
    return logit_gains(vision(), photos, LAYERS).mean(1)


@pytest.mark.exercise("dream_layer_for", points=2)
@pytest.mark.parametrize("target", ["line", "corner", "shape"])
def test_dream_layer_for_picks_the_layer_that_raises_the_class(impl, target):
    """Graded by the model: the layer you name must be the one whose dream raises the class's logit most on
    photos you did not see (or within a tenth of the spread between layers of it)."""
    model = vision()
    index = model.classes.index(target)
    got = impl.dream_layer_for(model, [photo(name, 96) for name in HELD_OUT], index, list(LAYERS))
    assert got in LAYERS, f"return one of the layers you were given {LAYERS}, got {got!r}"
    gains = measured_gains()[:, index]
    best = LAYERS[int(gains.argmax())]
    spread = (gains.max() - gains.min()).item()
    rise = dict(zip(LAYERS, [round(g, 2) for g in gains.tolist()]))
    if got == LAYERS[int(gains.argmin())]:
        pytest.fail(f"{got} is the layer whose dream LOWERS '{target}' most (rises {rise}): take the largest rise")
    assert gains[LAYERS.index(got)] >= gains.max() - 0.1 * spread, (
        f"dreamed at {got}, the photos' '{target}' logit rises {rise[got]}; at {best} it rises {rise[best]} "
        f"(all: {rise}): measure each layer's dream, averaged over the photos")


@pytest.mark.exercise("dream_layer_for", points=1)
def test_dream_layer_for_validates(impl):
    model, photos = "toy", [torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(3))]  # toy_cnn(), there
    layer_for = remote(impl, "dream_layer_for")
    expect_value_error(layer_for, model, [], 0, ["conv1"], what="no photos")
    expect_value_error(layer_for, model, photos, 0, [], what="no layers")
    expect_value_error(layer_for, model, photos, 2, ["conv1"], what="target 2 of a 2-class model",
                       expected="a class index in 0..1")
    expect_value_error(layer_for, model, photos, -1, ["conv1"], what="target -1",
                       expected="a class index in 0..1")
