"""Indirect object identification (Wang et al., 2022): "When Mary and John went to the store, John gave a
drink to" -> Mary. The logit difference between the indirect object and the subject measures the behaviour."""

from __future__ import annotations

import torch
from jaxtyping import Float


def answer_token(model, word: str) -> int:
    """The single token of ``word`` in this model's vocabulary: GPT-2 spells a word after a space as
    " Mary", the lite word-level models as "Mary"; whichever is one token is used."""
    for candidate in (" " + word, word):
        ids = model.to_tokens(candidate, prepend_bos=False)[0]
        if len(ids) == 1:
            return int(ids[0])
    raise ValueError(f"{word!r} is not a single token for this model; choose names that are")


def ioi_logit_diffs(model, prompts) -> Float[torch.Tensor, "n"]:
    """logit(indirect object) - logit(subject) at the last position, for each (prompt, io, s)."""
    diffs = []
    with torch.no_grad():
        for prompt, io, s in prompts:
            logits = model(model.to_tokens(prompt))[0, -1]
            diffs.append(logits[answer_token(model, io)] - logits[answer_token(model, s)])
    return torch.stack(diffs)
