"""One training loop for every SAE variant.

    history = train_sae(sae, store, steps=3000, batch_size=4096, lr=4e-4)

Each step: a shuffled batch, scaled so that the mean squared norm of an activation is ``d_in`` (the scale is
estimated once from a sample and folded into the SAE at the end, so the trained SAE reads raw activations,
and coefficients mean the same on any model), the variant's loss with its sparsity coefficient warmed up
linearly over ``sparsity_warmup_steps``, the AuxK loss on the dead features (:mod:`~mi_course.saes.
dead_features`), an Adam step at a learning rate warmed up linearly over ``lr_warmup_steps`` and decayed
linearly to zero over the last ``lr_decay_fraction`` of the steps, then the variant's projection
(unit-norm decoder rows, thresholds >= 0). Everything random comes from ``seed`` and the SAE's own seed, so
on the CPU the same seeds give the same weights bit for bit.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from mi_course.saes.activations import as_store
from mi_course.saes.dead_features import FiringTracker, auxk_loss

NORM_SAMPLE_TOKENS = 16_384


def lr_factor(step: int, steps: int, warmup_steps: int, decay_fraction: float) -> float:
    """The learning rate's multiplier at ``step`` (0-based): linear warm-up, flat, linear decay to zero."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    decay_steps = int(decay_fraction * steps)
    decay = min(1.0, (steps - step) / decay_steps) if decay_steps > 0 else 1.0
    return warm * decay


def input_scale(sample: torch.Tensor) -> float:
    """The factor that makes the mean squared norm of the rows of ``sample`` equal to their width."""
    mean_square = sample.double().pow(2).sum(-1).mean().item()
    if not math.isfinite(mean_square) or mean_square <= 0:
        raise ValueError(f"the activations' mean squared norm is {mean_square}: they are all zero or not finite")
    return math.sqrt(sample.shape[-1] / mean_square)


def train_sae(sae, activations, steps: int = 2000, batch_size: int = 4096, lr: float = 4e-4,
              lr_warmup_steps: int | None = None, lr_decay_fraction: float = 0.2,
              sparsity_warmup_steps: int | None = None, aux_coefficient: float = 1 / 32, k_aux: int | None = None,
              dead_window: int = 1_000_000, normalize: bool = True, init_b_dec: bool = True, seed: int = 0,
              device=None, progress: bool = True, log_every: int = 100) -> list[dict]:
    """Train ``sae`` in place on ``activations`` (an :class:`~mi_course.saes.activations.ActivationStore` or a
    tensor [n_tokens, d_in]); return the logged history (one dict per ``log_every`` steps: loss terms, L0,
    the batch's explained variance, the dead fraction, the learning rate). The SAE ends in eval mode.

    ``lr_warmup_steps`` and ``sparsity_warmup_steps`` default to 5% of the steps; ``dead_window`` is the
    number of tokens without firing after which a feature counts as dead (AuxK then trains it, with
    ``aux_coefficient``; 0 turns it off)."""
    store = as_store(activations)
    if store.d_in != sae.d_in:
        raise ValueError(f"the activations have width {store.d_in} but the SAE reads d_in={sae.d_in}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    lr_warmup_steps = max(1, steps // 20) if lr_warmup_steps is None else lr_warmup_steps
    sparsity_warmup_steps = max(1, steps // 20) if sparsity_warmup_steps is None else sparsity_warmup_steps
    device = torch.device(device) if device is not None else sae.W_enc.device
    sae.to(device)

    sample = store.sample(NORM_SAMPLE_TOKENS, torch.Generator().manual_seed(seed))
    scale = input_scale(sample) if normalize else 1.0
    if init_b_dec:
        with torch.no_grad():
            sae.b_dec.copy_((sample.mean(0) * scale).to(sae.b_dec))

    batches = store.batches(batch_size, generator=torch.Generator().manual_seed(seed), device=device)
    penalty_generator = torch.Generator().manual_seed(seed + 1)  # OrtSAE's random chunks
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr, **fused)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, lr_warmup_steps, lr_decay_fraction))
    tracker = FiringTracker(sae.d_sae, dead_window, device=device)

    history, totals, start = [], {}, time.perf_counter()
    sae.train()
    bar = tqdm(range(steps), desc=f"training {type(sae).__name__}", disable=not progress)
    for step in bar:
        x = next(batches) * scale
        sparsity_scale = min(1.0, (step + 1) / sparsity_warmup_steps) if sparsity_warmup_steps > 0 else 1.0
        losses = sae.loss(x, sparsity_scale=sparsity_scale, generator=penalty_generator)
        loss, penalties = losses.total, dict(losses.penalties)
        if aux_coefficient > 0:
            penalties["auxk"] = auxk_loss(sae, x, losses.step.x_hat, losses.step.pre, tracker.dead(), k_aux)
            loss = loss + aux_coefficient * penalties["auxk"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        sae.after_step_()
        tracker.update(losses.step.fired, len(x))

        with torch.no_grad():  # sums of tensors, read once per log step (no device sync every step)
            logged = {"loss": loss, "mse": losses.mse, "sparsity": losses.sparsity, "l0": losses.step.l0,
                      "variance": (x - x.mean(0)).pow(2).sum(-1).mean(), **penalties}
            for k, v in logged.items():
                totals[k] = totals.get(k, 0.0) + v.detach()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = (step % log_every) + 1
            means = {k: float(v) / n for k, v in totals.items()}
            record = {"step": step + 1, **{k: round(v, 6) for k, v in means.items() if k != "variance"},
                      "explained_variance": round(1 - means["mse"] / means["variance"], 6),
                      "dead_fraction": round(tracker.dead().float().mean().item(), 6),
                      "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - start, 2)}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4g}", l0=f"{record['l0']:.1f}",
                            ev=f"{record['explained_variance']:.3f}", dead=f"{record['dead_fraction']:.2f}")
            totals = {}
    bar.close()
    sae.eval()
    if normalize:
        sae.fold_input_scale_(scale)
    return history
