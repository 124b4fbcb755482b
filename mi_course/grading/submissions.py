"""A student's submission, read without trusting it: only ``exercises/lNN_*.py`` is taken.

A submission is a folder (a checkout), a git repository (its ``HEAD`` commit, read with ``git show``: no
checkout, no hooks) or a zip of a student's repository. Only files named like the course's own lesson files
(``exercises/l08_superposition.py``) are taken, from ``exercises/`` at the top or one folder down (a zip of
``alice-repo/``); everything else the student sent is ignored. Symlinks, files over :data:`MAX_FILE_BYTES`,
names outside the course's lessons and paths that climb out of the submission are skipped with a note.
"""

from __future__ import annotations

import re
import stat
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 1 << 20  # a lesson file is tens of kB; more is not an answer
LESSON_FILE = re.compile(r"^l\d\d_\w+\.py$")


class SubmissionError(Exception):
    """A submission that cannot be read at all (not a folder, git repository or zip)."""


@dataclass
class Submission:
    student: str  # a name safe for a folder and a CSV cell
    source: Path
    files: dict[str, bytes] = field(default_factory=dict)  # lesson module name ("l08_superposition") -> source
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def student_name(path: Path, taken: set[str]) -> str:
    """The submission's name (zip stem, folder name), made safe, unique among ``taken``."""
    stem = path.name.removesuffix(".zip").removesuffix(".git") or "student"
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "student"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _pick(candidates: dict[PurePosixPath, bytes | None], known: set[str], sub: Submission) -> None:
    """Keep ``exercises/<known lesson>.py`` at depth 0 or 1 (the shallowest wins); note the rest."""
    chosen: dict[str, tuple[int, PurePosixPath]] = {}
    for rel in sorted(candidates, key=lambda p: (len(p.parts), str(p))):
        parts = rel.parts
        if len(parts) < 2 or parts[-2] != "exercises" or len(parts) > 3 or not LESSON_FILE.match(parts[-1]):
            continue
        module = parts[-1][:-3]
        if module not in known:
            sub.notes.append(f"skipped {rel}: not a lesson of this course")
            continue
        if module in chosen:
            sub.notes.append(f"skipped {rel}: {chosen[module][1]} was taken for {module}")
            continue
        data = candidates[rel]
        if data is None:
            sub.notes.append(f"skipped {rel}: a symlink, or larger than {MAX_FILE_BYTES} bytes")
            continue
        chosen[module] = (len(parts), rel)
        sub.files[module] = data


def _from_folder(path: Path, known: set[str], sub: Submission) -> None:
    candidates: dict[PurePosixPath, bytes | None] = {}
    for top in (path, *[p for p in sorted(path.iterdir()) if p.is_dir() and not p.is_symlink()]):
        folder = top / "exercises"
        if folder.is_symlink() or not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            rel = PurePosixPath(f.relative_to(path).as_posix())
            info = f.lstat()
            ok = stat.S_ISREG(info.st_mode) and info.st_size <= MAX_FILE_BYTES
            candidates[rel] = f.read_bytes() if ok else None
    _pick(candidates, known, sub)


def _from_zip(path: Path, known: set[str], sub: Submission) -> None:
    candidates: dict[PurePosixPath, bytes | None] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                rel = PurePosixPath(info.filename)
                if info.is_dir() or rel.is_absolute() or ".." in rel.parts or "\\" in info.filename:
                    continue
                if len(rel.parts) > 3 or not LESSON_FILE.match(rel.name):
                    continue
                is_link = stat.S_ISLNK(info.external_attr >> 16)
                data = None
                if not is_link and info.file_size <= MAX_FILE_BYTES:
                    with archive.open(info) as f:  # read at most the cap, whatever the header claims
                        data = f.read(MAX_FILE_BYTES + 1)
                candidates[rel] = data if data is not None and len(data) <= MAX_FILE_BYTES else None
    except (zipfile.BadZipFile, OSError) as err:
        raise SubmissionError(f"{path.name}: not a readable zip ({err})") from None
    _pick(candidates, known, sub)


def _git(path: Path, *args: str) -> bytes:
    cmd = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "safe.directory=*",
           "-C", str(path), *args]
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60,
                          env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "HOME": "/nonexistent",
                               "PATH": "/usr/bin:/bin"}).stdout


def _from_git(path: Path, known: set[str], sub: Submission) -> None:
    try:
        listing = _git(path, "ls-tree", "-r", "-l", "--full-tree", "HEAD").decode(errors="replace")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        raise SubmissionError(f"{path.name}: a git repository without a readable HEAD commit ({err})") from None
    candidates: dict[PurePosixPath, bytes | None] = {}
    for line in listing.splitlines():
        meta, _, name = line.partition("\t")
        fields = meta.split()
        rel = PurePosixPath(name)
        if len(fields) < 4 or len(rel.parts) > 3 or not LESSON_FILE.match(rel.name):
            continue
        mode, kind, size = fields[0], fields[1], fields[3]
        ok = kind == "blob" and mode in ("100644", "100755") and size.isdigit() and int(size) <= MAX_FILE_BYTES
        candidates[rel] = _git(path, "cat-file", "blob", fields[2]) if ok else None
    _pick(candidates, known, sub)


def read_submission(path: str | Path, known: set[str], taken: set[str]) -> Submission:
    """The lesson files of one submission (``known``: the course's lesson module names)."""
    path = Path(path)
    sub = Submission(student_name(path, taken), path)
    if path.is_symlink():
        raise SubmissionError(f"{path}: a symlink; pass the submission itself")
    if path.is_file() and zipfile.is_zipfile(path):
        _from_zip(path, known, sub)
    elif path.is_dir() and ((path / ".git").exists() or (path / "HEAD").is_file() and (path / "objects").is_dir()):
        _from_git(path, known, sub)
    elif path.is_dir():
        _from_folder(path, known, sub)
    else:
        raise SubmissionError(f"{path}: expected a folder, a git repository or a .zip of a student's repository")
    if not sub.files:
        sub.notes.append("no exercises/lNN_*.py found: every exercise earns 0")
    return sub
