"""Train the lite language model `lm` (the counterpart of GPT-2 small) on the generated corpus.

    python scripts/train_lm.py                 # -> mi_course/checkpoints/lm/

A small word-level HookedTransformer with MLPs and LayerNorm, seeded and reproducible on CPU (one thread).
The card records the measured properties on held-out text: the logit lens's KL to the final layer per
layer, the IOI logit difference, greater-than accuracy and the loss on repeated random spans.
"""

from __future__ import annotations

import time

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.language import corpus
from mi_course.language.induction import repeat_loss_ratio
from mi_course.language.ioi import ioi_logit_diffs
from mi_course.language.logit_lens import kl_to_final, logit_lens
from mi_course.language.tokenizer import pack_documents
from mi_course.language.train import (language_parser, start_run, train_language_model, training_record,
                                      training_rows, write_language_checkpoint)
from mi_course.models.checkpoints import regenerate_command
from mi_course.paths import checkpoint_dir

HELDOUT_DOCUMENTS, IOI_PROMPTS = 200, 200


def measure(model, seed: int) -> dict:
    heldout = corpus.generate_corpus(HELDOUT_DOCUMENTS, seed=seed, split="heldout")
    rows = pack_documents(model.tokenizer, heldout, model.cfg.n_ctx)[:32]
    kl = kl_to_final(logit_lens(model, rows)).mean(dim=(1, 2))
    diffs = ioi_logit_diffs(model, corpus.ioi_prompts(IOI_PROMPTS, seed=seed, split="heldout"))
    with torch.no_grad():
        heldout_loss = model(rows, return_type="loss").item()
    return {
        "heldout_loss": round(heldout_loss, 4),
        "logit_lens_kl_per_layer": [round(x, 4) for x in kl.tolist()],
        "ioi_logit_diff_mean": round(diffs.mean().item(), 3),
        "ioi_fraction_positive": round((diffs > 0).float().mean().item(), 3),
        "repeat_loss_ratio": round(repeat_loss_ratio(model), 3),
    }


def not_reached(measured: dict) -> list[str]:
    """The issue's thresholds that this run missed, in words (the card lists them; tests xfail on them)."""
    kl = measured["logit_lens_kl_per_layer"]
    missed = []
    if not all(b < a for a, b in zip(kl, kl[1:])):
        missed.append(f"logit-lens KL does not fall at every layer: {kl}")
    if measured["ioi_fraction_positive"] < 0.9:
        missed.append(f"IOI: the indirect object beats the subject on {measured['ioi_fraction_positive']:.0%} of "
                      "held-out prompts (threshold 90%): the model copies the most recent name instead")
    if measured["repeat_loss_ratio"] > 0.5:
        missed.append(f"repeated spans: loss ratio {measured['repeat_loss_ratio']} (threshold 0.5)")
    return missed


def progress(model) -> dict:
    """What to watch during training: IOI on held-out templates and copying of repeated spans."""
    diffs = ioi_logit_diffs(model, corpus.ioi_prompts(50, seed=1, split="heldout"))
    seen = ioi_logit_diffs(model, corpus.ioi_prompts(50, seed=1, split="train"))
    return {"ioi_fraction_positive": round((diffs > 0).float().mean().item(), 3),
            "ioi_fraction_positive_train_templates": round((seen > 0).float().mean().item(), 3),
            "repeat_loss_ratio": round(repeat_loss_ratio(model), 3)}


def main(argv=None):
    parser = language_parser(__doc__.split("\n")[0], steps=3000, lr=5e-3, span_fraction=1.0)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--ioi-share", type=float, default=0.35,
                        help="share of IOI stories in the corpus (the other genres keep their relative shares)")
    parser.add_argument("--positions", choices=("standard", "shortformer"), default="standard",
                        help="shortformer adds positions to queries and keys only, which speeds up induction")
    args = parser.parse_args(argv)

    start = start_run(args.seed)
    out = args.out or checkpoint_dir() / "lm"
    # IOI is learned from one answer token per sentence: it needs a larger share than the corpus default
    rest = {g: p for g, p in corpus.GENRES.items() if g != "ioi"}
    proportions = {**{g: p * (1 - args.ioi_share) / sum(rest.values()) for g, p in rest.items()}, "ioi": args.ioi_share}
    tokenizer, rows, data = training_rows(args.documents, args.seed, args.n_ctx, args.span_fraction, args.span_max,
                                          proportions)
    print(f"lm: {data}; vocabulary {len(tokenizer)}")

    cfg = HookedTransformerConfig(
        n_layers=args.n_layers, d_model=args.d_model, n_heads=args.n_heads, d_head=args.d_model // args.n_heads,
        d_mlp=4 * args.d_model, act_fn="gelu", normalization_type="LN", n_ctx=args.n_ctx,
        d_vocab=len(tokenizer), positional_embedding_type=args.positions, seed=args.seed, default_prepend_bos=True,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    history = train_language_model(model, rows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                   seed=args.seed, evaluate=progress, eval_every=args.eval_every)
    measured = measure(model, args.seed)
    seconds = time.perf_counter() - start
    print(measured)

    card = {
        "role": "lm",
        "full_counterpart": "GPT-2 small",
        "architecture": f"{args.n_layers}-layer HookedTransformer with MLPs (GELU, d_mlp {4 * args.d_model}) and "
                        f"LayerNorm, d_model {args.d_model}, {args.n_heads} heads, n_ctx {args.n_ctx}, {args.positions} "
                        f"positional embeddings, "
                        f"word-level vocabulary of {len(tokenizer)} (mi_course.language.tokenizer)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data,
        "training": training_record(args, history, seconds),
        "regenerate": regenerate_command("scripts/train_lm.py", argv),
        "measured": measured,
        "not_reached": not_reached(measured),
        "measured_on": f"{HELDOUT_DOCUMENTS} held-out documents (32 rows of {args.n_ctx}), {IOI_PROMPTS} held-out "
                       "IOI prompts (templates unseen in training), repeated random tokens (50, batch 16)",
        "citation": "nostalgebraist, interpreting GPT: the logit lens (2020); Wang et al., Interpretability in "
                    "the Wild (2022); Olsson et al., In-context Learning and Induction Heads (2022)",
    }
    write_language_checkpoint(model, tokenizer, out, card)
    print(f"wrote {out} in {seconds:.0f}s")


if __name__ == "__main__":
    main()
