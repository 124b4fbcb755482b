"""The ``mi-course`` command: doctor, lab, run, grade, build."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
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


def cmd_lab(args) -> int:
    from mi_course.paths import repo_root

    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={repo_root() / 'notebooks'}", *args.extra]
    return subprocess.call(cmd)


def cmd_run(args) -> int:
    from mi_course.lessons import notebook_paths, run_notebook
    from mi_course.paths import repo_root

    out_dir = Path(args.out) if args.out else repo_root() / "build" / "notebooks"
    results = []
    for path in notebook_paths(args.notebooks):
        print(f"running {path.name} ...", flush=True)
        result = run_notebook(path, out_dir, cell_timeout=args.cell_timeout, impl=args.impl, mode=args.mode)
        if result.status == "ok" and args.limit and result.seconds > args.limit:
            result.status, result.error = "too slow", f"took {result.seconds:.0f}s, limit {args.limit:.0f}s"
        results.append(result)
    width = max([8] + [len(r.notebook) for r in results])
    print(f"\n{'notebook':<{width}}  {'seconds':>7}  status")
    for r in results:
        print(f"{r.notebook:<{width}}  {r.seconds:7.1f}  {r.status}{': ' + r.error if r.error else ''}")
    print(f"executed copies in {out_dir}")
    return 0 if all(r.status == "ok" for r in results) else 1


def cmd_grade(args) -> int:
    from mi_course.grading.report import write_json, write_junit
    from mi_course.grading.runner import grade, print_report

    rows = grade(args.impl, lessons=args.lesson, exercises=args.exercise, test_timeout=args.timeout)
    print_report(rows, args.impl)
    if args.json:
        write_json(rows, Path(args.json), args.impl)
    if args.junit:
        write_junit(rows, Path(args.junit))
    if args.strict and (not rows or any(r.status != "passed" for r in rows)):
        return 1
    return 0


def cmd_build(args) -> int:
    from mi_course.build import build_all

    return build_all(check=args.check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mi-course", description="A hands-on course in mechanistic interpretability.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="versions, mode, device, which models are available").set_defaults(fn=cmd_doctor)

    p = sub.add_parser("lab", help="open the course in JupyterLab")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="passed on to jupyter lab")
    p.set_defaults(fn=cmd_lab)

    p = sub.add_parser("run", help="execute notebooks headless (lite mode, solutions) and report")
    p.add_argument("notebooks", nargs="*", help="names, numbers or paths (default: all)")
    p.add_argument("--impl", default="solutions", help="exercises, solutions (default) or a folder")
    p.add_argument("--mode", default="lite", choices=("lite", "full"))
    p.add_argument("--out", default=None, help="folder for executed copies (default build/notebooks)")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds one cell may take")
    p.add_argument("--limit", type=float, default=None, help="seconds one notebook may take (else 'too slow')")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("grade", help="grade the exercises and print points per exercise")
    p.add_argument("--impl", default=os.environ.get("MI_COURSE_IMPL") or "exercises",
                   help="exercises (default), solutions, or a folder of lesson modules")
    p.add_argument("--lesson", action="append", default=None, help="only this lesson (repeatable), e.g. 08")
    p.add_argument("--exercise", action="append", default=None, help="only this exercise (repeatable)")
    p.add_argument("--json", default=None, help="write per-exercise results as JSON here")
    p.add_argument("--junit", default=None, help="write JUnit XML here")
    p.add_argument("--timeout", type=float, default=None, help="seconds each test may take")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every graded exercise passed")
    p.set_defaults(fn=cmd_grade)

    p = sub.add_parser("build", help="(course authors) regenerate exercises/, notebooks and the Classroom "
                                     "workflow from solutions/ and notebooks/src/")
    p.add_argument("--check", action="store_true", help="only check that they are up to date")
    p.set_defaults(fn=cmd_build)

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"mi-course {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
