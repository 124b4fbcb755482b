"""Mutation testing of the graded tests: do they catch the mistakes a learner makes?

    python scripts/mutation_test.py [--lesson 05] [--mutant '05.bigram_logits.*'] [--threshold 0.95]
                                    [--jobs 1] [--json results.json] [--list]

A mutant (``tests/mutants/lNN.yaml``) is one plausible learner mistake in one exercise of
``solutions/lNN_*.py``, given either as

    find / replace   text that occurs exactly once in that exercise's region, and what replaces it; or
    solution         a whole new body for the exercise's one ``# BEGIN SOLUTION`` block (needed where the
                     solution only calls the canonical version in mi_course: the mutant is then a complete
                     learner implementation with one mistake in it).

For each mutant, solutions/ is copied to a temporary folder, the mutant applied, and only that exercise's
graded tests run on the copy (``pytest tests/graded/test_lNN_*.py --impl COPY --exercise NN.name``, in a
process of its own). The mutant is *killed* when a test fails (or the process crashes or hangs, as the
grader would report it) and *survives* when every test passes. Mutants marked ``equivalent: true`` (they
cannot change behaviour) are run too but left out of the kill rate; one of them being killed means a test
rejects a correct answer. Before the mutants, each lesson's selected exercises are graded unmutated: they
must pass, or no kill would mean anything.

Prints one row per mutant and the kill rate over the non-equivalent ones, overall and per lesson; exits 1
when the overall rate is below ``--threshold`` (or a mutant no longer applies). Slow (a few seconds per
mutant, a pytest process each), so it runs on demand, not in the default test run; tests/test_mutants.py
checks quickly that every mutant still applies.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: graded tests use small tensors

import yaml  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from mi_course.grading.exercise_files import SOLUTION_BEGIN, SOLUTION_END, lesson_modules, regions, replace_region  # noqa: E402
from mi_course.grading.runner import grade  # noqa: E402
from mi_course.grading.worker import FORK_ENV  # noqa: E402
from mi_course.paths import repo_root  # noqa: E402

ROOT = repo_root()
MUTANTS_DIR = ROOT / "tests" / "mutants"
SOLUTIONS = ROOT / "solutions"
GRADED = ROOT / "tests" / "graded"
TEST_TIMEOUT = 60  # seconds per test: a mutant that hangs is killed, as the grader would report it


class MutantError(ValueError):
    """A mutant that does not apply to the current solutions (its text moved or its region is gone)."""


@dataclass(frozen=True)
class Mutant:
    id: str
    lesson: str  # two digits
    exercise: str  # the name inside the lesson, e.g. "bigram_logits"
    description: str
    find: str | None = None
    replace: str | None = None
    solution: str | None = None
    equivalent: bool = False
    reason: str = ""

    @property
    def exercise_id(self) -> str:
        return f"{self.lesson}.{self.exercise}"


@dataclass
class Outcome:
    id: str
    lesson: str
    exercise: str
    equivalent: bool
    status: str  # killed, survived, broken
    test: str = ""  # the first test that failed
    message: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------ loading


def load_mutants(folder: Path = MUTANTS_DIR) -> list[Mutant]:
    """Every mutant of every ``lNN.yaml`` in ``folder``, in file order. Malformed entries raise MutantError."""
    mutants = []
    for path in sorted(folder.glob("l[0-9][0-9].yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise MutantError(f"{path.name} is not valid YAML: {err}") from err
        lesson = str(data.get("lesson", path.stem[1:])).zfill(2)
        if lesson != path.stem[1:]:
            raise MutantError(f"{path.name}: lesson {lesson!r} does not match the file name")
        for i, entry in enumerate(data.get("mutants") or []):
            where = f"{path.name} mutant {i + 1} ({entry.get('id', 'no id')})"
            unknown = set(entry) - {"id", "exercise", "description", "find", "replace", "solution", "equivalent",
                                    "reason"}
            if unknown:
                raise MutantError(f"{where}: unknown keys {sorted(unknown)}")
            for key in ("id", "exercise", "description"):
                if not isinstance(entry.get(key), str) or not entry[key].strip():
                    raise MutantError(f"{where}: needs a non-empty {key!r}")
            has_find = "find" in entry or "replace" in entry
            if has_find == ("solution" in entry):
                raise MutantError(f"{where}: give either find and replace, or solution")
            if has_find and not (isinstance(entry.get("find"), str) and isinstance(entry.get("replace"), str)
                                 and entry["find"]):
                raise MutantError(f"{where}: find and replace must both be strings (find non-empty)")
            if entry.get("equivalent") and not str(entry.get("reason", "")).strip():
                raise MutantError(f"{where}: an equivalent mutant needs a reason")
            mutants.append(Mutant(id=entry["id"], lesson=lesson, exercise=entry["exercise"],
                                  description=" ".join(entry["description"].split()),
                                  find=entry.get("find"), replace=entry.get("replace"),
                                  solution=entry.get("solution"), equivalent=bool(entry.get("equivalent", False)),
                                  reason=" ".join(str(entry.get("reason", "")).split())))
    ids = [m.id for m in mutants]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise MutantError(f"mutant ids must be unique; repeated: {duplicates}")
    return mutants


def select(mutants: list[Mutant], lessons: list[str] | None = None, patterns: list[str] | None = None) -> list[Mutant]:
    """Those of the given lessons whose id matches one of the shell-style patterns (all when none given)."""
    wanted = {l.zfill(2) for l in lessons or []}
    out = [m for m in mutants if (not wanted or m.lesson in wanted)
           and (not patterns or any(fnmatch.fnmatchcase(m.id, p) for p in patterns))]
    if (lessons or patterns) and not out:
        raise MutantError(f"no mutant matches lessons {lessons or 'any'} and ids {patterns or 'any'}")
    return out


# ------------------------------------------------------------------------------------------------ applying


def lesson_file(lesson: str, folder: Path = SOLUTIONS) -> Path:
    files = lesson_modules(folder)
    if lesson not in files:
        raise MutantError(f"no {folder.name}/l{lesson}_*.py")
    return files[lesson]


def _replace_solution_block(region: str, body: str, mutant: Mutant) -> str:
    lines = region.splitlines()
    begins = [i for i, l in enumerate(lines) if SOLUTION_BEGIN.match(l)]
    ends = [i for i, l in enumerate(lines) if SOLUTION_END.match(l)]
    if len(begins) != 1 or len(ends) != 1:
        raise MutantError(f"{mutant.id}: a 'solution' mutant needs exactly one BEGIN/END SOLUTION block in "
                          f"{mutant.exercise_id}, found {len(begins)}; use find/replace instead")
    indent = SOLUTION_BEGIN.match(lines[begins[0]])["indent"]
    new = textwrap.indent(textwrap.dedent(body).rstrip("\n"), indent).splitlines()
    return "\n".join(lines[: begins[0] + 1] + new + lines[ends[0]:]) + "\n"


def apply_mutant(mutant: Mutant, source: str) -> str:
    """``source`` (a lesson module of solutions/) with ``mutant`` applied inside its exercise's region."""
    spans = regions(source)
    if mutant.exercise not in spans:
        raise MutantError(f"{mutant.id}: no exercise region {mutant.exercise!r} in lesson {mutant.lesson} "
                          f"(regions: {', '.join(spans)})")
    first, last = spans[mutant.exercise]
    region = "\n".join(source.splitlines()[first: last + 1]) + "\n"
    if mutant.solution is not None:
        mutated = _replace_solution_block(region, mutant.solution, mutant)
    else:
        count = region.count(mutant.find)
        if count != 1:
            raise MutantError(f"{mutant.id}: its find text occurs {count} times in the region of "
                              f"{mutant.exercise_id} (it must occur exactly once): {mutant.find!r}")
        mutated = region.replace(mutant.find, mutant.replace)
    if mutated == region:
        raise MutantError(f"{mutant.id}: applying it changes nothing")
    out = replace_region(source, mutant.exercise, mutated)
    try:
        compile(out, f"{mutant.id}.py", "exec")
    except SyntaxError as err:
        raise MutantError(f"{mutant.id}: the mutated lesson does not compile: line {err.lineno}: {err.msg}") from err
    return out


def graded_test_file(lesson: str) -> Path:
    files = sorted(GRADED.glob(f"test_l{lesson}_*.py"))
    if len(files) != 1:
        raise MutantError(f"expected one graded test file for lesson {lesson}, found {[f.name for f in files]}")
    return files[0]


def has_graded_tests(mutant: Mutant) -> bool:
    """Whether the lesson's graded test file marks at least one test with this exercise (a cheap text check)."""
    text = graded_test_file(mutant.lesson).read_text()
    return re.search(rf"""@pytest\.mark\.exercise\(\s*["']{re.escape(mutant.exercise)}["']""", text) is not None


# ------------------------------------------------------------------------------------------------ grading


def _copy_solutions(dest: Path) -> None:
    for path in SOLUTIONS.glob("*.py"):
        shutil.copy2(path, dest / path.name)


JUDGE = False  # --judge: grade as class grading does (the lesson file runs only in a sandboxed subject)


def grade_folder(folder: Path, lesson: str, exercises: list[str]) -> tuple[str, str, str]:
    """Grade ``exercises`` (names in ``lesson``) on ``folder`` with the course's own grader (the warm
    worker's forked children, or a fresh pytest process each with MI_COURSE_GRADE_FORK=0): (status, test,
    message), status "passed", "failed" (a test failed, crashed or hung) or "error" (nothing was graded)."""
    rows = grade(str(folder), exercises=[f"{lesson}.{e}" for e in exercises], test_timeout=TEST_TIMEOUT,
                 judge=JUDGE)
    failing = [r for r in rows if r.points_earned < r.points_possible]
    if failing:
        test, _, message = failing[0].message.partition(": ")
        return "failed", test, f"[{failing[0].status}] {message}"
    if rows and all(r.status == "passed" for r in rows):
        return "passed", "", ""
    return "error", "", f"no graded tests ran for {', '.join(exercises)} of lesson {lesson}"


def run_mutant(mutant: Mutant) -> Outcome:
    start = time.perf_counter()
    outcome = Outcome(mutant.id, mutant.lesson, mutant.exercise, mutant.equivalent, "broken")
    with tempfile.TemporaryDirectory(prefix="mi-mutant-") as tmp:
        folder = Path(tmp)
        _copy_solutions(folder)
        try:
            path = folder / lesson_file(mutant.lesson, SOLUTIONS).name
            path.write_text(apply_mutant(mutant, path.read_text()))
        except MutantError as err:
            outcome.message = str(err)
            return outcome
        status, test, message = grade_folder(folder, mutant.lesson, [mutant.exercise])
    outcome.status = {"failed": "killed", "passed": "survived"}.get(status, "broken")
    outcome.test, outcome.message = test, message
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


def baseline(mutants: list[Mutant]) -> list[str]:
    """Problems with the unmutated solutions: every selected exercise's tests must pass on a copy of them."""
    problems = []
    by_lesson: dict[str, list[str]] = {}
    for m in mutants:
        by_lesson.setdefault(m.lesson, [])
        if m.exercise not in by_lesson[m.lesson]:
            by_lesson[m.lesson].append(m.exercise)
    for lesson, exercises in tqdm(sorted(by_lesson.items()), desc="baseline (unmutated)", unit="lesson"):
        with tempfile.TemporaryDirectory(prefix="mi-baseline-") as tmp:
            _copy_solutions(Path(tmp))
            status, test, message = grade_folder(Path(tmp), lesson, exercises)
        if status != "passed":
            problems.append(f"lesson {lesson}: the unmutated solutions do not pass ({status} {test}: {message})")
    return problems


# ------------------------------------------------------------------------------------------------ report


def kill_rates(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    """'all' and each lesson -> (killed, counted), over the non-equivalent mutants that applied."""
    rates: dict[str, tuple[int, int]] = {}
    for o in outcomes:
        if o.equivalent or o.status == "broken":
            continue
        for key in ("all", o.lesson):
            killed, counted = rates.get(key, (0, 0))
            rates[key] = (killed + (o.status == "killed"), counted + 1)
    return rates


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def print_report(outcomes: list[Outcome], mutants: dict[str, Mutant], message_width: int = 90) -> None:
    width = max([len("mutant")] + [len(o.id) for o in outcomes])
    print(f"\n{'mutant':<{width}}  {'result':<10}  {'s':>5}  killed by / mistake")
    for o in outcomes:
        label = o.status + (" (eq)" if o.equivalent else "")
        detail = f"{o.test}: {o.message}" if o.status == "killed" else (
            mutants[o.id].description if o.status == "survived" else o.message)
        print(f"{o.id:<{width}}  {label:<10}  {o.seconds:5.1f}  {_short(detail, message_width)}")
    rates = kill_rates(outcomes)
    print("\nkill rate over non-equivalent mutants:")
    for key in sorted(k for k in rates if k != "all") + ["all"]:
        killed, counted = rates[key]
        name = "overall" if key == "all" else f"lesson {key}"
        print(f"  {name:<10} {killed:>3}/{counted:<3} = {killed / counted:6.1%}")
    equivalent = [o for o in outcomes if o.equivalent]
    if equivalent:
        print(f"equivalent mutants (not counted): {len(equivalent)}")
        for o in equivalent:
            warn = "  <-- KILLED: a test rejects a correct answer" if o.status == "killed" else ""
            print(f"  {o.id}: {mutants[o.id].reason}{warn}")
    survivors = [o for o in outcomes if o.status == "survived" and not o.equivalent]
    for o in survivors:
        print(f"SURVIVED {o.id} ({o.lesson}.{o.exercise}): {mutants[o.id].description}")
    for o in outcomes:
        if o.status == "broken":
            print(f"BROKEN {o.id}: {o.message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lesson", action="append", help="only this lesson's mutants (repeatable), e.g. 05")
    parser.add_argument("--mutant", action="append", help="only mutants whose id matches (shell pattern, repeatable)")
    parser.add_argument("--threshold", type=float, default=0.95, help="lowest acceptable overall kill rate")
    parser.add_argument("--jobs", type=int, default=1,
                        help="mutants graded at once, each in a new Python process (default 1: the course's warm "
                             "grading worker forks a child per mutant, the fastest on 2 cores)")
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    parser.add_argument("--list", action="store_true", help="list the selected mutants and stop")
    parser.add_argument("--no-baseline", action="store_true", help="skip grading the unmutated solutions first")
    parser.add_argument("--judge", action="store_true",
                        help="grade as class grading does: through the judge and a sandboxed subject")
    args = parser.parse_args(argv)
    global JUDGE
    JUDGE = args.judge

    try:
        mutants = select(load_mutants(), args.lesson, args.mutant)
    except MutantError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutants:
            print(f"{m.id:<48} {'(equivalent) ' if m.equivalent else ''}{m.description}")
        return 0
    if args.jobs > 1:  # threads, each grading in fresh pytest processes (the warm worker takes one at a time)
        os.environ[FORK_ENV] = "0"
    if not args.no_baseline:
        problems = baseline(mutants)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(tqdm(pool.map(run_mutant, mutants), total=len(mutants), desc="mutants", unit="mutant"))
    print_report(outcomes, {m.id: m for m in mutants})
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    rates = kill_rates(outcomes)
    killed, counted = rates.get("all", (0, 0))
    broken = any(o.status == "broken" for o in outcomes)
    if broken or not counted or killed / counted < args.threshold:
        print(f"\nFAIL: kill rate {killed}/{counted} below {args.threshold:.0%}" if counted and not broken
              else "\nFAIL: some mutants did not apply or could not be graded" if broken else "\nFAIL: no mutants")
        return 1
    print(f"\nOK: kill rate {killed / counted:.1%} >= {args.threshold:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
