"""Turn per-test grading records into per-exercise results: a table, JSON and JUnit XML."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

STATUSES = ("passed", "failed", "not started", "error", "timed out")


@dataclass
class ExerciseResult:
    id: str
    points_earned: int = 0
    points_possible: int = 0
    status: str = "passed"
    message: str = ""
    tests: list = field(default_factory=list)  # (nodeid, kind, message)

    def to_json(self) -> dict:
        d = asdict(self)
        d["tests"] = [{"test": t, "kind": k, "message": m} for t, k, m in self.tests]
        return d


def _status(kinds: list[str]) -> str:
    failed = [k for k in kinds if k != "passed"]
    if not failed:
        return "passed"
    if "timeout" in failed:
        return "timed out"
    if all(k == "not_started" for k in failed) and "passed" not in kinds:
        return "not started"
    if any(k in ("exception", "setup_error", "crashed", "missing") for k in failed):
        return "error"
    return "failed"


def summarize(collected: dict[str, tuple[str, int]], results: dict[str, tuple[str, str]]) -> list[ExerciseResult]:
    """collected: nodeid -> (exercise, points); results: nodeid -> (kind, message). One row per exercise."""
    rows: dict[str, ExerciseResult] = {}
    for nodeid, (exercise, points) in collected.items():
        row = rows.setdefault(exercise, ExerciseResult(exercise))
        kind, message = results.get(nodeid, ("missing", "the test produced no result"))
        row.points_possible += points
        row.points_earned += points if kind == "passed" else 0
        row.tests.append((nodeid, kind, message))
    for row in rows.values():
        row.status = _status([k for _, k, _ in row.tests])
        if row.status == "not started":
            row.message = "not started yet (the stub raises NotImplementedError)"
        elif row.status != "passed":
            # an assertion names the likely mistake; a raw exception from a later test says less
            failing = [t for t in row.tests if t[1] != "passed"]
            nodeid, _, message = next((t for t in failing if t[1] == "assertion"), failing[0])
            row.message = f"{nodeid.split('::')[-1]}: {message}"
    return sorted(rows.values(), key=lambda r: r.id)


def _record(line: str) -> dict | None:
    """One results line as a record of the plugin's shape, or None (a line cut short by a crash, or one that
    is not the plugin's: it is skipped, so that one bad line never drops the whole report)."""
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("nodeid"), str):
        return None
    if rec.get("event") == "collected":
        ok = isinstance(rec.get("exercise"), str) and type(rec.get("points")) is int
    else:
        ok = isinstance(rec.get("kind"), str) and isinstance(rec.get("message"), str)
    return rec if ok else None


def read_jsonl(path: Path, anomalies: list[str] | None = None) -> tuple[dict, dict]:
    """(collected, results) of a results file; ``anomalies``, when given, receives a line for each malformed
    line and each test collected twice (class grading turns them into flags)."""
    collected, results = {}, {}
    anomalies = [] if anomalies is None else anomalies
    if not Path(path).exists():
        return collected, results
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        rec = _record(line)
        if rec is None:
            if line.strip():
                anomalies.append(f"line {number} of the results is malformed")
            continue
        if rec.get("event") == "collected":
            if rec["nodeid"] in collected:
                anomalies.append(f"{rec['nodeid']} collected twice")
            collected[rec["nodeid"]] = (rec["exercise"], rec["points"])
        elif rec["nodeid"] not in results or results[rec["nodeid"]][0] == "passed":
            # setup/call/teardown: the first failure wins over an earlier pass
            results[rec["nodeid"]] = (rec["kind"], rec["message"])
    return collected, results


def summarize_reports(stats: dict) -> list[ExerciseResult]:
    """Rows from a pytest terminal reporter's stats (for the table after a plain pytest run)."""
    collected, results = {}, {}
    for reports in stats.values():
        for rep in reports:
            props = dict(getattr(rep, "user_properties", []) or [])
            if "exercise" not in props or "kind" not in props:
                continue
            collected[rep.nodeid] = (props["exercise"], props["points"])
            if rep.nodeid not in results or results[rep.nodeid][0] == "passed":
                results[rep.nodeid] = (props["kind"], "")
    return summarize(collected, results)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(rows: list[ExerciseResult], message_width: int = 70) -> str:
    width = max([len("exercise")] + [len(r.id) for r in rows])
    lines = [f"{'exercise':<{width}}  {'points':>7}  {'status':<11}  message"]
    for r in rows:
        pts = f"{r.points_earned}/{r.points_possible}"
        lines.append(f"{r.id:<{width}}  {pts:>7}  {r.status:<11}  {_short(r.message, message_width)}".rstrip())
    earned = sum(r.points_earned for r in rows)
    possible = sum(r.points_possible for r in rows)
    lines.append(f"{'total':<{width}}  {f'{earned}/{possible}':>7}")
    return "\n".join(lines)


def format_failures(rows: list[ExerciseResult], width: int = 100) -> str:
    """The whole message of every exercise that did not pass (the table cuts them), wrapped to ``width``."""
    import textwrap

    blocks = []
    for r in rows:
        if r.status in ("passed", "not started"):
            continue
        body = textwrap.fill(" ".join(r.message.split()), width=width, initial_indent="  ",
                             subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
        blocks.append(f"{r.id} ({r.status}, {r.points_earned}/{r.points_possible} points)\n{body}")
    return "\n\n".join(blocks)


def write_json(rows: list[ExerciseResult], path: Path, impl: str) -> None:
    data = {
        "impl": impl,
        "points_earned": sum(r.points_earned for r in rows),
        "points_possible": sum(r.points_possible for r in rows),
        "exercises": [r.to_json() for r in rows],
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def write_junit(rows: list[ExerciseResult], path: Path) -> None:
    """One testcase per exercise; failures carry the status and message, properties the points."""
    suite = ET.Element("testsuite", name="mi-course", tests=str(len(rows)),
                       failures=str(sum(r.status in ("failed", "not started") for r in rows)),
                       errors=str(sum(r.status in ("error", "timed out") for r in rows)))
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"lesson{r.id[:2]}", name=r.id)
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="points_earned", value=str(r.points_earned))
        ET.SubElement(props, "property", name="points_possible", value=str(r.points_possible))
        ET.SubElement(props, "property", name="status", value=r.status)
        if r.status in ("failed", "not started"):
            ET.SubElement(case, "failure", message=r.message, type=r.status).text = r.message
        elif r.status != "passed":
            ET.SubElement(case, "error", message=r.message, type=r.status).text = r.message
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
