"""The mi-course command."""

import pytest

from mi_course.cli import main as cli
from mi_course.models import full


def test_doctor_reports_versions_mode_device_and_models(monkeypatch, capsys):
    monkeypatch.setattr(full, "network_available", lambda *a, **k: False)
    assert cli(["doctor"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "transformer-lens", "mode", "device", "attn-only-2l", "modular-addition"):
        assert word in out


def test_run_reports_each_notebook_and_fails_on_unknown(capsys):
    assert cli(["run", "no-such-notebook"]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        cli(["--help"])
    out = capsys.readouterr().out
    for command in ("doctor", "lab", "run", "grade"):
        assert command in out


def test_run_exits_nonzero_when_a_notebook_fails(tmp_path, capsys):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('fine')"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    assert cli(["run", str(path), "--out", str(tmp_path / "out"), "--cell-timeout", "60"]) == 1
    out = capsys.readouterr().out
    assert "99_broken" in out and "failed" in out and "boom" in out
    assert (tmp_path / "out" / "99_broken.ipynb").exists()


def test_run_fails_a_notebook_that_shows_a_warning_and_names_the_cell(tmp_path, capsys):
    # a learner sees a printed warning as a red box under the cell: `mi-course run` (and so CI) reports it
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('fine')"),
                nbformat.v4.new_code_cell("import warnings\nwarnings.warn('the old API', FutureWarning)"),
                nbformat.v4.new_code_cell("import sys\n"
                                          "print('3 of 4: Warning: not a Python warning', file=sys.stderr)"),
                nbformat.v4.new_code_cell("warnings.warn('\\nstarts on the next line', UserWarning)")]
    path = tmp_path / "99_warns.ipynb"
    nbformat.write(nb, path)
    assert cli(["run", str(path), "--out", str(tmp_path / "out"), "--cell-timeout", "60"]) == 1
    out = capsys.readouterr().out
    assert "warned" in out and "cell 2: FutureWarning: the old API" in out, out
    assert "cell 4: UserWarning: starts on the next line" in out, out
    assert "cell 3" not in out, "stderr text that is not a Python warning was taken for one"


def test_known_warnings_are_silenced_once_the_course_is_imported():
    # kornia 0.4.1 (lucent's) calls torch.jit.script on import, which torch deprecates: every Part I lesson
    # showed it. A fresh interpreter, so that kornia is imported here for the first time.
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error'); import mi_course; "
            "mi_course.silence_known_warnings(); import lucent.optvis.transform; print('clean')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr[-2000:]


def test_run_with_jobs_runs_notebooks_at_once_each_with_its_mode(tmp_path, capsys, monkeypatch):
    """--jobs 2: two kernels at once; each sees the mode and impl it was run with, and the runner's own
    environment is left as it was (the kernels get theirs explicitly, not through os.environ)."""
    import os

    import nbformat

    monkeypatch.delenv("MI_COURSE_MODE", raising=False)
    for name in ("97_first", "98_second"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("import os, time\ntime.sleep(2)\n"
                                              "print(os.environ['MI_COURSE_MODE'], os.environ['MI_COURSE_IMPL'])")]
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    paths = [str(tmp_path / "97_first.ipynb"), str(tmp_path / "98_second.ipynb")]
    assert cli(["run", *paths, "--out", str(tmp_path / "out"), "--jobs", "2", "--impl", "solutions",
                "--cell-timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "97_first" in out and "98_second" in out
    for name in ("97_first", "98_second"):
        cell = nbformat.read(tmp_path / "out" / f"{name}.ipynb", as_version=4).cells[0]
        assert "".join(o.get("text", "") for o in cell.outputs).split() == ["lite", "solutions"]
    assert "MI_COURSE_MODE" not in os.environ
