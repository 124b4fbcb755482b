"""How fast the course's SAE training is next to SAELens's, on the same stored activations, side by side.

    python scripts/benchmark_saes.py [--steps 10] [--repeats 3] [--sizes 128 768] [--device cpu] [--threads 1]

For each width d_in (d_sae = 16 d_in, batch 4096) it trains, for the same number of steps on the same
activations (float16, in memory; d_in 128: the lite lm's residual stream before block 2, on generated corpus
text; other widths: sparse combinations of random directions, since no model of that width is shipped):

    course ReLU (mi_course.saes.train_sae)   against SAELens's StandardTrainingSAE with its SAETrainer
    course TopK, k=32 (sparse decoder)       against SAELens's TopKTrainingSAE with its SAETrainer

and prints milliseconds per step, the ratio SAELens / course (the issue asks for >= 1.1x and >= 1.5x),
each as a fraction of this machine's fp32 matmul rate measured in the same run (counting a dense SAE step
as six [batch, d_in] x [d_in, d_sae] matmuls: two forward, four backward), and peak memory (CUDA: the
allocator's peak; CPU: the process's peak resident memory above its size before training). Each
trainer runs in a fresh process: two warm-up steps that pay for the one-time set-up, then ``--repeats``
timed runs of ``--steps`` steps, of which the fastest counts. Nothing is
downloaded; nothing is asserted: run it on an otherwise idle machine and read the ratios.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

BATCH, EXPANSION, K, LR = 4096, 16, 32, 4e-4
N_TOKENS = 65_536
HOOK = "blocks.2.hook_resid_pre"
PAIRS = (("course ReLU", "SAELens standard", 1.1), ("course TopK", "SAELens TopK", 1.5))


# ---------------------------------------------------------------------------------------------- activations


def activations(d_in: int, seed: int = 0) -> torch.Tensor:
    """[N_TOKENS, d_in] float16: the lite lm's for its width, else synthetic."""
    if d_in == 128:
        import mi_course
        from mi_course.organisms import corpus
        from mi_course.organisms.tokenizer import pack_documents
        from mi_course.saes import ActivationStore

        model = mi_course.load_model("lm", mode="lite", device="cpu")
        if model.cfg.d_model == d_in:
            rows = pack_documents(model.tokenizer, corpus.generate_corpus(1500, seed=seed, split="train"), 64)
            store = ActivationStore.from_model(model, rows[: -(-N_TOKENS // 63)], HOOK, progress=False)
            return store.rows(0, N_TOKENS).half()
    gen = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(8 * d_in, d_in, generator=gen), dim=-1)
    out = torch.empty(N_TOKENS, d_in, dtype=torch.float16)
    for start in range(0, N_TOKENS, 4096):
        n = min(4096, N_TOKENS - start)
        codes = torch.rand(n, 8 * d_in, generator=gen) * (torch.rand(n, 8 * d_in, generator=gen) < 0.01)
        out[start:start + n] = (codes @ directions).half()
    return out


def matmul_flops(d_in: int, device: torch.device, repeats: int = 10) -> float:
    """fp32 FLOP/s of the [batch, d_in] x [d_in, d_sae] matmul on this machine (the best of ``repeats``)."""
    a = torch.randn(BATCH, d_in, device=device)
    b = torch.randn(d_in, EXPANSION * d_in, device=device)
    out = torch.empty(BATCH, EXPANSION * d_in, device=device)
    best = float("inf")
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * BATCH * d_in * EXPANSION * d_in / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- trainers


def course(kind: str):
    def run(store, d_in: int, steps: int, device: torch.device) -> None:
        from mi_course import saes

        sae = (saes.ReLUSAE(d_in, EXPANSION * d_in) if kind == "relu" else
               saes.TopKSAE(d_in, EXPANSION * d_in, k=K)).to(device)
        saes.train_sae(sae, store, steps=steps, batch_size=BATCH, lr=LR, device=device, progress=False,
                       log_every=steps)

    return run


def saelens(kind: str):
    def run(store, d_in: int, steps: int, device: torch.device) -> None:
        from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.config import LoggingConfig, SAETrainerConfig
        from sae_lens.training.sae_trainer import SAETrainer

        d_sae = EXPANSION * d_in
        if kind == "standard":
            sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, device=str(device)))
        else:
            sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=K, device=str(device)))
        cfg = SAETrainerConfig(total_training_samples=steps * BATCH, train_batch_size_samples=BATCH, lr=LR,
                               lr_end=LR, device=str(device), logger=LoggingConfig(log_to_wandb=False))
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            SAETrainer(cfg, sae, data_provider=store.batches(BATCH, seed=0, device=device)).fit()

    return run


TRAINERS = {"course ReLU": course("relu"), "SAELens standard": saelens("standard"),
            "course TopK": course("topk"), "SAELens TopK": saelens("topk")}


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(name: str, path: str, steps: int, repeats: int, device: str, threads: int) -> dict:
    """In a fresh process: seconds per step and peak memory of one trainer."""
    torch.set_num_threads(threads)
    from mi_course.config import silence_known_warnings
    from mi_course.saes import ActivationStore

    silence_known_warnings()
    device = torch.device(device)
    store = ActivationStore.from_tensor(torch.load(path, weights_only=True))
    before = _resident_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    TRAINERS[name](store, store.d_in, 2, device)  # warm-up: imports, allocator, kernels
    seconds = float("inf")
    for _ in range(repeats):  # the best of several runs: a busy machine only ever slows a run down
        _sync(device)
        start = time.perf_counter()
        TRAINERS[name](store, store.d_in, steps, device)
        _sync(device)
        seconds = min(seconds, (time.perf_counter() - start) / steps)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"seconds_per_step": seconds, "peak_bytes": peak}


def in_fresh_process(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, *args).result()


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per trainer (after 2 warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per trainer; the fastest counts")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 768], help="the widths d_in")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {args.threads} thread(s), batch {BATCH}, d_sae = {EXPANSION} d_in, TopK k={K}, "
          f"best of {args.repeats} runs of {args.steps} steps each, torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="mi_course_sae_bench_") as folder:
        for d_in in args.sizes:
            path = Path(folder) / f"acts_{d_in}.pt"
            torch.save(activations(d_in), path)
            rate = matmul_flops(d_in, device)
            dense_step = 6 * 2 * BATCH * d_in * EXPANSION * d_in
            print(f"\nd_in {d_in}, d_sae {EXPANSION * d_in}: fp32 matmul {rate / 1e9:.1f} GFLOP/s "
                  f"({'lite lm ' + HOOK if d_in == 128 else 'synthetic'} activations, {N_TOKENS:,} tokens)")
            results = {}
            for name in TRAINERS:
                r = in_fresh_process(name, str(path), args.steps, args.repeats, str(device), args.threads)
                results[name] = r
                fraction = dense_step / r["seconds_per_step"] / rate
                print(f"  {name:<17} {1e3 * r['seconds_per_step']:9.1f} ms/step   {fraction:5.2f} of the matmul "
                      f"rate   peak {r['peak_bytes'] / 2**20:8.1f} MiB")
            for ours, theirs, target in PAIRS:
                ratio = results[theirs]["seconds_per_step"] / results[ours]["seconds_per_step"]
                verdict = "reached" if ratio >= target else "NOT reached"
                print(f"  {ours} is {ratio:.2f}x faster than {theirs} (target {target}x: {verdict})")


if __name__ == "__main__":
    main()
