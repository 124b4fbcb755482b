"""What the first cell of every lesson notebook calls."""

from __future__ import annotations

import platform

import torch

from mi_course.config import (
    get_device,
    get_mode,
    random_weights,
    requested_mode,
    seed_everything,
    silence_known_warnings,
)


def setup_notebook(lesson: str, seed: int = 0) -> None:
    """Print where the course runs, seed everything, and enable the ``%%exercise`` magic."""
    silence_known_warnings()
    seed_everything(seed)
    # Each lesson starts from torch's defaults, even in a kernel where an earlier lesson switched them off.
    torch.set_grad_enabled(True)
    try:
        from IPython import get_ipython

        ipython = get_ipython()
    except ImportError:
        ipython = None
    if ipython is not None:
        from mi_course.grading.magic import load_ipython_extension
        from mi_course.grading.worker import start_worker

        load_ipython_extension(ipython)
        start_worker()  # warms up in the background while the learner reads: check() then answers in ~1 s
    mode, asked = get_mode(), requested_mode()
    why = "" if asked != "auto" else (" (auto: a GPU is present)" if mode == "full" else " (auto: no GPU)")
    if random_weights():
        why += " (dry run: the real architectures at random weights, built offline)"
    print(f"mi-course lesson {lesson}: mode {mode}{why}, device {get_device()}, "
          f"torch {torch.__version__}, python {platform.python_version()}")
