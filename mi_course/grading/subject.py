"""The subject server: holds one learner's lesson modules inside the sandbox and runs calls on them.

Run by the judge (``mi_course.grading.judge.Subject``) as::

    python -I -m mi_course.grading.subject --lesson-file PATH [--lesson-file PATH ...]

It imports torch, then answers framed requests (see ``mi_course.grading.codec.pack``) read from stdin, one
at a time, with framed replies on stdout. A lesson file is imported by path, under a private module name,
when the judge first asks for it (``load``); one process serves all of a learner's lessons, so the imports
they share (torch, TransformerLens) are paid once. Every request but ``load`` names its ``"module"`` (a
lesson file's stem); every reply echoes the request's ``"id"``.

* first, unasked: ``{"op": "ready", "modules": [stems]}``;
* ``{"op": "load", "module"}`` -> ``{"ok": true, "names": {name: "callable" | "value"}}``, or
  ``{"ok": false, "import_error": {...}}`` (the module stays unloaded; the other modules are unaffected);
* ``{"op": "call", "name", "args", "kwargs"}`` -> ``{"ok": true, "value", "mutated": [keys]}`` where
  ``mutated`` lists the request's tensor keys that the call changed in place (their new values travel as
  ``mut.<key>`` tensors, so the judge can write them back), or ``{"ok": false, "error": {...}}``;
* ``{"op": "has", "name"}`` -> ``{"ok": true, "has": bool, "callable": bool}``;
* ``{"op": "get", "name"}`` -> ``{"ok": true, "value"}`` (a module-level value, opaque if it has no codec);
* ``{"op": "drive", "file", "function", "args", "kwargs"}`` -> as ``call``, for ``function(module, *args,
  **kwargs)`` where ``function`` is a module-level function of the trusted test file ``file`` (a graded
  test's *driver*: the part of a test that must run next to the learner's code, see
  ``mi_course.grading.judge.drive``). Only files under the course's ``tests/`` folder are imported.

The learner's prints must not corrupt the channel: replies go to a private duplicate of fd 1, and fd 1
itself (and ``sys.stdout``) is pointed at stderr; stdin is replaced by /dev/null the same way. A learner
can still find the private descriptors and write to them, but that only forges answers the learner's code
computes anyway: every verdict is computed by the judge. Nothing here unpickles or evaluates request data.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

MODULE_PREFIX = "_mi_subject_lesson_"  # + the lesson file's stem: a name no course module uses
TRACEBACK_CHARS = 4000


class Channel:
    """Frames over two raw file descriptors (the judge's requests in, the replies out)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def read(self) -> tuple[Any, dict] | None:
        """The next request (message, tensors), or None at end of input."""
        from mi_course.grading import codec

        header = self._read_exact(codec.HEADER.size)
        if header is None:
            return None
        n_doc, n_blob = codec.unpack_header(header)
        body = self._read_exact(n_doc + n_blob) if n_doc + n_blob else b""
        if body is None:
            return None
        return codec.unpack_body(body[:n_doc], body[n_doc:])

    def write(self, message: Any, tensors: dict) -> None:
        from mi_course.grading import codec

        view = memoryview(codec.pack(message, tensors))
        while view:
            view = view[os.write(self.write_fd, view):]

    def _read_exact(self, n: int) -> bytes | None:
        chunks, left = [], n
        while left:
            chunk = os.read(self.read_fd, min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def private_channel() -> Channel:
    """Keep the real stdin/stdout for the protocol on private fds; give the learner /dev/null and stderr."""
    read_fd, write_fd = os.dup(0), os.dup(1)  # os.dup: not inheritable by the learner's subprocesses
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    return Channel(read_fd, write_fd)


def load_lesson(path: Path) -> ModuleType:
    """Import the lesson file by path under a name no course module uses."""
    name = MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def public_names(module: ModuleType) -> dict[str, str]:
    """Every module-level name not starting with "_": "callable" or "value"."""
    return {k: "callable" if callable(v) else "value" for k, v in vars(module).items() if not k.startswith("_")}


def describe_error(err: BaseException) -> tuple[dict, dict]:
    """(error JSON, tensors) of an exception: its class name, the nearest allow-listed built-in class in
    its MRO (so a learner's ValueError subclass still reads as a ValueError), its args, its traceback."""
    from mi_course.grading import codec
    from mi_course.grading.codec import ALLOWED_EXCEPTIONS

    builtin = next((c.__name__ for c in type(err).__mro__
                    if c.__module__ == "builtins" and c.__name__ in ALLOWED_EXCEPTIONS), None)
    try:
        args_tree, tensors, _ = codec.encode(tuple(err.args), opaque=True)
    except Exception:  # noqa: BLE001 - a learner's exception may carry anything
        args_tree, tensors = None, {}
    try:
        message = str(err)
    except Exception:  # noqa: BLE001
        message = "<str() of the exception failed>"
    tb = "".join(traceback.format_exception(err))[-TRACEBACK_CHARS:]
    return {"type": type(err).__name__, "builtin": builtin, "message": message[:TRACEBACK_CHARS],
            "args": args_tree, "traceback": tb}, tensors


def snapshot(objects: dict[str, Any]) -> dict[str, Any]:
    """Copies of the request's tensors, to see afterwards which ones the call changed in place."""
    import torch

    return {k: v.detach().clone() for k, v in objects.items() if isinstance(v, torch.Tensor)}


def changed(before: Any, after: Any) -> bool:
    """Whether a tensor differs from its copy: shape, dtype or any bit (NaN-safe, unlike torch.equal)."""
    import torch

    if before.shape != after.shape or before.dtype != after.dtype:
        return True
    a = after.detach().contiguous().reshape(-1).view(torch.uint8)
    return not torch.equal(a, before.contiguous().reshape(-1).view(torch.uint8))


_DRIVER_FILES: dict[str, ModuleType] = {}


def driver_function(message: dict, tests_root: Path) -> Any:
    """The driver a ``drive`` request names: a module-level function of a test file under ``tests_root``
    (imported once, by path, under a private name)."""
    file, function = message.get("file"), message.get("function")
    if not (isinstance(file, str) and isinstance(function, str) and function.isidentifier()):
        return None
    path = Path(file).resolve()
    if tests_root not in path.parents or path.suffix != ".py" or not path.is_file():
        return None
    module = _DRIVER_FILES.get(str(path))
    if module is None:
        spec = importlib.util.spec_from_file_location(f"_mi_subject_driver_{len(_DRIVER_FILES)}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _DRIVER_FILES[str(path)] = module
    fn = getattr(module, function, None)
    return fn if callable(fn) else None


def handle_call(module: ModuleType, message: dict, tensors: dict) -> tuple[dict, dict]:
    """Decode the arguments, call the learner's function (or a test's driver with the learner's module),
    report the value and the in-place mutations."""
    from mi_course.grading import codec
    from mi_course.paths import repo_root

    name = message.get("name")
    if message.get("op") == "drive":
        try:
            driver = driver_function(message, (repo_root() / "tests").resolve())
        except Exception as err:  # noqa: BLE001 - the test file itself failed to import here
            return {"ok": False, "protocol": f"cannot import the driver's test file: {type(err).__name__}: {err}"}, {}
        if driver is None:
            return {"ok": False, "protocol": f"no driver {message.get('function')!r} in {message.get('file')!r}"}, {}
        fn = lambda *args, **kwargs: driver(module, *args, **kwargs)  # noqa: E731
    else:
        fn = getattr(module, name, None) if isinstance(name, str) and not name.startswith("_") else None
        if fn is None or not callable(fn):
            return error_reply(AttributeError(f"the lesson module has no function {name!r}"))
    decoder = codec._Decoder(tensors, codec.DEFAULT_LIMITS)
    args = decoder.decode(message.get("args"))
    kwargs = decoder.decode(message.get("kwargs"))
    if type(args) is not list or type(kwargs) is not dict or any(type(k) is not str for k in kwargs):
        raise codec.CodecError("malformed call arguments")
    before = snapshot(decoder.objects)
    try:
        value = fn(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - SystemExit from a learner is an error too
        if isinstance(err, KeyboardInterrupt):
            raise
        return error_reply(err)
    tree, out, _ = codec.encode(value, opaque=True)
    mutated = [k for k, v in before.items() if changed(v, decoder.objects[k])]
    for key in mutated:
        out[f"mut.{key}"] = decoder.objects[key].detach().contiguous().clone()
    return {"ok": True, "value": tree, "mutated": mutated}, out


def error_reply(err: BaseException) -> tuple[dict, dict]:
    error, tensors = describe_error(err)
    return {"ok": False, "error": error}, tensors


def handle(module: ModuleType, message: Any, tensors: dict) -> tuple[dict, dict]:
    """One request -> one reply. Protocol errors are reported, never raised (the judge decides)."""
    from mi_course.grading import codec

    if type(message) is not dict:
        return {"ok": False, "protocol": "request is not a JSON object"}, {}
    op, name = message.get("op"), message.get("name")
    try:
        if op in ("call", "drive"):
            return handle_call(module, message, tensors)
        if op == "has":
            value = getattr(module, name, None) if isinstance(name, str) and not name.startswith("_") else None
            return {"ok": True, "has": value is not None, "callable": callable(value)}, {}
        if op == "get":
            if not isinstance(name, str) or name.startswith("_") or not hasattr(module, name):
                return error_reply(AttributeError(f"the lesson module has no attribute {name!r}"))
            tree, out, _ = codec.encode(getattr(module, name), opaque=True)
            return {"ok": True, "value": tree}, out
    except codec.CodecError as err:
        return {"ok": False, "protocol": f"{err}"}, {}
    return {"ok": False, "protocol": f"unknown op {op!r}"}, {}


def load(files: dict[str, Path], modules: dict[str, ModuleType], stem: Any) -> tuple[dict, dict]:
    """The ``load`` request: import lesson file ``stem`` (once) and list its names."""
    if stem not in modules:
        if not isinstance(stem, str) or stem not in files:
            return {"ok": False, "protocol": f"no lesson file {stem!r} here"}, {}
        try:
            modules[stem] = load_lesson(files[stem])
        except BaseException as err:  # noqa: BLE001 - a learner's top level may raise anything, SystemExit too
            if isinstance(err, KeyboardInterrupt):
                raise
            error, tensors = describe_error(err)
            return {"ok": False, "import_error": error}, tensors
    return {"ok": True, "names": public_names(modules[stem])}, {}


def serve(channel: Channel, files: dict[str, Path]) -> None:
    """Answer requests until the judge closes the pipe or says bye."""
    modules: dict[str, ModuleType] = {}
    channel.write({"op": "ready", "modules": sorted(files)}, {})
    while (request := channel.read()) is not None:
        message, tensors = request
        if type(message) is not dict:
            reply, out = {"ok": False, "protocol": "request is not a JSON object"}, {}
        elif message.get("op") == "bye":
            return
        elif message.get("op") == "load":
            reply, out = load(files, modules, message.get("module"))
        elif message.get("module") not in modules:
            reply, out = {"ok": False, "protocol": f"module {message.get('module')!r} is not loaded"}, {}
        else:
            reply, out = handle(modules[message["module"]], message, tensors)
        channel.write({**reply, "id": message.get("id") if type(message) is dict else None}, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson-file", required=True, type=Path, action="append")
    options = parser.parse_args(argv)
    channel = private_channel()
    import torch  # noqa: F401 - before the learner's import, so its cost is not the learner's

    serve(channel, {path.stem: path for path in options.lesson_file})
    return 0


if __name__ == "__main__":
    sys.exit(main())
