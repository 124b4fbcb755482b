"""Full-mode loaders: the real models from lucent, torchvision, TransformerLens and SAELens.

Vision: lucent's InceptionV1, and torchvision's AlexNet, VGG19 and ResNet-50 wrapped in :class:`Normalized`
(so they take RGB in [0, 1]; their layers are then under ``model.``, e.g. ``model.layer2``).

Each loader first checks whether its weights are cached or its host answers (2 s probe). Offline with
nothing cached it raises :class:`OfflineError` at once, instead of letting a hub client retry for half a
minute; offline with a cache it tells the Hugging Face clients to use the cache only (HF_HUB_OFFLINE).

In a dry run (``MI_COURSE_DRY_RUN=1``) every loader builds the same architecture at random weights instead,
offline and without probing (:mod:`mi_course.models.dry_run`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from mi_course.config import dry_run, network_available
from mi_course.models import dry_run as offline

HF_HOST = "huggingface.co"


class OfflineError(RuntimeError):
    """The weights are not cached and their host cannot be reached."""


def _hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _need_url(url: str) -> None:
    host = urlparse(url).hostname
    if not _hub_file(url).exists() and not network_available(host):
        raise OfflineError(f"{host} cannot be reached and {_hub_file(url).name} is not in the torch hub cache")


def _hf_offline_if_unreachable() -> None:
    if network_available(HF_HOST):
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:  # the hub client reads the variable once at import; tell an already-imported one too
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass


class Normalized(nn.Module):
    """Wraps a torchvision classifier so it takes RGB in [0, 1] like every course vision model."""

    def __init__(self, model: nn.Module, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def inceptionv1(**kwargs) -> nn.Module:
    """lucent's InceptionV1. It expects x*255-117: lucent's render_vis applies that itself (it checks the
    class name), so the model is returned unwrapped; hand-written probes use mi_course's vision helpers."""
    from lucent.modelzoo.inceptionv1 import InceptionV1
    from lucent.modelzoo.inceptionv1.InceptionV1 import model_urls

    if dry_run():
        return offline.inceptionv1(**kwargs)
    _need_url(model_urls["inceptionv1"])
    return InceptionV1(pretrained=True, **kwargs)


# torchvision classifiers of the universality set: builder name -> (weights enum, weights). ResNet-50 takes
# IMAGENET1K_V1 (the original recipe of He et al.), not DEFAULT (V2, a later training recipe).
TORCHVISION = {"alexnet": ("AlexNet_Weights", "IMAGENET1K_V1"), "vgg19": ("VGG19_Weights", "IMAGENET1K_V1"),
               "resnet50": ("ResNet50_Weights", "IMAGENET1K_V1")}


def torchvision_weights(name: str):
    """The torchvision weights the course loads for classifier ``name`` (see :data:`TORCHVISION`)."""
    import torchvision.models

    enum, member = TORCHVISION[name]
    return getattr(getattr(torchvision.models, enum), member)


def torchvision_classifier(name: str):
    """A loader for torchvision classifier ``name``, wrapped in :class:`Normalized` (RGB in [0, 1]); its ImageNet
    weights download on first use (into the torch hub cache); in a dry run ``weights=None``, offline."""

    def load(**kwargs) -> nn.Module:
        import torchvision.models

        if dry_run():
            return Normalized(offline.torchvision_model(name, **kwargs))
        weights = torchvision_weights(name)
        _need_url(weights.url)
        return Normalized(getattr(torchvision.models, name)(weights=weights, **kwargs))

    load.__name__ = name
    load.weights_url = lambda: torchvision_weights(name).url
    return load


alexnet = torchvision_classifier("alexnet")
vgg19 = torchvision_classifier("vgg19")
resnet50 = torchvision_classifier("resnet50")


def hooked(name: str):
    """A loader for a TransformerLens pretrained model."""

    def load(**kwargs):
        from transformer_lens import HookedTransformer

        if dry_run():
            return offline.hooked_transformer(name, **kwargs)
        _hf_offline_if_unreachable()
        try:
            return HookedTransformer.from_pretrained(name, **kwargs)
        except Exception as err:  # the hub clients raise several types for "not in the cache"
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise OfflineError(f"{HF_HOST} cannot be reached and {name} is not cached "
                                   f"({type(err).__name__})") from None
            raise

    load.__name__ = f"hooked_{name}"
    return load


SAE_KWARGS_WARNING = "This SAE has non-empty model_from_pretrained_kwargs"


def _from_pretrained_defaults() -> dict:
    """``HookedTransformer.from_pretrained``'s keyword defaults: the course's language loaders (:func:`hooked`)
    pass none, so these are how the models they load are processed."""
    import inspect

    from transformer_lens import HookedTransformer

    return {name: p.default for name, p in inspect.signature(HookedTransformer.from_pretrained).parameters.items()
            if p.default is not inspect.Parameter.empty}


def saelens_sae(release: str = "gpt2-small-res-jb", sae_id: str = "blocks.8.hook_resid_pre", **kwargs):
    """A SAELens SAE (in a dry run: its real shape at random weights). SAELens warns whenever an SAE names the
    processing its model was loaded with; that warning is dropped when the course's model is processed that
    way already (res-jb: ``center_writing_weights=True``) and passed on when it is not."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sae = _load_saelens_sae(release, sae_id, **kwargs)
    asked = getattr(getattr(sae.cfg, "metadata", None), "model_from_pretrained_kwargs", None) or {}
    defaults = _from_pretrained_defaults()
    met = all(key in defaults and defaults[key] == value for key, value in asked.items())
    for w in caught:
        if not (met and SAE_KWARGS_WARNING in str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return sae


def _load_saelens_sae(release: str, sae_id: str, **kwargs):
    from sae_lens import SAE

    if dry_run():
        return offline.saelens_sae(release, sae_id, **kwargs)
    _hf_offline_if_unreachable()
    try:
        return SAE.from_pretrained(release, sae_id, **kwargs)
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise OfflineError(f"{HF_HOST} cannot be reached and {release}/{sae_id} is not cached") from None
        raise


def availability(loader) -> str:
    """A word for ``mi-course doctor``: can full mode load this here?"""
    if dry_run():
        return "dry run: random weights"
    name = getattr(loader, "__name__", "")
    if name == "inceptionv1":
        from lucent.modelzoo.inceptionv1.InceptionV1 import model_urls
        url = model_urls["inceptionv1"]
    elif hasattr(loader, "weights_url"):
        url = loader.weights_url()
    else:
        return "downloads on first use" if network_available(HF_HOST) else "offline (cache only)"
    if _hub_file(url).exists():
        return "cached"
    return "downloads on first use" if network_available(urlparse(url).hostname) else "offline: unavailable"
