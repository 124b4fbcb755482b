"""One helper for notebook cells that state what a *trained* model does.

    claim("layer 1 holds an induction head (score above 0.4)", lambda: scores[1].max() > 0.4)

A dry run (``make dry-run``: full mode at random weights) executes every cell, but random weights make no
such claim true, so there the claim is skipped and says so; everywhere else it is checked.
"""

from __future__ import annotations

from typing import Callable

from mi_course.config import random_weights


def claim(statement: str, holds: bool | Callable[[], bool]) -> None:
    """Check ``statement`` about the trained model: ``holds`` is a bool, or a function returning one (only
    called when the claim is checked). Prints a tick when it holds and raises AssertionError naming the
    statement when it does not; in a dry run prints that it was not checked. Returns nothing, so that a cell
    ending in a claim shows only the printed line (no stray ``True``)."""
    if random_weights():
        print(f"dry run: random weights, claim not checked: {statement}")
        return
    if not (holds() if callable(holds) else holds):
        raise AssertionError(f"claim does not hold: {statement}")
    print(f"\u2713 {statement}")
