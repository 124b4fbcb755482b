"""Greater-than (Hanna et al., 2023): "The war lasted from the year 1732 to the year 17" -> a year above 32.

The prompt ends with the century; the next token is a two-digit token "00" … "99" (in GPT-2 as in the lite
models). The metric is the *probability difference*: the probability the model puts on two-digit tokens
above the start year's, minus the probability on those below (the start year's own is in neither).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from jaxtyping import Float, Int

from mi_course.organisms import corpus
from mi_course.organisms.corpus import greater_than_answer_tokens


def year_token_ids(model) -> Int[torch.Tensor, "100"]:
    """The token ids of "00" … "99" in this model's vocabulary (each must be a single token)."""
    ids = []
    for digits in greater_than_answer_tokens():
        tokens = model.to_tokens(digits, prepend_bos=False)[0]
        if len(tokens) != 1:
            raise ValueError(f"{digits!r} is not a single token for this model")
        ids.append(int(tokens[0]))
    return torch.tensor(ids)


def year_probabilities(model, prompts) -> Float[torch.Tensor, "n 100"]:
    """The next-token probability of each two-digit token "00" … "99" after each prompt (softmax over the whole
    vocabulary, not renormalized). ``prompts``: strings or ``(prompt, start_year)`` pairs."""
    ids = year_token_ids(model)
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else prompt[0]
            rows.append(model(model.to_tokens(text))[0, -1].softmax(-1)[ids])
    return torch.stack(rows)


def probability_difference(probs: Float[torch.Tensor, "n 100"], start_years) -> Float[torch.Tensor, "n"]:
    """Hanna et al.'s metric per prompt: P(two digits > the start year's) - P(two digits < the start year's)."""
    yy = torch.as_tensor([int(y) % 100 for y in start_years])
    digits = torch.arange(probs.shape[-1])
    above = digits[None, :] > yy[:, None]
    below = digits[None, :] < yy[:, None]
    return (probs * above).sum(-1) - (probs * below).sum(-1)


def greater_than_scores(model, prompts) -> Float[torch.Tensor, "n"]:
    """:func:`probability_difference` of ``model`` on ``(prompt, start_year)`` pairs
    (:func:`mi_course.organisms.corpus.greater_than_prompts`)."""
    return probability_difference(year_probabilities(model, prompts), [year for _, year in prompts])


def start_year_correlation(model, prompts) -> float:
    """Correlation over ``(prompt, start_year)`` pairs between the start year's two digits and the mean two-digit
    answer the model expects: about 0 for a model that only knows that end years are late, near 1 for one
    that compares."""
    probs = year_probabilities(model, prompts)
    expected = (probs * torch.arange(probs.shape[-1])).sum(-1) / probs.sum(-1)
    start = torch.tensor([float(year % 100) for _, year in prompts])
    return torch.corrcoef(torch.stack([start, expected]))[0, 1].item()


class GreaterThanPatchingSet(NamedTuple):
    """Clean greater-than prompts and their ``YY01`` corruptions (Hanna et al.), the same length, for patching."""
    clean: Int[torch.Tensor, "batch pos"]
    corrupted: Int[torch.Tensor, "batch pos"]
    years: list                          # the clean start years
    positions: dict                      # role -> position: YY (the start year's two digits), END
    labels: list                         # one label per position, from the first prompt


def greater_than_patching_set(model, n: int, seed: int = 0, split: str = "heldout",
                              template: int = 0) -> GreaterThanPatchingSet:
    """``n`` prompts of one template (:func:`mi_course.organisms.corpus.greater_than_prompts`) with the start
    year's two digits set to 01 (:func:`~mi_course.organisms.corpus.corrupt_greater_than`); prompts that do not
    tokenize to the first prompt's length with the year as century + two digits are skipped."""
    prompts = corpus.greater_than_prompts(20 * n, seed=seed, split=split, templates=[template])
    kept, yy_at = [], None
    for p, c in zip(prompts, corpus.corrupt_greater_than(prompts)):
        clean, corrupted = model.to_tokens(p.prompt)[0], model.to_tokens(c)[0]
        changed = (clean != corrupted).nonzero().flatten().tolist() if len(clean) == len(corrupted) else []
        if len(changed) != 1 or model.to_string(clean[changed[0]]).strip() != f"{p.year % 100:02d}":
            continue
        if yy_at is None:
            yy_at, length = changed[0], len(clean)
        if changed[0] != yy_at or len(clean) != length:
            continue
        kept.append((clean, corrupted, p.year))
        if len(kept) == n:
            break
    if len(kept) < n:
        raise ValueError(f"only {len(kept)} of {n} greater-than prompts tokenize alike for this model")
    clean = torch.stack([k[0] for k in kept])
    from mi_course.language.patching import role_labels

    roles = {"YY": yy_at, "END": clean.shape[1] - 1}
    return GreaterThanPatchingSet(clean, torch.stack([k[1] for k in kept]), [k[2] for k in kept], roles,
                                  role_labels(model, clean[0], roles))


def mean_probability_difference(model, years) -> Callable:
    """A patching metric: logits -> the mean :func:`probability_difference` at the last position (a float)."""
    ids = year_token_ids(model)
    return lambda logits: probability_difference(logits[:, -1].softmax(-1)[:, ids.to(logits.device)].cpu(),
                                                 years).mean().item()
