"""The logit lens (nostalgebraist, 2020): decode the residual stream after every layer as if it were the last.

Canonical versions for model cards, property tests and later lessons (Part III decodes SAE features and
residual directions the same way); lesson 07 asks learners to write their own. Shapes, with
``L = model.cfg.n_layers``:

    accumulated_residuals(cache)       [L + 1, batch, pos, d_model]   row 0: after the embeddings
                                                                      row l: after block l - 1
    logit_lens(model, tokens)          [L + 1, batch, pos, d_vocab]   last row == model(tokens)
    kl_to_final(lens_logits)           [L + 1, batch, pos]            KL(final || layer), last row 0
    correct_token_rank(lens, tokens)   [L + 1, batch, pos - 1]        0 = the next token is the top guess
    top_tokens_table(model, tokens, k) a pandas DataFrame, one row per (layer, position, rank)

Decoding a residual means what the model itself does after its last block: the final LayerNorm, with the
statistics (mean, scale) of *that* residual recomputed, then the unembedding ``W_U`` (and ``b_U``). A model
without a final LayerNorm (``normalization_type=None``, e.g. the attention-only models) is unembedded as is.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from mi_course.language.heldout import heldout_rows  # noqa: F401 (re-exported)


def _n_layers(cache) -> int:
    model = getattr(cache, "model", None)
    if model is not None:
        return model.cfg.n_layers
    return sum(1 for name in cache.keys() if name.startswith("blocks.") and name.endswith(".hook_resid_post"))


def accumulated_residuals(cache) -> Float[torch.Tensor, "layer_plus_1 batch pos d_model"]:
    """The residual stream after the embeddings (row 0, ``blocks.0.hook_resid_pre``) and after each block
    (row ``l`` = ``blocks.{l-1}.hook_resid_post``), stacked from a ``run_with_cache`` cache (with its batch
    dimension). Nothing is normalized: these are the raw vectors the blocks add to."""
    if not getattr(cache, "has_batch_dim", True):
        raise ValueError("accumulated_residuals needs a cache with its batch dimension: run_with_cache(tokens) "
                         "without remove_batch_dim=True")
    n_layers = _n_layers(cache)
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(n_layers)]
    missing = [n for n in names if n not in cache.keys()]
    if missing:
        raise ValueError(f"the cache lacks {missing[:3]}: run run_with_cache without a names_filter that drops "
                         f"the residual stream hooks")
    return torch.stack([cache[n] for n in names])


def decode_residual(model, resid: Float[torch.Tensor, "... d_model"]) -> Float[torch.Tensor, "... d_vocab"]:
    """Logits for any stack of residual vectors: ``ln_final`` (each vector normalized with its own mean and
    scale, recomputed here; skipped if the model has no final LayerNorm), then the unembedding."""
    ln_final = getattr(model, "ln_final", None)  # absent when cfg.normalization_type is None
    return model.unembed(ln_final(resid) if ln_final is not None else resid)


def logit_lens(model, tokens: Int[torch.Tensor, "batch pos"]) -> Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]:
    """The logit lens: every row of :func:`accumulated_residuals` decoded with :func:`decode_residual`. Row 0
    decodes the embeddings, the last row equals the model's logits. ``tokens`` are used as given (no BOS is
    added or removed)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        raise ValueError(f"tokens should be a [batch, pos] tensor of token ids (use model.to_tokens(text)), got "
                         f"{type(tokens).__name__}{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else ''}")
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
    with torch.no_grad():
        # run_with_cache removes its hooks when it returns; the filter keeps only what is stacked
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        return decode_residual(model, accumulated_residuals(cache))


def kl_to_final(lens_logits: Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"]
                ) -> Float[torch.Tensor, "layer_plus_1 batch pos"]:
    """KL(final || layer) in nats for every layer and position: ``sum_v p_final(v) (log p_final(v) - log
    p_layer(v))``, softmax over the vocabulary (last dim). How many nats the layer's guess loses when the
    final distribution is the truth; the last row is 0. log_softmax keeps it finite for large logits."""
    logp = lens_logits.log_softmax(dim=-1)
    final = logp[-1]
    return (final.exp() * (final - logp)).sum(dim=-1)


def correct_token_rank(lens_logits: Float[torch.Tensor, "layer_plus_1 batch pos d_vocab"],
                       tokens: Int[torch.Tensor, "batch pos"]) -> Int[torch.Tensor, "layer_plus_1 batch pos_minus_1"]:
    """Rank of the actual next token in every layer's guess: entry ``[l, b, p]`` counts the vocabulary entries
    whose logit at position ``p`` is strictly larger than that of ``tokens[b, p + 1]`` (0 = top guess).
    Position ``p`` predicts token ``p + 1``, so the last position (nothing to predict) is dropped."""
    if lens_logits.dim() != 4 or tokens.dim() != 2 or tuple(lens_logits.shape[1:3]) != tuple(tokens.shape):
        raise ValueError(f"expected lens_logits [layers, batch, pos, d_vocab] and tokens [batch, pos] with the same "
                         f"batch and pos; got {tuple(lens_logits.shape)} and {tuple(tokens.shape)}")
    logits = lens_logits[:, :, :-1]
    target = tokens[:, 1:].to(logits.device)
    target_logit = logits.gather(-1, target[None, :, :, None].expand(logits.shape[0], -1, -1, 1))
    return (logits > target_logit).sum(dim=-1)


def top_tokens_table(model, tokens: Int[torch.Tensor, "pos"] | Int[torch.Tensor, "1 pos"], k: int = 3):
    """The logit lens's ``k`` top guesses at every layer and position of one sequence, as a pandas DataFrame
    with one row per (layer, position, rank), sorted in that order, and the columns

        layer     0 = after the embeddings ... n_layers = the model's output
        pos       position in ``tokens``
        input     the token at ``pos`` (a string)
        target    the actual next token, ``tokens[pos + 1]`` (a string; None at the last position)
        rank      0 .. k-1, the guess's place (0 = top guess)
        token     the guessed token (a string)
        token_id  its id
        logit     its logit (a float)
        correct   whether the guess is the actual next token (False at the last position)

    ``tokens`` is ``[pos]`` or ``[1, pos]``, used as given (no BOS added)."""
    import pandas as pd

    tokens = _one_sequence(tokens)
    if not isinstance(k, int) or not 1 <= k <= model.cfg.d_vocab_out:
        raise ValueError(f"k must be an int in 1..{model.cfg.d_vocab_out}, got {k!r}")
    lens = logit_lens(model, tokens[None])[:, 0]  # [layers, pos, d_vocab]
    values, ids = lens.topk(k, dim=-1)
    ids_list = tokens.tolist()
    inputs = model.to_str_tokens(tokens)
    guesses = model.to_str_tokens(ids.flatten())
    n_layers, n_pos = lens.shape[:2]
    rows = []
    for layer in range(n_layers):
        for pos in range(n_pos):
            nxt = ids_list[pos + 1] if pos + 1 < n_pos else None
            for r in range(k):
                tid = int(ids[layer, pos, r])
                rows.append({"layer": layer, "pos": pos, "input": inputs[pos],
                             "target": inputs[pos + 1] if nxt is not None else None, "rank": r,
                             "token": guesses[(layer * n_pos + pos) * k + r], "token_id": tid,
                             "logit": float(values[layer, pos, r]), "correct": tid == nxt})
    return pd.DataFrame(rows)


def _one_sequence(tokens) -> torch.Tensor:
    if isinstance(tokens, torch.Tensor) and tokens.dim() == 2 and tokens.shape[0] == 1:
        tokens = tokens[0]
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"top_tokens_table takes one sequence of token ids, shape [pos] or [1, pos]; got {shape}")
    return tokens
