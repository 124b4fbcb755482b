"""Figures of images: a grid of renders, photos or data-set examples, each ``[3, H, W]`` in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def image_grid(images: Sequence[torch.Tensor] | torch.Tensor, titles: Sequence[str] | None = None, *,
               cols: int = 8, size: float = 1.6, suptitle: str | None = None):
    """Images (a list of ``[3, H, W]`` or a batch ``[n, 3, H, W]``) in rows of ``cols``, with titles;
    returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    cols = min(cols, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
