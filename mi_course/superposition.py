"""Figures for lesson 08 (superposition): toy-model weights as arrows, batches, dimensionality, interference.

Every function takes plain tensors (the learner's results) and returns a matplotlib ``Figure``; none of
them trains, samples or computes an exercise's answer. Shapes follow the lesson's toy model:

    W                 [n_instances, n_hidden, n_features]   column W[k, :, i] = feature i of instance k
    a batch x         [batch, n_instances, n_features]
    dimensionality    [n_instances, n_features]
    feature_probability  [n_instances]  (the chance a feature is present; sparsity S = 1 - p)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import torch
from jaxtyping import Float
from matplotlib.figure import Figure

# Fractions at which feature dimensionality "sticks" in Elhage et al. (2022), with the shape behind each.
STICKY_FRACTIONS = {
    Fraction(1, 1): "own dimension",
    Fraction(3, 4): "tetrahedron",
    Fraction(2, 3): "triangle",
    Fraction(1, 2): "antipodal pair",
    Fraction(2, 5): "pentagon",
    Fraction(3, 8): "square antiprism",
}


def _tensor(value, name: str, dims: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(np.asarray(value), dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} should be a tensor, got {type(value).__name__}") from err
    if value.dim() != dims:
        raise ValueError(f"{name} should have {dims} dimensions, got shape {tuple(value.shape)}")
    return value.detach().float().cpu()


def _titles(titles: Sequence[str] | None, n: int) -> list[str]:
    if titles is None:
        return [f"instance {k}" for k in range(n)]
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} instances")
    return titles


def _grid(n: int, size: float, max_cols: int = 6):
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def regular_polygon(n_features: int, radius: float = 1.0) -> Float[torch.Tensor, "2 n_features"]:
    """Hand-made 2-D weights: ``n_features`` unit columns (times ``radius``) at equal angles, the first on
    the x axis. ``regular_polygon(5)`` is the pentagon a toy model finds; ``regular_polygon(2)`` an
    antipodal pair."""
    if n_features < 1:
        raise ValueError(f"n_features should be at least 1, got {n_features}")
    angles = torch.arange(n_features) * (2 * math.pi / n_features)
    return radius * torch.stack([angles.cos(), angles.sin()])


def plot_features_2d(W: Float[torch.Tensor, "instances 2 features"], titles: Sequence[str] | None = None,
                     importance: Float[torch.Tensor, "features"] | None = None, size: float = 2.6) -> Figure:
    """One panel per instance: every feature's column ``W[k, :, i]`` drawn as an arrow from the origin.

    Colour shows the feature index (or its ``importance``, darker = more important); the dotted circle has
    radius 1, the length of a feature that is fully represented."""
    W = _tensor(W, "W ([n_instances, 2, n_features])", 3)
    if W.shape[1] != 2:
        raise ValueError(f"plot_features_2d draws 2-D hidden spaces: W should be [n_instances, 2, n_features], "
                         f"got n_hidden = {W.shape[1]}")
    n_instances, _, n_features = W.shape
    if importance is not None:
        importance = _tensor(importance, "importance ([n_features])", 1)
        if importance.shape[0] != n_features:
            raise ValueError(f"importance should have {n_features} entries, got {importance.shape[0]}")
        scaled = (importance - importance.min()) / (importance.max() - importance.min() + 1e-12)
        colors = plt.cm.viridis(0.85 - 0.75 * scaled.numpy())
    else:
        colors = plt.cm.tab10(np.arange(n_features) % 10)
    reach = max(1.2, float(W.norm(dim=1).max()) * 1.15)
    fig, axes = _grid(n_instances, size)
    circle = np.linspace(0, 2 * np.pi, 200)
    for ax, k, title in zip(axes, range(n_instances), _titles(titles, n_instances)):
        ax.plot(np.cos(circle), np.sin(circle), ":", color="0.7", lw=0.8)
        for i in range(n_features):
            x, y = W[k, :, i].tolist()
            ax.annotate("", xy=(x, y), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=colors[i], lw=1.8, shrinkA=0, shrinkB=0))
            ax.plot([x], [y], "o", color=colors[i], ms=3)
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-reach, reach)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_feature_batch(x: Float[torch.Tensor, "batch instances features"], titles: Sequence[str] | None = None,
                       max_examples: int = 40) -> Figure:
    """One heat map per instance: rows are examples, columns features, white = 0 (absent)."""
    x = _tensor(x, "x ([batch, n_instances, n_features])", 3)[:max_examples]
    n_instances = x.shape[1]
    fig, axes = _grid(n_instances, 2.4)
    for ax, k, title in zip(axes, range(n_instances), _titles(titles, n_instances)):
        image = ax.imshow(x[:, k].numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("feature")
        ax.set_ylabel("example" if k == 0 else "")
    fig.colorbar(image, ax=axes, shrink=0.8, label="value")
    return fig


def plot_outputs(x: Float[torch.Tensor, "cases features"], outputs: dict[str, torch.Tensor],
                 case_titles: Sequence[str] | None = None) -> Figure:
    """Grouped bars, one panel per case: the input ``x[c]`` and every named output ``outputs[name][c]``
    (each ``[cases, features]``), feature by feature."""
    x = _tensor(x, "x ([cases, n_features])", 2)
    outs = {name: _tensor(v, f"outputs[{name!r}]", 2) for name, v in outputs.items()}
    for name, v in outs.items():
        if v.shape != x.shape:
            raise ValueError(f"outputs[{name!r}] has shape {tuple(v.shape)}, x has {tuple(x.shape)}")
    n_cases, n_features = x.shape
    fig, axes = plt.subplots(1, n_cases, figsize=(3.6 * n_cases, 2.8), squeeze=False, sharey=True)
    series = {"input x": x, **outs}
    width = 0.8 / len(series)
    for c, ax in enumerate(axes[0]):
        for s, (name, values) in enumerate(series.items()):
            ax.bar(np.arange(n_features) + (s - (len(series) - 1) / 2) * width, values[c].numpy(), width,
                   label=name, color="0.75" if s == 0 else plt.cm.tab10(s - 1))
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(n_features))
        ax.set_xlabel("feature")
        if case_titles is not None:
            ax.set_title(case_titles[c], fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_dimensionality(feature_probability: Float[torch.Tensor, "instances"],
                        W: Float[torch.Tensor, "instances hidden features"],
                        dimensionality: Float[torch.Tensor, "instances features"],
                        min_norm: float = 0.5, seed: int = 0) -> Figure:
    """Feature dimensionality against ``1 / (1 - S) = 1 / feature_probability`` (log scale), as in
    Elhage et al. (2022): a dot per represented feature (``||W_i|| > min_norm``; dropped features would
    all sit at 0), jittered sideways, and a line for the instance's dimensions per feature,
    ``n_hidden / ||W||_F^2``. Dotted lines mark the sticky fractions."""
    p = _tensor(feature_probability, "feature_probability ([n_instances])", 1)
    W = _tensor(W, "W ([n_instances, n_hidden, n_features])", 3)
    dims = _tensor(dimensionality, "dimensionality ([n_instances, n_features])", 2)
    n_instances, n_hidden, n_features = W.shape
    if p.shape[0] != n_instances or dims.shape != (n_instances, n_features):
        raise ValueError(f"shapes disagree: feature_probability {tuple(p.shape)}, W {tuple(W.shape)}, "
                         f"dimensionality {tuple(dims.shape)}; want [I], [I, m, n], [I, n]")
    if not ((p > 0) & (p <= 1)).all():
        raise ValueError("feature_probability should be in (0, 1] to plot against 1 / feature_probability")
    rng = np.random.default_rng(seed)
    x = (1 / p).numpy()
    norms = W.norm(dim=1)
    fig, ax = plt.subplots(figsize=(8, 4))
    for frac, shape in STICKY_FRACTIONS.items():
        ax.axhline(float(frac), color="0.8", ls=":", lw=1, zorder=0)
        va = {Fraction(2, 5): "bottom", Fraction(3, 8): "top"}.get(frac, "center")
        ax.text(x.max() * 1.7, float(frac), f"{frac}  {shape}", va=va, fontsize=7, color="0.4")
    for k in range(n_instances):
        keep = norms[k] > min_norm
        jitter = np.exp(rng.normal(0, 0.04, int(keep.sum())))
        ax.scatter(x[k] * jitter, dims[k][keep].numpy(), s=10, alpha=0.6,
                   color=plt.cm.viridis(k / max(1, n_instances - 1)))
    per_feature = n_hidden / (W**2).sum(dim=(1, 2))
    ax.plot(x, per_feature.numpy(), "k-", lw=1.2, label="dimensions per feature, m / ||W||_F^2")
    ax.set_xscale("log")
    ax.set_xlim(x.min() / 1.2, x.max() * 1.6)
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if x.min() / 1.2 <= t <= x.max() * 1.6]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("1 / (1 - S)  (S = sparsity; 1 / feature_probability)")
    ax.set_ylabel("feature dimensionality")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_interference(W: Float[torch.Tensor, "instances hidden features"], titles: Sequence[str] | None = None,
                      size: float = 2.6) -> Figure:
    """One heat map of ``W^T W`` ([n_features, n_features]) per instance: the diagonal holds each
    feature's squared length, an off-diagonal entry (i, j) how much feature j leaks into feature i's
    read-out. Red = positive interference, blue = negative."""
    W = _tensor(W, "W ([n_instances, n_hidden, n_features])", 3)
    gram = W.transpose(1, 2) @ W
    limit = float(gram.abs().max()) or 1.0
    fig, axes = _grid(W.shape[0], size)
    for ax, k, title in zip(axes, range(W.shape[0]), _titles(titles, W.shape[0])):
        image = ax.imshow(gram[k].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ticks = range(W.shape[2]) if W.shape[2] <= 10 else []
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.tick_params(labelsize=7, length=0)
    fig.colorbar(image, ax=axes, shrink=0.8, label="W^T W entry")
    return fig
