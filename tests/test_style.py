"""The repository passes `ruff check` with the settings in pyproject's [tool.ruff] (issue 26)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff_command() -> list[str] | None:
    """How to run ruff: as a module of this interpreter, or the binary next to it (None: not installed)."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    beside = Path(sys.executable).with_name("ruff")
    return [str(beside)] if beside.is_file() else None


def test_ruff_check_passes_on_the_repository():
    ruff = ruff_command()
    if ruff is None:
        pytest.skip("ruff is not installed: `pip install -e '.[dev]'` (or `make install`) installs it")
    result = subprocess.run([*ruff, "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, ("`ruff check` found violations (`ruff check --fix` fixes the ones marked [*]):\n"
                                    + result.stdout + result.stderr)
