"""Induction-head measurements on repeated random tokens (Olsson et al., 2022).

The canonical versions that model cards, property tests and later lessons use; lesson 06 asks learners to
write their own. A sequence is ``[bos, t_1 .. t_n, t_1 .. t_n]`` (positions 0, 1 .. n, n+1 .. 2n): a
previous-token head at position i attends to i - 1; an induction head at a position q in the second copy
attends to the token *after* the previous occurrence of the current token, i.e. to q - n + 1.

    tokens = repeated_random_tokens(model, seq_len=50, batch=16)
    loss = per_token_loss(model, tokens)                     # [batch, 2n]: loss drops on the second copy
    _, cache = model.run_with_cache(tokens)
    prev_token_scores_from_cache(cache)                      # [layer, head]
    induction_scores_from_cache(cache, seq_len=50)           # [layer, head]
    find_induction_heads(model, threshold=0.3)               # [(layer, head), ...], best first
    ablate_head_loss(model, tokens, 1, 2, kind="mean")       # loss without that head
    ov_copying_score(model, 1, 2)                            # sum(eigenvalues) / sum(|eigenvalues|) of W_E W_V W_O W_U
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from mi_course.language.ablation import ABLATIONS, head_ablation_hook  # noqa: F401 (re-exported)
from mi_course.language.circuits import ov_circuit


def _bos_id(model) -> int:
    tok = getattr(model, "tokenizer", None)
    if tok is not None and tok.bos_token_id is not None:
        return int(tok.bos_token_id)
    return 0


def _special_ids(model) -> set[int]:
    tok = getattr(model, "tokenizer", None)
    return set(tok.all_special_ids) if tok is not None else {0}


def repeated_random_tokens(model, seq_len: int, batch: int, seed: int = 0) -> Int[torch.Tensor, "batch 2*seq_len+1"]:
    """``[bos, r, r]`` with ``r`` uniform random non-special token ids of length ``seq_len``.

    Deterministic in ``seed`` (its own ``torch.Generator``; the global random state is not touched): the
    non-special ids in increasing order, indexed by ``torch.randint(len(ids), (batch, seq_len))``.
    """
    if seq_len < 1 or batch < 1:
        raise ValueError(f"need seq_len >= 1 and batch >= 1, got seq_len={seq_len}, batch={batch}")
    if 2 * seq_len + 1 > model.cfg.n_ctx:
        raise ValueError(f"2 * seq_len + 1 = {2 * seq_len + 1} exceeds the model's context {model.cfg.n_ctx}")
    special = _special_ids(model)
    allowed = torch.tensor([i for i in range(model.cfg.d_vocab) if i not in special])
    gen = torch.Generator().manual_seed(seed)
    half = allowed[torch.randint(len(allowed), (batch, seq_len), generator=gen)]
    bos = torch.full((batch, 1), _bos_id(model))
    return torch.cat([bos, half, half], dim=1).to(model.cfg.device)


def per_token_loss(model, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "batch pos-1"]:
    """Cross-entropy of predicting token i+1 at position i (no gradients)."""
    with torch.no_grad():
        logits = model(tokens)
    logprobs = logits[:, :-1].log_softmax(-1)  # the logits at the last position predict nothing we know
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


# ------------------------------------------------------------------------------------------------ stripes


def cached_layers(cache) -> int:
    """How many layers' attention patterns (``blocks.{l}.attn.hook_pattern``) an ActivationCache holds."""
    n = 0
    while f"blocks.{n}.attn.hook_pattern" in cache:
        n += 1
    if n == 0:
        raise ValueError("the cache holds no attention patterns (blocks.0.attn.hook_pattern); run "
                         "model.run_with_cache(tokens) without a names_filter that drops them")
    return n


def stripe_scores_from_cache(cache, offset: int, first_query: int = 1,
                             n_layers: int | None = None) -> Float[torch.Tensor, "layer head"]:
    """Mean attention from each query position q >= first_query to key q - offset, per head, averaged over
    the batch. ``cache[("pattern", layer)]`` is ``[batch, head, query, key]``."""
    n_layers = cached_layers(cache) if n_layers is None else n_layers
    scores = []
    for layer in range(n_layers):
        pattern = cache["pattern", layer]  # [batch, head, query, key]
        stripe = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [batch, head, pos - offset]: q = i + offset
        scores.append(stripe[..., max(first_query - offset, 0):].mean(dim=(0, -1)))
    return torch.stack(scores)


def attention_stripe_scores(model, tokens: Int[torch.Tensor, "batch pos"], offset: int,
                            first_query: int = 1) -> Float[torch.Tensor, "layer head"]:
    """Mean attention from each query position q >= first_query to key q - offset, per head."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    return stripe_scores_from_cache(cache, offset, first_query, n_layers=model.cfg.n_layers)


def prev_token_scores_from_cache(cache) -> Float[torch.Tensor, "layer head"]:
    """Mean attention to the previous token over queries 1 .. pos-1 (the bos query has no previous token)."""
    return stripe_scores_from_cache(cache, offset=1, first_query=1)


def induction_scores_from_cache(cache, seq_len: int) -> Float[torch.Tensor, "layer head"]:
    """On ``[bos, r, r]`` with ``len(r) = seq_len``: mean attention from each second-copy query q (positions
    seq_len+1 .. 2*seq_len) to q - seq_len + 1, the token after the earlier occurrence of the current one."""
    pos = cache["pattern", 0].shape[-1]
    if pos != 2 * seq_len + 1:
        raise ValueError(f"the cached sequence has {pos} positions; [bos, r, r] with seq_len={seq_len} has "
                         f"{2 * seq_len + 1}")
    return stripe_scores_from_cache(cache, offset=seq_len - 1, first_query=seq_len + 1)


def _pattern_cache(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    return cache


def prev_token_scores(model, seq_len: int = 50, batch: int = 16, seed: int = 0) -> Float[torch.Tensor, "layer head"]:
    return prev_token_scores_from_cache(_pattern_cache(model, repeated_random_tokens(model, seq_len, batch, seed)))


def induction_scores(model, seq_len: int = 50, batch: int = 16, seed: int = 0) -> Float[torch.Tensor, "layer head"]:
    """Attention from each second-copy position to the token after its first occurrence."""
    cache = _pattern_cache(model, repeated_random_tokens(model, seq_len, batch, seed))
    return induction_scores_from_cache(cache, seq_len)


def heads_above(scores: Float[torch.Tensor, "layer head"], threshold: float) -> list[tuple[int, int]]:
    """``(layer, head)`` of every score strictly above ``threshold``, highest score first."""
    layers, heads = torch.nonzero(scores > threshold, as_tuple=True)
    found = [(int(l), int(h)) for l, h in zip(layers, heads)]
    return sorted(found, key=lambda lh: -float(scores[lh]))


def find_induction_heads(model, threshold: float, seq_len: int = 50, batch: int = 16,
                         seed: int = 0) -> list[tuple[int, int]]:
    """Heads whose induction score (on ``repeated_random_tokens(model, seq_len, batch, seed)``) exceeds
    ``threshold``, best first."""
    return heads_above(induction_scores(model, seq_len, batch, seed), threshold)


def repeat_loss_ratio(model, seq_len: int = 50, batch: int = 16, seed: int = 0) -> float:
    """Mean loss on the second copy divided by mean loss on the first (well below 1 with induction)."""
    if seq_len < 2:
        raise ValueError(f"need seq_len >= 2 (the first copy's t_1 is unguessable), got {seq_len}")
    loss = per_token_loss(model, repeated_random_tokens(model, seq_len, batch, seed))
    first = loss[:, 1:seq_len].mean()  # predictions of t_2 .. t_n (t_1 after bos is unguessable)
    second = loss[:, seq_len + 1:].mean()  # predictions of the second copy's t_2 .. t_n
    return (second / first).item()


# ------------------------------------------------------------------------------------------------ ablation


def ablate_head_loss(model, tokens: Int[torch.Tensor, "batch pos"], layer: int, head: int,
                     kind: str = "zero") -> float:
    """Mean next-token loss on ``tokens`` with one head zero- or mean-ablated (see :func:`head_ablation_hook`).
    The hook is removed afterwards, even if the forward pass raises."""
    name, hook = head_ablation_hook(model, layer, head, kind, tokens)
    with model.hooks(fwd_hooks=[(name, hook)]):  # the context removes the hook on exit, error or not
        return per_token_loss(model, tokens).mean().item()


# ------------------------------------------------------------------------------------------------ OV circuit


def ov_copying_score(model, layer: int, head: int) -> float:
    """Elhage et al.'s copying summary of the full OV circuit ``W_E W_V W_O W_U``: ``Re(sum lambda) /
    sum |lambda|`` over its eigenvalues, in [-1, 1]. Near 1: attending to a token raises that same token's
    logit (copying); near -1: lowers it. 0 for a head whose circuit is zero. With real eigenvalues of
    positive mass P and negative mass N it is (P - N) / (P + N) = 2 * (share of positive mass) - 1.

    The ``d_vocab x d_vocab`` matrix has rank <= d_head, and its nonzero eigenvalues are those of the small
    ``d_head x d_head`` product ``(W_O W_U)(W_E W_V)`` (``FactoredMatrix.eigenvalues``)."""
    eig = ov_circuit(model, layer, head).eigenvalues  # validates layer and head
    total = eig.abs().sum()
    return 0.0 if total == 0 else (eig.sum().real / total).item()
