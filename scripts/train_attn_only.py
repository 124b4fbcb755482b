"""Train the lite attention-only transformers `attn-only-1l` and `attn-only-2l` on the generated corpus.

    python scripts/train_attn_only.py --layers 2        # -> mi_course/checkpoints/attn-only-2l/
    python scripts/train_attn_only.py --layers 1        # -> mi_course/checkpoints/attn-only-1l/

Seeded and reproducible on CPU (one thread). The corpus has repeated names and spans, so the two-layer
model forms a previous-token head (layer 0) and an induction head (layer 1); the one-layer model cannot.
The card records the measured head scores (mi_course.language.induction) and how it was trained.
"""

from __future__ import annotations

import argparse
import time

from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.language.induction import induction_scores, prev_token_scores, repeat_loss_ratio
from mi_course.models.checkpoints import regenerate_command
from mi_course.organisms.train import (
    language_parser,
    start_run,
    train_language_model,
    training_record,
    training_rows,
    write_language_checkpoint,
)
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


def progress(model) -> dict:
    """What to watch during training: the best prev-token and induction head, and the copying."""
    return {"prev": round(prev_token_scores(model)[0].max().item(), 3),
            "induction": round(induction_scores(model).max().item(), 3),
            "repeat_loss_ratio": round(repeat_loss_ratio(model), 3)}


def options(argv=None) -> argparse.Namespace:
    """The run's options, with each model's defaults filled in (what its card's regenerate line resolves to)."""
    # 1e-3 left the 2-layer model on the plateau before the induction phase change for 2500 steps
    parser = language_parser(__doc__.split("\n")[0], steps=0, lr=5e-3, span_fraction=None, span_max=None)
    parser.add_argument("--layers", type=int, choices=(1, 2), required=True)
    args = parser.parse_args(argv)
    # per model, the shipped run's: the induction phase change needs the longer run and three rows of
    # repeated spans per row of text; the 1-layer model has nothing more to learn
    args.steps = args.steps or {1: 2000, 2: 4000}[args.layers]
    if args.span_fraction is None:
        args.span_fraction = {1: 1.0, 2: 3.0}[args.layers]
    if args.span_max is None:
        args.span_max = {1: 30, 2: 60}[args.layers]
    return args


def training_data(args: argparse.Namespace):
    """(tokenizer, rows, description): the corpus plus rows of repeated random spans."""
    return training_rows(args.documents, args.seed, args.n_ctx, args.span_fraction, args.span_max)


def config(args: argparse.Namespace, d_vocab: int) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        n_layers=args.layers, d_model=args.d_model, n_heads=args.n_heads, d_head=args.d_model // args.n_heads,
        n_ctx=args.n_ctx, d_vocab=d_vocab, attn_only=True, act_fn=None, normalization_type=None,
        positional_embedding_type="shortformer", seed=args.seed, default_prepend_bos=True,
    )


def main(argv=None):
    args = options(argv)

    start = start_run(args.seed)
    role = f"attn-only-{args.layers}l"
    out = args.out or checkpoint_dir() / role

    tokenizer, rows, data = training_data(args)
    print(f"{role}: {data}; vocabulary {len(tokenizer)}")

    model = HookedTransformer(config(args, len(tokenizer)), tokenizer=tokenizer)
    history = train_language_model(model, rows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                   seed=args.seed, evaluate=progress, eval_every=args.eval_every)
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
        "training": training_record(args, history, seconds),
        "regenerate": regenerate_command("scripts/train_attn_only.py", argv),
        "measured": measured,
        "measured_on": "repeated random tokens [bos, r, r], r of 50 non-special tokens, batch 16, seed 0",
        "citation": "Elhage et al., A Mathematical Framework for Transformer Circuits (2021); Olsson et al., "
                    "In-context Learning and Induction Heads (2022)",
    }
    write_language_checkpoint(model, tokenizer, out, card)
    print(f"wrote {out} in {seconds:.0f}s")


if __name__ == "__main__":
    main()
