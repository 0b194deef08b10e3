"""Static checks of the course notebooks (nbval executes them; these check their form)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.notebooks import ROOT, notebook_paths, repository_url, setup_cell_source

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


def test_setup_cell_installs_from_the_configured_repository() -> None:
    url = repository_url()
    assert url.startswith("https://github.com/")
    source = setup_cell_source(CHAPTERS[0])
    assert f"git+{url}" in source and '"google.colab" in sys.modules' in source


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
