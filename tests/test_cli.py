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
