"""The ``mi-course`` command: doctor, lab, run, export, grade, build."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGES = ("torch", "torchvision", "torch-lucent", "transformer-lens", "sae-lens", "circuitsvis", "numpy",
            "jupyterlab", "einops", "matplotlib")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cmd_doctor(args) -> int:
    from mi_course import config
    from mi_course.models import available_models
    from mi_course.paths import repo_root

    print(f"python        {sys.version.split()[0]}  ({sys.executable})")
    for dist in PACKAGES:
        print(f"{dist:<13} {_version(dist)}")
    info = config.summary()
    print(f"mode          {info['mode']} (asked: {info['requested_mode']}; set MI_COURSE_MODE=full|lite|auto)")
    print(f"device        {info['device']}")
    try:
        print(f"course root   {repo_root()}")
    except FileNotFoundError as err:
        print(f"course root   not found: {err}")
    print("\nmodels (role: lite | full)")
    for row in available_models():
        print(f"  {row['role']:<17} {row['lite']:<12} | {row['full']}")
    return 0


# JupyterLab's defaults for a learner: no "get notified about official Jupyter news?" toast, no update check.
# Defaults only: a learner's own settings (and Settings > Notifications) still win.
LAB_SETTING_DEFAULTS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                                        "checkForUpdates": False}}


def lab_command(notebook_dir: Path | None = None, extra: list[str] | tuple = ()) -> tuple[list[str], dict]:
    """The JupyterLab command line ``mi-course lab`` runs, and its environment.

    The setting defaults go in a labconfig/default_setting_overrides.json on JUPYTER_CONFIG_PATH (written
    under build/), which JupyterLab layers under the user's settings; the server is told not to fetch news
    or check for updates either.
    """
    from mi_course.paths import repo_root

    config_dir = repo_root() / "build" / "jupyter-config"
    overrides = config_dir / "labconfig" / "default_setting_overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps(LAB_SETTING_DEFAULTS, indent=2) + "\n")
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(config_dir)] + ([env["JUPYTER_CONFIG_PATH"]]
                                                                     if env.get("JUPYTER_CONFIG_PATH") else []))
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir or repo_root() / 'notebooks'}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *extra]
    return cmd, env


def cmd_lab(args) -> int:
    cmd, env = lab_command(extra=args.extra)
    return subprocess.call(cmd, env=env)


IMPL_WORDS = {"exercises": "your exercises", "solutions": "the reference solutions"}


def cmd_run(args) -> int:
    from mi_course.config import DRY_RUN_ENV
    from mi_course.lessons import executed_dir, notebook_paths, run_notebook

    mode = "full" if args.dry_run else args.mode
    # the dry run's copies sit beside the lite ones, which `mi-course export` and the browser check read
    default_out = executed_dir().with_name("notebooks-dry-run") if args.dry_run else executed_dir()
    out_dir = Path(args.out) if args.out else default_out
    dry_run_before = os.environ.get(DRY_RUN_ENV)
    if args.dry_run:  # the kernels inherit it: full mode builds random-weight models offline
        os.environ[DRY_RUN_ENV] = "1"

    def run_one(path: Path):
        print(f"running {path.name} ({mode} mode{', dry run' if args.dry_run else ''}, "
              f"{IMPL_WORDS.get(args.impl, args.impl)}) ...", flush=True)
        result = run_notebook(path, out_dir, cell_timeout=args.cell_timeout, impl=args.impl, mode=mode)
        if result.status == "ok" and args.limit and result.seconds > args.limit:
            result.status, result.error = "too slow", f"took {result.seconds:.0f}s, limit {args.limit:.0f}s"
        return result

    try:  # each notebook runs in a kernel process of its own: --jobs N runs N of them at once
        paths = notebook_paths(args.notebooks)
        # with several at once, the later lessons (the larger models, the longest runs) start first
        order = reversed(range(len(paths))) if args.jobs > 1 else range(len(paths))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {i: pool.submit(run_one, paths[i]) for i in order}
            results = [futures[i].result() for i in range(len(paths))]  # reported in the lessons' order
    finally:
        if dry_run_before is None:
            os.environ.pop(DRY_RUN_ENV, None)
        else:
            os.environ[DRY_RUN_ENV] = dry_run_before
    width = max([8] + [len(r.notebook) for r in results])
    print(f"\n{'notebook':<{width}}  {'seconds':>7}  status")
    for r in results:
        print(f"{r.notebook:<{width}}  {r.seconds:7.1f}  {r.status}{': ' + r.error if r.error else ''}")
    print(f"executed copies in {out_dir}")
    if args.impl == "exercises" and any("not started yet" in r.error for r in results):
        print("A notebook stopped at an exercise you have not answered yet: answer it in the notebook (or in "
              "exercises/), or run the reference solutions with --impl solutions.")
    return 0 if all(r.status == "ok" for r in results) else 1


def cmd_export(args) -> int:
    from mi_course.export import export_html, export_sources
    from mi_course.paths import repo_root

    out_dir = Path(args.out) if args.out else repo_root() / "build" / "html"
    for path, executed in export_sources(args.notebooks):
        out = export_html(path, out_dir)
        note = "" if executed else "  (no outputs: `mi-course run` it first to include them)"
        print(f"{path.name} -> {out} ({out.stat().st_size / 1e6:.1f} MB){note}")
    return 0


def cmd_grade(args) -> int:
    from mi_course.grading.report import write_json, write_junit
    from mi_course.grading.runner import grade, print_report

    rows = grade(args.impl, lessons=args.lesson, exercises=args.exercise, test_timeout=args.timeout,
                 judge=args.judge)
    print_report(rows, args.impl)
    if args.json:
        write_json(rows, Path(args.json), args.impl)
    if args.junit:
        write_junit(rows, Path(args.junit))
    if args.strict and (not rows or any(r.status != "passed" for r in rows)):
        return 1
    return 0


def cmd_grade_class(args) -> int:
    from mi_course.grading.classroom import grade_class

    results = grade_class(args.submissions, args.out, jobs=args.jobs, lessons=args.lesson,
                          student_seconds=args.student_seconds)
    for r in results:
        flags = f", {len(r.flags)} flag(s)" if r.flags else ""
        print(f"{r.student:<24} {r.earned:>4}/{r.possible}{flags}")
    return 0


def cmd_verify_full(args) -> int:
    import tempfile

    import torch

    from mi_course.claims import RECORD_PATH, VERIFY_ENV, merge_records
    from mi_course.config import DRY_RUN_ENV
    from mi_course.lessons import executed_dir, notebook_paths, run_notebook

    if os.environ.get(DRY_RUN_ENV):
        print("mi-course verify-full measures the real weights: unset MI_COURSE_DRY_RUN", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    lines, failed = [], []
    with tempfile.TemporaryDirectory(prefix="mi-verify-") as tmp:
        for path in notebook_paths(args.notebooks):
            record = Path(tmp) / f"{path.stem}.jsonl"
            os.environ[VERIFY_ENV] = str(record)  # the notebook's kernel inherits it: claims are recorded
            try:
                print(f"running {path.name} in full mode on the real weights ...", flush=True)
                result = run_notebook(path, executed_dir().with_name("notebooks-full"), cell_timeout=args.cell_timeout,
                                      impl="solutions", mode="full")
            finally:
                os.environ.pop(VERIFY_ENV, None)
            if result.status != "ok":
                failed.append(f"{path.name}: {result.status}: {result.error}")
            if record.exists():
                lines += [dict(json.loads(l), notebook=path.stem) for l in record.read_text().splitlines() if l]
    data = merge_records(lines, device=device)
    held = sum(1 for l in lines if l["held"])
    print(f"\n{len(lines)} full-mode claims evaluated, {held} held; recorded in {RECORD_PATH} "
          f"({len(data['claims'])} in all). Commit that file: full mode then checks each recorded claim.")
    for l in lines:
        if not l["held"]:
            print(f"  does NOT hold ({l['notebook']}): {l['statement']} (seen: {l.get('seen') or '?'})")
    for f in failed:
        print(f"  notebook did not finish: {f}")
    return 1 if failed else 0


def cmd_gradescope(args) -> int:
    from mi_course.grading.gradescope import write_autograder

    write_autograder(args.out)
    return 0


def cmd_gradescope_run(args) -> int:
    from mi_course.grading.gradescope import run

    return run(args.root)


def cmd_build(args) -> int:
    from mi_course.build import build_all

    return build_all(check=args.check)


def cmd_release(args) -> int:
    from mi_course.grading.release import ReleaseError, release

    try:
        release(args.out, force=args.force, repo_url=args.repo_url)
    except ReleaseError as err:
        print(f"mi-course release: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mi-course", description="A hands-on course in mechanistic interpretability.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="versions, mode, device, which models are available").set_defaults(fn=cmd_doctor)

    p = sub.add_parser("lab", help="open the course in JupyterLab")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="passed on to jupyter lab")
    p.set_defaults(fn=cmd_lab)

    p = sub.add_parser("run", help="execute notebooks headless with your exercises (lite mode) and report")
    p.add_argument("notebooks", nargs="*", help="names, numbers or paths (default: all)")
    p.add_argument("--impl", default="exercises",
                   help="exercises (default: your answers in exercises/), solutions (the reference solutions: "
                        "course authors and CI) or a folder of lesson modules")
    p.add_argument("--mode", default="lite", choices=("lite", "full"))
    p.add_argument("--out", default=None, help="folder for executed copies (default build/notebooks)")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds one cell may take")
    p.add_argument("--limit", type=float, default=None, help="seconds one notebook may take (else 'too slow')")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run at once, each in its own kernel (default 1)")
    p.add_argument("--dry-run", action="store_true",
                   help="full mode with the real architectures at random weights, built offline "
                        "(MI_COURSE_DRY_RUN=1); copies go to build/notebooks-dry-run")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("export", help="standalone HTML that works offline (math, figures, circuitsvis views)")
    p.add_argument("notebooks", nargs="+", help="names, numbers (executed copy from `mi-course run` if there "
                                               "is one) or .ipynb paths")
    p.add_argument("--out", default=None, help="folder for the HTML files (default build/html)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("grade", help="grade the exercises and print points per exercise")
    p.add_argument("--impl", default=os.environ.get("MI_COURSE_IMPL") or "exercises",
                   help="exercises (default), solutions, or a folder of lesson modules")
    p.add_argument("--lesson", action="append", default=None, help="only this lesson (repeatable), e.g. 08")
    p.add_argument("--exercise", action="append", default=None, help="only this exercise (repeatable)")
    p.add_argument("--json", default=None, help="write per-exercise results as JSON here")
    p.add_argument("--junit", default=None, help="write JUnit XML here")
    p.add_argument("--timeout", type=float, default=None, help="seconds each test may take")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every graded exercise passed")
    p.add_argument("--judge", action="store_true",
                   help="grade as class grading does: the lesson files run only in a sandboxed subject process")
    p.set_defaults(fn=cmd_grade)

    p = sub.add_parser("grade-class", help="(instructors) grade a class: each submission's exercises/ run only in "
                                           "a sandboxed process; gradebook.csv, flags.csv, Gradescope results")
    p.add_argument("submissions", nargs="+", help="folders, git repositories or .zip files, one per student")
    p.add_argument("--out", required=True, help="folder for gradebook.csv, flags.csv and <student>/results.json")
    p.add_argument("--jobs", type=int, default=1, help="students graded at once (default 1)")
    p.add_argument("--lesson", action="append", default=None, help="only this lesson (repeatable), e.g. 08")
    p.add_argument("--student-seconds", type=float, default=3600.0,
                   help="wall budget of one student's grading, all lessons (default 3600)")
    p.set_defaults(fn=cmd_grade_class)

    p = sub.add_parser("verify-full", help="(instructors, GPU and network) run every notebook in full mode on the "
                                           "real weights and record which full-mode claims hold")
    p.add_argument("notebooks", nargs="*", help="names, numbers or paths (default: all)")
    p.add_argument("--cell-timeout", type=int, default=1200, help="seconds one cell may take")
    p.set_defaults(fn=cmd_verify_full)

    p = sub.add_parser("gradescope", help="(instructors) write a Gradescope autograder zip that grades with "
                                          "grade-class (the hidden tests in, no solutions)")
    p.add_argument("out", help="the .zip to write")
    p.set_defaults(fn=cmd_gradescope)

    p = sub.add_parser("gradescope-run", help="(inside the autograder) grade ROOT/submission into "
                                              "ROOT/results/results.json")
    p.add_argument("--root", default="/autograder", help="the autograder's root folder (default /autograder)")
    p.set_defaults(fn=cmd_gradescope_run)

    p = sub.add_parser("build", help="(course authors) regenerate exercises/, notebooks and the Classroom "
                                     "workflow from solutions/ and notebooks/src/")
    p.add_argument("--check", action="store_true", help="only check that they are up to date")
    p.set_defaults(fn=cmd_build)

    p = sub.add_parser("release", help="(instructors) write the student repository: notebooks, exercise stubs, "
                                       "public graded tests, the package; no solutions or hidden tests")
    p.add_argument("out", help="an empty folder outside the course checkout")
    p.add_argument("--force", action="store_true", help="write over a non-empty folder (a .git there is kept)")
    p.add_argument("--repo-url", default=None, help="the student repository's git URL, for the notebooks' "
                                                    "Colab setup cell (default: the course's, from pyproject)")
    p.set_defaults(fn=cmd_release)

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"mi-course {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
