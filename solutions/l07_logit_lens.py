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
    from mi_course.language import logit_lens as canonical_lens
    return canonical_lens.accumulated_residuals(cache)  # mi_course/language/logit_lens.py
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
    from mi_course.language import logit_lens as canonical_lens
    return canonical_lens.logit_lens(model, tokens)  # mi_course/language/logit_lens.py
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
    from mi_course.language import logit_lens as canonical_lens
    return canonical_lens.top_tokens_table(model, tokens, k)  # mi_course/language/logit_lens.py
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
    from mi_course.language import logit_lens as canonical_lens
    return canonical_lens.kl_to_final(lens_logits)  # mi_course/language/logit_lens.py
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
    from mi_course.language import logit_lens as canonical_lens
    return canonical_lens.correct_token_rank(lens_logits, tokens)  # mi_course/language/logit_lens.py
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
    from mi_course.language import tuned_lens as canonical_tuned
    return canonical_tuned.train_tuned_lens(model, tokens, steps, lr)  # mi_course/language/tuned_lens.py
    # END SOLUTION
# <<< exercise: train_tuned_lens
