"""Where the course's folders are: the repository root holds notebooks/, exercises/, solutions/, tests/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT_ENV = "MI_COURSE_ROOT"
CHECKPOINTS_ENV = "MI_COURSE_CHECKPOINTS"
PACKAGE_DIR = Path(__file__).resolve().parent


def checkpoint_dir() -> Path:
    """The folder of shipped lite checkpoints (``$MI_COURSE_CHECKPOINTS`` overrides it, e.g. in tests)."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or PACKAGE_DIR / "checkpoints")


def _is_root(path: Path) -> bool:
    return (path / "exercises").is_dir() and (path / "tests").is_dir()


def repo_root() -> Path:
    """The course checkout: ``$MI_COURSE_ROOT``, else the checkout this package was installed from
    (editable install), else the nearest parent of the working directory that looks like one."""
    env = os.environ.get(ROOT_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_root(path):
            raise FileNotFoundError(f"{ROOT_ENV}={env} does not contain exercises/ and tests/")
        return path
    for path in (PACKAGE_DIR.parent, *[Path.cwd(), *Path.cwd().parents]):
        if _is_root(path):
            return path
    raise FileNotFoundError(
        "cannot find the course checkout (a folder with exercises/ and tests/). Install the course "
        "with `pip install -e .` from a clone, run from inside the clone, or set MI_COURSE_ROOT."
    )


def ensure_importable() -> Path:
    """Put the checkout on sys.path so `import exercises.x` / `import solutions.x` work; return it."""
    root = repo_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root
