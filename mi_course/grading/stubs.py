"""Which code is an untouched exercise stub: the fingerprints of every stub, kept by ``mi-course build``.

A notebook's ``%%exercise`` cell holds the stub until the learner answers in it. A fresh copy of the notebook
(after ``git pull``, on Colab, in ``mi-course run``) holds the stub again while ``exercises/`` already holds the
answer, and such a cell must never be saved over the answer. The magic recognises it by its fingerprint
(:func:`~mi_course.grading.exercise_files.code_fingerprint`, blind to docstrings and comments). The file keeps
the fingerprints of earlier versions of each stub too, so a notebook from an older checkout is recognised.
It lives in the package, so a student release without ``solutions/`` has it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from mi_course.grading.exercise_files import ExerciseId, code_fingerprint, lesson_modules, stub_regions
from mi_course.paths import PACKAGE_DIR

FINGERPRINTS_PATH = PACKAGE_DIR / "templates" / "stub_fingerprints.json"


@lru_cache(maxsize=1)
def _known() -> dict[str, frozenset[str]]:
    if not FINGERPRINTS_PATH.exists():
        return {}
    return {eid: frozenset(fps) for eid, fps in json.loads(FINGERPRINTS_PATH.read_text()).items()}


def is_untouched_stub(eid: ExerciseId, code: str) -> bool:
    """True when ``code`` is exercise ``eid``'s stub, as generated (now or in an earlier version)."""
    try:
        fingerprint = code_fingerprint(code)
    except SyntaxError:
        return False
    return fingerprint in _known().get(str(eid), frozenset())


def fingerprints_text(solutions_folder: Path) -> str:
    """The file's expected contents: each exercise's current stub fingerprint first, earlier ones after it."""
    earlier = json.loads(FINGERPRINTS_PATH.read_text()) if FINGERPRINTS_PATH.exists() else {}
    out: dict[str, list[str]] = {}
    for lesson, path in lesson_modules(solutions_folder).items():
        for name, stub in stub_regions(path.read_text(), lesson).items():
            eid = str(ExerciseId(lesson, name))
            current = code_fingerprint(stub)
            out[eid] = [current] + [fp for fp in earlier.get(eid, []) if fp != current]
    return json.dumps(dict(sorted(out.items())), indent=1) + "\n"
