# Setup: run this cell first. On Colab it fetches and installs the course once (a few minutes);
# on your own machine (after `make lab`) it only loads the course.
import importlib.util
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    COURSE, REPO = "/content/mi-course", os.environ.get("MI_COURSE_REPO", "{repo_url}")
    if not os.path.isdir(COURSE):  # GIT_TERMINAL_PROMPT=0: a clone that cannot work fails at once, no password prompt
        if subprocess.run(["git", "clone", "--depth", "1", REPO, COURSE],
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}).returncode != 0:
            raise SystemExit(f"Could not clone the course from {REPO}. Ask your instructor for the course's git "
                             f"address and run os.environ['MI_COURSE_REPO'] = '<address>' before this cell, or "
                             f"upload the course and unzip it into {COURSE}; then run this cell again.")
    if importlib.util.find_spec("mi_course") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", COURSE], check=True)
    sys.path.insert(0, COURSE)
    os.environ["MI_COURSE_ROOT"] = COURSE

import mi_course

mi_course.setup_notebook("{lesson}")
