# Setup: run this cell first. On Colab it fetches and installs the course once (a few minutes);
# on your own machine (after `make lab`) it only loads the course.
import os, subprocess, sys
if "google.colab" in sys.modules:
    if not os.path.isdir("/content/mi-course"):
        subprocess.run(["git", "clone", "--depth", "1", "{repo_url}", "/content/mi-course"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/mi-course"], check=True)
    sys.path.insert(0, "/content/mi-course")
    os.environ["MI_COURSE_ROOT"] = "/content/mi-course"

import mi_course
mi_course.setup_notebook("{lesson}")
