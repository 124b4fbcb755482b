"""Import the implementation of a lesson that is being graded or used in a notebook."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from mi_course.paths import ensure_importable

KNOWN = ("exercises", "solutions")


class ImplementationImportError(ImportError):
    """The lesson file could not be imported (a syntax error, a bad import, an error at top level)."""


def impl_folder(impl: str) -> Path:
    if impl in KNOWN:
        return ensure_importable() / impl
    path = Path(impl).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"impl must be 'exercises', 'solutions' or an existing folder; got {impl!r}")
    return path


def load_impl(lesson_module: str, impl: str = "exercises", reload: bool = False) -> ModuleType:
    """The module ``lesson_module`` (e.g. 'l08_superposition') from ``impl``."""
    folder = impl_folder(impl)
    path = folder / f"{lesson_module}.py"
    if not path.exists():
        raise FileNotFoundError(f"no lesson file {path}")
    try:
        if impl in KNOWN:
            name = f"{impl}.{lesson_module}"
            if reload and name in sys.modules:
                return importlib.reload(sys.modules[name])
            return importlib.import_module(name)
        spec = importlib.util.spec_from_file_location(f"_mi_impl_{folder.name}_{lesson_module}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception as err:  # a learner's file: say which and why, briefly
        line = f" line {err.lineno}" if isinstance(err, SyntaxError) else ""
        raise ImplementationImportError(
            f"could not import {path}{line}: {type(err).__name__}: {err}. Fix that file (or re-run its "
            f"exercise cell) before grading."
        ) from err
