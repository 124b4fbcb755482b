"""Write the lite language corpus (train and held-out) and train its word-level tokenizer.

    python scripts/make_corpus.py                       # -> build/corpus/
    python scripts/make_corpus.py --out /tmp/corpus --n-train 40000 --n-heldout 2000 --seed 0

Writes to --out (never committed: the corpus is regenerated from the seed):

    train.jsonl, heldout.jsonl   one {"genre": ..., "text": ...} per line
    tokenizer.json               the word-level tokenizer (mi_course.organisms.tokenizer.load_tokenizer)
    stats.json                   documents, tokens, vocabulary size and genre mix of both splits

The training scripts of the lite language models call the same functions; a checkpoint ships its own copy of
tokenizer.json (kind "hooked_transformer_tokenized", mi_course.models.lite_tokenized).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mi_course.organisms import corpus
from mi_course.organisms.tokenizer import save_tokenizer, train_tokenizer


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/corpus"))
    parser.add_argument("--n-train", type=int, default=40_000)
    parser.add_argument("--n-heldout", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    train, heldout = corpus.split_documents(args.n_train, args.n_heldout, args.seed)
    train_texts = [d.text for d in train]
    generated = time.perf_counter()

    tokenizer = train_tokenizer(train_texts, vocab_size=args.vocab_size, required_tokens=corpus.required_tokens())
    trained = time.perf_counter()

    args.out.mkdir(parents=True, exist_ok=True)
    for name, docs in (("train", train), ("heldout", heldout)):
        with open(args.out / f"{name}.jsonl", "w") as f:
            for d in docs:
                f.write(json.dumps({"genre": d.genre, "text": d.text}) + "\n")
    tokenizer_path = save_tokenizer(tokenizer, args.out / "tokenizer.json")
    stats = {"seed": args.seed, "vocabulary_size": len(tokenizer),
             "train": corpus.corpus_stats(train, tokenizer), "heldout": corpus.corpus_stats(heldout, tokenizer)}
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")

    print(f"corpus seed {args.seed}: generated in {generated - start:.1f} s, tokenizer in {trained - generated:.1f} s,"
          f" total {time.perf_counter() - start:.1f} s")
    print(f"vocabulary: {len(tokenizer)} tokens (special: <pad> <unk> <bos> <eos>)  -> {tokenizer_path}")
    for name in ("train", "heldout"):
        s = stats[name]
        print(f"\n{name}: {s['documents']:,} documents, {s['tokens']:,} tokens "
              f"({s['tokens'] / max(s['documents'], 1):.0f} per document), {s['vocabulary_used']:,} distinct tokens, "
              f"{s['unk_tokens']:,} <unk>")
        print(f"  {'genre':<10}{'docs':>8}{'share':>8}{'tokens':>10}{'token share':>13}")
        for genre, g in s["genres"].items():
            print(f"  {genre:<10}{g['documents']:>8,}{g['share']:>8.2f}{g['tokens']:>10,}"
                  f"{g['tokens'] / max(s['tokens'], 1):>13.2f}")
    print(f"\nwrote {args.out}/train.jsonl, heldout.jsonl, tokenizer.json, stats.json")
    return stats


if __name__ == "__main__":
    main()
