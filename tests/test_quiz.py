"""Tests for utils/quiz.py: quiz data shipped in the package, shown by question ID."""

from __future__ import annotations

import re

import nbformat
import pytest

from tools.course_map import load_map, question_ids
from tools.notebooks import ROOT, notebook_paths
from utils import quiz as quiz_module
from utils.quiz import all_quizzes, quiz_questions, validate_quiz

GOOD = {"question": "2 + 2?", "type": "multiple_choice", "answers": [
    {"answer": "4", "correct": True, "feedback": "Yes."},
    {"answer": "5", "correct": False, "feedback": "No."}]}


def test_every_shipped_quiz_is_valid_and_mapped() -> None:
    quizzes = all_quizzes()
    assert quizzes, "the package ships no quiz"
    mapped = set(question_ids(load_map()))
    for quiz_id, questions in quizzes.items():
        assert quiz_id in mapped, f"quiz {quiz_id} is not a question ID of course_map.yml"
        assert validate_quiz(questions) == []


def test_every_quiz_cell_names_a_shipped_quiz_and_shows_no_answer() -> None:
    called = set()
    for path in notebook_paths():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            assert "display_quiz(" not in cell.source, (
                f"{path.name}: a quiz written in the cell shows its answers; use quiz(ID)")
            called.update(re.findall(r'\bquiz\("([^"]+)"\)', cell.source))
    assert called, "no chapter calls quiz()"
    missing = called - set(all_quizzes())
    assert not missing, f"quiz IDs called in notebooks but not shipped: {sorted(missing)}"


def test_written_chapters_have_a_quiz_per_question() -> None:
    for chapter in load_map():
        if chapter["status"] == "written":
            for quiz_id in chapter["questions"]:
                assert quiz_id in all_quizzes(), f"{chapter['file']}: no quiz for {quiz_id}"


def test_quiz_questions_returns_a_copy() -> None:
    quiz_id = next(iter(all_quizzes()))
    questions = quiz_questions(quiz_id)
    questions[0]["question"] = "changed"
    assert quiz_questions(quiz_id)[0]["question"] != "changed"


def test_unknown_id_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"no quiz with ID 'L03-Q99'.*L03-Q1"):
        quiz_questions("L03-Q99")


@pytest.mark.parametrize(
    ("questions", "problem"),
    [
        ([], "non-empty list"),
        ([{**GOOD, "type": "essay"}], "type must be one of"),
        ([{**GOOD, "question": " "}], "no question text"),
        ([{**GOOD, "answers": []}], "no answers"),
        ([{**GOOD, "answers": [{"answer": "4", "correct": True, "feedback": ""}]}],
         "needs feedback"),
        ([{**GOOD, "answers": [{**a, "correct": True} for a in GOOD["answers"]]}],
         "exactly one correct answer, has 2"),
        ([{**GOOD, "type": "many_choice",
           "answers": [{**a, "correct": False} for a in GOOD["answers"]]}],
         "at least one correct"),
        ([{"question": "pi?", "type": "numeric",
           "answers": [{"type": "value", "value": 3.14, "correct": False, "feedback": "no"}]}],
         "correct value or range"),
    ],
)
def test_validate_quiz_names_the_problem(questions: list, problem: str) -> None:
    assert any(problem in p for p in validate_quiz(questions)), validate_quiz(questions)


def _shown(monkeypatch: pytest.MonkeyPatch, quiz_id: str) -> list:
    shown: list = []
    monkeypatch.setattr(quiz_module, "display", shown.append)
    quiz_module.quiz(quiz_id)
    return shown


def test_quiz_output_embeds_the_questions_for_the_website(
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = "".join(str(obj.data) for obj in _shown(monkeypatch, "L03-Q1"))
    for question in quiz_questions("L03-Q1"):
        # the questions travel inside the output (JSON in the script), so no kernel is needed
        assert question["answers"][0]["feedback"][:20] in script.replace("\\'", "'")


def test_quiz_script_survives_a_page_where_mathjax_is_not_loaded_yet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.display import HTML, Javascript

    shown = _shown(monkeypatch, "L03-Q1")
    assert [type(obj) for obj in shown] == [HTML, Javascript]
    script = shown[1].data
    assert "MathJax.version" in script, "jupyterquiz no longer reads MathJax.version: re-check"
    unguarded = re.findall(r"MathJax\.version(?! \|\| \"0\")", script)
    assert not unguarded, f"{len(unguarded)} unguarded MathJax.version reads"


def test_guard_mathjax() -> None:
    assert quiz_module.guard_mathjax("v = MathJax.version; if (v[0] == '3')") == (
        'v = (MathJax.version || "0"); if (v[0] == \'3\')')


def test_quiz_data_is_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"quizzes/*.json"' in pyproject
