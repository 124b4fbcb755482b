"""The mutants of scripts/mutation_test.py (tests/mutants/lNN.yaml) still apply to the solutions.

Fast: mutants are only applied and compiled here, never graded (``python scripts/mutation_test.py`` does that,
on demand). A find text that no longer occurs exactly once in its exercise's region, a region that is gone,
or a lesson with graded tests but fewer than 10 mutants fails here, so the mutation run never silently
tests less than it claims.
"""

import importlib.util
import sys
from collections import Counter

import pytest

from mi_course.grading import exercise_files as ef
from mi_course.paths import repo_root

ROOT = repo_root()
MIN_PER_LESSON = 10


def _load_script():
    spec = importlib.util.spec_from_file_location("mutation_test", ROOT / "scripts" / "mutation_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mt = _load_script()
MUTANTS = mt.load_mutants()


def test_mutant_ids_are_unique():
    repeated = [i for i, n in Counter(m.id for m in MUTANTS).items() if n > 1]
    assert not repeated, f"mutant ids must be unique: {repeated}"


def test_every_lesson_with_graded_tests_has_enough_mutants():
    graded = {p.name[6:8] for p in (ROOT / "tests" / "graded").glob("test_l[0-9][0-9]_*.py")}
    counts = Counter(m.lesson for m in MUTANTS if not m.equivalent)
    short = {lesson: counts.get(lesson, 0) for lesson in sorted(graded) if counts.get(lesson, 0) < MIN_PER_LESSON}
    assert not short, (f"lessons with fewer than {MIN_PER_LESSON} non-equivalent mutants (add plausible learner "
                       f"mistakes to tests/mutants/lNN.yaml): {short}")


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_mutant_applies_to_the_solutions(mutant):
    source = mt.lesson_file(mutant.lesson).read_text()
    mutated = mt.apply_mutant(mutant, source)  # raises MutantError unless it applies exactly once and compiles
    assert ef.regions(mutated).keys() == ef.regions(source).keys()
    changed = [name for name in ef.regions(source) if ef.region_text(source, name) != ef.region_text(mutated, name)]
    assert changed == [mutant.exercise], f"{mutant.id} should change only {mutant.exercise}, changed {changed}"
    assert mt.has_graded_tests(mutant), f"{mutant.id}: lesson {mutant.lesson} has no graded test of {mutant.exercise}"


SOURCE = """import torch


# >>> exercise: double
def double(x):
    \"\"\"Twice x.\"\"\"
    # BEGIN SOLUTION
    y = x
    return y + y
    # END SOLUTION
# <<< exercise: double
"""


def test_mutants_apply_inside_their_region():
    base = dict(id="t", lesson="99", exercise="double", description="test")
    found = mt.apply_mutant(mt.Mutant(find="return y + y", replace="return y * y", **base), SOURCE)
    assert "    return y * y\n" in found and found.count("y * y") == 1
    whole = mt.apply_mutant(mt.Mutant(solution="if x:\n    return 3 * x\nreturn x\n", **base), SOURCE)
    assert "    # BEGIN SOLUTION\n    if x:\n        return 3 * x\n    return x\n    # END SOLUTION\n" in whole
    assert ef.region_text(whole, "double").startswith('def double(x):\n    """Twice x."""')


def test_a_mutant_that_no_longer_applies_fails_loudly():
    base = dict(id="t", lesson="99", exercise="double", description="test")
    for find, occurs in [("no such text", 0), ("y", 3)]:
        with pytest.raises(mt.MutantError, match=f"occurs {occurs} times"):
            mt.apply_mutant(mt.Mutant(find=find, replace="z", **base), SOURCE)
    with pytest.raises(mt.MutantError, match="no exercise region"):
        mt.apply_mutant(mt.Mutant(id="t", lesson="99", exercise="missing", description="test", solution="pass"),
                        SOURCE)
    with pytest.raises(mt.MutantError, match="does not compile"):
        mt.apply_mutant(mt.Mutant(solution="return (", **base), SOURCE)
    with pytest.raises(mt.MutantError, match="changes nothing"):
        mt.apply_mutant(mt.Mutant(find="y = x", replace="y = x", **base), SOURCE)


def test_malformed_mutant_files_are_rejected(tmp_path):
    (tmp_path / "l00.yaml").write_text("lesson: '00'\nmutants:\n- id: a\n  exercise: x\n  description: d\n")
    with pytest.raises(mt.MutantError, match="either find and replace, or solution"):
        mt.load_mutants(tmp_path)
    (tmp_path / "l00.yaml").write_text("lesson: '00'\nmutants:\n- {id: a, exercise: x, description: d, solution: s}\n"
                                       "- {id: a, exercise: x, description: d, solution: s}\n")
    with pytest.raises(mt.MutantError, match="unique"):
        mt.load_mutants(tmp_path)
    (tmp_path / "l00.yaml").write_text("lesson: '00'\nmutants:\n- {id: a, exercise: x, description: d, solution: s, "
                                       "equivalent: true}\n")
    with pytest.raises(mt.MutantError, match="needs a reason"):
        mt.load_mutants(tmp_path)
