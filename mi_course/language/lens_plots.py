"""Figures for lesson 07 (the logit lens): the table of top tokens, and per-layer curves.

Every function takes the learner's results (a ``top_tokens_table`` DataFrame, or tensors) and returns a
matplotlib ``Figure``; none of them runs a model. Rows of a lens are numbered as in
:mod:`mi_course.language.logit_lens`: row 0 = after the embeddings, row ``l`` = after block ``l - 1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

TABLE_COLUMNS = ("layer", "pos", "input", "target", "rank", "token", "logit", "correct")


def row_labels(n_rows: int) -> list[str]:
    """``["embed", "0", "1", ...]``: the residual after the embeddings, then after each block."""
    return ["embed"] + [str(l) for l in range(n_rows - 1)]


def _short(text, width: int) -> str:
    text = "" if text is None else str(text).replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_top_tokens(table, positions: Sequence[int] | None = None, cell_chars: int = 8,
                    title: str = "logit lens: top guess per layer and position") -> Figure:
    """The logit lens as a grid: one column per position (the input token below, the actual next token on
    top), one row per layer (embeddings at the bottom, the model's output at the top). Each cell shows the
    top guess (rank 0), coloured by its logit; a black frame marks a guess that is the actual next token.

    ``table`` is what ``top_tokens_table`` returns (columns layer, pos, input, target, rank, token, logit,
    correct); ``positions`` picks columns (default: all)."""
    missing = [c for c in TABLE_COLUMNS if c not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"table should be a top_tokens_table DataFrame; it lacks the columns {missing}")
    top = table[table["rank"] == 0]
    layers = sorted(top["layer"].unique())
    all_pos = sorted(top["pos"].unique())
    positions = list(all_pos if positions is None else positions)
    bad = [p for p in positions if p not in all_pos]
    if bad:
        raise ValueError(f"positions {bad} are not in the table (it has 0..{max(all_pos)})")
    cell = {(int(r.layer), int(r.pos)): r for r in top.itertuples()}
    logits = np.array([[cell[(l, p)].logit for p in positions] for l in layers], dtype=float)

    fig, ax = plt.subplots(figsize=(0.75 * len(positions) + 1.8, 0.42 * len(layers) + 1.6))
    image = ax.imshow(logits, cmap="Blues", aspect="auto", origin="lower")
    threshold = np.nanmin(logits) + 0.6 * (np.nanmax(logits) - np.nanmin(logits))
    for i, l in enumerate(layers):
        for j, p in enumerate(positions):
            r = cell[(l, p)]
            ax.text(j, i, _short(r.token, cell_chars), ha="center", va="center", fontsize=7,
                    color="white" if logits[i, j] > threshold else "black",
                    fontweight="bold" if r.correct else "normal")
            if r.correct:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.6))
    ax.set_yticks(range(len(layers)), row_labels(max(layers) + 1)[min(layers):max(layers) + 1])
    ax.set_ylabel("residual after block")
    inputs = [_short(cell[(layers[0], p)].input, cell_chars) for p in positions]
    targets = [_short(cell[(layers[0], p)].target, cell_chars) for p in positions]
    ax.set_xticks(range(len(positions)), inputs, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("input token")
    top_axis = ax.secondary_xaxis("top")
    top_axis.set_xticks(range(len(positions)), targets, rotation=60, ha="left", fontsize=8)
    fig.colorbar(image, ax=ax, label="logit of the top guess", fraction=0.03, pad=0.02)
    ax.set_title(f"{title}\n(labels on top: the actual next token; framed: the top guess is right)", fontsize=10)
    fig.tight_layout()
    return fig


def _per_layer(values) -> np.ndarray:
    t = torch.as_tensor(values).detach().float().cpu()
    if t.dim() > 1:  # [layers, batch, pos] -> mean over everything but the layer
        t = t.reshape(t.shape[0], -1).mean(dim=1)
    return t.numpy()


def plot_kl_by_layer(curves: Mapping[str, torch.Tensor], title: str = "KL(final || layer) by depth",
                     log: bool = False) -> Figure:
    """One line per lens: ``{label: kl}`` with ``kl`` either per layer (``[n_layers + 1]``) or the full
    ``kl_to_final`` result (``[n_layers + 1, batch, pos]``, averaged here over sequences and positions)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    n = 0
    for label, values in curves.items():
        y = _per_layer(values)
        n = max(n, len(y))
        ax.plot(range(len(y)), y, "o-", label=label)
    ax.set_xticks(range(n), row_labels(n))
    ax.set_xlabel("residual after block")
    ax.set_ylabel("KL(final || layer) [nats]")
    if log:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_rank_by_layer(ranks: torch.Tensor, title: str = "where the next token ranks, by depth") -> Figure:
    """From ``correct_token_rank`` (``[n_layers + 1, batch, pos - 1]``): the fraction of positions where the
    next token is the top guess, and the median and 90th-percentile rank (log scale), per layer."""
    r = torch.as_tensor(ranks).detach().cpu().reshape(ranks.shape[0], -1).float()
    x = range(r.shape[0])
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.1))
    a.plot(x, (r == 0).float().mean(dim=1).numpy(), "o-")
    a.set_ylabel("fraction: next token is top guess")
    a.set_ylim(0, 1)
    b.plot(x, r.quantile(0.5, dim=1).numpy() + 1, "o-", label="median")
    b.plot(x, r.quantile(0.9, dim=1).numpy() + 1, "o--", label="90th percentile")
    b.set_yscale("log")
    b.set_ylabel("rank + 1 of the next token")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.set_xticks(list(x), row_labels(r.shape[0]))
        ax.set_xlabel("residual after block")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
