"""The trusted side of class grading: graded tests run here, the learner's code never does.

The graded tests receive ``impl = RemoteImpl(Subject(lesson_file))``. Looking up ``impl.name`` returns a
:class:`RemoteFunction`; calling it sends the arguments as data (``mi_course.grading.codec``: JSON plus
safetensors, never pickle) to a sandboxed subject process (``mi_course.grading.subject``) that holds the
learner's lesson module, runs the function there and sends back the value, or the exception, as data.
So the process that computes a verdict never imports the learner's module and a submission cannot forge
its score: at worst it returns wrong values, which the tests catch.

What crosses (the S tier of docs/class-grading-survey.md, which sorts every graded test by what must cross):
plain data, tensors (dtype, shape, requires_grad), models by role (``codec.register_role`` /
``codec.load_role_model``). Exceptions come back with their built-in class for :data:`ALLOWED_EXCEPTIONS`
(a learner's subclass reads as its nearest allowed base), otherwise as :class:`RemoteError`;
NotImplementedError comes back as itself, so a stub reads "not started".
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

One subject process serves every lesson file of a learner (each imported when its tests first ask), so
the imports they share are paid once; each lesson has its own wall budget.

Sandbox caveat: the subject runs as a throwaway uid where one can run this Python and read the course
(:func:`throwaway_uid_works`); elsewhere (this project's machines keep Python under a private /root) as the
grader's uid with no capabilities, in new user, network, pid, IPC and mount namespaces, every mount
read-only except the sandbox's private folder. :func:`sandbox_report` says which applied. With
``namespaces=False`` or without unshare, a same-uid subject could write the grader's files.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from mi_course.grading import codec
from mi_course.grading.codec import ALLOWED_EXCEPTIONS  # re-exported: the classes re-raised as themselves
from mi_course.grading.impl import ImplementationImportError
from mi_course.grading.sandbox import GiB, Sandbox, SandboxLimits, SandboxProcess, readable_by_others

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
    """One learner's lesson modules (``lesson_files``: one file or several), alive in a sandboxed process
    between calls. A request names its module (a file's stem; default: the first file).

    The sandbox runs it as a throwaway uid where that works, with namespaces on (see the module
    docstring); its env holds only :data:`SUBJECT_ENV`, the course locations in :data:`SUBJECT_ENV_KEEP`
    and ``env``, never the judge's other variables.

    ``call_seconds``: wall budget of one call; ``budget_seconds``: wall budget of everything the subject
    does for one lesson module (its import, the startups charged to it, its calls) before its calls are
    refused; ``start_seconds``: wall budget of one startup or one lesson's import."""

    def __init__(self, lesson_files: str | Path | Sequence[str | Path], *, call_seconds: float = 60.0,
                 budget_seconds: float = 900.0, start_seconds: float = 120.0, limits: SandboxLimits | None = None,
                 namespaces: bool = True, hidden: Sequence[str | Path] = (),
                 env: Mapping[str, str] | None = None) -> None:
        files = [lesson_files] if isinstance(lesson_files, (str, Path)) else list(lesson_files)
        self.lesson_files = {p.stem: p for p in (Path(f).resolve() for f in files)}
        for path in self.lesson_files.values():
            if not path.is_file():
                raise FileNotFoundError(f"no lesson file {path}")
        if not self.lesson_files:
            raise ValueError("a subject needs at least one lesson file")
        self.lesson_file = next(iter(self.lesson_files.values()))  # the module a request names by default
        self.call_seconds = call_seconds
        self.budget_seconds = budget_seconds
        self.start_seconds = start_seconds
        self.limits = limits or SandboxLimits(address_space=8 * GiB, cpu_seconds=int(budget_seconds) + 60,
                                              wall_seconds=budget_seconds)
        self.namespaces = namespaces
        self.hidden = list(hidden)
        self.env = dict(env or {})
        self.spent_by: dict[str, float] = {}  # wall seconds charged to each lesson module of this learner
        self.starts = 0
        self.loaded: dict[str, dict[str, str]] = {}  # module -> its names, in the running process
        self._module = self.lesson_file.stem  # whose budget the current wait is charged to
        self._next_id = 0
        self._phase = ""  # which budget the current wait is under, for the timeout message
        self._box: Sandbox | None = None
        self._proc: SandboxProcess | None = None
        self.last_stderr = ""
        self.last_exit: int | None = None

    @property
    def spent(self) -> float:
        """Wall seconds charged to the current module (its budget is ``budget_seconds``)."""
        return self.spent_by.get(self._module, 0.0)

    @spent.setter
    def spent(self, value: float) -> None:
        self.spent_by[self._module] = value

    @property
    def names(self) -> dict[str, str]:
        """The default module's names (loading it if needed)."""
        return self.load(self.lesson_file.stem)

    # -- lifecycle

    def start(self) -> None:
        """Start the subject (if it is not running) and wait for its "ready"."""
        if self._proc is not None:
            return
        began = time.monotonic()
        self.loaded = {}
        self._box = Sandbox(self.limits, drop_privileges=throwaway_uid_works(), namespaces=self.namespaces,
                            hidden=self.hidden)
        argv = [sys.executable, "-I", "-m", "mi_course.grading.subject"]
        for path in self.lesson_files.values():  # the subject reads its own copies, in its private folder
            copy = self._box.work / path.name
            shutil.copyfile(path, copy)
            argv += ["--lesson-file", str(copy)]
        self._proc = self._box.start(argv, env=self._subject_env())
        self.starts += 1
        try:
            self._phase = self._budget_name(self.start_seconds, "its startup budget of {:g} s (importing torch)")
            message, _ = self._receive(began + min(self.start_seconds, self._left()))
        finally:
            self.spent += time.monotonic() - began
        if message.get("op") != "ready":
            self._die(ProtocolError, "the subject did not say it was ready")

    def load(self, module: str) -> dict[str, str]:
        """Import lesson module ``module`` (a lesson file's stem) in the subject, once per process: its
        names. Raises ImplementationImportError if the learner's file fails to import."""
        if module in self.loaded and self._proc is not None:
            return self.loaded[module]
        if module not in self.lesson_files:
            raise ValueError(f"no lesson file {module}.py in this subject")
        self._module = module
        if self._left() <= 0:
            raise SubjectTimeout(f"the learner's grading budget of {self.budget_seconds:.0f} s is spent")
        self.start()
        began = time.monotonic()
        self._next_id += 1
        self._phase = self._budget_name(self.start_seconds, "its startup budget of {:g} s (importing the lesson)")
        try:
            deadline = began + min(self.start_seconds, self._left())
            self._send(codec.pack({"op": "load", "module": module, "id": self._next_id}, {}), deadline)
            reply, tensors = self._receive(deadline)
        finally:
            self.spent += time.monotonic() - began
        if reply.get("id") != self._next_id:
            self._die(ProtocolError, "the subject's reply does not answer the request")
        if "import_error" in reply:
            error = raise_remote(reply.get("import_error"), tensors, raise_it=False)
            raise ImplementationImportError(
                f"could not import {module}.py in the grading subject: {type(error).__name__}: {error}") from error
        names = reply.get("names")
        if not reply.get("ok") or type(names) is not dict:
            self._die(ProtocolError, f"the subject could not load {module}: {reply.get('protocol', 'no names')}")
        self.loaded[module] = {str(k): str(v) for k, v in names.items()}
        return self.loaded[module]

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

    def call(self, name: str, args: tuple, kwargs: dict, module: str | None = None) -> Any:
        """``name(*args, **kwargs)`` in the subject: the value, or the learner's exception re-raised here."""
        tree, tensors, sources = codec.encode([list(args), kwargs])
        reply, out = self.request({"op": "call", "name": name, "args": tree[0], "kwargs": tree[1]}, tensors,
                                  module)
        if not reply.get("ok"):
            raise_remote(reply.get("error"), out)
        write_back(reply.get("mutated"), out, sources)
        return codec.decode(reply.get("value"), out, models=False)

    def drive(self, function: Any, args: tuple, kwargs: dict, module: str | None = None) -> Any:
        """``function(<the learner's module>, *args, **kwargs)`` run in the subject (see :func:`drive`)."""
        file, name = driver_location(function)
        tree, tensors, sources = codec.encode([list(args), kwargs])
        reply, out = self.request({"op": "drive", "file": file, "function": name, "args": tree[0],
                                   "kwargs": tree[1]}, tensors, module)
        if not reply.get("ok"):
            raise_remote(reply.get("error"), out)
        write_back(reply.get("mutated"), out, sources)
        return codec.decode(reply.get("value"), out, models=False)

    def has(self, name: str, module: str | None = None) -> bool:
        """Whether the learner's module has ``name`` (asks the subject)."""
        reply, _ = self.request({"op": "has", "name": name}, {}, module)
        return bool(reply.get("has"))

    def get(self, name: str, module: str | None = None) -> Any:
        """A module-level value of the learner's module (``Opaque`` when it has no codec)."""
        reply, out = self.request({"op": "get", "name": name}, {}, module)
        if not reply.get("ok"):
            raise_remote(reply.get("error"), out)
        return codec.decode(reply.get("value"), out, models=False)

    def request(self, message: dict, tensors: dict, module: str | None = None) -> tuple[dict, dict]:
        """Send one request to ``module`` (default: the first lesson file) and wait for its reply within the
        call budget (and what is left of the learner's budget for that module); a dead, silent or garbled
        subject is killed and SubjectDied raised."""
        module = module or self.lesson_file.stem
        self.load(module)  # starts the subject (again, after a death) and imports the module there
        self._module = module
        if self._left() <= 0:
            raise SubjectTimeout(f"the learner's grading budget of {self.budget_seconds:.0f} s is spent")
        message = {**message, "module": module}
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
        return object.__getattribute__(impl, "_subject").drive(function, args, kwargs,
                                                              object.__getattribute__(impl, "_module"))
    return function(impl, *args, **kwargs)


class RemoteFunction:
    """A callable that runs the learner's ``name`` (of lesson module ``module``) in the subject."""

    def __init__(self, subject: Subject, name: str, module: str | None = None) -> None:
        self._subject = subject
        self._module = module or subject.lesson_file.stem
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._subject.call(self.__name__, args, kwargs, self._module)

    def __repr__(self) -> str:
        return f"<remote {self.__name__} of {self._module}.py>"


class RemoteImpl:
    """What graded tests get as ``impl``: attribute lookups return remote callables (or values).

    Missing names raise AttributeError, as a module would. ``setattr`` (pytest's monkeypatch) stores the
    value on this proxy only; the S tier does not forward it into the subject, so the learner's other
    functions keep calling their own version."""

    def __init__(self, subject: Subject, module: str | None = None) -> None:
        module = module or subject.lesson_file.stem
        object.__setattr__(self, "_subject", subject)
        object.__setattr__(self, "_module", module)
        subject.load(module)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        subject, module = object.__getattribute__(self, "_subject"), object.__getattribute__(self, "_module")
        kind = subject.load(module).get(name)
        if kind is None:
            raise AttributeError(f"the lesson module {module!r} has no attribute {name!r}")
        if kind == "callable":
            return RemoteFunction(subject, name, module)
        return subject.get(name, module)

    def __repr__(self) -> str:
        return f"<RemoteImpl {self._module}.py>"


SECRET_FOLDERS = ("solutions", "tests/mutants", ".git")  # covered in the subject's view of the course tree


def secret_folders() -> list[Path]:
    """The instructor's folders a subject must not read (its answers, its mutants, its history). The
    hidden tests stay readable: their drivers run in the subject (a subject can only act on them through
    the values it returns)."""
    from mi_course.paths import repo_root

    return [repo_root() / f for f in SECRET_FOLDERS if (repo_root() / f).is_dir()]


def throwaway_uid_works() -> bool:
    """Whether a throwaway uid can run this interpreter and read the course (where Python lives under a
    private /root, as on this project's own machines, it cannot: the subject then keeps the grader's uid
    without capabilities, behind read-only mounts, and the sandbox's report says so)."""
    from mi_course.paths import checkpoint_dir, repo_root

    return readable_by_others([sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix,
                               repo_root(), checkpoint_dir()])


def sandbox_report() -> dict[str, str]:
    """Which of the sandbox's protections a subject gets on this machine (a trial run of an empty program
    with the subject's settings): protection -> "applied: ...", "partly: ..." or "not applied: why"."""
    from mi_course.grading.sandbox import run_sandboxed

    drop = throwaway_uid_works()
    result = run_sandboxed([sys.executable, "-I", "-c", "pass"], drop_privileges=drop,
                           hidden=secret_folders(), limits=SandboxLimits(address_space=8 * GiB, wall_seconds=60))
    report = dict(result.applied)
    if os.geteuid() == 0 and not drop:
        report["user"] += ("; chosen because a throwaway uid could not run this Python or read the course "
                           f"({os.path.realpath(sys.executable)}, {sys.prefix}): install both where others "
                           "can read them (as in a container) to get one")
    return report


CALL_SECONDS_ENV = "MI_COURSE_JUDGE_CALL_SECONDS"
BUDGET_SECONDS_ENV = "MI_COURSE_JUDGE_LESSON_SECONDS"


def session_subject(config: pytest.Config) -> Subject:
    """The one sandboxed subject of this pytest run: it holds every lesson file of ``--impl``'s folder and
    imports each when its tests first ask (shared imports paid once); closed when the run ends."""
    from mi_course.grading.impl import impl_folder

    subject = getattr(config, "_mi_subject", None)
    if subject is None:
        files = sorted(impl_folder(config._mi_impl).glob("l[0-9][0-9]_*.py"))
        subject = Subject(files, call_seconds=float(os.environ.get(CALL_SECONDS_ENV, "120")),
                          budget_seconds=float(os.environ.get(BUDGET_SECONDS_ENV, "900")), hidden=secret_folders())
        config._mi_subject = subject
        config.add_cleanup(subject.close)
    return subject


def remote_impl(config: pytest.Config, lesson: str) -> Any:
    """A generator for the plugin's ``impl`` fixture under ``--judge``: a RemoteImpl over the lesson file
    ``lesson``.py of ``--impl``'s folder, in the run's sandboxed subject."""
    from mi_course.grading.impl import impl_folder

    if not (impl_folder(config._mi_impl) / f"{lesson}.py").is_file():
        raise ImplementationImportError(f"no {lesson}.py in {impl_folder(config._mi_impl)}")
    yield RemoteImpl(session_subject(config), lesson)


@pytest.fixture(scope="module", name="impl")
def remote_impl_fixture(request: pytest.FixtureRequest) -> Any:
    """``impl`` run remotely (a conftest that imports this overrides the plugin's fixture)."""
    yield from remote_impl(request.config, request.module.LESSON)
