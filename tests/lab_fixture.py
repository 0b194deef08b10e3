"""A tiny Otter Assign lab for the grading tests: two trivial questions, seconds to grade.

The real labs take 15-40 s per submission; the malicious and workflow cases of
``tests/test_labs_grading.py`` run on this one instead. Its hidden tests carry
``HIDDEN_MARKER`` so that a test can prove they never reach a feedback file.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

NAME = "lab0_fixture"
HIDDEN_MARKER = "hidden-fixture-check-7f3a"

CONFIG = f"""# ASSIGNMENT CONFIG
name: {NAME}
init_cell: true
check_all_cell: false
export_cell: false
run_tests: false
tests:
  files: true
  ok_format: false
generate:
  pdf: false
  show_stdout: true
"""


def _question(name: str, points: int, prompt: str, solution: str, tests: list[str]) -> list:
    v4 = nbformat.v4
    raw, code, md = v4.new_raw_cell, v4.new_code_cell, v4.new_markdown_cell
    return [raw(f"# BEGIN QUESTION\nname: {name}\npoints: {points}"), md(prompt),
            raw("# BEGIN SOLUTION"), code(solution), raw("# END SOLUTION"),
            raw("# BEGIN TESTS"), *[code(t) for t in tests], raw("# END TESTS"),
            raw("# END QUESTION")]


def source_notebook() -> nbformat.NotebookNode:
    """The Otter Assign source of the fixture lab."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {NAME}: a fixture for the grading tests"),
        nbformat.v4.new_raw_cell(CONFIG),
        nbformat.v4.new_code_cell("import math"),
        *_question("q1", 2, "Implement `double(x)`.",
                   "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION",
                   ["def test_q1_small(double):\n"
                    "    assert double(3) is not None, 'double returned None'\n"
                    "    assert double(3) == double(1) * 3, 'double must be linear'\n\n\n"
                    "test_q1_small(double)",
                    "# HIDDEN\ndef test_q1_many(double):\n"
                    f"    assert all(double(x) == x + x for x in range(-5, 50)), "
                    f"'{HIDDEN_MARKER}'\n\n\ntest_q1_many(double)"]),
        *_question("q2", 1, "Set `answer` to the answer.",
                   "answer = 6 * 7  # SOLUTION",
                   ["def test_q2_type(answer):\n"
                    "    assert isinstance(answer, int), 'answer must be an int'\n\n\n"
                    "test_q2_type(answer)",
                    "# HIDDEN\ndef test_q2_value(answer):\n"
                    f"    assert answer == 6 * 7, '{HIDDEN_MARKER}'\n\n\n"
                    "test_q2_value(answer)"]),
        nbformat.v4.new_code_cell("print('the end')"),
    ]
    return nb


def write_source(folder: Path) -> Path:
    """Write the fixture's source as ``folder/lab0_fixture.ipynb``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.ipynb"
    nbformat.write(source_notebook(), path)
    return path
