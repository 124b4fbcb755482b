"""Mode, device and seed: the one place the course decides where and how it runs.

Modes:
    full  the real models (InceptionV1, GPT-2 small, ...), downloaded on first use; meant for a GPU.
    lite  small model organisms this repo trains and ships; offline, CPU, minutes.
    auto  full when a GPU is present, else lite (the default).

Set with the environment variable ``MI_COURSE_MODE`` or :func:`set_mode`; the device with
``MI_COURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ...) or :func:`set_device`.

Dry run: ``MI_COURSE_DRY_RUN=1`` (``mi-course run --dry-run``, ``make dry-run``) makes full mode build the real
architectures at random weights, offline (:mod:`mi_course.models.dry_run`), so that every full-mode cell can
be executed without a network; claims that need trained weights are skipped (:func:`mi_course.claim`).
"""

from __future__ import annotations

import os
import random
import socket
import warnings
from functools import cache

import numpy as np
import torch

MODES = ("full", "lite", "auto")
MODE_ENV = "MI_COURSE_MODE"
DEVICE_ENV = "MI_COURSE_DEVICE"
DRY_RUN_ENV = "MI_COURSE_DRY_RUN"

_mode_override: str | None = None
_device_override: str | None = None


def _check_mode(mode: str) -> str:
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def requested_mode() -> str:
    """The mode as asked for (may be 'auto')."""
    if _mode_override is not None:
        return _mode_override
    return _check_mode(os.environ.get(MODE_ENV, "auto") or "auto")


def get_mode(mode: str | None = None) -> str:
    """Resolve a mode to 'full' or 'lite'. ``mode=None`` uses the course-wide setting."""
    mode = requested_mode() if mode is None else _check_mode(mode)
    if mode == "auto":
        return "full" if torch.cuda.is_available() else "lite"
    return mode


def set_mode(mode: str | None) -> None:
    """Set the course-wide mode for this process (``None`` goes back to the environment)."""
    global _mode_override
    _mode_override = None if mode is None else _check_mode(mode)


def dry_run() -> bool:
    """Whether this is a dry run: full mode builds its models at random weights, offline (MI_COURSE_DRY_RUN=1)."""
    return os.environ.get(DRY_RUN_ENV, "").strip().lower() in ("1", "true", "yes")


def random_weights() -> bool:
    """Whether the course's models are random stand-ins here (a dry run in full mode): claims about what
    trained models do cannot be checked."""
    return dry_run() and get_mode() == "full"


def get_device() -> torch.device:
    """The device every course model and tensor should live on."""
    name = _device_override or os.environ.get(DEVICE_ENV)
    if not name:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but no CUDA GPU is available; use 'cpu'")
    return torch.device(name)


def set_device(device: str | torch.device | None) -> None:
    """Set the course-wide device (``None`` goes back to the environment / auto-detection)."""
    global _device_override
    _device_override = None if device is None else str(torch.device(device))


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator seeded the same way."""
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# TransformerLens 3.x warns on every HookedTransformer; the course knowingly uses it (sae-lens needs <4).
# kornia 0.4.1 (torch-lucent's pin) calls torch.jit.script when it is imported, which torch 2.14 deprecates.
KNOWN_WARNINGS = (
    (r"HookedTransformer(\.from_pretrained)? is deprecated", DeprecationWarning),
    (r"`torch\.jit\.script` is deprecated", FutureWarning),
)


def silence_known_warnings() -> None:
    """Filter the warnings the course knows about and has decided to live with."""
    for message, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@cache
def network_available(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    """Whether ``host`` answers within ``timeout`` seconds (cached for the process)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def summary() -> dict:
    """Mode, device and versions, for ``mi-course doctor`` and the notebooks' first cell."""
    return {"mode": get_mode(), "requested_mode": requested_mode(), "device": str(get_device())}
