"""Train the lite attention-only transformers `attn-only-1l` and `attn-only-2l` on the generated corpus.

    python scripts/train_attn_only.py --layers 2        # -> mi_course/checkpoints/attn-only-2l/
    python scripts/train_attn_only.py --layers 1        # -> mi_course/checkpoints/attn-only-1l/

Seeded and reproducible on CPU (one thread). The corpus has repeated names and spans, so the two-layer
model forms a previous-token head (layer 0) and an induction head (layer 1); the one-layer model cannot.
The card records the measured head scores (mi_course.language.induction) and how it was trained.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.config import seed_everything, silence_known_warnings
from mi_course.language.induction import induction_scores, prev_token_scores, repeat_loss_ratio
from mi_course.language.train import train_language_model, training_rows, write_language_checkpoint
from mi_course.paths import checkpoint_dir


def measure(model) -> dict:
    prev, ind = prev_token_scores(model), induction_scores(model)
    flat = int(ind.argmax())
    return {
        "prev_token_scores": [[round(x, 3) for x in row] for row in prev.tolist()],
        "induction_scores": [[round(x, 3) for x in row] for row in ind.tolist()],
        "repeat_loss_ratio": round(repeat_loss_ratio(model), 3),
        "max_induction_score": round(ind.max().item(), 3),
        "induction_head": [flat // model.cfg.n_heads, flat % model.cfg.n_heads],  # [layer, head]
        "prev_token_head": [0, int(prev[0].argmax())],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, choices=(1, 2), required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    # 1e-3 left the 2-layer model on the plateau before the induction phase change for 2500 steps
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--n-ctx", type=int, default=128)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--documents", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    silence_known_warnings()
    seed_everything(args.seed)
    role = f"attn-only-{args.layers}l"
    out = args.out or checkpoint_dir() / role
    start = time.perf_counter()

    tokenizer, rows, data = training_rows(args.documents, args.seed, args.n_ctx, span_fraction=1.0)
    print(f"{role}: {data}; vocabulary {len(tokenizer)}")

    cfg = HookedTransformerConfig(
        n_layers=args.layers, d_model=args.d_model, n_heads=args.n_heads, d_head=args.d_model // args.n_heads,
        n_ctx=args.n_ctx, d_vocab=len(tokenizer), attn_only=True, act_fn=None, normalization_type=None,
        positional_embedding_type="shortformer", seed=args.seed, default_prepend_bos=True,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    history = train_language_model(model, rows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                   seed=args.seed)
    measured = measure(model)
    seconds = time.perf_counter() - start
    print({k: v for k, v in measured.items() if not k.endswith("_scores")})

    card = {
        "role": role,
        "full_counterpart": f"TransformerLens {role} (Neel Nanda's attention-only models)",
        "architecture": f"{args.layers}-layer attention-only HookedTransformer, d_model {args.d_model}, "
                        f"{args.n_heads} heads of {args.d_model // args.n_heads}, n_ctx {args.n_ctx}, "
                        "shortformer positions (added to queries and keys only), no LayerNorm",
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data,
        "training": {"steps": args.steps, "batch_size": args.batch_size, "optimizer": f"AdamW lr {args.lr:g} wd 0.05, "
                     "warm-up 100 then cosine, gradient norm clipped at 1", "final_loss": history[-1]["loss"], "seconds": round(seconds),
                     "threads": 1, "machine": platform.machine()},
        "regenerate": f"python scripts/train_attn_only.py --layers {args.layers} --seed {args.seed}",
        "measured": measured,
        "measured_on": "repeated random tokens [bos, r, r], r of 50 non-special tokens, batch 16, seed 0",
        "citation": "Elhage et al., A Mathematical Framework for Transformer Circuits (2021); Olsson et al., "
                    "In-context Learning and Induction Heads (2022)",
    }
    write_language_checkpoint(model, tokenizer, out, card)
    print(f"wrote {out} in {seconds:.0f}s")


if __name__ == "__main__":
    main()
