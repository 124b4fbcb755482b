"""Train the lite language model `lm` (the counterpart of GPT-2 small) on the generated corpus.

    python scripts/train_lm.py                 # -> mi_course/checkpoints/lm/

A small word-level HookedTransformer with MLPs and LayerNorm, seeded and reproducible on CPU (one thread).
Two phases in one command. Phase 1: the corpus plus rows of repeated random spans, which forms induction
heads (lr 5e-3 for the phase change, between steps 1,500 and 2,000). After it the model answers IOI prompts
with the *most recent* name. Phase 2 (``--ioi-steps``): documents that are mostly IOI sentences built from
many clauses, joins and verb phrases (:func:`mi_course.organisms.corpus.ioi_recombined_documents`), which
teach "the name said once" rather than six templates, in small batches (many steps in little time), mixed
with Python snippets whose misspelt keyword is followed by Python's error message
(:func:`mi_course.organisms.corpus.code_error_documents`), which gives the model a reason to mark misspelt words.
Phase 2 first appends the messages' words to the vocabulary (:func:`mi_course.organisms.tokenizer.extend_tokenizer`),
so phase 1 is unchanged by them.
Phase 3 (``--typo-steps``) marks misspelt keywords. The word-level tokenizer gives each misspelt keyword
(``pritn``, ``retrun``, ``values.apend``, ...) a token of its own, and nothing in next-token prediction makes
the model represent them alike: an SAE on the phase-2 model has no code-error feature (best held-out top-100
precision 0.03-0.08 at every hook, with or without extra code in its data, with error messages in phase 2).
So phase 3, like the planted curve detectors of the lite vision model, trains only those tokens' embedding
rows (:func:`mi_course.organisms.train.train_token_marker`) against a linear read-out after block 0, with the
next-token loss on Python snippets kept: every text without a misspelt keyword runs exactly as after phase 2.
``--init FOLDER`` starts phase 2 from a phase-1 run (``--ioi-steps 0``) with the same options;
``--init-phase-3 FOLDER`` starts phase 3 from a run with the same options and ``--typo-steps 0``.
The card records the measured properties on held-out text: the logit lens's KL to the final layer per
layer, the IOI logit difference on held-out templates, how often the model names the misspelt keyword's
intended spelling in a held-out error message, and the loss on repeated random spans. It also records the
greater-than probability difference, which stays low: the lm does not compare years (the `greater-than`
organism, scripts/train_greater_than.py, does).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mi_course.language.greater_than import greater_than_scores
from mi_course.language.induction import repeat_loss_ratio
from mi_course.language.ioi import ioi_logit_diffs
from mi_course.language.logit_lens import kl_to_final, logit_lens
from mi_course.models.checkpoints import regenerate_command
from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import extend_tokenizer, load_tokenizer, pack_documents
from mi_course.organisms.train import (
    extend_vocabulary,
    language_parser,
    optimizer_description,
    rows_for,
    start_run,
    train_language_model,
    train_token_marker,
    training_record,
    training_rows,
    write_language_checkpoint,
)
from mi_course.paths import checkpoint_dir
from mi_course.saes import hook_activations

HELDOUT_DOCUMENTS, IOI_PROMPTS, GREATER_THAN_PROMPTS, CODE_ERROR_DOCUMENTS = 200, 200, 200, 200
GREATER_THAN_HELDOUT = [0, 1]  # both held-out templates
IOI_SHARE = 0.8  # of phase 2's documents; the rest: snippets with error messages (--code-error-share), the corpus
IOI_WARMUP = 50  # phase 2 starts from trained weights: a short warm-up
IOI_SPAN_FRACTION = 0.15  # phase 2's rows of repeated random spans per row of text: keeps induction
TYPO_HOOK = "blocks.1.hook_resid_pre"  # phase 3's read-out: the residual stream after block 0
MARKER_DOCUMENTS = 2000  # held-out documents (every genre) on which the card measures phase 3's read-out


def measure(model, seed: int) -> dict:
    heldout = corpus.generate_corpus(HELDOUT_DOCUMENTS, seed=seed, split="heldout")
    rows = pack_documents(model.tokenizer, heldout, model.cfg.n_ctx)[:32]
    kl = kl_to_final(logit_lens(model, rows)).mean(dim=(1, 2))
    diffs = ioi_logit_diffs(model, corpus.ioi_prompts(IOI_PROMPTS, seed=seed, split="heldout"))
    greater = greater_than_scores(model, corpus.greater_than_prompts(GREATER_THAN_PROMPTS, seed=seed, split="heldout",
                                                                    templates=GREATER_THAN_HELDOUT))
    with torch.no_grad():
        heldout_loss = model(rows, return_type="loss").item()
    return {
        "heldout_loss": round(heldout_loss, 4),
        "logit_lens_kl_per_layer": [round(x, 4) for x in kl.tolist()],
        "ioi_logit_diff_mean": round(diffs.mean().item(), 3),
        "ioi_fraction_positive": round((diffs > 0).float().mean().item(), 3),
        "greater_than_prob_diff_mean": round(greater.mean().item(), 3),
        "greater_than_fraction_positive": round((greater > 0).float().mean().item(), 3),
        **({"code_error_suggestion_accuracy": round(suggestion_accuracy(model, CODE_ERROR_DOCUMENTS, seed + 1000), 3)}
           if "Did" in model.tokenizer.get_vocab() else {}),
        "repeat_loss_ratio": round(repeat_loss_ratio(model), 3),
    }


def typo_token_ids(tokenizer) -> list[int]:
    """The vocabulary's misspelt keywords (corpus.KEYWORD_TYPOS), also after a dot (``values.apend``)."""
    return sorted(i for word, i in tokenizer.get_vocab().items() if corpus.is_misspelt_keyword(word))


def typo_phase_rows(tokenizer, args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    """Phase 3's rows and their description: Python snippets (the corpus's code genre, half with one error)
    and as many rows of repeated random spans (so the marked tokens stay distinct enough to be copied), the
    rows that hold a misspelt keyword."""
    documents = corpus.generate_documents(args.typo_documents, seed=args.seed + 2, split="train",
                                          proportions={"code": 1.0})
    rows, _ = rows_for(tokenizer, [d.text for d in documents], args.seed + 2, args.n_ctx, 1.0, args.span_max)
    keep = torch.isin(rows, torch.tensor(typo_token_ids(tokenizer))).any(1)
    n_text = len(rows) // 2
    description = (f"{args.typo_documents:,} code documents (seed {args.seed + 2}, corpus.generate_documents with "
                   f"proportions code 1.0) packed into {n_text:,} rows plus {len(rows) - n_text:,} rows of repeated "
                   f"random spans, of which the {int(keep[:n_text].sum()):,} and {int(keep[n_text:].sum()):,} rows "
                   f"that hold a misspelt keyword")
    return rows[keep], description


@torch.no_grad()
def marker_readout(model, direction: torch.Tensor, seed: int) -> dict:
    """Phase 3's read-out on held-out text of every genre: with N the number of misspelt-keyword tokens in it,
    the share of them among the N tokens that project furthest along the direction (1: they all come first)."""
    documents = corpus.generate_documents(MARKER_DOCUMENTS, seed=seed, split="heldout")
    rows = pack_documents(model.tokenizer, [d.text for d in documents], model.cfg.n_ctx)
    score = torch.cat(list(hook_activations(model, rows, TYPO_HOOK, progress=False))) @ direction
    marked = torch.isin(rows[:, 1:], torch.tensor(typo_token_ids(model.tokenizer))).reshape(-1)
    n = int(marked.sum())
    return {"precision_at_n_marked": round(marked[score.topk(n).indices].float().mean().item(), 3),
            "marked_tokens": n, "tokens": len(marked)}


def suggestion_accuracy(model, n: int, seed: int) -> float:
    """The share of error messages in ``n`` fresh code-error documents in which the model's top next token after
    "Did you mean" (and its colon) is the keyword the snippet misspelt: it found the word and knows its keyword.
    A model without the error vocabulary (phase 1) scores 0."""
    if "Did" not in model.tokenizer.get_vocab():
        return 0.0
    hits = total = 0
    with torch.no_grad():
        for document in corpus.code_error_documents(n, seed=seed):
            tokens = model.to_tokens(document)
            predicted = model(tokens)[0].argmax(-1)
            words = model.to_str_tokens(tokens[0])
            for i, word in enumerate(words[:-3]):
                if word == "mean":
                    j = i + 2 if words[i + 1] == ":" else i + 1  # the keyword's position
                    hits += int(predicted[j - 1] == tokens[0, j])
                    total += 1
    return hits / max(total, 1)


def not_reached(measured: dict) -> list[str]:
    """The issue's thresholds that this run missed, in words (the card lists them; tests xfail on them)."""
    kl = measured["logit_lens_kl_per_layer"]
    missed = []
    if not all(b < a for a, b in zip(kl, kl[1:])):
        missed.append(f"logit-lens KL does not fall at every layer: {kl}")
    if measured["ioi_fraction_positive"] < 0.9:
        missed.append(f"IOI: the indirect object beats the subject on {measured['ioi_fraction_positive']:.0%} of "
                      "held-out prompts (threshold 90%)")
    if measured.get("typo_marker", {}).get("precision_at_n_marked", 1.0) < 0.8:
        missed.append(f"phase 3: the typo read-out's held-out precision is "
                      f"{measured['typo_marker']['precision_at_n_marked']} (threshold 0.8)")
    if "code_error_suggestion_accuracy" in measured and measured["code_error_suggestion_accuracy"] < 0.5:
        missed.append(f"error messages: the misspelt keyword's spelling is the top prediction in "
                      f"{measured['code_error_suggestion_accuracy']:.0%} of them (threshold 50%)")
    if measured["repeat_loss_ratio"] > 0.5:
        missed.append(f"repeated spans: loss ratio {measured['repeat_loss_ratio']} (threshold 0.5)")
    return missed


def progress(model) -> dict:
    """What to watch during training: IOI on held-out templates and copying of repeated spans."""
    diffs = ioi_logit_diffs(model, corpus.ioi_prompts(50, seed=1, split="heldout"))
    seen = ioi_logit_diffs(model, corpus.ioi_prompts(50, seed=1, split="train"))
    return {"ioi_fraction_positive": round((diffs > 0).float().mean().item(), 3),
            "ioi_fraction_positive_train_templates": round((seen > 0).float().mean().item(), 3),
            "code_error_suggestion_accuracy": round(suggestion_accuracy(model, 30, seed=1), 3),
            "repeat_loss_ratio": round(repeat_loss_ratio(model), 3)}


def phase_two_shares(code_error_share: float) -> dict[str, float]:
    if not 0 <= code_error_share <= 1 - IOI_SHARE:
        raise ValueError(f"--code-error-share must be in [0, {1 - IOI_SHARE:g}], got {code_error_share}")
    return {"ioi": IOI_SHARE, "code_error": code_error_share, "corpus": 1 - IOI_SHARE - code_error_share}


def ioi_phase_documents(n: int, seed: int, code_error_share: float = 0.0) -> list[str]:
    """Phase 2's mix (:func:`phase_two_shares`), shuffled: recombined IOI documents, snippets with their error
    messages, and the usual corpus (so nothing is forgotten)."""
    counts = {kind: int(share * n) for kind, share in phase_two_shares(code_error_share).items()}
    counts["corpus"] = n - counts["ioi"] - counts["code_error"]
    documents = (corpus.ioi_recombined_documents(counts["ioi"], seed)
                 + corpus.code_error_documents(counts["code_error"], seed)
                 + corpus.generate_corpus(counts["corpus"], seed=seed))
    random.Random(seed).shuffle(documents)
    return documents


def phase_two_description(args: argparse.Namespace, n_added_tokens: int, rows: str) -> str:
    shares = {k: f"{v:.0%}" for k, v in phase_two_shares(args.code_error_share).items()}
    ioi = (f"{shares['ioi']} of them IOI sentences recombined from {len(corpus.IOI_RECOMBINED_TEMPLATES):,} templates "
           f"({len(corpus.IOI_CLAUSES)} clauses x {len(corpus.IOI_JOINS)} joins x {len(corpus.IOI_VERB_PHRASES)} "
           f"verb phrases, mi_course.organisms.corpus.ioi_recombined_documents)")
    if not args.code_error_share:
        return (f"; then phase 2 on {args.ioi_documents:,} documents, {ioi} and {shares['corpus']} the corpus "
                f"(seed {args.seed + 1}): {rows}")
    return (f"; then phase 2 on {args.ioi_documents:,} documents, {ioi}, {shares['code_error']} Python snippets, half "
            f"of them with a misspelt keyword followed by its error message (corpus.code_error_documents; "
            f"{n_added_tokens} tokens of the messages appended to the vocabulary, corpus.error_vocabulary), and "
            f"{shares['corpus']} the corpus (seed {args.seed + 1}): {rows}")


def load_phase_one(model, tokenizer, folder: Path) -> list[dict]:
    """Weights and training history of a phase-1 run (``--ioi-steps 0``) written by this script."""
    if load_tokenizer(folder).get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"{folder} was trained with another tokenizer: run phase 1 with the same options")
    model.load_state_dict(load_file(folder / "model.safetensors"))
    training = json.loads((folder / "card.json").read_text())["training"]
    return [{"loss": training["final_loss"], "seconds": training["seconds"]}]


def options(argv=None) -> argparse.Namespace:
    """The run's options (what the card's regenerate line resolves to)."""
    parser = language_parser(__doc__.split("\n")[0], steps=3000, lr=5e-3, span_fraction=1.0)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--ioi-share", type=float, default=0.35,
                        help="share of IOI stories in the corpus (the other genres keep their relative shares)")
    parser.add_argument("--positions", choices=("standard", "shortformer"), default="standard",
                        help="shortformer adds positions to queries and keys only, which speeds up induction")
    parser.add_argument("--ioi-steps", type=int, default=2000,
                        help="phase 2: steps on IOI sentences built from many clauses, joins and verb phrases "
                             "(0: none)")
    parser.add_argument("--ioi-lr", type=float, default=2e-3)
    parser.add_argument("--ioi-batch-size", type=int, default=16)
    parser.add_argument("--code-error-share", type=float, default=0.0,
                        help="phase 2: share of Python snippets followed by the error a misspelt keyword causes "
                             "(corpus.code_error_documents), taken from the corpus's share; 0: none, and no words "
                             "added to the vocabulary")
    parser.add_argument("--ioi-documents", type=int, default=40_000,
                        help="phase 2's documents: 80%% recombined IOI (corpus.ioi_recombined_documents), 20%% corpus")
    parser.add_argument("--typo-steps", type=int, default=600,
                        help="phase 3: steps that train only the misspelt keywords' embedding rows (0: none)")
    parser.add_argument("--typo-lr", type=float, default=0.02)
    parser.add_argument("--typo-documents", type=int, default=4000,
                        help="phase 3's code documents (the rows with a misspelt keyword are used)")
    parser.add_argument("--init-phase-3", type=Path, default=None,
                        help="skip phases 1 and 2: start phase 3 from the folder a run with the same options and "
                             "--typo-steps 0 wrote")
    parser.add_argument("--init", type=Path, default=None,
                        help="skip phase 1: start phase 2 from the folder a run with the same options and "
                             "--ioi-steps 0 wrote (phase 1 is seeded, so the result is the same)")
    return parser.parse_args(argv)


def training_data(args: argparse.Namespace):
    """Phase 1's (tokenizer, rows, description): the corpus with IOI stories at ``--ioi-share`` (the other
    genres in their default proportions) plus rows of repeated random spans."""
    # IOI is learned from one answer token per sentence: it needs a larger share than the corpus default
    rest = {g: p for g, p in corpus.GENRES.items() if g != "ioi"}
    shares = {**{g: p * (1 - args.ioi_share) / sum(rest.values()) for g, p in rest.items()}, "ioi": args.ioi_share}
    return training_rows(args.documents, args.seed, args.n_ctx, args.span_fraction, args.span_max, shares)


def ioi_phase_rows(tokenizer, args: argparse.Namespace):
    """Phase 2's (rows, description): :func:`ioi_phase_documents` packed, plus a few repeated-span rows."""
    documents = ioi_phase_documents(args.ioi_documents, args.seed + 1, args.code_error_share)
    return rows_for(tokenizer, documents, args.seed + 1, args.n_ctx, IOI_SPAN_FRACTION, args.span_max)


def config(args: argparse.Namespace, d_vocab: int) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        n_layers=args.n_layers, d_model=args.d_model, n_heads=args.n_heads, d_head=args.d_model // args.n_heads,
        d_mlp=4 * args.d_model, act_fn="gelu", normalization_type="LN", n_ctx=args.n_ctx,
        d_vocab=d_vocab, positional_embedding_type=args.positions, seed=args.seed, default_prepend_bos=True,
    )


def phases_one_and_two(args: argparse.Namespace, start: float):
    """Phases 1 and 2: (model, tokenizer, training record, data description, phase 1's vocabulary size)."""
    tokenizer, rows, data = training_data(args)
    print(f"lm: {data}; vocabulary {len(tokenizer)}")
    model = HookedTransformer(config(args, len(tokenizer)), tokenizer=tokenizer)
    d_vocab_phase_1 = len(tokenizer)
    if args.init is None:
        history = train_language_model(model, rows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                       seed=args.seed, evaluate=progress, eval_every=args.eval_every)
    else:
        history = load_phase_one(model, tokenizer, args.init)
    training = training_record(args, history, time.perf_counter() - start)
    if args.init is not None:  # phase 1's time is the one its run recorded
        training["seconds_before"] = history[-1]["seconds"]
    if args.ioi_steps:
        # phase 2: after phase 1 the model copies the most recent name; IOI needs it to skip the repeated one
        if args.code_error_share:  # the messages' words, appended: phase 1 stays as it was
            tokenizer = extend_tokenizer(tokenizer, corpus.error_vocabulary())
            model = extend_vocabulary(model, tokenizer)
        ioi_rows, ioi_data = ioi_phase_rows(tokenizer, args)
        print(f"phase 2: {ioi_data}")
        ioi_history = train_language_model(model, ioi_rows, steps=args.ioi_steps, batch_size=args.ioi_batch_size,
                                           lr=args.ioi_lr, warmup=IOI_WARMUP, seed=args.seed + 1, evaluate=progress,
                                           eval_every=args.eval_every)
        data += phase_two_description(args, len(tokenizer) - d_vocab_phase_1, ioi_data)
        training["ioi_phase"] = {"steps": args.ioi_steps, "batch_size": args.ioi_batch_size,
                                 "optimizer": optimizer_description(args.ioi_lr, IOI_WARMUP),
                                 "final_loss": ioi_history[-1]["loss"]}
    return model, tokenizer, training, data, d_vocab_phase_1


def load_phase_two(args: argparse.Namespace, folder: Path):
    """What :func:`phases_one_and_two` returns, read from the folder of a run with ``--typo-steps 0``."""
    card = json.loads((folder / "card.json").read_text())
    if "typo_phase" in card["training"]:
        raise ValueError(f"{folder} already had phase 3: give the folder of a run with --typo-steps 0")
    tokenizer = load_tokenizer(folder)
    model = HookedTransformer(config(args, len(tokenizer)), tokenizer=tokenizer)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    model.eval()
    training = dict(card["training"])
    training["seconds_before"] = training.pop("seconds")
    d_vocab_phase_1 = len(tokenizer) - (len(corpus.error_vocabulary()) if args.code_error_share else 0)
    return model, tokenizer, training, card["data"], d_vocab_phase_1


def main(argv=None):
    args = options(argv)
    start = start_run(args.seed)
    out = args.out or checkpoint_dir() / "lm"
    if args.init_phase_3 is None:
        model, tokenizer, training, data, d_vocab_phase_1 = phases_one_and_two(args, start)
    else:
        model, tokenizer, training, data, d_vocab_phase_1 = load_phase_two(args, args.init_phase_3)
    direction = None
    if args.typo_steps:
        # phase 3: misspelt keywords get a shared direction; nothing else moves
        typo_rows, typo_data = typo_phase_rows(tokenizer, args)
        typo_ids = typo_token_ids(tokenizer)
        print(f"phase 3: {len(typo_ids)} misspelt-keyword tokens, {len(typo_rows)} rows")
        typo_history, direction = train_token_marker(model, typo_rows, typo_ids, hook_name=TYPO_HOOK,
                                                     steps=args.typo_steps, lr=args.typo_lr, seed=args.seed + 2)
        data += (f"; then phase 3 on {typo_data}: only the embedding rows of the {len(typo_ids)} misspelt-keyword "
                 f"tokens (corpus.KEYWORD_TYPOS, also after a dot) trained "
                 f"(mi_course.organisms.train.train_token_marker), against a logistic read-out at {TYPO_HOOK} plus "
                 f"the next-token loss")
        training["typo_phase"] = {"steps": args.typo_steps, "batch_size": 16, "lr": args.typo_lr,
                                  "optimizer": "Adam on the marked rows and the read-out, every other weight frozen",
                                  "hook_name": TYPO_HOOK, "final_loss": typo_history[-1]["loss"],
                                  "final_marker_loss": typo_history[-1]["marker_loss"]}
    measured = measure(model, args.seed)
    if direction is not None:
        measured["typo_marker"] = marker_readout(model, direction, args.seed)
    training["seconds"] = round(time.perf_counter() - start + training.pop("seconds_before", 0))
    print(measured)

    card = {
        "role": "lm",
        "full_counterpart": "GPT-2 small",
        "architecture": f"{args.n_layers}-layer HookedTransformer with MLPs (GELU, d_mlp {4 * args.d_model}) and "
                        f"LayerNorm, d_model {args.d_model}, {args.n_heads} heads, n_ctx {args.n_ctx}, "
                        f"{args.positions} positional embeddings, "
                        f"word-level vocabulary of {len(tokenizer)} (mi_course.organisms.tokenizer"
                        + (f"; {d_vocab_phase_1} from phase 1's corpus, the rest appended for phase 2)"
                           if len(tokenizer) > d_vocab_phase_1 else ")"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data,
        "training": training,
        "regenerate": regenerate_command("scripts/train_lm.py", argv, drop=("--init", "--init-phase-3")),
        "measured": measured,
        "not_reached": not_reached(measured),
        "measured_on": f"{HELDOUT_DOCUMENTS} held-out documents (32 rows of {args.n_ctx}), {IOI_PROMPTS} held-out "
                       f"IOI prompts (templates unseen in training), {GREATER_THAN_PROMPTS} greater-than prompts (the "
                       f"two held-out templates), "
                       + (f"{CODE_ERROR_DOCUMENTS} fresh code-error documents (seed {args.seed + 1000}), "
                          if "code_error_suggestion_accuracy" in measured else "")
                       + "repeated random tokens (50, batch 16)"
                       + (f", phase 3's read-out on {MARKER_DOCUMENTS} held-out documents of every genre (seed "
                          f"{args.seed}; the read-out itself is not shipped)" if direction is not None else ""),
        "citation": "nostalgebraist, interpreting GPT: the logit lens (2020); Wang et al., Interpretability in "
                    "the Wild (2022); Olsson et al., In-context Learning and Induction Heads (2022)",
    }
    write_language_checkpoint(model, tokenizer, out, card)
    print(f"wrote {out} in {training['seconds']}s")


if __name__ == "__main__":
    main()
