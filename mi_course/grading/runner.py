"""Run the graded tests in child processes, so that nothing a learner's code does stops the report.

Each lesson runs in its own pytest process; per-test time limits come from pytest-timeout. When a process
dies or hangs past its wall-clock limit (``os._exit``, a segfault, a hang inside C code), the test it died
in is charged to its exercise and the exercises it had not reached run again in a new process, so one
broken exercise never hides the others.

A "process" is a child forked from the warm grading worker (:mod:`mi_course.grading.worker`) where ``fork``
exists, else a fresh ``python -m pytest``: the same command line, plugins and environment either way.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mi_course.grading.exercise_files import ExerciseId
from mi_course.grading.impl import impl_folder
from mi_course.grading.plugin import IMPL_ENV
from mi_course.grading.release import HIDDEN_TESTS
from mi_course.grading.report import ExerciseResult, format_failures, format_table, read_jsonl, summarize
from mi_course.grading.worker import PLUGIN_ARGS, PLUGIN_ENV, current_worker
from mi_course.paths import repo_root

LESSON_WALL_LIMIT = 900  # seconds for one lesson's whole process


def graded_test_files(lessons: list[str] | None = None) -> dict[str, list[Path]]:
    """Lesson number -> its graded test files: tests/graded/test_lNN_*.py, then any hidden ones in
    tests/hidden/test_lNN_*.py (an instructor's checkout only), e.g. '08' -> [.../test_l08_superposition.py]."""
    files: dict[str, list[Path]] = {}
    for folder in (repo_root() / "tests" / "graded", repo_root() / HIDDEN_TESTS):
        for p in sorted(folder.glob("test_l[0-9][0-9]_*.py")):
            files.setdefault(p.name[6:8], []).append(p)
    files = dict(sorted(files.items()))
    if lessons:
        wanted = {l.zfill(2) for l in lessons}
        unknown = wanted - files.keys()
        if unknown:
            raise ValueError(f"no graded tests for lesson(s) {', '.join(sorted(unknown))}; "
                             f"lessons with tests: {', '.join(files)}")
        files = {k: v for k, v in files.items() if k in wanted}
    return files


def run_pytest(args: list[str], jsonl: Path, wall_limit: float, test_timeout: float | None,
                impl: str, judge: bool = False, extra_env: dict[str, str] | None = None) -> tuple[int | str, str]:
    """(exit code or 'timeout' when it ran past ``wall_limit`` seconds, its output) of one pytest process."""
    cmd = [sys.executable, "-m", "pytest", *args, "--impl", impl, "--grade-jsonl", str(jsonl),
           "-q", "--no-header", *PLUGIN_ARGS, "-o", "console_output_style=classic"]
    if test_timeout:
        cmd += ["--timeout", str(test_timeout)]
    if judge:
        cmd += ["--judge"]
    # One torch thread unless asked otherwise: graded tests use small tensors, where extra threads only
    # contend with the notebook's kernel that called check().
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           **os.environ, IMPL_ENV: impl, "PYTHONDONTWRITEBYTECODE": "1", **PLUGIN_ENV, **(extra_env or {})}
    worker = current_worker()
    if worker is not None:
        try:  # a child forked from the warm worker: the same run without paying the imports
            return worker.run(cmd[3:], str(repo_root()), env, wall_limit)
        except RuntimeError:
            pass  # the worker died or hung (not the learner's code: that runs in its child); run afresh
    try:
        proc = subprocess.run(cmd, cwd=repo_root(), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=wall_limit, text=True)
    except subprocess.TimeoutExpired as err:  # its partial output is bytes even with text=True
        out = err.stdout or b""
        return "timeout", out.decode(errors="replace") if isinstance(out, bytes) else out
    return proc.returncode, proc.stdout


def grade_records(impl: str, lesson: str, test_files: list[Path], exercise_ids: list[str] | None = None,
                  test_timeout: float | None = None, judge: bool = False,
                  wall_limit: float | None = None, extra_env: dict[str, str] | None = None,
                  anomalies: list[str] | None = None) -> tuple[dict, dict, int | str, str]:
    """Run one lesson's graded tests on ``impl``: (collected, results, pytest's exit code, its output) where
    collected is nodeid -> (exercise, points) and results nodeid -> (kind, message), as the plugin wrote them.
    A process that dies or hangs charges the test it was in and runs the rest again in a new process.
    ``anomalies`` (a list) receives what was odd in the results file (see ``report.read_jsonl``)."""
    exercise_ids = exercise_ids or []
    wall_limit = LESSON_WALL_LIMIT if wall_limit is None else wall_limit
    collected: dict = {}
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="mi-grade-") as tmp:
        pending = [e for e in exercise_ids if e.startswith(lesson + ".")]
        stopped: dict[str, tuple[str, str]] = {}  # results for tests whose process died under them
        for attempt in itertools.count():
            jsonl = Path(tmp) / f"{lesson}-{attempt}.jsonl"  # one file per process: a rerun is not a duplicate
            args = [str(f) for f in test_files] + [a for e in pending for a in ("--exercise", e)]
            rc, output = run_pytest(args, jsonl, wall_limit, test_timeout, impl, judge, extra_env)
            new_collected, new_results = read_jsonl(jsonl, anomalies)
            collected.update(new_collected)
            for nodeid, result in new_results.items():  # the first failure wins over a pass
                if nodeid not in results or results[nodeid][0] == "passed":
                    results[nodeid] = result
            results.update(stopped)
            unfinished = [n for n in collected if n not in results]  # in the order pytest ran them
            if not unfinished:
                break
            # The first test without a result is the one the process died in (or hung in).
            culprit = collected[unfinished[0]][0]
            for nodeid in unfinished:
                if collected[nodeid][0] == culprit:
                    stopped[nodeid] = ("timeout", "took too long and was stopped") if rc == "timeout" else \
                        ("crashed", f"the test process died (exit code {rc}) while running this test: "
                                    f"does your code call exit() or crash Python?")
            pending = sorted({collected[n][0] for n in unfinished} - {culprit})
            if not pending:
                results.update(stopped)
                break
    return collected, results, rc, output


def grade(impl: str = "exercises", lessons: list[str] | None = None, exercises: list[str] | None = None,
          test_timeout: float | None = None, judge: bool = False) -> list[ExerciseResult]:
    """Grade ``impl`` ('exercises', 'solutions' or a folder); one result per exercise. ``judge``: the lesson
    files run only in sandboxed subject processes (class grading), never in the grading process."""
    impl_folder(impl)  # a bad --impl is one clear error, not one per test
    exercise_ids = [str(ExerciseId.parse(e)) for e in exercises or []]
    if exercise_ids:
        lessons = sorted({e[:2] for e in exercise_ids} | set(lessons or []))
    rows: list[ExerciseResult] = []
    for lesson, test_files in graded_test_files(lessons).items():
        collected, results, rc, output = grade_records(impl, lesson, test_files, exercise_ids, test_timeout, judge)
        if not collected and rc not in (0, 5):
            # pytest could not even collect (a broken test file): the course's bug, show why
            sys.stderr.write(output[-3000:])
            rows.append(ExerciseResult(f"{lesson}.*", status="error",
                                       message=f"the graded tests of lesson {lesson} could not run "
                                               f"(pytest exit {rc}); see the output above"))
        rows += summarize(collected, results)
    return rows


def check(exercise: str, impl: str | None = None, test_timeout: float | None = None) -> None:
    """Grade one exercise and print one line of feedback (and the first failure). Never raises.

    Returns nothing so that a notebook cell ending in ``check(...)`` shows only the feedback."""
    try:
        eid = ExerciseId.parse(exercise)
        impl = impl or os.environ.get(IMPL_ENV) or "exercises"
        rows = [r for r in grade(impl, exercises=[str(eid)], test_timeout=test_timeout) if r.id == str(eid)]
        if not rows:
            print(f"? {eid}: no graded tests found for this exercise (is the id right?)")
            return
        row = rows[0]
        score = f"{row.points_earned}/{row.points_possible} points"
        if row.status == "passed":
            print(f"PASS {eid}: {score}")
        elif row.status == "not started":
            print(f"TODO {eid}: {score}: not started yet. Fill in the exercise cell, run it, then check again.")
        else:
            print(f"FAIL {eid} ({row.status}): {score}\n  {row.message}")
    except Exception as err:  # feedback must never stop "Run all"
        print(f"check({exercise!r}) could not run: {type(err).__name__}: {err}")


def print_report(rows: list[ExerciseResult], impl: str) -> None:
    """The table, then each failing exercise's whole message (the table has room for its start only)."""
    import shutil

    print(f"mi-course grade (impl: {impl})")
    print(format_table(rows))
    failures = format_failures(rows, width=max(60, shutil.get_terminal_size((100, 24)).columns - 2))
    if failures:
        print("\nWhat failed, in full:\n\n" + failures)
