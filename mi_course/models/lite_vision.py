"""The ``cnn`` builder: the small CNNs of the lite vision organisms (roles ``vision``, ``vision-b``, ``vision-c``).

Input contract (as every course vision model): RGB images in [0, 1], shape (batch, 3, H, W); the model
normalizes internally with the ``mean``/``std`` of its config, so probes never normalize by hand.

Layers are reachable by name for hooks: ``model.conv1`` ... ``model.convN`` are :class:`ConvReLU` modules
(a ``nn.Conv2d`` with replicate padding whose forward applies the ReLU), so a forward hook on ``model.conv3``
sees the post-ReLU activations (batch, channels, h, w) and ``model.conv3.weight`` holds the weights that
read the previous layer's (post-ReLU, pooled) activations. ``model.layer_names`` lists them in order,
``model.layers`` maps each name to its module. After the convolutions: a global max pool and ``model.fc``
(logits over ``model.classes``).

``config.json``::

    {"kind": "cnn", "in_channels": 3, "mean": [...3], "std": [...3],
     "convs": [{"name": "conv1", "out": 16, "kernel": 5, "pool": 2}, ...],   # pool: max-pool factor after it
     "global_pool": "max", "classes": ["arc", ...]}

A conv entry with ``"block": "residual"`` makes that layer a :class:`ResidualBlock` and the model a
:class:`ResidualCNN` (role ``vision-c``, the lite counterpart of ResNet-50): ``model.conv4`` is then the block,
``relu(conv_b(conv_a(x)) + shortcut(x))``, and a hook on it sees the block's output after the addition and
the ReLU (as a hook on torchvision's ``layer2`` does); that ReLU is the module ``model.conv4.relu``.
``model.conv4.conv_a`` (a :class:`ConvReLU`) reads the previous layer's pooled output directly; ``conv_b`` and
``shortcut`` (1x1, or ``nn.Identity`` when the widths agree) are :class:`ConvBN` (no ReLU). Names are
lucent-style for the feature-visualization code too (``conv4``, ``conv4_conv_a``: the module path joined by
``_``).

Shipped weights have BatchNorm folded into the convolutions (training uses BatchNorm; see
``scripts/train_vision.py``), so what a lesson reads off ``conv.weight`` is the whole linear map.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mi_course.models.lite import builder


class ConvBN(nn.Conv2d):
    """A same-size convolution with replicate padding (and, while training, an optional BatchNorm after it,
    folded away by :meth:`fold_batchnorm`); no ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, batchnorm: bool = False):
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd (same-size padding), got {kernel}")
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2, padding_mode="replicate",
                         bias=True)
        self.bn = nn.BatchNorm2d(out_channels) if batchnorm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y if self.bn is None else self.bn(y)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the BatchNorm's running statistics and affine parameters into the weights and bias."""
        if self.bn is None:
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.weight.mul_(scale[:, None, None, None])
        self.bias.copy_((self.bias - bn.running_mean) * scale + bn.bias)
        self.bn = None


class ConvReLU(ConvBN):
    """A :class:`ConvBN` followed by a ReLU: a hook on it sees post-ReLU activations."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class ResidualBlock(nn.Module):
    """``relu(conv_b(conv_a(x)) + shortcut(x))``: two same-size convolutions (the first with its ReLU) and a
    skip connection, a 1x1 :class:`ConvBN` when the widths differ, else the identity (He et al., 2016)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, batchnorm: bool = False):
        super().__init__()
        self.conv_a = ConvReLU(in_channels, out_channels, kernel, batchnorm)
        self.conv_b = ConvBN(out_channels, out_channels, kernel, batchnorm)
        self.shortcut = ConvBN(in_channels, out_channels, 1, batchnorm) if in_channels != out_channels \
            else nn.Identity()
        self.relu = nn.ReLU()  # a module, so that feature visualization can redirect its gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv_b(self.conv_a(x)) + self.shortcut(x))

    def fold_batchnorm(self) -> None:
        for conv in (self.conv_a, self.conv_b, self.shortcut):
            if isinstance(conv, ConvBN):
                conv.fold_batchnorm()


BLOCKS = {"plain": ConvReLU, "residual": ResidualBlock}


class LiteCNN(nn.Module):
    """Normalize -> [ConvReLU (-> max pool)] x N -> global max pool -> Linear. See the module doc."""

    def __init__(self, config: dict, batchnorm: bool = False):
        super().__init__()
        self.config = dict(config)
        self.classes = tuple(config["classes"])
        convs = config["convs"]
        if not convs:
            raise ValueError("config['convs'] is empty")
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, 3, 1, 1))
        self.layer_names = tuple(c["name"] for c in convs)
        self.pools = {}
        channels = config.get("in_channels", 3)
        for c in convs:
            block = c.get("block", "plain")
            if block not in BLOCKS:
                raise ValueError(f"conv {c['name']!r}: block must be one of {sorted(BLOCKS)}, got {block!r}")
            self.add_module(c["name"], BLOCKS[block](channels, c["out"], c["kernel"], batchnorm))
            self.pools[c["name"]] = int(c.get("pool", 1))
            channels = c["out"]
        if config.get("global_pool", "max") != "max":
            raise ValueError(f"only global_pool 'max' is supported, got {config['global_pool']!r}")
        self.fc = nn.Linear(channels, len(self.classes))

    @property
    def layers(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.layer_names}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv layer's activations (batch, channels, h, w)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB images in [0, 1] of shape (batch, 3, H, W), got {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        for name in self.layer_names:
            x = getattr(self, name)(x)
            if self.pools[name] > 1:
                x = F.max_pool2d(x, self.pools[name])
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).amax(dim=(2, 3)))

    def fold_batchnorm(self) -> "LiteCNN":
        for layer in self.layers.values():
            layer.fold_batchnorm()
        return self


class ResidualCNN(LiteCNN):
    """A :class:`LiteCNN` whose layers after the stem are :class:`ResidualBlock` s (``"block": "residual"``
    in the config): the small residual CNN of role ``vision-c``. Same input contract, hooks and head."""


def lite_cnn(config: dict, batchnorm: bool = False) -> LiteCNN:
    """The model a ``cnn`` config describes: a :class:`ResidualCNN` when any conv is a residual block."""
    residual = any(c.get("block", "plain") == "residual" for c in config["convs"])
    return (ResidualCNN if residual else LiteCNN)(config, batchnorm)


@builder("cnn")
def cnn(config: dict, state: dict[str, torch.Tensor], folder: Path | None = None, **kwargs) -> LiteCNN:
    """A :class:`LiteCNN` (or :class:`ResidualCNN`) from ``config.json`` and its (BatchNorm-folded) weights."""
    if kwargs:
        raise TypeError(f"the cnn builder takes no extra arguments, got {sorted(kwargs)}")
    model = lite_cnn(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()
