"""Lesson 09's figures and examples: activations of labelled documents, the variants' frontier, decoder
cosines, and a feature's top activations shown in their context.

    docs = labelled_documents(model, hook_name, corpus.generate_documents(150, seed=1))
    plot_frontier({"relu": metrics, ...})
    plot_max_cosines({"relu": cosines, ...})
    show_top_activations(sae, docs, feature, n=8)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from jaxtyping import Bool, Float, Int

from mi_course.saes.activations import check_hook


@dataclass
class LabelledDocuments:
    """Activations of documents at one hook, one row per token (BOS and padding left out), with where each
    token came from: ``document`` [n] (index into ``genres``/``str_tokens``), ``position`` [n] (1.. in its
    row), ``genres`` (one per document) and ``str_tokens`` (each document's tokens, BOS first)."""

    activations: Float[torch.Tensor, "n d_in"]
    document: Int[torch.Tensor, "n"]
    position: Int[torch.Tensor, "n"]
    genres: list[str]
    str_tokens: list[list[str]]

    def of_kind(self, genre: str) -> Bool[torch.Tensor, "n"]:
        """Which tokens lie in a document of ``genre`` (the corpus generator's own label)."""
        in_genre = torch.tensor([g == genre for g in self.genres])
        return in_genre[self.document]


def labelled_documents(model, hook_name: str, documents, max_tokens: int | None = None) -> LabelledDocuments:
    """Run ``documents`` (corpus ``Document``s with ``genre`` and ``text``) through ``model``, one per row
    after a BOS, padded at the end (a causal model never looks ahead, so padding changes nothing before it),
    cut after ``max_tokens`` tokens (default: the model's context less BOS), and keep the activations at
    ``hook_name``."""
    check_hook(model, hook_name)
    tok = model.tokenizer
    bos = tok.bos_token_id
    max_tokens = model.cfg.n_ctx - 1 if max_tokens is None else min(max_tokens, model.cfg.n_ctx - 1)
    ids = [tok(d.text, add_special_tokens=False)["input_ids"][:max_tokens] for d in documents]
    width = 1 + max(len(i) for i in ids)
    rows = torch.full((len(ids), width), bos, dtype=torch.long)
    real = torch.zeros(len(ids), width, dtype=torch.bool)
    for r, doc_ids in enumerate(ids):
        rows[r, 1:1 + len(doc_ids)] = torch.tensor(doc_ids)
        real[r, 1:1 + len(doc_ids)] = True
    match = re.match(r"blocks\.(\d+)\.", hook_name)
    stop = int(match.group(1)) + 1 if match and int(match.group(1)) + 1 < model.cfg.n_layers else None
    with torch.no_grad():
        _, cache = model.run_with_cache(rows.to(model.cfg.device), names_filter=hook_name, stop_at_layer=stop)
    acts = cache[hook_name].cpu()
    document = torch.arange(len(ids))[:, None].expand(-1, width)
    position = torch.arange(width)[None].expand(len(ids), -1)
    str_tokens = [[tok.convert_ids_to_tokens(bos)] + tok.convert_ids_to_tokens(i) for i in ids]
    return LabelledDocuments(acts[real], document[real], position[real], [d.genre for d in documents], str_tokens)


def _clean(token: str) -> str:
    return token.replace("\u0120", " ").replace("\u010a", "\\n").replace("\n", "\\n").strip() or repr(token)


def top_activations(sae, docs: LabelledDocuments, feature: int, n: int = 8, context: int = 8) -> list[dict]:
    """The ``n`` tokens where ``feature`` of ``sae`` is largest: activation, genre, and the text around it
    (``context`` tokens before, 2 after, the token itself in [brackets])."""
    with torch.no_grad():
        y = sae.encode(docs.activations.to(sae.W_dec.device))[:, feature].float().cpu()
    values, where = y.topk(min(n, len(y)))
    out = []
    for value, i in zip(values.tolist(), where.tolist()):
        d, p = int(docs.document[i]), int(docs.position[i])
        words = [_clean(t) for t in docs.str_tokens[d]]
        text = " ".join(words[max(1, p - context):p] + [f"[{words[p]}]"] + words[p + 1:p + 3])
        out.append({"activation": round(value, 3), "genre": docs.genres[d], "context": text})
    return out


def show_top_activations(sae, docs: LabelledDocuments, feature: int, title: str = "", n: int = 8,
                         context: int = 8) -> None:
    """Print :func:`top_activations` as a small table."""
    print(f"feature {feature}" + (f" ({title})" if title else "") + ":")
    for row in top_activations(sae, docs, feature, n, context):
        print(f"  {row['activation']:8.3f}  {row['genre']:<9} ...{row['context']}")


def _label_points(ax, xs, ys, names, colors, fontsize: int = 8) -> None:
    """Write each point's name beside it, at the first place (right or left, then further up or down, with a
    thin leader line) where it covers neither another label nor a point, so that close points keep legible
    labels."""
    to_points = 72 / ax.figure.dpi
    where = ax.transData.transform(list(zip(xs, ys))) * to_points  # in points
    height, gap, marker = 1.25 * fontsize, 5.0, 5.0

    def overlaps(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    taken = [(x - marker, y - marker, x + marker, y + marker) for x, y in where]  # the points themselves
    for i in sorted(range(len(names)), key=lambda i: (-where[i][1], where[i][0])):
        x, y = where[i]
        width = 0.62 * fontsize * len(names[i])
        for dy in (0, 1, -1, 2, -2, 3, -3, 4, -4):
            for side in (1, -1):
                left = x + gap if side > 0 else x - gap - width
                box = (left, y + dy * height - height / 2, left + width, y + dy * height + height / 2)
                if not any(overlaps(box, t) for t in taken):
                    break
            else:
                continue
            break
        taken.append(box)
        ax.annotate(names[i], (xs[i], ys[i]), textcoords="offset points", xytext=(side * gap, dy * height),
                    ha="left" if side > 0 else "right", va="center", fontsize=fontsize, color=colors[i],
                    arrowprops=dict(arrowstyle="-", lw=0.6, color=colors[i], shrinkA=0, shrinkB=4) if dy else None)


def plot_frontier(results: dict[str, dict], ax=None):
    """Two panels: L0 against explained variance, and L0 against CE loss recovered, one point per SAE
    (``results``: name -> a dict with ``l0``, ``explained_variance``, ``ce_loss_recovered``). Each SAE has its
    colour and an open marker of its own shape (points that coincide stay visible); labels of points that lie
    close together are staggered, with a leader line to their point."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6)) if ax is None else (ax[0].figure, ax)
    names = list(results)
    colors = [f"C{i % 10}" for i in range(len(names))]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]  # points that coincide stay visible as two shapes
    keys = ("explained_variance", "ce_loss_recovered")
    for a, key, label in zip(axes, keys, ("explained variance", "CE loss recovered (zero ablation)")):
        for i, (name, color) in enumerate(zip(names, colors)):
            a.scatter(results[name]["l0"], results[name][key], s=44, marker=markers[i % len(markers)],
                      facecolors="none", edgecolors=color, linewidths=1.5, zorder=3)
        a.set_xlabel("L0 (active features per token)")
        a.set_ylabel(label)
        a.grid(alpha=0.3)
        a.margins(x=0.35, y=0.3)  # room for the labels right of the points and above the top one
    fig.tight_layout()
    for a, key in zip(axes, keys):  # after the layout, so the labels are spaced in the final coordinates
        _label_points(a, [results[n]["l0"] for n in names], [results[n][key] for n in names], names, colors)
    return fig


def plot_max_cosines(cosines: dict[str, torch.Tensor], bins: int = 40):
    """One histogram per SAE of each feature's largest cosine to another decoder row, with its median."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, c in cosines.items():
        c = c.detach().float().cpu()
        ax.hist(c.numpy(), bins=bins, range=(0, 1), histtype="step", linewidth=1.5,
                label=f"{name} (median {c.median().item():.2f})")
    ax.set_xlabel("largest cosine to another decoder row")
    ax.set_ylabel("features")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
