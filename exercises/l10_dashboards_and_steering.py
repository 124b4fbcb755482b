# Your answers go in this file: the notebook's %%exercise cells write them here.
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
    raise NotImplementedError("exercise 10.activation_histogram: not started yet")
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
    raise NotImplementedError("exercise 10.top_logit_effects: not started yet")
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
    raise NotImplementedError("exercise 10.max_activating_examples: not started yet")
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
    raise NotImplementedError("exercise 10.interval_examples: not started yet")
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
    raise NotImplementedError("exercise 10.steering_hook: not started yet")
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
    raise NotImplementedError("exercise 10.generate_with_steering: not started yet")
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
    raise NotImplementedError("exercise 10.bridge_steering_feature: not started yet")
# <<< exercise: bridge_steering_feature
