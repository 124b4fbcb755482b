"""Lesson 06, induction heads: exercises."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens import ActivationCache, HookedTransformer

from mi_course.language.circuits import ov_circuit


# >>> exercise: repeated_random_tokens
def repeated_random_tokens(
    model: HookedTransformer, seq_len: int, batch: int, seed: int = 0
) -> Int[torch.Tensor, "batch 2*seq_len+1"]:
    """``batch`` sequences ``[bos, t_1 .. t_n, t_1 .. t_n]`` with ``n = seq_len``: a random half, repeated.

    * position 0 holds ``model.tokenizer.bos_token_id``;
    * positions 1 .. n hold ``n`` token ids drawn uniformly at random from the vocabulary
      (``0 .. model.cfg.d_vocab - 1``) *without* the special tokens ``model.tokenizer.all_special_ids``
      (bos, eos, pad, unk), independently for every row;
    * positions n+1 .. 2n repeat positions 1 .. n exactly.

    Returns a ``torch.long`` tensor of shape ``[batch, 2 * seq_len + 1]`` on ``model.cfg.device``. The same
    ``seed`` gives the same tokens: draw with a ``torch.Generator`` seeded with ``seed``, so that the
    global random state (``torch.manual_seed``) is left alone.

    Raises:
        ValueError: if ``seq_len < 1``, ``batch < 1``, or ``2 * seq_len + 1`` is longer than the model's
            context ``model.cfg.n_ctx``.
    """
    # BEGIN SOLUTION
    if seq_len <= 0 or batch <= 0:
        raise ValueError(f"seq_len and batch must both be at least 1, got seq_len={seq_len}, batch={batch}")
    length = 2 * seq_len + 1  # bos, then the random half twice
    if length > model.cfg.n_ctx:  # exactly n_ctx still fits
        raise ValueError(f"a sequence of 2 * {seq_len} + 1 = {length} tokens does not fit the context of "
                         f"{model.cfg.n_ctx}")
    tokenizer = getattr(model, "tokenizer", None)
    # Without a tokenizer (a toy model) token 0 plays bos and is the only special id.
    bos_id = 0 if tokenizer is None or tokenizer.bos_token_id is None else tokenizer.bos_token_id
    specials = {0} if tokenizer is None else set(tokenizer.all_special_ids)
    # The ids we may draw, in increasing order: [n_allowed].
    candidates = torch.tensor([t for t in range(model.cfg.d_vocab) if t not in specials])
    # Our own seeded generator: reproducible, and torch's global random state is not touched.
    rng = torch.Generator().manual_seed(seed)
    # Draw positions into `candidates`, not ids, so that every allowed id is equally likely.
    picks = torch.randint(len(candidates), (batch, seq_len), generator=rng)  # [batch, seq_len]
    first_copy = candidates[picks]  # [batch, seq_len] of token ids
    start = torch.full((batch, 1), bos_id)  # [batch, 1]
    # [batch, 1 + seq_len + seq_len]: the second copy is the same tensor, so it repeats the first exactly.
    return torch.cat([start, first_copy, first_copy], dim=1).to(model.cfg.device)
    # END SOLUTION
# <<< exercise: repeated_random_tokens


# >>> exercise: per_token_loss
def per_token_loss(model: HookedTransformer, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "batch pos-1"]:
    """The model's cross-entropy loss at every position, shape ``[batch, pos - 1]``.

    Entry ``[b, i]`` is ``-log p(tokens[b, i + 1] | tokens[b, :i + 1])``: the logits at position ``i``
    predict the *next* token. The last position predicts a token we do not have, so it has no loss. No
    gradients are needed (run the model under ``torch.no_grad()``); ``tokens`` is not changed.
    """
    # BEGIN SOLUTION
    with torch.no_grad():
        logits = model(tokens)  # [batch, pos, d_vocab]
    # The logits at position i guess token i + 1: drop the last position (its next token is unknown)
    # and the first token (nothing before it guesses it), so that both sides have pos - 1 entries.
    guesses = logits[:, :-1].log_softmax(dim=-1)  # [batch, pos - 1, d_vocab], log-probabilities
    answers = tokens[:, 1:]                       # [batch, pos - 1], the tokens that came next
    # Pick each position's log-probability of its true next token: gather wants an index of the same
    # rank, [batch, pos - 1, 1], and hands back that shape; squeeze the last axis away.
    picked = guesses.gather(dim=-1, index=answers.unsqueeze(-1)).squeeze(-1)
    return -picked  # cross-entropy = -log p(true next token), [batch, pos - 1]
    # END SOLUTION
# <<< exercise: per_token_loss


# >>> exercise: prev_token_scores
def prev_token_scores(cache: ActivationCache) -> Float[torch.Tensor, "layer head"]:
    """How strongly each head attends to the previous token, shape ``[n_layers, n_heads]``.

    ``cache`` comes from ``model.run_with_cache(tokens)`` and holds every layer's attention pattern
    ``cache["pattern", layer]`` (``blocks.{layer}.attn.hook_pattern``), of shape
    ``[batch, head, query_pos, key_pos]``: row ``q`` is where query position ``q`` looks, and sums to 1.

    Entry ``[layer, head]`` is the mean, over the batch and over the query positions ``q = 1 .. pos - 1``,
    of the attention from ``q`` to ``q - 1``. Position 0 (the bos token) has no previous token and is left
    out. A perfect previous-token head scores 1. The cache is not changed.
    """
    # BEGIN SOLUTION
    scores, layer = [], 0
    while f"blocks.{layer}.attn.hook_pattern" in cache:
        pattern = cache["pattern", layer]  # [batch, head, query, key]
        to_previous = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # query q to key q - 1, for q = 1 .. pos - 1
        scores.append(to_previous.mean(dim=(0, -1)))
        layer += 1
    return torch.stack(scores)
    # END SOLUTION
# <<< exercise: prev_token_scores


# >>> exercise: induction_scores
def induction_scores(
    model: HookedTransformer, seq_len: int = 50, batch: int = 16, seed: int = 0
) -> Float[torch.Tensor, "layer head"]:
    """How strongly each head attends like an induction head, shape ``[n_layers, n_heads]``.

    Build the tokens with your ``repeated_random_tokens(model, seq_len, batch, seed)`` (call it by that
    name: the tests swap in their own tokens), run the model with a cache, and for every head take the
    mean, over the batch and over the query positions ``q`` of the second copy (``seq_len + 1 ..
    2 * seq_len``), of the attention from ``q`` to ``q - seq_len + 1``: the position right *after* the
    earlier occurrence of the token at ``q``. A perfect induction head scores 1.
    """
    # BEGIN SOLUTION
    tokens = repeated_random_tokens(model, seq_len, batch, seed)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    scores = []
    for layer in range(model.cfg.n_layers):
        # entry i of this diagonal is query q = seq_len - 1 + i attending to key q - seq_len + 1
        stripe = cache["pattern", layer].diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)
        scores.append(stripe[..., 2:].mean(dim=(0, -1)))  # the second copy's queries, seq_len + 1 .. 2 * seq_len
    return torch.stack(scores)
    # END SOLUTION
# <<< exercise: induction_scores


# >>> exercise: find_induction_heads
def find_induction_heads(
    model: HookedTransformer, threshold: float, seq_len: int = 50, batch: int = 16, seed: int = 0
) -> list[tuple[int, int]]:
    """The heads whose induction score is strictly above ``threshold``, best first.

    Scores come from your ``induction_scores(model, seq_len, batch, seed)`` (call it by that name). Returns
    a list of ``(layer, head)`` tuples of Python ints, sorted by score from highest to lowest (ties in
    (layer, head) order); an empty list when no head is above the threshold.
    """
    # BEGIN SOLUTION
    scores = induction_scores(model, seq_len, batch, seed)
    flat = scores.flatten()
    order = flat.argsort(descending=True, stable=True)  # stable: ties stay in (layer, head) order
    n_heads = scores.shape[1]
    return [(int(i) // n_heads, int(i) % n_heads) for i in order if flat[i] > threshold]
    # END SOLUTION
# <<< exercise: find_induction_heads


# >>> exercise: ablate_head_loss
def ablate_head_loss(
    model: HookedTransformer, tokens: Int[torch.Tensor, "batch pos"], layer: int, head: int, kind: str = "zero"
) -> float:
    """The model's mean next-token loss on ``tokens`` with one attention head knocked out.

    The head's output ``z`` (hook ``blocks.{layer}.attn.hook_z``, shape ``[batch, pos, head, d_head]``) is
    replaced, for head ``head`` only and at every position, by

    * ``kind="zero"``: zeros;
    * ``kind="mean"``: the mean of that head's ``z`` over the batch and all positions of ``tokens`` in a
      clean run (one ``d_head`` vector, the same at every position).

    Returns the mean over the batch and the ``pos - 1`` predictions of the next-token cross-entropy, as a
    Python float. Afterwards the model is exactly as before: no hook stays attached, even if the forward
    pass raises an error (which must reach the caller), and no weight is changed.

    Raises:
        ValueError: if ``layer`` is not in ``0 .. n_layers - 1``, ``head`` not in ``0 .. n_heads - 1``, or
            ``kind`` is not ``"zero"`` or ``"mean"``.
    """
    # BEGIN SOLUTION
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    # Check ourselves: a negative index would quietly pick a head from the end.
    if not (isinstance(layer, int) and 0 <= layer < n_layers):
        raise ValueError(f"layer must be an int in 0 .. {n_layers - 1}, got {layer!r}")
    if not (isinstance(head, int) and 0 <= head < n_heads):
        raise ValueError(f"head must be an int in 0 .. {n_heads - 1}, got {head!r}")
    if kind not in ("zero", "mean"):
        raise ValueError(f"kind must be 'zero' or 'mean', got {kind!r}")

    # z is [batch, pos, head, d_head]; head h adds z[:, :, h] @ W_O[layer, h] to the residual stream.
    hook_name = f"blocks.{layer}.attn.hook_z"
    if kind == "zero":
        fill = torch.zeros(model.cfg.d_head, device=model.cfg.device)
    else:
        # A clean run first: the head's average output over every sequence and position, [d_head].
        with torch.no_grad():
            _, clean = model.run_with_cache(tokens, names_filter=hook_name)
        fill = clean[hook_name][:, :, head].mean(dim=(0, 1))

    def knock_out(z, hook):
        z = z.clone()  # leave the tensor we were given alone; return the edited copy
        z[:, :, head] = fill  # [d_head] broadcasts over batch and positions; the other heads stay
        return z

    # model.hooks(...) takes the hook off again when the block ends, also when the forward pass raises,
    # and leaves any hooks the caller had attached where they are.
    with model.hooks(fwd_hooks=[(hook_name, knock_out)]):
        losses = per_token_loss(model, tokens)  # [batch, pos - 1], with the head knocked out
    return losses.mean().item()  # one number: the mean over the batch and the pos - 1 predictions
    # END SOLUTION
# <<< exercise: ablate_head_loss


# >>> exercise: ov_copying_score
def ov_copying_score(model: HookedTransformer, layer: int, head: int) -> float:
    """How much a head's full OV circuit copies: ``Re(sum of eigenvalues) / sum of |eigenvalues|``.

    The full OV circuit is the ``[d_vocab, d_vocab]`` matrix ``W_E W_V W_O W_U`` of that head
    (``ov_circuit(model, layer, head)`` returns it as a ``FactoredMatrix``). Its eigenvalues ``lambda_i``
    are complex in general; the score (Elhage et al., 2021) is ``Re(sum_i lambda_i) / sum_i |lambda_i|``,
    a Python float in [-1, 1]: 1 when every eigenvalue is real and positive (attending to a token raises
    that token's own logit), -1 when all are negative. A head whose circuit is zero scores 0.

    Raises:
        ValueError: if ``layer`` or ``head`` is out of range.
    """
    # BEGIN SOLUTION
    # ov_circuit checks layer and head (ValueError) and keeps W_E W_V W_O W_U factored at d_head.
    circuit = ov_circuit(model, layer, head)  # [d_vocab, d_vocab], never built in full
    # The full matrix has rank <= d_head, so only d_head eigenvalues can be nonzero; FactoredMatrix takes
    # them from the small [d_head, d_head] product, the two factors multiplied the other way round.
    eigenvalues = circuit.eigenvalues  # [d_head], complex
    mass = eigenvalues.abs().sum()  # sum of |lambda|
    if mass == 0:  # a head whose circuit is zero: 0 / 0, call it neither copying nor suppressing
        return 0.0
    return (eigenvalues.sum().real / mass).item()  # Re(sum lambda) / sum |lambda|, in [-1, 1]
    # END SOLUTION
# <<< exercise: ov_copying_score
