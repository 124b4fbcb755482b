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
    # BEGIN SOLUTION
    if isinstance(p, bool) or not isinstance(p, int) or p < 2:
        raise ValueError(f"p must be an int >= 2 (the modulus), got {p!r}")
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        if 2 * k != p:  # sin(pi x) is 0 at every integer x
            rows.append(torch.sin(2 * math.pi * k * x / p))
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=-1, keepdim=True)).float()
    # STUB: raise NotImplementedError("exercise 11.fourier_basis: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if not isinstance(W_E, torch.Tensor) or W_E.dim() != 2 or W_E.shape[0] < p:
        raise ValueError(f"W_E must be [d_vocab, d_model] with at least p = {p} rows, got "
                         f"{getattr(W_E, 'shape', type(W_E).__name__)}")
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}")
    coeffs = fourier_basis(p).double() @ W_E[:p].detach().double()  # [p, d_model]
    per_row = coeffs.pow(2).sum(-1)
    frequency = torch.tensor([(i + 1) // 2 for i in range(p)])     # rows: 0, 1, 1, 2, 2, ...
    share = torch.zeros(p // 2 + 1, dtype=torch.float64).index_add_(0, frequency, per_row) / per_row.sum()
    order = torch.sort(share, descending=True, stable=True).indices
    chosen, total = [], 0.0
    for k in order.tolist():
        chosen.append(k)
        total += share[k].item()
        if total >= mass - 1e-6:  # the slack absorbs rounding when mass = 1
            break
    return chosen
    # STUB: raise NotImplementedError("exercise 11.key_frequencies: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if logits.dim() != 3:
        raise ValueError(f"logits must be [batch, pos, vocab], got shape {tuple(logits.shape)}")
    correct, wrong = torch.as_tensor(correct), torch.as_tensor(wrong)
    if correct.shape != (logits.shape[0],) or wrong.shape != (logits.shape[0],):
        raise ValueError(f"correct and wrong must be [batch] = [{logits.shape[0]}] token ids, got "
                         f"{tuple(correct.shape)} and {tuple(wrong.shape)}")
    last = logits[:, -1]                                   # [batch, vocab]
    rows = torch.arange(logits.shape[0])
    return last[rows, correct] - last[rows, wrong]
    # STUB: raise NotImplementedError("exercise 11.logit_diff: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if clean.dim() != 2 or clean.shape != corrupted.shape:
        raise ValueError(f"clean and corrupted must be token ids of the same shape [batch, pos], got "
                         f"{tuple(clean.shape)} and {tuple(corrupted.shape)}")
    if kind not in ("resid", "head"):
        raise ValueError(f"kind must be 'resid' or 'head', got {kind!r}")
    n_layers = model.cfg.n_layers
    hook = "blocks.{}.hook_resid_pre" if kind == "resid" else "blocks.{}.attn.hook_z"
    names = [hook.format(layer) for layer in range(n_layers)]
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean, names_filter=lambda name: name in names)
        base_clean, base_corrupted = float(metric(clean_logits)), float(metric(model(corrupted)))
        if base_clean == base_corrupted:
            raise ValueError("the clean and corrupted runs have the same metric: there is nothing to restore")
        n_cols = model.cfg.n_heads if kind == "head" else clean.shape[1]
        grid = torch.zeros(n_layers, n_cols)
        for layer, name in enumerate(names):
            for col in range(n_cols):
                def put_back(act, hook, col=col):
                    if kind == "head":
                        act[:, :, col] = cache[hook.name][:, :, col]
                    else:
                        act[:, col] = cache[hook.name][:, col]
                    return act

                value = float(metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, put_back)])))
                grid[layer, col] = (value - base_corrupted) / (base_clean - base_corrupted)
    return grid
    # STUB: raise NotImplementedError("exercise 11.activation_patching: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be one prompt [pos], got shape {tuple(tokens.shape)}")
    subject = list(subject)
    if not subject or any(not 0 <= s < len(tokens) for s in subject):
        raise ValueError(f"subject must be positions in 0..{len(tokens) - 1}, got {subject}")
    noise = torch.randn(n_samples, len(subject), model.cfg.d_model,
                        generator=torch.Generator().manual_seed(seed)) * noise_std

    def add_noise(embed, hook):
        embed[:, subject] = embed[:, subject] + noise.to(embed.device)
        return embed

    batch = tokens[None].repeat(n_samples, 1)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(tokens[None], names_filter=lambda name: name in names)
        clean = clean_logits[0, -1].softmax(-1)[answer].item()
        noisy = model.run_with_hooks(batch, fwd_hooks=[("hook_embed", add_noise)])
        corrupted = noisy[:, -1].softmax(-1)[:, answer].mean().item()
        probs = torch.zeros(model.cfg.n_layers, len(tokens))
        for layer, name in enumerate(names):
            for pos in range(len(tokens)):
                def restore(act, hook, pos=pos):
                    act[:, pos] = cache[hook.name][0, pos]
                    return act

                logits = model.run_with_hooks(batch, fwd_hooks=[("hook_embed", add_noise), (name, restore)])
                probs[layer, pos] = logits[:, -1].softmax(-1)[:, answer].mean()
    return probs, clean, corrupted
    # STUB: raise NotImplementedError("exercise 11.causal_trace: not started yet")
    # END SOLUTION
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
    # BEGIN SOLUTION
    def metric(logits):
        return logit_diff(logits, data.io, data.s).mean().item()

    # rank heads by patching at the last position only, then take the fewest that restore 80% together
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(data.clean, names_filter=lambda name: name in names)
        base_clean, base_corrupted = metric(model(data.clean)), metric(model(data.corrupted))

        def restored(heads) -> float:
            def put_back(z, hook):
                for layer, head in heads:
                    if hook.name == names[layer]:
                        z[:, -1, head] = cache[hook.name][:, -1, head]
                return z

            hooks = [(names[layer], put_back) for layer in sorted({layer for layer, _ in heads})]
            return (metric(model.run_with_hooks(data.corrupted, fwd_hooks=hooks)) - base_corrupted) / \
                (base_clean - base_corrupted)

        every = [(layer, head) for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
        ranked = sorted(every, key=lambda lh: -restored([lh]))
        chosen = []
        for head in ranked[:3]:
            chosen.append(head)
            if restored(chosen) >= 0.9:  # a margin over 0.8 for prompts not seen here
                break
    return [(int(layer), int(head)) for layer, head in chosen]
    # STUB: raise NotImplementedError("exercise 11.ioi_answer_heads: not started yet")
    # END SOLUTION
# <<< exercise: ioi_answer_heads
