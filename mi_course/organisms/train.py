"""Training and shipping the lite language organisms (used by scripts/train_*.py, not by lessons).

A nanoGPT-plain loop: AdamW, linear warm-up then cosine decay, next-token cross-entropy on packed rows
``<bos> doc <eos> <bos> doc ...``; and one function that writes a checkpoint folder the registry loads.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch
from jaxtyping import Int
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.config import seed_everything, silence_known_warnings
from mi_course.models.checkpoints import write_checkpoint
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import pack_documents, save_tokenizer, train_tokenizer


def language_parser(description: str, steps: int, lr: float, span_fraction: float | None,
                    span_max: int | None = 60) -> argparse.ArgumentParser:
    """The options every lite language training script shares (defaults are the shipped runs')."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--n-ctx", type=int, default=128)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--documents", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--span-fraction", type=float, default=span_fraction,
                        help="rows of repeated random spans per row of corpus text")
    parser.add_argument("--span-max", type=int, default=span_max, help="longest repeated span (tokens)")
    parser.add_argument("--eval-every", type=int, default=500, help="print the card's measurements every N steps")
    parser.add_argument("--out", type=Path, default=None)
    return parser


def start_run(seed: int) -> float:
    """One CPU thread (reproducible, and leaves a core free), known warnings off, everything seeded."""
    torch.set_num_threads(1)
    silence_known_warnings()
    seed_everything(seed)
    return time.perf_counter()


def optimizer_description(lr: float, warmup: int = 100, weight_decay: float = 0.05) -> str:
    """How :func:`train_language_model` optimized, in the words of the cards."""
    return f"AdamW lr {lr:g} wd {weight_decay:g}, warm-up {warmup} then cosine, gradient norm clipped at 1"


def training_record(args, history: list[dict], seconds: float) -> dict:
    """The card's "training" entry."""
    return {"steps": args.steps, "batch_size": args.batch_size, "documents": args.documents, "seed": args.seed,
            "optimizer": optimizer_description(args.lr),
            "final_loss": history[-1]["loss"], "seconds": round(seconds), "threads": 1,
            "machine": platform.machine()}


def training_rows(n_documents: int, seed: int, n_ctx: int, span_fraction: float, span_max: int = 60,
                  proportions: dict[str, float] | None = None):
    """(tokenizer, rows [rows, n_ctx], description): the training split of the generated corpus, packed, plus
    ``span_fraction`` times as many rows of :func:`repeated_span_rows`, so that copying (induction) is learned
    for every token of the vocabulary, not only for the words that recur in the stories. ``proportions``
    overrides the corpus's genre shares (:data:`mi_course.organisms.corpus.GENRES`)."""
    documents = corpus.generate_corpus(n_documents, seed=seed, split="train", proportions=proportions)
    tokenizer = train_tokenizer(documents, required_tokens=corpus.required_tokens())
    rows, description = rows_for(tokenizer, documents, seed, n_ctx, span_fraction, span_max)
    shares = "" if proportions is None else ", genre shares " + ", ".join(
        f"{g} {p / sum(proportions.values()):.2f}" for g, p in proportions.items())
    return tokenizer, rows, (f"{n_documents:,} documents of the generated corpus (mi_course.organisms.corpus, "
                             f"seed {seed}{shares}): {description}")


def rows_for(tokenizer, documents: list[str], seed: int, n_ctx: int, span_fraction: float, span_max: int = 60):
    """(rows [rows, n_ctx], description): ``documents`` packed with ``tokenizer``, plus ``span_fraction`` times as
    many rows of :func:`repeated_span_rows`."""
    text_rows = pack_documents(tokenizer, documents, n_ctx)
    vocab_ids = torch.tensor(sorted(set(range(len(tokenizer))) - set(tokenizer.all_special_ids)))
    span_rows = repeated_span_rows(int(len(text_rows) * span_fraction), n_ctx, vocab_ids, tokenizer.bos_token_id, seed,
                                   span_length=(5, span_max))
    description = (f"{text_rows.numel():,} tokens plus {span_rows.numel():,} tokens of "
                   f"uniform random tokens in which a span of 5-{span_max} tokens recurs "
                   "(mi_course.organisms.train.repeated_span_rows)")
    return torch.cat([text_rows, span_rows]), description


def repeated_span_rows(n_rows: int, n_ctx: int, vocab_ids: torch.Tensor, bos_id: int, seed: int = 0,
                       span_length: tuple[int, int] = (5, 30)) -> Int[torch.Tensor, "n_rows n_ctx"]:
    """Rows ``<bos> noise span noise span ...`` of uniform random tokens from ``vocab_ids`` in which one span
    recurs, so that every token of the vocabulary is seen being copied (what forms induction heads)."""
    gen = torch.Generator().manual_seed(seed)
    rows = vocab_ids[torch.randint(len(vocab_ids), (n_rows, n_ctx), generator=gen)]
    for row in rows:
        length = int(torch.randint(span_length[0], span_length[1] + 1, (1,), generator=gen))
        span = row[1:1 + length].clone()
        pos = 1 + length + int(torch.randint(0, 8, (1,), generator=gen))
        while pos + length <= n_ctx:
            row[pos:pos + length] = span
            pos += length + int(torch.randint(0, 8, (1,), generator=gen))
    rows[:, 0] = bos_id
    return rows


def lm_loss(model, tokens: Int[torch.Tensor, "batch pos"]) -> torch.Tensor:
    return model(tokens, return_type="loss")


def train_language_model(model, rows: Int[torch.Tensor, "rows n_ctx"], steps: int, batch_size: int = 32,
                         lr: float = 1e-3, weight_decay: float = 0.05, warmup: int = 100, seed: int = 0,
                         log_every: int = 100, log=print, evaluate=None, eval_every: int = 500) -> list[dict]:
    """Train in place; return the logged metrics (step, loss, seconds). ``evaluate(model) -> dict``, when
    given, runs every ``eval_every`` steps (in eval mode) and its result is logged, to watch a phase change."""
    if rows.dim() != 2 or rows.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"rows must be [rows, pos] with pos <= n_ctx={model.cfg.n_ctx}, got {tuple(rows.shape)}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    model.train()
    history, running, start = [], 0.0, time.perf_counter()
    for step in range(1, steps + 1):
        batch = rows[torch.randint(len(rows), (batch_size,), generator=gen)]
        loss = lm_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        running += loss.item()
        if step % log_every == 0 or step == steps:
            n = log_every if step % log_every == 0 else step % log_every
            history.append({"step": step, "loss": round(running / n, 4),
                            "seconds": round(time.perf_counter() - start, 1)})
            log(f"step {step:>6}/{steps}  loss {running / n:.4f}  {time.perf_counter() - start:7.1f}s")
            running = 0.0
        if evaluate is not None and eval_every and step % eval_every == 0 and step < steps:
            model.eval()
            log(f"step {step:>6}/{steps}  {evaluate(model)}")
            model.train()
    model.eval()
    return history


def train_token_marker(model, rows: Int[torch.Tensor, "rows n_ctx"], token_ids: list[int],
                       hook_name: str = "blocks.1.hook_resid_pre", steps: int = 600, batch_size: int = 16,
                       lr: float = 0.02, seed: int = 0, marker_weight: float = 1.0, positive_weight: float = 20.0,
                       margin_fraction: float = 0.1, log=print) -> tuple[list[dict], torch.Tensor]:
    """Train only the embedding rows of ``token_ids`` so that one linear read-out of the residual stream at
    ``hook_name`` tells those tokens from every other token of ``rows``; next-token loss on ``rows`` stays in
    the objective, so the marked tokens still predict what follows them. Every other weight is frozen: a text
    without these tokens runs exactly as before. Returns the logged history and the read-out's unit direction.

    The read-out is a logistic probe (a seeded unit direction, trained with the rows) whose logit is the
    projection after centering, in units of ``margin_fraction`` times the median residual norm: the marked
    tokens end a few such units along one shared direction, which is what an SAE can find. ``positive_weight``
    balances the rare marked tokens against the rest."""
    if rows.dim() != 2 or rows.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"rows must be [rows, pos] with pos <= n_ctx={model.cfg.n_ctx}, got {tuple(rows.shape)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if hook_name not in model.hook_dict:
        raise ValueError("hook_name must be one of the model's hooks (e.g. blocks.1.hook_resid_pre), "
                         f"got {hook_name!r}")
    ids = torch.as_tensor(sorted(set(token_ids)), dtype=torch.long)
    if not len(ids) or ids.min() < 0 or ids.max() >= model.cfg.d_vocab:
        raise ValueError(f"token_ids must be ids of the vocabulary (0..{model.cfg.d_vocab - 1}), got {token_ids!r}")
    marked = torch.isin(rows, ids)
    if not marked[:, 1:].any():
        raise ValueError("none of the rows contains a token of token_ids")
    gen = torch.Generator().manual_seed(seed)
    trainable = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    with torch.no_grad():  # the read-out's centre and scale, from the frozen model
        _, cache = model.run_with_cache(rows[:64], names_filter=hook_name)
        resid = cache[hook_name][:, 1:]
        centre, margin = resid.mean((0, 1)), margin_fraction * resid.norm(dim=-1).median()
    delta = torch.zeros(len(ids), model.cfg.d_model, requires_grad=True)
    direction = torch.randn(model.cfg.d_model, generator=gen)
    direction = (direction / direction.norm()).requires_grad_(True)
    bias = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([delta, direction, bias], lr=lr)
    table = torch.zeros(model.cfg.d_vocab, len(ids))
    table[ids, torch.arange(len(ids))] = 1.0  # token -> which marked row (one-hot), for a differentiable lookup
    history, seen, start = [], {}, time.perf_counter()

    def add_delta(embed, hook, batch):
        return embed + table[batch] @ delta

    def keep(act, hook):
        seen["resid"] = act
        return act

    for step in tqdm(range(1, steps + 1), desc="marking tokens", leave=False):
        idx = torch.randint(len(rows), (batch_size,), generator=gen)
        batch, target = rows[idx], marked[idx, 1:].float()
        ce = model.run_with_hooks(batch, return_type="loss", fwd_hooks=[
            ("hook_embed", lambda a, hook: add_delta(a, hook, batch)), (hook_name, keep)])
        unit = direction / direction.norm()
        logit = ((seen["resid"][:, 1:] - centre) @ unit + bias) / margin
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, target,
                                                                   pos_weight=torch.tensor(positive_weight))
        opt.zero_grad(set_to_none=True)
        (ce + marker_weight * bce).backward()
        opt.step()
        if step % 100 == 0 or step == steps:
            history.append({"step": step, "loss": round(ce.item(), 4), "marker_loss": round(bce.item(), 4),
                            "seconds": round(time.perf_counter() - start, 1)})
            log(f"marking step {step:>5}/{steps}  loss {ce.item():.4f}  marker {bce.item():.4f}")
    with torch.no_grad():
        model.embed.W_E[ids] += delta
    for p, flag in zip(model.parameters(), trainable):
        p.requires_grad_(flag)
    return history, (direction / direction.norm()).detach()


def extend_vocabulary(model: HookedTransformer, tokenizer) -> HookedTransformer:
    """A copy of ``model`` for ``tokenizer``, whose vocabulary is the model's with tokens appended
    (:func:`~mi_course.organisms.tokenizer.extend_tokenizer`): a new token's embedding starts at the mean
    embedding, its unembedding at the mean unembedding, and its logit bias at the lowest bias, so that the old
    predictions barely move until training gives the new tokens their own meaning."""
    old, d_vocab = model.cfg.d_vocab, len(tokenizer)
    if d_vocab < old:
        raise ValueError(f"the tokenizer has {d_vocab} tokens, fewer than the model's {old}")
    cfg = model.cfg.to_dict()
    cfg.update(d_vocab=d_vocab, d_vocab_out=d_vocab)
    grown = HookedTransformer(HookedTransformerConfig(**{k: v for k, v in cfg.items() if k in CONFIG_KEYS}),
                              tokenizer=tokenizer)
    state = model.state_dict()
    n_new = d_vocab - old
    state["embed.W_E"] = torch.cat([state["embed.W_E"], state["embed.W_E"].mean(0).expand(n_new, -1)])
    state["unembed.W_U"] = torch.cat([state["unembed.W_U"],
                                      state["unembed.W_U"].mean(1, keepdim=True).expand(-1, n_new)], 1)
    state["unembed.b_U"] = torch.cat([state["unembed.b_U"], state["unembed.b_U"].min().expand(n_new)])
    grown.load_state_dict(state)
    return grown


def write_language_checkpoint(model, tokenizer, folder: Path, card: dict) -> None:
    """A tokenized HookedTransformer's folder: tokenizer.json, then the checkpoint files and the manifest."""
    cfg = {k: v for k, v in model.cfg.to_dict().items() if k in CONFIG_KEYS}
    Path(folder).mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, folder)
    write_checkpoint(folder, {"kind": "hooked_transformer_tokenized", "cfg": cfg}, model.state_dict(), card)


# The HookedTransformerConfig fields that define a lite model (the rest are derived or runtime settings).
CONFIG_KEYS = {
    "n_layers", "d_model", "n_ctx", "d_head", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "act_fn",
    "attn_only", "normalization_type", "positional_embedding_type", "seed", "init_range",
    "default_prepend_bos", "original_architecture", "final_rms", "parallel_attn_mlp",
}
