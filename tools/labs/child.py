"""The grading process of one submission (``python -m tools.labs grade-one``), run in a sandbox.

It runs Otter's ``otter run`` API (the notebook top to bottom in a fresh kernel, then every
test, hidden ones included) and writes a JSON summary to a pipe that it received from the
orchestrator and that the student's kernel does not inherit. Otter itself reads the results
back from a pickle written by that kernel, so this process trusts the student's code: that is
why it runs in the sandbox, and why the orchestrator reads only this JSON and checks it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_MESSAGE = 2000  # characters of one visible test's failure message kept for the feedback


def _summary(results) -> dict:
    executed = getattr(results, "notebook", None)
    errors = [f"{out.get('ename')}: {str(out.get('evalue'))[:150]}"
              for cell in (executed.cells if executed is not None else [])
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    scores, tests = {}, []
    for name, test_file in results.results.items():
        scores[name] = test_file.score
        for result in test_file.test_case_results:
            case = result.test_case
            tests.append({
                "question": name, "name": case.name, "hidden": bool(case.hidden),
                "passed": bool(result.passed),
                # Hidden tests are named, never shown: their messages quote their code.
                "message": "" if case.hidden or result.passed else
                (result.message or "")[:MAX_MESSAGE],
            })
    return {"total": results.total, "possible": results.possible, "scores": scores,
            "tests": tests, "errors": errors}


def grade_one(submission: Path, autograder: Path, summary_fd: int) -> int:
    """Grade ``submission`` with Otter; write the JSON summary to ``summary_fd``."""
    os.set_inheritable(summary_fd, False)  # the kernel and its children must not get it
    out = os.fdopen(summary_fd, "w", encoding="utf-8")
    import nbformat
    from otter.api import grade_submission

    nb = nbformat.read(submission, as_version=4)
    # Grade with this environment's Python kernel whatever kernel the student's copy names.
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, submission)
    results = grade_submission(str(submission), str(autograder), quiet=True)
    with out:
        json.dump(_summary(results), out)
    return 0
