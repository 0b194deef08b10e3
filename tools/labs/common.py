"""Paths and small helpers shared by the lab tools (building, grading, feedback)."""

from __future__ import annotations

import ast
import contextlib
import re
import zipfile
from pathlib import Path

from tools.notebooks import ROOT

SRC_DIR = ROOT / "labs" / "src"
STUDENT_DIR = ROOT / "labs"
AUTOGRADER_DIR = STUDENT_DIR / "autograder"
# Build scratch of `generate`/`check` (git-ignored, excluded from the website). Grading never
# uses it: submissions run in a scratch folder outside the repository.
BUILD_DIR = STUDENT_DIR / "_grading"
SCRATCH_DIR = BUILD_DIR  # the old name, kept for callers
GRADER_MARKER = "# @title Otter grader"
DEFAULT_TIMEOUT = 600


def lab_sources() -> list[Path]:
    """The Otter Assign sources, ``labs/src/lab*.ipynb``, sorted."""
    return sorted(SRC_DIR.glob("lab*.ipynb"))


def natural_key(name: str) -> tuple:
    """Sort key that puts ``q2`` before ``q10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def question_points(autograder: Path) -> dict[str, float]:
    """Points of each question, read from the test files inside ``autograder``.

    Handles both Otter test formats: exception-based (module-level ``name`` and ``points``)
    and OK (a ``test = {...}`` literal).
    """
    points = {}
    with zipfile.ZipFile(autograder) as z:
        for entry in z.namelist():
            if not re.fullmatch(r"tests/[^/]+\.py", entry):
                continue
            values: dict = {}
            for node in ast.parse(z.read(entry).decode("utf-8")).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    with contextlib.suppress(ValueError):
                        values[node.targets[0].id] = ast.literal_eval(node.value)
            info = values.get("test", values)
            value = info.get("points")
            value = 1 if value is None else value
            name = info.get("name", Path(entry).stem)
            points[name] = float(sum(value) if isinstance(value, list) else value)
    return dict(sorted(points.items(), key=lambda kv: natural_key(kv[0])))


def is_assign_source(nb: dict) -> bool:
    """True for an Otter Assign source (solutions and hidden tests in), not a student notebook."""
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "raw" and re.match(
                r"#\s+(assignment\s+config|begin\s+question)", source, re.I):
            return True
    return False
