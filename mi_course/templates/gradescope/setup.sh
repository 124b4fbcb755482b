#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder image is built; the zip is unpacked in
# /autograder/source. It installs the course (the instructor's tests, no solutions) into a venv there.
set -euo pipefail
cd "$(dirname "$0")"
if command -v apt-get >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q python3-venv python3-pip git util-linux
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c .ci/constraints.txt -e .
