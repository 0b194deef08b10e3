"""Root pytest configuration: which notebooks pytest (nbval) collects."""

# Lab sources hold solutions and hidden tests in otter's format; tests/test_labs.py runs them
# through otter instead. Build output and scratch folders are never collected.
collect_ignore_glob = ["labs/src/*", "labs/_grading/*", "labs/autograder/*", "_build/*", ".venv/*"]
