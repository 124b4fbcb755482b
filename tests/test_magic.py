"""The %%exercise cell: the learner's code goes into the graded file, and into the notebook."""

import shutil
from pathlib import Path

import pytest

from mi_course.grading.exercise_files import region_text
from mi_course.grading.magic import run_exercise_cell

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A copy of the course's exercises/ and solutions/ that the magic may write to."""
    root = tmp_path / "course"
    for folder in ("exercises", "solutions"):
        shutil.copytree(ROOT / folder, root / folder)
    (root / "tests").mkdir()
    monkeypatch.setenv("MI_COURSE_ROOT", str(root))
    monkeypatch.delenv("MI_COURSE_IMPL", raising=False)
    monkeypatch.syspath_prepend(str(root))
    for name in list(__import__("sys").modules):
        if name.split(".")[0] in ("exercises", "solutions"):
            monkeypatch.delitem(__import__("sys").modules, name)
    return root


ANSWER = '''def cosine_similarity_matrix(vectors):
    """My answer."""
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T
'''


def test_cell_is_saved_to_the_exercise_file_and_defined(course, capsys):
    import torch

    ns = {}
    run_exercise_cell("00.cosine_similarity_matrix", ANSWER, ns)
    saved = (course / "exercises" / "l00_start_here.py").read_text()
    assert region_text(saved, "cosine_similarity_matrix") == ANSWER
    assert torch.allclose(ns["cosine_similarity_matrix"](torch.eye(2)), torch.eye(2))
    assert "Saved cosine_similarity_matrix" in capsys.readouterr().out


def test_syntax_error_is_shown_and_nothing_saved(course, capsys):
    before = (course / "exercises" / "l00_start_here.py").read_text()
    run_exercise_cell("00.cosine_similarity_matrix", "def cosine_similarity_matrix(v:\n", {})
    assert (course / "exercises" / "l00_start_here.py").read_text() == before
    assert "SyntaxError" in capsys.readouterr().out


def test_cell_must_define_the_exercise(course, capsys):
    before = (course / "exercises" / "l00_start_here.py").read_text()
    run_exercise_cell("00.cosine_similarity_matrix", "def something_else():\n    pass\n", {})
    assert (course / "exercises" / "l00_start_here.py").read_text() == before
    assert "must define cosine_similarity_matrix" in capsys.readouterr().out


def test_solutions_mode_uses_the_reference_and_saves_nothing(course, monkeypatch, capsys):
    import torch

    monkeypatch.setenv("MI_COURSE_IMPL", "solutions")
    before = (course / "exercises" / "l00_start_here.py").read_text()
    ns = {}
    run_exercise_cell("00.cosine_similarity_matrix", "raise SystemExit('never run')\n", ns)
    assert (course / "exercises" / "l00_start_here.py").read_text() == before
    assert torch.allclose(ns["cosine_similarity_matrix"](torch.eye(3)), torch.eye(3))


def test_bad_exercise_id_is_explained(course):
    with pytest.raises(ValueError, match="08.ToyModel"):
        run_exercise_cell("cosine", ANSWER, {})


def test_a_cell_without_docstrings_keeps_the_files_docstrings(course):
    stub = region_text((course / "exercises" / "l00_start_here.py").read_text(), "cosine_similarity_matrix")
    run_exercise_cell("00.cosine_similarity_matrix", "def cosine_similarity_matrix(vectors):\n"
                      "    unit = vectors / vectors.norm(dim=-1, keepdim=True)\n    return unit @ unit.T\n", {})
    saved = region_text((course / "exercises" / "l00_start_here.py").read_text(), "cosine_similarity_matrix")
    from mi_course.grading.exercise_files import interface

    docs = lambda src: {name: doc for name, (_, doc) in interface(src).items()}
    assert docs(saved) == docs(stub), "the docstring the cell left out was dropped from the file"
    assert "return unit @ unit.T" in saved


def test_methods_keep_their_docstrings_and_a_new_docstring_wins():
    from mi_course.grading.exercise_files import keep_docstrings

    region = 'class M:\n    """Doc of M."""\n\n    def forward(self, x):\n        """Doc of forward.\n\n' \
             '        Two lines."""\n        raise NotImplementedError\n'
    cell = 'class M:\n    def forward(self, x):\n        return x\n'
    kept = keep_docstrings(cell, region)
    ns = {}
    exec(kept, ns)
    assert ns["M"].__doc__ == "Doc of M." and ns["M"].forward.__doc__.startswith("Doc of forward.")
    assert ns["M"]().forward(3) == 3
    mine = 'class M:\n    """Mine."""\n    def forward(self, x):\n        return x\n'
    ns = {}
    exec(keep_docstrings(mine, region), ns)
    assert ns["M"].__doc__ == "Mine." and ns["M"].forward.__doc__.startswith("Doc of forward.")


# ------------------------------------------------------------------ nothing a learner wrote is ever lost
import nbformat  # noqa: E402

from mi_course.grading.exercise_files import make_stubs, regions, replace_region, strip_stub_comments  # noqa: E402

# the exercises a learner's run of the committed notebooks wrote stubs over (issue 23)
LOST_BEFORE = ["00.cosine_similarity_matrix", "01.get_activations", "03.curve_stimulus", "03.line_stimulus",
               "09.SAE", "10.activation_histogram", "11.fourier_basis"]


def notebook_cell(eid: str) -> str:
    """The %%exercise cell of the committed notebook, as a fresh copy of it holds it."""
    path = next((ROOT / "notebooks").glob(f"{eid[:2]}_*.ipynb"))
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.get("metadata", {}).get("exercise") == eid:
            return cell.source
    raise KeyError(eid)


def answer_everything(root: Path, lesson: str) -> Path:
    """A learner who finished lesson ``lesson``: the reference code in every region of their file."""
    sol = next((root / "solutions").glob(f"l{lesson}_*.py")).read_text()
    path = next((root / "exercises").glob(f"l{lesson}_*.py"))
    text = path.read_text()
    for name in regions(text):
        text = replace_region(text, name, strip_stub_comments(region_text(sol, name)))
    path.write_text(text)
    return path


def split_magic(cell_source: str) -> tuple[str, str]:
    first, _, body = cell_source.partition("\n")
    return first.removeprefix("%%exercise").strip(), body


@pytest.mark.parametrize("eid", LOST_BEFORE)
def test_a_fresh_notebooks_stub_cell_never_replaces_an_answer(course, capsys, eid):
    path = answer_everything(course, eid[:2])
    before = path.read_text()
    ns = {}
    run_exercise_cell(*split_magic(notebook_cell(eid)), ns)
    assert path.read_text() == before, f"the stub cell of {eid} was written over the learner's answer"
    name = eid.split(".")[1]
    assert "NotImplementedError" not in __import__("inspect").getsource(ns[name]), "the stub was defined"
    out = capsys.readouterr().out
    assert f"Kept your answer to {eid}" in out and "not saved over your answer" in out
    assert not (course / "exercises" / ".history").exists()


def test_an_older_version_of_the_stub_is_recognised_too(course, capsys):
    path = answer_everything(course, "00")
    before = path.read_text()
    eid, body = split_magic(notebook_cell("00.cosine_similarity_matrix"))
    reworded = body.replace('"""', '"""(Older wording.) ', 1) + "\n# a comment the stub once had\n"
    run_exercise_cell(eid, reworded, {})
    assert path.read_text() == before
    assert "Kept your answer" in capsys.readouterr().out


def test_a_stub_cell_over_a_stub_is_saved_and_defined(course, capsys):
    ns = {}
    run_exercise_cell(*split_magic(notebook_cell("00.cosine_similarity_matrix")), ns)
    with pytest.raises(NotImplementedError, match="not started yet"):
        ns["cosine_similarity_matrix"](__import__("torch").eye(2))
    assert "Saved cosine_similarity_matrix" in capsys.readouterr().out


def test_an_edited_cell_replaces_the_answer_and_keeps_the_old_one(course, capsys):
    path = course / "exercises" / "l00_start_here.py"
    stub = region_text(path.read_text(), "cosine_similarity_matrix")
    answered_elsewhere = ANSWER.replace("My answer.", "Written in an editor.")
    path.write_text(replace_region(path.read_text(), "cosine_similarity_matrix", answered_elsewhere))
    run_exercise_cell("00.cosine_similarity_matrix", ANSWER, {})
    assert region_text(path.read_text(), "cosine_similarity_matrix") == ANSWER
    history = list((course / "exercises" / ".history" / "l00_start_here").glob("cosine_similarity_matrix-*.py"))
    assert [h.read_text() for h in history] == [answered_elsewhere]
    assert "previous cosine_similarity_matrix is kept in" in capsys.readouterr().out
    # iterating in the cell: the kernel wrote what is in the file, so no copy per run
    run_exercise_cell("00.cosine_similarity_matrix", ANSWER.replace("My answer.", "Second try."), {})
    assert len(list(history[0].parent.iterdir())) == 1
    # a stub in the file is nothing to keep
    path.write_text(replace_region(path.read_text(), "cosine_similarity_matrix", stub))
    run_exercise_cell("00.cosine_similarity_matrix", ANSWER, {})
    assert len(list(history[0].parent.iterdir())) == 1


def test_a_stub_cell_leaves_a_broken_answer_alone_and_says_why(course, capsys):
    path = course / "exercises" / "l00_start_here.py"
    broken = "def cosine_similarity_matrix(vectors):\n    return (vectors @ vectors.T\n"
    path.write_text(replace_region(path.read_text(), "cosine_similarity_matrix", broken))
    before = path.read_text()
    run_exercise_cell(*split_magic(notebook_cell("00.cosine_similarity_matrix")), {})
    assert path.read_text() == before
    out = capsys.readouterr().out
    assert "SyntaxError" in out and "not saved over your answer" in out


def test_a_folder_impl_says_whose_code_runs(course, monkeypatch, capsys, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(course / "solutions" / "l00_start_here.py", folder / "l00_start_here.py")
    monkeypatch.setenv("MI_COURSE_IMPL", str(folder))
    ns = {}
    run_exercise_cell("00.cosine_similarity_matrix", "raise SystemExit('never run')\n", ns)
    out = capsys.readouterr().out
    assert "reference" not in out and str(folder) in out
    assert ns["cosine_similarity_matrix"].__module__.startswith("_mi_impl_")
    monkeypatch.setenv("MI_COURSE_IMPL", "solutions")
    run_exercise_cell("00.cosine_similarity_matrix", "raise SystemExit('never run')\n", ns)
    assert "reference solution" in capsys.readouterr().out


def test_the_stub_fingerprints_match_the_stubs():
    from mi_course.grading.exercise_files import ExerciseId, lesson_modules
    from mi_course.grading.stubs import is_untouched_stub

    for lesson, path in lesson_modules(ROOT / "solutions").items():
        stubs = make_stubs(path.read_text(), lesson)
        sol = path.read_text()
        for name in regions(stubs):
            eid = ExerciseId(lesson, name)
            assert is_untouched_stub(eid, region_text(stubs, name)), f"{eid}: stub not recognised"
            assert not is_untouched_stub(eid, region_text(sol, name)), f"{eid}: the solution passes for a stub"


# ------------------------------------------------------------- the routes a learner takes to a stub cell
@pytest.fixture
def finished_course(tmp_path, monkeypatch):
    """A whole course checkout whose learner has answered every exercise of lesson 00."""
    root = tmp_path / "mi-course"
    for folder in ("exercises", "solutions", "tests"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", ".history"))
    (root / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "00_start_here.ipynb", root / "notebooks")
    shutil.copy(ROOT / "pyproject.toml", root)
    path = answer_everything(root, "00")
    monkeypatch.setenv("MI_COURSE_ROOT", str(root))
    monkeypatch.delenv("MI_COURSE_IMPL", raising=False)
    return root, path, path.read_text()


@pytest.mark.slow
def test_mi_course_run_runs_the_learners_answers_by_default_and_keeps_them(finished_course, capsys):
    from mi_course.cli import main as cli

    root, path, answered = finished_course
    assert cli(["run", "00", "--out", str(root / "out"), "--cell-timeout", "120"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "your exercises" in out
    assert path.read_text() == answered, "mi-course run wrote the notebook's stub over the learner's answer"
    executed = nbformat.read(root / "out" / "00_start_here.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "Kept your answer to 00.cosine_similarity_matrix" in printed
    assert "PASS 00.cosine_similarity_matrix" in printed, "check() did not grade the kept answer"


def test_the_colab_setup_cell_then_a_fresh_stub_cell_keeps_the_answer(finished_course, monkeypatch):
    """Colab opens every notebook anew: the setup cell finds the runtime's clone, the stub cell keeps the
    answer saved in it earlier in the same runtime."""
    import sys
    import types

    from IPython.core.interactiveshell import InteractiveShell

    from mi_course.lessons import setup_cell_source

    root, path, answered = finished_course
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("MI_COURSE_GRADE_FORK", "0")  # no grading worker for this test
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in list(sys.modules):
        if name.split(".")[0] in ("exercises", "solutions"):
            monkeypatch.delitem(sys.modules, name)
    setup = setup_cell_source("00").replace("/content/mi-course", str(root))
    shell = InteractiveShell.instance()
    try:
        assert shell.run_cell(setup).success
        result = shell.run_cell(notebook_cell("00.cosine_similarity_matrix"))
        assert result.success, result.error_in_exec
        assert path.read_text() == answered, "the Colab route wrote the stub over the learner's answer"
        import torch

        got = shell.user_ns["cosine_similarity_matrix"](torch.eye(2))
        assert torch.allclose(got, torch.eye(2))
    finally:
        InteractiveShell.clear_instance()


def _colab(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("MI_COURSE_GRADE_FORK", "0")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("MI_COURSE_ROOT", str(ROOT))  # recorded, so that what the cell sets is undone after
    monkeypatch.delenv("MI_COURSE_ROOT")


def test_the_colab_setup_cell_says_what_to_do_when_the_clone_fails(tmp_path, monkeypatch):
    """A clone that cannot work (no such repository, a private one) fails at once with what to do, and never
    waits at a credentials prompt (issue 25)."""
    import time

    from mi_course.lessons import setup_cell_source

    _colab(monkeypatch)
    missing = tmp_path / "no-such-repo.git"
    monkeypatch.setenv("MI_COURSE_REPO", str(missing))
    monkeypatch.setenv("GIT_ASKPASS", "/bin/false")
    setup = setup_cell_source("00").replace("/content/mi-course", str(tmp_path / "clone"))
    start = time.monotonic()
    with pytest.raises(SystemExit, match="MI_COURSE_REPO") as err:
        exec(compile(setup, "setup", "exec"), {})
    assert str(missing) in str(err.value) and "unzip it into" in str(err.value)
    assert time.monotonic() - start < 30 and not (tmp_path / "clone").exists()


def test_the_colab_setup_cell_clones_the_address_it_is_given(tmp_path, monkeypatch):
    import subprocess

    from mi_course.lessons import setup_cell_source

    _colab(monkeypatch)
    bare = tmp_path / "course.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--depth", "1", f"file://{ROOT}", str(bare)], check=True)
    monkeypatch.setenv("MI_COURSE_REPO", f"file://{bare}")
    clone = tmp_path / "mi-course"
    setup = setup_cell_source("00").replace("/content/mi-course", str(clone))
    exec(compile(setup, "setup", "exec"), {})  # mi_course is installed here, so no pip install
    assert (clone / "exercises" / "l00_start_here.py").exists()
    import os

    assert os.environ["MI_COURSE_ROOT"] == str(clone)
