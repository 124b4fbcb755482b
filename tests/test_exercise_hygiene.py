"""Stubs and notebooks do not hand out the answer: a stub never imports the module its solution delegates to,
and no notebook cell names that module before the learner has done the exercise. And every exercise comes with
its hint in two levels, the idea first, then the recipe."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from mi_course.grading import exercise_files as ef
from mi_course.lessons import parse_source

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ef.lesson_modules(ROOT / "solutions")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _imported_modules(code: str) -> set[str]:
    """The mi_course modules that ``code`` imports names from or imports whole (``from a import b`` counts
    a.b when b is a module, else a)."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mi_course")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mi_course"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if _is_module(full) else node.module)
    return found


def _solution_blocks(source: str) -> dict[str, str]:
    """Exercise name -> the code of its BEGIN/END SOLUTION blocks, dedented."""
    out: dict[str, list[str]] = {}
    lines = source.splitlines()
    for name, first, end in ef.solution_spans(source):
        out.setdefault(name, []).append("if True:\n" + "\n".join(lines[first:end]))
    return {name: "\n".join(blocks) for name, blocks in out.items()}


def _answer_modules(lesson: str) -> dict[str, set[str]]:
    """Exercise name -> the mi_course modules its solution imports (where its canonical answer lives)."""
    return {name: _imported_modules(code) for name, code in _solution_blocks(SOLUTIONS[lesson].read_text()).items()}


@pytest.mark.parametrize("lesson", sorted(SOLUTIONS))
def test_stubs_do_not_import_the_modules_that_hold_their_answers(lesson):
    stub = ef.make_stubs(SOLUTIONS[lesson].read_text(), lesson)
    imported = _imported_modules(stub)
    for name, modules in _answer_modules(lesson).items():
        leaked = modules & imported
        assert not leaked, (f"exercises/l{lesson}: the stub imports {sorted(leaked)}, where {lesson}.{name}'s "
                            f"answer lives; import it inside the solution block instead")


def test_the_check_finds_a_leak():
    source = ("from mi_course.language import induction\n\n# >>> exercise: f\ndef f(x):\n    # BEGIN SOLUTION\n"
              "    from mi_course.language import induction\n    return induction.f(x)\n    # END SOLUTION\n"
              "# <<< exercise: f\n")
    assert _imported_modules(ef.make_stubs(source, "99")) & _imported_modules(_solution_blocks(source)["f"])


def _names_of(module: str) -> list[str]:
    """How a notebook could point at a module: its dotted path, and ``from parent import leaf``."""
    parent, leaf = module.rsplit(".", 1)
    return [module, f"from {parent} import {leaf}"]


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")),
                         ids=lambda p: p.stem)
def test_no_notebook_cell_points_at_an_answer_before_its_exercise(source):
    lesson = source.stem[:2]
    if lesson not in SOLUTIONS:
        pytest.skip("lesson without exercises")
    answers = _answer_modules(lesson)
    seen: list[str] = []  # cells before the current one
    for kind, arg, lines in parse_source(source.read_text()):
        if kind == "exercise":
            name = ef.ExerciseId.parse(arg).name
            for module in answers.get(name, ()):
                for text in seen:
                    for pattern in _names_of(module):
                        assert not re.search(re.escape(pattern) + r"\b", text), (
                            f"{source.name}: a cell before exercise {arg} names {pattern!r}, where its answer is")
        seen.append("\n".join(lines))


IDEA, RECIPE = "<details><summary>Hint: the idea</summary>", "<details><summary>Hint: the recipe</summary>"


def hint_problems(source_text: str) -> list[str]:
    """What is wrong with the hints of each exercise: the last markdown cell before it must hold a closed
    "Hint: the idea" block and, after it, a closed "Hint: the recipe" block (exercises that share one
    explanation share its hints)."""
    problems, markdown = [], None
    for kind, arg, lines in parse_source(source_text):
        if kind == "markdown":
            markdown = "\n".join(lines)
        elif kind == "exercise":
            text = markdown or ""
            idea, recipe = text.find(IDEA), text.find(RECIPE)
            if idea < 0 or recipe < 0:
                problems.append(f"{arg}: no {'idea' if idea < 0 else 'recipe'} hint in the markdown cell before it")
            elif recipe < idea:
                problems.append(f"{arg}: the recipe hint comes before the idea hint")
            elif any(text.find("</details>", start) < 0 for start in (idea, recipe)) or \
                    text.count("<details>") != text.count("</details>"):
                problems.append(f"{arg}: a hint block is not closed with </details>")
    return problems


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")),
                         ids=lambda p: p.stem)
def test_every_exercise_has_a_hint_in_two_levels(source):
    problems = hint_problems(source.read_text())
    assert not problems, f"{source.name}: " + "; ".join(problems)


def test_the_hint_check_finds_a_missing_or_misordered_level():
    recipe_only = "# %% [markdown]\n# <details><summary>Hint</summary>\n# x\n# </details>\n\n# %% [exercise] 99.f\n"
    swapped = (f"# %% [markdown]\n# {RECIPE}\n# a\n# </details>\n# {IDEA}\n# b\n# </details>\n\n"
               "# %% [exercise] 99.f\n")
    unclosed = f"# %% [markdown]\n# {IDEA}\n# a\n# {RECIPE}\n# b\n# </details>\n\n# %% [exercise] 99.f\n"
    assert "no idea hint" in hint_problems(recipe_only)[0]
    assert "before the idea" in hint_problems(swapped)[0]
    assert "not closed" in hint_problems(unclosed)[0]


MIN_RECIPE_SPAN = 24  # shorter code spans (a name, `x.shape`) are vocabulary, not a recipe
# Spans that both texts may give, because the graded tests check them exactly: they are the contract.
CONTRACT_SPANS = {
    ("03.dataset_examples", "offset + stride * row + size"): "where a crop lies is what the test checks",
    ("05.bigram_logits", "model.cfg.normalization_type"): "which models the function accepts",
    ("05.decompose_logits", 'cache[f"blocks.{l}.hook_mlp_out"]'): "the terms the decomposition returns, by hook",
    ("05.decompose_logits", 'cache["ln_final.hook_scale"]'): "the scale every term is divided by",
    ("07.accumulated_residuals", "cache.model.cfg.n_layers"): "the model the cache came from, when not given",
    ("08.train_toy_model", "sparse_feature_batch(batch_size, model.n_features, feature_probability, "
                           "model.n_instances, generator)"): "the seeded batches the test replays",
    ("10.top_logit_effects", "effect = direction @ W_U"): "the definition of a logit effect",
    ("10.generate_with_steering", "torch.multinomial(probs, 1, generator=g)"): "the seeded sampling the test replays",
    ("11.causal_trace", "noise = torch.randn(n_samples, len(subject), d_model, "
                        "generator=torch.Generator().manual_seed(seed)) "
                        "* noise_std"): "the seeded noise the test replays",
}


def recipe_in_docstrings(source_text: str, stubs: dict[str, str]) -> list[str]:
    """Code spans of each exercise's recipe hint that its docstrings repeat: the docstring says what and why,
    the recipe belongs to the level-2 hint (``stubs``: exercise id -> its stub region)."""
    problems, markdown = [], ""
    for kind, arg, lines in parse_source(source_text):
        if kind == "markdown":
            markdown = "\n".join(line[2:] for line in lines)
        elif kind == "exercise" and arg in stubs:
            start = markdown.find(RECIPE)
            recipe = markdown[start: markdown.find("</details>", start)] if start >= 0 else ""
            docs = []
            for node in ast.walk(ast.parse(stubs[arg])):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    docs.append(" ".join((ast.get_docstring(node) or "").split()))
            docs = " ".join(docs).replace("``", "`")
            for span in re.findall(r"`([^`]+)`", " ".join(recipe.split())):
                if len(span) >= MIN_RECIPE_SPAN and span in docs and (arg, span) not in CONTRACT_SPANS:
                    problems.append(f"{arg}: the docstring gives the recipe's `{span}`")
    return problems


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")),
                         ids=lambda p: p.stem)
def test_docstrings_are_not_the_recipe(source):
    lesson = source.name[:2]
    stubs = ef.stub_regions(SOLUTIONS[lesson].read_text(), lesson) if lesson in SOLUTIONS else {}
    problems = recipe_in_docstrings(source.read_text(), {f"{lesson}.{k}": v for k, v in stubs.items()})
    assert not problems, f"{source.name}: " + "; ".join(problems)


def test_the_recipe_check_finds_a_docstring_that_is_the_recipe():
    text = (f"# %% [markdown]\n# {IDEA}\n# a\n# </details>\n# {RECIPE}\n"
            "# `shift = torch.randint(-s, s + 1, (2,), generator=g)`\n# </details>\n\n# %% [exercise] 99.f\n")
    stub = 'def f(s, g):\n    """Shifts by ``shift = torch.randint(-s, s + 1, (2,), generator=g)``."""\n'
    assert "randint" in recipe_in_docstrings(text, {"99.f": stub})[0]
    assert not recipe_in_docstrings(text, {"99.f": 'def f(s, g):\n    """A random shift."""\n'})
