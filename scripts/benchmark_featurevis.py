"""How much faster the course's feature visualization (mi_course.vision.featurevis.render) is than lucent's
``render_vis`` for the same work, measured side by side in one run. Prints times and ratios; asserts nothing.

    python scripts/benchmark_featurevis.py              # InceptionV1 (random weights) and the lite vision
    python scripts/benchmark_featurevis.py --steps 32 --repeat 2

The same work: the same 8 channel objectives, steps, image size, parameterization (FFT, decorrelated colour),
transforms and Adam learning rate. lucent renders one channel per ``render_vis`` call (its usual use); the
course renders the 8 as one batch that stops at the deepest layer read. A third column gives lucent one batched
call too (the 8 objectives summed, one per batch element), so the gain from batching and the gain from
stopping early can be told apart. Transforms: lucent applies its callables one after another
(``transform.standard_transforms`` for InceptionV1, :func:`lite_transforms` for the lite CNN, each followed by
lucent's resize to the model's input size); the course's ``transforms="standard"`` draws the same jitters,
scales and angles from the same lists and applies them, with the resize, as one resampling. The last column
is the course fed lucent's callables instead, so the gain from fusing them shows apart. The rows take turns,
the fastest of ``--repeat`` runs counts (``--repeat-lite`` for the lite CNN, 5 by default: its runs take a
second or less, and a shared machine's load comes in bursts). Target (issue 10): at least 2x on both models.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mi_course.vision.featurevis import lite_transforms, render  # noqa: E402


def lucent_one_by_one(model, layer, channels, steps, size, transforms, preprocess, fixed):
    from lucent.optvis import param
    from lucent.optvis import render as lucent_render

    for c in channels:
        torch.manual_seed(0)
        lucent_render.render_vis(model, f"{layer}:{c}", param_f=lambda: param.image(size), transforms=transforms,
                                 thresholds=(steps,), preprocess=preprocess, progress=False, show_image=False,
                                 fixed_image_size=fixed)


def lucent_batched(model, layer, channels, steps, size, transforms, preprocess, fixed):
    from lucent.optvis import objectives, param
    from lucent.optvis import render as lucent_render

    objective = sum(objectives.channel(layer, c, batch=i) for i, c in enumerate(channels))
    torch.manual_seed(0)
    lucent_render.render_vis(model, objective, param_f=lambda: param.image(size, batch=len(channels)),
                             transforms=transforms, thresholds=(steps,), preprocess=preprocess, progress=False,
                             show_image=False, fixed_image_size=fixed)


def course(model, layer, channels, steps, size, transforms, preprocess, fixed):
    """The course's render with its "standard" transforms: the same random jitter, scale and rotation from
    the same lists as ``transforms``, fused into one resampling."""
    render(model, [f"{layer}:{c}" for c in channels], steps=steps, size=size, transforms="standard", progress=False)


def course_lucent_transforms(model, layer, channels, steps, size, transforms, preprocess, fixed):
    """The course's render fed lucent's own transform callables (kornia's warps, one after another)."""
    render(model, [f"{layer}:{c}" for c in channels], steps=steps, size=size, transforms=transforms, progress=False)


def timed(fns, repeat: int) -> list[float]:
    """Each function's fastest of ``repeat`` runs, the functions taking turns (on a shared machine, a burst of
    load then slows all rows alike instead of one)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help="runs per row, taking turns; the fastest counts")
    ap.add_argument("--repeat-lite", type=int, default=5, help="the same for the lite vision (a second a run)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucent.modelzoo import inceptionv1
    from lucent.optvis import transform

    import mi_course

    torch.manual_seed(0)
    cases = [
        # lucent preprocesses InceptionV1 itself and upsamples a 128 render to 224; the course does the same
        ("InceptionV1 (random weights), mixed3b", inceptionv1(pretrained=False).eval(), "mixed3b",
         [379, 406, 385, 343, 342, 388, 324, 340], 128, list(transform.standard_transforms), True, None),
        # the lite CNN takes [0, 1] and its 64-pixel size as it is (no preprocessing, no upsampling)
        ("lite vision, conv4", mi_course.load_model("vision", mode="lite", device="cpu"), "conv4",
         list(range(8)), 64, lite_transforms(), False, 64),
    ]
    print(f"{args.steps} steps, 8 channels, best of {args.repeat} (InceptionV1) and {args.repeat_lite} (lite), "
          f"{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'model':40s} {'lucent, 8 calls':>16s} {'lucent, 1 batch':>16s} {'course':>9s} {'ratio':>7s} "
          f"{'vs batch':>9s} {'course, lucent transforms':>26s}")
    for name, model, layer, channels, size, transforms, preprocess, fixed in cases:
        work = (model, layer, channels, args.steps, size, transforms, preprocess, fixed)
        rows = (lucent_one_by_one, lucent_batched, course, course_lucent_transforms)
        repeat = args.repeat if name.startswith("InceptionV1") else args.repeat_lite
        t_one, t_batch, t_course, t_kornia = timed([lambda f=f: f(*work) for f in rows], repeat)
        print(f"{name:40s} {t_one:15.2f}s {t_batch:15.2f}s {t_course:8.2f}s {t_one / t_course:6.2f}x "
              f"{t_batch / t_course:8.2f}x {t_kornia:17.2f}s ({t_one / t_kornia:.2f}x)")


if __name__ == "__main__":
    main()
