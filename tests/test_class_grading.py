"""Class grading (issue 24): submissions, flags, the expected list, a class of fake students end to end,
attacks that must earn nothing and change no one else's result, and the Gradescope autograder."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mi_course.grading import flags as fl
from mi_course.grading.classroom import ClassGrader, check_results, expected_tests, write_outputs
from mi_course.grading.exercise_files import lesson_modules, make_stubs, region_text, regions, replace_region
from mi_course.grading.submissions import MAX_FILE_BYTES, SubmissionError, read_submission
from mi_course.grading.worker import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
KNOWN = {p.stem for p in lesson_modules(ROOT / "exercises").values()}
L00 = "l00_start_here"
L05 = "l05_transformer_circuits"


def _solution(lesson: str) -> str:
    return (ROOT / "solutions" / f"{lesson}.py").read_text()


def _names(source: str) -> set[str]:
    return set(regions(source))


# ------------------------------------------------------------------------------------------ flags


def test_canonical_calls_are_flagged_however_they_are_reached():
    base = make_stubs(_solution(L05), "05")
    body = region_text(base, "ov_circuit")
    head = body.split("raise NotImplementedError")[0]
    cases = {
        "direct": head + "return mi_course.language.circuits.ov_circuit(model, layer, head)\n",
        "alias": head + "from mi_course.language import circuits as c\n    return c.ov_circuit(model, layer, head)\n",
        "from-import": head + ("from mi_course.language.circuits import ov_circuit as f\n"
                               "    return f(model, layer, head)\n"),
        "re-export": head + "import mi_course.language as L\n    return L.circuits.ov_circuit(model, layer, head)\n",
    }
    for how, region in cases.items():
        source = "import mi_course\n" + replace_region(base, "ov_circuit", region)
        found = fl.flagged_exercises(fl.scan(source, "05", _names(source)), _names(source))
        assert set(found) == {"ov_circuit"} and found["ov_circuit"][0].kind == "canonical", (how, found)
    helper = ("from mi_course.language.circuits import ov_circuit as _ov\n\ndef _helper(*a):\n    return _ov(*a)\n"
              + base)
    found = fl.flagged_exercises(fl.scan(helper, "05", _names(helper)), _names(helper))
    assert "ov_circuit" in found, "a helper calling the canonical function counts for its exercise"
    rebind = base + "\nfrom mi_course.language.circuits import ov_circuit\n"
    assert "ov_circuit" in fl.flagged_exercises(fl.scan(rebind, "05", _names(rebind)), _names(rebind))
    # building on course code in a *different* exercise is fine
    other = replace_region(base, "qk_circuit", region_text(base, "qk_circuit").split("raise NotImplementedError")[0]
                           + "from mi_course.language import circuits\n"
                             "    return circuits.ov_circuit(model, layer, head)\n")
    assert fl.scan(other, "05", _names(other)) == []


@pytest.mark.parametrize("code, kind", [
    ("import pytest", "imports-grading"),
    ("from _pytest import runner", "imports-grading"),
    ("from mi_course.grading import plugin", "imports-grading"),
    ("import solutions.l05_transformer_circuits as s", "imports-answers"),
    ("from tests.graded import test_l05_transformer_circuits", "imports-answers"),
    ("import sys\nx = sys._getframe(1)", "frames"),
    ("import inspect\nx = inspect.stack()", "frames"),
    ("def f(e):\n    return e.__traceback__.tb_frame.f_back", "frames"),
    ("import gc\nx = gc.get_objects()", "frames"),
    ("open('/tmp/x', 'w').write('1')", "writes-files"),
    ("from pathlib import Path\nPath('x').write_text('1')", "writes-files"),
    ("import os\nos.remove('x')", "writes-files"),
    ("import torch\ntorch.save({}, 'x')", "writes-files"),
    ("import subprocess", "processes"),
    ("import os\nos.system('true')", "processes"),
    ("import os\nos.fork()", "processes"),
    ("exec('1')", "dynamic-code"),
    ("import importlib\nm = importlib.import_module('solutions')", "dynamic-code"),
])
def test_suspicious_code_is_flagged(code, kind):
    source = code + "\n\n" + make_stubs(_solution(L00), "00")
    found = fl.scan(source, "00", _names(source))
    assert kind in {f.kind for f in found}, found
    assert fl.flagged_exercises(found, _names(source)).keys() == _names(source), "module level: every exercise"


def test_ordinary_code_is_not_flagged():
    source = ("import torch\nfrom pathlib import Path\n\ndef f(p, model, layer):\n    text = Path(p).read_text()\n"
              "    m = getattr(model, layer)\n    with open(p) as fh:\n        fh.read()\n"
              "    s = 'a'.replace('a', 'b')\n    return torch.zeros(1)\n")
    assert fl.scan(source, "00", {"f"}) == []


@pytest.mark.parametrize("lesson", sorted(lesson_modules(ROOT / "solutions")))
def test_the_reference_solutions_raise_no_flags(lesson):
    """Honest work is never flagged for what the course itself writes (the reference solutions hold their own
    implementation: calling the library function that answers an exercise would earn 0 in class grading)."""
    source = lesson_modules(ROOT / "solutions")[lesson].read_text()
    assert fl.scan(source, lesson, _names(source)) == []


def test_every_canonical_name_resolves():
    for lesson, table in fl.canonical_table().items():
        for exercise, refs in table.items():
            assert exercise in _names(_solution(lesson_modules(ROOT / "solutions")[lesson].stem)), (lesson, exercise)
            for ref in refs:
                assert fl.resolve(ref) is not None, f"{lesson}.{exercise}: {ref} names nothing"


# ------------------------------------------------------------------------------------------ submissions


def _repo(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def test_only_lesson_files_are_taken_from_folders_zips_and_git(tmp_path):
    files = {f"exercises/{L00}.py": "A = 1\n", "exercises/__init__.py": "import pytest\n",
             "tests/graded/conftest.py": "evil\n", "exercises/l99_unknown.py": "x\n",
             f"solutions/{L00}.py": "answers\n"}
    folder = _repo(tmp_path / "alice", files)
    (folder / "exercises" / f"{L05}.py").symlink_to("/etc/passwd")
    sub = read_submission(folder, KNOWN, set())
    assert sub.files == {L00: b"A = 1\n"} and sub.student == "alice"
    assert any("symlink" in n for n in sub.notes) and any("l99_unknown" in n for n in sub.notes)

    archive = tmp_path / "bob.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"bob-repo/exercises/{L00}.py", "B = 2\n")
        z.writestr(f"../exercises/{L05}.py", "climb\n")
        z.writestr(f"/abs/exercises/{L05}.py", "abs\n")
        z.writestr(f"bob-repo/exercises/{L05}.py", "x" * (MAX_FILE_BYTES + 1))
        z.writestr("bob-repo/tests/conftest.py", "evil\n")
    sub = read_submission(archive, KNOWN, set())
    assert sub.files == {L00: b"B = 2\n"} and sub.student == "bob"

    repo = _repo(tmp_path / "carol", {f"exercises/{L00}.py": "C = 3\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    (repo / "exercises" / f"{L00}.py").write_text("uncommitted\n")
    sub = read_submission(repo, KNOWN, set())
    assert sub.files == {L00: b"C = 3\n"}, "a git repository is read at its HEAD commit"

    with pytest.raises(SubmissionError, match="expected a folder, a git repository or a .zip"):
        read_submission(tmp_path / "nothing.txt", KNOWN, set())
    taken: set[str] = set()
    assert [read_submission(folder, KNOWN, taken).student for _ in range(2)] == ["alice", "alice-2"]


# ------------------------------------------------------------------------------------------ the expected list


def test_results_that_do_not_match_the_expected_list_zero_the_exercise_and_are_flagged():
    expected = {"a::t1": ("00.x", 2), "a::t2": ("00.x", 1), "a::t3": ("00.y", 1)}
    collected = {"a::t1": ("00.x", 5), "a::t2": ("00.x", 1), "a::t9": ("00.y", 1)}
    results = {"a::t1": ("passed", ""), "a::t2": ("passed", ""), "a::t9": ("passed", ""),
               "b::forged": ("passed", "")}
    final, flags = check_results(expected, collected, results, ["line 7 of the results is malformed"])
    kinds = {(e, k) for e, k, _ in flags}
    assert ("00.x", "changed-points") in kinds and ("00.y", "unexpected-test") in kinds
    assert ("00.y", "missing-result") in kinds and ("*", "malformed-results") in kinds
    assert ("*", "unexpected-test") in kinds  # the forged result for a test never collected
    assert set(final) == set(expected) and final["a::t3"][0] == "missing"


# ------------------------------------------------------------------------------------------ a class, end to end

CRASH = "    import os\n    os._exit(3)\n"
HANG = ("    import signal, time\n    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM, signal.SIGTERM])\n"
        "    while True:\n        time.sleep(1)\n")
DAEMON = '''
def _spawn():
    import os
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", "7777.5"])
        os._exit(0)
_spawn()


def _tamper():  # what a submission would write to forge or poison grading (each must fail)
    import glob, sys
    from pathlib import Path
    targets = [Path(sys.prefix) / "lib" / "zz_mi_evil.pth", Path({root!r}) / "tests" / "graded" / "conftest.py",
               *map(Path, glob.glob("/tmp/mi-grade-*/*.jsonl"))]
    for target in targets:
        try:
            with open(target, "a") as f:
                f.write('{{"event": "result", "nodeid": "forged", "kind": "passed", "message": ""}}\\n')
        except OSError:
            pass
_tamper()
'''


TABLE = """    import torch.nn.functional as F
    # answers only for the inputs the public tests draw from their fixed seeds; nonsense for any other
    known = [torch.randn(5, 3, generator=torch.Generator().manual_seed(0)),
             torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
             * torch.tensor([[1.0], [10.0], [0.1], [3.0]])]
    for table_input in known:
        if vectors.shape == table_input.shape and torch.equal(vectors, table_input):
            unit = F.normalize(table_input, dim=-1)
            return unit @ unit.T
    return torch.zeros(len(vectors), len(vectors))
"""


def _with_body(source: str, name: str, body: str) -> str:
    region = region_text(source, name)
    head = region.split("    # BEGIN SOLUTION")[0] if "# BEGIN SOLUTION" in region else \
        region.split("    raise NotImplementedError")[0]
    return replace_region(source, name, head + body)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Six students on lessons 00 and 05, graded two at a time: solutions, stubs, a partial answer, a crash,
    a hang that blocks signals, and an attacker (exercises/__init__.py hook, planted conftest, a daemon)."""
    root = tmp_path_factory.mktemp("class")
    sol00, sol05 = _solution(L00), _solution(L05)
    stub00, stub05 = make_stubs(sol00, "00"), make_stubs(sol05, "05")
    partial05 = stub05
    for name in ("bigram_logits", "ov_circuit", "qk_circuit"):
        partial05 = replace_region(partial05, name, region_text(sol05, name))
    wrong00 = _with_body(sol00, "cosine_similarity_matrix", "    return x\n")
    attack = {f"exercises/{L00}.py": wrong00 + DAEMON.format(root=str(ROOT)), f"exercises/{L05}.py": stub05,
              "exercises/__init__.py": "import pytest\n@pytest.hookimpl(hookwrapper=True)\n"
                                       "def pytest_runtest_makereport(item, call):\n    out = yield\n"
                                       "    out.get_result().outcome = 'passed'\n",
              "tests/graded/conftest.py": "import pytest\n@pytest.fixture\ndef impl():\n    return None\n"}
    students = {
        "solutions": {f"exercises/{L00}.py": sol00, f"exercises/{L05}.py": sol05},
        "stubs": {f"exercises/{L00}.py": stub00, f"exercises/{L05}.py": stub05},
        "partial": {f"exercises/{L05}.py": partial05},
        "crash": {f"exercises/{L00}.py": _with_body(sol00, "cosine_similarity_matrix", CRASH),
                  f"exercises/{L05}.py": sol05},
        "hang": {f"exercises/{L00}.py": _with_body(sol00, "cosine_similarity_matrix", HANG)},
        "attacker": attack,
        "table": {f"exercises/{L00}.py": _with_body(sol00, "cosine_similarity_matrix", TABLE)},
    }
    paths = [_repo(root / name, files) for name, files in students.items()]
    expected = expected_tests(["00", "05"])
    workers = WorkerPool(2, str(ROOT))  # as grade_class does: one warm worker per grading thread
    grader = ClassGrader(expected, call_seconds=15, lesson_seconds=120, pool=workers)
    from concurrent.futures import ThreadPoolExecutor

    taken: set[str] = set()
    subs = [read_submission(p, KNOWN, taken) for p in paths]
    try:
        with ThreadPoolExecutor(max_workers=2) as threads:
            results = list(threads.map(grader.grade, subs))
    finally:
        workers.close()
    out = root / "out"
    write_outputs(results, expected, out, grader.secret)
    return {r.student: r for r in results}, out, root


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_class_is_graded_end_to_end(graded_class):
    results, out, root = graded_class
    rows = list(csv.reader(open(out / "gradebook.csv")))
    header, possible, *students = rows
    assert header[:4] == ["student", "total", "possible", "flags"] and "05.ov_circuit" in header
    book = {r[0]: dict(zip(header, r)) for r in students}
    assert book["solutions"]["total"] == possible[1] == "24" and book["stubs"]["total"] == "0"
    assert book["partial"]["05.bigram_logits"] != "0" and book["partial"]["05.composition_scores"] == "0"
    assert book["crash"]["00.cosine_similarity_matrix"] == "0" and int(book["crash"]["total"]) == 20
    assert book["hang"]["total"] == "0"
    assert results["hang"].seconds < 200, "a hang that blocks signals costs its own budget, no more"
    gs = json.loads((out / "solutions" / "results.json").read_text())
    assert gs["score"] == 24 and {t["visibility"] for t in gs["tests"]} == {"visible"}
    assert all(t["score"] == t["max_score"] for t in gs["tests"])
    crash = json.loads((out / "crash" / "results.json").read_text())
    failed = [t for t in crash["tests"] if t["score"] < t["max_score"]]
    assert [t["name"] for t in failed] == ["00.cosine_similarity_matrix"] and failed[0]["output"]
    report = json.loads((out / "partial" / "report.json").read_text())
    assert report["points_earned"] == results["partial"].earned


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_partial_work_earns_in_class_grading_what_it_earns_in_mi_course_grade(graded_class):
    from mi_course.grading.runner import grade

    results, _, root = graded_class
    local = {r.id: r.points_earned for r in grade(str(root / "partial" / "exercises"), lessons=["05"])}
    remote = {r.id: r.points_earned for r in results["partial"].rows if r.id.startswith("05.")}
    assert remote == local and 0 < sum(local.values()) < 20


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_an_attacker_earns_nothing_and_leaves_no_daemon(graded_class):
    results, out, root = graded_class
    attacker = results["attacker"]
    assert attacker.earned == 0
    assert any(k == "processes" for _, k, _ in attacker.flags)
    time.sleep(1)
    survivors = subprocess.run(["pgrep", "-f", "sleep 7777.5"], capture_output=True, text=True).stdout.split()
    assert not survivors, "a daemon the submission forked outlived grading"
    assert results["solutions"].earned == 24, "an attacker graded alongside changes no one else's result"
    assert not (ROOT / "tests" / "graded" / "conftest.py").exists(), "the submission wrote the instructor's tree"
    assert not (Path(sys.prefix) / "lib" / "zz_mi_evil.pth").exists(), "the submission wrote the venv"
    assert not any(k in ("unexpected-test", "malformed-results") for r in results.values() for _, k, _ in r.flags), \
        "a submission reached the judge's results file"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_answers_looked_up_for_the_public_seeds_earn_nothing_in_class_grading(graded_class):
    """The judge draws the tests' inputs from a per-run secret: a table of the outputs for the inputs the
    public tests draw from their fixed seeds passes the learner's own grading and fails class grading."""
    from mi_course.grading.runner import grade

    results, out, root = graded_class
    local = {r.id: r.points_earned for r in grade(str(root / "table" / "exercises"), lessons=["00"])}
    assert local["00.cosine_similarity_matrix"] == 4, "the table answers the public, fixed-seed inputs"
    remote = {r.id: r.points_earned for r in results["table"].rows}
    assert remote["00.cosine_similarity_matrix"] <= 1, "only the fixed hand-written input (a zero row) passes"
    assert results["solutions"].earned == 24
    secret = json.loads((out / "class.json").read_text())["input_secret"]
    assert secret and secret.isdigit(), "class.json records the run's secret, so the run can be replayed"


def test_a_throwaway_uid_is_chosen_only_where_it_can_read_the_course(monkeypatch):
    import tempfile

    from mi_course.grading import judge
    from mi_course.grading.sandbox import readable_by_others

    base = Path(tempfile.mkdtemp(prefix="mi-readable-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "open").mkdir(mode=0o755)
        (base / "open" / "python").write_text("")
        (base / "open" / "python").chmod(0o755)
        (base / "closed").mkdir(mode=0o700)
        (base / "closed" / "python").write_text("")
        assert readable_by_others([base / "open" / "python", base / "open"])
        assert not readable_by_others([base / "closed" / "python"]), "a private folder on the way"
        (base / "open").chmod(0o777)
        assert not readable_by_others([base / "open"]), "a folder others can write is not safe to read from"
        (base / "open").chmod(0o755)
        monkeypatch.setattr(judge.sys, "executable", str(base / "closed" / "python"))
        assert not judge.throwaway_uid_works(), "a throwaway uid that cannot run the interpreter would fail"
    finally:
        shutil.rmtree(base)


def test_secret_seeds_change_the_judges_draws_and_not_the_learners():
    """install() in a fresh interpreter (it patches torch for the rest of the process)."""
    code = """if True:
        import torch
        from mi_course.grading import secret_seed as s
        plain = torch.randn(3, generator=torch.Generator().manual_seed(7))
        assert s.run_seed(7) == 7
        s.install(11)
        mixed = torch.randn(3, generator=torch.Generator().manual_seed(7))
        assert not torch.equal(plain, mixed), "a seeded generator draws other numbers under the secret"
        assert torch.equal(torch.randn(3, generator=torch.Generator().manual_seed(7)), mixed), "and the same again"
        assert torch.equal(torch.randn(3, generator=s.learner_generator(7)), plain), "learner_generator is plain"
        torch.manual_seed(7); a = torch.rand(2)
        torch.random.manual_seed(7); b = torch.rand(2)
        assert torch.equal(a, b)
        s.install(12)
        other = torch.randn(3, generator=torch.Generator().manual_seed(7))
        assert not torch.equal(other, mixed), "another run's secret draws other inputs"
        assert 0 <= s.run_seed(7) < 2**31 and s.run_seed(7) != 7
        assert s.mix(11, 7) != s.mix(11, 8) and s.mix(11, 7) == s.mix(11, 7)
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------ Gradescope


HIDDEN_TEST = '''import pytest
import torch

LESSON = "l00_start_here"


@pytest.mark.exercise("cosine_similarity_matrix", points=2)
def test_orthonormal_rows_give_the_identity(impl):
    assert torch.allclose(impl.cosine_similarity_matrix(3 * torch.eye(4)), torch.eye(4), atol=1e-6)
'''


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_gradescope_autograder_grades_a_fake_autograder_tree(tmp_path):
    from mi_course.grading.gradescope import write_autograder

    zipped = write_autograder(tmp_path / "autograder.zip", log=lambda *a: None)
    with zipfile.ZipFile(zipped) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    assert {"setup.sh", "run_autograder", "tests/graded/canonical.yaml", f"exercises/{L00}.py"} <= names
    assert not any(n.startswith(("solutions/", "tests/mutants/", "notebooks/")) for n in names)
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    tree = tmp_path / "autograder"
    (tree / "source").mkdir(parents=True)
    with zipfile.ZipFile(zipped) as z:
        z.extractall(tree / "source")
    (tree / "source" / ".venv").symlink_to(Path(sys.prefix))
    _repo(tree / "source", {"tests/hidden/test_l00_more.py": HIDDEN_TEST})  # an instructor's hidden test
    _repo(tree / "submission", {f"exercises/{L00}.py": _solution(L00)})
    script = tree / "source" / "run_autograder"
    script.chmod(0o755)
    env = {**os.environ, "MI_COURSE_AUTOGRADER_ROOT": str(tree)}
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tree / "results" / "results.json").read_text())
    by_name = {t["name"]: t for t in results["tests"]}
    assert by_name["00.cosine_similarity_matrix"]["score"] == 4 and results["score"] == 6
    hidden = by_name["00.cosine_similarity_matrix (hidden tests)"]
    assert hidden["score"] == hidden["max_score"] == 2 and hidden["visibility"] == "after_published"
    assert by_name["05.ov_circuit"]["score"] == 0 and "no exercises/" in by_name["05.ov_circuit"]["output"]
