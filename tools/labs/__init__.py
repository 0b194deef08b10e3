"""Build, check and grade the labs with Otter-Grader: one source per lab, everything else generated.

Usage (``.venv/bin/python -m tools.labs ...``)::

    generate [LAB ...]        # labs/src/lab*.ipynb -> labs/lab*.ipynb + autograder zips
    check [LAB ...]           # exit 1 if a generated file is stale or missing
    execute-sources [LAB ...] # re-run the sources with their solutions, outputs stored
    solution LAB --out F      # the full-marks notebook of a lab, to smoke-test its autograder
    release LAB --out DIR     # an autograder for containers, pinned to this commit
    grade SUBMISSIONS --lab LAB --out scores.csv [--jobs N] [--timeout S] [--feedback DIR]

Modules: :mod:`.build` (generation and checks), :mod:`.grading` (the orchestrator),
:mod:`.sandbox` (bubblewrap), :mod:`.tamper` (what gets a submission flagged),
:mod:`.submissions` (folders, zips, students), :mod:`.feedback`, :mod:`.child` (the grading
process of one submission).
"""

from .build import (
    VOLATILE_TAG,
    BuiltLab,
    autograder_requirements,
    build_all,
    build_lab,
    check,
    execute_sources,
    generate,
    generated_paths,
    release,
    solution_notebook,
    stale_files,
    tidy_outputs,
)
from .common import (
    AUTOGRADER_DIR,
    BUILD_DIR,
    DEFAULT_TIMEOUT,
    GRADER_MARKER,
    SCRATCH_DIR,
    SRC_DIR,
    STUDENT_DIR,
    lab_sources,
    question_points,
)
from .grading import Grade, columns, grade
from .sandbox import kill_by_token, kill_tree, probe
from .submissions import collect, extract_zip
from .tamper import scan_cells

_kill_tree = kill_tree  # the old private name

__all__ = [
    "AUTOGRADER_DIR", "BUILD_DIR", "DEFAULT_TIMEOUT", "GRADER_MARKER", "SCRATCH_DIR", "SRC_DIR",
    "STUDENT_DIR", "VOLATILE_TAG", "BuiltLab", "Grade", "autograder_requirements", "build_all",
    "build_lab", "check", "collect", "columns", "execute_sources", "extract_zip", "generate",
    "generated_paths", "grade", "kill_by_token", "kill_tree", "lab_sources", "probe",
    "question_points", "release", "scan_cells", "solution_notebook", "stale_files",
    "tidy_outputs",
]
