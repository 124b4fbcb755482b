"""The grader: exercise files, per-exercise reports, isolation of broken answers, stubs fail, solutions pass."""

import json
import shutil
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from mi_course.cli import main as cli
from mi_course.grading import exercise_files as ef
from mi_course.grading.runner import grade
from mi_course.grading.worker import FORK_ENV, start_worker

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = textwrap.dedent('''\
    import torch

    # >>> exercise: double
    def double(x):
        """Twice x."""
        # BEGIN SOLUTION
        return 2 * x
        # END SOLUTION
    # <<< exercise: double


    # >>> exercise: Box
    class Box:
        """Holds a value."""

        def __init__(self, value):
            # BEGIN SOLUTION
            self.value = value
            # STUB: self.value = None
            # END SOLUTION
    # <<< exercise: Box
''')


def test_stubs_replace_solution_blocks():
    stubs = ef.make_stubs(SOLUTION, "42")
    assert "return 2 * x" not in stubs and "self.value = value" not in stubs
    assert 'raise NotImplementedError("exercise 42.double: not started yet")' in stubs
    assert "        self.value = None\n" in stubs  # the STUB line, uncommented at the block's indent
    assert ef.interface(stubs) == ef.interface(SOLUTION)
    assert list(ef.regions(stubs)) == ["double", "Box"]


def test_replace_region_keeps_the_rest_of_the_file():
    updated = ef.replace_region(SOLUTION, "double", "def double(x):\n    return x + x\n")
    assert ef.region_text(updated, "double") == "def double(x):\n    return x + x\n"
    assert ef.region_text(updated, "Box") == ef.region_text(SOLUTION, "Box")
    appended = ef.replace_region(SOLUTION, "triple", "def triple(x):\n    return 3 * x\n")
    assert ef.region_text(appended, "triple") == "def triple(x):\n    return 3 * x\n"


@pytest.mark.parametrize("bad, message", [
    ("# >>> exercise: a\n", "never closed"),
    ("# <<< exercise: a\n", "without its start"),
    ("# >>> exercise: a\n# >>> exercise: b\n", "inside region"),
])
def test_malformed_regions_are_reported(bad, message):
    with pytest.raises(ValueError, match=message):
        ef.regions(bad)


def test_exercise_ids_are_validated():
    assert str(ef.ExerciseId.parse("08.ToyModel")) == "08.ToyModel"
    with pytest.raises(ValueError, match="08.ToyModel"):
        ef.ExerciseId.parse("ToyModel")


# A fake course with one lesson whose exercises are each broken in a different way.
FAKE_TESTS = textwrap.dedent('''\
    import pytest
    import torch

    from mi_course.grading.asserts import assert_finite, assert_shape, call_unmutated

    LESSON = "l99_fake"
    NAMES = ["ok", "raises", "hangs", "exits", "nan", "mutates", "wrong_shape", "not_started", "half"]


    def make(name):
        @pytest.mark.exercise(name, points=2)
        def test_value(impl):
            x = torch.ones(3)
            out = assert_finite(call_unmutated(getattr(impl, name), x), f"{name}(x)")
            assert_shape(out, (3,), f"{name}(x)")
            assert torch.equal(out, 2 * torch.ones(3)), f"{name}(x) should be 2 * x"

        @pytest.mark.exercise(name, points=1)
        def test_type(impl):
            assert isinstance(getattr(impl, name)(torch.zeros(2)), torch.Tensor), "should return a tensor"

        return test_value, test_type


    for _name in NAMES:
        globals()[f"test_{_name}_value"], globals()[f"test_{_name}_type"] = make(_name)
''')

FAKE_IMPL = textwrap.dedent('''\
    import os
    import torch

    def ok(x): return 2 * x
    def raises(x): raise RuntimeError("learner bug")
    def hangs(x):
        while True:
            pass
    def exits(x): os._exit(3)
    def nan(x): return x * float("nan")
    def mutates(x): return x.mul_(2)
    def wrong_shape(x): return (2 * x)[None]
    def not_started(x): raise NotImplementedError("exercise 99.not_started: not started yet")
    def half(x): return x
''')


@pytest.fixture
def fake_course(tmp_path, monkeypatch):
    root = tmp_path / "course"
    (root / "tests" / "graded").mkdir(parents=True)
    (root / "exercises").mkdir()
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "tests" / "graded" / "test_l99_fake.py").write_text(FAKE_TESTS)
    impl = tmp_path / "impl"
    impl.mkdir()
    (impl / "l99_fake.py").write_text(FAKE_IMPL)
    monkeypatch.setenv("MI_COURSE_ROOT", str(root))
    return impl


@pytest.fixture(params=["worker", "fresh process"])
def grading_path(request, monkeypatch):
    """Grade through the warm worker's forked children, or through a fresh pytest process per run."""
    monkeypatch.setenv(FORK_ENV, "1" if request.param == "worker" else "0")
    return request.param


def test_each_broken_exercise_is_reported_and_none_hides_the_others(fake_course, tmp_path, grading_path):
    rows = {r.id: r for r in grade(str(fake_course), test_timeout=3)}
    status = {k[3:]: (r.status, r.points_earned, r.points_possible) for k, r in rows.items()}
    assert status == {
        "ok": ("passed", 3, 3),
        "raises": ("error", 0, 3),
        "hangs": ("timed out", 0, 3),
        "exits": ("error", 0, 3),
        "nan": ("failed", 1, 3),
        "mutates": ("failed", 1, 3),
        "wrong_shape": ("failed", 1, 3),
        "not_started": ("not started", 0, 3),
        "half": ("failed", 1, 3),
    }
    assert "RuntimeError: learner bug" in rows["99.raises"].message
    assert "process died" in rows["99.exits"].message
    assert "NaN" in rows["99.nan"].message
    assert "in place" in rows["99.mutates"].message
    assert "shape (3)" in rows["99.wrong_shape"].message
    assert "2 * x" in rows["99.half"].message


def test_grade_command_writes_json_and_junit(fake_course, tmp_path, capsys):
    out_json, out_xml = tmp_path / "g.json", tmp_path / "g.xml"
    code = cli(["grade", "--impl", str(fake_course), "--exercise", "99.ok", "--exercise", "99.half",
                "--json", str(out_json), "--junit", str(out_xml)])
    assert code == 0
    table = capsys.readouterr().out
    assert "99.ok" in table and "3/3" in table and "99.raises" not in table and "4/6" in table
    data = json.loads(out_json.read_text())
    assert data["points_earned"] == 4 and data["points_possible"] == 6
    assert {e["id"]: e["status"] for e in data["exercises"]} == {"99.ok": "passed", "99.half": "failed"}
    assert set(data["exercises"][0]) >= {"id", "points_earned", "points_possible", "status", "message"}
    suite = ET.parse(out_xml).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["99.half"].find("failure") is not None and cases["99.ok"].find("failure") is None
    assert cli(["grade", "--impl", str(fake_course), "--exercise", "99.half", "--strict"]) == 1
    assert cli(["grade", "--impl", str(fake_course), "--exercise", "99.ok", "--strict"]) == 0


def test_bad_grade_arguments_say_what_was_expected(fake_course, capsys):
    assert cli(["grade", "--impl", str(fake_course), "--lesson", "42"]) == 2
    assert "lessons with tests: 99" in capsys.readouterr().err
    assert cli(["grade", "--impl", "/no/such/folder"]) == 2
    assert "exercises" in capsys.readouterr().err


def test_check_prints_feedback_and_never_raises(fake_course, monkeypatch, capsys):
    from mi_course import check

    monkeypatch.setenv("MI_COURSE_IMPL", str(fake_course))
    assert check("99.ok") is None
    assert check("99.mutates") is None
    assert check("99.not_started") is None
    assert check("not an id") is None
    out = capsys.readouterr().out
    assert "PASS 99.ok: 3/3" in out
    assert "FAIL 99.mutates (failed): 1/3" in out and "in place" in out
    assert "TODO 99.not_started" in out
    assert "could not run" in out


# The real lessons: stubs generated from solutions earn nothing, the solutions earn everything, in the
# learner's grading (in process) and in class grading (judge: the lesson file runs only in a subject).
@pytest.mark.parametrize("judge", [False, True], ids=["local", "judge"])
def test_generated_stubs_fail_every_graded_test(tmp_path, judge):
    for lesson, path in ef.lesson_modules(ROOT / "solutions").items():
        (tmp_path / path.name).write_text(ef.make_stubs(path.read_text(), lesson))
    rows = grade(str(tmp_path), judge=judge)
    assert rows, "no graded exercises found"
    for row in rows:
        assert row.points_earned == 0, f"{row.id}: the stub earns points; a test passes without any work"
        assert row.status == "not started", f"{row.id}: {row.status}: {row.message}"
        assert all(kind != "passed" for _, kind, _ in row.tests)


@pytest.mark.timeout(1800)
def test_solutions_earn_full_points_in_class_grading():
    """Through the judge (`pytest tests --impl solutions` grades them in process in the same run)."""
    rows = grade("solutions", judge=True)
    bad = [(r.id, r.status, r.message) for r in rows if r.points_earned != r.points_possible]
    assert rows and not bad


def test_a_broken_test_file_is_one_error_row_with_pytest_output(fake_course, capsys):
    import os

    root = Path(os.environ["MI_COURSE_ROOT"])
    (root / "tests" / "graded" / "test_l98_broken.py").write_text("import no_such_module\nLESSON = 'l98_x'\n")
    rows = grade(str(fake_course), lessons=["98"])
    assert [(r.id, r.status) for r in rows] == [("98.*", "error")]
    assert "no_such_module" in capsys.readouterr().err


def test_summary_prefers_an_assertion_message_over_a_raw_exception():
    from mi_course.grading.report import summarize

    collected = {"t::a": ("01.x", 1), "t::b": ("01.x", 1)}
    results = {"t::a": ("exception", "RuntimeError: shapes cannot be multiplied"),
               "t::b": ("assertion", "you computed W W^T x; use W^T W x")}
    (row,) = summarize(collected, results)
    assert row.status == "error" and "W^T W" in row.message


def test_the_worker_grades_the_file_as_it_is_now(fake_course):
    """A learner fixes an exercise between two checks: the second check grades the fixed file."""
    start_worker()
    assert [r.status for r in grade(str(fake_course), exercises=["99.half"])] == ["failed"]
    source = (fake_course / "l99_fake.py").read_text().replace("def half(x): return x", "def half(x): return 2 * x")
    (fake_course / "l99_fake.py").write_text(source)
    assert [r.status for r in grade(str(fake_course), exercises=["99.half"])] == ["passed"]


def test_a_hang_that_ignores_the_test_timeout_is_stopped_by_the_wall_limit(fake_course, monkeypatch,
                                                                          grading_path):
    """Code that blocks the timeout's signal (as a hang inside C code can) is killed at the lesson's wall
    limit; the exercises after it are still graded."""
    import mi_course.grading.runner as runner

    monkeypatch.setattr(runner, "LESSON_WALL_LIMIT", 8)
    source = (fake_course / "l99_fake.py").read_text().replace(
        "def hangs(x):\n    while True:\n        pass",
        "def hangs(x):\n    import signal, time\n    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n"
        "    time.sleep(600)")
    assert "pthread_sigmask" in source
    (fake_course / "l99_fake.py").write_text(source)
    rows = {r.id: r for r in grade(str(fake_course), exercises=["99.hangs", "99.ok"], test_timeout=2)}
    assert rows["99.hangs"].status == "timed out" and rows["99.hangs"].points_earned == 0
    assert rows["99.ok"].status == "passed"


def test_grade_prints_each_failing_message_whole_under_the_table(fake_course, capsys):
    from mi_course.grading.report import ExerciseResult
    from mi_course.grading.runner import print_report

    long = ("test_visualize_restores_the_model: visualize should run the model in eval mode and give it back "
            "in the mode it came in; " * 6 + "the last words of the message")
    rows = [ExerciseResult("01.visualize", 0, 4, "failed", long), ExerciseResult("01.jitter", 3, 3, "passed"),
            ExerciseResult("01.fourier_image", 0, 3, "not started", "not started yet")]
    print_report(rows, "exercises")
    table, _, failures = capsys.readouterr().out.partition("What failed, in full:")
    assert "..." in table, "the table itself keeps its short column"
    assert " ".join(long.split()) in " ".join(failures.split()), "a failure message was cut"
    assert "01.visualize (failed, 0/4 points)" in failures and "01.fourier_image" not in failures
    assert cli(["grade", "--impl", str(fake_course), "--exercise", "99.half", "--exercise", "99.ok"]) == 0
    _, _, failures = capsys.readouterr().out.partition("What failed, in full:")
    assert "99.half (failed, 1/3 points)" in failures and "should be 2 * x" in failures
    assert "99.ok" not in failures


def test_malformed_result_lines_are_skipped_and_never_drop_the_report(tmp_path):
    """One bad line in the results file (a crash mid-write, or lines a submission appended) costs that line
    only: the rest of the report is read (issue 24)."""
    from mi_course.grading.report import read_jsonl

    good = [{"event": "collected", "nodeid": "t::a", "exercise": "99.ok", "points": 2},
            {"event": "result", "nodeid": "t::a", "kind": "passed", "message": ""},
            {"event": "collected", "nodeid": "t::b", "exercise": "99.half", "points": 1}]
    bad = ['{"event": "collected"', "[1, 2]", "null", '"passed"', '{"event": "result"}',
           '{"event": "collected", "nodeid": "t::c", "exercise": "99.x", "points": "3"}',
           '{"event": "result", "nodeid": "t::b", "kind": 7, "message": ""}', "[" * 100000, "\udcff"]
    lines = [json.dumps(good[0]), bad[0], json.dumps(good[1]), *bad[1:], json.dumps(good[2])]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines) + "\n", errors="surrogateescape")
    collected, results = read_jsonl(path)
    assert collected == {"t::a": ("99.ok", 2), "t::b": ("99.half", 1)}
    assert results == {"t::a": ("passed", "")}


LEVEL_2_KEY_FREQUENCIES = '''def key_frequencies(W_E, p, mass=0.9):
    """The level-2 hint of 11.key_frequencies typed in as given: float32 shares, no slack (issue 23)."""
    if not isinstance(W_E, torch.Tensor) or W_E.dim() != 2 or W_E.shape[0] < p:
        raise ValueError("W_E must be [d_vocab, d_model] with at least p rows")
    if not 0 < mass <= 1:
        raise ValueError("mass must be in (0, 1]")
    per_row = (fourier_basis(p) @ W_E[:p]).pow(2).sum(-1)
    frequency = torch.tensor([(i + 1) // 2 for i in range(p)])
    share = torch.zeros(p // 2 + 1).index_add_(0, frequency, per_row) / per_row.sum()
    chosen, total = [], 0.0
    for k in torch.sort(share, descending=True, stable=True).indices.tolist():
        chosen.append(k)
        total += share[k].item()
        if total >= mass:
            break
    return chosen
'''


def test_the_level_2_hint_of_key_frequencies_typed_in_passes(tmp_path):
    """The hint and the tests agree: its recipe, in float32 as typed, earns every point (it used to lose the
    tie-breaking test to float32 rounding)."""
    source = (ROOT / "solutions" / "l11_circuits_in_the_wild.py").read_text()
    answer = ef.replace_region(source, "key_frequencies", LEVEL_2_KEY_FREQUENCIES)
    (tmp_path / "l11_circuits_in_the_wild.py").write_text(answer)
    rows = grade(str(tmp_path), exercises=["11.key_frequencies"])
    assert [(r.id, r.status) for r in rows] == [("11.key_frequencies", "passed")], rows[0].message
