"""Time every lesson notebook headless (lite mode, solutions) and print seconds and the ratio to the limit.

    python scripts/benchmark_notebooks.py [NOTEBOOK ...]

Performance is measured here, never asserted in tests (their timeouts only stop a hung notebook)."""

import sys
import tempfile

from mi_course.lessons import notebook_paths, run_notebook

LIMIT_SECONDS = 180  # the target for one lesson on a 2-core CPU

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as out:
        print(f"{'notebook':<28} {'seconds':>8} {'/ limit':>8}  status")
        for path in notebook_paths(sys.argv[1:]):
            r = run_notebook(path, out, impl="solutions")
            print(f"{r.notebook:<28} {r.seconds:8.1f} {r.seconds / LIMIT_SECONDS:8.2f}  {r.status} {r.error}")
