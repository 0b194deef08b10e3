"""Self-test quizzes shown by question ID, so that no answer stands in a notebook's source.

The questions live in ``utils/quizzes/*.json`` (one file per chapter, a mapping from a
question ID such as ``"L03-Q3"`` to a list of jupyterquiz questions). A chapter cell reads
``quiz("L03-Q3")``; the output is jupyterquiz's static HTML and JavaScript, so the quiz works
on the website with no kernel.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from IPython.display import display

QUIZ_TYPES = ("multiple_choice", "many_choice", "numeric")


@cache
def all_quizzes() -> dict[str, list[dict[str, Any]]]:
    """Every quiz the package ships, keyed by question ID.

    Raises:
        ValueError: If two files define the same ID or a quiz is malformed.
    """
    quizzes: dict[str, list[dict[str, Any]]] = {}
    folder = resources.files("utils") / "quizzes"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        for quiz_id, questions in data.items():
            if quiz_id in quizzes:
                raise ValueError(f"quiz {quiz_id!r} is defined twice (again in {entry.name})")
            problems = validate_quiz(questions)
            if problems:
                raise ValueError(f"quiz {quiz_id!r} in {entry.name}: " + "; ".join(problems))
            quizzes[quiz_id] = questions
    return quizzes


def validate_quiz(questions: Any) -> list[str]:
    """Return what is wrong with a list of jupyterquiz questions (empty if nothing)."""
    if not isinstance(questions, list) or not questions:
        return ["a quiz must be a non-empty list of questions"]
    problems = []
    for n, q in enumerate(questions, start=1):
        kind = q.get("type") if isinstance(q, dict) else None
        if kind not in QUIZ_TYPES:
            problems.append(f"question {n}: type must be one of {QUIZ_TYPES}, got {kind!r}")
            continue
        if not str(q.get("question", "")).strip():
            problems.append(f"question {n}: no question text")
        answers = q.get("answers")
        if not isinstance(answers, list) or not answers:
            problems.append(f"question {n}: no answers")
            continue
        if any(not str(a.get("feedback", "")).strip() for a in answers):
            problems.append(f"question {n}: every answer needs feedback")
        if kind == "numeric":
            if not any(a.get("type") in ("value", "range") and a.get("correct") for a in answers):
                problems.append(f"question {n}: a numeric question needs a correct value or range")
            continue
        n_correct = sum(bool(a.get("correct")) for a in answers)
        if kind == "multiple_choice" and n_correct != 1:
            problems.append(f"question {n}: multiple_choice needs exactly one correct answer, "
                            f"has {n_correct}")
        if kind == "many_choice" and n_correct < 1:
            problems.append(f"question {n}: many_choice needs at least one correct answer")
    return problems


def quiz_questions(quiz_id: str) -> list[dict[str, Any]]:
    """The questions of quiz ``quiz_id`` (a copy).

    Raises:
        KeyError: If no quiz has that ID; the message lists the IDs of the same prefix.
    """
    quizzes = all_quizzes()
    if quiz_id not in quizzes:
        prefix = quiz_id.split("-")[0]
        near = sorted(k for k in quizzes if k.startswith(prefix)) or sorted(quizzes)
        raise KeyError(f"no quiz with ID {quiz_id!r}; known IDs: {', '.join(near)}")
    return copy.deepcopy(quizzes[quiz_id])


def guard_mathjax(script: str) -> str:
    """jupyterquiz's script with every ``MathJax.version`` read made safe before MathJax loads.

    jupyterquiz reads ``MathJax.version[0]`` 500 ms after drawing a quiz and on each click.
    On a page that loads MathJax with ``defer`` (the website), ``window.MathJax`` is only the
    configuration object until then, so the read throws. ``"0"`` makes the quiz skip its own
    typesetting; MathJax typesets the whole page, quizzes included, once it has loaded.
    """
    return re.sub(r"\bMathJax\.version\b", '(MathJax.version || "0")', script)


def quiz(quiz_id: str, *, shuffle_answers: bool = True) -> None:
    """Display quiz ``quiz_id`` with jupyterquiz (static HTML/JS: works without a kernel)."""
    import jupyterquiz.dynamic.display as jupyterquiz_display
    from IPython.display import Javascript

    outputs: list[Any] = []
    # jupyterquiz displays its HTML and its script itself: collect them, guard the script.
    shown_by_jupyterquiz = jupyterquiz_display.display
    jupyterquiz_display.display = outputs.append
    try:
        jupyterquiz_display.display_quiz(quiz_questions(quiz_id), shuffle_answers=shuffle_answers)
    finally:
        jupyterquiz_display.display = shown_by_jupyterquiz
    for output in outputs:
        if isinstance(output, Javascript):
            output = Javascript(guard_mathjax(output.data))
        display(output)
