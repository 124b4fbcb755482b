"""Graded tests for lesson 01 (feature visualization).

Expected values come from another route than the reference solution: activations hand-made for the
objectives, numpy's FFT for the Fourier image, shifts found by search for jitter, the course's
``mi_course.vision.tuning`` probe for activations, and the shipped lite ``vision`` model itself for the
properties a visualization must have (it excites its channel; the model believes the convincing image).

What must run next to the learner's code (the objectives and the image function the learner returns, gradients
through the learner's outputs, the hooks left on a model, the stand-ins and spies of ``visualize``) runs in
*drivers* (``_name`` functions below, see ``mi_course.grading.judge.drive``): they return data, and every
check runs in the test, against values the test computes itself.
"""

from contextlib import contextmanager
from functools import cache

import numpy as np
import pytest
import torch

import mi_course
from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive

LESSON = "l01_feature_visualization"


@cache
def vision():
    torch.set_num_threads(1)
    return mi_course.load_model("vision", mode="lite", device="cpu")


def hooks_on(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def fixed_T(acts: dict):
    """A ``T`` that returns hand-made activations per layer."""
    return lambda layer: acts[layer]


def images(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _objective_value(impl, factory, args, kwargs, acts):
    """Driver: the objective ``impl.<factory>(*args, **kwargs)`` returns, applied to ``fixed_T(acts)``."""
    return getattr(impl, factory)(*args, **kwargs)(fixed_T(acts))


def _objective_gradients(impl, factory, args, kwargs, acts):
    """Driver: the gradients of that objective's value with respect to the activations, by layer."""
    getattr(impl, factory)(*args, **kwargs)(fixed_T(acts)).backward()
    return {layer: a.grad for layer, a in acts.items()}


def objective(impl, factory, *args, **kwargs):
    """The learner's ``factory(*args, **kwargs)``, made here (an error in making it surfaces here), as a function
    of the hand-made activations by layer (``{layer: tensor}``, what ``fixed_T`` serves) that applies the
    objective where the learner's code runs and returns its value."""
    getattr(impl, factory)(*args, **kwargs)
    return lambda acts: drive(impl, _objective_value, factory, args, kwargs, acts)


# ---------------------------------------------------------------- get_activations

def _get_activations_run(impl, model, x, layers):
    """Driver: get_activations at each layer, the hooks then left on the model, and the gradient of conv3's
    activations (summed) with respect to a copy of the images."""
    outs = [impl.get_activations(model, x, layer) for layer in layers]
    hooks = hooks_on(model)
    x = x.clone().requires_grad_()
    out = impl.get_activations(model, x, "conv3")
    keeps_graph = isinstance(out, torch.Tensor) and out.requires_grad
    if keeps_graph:
        out.sum().backward()
        model.zero_grad(set_to_none=True)  # the shared model must not carry these gradients into other tests
    return {"outs": outs, "hooks": hooks, "requires_grad": keeps_graph, "grad": x.grad}


def layer_gradient_by_hand(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """d/dx of the sum of ``layer``'s output, with this test's own hook (the lite models take [0, 1] as is)."""
    x = x.clone().requires_grad_()
    out = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    out[0].sum().backward()
    model.zero_grad(set_to_none=True)
    return x.grad


@pytest.mark.exercise("get_activations", points=2)
def test_get_activations_matches_the_course_probe_and_keeps_the_graph(impl):
    from mi_course.vision.tuning import layer_activations

    model, x, layers = vision(), images(), ("conv2", "conv4", "fc")
    # x is argument 2, as in get_activations(model, x, layer)
    got = call_unmutated(lambda model, x: drive(impl, _get_activations_run, model, x, list(layers)), model, x)
    for layer, out in zip(layers, got["outs"]):
        expected = layer_activations(model, x, layer)
        assert_close(out, expected, f"get_activations(model, images, {layer!r})", atol=1e-4,
                     hint="return the output of model.get_submodule(layer), caught with a forward hook")
    assert got["hooks"] == 0, "get_activations left a forward hook on the model: remove it (handle.remove())"
    assert got["requires_grad"] is True, ("the activations carry no gradient: do not use torch.no_grad() or "
                                          ".detach(); feature visualization differentiates through them")
    grad = got["grad"]
    assert isinstance(grad, torch.Tensor) and grad.abs().sum() > 0, "no gradient reached the images"
    expected = layer_gradient_by_hand(model, x, "conv3")
    assert_shape(grad, tuple(x.shape), "the images' gradient")
    assert torch.allclose(grad, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item()), \
        "the gradient that reached the images is not that of conv3's output: return the layer's output itself"


class InceptionV1(torch.nn.Module):
    """A stand-in with lucent's InceptionV1's class name (so it wants ``x * 255 - 117``) and one known layer."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)

    def forward(self, x):
        return self.conv(x)


class Breaks(torch.nn.Module):
    """Its forward raises after the layer ran: a hook must still be removed."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        self.conv(x)
        raise RuntimeError("this model fails after its first layer")


def _scaled_and_breaks_run(impl, x):
    """Driver: get_activations on the InceptionV1 stand-in; then on Breaks, whose forward raises: the
    RuntimeError's message (None if none came) and the hooks left on it."""
    got = impl.get_activations(InceptionV1(), x, "conv")
    model = Breaks()
    try:
        impl.get_activations(model, x, "conv")
        raised = None
    except RuntimeError as err:  # any other exception fails the test, as it would out of pytest.raises
        raised = str(err)
    return {"got": got, "raised": raised, "hooks": hooks_on(model)}


@pytest.mark.exercise("get_activations", points=1)
def test_get_activations_scales_the_input_for_the_model_and_cleans_up(impl):
    x = images(1, 4)
    run = drive(impl, _scaled_and_breaks_run, x)
    got = run["got"]
    expected = (x * 255 - 117).sum(1, keepdim=True)
    if torch.allclose(got.detach(), x.sum(1, keepdim=True), atol=1e-4):
        pytest.fail("the images went into InceptionV1 unscaled: apply input_transform(model) first (lucent's "
                    "InceptionV1 wants x * 255 - 117)")
    assert_close(got, expected, "get_activations on an InceptionV1", atol=1e-3,
                 hint="the model input is input_transform(model)(images)")
    with pytest.raises(RuntimeError, match="fails after"):
        if run["raised"] is not None:
            raise RuntimeError(run["raised"])  # the learner's RuntimeError, as the driver caught it
    assert run["hooks"] == 0, ("when the forward pass raises, the hook stays on the model: remove it in a "
                                  "finally block")


def _hooks_after_rejected_calls(impl, model, calls):
    """Driver: get_activations(model, images, layer) for each (images, layer) of ``calls`` (the test has checked
    through ``impl`` that each raises a ValueError), then the hooks left on the model."""
    for x, layer in calls:
        try:
            impl.get_activations(model, x, layer)
        except Exception:  # noqa: BLE001 - what each call raises is checked in the test
            pass
    return hooks_on(model)


@pytest.mark.exercise("get_activations", points=1)
def test_get_activations_rejects_bad_input(impl):
    model = vision()
    msg = expect_value_error(impl.get_activations, model, images(), "conv9", what="get_activations(..., 'conv9')",
                             expected="no such layer")
    assert "conv4" in msg, f"the error should list the model's layers (e.g. conv4), got: {msg}"
    rejected = [(images(), "conv9")]
    for bad, what in [(torch.rand(3, 32, 32), "a single image [3, h, w]"), (torch.rand(2, 1, 32, 32), "one channel"),
                      (torch.randint(0, 255, (2, 3, 32, 32)), "integer pixels")]:
        expect_value_error(impl.get_activations, model, bad, "conv4", what=f"get_activations on {what}",
                           expected="a float tensor [batch, 3, height, width]")
        rejected.append((bad, "conv4"))
    assert drive(impl, _hooks_after_rejected_calls, model, rejected) == 0, "a rejected call left a hook on the model"


# ---------------------------------------------------------------- channel_objective

@pytest.mark.exercise("channel_objective", points=2)
def test_channel_objective_is_minus_the_channel_mean(impl):
    acts = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)  # channel c of image b
    acts[1] *= 3  # images differ, so a wrong axis shows
    obj = objective(impl, "channel_objective", "conv4", 1)
    got = obj({"conv4": acts})
    by_hand = -(sum([4, 5, 6, 7]) + 3 * sum([16, 17, 18, 19])) / 8
    assert_shape(got, (), "the objective's value")
    if abs(got.item() + by_hand) < 1e-4:
        pytest.fail("the objective is the channel's mean: it must be MINUS the mean (the optimizer minimizes)")
    if abs(got.item() + 4 * (sum([4, 5, 6, 7]) + 3 * sum([16, 17, 18, 19])) / 8 * 2) < 1e-3 or \
            abs(got.item() - 8 * by_hand) < 1e-3:
        pytest.fail("the objective sums the channel: take the mean over the batch and positions")
    if abs(got.item() + acts[1].mean().item()) < 1e-4:
        pytest.fail("the objective took image 1 (acts[1]), not channel 1: index the channel axis, acts[:, 1]")
    assert abs(got.item() - by_hand) < 1e-4, f"channel_objective gave {got.item():.4f}, expected {by_hand:.4f}"
    linear = torch.tensor([[1.0, 2.0, 3.0], [5.0, 6.0, 7.0]])
    got = objective(impl, "channel_objective", "fc", 2)({"fc": linear})
    assert abs(got.item() + 5.0) < 1e-5, f"on a linear layer's [batch, features] the objective is -5, got {got.item()}"


@pytest.mark.exercise("channel_objective", points=1)
def test_channel_objective_rejects_a_bad_channel(impl):
    for bad in (-1, 1.5, True, "3"):
        expect_value_error(impl.channel_objective, "conv4", bad, what=f"channel_objective('conv4', {bad!r})",
                           expected="an int >= 0")
    obj = objective(impl, "channel_objective", "conv4", 3)
    expect_value_error(obj, {"conv4": torch.zeros(1, 3, 2, 2)}, what="channel 3 of a 3-channel layer",
                       expected="out of range")


# ---------------------------------------------------------------- neuron_objective

@pytest.mark.exercise("neuron_objective", points=2)
def test_neuron_objective_reads_one_position(impl):
    acts = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 4, 5, 6)  # h = 5 rows, w = 6 columns
    T = {"conv3": acts}  # what fixed_T serves

    def expected(row, col):
        return -acts[:, 2, row, col].mean().item()
    got = objective(impl, "neuron_objective", "conv3", 2)(T).item()
    if abs(got - expected(2, 2)) < 1e-4:
        pytest.fail("the default column is (w - 1) // 2: the centre is w // 2 (column 3 of 6) and h // 2")
    if abs(got + expected(2, 3)) < 1e-4:
        pytest.fail("the objective is the activation: it must be MINUS it (the optimizer minimizes)")
    assert abs(got - expected(2, 3)) < 1e-4, \
        f"the default neuron is row 2, column 3: expected {expected(2, 3)}, got {got}"
    got = objective(impl, "neuron_objective", "conv3", 2, x=1, y=4)(T).item()
    if abs(got - expected(1, 4)) < 1e-4:
        pytest.fail("x and y are swapped: x is the column (last axis), y the row: acts[:, channel, y, x]")
    assert abs(got - expected(4, 1)) < 1e-4, f"x=1, y=4 is acts[:, 2, 4, 1]: expected {expected(4, 1)}, got {got}"


@pytest.mark.exercise("neuron_objective", points=1)
def test_neuron_objective_rejects_positions_outside_the_layer(impl):
    T = {"conv3": torch.zeros(1, 4, 5, 6)}  # what fixed_T serves
    for kwargs, what in [({"x": 6}, "x=6 of 6 columns"), ({"y": 5}, "y=5 of 5 rows"), ({"x": -1}, "x=-1")]:
        expect_value_error(objective(impl, "neuron_objective", "conv3", 1, **kwargs), T,
                           what=f"neuron_objective at {what}", expected="a position inside the layer")
    expect_value_error(objective(impl, "neuron_objective", "conv3", 4), T, what="channel 4 of 4",
                       expected="out of range")
    expect_value_error(impl.neuron_objective, "conv3", -2, what="neuron_objective(channel=-2)",
                       expected="an int >= 0")


# ---------------------------------------------------------------- fourier_image

def numpy_fourier_image(spectrum: np.ndarray, size: int, decay: float) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    scale = 1.0 / np.maximum(np.sqrt(fy ** 2 + fx ** 2), 1.0 / size) ** decay
    coeffs = (spectrum[..., 0] + 1j * spectrum[..., 1]) * scale
    pixels = np.fft.irfft2(coeffs, s=(size, size), norm="ortho")
    return 1 / (1 + np.exp(-pixels))


def _fourier_images(impl, size, values, decays):
    """Driver: for each decay, fourier_image(size, batch=2, decay=decay, seed=0) with ``values`` written into
    its spectrum, and what image() then gives; and the spectrum's gradient of the last image's sum."""
    got = []
    for decay in decays:
        params, image = impl.fourier_image(size, batch=2, decay=decay, seed=0)
        with torch.no_grad():
            params[0].copy_(values)
        got.append(image())
    if isinstance(got[-1], torch.Tensor) and got[-1].requires_grad:
        got[-1].sum().backward()
    return {"images": got, "grad": params[0].grad}


def directional_derivatives(values: np.ndarray, size: int, decay: float, directions: np.ndarray) -> np.ndarray:
    """d/dt of numpy_fourier_image(values + t * d).sum() at t = 0 for each direction d, by central differences."""
    eps = 1e-6
    return np.array([(numpy_fourier_image(values + eps * d, size, decay).sum()
                      - numpy_fourier_image(values - eps * d, size, decay).sum()) / (2 * eps) for d in directions])


@pytest.mark.exercise("fourier_image", points=2)
@pytest.mark.parametrize("size", [8, 7])
def test_fourier_image_matches_numpy(impl, size):
    params, image = impl.fourier_image(size, batch=2, seed=0)
    assert isinstance(params, (list, tuple)) and len(params) == 1, "return ([spectrum], image)"
    spectrum = params[0]
    assert_shape(spectrum, (2, 3, size, size // 2 + 1, 2), "the spectrum")
    assert spectrum.requires_grad, "the spectrum is what the optimizer learns: it must require grad"
    std = spectrum.detach().std().item()
    assert 0.005 < std < 0.02, f"the spectrum starts with std sd = 0.01, got {std:.4f}"
    values = torch.randn(spectrum.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        spectrum.copy_(values.float())
    decays = (1.0, 1.5)
    run = drive(impl, _fourier_images, size, values.float(), list(decays))
    for decay, got in zip(decays, run["images"]):
        assert_shape(got, (2, 3, size, size), f"image() of fourier_image({size})")
        if not torch.isfinite(got).all():
            pytest.fail("the image has NaN or inf: the constant term has frequency 0; floor f at 1 / size")
        expected = torch.from_numpy(numpy_fourier_image(values.numpy(), size, decay)).float()
        if got.min() < 0 or got.max() > 1:
            pytest.fail("the image leaves [0, 1]: end with a sigmoid")
        if torch.allclose(got, torch.from_numpy(numpy_fourier_image(values.numpy(), size, 0.0)).float(), atol=1e-4):
            pytest.fail("the coefficients are not scaled: multiply each by 1 / f ** decay")
        assert_close(got, expected, f"fourier_image({size}, decay={decay}) from a known spectrum", atol=1e-4,
                     hint="scale by 1 / max(f, 1/size) ** decay with f = sqrt(fy^2 + fx^2) (fftfreq rows, rfftfreq "
                          "columns), then irfft2 with s=(size, size) and norm='ortho', then a sigmoid")
    grad = run["grad"]
    assert grad is not None and grad.abs().sum() > 0, "no gradient reaches the spectrum"
    directions = torch.randn((4,) + tuple(values.shape), generator=torch.Generator().manual_seed(4),
                             dtype=torch.float64)
    expected = directional_derivatives(values.float().double().numpy(), size, decays[-1], directions.numpy())
    got = (grad.double()[None] * directions).flatten(1).sum(1).numpy()
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-4), \
        "the gradient that reaches the spectrum is not that of the image: compute image() from the spectrum itself"


@pytest.mark.exercise("fourier_image", points=1)
def test_fourier_image_is_seeded_and_checks_its_arguments(impl):
    a, b, c = (impl.fourier_image(6, seed=s)[0][0] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c), \
        "the same seed must give the same spectrum, another seed another"
    for bad in (0, -3, 4.0):
        expect_value_error(impl.fourier_image, bad, what=f"fourier_image({bad!r})", expected="a positive int size")


# ---------------------------------------------------------------- jitter

def shift_of(out: torch.Tensor, x: torch.Tensor, most: int):
    for dy in range(-most, most + 1):
        for dx in range(-most, most + 1):
            if torch.equal(out, torch.roll(x, (dy, dx), (-2, -1))):
                return dy, dx
    return None


def _jitter_draws(impl, x, max_shift, generator_state, n):
    """Driver: ``n`` calls jitter(x, max_shift, generator), one generator starting from ``generator_state``;
    their outputs and the generator's state after them."""
    generator = torch.Generator()
    generator.set_state(generator_state)
    outs = [impl.jitter(x, max_shift, generator) for _ in range(n)]
    return {"outs": outs, "state": generator.get_state()}


def _jitter_gradient(impl, x, max_shift, generator_state):
    """Driver: the gradient of jitter(x, max_shift, generator).sum() with respect to x."""
    generator = torch.Generator()
    generator.set_state(generator_state)
    impl.jitter(x, max_shift, generator).sum().backward()
    return x.grad


def seeded(seed: int) -> torch.Tensor:
    """The state of a CPU generator seeded with ``seed`` (a generator crosses to the learner's code as its state)."""
    return torch.Generator().manual_seed(seed).get_state()


@pytest.mark.exercise("jitter", points=2)
def test_jitter_rolls_by_every_shift_up_to_max(impl):
    x = images(2, 9)
    # one generator for all 300 draws; x is argument 1, as in jitter(x, 2, generator)
    draws = call_unmutated(lambda x: drive(impl, _jitter_draws, x, 2, seeded(0), 300), x)
    seen = set()
    for out in draws["outs"]:
        assert_shape(out, tuple(x.shape), "jitter's output")
        shift = shift_of(out, x, 4)
        if shift is None:
            if any(torch.equal(out, torch.roll(x, s, 1)) for s in (1, 2)):
                pytest.fail("jitter rolled the channel axis: shift the last two axes (rows and columns)")
            if any(torch.equal(out[0], torch.roll(x[0], (dy, dx), (-2, -1))) for dy in range(-2, 3)
                   for dx in range(-2, 3)):
                pytest.fail("the images of one batch got different shifts: shift the whole batch by one (dy, dx)")
            pytest.fail("jitter's output is not the batch rolled by whole pixels on the last two axes (torch.roll)")
        if max(map(abs, shift)) > 2:
            pytest.fail(f"jitter shifted by {shift}, beyond max_shift = 2")
        seen.add(shift)
    missing = {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)} - seen
    if missing and all(abs(dy) == 2 or abs(dx) == 2 for dy, dx in missing):
        pytest.fail(f"shifts of exactly +-max_shift never happen ({sorted(missing)[:4]} ...): torch.randint's "
                    "upper end is excluded, draw from randint(-max_shift, max_shift + 1)")
    assert not missing, f"in 300 draws these shifts never came: {sorted(missing)}; draw dy and dx independently"
    zero = drive(impl, _jitter_draws, x, 0, draws["state"], 1)["outs"][0]  # the same generator, after its draws
    assert torch.equal(zero, x), "max_shift = 0 must return the images unchanged"


@pytest.mark.exercise("jitter", points=1)
def test_jitter_is_seeded_passes_gradients_and_checks_arguments(impl):
    x = images(1, 8).requires_grad_()
    draws = [[shift_of(out.detach(), x.detach(), 3) for out in drive(impl, _jitter_draws, x.detach(), 3, state, 8)
              ["outs"]] for state in (seeded(7), seeded(7))]
    assert draws[0] == draws[1], "draw the shift with the generator you are given"
    grad = drive(impl, _jitter_gradient, x, 3, seeded(1))
    assert grad is not None and torch.allclose(grad, torch.ones_like(x)), "gradients must flow through jitter"
    for bad in (-1, 1.5, True):
        expect_value_error(impl.jitter, x.detach(), bad, what=f"jitter(images, {bad!r})", expected="an int >= 0")
    expect_value_error(impl.jitter, torch.rand(3, 8, 8), 1, what="jitter on [3, h, w]",
                       expected="[batch, 3, height, width]")


# ---------------------------------------------------------------- visualize

@contextmanager
def visualize_alone(impl):
    """visualize graded on its own: lucent's Fourier image, a plain roll and a plain hook stand in for the
    learner's fourier_image, jitter and get_activations (in a driver, next to the learner's code). Gives the
    count of jitter calls."""
    from lucent.optvis import param

    from mi_course.vision.featurevis import input_transform

    calls = {"jitter": 0}

    def fourier(size, batch=1, decay=1.0, sd=0.01, seed=None):
        if seed is not None:
            torch.manual_seed(seed)
        return param.fft_image((batch, 3, size, size), sd=sd, decay_power=decay)

    def roll(images, max_shift, generator=None):
        calls["jitter"] += 1
        dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
        return torch.roll(images, (dy, dx), (-2, -1))

    def activations(model, images, layer):
        out = []
        handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.append(o))
        try:
            model(input_transform(model)(images))
        finally:
            handle.remove()
        return out[0]

    def sigmoid_image(size, **kwargs):
        params, image = fourier(size, **kwargs)
        return params, lambda: torch.sigmoid(image())

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(impl, "fourier_image", sigmoid_image, raising=False)
        monkeypatch.setattr(impl, "jitter", roll, raising=False)
        monkeypatch.setattr(impl, "get_activations", activations, raising=False)
        yield calls


def channel_mean_objective(layer: str, c: int):
    """Minus channel ``c``'s mean at ``layer``: an objective of the test's own."""
    return lambda T: -T(layer)[:, c].mean()


def _visualize_alone_run(impl, model, layer, c, **kwargs):
    """Driver: visualize(model, channel_mean_objective(layer, c), **kwargs) with the stand-ins; the image, the
    number of jitter calls and the hooks left on the model."""
    with visualize_alone(impl) as calls:
        img = impl.visualize(model, channel_mean_objective(layer, c), **kwargs)
    return {"image": img, "jitter": calls["jitter"], "hooks": hooks_on(model)}


def channel(model, image, layer, c):
    from mi_course.vision.tuning import channel_responses

    return channel_responses(model, image, layer)[0, c].item()


@pytest.mark.exercise("visualize", points=3)
def test_visualize_excites_a_curve_detector(impl):
    from mi_course.organisms.images import generate
    from mi_course.vision.tuning import channel_responses

    model = vision()

    # conv4:2 is a curve detector of the shipped model (its card); silent on a grey image
    run = drive(impl, _visualize_alone_run, model, "conv4", 2, size=48, steps=64, seed=0)
    img = run["image"]
    assert_shape(img, (1, 3, 48, 48), "visualize's image")
    assert not img.requires_grad, "return the image detached (image().detach())"
    assert img.min() >= 0 and img.max() <= 1, "the image must be in [0, 1]"
    data = generate(256, seed=(11, 3))[0]
    typical = channel_responses(model, data, "conv4")[:, 2].median().item()
    got = channel(model, img, "conv4", 2)
    grey = channel(model, torch.full((1, 3, 48, 48), 0.5), "conv4", 2)
    if got <= grey + 1e-3:
        pytest.fail(f"conv4:2 is {got:.3f} on your image, no more than on a grey one ({grey:.3f}): is the loop inside "
                    "`with redirected_relu(model):`? A silent channel gets no gradient through a plain ReLU. Does the "
                    "optimizer step minimize the objective (loss.backward(), optimizer.step())?")
    assert got > 5 * max(typical, 0.1), (f"64 steps took conv4:2 only to {got:.3f}, the median data-set image gives "
                                         f"{typical:.3f}: optimize every step (zero_grad, backward, step)")
    assert run["jitter"] >= 64, "visualize never shifts the image: call jitter(image(), shift, generator) every step"
    assert run["hooks"] == 0, "visualize left a hook on the model"


class Fails(Exception):
    pass


def _visualize_modes_run(impl, model):
    """Driver: with the stand-ins, visualize on ``model`` put in training mode (twice, seed 4), in eval mode
    (seed 5), and in training mode with an objective that raises Fails; what a forward hook of the test saw
    (model.training at each forward pass), the mode after each call, and the parameters' grads and flags."""
    model.zero_grad(set_to_none=True)
    obj = channel_mean_objective("conv3", 7)
    modes = []  # model.training at each forward pass, seen from inside it

    def raises(T):
        T("conv3")
        raise Fails("this objective fails")
    handle = model.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    try:
        with visualize_alone(impl):
            model.train()  # a model in training mode, to see visualize switch it to eval mode and back
            a = impl.visualize(model, obj, size=32, steps=6, seed=4)
            in_training, after_training = modes[:], model.training
            model.train()
            b = impl.visualize(model, obj, size=32, steps=6, seed=4)
            model.eval()
            del modes[:]
            c = impl.visualize(model, obj, size=32, steps=6, seed=5)
            in_eval, after_eval = modes[:], model.training
            model.train()
            try:
                impl.visualize(model, raises, size=32, steps=6, seed=4)
                raised = False
            except Fails:  # any other exception fails the test, as it would out of pytest.raises(Fails)
                raised = True
            after_raise = model.training
    finally:
        handle.remove()
        model.eval()  # the shared model, as the other tests expect it
    return {"images": [a, b, c], "in_training": in_training, "after_training": after_training,
            "in_eval": in_eval, "after_eval": after_eval, "raised": raised, "after_raise": after_raise,
            "grads": [p.grad for p in model.parameters()],
            "requires_grad": [p.requires_grad for p in model.parameters()]}


def _visualize_alone_steps(impl, model, steps):
    """Driver: visualize(model, conv3:7's objective, steps=steps) with the stand-ins (the test expects a
    ValueError)."""
    with visualize_alone(impl):
        return impl.visualize(model, channel_mean_objective("conv3", 7), steps=steps)


@pytest.mark.exercise("visualize", points=1)
def test_visualize_is_seeded_and_learns_only_the_image(impl):
    model = vision()
    run = drive(impl, _visualize_modes_run, model)
    if not run["raised"]:
        pytest.fail(f"DID NOT RAISE {Fails}")
    a, b, c = run["images"]
    in_training, after_training = run["in_training"], run["after_training"]
    in_eval, after_eval, after_raise = run["in_eval"], run["after_eval"], run["after_raise"]
    assert torch.equal(a, b) and not torch.equal(a, c), "the same seed must give the same image, another seed another"
    assert in_training, "visualize never ran the model"
    if any(in_training):
        pytest.fail(f"called on a model in training mode, visualize ran {sum(in_training)} of its {len(in_training)} "
                    "forward passes in training mode: the model must be in eval mode during the optimization "
                    "(model.eval() before the loop)")
    if not after_training:
        pytest.fail("called on a model in training mode, visualize returned it in eval mode: afterwards the model "
                    "must be back in the mode it was in before the call (remember model.training, restore it with "
                    "model.train(...))")
    if any(in_eval) or after_eval:
        pytest.fail("called on a model in eval mode, visualize ran it or returned it in training mode: eval mode "
                    "during the optimization, and afterwards the mode the model was in before the call")
    if not after_raise:
        pytest.fail("when the objective raises, visualize leaves a model that was in training mode in eval mode: "
                    "restore its mode in a finally block")
    assert len(run["grads"]) == len(list(model.parameters())) and all(g is None for g in run["grads"]), \
        "the model's parameters got gradients: requires_grad_(False) for the loop (only the image is learned)"
    assert len(run["requires_grad"]) == len(list(model.parameters())) and all(run["requires_grad"]), \
        "restore the parameters' requires_grad after the loop, also when the objective raises"
    for bad in (0, 2.5):
        expect_value_error(drive, impl, _visualize_alone_steps, model, bad, what=f"visualize(steps={bad!r})",
                           expected="a positive int")


# ---------------------------------------------------------------- diversity_objective

def acts_with_grams() -> torch.Tensor:
    """Three images of 2 channels at 3 positions: image 1 is image 0 scaled by 2 (same Gram direction), image 2
    has its channels at disjoint positions (a Gram matrix with no off-diagonal)."""
    a = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    c = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return torch.stack([a, 2 * a, c]).reshape(3, 2, 3, 1)


def cos(u, v):
    return float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))


@pytest.mark.exercise("diversity_objective", points=2)
def test_diversity_is_the_mean_gram_similarity_over_pairs(impl):
    acts = acts_with_grams()
    got = objective(impl, "diversity_objective", "conv4")({"conv4": acts})
    assert_shape(got, (), "the diversity objective's value")
    # Gram of a: [[5, 2], [2, 2]]; of c: [[9, 0], [0, 1]]. Pairs: (0,1) 1, (0,2) and (1,2) cos(g_a, g_c)
    g_a, g_c = np.array([5, 2, 2, 2.0]), np.array([9, 0, 0, 1.0])
    pairs = [1.0, cos(g_a, g_c), cos(g_a, g_c)]
    by_hand = sum(pairs) / 3
    with_diagonal = (sum(pairs) * 2 + 3) / 9
    if abs(got.item() - with_diagonal) < 1e-4:
        pytest.fail("the mean includes each image with itself (similarity 1): average over pairs i != j only")
    if abs(got.item() - 2 * by_hand) < 1e-4 or abs(got.item() - sum(pairs) * 2) < 1e-4:
        pytest.fail("the value is a sum over pairs: take the mean over the pairs")
    assert abs(got.item() - by_hand) < 1e-4, (f"diversity gave {got.item():.4f}, expected {by_hand:.4f}: the Gram "
                                              "matrix of an image is A A^T over channels ([channels, channels]), "
                                              "flattened, then cosine similarity (normalize each to norm 1)")
    batch = torch.randn(4, 5, 3, 3, generator=torch.Generator().manual_seed(0))
    scaled = batch * torch.tensor([1.0, 10.0, 0.1, 3.0]).view(4, 1, 1, 1)
    v1 = objective(impl, "diversity_objective", "x")({"x": batch}).item()
    v2 = objective(impl, "diversity_objective", "x")({"x": scaled}).item()
    assert abs(v1 - v2) < 1e-4, "scaling one image's activations changed the value: normalize each Gram matrix"


@pytest.mark.exercise("diversity_objective", points=1)
def test_diversity_needs_two_images_and_passes_gradients(impl):
    expect_value_error(objective(impl, "diversity_objective", "conv4"), {"conv4": torch.rand(1, 2, 3, 3)},
                       what="diversity of one image", expected="a batch of at least 2")
    acts = torch.rand(3, 4, 2, 2, generator=torch.Generator().manual_seed(1)).requires_grad_()
    grad = drive(impl, _objective_gradients, "diversity_objective", ("conv4",), {}, {"conv4": acts})["conv4"]
    assert grad is not None and grad.abs().sum() > 0, "no gradient reaches the activations"
    expected = diversity_gradient_by_hand(acts.detach())
    assert_close(grad, expected, "the gradient of the diversity with respect to the activations", atol=1e-5,
                 hint="compute the value with differentiable torch operations on T(layer)")


def diversity_gradient_by_hand(acts: torch.Tensor) -> torch.Tensor:
    """d/d acts of the mean cosine similarity of the images' Gram matrices over pairs i != j, in float64."""
    acts = acts.double().requires_grad_()
    flat = acts.flatten(2)
    grams = torch.einsum("bcp,bdp->bcd", flat, flat).flatten(1)
    grams = grams / grams.norm(dim=1, keepdim=True)
    n = len(acts)
    similarity = grams @ grams.T
    ((similarity.sum() - similarity.trace()) / (n * (n - 1))).backward()
    return acts.grad.float()


# ---------------------------------------------------------------- convincing_image (investigation)

SHIFTS = (1, 2, 3, 4)  # pixels, each right, left, down and up


@pytest.mark.exercise("convincing_image", points=1)
@pytest.mark.parametrize("class_index", [0, 3, 7])
def test_convincing_image_convinces_the_model_and_survives_shifts(impl, class_index):
    model = vision()
    img = impl.convincing_image(model, class_index)
    assert_shape(img, (1, 3, 64, 64), "convincing_image's image")
    assert torch.isfinite(img).all() and img.min() >= 0 and img.max() <= 1, "the image must be in [0, 1]"
    name = model.classes[class_index] if hasattr(model, "classes") else class_index
    with torch.no_grad():
        # every shift from 1 to 4 px, not 4 alone: a 4-px roll is a whole step of conv3's grid, and an image
        # made without jitter can keep a class there and lose it at 3 px (measured: class 0, 0.97 and 0.08)
        shifted = [torch.roll(img.float(), sign * s, d) for s in SHIFTS for sign in (1, -1) for d in (-1, -2)]
        p = torch.softmax(model(torch.cat([img.float()] + shifted)), -1)[:, class_index]
    assert p[0] >= 0.9, f"the model gives class {name!r} probability {p[0]:.3f} on your image (at least 0.9 wanted)"
    by_shift = p[1:].reshape(len(SHIFTS), 4).mean(1)
    worst = int(by_shift.argmin())
    assert p[1:].mean() >= 0.9, (
        f"moved by 1 to 4 pixels, your image convinces the model only {p[1:].mean():.3f} on average (at least 0.9 "
        f"wanted; worst at {SHIFTS[worst]} px: {by_shift[worst]:.3f}): which part of the lesson makes a "
        "visualization robust?")
