"""Photos for the vision lessons, and probes of what a model sees in them.

Photos: scikit-image's bundled sample photos (offline) or any image file, as RGB float tensors ``[3, H, W]``
in [0, 1] (the input contract of every course vision model).

Probes, for any course vision model (the lite CNNs, lucent's InceptionV1, torchvision models; each model's
input scaling from :func:`mi_course.vision.featurevis.input_transform`): a layer's activations with the
graph kept (the forward pass stops at the layer, no hook is left), their norm, the class logits; and two
measures of a change to a photo: how fine it is and how unevenly it falls on the pixel grid.

    photo = sample_photo("chelsea", size=128)          # a cat, centre-cropped to a square, 128 x 128
    mine = sample_photo("holiday.jpg", size=(96, 160)) # any file PIL reads, cropped to the aspect, resized
    layer_norm(model, photo[None], "conv4")            # [1]: the mean squared activation of conv4
    mean_frequency(dream - photo)                      # cycles per pixel: how fine the change is
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float

from mi_course.vision.activations import layer_output, model_device
from mi_course.vision.featurevis import input_transform, is_lite

# scikit-image's colour photos (skimage.data ships these files, so no download is needed); camera and
# coins are greyscale and come back with three equal channels
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
          "camera", "coins")


def _open(name: str | Path):
    """The photo as a PIL image in RGB: a sample photo's name, or a path PIL can read."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(name, str) and name in PHOTOS:
        import skimage.data

        return Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")
    path = Path(name).expanduser() if isinstance(name, (str, Path)) else None
    if path is None or not path.is_file():
        raise ValueError(f"no photo {name!r}: give one of scikit-image's sample photos ({', '.join(PHOTOS)}) "
                         "or the path of an image file")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not an image file PIL can read ({err})") from None


def _size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(pair) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in pair):
        raise ValueError(f"size must be None, a positive int (a square) or (height, width), got {size!r}")
    return pair


def sample_photo(name: str | Path = "chelsea", size: int | tuple[int, int] | None = None
                 ) -> Float[torch.Tensor, "3 height width"]:
    """A photo as an RGB float tensor ``[3, H, W]`` in [0, 1].

    ``name``: one of :data:`PHOTOS` (scikit-image's bundled sample photos) or the path of an image file.
    ``size``: ``None`` keeps the photo's own size; an int gives a ``size x size`` square; ``(height, width)``
    that size. The photo is first centre-cropped to the requested aspect ratio (so nothing is stretched),
    then resized with a Lanczos filter.

    Raises:
        ValueError: for a name that is neither a sample photo nor a readable image file (the message lists
            the sample photos), or a bad ``size``.
    """
    from PIL import Image

    target = _size(size)
    image = _open(name)
    if target is not None:
        height, width = target
        w, h = image.size
        # the largest centred box with the target's aspect ratio
        crop_w, crop_h = min(w, round(h * width / height)), min(h, round(w * height / width))
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.LANCZOS)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return pixels.permute(2, 0, 1).contiguous()


# ------------------------------------------------------------------ probes

# The old name of layer_output here, kept so that a learner's exercises/l02 file saved before the rename still
# imports. Lessons use layer_output (keeps the graph); lesson 03's layer_activations keeps none.
layer_activations = layer_output


def activation_norm(acts: torch.Tensor) -> torch.Tensor:
    """DeepDream's objective: the mean of the squared activations (the squared L2 norm per element), one
    number for the whole batch. Under a normalized gradient its scale does not matter: the norm, its square
    and their mean all point the same way."""
    return acts.pow(2).mean()


@torch.no_grad()
def layer_norm(model: torch.nn.Module, images: Float[torch.Tensor, "batch 3 height width"],
               layer: str) -> Float[torch.Tensor, "batch"]:
    """:func:`activation_norm` of ``layer`` for each image (a CPU tensor), to measure what a dream did."""
    acts = layer_output(model, images.to(model_device(model)), layer)
    return acts.flatten(1).pow(2).mean(1).cpu()


LOGIT_LAYERS = {"InceptionV1": "softmax2_pre_activation_matmul"}  # its forward returns a softmax
INCEPTION_SIZE = 224  # lucent's InceptionV1 pools its last layer 7 x 7: it classifies 224 x 224 only


@torch.no_grad()
def class_logits(model: torch.nn.Module, images: Float[torch.Tensor, "batch 3 height width"]
                 ) -> Float[torch.Tensor, "batch classes"]:
    """The model's class logits for ``images`` (a CPU tensor). lucent's InceptionV1 returns probabilities,
    so its logits are read before the softmax, with the images resized to the 224 x 224 it classifies."""
    images = images.to(model_device(model))
    logit_layer = LOGIT_LAYERS.get(model._get_name()) if not is_lite(model) else None
    if logit_layer is None:
        return model(input_transform(model)(images)).cpu()
    if images.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        images = F.interpolate(images, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return layer_output(model, images, logit_layer).cpu()


def grid_unevenness(change: Float[torch.Tensor, "3 height width"], period: int = 2) -> float:
    """How unevenly a change to a photo falls on the pixel grid: the mean ``|change|`` at each of the
    ``period x period`` pixel phases (``(y mod period, x mod period)``), their standard deviation over their
    mean. 0 when every phase changes alike; a network's strides (the first max pool's is 2) make a dream
    that is never shifted change some phases more than others."""
    a = change.abs().sum(0)
    h, w = (a.shape[0] // period) * period, (a.shape[1] // period) * period
    phases = a[:h, :w].reshape(h // period, period, w // period, period).mean(dim=(0, 2))
    return (phases.std() / (phases.mean() + 1e-12)).item()


def mean_frequency(change: Float[torch.Tensor, "3 height width"]) -> float:
    """The spatial frequency of a change to a photo, in cycles per pixel: the mean of ``|f|`` over its 2-D
    Fourier spectrum, weighted by power (its own mean removed). Fine patterns score high (0.5 is a pixel-wide
    checkerboard), broad ones low."""
    spectrum = torch.fft.fft2(change - change.mean(dim=(1, 2), keepdim=True)).abs().pow(2).sum(0)
    fy, fx = torch.fft.fftfreq(change.shape[1])[:, None], torch.fft.fftfreq(change.shape[2])[None]
    return ((spectrum * (fy ** 2 + fx ** 2).sqrt()).sum() / (spectrum.sum() + 1e-12)).item()
