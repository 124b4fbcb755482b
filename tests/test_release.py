"""The student release (`mi-course release OUT`): what it holds, what it leaves out, and that it grades."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from mi_course.build import expected_exercises
from mi_course.cli import main as cli
from mi_course.grading.exercise_files import SOLUTION_BEGIN, lesson_modules
from mi_course.grading.release import MANIFEST, ReleaseError, _check_out, release, solution_blocks, solution_code_in
from mi_course.grading.stubs import fingerprints_text
from mi_course.paths import repo_root

HIDDEN_MARKER = "HIDDEN-TEST-MARKER-3f9c2a"
STUDENT_URL = "https://github.com/some-class/mi-course-student"
LEFT_OUT = ("solutions", "tests/mutants", "tests/hidden", "scripts", "notebooks/src", ".ci/run", "build", ".venv",
            ".git", "exercises/.history", "mi_course.egg-info", "runs")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the course checkout with what a release must leave out planted in it: a hidden test, an
    instructor's answered exercise file, its history, and solution code in build/."""
    root = repo_root()
    copy = tmp_path_factory.mktemp("course") / "mi-course"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".venv", ".git", "build", "__pycache__", "*.pyc",
                                                              ".pytest_cache", "*.egg-info", "runs",
                                                              ".ipynb_checkpoints"))
    hidden = copy / "tests" / "hidden"
    hidden.mkdir()
    (hidden / "test_l08_hidden.py").write_text(
        f'"""{HIDDEN_MARKER}"""\nimport pytest\n\nLESSON = "l08_superposition"\n\n\n'
        f'@pytest.mark.exercise("ToyModel", points=1)\ndef test_hidden(impl):\n    assert impl.ToyModel\n')
    answered = (copy / "solutions" / "l08_superposition.py").read_text()
    (copy / "exercises" / "l08_superposition.py").write_text(answered)
    (copy / "exercises" / ".history").mkdir(exist_ok=True)
    (copy / "exercises" / ".history" / "l08_superposition.py").write_text(answered)
    (copy / "build").mkdir()
    (copy / "build" / "l08_superposition.py").write_text(answered)
    return copy


@pytest.fixture(scope="module")
def released(course, tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "student"
    result = release(out, root=course, repo_url=STUDENT_URL, log=lambda *a: None)
    return out, result


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_release_holds_no_solution_code(released, course):
    out, _ = released
    solutions = course / "solutions"
    blocks = solution_blocks(solutions)
    # every BEGIN SOLUTION block is found, and every one with a substantial line is checked
    markers = sum(1 for p in lesson_modules(solutions).values() for l in p.read_text().splitlines()
                  if SOLUTION_BEGIN.match(l))
    assert len(blocks) == markers and len(blocks) > 50
    checked = [b for b in blocks if b.lines]
    assert {b.lesson for b in checked} == set(lesson_modules(solutions))
    assert len(checked) >= 0.9 * len(blocks), [b.name for b in blocks if not b.lines]
    leaks = [str(f) for f in solution_code_in(out, solutions, blocks) if not f.hint]
    assert not leaks, "\n".join(leaks)
    # the scan finds what it looks for: every checked block in a copy of solutions/ ...
    found = "\n".join(str(f) for f in solution_code_in(solutions, solutions, blocks))
    assert all(b.name in found for b in checked)
    # ... and one line of a solution in a notebook's code cell or in the README
    line = max((l for b in checked for l in b.lines), key=len)
    planted = out.parent / "planted"
    (planted / "notebooks").mkdir(parents=True)
    nb = json.loads((out / "notebooks" / "08_superposition.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": ["x = 1\n", "    " + line.replace(" ", "  ") + "\n"]})
    (planted / "notebooks" / "08_superposition.ipynb").write_text(json.dumps(nb))
    (planted / "README.md").write_text(f"text `{line}` more")
    assert {f.path for f in solution_code_in(planted, solutions, blocks)} == {"notebooks/08_superposition.ipynb",
                                                                             "README.md"}


def test_release_leaves_out_solutions_hidden_tests_and_author_files(released, course):
    out, result = released
    files = _files(out)
    assert files == sorted(result.files)
    for left in LEFT_OUT:
        assert not (out / left).exists(), left
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert {f for f in files if f.startswith("tests/")} == \
        {"tests/conftest.py", "tests/graded/canonical.yaml",  # public: which library calls earn 0 in class grading
         *(f"tests/graded/{p.name}" for p in (course / "tests" / "graded").glob("*.py"))}
    for f in files:
        if not f.endswith(".safetensors"):
            assert HIDDEN_MARKER not in (out / f).read_text(errors="replace"), f
    assert (out / MANIFEST).read_text().splitlines() == sorted(files)


def test_release_exercises_are_the_generated_stubs(released):
    out, _ = released
    stubs = {p.name: text for p, text in expected_exercises().items()}
    assert stubs and {f.name: f.read_text() for f in (out / "exercises").glob("l*.py")} == stubs
    assert (out / "exercises" / "__init__.py").exists()


def test_release_holds_what_learners_need(released, course):
    out, _ = released
    course_url = re.search(r'^Repository = "(.+)"$', (course / "pyproject.toml").read_text(), re.M).group(1)
    assert (out / "pyproject.toml").read_text() == (course / "pyproject.toml").read_text().replace(
        f'Repository = "{course_url}"', f'Repository = "{STUDENT_URL}"')
    for rel in ("environment.yml", ".ci/constraints.txt", ".gitignore", "tests/conftest.py",
                "mi_course/checkpoints/MANIFEST.json", "mi_course/templates/setup_cell.py"):
        assert (out / rel).read_bytes() == (course / rel).read_bytes(), rel
    assert list((out / "mi_course" / "models" / "full_configs").glob("*.json"))
    assert len(list((out / "mi_course" / "checkpoints").rglob("*.safetensors"))) == \
        len(list((course / "mi_course" / "checkpoints").rglob("*.safetensors")))
    assert (out / "mi_course/templates/stub_fingerprints.json").read_text() == fingerprints_text(course / "solutions")
    names = sorted(p.name for p in (course / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == names
    for name in names:
        nb = json.loads((out / "notebooks" / name).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code), name
        setup = "".join(code[0]["source"])  # Colab clones the student repository
        assert "setup" in code[0]["metadata"]["tags"] and STUDENT_URL in setup and course_url not in setup
    workflow = (out / ".github" / "workflows" / "classroom.yml").read_text()
    assert workflow.startswith("# Generated by `mi-course build`")
    assert "command: mi-course grade --exercise 08.ToyModel --strict" in workflow
    readme = (out / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme and "not marks" in readme.replace("\n", " ")
    assert "| 08 |" in readme and "solutions" not in readme


def _recipe(makefile: str, target: str) -> list[str]:
    lines = makefile.splitlines()
    start = next(i for i, l in enumerate(lines) if re.match(rf"^{target}\s*:", l))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_release_makefile_tests_the_learners_exercises(released):
    out, _ = released
    makefile = (out / "Makefile").read_text()
    recipe = _recipe(makefile, "test")
    assert any("mi-course grade" in l for l in recipe)
    assert "solutions" not in makefile and "build --check" not in makefile
    if shutil.which("make"):
        shown = subprocess.run(["make", "-n", "test", "lab"], cwd=out, capture_output=True, text=True, check=True)
        assert "mi-course grade" in shown.stdout and "mi-course lab" in shown.stdout
        assert "solutions" not in shown.stdout


@pytest.mark.slow
def test_release_grades_stubs_as_not_started(released):
    """In the release, with its own package, `mi-course grade` runs and every graded test is not started."""
    out, _ = released
    report = out.parent / "grade.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MI_COURSE_IMPL", "PYTHONPATH")}
    env.update(MI_COURSE_ROOT=str(out), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    code = (f"import sys, mi_course; assert mi_course.__file__.startswith({str(out)!r}), mi_course.__file__\n"
            f"from mi_course.cli import main\n"
            f"sys.exit(main(['grade', '--impl', 'exercises', '--lesson', '00', '--lesson', '08', "
            f"'--json', {str(report)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    rows = data["exercises"]
    assert {r["id"][:2] for r in rows} == {"00", "08"}
    assert data["points_earned"] == 0 and data["points_possible"] > 0
    assert all(r["status"] == "not started" for r in rows), rows
    assert all(t["kind"] == "not_started" for r in rows for t in r["tests"])


def test_release_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    out = tmp_path / "student"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli(["release", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err
    assert _files(out) == ["notes.txt"]
    _check_out(out.resolve(), repo_root(), force=True)  # --force passes the check
    (out / "notes.txt").unlink()
    (out / ".git").mkdir()  # a fresh clone of an empty repository counts as empty
    _check_out(out.resolve(), repo_root(), force=False)


def test_release_refuses_a_folder_inside_or_around_the_course(capsys):
    root = repo_root()
    inside = root / "build" / "release-refused"
    assert cli(["release", str(inside)]) == 2
    assert "inside the course checkout" in capsys.readouterr().err
    assert not inside.exists()
    with pytest.raises(ReleaseError, match="contains the course checkout"):
        release(root.parent, force=True)
    with pytest.raises(ReleaseError, match="inside the course checkout"):
        release(root, force=True)


def test_build_in_a_release_says_it_is_for_course_authors(released):
    """`mi-course build` there would regenerate the stub fingerprints from nothing: it refuses, clearly."""
    out, _ = released
    fingerprints = (out / "mi_course" / "templates" / "stub_fingerprints.json").read_text()
    env = {k: v for k, v in os.environ.items() if k not in ("MI_COURSE_IMPL", "PYTHONPATH")}
    env.update(MI_COURSE_ROOT=str(out), PYTHONDONTWRITEBYTECODE="1")
    code = "import sys; from mi_course.cli import main; sys.exit(main(['build']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "for course authors" in proc.stderr, proc.stdout + proc.stderr
    assert (out / "mi_course" / "templates" / "stub_fingerprints.json").read_text() == fingerprints
    assert json.loads(fingerprints), "the release ships the stubs' fingerprints"
