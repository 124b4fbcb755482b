"""Estimate how long each lite organism takes to regenerate on this machine, and print the ratios to the
issue's limits (each script <= 45 min on a 2-core CPU, all of them together <= 2 h).

    python scripts/benchmark_training.py [--steps 60]

For the language models it runs, alone and on one thread as the scripts do, what each script runs before
training (corpus, tokenizer, packed rows), ``--steps`` optimizer steps at the model's real shape, one
progress evaluation and the final measurement; then it scales the steps and evaluations up to the run
that the card's regenerate command asks for. The vision and modular-addition cards record their full
training time, which is used as it is. Run it on an otherwise idle machine: it prints ratios, it asserts
nothing.
"""

from __future__ import annotations

import argparse
import time

from transformer_lens import HookedTransformer

import mi_course
from mi_course.models.checkpoints import regenerate_script
from mi_course.organisms.train import start_run, train_language_model

LANGUAGE = ("lm", "attn-only-2l", "attn-only-1l")
RECORDED = ("vision", "vision-b", "vision-c", "modular-addition")  # cards with "training_seconds" of the whole run
SCRIPT_LIMIT, TOTAL_LIMIT = 45 * 60, 120 * 60


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _step_seconds(model, rows, batch_size: int, steps: int) -> float:
    quiet = dict(log=lambda *_: None, evaluate=None)
    train_language_model(model, rows, steps=3, batch_size=batch_size, **quiet)  # first steps pay for set-up
    _, seconds = _timed(train_language_model, model, rows, steps=steps, batch_size=batch_size, **quiet)
    return seconds / steps


def estimate_language(role: str, steps: int) -> dict:
    """Seconds the card's regenerate command would take here, by parts."""
    script, argv = regenerate_script(mi_course.model_card(role, mode="lite"))
    args = script.options(argv)
    (tokenizer, rows, _), setup = _timed(script.training_data, args)
    model = HookedTransformer(script.config(args, len(tokenizer)), tokenizer=tokenizer)
    parts = {"set-up": setup, "training": _step_seconds(model, rows, args.batch_size, steps) * args.steps}
    _, evaluation = _timed(script.progress, model)
    n_evals = (args.steps - 1) // args.eval_every
    if role == "lm" and args.ioi_steps:
        (ioi_rows, _), parts["phase-2 set-up"] = _timed(script.ioi_phase_rows, tokenizer, args)
        parts["phase 2"] = _step_seconds(model, ioi_rows, args.ioi_batch_size, steps) * args.ioi_steps
        n_evals += (args.ioi_steps - 1) // args.eval_every
    parts["evaluations"] = evaluation * n_evals
    _, parts["measurement"] = _timed(script.measure, *((model, args.seed) if role == "lm" else (model,)))
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps timed per model and phase")
    args = parser.parse_args(argv)
    start_run(0)
    rows = []
    for role in LANGUAGE:
        parts = estimate_language(role, args.steps)
        rows.append((role, sum(parts.values()), "estimated: " + ", ".join(f"{k} {v:.0f}s" for k, v in parts.items())))
    for role in RECORDED:
        rows.append((role, float(mi_course.model_card(role, mode="lite")["training_seconds"]),
                     "recorded on its card (training; the measurement after it is not counted)"))
    print(f"{'organism':<18} {'minutes':>8} {'/ 45 min':>9}  how")
    for role, seconds, how in rows:
        print(f"{role:<18} {seconds / 60:8.1f} {seconds / SCRIPT_LIMIT:9.2f}  {how}")
    total = sum(seconds for _, seconds, _ in rows)
    print(f"{'all together':<18} {total / 60:8.1f} {total / TOTAL_LIMIT:9.2f}  (/ 2 h)")


if __name__ == "__main__":
    main()
