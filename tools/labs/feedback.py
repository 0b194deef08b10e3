"""A feedback file per student: the score, the failed tests with the visible messages.

Hidden tests that failed are named (``q1 - 3``) but never shown: their messages quote their
code. The reasons a submission was flagged for review stay in the instructor's CSV.
"""

from __future__ import annotations

import re
from pathlib import Path


def feedback_name(student: str, file: str, several: bool) -> str:
    """A safe file name for the feedback of ``student`` (and ``file`` when they handed in
    several)."""
    base = f"{student}--{file}" if several else student
    safe = re.sub(r"[^\w.\-]+", "_", base).strip("._") or "submission"
    return f"{safe[:150]}.md"


def render(grade, lab: str, points: dict[str, float]) -> str:
    """The Markdown feedback of one graded submission (a ``tools.labs.grading.Grade``)."""
    total = sum(points.values())
    lines = [f"# {lab}: feedback for {grade.student}", "", f"File: `{grade.file}`", ""]
    if grade.status == "timeout":
        lines += [f"**Score: 0 / {total:g}.** Your notebook did not finish within the time "
                  "limit, so nothing could be graded: " + grade.message, ""]
        return "\n".join(lines) + "\n"
    if grade.status != "ok":
        lines += [f"**Score: 0 / {total:g}.** Your file could not be graded: {grade.message}",
                  ""]
        return "\n".join(lines) + "\n"
    lines += [f"**Score: {grade.score:g} / {total:g}**", "", "| question | points |",
              "|---|---|"]
    lines += [f"| {q} | {grade.questions.get(q, 0.0):g} / {p:g} |" for q, p in points.items()]
    failed = [t for t in grade.tests if not t.get("passed")]
    lines += ["", "## Tests that failed", ""]
    if not failed:
        lines += ["None: every test passed.", ""]
    for test in failed:
        if test.get("hidden"):
            lines += [f"- `{test['name']}` (hidden): failed. Hidden tests are not shown; they "
                      f"try more cases than the visible ones, so re-read what question "
                      f"{test['question']} asks for (shapes, edge cases, not changing inputs).",
                      ""]
        else:
            message = test.get("message", "").strip() or "(no message)"
            lines += [f"- `{test['name']}` (visible): failed.", "", "  ```text",
                      *[f"  {line}" for line in message.splitlines()], "  ```", ""]
    if grade.message:
        lines += ["## When your notebook ran", "", grade.message, ""]
    return "\n".join(lines) + "\n"


def write(grade, lab: str, points: dict[str, float], folder: Path, several: bool) -> Path:
    """Write the feedback of ``grade`` into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / feedback_name(grade.student, grade.file, several)
    path.write_text(render(grade, lab, points), encoding="utf-8")
    return path
