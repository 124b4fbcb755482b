"""Lesson 10's feature dashboards: what one SAE feature reads, writes and fires on, from one pass over text.

    acts = feature_activations(sae, model, tokens)              # every feature at once, stored sparse
    dash = feature_dashboard(sae, model, acts, feature, other_sae=sae_b, labels=labels)
    dash                                                         # in a notebook: the panels
    dash.save("feature.html")                                    # one standalone HTML file
    text_view(sae, model, "The Golden Gate Bridge is red .", [feature], activations=acts)

The panels of :class:`FeatureDashboard`, each a plain function of the stored activations:

* :func:`activation_histogram`  the non-zero activations and the density (share of tokens where it fires);
* :func:`top_logit_effects`     the decoder direction read through the unembedding, ``W_dec[f] @ W_U``;
* :func:`max_activating_examples` and :func:`interval_examples`  contexts where the feature fires most, and
  contexts whose peak falls in each of ten equal intervals up to the maximum (Bricken et al., 2023);
* :func:`nearest_features`      the closest decoder rows of a second SAE (universality across seeds);
* :func:`label_features`        (lite) the corpus generator's kind of text that best predicts the feature,
  chosen on one set of documents and scored on another; :func:`neuronpedia_url` (full) a public page instead.

Positions that are not text (position 0, every BOS, padding) are stored as zero and left out of every
statistic: the residual stream at BOS is unlike any other token's, and a feature that fires there would
top every panel without telling anything about text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from mi_course.checks import index_in, int_at_least
from mi_course.saes import dashboard_html
from mi_course.saes.activations import hook_activations
from mi_course.saes.metrics import sae_hook_name

ENCODE_CHUNK_ENTRIES = 1 << 22  # tokens * d_sae encoded at once: 16 MB of float32, whatever the SAE's width

# SAELens release -> (Neuronpedia model id, source suffix): gpt2-small-res-jb's blocks.8.hook_resid_pre is
# https://www.neuronpedia.org/gpt2-small/8-res-jb/<feature> (sae_lens/pretrained_saes.yaml lists the same ids)
NEURONPEDIA_SOURCES: dict[str, tuple[str, str]] = {
    "gpt2-small-res-jb": ("gpt2-small", "res-jb"),
}
NEURONPEDIA_PAGE = "https://www.neuronpedia.org/{source}/{feature}"


# ---------------------------------------------------------------------------------------------- checks


def n_features(sae) -> int:
    """``d_sae``: the number of rows of ``W_dec`` (course SAEs and SAELens SAEs alike)."""
    W_dec = getattr(sae, "W_dec", None)
    if not isinstance(W_dec, torch.Tensor) or W_dec.dim() != 2:
        raise ValueError(f"expected an SAE with W_dec [d_sae, d_in] (mi_course.saes or SAELens), got "
                         f"{type(sae).__name__}")
    return W_dec.shape[0]


def check_feature(sae, feature) -> int:
    """``feature`` as an int in ``0..d_sae-1``, or a ValueError that says the range."""
    d_sae = n_features(sae)
    return index_in("feature", feature, d_sae, f"the SAE has d_sae={d_sae} features")


def token_strings(model, ids: Int[torch.Tensor, "..."]) -> list[str]:
    """Each id decoded on its own (GPT-2's ``" the"`` keeps its space; lite tokens are bare words)."""
    flat = ids.reshape(-1).tolist()
    tok = getattr(model, "tokenizer", None)
    if tok is None:  # a model built without a tokenizer: show the ids
        return [f"<{i}>" for i in flat]
    return tok.batch_decode([[i] for i in flat], clean_up_tokenization_spaces=False)


# ---------------------------------------------------------------------------------------------- activations


@dataclass(eq=False)
class FeatureActivations:
    """Every feature's activations on ``tokens`` [rows, pos], stored sparse by feature (compressed columns):
    the non-zero entries of feature ``f`` are ``values[feature_offsets[f]:feature_offsets[f+1]]`` at the
    flat positions ``token_index[...]`` (``row * pos + position``, increasing). ``counted`` [rows, pos]
    marks the positions in the statistics (text: not position 0, BOS or padding; others hold no entries).
    ``labels`` (optional) maps a candidate label to where it holds [rows, pos] (:func:`labelled_rows`)."""

    tokens: Int[torch.Tensor, "rows pos"]
    str_tokens: list[list[str]]
    counted: Bool[torch.Tensor, "rows pos"]
    feature_offsets: Int[torch.Tensor, "d_sae_plus_1"]
    token_index: Int[torch.Tensor, "nnz"]
    values: Float[torch.Tensor, "nnz"]
    labels: dict[str, Bool[torch.Tensor, "rows pos"]] | None = None

    def __post_init__(self):
        if not isinstance(self.tokens, torch.Tensor) or self.tokens.dim() != 2:
            raise ValueError(f"tokens must be [rows, pos], got {getattr(self.tokens, 'shape', type(self.tokens))}")
        shape = tuple(self.tokens.shape)
        if tuple(self.counted.shape) != shape:
            raise ValueError(f"counted must have the tokens' shape {shape}, got {tuple(self.counted.shape)}")
        if len(self.str_tokens) != shape[0] or any(len(r) != shape[1] for r in self.str_tokens):
            raise ValueError(f"str_tokens must hold {shape[0]} rows of {shape[1]} strings")
        if self.feature_offsets.dim() != 1 or int(self.feature_offsets[-1]) != len(self.values) \
                or len(self.token_index) != len(self.values):
            raise ValueError("feature_offsets, token_index and values do not describe the same entries")
        self.labels = check_labels(self.labels, shape)

    @property
    def d_sae(self) -> int:
        return len(self.feature_offsets) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.tokens.shape)

    @property
    def n_counted(self) -> int:
        return int(self.counted.sum())

    def entries(self, feature: int) -> tuple[Int[torch.Tensor, "n"], Float[torch.Tensor, "n"]]:
        """``(flat positions, values)`` where ``feature`` is non-zero."""
        feature = index_in("feature", feature, self.d_sae, f"the activations hold d_sae={self.d_sae} features")
        lo, hi = int(self.feature_offsets[feature]), int(self.feature_offsets[feature + 1])
        return self.token_index[lo:hi], self.values[lo:hi]

    def feature(self, feature: int) -> Float[torch.Tensor, "rows pos"]:
        """``feature``'s activation at every position (zero where it is silent or the position is not text)."""
        where, values = self.entries(feature)
        dense = torch.zeros(self.tokens.numel())
        dense[where] = values
        return dense.view(self.shape)

    def counted_values(self, feature: int) -> Float[torch.Tensor, "n_counted"]:
        """``feature``'s activation at every counted (text) position: what the statistics are over."""
        return self.feature(feature)[self.counted]

    def max_values(self) -> Float[torch.Tensor, "d_sae"]:
        """Every feature's largest activation (0 for a feature that never fires)."""
        out = torch.zeros(self.d_sae)
        if len(self.values):
            out.scatter_reduce_(0, self.entry_features(), self.values, reduce="amax")
        return out

    def entry_features(self) -> Int[torch.Tensor, "nnz"]:
        """The feature of each stored entry."""
        return torch.repeat_interleave(torch.arange(self.d_sae), self.feature_offsets.diff())

    @classmethod
    def from_dense(cls, tokens: Int[torch.Tensor, "rows pos"], activations: Float[torch.Tensor, "rows pos d_sae"],
                   str_tokens: list[list[str]] | None = None, counted: Bool[torch.Tensor, "rows pos"] | None = None,
                   labels: dict | None = None) -> "FeatureActivations":
        """Store dense activations [rows, pos, d_sae] (positions outside ``counted`` are dropped; by default
        every position but the first of each row counts)."""
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            raise ValueError(f"tokens must be an integer tensor [rows, pos], got "
                             f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
        if not isinstance(activations, torch.Tensor) or activations.dim() != 3 \
                or tuple(activations.shape[:2]) != tuple(tokens.shape):
            got = tuple(activations.shape) if isinstance(activations, torch.Tensor) else type(activations).__name__
            raise ValueError(f"activations must be [rows={tokens.shape[0]}, pos={tokens.shape[1]}, d_sae] like the "
                             f"tokens, got {got}")
        if counted is None:
            counted = torch.ones(tokens.shape, dtype=torch.bool)
            counted[:, 0] = False
        if str_tokens is None:
            str_tokens = [[f"<{i}>" for i in row] for row in tokens.tolist()]
        builder = _SparseBuilder(activations.shape[-1])
        builder.add(0, (activations.detach().float().cpu() * counted[..., None]).reshape(-1, activations.shape[-1]))
        return builder.build(tokens.long().cpu(), str_tokens, counted, labels)


class _SparseBuilder:
    """Collects the non-zero entries of [rows, pos, d_sae] batches and sorts them into compressed columns."""

    def __init__(self, d_sae: int):
        self.d_sae = d_sae
        self.flat: list[torch.Tensor] = []
        self.feature: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def add(self, first_token: int, acts: Float[torch.Tensor, "n d_sae"]) -> None:
        """Entries of ``acts``, whose row ``i`` is the token at flat position ``first_token + i``."""
        token, feature = acts.nonzero(as_tuple=True)
        self.flat.append(token + first_token)
        self.feature.append(feature)
        self.values.append(acts[token, feature])

    def build(self, tokens, str_tokens, counted, labels) -> FeatureActivations:
        flat, feature = torch.cat(self.flat), torch.cat(self.feature)
        values = torch.cat(self.values)
        order = (feature * tokens.numel() + flat).argsort()  # by feature, then by position
        counts = torch.bincount(feature, minlength=self.d_sae)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        return FeatureActivations(tokens, str_tokens, counted, offsets, flat[order], values[order], labels)


def text_positions(model, tokens: Int[torch.Tensor, "rows pos"]) -> Bool[torch.Tensor, "rows pos"]:
    """The positions that hold text: not position 0, and not a BOS or padding token."""
    counted = torch.ones(tokens.shape, dtype=torch.bool)
    counted[:, 0] = False
    tok = getattr(model, "tokenizer", None)
    for special in (getattr(tok, "bos_token_id", None), getattr(tok, "pad_token_id", None)):
        if special is not None:
            counted &= tokens != special
    return counted


@torch.no_grad()
def feature_activations(sae, model, tokens: Int[torch.Tensor, "rows pos"], batch_rows: int = 32,
                        labels: dict[str, Bool[torch.Tensor, "rows pos"]] | None = None,
                        progress: bool = False) -> FeatureActivations:
    """Every feature of ``sae`` on every row of ``tokens``, from one pass of ``model`` up to the SAE's hook
    (:func:`~mi_course.saes.activations.hook_activations`), kept sparse: build any number of dashboards
    from the result. ``labels`` (from :func:`labelled_rows`) ride along for :func:`label_features`."""
    hook_name = sae_hook_name(sae)
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be an integer tensor [rows, pos] (e.g. from labelled_rows or "
                         f"mi_course.organisms.tokenizer.pack_documents), got {got}")
    tokens = tokens.long().cpu()
    labels = check_labels(labels, tuple(tokens.shape))
    counted = text_positions(model, tokens)
    d_sae = n_features(sae)
    device = sae.W_dec.device
    builder = _SparseBuilder(d_sae)
    keep = counted.reshape(-1)
    chunk_tokens = max(1, ENCODE_CHUNK_ENTRIES // d_sae)
    first = 0  # flat index of the batch's first token
    for x in hook_activations(model, tokens, hook_name, batch_rows, drop_bos=False, progress=progress):
        for start in range(0, len(x), chunk_tokens):  # bounded memory for a 24576-feature SAE
            part = x[start:start + chunk_tokens]
            here = keep[first + start:first + start + len(part), None]
            builder.add(first + start, sae.encode(part.to(device)).float().cpu() * here)
        first += len(x)
    return builder.build(tokens, [token_strings(model, row) for row in tokens], counted, labels)


def check_labels(labels, shape: tuple[int, int]) -> dict[str, torch.Tensor] | None:
    if labels is None:
        return None
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"labels must be a non-empty dict of name -> bool tensor [rows, pos], got "
                         f"{type(labels).__name__}")
    out = {}
    for name, mask in labels.items():
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(shape):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"label {name!r} must be a bool tensor of the tokens' shape {tuple(shape)}, got {got}")
        out[str(name)] = mask.bool().cpu()
    return out


# ---------------------------------------------------------------------------------------------- lite labels


def candidate_labels() -> list[str]:
    """The lite corpus's kinds of text: each seed concept of ``corpus.token_labels`` (latin, code_error,
    praise, bridge) and each genre of ``corpus.GENRES`` as ``"genre:<name>"`` (every token of such a document)."""
    from mi_course.organisms import corpus

    return [*corpus.SEED_FEATURES, *(f"genre:{g}" for g in corpus.GENRES)]


def labelled_rows(tokenizer, documents, n_ctx: int = 128
                  ) -> tuple[Int[torch.Tensor, "rows n_ctx"], dict[str, Bool[torch.Tensor, "rows n_ctx"]]]:
    """Corpus ``Document``s packed into rows as :func:`~mi_course.organisms.tokenizer.pack_documents` packs
    them (``<bos> doc <eos> <bos> doc …``, the last row padded), with every :func:`candidate_labels` entry
    as a bool mask of the same shape. Needs the lite word-level tokenizer (one token per corpus piece)."""
    from mi_course.organisms import corpus
    from mi_course.organisms.tokenizer import pack_documents

    documents = list(documents)
    if not documents or not all(isinstance(d, corpus.Document) for d in documents):
        raise ValueError("documents must be a non-empty list of corpus Documents "
                         "(mi_course.organisms.corpus.generate_documents)")
    tokens = pack_documents(tokenizer, [d.text for d in documents], n_ctx, drop_last=False)
    ids = tokenizer([d.text for d in documents], add_special_tokens=False, padding=False,
                    truncation=False)["input_ids"]
    names = candidate_labels()
    stream_ids: list[int] = []
    stream = {name: [] for name in names}
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    for i, (doc, doc_ids) in enumerate(zip(documents, ids)):
        pieces, concept = corpus.token_labels(doc)
        if len(pieces) != len(doc_ids):
            raise ValueError(f"labelled_rows needs the lite word-level tokenizer (one token per corpus piece): "
                             f"document {i} has {len(doc_ids)} tokens but {len(pieces)} pieces")
        stream_ids += [bos, *doc_ids, eos]
        for name in names:
            marks = concept[name] if name in concept else [doc.genre == name[len("genre:"):]] * len(pieces)
            stream[name] += [False, *marks, False]
    width = n_ctx - 1
    n_rows = tokens.shape[0]

    def rows(values: list, fill, first) -> torch.Tensor:
        values = values + [fill] * (n_rows * width - len(values))
        body = torch.tensor(values[: n_rows * width]).view(n_rows, width)
        return torch.cat([torch.full((n_rows, 1), first, dtype=body.dtype), body], dim=1)

    if not torch.equal(rows(stream_ids, tokenizer.pad_token_id, bos), tokens):
        raise RuntimeError("pack_documents lays rows out differently from labelled_rows: update labelled_rows")
    return tokens, {name: rows(stream[name], False, False) for name in names}


# ---------------------------------------------------------------------------------------------- panels


class Histogram(NamedTuple):
    counts: Int[torch.Tensor, "bins"]           # non-zero activations per bin
    edges: Float[torch.Tensor, "bins_plus_1"]    # from 0 to the largest activation
    density: float                               # share of tokens where the feature is > 0


def activation_histogram(acts: Float[torch.Tensor, "..."], bins: int = 40) -> Histogram:
    """A histogram of the activations that are > 0 (SAE activations never are below), ``bins`` equal bins
    from 0 to the largest, and the density: the share of all ``acts`` that are > 0. A feature that never
    fires gets zero counts over [0, 1] and density 0."""
    int_at_least("bins", bins, 1)
    if not isinstance(acts, torch.Tensor) or acts.numel() == 0:
        raise ValueError(f"acts must be a non-empty tensor of one feature's activations, got "
                         f"{tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__}")
    values = acts.detach().reshape(-1).float().cpu()
    active = values[values > 0]
    if len(active) == 0:
        return Histogram(torch.zeros(bins, dtype=torch.long), torch.linspace(0, 1, bins + 1), 0.0)
    edges = torch.linspace(0, float(active.max()), bins + 1)
    counts = torch.histogram(active, bins=edges).hist.long()
    return Histogram(counts, edges, len(active) / len(values))


class LogitEffects(NamedTuple):
    top_ids: list[int]
    top_tokens: list[str]
    top_values: list[float]       # largest first
    bottom_ids: list[int]
    bottom_tokens: list[str]
    bottom_values: list[float]    # most negative first


def logit_effect(sae, model, feature: int) -> Float[torch.Tensor, "d_vocab"]:
    """``W_dec[feature] @ W_U``: how writing the feature's direction moves each logit directly. The final
    LayerNorm is ignored (its scale depends on the whole residual), as is usual for this panel."""
    feature = check_feature(sae, feature)
    W_U = model.W_U
    if W_U.shape[0] != sae.W_dec.shape[1]:
        raise ValueError(f"the SAE writes d_in={sae.W_dec.shape[1]} but the model's W_U reads "
                         f"d_model={W_U.shape[0]}")
    with torch.no_grad():
        return (sae.W_dec[feature].to(W_U.device, W_U.dtype) @ W_U).float().cpu()


def top_logit_effects(sae, model, feature: int, k: int = 10) -> LogitEffects:
    """The ``k`` tokens whose logits the feature's decoder direction raises most and the ``k`` it lowers
    most (:func:`logit_effect`; the final LayerNorm ignored), with their token strings."""
    effect = logit_effect(sae, model, feature)
    int_at_least("k", k, 1)
    if 2 * k > len(effect):
        raise ValueError(f"k must be at most d_vocab // 2 = {len(effect) // 2}, got {k}")
    top = effect.topk(k)
    bottom = (-effect).topk(k)
    return LogitEffects(top.indices.tolist(), token_strings(model, top.indices), top.values.tolist(),
                        bottom.indices.tolist(), token_strings(model, bottom.indices), (-bottom.values).tolist())


def top_logit_ids(sae, model, k: int = 10, chunk: int = 1024) -> Int[torch.Tensor, "d_sae k"]:
    """Every feature's ``k`` most raised tokens (:func:`logit_effect`), ``chunk`` features at a time."""
    W_U = model.W_U
    with torch.no_grad():
        return torch.cat([(sae.W_dec[i:i + chunk].to(W_U.device, W_U.dtype) @ W_U).topk(k).indices.cpu()
                          for i in range(0, n_features(sae), chunk)])


@dataclass
class Example:
    """A window ``start:start + len(str_tokens)`` of row ``row`` around ``position``, the largest activation
    in the window (the marked token), with every token's activation."""

    row: int
    position: int
    start: int
    str_tokens: list[str]
    values: list[float]

    @property
    def marked(self) -> int:
        """The marked token's index within the window."""
        return self.position - self.start

    @property
    def value(self) -> float:
        return self.values[self.marked]


def _check_acts(acts) -> FeatureActivations:
    if not isinstance(acts, FeatureActivations):
        raise ValueError(f"expected FeatureActivations (from feature_activations(sae, model, tokens)), got "
                         f"{type(acts).__name__}")
    return acts


def peak_tokens(acts: FeatureActivations, feature: int, context: int
                ) -> tuple[Int[torch.Tensor, "n"], Int[torch.Tensor, "n"], Float[torch.Tensor, "n"]]:
    """``(rows, positions, values)`` of every token where ``feature`` is > 0 and largest within ``context``
    tokens either side: each burst of activity gives one example, whose mark is its window's maximum."""
    _check_acts(acts)
    int_at_least("context", context, 0)
    dense = acts.feature(feature)
    pooled = F.max_pool1d(dense[:, None], 2 * context + 1, stride=1, padding=context)[:, 0]
    rows, positions = ((dense > 0) & (dense >= pooled)).nonzero(as_tuple=True)
    return rows, positions, dense[rows, positions]


def _example(acts: FeatureActivations, dense: torch.Tensor, row: int, position: int, context: int) -> Example:
    start, stop = max(0, position - context), min(acts.shape[1], position + context + 1)
    return Example(row, position, start, acts.str_tokens[row][start:stop], dense[row, start:stop].tolist())


def max_activating_examples(acts: FeatureActivations, feature: int, k: int = 20, context: int = 8) -> list[Example]:
    """The ``k`` contexts where ``feature`` is largest, largest first: windows of ``context`` tokens either
    side of a peak (:func:`peak_tokens`), cut at the row's edges."""
    int_at_least("k", k, 1)
    rows, positions, values = peak_tokens(acts, feature, context)
    dense = acts.feature(feature)
    order = values.argsort(descending=True, stable=True)[:k]
    return [_example(acts, dense, int(rows[i]), int(positions[i]), context) for i in order.tolist()]


@dataclass
class IntervalExamples:
    """Examples whose peak lies in ``(low, high]``, drawn from ``n_candidates`` such peaks."""

    low: float
    high: float
    n_candidates: int
    examples: list[Example]


def interval_examples(acts: FeatureActivations, feature: int, n_intervals: int = 10, per_interval: int = 3,
                      context: int = 8, seed: int = 0) -> list[IntervalExamples]:
    """``per_interval`` contexts, drawn with ``seed``, from each of ``n_intervals`` equal intervals between
    0 and the feature's largest activation (the first interval leaves out 0 itself): the whole range of the
    feature, not only its top (Bricken et al., 2023). Lowest interval first; [] for a feature that never
    fires."""
    int_at_least("n_intervals", n_intervals, 1)
    int_at_least("per_interval", per_interval, 1)
    rows, positions, values = peak_tokens(acts, feature, context)
    if len(values) == 0:
        return []
    dense = acts.feature(feature)
    edges = torch.linspace(0, float(values.max()), n_intervals + 1)
    # bucket i holds edges[i] < v <= edges[i+1]; the maximum itself belongs to the last bucket
    bucket = (torch.searchsorted(edges, values, right=False) - 1).clamp(0, n_intervals - 1)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_intervals):
        members = (bucket == i).nonzero()[:, 0]
        chosen = members[torch.randperm(len(members), generator=generator)[:per_interval]]
        chosen = chosen[values[chosen].argsort(descending=True)]
        out.append(IntervalExamples(float(edges[i]), float(edges[i + 1]), len(members),
                                    [_example(acts, dense, int(rows[j]), int(positions[j]), context)
                                     for j in chosen.tolist()]))
    return out


class Neighbours(NamedTuple):
    features: list[int]       # in the other SAE, closest first
    cosines: list[float]


def decoder_cosines(sae, other_sae, feature: int) -> Float[torch.Tensor, "d_sae_other"]:
    """Cosine between ``sae``'s decoder row ``feature`` and every decoder row of ``other_sae``."""
    feature = check_feature(sae, feature)
    n_features(other_sae)
    if other_sae.W_dec.shape[1] != sae.W_dec.shape[1]:
        raise ValueError(f"the two SAEs write different widths: d_in={sae.W_dec.shape[1]} and "
                         f"{other_sae.W_dec.shape[1]}")
    with torch.no_grad():
        row = F.normalize(sae.W_dec[feature].detach().float().cpu(), dim=-1)
        others = F.normalize(other_sae.W_dec.detach().float().cpu(), dim=-1)
        return (others @ row).clamp(-1, 1)


def nearest_features(sae, other_sae, feature: int, k: int = 5) -> Neighbours:
    """The ``k`` features of ``other_sae`` (e.g. the same recipe trained with another seed) whose decoder
    directions are closest to ``feature``'s, by cosine, closest first."""
    cosines = decoder_cosines(sae, other_sae, feature)
    int_at_least("k", k, 1)
    top = cosines.topk(min(k, len(cosines)))
    return Neighbours(top.indices.tolist(), top.values.tolist())


# ---------------------------------------------------------------------------------------------- labels


def _label_masks(acts: FeatureActivations) -> dict[str, torch.Tensor]:
    if acts.labels is None:
        raise ValueError("these activations carry no per-token labels: build the rows with labelled_rows(...) "
                         "and pass labels= to feature_activations")
    return acts.labels


def label_correlations(acts: FeatureActivations) -> Float[torch.Tensor, "candidates d_sae"]:
    """Pearson correlation, over the counted tokens, between each label's indicator (1 where it holds) and
    each feature's activation; 0 where either is constant (nothing to predict, or nothing to predict with).
    Computed from the sparse entries: a sum over the tokens where a feature fires."""
    masks = _label_masks(_check_acts(acts))
    counted = acts.counted.reshape(-1)
    n = counted.sum().double()
    feature_of = acts.entry_features()
    values = acts.values.double()
    sum_y = torch.zeros(acts.d_sae, dtype=torch.float64).index_add_(0, feature_of, values)
    sum_y2 = torch.zeros(acts.d_sae, dtype=torch.float64).index_add_(0, feature_of, values ** 2)
    mean_y = sum_y / n
    var_y = (sum_y2 / n - mean_y ** 2).clamp_min(0)
    rows = []
    for mask in masks.values():
        indicator = mask.reshape(-1) & counted
        mean_i = indicator.sum().double() / n
        sum_iy = torch.zeros(acts.d_sae, dtype=torch.float64).index_add_(
            0, feature_of, values * indicator[acts.token_index].double())
        cov = sum_iy / n - mean_i * mean_y
        denominator = (mean_i * (1 - mean_i) * var_y).sqrt()
        rows.append(torch.where(denominator > 1e-12, cov / denominator.clamp_min(1e-300), torch.zeros(())))
    return torch.stack(rows).float()


@dataclass
class FeatureLabel:
    feature: int
    label: str | None        # None: no candidate correlates positively on the fit set
    fit_correlation: float   # the chosen label's correlation on the documents it was chosen on
    score: float             # correlation of the label's prediction with the activations on held-out documents


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two equal-length vectors; 0 if either is constant."""
    x, y = x.double().reshape(-1), y.double().reshape(-1)
    x, y = x - x.mean(), y - y.mean()
    denominator = (x.pow(2).sum() * y.pow(2).sum()).sqrt()
    return float(x @ y / denominator) if denominator > 1e-12 else 0.0


def prediction_score(fit: FeatureActivations, heldout: FeatureActivations, feature: int, label: str) -> float:
    """How well ``label`` predicts ``feature`` on held-out text: predict each held-out token's activation as
    the mean activation, on the ``fit`` documents, of tokens where the label holds (or of tokens where it
    does not), and return the Pearson correlation of that prediction with the real activations."""
    masks_fit, masks_held = _label_masks(_check_acts(fit)), _label_masks(_check_acts(heldout))
    if label not in masks_fit or label not in masks_held:
        raise ValueError(f"label must be one of {list(masks_fit)}, got {label!r}")
    y_fit, in_fit = fit.counted_values(feature), masks_fit[label][fit.counted]
    mean_on = y_fit[in_fit].mean() if in_fit.any() else y_fit.new_zeros(())
    mean_off = y_fit[~in_fit].mean() if (~in_fit).any() else y_fit.new_zeros(())
    predicted = torch.where(masks_held[label][heldout.counted], mean_on, mean_off)
    return pearson(predicted, heldout.counted_values(feature))


@dataclass(eq=False)
class FeatureLabels:
    """A label per feature: the candidate with the highest correlation on the fit documents, and its
    :func:`prediction_score` on the held-out documents."""

    candidates: list[str]
    fit_correlations: Float[torch.Tensor, "candidates d_sae"]
    heldout_correlations: Float[torch.Tensor, "candidates d_sae"]

    def __len__(self) -> int:
        return self.fit_correlations.shape[1]

    def __getitem__(self, feature: int) -> FeatureLabel:
        feature = index_in("feature", feature, len(self), f"labels for d_sae={len(self)} features")
        column = self.fit_correlations[:, feature]
        best = int(column.argmax())
        if column[best] <= 0:
            return FeatureLabel(feature, None, float(column[best]), 0.0)
        # the prediction is mean_on * indicator + mean_off * (1 - indicator): affine in the indicator, so its
        # held-out correlation is the indicator's, times the sign of mean_on - mean_off (that of the fit one)
        return FeatureLabel(feature, self.candidates[best], float(column[best]),
                            float(self.heldout_correlations[best, feature]))

    def labels(self) -> list[str | None]:
        return [self[f].label for f in range(len(self))]


def label_features(fit: FeatureActivations, heldout: FeatureActivations) -> FeatureLabels:
    """Label every feature at once: choose on ``fit``, score on ``heldout`` (two different sets of
    documents, so the score is honest). Both need labels (:func:`labelled_rows`) with the same candidates."""
    masks_fit, masks_held = _label_masks(_check_acts(fit)), _label_masks(_check_acts(heldout))
    if list(masks_fit) != list(masks_held) or fit.d_sae != heldout.d_sae:
        raise ValueError(f"fit and heldout must have the same labels and d_sae; got {list(masks_fit)} / "
                         f"{list(masks_held)}, d_sae {fit.d_sae} / {heldout.d_sae}")
    return FeatureLabels(list(masks_fit), label_correlations(fit), label_correlations(heldout))


def label_feature(fit: FeatureActivations, heldout: FeatureActivations, feature: int) -> FeatureLabel:
    """One feature's label and held-out score (see :func:`label_features`)."""
    return label_features(fit, heldout)[feature]


# ---------------------------------------------------------------------------------------------- Neuronpedia


def neuronpedia_url(feature: int, release: str | None = None, hook_name: str | None = None,
                    neuronpedia_id: str | None = None) -> str | None:
    """The address of ``feature``'s public Neuronpedia page, or None when it has none: from a SAELens
    SAE's ``cfg.metadata.neuronpedia_id`` (``"gpt2-small/8-res-jb"``), or from ``release`` and ``hook_name``
    through :data:`NEURONPEDIA_SOURCES`. Only the address: nothing is fetched."""
    if neuronpedia_id is None and release in NEURONPEDIA_SOURCES and hook_name:
        model_id, suffix = NEURONPEDIA_SOURCES[release]
        match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook_name)
        if match:  # Neuronpedia numbers the residual stream's inputs: resid_post of block L is input L + 1
            layer = int(match.group(1)) + (match.group(2) == "post")
            neuronpedia_id = f"{model_id}/{layer}-{suffix}"
    if not neuronpedia_id:
        return None
    return NEURONPEDIA_PAGE.format(source=neuronpedia_id, feature=int(feature))


def sae_neuronpedia_id(sae) -> str | None:
    metadata = getattr(getattr(sae, "cfg", None), "metadata", None)
    value = getattr(metadata, "neuronpedia_id", None)
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------------- the dashboard


class HTMLPage:
    """Shows as HTML in a notebook; ``save`` writes one standalone file (inline CSS and SVG, nothing fetched)."""

    def fragment(self) -> str:
        raise NotImplementedError

    def title(self) -> str:
        raise NotImplementedError

    def to_html(self, standalone: bool = False) -> str:
        return dashboard_html.page(self.fragment(), self.title()) if standalone else self.fragment()

    def _repr_html_(self) -> str:
        return self.to_html()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_html(standalone=True), encoding="utf-8")
        return path


@dataclass(eq=False)
class FeatureDashboard(HTMLPage):
    """Every panel's data for one feature; displays as HTML in a notebook, :meth:`save` writes one file."""

    feature: int
    hook_name: str
    n_tokens: int                       # counted tokens the statistics are over
    histogram: Histogram
    logits: LogitEffects
    max_examples: list[Example]
    intervals: list[IntervalExamples]
    nearest: Neighbours | None = None
    other_name: str = "other SAE"
    label: FeatureLabel | None = None
    neuronpedia: str | None = None

    @property
    def density(self) -> float:
        return self.histogram.density

    @property
    def max_activation(self) -> float:
        return self.max_examples[0].value if self.max_examples else 0.0

    def fragment(self) -> str:
        return dashboard_html.dashboard_html(self)

    def title(self) -> str:
        return f"feature {self.feature}"


def feature_dashboard(sae, model, activations: FeatureActivations, feature: int, other_sae=None,
                      labels: FeatureLabels | None = None, release: str | None = None, other_name: str = "sae-b",
                      k_logits: int = 10, k_examples: int = 20, context: int = 8, n_intervals: int = 10,
                      per_interval: int = 3, bins: int = 40, seed: int = 0) -> FeatureDashboard:
    """The dashboard of ``feature`` of ``sae`` on ``activations`` (:func:`feature_activations` of the same
    SAE): histogram and density, top logit effects, max-activating and interval examples, nearest
    features of ``other_sae`` (optional), the label from ``labels`` (lite, :func:`label_features`), and
    the Neuronpedia link of a SAELens SAE (from its metadata, or ``release``: full mode only)."""
    _check_acts(activations)
    if activations.d_sae != n_features(sae):
        raise ValueError(f"the activations hold {activations.d_sae} features but the SAE has d_sae="
                         f"{n_features(sae)}: compute them with feature_activations(sae, model, tokens)")
    feature = check_feature(sae, feature)
    if labels is not None and not isinstance(labels, FeatureLabels):
        raise ValueError(f"labels must be FeatureLabels (from label_features), got {type(labels).__name__}")
    hook_name = sae_hook_name(sae)
    return FeatureDashboard(
        feature=feature, hook_name=hook_name, n_tokens=activations.n_counted,
        histogram=activation_histogram(activations.counted_values(feature), bins),
        logits=top_logit_effects(sae, model, feature, k_logits),
        max_examples=max_activating_examples(activations, feature, k_examples, context),
        intervals=interval_examples(activations, feature, n_intervals, per_interval, context, seed),
        nearest=None if other_sae is None else nearest_features(sae, other_sae, feature),
        other_name=other_name,
        label=None if labels is None else labels[feature],
        neuronpedia=neuronpedia_url(feature, release, hook_name, sae_neuronpedia_id(sae)),
    )


def feature_dashboards(sae, model, activations: FeatureActivations, features: Sequence[int],
                       **kwargs) -> list[FeatureDashboard]:
    """:func:`feature_dashboard` for each of ``features`` (same keyword arguments), from the one pass."""
    return [feature_dashboard(sae, model, activations, f, **kwargs) for f in features]


# ---------------------------------------------------------------------------------------------- text view


@dataclass(eq=False)
class TextView(HTMLPage):
    """Some features' activations on one text, one line per feature, each token shaded by its activation
    over ``scales`` (a feature's largest activation on reference text, or on this text)."""

    str_tokens: list[str]
    features: list[int]
    values: Float[torch.Tensor, "features pos"]
    scales: Float[torch.Tensor, "features"]

    def shading(self) -> Float[torch.Tensor, "features pos"]:
        """Each token's shade in [0, 1]: activation / scale (0 where the scale is 0)."""
        scales = self.scales[:, None]
        return torch.where(scales > 0, self.values / scales.clamp_min(1e-12), torch.zeros(())).clamp(0, 1)

    def fragment(self) -> str:
        return dashboard_html.text_view_html(self)

    def title(self) -> str:
        return "features on a text"


def text_view(sae, model, text: str, features: int | Sequence[int],
              activations: FeatureActivations | None = None) -> TextView:
    """``features`` of ``sae`` on every token of ``text`` (BOS first, shown but not counted). Shades are
    relative to each feature's largest activation on ``activations`` when given (so texts compare), else
    to its largest on this text."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    features = [features] if isinstance(features, int) else list(features)
    if not features:
        raise ValueError("features must name at least one feature")
    features = [check_feature(sae, f) for f in features]
    tokens = model.to_tokens(text, truncate=False).cpu()
    acts = feature_activations(sae, model, tokens)
    values = torch.stack([acts.feature(f)[0] for f in features])
    if activations is not None:
        scales = _check_acts(activations).max_values()[features]
    else:
        scales = values.amax(-1)
    return TextView(acts.str_tokens[0], features, values, scales)


__all__ = [
    "Example", "FeatureActivations", "FeatureDashboard", "FeatureLabel", "FeatureLabels", "Histogram",
    "IntervalExamples", "LogitEffects", "NEURONPEDIA_SOURCES", "Neighbours", "TextView", "activation_histogram",
    "candidate_labels", "check_feature", "decoder_cosines", "feature_activations", "feature_dashboard",
    "feature_dashboards", "interval_examples", "label_correlations", "label_feature", "label_features",
    "labelled_rows", "logit_effect", "max_activating_examples", "nearest_features", "neuronpedia_url", "pearson",
    "peak_tokens", "prediction_score", "text_positions", "text_view", "token_strings",
    "top_logit_effects", "top_logit_ids",
]
