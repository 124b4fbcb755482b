"""What class grading flags in a submitted lesson file, read as text (never imported): the AST says it.

A flagged exercise earns 0 in ``mi-course grade-class``, with the reason in its output and a row in
``flags.csv``. Kinds (:data:`KINDS`):

* ``canonical``: the exercise's code refers to a function the course (or a library) ships that answers the
  same exercise, as declared in ``tests/graded/canonical.yaml`` next to the graded tests;
* ``imports-answers``: ``solutions`` or the course's ``tests`` (graded tests, their answers);
* ``imports-grading``: ``mi_course.grading``, ``pytest`` or its plugin machinery;
* ``frames``: reading the caller's frames or the garbage collector's objects (``sys._getframe``,
  ``inspect.stack``, ``f_back``, ``gc.get_objects`` ...), the way a submission finds the test that called it;
* ``writes-files``: ``open`` for writing, ``Path.write_text``, ``os.remove``, ``shutil``, ``torch.save`` ...;
* ``processes``: ``subprocess``, ``os.system``, ``fork``, ``ctypes``, ``socket``, ``signal``;
* ``dynamic-code``: ``exec``, ``eval``, ``compile``, ``__import__``, ``importlib`` (code the scan cannot read).

A reference inside an exercise (the top-level function or class of that name, or its region) flags that
exercise; one at module level flags every exercise of the file. The reference solutions raise no flag
(a course test says so), so honest work is never flagged for what the course itself writes.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mi_course.paths import repo_root

CANONICAL_FILE = "tests/graded/canonical.yaml"
KINDS = ("canonical", "imports-answers", "imports-grading", "frames", "writes-files", "processes", "dynamic-code")
MODULE_LEVEL = "*"  # the exercise of a module-level reference: all of them

_IMPORT_KINDS = {  # top-level module (or dotted prefix) -> kind
    "solutions": "imports-answers", "tests": "imports-answers", "conftest": "imports-answers",
    "mi_course.grading": "imports-grading", "pytest": "imports-grading", "_pytest": "imports-grading",
    "pluggy": "imports-grading", "xdist": "imports-grading",
    "subprocess": "processes", "multiprocessing": "processes", "ctypes": "processes", "socket": "processes",
    "signal": "processes", "pty": "processes", "resource": "processes", "threading": "processes",
    "importlib": "dynamic-code", "runpy": "dynamic-code", "pickle": "dynamic-code", "marshal": "dynamic-code",
    "shutil": "writes-files", "tempfile": "writes-files",
}
_CALL_KINDS = {  # a dotted name called or referred to -> kind
    "sys._getframe": "frames", "inspect.currentframe": "frames", "inspect.stack": "frames",
    "inspect.getouterframes": "frames", "inspect.trace": "frames", "traceback.extract_stack": "frames",
    "traceback.walk_stack": "frames", "gc.get_objects": "frames", "gc.get_referrers": "frames",
    "gc.get_referents": "frames", "sys.settrace": "frames", "sys.setprofile": "frames",
    "sys.modules": "frames", "builtins": "frames",
    "os.system": "processes", "os.fork": "processes", "os.forkpty": "processes", "os.popen": "processes",
    "os.kill": "processes", "os.killpg": "processes", "os.setsid": "processes", "os._exit": "processes",
    "os.execv": "processes", "os.execve": "processes", "os.execvp": "processes", "os.spawnv": "processes",
    "os.posix_spawn": "processes",
    "os.remove": "writes-files", "os.unlink": "writes-files", "os.rename": "writes-files",
    "os.replace": "writes-files", "os.mkdir": "writes-files", "os.makedirs": "writes-files",
    "os.rmdir": "writes-files", "os.write": "writes-files", "os.open": "writes-files", "os.dup2": "writes-files",
    "os.symlink": "writes-files", "os.link": "writes-files", "os.chmod": "writes-files", "os.truncate": "writes-files",
    "torch.save": "writes-files", "numpy.save": "writes-files", "numpy.savez": "writes-files",
    "exec": "dynamic-code", "eval": "dynamic-code", "compile": "dynamic-code", "__import__": "dynamic-code",
    "globals": "frames", "vars": "frames", "breakpoint": "processes", "exit": "processes", "quit": "processes",
}
_FRAME_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "gi_frame", "cr_frame", "tb_frame",
                "tb_next", "__globals__", "__builtins__", "__subclasses__", "__code__", "__closure__"}
_WRITE_METHODS = {"write_text", "write_bytes", "unlink", "rmdir", "touch", "symlink_to", "hardlink_to", "chmod"}


@dataclass(frozen=True)
class Flag:
    exercise: str  # the exercise's name, or MODULE_LEVEL
    kind: str
    line: int
    detail: str

    def reason(self) -> str:
        return f"line {self.line}: {self.detail} ({self.kind})"


@lru_cache(maxsize=1)
def canonical_table(root: str | None = None) -> dict[str, dict[str, tuple[str, ...]]]:
    """Lesson number -> exercise name -> the dotted names of the functions that answer it."""
    import yaml

    path = Path(root or repo_root()) / CANONICAL_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {str(lesson).zfill(2): {str(name): tuple(refs or ()) for name, refs in (exercises or {}).items()}
            for lesson, exercises in data.items()}


def resolve(dotted: str) -> Any:
    """The object a dotted name names (importing the longest importable module prefix), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # noqa: BLE001 - not a module (or not importable here)
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _canonical_objects(lesson: str, root: str | None) -> dict[str, list[tuple[str, Any]]]:
    table = canonical_table(root).get(lesson, {})
    return {name: [(ref, resolve(ref)) for ref in refs] for name, refs in table.items()}


class _Scan(ast.NodeVisitor):
    """One pass over a lesson file: import bindings, then every reference with the exercise it sits in."""

    def __init__(self, exercises: set[str], canonical: dict[str, list[tuple[str, Any]]]) -> None:
        self.exercises = exercises
        self.canonical = canonical
        self.bindings: dict[str, str] = {}  # local name -> dotted name it stands for
        self.flags: list[Flag] = []
        self.where: list[str] = []  # the enclosing top-level definition's name

    # -- where a reference sits

    def exercise(self) -> str:
        top = self.where[0] if self.where else None
        return top if top in self.exercises else MODULE_LEVEL

    def flag(self, node: ast.AST, kind: str, detail: str, exercise: str | None = None) -> None:
        self.flags.append(Flag(exercise or self.exercise(), kind, getattr(node, "lineno", 0), detail))

    # -- definitions and bindings

    def _enter(self, node: ast.AST) -> None:
        self.where.append(node.name)
        self.generic_visit(node)
        self.where.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bindings[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname \
                else alias.name.split(".")[0]
            self.check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        if node.level:
            self.flag(node, "imports-answers", f"a relative import ({module})")
        for alias in node.names:
            full = f"{module}.{alias.name}" if module else alias.name
            bound = alias.asname or alias.name
            self.bindings[bound] = full
            self.check_module(node, full)
            if self.where or bound in self.exercises:  # importing it *as* the exercise defines the answer
                self.check_reference(node, full)

    def visit_Assign(self, node: ast.Assign) -> None:
        dotted = self.dotted(node.value)
        if dotted and not self.where:  # a module-level alias: `f = mi_course.x.f`
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.bindings[target.id] = dotted
        self.generic_visit(node)

    def check_module(self, node: ast.AST, module: str) -> None:
        for prefix, kind in _IMPORT_KINDS.items():
            if module == prefix or module.startswith(prefix + "."):
                self.flag(node, kind, f"imports {module}")
                return

    # -- references

    def dotted(self, node: ast.AST) -> str | None:
        """The dotted name an expression like ``a.b.c`` stands for, through the import bindings."""
        attrs = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.bindings.get(node.id, node.id)
        return ".".join([root, *reversed(attrs)])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _FRAME_ATTRS:
            self.flag(node, "frames", f"reads .{node.attr}")
        if isinstance(node.ctx, ast.Load) and (dotted := self.dotted(node)):
            self.check_reference(node, dotted)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.check_reference(node, self.bindings.get(node.id, node.id))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open" and self.opens_for_writing(node):
            self.flag(node, "writes-files", "opens a file for writing")
        if isinstance(func, ast.Attribute) and func.attr in _WRITE_METHODS:
            self.flag(node, "writes-files", f"calls .{func.attr}()")
        if isinstance(func, ast.Attribute) and func.attr == "open" and self.opens_for_writing(node, 0):
            self.flag(node, "writes-files", "opens a file for writing")
        self.generic_visit(node)

    @staticmethod
    def opens_for_writing(node: ast.Call, mode_at: int = 1) -> bool:
        mode = node.args[mode_at] if len(node.args) > mode_at else \
            next((k.value for k in node.keywords if k.arg == "mode"), None)
        if mode is None:
            return False
        return not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                    and not set(mode.value) & set("wax+"))

    def check_reference(self, node: ast.AST, dotted: str) -> None:
        kind = _CALL_KINDS.get(dotted)
        if kind:
            self.flag(node, kind, f"uses {dotted}")
        self.check_canonical(node, dotted)

    def check_canonical(self, node: ast.AST, dotted: str) -> None:
        """A reference to exercise E's canonical function flags E, unless it sits in another exercise (which
        may build on course code); one in a helper or at module level counts for E."""
        if "." not in dotted:
            return
        exercise = self.exercise()
        for name, refs in self.canonical.items():
            if exercise not in (name, MODULE_LEVEL):
                continue
            for ref, obj in refs:
                if dotted == ref or dotted.startswith(ref + ".") or \
                        (obj is not None and dotted.split(".")[0] in _ROOTS and resolve(dotted) is obj):
                    self.flag(node, "canonical", f"calls {dotted}, which answers {name} for you", exercise=name)
                    return


_ROOTS = ("mi_course", "lucent", "transformer_lens", "sae_lens", "circuitsvis", "torchvision")


def scan(source: str, lesson: str, exercises: set[str], root: str | None = None) -> list[Flag]:
    """The flags of one lesson file's source (a SyntaxError gives no flags: the tests will fail it)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return []
    visitor = _Scan(exercises, _canonical_objects(lesson, root))
    try:
        visitor.visit(tree)
    except RecursionError:
        return [Flag(MODULE_LEVEL, "dynamic-code", 0, "code nested too deeply to read")]
    unique = {(f.exercise, f.kind, f.line, f.detail): f for f in visitor.flags}
    return sorted(unique.values(), key=lambda f: (f.line, f.kind))


def flagged_exercises(flags: list[Flag], exercises: set[str]) -> dict[str, list[Flag]]:
    """Exercise name -> the flags that zero it (module-level flags zero every exercise)."""
    out: dict[str, list[Flag]] = {}
    for f in flags:
        for name in (exercises if f.exercise == MODULE_LEVEL else {f.exercise}):
            out.setdefault(name, []).append(f)
    return out
