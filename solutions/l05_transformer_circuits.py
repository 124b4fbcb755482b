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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    return canonical.bigram_logits(model, tokens)
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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    with torch.no_grad():
        return canonical.decompose_logits(model, cache)
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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    return canonical.ov_circuit(model, layer, head)
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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    return canonical.qk_circuit(model, layer, head)
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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    return canonical.top_skip_trigrams(model, layer, head, k, tokens)
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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    return canonical.composition_scores(model, kind)
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
    from mi_course.language import circuits as canonical  # the canonical version: mi_course/language/circuits.py

    return canonical.virtual_head_ov(model, head0, head1)
    # END SOLUTION
# <<< exercise: virtual_head_ov
