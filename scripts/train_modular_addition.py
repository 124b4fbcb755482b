"""Train the lite model organism ``modular-addition``: a 1-layer transformer that groks (a + b) mod p.

    python scripts/train_modular_addition.py             # p = 113, writes mi_course/checkpoints/modular-addition
    python scripts/train_modular_addition.py --p 53 --out /tmp/ma53 --no-manifest   # a quick experiment

The setup follows Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability":
inputs ``[a, b, "="]`` (``"="`` is token p), the answer read at the last position, one layer of attention
(4 heads) and a ReLU MLP, no LayerNorm, biases frozen at zero, full-batch AdamW with weight decay 1.0 on a
fixed random fraction of the p^2 pairs. The run is seeded and deterministic on one CPU thread.

It trains until the model generalizes (>= 99.9% on the held-out pairs) and weight decay has cleaned the
embedding up (the 6 largest Fourier frequencies hold >= 95% of its norm), checked every --eval-every steps,
or --steps. With the defaults (p = 113, half the pairs) that is 2,100 steps, 20-25 minutes on one core.
With 30% of the pairs, as in the paper, it is still memorizing (test accuracy ~7%) after 4,000 steps, too
slow for one core, so the course ships the 50% run; its curve still shows train accuracy leading test.

For speed, training computes the logits at the last position only (the only one the loss reads; in a
one-layer model the other positions' queries, MLP and unembedding do not affect it), with the model's own
parameters; the script checks that this matches ``model(tokens)[:, -1]`` before it trains, so the gradients
are those of the HookedTransformer. Everything measured for the card uses the HookedTransformer itself.

At the end it writes ``config.json``, ``model.safetensors``, ``metrics.json`` (the training curve) and
``card.json`` to ``--out`` and, when ``--out`` is inside the checkpoint folder (mi_course/checkpoints, or
``$MI_COURSE_CHECKPOINTS``), refreshes its manifest.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mi_course.config import seed_everything, silence_known_warnings
from mi_course.language.modular import (
    accuracy_all_pairs,
    all_pairs,
    answers,
    embedding_frequency_norms,
    key_frequencies,
)
from mi_course.models.checkpoints import regenerate_command, write_checkpoint
from mi_course.paths import checkpoint_dir

ROLE = "modular-addition"
CITATION = ("Nanda, Chan, Lieberum, Smith, Steinhardt. Progress measures for grokking via mechanistic "
            "interpretability. ICLR 2023. arXiv:2301.05217")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--p", type=int, default=113, help="the (prime) modulus")
    ap.add_argument("--steps", type=int, default=4000, help="full-batch steps at most")
    ap.add_argument("--seed", type=int, default=0, help="seeds the initialization and the train/test split")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder to write the checkpoint to (default: mi_course/checkpoints/modular-addition)")
    ap.add_argument("--frac-train", type=float, default=0.5, help="fraction of the p^2 pairs trained on")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=10, help="linear learning-rate warm-up steps")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--d-mlp", type=int, default=512)
    ap.add_argument("--eval-every", type=int, default=100, help="print train/test loss and accuracy this often")
    ap.add_argument("--stop-mass", type=float, default=0.95,
                    help="stop early at the first evaluation where test accuracy is >= 99.9%% and the "
                         "--stop-frequencies largest frequencies hold this much of the embedding's norm")
    ap.add_argument("--stop-frequencies", type=int, default=6)
    ap.add_argument("--mass", type=float, default=0.9, help="norm fraction the card's key frequencies hold")
    ap.add_argument("--no-manifest", action="store_true", help="do not rewrite mi_course/checkpoints/MANIFEST.json")
    return ap.parse_args(argv)


def model_config(args) -> dict:
    """HookedTransformerConfig kwargs: shipped as config.json's ``cfg``."""
    if args.d_model % args.n_heads:
        raise ValueError(f"--d-model {args.d_model} is not divisible by --n-heads {args.n_heads}")
    return {
        "n_layers": 1, "d_model": args.d_model, "n_heads": args.n_heads, "d_head": args.d_model // args.n_heads,
        "d_mlp": args.d_mlp, "act_fn": "relu", "normalization_type": None, "attn_only": False,
        "d_vocab": args.p + 1, "d_vocab_out": args.p, "n_ctx": 3, "positional_embedding_type": "standard",
        "seed": args.seed, "model_name": f"modular-addition-p{args.p}",
    }


def last_position_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """``model(tokens)[:, -1]`` for a 1-layer, LayerNorm-free HookedTransformer, computing only what it needs."""
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    resid = model.embed.W_E[tokens] + model.pos_embed.W_pos[: tokens.shape[1]]        # [n, pos, d_model]
    last = resid[:, -1]                                                                 # [n, d_model]
    q = torch.einsum("nd,hde->nhe", last, attn.W_Q) + attn.b_Q                          # [n, head, d_head]
    k = torch.einsum("npd,hde->nphe", resid, attn.W_K) + attn.b_K                       # [n, pos, head, d_head]
    v = torch.einsum("npd,hde->nphe", resid, attn.W_V) + attn.b_V
    scores = torch.einsum("nhe,nphe->nhp", q, k) / attn.attn_scale                     # last query sees every key
    z = torch.einsum("nhp,nphe->nhe", scores.softmax(-1), v)
    last = last + torch.einsum("nhe,hed->nd", z, attn.W_O) + attn.b_O
    last = last + F.relu(last @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
    return last @ model.unembed.W_U + model.unembed.b_U


def split(p: int, frac: float, seed: int):
    """A fixed random train/test split of all p^2 pairs (its own generator, so it depends only on the seed)."""
    if not 0 < frac < 1:
        raise ValueError(f"--frac-train must be in (0, 1), got {frac}")
    tokens = all_pairs(p)
    perm = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed))
    n_train = int(round(frac * len(tokens)))
    return tokens[perm[:n_train]], tokens[perm[n_train:]]


@torch.no_grad()
def evaluate(model, tokens, p):
    logits = last_position_logits(model, tokens)
    labels = answers(tokens, p)
    return F.cross_entropy(logits.double(), labels).item(), (logits.argmax(-1) == labels).float().mean().item()


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    silence_known_warnings()
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    seed_everything(args.seed)
    p = args.p
    cfg = model_config(args)
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"))
    for name, param in model.named_parameters():       # as in Nanda et al.: no biases
        if name.split(".")[-1].startswith("b_"):
            param.requires_grad_(False)
            param.zero_()
    params = [q for q in model.parameters() if q.requires_grad]

    train, test = split(p, args.frac_train, args.seed)
    train_labels = answers(train, p)
    with torch.no_grad():
        check = train[:64]
        assert torch.allclose(last_position_logits(model, check), model(check)[:, -1], atol=1e-5), \
            "the fast last-position forward does not match the HookedTransformer"

    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / args.warmup, 1.0))
    print(f"p={p}: {len(train)} train / {len(test)} test pairs, {sum(q.numel() for q in params):,} trained "
          f"parameters, up to {args.steps} steps", flush=True)

    history, start, step = [], time.time(), 0
    for step in range(1, args.steps + 1):
        loss = F.cross_entropy(last_position_logits(model, train).double(), train_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            train_loss, train_acc = evaluate(model, train, p)
            test_loss, test_acc = evaluate(model, test, p)
            fractions = embedding_frequency_norms(model.embed.W_E, p).sort(descending=True).values
            top = fractions[:args.stop_frequencies].sum().item()
            history.append({"step": step, "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
                            "test_acc": test_acc, f"top{args.stop_frequencies}_frequency_norm": top,
                            "seconds": round(time.time() - start, 1)})
            print(f"step {step:6d}  train loss {train_loss:.2e} acc {train_acc:.4f}  "
                  f"test loss {test_loss:.2e} acc {test_acc:.4f}  top-{args.stop_frequencies} freq norm {top:.3f}  "
                  f"{time.time() - start:6.0f}s", flush=True)
            if args.stop_mass is not None and test_acc >= 0.999 and top >= args.stop_mass:
                print(f"generalized and {args.stop_frequencies} frequencies hold {top:.3f} >= {args.stop_mass} "
                      f"of the embedding norm: stopping at step {step}", flush=True)
                break
    seconds = time.time() - start

    model.eval()
    W_E = model.embed.W_E.detach()
    fractions = embedding_frequency_norms(W_E, p)
    keys = key_frequencies(W_E, p, mass=args.mass)
    accuracy = accuracy_all_pairs(model, p)
    last = history[-1]
    print(f"accuracy on all {p * p} pairs: {accuracy:.5f}; key frequencies {keys} hold "
          f"{fractions[keys].sum().item():.3f} of the embedding norm", flush=True)

    out = Path(args.out) if args.out is not None else checkpoint_dir() / ROLE
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(("mask", "IGNORE"))}

    card = {
        "role": ROLE,
        "task": f"(a + b) mod {p}: input tokens [a, b, '='] with '=' = token {p}, answer read at the last position",
        "architecture": {
            "kind": "TransformerLens HookedTransformer", "n_layers": 1, "d_model": cfg["d_model"],
            "n_heads": cfg["n_heads"], "d_head": cfg["d_head"], "d_mlp": cfg["d_mlp"], "act_fn": "relu",
            "layernorm": "none", "biases": "frozen at zero", "d_vocab": cfg["d_vocab"],
            "d_vocab_out": cfg["d_vocab_out"], "n_ctx": 3,
            "n_params_trained": sum(q.numel() for q in params),
        },
        "p": p,
        "p_note": "p = 113 as in Nanda et al." if p == 113 else
                  f"p = {p}, smaller than Nanda et al.'s 113 so that it trains on one CPU core",
        "training_data": {"train_pairs": len(train), "test_pairs": len(test), "fraction": len(train) / p ** 2,
                          "split": f"torch.randperm(p*p) with a Generator seeded {args.seed}; the first "
                                   f"{len(train)} pairs train"},
        "optimizer": {"name": "AdamW", "lr": args.lr, "weight_decay": args.weight_decay, "betas": [0.9, 0.98],
                      "warmup_steps": args.warmup, "batch": "full batch", "loss": "cross-entropy at the last position"},
        "steps": step,
        "seed": args.seed,
        "training_seconds": round(seconds, 1),
        "trained_on": f"1 CPU thread, torch {torch.__version__}, {platform.machine()}",
        "final_train": {"loss": last["train_loss"], "accuracy": last["train_acc"]},
        "final_test": {"loss": last["test_loss"], "accuracy": last["test_acc"]},
        "measured": {
            "accuracy_all_pairs": accuracy,
            "key_frequencies": keys,
            "key_frequencies_mass": args.mass,
            "key_frequencies_norm_fraction": fractions[keys].sum().item(),
            "constant_term_norm_fraction": fractions[0].item(),
            "how": "mi_course.language.modular: accuracy_all_pairs(model, p); key_frequencies(W_E, p, mass) and "
                   "embedding_frequency_norms(W_E, p) (fraction of the squared norm of W_E[:p] per frequency of "
                   "the real Fourier basis over 0..p-1)",
        },
        "mechanism": "the embedding writes a, b as cos/sin of a few key frequencies; attention and the MLP "
                     "compute cos/sin of w(a+b), and the unembedding reads (a+b) mod p off them "
                     "(Nanda et al., 2023, section 4)",
        "regenerate": regenerate_command("scripts/train_modular_addition.py", argv),
        "citation": CITATION,
    }
    write_checkpoint(out, {"kind": "hooked_transformer", "cfg": cfg}, state, card,
                     extras={"metrics.json": history}, manifest=not args.no_manifest)
    return card


if __name__ == "__main__":
    main()
