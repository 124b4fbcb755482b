"""Lesson 10, feature dashboards and steering: exercises."""

from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Float, Int


# >>> exercise: activation_histogram
def activation_histogram(
    acts: Float[torch.Tensor, "n"], bins: int = 30
) -> tuple[Int[torch.Tensor, "bins"], Float[torch.Tensor, "bins_plus_1"], float]:
    """The dashboard's first panel: a histogram of one feature's **non-zero** activations, and its density.

    Returns ``(counts, edges, density)``:
        counts: ``[bins]`` int64, how many activations ``> 0`` fall in each bin (they sum to the number of
            non-zero activations: the zeros, usually most tokens, are left out, or they would flatten the
            rest into one bar).
        edges: ``[bins + 1]``, evenly spaced from 0 to the largest activation (a value equal to an inner edge
            goes to the bin on its right; the largest value goes to the last bin).
        density: the fraction of all ``n`` tokens on which the feature is ``> 0`` (a Python float).
    When no activation is positive: ``counts`` all 0, ``edges`` from 0 to 1, ``density`` 0.0.

    Raises:
        ValueError: if ``acts`` is not 1-D or is empty, or ``bins`` is not a positive int.
    """
    # BEGIN SOLUTION
    if acts.dim() != 1 or len(acts) == 0:
        raise ValueError(f"acts must be a non-empty 1-D tensor of one feature's activations, got shape "
                         f"{tuple(acts.shape)}")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    positive = acts[acts > 0].detach().float()
    top = positive.max().item() if len(positive) else 1.0
    edges = torch.linspace(0.0, top, bins + 1)
    index = torch.bucketize(positive, edges, right=True) - 1  # bin i holds edges[i] <= a < edges[i + 1]
    counts = torch.bincount(index.clamp(0, bins - 1), minlength=bins)
    return counts, edges, len(positive) / len(acts)
    # STUB: raise NotImplementedError("exercise 10.activation_histogram: not started yet")
    # END SOLUTION
# <<< exercise: activation_histogram


# >>> exercise: top_logit_effects
def top_logit_effects(
    direction: Float[torch.Tensor, "d_model"], W_U: Float[torch.Tensor, "d_model d_vocab"], k: int = 10
) -> tuple[Float[torch.Tensor, "k"], Int[torch.Tensor, "k"], Float[torch.Tensor, "k"], Int[torch.Tensor, "k"]]:
    """What a feature writes, read straight through the unembedding: ``effect = direction @ W_U``, one number
    per vocabulary token (the final LayerNorm left out, as dashboards do).

    Returns ``(top_values, top_ids, bottom_values, bottom_ids)``: the ``k`` largest effects from the largest
    down, and the ``k`` smallest from the most negative up, with their token ids. At a tie the lower id comes
    first.

    Raises:
        ValueError: if ``direction`` is not a vector of length ``d_model = W_U.shape[0]``, or ``k`` is not an
            int in ``1..d_vocab``.
    """
    # BEGIN SOLUTION
    if direction.dim() != 1 or W_U.dim() != 2 or direction.shape[0] != W_U.shape[0]:
        raise ValueError(f"direction must be [d_model] and W_U [d_model, d_vocab], got {tuple(direction.shape)} "
                         f"and {tuple(W_U.shape)}")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= W_U.shape[1]:
        raise ValueError(f"k must be an int in 1..{W_U.shape[1]}, got {k!r}")
    effect = (direction @ W_U).detach()
    down = torch.sort(effect, descending=True, stable=True)
    up = torch.sort(effect, stable=True)
    return down.values[:k], down.indices[:k], up.values[:k], up.indices[:k]
    # STUB: raise NotImplementedError("exercise 10.top_logit_effects: not started yet")
    # END SOLUTION
# <<< exercise: top_logit_effects


# >>> exercise: max_activating_examples
def max_activating_examples(acts: Float[torch.Tensor, "rows pos"], k: int = 20, context: int = 5) -> list[dict]:
    """The ``k`` tokens with the largest activations, each with a window of context.

    Returns a list of ``k`` dicts (fewer if fewer tokens are positive), largest activation first (ties: the
    earlier token in row-major order first), each ``{"row", "pos", "value", "start", "stop"}``: the token
    is ``acts[row, pos]``, ``value`` its activation (a float), and its window is ``start:stop`` in the same
    row, ``context`` tokens either side, cut at the row's ends (``stop`` is exclusive: the token itself is
    inside). Only positive activations count.

    Raises:
        ValueError: if ``acts`` is not 2-D, or ``k`` is not a positive int, or ``context`` is negative.
    """
    # BEGIN SOLUTION
    if acts.dim() != 2:
        raise ValueError(f"acts must be [rows, pos], got shape {tuple(acts.shape)}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not isinstance(context, int) or context < 0:
        raise ValueError(f"context must be an int >= 0, got {context!r}")
    n_pos = acts.shape[1]
    flat = acts.detach().flatten()
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    examples = []
    for i in order.tolist():
        if flat[i] <= 0:
            break
        row, pos = divmod(i, n_pos)
        examples.append({"row": row, "pos": pos, "value": flat[i].item(),
                         "start": max(0, pos - context), "stop": min(n_pos, pos + context + 1)})
    return examples
    # STUB: raise NotImplementedError("exercise 10.max_activating_examples: not started yet")
    # END SOLUTION
# <<< exercise: max_activating_examples


# >>> exercise: interval_examples
def interval_examples(acts: Float[torch.Tensor, "rows pos"], n_intervals: int = 10, per_interval: int = 3,
                      seed: int = 0) -> list[list[dict]]:
    """Examples from evenly spaced activation intervals (Bricken et al., 2023): the top examples show what the
    feature does at its strongest; these show what it does at every strength.

    Split ``(0, max]`` into ``n_intervals`` intervals of equal width, ``(max * i / n, max * (i + 1) / n]``
    for ``i = 0 … n - 1`` (the lowest excludes 0, the highest includes the maximum). For each interval, draw
    ``per_interval`` of the tokens whose activation lies in it, uniformly **without** replacement (all of them
    if fewer), with ``torch.randperm`` and a ``torch.Generator`` seeded with ``seed``: the same seed gives the
    same examples. Returns one list per interval, lowest first, of dicts ``{"row", "pos", "value"}``. When no
    activation is positive, every list is empty.

    Raises:
        ValueError: if ``acts`` is not 2-D, or ``n_intervals`` or ``per_interval`` is not a positive int.
    """
    # BEGIN SOLUTION
    if acts.dim() != 2:
        raise ValueError(f"acts must be [rows, pos], got shape {tuple(acts.shape)}")
    for name, value in (("n_intervals", n_intervals), ("per_interval", per_interval)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    flat = acts.detach().flatten()
    top = flat.max().item()
    out: list[list[dict]] = [[] for _ in range(n_intervals)]
    if top <= 0:
        return out
    generator = torch.Generator().manual_seed(seed)
    for i in range(n_intervals):
        lo, hi = top * i / n_intervals, top * (i + 1) / n_intervals
        inside = torch.nonzero((flat > lo) & (flat <= hi) if i < n_intervals - 1 else (flat > lo)).flatten()
        chosen = inside[torch.randperm(len(inside), generator=generator)[:per_interval]]
        for j in chosen.tolist():
            row, pos = divmod(j, acts.shape[1])
            out[i].append({"row": row, "pos": pos, "value": flat[j].item()})
    return out
    # STUB: raise NotImplementedError("exercise 10.interval_examples: not started yet")
    # END SOLUTION
# <<< exercise: interval_examples


# >>> exercise: steering_hook
def steering_hook(direction: Float[torch.Tensor, "d_model"], alpha: float, start: int = 0) -> Callable:
    """A TransformerLens hook function ``hook(act, hook) -> act`` that adds ``alpha * direction`` to the
    activation ``act`` ``[batch, pos, d_model]`` at every position ``>= start`` (positions before ``start``
    unchanged). The direction is used as given (a decoder row has norm 1; ``alpha`` sets the scale). The hook
    returns a new tensor and leaves ``act`` as it was.

    Raises:
        ValueError: at once if ``direction`` is not 1-D or ``start`` is negative; when called, if the
            activation's last dimension differs from the direction's length.
    """
    # BEGIN SOLUTION
    if direction.dim() != 1:
        raise ValueError(f"direction must be a vector [d_model], got shape {tuple(direction.shape)}")
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be a position >= 0, got {start!r}")
    direction = direction.detach()

    def hook(act, hook=None):
        if act.shape[-1] != direction.shape[0]:
            raise ValueError(f"the direction has {direction.shape[0]} dimensions, the activation {act.shape[-1]}")
        out = act.clone()
        out[:, start:] += alpha * direction.to(act)
        return out

    return hook
    # STUB: raise NotImplementedError("exercise 10.steering_hook: not started yet")
    # END SOLUTION
# <<< exercise: steering_hook


# >>> exercise: generate_with_steering
def generate_with_steering(model, prompt: str, hook_name: str | None, hook: Callable | None, n: int = 1,
                           max_new_tokens: int = 20, seed: int = 0) -> list[str]:
    """``n`` sampled continuations of ``prompt`` with ``hook`` at ``hook_name`` in every forward pass.

    Tokenize the prompt with ``model.to_tokens`` (BOS first) and repeat it ``n`` times as a batch. Then
    ``max_new_tokens`` times: run the **whole** sequence through the model inside ``model.hooks(fwd_hooks=
    [(hook_name, hook)])`` (no hook when ``hook`` is None), take the last position's logits, sample the next
    token of every row from their softmax with ``torch.multinomial(probs, 1, generator=g)``, where ``g`` is
    one ``torch.Generator`` seeded with ``seed`` before the loop, and append it. Return the **new** tokens of
    each row decoded with ``model.tokenizer.decode``, cut before the first end-of-text token
    (``model.tokenizer.eos_token_id``) if a row wrote one. Under ``torch.no_grad()``.

    Raises:
        ValueError: if ``n`` or ``max_new_tokens`` is not a positive int.
    """
    # BEGIN SOLUTION
    for name, value in (("n", n), ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    hooks = [] if hook is None else [(hook_name, hook)]
    tokens = model.to_tokens(prompt).expand(n, -1)
    n_prompt = tokens.shape[1]
    generator = torch.Generator(device=tokens.device).manual_seed(seed)
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        for _ in range(max_new_tokens):
            probs = model(tokens)[:, -1].softmax(dim=-1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], dim=1)
    eos = model.tokenizer.eos_token_id
    texts = []
    for row in tokens[:, n_prompt:].tolist():
        texts.append(model.tokenizer.decode(row[:row.index(eos)] if eos in row else row))
    return texts
    # STUB: raise NotImplementedError("exercise 10.generate_with_steering: not started yet")
    # END SOLUTION
# <<< exercise: generate_with_steering


# >>> exercise: bridge_steering_feature
def bridge_steering_feature(sae, model, words=("bridge", "Golden", "Gate")) -> int:
    """An investigation: a feature of ``sae`` that, pushed hard, makes the model **name** the bridge.

    Return the id (a Python int) of a feature such that steering with it at ``alpha = 48``
    (``steering_hook(sae.W_dec[f], 48, start=1)`` at ``sae.hook_name``: every position but the BOS) makes at
    least 60% of the continuations of neutral prompts contain one of ``words``. The test steers your feature
    with the course's canonical hook on prompts and seeds you did not see. The card's bridge feature (the
    dashboard's) is the first guess to try; see what it writes.

    Any sound method works: the dashboards' logit panels, the browser, or trying candidates. Keep it under
    30 seconds on the lite ``lm`` with one CPU thread (the reference answer takes about 3 s there).
    """
    # BEGIN SOLUTION
    from mi_course.saes.steering import steering_sweep

    # candidates: the features whose decoder rows raise the bridge words' logits most, read directly
    ids = [model.to_single_token(w) for w in words]
    with torch.no_grad():
        effect = (sae.W_dec @ model.W_U)[:, ids].mean(dim=-1)
    candidates = effect.topk(3).indices.tolist()
    # then keep the one whose steering names the bridge most often
    best, best_share = candidates[0], -1.0
    for feature in candidates:
        sweep = steering_sweep(model, sae, feature, ["The", "One day", "After lunch we"], [48], words, n=8,
                               max_new_tokens=12, start=1, progress=False)
        share = sweep[48]["mention_share"]
        if share > best_share:
            best, best_share = feature, share
    return int(best)
    # STUB: raise NotImplementedError("exercise 10.bridge_steering_feature: not started yet")
    # END SOLUTION
# <<< exercise: bridge_steering_feature
