"""The universality set of vision roles (lesson 04): the seed's four architectures in full mode, three lite
organisms in lite mode, and each role's curve-detector layer, recorded once in the registry.

Full-mode models are built by the dry run (MI_COURSE_DRY_RUN=1: the real torchvision architectures with
``weights=None``, offline). The expected sizes are the published ones (Simonyan and Zisserman 2015 for VGG19,
He et al. 2016 for ResNet-50; torchvision's model table lists the same parameter counts), not read back from
the code under test.
"""

import time

import pytest
import torch
from torch import nn

import mi_course
from mi_course import config
from mi_course.models import full, registry
from mi_course.models.registry import curve_layer, lite_shipped, universality_roles
from mi_course.vision.tuning import layer_activations

FULL_SET = {"vision": "InceptionV1", "vision-b": "AlexNet", "vision-c": "ResNet", "vision-d": "VGG"}
LITE_SET = ("vision", "vision-b", "vision-c")


@pytest.fixture
def dry(monkeypatch):
    monkeypatch.setenv(config.DRY_RUN_ENV, "1")
    monkeypatch.setenv(config.MODE_ENV, "full")
    config.set_mode(None)


def _dry_model(role):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(config.DRY_RUN_ENV, "1")
        return mi_course.load_model(role, mode="full", device="cpu")


@pytest.fixture(scope="module")
def resnet50():
    return _dry_model("vision-c")


@pytest.fixture(scope="module")
def vgg19():
    return _dry_model("vision-d")


def _classifier(model):
    """The architecture inside the course's wrapper (torchvision models come wrapped in Normalized)."""
    return model.model if isinstance(model, full.Normalized) else model


def test_universality_roles_per_mode():
    assert universality_roles("full") == ["vision", "vision-b", "vision-c", "vision-d"]
    assert universality_roles("lite") == list(LITE_SET)
    for role in LITE_SET:
        assert curve_layer(role, "lite") == "conv4"
    assert [curve_layer(r, "full") for r in universality_roles("full")] == [
        "mixed3b", "model.features.4", "model.layer2", "model.features.17"]
    with pytest.raises(KeyError, match="universality set"):
        curve_layer("lm", "full")


def test_full_cards_name_the_seeds_architectures_and_their_curve_layer():
    sources = {role: mi_course.model_card(role, mode="full")["source"] for role in universality_roles("full")}
    for role, word in (("vision", "InceptionV1"), ("vision-b", "AlexNet"), ("vision-c", "ResNet-50"),
                       ("vision-d", "VGG19")):
        assert word in sources[role], sources[role]
        card = mi_course.model_card(role, mode="full")
        assert card["curve_layer"] == curve_layer(role, "full") and card["curve_layer_note"].startswith(
            card["curve_layer"])


def test_resnet50_is_the_real_architecture(resnet50):
    assert isinstance(resnet50, full.Normalized) and type(_classifier(resnet50)).__name__ == "ResNet"
    assert sum(p.numel() for p in resnet50.parameters()) == 25_557_032
    x = torch.rand(2, 3, 224, 224)
    acts = layer_activations(resnet50, x, curve_layer("vision-c", "full"))
    assert acts.shape == (2, 512, 28, 28), "layer2: 512 channels at stride 8"
    assert acts.min() >= 0, "the curve layer is read after the block's ReLU"
    with torch.no_grad():
        assert resnet50(x[:1]).shape == (1, 1000)


def test_vgg19_is_the_real_architecture(vgg19):
    net = _classifier(vgg19)
    assert isinstance(vgg19, full.Normalized) and type(net).__name__ == "VGG"
    assert sum(p.numel() for p in vgg19.parameters()) == 143_667_240
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16 and [c.out_channels for c in convs[4:8]] == [256] * 4, "VGG19: 2+2+4+4+4 convs"
    layer = curve_layer("vision-d", "full")
    assert isinstance(vgg19.get_submodule(layer), nn.ReLU) and net.features[16] is convs[7], "conv3_4's ReLU"
    acts = layer_activations(vgg19, torch.rand(1, 3, 112, 112), layer)
    assert acts.shape == (1, 256, 28, 28) and acts.min() >= 0, "conv3_4: 256 channels at stride 4"
    with torch.no_grad():
        assert vgg19(torch.rand(1, 3, 64, 64)).shape == (1, 1000), "adaptive pooling: any size >= 32"


def test_alexnet_curve_layer_is_conv2_after_its_relu(dry):
    alexnet = mi_course.load_model("vision-b", device="cpu")
    net = _classifier(alexnet)
    layer = alexnet.get_submodule(curve_layer("vision-b", "full"))
    assert isinstance(layer, nn.ReLU) and isinstance(net.features[3], nn.Conv2d) and net.features[3].out_channels == 192
    acts = layer_activations(alexnet, torch.rand(1, 3, 224, 224), curve_layer("vision-b", "full"))
    assert acts.shape == (1, 192, 27, 27) and acts.min() >= 0


def test_torchvision_roles_take_unit_range_images(resnet50):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        direct = _classifier(resnet50)((x - resnet50.mean) / resnet50.std)
        assert torch.allclose(resnet50(x), direct, atol=1e-5), "ImageNet normalization happens inside"


def test_full_weights_are_the_named_ones():
    assert full.vgg19.weights_url().endswith("/vgg19-dcbb9e9d.pth")
    assert full.resnet50.weights_url().endswith("/resnet50-0676ba61.pth"), "IMAGENET1K_V1, He et al.'s recipe"
    assert full.alexnet.weights_url().endswith("/alexnet-owt-7be5be79.pth")


def test_full_only_role_in_lite_mode_says_so():
    for call in (lambda: mi_course.load_model("vision-d", mode="lite"),
                 lambda: mi_course.model_card("vision-d", mode="lite"),
                 lambda: curve_layer("vision-d", "lite")):
        with pytest.raises(mi_course.ModelUnavailable, match=r"full-mode-only.*vision, vision-b, vision-c"):
            call()
    row = {r["role"]: r for r in mi_course.available_models()}["vision-d"]
    assert row["full_only"] and row["lite"] == "not shipped"
    assert registry.ROLES["vision-c"].lite and not registry.ROLES["vision-d"].lite


def test_new_full_roles_fail_fast_offline(monkeypatch):
    monkeypatch.setattr(full, "network_available", lambda *a, **k: False)
    monkeypatch.setattr(full, "_hub_file", lambda url: full.Path("/nonexistent") / "x.pth")
    monkeypatch.delenv(config.DRY_RUN_ENV, raising=False)
    start = time.perf_counter()
    for role in ("vision-c", "vision-d"):
        with pytest.raises(mi_course.ModelUnavailable, match="MI_COURSE_MODE=lite"):
            mi_course.load_model(role, mode="full")
        assert full.availability(registry.ROLES[role].full_loader) == "offline: unavailable"
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("role", LITE_SET)
def test_lite_curve_layer_is_where_the_card_found_the_detectors(role):
    if not lite_shipped(role):
        pytest.skip(f"{role} is not shipped")
    card = mi_course.model_card(role, mode="lite")
    assert card["curve_layer"] == curve_layer(role, "lite") == card["mechanism"]["curve_detectors"]["layer"]
