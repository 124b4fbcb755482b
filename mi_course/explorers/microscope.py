"""A microscope for vision models, after OpenAI Microscope: pick a model, a layer and a channel, and see the
three kinds of evidence lesson 03 collects for it side by side.

* its **feature visualization** (:func:`mi_course.vision.featurevis.render`), remembered per (model, layer,
  channel, steps, size), so coming back to a channel costs nothing;
* its **dataset examples**: the images that excite it most, cropped to the firing unit's receptive field
  (:mod:`mi_course.vision.dataset_examples`; one pass over the images per layer, for every channel at once);
* its **radial tuning curve** on the course's arcs (:mod:`mi_course.vision.tuning`; one pass per layer).

    scope = microscope({"vision": model})                  # or microscope(["vision", "vision-b"]): load by role
    scope                                                  # in a notebook: the dropdowns, the slider, the view
    scope.layer.value = "conv3"; scope.channel.value = 11  # what a learner's mouse does
    scope.current()["tuning"], scope.current()["render_cached"]

Plain ipywidgets with the view as a PNG in an ``Output`` widget, so it works in JupyterLab, in Colab and
headless (see :mod:`mi_course.explorers.base`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import torch

from mi_course.explorers.base import Explorer, check_int, figure_bundle

# feature visualizations, shared by every microscope of the session: (model key, layer, channel, steps, size)
RENDER_CACHE: dict[tuple, torch.Tensor] = {}
LITE_TUNING = {}                                             # the canonical stimuli (64 px) as they are
# lucent's InceptionV1 (and other ImageNet models): larger arcs on a larger canvas, every 10 degrees. Chosen
# for mixed3b's 91-pixel field; not checked against the trained weights, which this repository cannot download.
IMAGENET_TUNING = {"orientations": tuple(range(0, 360, 10)), "radii": (10.0, 16.0, 24.0), "width": 3.0, "size": 112}


def _is_lite(model) -> bool:
    config = getattr(model, "config", None)
    return isinstance(config, dict) and "convs" in config


def default_layers(model) -> list[str]:
    """The layers a microscope offers: a lite CNN's convolutions, InceptionV1's conv and mixed layers (as
    lucent names them), else every top-level convolution or block with a spatial output."""
    if _is_lite(model):
        return list(model.layer_names)
    names = [n for n, _ in model.named_children()]
    if model._get_name() == "InceptionV1":
        return [n for n in names if n.startswith(("conv2d", "mixed")) and "_" not in n]
    return [n for n, m in model.named_modules() if n and isinstance(m, torch.nn.Conv2d)]


def default_tuning(model) -> dict:
    """Keyword arguments for :func:`mi_course.vision.tuning.tuning_curves` that suit ``model``."""
    return dict(LITE_TUNING) if _is_lite(model) else dict(IMAGENET_TUNING)


def default_render(model) -> dict:
    """``steps`` and ``size`` of the microscope's renders: 128 steps at 64 px for a lite CNN; for an ImageNet
    model 256 steps at 224 px on a GPU, 8 on a CPU (a first look; pass ``steps`` for more)."""
    if _is_lite(model):
        return {"steps": 128, "size": 64}
    return {"steps": 256 if torch.cuda.is_available() else 8, "size": 224}


class Microscope(Explorer):
    """Controls: ``model`` (Dropdown of the names given), ``layer`` (Dropdown of that model's layers) and
    ``channel`` (IntSlider, applied on release). ``current()`` returns ``model``, ``layer``, ``channel``,
    ``render`` (``[3, size, size]``), ``render_cached`` (whether it came from :data:`RENDER_CACHE`),
    ``examples`` (:class:`~mi_course.vision.dataset_examples.DatasetExamples`), ``orientations``, ``tuning``
    (the radial tuning curve), ``preferred_deg`` and ``peak_to_mean``."""

    def __init__(self, models, images=None, layers: Mapping[str, Sequence[str]] | None = None,
                 layer: str | None = None, channel: int = 0, k: int = 8, steps: int | None = None,
                 size: int | None = None, n_images: int = 1000, tuning: Mapping[str, dict] | None = None):
        if isinstance(models, str):
            models = [models]
        if isinstance(models, torch.nn.Module):
            models = {type(models).__name__: models}
        if not isinstance(models, Mapping):
            models = {role: None for role in models}  # roles, loaded when first picked
        if not models:
            raise ValueError("give at least one model: {'name': model} or a list of roles")
        self.models: dict[str, torch.nn.Module | None] = dict(models)
        self._images_arg, self.n_images = images, check_int("n_images", n_images, 1, 100_000)
        self.k = check_int("k", k, 1, 64)
        self._steps, self._size = steps, size
        self._layers_arg = dict(layers or {})
        self._tuning_arg = dict(tuning or {})
        self._images: dict[str, tuple[torch.Tensor, str]] = {}
        self._maxima: dict[tuple[str, str], tuple] = {}
        self._curves: dict[tuple[str, str], tuple] = {}
        self._channels: dict[tuple[str, str], int] = {}
        self.render_hits = self.render_misses = 0

        first = next(iter(self.models))
        self.model = widgets.Dropdown(options=list(self.models), value=first, description="model")
        layer_names = self.layers_of(first)
        if layer is not None and layer not in layer_names:
            raise ValueError(f"{first} has no layer {layer!r}; layers: {', '.join(layer_names)}")
        self.layer = widgets.Dropdown(options=layer_names, value=layer or layer_names[-1], description="layer")
        n = self.n_channels(first, self.layer.value)
        self.channel = widgets.IntSlider(value=check_int("channel", channel, 0, n - 1), min=0, max=n - 1,
                                         description="channel", continuous_update=False)
        rows = [widgets.HBox([self.model, self.layer]), self.channel]
        self._start([self.model, self.layer, self.channel], rows)

    # ------------------------------------------------------------------------------------ what it reads

    def get_model(self, name: str) -> torch.nn.Module:
        if self.models.get(name) is None:
            from mi_course import load_model

            self.models[name] = load_model(name)
        return self.models[name]

    def layers_of(self, name: str) -> list[str]:
        layers = list(self._layers_arg.get(name) or default_layers(self.get_model(name)))
        if not layers:
            raise ValueError(f"no layers to show for {name}: pass layers={{'{name}': [...]}}")
        return layers

    def images_of(self, name: str) -> tuple[torch.Tensor, str]:
        """The images dataset examples are drawn from for model ``name``, and what they are."""
        if name not in self._images:
            given = self._images_arg
            if isinstance(given, Mapping):
                given = given.get(name)
            if isinstance(given, torch.Tensor):
                self._images[name] = (given, f"{len(given)} images given")
            else:
                from mi_course.vision.natural_images import example_images

                model = self.get_model(name)
                self._images[name] = example_images(self.n_images, mode="lite" if _is_lite(model) else "full")
        return self._images[name]

    def n_channels(self, name: str, layer: str) -> int:
        key = (name, layer)
        if key not in self._channels:
            from mi_course.vision.activations import layer_activations

            side = self._tuning(name).get("size", 64)
            probe = torch.full((1, 3, side, side), 0.5)
            acts = layer_activations(self.get_model(name), probe, layer)
            if acts.dim() != 4:
                raise ValueError(f"{name} {layer} has no spatial map (output {tuple(acts.shape)}): pick a conv layer")
            self._channels[key] = acts.shape[1]
        return self._channels[key]

    def _tuning(self, name: str) -> dict:
        return {**default_tuning(self.get_model(name)), **self._tuning_arg.get(name, {})}

    def render_settings(self, name: str) -> dict:
        settings = default_render(self.get_model(name))
        if self._steps is not None:
            settings["steps"] = self._steps
        if self._size is not None:
            settings["size"] = self._size
        return settings

    def feature_visualization(self, name: str, layer: str, channel: int) -> tuple[torch.Tensor, bool]:
        """The channel's render (``[3, size, size]``) and whether it was in the cache."""
        from mi_course.vision.featurevis import render

        settings = self.render_settings(name)
        key = (name, layer, channel, settings["steps"], settings["size"])
        hit = key in RENDER_CACHE
        if not hit:
            RENDER_CACHE[key] = render(self.get_model(name), f"{layer}:{channel}", steps=settings["steps"],
                                       size=settings["size"], progress=False)[0]
            self.render_misses += 1
        else:
            self.render_hits += 1
        return RENDER_CACHE[key], hit

    def examples(self, name: str, layer: str, channel: int):
        """The channel's top dataset examples (one pass over the images per layer, every channel at once)."""
        from mi_course.vision.dataset_examples import DatasetExamples, image_maxima
        from mi_course.vision.receptive_field import receptive_field

        key = (name, layer)
        images, _ = self.images_of(name)
        if key not in self._maxima:
            model = self.get_model(name)
            channels = range(self.n_channels(name, layer))
            self._maxima[key] = (*image_maxima(model, images, layer, channels), receptive_field(model, layer))
        values, where, (_, w), rf = self._maxima[key]
        k = min(self.k, len(images))
        order = torch.sort(values[:, channel], descending=True, stable=True).indices[:k]
        flat = where[order, channel]
        positions = torch.stack([flat // w, flat % w], dim=1)
        crops = torch.stack([rf.crop(images[int(i)], int(r), int(c)) for i, (r, c) in zip(order, positions)])
        return DatasetExamples(channel, values[order, channel], order, positions, crops, rf)

    def tuning_curve(self, name: str, layer: str, channel: int) -> tuple[tuple, torch.Tensor]:
        """``(orientations, the channel's radial tuning curve)`` (one pass per layer, every channel at once)."""
        from mi_course.vision.tuning import ORIENTATIONS, tuning_curves

        key = (name, layer)
        if key not in self._curves:
            kwargs = self._tuning(name)
            orientations = tuple(kwargs.get("orientations", ORIENTATIONS))
            self._curves[key] = (orientations, tuning_curves(self.get_model(name), layer, **kwargs))
        orientations, curves = self._curves[key]
        return orientations, curves[channel]

    # ------------------------------------------------------------------------------------ the view

    def _before_render(self) -> None:
        name = self.model.value
        layers = self.layers_of(name)
        if list(self.layer.options) != layers:
            keep = self.layer.value if self.layer.value in layers else layers[-1]
            self.layer.options = layers
            self.layer.value = keep
        n = self.n_channels(name, self.layer.value)
        if self.channel.max != n - 1:
            self.channel.max = n - 1  # the slider clamps its value

    def _render(self):
        import matplotlib.pyplot as plt

        name, layer, channel = self.model.value, self.layer.value, self.channel.value
        image, hit = self.feature_visualization(name, layer, channel)
        examples = self.examples(name, layer, channel)
        orientations, curve = self.tuning_curve(name, layer, channel)
        peak = float(curve.max())
        preferred = float(orientations[int(curve.argmax())])
        ratio = peak / max(float(curve.mean()), 1e-12) if peak > 0 else 0.0
        _, source = self.images_of(name)

        cols = math.ceil(len(examples.crops) / 2)
        fig = plt.figure(figsize=(3 + 1.4 * cols + 3, 3.2))
        grid = fig.add_gridspec(2, cols + 4, width_ratios=[2, 0.15] + [1] * cols + [0.2, 2.2])
        ax = fig.add_subplot(grid[:, 0])
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(f"{layer}:{channel}\nfeature visualization", fontsize=9)
        ax.axis("off")
        for i, (crop, value, index) in enumerate(zip(examples.crops, examples.values, examples.indices)):
            ax = fig.add_subplot(grid[i // cols, 2 + i % cols])
            ax.imshow(crop.clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_title(f"#{int(index)}: {float(value):.2f}", fontsize=7)
            ax.axis("off")
        fig.text(0.5, 0.98, f"dataset examples ({examples.rf.size}-px fields)", ha="center", va="top", fontsize=9)
        ax = fig.add_subplot(grid[:, -1], projection="polar")
        theta = torch.tensor(list(orientations) + [orientations[0]], dtype=torch.float64).deg2rad()
        ax.plot(theta.numpy(), torch.cat([curve, curve[:1]]).numpy(), color="C3")
        ax.set_title(f"radial tuning\npeak at {preferred:.0f} deg", fontsize=9)
        ax.tick_params(labelsize=6)
        state = {"model": name, "layer": layer, "channel": channel, "render": image, "render_cached": hit,
                 "examples": examples, "orientations": orientations, "tuning": curve, "preferred_deg": preferred,
                 "peak_to_mean": ratio,
                 "status": f"{name} {layer}:{channel}: prefers curves bulging towards {preferred:.0f} degrees "
                           f"(peak / mean {ratio:.1f}); examples from {source}; render "
                           f"{'from the cache' if hit else 'new'}"}
        return state, [figure_bundle(fig)]


def microscope(models, images=None, layers: Mapping[str, Sequence[str]] | None = None, layer: str | None = None,
               channel: int = 0, k: int = 8, steps: int | None = None, size: int | None = None,
               n_images: int = 1000, tuning: Mapping[str, dict] | None = None) -> Microscope:
    """A :class:`Microscope` over ``models``: ``{"name": model}``, one model, or roles to load with
    :func:`mi_course.load_model` (``["vision", "vision-b"]``). ``images``: a tensor (or ``{"name": tensor}``)
    to draw dataset examples from; default :func:`mi_course.vision.natural_images.example_images` of
    ``n_images`` (Imagenette in full mode, the generated set in lite mode). ``layers``: ``{"name": [...]}``
    (default :func:`default_layers`); ``layer`` and ``channel`` the first view (default the last layer,
    channel 0); ``k`` examples; ``steps`` and ``size`` of the renders (default :func:`default_render`);
    ``tuning``: ``{"name": kwargs}`` for the tuning stimuli (default :func:`default_tuning`).

    Raises:
        ValueError: no models, an unknown layer, a channel out of range, or a layer without a spatial map.
    """
    return Microscope(models, images, layers, layer, channel, k, steps, size, n_images, tuning)
