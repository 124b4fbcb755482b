"""Every lesson notebook executes top to bottom in lite mode with the solutions, within a time limit, and
every check() in it passes. Executed copies go to build/notebooks (see `mi-course run`)."""

from pathlib import Path

import nbformat
import pytest

from mi_course.lessons import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LIMIT_SECONDS = 300  # a hang guard per notebook, not a benchmark: scripts/benchmark_notebooks.py prints times


@pytest.mark.slow
@pytest.mark.timeout(LIMIT_SECONDS + 60)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_lite_mode_with_solutions(notebook, tmp_path):
    result = run_notebook(notebook, tmp_path, cell_timeout=LIMIT_SECONDS)
    assert result.status == "ok", f"{notebook.name}: {result.error}"
    executed = nbformat.read(tmp_path / notebook.name, as_version=4)
    feedback = [o.get("text", "") for c in executed.cells if c.cell_type == "code" and "check(" in c.source
                for o in c.outputs]
    assert feedback and all(text.startswith("PASS") for text in feedback), feedback
