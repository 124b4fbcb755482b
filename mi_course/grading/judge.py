"""The trusted side of class grading: graded tests run here, the learner's code never does.

The graded tests receive ``impl = RemoteImpl(Subject(lesson_file))``. Looking up ``impl.name`` returns a
:class:`RemoteFunction`; calling it sends the arguments as data (``mi_course.grading.codec``: JSON plus
safetensors, never pickle) to a sandboxed subject process (``mi_course.grading.subject``) that holds the
learner's lesson module, runs the function there and sends back the value, or the exception, as data.
So the process that computes a verdict never imports the learner's module and a submission cannot forge
its score: at worst it returns wrong values, which the tests catch.

What crosses (the S tier of docs/class-grading-survey.md, which sorts every graded test by what must cross): plain data, tensors (dtype, shape, requires_grad),
models by role (``codec.register_role`` / ``codec.load_role_model``). Exceptions come back with their
built-in class for :data:`ALLOWED_EXCEPTIONS` (a learner's subclass reads as its nearest allowed base),
otherwise as :class:`RemoteError`; NotImplementedError comes back as itself, so a stub reads "not started".
A subject that dies or overruns its wall budget raises :class:`SubjectDied` (:class:`SubjectTimeout`), and
the next call starts a fresh subject. None of the infrastructure errors (CodecError, RemoteError,
SubjectDied) is a ValueError or NotImplementedError: they can never satisfy ``expect_value_error``.
Tensor arguments the learner changed in place are written back into the judge's tensors, so
``call_unmutated`` still sees the mutation.

Everything else (gradients, handles to learner objects, side effects on models, spies and monkeypatches,
test-local models) is a graded test's *driver*: a module-level function of the test file that :func:`drive`
runs next to the learner's code, in the subject, and whose returned data the test checks here. Returned
values with no codec come back as ``codec.Opaque``. ``monkeypatch.setattr(impl, name, value)`` only stores
the value on the proxy (the judge side): patch the lesson module inside a driver instead.

Sandbox caveat: here the subject runs with ``drop_privileges=False`` (the grader's uid with no
capabilities, in new user, network, pid, IPC and mount namespaces, every mount read-only except the
sandbox's private folder), because a throwaway uid cannot exec the venv's python under /root on this
machine. With ``namespaces=False`` or without unshare, a same-uid subject could write the grader's files.

Use in pytest: a conftest next to the graded tests that says ``from mi_course.grading.judge import
remote_impl_fixture`` overrides the plugin's ``impl`` fixture (conftest fixtures win over plugin fixtures);
``--impl`` still names the folder of learner files.
"""

from __future__ import annotations

import builtins
import os
import select
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest
import torch

from mi_course.grading import codec
from mi_course.grading.impl import ImplementationImportError
from mi_course.grading.sandbox import GiB, Sandbox, SandboxLimits, SandboxProcess

from mi_course.grading.codec import ALLOWED_EXCEPTIONS  # re-exported: the classes re-raised as themselves

SUBJECT_ENV_KEEP = ("MI_COURSE_ROOT", "MI_COURSE_CHECKPOINTS")  # course locations the subject needs, no secrets
SUBJECT_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MI_COURSE_MODE": "lite",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


class RemoteError(Exception):
    """The learner's code raised an exception whose class is not re-raised as itself (see
    ALLOWED_EXCEPTIONS): its class name and message, with the subject's traceback as a note."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class SubjectDied(Exception):
    """The subject process ended (crash, os._exit, killed) or could not be used; the next call restarts it."""


class SubjectTimeout(SubjectDied):
    """The subject overran its wall budget for a call (or for the whole learner) and was killed."""


class ProtocolError(SubjectDied):
    """The subject answered something that is not a valid reply (it is killed and restarted)."""


# ------------------------------------------------------------------------------------------ the subject


class Subject:
    """One learner's lesson module, alive in a sandboxed process between calls.

    The sandbox runs it with ``drop_privileges=False`` and namespaces on (see the module docstring: a
    throwaway uid cannot exec the venv's python here); its env holds only :data:`SUBJECT_ENV`, the course
    locations in :data:`SUBJECT_ENV_KEEP` and ``env``, never the judge's other variables.

    ``call_seconds``: wall budget of one call; ``budget_seconds``: wall budget of everything this learner's
    subject does (startups included) before every call is refused; ``start_seconds``: wall budget of one
    startup (importing torch and the lesson)."""

    def __init__(self, lesson_file: str | Path, *, call_seconds: float = 60.0, budget_seconds: float = 900.0,
                 start_seconds: float = 120.0, limits: SandboxLimits | None = None, namespaces: bool = True,
                 hidden: Sequence[str | Path] = (), env: Mapping[str, str] | None = None) -> None:
        self.lesson_file = Path(lesson_file).resolve()
        if not self.lesson_file.is_file():
            raise FileNotFoundError(f"no lesson file {self.lesson_file}")
        self.call_seconds = call_seconds
        self.budget_seconds = budget_seconds
        self.start_seconds = start_seconds
        self.limits = limits or SandboxLimits(address_space=8 * GiB, cpu_seconds=int(budget_seconds) + 60,
                                              wall_seconds=budget_seconds)
        self.namespaces = namespaces
        self.hidden = list(hidden)
        self.env = dict(env or {})
        self.spent = 0.0  # wall seconds charged to this learner
        self.starts = 0
        self.names: dict[str, str] = {}
        self._next_id = 0
        self._phase = ""  # which budget the current wait is under, for the timeout message
        self._box: Sandbox | None = None
        self._proc: SandboxProcess | None = None
        self.last_stderr = ""
        self.last_exit: int | None = None

    # -- lifecycle

    def start(self) -> None:
        """Start the subject (if it is not running) and wait for its "ready" with the module's names."""
        if self._proc is not None:
            return
        began = time.monotonic()
        self._box = Sandbox(self.limits, drop_privileges=False, namespaces=self.namespaces, hidden=self.hidden)
        copy = self._box.work / self.lesson_file.name  # the subject reads its own copy, in its private folder
        shutil.copyfile(self.lesson_file, copy)
        argv = [sys.executable, "-I", "-m", "mi_course.grading.subject", "--lesson-file", str(copy)]
        self._proc = self._box.start(argv, env=self._subject_env())
        self.starts += 1
        try:
            self._phase = self._budget_name(self.start_seconds, "its startup budget of {:g} s (importing the lesson)")
            message, tensors = self._receive(began + min(self.start_seconds, self._left()))
        finally:
            self.spent += time.monotonic() - began
        if message.get("op") == "import_error":
            error = raise_remote(message.get("error"), tensors, raise_it=False)
            self.close()
            raise ImplementationImportError(
                f"could not import {self.lesson_file.name} in the grading subject: {type(error).__name__}: "
                f"{error}") from error
        names = message.get("names")
        if message.get("op") != "ready" or type(names) is not dict:
            self._die(ProtocolError, "the subject did not say it was ready")
        self.names = {str(k): str(v) for k, v in names.items()}

    def close(self) -> None:
        """Stop the subject and remove its sandbox (safe to call twice)."""
        proc, box = self._proc, self._box
        self._proc, self._box = None, None
        if proc is not None:
            try:
                proc.stdin.write(codec.pack({"op": "bye"}, {})) if proc.alive() else None
            except OSError:
                pass
            self.last_stderr = proc.stderr_tail()
            self.last_exit = proc.close(grace=1.0)
        if box is not None:
            box.close()

    def __enter__(self) -> "Subject":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        """``name(*args, **kwargs)`` in the subject: the value, or the learner's exception re-raised here."""
        tree, tensors, sources = codec.encode([list(args), kwargs])
        reply, out = self.request({"op": "call", "name": name, "args": tree[0], "kwargs": tree[1]}, tensors)
        if not reply.get("ok"):
            raise_remote(reply.get("error"), out)
        write_back(reply.get("mutated"), out, sources)
        return codec.decode(reply.get("value"), out, models=False)

    def drive(self, function: Any, args: tuple, kwargs: dict) -> Any:
        """``function(<the learner's module>, *args, **kwargs)`` run in the subject (see :func:`drive`)."""
        file, name = driver_location(function)
        tree, tensors, sources = codec.encode([list(args), kwargs])
        reply, out = self.request({"op": "drive", "file": file, "function": name, "args": tree[0],
                                   "kwargs": tree[1]}, tensors)
        if not reply.get("ok"):
            raise_remote(reply.get("error"), out)
        write_back(reply.get("mutated"), out, sources)
        return codec.decode(reply.get("value"), out, models=False)

    def has(self, name: str) -> bool:
        """Whether the learner's module has ``name`` (asks the subject)."""
        reply, _ = self.request({"op": "has", "name": name}, {})
        return bool(reply.get("has"))

    def get(self, name: str) -> Any:
        """A module-level value of the learner's module (``Opaque`` when it has no codec)."""
        reply, out = self.request({"op": "get", "name": name}, {})
        if not reply.get("ok"):
            raise_remote(reply.get("error"), out)
        return codec.decode(reply.get("value"), out, models=False)

    def request(self, message: dict, tensors: dict) -> tuple[dict, dict]:
        """Send one request and wait for its reply within the call budget (and what is left of the
        learner's budget); a dead, silent or garbled subject is killed and SubjectDied raised."""
        if self._left() <= 0:
            raise SubjectTimeout(f"the learner's grading budget of {self.budget_seconds:.0f} s is spent")
        self.start()
        began = time.monotonic()
        deadline = began + min(self.call_seconds, self._left())
        self._next_id += 1
        self._phase = self._budget_name(self.call_seconds, "its budget of {:g} s per call")
        try:
            self._send(codec.pack({**message, "id": self._next_id}, tensors), deadline)
            reply, out = self._receive(deadline)
        finally:
            self.spent += time.monotonic() - began
        if reply.get("id") != self._next_id:  # a stray frame (e.g. the learner writing to the channel's fd)
            self._die(ProtocolError, "the subject's reply does not answer the request")
        if "protocol" in reply:
            self._die(ProtocolError, f"the subject refused the request: {reply['protocol']}")
        return reply, out

    # -- plumbing

    def _left(self) -> float:
        return self.budget_seconds - self.spent

    def _budget_name(self, seconds: float, template: str) -> str:
        """What limits the next wait: ``template`` with ``seconds``, or the learner's whole budget."""
        if self._left() < seconds:
            return f"the learner's grading budget ({self.budget_seconds:.0f} s in all)"
        return template.format(seconds)

    def _subject_env(self) -> dict[str, str]:
        """Only what the subject needs: no inherited secrets."""
        env = {k: os.environ[k] for k in SUBJECT_ENV_KEEP if k in os.environ}
        return {**env, **SUBJECT_ENV, **self.env}

    def _send(self, frame: bytes, deadline: float) -> None:
        fd = self._proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(frame)
        while view:
            self._wait(fd, deadline, write=True)
            try:
                view = view[os.write(fd, view[:1 << 20]):]
            except BlockingIOError:
                continue
            except OSError:
                self._die(SubjectDied, "the subject stopped reading its requests")

    def _receive(self, deadline: float) -> tuple[dict, dict]:
        n_doc, n_blob = self._unpack_header(self._read(codec.HEADER.size, deadline))
        doc = self._read(n_doc, deadline)
        blob = self._read(n_blob, deadline)
        try:
            message, tensors = codec.unpack_body(doc, blob)
        except codec.CodecError as err:
            self._die(ProtocolError, f"the subject sent a bad reply: {err}")
        if type(message) is not dict:
            self._die(ProtocolError, "the subject's reply is not a JSON object")
        return message, tensors

    def _unpack_header(self, header: bytes) -> tuple[int, int]:
        try:
            return codec.unpack_header(header)
        except codec.CodecError as err:
            self._die(ProtocolError, f"the subject sent a bad reply: {err}")

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self._proc.stdout.fileno()
        os.set_blocking(fd, False)
        chunks, left = [], n
        while left:
            self._wait(fd, deadline, write=False)
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                self._die(SubjectDied, "the subject process died")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _wait(self, fd: int, deadline: float, *, write: bool) -> None:
        left = deadline - time.monotonic()
        if left > 0:
            ready = select.select([], [fd], [], left)[1] if write else select.select([fd], [], [], left)[0]
            if ready:
                return
        self._die(SubjectTimeout, f"the subject took longer than {self._phase} and was stopped; look for an "
                                  f"infinite loop or a very slow step")

    def _die(self, kind: type[SubjectDied], why: str) -> None:
        """Kill the subject, keep its stderr tail, raise ``kind``; the next request restarts it."""
        proc = self._proc
        if proc is not None and kind is not SubjectDied:
            proc.kill()  # a silent or garbled subject; a dead one is only reaped, to keep its exit code
        self.close()
        code = self.last_exit if proc is not None else None
        tail = self.last_stderr.strip().splitlines()[-5:]
        detail = f" (exit code {code})" if code is not None and kind is SubjectDied else ""
        raise kind(why + detail + ("; its last output:\n" + "\n".join(tail) if tail else ""))


def write_back(mutated: Any, tensors: dict, sources: dict[str, torch.Tensor]) -> None:
    """Copy the values the learner wrote in place into the judge's own tensors (so a test comparing
    before and after sees the mutation)."""
    if mutated is None:
        return
    if type(mutated) is not list:
        raise ProtocolError("malformed mutation report")
    for key in mutated:
        new = tensors.get(f"mut.{key}") if isinstance(key, str) else None
        target = sources.get(key) if isinstance(key, str) else None
        if new is None or target is None:
            raise ProtocolError(f"mutation report names an unknown tensor {key!r}")
        with torch.no_grad():
            if target.shape == new.shape:
                target.copy_(new.to(target.device))
            else:  # resize_ refuses a leaf that requires grad; .data swaps the storage under it
                target.data = new.to(target.device, target.dtype)


def raise_remote(error: Any, tensors: dict, *, raise_it: bool = True) -> BaseException:
    """Re-raise (or return) the learner's exception described by ``error``: the same built-in class for
    ALLOWED_EXCEPTIONS (by the nearest allowed base the subject found), otherwise RemoteError."""
    if type(error) is not dict:
        raise ProtocolError("malformed error reply")
    type_name, message = str(error.get("type")), str(error.get("message"))
    builtin = error.get("builtin")
    cls = getattr(builtins, builtin) if builtin in ALLOWED_EXCEPTIONS else None
    if cls is None:
        err: BaseException = RemoteError(type_name, message)
    else:
        try:
            args = codec.decode(error.get("args"), tensors, models=False)
            args = args if type(args) is tuple else (message,)
        except codec.CodecError:
            args = (message,)
        err = cls(*args)
    err.add_note(f"raised in the learner's code ({type_name}); the subject's traceback:\n"
                 f"{str(error.get('traceback'))[-codec.REPR_CHARS * 10:]}")
    if raise_it:
        raise err
    return err


# ------------------------------------------------------------------------------------------ the proxy


class DriverError(Exception):
    """A graded test passed ``drive`` something that is not a module-level function of a test file (the
    course's bug, never the learner's: not a ValueError, so no validation test can take it for one)."""


def driver_location(function: Any) -> tuple[str, str]:
    """(test file, function name) of a driver, which must be a module-level function of its file."""
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    name = getattr(function, "__qualname__", "")
    if file is None or not name.isidentifier() or getattr(module, name, None) is not function:
        raise DriverError(f"drive() needs a module-level function of a test file, not {function!r}")
    return str(Path(file).resolve()), name


def drive(impl: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(impl, *args, **kwargs)`` where the learner's code runs.

    A graded test keeps its checks and hands the part that must run next to the learner's code (spies and
    monkeypatches on the lesson module, closures and modules the learner returns, gradients, hooks left on
    a model, training loops) to a *driver*: a module-level function of the test file that takes the lesson
    module first and returns data (tensors, numbers, strings, lists, dicts, models by role). With a local
    ``impl`` (``mi-course grade``, ``check``) the driver runs here; in class grading (``RemoteImpl``) it runs
    in the learner's sandboxed subject and only its returned data comes back, so the test's asserts, which
    decide the verdict, always run in the judge. A driver may fail a test (raise) but never pass one: it
    returns what the test then checks."""
    if isinstance(impl, RemoteImpl):
        return object.__getattribute__(impl, "_subject").drive(function, args, kwargs)
    return function(impl, *args, **kwargs)


class RemoteFunction:
    """A callable that runs the learner's ``name`` in the subject."""

    def __init__(self, subject: Subject, name: str) -> None:
        self._subject = subject
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._subject.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<remote {self.__name__} of {self._subject.lesson_file.name}>"


class RemoteImpl:
    """What graded tests get as ``impl``: attribute lookups return remote callables (or values).

    Missing names raise AttributeError, as a module would. ``setattr`` (pytest's monkeypatch) stores the
    value on this proxy only; the S tier does not forward it into the subject, so the learner's other
    functions keep calling their own version."""

    def __init__(self, subject: Subject) -> None:
        object.__setattr__(self, "_subject", subject)
        subject.start()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        subject = object.__getattribute__(self, "_subject")
        kind = subject.names.get(name)
        if kind is None:
            raise AttributeError(f"the lesson module {subject.lesson_file.stem!r} has no attribute {name!r}")
        if kind == "callable":
            return RemoteFunction(subject, name)
        return subject.get(name)

    def __repr__(self) -> str:
        return f"<RemoteImpl {self._subject.lesson_file.name}>"


SECRET_FOLDERS = ("solutions", "tests/mutants", ".git")  # covered in the subject's view of the course tree


def secret_folders() -> list[Path]:
    """The instructor's folders a subject must not read (its answers, its mutants, its history). The
    hidden tests stay readable: their drivers run in the subject (a subject can only act on them through
    the values it returns)."""
    from mi_course.paths import repo_root

    return [repo_root() / f for f in SECRET_FOLDERS if (repo_root() / f).is_dir()]


CALL_SECONDS_ENV = "MI_COURSE_JUDGE_CALL_SECONDS"
BUDGET_SECONDS_ENV = "MI_COURSE_JUDGE_LESSON_SECONDS"


def remote_impl(config: pytest.Config, lesson: str) -> Any:
    """A generator for the plugin's ``impl`` fixture under ``--judge``: a RemoteImpl over the lesson file
    ``lesson``.py of ``--impl``'s folder, in a sandboxed subject for the module's tests, closed after them."""
    from mi_course.grading.impl import impl_folder

    path = impl_folder(config._mi_impl) / f"{lesson}.py"
    subject = Subject(path, call_seconds=float(os.environ.get(CALL_SECONDS_ENV, "120")),
                      budget_seconds=float(os.environ.get(BUDGET_SECONDS_ENV, "900")), hidden=secret_folders())
    try:
        yield RemoteImpl(subject)
    finally:
        subject.close()


@pytest.fixture(scope="module", name="impl")
def remote_impl_fixture(request: pytest.FixtureRequest) -> Any:
    """``impl`` run remotely (a conftest that imports this overrides the plugin's fixture)."""
    yield from remote_impl(request.config, request.module.LESSON)
