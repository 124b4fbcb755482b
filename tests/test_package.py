"""The course's files agree with each other: install lists, exercises vs solutions, notebooks, CI."""

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from mi_course.build import CLASSROOM_PATH
from mi_course.grading.exercise_files import interface, lesson_modules, regions
from mi_course.lessons import setup_cell_source
from mi_course.models.checkpoints import sha256

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = lesson_modules(ROOT / "solutions")


def _pyproject_dependencies() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    return re.findall(r'"([^"]+)"', block)


def _normalize(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pip = sorted(_normalize(r) for r in pip if not r.startswith("-e"))
    assert conda_pip == sorted(_normalize(r) for r in _pyproject_dependencies())
    assert "-e ." in pip, "environment.yml should install the course itself (-e .)"


def test_no_exact_torch_pin_and_no_numpy_cap_in_pyproject():
    deps = {_normalize(d).split(">")[0].split("<")[0].split("=")[0]: d for d in _pyproject_dependencies()}
    assert "==" not in deps["torch"] and "==" not in deps["torchvision"], "Colab ships its own torch"
    assert "<2" not in deps["numpy"].replace(" ", "")
    assert re.search(r">=\s*3\.9\s*,\s*<\s*4", deps["transformer-lens"]), "sae-lens needs transformer-lens < 4"


def test_ci_pins_torch_exactly():
    text = (ROOT / ".ci" / "constraints.txt").read_text()
    assert "torch==2.14.1" in text and "torchvision==0.29.1" in text


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("lesson", sorted(SOLUTIONS))
def test_exercises_match_solutions_interface(lesson):
    """Names, signatures and docstrings agree even after a learner filled in the bodies."""
    exercise_files = lesson_modules(ROOT / "exercises")
    assert lesson in exercise_files, f"exercises/ has no stub file for lesson {lesson}"
    solution = SOLUTIONS[lesson].read_text()
    exercise = exercise_files[lesson].read_text()
    assert regions(exercise).keys() == regions(solution).keys()
    assert interface(exercise) == interface(solution)


@pytest.mark.parametrize("lesson", sorted(SOLUTIONS))
def test_every_exercise_has_a_graded_test_and_a_notebook_cell_with_a_check(lesson):
    tests = " ".join(p.read_text() for p in (ROOT / "tests" / "graded").glob(f"test_l{lesson}_*.py"))
    notebook = next(p for p in NOTEBOOKS if p.name.startswith(lesson))
    sources = [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    for name in regions(SOLUTIONS[lesson].read_text()):
        assert re.search(rf'mark\.exercise\("{name}"', tests), f"{lesson}.{name} has no graded test"
        cells = [i for i, s in enumerate(sources) if s.startswith(f"%%exercise {lesson}.{name}\n")]
        assert len(cells) == 1, f"{notebook.name} needs one %%exercise cell for {lesson}.{name}"
        later = " ".join(sources[cells[0] + 1:])
        assert f'check("{lesson}.{name}")' in later, f"{notebook.name}: no check(...) after {name}'s cell"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_the_setup_cell_and_is_cleared(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == setup_cell_source(notebook.name[:2]), "first code cell must be the setup template"
    assert "google.colab" in code[0].source, "the setup cell installs the course on Colab"
    dirty = [c.id for c in code if c.outputs or c.execution_count]
    assert not dirty, f"commit notebooks with outputs cleared (cells {dirty})"


def test_classroom_workflow_grades_every_exercise():
    workflow = yaml.safe_load((ROOT / CLASSROOM_PATH).read_text())
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    graded = {s["with"]["test-name"] for s in steps if "autograding-command-grader" in s.get("uses", "")}
    expected = {f"{lesson}.{name}" for lesson, path in SOLUTIONS.items() for name in regions(path.read_text())}
    assert graded == expected
    assert all(s["with"]["max-score"] > 0 for s in steps if "autograding-command-grader" in s.get("uses", ""))


def test_manifest_lists_every_shipped_file():
    folder = ROOT / "mi_course" / "checkpoints"
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    shipped = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and p.name != "MANIFEST.json" and "__pycache__" not in p.parts}
    assert shipped == set(manifest), "run `python scripts/update_manifest.py` after adding or retraining a model"
    assert sum(e["bytes"] for e in manifest.values()) <= 60 * 2**20, "lite checkpoints must total <= 60 MB"
    for name, entry in manifest.items():
        assert sha256(folder / name) == entry["sha256"], f"{name} differs from its manifest entry"


def _mi_course_imports(path: Path) -> set[str]:
    """The mi_course modules a file imports (top level or inside functions)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mi_course"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mi_course")}
    return found


@pytest.mark.parametrize("package, lesson_packages", [
    # (the lite SAE loader builds mi_course.saes's classes: those are the models themselves)
    ("models", ("mi_course.language", "mi_course.vision")),
    ("organisms", ("mi_course.language", "mi_course.saes", "mi_course.explorers")),
])
def test_loaders_and_organism_builders_do_not_import_lesson_helpers(package, lesson_packages):
    """The layout: the code that builds the organisms lives in mi_course.organisms, and neither it nor the
    loaders in mi_course.models reach up into the lessons' helpers (the image set draws with the stimuli's
    primitives in mi_course.vision.stimuli, which the organisms may use)."""
    for path in sorted((ROOT / "mi_course" / package).glob("*.py")):
        upward = sorted(m for m in _mi_course_imports(path) if m.startswith(lesson_packages))
        assert not upward, f"mi_course/{package}/{path.name} imports {upward}"
