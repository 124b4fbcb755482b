"""Figures and tables for lesson 05 (transformer circuits).

None of these computes an exercise's answer: they take the learner's results (bigram tables, logit
components, circuits, skip-trigrams, composition scores) and show them. Plots return a matplotlib
``Figure``; tables return a string to print. Token ids become readable strings with ``token_str``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def token_str(model, token: int) -> str:
    """A token as a short printable string (newlines and indentation made visible)."""
    if getattr(model, "tokenizer", None) is None:  # a model built without a tokenizer: show the id
        return str(int(token))
    text = model.to_single_str_token(int(token))
    return repr(text)[1:-1] if not text.strip() or "\n" in text else text


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


# ---------------------------------------------------------------------------------------------- sizes


def _count(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def matrix_sizes(model) -> str:
    """A table of the model's weight matrices and of one head's full circuits, with their sizes."""
    cfg = model.cfg
    rows = [("W_E", "token embedding", (cfg.d_vocab, cfg.d_model))]
    if cfg.positional_embedding_type in ("standard", "shortformer"):
        rows.append(("W_pos", "positional embedding", (cfg.n_ctx, cfg.d_model)))
    rows += [
        ("W_Q, W_K, W_V", "per head: read from the residual stream", (cfg.d_model, cfg.d_head)),
        ("W_O", "per head: write to the residual stream", (cfg.d_head, cfg.d_model)),
        ("W_QK = W_Q W_K^T", "per head, rank <= d_head", (cfg.d_model, cfg.d_model)),
        ("W_OV = W_V W_O", "per head, rank <= d_head", (cfg.d_model, cfg.d_model)),
    ]
    if not cfg.attn_only and cfg.d_mlp:
        rows += [("W_in", "per MLP layer", (cfg.d_model, cfg.d_mlp)),
                 ("W_out", "per MLP layer", (cfg.d_mlp, cfg.d_model))]
    rows += [
        ("W_U", "unembedding", (cfg.d_model, cfg.d_vocab)),
        ("W_E W_OV W_U", "full OV circuit of one head", (cfg.d_vocab, cfg.d_vocab)),
        ("  as two factors", "W_E W_V and W_O W_U", (2 * cfg.d_vocab, cfg.d_head)),
    ]
    lines = [f"{cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}, d_head {cfg.d_head}, "
             f"d_vocab {cfg.d_vocab}" + ("" if cfg.attn_only else f", d_mlp {cfg.d_mlp}"),
             f"{'matrix':<18} {'shape':>14} {'numbers':>9}  {'float32':>8}  what"]
    for name, what, shape in rows:
        n = _count(shape)
        shape_text = " x ".join(str(s) for s in shape)
        lines.append(f"{name:<18} {shape_text:>14} {_human(n):>9}  {_human(4 * n) + 'B':>8}  {what}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- corpus counts


def _encode_all(model, texts: Iterable[str]) -> list[list[int]]:
    """Token ids of each text, without a leading bos (one batched call to the fast tokenizer)."""
    return model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def corpus_bigrams(model, texts: Iterable[str]) -> Counter:
    """Counts of (token, next token) pairs in ``texts``, tokenized by the model."""
    counts: Counter = Counter()
    for ids in _encode_all(model, texts):
        counts.update(zip(ids, ids[1:]))
    return counts


def corpus_skip_trigrams(model, texts: Iterable[str], window: int = 30) -> set[tuple[int, int, int]]:
    """Every (A, B, C) with C right after B and A among the ``window`` tokens before B, in ``texts``."""
    seen: set[tuple[int, int, int]] = set()
    for ids in _encode_all(model, texts):
        for j in range(1, len(ids) - 1):
            b, c = ids[j], ids[j + 1]
            seen.update((a, b, c) for a in ids[max(0, j - window):j])
    return seen


# ---------------------------------------------------------------------------------------------- tables


def next_token_table(model, words: Sequence[str], logits: torch.Tensor, k: int = 5,
                     counts: Counter | None = None) -> str:
    """The top ``k`` next tokens of each row of ``logits`` (one row per word), with probabilities; with
    corpus ``counts`` (from :func:`corpus_bigrams`) also the word's most frequent followers in the corpus."""
    probs = _numpy(torch.as_tensor(logits).float().softmax(-1))
    lines = []
    for word, row in zip(words, probs):
        top = np.argsort(-row)[:k]
        model_side = ", ".join(f"{token_str(model, t)} {row[t]:.2f}" for t in top)
        line = f"{word.strip():>12} -> {model_side}"
        if counts is not None:
            first = model.to_single_token(word)
            followers = Counter({c: n for (a, c), n in counts.items() if a == first})
            total = sum(followers.values()) or 1
            corpus_side = ", ".join(f"{token_str(model, t)} {n / total:.2f}" for t, n in followers.most_common(3))
            line += f"   | corpus: {corpus_side or '(never seen)'}"
        lines.append(line)
    return "\n".join(lines)


def skip_trigram_table(model, triples: torch.Tensor, scores: torch.Tensor,
                       seen: set[tuple[int, int, int]] | None = None) -> str:
    """One line per skip-trigram "A ... B -> C" with its score; ``*`` marks those found in ``seen``."""
    lines = []
    for (a, b, c), s in zip(torch.as_tensor(triples).tolist(), torch.as_tensor(scores).tolist()):
        mark = "" if seen is None else ("  *" if (a, b, c) in seen else "")
        lines.append(f"{s:9.1f}   {token_str(model, a):>12} ... {token_str(model, b):<12} -> "
                     f"{token_str(model, c)}{mark}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- plots


def plot_logit_attribution(values: torch.Tensor, labels: Sequence[str], positions: Sequence[str],
                           title: str = "") -> Figure:
    """Heatmap of ``values [n_components, pos]``: each component's contribution to some logit per position."""
    v = _numpy(values)
    if v.shape != (len(labels), len(positions)):
        raise ValueError(f"values should be [{len(labels)} components, {len(positions)} positions], got {v.shape}")
    lim = np.abs(v).max() or 1.0
    fig, ax = plt.subplots(figsize=(0.5 * len(positions) + 2.5, 0.3 * len(labels) + 1.5))
    im = ax.imshow(v, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xticks(range(len(positions)), positions, rotation=90, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, label="logit")
    fig.tight_layout()
    return fig


def plot_token_matrix(matrix: torch.Tensor, rows: Sequence[str], cols: Sequence[str], title: str = "",
                      xlabel: str = "", ylabel: str = "", ax=None) -> Figure:
    """A small heatmap of a matrix indexed by tokens (a slice of a full circuit), centred at 0."""
    m = _numpy(matrix)
    if m.shape != (len(rows), len(cols)):
        raise ValueError(f"matrix should be [{len(rows)}, {len(cols)}], got {m.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.35 * len(cols) + 2, 0.3 * len(rows) + 1.5))
    fig = ax.figure
    lim = np.abs(m).max() or 1.0
    im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return fig


def plot_composition(scores: Mapping[str, torch.Tensor], baseline: float | None = None,
                     layer0_names: Sequence[str] | None = None, layer1_names: Sequence[str] | None = None) -> Figure:
    """One heatmap per kind (``{"Q": [h0, h1], ...}``) on a shared colour scale, the baseline in the titles."""
    mats = {k: _numpy(v) for k, v in scores.items()}
    top = max(m.max() for m in mats.values())
    n0, n1 = next(iter(mats.values())).shape
    fig, axes = plt.subplots(1, len(mats), figsize=(2.6 * len(mats) + 2.2, 3.6), squeeze=False, sharey=True)
    for ax, (kind, m) in zip(axes[0], mats.items()):
        im = ax.imshow(m, cmap="Blues", vmin=0, vmax=top)
        for (i, j), value in np.ndenumerate(m):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 * top else "black")
        ax.set_xticks(range(n1), layer1_names or [f"1.{h}" for h in range(n1)], rotation=90, fontsize=8)
        ax.set_xlabel("layer-1 head (reader)", fontsize=9)
        ax.set_title(f"{kind}-composition" + (f"\n(random matrices: {baseline:.3f})" if baseline else ""), fontsize=10)
    axes[0][0].set_yticks(range(n0), layer0_names or [f"0.{h}" for h in range(n0)], fontsize=8)
    axes[0][0].set_ylabel("layer-0 head (writer)", fontsize=9)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.02)
    return fig


def plot_path_sizes(sizes: Mapping[str, float], virtual: torch.Tensor) -> Figure:
    """Bars for named path terms and a heatmap of the virtual heads' sizes ``[head0, head1]``."""
    v = _numpy(virtual)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    names = list(sizes)
    ax0.bar(range(len(names)), [sizes[n] for n in names], color="tab:blue")
    ax0.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax0.set_ylabel("typical size (logits)")
    ax0.set_title("direct path and single heads", fontsize=10)
    im = ax1.imshow(v, cmap="Blues", vmin=0, vmax=max(v.max(), max(sizes.values())))
    for (i, j), value in np.ndenumerate(v):
        ax1.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax1.set_xticks(range(v.shape[1]), [f"1.{h}" for h in range(v.shape[1])], fontsize=8)
    ax1.set_yticks(range(v.shape[0]), [f"0.{h}" for h in range(v.shape[0])], fontsize=8)
    ax1.set_xlabel("then layer-1 head")
    ax1.set_ylabel("layer-0 head first")
    ax1.set_title("virtual heads (same scale)", fontsize=10)
    fig.colorbar(im, ax=ax1, fraction=0.04)
    fig.tight_layout()
    return fig
