"""Static checks of the course notebooks (nbval executes them; these check their form)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.course_map import HEADING
from tools.notebooks import (
    BOX_TITLES,
    ROOT,
    SETUP_MARKER,
    box_opening,
    notebook_paths,
    pip_spec,
    repository_url,
    setup_cell_source,
)

NOTEBOOKS = notebook_paths()
CHAPTERS = [p for p in NOTEBOOKS if p.parent.name == "chapters"]
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks() -> None:
    assert CHAPTERS, "no chapter notebooks found under chapters/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_code_cell_is_current_setup_cell(path: Path) -> None:
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    assert code[0].source == setup_cell_source(path), (
        f"{path.name}: first code cell is not the current setup cell; "
        "run `python -m tools.notebooks stamp`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_title_first_one_setup_cell_no_empty_code_cells(path: Path) -> None:
    cells = _read(path).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), (
        f"{path.name}: the notebook must open with its title (a Markdown '# ...' cell)")
    setups = [i for i, c in enumerate(cells) if c.source.startswith(SETUP_MARKER)]
    assert len(setups) == 1, f"{path.name}: {len(setups)} setup cells (cells {setups})"
    empty = [i for i, c in enumerate(cells) if c.cell_type == "code" and not c.source.strip()]
    assert not empty, f"{path.name}: empty code cells at {empty}"


def test_setup_cell_installs_from_the_configured_repository_with_pip_only() -> None:
    url = repository_url()
    assert url.startswith("https://github.com/")
    chapter, lab = setup_cell_source(CHAPTERS[0]), setup_cell_source(ROOT / "labs" / "lab1.ipynb")
    # an archive URL: pip installs it with no git on the machine
    assert f"{url}/archive/refs/heads/" in pip_spec(CHAPTERS[0])
    # it installs wherever the package is missing, not only on Colab
    assert pip_spec(CHAPTERS[0]) in chapter and 'if "google.colab" in sys.modules:' not in chapter
    assert "[labs]" in lab and 'find_spec("otter")' in lab
    assert "[labs]" not in chapter and "otter" not in chapter


def _sections(path: Path) -> dict[str, str]:
    """``{ID: text from its heading to the next ID heading}`` of a notebook."""
    cells = _read(path).cells
    sections: dict[str, str] = {}
    current = None
    for cell in cells:
        match = HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            current = match.group(1)
        if current:
            sections[current] = sections.get(current, "") + "\n" + cell.source
    return sections


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_question_section_follows_the_pattern(path: Path) -> None:
    sections = _sections(path)
    assert sections, f"{path.name}: no section headed '## <ID> · <question>'"
    for qid, text in sections.items():
        for what, needle in [
            ("hints", "<details><summary>Hints</summary>"),
            ("an answer box", f'<div class="course-answer" data-question="{qid}">'),
            ("a collapsed answer", "<details><summary>Answer</summary>"),
            ("a misconception or trap box", box_opening("warning")),
            ("a follow-up box", box_opening("tip")),
            ("its quiz", f'quiz("{qid}")'),
        ]:
            assert needle in text, f"{path.name}, {qid}: no {what} ({needle!r})"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_has_an_interactive_figure(path: Path) -> None:
    code = [c.source for c in _read(path).cells if c.cell_type == "code"]
    assert any("interactive_figure(" in source for source in code), (
        f"{path.name}: the pattern asks for at least one interactive figure")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_boxes_have_a_frame_and_a_bold_labelled_title_everywhere(path: Path) -> None:
    for cell in _read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for match in re.finditer(r'<div class="admonition (\w+)', cell.source):
            kind = match.group(1)
            assert kind in BOX_TITLES, f"{path.name}: unknown box kind {kind!r}"
            opening = box_opening(kind)
            assert cell.source.startswith(opening, match.start()), (
                f"{path.name}: a {kind} box does not open with tools.notebooks.box_opening: "
                f"{cell.source[match.start():match.start() + 120]!r}")
            title = cell.source[match.start() + len(opening):].split("</strong>")[0]
            assert title.startswith(BOX_TITLES[kind]), (
                f"{path.name}: a {kind} box's title must start with one of {BOX_TITLES[kind]}, "
                f"got {title[:40]!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_nbval_markers_are_tags_not_visible_comments(path: Path) -> None:
    for cell in _read(path).cells:
        if cell.cell_type == "code":
            assert "NBVAL_" not in cell.source, (
                f"{path.name}: readers see an nbval comment; use the cell tag "
                f"'nbval-check-output' instead: {cell.source[:60]!r}")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_has_stored_outputs_and_no_errors(path: Path) -> None:
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    executed = sum(1 for c in code if c.get("execution_count"))
    assert executed >= 0.9 * len(code), f"{path.name}: outputs not stored; run `make execute`"
    errors = [c.source[:60] for c in code for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: stored error outputs in cells {errors}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_details_blocks_render_markdown_everywhere(path: Path) -> None:
    """``<details>`` renders Markdown inside only with blank lines around the content."""
    for cell in _read(path).cells:
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        assert text.count("<details") == text.count("</details>"), f"unbalanced: {text[:80]}"
        for match in re.finditer(r"</summary>[ \t]*\n(?![ \t]*\n)", text):
            pytest.fail(f"{path.name}: no blank line after </summary> near: "
                        f"{text[match.start():match.start() + 60]!r}")
        for match in re.finditer(r"\S[ \t]*\n[ \t]*</details>", text):
            pytest.fail(f"{path.name}: no blank line before </details> near: "
                        f"{text[max(0, match.start() - 40):match.end()]!r}")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_is_in_sync_with_its_text_pair(path: Path) -> None:
    jupytext = pytest.importorskip("jupytext")
    pair = path.with_suffix(".py")
    assert pair.exists(), f"{path.name} has no py:percent pair; run `jupytext --set-formats`"
    text_cells = [c.source for c in jupytext.read(pair).cells]
    nb_cells = [c.source for c in _read(path).cells]
    assert text_cells == nb_cells, f"{path.name} and {pair.name} differ; run `jupytext --sync`"


def test_every_notebook_is_in_the_table_of_contents() -> None:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        entry = str(path.relative_to(ROOT).with_suffix(""))
        assert f"file: {entry}" in toc, f"{entry} is missing from _toc.yml"
