"""A warm grading worker: each pytest run is a child forked from a process that has already imported torch,
TransformerLens, pytest and what the graded tests import, so ``check`` answers in about a second instead of
paying those imports (several seconds) every time.

The worker is a process of its own, started by a lesson's setup cell (or by ``mi-course grade``), never
the notebook's kernel: a learner's hang, ``os._exit`` or segfault ends one forked child, and the runner
re-runs what that child had not reached, exactly as it does with a fresh pytest process. The worker never
imports ``exercises`` or ``solutions``: each child imports the learner's file from disk, so ``check``
grades exactly the file that pytest grades.

Protocol: one JSON request per line on the worker's stdin (``args``, ``cwd``, ``env``, ``wall``), one JSON
reply per line (``rc``: exit code, negative for a signal, or "timeout"; ``output``) on the pipe it was
given. Where ``os.fork`` does not exist (Windows), the runner starts a fresh pytest process per run.
"""

from __future__ import annotations

import ast
import atexit
import gc
import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

FORK_ENV = "MI_COURSE_GRADE_FORK"  # "0": no worker, a fresh pytest process per run
EXCLUDED_ROOTS = ("exercises", "solutions", "tests")  # never imported by the worker itself
REPLY_GRACE = 30.0  # seconds past a run's wall limit before the worker itself is presumed stuck
# Only the plugins grading needs (pytest-timeout, and the course's from pyproject's addopts): other installed
# plugins (anyio, jaxtyping, ...) add start-up time and nothing to a grade. The runner and the rehearsal
# below both use these, so a child imports nothing the rehearsal did not.
PLUGIN_ARGS = ("-p", "pytest_timeout", "-p", "no:cacheprovider")
PLUGIN_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def fork_available() -> bool:
    return hasattr(os, "fork") and os.environ.get(FORK_ENV, "1") != "0"


# ------------------------------------------------------------------------------------------ worker side


def _test_imports(root: str) -> list[str]:
    """Modules the graded test files import at top level (not the learner's or the tests' own)."""
    names: list[str] = []
    folder = os.path.join(root, "tests", "graded")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".py"):
            continue
        try:
            tree = ast.parse(open(os.path.join(folder, name)).read())
        except (OSError, SyntaxError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return [n for n in dict.fromkeys(names) if n.split(".")[0] not in EXCLUDED_ROOTS]


def warm(root: str | None) -> None:
    """Import once what every graded run needs; one torch thread, so that forking is safe."""
    import torch

    torch.set_num_threads(1)  # no OpenMP pool in the parent: a child forked after one was used can hang
    modules = ["pytest", "pytest_timeout", "transformer_lens", "mi_course", "mi_course.grading.plugin",
               "mi_course.grading.asserts", "mi_course.models.registry", *(_test_imports(root) if root else [])]
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # a warm-up import that fails costs speed, never a result
            pass
    try:  # the first optimizer step imports torch._dynamo (seconds): pay it here, not in a learner's check
        weight = torch.nn.Parameter(torch.zeros(2))
        optimizer = torch.optim.Adam([weight], lr=0.1)
        weight.sum().backward()
        optimizer.step()
    except Exception:
        pass
    if root:
        _rehearse(root)
    gc.collect()
    gc.freeze()  # the warm heap is never collected again: pytest's gc.collect() calls in a child stay cheap


def _rehearse(root: str) -> None:
    """Collect the graded tests once, so that what pytest imports lazily is imported here; then forget the
    test modules (and any lesson module), so that every child imports them from disk."""
    import pytest

    saved = dict(os.environ)
    quiet = os.open(os.devnull, os.O_WRONLY)
    err = os.dup(2)
    os.dup2(quiet, 2)
    try:
        os.environ.update(PLUGIN_ENV)
        pytest.main([os.path.join(root, "tests", "graded"), "--collect-only", "-q", *PLUGIN_ARGS,
                     "--impl", "solutions"])
    except BaseException:  # a rehearsal that fails costs speed, never a result
        pass
    finally:
        os.dup2(err, 2)
        os.close(err)
        os.close(quiet)
        os.environ.clear()
        os.environ.update(saved)
    for name in [n for n in sys.modules if n.split(".")[0] in EXCLUDED_ROOTS or n.startswith("test_l")]:
        del sys.modules[name]


def _run_child(request: dict, out_path: str, start_dir: str) -> None:
    """In the forked child: run pytest as ``python -m pytest`` would, then exit with its code."""
    rc = 4
    try:
        os.setpgrp()  # its own process group: a timeout kills whatever the test started too
        out = os.open(out_path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        sys.stdin = open(os.devnull)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # like a fresh `python -m pytest` started in cwd: the worker's own start folder is not on the path
        sys.path[:] = [request["cwd"]] + [p for p in sys.path if p not in ("", start_dir, request["cwd"])]
        sys.argv = ["pytest", *request["args"]]
        import pytest

        rc = int(pytest.main(request["args"]))
    except SystemExit as err:
        rc = err.code if isinstance(err.code, int) else 4
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def run_one(request: dict, start_dir: str) -> dict:
    """Fork a child for one pytest run; wait for it at most ``request['wall']`` seconds."""
    fd, out_path = tempfile.mkstemp(prefix="mi-grade-out-", suffix=".txt")
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _run_child(request, out_path, start_dir)
    deadline = time.monotonic() + float(request.get("wall", 900))
    rc: int | str
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    target()
                except (ProcessLookupError, PermissionError):
                    pass
            os.waitpid(pid, 0)
            rc = "timeout"
            break
        time.sleep(0.005)
    try:
        with open(out_path, errors="replace") as f:
            output = f.read()
    finally:
        os.unlink(out_path)
    return {"rc": rc, "output": output}


def serve(root: str | None) -> None:
    """Read requests on stdin until it closes (the kernel or command that started us has gone)."""
    start_dir = os.getcwd()
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # a stray print from an import must not corrupt the replies
    warm(root)
    reply.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run_one(json.loads(line), start_dir)
        except Exception as err:  # a broken request: say so, keep serving
            answer = {"rc": 4, "output": f"grading worker: {type(err).__name__}: {err}"}
        reply.write(json.dumps(answer) + "\n")


# ------------------------------------------------------------------------------------------ client side


class GradingWorker:
    """The client end: starts ``python -m mi_course.grading.worker`` and sends it pytest runs."""

    def __init__(self, root: str | None = None):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "mi_course.grading.worker"] + ([root] if root else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=root, env=env, text=True,
                                     start_new_session=True)  # Ctrl-C in the notebook does not reach it
        self.lock = threading.Lock()
        self.ready = False
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # end of file: the worker has exited

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _readline(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_ready(self, timeout: float = 180.0) -> bool:
        """Block until the worker has finished warming up (True), or ``timeout`` seconds (False)."""
        with self.lock:
            if not self.ready:
                line = self._readline(timeout)
                if line is None or line == "":
                    return False
                self.ready = bool(json.loads(line).get("ready"))
            return self.ready

    def run(self, args: list[str], cwd: str, env: dict, wall: float) -> tuple[int | str, str]:
        """(exit code or 'timeout', output) of one pytest run; raises RuntimeError if the worker is gone."""
        with self.lock:
            if not self.alive():
                raise RuntimeError("the grading worker has exited")
            self.proc.stdin.write(json.dumps({"args": args, "cwd": cwd, "env": env, "wall": wall}) + "\n")
            self.proc.stdin.flush()
            deadline = time.monotonic() + wall + REPLY_GRACE + (0 if self.ready else 120)
            while True:
                line = self._readline(max(0.0, deadline - time.monotonic()))
                if line is None or line == "":
                    self.close()
                    raise RuntimeError("the grading worker stopped answering")
                answer = json.loads(line)
                if answer.get("ready"):
                    self.ready = True
                    continue
                return answer["rc"], answer["output"]

    def close(self) -> None:
        if self.alive():
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except Exception:
                self.proc.kill()


_worker: GradingWorker | None = None
_worker_lock = threading.Lock()
_leased = threading.local()  # a pool's worker this thread holds (class grading), else the shared one


class WorkerPool:
    """``size`` warm workers for class grading: a thread leases one per student, so students graded in
    parallel each fork from a warm process instead of paying the imports in a fresh one."""

    def __init__(self, size: int, root: str | None) -> None:
        self.root = root
        self._free: queue.Queue = queue.Queue()
        self._all: list[GradingWorker] = []
        for _ in range(size if fork_available() else 0):
            self._add()

    def _add(self) -> None:
        worker = GradingWorker(self.root)
        self._all.append(worker)
        self._free.put(worker)

    def lease(self):
        """Context manager: this thread's runs go to one worker of the pool until it exits."""
        import contextlib

        @contextlib.contextmanager
        def leased():
            if not self._all:  # no fork here: fresh pytest processes
                yield None
                return
            worker = self._free.get()
            if not worker.alive():  # a worker that died is replaced, never reused
                worker = GradingWorker(self.root)
                self._all.append(worker)
            _leased.worker = worker
            try:
                yield worker
            finally:
                _leased.worker = None
                self._free.put(worker)

        return leased()

    def close(self) -> None:
        for worker in self._all:
            worker.close()


def current_worker() -> GradingWorker | None:
    """The worker this thread's pytest runs go to: its leased one, else the course's shared one."""
    return getattr(_leased, "worker", None) or start_worker()


def start_worker() -> GradingWorker | None:
    """The course's grading worker, started if it is not running (returns at once: it warms up alone)."""
    global _worker
    if not fork_available():
        return None
    from mi_course.paths import repo_root

    with _worker_lock:
        if _worker is None or not _worker.alive():
            try:
                root = str(repo_root())
            except FileNotFoundError:
                root = None
            _worker = GradingWorker(root)
            atexit.register(_worker.close)
        return _worker


def stop_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker.close()
            _worker = None


if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else None)
