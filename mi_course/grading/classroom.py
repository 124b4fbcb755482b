"""Class grading: ``mi-course grade-class SUBMISSION... --out DIR``.

For each student (:mod:`mi_course.grading.submissions` takes only ``exercises/lNN_*.py``), each lesson:

1. the file is read as text and scanned (:mod:`mi_course.grading.flags`): a flagged exercise earns 0;
2. a lesson whose every exercise is still the untouched stub earns 0 without running anything;
3. otherwise the instructor's graded tests (``tests/graded`` and the hidden ``tests/hidden``) run with
   ``--judge``: the learner's file runs only in a sandboxed subject process, the verdicts in the judge
   (:mod:`mi_course.grading.judge`), under a wall budget per call, per lesson and per student;
4. every result is checked against the instructor's expected list of tests and points, collected once from
   the instructor's own tree: an unknown or duplicated test, a changed point value or a missing result
   makes that exercise 0 and a flag, never a crash.

Output in ``DIR``: ``gradebook.csv`` (a row per student, a column per exercise, the total), ``flags.csv``,
``class.json``, and per student ``<student>/results.json`` (Gradescope's autograder format),
``<student>/report.json`` and ``<student>/report.xml`` (JUnit).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from mi_course.grading.exercise_files import ExerciseId, lesson_modules, region_text, regions
from mi_course.grading.flags import Flag, flagged_exercises, scan
from mi_course.grading.report import ExerciseResult, read_jsonl, summarize, write_json, write_junit
from mi_course.grading.release import HIDDEN_TESTS
from mi_course.grading.runner import grade_records, graded_test_files, run_pytest
from mi_course.grading.stubs import is_untouched_stub
from mi_course.grading.submissions import Submission, SubmissionError, read_submission
from mi_course.paths import repo_root

STUDENT_SECONDS = 3600.0  # wall budget of one student's whole grading
LESSON_SECONDS = 900.0  # of one lesson (the judge's subject enforces it too)
CALL_SECONDS = 120.0  # of one call into the learner's code


@dataclass
class Expected:
    """The instructor's list: per lesson, nodeid -> (exercise id, points); and which nodeids are hidden."""

    tests: dict[str, dict[str, tuple[str, int]]]
    hidden: set[str]
    modules: dict[str, str]  # lesson number -> lesson module name

    def exercises(self, lesson: str) -> list[str]:
        return sorted({ex for ex, _ in self.tests[lesson].values()})

    def all_exercises(self) -> list[str]:
        return sorted({ex for tests in self.tests.values() for ex, _ in tests.values()})


@dataclass
class StudentResult:
    student: str
    source: str
    rows: list[ExerciseResult] = field(default_factory=list)
    flags: list[tuple[str, str, str]] = field(default_factory=list)  # (exercise id, kind, detail)
    notes: list[str] = field(default_factory=list)
    zeroed: set[str] = field(default_factory=set)  # exercises a flag set to 0
    seconds: float = 0.0

    @property
    def earned(self) -> int:
        return sum(r.points_earned for r in self.rows)

    @property
    def possible(self) -> int:
        return sum(r.points_possible for r in self.rows)


def expected_tests(lessons: list[str] | None = None) -> Expected:
    """Collect the instructor's graded tests (never running them): the list every result is checked against."""
    files = graded_test_files(lessons)
    modules = {n: p.stem for n, p in lesson_modules(repo_root() / "exercises").items()}
    tests: dict[str, dict[str, tuple[str, int]]] = {}
    hidden: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mi-expected-") as tmp:
        for lesson, test_files in files.items():
            jsonl = Path(tmp) / f"{lesson}.jsonl"
            rc, output = run_pytest(["--collect-only", *map(str, test_files)], jsonl, 300, None,
                                     str(repo_root() / "exercises"), judge=True)
            collected, _ = read_jsonl(jsonl)
            if not collected:
                raise RuntimeError(f"could not collect the graded tests of lesson {lesson} (pytest exit {rc}):\n"
                                   f"{output[-2000:]}")
            tests[lesson] = collected
            hidden |= {n for n in collected if n.startswith(HIDDEN_TESTS + "/")}  # nodeids are root-relative
    return Expected(tests, hidden, modules)


def untouched(source: str, lesson: str, exercises: list[str]) -> bool:
    """Whether every exercise of the lesson file is still its stub (then there is nothing to run)."""
    try:
        spans = regions(source)
        return all(name in spans and is_untouched_stub(ExerciseId(lesson, name), region_text(source, name))
                   for name in (e.split(".", 1)[1] for e in exercises))
    except (ValueError, KeyError):
        return False


def check_results(expected: dict[str, tuple[str, int]], collected: dict, results: dict,
                  anomalies: list[str]) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str]]]:
    """Results keyed by the expected tests only, and flags for anything that does not match the list."""
    flags: list[tuple[str, str, str]] = []
    known_exercises = {ex for ex, _ in expected.values()}
    for nodeid, (exercise, points) in collected.items():
        if nodeid not in expected:
            target = exercise if exercise in known_exercises else "*"
            flags.append((target, "unexpected-test", f"a result for {nodeid}, which is not in the expected list"))
        elif expected[nodeid] != (exercise, points):
            flags.append((expected[nodeid][0], "changed-points",
                          f"{nodeid} reported as {exercise} worth {points}, expected {expected[nodeid]}"))
    for nodeid in results:
        if nodeid not in collected and nodeid not in expected:
            flags.append(("*", "unexpected-test", f"a result for {nodeid}, which was never collected"))
    for line in anomalies:
        flags.append(("*", "malformed-results", line))
    final: dict[str, tuple[str, str]] = {}
    for nodeid, (exercise, _) in expected.items():
        if nodeid in results:
            final[nodeid] = results[nodeid]
        else:
            final[nodeid] = ("missing", "the test produced no result")
            flags.append((exercise, "missing-result", f"{nodeid} produced no result"))
    return final, flags


def _zero(rows: list[ExerciseResult], exercise: str, reason: str) -> None:
    for row in rows:
        if row.id == exercise:
            row.points_earned = 0
            row.status = "flagged" if row.status == "passed" else row.status
            row.message = f"earns 0: {reason}" + (f"; {row.message}" if row.message else "")


class ClassGrader:
    """Grades submissions against one expected list; results of byte-identical lesson files are shared."""

    def __init__(self, expected: Expected, *, student_seconds: float = STUDENT_SECONDS,
                 lesson_seconds: float = LESSON_SECONDS, call_seconds: float = CALL_SECONDS) -> None:
        self.expected = expected
        self.student_seconds = student_seconds
        self.lesson_seconds = lesson_seconds
        self.call_seconds = call_seconds
        self._cache: dict[str, tuple[dict, list, str]] = {}  # sha256 of a lesson file -> (results, flags, student)
        self._lock = threading.Lock()

    def grade(self, sub: Submission) -> StudentResult:
        began = time.monotonic()
        out = StudentResult(sub.student, str(sub.source), notes=list(sub.notes))
        with tempfile.TemporaryDirectory(prefix="mi-class-") as tmp:
            stage = Path(tmp)
            for module, data in sub.files.items():
                (stage / f"{module}.py").write_bytes(data)
            for lesson, tests in self.expected.tests.items():
                module = self.expected.modules.get(lesson, "")
                left = self.student_seconds - (time.monotonic() - began)
                results, flags = self._lesson(sub, stage, lesson, module, tests, left, out)
                self._rows(out, lesson, tests, results, flags)
        out.seconds = time.monotonic() - began
        return out

    def _lesson(self, sub: Submission, stage: Path, lesson: str, module: str, tests: dict, left: float,
                out: StudentResult) -> tuple[dict, list]:
        exercises = sorted({ex for ex, _ in tests.values()})
        if module not in sub.files:
            return {n: ("not_started", f"no exercises/{module}.py in the submission") for n in tests}, []
        data = sub.files[module]
        source = data.decode("utf-8", errors="replace")
        names = {e.split(".", 1)[1] for e in exercises}
        static = [(f"{lesson}.{name}", f.kind, f"line {f.line}: {f.detail}")
                  for name, fs in flagged_exercises(scan(source, lesson, names), names).items() for f in fs]
        if untouched(source, lesson, exercises):
            return {n: ("not_started", "not started yet (the stub raises NotImplementedError)") for n in tests}, static
        if left <= 0:
            return {n: ("timeout", "the student's grading budget was spent before this lesson") for n in tests}, static
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None:
            out.notes.append(f"exercises/{module}.py is byte-identical to {cached[2]}'s (graded once)")
            return cached[0], cached[1] + static
        anomalies: list[str] = []
        budget = min(self.lesson_seconds, left)
        env = {"MI_COURSE_JUDGE_CALL_SECONDS": str(self.call_seconds),
               "MI_COURSE_JUDGE_LESSON_SECONDS": str(budget)}
        collected, results, rc, output = grade_records(str(stage), lesson, graded_test_files([lesson])[lesson],
                                                       judge=True, wall_limit=budget + 60, extra_env=env,
                                                       anomalies=anomalies)
        final, checked = check_results(tests, collected, results, anomalies)
        with self._lock:
            self._cache.setdefault(digest, (final, checked, sub.student))
        return final, checked + static

    def _rows(self, out: StudentResult, lesson: str, tests: dict, results: dict, flags: list) -> None:
        rows = summarize(tests, results)
        every = [r.id for r in rows]
        for exercise, kind, detail in flags:
            for target in (every if exercise == "*" else [exercise]):
                out.flags.append((target, kind, detail))
                out.zeroed.add(target)
                _zero(rows, target, f"{detail} ({kind})")
        out.rows += rows


def gradescope_results(result: StudentResult, expected: Expected) -> dict:
    """Gradescope's autograder results: a test per exercise (hidden tests as their own, shown once
    published), the score, and the flags and notes in the output."""
    tests = []
    for row in result.rows:
        public = [t for t in row.tests if t[0] not in expected.hidden]
        hidden = [t for t in row.tests if t[0] in expected.hidden]
        for part, visibility, suffix in ((public, "visible", ""), (hidden, "after_published", " (hidden tests)")):
            if not part:
                continue
            possible = sum(expected_points(expected, n) for n, _, _ in part)
            earned = 0 if row.id in result.zeroed else \
                sum(expected_points(expected, n) for n, k, _ in part if k == "passed")
            failing = [f"{n.split('::')[-1]}: {m}" for n, k, m in part if k != "passed"]
            output = "\n".join(([row.message] if row.id in result.zeroed else []) + failing)
            tests.append({"name": f"{row.id}{suffix}", "score": earned, "max_score": possible,
                          "status": "passed" if earned == possible else "failed", "output": output,
                          "visibility": visibility})
    lines = [f"{e}: {k}: {d}" for e, k, d in result.flags] + result.notes
    return {"score": result.earned, "output": "\n".join(lines), "visibility": "visible",
            "execution_time": round(result.seconds, 1), "tests": tests}


def expected_points(expected: Expected, nodeid: str) -> int:
    for tests in expected.tests.values():
        if nodeid in tests:
            return tests[nodeid][1]
    return 0


def write_outputs(results: list[StudentResult], expected: Expected, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    exercises = expected.all_exercises()
    possible = {e: 0 for e in exercises}
    for tests in expected.tests.values():
        for ex, points in tests.values():
            possible[ex] += points
    with open(out / "gradebook.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "total", "possible", "flags", *exercises])
        w.writerow(["(points possible)", sum(possible.values()), sum(possible.values()), "",
                    *[possible[e] for e in exercises]])
        for r in sorted(results, key=lambda r: r.student):
            earned = {row.id: row.points_earned for row in r.rows}
            w.writerow([r.student, r.earned, r.possible, len(r.flags), *[earned.get(e, 0) for e in exercises]])
    with open(out / "flags.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "exercise", "kind", "detail"])
        for r in sorted(results, key=lambda r: r.student):
            for row in r.flags:
                w.writerow([r.student, *row])
    for r in results:
        folder = out / r.student
        folder.mkdir(exist_ok=True)
        (folder / "results.json").write_text(json.dumps(gradescope_results(r, expected), indent=2) + "\n")
        write_json(r.rows, folder / "report.json", impl=r.source)
        write_junit(r.rows, folder / "report.xml")
    summary = {"students": {r.student: {"source": r.source, "earned": r.earned, "possible": r.possible,
                                        "flags": len(r.flags), "notes": r.notes, "seconds": round(r.seconds, 1)}
                            for r in results},
               "points_possible": sum(possible.values())}
    (out / "class.json").write_text(json.dumps(summary, indent=2) + "\n")


def grade_class(paths: list[str | Path], out: str | Path, *, jobs: int = 1, lessons: list[str] | None = None,
                student_seconds: float = STUDENT_SECONDS, log=print) -> list[StudentResult]:
    """Grade every submission in ``paths`` into ``out``; returns the per-student results."""
    from tqdm.auto import tqdm

    from mi_course.grading.worker import FORK_ENV

    out = Path(out)
    expected = expected_tests(lessons)
    known = set(expected.modules.values())
    taken: set[str] = set()
    subs, results = [], []
    for path in paths:
        try:
            subs.append(read_submission(path, known, taken))
        except SubmissionError as err:
            log(f"skipped: {err}")
    if jobs > 1:  # threads, each grading in fresh pytest processes (the warm worker takes one at a time)
        os.environ[FORK_ENV] = "0"
    grader = ClassGrader(expected, student_seconds=student_seconds)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grader.grade, s) for s in subs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="grading the class", unit="student"):
            results.append(future.result())
    write_outputs(results, expected, out)
    total = sum(len(t) for t in expected.tests.values())
    log(f"graded {len(results)} submissions ({total} tests each) into {out}: gradebook.csv, flags.csv, "
        f"<student>/results.json")
    return sorted(results, key=lambda r: r.student)
