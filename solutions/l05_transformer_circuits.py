"""Lesson 05, transformer circuits: exercises.

Conventions (TransformerLens): activations are row vectors and weights multiply them from the right,
``x @ W``. So ``W_E`` is ``[d_vocab, d_model]``, ``W_U`` is ``[d_model, d_vocab]``, and for head ``h`` of
layer ``l``: ``W_Q[l, h]``, ``W_K[l, h]``, ``W_V[l, h]`` are ``[d_model, d_head]``, ``W_O[l, h]`` is
``[d_head, d_model]``. A head's two circuits, as ``[d_model, d_model]`` matrices:

    W_OV = W_V @ W_O      what the head writes when it attends to a residual vector x:  x @ W_OV
    W_QK = W_Q @ W_K.T    the attention score of a query vector x_q on a key vector x_k: x_q @ W_QK @ x_k.T

(Elhage et al. write column vectors, so their matrices are the transposes of these.)
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.ActivationCache import ActivationCache


# >>> exercise: bigram_logits
def bigram_logits(
    model: HookedTransformer,
    tokens: Int[torch.Tensor, "n"] | None = None,
) -> Float[torch.Tensor, "rows d_vocab"]:
    """The direct path (embedding straight to unembedding) read as a bigram table.

    Row ``t`` holds the logits the model would output if the residual stream held only the embedding of
    token ``t``: ``W_E[t] @ W_U + b_U`` for a model without a final LayerNorm
    (``model.cfg.normalization_type is None``), and ``ln_final(W_E[t]) @ W_U + b_U`` for a model with one,
    each row normalised with its own statistics (``model.ln_final`` does it; it expects
    ``[batch, pos, d_model]``). Positional embeddings are left out.

    Args:
        tokens: if given, a 1-D tensor of token ids: only those rows are returned, in that order (a full
            table for GPT-2 would hold 50257 x 50257 numbers).

    Returns:
        ``[d_vocab, d_vocab]`` (or ``[len(tokens), d_vocab]``): entry ``[t, c]`` is the logit of token ``c``
        as the next token after ``t``. No gradients are needed (use ``torch.no_grad()``).
    """
    # BEGIN SOLUTION
    with torch.no_grad():
        # A residual stream that holds nothing but a token's embedding: one row per token, [rows, d_model].
        rows = model.W_E if tokens is None else model.W_E[tokens]
        if model.cfg.normalization_type:  # None when the model has no final norm
            # The final norm works on the last axis, each row with its own statistics, but it expects
            # [batch, pos, d_model]: show it the rows as the positions of one sequence, then drop that axis.
            rows = model.ln_final(rows.unsqueeze(0)).squeeze(0)
        # [rows, d_model] @ [d_model, d_vocab] -> a logit for every next token, plus the unembedding bias.
        return rows @ model.W_U + model.b_U
    # END SOLUTION
# <<< exercise: bigram_logits


# >>> exercise: decompose_logits
def decompose_logits(
    model: HookedTransformer,
    cache: ActivationCache,
) -> tuple[Float[torch.Tensor, "component batch pos d_vocab"], list[str]]:
    """Split the logits of one run into components that add up to them (within 1e-4).

    ``cache`` comes from ``logits, cache = model.run_with_cache(tokens)``. The residual stream before the
    final LayerNorm is the sum of what every part wrote into it; push each part through the final
    LayerNorm (using this input's scale, ``cache["ln_final.hook_scale"]``, ``[batch, pos, 1]``) and
    ``W_U`` on its own. The components and their labels, in this order:

        "embed"       ``cache["hook_embed"]`` (the direct path)
        "pos_embed"   ``cache["hook_pos_embed"]``, only if ``model.cfg.positional_embedding_type ==
                      "standard"`` (with "shortformer" positions are added to queries and keys only, and
                      with "rotary" inside attention: they are not in the residual stream)
        then for each layer ``l`` = 0, 1, ...:
        "L{l}H{h}"    for h = 0 .. n_heads-1: what head h wrote, ``z[:, :, h] @ W_O[l, h]`` with
                      ``z = cache[f"blocks.{l}.attn.hook_z"]`` (``[batch, pos, head, d_head]``)
        "L{l} b_O"    the layer's attention output bias ``b_O[l]`` (the same at every position)
        "L{l} MLP"    ``cache[f"blocks.{l}.hook_mlp_out"]``, only if the model has MLPs (not ``cfg.attn_only``)
        and last:
        "b_U"         ``b_U``, plus ``ln_final.b @ W_U`` if the final LayerNorm has a bias ``b``

    Each residual component ``x`` (``[batch, pos, d_model]``) becomes ``norm(x) @ W_U`` with

        no final norm (normalization_type None):  norm(x) = x
        "LN":      norm(x) = (x - x.mean(-1)) / scale * ln_final.w     (the bias b goes to "b_U")
        "LNPre":   norm(x) = (x - x.mean(-1)) / scale                  (LayerNorm with w and b folded away)
        "RMS":     norm(x) = x / scale * ln_final.w
        "RMSPre":  norm(x) = x / scale

    Returns:
        ``(components, labels)``: ``components`` of shape ``[n_components, batch, pos, d_vocab]`` and the
        list of ``n_components`` labels above, in the same order.
    """
    # BEGIN SOLUTION
    cfg = model.cfg
    n_layers, n_heads = cfg.n_layers, cfg.n_heads
    with torch.no_grad():
        # 1. Everything that was added into the residual stream, each [batch, pos, d_model], and its label.
        terms, names = [cache["hook_embed"]], ["embed"]
        # Shortformer and rotary positions act inside attention: only standard ones are in the stream.
        positions_in_stream = cfg.positional_embedding_type == "standard"
        if positions_in_stream:
            terms.append(cache["hook_pos_embed"])
            names.append("pos_embed")
        for l in range(n_layers):
            z = cache[f"blocks.{l}.attn.hook_z"]  # [batch, pos, head, d_head]
            for h in range(n_heads):
                # Head h's share of the attention output: [batch, pos, d_head] @ [d_head, d_model].
                terms.append(z[:, :, h] @ model.W_O[l, h])
                names.append(f"L{l}H{h}")
            # b_O is added once per layer (not once per head), at every position.
            terms.append(model.b_O[l].expand(terms[0].shape))
            names.append(f"L{l} b_O")
            if not cfg.attn_only:
                terms.append(cache[f"blocks.{l}.hook_mlp_out"])
                names.append(f"L{l} MLP")
        stacked = torch.stack(terms)  # [component, batch, pos, d_model]

        # 2. With its scale frozen at this input's value the final norm is linear, so it can be applied to
        #    each term on its own and the results still add up.
        final_norm = cfg.normalization_type
        constant = model.b_U  # [d_vocab]: added to the logits whatever the input
        if final_norm in ("LN", "LNPre"):
            # LayerNorm subtracts the mean of the sum, which is the sum of the terms' means.
            stacked = stacked - stacked.mean(dim=-1, keepdim=True)
        if final_norm is not None:
            # This input's scale, [batch, pos, 1]: it broadcasts over the component axis.
            stacked = stacked / cache["ln_final.hook_scale"]
        if final_norm in ("LN", "RMS"):
            stacked = stacked * model.ln_final.w  # a gain per dimension: it scales every term alike
        if final_norm == "LN":
            # The norm's bias is added once, to the sum: it is one more constant, not part of each term.
            constant = constant + model.ln_final.b @ model.W_U

        # 3. Unembed every term: [component, batch, pos, d_model] @ [d_model, d_vocab].
        per_term = stacked @ model.W_U
        constant_term = constant.expand(1, *per_term.shape[1:])  # [1, batch, pos, d_vocab]
        return torch.cat([per_term, constant_term]), names + ["b_U"]
    # END SOLUTION
# <<< exercise: decompose_logits


# >>> exercise: ov_circuit
def ov_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """The full OV circuit of one head, ``W_E @ W_V[layer, head] @ W_O[layer, head] @ W_U``.

    Returns a TransformerLens ``FactoredMatrix`` of shape ``[d_vocab, d_vocab]`` (built from two factors,
    never multiplied out): entry ``[A, C]`` is how much the logit of token ``C`` goes up when the head
    attends (fully) to a position holding token ``A``. LayerNorms, biases and positions are left out.

    Raises:
        ValueError: if ``layer`` or ``head`` is out of range.
    """
    # BEGIN SOLUTION
    # Check the range ourselves: indexing would quietly read layer -1 as the last layer.
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        raise ValueError(f"need 0 <= layer < {model.cfg.n_layers} and 0 <= head < {model.cfg.n_heads}, "
                         f"got layer={layer}, head={head}")
    # Cut the product at its narrowest point, d_head, and keep the two halves apart.
    reads = model.W_E @ model.W_V[layer, head]   # [d_vocab, d_head]: what the head picks up from token A
    writes = model.W_O[layer, head] @ model.W_U  # [d_head, d_vocab]: how that moves the logit of each C
    return FactoredMatrix(reads, writes)  # [d_vocab, d_vocab], rows A, columns C
    # END SOLUTION
# <<< exercise: ov_circuit


# >>> exercise: qk_circuit
def qk_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """The full QK circuit of one head, ``W_E @ W_Q[layer, head] @ W_K[layer, head].T @ W_E.T``.

    Returns a ``FactoredMatrix`` of shape ``[d_vocab, d_vocab]``: entry ``[B, A]`` is the attention score
    (before the 1/sqrt(d_head) scaling and the softmax) of a query at token ``B`` on a key at token ``A``.
    Rows are queries (destinations), columns keys (sources). LayerNorms, biases and positions are left out.

    Raises:
        ValueError: if ``layer`` or ``head`` is out of range.
    """
    # BEGIN SOLUTION
    # Check the range ourselves: indexing would quietly read layer -1 as the last layer.
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        raise ValueError(f"need 0 <= layer < {model.cfg.n_layers} and 0 <= head < {model.cfg.n_heads}, "
                         f"got layer={layer}, head={head}")
    # A score is (query of B) . (key of A); both sides are [d_vocab, d_head], so factor at d_head.
    queries = model.W_E @ model.W_Q[layer, head]  # [d_vocab, d_head], one row per query token B
    keys = model.W_E @ model.W_K[layer, head]     # [d_vocab, d_head], one row per key token A
    # Raw scores, as the docstring asks: no 1/sqrt(d_head) here.
    return FactoredMatrix(queries, keys.T)  # [d_vocab, d_vocab], rows B, columns A
    # END SOLUTION
# <<< exercise: qk_circuit


# >>> exercise: top_skip_trigrams
def top_skip_trigrams(
    model: HookedTransformer,
    layer: int,
    head: int,
    k: int,
    tokens: Int[torch.Tensor, "n"] | None = None,
) -> tuple[Int[torch.Tensor, "k 3"], Float[torch.Tensor, "k"]]:
    """The ``k`` strongest skip-trigrams "A ... B -> C" of one head: at a position holding token B, the
    head attends back to an earlier token A and raises the logit of C.

    With ``QK`` and ``OV`` the head's full circuits (as in ``qk_circuit`` and ``ov_circuit``), each
    centred, because a softmax ignores a constant added to all of its inputs:

        qk[B, A] = QK[B, A] - (mean over all A' of QK[B, A'])    how much more B attends to A than average
        ov[A, C] = OV[A, C] - (mean over all C' of OV[A, C'])    how much more moving A raises C than average
        score(A, B, C) = qk[B, A] * ov[A, C]     counted only when qk[B, A] > 0 and ov[A, C] > 0

    Args:
        k: how many triples (at least 1).
        tokens: if given, a 1-D tensor of token ids: A, B and C all range over these tokens only, as if the
            vocabulary were just them (the means above are then over them too).

    Returns:
        ``(triples, scores)``: ``triples`` is a long tensor ``[k, 3]``, row ``i`` = the token ids ``(A, B, C)``
        (ids of the model's vocabulary), and ``scores`` the ``k`` scores, highest first. If fewer than ``k``
        triples count, return just those.

    A vocabulary of n tokens has n^3 triples (four billion for the lite model): do not build them all. For a
    given A, only its k best B and its k best C can be in the top k.

    Raises:
        ValueError: if ``layer`` or ``head`` is out of range, or ``k < 1``.
    """
    # BEGIN SOLUTION
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        raise ValueError(f"need 0 <= layer < {model.cfg.n_layers} and 0 <= head < {model.cfg.n_heads}, "
                         f"got layer={layer}, head={head}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    # Work in a small vocabulary of its own: index i stands for the token id vocab[i].
    vocab = torch.arange(model.cfg.d_vocab) if tokens is None else torch.as_tensor(tokens).reshape(-1)
    vocab = vocab.to(model.W_E.device)
    n = len(vocab)
    with torch.no_grad():
        emb = model.W_E[vocab]       # [n, d_model]
        unemb = model.W_U[:, vocab]  # [d_model, n]
        # Both full circuits on these tokens, each [n, n] (the [n, n, n] cube is never built).
        qk = (emb @ model.W_Q[layer, head]) @ (emb @ model.W_K[layer, head]).T  # [B, A]
        ov = (emb @ model.W_V[layer, head] @ model.W_O[layer, head]) @ unemb    # [A, C]
        # Softmax (and which logit wins) ignore a constant per row: compare each entry with its row's
        # mean. Then zero what is negative, since a triple counts only if both factors are positive.
        qk = torch.relu(qk - qk.mean(dim=1, keepdim=True))
        ov = torch.relu(ov - ov.mean(dim=1, keepdim=True))
        # For a given A only its m best queries B and its m best outputs C can make the top k.
        m = min(k, n)
        qk_best, b_rank = qk.topk(m, dim=0)  # [m, A]: column A's m largest entries and their rows B
        ov_best, c_rank = ov.topk(m, dim=1)  # [A, m]: row A's m largest entries and their columns C
        # candidates[A, i, j] = score of (A, A's i-th best B, A's j-th best C): [n, m, m].
        candidates = qk_best.T.unsqueeze(2) * ov_best.unsqueeze(1)
        scores, flat = candidates.flatten().topk(min(k, candidates.numel()))  # sorted, highest first
        a, i, j = torch.unravel_index(flat, candidates.shape)
        # From ranks back to positions in vocab, then to the model's token ids: rows (A, B, C).
        triples = vocab[torch.stack([a, b_rank[i, a], c_rank[a, j]], dim=1)]
        counts = scores > 0  # a zeroed factor gives 0: that triple does not count
        return triples[counts], scores[counts]
    # END SOLUTION
# <<< exercise: top_skip_trigrams


# >>> exercise: composition_scores
def composition_scores(model: HookedTransformer, kind: str) -> Float[torch.Tensor, "head0 head1"]:
    """Q-, K- or V-composition between every head of layer 0 and every head of layer 1.

    Entry ``[h0, h1]`` is Elhage et al.'s Frobenius-norm ratio ``||M||_F / (||W_OV0||_F * ||W1||_F)``, with
    ``W_OV0 = W_V[0, h0] @ W_O[0, h0]``, ``W_QK1 = W_Q[1, h1] @ W_K[1, h1].T``, ``W_OV1 = W_V[1, h1] @ W_O[1, h1]``
    and, in TransformerLens's row-vector convention:

        kind "Q":  M = W_OV0 @ W_QK1      (h0's output feeds h1's queries),  W1 = W_QK1
        kind "K":  M = W_QK1 @ W_OV0.T    (h0's output feeds h1's keys),     W1 = W_QK1
        kind "V":  M = W_OV0 @ W_OV1      (h0's output feeds h1's values),   W1 = W_OV1

    Args:
        kind: "Q", "K" or "V" (lower case is fine too).

    Returns:
        ``[n_heads, n_heads]`` (layer-0 heads by layer-1 heads), values in [0, 1].

    Raises:
        ValueError: for another ``kind``, or a model with fewer than two layers.
    """
    # BEGIN SOLUTION
    if not isinstance(kind, str) or kind.upper() not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V', got {kind!r}")
    kind = kind.upper()
    if model.cfg.n_layers <= 1:
        raise ValueError(f"composition needs two layers, this model has {model.cfg.n_layers}")
    with torch.no_grad():
        # Each head's circuit as a [d_model, d_model] matrix, stacked over heads: [n_heads, d_model, d_model].
        writer_ov = model.W_V[0] @ model.W_O[0]                  # layer 0: what each head writes
        reader_qk = model.W_Q[1] @ model.W_K[1].transpose(1, 2)  # layer 1: its bilinear attention score
        reader_ov = model.W_V[1] @ model.W_O[1]                  # layer 1: what it moves on
        # Pair every writer h0 with every reader h1 by broadcasting [n_heads, 1, ...] with [1, n_heads, ...].
        w0 = writer_ov[:, None]
        if kind == "Q":    # h0's output becomes the query:  (x W_OV0) W_QK1 x_k.T
            product, reader = w0 @ reader_qk[None], reader_qk
        elif kind == "K":  # h0's output becomes the key:     x_q W_QK1 (x W_OV0).T
            product, reader = reader_qk[None] @ w0.transpose(-1, -2), reader_qk
        else:              # h0's output is moved on by h1:   x W_OV0 W_OV1
            product, reader = w0 @ reader_ov[None], reader_ov
        size = torch.linalg.matrix_norm  # Frobenius norm (its default) of every matrix in a stack
        # [h0, h1]: how much of the product survives, relative to the two matrices' own sizes.
        return size(product) / (size(writer_ov)[:, None] * size(reader)[None, :])
    # END SOLUTION
# <<< exercise: composition_scores


# >>> exercise: virtual_head_ov
def virtual_head_ov(model: HookedTransformer, head0: int, head1: int) -> FactoredMatrix:
    """The full OV circuit of the virtual head formed by head ``head0`` of layer 0 followed by head
    ``head1`` of layer 1 (V-composition):

        W_E @ W_V[0, head0] @ W_O[0, head0] @ W_V[1, head1] @ W_O[1, head1] @ W_U

    Returns a ``FactoredMatrix`` of shape ``[d_vocab, d_vocab]``: entry ``[A, C]`` is how much the logit
    of ``C`` goes up when head0 moves token ``A`` and head1 then moves head0's output on.

    Raises:
        ValueError: if a head index is out of range, or the model has fewer than two layers.
    """
    # BEGIN SOLUTION
    n_heads = model.cfg.n_heads
    if model.cfg.n_layers <= 1:
        raise ValueError(f"a virtual head needs two layers, this model has {model.cfg.n_layers}")
    if not (0 <= head0 < n_heads and 0 <= head1 < n_heads):
        raise ValueError(f"head0 and head1 must be in 0..{n_heads - 1}, got {head0} and {head1}")
    # Row vectors flow left to right: embed, layer-0 head's OV, layer-1 head's OV, unembed.
    # Split after layer 0's W_V (width d_head) so that no [d_vocab, d_vocab] product is formed.
    first = model.W_E @ model.W_V[0, head0]                                   # [d_vocab, d_head]
    rest = model.W_O[0, head0] @ model.W_V[1, head1] @ model.W_O[1, head1]    # [d_head, d_model]
    return FactoredMatrix(first, rest @ model.W_U)  # [d_vocab, d_vocab], rows A, columns C
    # END SOLUTION
# <<< exercise: virtual_head_ov
