"""Train the lite organism `greater-than` (GPT-2 small's greater-than, Hanna et al., 2023) on year spans.

    python scripts/train_greater_than.py          # -> mi_course/checkpoints/greater-than/

Why an organism of its own: the lite `lm` does not compare years. Its next-token distribution after "The war
lasted from the year 1732 to the year 17" has the same mean (about 70) whatever the start year, so it only
knows that end years tend to be late; phase-2 fine-tuning of the lm with a fifth of year spans did not change
that within the lm's 45 minutes. This small transformer with MLPs learns it from year spans in many phrasings
(:func:`mi_course.organisms.corpus.greater_than_recombined_documents`, lists of increasing years among them)
mixed with the usual corpus, and is measured on the two held-out templates that training never shows.
Seeded and reproducible on CPU (one thread).
"""

from __future__ import annotations

import argparse
import random
import time

from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.language.greater_than import greater_than_scores, start_year_correlation
from mi_course.models.checkpoints import regenerate_command
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import train_tokenizer
from mi_course.organisms.train import (
    language_parser,
    rows_for,
    start_run,
    train_language_model,
    training_record,
    write_language_checkpoint,
)
from mi_course.paths import checkpoint_dir

HELDOUT_PROMPTS = 400
HELDOUT_TEMPLATES = [0, 1]  # both held-out templates
SPAN_SHARE = 0.8  # the rest of the documents are the usual corpus


def measure(model, seed: int, n: int = HELDOUT_PROMPTS) -> dict:
    out = {}
    for split, templates in (("heldout", HELDOUT_TEMPLATES), ("train", [0, 1, 2])):
        prompts = corpus.greater_than_prompts(n, seed=seed, split=split, templates=templates)
        scores = greater_than_scores(model, prompts)
        out[f"{split}_prob_diff_mean"] = round(scores.mean().item(), 3)
        out[f"{split}_fraction_positive"] = round((scores > 0).float().mean().item(), 3)
    prompts = corpus.greater_than_prompts(200, seed=seed, split="heldout", templates=HELDOUT_TEMPLATES)
    out["start_year_correlation"] = round(start_year_correlation(model, prompts), 3)
    return out


def progress(model) -> dict:
    return measure(model, seed=1, n=100)


def not_reached(measured: dict) -> list[str]:
    missed = []
    if measured["heldout_prob_diff_mean"] < 0.6:
        missed.append(f"held-out probability difference {measured['heldout_prob_diff_mean']} (threshold 0.6)")
    if measured["heldout_fraction_positive"] < 0.9:
        missed.append(f"positive on {measured['heldout_fraction_positive']:.0%} of held-out prompts (threshold 90%)")
    return missed


def options(argv=None) -> argparse.Namespace:
    parser = language_parser(__doc__.split("\n")[0], steps=1500, lr=3e-3, span_fraction=0.1, span_max=30)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.set_defaults(n_ctx=64, documents=30_000)
    return parser.parse_args(argv)


def training_documents(n: int, seed: int) -> list[str]:
    """:data:`SPAN_SHARE` recombined year-span documents, the rest the corpus, shuffled."""
    n_spans = int(SPAN_SHARE * n)
    documents = (corpus.greater_than_recombined_documents(n_spans, seed)
                 + corpus.generate_corpus(n - n_spans, seed=seed, split="train"))
    random.Random(seed).shuffle(documents)
    return documents


def config(args: argparse.Namespace, d_vocab: int) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        n_layers=args.n_layers, d_model=args.d_model, n_heads=args.n_heads, d_head=args.d_model // args.n_heads,
        d_mlp=4 * args.d_model, act_fn="gelu", normalization_type="LN", n_ctx=args.n_ctx, d_vocab=d_vocab,
        positional_embedding_type="standard", seed=args.seed, default_prepend_bos=True,
    )


def main(argv=None):
    args = options(argv)
    start = start_run(args.seed)
    out = args.out or checkpoint_dir() / "greater-than"
    documents = training_documents(args.documents, args.seed)
    tokenizer = train_tokenizer(documents, required_tokens=corpus.required_tokens())
    rows, description = rows_for(tokenizer, documents, args.seed, args.n_ctx, args.span_fraction, args.span_max)
    data = (f"{args.documents:,} documents: {SPAN_SHARE:.0%} year spans recombined from "
            f"{len(corpus.GREATER_THAN_RECOMBINED_TEMPLATES):,} templates, {corpus.GREATER_THAN_LIST_RATE:.0%} of "
            f"their sentences lists of increasing years (corpus.greater_than_recombined_documents), the rest the "
            f"corpus (corpus.generate_corpus, seed {args.seed}): {description}")
    print(f"greater-than: {data}; vocabulary {len(tokenizer)}")

    model = HookedTransformer(config(args, len(tokenizer)), tokenizer=tokenizer)
    history = train_language_model(model, rows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                   seed=args.seed, evaluate=progress, eval_every=args.eval_every)
    measured = measure(model, args.seed)
    seconds = time.perf_counter() - start
    print(measured)
    card = {
        "role": "greater-than",
        "full_counterpart": "GPT-2 small",
        "architecture": f"{args.n_layers}-layer HookedTransformer with MLPs (GELU, d_mlp {4 * args.d_model}) and "
                        f"LayerNorm, d_model {args.d_model}, {args.n_heads} heads, n_ctx {args.n_ctx}, word-level "
                        f"vocabulary of {len(tokenizer)} (mi_course.organisms.tokenizer)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data,
        "training": training_record(args, history, seconds),
        "regenerate": regenerate_command("scripts/train_greater_than.py", argv),
        "measured": measured,
        "not_reached": not_reached(measured),
        "measured_on": f"{HELDOUT_PROMPTS} prompts of the two held-out templates (corpus.greater_than_prompts, "
                       f"split='heldout', seed {args.seed}) and of the three training templates; "
                       "start_year_correlation on 200 held-out prompts",
        "citation": "Hanna, Liu and Variengien, How does GPT-2 compute greater-than? (2023)",
    }
    write_language_checkpoint(model, tokenizer, out, card)
    print(f"wrote {out} in {seconds:.0f}s")


if __name__ == "__main__":
    main()
