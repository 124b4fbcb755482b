"""The ``%%exercise 08.ToyModel`` cell magic: the learner answers in the notebook, pytest grades the file.

Running the cell writes its code into that exercise's region of ``exercises/lNN_*.py`` (the file pytest
and ``check`` grade), re-imports the module, and puts the names it defines into the notebook. In
solutions mode (``MI_COURSE_IMPL=solutions``, used to execute notebooks headless) the cell is not
written; the reference implementation is used instead.
"""

from __future__ import annotations

import os

from mi_course.grading.exercise_files import (ExerciseId, keep_docstrings, lesson_modules, region_text,
                                              replace_region, top_level_names)
from mi_course.grading.impl import load_impl
from mi_course.grading.plugin import IMPL_ENV
from mi_course.paths import ensure_importable


def lesson_file(eid: ExerciseId, impl: str):
    files = lesson_modules(ensure_importable() / impl)
    if eid.lesson not in files:
        raise FileNotFoundError(f"no {impl}/l{eid.lesson}_*.py for exercise {eid}")
    return files[eid.lesson]


def run_exercise_cell(line: str, cell: str, user_ns: dict) -> None:
    """Body of the magic (plain function so it is testable without IPython)."""
    eid = ExerciseId.parse(line)
    impl = os.environ.get(IMPL_ENV) or "exercises"
    if impl != "exercises":
        module = load_impl(lesson_file(eid, "solutions").stem, impl)
        user_ns[eid.name] = getattr(module, eid.name)
        print(f"({impl} mode: using the reference {eid.name}; your cell was not saved)")
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
    try:  # the file's docstrings are the exercise's contract: keep those the cell left out
        cell = keep_docstrings(cell, region_text(source, eid.name))
    except (KeyError, SyntaxError):  # no region yet, or a region the learner broke by hand
        pass
    updated = replace_region(source, eid.name, cell)
    if updated != source:
        path.write_text(updated)
    module = load_impl(path.stem, "exercises", reload=True)
    for name in names:
        user_ns[name] = getattr(module, name)
    print(f"Saved {eid.name} to exercises/{path.name}. Check it with check({str(eid)!r}).")


def load_ipython_extension(ipython) -> None:
    from IPython.core.magic import register_cell_magic

    @register_cell_magic
    def exercise(line, cell):  # noqa: D401 (IPython wants this name)
        run_exercise_cell(line, cell, ipython.user_ns)
