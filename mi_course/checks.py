"""Argument checks for the public entry points of the lesson library, with the wording learners see.

Each raises ``ValueError`` naming the argument, what was expected and what came (``repr``), and returns the
value as the plain Python type the caller goes on with. Private helpers trust their callers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _also(what: str) -> str:
    return f" ({what})" if what else ""


def int_at_least(name: str, value: Any, low: int, what: str = "") -> int:
    """``value`` as an int, if it is one (numpy ints too, never a bool) and ``>= low``."""
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an int >= {low}{_also(what)}, got {value!r}")
    return int(value)


def index_in(name: str, value: Any, size: int, what: str) -> int:
    """``value`` as an index into ``size`` things (``what``): an int (or a 0-d integer tensor) in 0..size-1."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = int(value)
    if not _is_int(value):
        raise ValueError(f"{name} must be an int in 0..{size - 1} ({what}), got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be in 0..{size - 1} ({what}), got {value}")
    return int(value)


def number_above(name: str, value: Any, low: float, *, or_equal: bool = False, what: str = "") -> float:
    """``value`` as a float, if it is a finite real number ``> low`` (``>= low`` with ``or_equal``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{_also(what)}, got {value!r}")
    if value < low or (value == low and not or_equal):
        raise ValueError(f"{name} must be a number {'>=' if or_equal else '>'} {low:g}{_also(what)}, got {value!r}")
    return float(value)
