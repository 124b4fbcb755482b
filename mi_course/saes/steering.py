"""Steering with SAE features: add a feature's decoder direction to the residual stream while the model writes.

    hook = steering_hook(sae.W_dec[feature], alpha=8.0)                  # add 8 x the direction everywhere
    texts = generate_with_steering(model, "The", sae.hook_name, hook, n=20, seed=0)
    sweep = steering_sweep(model, sae, feature, prompts, alphas=[0, 4, 8, 16], words={"bridge", "Golden"})

Templeton et al. (2024, "Scaling Monosemanticity") steered Claude 3 Sonnet with its Golden Gate Bridge
feature; the lite lm has a bridge feature and a praise feature to do the same. Generation here recomputes the
whole sequence at each step (no key-value cache), so a hook sees absolute positions and "from position p on"
means the same thing at every step; the lite models and short continuations make that cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from mi_course.checks import int_at_least
from mi_course.saes.metrics import evaluating, sae_hook_name

Hook = Callable[[torch.Tensor, object], torch.Tensor]


def _check_direction(direction) -> torch.Tensor:
    direction = torch.as_tensor(direction)
    if direction.ndim != 1:
        raise ValueError(f"direction must be a vector [d_model], got shape {tuple(direction.shape)}")
    return direction


def steering_hook(direction: Float[torch.Tensor, "d_model"], alpha: float, start: int = 0) -> Hook:
    """A TransformerLens hook that adds ``alpha * direction`` to the activation at every position from
    ``start`` on (0: every position, the BOS included). Use a feature's decoder row ``sae.W_dec[f]``."""
    direction = _check_direction(direction).detach()
    start = int_at_least("start", start, 0, "a position")

    def hook(act: Float[torch.Tensor, "batch pos d_model"], hook=None) -> torch.Tensor:
        if act.shape[-1] != direction.shape[0]:
            raise ValueError(f"the direction has {direction.shape[0]} dimensions, the activation {act.shape[-1]}")
        act = act.clone()
        act[:, start:] += alpha * direction.to(act)
        return act

    return hook


def clamp_hook(sae, feature: int, value: float, start: int = 0) -> Hook:
    """A hook that sets the SAE feature's activation to ``value`` from ``start`` on, changing nothing else: it
    adds ``(value - current) * W_dec[feature]``, where ``current`` is what the SAE reads there now (Templeton et
    al. clamp a feature to a multiple of its maximum)."""
    if not 0 <= int(feature) < sae.W_dec.shape[0]:
        raise ValueError(f"feature must be in [0, {sae.W_dec.shape[0]}), got {feature}")
    start = int_at_least("start", start, 0, "a position")
    direction = sae.W_dec[feature].detach()

    def hook(act, hook=None):
        act = act.clone()
        with torch.no_grad(), evaluating(sae):
            current = sae.encode(act[:, start:])[..., feature]
        act[:, start:] += (value - current)[..., None] * direction.to(act)
        return act

    return hook


def generate_with_steering(model, prompt: str, hook_name: str | None, hook: Hook | None, n: int = 1,
                           max_new_tokens: int = 20, temperature: float = 1.0, seed: int = 0) -> list[str]:
    """``n`` sampled continuations of ``prompt`` (the new text only), with ``hook`` at ``hook_name`` during
    every forward pass (``hook=None``: the plain model). Seeded: the same seed gives the same texts. Rows that
    write the end-of-text token stop there."""
    if n < 1 or max_new_tokens < 1 or temperature <= 0:
        raise ValueError(f"n and max_new_tokens must be >= 1 and temperature > 0, got {n}, {max_new_tokens}, "
                         f"{temperature}")
    hooks = [] if hook is None else [(hook_name, hook)]
    tokens = model.to_tokens(prompt).expand(n, -1)
    n_prompt = tokens.shape[1]
    generator = torch.Generator(device=tokens.device).manual_seed(seed)
    eos = model.tokenizer.eos_token_id
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        for _ in range(max_new_tokens):
            logits = model(tokens[:, -model.cfg.n_ctx:])[:, -1] / temperature
            next_token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            tokens = torch.cat([tokens, next_token], dim=1)
    texts = []
    for row in tokens[:, n_prompt:].tolist():
        row = row[:row.index(eos)] if eos in row else row
        texts.append(model.tokenizer.decode(row))
    return texts


def mention_share(texts: Iterable[str], words: Iterable[str]) -> float:
    """The share of ``texts`` that contain at least one of ``words`` as a whole word (case-insensitive)."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    texts = list(texts)
    return sum(bool(pattern.search(t)) for t in texts) / max(len(texts), 1)


def continuation_loss(model, prompt: str, continuations: Iterable[str]) -> float:
    """The plain model's mean next-token loss on the continuations' tokens after ``prompt``: how unlike the
    model's own text they are (steering that breaks the text raises it)."""
    losses = []
    n_prompt = model.to_tokens(prompt).shape[1]
    with torch.no_grad():
        for text in continuations:
            tokens = model.to_tokens(prompt + " " + text if text else prompt)[:, :model.cfg.n_ctx]
            if tokens.shape[1] <= n_prompt:
                continue
            log_probs = model(tokens)[0, :-1].log_softmax(-1)
            target = tokens[0, 1:]
            token_loss = -log_probs[torch.arange(len(target)), target]
            losses.append(token_loss[n_prompt - 1:].mean())
    return torch.stack(losses).mean().item() if losses else float("nan")


def steering_sweep(model, sae, feature: int, prompts: list[str], alphas: Iterable[float], words: Iterable[str],
                   n: int = 10, max_new_tokens: int = 20, seed: int = 0, start: int = 0,
                   progress: bool = True) -> dict[float, dict]:
    """For each ``alpha``: the share of continuations (``n`` per prompt) that mention one of ``words``, and the
    plain model's loss on them (:func:`continuation_loss`). ``{alpha: {"mention_share", "loss", "texts"}}``."""
    hook_name = sae_hook_name(sae)
    words, alphas = list(words), list(alphas)
    out = {}
    for alpha in tqdm(alphas, desc=f"steering feature {feature}", disable=not progress):
        hook = steering_hook(sae.W_dec[feature], alpha, start)
        texts, losses = [], []
        for i, prompt in enumerate(prompts):
            batch = generate_with_steering(model, prompt, hook_name, hook, n=n, max_new_tokens=max_new_tokens,
                                           seed=seed + i)
            texts += batch
            losses.append(continuation_loss(model, prompt, batch))
        out[alpha] = {"mention_share": mention_share(texts, words), "loss": float(torch.tensor(losses).nanmean()),
                      "texts": texts}
    return out
