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
