"""Course tests. Graded tests live in tests/graded and grade --impl (default: exercises/)."""

import pytest

import mi_course

SHARED_FILES = ("test_notebooks.py", "test_full_dry_run.py")  # one notebook per test: spread over the processes


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's ``--dist loadgroup`` a test file runs on one process, so its module fixtures
    (models, graded classes) are built once; the notebook files' tests are spread."""
    if not config.pluginmanager.hasplugin("xdist"):  # a learner's plain pytest: no such mark to add
        return
    for item in items:
        if item.path.name not in SHARED_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


# module scope: a learner's hook left attached stays inside the one test file that attached it
@pytest.fixture(scope="module")
def lite1():
    """The lite 1-layer attention-only model (CPU)."""
    return mi_course.load_model("attn-only-1l", mode="lite", device="cpu")


@pytest.fixture(scope="module")
def lite2():
    """The lite 2-layer attention-only model (CPU)."""
    return mi_course.load_model("attn-only-2l", mode="lite", device="cpu")
