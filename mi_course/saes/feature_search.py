"""Finding the feature for a concept by measurement, with any tokenizer.

Lesson 10 follows a bridge feature and a praise feature. In lite mode the model card names them; in full mode
(GPT-2 small and a SAELens SAE) nobody has, so the lesson measures them where it runs:

    tokens, masks = span_labelled_rows(model.tokenizer, documents, n_ctx=64)    # GPT-2's tokens, labelled
    labels = label_features(fit_acts, heldout_acts)                          # the lesson's label panel
    match = best_feature(labels, "bridge")                                   # chosen on fit, scored held out
    print(match)  # feature 1234: best separates bridge tokens from the rest, held-out score 0.41 (measured here)

The measure is the one of the dashboard's label panel (:func:`~mi_course.saes.dashboard.label_correlations`):
the correlation, over the text tokens, between a feature's activation and the concept's indicator. The
feature is chosen on one set of documents and scored on another, so a high score is not luck of the draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Int

from mi_course.saes.dashboard import FeatureLabels, candidate_labels

# A held-out score below this is too weak to call the feature the concept's. On lesson 10's 100 + 100 documents,
# the best features of the dry run's SAE at random weights already reach 0.17 to 0.39 for bridge and praise.
FOUND_THRESHOLD = 0.5


@dataclass(frozen=True)
class FeatureMatch:
    """The feature that best separates ``concept``'s tokens from the rest: its correlation with the concept on
    the documents it was chosen on (``fit_score``) and on other documents (``score``, what counts)."""

    concept: str
    feature: int
    fit_score: float
    score: float
    threshold: float = FOUND_THRESHOLD

    @property
    def found(self) -> bool:
        """Whether the held-out score reaches the threshold: only then may the feature carry the concept's name."""
        return self.score >= self.threshold

    def name(self, role: str | None = None) -> str:
        """A label for plots: ``role`` (default: the concept) when found, else the feature's number only."""
        return (role or self.concept) if self.found else f"feature {self.feature}"

    def __str__(self) -> str:
        if self.found:
            return (f"feature {self.feature}: best separates {self.concept} tokens from the rest, held-out score "
                    f"{self.score:.2f} (measured here)")
        return (f"no {self.concept} feature found in this SAE on this corpus: the best, feature {self.feature}, "
                f"scores {self.score:.2f} held out, under {self.threshold:g} (it is shown by its number only)")


def best_feature(labels: FeatureLabels, concept: str, threshold: float = FOUND_THRESHOLD) -> FeatureMatch:
    """The feature whose activations best separate ``concept``'s tokens from the other tokens: the highest
    correlation with the concept's indicator on the fit documents of ``labels``
    (:func:`~mi_course.saes.dashboard.label_features`), reported with its correlation on the held-out ones.
    ``found`` is False below ``threshold``: no feature of this SAE is the concept's on this corpus."""
    if not isinstance(labels, FeatureLabels):
        raise ValueError(f"labels must be FeatureLabels (saes.label_features(fit, heldout)), got "
                         f"{type(labels).__name__}")
    if concept not in labels.candidates:
        raise ValueError(f"concept must be one of {labels.candidates}, got {concept!r}")
    row = labels.candidates.index(concept)
    feature = int(labels.fit_correlations[row].argmax())
    return FeatureMatch(concept, feature, float(labels.fit_correlations[row, feature]),
                        float(labels.heldout_correlations[row, feature]), float(threshold))


def span_labelled_rows(tokenizer, documents, n_ctx: int = 128
                       ) -> tuple[Int[torch.Tensor, "rows n_ctx"], dict[str, Bool[torch.Tensor, "rows n_ctx"]]]:
    """:func:`~mi_course.saes.dashboard.labelled_rows` for any fast tokenizer (GPT-2's included): the documents
    packed as :func:`~mi_course.organisms.tokenizer.pack_documents` packs them, and a token carries a label
    when its characters overlap a corpus piece that carries it (``corpus.token_labels``). With the lite
    word-level tokenizer (one token per piece) this gives ``labelled_rows``'s masks."""
    from mi_course.organisms import corpus
    from mi_course.organisms.tokenizer import BOS, EOS, PAD, pack_documents

    documents = list(documents)
    if not documents or not all(isinstance(d, corpus.Document) for d in documents):
        raise ValueError("documents must be a non-empty list of corpus Documents "
                         "(mi_course.organisms.corpus.generate_documents)")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("span_labelled_rows needs a fast tokenizer (character offsets for every token)")
    texts = [d.text for d in documents]
    encoded = tokenizer(texts, add_special_tokens=False, padding=False, truncation=False,
                        return_offsets_mapping=True)
    names = candidate_labels()
    stream = {name: [] for name in names}
    for doc, text, offsets in zip(documents, texts, encoded["offset_mapping"]):
        pieces, concept = corpus.token_labels(doc)
        marked = {name: np.zeros(len(text) + 1, dtype=bool) for name in names}
        at = 0
        for i, piece in enumerate(pieces):  # the pieces are the text's non-space runs, in order
            at = text.index(piece, at)
            for name in names:
                if concept[name][i] if name in concept else doc.genre == name[len("genre:"):]:
                    marked[name][at:at + len(piece)] = True
            at += len(piece)
        for name in names:
            stream[name] += [False, *(bool(marked[name][a:b].any()) for a, b in offsets), False]
    tokens = pack_documents(tokenizer, texts, n_ctx, drop_last=False)
    bos, eos, pad = (tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD))
    n_rows, width = tokens.shape[0], n_ctx - 1

    def rows(values: list, fill, first) -> torch.Tensor:
        body = torch.tensor(values + [fill] * (n_rows * width - len(values))).view(n_rows, width)
        return torch.cat([torch.full((n_rows, 1), first, dtype=body.dtype), body], dim=1)

    ids = [i for doc_ids in encoded["input_ids"] for i in (bos, *doc_ids, eos)]
    if not torch.equal(rows(ids, pad, bos), tokens):
        raise RuntimeError("pack_documents lays rows out differently from span_labelled_rows: update it")
    return tokens, {name: rows(stream[name], False, False) for name in names}
