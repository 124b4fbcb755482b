"""A student release (for instructors): ``mi-course release OUT`` writes the repository that learners get.

What it holds: the notebooks (``notebooks/*.ipynb`` as committed, outputs cleared), the exercise stubs as
``mi-course build`` generates them from ``solutions/`` (never the instructor's own ``exercises/``), the public
graded tests (``tests/graded/``) with the ``tests/conftest.py`` they use, the ``mi_course`` package (lite
checkpoints, templates, full-mode configs; the stubs' fingerprints as generated), the Classroom workflow as
generated, ``pyproject.toml``, ``environment.yml``, ``.ci/constraints.txt``, ``.gitignore``, and a student
README and Makefile from ``mi_course/templates/release/`` (``make test`` grades the learner's exercises).

What it leaves out: ``solutions/``, the hidden tests (``tests/hidden/``, see below), ``tests/mutants/``, the
course's own tests (``tests/test_*.py``), ``scripts/`` (training, benchmarks, mutation testing), the notebook
sources (``notebooks/src/``: learners never build notebooks), ``.ci/run``, and what a checkout accumulates
(``.git``, ``.venv``, ``build/``, caches, ``exercises/.history/``).

Hidden tests: an instructor's graded tests that learners must not see live in ``tests/hidden/test_lNN_*.py``,
written like the public ones (``LESSON = "lNN_name"``, the ``impl`` fixture, ``@pytest.mark.exercise``).
``make test`` runs them on the solutions with everything else; a release never contains them.

Before it returns, :func:`release` scans what it wrote for the code of every ``# BEGIN SOLUTION`` block
(:func:`solution_code_in`) and fails when it finds any.
"""

from __future__ import annotations

import io
import json
import os
import re
import tokenize
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mi_course.grading.exercise_files import lesson_modules, solution_spans
from mi_course.paths import PACKAGE_DIR, ROOT_ENV, repo_root

TEMPLATES = PACKAGE_DIR / "templates" / "release"
MANIFEST = ".mi-course-release"  # the files a release wrote, one a line: `release --force` removes stale ones
HIDDEN_TESTS = "tests/hidden"

COPIED = (".gitignore", "pyproject.toml", "environment.yml", ".ci/constraints.txt", "tests/conftest.py",
          "exercises/__init__.py")
COPIED_TREES = ("mi_course", "tests/graded")
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")

MIN_LINE = 25  # shorter lines of a solution block (`return x`, `h = self.W(x)`) say too little to be a leak


class ReleaseError(Exception):
    """The release cannot be written (a bad OUT, a source that is not a course checkout) or is unsafe."""


@dataclass
class Release:
    out: Path
    files: list[str]
    size: int
    warnings: list[str] = field(default_factory=list)


@contextmanager
def _course_root(root: Path):
    """``MI_COURSE_ROOT`` set to ``root`` for the build functions (and the pytest they start)."""
    before = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = before


def _check_out(out: Path, root: Path, force: bool) -> None:
    if out == root or root in out.parents:
        raise ReleaseError(f"{out} is inside the course checkout {root}: write the release somewhere else")
    if out in root.parents:
        raise ReleaseError(f"{out} contains the course checkout {root}: write the release somewhere else")
    if out.exists() and not out.is_dir():
        raise ReleaseError(f"{out} exists and is not a folder")
    present = [p.name for p in out.iterdir() if p.name != ".git"] if out.is_dir() else []
    if present and not force:
        shown = ", ".join(sorted(present)[:5]) + (", ..." if len(present) > 5 else "")
        raise ReleaseError(f"{out} is not empty ({shown}); pass --force to write over it (a .git folder there "
                           f"is kept)")


def _tree_files(root: Path, folder: str) -> list[str]:
    out = []
    for path in sorted((root / folder).rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not SKIPPED_PARTS & set(rel.parts) and not path.name.endswith(SKIPPED_SUFFIXES):
            out.append(rel.as_posix())
    return out


def _clear_outputs(text: str, old_url: str | None, new_url: str | None) -> str:
    import nbformat

    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if new_url and "setup" in cell.metadata.get("tags", []):
                cell.source = cell.source.replace(old_url, new_url)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nbformat.writes(nb) + "\n"


def _readme_section(readme: str, title: str) -> str:
    """The body of ``## title`` in the course README ('' if it has none)."""
    m = re.search(rf"^## {re.escape(title)}\s*\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    return m.group(1).strip("\n") if m else ""


def student_readme(root: Path) -> str:
    """The release's README: the template, with the course README's lesson table and sources."""
    course = (root / "README.md").read_text() if (root / "README.md").exists() else ""
    table = "\n".join(l for l in _readme_section(course, "Lessons").splitlines() if l.startswith("|"))
    sources = _readme_section(course, "Sources")
    text = (TEMPLATES / "README.md").read_text()
    text = text.replace("{lessons}", f"## Lessons\n\n{table}\n\n" if table else "")
    return text.replace("{sources}", f"\n## Sources\n\n{sources}\n" if sources else "")


def release_contents(root: Path, repo_url: str | None = None, log=print) -> tuple[dict[str, bytes], list[str]]:
    """Release path -> contents, and warnings (generated files that the checkout holds stale)."""
    from mi_course.build import (
        CLASSROOM_PATH,
        classroom_workflow,
        collect_exercises,
        expected_exercises,
        expected_notebooks,
    )
    from mi_course.grading.stubs import FINGERPRINTS_PATH, fingerprints_text
    from mi_course.lessons import repo_url as course_url

    warnings: list[str] = []
    files: dict[str, bytes] = {}
    with _course_root(root):
        for rel in [*COPIED, *[f for tree in COPIED_TREES for f in _tree_files(root, tree)]]:
            if not (root / rel).is_file():
                raise ReleaseError(f"the course checkout {root} has no {rel}")
            files[rel] = (root / rel).read_bytes()
        for path, text in expected_exercises().items():
            files[path.relative_to(root).as_posix()] = text.encode()
        # as `mi-course build` writes it: the stubs' fingerprints now, then earlier ones (from the installed
        # package's file), so that a notebook cell holding a stub is never saved over a learner's answer
        fingerprints = FINGERPRINTS_PATH.relative_to(PACKAGE_DIR.parent).as_posix()
        files[fingerprints] = fingerprints_text(root / "solutions").encode()
        if files[fingerprints] != (root / fingerprints).read_bytes():
            warnings.append(f"{fingerprints} is stale in the checkout (the release has it as generated); "
                            f"run `mi-course build`")
        log("collecting the graded tests for the Classroom workflow ...")
        files[CLASSROOM_PATH.as_posix()] = classroom_workflow(collect_exercises()).encode()
        old_url = course_url()
        generated = {p.name: text for p, text in expected_notebooks().items()}
        for path in sorted((root / "notebooks").glob("*.ipynb")):
            text = path.read_text()
            if path.name in generated and generated[path.name] != text:
                warnings.append(f"notebooks/{path.name} differs from what `mi-course build` generates (released "
                                f"as committed); run `mi-course build`")
            files[f"notebooks/{path.name}"] = _clear_outputs(text, old_url, repo_url).encode()
        if repo_url:
            files["pyproject.toml"] = files["pyproject.toml"].decode().replace(
                f'Repository = "{old_url}"', f'Repository = "{repo_url}"').encode()
    files["README.md"] = student_readme(root).encode()
    files["Makefile"] = (TEMPLATES / "Makefile").read_bytes()
    return files, warnings


def release(out: str | Path, root: str | Path | None = None, force: bool = False, repo_url: str | None = None,
            log=print) -> Release:
    """Write the student release of the course checkout ``root`` (default: this one) to ``out``.

    ``out`` must be empty (a ``.git`` folder aside) unless ``force``, and outside the checkout. With ``force``
    the files are written over what is there, and files that an earlier release wrote and this one does not
    are removed; nothing else there is touched. ``repo_url`` replaces the course's URL in the notebooks'
    setup cells (what Colab clones) and in pyproject.toml. Raises :class:`ReleaseError` when the written
    release holds a solution's code."""
    root = Path(root).expanduser().resolve() if root else repo_root()
    out = Path(out).expanduser().resolve()
    if not (root / "solutions").is_dir():
        raise ReleaseError(f"{root} has no solutions/: `mi-course release` is for course authors, run it in "
                           f"the course's own checkout")
    _check_out(out, root, force)
    files, warnings = release_contents(root, repo_url, log)
    files[MANIFEST] = "".join(f"{rel}\n" for rel in sorted([*files, MANIFEST])).encode()
    manifest = out / MANIFEST
    if manifest.is_file():
        for rel in manifest.read_text().splitlines():
            stale = (out / rel).resolve()
            if rel and rel not in files and out in stale.parents and stale.is_file():
                stale.unlink()
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    findings = solution_code_in(out, root / "solutions")
    warnings += [f"{f} (a hint in the lesson: released as written)" for f in findings if f.hint]
    problems = [str(f) for f in findings if not f.hint]
    if problems:
        more = f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ReleaseError(f"the release in {out} holds solution code; do not publish it:\n  "
                           + "\n  ".join(problems[:20]) + more)
    for w in warnings:
        log(f"warning: {w}")
    result = Release(out, sorted(files), sum(len(d) for d in files.values()), warnings)
    log(f"wrote {len(result.files)} files, {result.size / 1e6:.1f} MB, to {out}")
    return result


# ------------------------------------------------------------------------------------------ the leak scan


def _norm(line: str) -> str:
    return " ".join(line.split())


def _code_lines(source: str) -> list[str]:
    """The file's lines with comments removed (by the tokenizer, so a '#' inside a string stays)."""
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            lines[row - 1] = lines[row - 1][:col]
    return lines


@dataclass
class SolutionBlock:
    lesson: str
    exercise: str | None
    where: str  # solutions/lNN_name.py:line
    lines: list[str]  # its substantial lines, normalised

    @property
    def name(self) -> str:
        return f"{self.lesson}.{self.exercise or '?'} ({self.where})"


def solution_blocks(solutions: Path, stubs: list[str] | None = None) -> list[SolutionBlock]:
    """Every ``# BEGIN SOLUTION`` block in ``solutions`` with its substantial lines: whitespace-normalised code
    lines (comments removed) of at least ``MIN_LINE`` characters that are no import and that the generated
    stubs do not hold too (``stubs``: their texts; default: made from ``solutions``)."""
    from mi_course.build import EXERCISE_HEADER
    from mi_course.grading.exercise_files import make_stubs

    modules = lesson_modules(solutions)
    if stubs is None:
        stubs = [EXERCISE_HEADER + make_stubs(p.read_text(), lesson) for lesson, p in modules.items()]
    stub_text = " \n ".join(_norm(l) for text in stubs for l in _code_lines(text))
    blocks = []
    for lesson, path in modules.items():
        source = path.read_text()
        code = _code_lines(source)
        for exercise, first, end in solution_spans(source):
            keep = [l for l in map(_norm, code[first:end]) if len(l) >= MIN_LINE and l not in stub_text
                    and not re.match(r"(import|from)\s", l)]
            blocks.append(SolutionBlock(lesson, exercise, f"solutions/{path.name}:{first}", keep))
    return blocks


def _texts(path: Path, rel: PurePosixPath) -> list[tuple[str, str]]:
    """(tier, text) parts of one release file for the scan; [] for binary data.

    Tiers: "line" (no substantial solution line at all: everything not named below, the notebooks' code cells
    and outputs included), "block" (no block more than half present: the public graded tests, whose reference
    checks share a line here and there with a solution by design), "hint" (the notebooks' markdown: a hint
    that gives more than half of a block is reported, not refused, since the lessons' recipe hints do so on
    purpose), "lesson" (no lesson's solutions more than half present: the mi_course modules, whose canonical
    helpers are a separate concern)."""
    data = path.read_bytes()
    if path.suffix == ".safetensors":  # binary weights after a JSON header: scan the header
        n = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
        data = data[8:8 + n]
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return []
    if "\0" in text:
        return []
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except ValueError:
            return [("line", text)]
        code, markdown = [], []
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            src = "".join(src) if isinstance(src, list) else src
            if cell.get("cell_type") == "code":
                code.append(src)
                for output in cell.get("outputs", []):
                    for value in [output.get("text", "")] + list(output.get("data", {}).values()):
                        code.append("".join(value) if isinstance(value, list) else str(value))
            else:
                markdown.append(src)
        return [("line", "\n".join(code)), ("hint", "\n".join(markdown))]
    if rel.parts[0] == "mi_course" and rel.suffix == ".py":
        return [("lesson", text)]
    if rel.parts[:2] == ("tests", "graded") and rel.name.startswith("test_"):
        return [("block", text)]
    return [("line", text)]


@dataclass
class Finding:
    path: str
    message: str
    hint: bool = False  # a notebook hint (reported), not a leak (refused)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def solution_code_in(folder: Path, solutions: Path, blocks: list[SolutionBlock] | None = None) -> list[Finding]:
    """Where a file under ``folder`` holds a solution block's code ([] if nowhere); see :func:`_texts`."""
    folder = Path(folder)
    blocks = solution_blocks(solutions) if blocks is None else blocks
    lessons: dict[str, set[str]] = {}
    for b in blocks:
        lessons.setdefault(b.lesson, set()).update(b.lines)
    found: list[Finding] = []
    for path in sorted(folder.rglob("*")):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if not path.is_file() or ".git" in rel.parts:
            continue
        for tier, text in _texts(path, rel):
            flat = _norm(text)
            if tier == "line":
                found += [Finding(str(rel), f"a line of solution {b.name}: {l!r}")
                          for b in blocks for l in b.lines if l in flat]
            elif tier in ("block", "hint"):
                for b in blocks:
                    n = sum(l in flat for l in b.lines)
                    if b.lines and 2 * n > len(b.lines):
                        found.append(Finding(str(rel), f"{n} of the {len(b.lines)} lines of solution {b.name}",
                                             hint=tier == "hint"))
            else:
                for lesson, lines in sorted(lessons.items()):
                    n = sum(l in flat for l in lines)
                    if lines and 2 * n > len(lines):
                        found.append(Finding(str(rel), f"{n} of the {len(lines)} solution lines of lesson {lesson}"))
    return found
