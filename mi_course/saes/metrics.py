"""How good an SAE is: reconstruction on stored activations, and what the model loses when it runs on them.

    reconstruction_metrics(sae, store, n_tokens=100_000)   # l0, explained_variance, mse, dead/dense fractions
    ce_loss_recovered(sae, model, tokens)                   # CE clean / spliced / ablated, recovered, KL
    sae_metrics(sae, model, tokens)                         # both, on the same tokens

Definitions (over N tokens):
    l0                   mean number of features with activation > 0 per token
    mse                  mean over tokens and dimensions of (x - x_hat)^2
    explained_variance   1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (all dimensions pooled)
    dead_fraction        features that never fire on the N tokens; dense_fraction: features that fire on
                         more than ``dense_threshold`` of them
    ce_loss_recovered    (CE_ablated - CE_sae) / (CE_ablated - CE_clean), the SAE's reconstruction spliced in
                         at its hook, the ablation replacing the activation by zeros ("zero") or by its mean
                         over the tokens ("mean"); 1 = as good as the clean model, 0 = no better than ablating
    kl                   mean over positions of KL(clean || spliced) of the next-token distributions

Any object with ``encode`` and ``decode`` works as the SAE, the course's or SAELens's (``SAE.from_pretrained``
or ``SAE.load_from_disk``); the hook comes from ``hook_name``, else ``sae.hook_name``, else SAELens's
``sae.cfg.metadata.hook_name``. Position 0 (BOS) is left out of every average and never replaced, matching
the activations the SAEs are trained on (``drop_bos``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from jaxtyping import Int
from tqdm.auto import tqdm

from mi_course.saes.activations import (
    DEFAULT_MAX_MEMORY_BYTES,
    ActivationStore,
    as_store,
    hook_activations,
    logits_with_replacement,
)

ABLATIONS = ("zero", "mean")


@contextmanager
def evaluating(module):
    """Eval mode and no gradients inside, the module's own mode restored after (BatchTopK uses its threshold)."""
    was_training = getattr(module, "training", False)
    if hasattr(module, "eval"):
        module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        if hasattr(module, "train"):
            module.train(was_training)


def sae_hook_name(sae, hook_name: str | None = None) -> str:
    """``hook_name``, or the one the SAE records (course: ``sae.hook_name``; SAELens: ``cfg.metadata.hook_name``)."""
    if hook_name is None:
        hook_name = getattr(sae, "hook_name", None)
    if hook_name is None:
        metadata = getattr(getattr(sae, "cfg", None), "metadata", None)
        hook_name = getattr(metadata, "hook_name", None) if metadata is not None else None
    if not isinstance(hook_name, str):
        raise ValueError("this SAE does not record the hook it reads: pass hook_name= (e.g. 'blocks.2.hook_resid_pre')")
    return hook_name


def sae_width(sae) -> int:
    """d_in of a course or SAELens SAE."""
    return int(sae.W_dec.shape[-1])


def _reconstruct(sae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not (hasattr(sae, "encode") and hasattr(sae, "decode")):
        raise TypeError(f"an SAE needs encode and decode methods; got {type(sae).__name__}")
    acts = sae.encode(x)
    return acts, sae.decode(acts).to(x.dtype)


def reconstruction_metrics(sae, activations, n_tokens: int | None = None, batch_size: int = 4096,
                           dense_threshold: float = 0.1) -> dict:
    """L0, MSE, explained variance, and dead / dense fractions of ``sae`` on the first ``n_tokens`` (default
    all) of ``activations`` (a store or a tensor [n, d_in]); ``feature_density`` [d_sae] is each feature's
    firing frequency."""
    store = as_store(activations)
    n = len(store) if n_tokens is None else min(int(n_tokens), len(store))
    if n < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens!r}")
    sse = sum_x = sum_sq = l0 = None
    fired = None
    with evaluating(sae):
        for start in range(0, n, batch_size):
            x = store.rows(start, min(start + batch_size, n))
            device = getattr(sae, "W_enc", x).device
            x = x.to(device)
            acts, x_hat = _reconstruct(sae, x)
            active = acts > 0
            batch = {"sse": (x - x_hat).double().pow(2).sum(), "sum_x": x.double().sum(0),
                     "sum_sq": x.double().pow(2).sum(), "l0": active.sum().double(), "fired": active.sum(0)}
            if sse is None:
                sse, sum_x, sum_sq, l0, fired = (batch[k] for k in ("sse", "sum_x", "sum_sq", "l0", "fired"))
            else:
                sse, sum_x, sum_sq = sse + batch["sse"], sum_x + batch["sum_x"], sum_sq + batch["sum_sq"]
                l0, fired = l0 + batch["l0"], fired + batch["fired"]
    total_variance = sum_sq - sum_x.pow(2).sum() / n  # sum ||x - mean||^2
    density = (fired.double() / n).float().cpu()
    return {"n_tokens": n, "l0": (l0 / n).item(), "mse": (sse / (n * store.d_in)).item(),
            "explained_variance": (1 - sse / total_variance).item(),
            "dead_fraction": (density == 0).float().mean().item(),
            "dense_fraction": (density > dense_threshold).float().mean().item(), "feature_density": density}


def _next_token_stats(logits: torch.Tensor, tokens: torch.Tensor, first: int,
                      clean_logprobs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed CE of predicting tokens[first+1:] from positions first.., and summed KL(clean || these)."""
    logprobs = logits[:, first:-1].float().log_softmax(-1)
    ce = -logprobs.gather(-1, tokens[:, first + 1:, None]).sum()
    if clean_logprobs is None:
        return ce, None
    kl = (clean_logprobs.exp() * (clean_logprobs - logprobs)).sum()
    return ce, kl


def ce_loss_recovered(sae, model, tokens: Int[torch.Tensor, "rows pos"], hook_name: str | None = None,
                      batch_rows: int = 16, drop_bos: bool = True, progress: bool = True) -> dict:
    """Next-token CE of ``model`` on ``tokens`` clean, with the SAE's reconstruction spliced in at its hook,
    and with the activation zero- and mean-ablated; the fraction of the ablated loss the SAE recovers,
    ``(CE_ablated - CE_sae) / (CE_ablated - CE_clean)``, for both ablations; and the KL from the clean
    model for each. Positions from 1 on (with ``drop_bos``) are replaced and scored."""
    hook_name = sae_hook_name(sae, hook_name)
    first = int(drop_bos)
    if tokens.dim() != 2 or tokens.shape[1] < first + 2:
        raise ValueError(f"tokens must be [rows, pos] with pos >= {first + 2}, got {tuple(tokens.shape)}")
    # the mean ablation's vector: the activation's mean over the same tokens and positions
    total, count = None, 0
    for act in hook_activations(model, tokens, hook_name, batch_rows, drop_bos, progress=False):
        total = act.double().sum(0) if total is None else total + act.double().sum(0)
        count += len(act)
    mean_act = (total / count).float()
    replacements = {"sae": lambda a: _reconstruct(sae, a)[1], "zero": torch.zeros_like,
                    "mean": lambda a: mean_act.to(a).expand_as(a)}
    ce = {name: 0.0 for name in ("clean", *replacements)}
    kl = {name: 0.0 for name in replacements}
    n_predictions = 0
    with evaluating(sae):
        for start in tqdm(range(0, len(tokens), batch_rows), desc="CE loss recovered", disable=not progress,
                          leave=False):
            batch = tokens[start:start + batch_rows].to(model.cfg.device)
            clean = logits_with_replacement(model, batch, hook_name, None)
            ce_clean, _ = _next_token_stats(clean, batch, first, None)
            ce["clean"] += ce_clean.item()
            clean_logprobs = clean[:, first:-1].float().log_softmax(-1)
            for name, replace in replacements.items():
                logits = logits_with_replacement(model, batch, hook_name, replace, first_position=first)
                ce_x, kl_x = _next_token_stats(logits, batch, first, clean_logprobs)
                ce[name] += ce_x.item()
                kl[name] += kl_x.item()
            n_predictions += batch.shape[0] * (batch.shape[1] - first - 1)
    ce = {k: v / n_predictions for k, v in ce.items()}
    kl = {k: v / n_predictions for k, v in kl.items()}
    result = {"ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero_ablated": ce["zero"],
              "ce_mean_ablated": ce["mean"], "kl_sae": kl["sae"], "kl_zero_ablated": kl["zero"],
              "kl_mean_ablated": kl["mean"]}
    for ablation in ABLATIONS:
        gap = ce[ablation] - ce["clean"]
        result[f"ce_loss_recovered_{ablation}"] = (ce[ablation] - ce["sae"]) / gap if gap != 0 else float("nan")
    return result


def sae_metrics(sae, model, tokens: Int[torch.Tensor, "rows pos"], hook_name: str | None = None,
                n_tokens: int | None = None, batch_rows: int = 16, dense_threshold: float = 0.1,
                drop_bos: bool = True, progress: bool = True) -> dict:
    """:func:`reconstruction_metrics` and :func:`ce_loss_recovered` on the same rows of ``tokens`` (the first
    rows that hold ``n_tokens`` scored positions; default all)."""
    hook_name = sae_hook_name(sae, hook_name)
    per_row = tokens.shape[1] - int(drop_bos)
    if n_tokens is not None:
        tokens = tokens[: max(1, -(-int(n_tokens) // per_row))]
    # float32 when it fits in the store's memory budget (exact metrics), float16 past it
    float32_bytes = len(tokens) * per_row * sae_width(sae) * 4
    dtype = torch.float32 if float32_bytes <= DEFAULT_MAX_MEMORY_BYTES else torch.float16
    store = ActivationStore.from_model(model, tokens, hook_name, batch_rows=batch_rows, drop_bos=drop_bos,
                                       dtype=dtype, progress=progress)
    return {**reconstruction_metrics(sae, store, dense_threshold=dense_threshold),
            **ce_loss_recovered(sae, model, tokens, hook_name, batch_rows, drop_bos, progress)}
