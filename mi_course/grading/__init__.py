"""Grading: which implementation is graded, per-exercise points, feedback in the notebook."""

from mi_course.grading.runner import check, grade

__all__ = ["check", "grade"]
