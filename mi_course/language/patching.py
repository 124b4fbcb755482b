"""Activation patching and causal tracing: run the model on one input, put back activations from another run,
and measure how much of a behaviour comes back.

**Activation patching** (Wang et al., 2022; Meng et al., 2022) runs the *corrupted* prompts (the behaviour
gone: in IOI, the subject's second mention replaced by a third name) and puts back one activation from the
*clean* run. The score is the fraction of the behaviour restored, ``(patched - corrupted) / (clean -
corrupted)``: 0 means that activation carries nothing the behaviour needs, 1 means it carries all of it.

    clean, corrupted = ...                                      # [batch, pos] each, same shape
    grid = activation_patching(model, clean, corrupted, metric, kind="resid")   # [n_layers, pos]

**Causal tracing** (Meng et al., 2022, ROME) corrupts with noise instead: Gaussian noise on the subject's
token embeddings, then one hidden state (layer, position) at a time restored from the clean run; where the
answer's probability comes back, that state holds what the model needs to recall the fact.

The one canonical version of both: lesson 11 has the learner write them, then uses these (and the tests of the
lite models' claims check with them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm

# what one cell of a patching grid replaces: the residual stream entering a block, a block's attention or MLP
# output, or one head's output z (its contribution is z @ W_O, so patching z patches exactly that head)
HOOKS = {"resid": "blocks.{layer}.hook_resid_pre", "attn": "blocks.{layer}.hook_attn_out",
         "mlp": "blocks.{layer}.hook_mlp_out", "head": "blocks.{layer}.attn.hook_z"}


def logit_diff(logits: Float[torch.Tensor, "batch pos vocab"], correct: Int[torch.Tensor, "batch"],
               wrong: Int[torch.Tensor, "batch"]) -> Float[torch.Tensor, "batch"]:
    """``logit[correct] - logit[wrong]`` at the last position, one per prompt (IOI: the indirect object minus
    the subject). Unlike a probability it is not squashed near 0 and 1, and it is linear in the last layer."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be [batch, pos, vocab], got shape {tuple(logits.shape)}")
    correct, wrong = torch.as_tensor(correct, device=logits.device), torch.as_tensor(wrong, device=logits.device)
    if correct.shape != (logits.shape[0],) or wrong.shape != (logits.shape[0],):
        raise ValueError(f"correct and wrong must be [batch] = [{logits.shape[0]}] token ids, got "
                         f"{tuple(correct.shape)} and {tuple(wrong.shape)}")
    last = logits[:, -1]
    return last.gather(1, correct[:, None])[:, 0] - last.gather(1, wrong[:, None])[:, 0]


def mean_logit_diff(correct: Int[torch.Tensor, "batch"], wrong: Int[torch.Tensor, "batch"]) -> Callable:
    """A patching metric: logits -> the mean :func:`logit_diff` over the batch (a float)."""
    return lambda logits: logit_diff(logits, correct, wrong).mean().item()


def role_labels(model, tokens: Int[torch.Tensor, "pos"], roles: dict) -> list[str]:
    """One label per position of ``tokens`` for patching plots: the token, and its role where it has one
    (``roles``: role -> position), e.g. ``"Daniel (S2)"``."""
    names = {pos: role for role, pos in roles.items()}
    words = [w.strip() or w for w in model.to_str_tokens(tokens)]
    return [f"{w} ({names[i]})" if i in names else w for i, w in enumerate(words)]


def _check_pair(clean, corrupted) -> None:
    for name, t in (("clean", clean), ("corrupted", corrupted)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name} must be token ids [batch, pos], got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    if clean.shape != corrupted.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} must have the same "
                         "shape: patching puts an activation back at the same position")


def _check_kind(kind: str, allowed=tuple(HOOKS)) -> str:
    if kind not in allowed:
        raise ValueError(f"kind must be one of {allowed}, got {kind!r}")
    return kind


def restored_fraction(value: float, clean: float, corrupted: float) -> float:
    """``(value - corrupted) / (clean - corrupted)``: 0 at the corrupted run's metric, 1 at the clean run's."""
    if clean == corrupted:
        raise ValueError(f"the clean and corrupted runs score the same ({clean:.4g}): the corruption removes "
                         "nothing to restore; choose a corruption that changes the metric")
    return (value - corrupted) / (clean - corrupted)


@torch.no_grad()
def activation_patching(model, clean: Int[torch.Tensor, "batch pos"], corrupted: Int[torch.Tensor, "batch pos"],
                        metric: Callable[[torch.Tensor], float], kind: str = "resid",
                        position: int | None = None, positions: Sequence[int] | None = None,
                        progress: bool = True) -> Float[torch.Tensor, "layer cols"]:
    """Patch one clean activation at a time into the corrupted run; the fraction of ``metric`` restored.

    ``kind="resid"``, ``"attn"`` or ``"mlp"``: ``[n_layers, pos]``, one cell per (layer, position) of the
    residual stream entering the block, or of the block's attention or MLP output (``positions``: only those
    columns, in that order, ``[n_layers, len(positions)]``: a big model patched on a CPU needs fewer passes).
    ``kind="head"``: ``[n_layers, n_heads]``, one head's output at every position (or at ``position`` only).
    ``metric`` maps logits ``[batch, pos, vocab]`` to a number.
    """
    _check_pair(clean, corrupted)
    _check_kind(kind)
    if position is not None and kind != "head":
        raise ValueError("position picks where a head is patched; the other kinds patch every position in turn")
    if positions is not None and kind == "head":
        raise ValueError("positions picks the columns of a resid, attn or mlp grid; for heads use position")
    n_layers = model.cfg.n_layers
    names = [HOOKS[kind].format(layer=layer) for layer in range(n_layers)]
    clean_logits, cache = model.run_with_cache(clean, names_filter=lambda name: name in names)
    base_clean, base_corrupted = float(metric(clean_logits)), float(metric(model(corrupted)))
    if kind == "head":
        columns = list(range(model.cfg.n_heads))
    else:
        columns = list(range(clean.shape[1])) if positions is None else [int(p) for p in positions]
        if any(not -clean.shape[1] <= p < clean.shape[1] for p in columns):
            raise ValueError(f"positions must be in 0..{clean.shape[1] - 1}, got {columns}")
    where = slice(None) if position is None else position
    grid = torch.zeros(n_layers, len(columns))
    bar = tqdm(total=n_layers * len(columns), desc=f"patching {kind}", disable=not progress, leave=False)
    for layer, name in enumerate(names):
        for i, col in enumerate(columns):
            def put_back(act, hook, col=col):
                if kind == "head":
                    act[:, where, col] = cache[hook.name][:, where, col]
                else:
                    act[:, col] = cache[hook.name][:, col]
                return act

            value = float(metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, put_back)])))
            grid[layer, i] = restored_fraction(value, base_clean, base_corrupted)
            bar.update()
    bar.close()
    return grid


@torch.no_grad()
def patch_heads(model, clean: Int[torch.Tensor, "batch pos"], corrupted: Int[torch.Tensor, "batch pos"],
                metric: Callable[[torch.Tensor], float], heads: Sequence[tuple[int, int]],
                position: int | None = -1) -> float:
    """The fraction of ``metric`` restored when the outputs of all ``heads`` ((layer, head) pairs) are patched
    together, at ``position`` (default: the last) or at every position (``None``)."""
    _check_pair(clean, corrupted)
    from mi_course.language.ablation import check_head

    heads = [tuple(h) for h in heads]
    for layer, head in heads:
        check_head(model, layer, head)
    names = sorted({HOOKS["head"].format(layer=layer) for layer, _ in heads})
    clean_logits, cache = model.run_with_cache(clean, names_filter=lambda name: name in names)
    where = slice(None) if position is None else position

    def put_back(z, hook):
        for layer, head in heads:
            if hook.name == HOOKS["head"].format(layer=layer):
                z[:, where, head] = cache[hook.name][:, where, head]
        return z

    value = float(metric(model.run_with_hooks(corrupted, fwd_hooks=[(n, put_back) for n in names])))
    return restored_fraction(value, float(metric(clean_logits)), float(metric(model(corrupted))))


def subject_positions(model, prompt: str, subject: str) -> list[int]:
    """The positions of ``subject``'s tokens in ``model.to_tokens(prompt)`` (BOS at 0), found by tokenizing the
    prompt up to the subject's end: works for word-level and GPT-2 tokenizers alike."""
    start = prompt.find(subject)
    if not subject or start < 0:
        raise ValueError(f"subject {subject!r} does not occur in the prompt {prompt!r}")
    before = model.to_tokens(prompt[:start].rstrip(), prepend_bos=True).shape[1] if prompt[:start].strip() else 1
    through = model.to_tokens(prompt[:start + len(subject)], prepend_bos=True).shape[1]
    return list(range(before, through))


class CausalTrace(NamedTuple):
    probs: Float[torch.Tensor, "layer pos"]  # the answer's probability with one state restored
    clean: float                             # ... in the clean run
    corrupted: float                         # ... with the subject noised and nothing restored


def default_noise_std(model) -> float:
    """Meng et al.'s noise level: three times the standard deviation of the token embeddings."""
    return 3 * model.W_E.std().item()


@torch.no_grad()
def causal_trace(model, tokens: Int[torch.Tensor, "pos"], subject: Sequence[int], answer: int,
                 noise_std: float | None = None, n_samples: int = 10, seed: int = 0, kind: str = "resid",
                 positions: Sequence[int] | None = None, progress: bool = False) -> CausalTrace:
    """Causal tracing of one prompt: noise on the token embeddings (``hook_embed``) at the ``subject``
    positions, the same ``n_samples`` noise draws for every cell (``torch.randn(n_samples, len(subject),
    d_model)`` from a generator seeded ``seed``, times ``noise_std``); then, one (layer, position) at a time,
    the clean run's state put back (``kind``: the residual entering the block, or its attention or MLP
    output). Each cell is the answer's probability at the last position, averaged over the noise draws.
    ``positions``: restore only those, ``probs`` is then ``[n_layers, len(positions)]``."""
    _check_kind(kind, ("resid", "attn", "mlp"))
    tokens = torch.as_tensor(tokens)
    if tokens.dim() == 2 and tokens.shape[0] == 1:
        tokens = tokens[0]
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be one prompt [pos], got shape {tuple(tokens.shape)}")
    subject = list(subject)
    if not subject or any(not 0 <= s < len(tokens) for s in subject):
        raise ValueError(f"subject must be positions in 0..{len(tokens) - 1}, got {subject}")
    noise_std = default_noise_std(model) if noise_std is None else noise_std
    device = model.cfg.device
    tokens = tokens.to(device)
    g = torch.Generator().manual_seed(seed)
    noise = (torch.randn(n_samples, len(subject), model.cfg.d_model, generator=g) * noise_std).to(device)

    def add_noise(embed, hook):
        embed[:, subject] = embed[:, subject] + noise
        return embed

    names = [HOOKS[kind].format(layer=layer) for layer in range(model.cfg.n_layers)]
    clean_logits, cache = model.run_with_cache(tokens[None], names_filter=lambda name: name in names)
    clean = clean_logits[0, -1].softmax(-1)[answer].item()
    batch = tokens[None].repeat(n_samples, 1)

    def answer_prob(hooks) -> float:
        return model.run_with_hooks(batch, fwd_hooks=hooks)[:, -1].softmax(-1)[:, answer].mean().item()

    corrupted = answer_prob([("hook_embed", add_noise)])
    columns = list(range(len(tokens))) if positions is None else [int(p) for p in positions]
    if any(not -len(tokens) <= p < len(tokens) for p in columns):
        raise ValueError(f"positions must be in 0..{len(tokens) - 1}, got {columns}")
    probs = torch.zeros(model.cfg.n_layers, len(columns))
    for layer, name in enumerate(tqdm(names, desc="causal trace", disable=not progress, leave=False)):
        for i, pos in enumerate(columns):
            def restore(act, hook, pos=pos):
                act[:, pos] = cache[hook.name][0, pos]
                return act

            probs[layer, i] = answer_prob([("hook_embed", add_noise), (name, restore)])
    return CausalTrace(probs, clean, corrupted)
