"""pyproject's floors are the real ones: no lower than what the course's own stack asks of the same package.

pyproject keeps ranges loose for Colab (which ships its own torch), but a floor below what TransformerLens or
SAELens needs promises an install that pip then refuses or, worse, resolves to another stack (issue 25)."""

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
STACK = ("transformer-lens", "sae-lens", "torch-lucent", "circuitsvis")  # what the lessons are built on


def _floor(req: Requirement) -> Version | None:
    floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=", ">")]
    return max(floors) if floors else None


def our_requirements() -> dict[str, Requirement]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    reqs = [Requirement(m) for m in re.findall(r'^\s*"([^"]+)"', block, re.M)]
    return {r.name.lower(): r for r in reqs}


def test_floors_are_at_least_what_the_stack_needs():
    ours = our_requirements()
    too_low = []
    for dist in STACK:
        for line in importlib.metadata.requires(dist) or []:
            theirs = Requirement(line)
            if theirs.marker is not None and not theirs.marker.evaluate({"extra": ""}):
                continue
            name = theirs.name.lower()
            if name in ours and _floor(theirs) is not None:
                mine = _floor(ours[name])
                if mine is None or mine < _floor(theirs):
                    too_low.append(f"{name}: pyproject says {ours[name].specifier or 'any'}, {dist} needs "
                                   f"{theirs.specifier}")
    assert not too_low, "pyproject's floors are below what the stack needs:\n" + "\n".join(too_low)


def test_the_pinned_test_install_satisfies_pyproject():
    """The exact pins CI installs from .ci/constraints.txt lie inside pyproject's ranges."""
    ours = our_requirements()
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            name = pin.name.lower()
            if name in ours:
                version = next(iter(pin.specifier)).version
                assert ours[name].specifier.contains(version, prereleases=True), \
                    f"{name}=={version} (constraints) is outside pyproject's {ours[name].specifier}"
