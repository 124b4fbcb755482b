"""How long class grading takes: a class of N fake submissions graded with --jobs J, then one by one.

    python scripts/benchmark_class_grading.py --students 8 --jobs 2 [--lesson 05 ...] [--serial 4]

Each fake student answers each lesson with the reference solutions, the untouched stubs, or half of the
exercises (chosen by a fixed seed, about a third each); every file carries the student's name in a comment,
so no two submissions are byte-identical and the grader's cache of identical files never helps. It prints
the wall time of the parallel run, the time per student, the same for the first ``--serial`` students
graded one at a time (jobs 1), their ratio, and what 100 submissions would take at the parallel rate
(the issue's target: 100 submissions of all lessons in 30 minutes on this 2-core machine).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mi_course.grading.classroom import grade_class  # noqa: E402
from mi_course.grading.exercise_files import lesson_modules, make_stubs, region_text, regions, replace_region  # noqa: E402


def fake_class(folder: Path, n: int, lessons: list[str] | None, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    solutions = lesson_modules(ROOT / "solutions")
    chosen = {k: v for k, v in solutions.items() if not lessons or k in lessons}
    paths = []
    for i in range(n):
        student = folder / f"student{i:03d}"
        (student / "exercises").mkdir(parents=True)
        for lesson, path in chosen.items():
            solution = path.read_text()
            stub = make_stubs(solution, lesson)
            kind = rng.choice(["solution", "stub", "half"])
            text = solution if kind == "solution" else stub
            if kind == "half":
                names = list(regions(solution))
                for name in rng.sample(names, len(names) // 2 or 1):
                    text = replace_region(text, name, region_text(solution, name))
            (student / "exercises" / path.name).write_text(f"# {student.name}: {kind}\n" + text)
        paths.append(student)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--serial", type=int, default=None, help="students graded one by one (default: all)")
    parser.add_argument("--lesson", action="append", default=None)
    args = parser.parse_args()
    quiet = lambda *a, **k: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="mi-bench-class-") as tmp:
        paths = fake_class(Path(tmp) / "class", args.students, args.lesson)
        began = time.perf_counter()
        grade_class(paths, Path(tmp) / "parallel", jobs=args.jobs, lessons=args.lesson, log=quiet)
        parallel = time.perf_counter() - began
        serial_paths = paths[: args.serial or len(paths)]
        began = time.perf_counter()
        grade_class(serial_paths, Path(tmp) / "serial", jobs=1, lessons=args.lesson, log=quiet)
        serial = time.perf_counter() - began
    per_parallel = parallel / len(paths)
    per_serial = serial / len(serial_paths)
    lessons = ", ".join(args.lesson) if args.lesson else "all"
    print(f"lessons: {lessons}; {len(paths)} submissions")
    print(f"  --jobs {args.jobs}: {parallel:7.1f} s  ({per_parallel:5.1f} s per submission)")
    print(f"  one by one ({len(serial_paths)}): {serial:7.1f} s  ({per_serial:5.1f} s per submission)")
    print(f"  ratio one-by-one / parallel, per submission: {per_serial / per_parallel:.2f}")
    print(f"  100 submissions at the parallel rate: {100 * per_parallel / 60:.1f} min (target: 30 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
