"""How long a learner waits for feedback: every exercise's ``check`` in a warm process, and a whole
``mi-course grade``, measured side by side through the warm grading worker and through a fresh pytest
process per run (the way check worked before the worker). Prints times and ratios; asserts nothing.

    python scripts/benchmark_check.py                   # every exercise, solutions (all tests run)
    python scripts/benchmark_check.py --impl exercises  # the untouched stubs (what "not started" costs)
    python scripts/benchmark_check.py --lesson 06 --repeat 3

Targets (issue 13, lite mode, this 2-core machine): median <= 2 s and p95 <= 4 s per check in a kernel
that has run the setup cell; a whole `mi-course grade` of all lessons <= 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mi_course.build import collect_exercises  # noqa: E402
from mi_course.grading.runner import check  # noqa: E402
from mi_course.grading.worker import FORK_ENV, start_worker, stop_worker  # noqa: E402


def exercise_ids(lessons: list[str] | None) -> list[str]:
    """Every graded exercise id (of ``lessons`` only, if given), as the Classroom workflow lists them."""
    wanted = {lesson.zfill(2) for lesson in lessons or []}
    return [e for e in collect_exercises() if not wanted or e[:2] in wanted]


def time_checks(ids: list[str], impl: str, repeat: int) -> dict[str, list[float]]:
    from tqdm.auto import tqdm

    times: dict[str, list[float]] = {e: [] for e in ids}
    for _ in range(repeat):
        for exercise in tqdm(ids, desc=f"check ({'worker' if os.environ[FORK_ENV] == '1' else 'fresh'})",
                             leave=False):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as out:
                check(exercise, impl=impl)
            times[exercise].append(time.perf_counter() - start)
            if impl == "solutions" and not out.getvalue().startswith("PASS"):
                print(f"  note: {exercise} did not pass: {out.getvalue().strip()[:120]}")
    return times


def time_grade(impl: str, fork: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mi_course.cli", "grade", "--impl", impl], cwd=ROOT,
                   env={**os.environ, FORK_ENV: fork}, stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="solutions", help="solutions (default), exercises or a folder")
    parser.add_argument("--lesson", action="append", default=None, help="only this lesson (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="checks of each exercise per mode")
    parser.add_argument("--no-fresh", action="store_true", help="skip the slow fresh-process comparison")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    ids = exercise_ids(args.lesson)
    print(f"{len(ids)} exercises, impl {args.impl}, {os.cpu_count()} cores")
    os.environ[FORK_ENV] = "1"
    worker = start_worker()  # what the setup cell does; then wait as a learner reading the lesson would
    start = time.perf_counter()
    worker.wait_ready()
    print(f"worker warm-up (happens while the learner reads): {time.perf_counter() - start:.1f} s")
    modes = {"worker": time_checks(ids, args.impl, args.repeat)}
    stop_worker()
    if not args.no_fresh:
        os.environ[FORK_ENV] = "0"
        modes["fresh"] = time_checks(ids, args.impl, args.repeat)
        os.environ[FORK_ENV] = "1"

    print(f"\n{'exercise':<32}" + "".join(f"{m + ' (s)':>12}" for m in modes) + ("   ratio" if len(modes) > 1 else ""))
    for e in ids:
        row = [statistics.median(modes[m][e]) for m in modes]
        ratio = f"{row[1] / row[0]:8.1f}x" if len(row) > 1 else ""
        print(f"{e:<32}" + "".join(f"{v:12.2f}" for v in row) + ratio)
    for m, times in modes.items():
        flat = [t for ts in times.values() for t in ts]
        print(f"{m:>8}: median {statistics.median(flat):.2f} s, p95 {p95(flat):.2f} s, max {max(flat):.2f} s "
              f"over {len(flat)} checks")

    lessons_note = "" if not args.lesson else f" (lessons {', '.join(args.lesson)} only for checks)"
    worker_grade = time_grade(args.impl, "1")
    line = f"mi-course grade, all lessons, fresh command: {worker_grade:.1f} s with the worker"
    if not args.no_fresh:
        fresh_grade = time_grade(args.impl, "0")
        line += f", {fresh_grade:.1f} s without (ratio {fresh_grade / worker_grade:.1f}x)"
    print(line + lessons_note)


if __name__ == "__main__":
    main()
