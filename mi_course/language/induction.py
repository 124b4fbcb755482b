"""Induction-head measurements on repeated random tokens (Olsson et al., 2022).

The canonical versions that model cards, property tests and later lessons use; lesson 06 asks learners to
write their own. A sequence is ``[bos, t_1 .. t_n, t_1 .. t_n]``: a previous-token head at position i
attends to i - 1; an induction head at a position in the second copy attends to the token *after* the
previous occurrence of the current token, i.e. i - n + 1.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int


def _bos_id(model) -> int:
    tok = getattr(model, "tokenizer", None)
    if tok is not None and tok.bos_token_id is not None:
        return int(tok.bos_token_id)
    return 0


def _special_ids(model) -> set[int]:
    tok = getattr(model, "tokenizer", None)
    return set(tok.all_special_ids) if tok is not None else {0}


def repeated_random_tokens(model, seq_len: int, batch: int, seed: int = 0) -> Int[torch.Tensor, "batch 2*seq_len+1"]:
    """``[bos, r, r]`` with ``r`` uniform random non-special token ids of length ``seq_len``."""
    if seq_len < 2 or batch < 1:
        raise ValueError(f"need seq_len >= 2 and batch >= 1, got seq_len={seq_len}, batch={batch}")
    if 2 * seq_len + 1 > model.cfg.n_ctx:
        raise ValueError(f"2 * seq_len + 1 = {2 * seq_len + 1} exceeds the model's context {model.cfg.n_ctx}")
    allowed = torch.tensor([i for i in range(model.cfg.d_vocab) if i not in _special_ids(model)])
    gen = torch.Generator().manual_seed(seed)
    half = allowed[torch.randint(len(allowed), (batch, seq_len), generator=gen)]
    bos = torch.full((batch, 1), _bos_id(model))
    return torch.cat([bos, half, half], dim=1).to(model.cfg.device)


def per_token_loss(model, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "batch pos-1"]:
    """Cross-entropy of predicting token i+1 at position i."""
    with torch.no_grad():
        logits = model(tokens)
    logprobs = logits[:, :-1].log_softmax(-1)
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


def attention_stripe_scores(model, tokens: Int[torch.Tensor, "batch pos"], offset: int,
                            first_query: int = 1) -> Float[torch.Tensor, "layer head"]:
    """Mean attention from each query position q >= first_query to key q - offset, per head."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    scores = []
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer]  # [batch, head, query, key]
        stripe = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [batch, head, query - offset]
        scores.append(stripe[..., max(first_query - offset, 0):].mean(dim=(0, -1)))
    return torch.stack(scores)


def prev_token_scores(model, seq_len: int = 50, batch: int = 16, seed: int = 0) -> Float[torch.Tensor, "layer head"]:
    tokens = repeated_random_tokens(model, seq_len, batch, seed)
    return attention_stripe_scores(model, tokens, offset=1, first_query=1)


def induction_scores(model, seq_len: int = 50, batch: int = 16, seed: int = 0) -> Float[torch.Tensor, "layer head"]:
    """Attention from each second-copy position to the token after its first occurrence."""
    tokens = repeated_random_tokens(model, seq_len, batch, seed)
    return attention_stripe_scores(model, tokens, offset=seq_len - 1, first_query=seq_len + 1)


def repeat_loss_ratio(model, seq_len: int = 50, batch: int = 16, seed: int = 0) -> float:
    """Mean loss on the second copy divided by mean loss on the first (well below 1 with induction)."""
    loss = per_token_loss(model, repeated_random_tokens(model, seq_len, batch, seed))
    first = loss[:, 1:seq_len].mean()  # predictions of t_2 .. t_n (t_1 after bos is unguessable)
    second = loss[:, seq_len + 1:].mean()  # predictions of the second copy's t_2 .. t_n
    return (second / first).item()
