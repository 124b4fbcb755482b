"""The ``%%exercise 08.ToyModel`` cell magic: the learner answers in the notebook, pytest grades the file.

Running the cell writes its code into that exercise's region of ``exercises/lNN_*.py`` (the file pytest
and ``check`` grade), re-imports the module, and puts the names it defines into the notebook.

Nothing a learner wrote is lost: a cell that still holds the untouched stub (a fresh copy of the notebook,
"Run all" after ``git pull``, ``mi-course run``, Colab opening the notebook anew) is never saved over an
answer in the file; the answer is loaded from the file instead, and the cell says so. When a cell does
replace an answer, the replaced answer is kept in ``exercises/.history/`` (unless this kernel wrote it:
re-running an edited cell makes no copies).

With ``MI_COURSE_IMPL=solutions`` (course authors and CI execute notebooks so) or a folder of lesson
modules, the cell is not written; that implementation is used instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mi_course.grading.exercise_files import (
    ExerciseId,
    keep_docstrings,
    lesson_modules,
    region_text,
    regions,
    replace_region,
    top_level_names,
)
from mi_course.grading.impl import impl_folder, load_impl
from mi_course.grading.plugin import IMPL_ENV
from mi_course.grading.stubs import is_untouched_stub

HISTORY_DIR = ".history"  # inside exercises/: answers a cell replaced, one file per replacement
_saved_here: dict[str, str] = {}  # exercise id -> the region this kernel last wrote (re-runs need no backup)


def lesson_file(eid: ExerciseId, impl: str) -> Path:
    files = lesson_modules(impl_folder(impl))
    if eid.lesson not in files:
        raise FileNotFoundError(f"no {impl}/l{eid.lesson}_*.py for exercise {eid}")
    return files[eid.lesson]


def _define(user_ns: dict, module, names) -> None:
    for name in names:
        if hasattr(module, name):
            user_ns[name] = getattr(module, name)


def _use_other_impl(eid: ExerciseId, impl: str, user_ns: dict) -> None:
    path = lesson_file(eid, impl)
    module = load_impl(path.stem, impl)
    user_ns[eid.name] = getattr(module, eid.name)
    source = "the reference solution" if impl == "solutions" else "your folder's version"
    print(f"({IMPL_ENV}={impl}: using {source} of {eid.name}, from {path}; this cell was not saved)")


def _keep_answer(eid: ExerciseId, path: Path, answer: str, user_ns: dict) -> None:
    """The cell holds the stub, the file an answer: load the answer, write nothing."""
    rel = f"exercises/{path.name}"
    try:
        names = top_level_names(answer)
    except SyntaxError as err:
        print(f"Your answer to {eid} in {rel} has a SyntaxError (line {err.lineno} of the exercise: {err.msg}). "
              "This cell still holds the untouched stub, so it was not saved over your answer: fix the file, "
              "or paste your answer into this cell and run it.")
        return
    module = load_impl(path.stem, "exercises", reload=True)
    _define(user_ns, module, names)
    first = regions(path.read_text())[eid.name][0] + 1
    print(f"Kept your answer to {eid} from {rel} (line {first}): this cell still holds the untouched stub, "
          f"so it was not saved over your answer. The notebook uses your answer. To change it, edit the "
          f"file, or paste your answer into this cell, edit it and run the cell.")


def _back_up(path: Path, name: str, old: str) -> Path:
    """Keep an answer that a cell is about to replace, so that nothing written is lost for good."""
    folder = path.parent / HISTORY_DIR / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = folder / f"{name}-{stamp}.py"
    n = 1
    while backup.exists():
        n += 1
        backup = folder / f"{name}-{stamp}-{n}.py"
    backup.write_text(old)
    return backup


def run_exercise_cell(line: str, cell: str, user_ns: dict) -> None:
    """Body of the magic (plain function so it is testable without IPython)."""
    eid = ExerciseId.parse(line)
    impl = os.environ.get(IMPL_ENV) or "exercises"
    if impl != "exercises":
        _use_other_impl(eid, impl, user_ns)
        return
    try:
        names = top_level_names(cell)
    except SyntaxError as err:
        print(f"SyntaxError in your {eid.name}, line {err.lineno}: {err.msg}. Nothing was saved.")
        return
    if eid.name not in names:
        print(f"This cell must define {eid.name} (it defines: {', '.join(sorted(names)) or 'nothing'}). "
              "Nothing was saved.")
        return
    path = lesson_file(eid, "exercises")
    source = path.read_text()
    try:
        current = region_text(source, eid.name)
    except (KeyError, ValueError):  # no region yet, or markers the learner broke by hand
        current = None
    if current is not None and is_untouched_stub(eid, cell) and not is_untouched_stub(eid, current):
        _keep_answer(eid, path, current, user_ns)
        return
    if current is not None:  # the file's docstrings are the exercise's contract: keep those the cell left out
        try:
            cell = keep_docstrings(cell, current)
        except SyntaxError:  # a region the learner broke by hand
            pass
    updated = replace_region(source, eid.name, cell)
    if updated != source:
        if current is not None and not is_untouched_stub(eid, current) and current != _saved_here.get(str(eid)):
            backup = _back_up(path, eid.name, current)
            print(f"(your previous {eid.name} is kept in exercises/{backup.relative_to(path.parent)})")
        path.write_text(updated)
    _saved_here[str(eid)] = region_text(updated, eid.name)
    module = load_impl(path.stem, "exercises", reload=True)
    _define(user_ns, module, names)
    print(f"Saved {eid.name} to exercises/{path.name}. Check it with check({str(eid)!r}).")


def load_ipython_extension(ipython) -> None:
    from IPython.core.magic import register_cell_magic

    @register_cell_magic
    def exercise(line, cell):  # noqa: D401 (IPython wants this name)
        run_exercise_cell(line, cell, ipython.user_ns)
