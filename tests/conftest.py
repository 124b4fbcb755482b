"""Course tests. Graded tests live in tests/graded and grade --impl (default: exercises/)."""
