"""One helper for notebook cells that state what a *trained* model does.

    claim("layer 1 holds an induction head (score above 0.4)", lambda: scores[1].max() > 0.4, seen=scores[1].max())

Where a claim is checked depends on where it was measured:

* lite mode: the claims were measured on the shipped organisms (and are tests, on other inputs), so a claim
  that fails raises and stops "Run all";
* a dry run (``make dry-run``: full mode at random weights): no claim can hold, so it is skipped and says so;
* full mode: a claim is checked like a lite one only once it has been measured on the real weights, that is
  recorded as holding in ``mi_course/templates/full_claims.json`` (written by ``mi-course verify-full``, which
  an instructor with a GPU and network runs once). Until then it prints a visible warning that names it, says
  whether it held and what was seen, and "Run all" goes on.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from mi_course.config import get_mode, random_weights
from mi_course.paths import PACKAGE_DIR

RECORD_PATH = PACKAGE_DIR / "templates" / "full_claims.json"
VERIFY_ENV = "MI_COURSE_VERIFY_FULL"  # a JSON-lines file: claims are recorded there, never raised (verify-full)
SEEN_CHARS = 200


def _seen_text(seen: Any) -> str:
    if seen is None:
        return ""
    if hasattr(seen, "item") and getattr(seen, "numel", lambda: 2)() == 1:
        seen = seen.item()
    text = f"{seen:.4g}" if isinstance(seen, float) else repr(seen)
    return text[:SEEN_CHARS]


def recorded_claims(path: Path | None = None) -> dict[str, dict]:
    """Statement -> its record from the last ``mi-course verify-full`` ({} when none was made)."""
    path = Path(path or RECORD_PATH)
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("claims", {})


def claim(statement: str, holds: bool | Callable[[], bool], *, seen: Any = None) -> None:
    """Check ``statement`` about the trained model: ``holds`` is a bool, or a function returning one (only
    called when the claim is evaluated); ``seen`` is the measured value the statement is about, shown when
    the claim is warned about or recorded. Prints a tick when it holds; see the module docstring for when a
    failing claim raises AssertionError, warns, or is recorded. Returns nothing, so that a cell ending in a
    claim shows only the printed line (no stray ``True``)."""
    if random_weights():
        print(f"dry run: random weights, claim not checked: {statement}")
        return
    held = bool(holds() if callable(holds) else holds)
    seen_text = _seen_text(seen)
    if get_mode() == "full":
        verify = os.environ.get(VERIFY_ENV)
        if verify:
            with open(verify, "a") as f:
                f.write(json.dumps({"statement": statement, "held": held, "seen": seen_text}) + "\n")
            print(f"recorded for verify-full: {'holds' if held else 'does NOT hold'}: {statement}"
                  + (f" (seen: {seen_text})" if seen_text else ""))
            return
        record = recorded_claims().get(statement)
        if not (record and record.get("held")):
            why = "measured not to hold on the real weights" if record else "not yet measured on the real weights"
            print(f"\u26a0 {why}: {statement}: {'holds' if held else 'does NOT hold'} here"
                  + (f" (seen: {seen_text})" if seen_text else "")
                  + ". An instructor checks every full-mode claim once with `mi-course verify-full`.",
                  file=sys.stderr)
            return
    if not held:
        raise AssertionError(f"claim does not hold: {statement}" + (f" (seen: {seen_text})" if seen_text else ""))
    print(f"\u2713 {statement}")


def merge_records(lines: list[dict], path: Path | None = None, *, device: str = "", today: str | None = None) -> dict:
    """Fold ``verify-full``'s recorded lines into the record file: a statement holds when it held every time
    it was evaluated. Returns the new file's contents."""
    path = Path(path or RECORD_PATH)
    data = json.loads(path.read_text()) if path.exists() else {}
    claims = dict(data.get("claims", {}))
    fresh: dict[str, dict] = {}
    for line in lines:
        statement = str(line.get("statement", ""))
        if not statement:
            continue
        entry = fresh.setdefault(statement, {"held": True, "seen": []})
        entry["held"] = entry["held"] and bool(line.get("held"))
        if line.get("seen"):
            entry["seen"].append(str(line["seen"])[:SEEN_CHARS])
    measured = today or date.today().isoformat()
    for statement, entry in fresh.items():
        claims[statement] = {"held": entry["held"], "seen": entry["seen"][:5], "measured": measured,
                             "device": device}
    data = {"about": "full-mode claims measured on the real weights by `mi-course verify-full`",
            "claims": dict(sorted(claims.items()))}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data
