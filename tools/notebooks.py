"""Keep the course notebooks consistent: the Colab setup cell, and re-execution in place.

Usage::

    python -m tools.notebooks stamp            # write the current setup cell into every notebook
    python -m tools.notebooks execute [PATHS]  # re-run notebooks top to bottom, store outputs

The repository URL lives in one place, ``_config.yml`` (``repository.url``); the setup cell
is generated from it, and ``tests/test_notebooks.py`` fails when a notebook carries a stale one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from string import Template

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("chapters", "labs")
SETUP_MARKER = "# Course setup cell"

# The boxes of a chapter (misconception, trap, correction, follow-up): an admonition on the
# website, and a framed box with a bold title in JupyterLab, Colab and GitHub, which ignore
# the website's CSS classes. Every box opens with ``box_opening(kind)``.
BOX_COLOURS = {"warning": "#d97706", "error": "#c2410c", "tip": "#15803d"}
BOX_TITLES = {"warning": ("⚠️ Misconception:", "⚠️ Trap:"), "error": ("✏️ Correction",),
              "tip": ("Follow-up:",)}


def box_opening(kind: str) -> str:
    """The first two lines of a box of ``kind`` (warning, error or tip), title to follow."""
    colour = BOX_COLOURS[kind]
    return (f'<div class="admonition {kind} course-box" style="border: 1px solid {colour}; '
            f'border-left: 6px solid {colour}; border-radius: 4px; padding: 0.1em 1em; '
            f'margin: 1em 0;">\n<p class="admonition-title"><strong>')


# The setup cell: $spec is what pip installs, $otter_check adds otter-grader in labs.
SETUP_CELL = Template("""\
$marker: makes the course package `utils` importable here (Colab, JupyterLab,
# your own machine), installing it with pip the first time; otherwise it does nothing.
import importlib.util
import os
import subprocess
import sys

_spec = os.environ.get("LLM_COURSE_PIP_SPEC", "$spec")


def _course_ready():
    \"\"\"Import the course package; stop with advice if another `utils` hides it.\"\"\"
    sys.modules.pop("utils", None)
    try:
        import utils
    except ModuleNotFoundError:
        return False
    if getattr(utils, "__course__", None) != "llm-internals":
        where = getattr(utils, "__file__", None) or list(getattr(utils, "__path__", []))
        raise RuntimeError(
            f"`import utils` finds {where}, which is not the course package. If it is "
            "your own file or folder, rename it (e.g. to my_utils.py) and run this cell "
            "again; if it is an installed package, run `pip uninstall utils`."
        )
    return True


if not _course_ready()$otter_check:
    _where = "Google Colab" if "google.colab" in sys.modules else "this machine"
    print(f"Installing the course package on {_where}: pip install {_spec!r} (once, ~1 min)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", _spec], check=True)
    importlib.invalidate_caches()
    _course_ready()""")


def repository_url() -> str:
    """Return ``repository.url`` from ``_config.yml`` (the single source of the URL)."""
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError("_config.yml has no repository.url")
    return match.group(1)


def repository_branch() -> str:
    """Return ``repository.branch`` from ``_config.yml`` (default ``main``)."""
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    match = re.search(r"^repository:\s*\n(?:\s+\w+:.*\n)*?\s+branch:\s*(\S+)", text,
                      flags=re.MULTILINE)
    return match.group(1) if match else "main"


def is_lab(path: Path | None) -> bool:
    """True for a lab notebook (it also needs otter-grader)."""
    return path is not None and "labs" in path.resolve().relative_to(ROOT).parts


def pip_spec(path: Path | None = None) -> str:
    """What the setup cell installs: the package from the repository's branch archive.

    An archive URL needs only pip (no git). Labs add the ``labs`` extra (otter-grader).
    """
    extra = "[labs]" if is_lab(path) else ""
    archive = f"{repository_url()}/archive/refs/heads/{repository_branch()}.zip"
    return f"llm-internals-utils{extra} @ {archive}"


def setup_cell_source(path: Path | None = None) -> str:
    """The first code cell of the notebook at ``path``.

    It installs the course package (and otter-grader in labs) when missing, on Colab or on
    any machine with Python and pip, says so in one line, and stops with a clear message when
    a file or folder named ``utils`` hides the package. ``LLM_COURSE_PIP_SPEC`` overrides what
    is installed (a local checkout, a wheel, a mirror).
    """
    otter_check = ' or importlib.util.find_spec("otter") is None' if is_lab(path) else ""
    return SETUP_CELL.substitute(marker=SETUP_MARKER, spec=pip_spec(path), otter_check=otter_check)


def notebook_paths() -> list[Path]:
    """All course notebooks (chapters and published labs), sorted."""
    paths: list[Path] = []
    for folder in NOTEBOOK_DIRS:
        for path in sorted((ROOT / folder).rglob("*.ipynb")):
            parts = set(path.relative_to(ROOT).parts)
            if ".ipynb_checkpoints" in parts or "src" in parts or "_grading" in parts:
                continue
            paths.append(path)
    return paths


def stamp(path: Path) -> bool:
    """Put the current setup cell first in ``path``; return True if the file changed."""
    nb = nbformat.read(path, as_version=4)
    source = setup_cell_source(path)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if code_cells and code_cells[0].source.startswith(SETUP_MARKER):
        cell = code_cells[0]
        if (cell.source == source and "remove-cell" in cell.metadata.get("tags", [])
                and cell.metadata.get("jupyter", {}).get("source_hidden")):
            return False
        cell.source = source
        # The website needs no install step: hide the cell there (Colab ignores the tag).
        cell.metadata["tags"] = sorted({*cell.metadata.get("tags", []), "remove-cell"})
    else:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["remove-cell"]
        # Place it after any leading markdown (the title), before the first code cell.
        index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(index, cell)
    # Folded in JupyterLab: plumbing, one click away for the curious.
    cell.metadata["jupyter"] = {**cell.metadata.get("jupyter", {}), "source_hidden": True}
    nbformat.write(nb, path)
    return True


def execute(path: Path, timeout: int = 1200) -> None:
    """Run ``path`` top to bottom in a fresh kernel (cwd = its folder) and store the outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # timestamps in the metadata would change on every run
        # Interactive figures store a static rendering beside the live widget; saved widget
        # state would make the website and nbconvert prefer a widget that cannot run there.
        store_widget_state=False,
        resources={"metadata": {"path": path.parent}},
    )
    client.execute()
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["stamp", "execute"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    default = notebook_paths()
    if args.command == "execute":
        # Student labs are generated by `python -m tools.labs generate` and ship without
        # outputs, so that a student starts from a clean notebook.
        default = [p for p in default if p.parent.name != "labs"]
    paths = [p.resolve() for p in args.paths] or default
    for path in paths:
        if args.command == "stamp":
            print(("updated " if stamp(path) else "current ") + str(path.relative_to(ROOT)))
        else:
            print(f"executing {path.relative_to(ROOT)}", flush=True)
            execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
