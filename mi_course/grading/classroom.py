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

import contextlib
import csv
import hashlib
import json
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from mi_course.grading import secret_seed
from mi_course.grading.exercise_files import ExerciseId, lesson_modules, region_text, regions
from mi_course.grading.flags import flagged_exercises, scan
from mi_course.grading.judge import sandbox_report
from mi_course.grading.release import HIDDEN_TESTS
from mi_course.grading.report import ExerciseResult, read_jsonl, summarize, write_json, write_junit
from mi_course.grading.runner import grade_records, graded_test_files, run_pytest
from mi_course.grading.stubs import is_untouched_stub
from mi_course.grading.submissions import Submission, SubmissionError, read_submission
from mi_course.grading.worker import WorkerPool
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


def _lesson_of(nodeid: str) -> str | None:
    """The lesson a test id's file belongs to (``test_lNN_*.py``), or None for a file of no lesson."""
    match = re.search(r"(?:^|/)test_l(\d\d)_[^/]*\.py::", nodeid)
    return match.group(1) if match else None


def _zero(rows: list[ExerciseResult], exercise: str, reason: str) -> None:
    for row in rows:
        if row.id == exercise:
            row.points_earned = 0
            row.status = "flagged" if row.status == "passed" else row.status
            row.message = f"earns 0: {reason}" + (f"; {row.message}" if row.message else "")


class ClassGrader:
    """Grades submissions against one expected list; results of byte-identical lesson files are shared."""

    def __init__(self, expected: Expected, *, student_seconds: float = STUDENT_SECONDS,
                 lesson_seconds: float = LESSON_SECONDS, call_seconds: float = CALL_SECONDS,
                 pool: WorkerPool | None = None, secret: int | None = None) -> None:
        self.expected = expected
        self.pool = pool
        self.secret = secret_seed.secret_from_env() if secret is None else secret  # one per run: the same for all
        self.student_seconds = student_seconds
        self.lesson_seconds = lesson_seconds
        self.call_seconds = call_seconds
        self._cache: dict[str, tuple[dict, str]] = {}  # sha256 of the files run -> (per lesson, student)
        self._lock = threading.Lock()

    def grade(self, sub: Submission) -> StudentResult:
        """One student: lessons with work in them are graded in one judge run (one subject process holds
        all of them, so shared imports are paid once); untouched or missing lessons earn 0 without running."""
        began = time.monotonic()
        out = StudentResult(sub.student, str(sub.source), notes=list(sub.notes))
        with tempfile.TemporaryDirectory(prefix="mi-class-") as tmp, \
                (self.pool.lease() if self.pool else contextlib.nullcontext()):
            stage = Path(tmp)
            for module, data in sub.files.items():
                (stage / f"{module}.py").write_bytes(data)
            decided: dict[str, tuple[dict, list]] = {}
            static: dict[str, list] = {}
            for lesson, tests in self.expected.tests.items():
                outcome, static[lesson] = self._without_running(sub, lesson, tests)
                if outcome is not None:
                    decided[lesson] = (outcome, [])
            to_run = [lesson for lesson in self.expected.tests if lesson not in decided]
            if to_run:
                decided.update(self._run(sub, stage, to_run, self.student_seconds - (time.monotonic() - began),
                                         out))
            for lesson, tests in self.expected.tests.items():
                results, flags = decided[lesson]
                self._rows(out, lesson, tests, results, flags + static[lesson])
        out.seconds = time.monotonic() - began
        return out

    def _without_running(self, sub: Submission, lesson: str, tests: dict) -> tuple[dict | None, list]:
        """(results, or None where the lesson must run; the static flags of its file)."""
        module = self.expected.modules.get(lesson, "")
        exercises = sorted({ex for ex, _ in tests.values()})
        if module not in sub.files:
            return {n: ("not_started", f"no exercises/{module}.py in the submission") for n in tests}, []
        source = sub.files[module].decode("utf-8", errors="replace")
        names = {e.split(".", 1)[1] for e in exercises}
        static = [(f"{lesson}.{name}", f.kind, f"line {f.line}: {f.detail}")
                  for name, fs in flagged_exercises(scan(source, lesson, names), names).items() for f in fs]
        if untouched(source, lesson, exercises):
            return {n: ("not_started", "not started yet (the stub raises NotImplementedError)") for n in tests}, static
        return None, static

    def _run(self, sub: Submission, stage: Path, lessons: list[str], left: float,
             out: StudentResult) -> dict[str, tuple[dict, list]]:
        """Grade ``lessons`` of one student in one judge run: lesson -> (results, flags)."""
        if left <= 0:
            return {lesson: ({n: ("timeout", "the student's grading budget was spent before this lesson")
                              for n in self.expected.tests[lesson]}, []) for lesson in lessons}
        # The lessons run together share a subject, so one file's result may depend on the others: a
        # result is shared only between students whose files to run are all byte-identical.
        modules = [self.expected.modules[lesson] for lesson in lessons]
        digest = hashlib.sha256(b"".join(hashlib.sha256(sub.files[m]).digest() for m in modules)).hexdigest()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None:
            out.notes.append(f"exercises/{{{','.join(modules)}}}.py are byte-identical to {cached[2]}'s "
                             "(graded once)")
            return cached[0]
        anomalies: list[str] = []
        wall = min(self.lesson_seconds * len(lessons), left)
        env = {"MI_COURSE_JUDGE_CALL_SECONDS": str(self.call_seconds),
               "MI_COURSE_JUDGE_LESSON_SECONDS": str(min(self.lesson_seconds, left)),
               secret_seed.SECRET_ENV: str(self.secret)}
        files = graded_test_files(lessons)
        collected, results, rc, output = grade_records(str(stage), "", [f for l in lessons for f in files[l]],
                                                       judge=True, wall_limit=wall + 60, extra_env=env,
                                                       anomalies=anomalies)
        graded: dict[str, tuple[dict, list]] = {}
        for lesson in lessons:
            tests = self.expected.tests[lesson]
            mine = lambda nodeid: nodeid in tests or _lesson_of(nodeid) in (lesson, None)  # noqa: E731
            graded[lesson] = check_results(tests, {n: v for n, v in collected.items() if mine(n)},
                                           {n: v for n, v in results.items() if mine(n)}, anomalies)
        with self._lock:
            self._cache.setdefault(digest, (graded, sub.student))
        return graded

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


def write_outputs(results: list[StudentResult], expected: Expected, out: Path, secret: int | None = None) -> None:
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
               "points_possible": sum(possible.values()),
               # the tests' inputs came from this secret: MI_COURSE_JUDGE_SECRET=<it> grades with the same ones
               "input_secret": None if secret is None else str(secret)}
    (out / "class.json").write_text(json.dumps(summary, indent=2) + "\n")


def grade_class(paths: list[str | Path], out: str | Path, *, jobs: int = 1, lessons: list[str] | None = None,
                student_seconds: float = STUDENT_SECONDS, log=print) -> list[StudentResult]:
    """Grade every submission in ``paths`` into ``out``; returns the per-student results."""
    from tqdm.auto import tqdm

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
    out.mkdir(parents=True, exist_ok=True)
    protections = sandbox_report()  # what this machine allows, said before grading and kept with the grades
    (out / "sandbox.json").write_text(json.dumps(protections, indent=2) + "\n")
    for name, note in protections.items():
        if not note.startswith("applied"):
            log(f"sandbox: {name}: {note}")
    jobs = max(1, min(jobs, len(subs)))
    workers = WorkerPool(jobs, str(repo_root()))  # one warm worker per thread; they warm up while we start
    grader = ClassGrader(expected, student_seconds=student_seconds, pool=workers)
    try:
        with ThreadPoolExecutor(max_workers=jobs) as threads:
            futures = [threads.submit(grader.grade, s) for s in subs]
            for future in tqdm(as_completed(futures), total=len(futures), desc="grading the class",
                               unit="student"):
                results.append(future.result())
    finally:
        workers.close()
    write_outputs(results, expected, out, grader.secret)
    total = sum(len(t) for t in expected.tests.values())
    log(f"graded {len(results)} submissions ({total} tests each) into {out}: gradebook.csv, flags.csv, "
        f"<student>/results.json")
    return sorted(results, key=lambda r: r.student)
