"""Lesson notebooks: built from plain-text sources, executed headless.

Sources live in ``notebooks/src/NN_name.py`` in the percent format (``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell whose lines start with ``# ``). Two special cells:

    # %% [setup]                 the setup cell, from mi_course/templates/setup_cell.py (same everywhere)
    # %% [exercise] 08.ToyModel  a %%exercise cell holding that exercise's stub, cut from the stubs that
                                 solutions/ generates, so notebook, exercises/ and solutions/ never drift

``build_notebook`` makes the ``.ipynb``; ``run_notebook`` executes one with nbclient and signs the
executed copy, so JupyterLab trusts it and shows its circuitsvis views (HTML with JS) without `jupyter trust`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from mi_course.grading.exercise_files import ExerciseId, lesson_modules, make_stubs, region_text
from mi_course.paths import PACKAGE_DIR, repo_root

CELL = re.compile(r"^# %%(?: \[(?P<kind>\w+)\])?(?: (?P<arg>\S+))?\s*$")


def repo_url() -> str:
    """The course's git URL, from pyproject's [project.urls] (tomllib is not in Python 3.10)."""
    m = re.search(r'^Repository = "(.+)"$', (repo_root() / "pyproject.toml").read_text(), re.M)
    if not m:
        raise ValueError("pyproject.toml needs [project.urls] Repository = \"...\"")
    return m.group(1)


def setup_cell_source(lesson: str) -> str:
    template = (PACKAGE_DIR / "templates" / "setup_cell.py").read_text()
    return template.replace("{repo_url}", repo_url()).replace("{lesson}", lesson).rstrip("\n")


def exercise_cell_source(exercise: str) -> str:
    eid = ExerciseId.parse(exercise)
    solutions = lesson_modules(repo_root() / "solutions")
    stubs = make_stubs(solutions[eid.lesson].read_text(), eid.lesson)
    return f"%%exercise {eid}\n" + region_text(stubs, eid.name).rstrip("\n")


def _markdown(lines: list[str]) -> str:
    out = []
    for line in lines:
        if line.startswith("# "):
            out.append(line[2:])
        elif line.strip() in ("#", ""):
            out.append("")
        else:
            raise ValueError(f"markdown lines must start with '# ': {line!r}")
    return "\n".join(out).strip("\n")


def parse_source(text: str) -> list[tuple[str, str | None, list[str]]]:
    """(kind, argument, lines) per cell; kind is code, markdown, setup or exercise."""
    cells: list[tuple[str, str | None, list[str]]] = []
    for line in text.splitlines():
        m = CELL.match(line)
        if m:
            cells.append((m["kind"] or "code", m["arg"], []))
        elif cells:
            cells[-1][2].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
    return cells


def build_notebook(src: Path) -> nbformat.NotebookNode:
    lesson = Path(src).stem[:2]
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}, "colab": {"provenance": []}, "accelerator": "GPU"}
    for i, (kind, arg, lines) in enumerate(parse_source(Path(src).read_text())):
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(_markdown(lines))
        elif kind == "setup":
            cell = nbformat.v4.new_code_cell(setup_cell_source(lesson), metadata={"tags": ["setup"]})
        elif kind == "exercise":
            cell = nbformat.v4.new_code_cell(exercise_cell_source(arg), metadata={"tags": ["exercise"],
                                                                                "exercise": arg})
        elif kind == "code":
            cell = nbformat.v4.new_code_cell(body)
        else:
            raise ValueError(f"{src}: unknown cell kind [{kind}]")
        cell.id = f"{lesson}-{i:03d}"
        nb.cells.append(cell)
    return nb


def notebook_sources() -> dict[str, Path]:
    return {p.stem: p for p in sorted((repo_root() / "notebooks" / "src").glob("[0-9][0-9]_*.py"))}


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """Lesson notebooks by name, number or path (all when ``names`` is empty)."""
    folder = repo_root() / "notebooks"
    every = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    out = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            out.append(path.resolve())
            continue
        hits = [p for p in every if p.stem == name or p.stem.startswith(name.zfill(2) + "_")]
        if not hits:
            raise FileNotFoundError(f"no notebook {name!r}; notebooks: {', '.join(p.stem for p in every)}")
        out += hits
    return out


def executed_dir() -> Path:
    """Where ``mi-course run`` writes executed copies."""
    return repo_root() / "build" / "notebooks"


def trust_notebook(path: Path) -> bool:
    """Sign the notebook at ``path`` in the user's Jupyter signature database, the one JupyterLab reads.

    A notebook the course itself just executed is as trusted as the learner's own run. Unsigned, JupyterLab
    drops the scripts of its HTML outputs (every circuitsvis view is an empty box) and leaves its saved
    widgets unrendered. Signs the file as written (read back), so the signature matches what JupyterLab
    loads. False if it could not sign.
    """
    import sqlite3

    from nbformat.sign import NotebookNotary

    try:
        notary = NotebookNotary()
        Path(notary.data_dir).mkdir(parents=True, exist_ok=True)  # a new user may not have one yet
        notary.sign(nbformat.read(path, as_version=4))
    except (OSError, sqlite3.Error) as err:
        print(f"could not mark {Path(path).name} trusted ({err}); run `jupyter trust {path}`")
        return False
    return True


def sliced_get_msg(get_msg, slice_s: float = 0.5):
    """``get_msg(timeout=T)`` as repeated waits of at most ``slice_s`` seconds until ``T`` has passed (or forever
    when ``T`` is None): the same result and the same ``queue.Empty`` at the end, but a message that one long
    wait would miss is picked up by the next short one."""
    from queue import Empty

    from jupyter_core.utils import ensure_async

    async def get(timeout=None, **kw):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else min(slice_s, max(0.0, deadline - time.monotonic()))
            try:
                return await ensure_async(get_msg(timeout=left, **kw))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get


def _polling_client(nb, **kwargs):
    """An nbclient ``NotebookClient`` that waits for each cell's reply in short slices.

    nbclient waits for a cell's ``execute_reply`` with one long poll; with widget messages in flight that
    poll can miss a reply that has already arrived and sit out the whole cell timeout (jupyter/nbclient#312,
    seen here in about one run in six of a lesson with explorers). Polling the channel again every half
    second (:func:`sliced_get_msg`) finds the reply at once."""
    from nbclient import NotebookClient

    class PollingClient(NotebookClient):
        async def _async_poll_for_reply(self, msg_id, cell, timeout, *tasks):
            channel = self.kc.shell_channel
            get_msg = channel.get_msg
            channel.get_msg = sliced_get_msg(get_msg)
            try:
                return await super()._async_poll_for_reply(msg_id, cell, timeout, *tasks)
            finally:
                channel.get_msg = get_msg

    return PollingClient(nb, **kwargs)


@dataclass
class RunResult:
    notebook: str
    status: str  # ok, warned, failed, timed out
    seconds: float
    error: str = ""


# A Python warning as a kernel prints it to stderr ("path.py:12: FutureWarning: message"): a learner sees it as
# a red box under the cell, so a lesson that prints one has something to mend (or a known warning to filter).
# Its message may start on the next line (SAELens's do).
PRINTED_WARNING = re.compile(r"^\S+:\d+: (\w*Warning):[ \t]*\n?[ \t]*(\S.*)$", re.MULTILINE)


def printed_warnings(nb: nbformat.NotebookNode) -> list[str]:
    """The warnings an executed notebook shows, as ``"cell N: Category: message"`` (N counts from 1)."""
    found = []
    for number, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                found += [f"cell {number}: {m[1]}: {m[2].strip()}" for m in PRINTED_WARNING.finditer(text)]
    return found


def run_notebook(path: Path, out_dir: Path, *, impl: str, cell_timeout: int = 300,
                 mode: str = "lite") -> RunResult:
    """Execute a notebook top to bottom with ``impl`` (``"exercises"``: the learner's answers, which its
    untouched stub cells never replace; ``"solutions"``; or a folder) and save the executed copy, signed as
    trusted. A run whose cells all pass but print a Python warning has status ``"warned"``."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    kernel_env = {**os.environ, "MI_COURSE_MODE": mode, "MI_COURSE_IMPL": impl}  # the kernel's own: runs may overlap
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        client = _polling_client(nb, timeout=cell_timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute(env=kernel_env)
    except CellTimeoutError as err:
        status, error = "timed out", str(err).strip().splitlines()[-1] if str(err).strip() else "cell timed out"
    except CellExecutionError as err:
        lines = [l for l in str(err).strip().splitlines() if l.strip()]
        status, error = "failed", lines[-1] if lines else "a cell raised"
    except Exception as err:  # kernel died, could not start, ...
        status, error = "failed", f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    trust_notebook(out_dir / path.name)
    shown = printed_warnings(nb)
    if status == "ok" and shown:
        status, error = "warned", "; ".join(shown)
    return RunResult(path.stem, status, seconds, error)
