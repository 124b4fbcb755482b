"""Greater-than (Hanna et al., 2023): "The war lasted from the year 1732 to the year 17" -> a year above 32.

The prompt ends with the century; the next token is a two-digit token "00" … "99" (in GPT-2 as in the lite
models). The metric is the *probability difference*: the probability the model puts on two-digit tokens
above the start year's, minus the probability on those below (the start year's own is in neither).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from mi_course.language.corpus import greater_than_answer_tokens


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
    (:func:`mi_course.language.corpus.greater_than_prompts`)."""
    return probability_difference(year_probabilities(model, prompts), [year for _, year in prompts])


def start_year_correlation(model, prompts) -> float:
    """Correlation over ``(prompt, start_year)`` pairs between the start year's two digits and the mean two-digit
    answer the model expects: about 0 for a model that only knows that end years are late, near 1 for one
    that compares."""
    probs = year_probabilities(model, prompts)
    expected = (probs * torch.arange(probs.shape[-1])).sum(-1) / probs.sum(-1)
    start = torch.tensor([float(year % 100) for _, year in prompts])
    return torch.corrcoef(torch.stack([start, expected]))[0, 1].item()
