"""Transformer circuits (Elhage et al., "A Mathematical Framework for Transformer Circuits", 2021).

Canonical versions that lessons 05, 06 and 11 use; lesson 05 asks learners to write their own. The full
circuits are returned as TransformerLens ``FactoredMatrix`` objects, so a ``d_vocab x d_vocab`` matrix is
never materialized unless asked for (GPT-2's would be 50257 x 50257).

Conventions. TransformerLens multiplies row vectors from the left (``x @ W``), so every matrix here is
the transpose of the one in Elhage et al., who write column vectors (``W x``):

    W_OV = W_V W_O    [d_model, d_model]   a head writes  (x_src @ W_OV)  when it attends to x_src
    W_QK = W_Q W_K^T  [d_model, d_model]   its score is   x_dst @ W_QK @ x_src^T

A full circuit puts the embedding in front and the unembedding behind: OV = W_E W_OV W_U (row = source
token, column = output token), QK = W_E W_QK W_E^T (row = query/destination token, column = key/source
token). LayerNorms, biases and positional embeddings are left out of circuits; ``decompose_logits`` is the
exact account of one input, with all of them.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens import FactoredMatrix

from mi_course.language.ablation import check_head as _check_head
from mi_course.language.factored import circuit_rows, composition_baseline  # noqa: F401 (re-exported)
from mi_course.language.factored import frobenius_of_product as _frobenius

KINDS = ("Q", "K", "V")


def _token_ids(model, tokens) -> torch.Tensor | None:
    if tokens is None:
        return None
    ids = torch.as_tensor(tokens, dtype=torch.long, device=model.W_E.device).reshape(-1)
    if ids.numel() == 0 or ids.min() < 0 or ids.max() >= model.cfg.d_vocab:
        raise ValueError(f"tokens must be a non-empty list of ids in 0..{model.cfg.d_vocab - 1}")
    return ids


# ------------------------------------------------------------------------------------------ zero layers


def bigram_logits(model, tokens: Int[torch.Tensor, "n"] | None = None
                  ) -> Float[torch.Tensor, "d_vocab_or_n d_vocab"]:
    """The direct path as a bigram table: row ``t`` = the logits if the residual stream held only W_E[t].

    That is ``W_E W_U + b_U`` for a model without a final LayerNorm, and ``ln_final(W_E) W_U + b_U`` for a
    model with one (each row normalised with its own mean and scale, as the model would). Positional
    embeddings are left out. ``tokens`` (optional) keeps only those rows: ``[len(tokens), d_vocab]``; a
    GPT-2-sized table (50257^2 floats, 10 GB) should only ever be computed for a few rows.
    """
    ids = _token_ids(model, tokens)
    with torch.no_grad():
        resid = model.W_E if ids is None else model.W_E[ids]
        if model.cfg.normalization_type is not None:
            resid = model.ln_final(resid[None])[0]  # TransformerLens norms expect [batch, pos, d_model]
        return resid @ model.W_U + model.b_U


# ------------------------------------------------------------------------------------------ path expansion


def decompose_logits(model, cache) -> tuple[Float[torch.Tensor, "component batch pos d_vocab"], list[str]]:
    """Split the logits of one run into terms that add up to them (to float precision).

    ``cache`` is the ActivationCache of ``model.run_with_cache(tokens)``. The residual stream before the
    final LayerNorm is a sum of what each part wrote; the final LayerNorm is linear once its scale is fixed,
    so with the scale of this input (``cache["ln_final.hook_scale"]``) every term can be pushed through it
    and the unembedding on its own. Components, in this order, with their labels:

        "embed"        token embeddings (the direct path)
        "pos_embed"    positional embeddings, only for standard positions (shortformer adds them to queries
                       and keys only, rotary inside attention: they never enter the residual stream)
        "L{l}H{h}"     what head h of layer l wrote: z @ W_O (its b_V is inside z)
        "L{l} b_O"     the attention output bias of layer l (shared by its heads)
        "L{l} MLP"     MLP l's output, for models with MLPs
        "b_U"          b_U, plus the final LayerNorm's bias b through W_U where it has one

    Each residual term x goes to ``norm(x) W_U`` with ``norm(x) = (x - mean(x)) / scale * w`` (LN),
    ``(x - mean(x)) / scale`` (LNPre, GPT-2 with folded weights), ``x / scale * w`` (RMS) or ``x`` (none).
    Returns ``(components [n_components, batch, pos, d_vocab], labels)``.
    """
    with torch.no_grad():
        return _decompose_logits(model, cache)


def _decompose_logits(model, cache):
    cfg = model.cfg
    parts, labels = [cache["hook_embed"]], ["embed"]
    if cfg.positional_embedding_type == "standard":
        parts.append(cache["hook_pos_embed"])
        labels.append("pos_embed")
    for layer in range(cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch, pos, head, d_head]
        heads = torch.einsum("bphd,hdm->hbpm", z, model.W_O[layer])
        parts += list(heads)
        labels += [f"L{layer}H{h}" for h in range(cfg.n_heads)]
        parts.append(model.b_O[layer].expand_as(parts[0]))
        labels.append(f"L{layer} b_O")
        if not cfg.attn_only:
            parts.append(cache[f"blocks.{layer}.hook_mlp_out"])
            labels.append(f"L{layer} MLP")
    resid = torch.stack(parts)  # [component, batch, pos, d_model]
    bias = model.b_U
    norm = cfg.normalization_type
    if norm is not None:
        if norm in ("LN", "LNPre"):  # the mean is subtracted from the sum, so from each term
            resid = resid - resid.mean(-1, keepdim=True)
        resid = resid / cache["ln_final.hook_scale"]
        if hasattr(model.ln_final, "w"):
            resid = resid * model.ln_final.w
        if hasattr(model.ln_final, "b"):
            bias = bias + model.ln_final.b @ model.W_U
    components = resid @ model.W_U
    components = torch.cat([components, bias.expand_as(components[:1])])
    return components, labels + ["b_U"]


# ------------------------------------------------------------------------------------------ one layer


def ov_circuit(model, layer: int, head: int) -> FactoredMatrix:
    """The full OV circuit W_E W_V W_O W_U, [d_vocab, d_vocab]: row = the token attended to, column = the
    logit it raises or lowers when this head moves it (LayerNorms and positional embeddings left out)."""
    _check_head(model, layer, head)
    return FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U)


def qk_circuit(model, layer: int, head: int) -> FactoredMatrix:
    """The full QK circuit W_E W_Q W_K^T W_E^T, [d_vocab, d_vocab]: row = query token, column = key token,
    entry = the attention score before scaling and softmax (LayerNorms and positions left out)."""
    _check_head(model, layer, head)
    return FactoredMatrix(model.W_E @ model.W_Q[layer, head], (model.W_E @ model.W_K[layer, head]).T)


def top_skip_trigrams(model, layer: int, head: int, k: int, tokens: Int[torch.Tensor, "n"] | None = None,
                      chunk: int = 2048) -> tuple[Int[torch.Tensor, "k 3"], Float[torch.Tensor, "k"]]:
    """The ``k`` strongest skip-trigrams "A ... B -> C" of one head: at B, the head attends back to A and
    raises the logit of C.

    With the full circuits of the head, each centred because a softmax ignores a constant added to all of
    its inputs:

        qk[B, A] = QK[B, A] - mean over A' of QK[B, A']     (how much more B attends to A than to average)
        ov[A, C] = OV[A, C] - mean over C' of OV[A, C']     (how much more moving A raises C than average)
        score(A, B, C) = qk[B, A] * ov[A, C]   if both are positive, else the triple does not count

    ``tokens`` (optional) restricts A, B and C to those ids, as if the vocabulary were just them (the means
    are then over them too): use it to leave out special tokens, or to keep a big vocabulary tractable.
    Returns ``(triples, scores)``: ``triples[i] = (A, B, C)`` as token ids of the model's vocabulary,
    sorted by ``scores`` from the highest down; fewer than ``k`` rows if fewer triples count.

    Works one block of A at a time (``chunk``), so the vocabulary's d_vocab^3 triples are never formed: for
    each A only its ``k`` best B and ``k`` best C can be in the top ``k``.
    """
    _check_head(model, layer, head)
    if k < 1:
        raise ValueError(f"k must be a positive number of triples, got {k}")
    ids = _token_ids(model, tokens)
    with torch.no_grad():
        W_E = model.W_E if ids is None else model.W_E[ids]
        W_U = model.W_U if ids is None else model.W_U[:, ids]
        query = W_E @ model.W_Q[layer, head]                        # [n, d_head]
        key = W_E @ model.W_K[layer, head]                          # [n, d_head]
        value_out = W_E @ model.W_V[layer, head] @ model.W_O[layer, head]  # [n, d_model]
        qk_mean = query @ key.mean(0)                               # [n]: row means of QK
        ov_mean = value_out @ W_U.mean(1)                           # [n]: row means of OV
        n = W_E.shape[0]
        kk = min(k, n)
        best_scores = torch.empty(0, device=W_E.device)
        best_triples = torch.empty(0, 3, dtype=torch.long, device=W_E.device)
        for start in range(0, n, chunk):
            a = torch.arange(start, min(start + chunk, n), device=W_E.device)
            qk = (query @ key[a].T - qk_mean[:, None]).clamp(min=0)    # [B, A in chunk]
            ov = (value_out[a] @ W_U - ov_mean[a, None]).clamp(min=0)   # [A in chunk, C]
            qk_top, b_idx = qk.topk(kk, dim=0)                          # [kk, A]
            ov_top, c_idx = ov.topk(kk, dim=1)                          # [A, kk]
            prod = qk_top.T[:, :, None] * ov_top[:, None, :]            # [A, kk (B), kk (C)]
            vals, flat = prod.flatten().topk(min(k, prod.numel()))
            ai, rest = flat // (kk * kk), flat % (kk * kk)
            bi, ci = rest // kk, rest % kk
            triples = torch.stack([a[ai], b_idx[bi, ai], c_idx[ai, ci]], dim=1)
            best_scores = torch.cat([best_scores, vals])
            best_triples = torch.cat([best_triples, triples])
            keep = best_scores.argsort(descending=True)[:k]
            best_scores, best_triples = best_scores[keep], best_triples[keep]
        keep = best_scores > 0
        best_scores, best_triples = best_scores[keep], best_triples[keep]
        if ids is not None:
            best_triples = ids[best_triples]
        return best_triples, best_scores


# ------------------------------------------------------------------------------------------ two layers


def composition_scores(model, kind: str) -> Float[torch.Tensor, "head0 head1"]:
    """How much each layer-1 head reads what each layer-0 head writes, on its query, key or value side.

    Entry ``[h0, h1]`` is the Frobenius-norm ratio of Elhage et al., ``||M|| / (||W_OV^{h0}|| ||W^{h1}||)``,
    where (row-vector convention, ``x @ W``; Elhage et al. write the transposes):

        "Q":  M = W_OV^{h0} @ W_QK^{h1}        h0's output enters h1's query  (x_dst W_OV) W_QK x_src^T
        "K":  M = W_QK^{h1} @ W_OV^{h0}.T      h0's output enters h1's key     x_dst W_QK (x_src W_OV)^T
        "V":  M = W_OV^{h0} @ W_OV^{h1}        h0's output enters h1's value   (x_src W_OV^{h0}) W_OV^{h1}

    and ``W^{h1}`` is W_QK^{h1} for Q and K, W_OV^{h1} for V. The ratio is 1 when h1 reads exactly what h0
    writes with aligned singular directions and 0 when they share no subspace; random matrices give about
    ``1 / sqrt(d_model)`` (see :func:`composition_baseline`). LayerNorms and biases are left out.
    """
    kind = _check_kind(kind)
    if model.cfg.n_layers < 2:
        raise ValueError(f"composition needs two layers; this model has {model.cfg.n_layers}")
    with torch.no_grad():
        V0, O0 = model.W_V[0][:, None], model.W_O[0][:, None]          # [head0, 1, ...]
        Q1, K1, V1, O1 = (w[None] for w in (model.W_Q[1], model.W_K[1], model.W_V[1], model.W_O[1]))  # [1, head1, ...]
        K1T = K1.transpose(-1, -2)
        if kind == "Q":    # W_V0 (W_O0 W_Q1 W_K1^T)
            product, second = _frobenius(V0, O0 @ Q1 @ K1T), _frobenius(Q1, K1T)
        elif kind == "K":  # W_Q1 (W_K1^T W_O0^T W_V0^T)
            product = _frobenius(Q1, K1T @ O0.transpose(-1, -2) @ V0.transpose(-1, -2))
            second = _frobenius(Q1, K1T)
        else:              # W_V0 (W_O0 W_V1 W_O1)
            product, second = _frobenius(V0, O0 @ V1 @ O1), _frobenius(V1, O1)
        return product / (_frobenius(V0, O0) * second)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or kind.upper() not in KINDS:
        raise ValueError(f"kind must be one of 'Q', 'K', 'V' (query, key or value composition), got {kind!r}")
    return kind.upper()


def virtual_head_ov(model, head0: int, head1: int) -> FactoredMatrix:
    """The full OV circuit of the virtual head "layer-0 head ``head0``, then layer-1 head ``head1``":
    W_E W_OV^{0,head0} W_OV^{1,head1} W_U, [d_vocab, d_vocab]. Row = the token head0 attends to, column =
    the logit it moves after head1 moves head0's output on (V-composition); its attention pattern is the
    product of the two heads' patterns."""
    if model.cfg.n_layers < 2:
        raise ValueError(f"a virtual head needs two layers; this model has {model.cfg.n_layers}")
    _check_head(model, 0, head0)
    _check_head(model, 1, head1)
    return FactoredMatrix(model.W_E @ model.W_V[0, head0],
                          model.W_O[0, head0] @ model.W_V[1, head1] @ model.W_O[1, head1] @ model.W_U)
