"""Mode, device and seed are decided in one place."""

import pytest
import torch

from mi_course import config


@pytest.fixture(autouse=True)
def _reset():
    yield
    config.set_mode(None)
    config.set_device(None)


def test_mode_from_environment(monkeypatch):
    monkeypatch.setenv("MI_COURSE_MODE", "LITE")
    assert config.get_mode() == "lite"
    monkeypatch.setenv("MI_COURSE_MODE", "full")
    assert config.get_mode() == "full"


def test_auto_mode_follows_the_gpu(monkeypatch):
    monkeypatch.setenv("MI_COURSE_MODE", "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.get_mode() == "lite"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_mode() == "full"


def test_set_mode_overrides_environment(monkeypatch):
    monkeypatch.setenv("MI_COURSE_MODE", "full")
    config.set_mode("lite")
    assert config.get_mode() == "lite"
    assert config.get_mode("full") == "full"


def test_bad_mode_says_what_is_expected(monkeypatch):
    monkeypatch.setenv("MI_COURSE_MODE", "fast")
    with pytest.raises(ValueError, match="full, lite, auto"):
        config.get_mode()
    with pytest.raises(ValueError, match="full, lite, auto"):
        config.set_mode("gpu")


def test_device_defaults_to_cpu_without_gpu_and_refuses_missing_cuda(monkeypatch):
    monkeypatch.delenv("MI_COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.get_device() == torch.device("cpu")
    config.set_device("cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        config.get_device()


def test_seed_everything_is_reproducible():
    config.seed_everything(3)
    a = torch.randn(4)
    gen = config.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    assert torch.equal(torch.randn(2, generator=gen), torch.randn(2, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(TypeError, match="int"):
        config.seed_everything("3")


def test_known_deprecation_warning_is_silenced():
    import warnings

    config.silence_known_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        config.silence_known_warnings()
        warnings.warn("HookedTransformer is deprecated and will be removed in 4.0.", DeprecationWarning)
        warnings.warn("something else is deprecated", DeprecationWarning)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]
