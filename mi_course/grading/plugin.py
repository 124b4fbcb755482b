"""pytest plugin: which implementation is graded, which exercise a test belongs to, what it earned.

Loaded for every pytest run of the course (``-p mi_course.grading.plugin`` in pyproject). Options:

    --impl exercises|solutions|PATH   what the graded tests import (default: $MI_COURSE_IMPL or exercises)
    --exercise 08.ToyModel            run only that exercise's tests (repeatable)
    --lesson 08                       run only that lesson's graded tests (repeatable)
    --grade-jsonl PATH                append one JSON record per collected test and per result
    --judge                           run the learner's module in a sandboxed subject (class grading)

Graded tests are marked ``@pytest.mark.exercise("ToyModel", points=2)`` in a module that sets
``LESSON = "l08_superposition"``; they take the fixture ``impl`` (the imported lesson module).
"""

from __future__ import annotations

import json
import os
import traceback

import pytest

from mi_course.config import KNOWN_WARNINGS, MODE_ENV, silence_known_warnings
from mi_course.grading.exercise_files import ExerciseId, lesson_number

IMPL_ENV = "MI_COURSE_IMPL"


def pytest_addoption(parser):
    group = parser.getgroup("mi-course grading")
    group.addoption("--impl", default=None,
                    help="what graded tests import: exercises (default), solutions, or a folder of lesson modules")
    group.addoption("--exercise", action="append", default=[], help="only this exercise id, e.g. 08.ToyModel")
    group.addoption("--lesson", action="append", default=[], help="only this lesson number, e.g. 08")
    group.addoption("--grade-jsonl", default=None, help="append per-test grading records to this file")
    group.addoption("--judge", action="store_true", default=False,
                    help="class grading: never import the learner's module here; run it in a sandboxed subject "
                         "process (mi_course.grading.judge) and check what comes back")


def pytest_configure(config):
    silence_known_warnings()
    for message, category in KNOWN_WARNINGS:  # pytest resets warning filters per test; tell it too
        config.addinivalue_line("filterwarnings", f"ignore:{message}:{category.__name__}")
    # Tests are calibrated on the shipped lite organisms, whatever mode the notebook runs in.
    os.environ[MODE_ENV] = "lite"
    impl = config.getoption("impl") or os.environ.get(IMPL_ENV) or "exercises"
    config._mi_impl = impl
    # The learner's module is imported in this process and by any subprocess a test starts.
    os.environ[IMPL_ENV] = impl
    path = config.getoption("grade_jsonl")
    config._mi_jsonl = open(path, "a", buffering=1) if path else None
    if config.getoption("judge"):  # inputs drawn from the run's secret, not from seeds a submission can read
        from mi_course.grading import secret_seed

        secret_seed.install(secret_seed.secret_from_env())


def pytest_unconfigure(config):
    if getattr(config, "_mi_jsonl", None):
        config._mi_jsonl.close()


def exercise_of(item) -> tuple[str, int] | None:
    """(exercise id, points) of a graded test item, or None for a course (non-graded) test."""
    mark = item.get_closest_marker("exercise")
    if mark is None:
        return None
    lesson = getattr(item.module, "LESSON", None)
    if lesson is None:
        raise pytest.UsageError(f"{item.nodeid}: graded test modules must set LESSON = 'lNN_name'")
    name = mark.args[0] if mark.args else mark.kwargs["name"]
    points = int(mark.kwargs.get("points", mark.args[1] if len(mark.args) > 1 else 1))
    return str(ExerciseId(lesson_number(lesson), name)), points


def _emit(config, record: dict) -> None:
    if config._mi_jsonl:
        config._mi_jsonl.write(json.dumps(record) + "\n")


def pytest_collection_modifyitems(config, items):
    wanted_ex = {str(ExerciseId.parse(e)) for e in config.getoption("exercise")}
    wanted_lessons = {l.zfill(2) for l in config.getoption("lesson")}
    keep, drop = [], []
    for item in items:
        info = exercise_of(item)
        if wanted_ex or wanted_lessons:
            if info is None or (wanted_ex and info[0] not in wanted_ex) \
                    or (wanted_lessons and info[0][:2] not in wanted_lessons):
                drop.append(item)
                continue
        keep.append(item)
        if info:
            item.user_properties.append(("exercise", info[0]))
            item.user_properties.append(("points", info[1]))
            _emit(config, {"event": "collected", "nodeid": item.nodeid, "exercise": info[0], "points": info[1]})
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _classify(call) -> tuple[str, str]:
    """(kind, message) of a failed call: not_started, timeout, assertion or exception."""
    excinfo = call.excinfo
    value = excinfo.value
    if isinstance(value, NotImplementedError):
        return "not_started", str(value) or "NotImplementedError"
    text = str(value)
    if any(c.__name__ == "SubjectTimeout" for c in type(value).__mro__):  # class grading: the subject overran
        return "timeout", text
    if excinfo.typename == "Failed" and text.startswith("Timeout"):
        return "timeout", f"took too long ({text}); look for an infinite loop or a very slow step"
    if isinstance(value, AssertionError):
        return "assertion", text.split("\nassert ")[0].strip() or "assertion failed"
    if excinfo.typename in ("Failed", "Skipped"):
        return "assertion", text
    # An exception raised inside the learner's code: say what and where (last frame outside pytest).
    where = ""
    frames = [f for f in traceback.extract_tb(excinfo.tb) if "site-packages" not in f.filename]
    if frames:
        f = frames[-1]
        where = f" (at {os.path.basename(f.filename)}:{f.lineno}: {f.line})"
    return "exception", f"{excinfo.typename}: {text}{where}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    info = exercise_of(item)
    if info is None:
        return
    if report.failed or (call.when == "call" and report.passed):
        if report.failed:
            kind, message = _classify(call) if call.excinfo else ("exception", str(report.longrepr))
            if call.when != "call" and kind == "exception":
                kind = "setup_error"
        else:
            kind, message = "passed", ""
        _emit(item.config, {"event": "result", "nodeid": item.nodeid, "exercise": info[0], "points": info[1],
                            "when": call.when, "kind": kind, "message": message[:2000],
                            "duration": round(report.duration, 3)})
        report.user_properties.append(("kind", kind))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """A per-exercise points table after a plain ``pytest`` run, so learners see their score."""
    from mi_course.grading.report import format_table, summarize_reports

    rows = summarize_reports(terminalreporter.stats)
    if rows:
        terminalreporter.write_sep("=", f"mi-course: points per exercise (impl: {config._mi_impl})")
        terminalreporter.write_line(format_table(rows))


@pytest.fixture(scope="module")
def impl(request):
    """The lesson module under test (the learner's exercises, the solutions, or a folder's copy); with
    ``--judge``, a proxy to it running in a sandboxed subject process."""
    from mi_course.grading.impl import load_impl

    if request.config.getoption("judge"):
        from mi_course.grading.judge import remote_impl

        yield from remote_impl(request.config, request.module.LESSON)
        return
    yield load_impl(request.module.LESSON, request.config._mi_impl)
