"""Lesson 07, the logit lens: exercises.

Shapes: ``L = model.cfg.n_layers``; a "lens" tensor has ``L + 1`` rows, row 0 after the embeddings and row
``l`` after block ``l - 1``, so the last row is the model's output.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from jaxtyping import Float, Int



# >>> exercise: accumulated_residuals
def accumulated_residuals(cache) -> Float[torch.Tensor, "layer_plus_1 batch pos d_model"]:
    """The residual stream at every depth, stacked: shape ``[n_layers + 1, batch, pos, d_model]``.

    ``cache`` is the ``ActivationCache`` of ``model.run_with_cache(tokens)`` (with its batch dimension;
    ``cache.model.cfg.n_layers`` is the number of layers). Row 0 is the residual after the embeddings,
    ``blocks.0.hook_resid_pre`` (token plus positional embedding); row ``l`` (1 .. n_layers) is the
    residual after block ``l - 1``, ``blocks.{l-1}.hook_resid_post``. The vectors are raw: no LayerNorm.
    """
    # BEGIN SOLUTION
    # run_with_cache(..., remove_batch_dim=True) drops the batch axis that every row must keep.
    batched = getattr(cache, "has_batch_dim", True)
    if not batched:
        raise ValueError("accumulated_residuals needs a cache that kept its batch dimension: make it with "
                         "run_with_cache(tokens), without remove_batch_dim=True")
    owner = getattr(cache, "model", None)  # the model whose run filled the cache
    if owner is not None:
        n_layers = owner.cfg.n_layers
    else:  # a cache without its model: count the blocks that wrote a residual
        n_layers = len([key for key in cache.keys()
                        if key.startswith("blocks.") and key.endswith("hook_resid_post")])
    # Row 0 is what block 0 reads (the embeddings); row l is what block l - 1 hands on, for l = 1 .. n_layers.
    hooks = ["blocks.0.hook_resid_pre"] + [f"blocks.{block}.hook_resid_post" for block in range(n_layers)]
    absent = [hook for hook in hooks if hook not in cache.keys()]
    if absent:
        raise ValueError(f"the cache has no {', '.join(absent[:3])}: make it with run_with_cache and no "
                         "names_filter that leaves the residual stream out")
    # Each cached residual is [batch, pos, d_model]; stack puts the new depth axis in front.
    return torch.stack([cache[hook] for hook in hooks])  # [n_layers + 1, batch, pos, d_model]
    # END SOLUTION
# <<< exercise: accumulated_residuals


# >>> exercise: logit_lens
def logit_lens(model, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]:
    """Decode every row of ``accumulated_residuals`` as if it were the last: shape
    ``[n_layers + 1, batch, pos, d_vocab]``.

    Each residual vector goes through the model's final LayerNorm ``model.ln_final`` (which recomputes that
    vector's own mean and scale) and then the unembedding ``model.unembed`` (``W_U`` and ``b_U``). A model
    without a final LayerNorm (``model.cfg.normalization_type is None``, no ``model.ln_final``) is unembedded
    directly. Row 0 decodes the embeddings; the last row equals ``model(tokens)``. ``tokens`` is used as
    given (no BOS added), and no hook stays attached to the model afterwards.
    """
    # BEGIN SOLUTION
    if not (isinstance(tokens, torch.Tensor) and tokens.dim() == 2):
        got = tuple(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__
        raise ValueError(f"tokens must be a [batch, pos] tensor of token ids (model.to_tokens(text) makes "
                         f"one), got {got}")
    # Cache only the residuals that accumulated_residuals stacks, not every activation.
    keep = {"blocks.0.hook_resid_pre"}
    keep |= {f"blocks.{block}.hook_resid_post" for block in range(model.cfg.n_layers)}
    with torch.no_grad():
        # run_with_cache takes its hooks off again before it returns, so none stays on the model.
        _, cache = model.run_with_cache(tokens, names_filter=lambda hook: hook in keep)
        stream = accumulated_residuals(cache)  # [n_layers + 1, batch, pos, d_model]
        # The final norm works on the last axis only, each vector with its own mean and scale, so it
        # takes the extra depth axis in its stride. A model without one has no ln_final at all.
        has_final_norm = model.cfg.normalization_type is not None
        if has_final_norm:
            stream = model.ln_final(stream)
        return model.unembed(stream)  # stream @ W_U + b_U: [n_layers + 1, batch, pos, d_vocab]
    # END SOLUTION
# <<< exercise: logit_lens


# >>> exercise: top_tokens_table
def top_tokens_table(model, tokens: Int[torch.Tensor, "pos"], k: int = 3):
    """The ``k`` top guesses of the logit lens at every layer and position of ONE sequence, as a pandas
    ``DataFrame`` with one row per (layer, position, rank), sorted by layer, then position, then rank, and
    these columns:

        layer     0 (after the embeddings) .. n_layers (the model's output)
        pos       the position in ``tokens``
        input     the token at ``pos``, as a string
        target    the actual next token ``tokens[pos + 1]`` as a string (None at the last position)
        rank      0 .. k - 1 (0 = the top guess)
        token     the guessed token, as a string (``model.to_str_tokens`` of its id)
        token_id  the guessed token's id (an int)
        logit     its logit (a float)
        correct   True where ``token_id == tokens[pos + 1]`` (False at the last position)

    ``tokens`` has shape ``[pos]`` or ``[1, pos]`` and is used as given (no BOS added).

    Raises:
        ValueError: if ``tokens`` holds more than one sequence, or ``k`` is not in 1 .. d_vocab.
    """
    # BEGIN SOLUTION
    import pandas as pd

    # Exactly one sequence: [pos] as it is, [1, pos] without its batch axis.
    if torch.is_tensor(tokens) and tokens.dim() == 2 and len(tokens) == 1:
        tokens = tokens[0]
    if not (torch.is_tensor(tokens) and tokens.dim() == 1):
        got = tuple(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__
        raise ValueError(f"top_tokens_table reads ONE sequence, shape [pos] or [1, pos]; got {got}")
    n_vocab = model.cfg.d_vocab_out  # how many guesses there are to rank
    if not isinstance(k, int) or not 1 <= k <= n_vocab:
        raise ValueError(f"k must be an int from 1 to {n_vocab}, got {k!r}")

    # logit_lens wants a batch: give it a batch of one, then drop that axis again.
    lens = logit_lens(model, tokens.unsqueeze(0))[:, 0]  # [n_layers + 1, pos, d_vocab]
    top_logits, top_ids = lens.topk(k, dim=-1)  # both [n_layers + 1, pos, k], best guess first
    ids = tokens.tolist()
    as_text = model.to_str_tokens(tokens)  # the input tokens as strings, one per position
    # Decode every guess in one call; flatten() lists them in (layer, pos, rank) order, the order of our loops.
    guessed_words = iter(model.to_str_tokens(top_ids.flatten()))
    n_rows, n_pos = lens.shape[0], lens.shape[1]
    rows = []
    for layer in range(n_rows):
        for pos in range(n_pos):
            has_next = pos + 1 < n_pos  # the last position has no next token to check against
            for rank in range(k):
                guess = int(top_ids[layer, pos, rank])
                rows.append({
                    "layer": layer, "pos": pos, "input": as_text[pos],
                    "target": as_text[pos + 1] if has_next else None,
                    "rank": rank, "token": next(guessed_words), "token_id": guess,
                    "logit": float(top_logits[layer, pos, rank]),
                    "correct": has_next and guess == ids[pos + 1],
                })
    return pd.DataFrame.from_records(rows)  # one row per dict, columns in the order of its keys
    # STUB: import pandas as pd
    # STUB: rows = []  # one dict per (layer, pos, rank) with the nine keys above; then pd.DataFrame(rows)
    # STUB: raise NotImplementedError("exercise 07.top_tokens_table: not started yet")
    # END SOLUTION
# <<< exercise: top_tokens_table


# >>> exercise: kl_to_final
def kl_to_final(lens_logits: Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]
                ) -> Float[torch.Tensor, "layer_plus_1 batch pos"]:
    """KL(final || layer) in nats, for every layer and position: shape ``[n_layers + 1, batch, pos]``.

    With ``p`` the softmax of the last row (the model's own prediction) and ``q_l`` the softmax of row
    ``l``, both over the vocabulary (the last dimension):

        KL(p || q_l) = sum over tokens v of  p(v) * (log p(v) - log q_l(v))

    The last row is 0. Use log-softmax, so that large logits give finite values. The input is not changed.
    """
    # BEGIN SOLUTION
    # Log-probabilities over the vocabulary; log_softmax stays finite where softmax would round to 0.
    # It returns a new tensor, so the caller's logits are left as they were.
    log_q = lens_logits.log_softmax(dim=-1)  # [n_layers + 1, batch, pos, d_vocab]
    log_p = log_q[-1:]  # the model's own prediction, [1, batch, pos, d_vocab]: broadcasts over the rows
    # sum over v of p(v) (log p(v) - log q_l(v)), for every row l at once; the last row is p against itself.
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)  # [n_layers + 1, batch, pos], in nats
    # END SOLUTION
# <<< exercise: kl_to_final


# >>> exercise: correct_token_rank
def correct_token_rank(lens_logits: Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"],
                       tokens: Int[torch.Tensor, "batch pos"]) -> Int[torch.Tensor, "layer_plus_1 batch pos_minus_1"]:
    """How far down each layer's guess the actual next token is: an integer tensor of shape
    ``[n_layers + 1, batch, pos - 1]``.

    Position ``p`` predicts token ``p + 1``, so entry ``[l, b, p]`` is the rank of ``tokens[b, p + 1]`` in
    ``lens_logits[l, b, p]``: the number of vocabulary entries with a strictly larger logit (0 = it is the
    top guess). The last position has nothing to predict and is left out; position 0 (often BOS) is kept.
    """
    # BEGIN SOLUTION
    if lens_logits.dim() != 4 or tokens.dim() != 2 or lens_logits.shape[1:3] != tokens.shape:
        raise ValueError(f"need lens_logits [layers, batch, pos, d_vocab] and tokens [batch, pos] with the same "
                         f"batch and pos, got {tuple(lens_logits.shape)} and {tuple(tokens.shape)}")
    # The last position predicts a token we do not have: leave it out. [rows, batch, pos - 1, d_vocab]
    guesses = lens_logits[:, :, :-1]
    answers = tokens[:, 1:].to(guesses.device)  # [batch, pos - 1]: the token each position should predict
    # gather wants an index with as many axes as guesses: [rows, batch, pos - 1, 1], the same for every row.
    index = answers.unsqueeze(-1).expand(guesses.shape[0], -1, -1, 1)
    answer_logit = guesses.gather(dim=-1, index=index)  # [rows, batch, pos - 1, 1]
    # The rank counts the tokens with a strictly larger logit (so a tie does not push the answer down).
    return (guesses > answer_logit).sum(dim=-1)  # [rows, batch, pos - 1], integers; 0 = the top guess
    # END SOLUTION
# <<< exercise: correct_token_rank


# >>> exercise: train_tuned_lens
def train_tuned_lens(model, tokens: Int[torch.Tensor, "batch pos"], steps: int = 50,
                     lr: float = 1e-2) -> nn.ModuleList:
    """A tuned lens (Belrose et al., 2023): one affine translator per row of the logit lens.

    Returns an ``nn.ModuleList`` of ``n_layers + 1`` ``nn.Linear(d_model, d_model)`` (with bias).
    Translator ``l`` maps row ``l`` of the accumulated residuals to a vector that is then decoded like the
    logit lens (final LayerNorm, unembedding). Every translator starts as the identity (weight ``I``, bias
    0). The translators of rows 0 .. n_layers - 1 are trained with ``torch.optim.Adam`` (learning rate
    ``lr``) for ``steps`` full-batch steps on ``tokens``, minimizing the mean over those rows, sequences and
    positions of KL(final || translated row), where "final" is the model's own output distribution (a
    fixed target, no gradient). The last translator stays the identity, and the model's weights do not
    change.
    """
    # BEGIN SOLUTION
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be a whole number >= 0 (an int), got {steps!r}")
    cfg = model.cfg
    n_layers, d_model = cfg.n_layers, cfg.d_model
    # The residuals are inputs here, not something to train: record them once, without a graph.
    keep = {"blocks.0.hook_resid_pre"} | {f"blocks.{block}.hook_resid_post" for block in range(n_layers)}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda hook: hook in keep)
    stream = accumulated_residuals(cache)  # [n_layers + 1, batch, pos, d_model]

    def decode(resid):  # read a residual the logit lens's way: final norm (if the model has one), unembed
        return model.unembed(model.ln_final(resid) if model.cfg.normalization_type is not None else resid)

    # One affine map per row, each starting as the identity: untrained, the tuned lens IS the logit lens.
    translators = nn.ModuleList([nn.Linear(d_model, d_model).to(stream.device) for _ in range(n_layers + 1)])
    with torch.no_grad():
        for translator in translators:
            translator.weight.copy_(torch.eye(d_model))
            translator.bias.fill_(0.0)
        # The target: the model's own output distribution, fixed (computed once, no gradient).
        log_p = decode(stream[-1]).log_softmax(dim=-1)  # [batch, pos, d_vocab]
        p = log_p.exp()

    trainable = translators[:n_layers]  # the last row already is the output: its translator stays the identity
    optimizer = torch.optim.Adam(trainable.parameters(), lr=lr)
    # Freeze the model for the training: the gradients are for the translators only.
    was_trainable = [(weight, weight.requires_grad) for weight in model.parameters()]
    for weight, _ in was_trainable:
        weight.requires_grad_(False)
    try:
        with torch.set_grad_enabled(True):  # even if the caller switched gradients off globally
            for _ in range(steps):
                optimizer.zero_grad()
                for row in range(n_layers):
                    log_q = decode(trainable[row](stream[row])).log_softmax(dim=-1)  # [batch, pos, d_vocab]
                    # KL(final || this row) at every position, averaged over the batch and the positions.
                    row_kl = (p * (log_p - log_q)).sum(dim=-1).mean()
                    # The loss is the mean over the rows. Backpropagating each row's share on its own adds up
                    # to the same gradient, and only one row's [batch, pos, d_vocab] logits are kept at a time.
                    (row_kl / n_layers).backward()
                optimizer.step()
    finally:
        for weight, flag in was_trainable:  # give the model back as it was
            weight.requires_grad_(flag)
    return translators
    # END SOLUTION
# <<< exercise: train_tuned_lens
