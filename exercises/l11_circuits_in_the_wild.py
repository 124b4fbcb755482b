# Your answers go in this file: the notebook's %%exercise cells write them here.
"""Lesson 11, circuits in the wild: exercises."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from jaxtyping import Float, Int


# >>> exercise: fourier_basis
def fourier_basis(p: int) -> Float[torch.Tensor, "p p"]:
    """The real Fourier basis of functions on ``0 .. p-1``: ``p`` orthonormal rows, shape ``[p, p]``.

    Row 0 is the constant; then, for ``k = 1, 2, ...``, row ``2k - 1`` is ``cos(2 pi k x / p)`` and row ``2k``
    is ``sin(2 pi k x / p)``; for an even ``p`` the last row is the cosine of frequency ``p / 2`` alone (its
    sine is all zeros). Column ``x`` is the input ``x``. Every row has norm 1, float32.

    Raises:
        ValueError: if ``p`` is not an int >= 2.
    """
    raise NotImplementedError("exercise 11.fourier_basis: not started yet")
# <<< exercise: fourier_basis


# >>> exercise: key_frequencies
def key_frequencies(W_E: Float[torch.Tensor, "d_vocab d_model"], p: int, mass: float = 0.9) -> list[int]:
    """The key frequencies of a modular-addition model's embedding: the fewest frequencies, largest first,
    that together hold at least ``mass`` of the embedding's squared norm.

    Use the number tokens' rows ``W_E[:p]`` only (the model's ``"="`` token is row ``p``). Write them in the
    Fourier basis (``fourier_basis(p) @ W_E[:p]``, ``[p, d_model]``), square, sum each row, and add the rows
    of one frequency together (``cos k`` and ``sin k`` are one frequency ``k``; row 0 is frequency 0, the
    constant, ranked like the others). Divide by the total to get each frequency's share. At a tie the lower
    frequency comes first. Returns a list of Python ints.

    Raises:
        ValueError: if ``W_E`` is not 2-D with at least ``p`` rows, or ``mass`` is not in ``(0, 1]``.
    """
    raise NotImplementedError("exercise 11.key_frequencies: not started yet")
# <<< exercise: key_frequencies


# >>> exercise: logit_diff
def logit_diff(logits: Float[torch.Tensor, "batch pos vocab"], correct: Int[torch.Tensor, "batch"],
               wrong: Int[torch.Tensor, "batch"]) -> Float[torch.Tensor, "batch"]:
    """IOI's metric (Wang et al., 2022): ``logit[correct] - logit[wrong]`` at the **last** position, one
    number per prompt (``[batch]``, not averaged). In IOI ``correct`` is the indirect object's token and
    ``wrong`` the subject's.

    Raises:
        ValueError: if ``logits`` is not 3-D, or ``correct`` or ``wrong`` is not ``[batch]``.
    """
    raise NotImplementedError("exercise 11.logit_diff: not started yet")
# <<< exercise: logit_diff


# >>> exercise: activation_patching
def activation_patching(model, clean: Int[torch.Tensor, "batch pos"], corrupted: Int[torch.Tensor, "batch pos"],
                        metric: Callable[[torch.Tensor], float], kind: str = "resid") -> Float[torch.Tensor, "layer cols"]:
    """Activation patching: run the **corrupted** tokens, put back one activation from the **clean** run, and
    measure how much of the metric comes back, ``(patched - corrupted) / (clean - corrupted)``.

    ``kind="resid"``: ``[n_layers, pos]``; cell ``(layer, pos)`` patches the residual stream entering block
    ``layer`` (``blocks.{layer}.hook_resid_pre``) at that one position, for every prompt of the batch.
    ``kind="head"``: ``[n_layers, n_heads]``; cell ``(layer, head)`` patches that head's output
    (``blocks.{layer}.attn.hook_z``, ``[batch, pos, head, d_head]``) at every position.
    ``metric`` maps the model's logits ``[batch, pos, vocab]`` to a number (e.g. the mean logit difference).
    Run the model without gradients, and leave no hook on it.

    Raises:
        ValueError: if ``clean`` and ``corrupted`` are not token tensors of the same shape, ``kind`` is not
            ``"resid"`` or ``"head"``, or the clean and corrupted runs have the same metric (nothing to restore).
    """
    raise NotImplementedError("exercise 11.activation_patching: not started yet")
# <<< exercise: activation_patching


# >>> exercise: causal_trace
def causal_trace(model, tokens: Int[torch.Tensor, "pos"], subject: Sequence[int], answer: int, noise_std: float,
                 n_samples: int = 10, seed: int = 0) -> tuple[Float[torch.Tensor, "layer pos"], float, float]:
    """Causal tracing (Meng et al., 2022): where does the model hold what it needs to recall a fact?

    Corrupt: add Gaussian noise to the token embeddings (``hook_embed``, ``[batch, pos, d_model]``) at the
    ``subject`` positions. Draw the noise **once**, ``noise = torch.randn(n_samples, len(subject), d_model,
    generator=torch.Generator().manual_seed(seed)) * noise_std``, and use the same draws for every run
    (run the prompt as a batch of ``n_samples`` copies, copy ``i`` with noise ``noise[i]``).
    Restore: for each ``(layer, pos)``, put the clean run's ``blocks.{layer}.hook_resid_pre`` back at that
    position (in every copy), keeping the noise.

    Returns ``(probs, clean, corrupted)``: ``probs[layer, pos]`` is the probability of ``answer`` at the last
    position with that state restored, averaged over the copies (average the probabilities, not the
    logits); ``clean`` the probability without noise, ``corrupted`` with the noise and nothing restored
    (Python floats).

    Raises:
        ValueError: if ``tokens`` is not one prompt (1-D), or ``subject`` is empty or has a position outside it.
    """
    raise NotImplementedError("exercise 11.causal_trace: not started yet")
# <<< exercise: causal_trace


# >>> exercise: ioi_answer_heads
def ioi_answer_heads(model, data) -> list[tuple[int, int]]:
    """An investigation: which heads write the IOI answer into the last position?

    ``data`` holds IOI prompts ready for patching (:func:`mi_course.language.ioi.ioi_patching_set`):
    ``data.clean`` and ``data.corrupted`` (``[batch, pos]``), ``data.io`` and ``data.s`` (``[batch]``). Return at most three heads, as ``(layer, head)`` pairs of Python ints, whose outputs patched **together
    at the last position only** (clean into the "ABC"-corrupted run) restore at least 80% of the mean logit
    difference. The test patches your heads with the course's canonical code on prompts and templates you
    did not see.

    Any sound method works: your ``activation_patching`` per head, then a check that the heads you pick work
    at the last position (a head can matter at another position only). Keep it under 30 seconds on the lite
    ``lm`` with one CPU thread (the reference answer takes about a second there).
    """
    raise NotImplementedError("exercise 11.ioi_answer_heads: not started yet")
# <<< exercise: ioi_answer_heads
