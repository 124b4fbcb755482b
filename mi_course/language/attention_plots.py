"""Figures for lesson 06 (induction heads): head-score heatmaps, attention patterns, loss per position.

Every function takes plain tensors (the learner's results or a cache's patterns) and returns a matplotlib
``Figure`` (or, for :func:`attention_view`, a circuitsvis HTML object); none of them computes an exercise's
answer. Shapes:

    scores     [n_layers, n_heads]        one number per head (prev-token, induction, loss increase ...)
    patterns   [n_layers, n_heads, query, key]   one sequence's attention
    losses     [pos - 1]                  per-token loss of one sequence, or averaged over a batch
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from jaxtyping import Float
from matplotlib.figure import Figure


def _numpy(value, name: str, dims: int) -> np.ndarray:
    array = value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, float)
    if array.ndim != dims:
        raise ValueError(f"{name} should have {dims} dimensions, got shape {array.shape}")
    return array


def plot_head_scores(scores: Mapping[str, Float[torch.Tensor, "layer head"]], cmap: str = "Blues",
                     vmin: float | None = 0.0, vmax: float | None = 1.0, fmt: str = "{:.2f}",
                     size: float = 0.55) -> Figure:
    """One heatmap per entry of ``scores`` (title -> ``[n_layers, n_heads]``), each cell annotated."""
    arrays = {title: _numpy(s, f"scores[{title!r}]", 2) for title, s in scores.items()}
    if not arrays:
        raise ValueError("scores is empty: pass {title: [n_layers, n_heads] tensor}")
    n_layers, n_heads = next(iter(arrays.values())).shape
    fig, axes = plt.subplots(1, len(arrays), squeeze=False,
                             figsize=(len(arrays) * (size * n_heads + 1.6), size * n_layers + 1.2))
    for ax, (title, a) in zip(axes[0], arrays.items()):
        lo = a.min() if vmin is None else vmin
        hi = a.max() if vmax is None else vmax
        im = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi, aspect="equal")
        for (layer, head), v in np.ndenumerate(a):
            dark = (v - lo) / ((hi - lo) or 1) > 0.6
            ax.text(head, layer, fmt.format(v), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_attention_patterns(patterns: Float[torch.Tensor, "layer head query key"], str_tokens: Sequence[str],
                            highlight: Sequence[tuple[int, int]] = (), size: float = 2.3,
                            label_every: int | None = None) -> Figure:
    """A grid of attention patterns (rows: layers, columns: heads) of one sequence. Heads listed in
    ``highlight`` as ``(layer, head)`` get a red frame. Rows are queries, columns keys."""
    p = _numpy(patterns, "patterns", 4)
    n_layers, n_heads, n_q, n_k = p.shape
    if len(str_tokens) != n_k:
        raise ValueError(f"{len(str_tokens)} tokens for patterns over {n_k} positions")
    step = label_every or max(1, n_k // 12)
    fig, axes = plt.subplots(n_layers, n_heads, squeeze=False, figsize=(size * n_heads, size * n_layers + 0.3))
    ticks = list(range(0, n_k, step))
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer, head]
            ax.imshow(p[layer, head], cmap="Blues", vmin=0, vmax=1)
            ax.set_title(f"{layer}.{head}", fontsize=9)
            bottom, left = layer == n_layers - 1, head == 0  # token labels on the outer axes only
            ax.set_xticks(ticks, [str_tokens[i] for i in ticks] if bottom else [], rotation=90, fontsize=6)
            ax.set_yticks(ticks, [str_tokens[i] for i in ticks] if left else [], fontsize=6)
            if (layer, head) in set(map(tuple, highlight)):
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2.5)
    fig.supxlabel("key (attended to)", fontsize=9)
    fig.supylabel("query", fontsize=9)
    fig.tight_layout()
    return fig


def plot_loss_by_position(losses: Mapping[str, Float[torch.Tensor, "n"]], seq_len: int | None = None,
                          ylabel: str = "loss (nats)") -> Figure:
    """Per-token loss curves (label -> ``[pos - 1]``, entry i = loss of predicting token i + 1). With
    ``seq_len``, shades the predictions of the repeated half (tokens seq_len + 1 .. 2 * seq_len)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    for label, loss in losses.items():
        a = _numpy(loss, f"losses[{label!r}]", 1)
        ax.plot(np.arange(1, len(a) + 1), a, label=label, lw=1.2)
    if seq_len is not None:
        ax.axvspan(seq_len + 0.5, 2 * seq_len + 0.5, color="0.9", zorder=0, label="repeated half")
    ax.set_xlabel("position of the predicted token")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_token_losses(str_tokens: Sequence[str], losses: Mapping[str, Float[torch.Tensor, "n"]],
                      mark: Sequence[int] = ()) -> Figure:
    """Bars of per-token loss under each predicted token (``str_tokens[1:]``); positions in ``mark`` (indices
    into ``str_tokens``) get their label in red."""
    arrays = {k: _numpy(v, f"losses[{k!r}]", 1) for k, v in losses.items()}
    n = len(str_tokens) - 1
    if any(len(a) != n for a in arrays.values()):
        raise ValueError(f"each loss needs {n} entries (one per predicted token)")
    fig, ax = plt.subplots(figsize=(max(6, 0.38 * n), 3))
    width = 0.8 / len(arrays)
    for i, (label, a) in enumerate(arrays.items()):
        ax.bar(np.arange(n) + (i - (len(arrays) - 1) / 2) * width, a, width=width, label=label)
    ax.set_xticks(range(n), str_tokens[1:], rotation=70, fontsize=8)
    for i, tick in enumerate(ax.get_xticklabels()):
        if i + 1 in set(mark):
            tick.set_color("red")
    ax.set_ylabel("loss of this token (nats)")
    if len(arrays) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def attention_view(patterns: Float[torch.Tensor, "layer head query key"], str_tokens: Sequence[str]):
    """An interactive circuitsvis view of every head of one sequence (hover a token to see where it looks).
    Offline it inlines ~1.3 MB of JavaScript, so render one per notebook, on a short sequence."""
    import circuitsvis as cv

    p = torch.as_tensor(patterns).detach().float().cpu()
    if p.dim() != 4 or p.shape[-1] != len(str_tokens):
        raise ValueError(f"patterns should be [layer, head, pos, pos] over {len(str_tokens)} tokens, "
                         f"got {tuple(p.shape)}")
    names = [f"{layer}.{head}" for layer in range(p.shape[0]) for head in range(p.shape[1])]
    return cv.attention.attention_heads(attention=p.flatten(0, 1), tokens=list(str_tokens),
                                        attention_head_names=names)
