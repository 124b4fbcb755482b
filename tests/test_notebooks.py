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
    result = run_notebook(notebook, tmp_path, impl="solutions", cell_timeout=LIMIT_SECONDS)
    assert result.status == "ok", f"{notebook.name}: {result.error}"
    executed = nbformat.read(tmp_path / notebook.name, as_version=4)
    # one cell's printed text may arrive as several stream outputs (the kernel flushes when it likes): join them
    feedback = ["".join(o.get("text", "") for o in c.outputs) for c in executed.cells
                if c.cell_type == "code" and "check(" in c.source]
    lines = [line for text in feedback for line in text.splitlines() if line.strip()]
    assert feedback and all(text.strip() for text in feedback) and all(line.startswith("PASS") for line in lines), \
        feedback
