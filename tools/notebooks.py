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

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("chapters", "labs")
SETUP_MARKER = "# Course setup cell"


def repository_url() -> str:
    """Return ``repository.url`` from ``_config.yml`` (the single source of the URL)."""
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError("_config.yml has no repository.url")
    return match.group(1)


def pip_spec(path: Path | None = None) -> str:
    """What the setup cell installs on Colab: the package, plus otter-grader for labs."""
    if path is not None and "labs" in path.resolve().relative_to(ROOT).parts:
        return f"llm-internals-utils[labs] @ git+{repository_url()}"
    return f"git+{repository_url()}"


def setup_cell_source(path: Path | None = None) -> str:
    """The first code cell of the notebook at ``path``: installs ``utils`` on Colab only."""
    return (
        f"{SETUP_MARKER}: on Google Colab, install the course package `utils` from the\n"
        "# repository; anywhere else (your machine, JupyterLab, the CI) this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        "    subprocess.run(\n"
        f'        [sys.executable, "-m", "pip", "install", "-q", "{pip_spec(path)}"],\n'
        "        check=True,\n"
        "    )"
    )


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
        if code_cells[0].source == source:
            return False
        code_cells[0].source = source
    else:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["remove-cell"]
        # Place it after any leading markdown (the title), before the first code cell.
        index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(index, cell)
    nbformat.write(nb, path)
    return True


def execute(path: Path, timeout: int = 1200) -> None:
    """Run ``path`` top to bottom in a fresh kernel (cwd = its folder) and store the outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    )
    client.execute()
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["stamp", "execute"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or notebook_paths()
    for path in paths:
        if args.command == "stamp":
            print(("updated " if stamp(path) else "current ") + str(path.relative_to(ROOT)))
        else:
            print(f"executing {path.relative_to(ROOT)}", flush=True)
            execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
