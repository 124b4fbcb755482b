"""The microscope explorer, driven headless as a learner's mouse would: change the dropdowns and the slider,
and check what the view holds against the course's canonical measurements; the render cache is hit when a
channel comes back."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import mi_course  # noqa: E402
from mi_course.explorers.microscope import RENDER_CACHE, default_layers, microscope  # noqa: E402
from mi_course.vision import tuning  # noqa: E402
from mi_course.vision.dataset_examples import dataset_examples  # noqa: E402
from mi_course.vision.natural_images import lite_images  # noqa: E402

PNG = "image/png"


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return {role: mi_course.load_model(role, mode="lite", device="cpu") for role in ("vision", "vision-b")}


@pytest.fixture(scope="module")
def images():
    return lite_images(96)


def hooks_on(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def pngs(scope):
    return [o["data"][PNG] for o in scope.output.outputs if PNG in o["data"]]


def test_microscope_shows_the_three_kinds_of_evidence(models, images):
    RENDER_CACHE.clear()
    scope = microscope(models, images=images, layer="conv4", channel=2, k=4, steps=4)
    now = scope.current()
    assert (now["model"], now["layer"], now["channel"]) == ("vision", "conv4", 2)
    assert now["render"].shape == (3, 64, 64) and 0 <= now["render"].min() and now["render"].max() <= 1
    assert not now["render_cached"], "the first view renders"
    expected = dataset_examples(models["vision"], images, "conv4", 2, k=4)
    assert now["examples"].indices.tolist() == expected.indices.tolist()
    assert torch.allclose(now["examples"].crops, expected.crops)
    assert torch.allclose(now["tuning"], tuning.radial_tuning_curve(models["vision"], "conv4", 2))
    assert now["preferred_deg"] == tuning.ORIENTATIONS[int(now["tuning"].argmax())]
    assert len(pngs(scope)) == 1 and "prefers curves bulging towards" in scope.status.value
    assert all(hooks_on(m) == 0 for m in models.values()), "the microscope left a hook on a model"


def test_moving_the_controls_updates_the_view_and_the_cache_is_hit_on_return(models, images, monkeypatch):
    RENDER_CACHE.clear()
    calls = []
    # render is imported inside the method: count its calls through featurevis
    from mi_course.vision import featurevis

    original = featurevis.render
    monkeypatch.setattr(featurevis, "render", lambda *a, **kw: calls.append(a[1]) or original(*a, **kw))
    scope = microscope(models, images=images, layer="conv4", channel=0, k=3, steps=4)
    first_png = pngs(scope)
    scope.channel.value = 5
    now = scope.current()
    assert now["channel"] == 5 and not now["render_cached"]
    assert pngs(scope) != first_png, "the view must change with the channel"
    assert torch.allclose(now["tuning"], tuning.radial_tuning_curve(models["vision"], "conv4", 5))
    scope.channel.value = 0
    assert scope.current()["render_cached"], "channel 0 was rendered before: the cache must serve it"
    assert calls == ["conv4:0", "conv4:5"], f"render was called for {calls}: once per new channel only"
    assert scope.render_hits == 1 and scope.render_misses == 2
    # another layer: its own channel count, its own tuning
    scope.layer.value = "conv2"
    assert scope.channel.max == 31 and scope.current()["layer"] == "conv2"
    scope.channel.value = 31
    assert torch.allclose(scope.current()["tuning"], tuning.radial_tuning_curve(models["vision"], "conv2", 31))
    scope.layer.value = "conv1"  # 16 channels: the slider is clamped
    assert scope.channel.max == 15 and scope.channel.value == 15 and scope.current()["channel"] == 15
    # another model: its layers, its examples
    scope.layer.value = "conv4"
    scope.model.value = "vision-b"
    now = scope.current()
    assert now["model"] == "vision-b" and list(scope.layer.options) == default_layers(models["vision-b"])
    expected = dataset_examples(models["vision-b"], images, now["layer"], now["channel"], k=3)
    assert now["examples"].indices.tolist() == expected.indices.tolist()


def test_a_second_microscope_shares_the_render_cache_and_bad_arguments_fail_early(models, images):
    RENDER_CACHE.clear()
    microscope({"vision": models["vision"]}, images=images, layer="conv4", channel=7, k=2, steps=4)
    again = microscope({"vision": models["vision"]}, images=images, layer="conv4", channel=7, k=2, steps=4)
    assert again.current()["render_cached"], "renders are cached per (model, layer, channel, steps, size)"
    other = microscope({"vision": models["vision"]}, images=images, layer="conv4", channel=7, k=2, steps=5)
    assert not other.current()["render_cached"], "another number of steps is another render"
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        microscope({"vision": models["vision"]}, images=images, layer="conv9", steps=4)
    with pytest.raises(ValueError, match="channel"):
        microscope({"vision": models["vision"]}, images=images, layer="conv4", channel=128, steps=4)
    with pytest.raises(ValueError, match="at least one model"):
        microscope({}, images=images)


def test_inceptionv1_layers_are_offered_by_lucents_names(monkeypatch):
    monkeypatch.setenv("MI_COURSE_DRY_RUN", "1")
    from mi_course.models import dry_run

    model = dry_run.inceptionv1()
    layers = default_layers(model)
    assert "mixed3b" in layers and "conv2d0" in layers and "mixed4e" in layers
    assert not any("_" in name for name in layers), "only the layers themselves, not their branches"
