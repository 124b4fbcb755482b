"""Indirect object identification (Wang et al., 2022): "When Mary and John went to the store, John gave a
drink to" -> Mary. The logit difference between the indirect object and the subject measures the behaviour."""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Float, Int


def answer_token(model, word: str) -> int:
    """The single token of ``word`` in this model's vocabulary: GPT-2 spells a word after a space as
    " Mary", the lite word-level models as "Mary"; whichever is one token is used."""
    for candidate in (" " + word, word):
        ids = model.to_tokens(candidate, prepend_bos=False)[0]
        if len(ids) == 1:
            return int(ids[0])
    raise ValueError(f"{word!r} is not a single token for this model; choose names that are")


def ioi_logit_diffs(model, prompts) -> Float[torch.Tensor, "n"]:
    """logit(indirect object) - logit(subject) at the last position (:func:`~mi_course.language.patching.
    logit_diff`), for each (prompt, io, s); one prompt at a time, as prompts differ in length."""
    from mi_course.language.patching import logit_diff

    diffs = []
    with torch.no_grad():
        for prompt, io, s in prompts:
            answers = [torch.tensor([answer_token(model, name)]) for name in (io, s)]
            diffs.append(logit_diff(model(model.to_tokens(prompt)), *answers)[0])
    return torch.stack(diffs)


class IOIPatchingSet(NamedTuple):
    """Clean IOI prompts and their "ABC" corruptions, token for token the same length, ready for patching."""
    clean: Int[torch.Tensor, "batch pos"]
    corrupted: Int[torch.Tensor, "batch pos"]
    io: Int[torch.Tensor, "batch"]       # the indirect object's token (the right answer)
    s: Int[torch.Tensor, "batch"]        # the subject's token (the wrong answer)
    positions: dict                      # role -> position, the same in every prompt: IO, S1, S2, S2+1, END
    labels: list                         # one label per position, e.g. "Daniel (S2)", from the first prompt


def ioi_patching_set(model, n: int, seed: int = 0, split: str = "heldout", template: int = 0) -> IOIPatchingSet:
    """``n`` IOI prompts of one template (:func:`mi_course.organisms.corpus.ioi_prompts`) with their "ABC"
    corruptions (:func:`~mi_course.organisms.corpus.corrupt_ioi`: the second mention of the subject replaced by
    a third name). Prompts whose names are not single tokens, or whose roles fall on other positions than the
    first prompt's, are skipped (with GPT-2's tokenizer some objects and places take two tokens)."""
    from mi_course.organisms import corpus

    kept, roles = [], None
    draw = 0
    while len(kept) < n and draw < 20:
        prompts = corpus.ioi_prompts(4 * n, seed=seed * 1000 + draw, split=split, templates=[template])
        draw += 1
        for p, c in zip(prompts, corpus.corrupt_ioi(prompts, seed=seed * 1000 + draw)):
            try:
                io, s = answer_token(model, p.io), answer_token(model, p.s)
            except ValueError:
                continue
            clean, corrupted = model.to_tokens(p.prompt)[0], model.to_tokens(c)[0]
            if len(clean) != len(corrupted):
                continue
            found = _roles(clean, corrupted, io, s)
            if found is None or (roles is not None and (found != roles or len(clean) != len(kept[0][0]))):
                continue
            roles = roles or found
            kept.append((clean, corrupted, io, s))
            if len(kept) == n:
                break
    if len(kept) < n:
        raise ValueError(f"only {len(kept)} of {n} IOI prompts of template {template} tokenize alike for this model")
    clean, corrupted = torch.stack([k[0] for k in kept]), torch.stack([k[1] for k in kept])
    from mi_course.language.patching import role_labels

    return IOIPatchingSet(clean, corrupted, torch.tensor([k[2] for k in kept]), torch.tensor([k[3] for k in kept]),
                          roles, role_labels(model, clean[0], roles))


def _roles(clean, corrupted, io: int, s: int) -> dict | None:
    """IO, S1, S2 (the mention the corruption replaces), S2+1 and END positions, or None if not one each."""
    io_at = (clean == io).nonzero().flatten().tolist()
    s_at = (clean == s).nonzero().flatten().tolist()
    changed = (clean != corrupted).nonzero().flatten().tolist()
    if len(io_at) != 1 or len(s_at) != 2 or changed != [s_at[1]]:
        return None
    return {"IO": io_at[0], "S1": s_at[0], "S2": s_at[1], "S2+1": s_at[1] + 1, "END": len(clean) - 1}
