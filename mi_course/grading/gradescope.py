"""Gradescope: ``mi-course gradescope OUT.zip`` writes an autograder, and ``gradescope-run`` is what it runs.

The zip holds the course as a student release has it (the package, the generated exercise stubs, the public
graded tests) plus the instructor's hidden tests (``tests/hidden``), never ``solutions/``, with Gradescope's
``setup.sh`` (installs the course in a venv) and ``run_autograder`` (from
``mi_course/templates/gradescope/``). Gradescope unpacks it in ``/autograder/source``; for each submission
``run_autograder`` grades ``/autograder/submission`` with class grading (:mod:`mi_course.grading.classroom`)
and writes ``/autograder/results/results.json``. The root is configurable (``--root``, or
``MI_COURSE_AUTOGRADER_ROOT`` for the script), so the whole flow can be tried on a fake tree.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import traceback
import zipfile
from pathlib import Path

from mi_course.grading.release import HIDDEN_TESTS, release_contents
from mi_course.paths import PACKAGE_DIR, repo_root

TEMPLATES = PACKAGE_DIR / "templates" / "gradescope"
SCRIPTS = ("setup.sh", "run_autograder")
LEFT_OUT = ("notebooks/", "README.md", "Makefile", ".github/")  # a student's files the autograder does not use


def autograder_files(root: Path | None = None, log=print) -> dict[str, bytes]:
    """Zip path -> contents."""
    root = Path(root or repo_root())
    files, _ = release_contents(root, log=log)
    files = {rel: data for rel, data in files.items() if not rel.startswith(LEFT_OUT)}
    for path in sorted((root / HIDDEN_TESTS).glob("*.py")) if (root / HIDDEN_TESTS).is_dir() else []:
        files[f"{HIDDEN_TESTS}/{path.name}"] = path.read_bytes()
    for name in SCRIPTS:
        files[name] = (TEMPLATES / name).read_bytes()
    return files


def write_autograder(out: str | Path, root: Path | None = None, log=print) -> Path:
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"the autograder is a .zip; got {out.name}")
    files = autograder_files(root, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, data in sorted(files.items()):
            info = zipfile.ZipInfo(rel, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if rel in SCRIPTS else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    log(f"wrote {out} ({len(files)} files, {out.stat().st_size / 1e6:.1f} MB): upload it as the "
        f"assignment's autograder (Gradescope: Configure Autograder, zip file upload)")
    return out


def run(root: str | Path = "/autograder", log=print) -> int:
    """Grade ``root/submission`` and write ``root/results/results.json`` (always: a failure is a report too)."""
    from mi_course.grading.classroom import grade_class

    root = Path(root)
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="mi-gradescope-") as tmp:
            graded = grade_class([root / "submission"], Path(tmp) / "out", log=log)
            if not graded:
                raise RuntimeError("the submission could not be read")
            shutil.copyfile(Path(tmp) / "out" / graded[0].student / "results.json", results_path)
    except Exception as err:  # noqa: BLE001 - the student must get a report, and the instructor the reason
        results_path.write_text(json.dumps({
            "score": 0, "visibility": "visible", "tests": [],
            "output": f"The autograder could not grade this submission ({type(err).__name__}: {err}). "
                      f"Your instructor has been told; nothing you submitted was lost.",
        }, indent=2) + "\n")
        log(traceback.format_exc())
        return 1
    return 0
