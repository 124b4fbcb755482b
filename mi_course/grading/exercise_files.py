"""Lesson files and the exercise regions inside them.

A lesson module (``solutions/l08_superposition.py``, ``exercises/l08_superposition.py``) holds one region
per exercise, between two marker lines::

    # >>> exercise: ToyModel
    class ToyModel(nn.Module):
        ...
            # BEGIN SOLUTION
            reference code
            # STUB: code that the learner's stub keeps (optional)
            # END SOLUTION
    # <<< exercise: ToyModel

``solutions/`` is the single source: ``make_stubs`` turns each ``BEGIN/END SOLUTION`` block into a
``raise NotImplementedError`` (or the block's ``# STUB:`` lines), which is exactly what ``exercises/``
holds before a learner starts. The notebook's ``%%exercise`` cell shows a region and writes it back.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

START = re.compile(r"^# >>> exercise: (?P<name>\w+)\s*$")
END = re.compile(r"^# <<< exercise: (?P<name>\w+)\s*$")
SOLUTION_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION\s*$")
SOLUTION_END = re.compile(r"^\s*# END SOLUTION\s*$")
STUB_LINE = re.compile(r"^\s*# STUB: ?(?P<code>.*)$")
LESSON_MODULE = re.compile(r"^l(?P<number>\d\d)_\w+$")


@dataclass(frozen=True)
class ExerciseId:
    """``08.ToyModel``: a lesson number and a name defined in that lesson's module."""

    lesson: str  # two digits
    name: str

    @classmethod
    def parse(cls, text: str) -> "ExerciseId":
        m = re.fullmatch(r"(\d\d)\.(\w+)", text.strip())
        if not m:
            raise ValueError(f"an exercise id looks like '08.ToyModel' (lesson number, dot, name); got {text!r}")
        return cls(m.group(1), m.group(2))

    def __str__(self) -> str:
        return f"{self.lesson}.{self.name}"


def lesson_number(module_name: str) -> str:
    m = LESSON_MODULE.match(module_name)
    if not m:
        raise ValueError(f"lesson modules are named like 'l08_superposition'; got {module_name!r}")
    return m.group("number")


def lesson_modules(folder: Path) -> dict[str, Path]:
    """Lesson number -> module file in ``folder`` (exercises/ or solutions/)."""
    out = {}
    for path in sorted(Path(folder).glob("l[0-9][0-9]_*.py")):
        out[lesson_number(path.stem)] = path
    return out


def regions(source: str) -> dict[str, tuple[int, int]]:
    """Exercise name -> (first, last) line index of its region's body (markers excluded), 0-based."""
    found: dict[str, tuple[int, int]] = {}
    open_name, open_at = None, -1
    for i, line in enumerate(source.splitlines()):
        if m := START.match(line):
            if open_name is not None:
                raise ValueError(f"line {i + 1}: region {m['name']!r} starts inside region {open_name!r}")
            open_name, open_at = m["name"], i
        elif m := END.match(line):
            if m["name"] != open_name:
                raise ValueError(f"line {i + 1}: end of region {m['name']!r} without its start")
            if open_name in found:
                raise ValueError(f"exercise {open_name!r} has two regions")
            found[open_name] = (open_at + 1, i - 1)
            open_name = None
    if open_name is not None:
        raise ValueError(f"region {open_name!r} is never closed")
    return found


def region_text(source: str, name: str) -> str:
    spans = regions(source)
    if name not in spans:
        raise KeyError(f"no exercise region {name!r}; regions here: {', '.join(spans) or 'none'}")
    first, last = spans[name]
    return "\n".join(source.splitlines()[first : last + 1]) + "\n"


def replace_region(source: str, name: str, body: str) -> str:
    """Put ``body`` in the region ``name`` (appended with markers if the file has no such region)."""
    lines = source.splitlines()
    body_lines = body.rstrip("\n").splitlines()
    spans = regions(source)
    if name in spans:
        first, last = spans[name]
        lines[first : last + 1] = body_lines
    else:
        lines += ["", "", f"# >>> exercise: {name}", *body_lines, f"# <<< exercise: {name}"]
    return "\n".join(lines) + "\n"


def solution_spans(source: str) -> list[tuple[str | None, int, int]]:
    """(exercise, first, end) of each ``BEGIN/END SOLUTION`` block: its body is ``lines[first:end]`` (0-based,
    markers excluded); exercise is the region it sits in (None before the first region)."""
    spans, current, first = [], None, None
    for i, line in enumerate(source.splitlines()):
        if m := START.match(line):
            current = m["name"]
        if SOLUTION_BEGIN.match(line):
            first = i + 1
        elif SOLUTION_END.match(line) and first is not None:
            spans.append((current, first, i))
            first = None
    return spans


def make_stubs(solution_source: str, lesson: str) -> str:
    """The learner's starting file: every solution block replaced by its stub."""
    out: list[str] = []
    block: list[str] | None = None
    indent = ""
    current = None
    for i, line in enumerate(solution_source.splitlines()):
        if m := START.match(line):
            current = m["name"]
        if m := SOLUTION_BEGIN.match(line):
            if block is not None:
                raise ValueError(f"line {i + 1}: nested BEGIN SOLUTION")
            block, indent = [], m["indent"]
            continue
        if SOLUTION_END.match(line):
            if block is None:
                raise ValueError(f"line {i + 1}: END SOLUTION without BEGIN")
            stub = [indent + s["code"] for s in map(STUB_LINE.match, block) if s]
            if not stub:
                where = f"{lesson}.{current}" if current else f"lesson {lesson}"
                stub = [f"{indent}raise NotImplementedError(\"exercise {where}: not started yet\")"]
            out += stub
            block = None
            continue
        if block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise ValueError("a BEGIN SOLUTION block is never closed")
    return "\n".join(out) + "\n"


def keep_docstrings(cell: str, region: str) -> str:
    """``cell`` with the docstrings it left out taken from ``region`` (the exercise's text in the file).

    A learner who pastes only ``def f(x): ...`` must not lose the contract that the file documents: each
    function or class (methods included) that ``region`` documents and ``cell`` defines without a docstring
    gets the region's docstring as its first statement."""
    documented: dict[str, str] = {}

    def collect(nodes, lines, prefix=""):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = node.body[0] if node.body else None
                if doc is not None and _is_docstring(doc):
                    text = lines[doc.lineno - 1 : doc.end_lineno]
                    indent = len(text[0]) - len(text[0].lstrip())
                    documented[prefix + node.name] = [t[indent:] if t[:indent].strip() == "" else t for t in text]
                if isinstance(node, ast.ClassDef):
                    collect(node.body, lines, prefix + node.name + ".")

    collect(ast.parse(region).body, region.splitlines())
    lines = cell.splitlines()
    inserts: list[tuple[int, list[str]]] = []

    def visit(nodes, prefix=""):
        for node in nodes:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            first = node.body[0]
            has_doc = _is_docstring(first)
            key = prefix + node.name
            if not has_doc and key in documented and first.lineno > node.lineno:  # not a one-line def
                body_line = lines[first.lineno - 1]
                indent = body_line[: len(body_line) - len(body_line.lstrip())]
                inserts.append((first.lineno - 1, [indent + t if t.strip() else t for t in documented[key]]))
            if isinstance(node, ast.ClassDef):
                visit(node.body, key + ".")

    visit(ast.parse(cell).body)
    for at, doc in sorted(inserts, reverse=True):
        lines[at:at] = doc
    return "\n".join(lines) + ("\n" if cell.endswith("\n") or inserts else "")


def strip_stub_comments(solution_region: str) -> str:
    """A solution region as the notebook shows it in solutions mode: no markers or STUB lines."""
    keep = [l for l in solution_region.splitlines()
            if not (SOLUTION_BEGIN.match(l) or SOLUTION_END.match(l) or STUB_LINE.match(l))]
    return "\n".join(keep) + "\n"


def top_level_names(source: str) -> set[str]:
    """Names a piece of code defines at top level (functions, classes, assignments)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def interface(source: str) -> dict[str, tuple[str, str | None]]:
    """Public top-level functions/classes -> (signature text, docstring), methods included as Class.meth.

    Used to check that exercises/ and solutions/ agree on names, signatures and docstrings even after a
    learner has filled in the bodies."""
    out: dict[str, tuple[str, str | None]] = {}

    def visit(nodes, prefix=""):
        for node in nodes:
            name = getattr(node, "name", "_")
            public = not name.startswith("_") or name == "__init__"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and public:
                returns = ast.unparse(node.returns) if node.returns else ""
                out[prefix + node.name] = (f"({ast.unparse(node.args)}) -> {returns}", ast.get_docstring(node))
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                out[prefix + node.name] = ("class(" + ", ".join(ast.unparse(b) for b in node.bases) + ")",
                                           ast.get_docstring(node))
                visit(node.body, prefix + node.name + ".")

    visit(ast.parse(source).body)
    return out


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) \
        and isinstance(node.value.value, str)


def code_fingerprint(source: str) -> str:
    """A hash of what a piece of code does, blind to docstrings, comments and layout.

    Two versions of an exercise's stub that differ only in their wording hash alike, so a notebook cell
    from an older checkout is still recognised as an untouched stub. Raises SyntaxError on broken code."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and _is_docstring(body[0]):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def stub_regions(solution_source: str, lesson: str) -> dict[str, str]:
    """Exercise name -> its untouched stub region, as ``exercises/`` and the notebook cells hold it."""
    stubs = make_stubs(solution_source, lesson)
    return {name: region_text(stubs, name) for name in regions(stubs)}
