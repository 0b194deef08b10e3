"""The course map (course_map.yml): every question ID mapped, sections present, intro current."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import course_map
from tools.course_map import (
    anchor,
    intro_with_map,
    load_map,
    problems,
    question_ids,
    render,
)
from tools.notebooks import ROOT


def _notes_ids() -> list[str]:
    """The 46 IDs the course must answer, spelled out as in the notes' index."""
    return ([f"L01-Q{i}" for i in range(1, 5)] + [f"L03-Q{i}" for i in range(1, 25)]
            + [f"L03-C{i}" for i in range(1, 5)] + [f"MM-Q{i}" for i in range(1, 15)])


def test_every_question_id_is_mapped_once() -> None:
    ids = question_ids(load_map())
    assert len(ids) == len(set(ids)) == 46
    assert sorted(ids) == sorted(_notes_ids())


def test_every_written_chapter_has_each_mapped_section() -> None:
    assert problems(load_map()) == []


def test_intro_course_map_is_generated_from_the_map() -> None:
    intro = (ROOT / "intro.md").read_text(encoding="utf-8")
    assert intro == intro_with_map(intro, render(load_map())), (
        "intro.md's course map is stale: run `python -m tools.course_map write`")
    assert course_map.main(["check"]) == 0


def test_written_questions_link_to_their_heading_anchor() -> None:
    table = render(load_map())
    assert "(chapters/01_self_attention.ipynb#l03-q3--why-divide-by-d_k)" in table
    assert anchor("L03-Q3", "Why divide by √d_k?") == "l03-q3--why-divide-by-d_k"


def test_a_renamed_section_is_reported() -> None:
    chapters = load_map()
    chapters[0]["questions"]["L03-Q3"] = "Why divide at all?"
    assert any("L03-Q3 is titled" in p for p in problems(chapters))


def test_a_missing_section_and_an_unmapped_one_are_reported() -> None:
    chapters = load_map()
    del chapters[0]["questions"]["L03-Q6"]
    chapters[0]["questions"]["L03-Q99"] = "A question the chapter does not have"
    found = problems(chapters)
    assert any("no section headed '## L03-Q99" in p for p in found)
    assert any("section L03-Q6 is not in the map" in p for p in found)


def test_a_written_chapter_that_does_not_exist_is_reported() -> None:
    chapters = load_map()
    chapters.append({**chapters[0], "file": "chapters/99_missing", "questions": {}})
    assert any("99_missing.ipynb is mapped as written but does not exist" in p
               for p in problems(chapters))


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "course_map.yml").read_text(encoding="utf-8")
    duplicated = text.replace("      L03-Q7:", "      L03-Q1:")
    path = tmp_path / "map.yml"
    path.write_text(duplicated, encoding="utf-8")
    with pytest.raises(ValueError, match="L03-Q1 is mapped twice"):
        load_map(path)


def test_stale_intro_is_detected() -> None:
    intro = (ROOT / "intro.md").read_text(encoding="utf-8")
    stale = intro.replace("| L03-Q1 |", "| L03-Q0 |")
    assert intro_with_map(stale, render(load_map())) != stale
