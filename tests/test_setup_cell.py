"""The setup cell makes a downloaded notebook run anywhere, or says clearly why it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

from tools.notebooks import ROOT, setup_cell_source

CHAPTER = ROOT / "chapters" / "01_self_attention.ipynb"


def _run_setup_cell(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the chapter's setup cell as a kernel would: the working folder first on sys.path."""
    code = ("import sys; sys.path.insert(0, ''); "
            "exec(compile(open(sys.argv[1]).read(), 'cell', 'exec'))")
    cell = cwd / "_setup_cell.py"
    cell.write_text(setup_cell_source(CHAPTER), encoding="utf-8")
    return subprocess.run([sys.executable, "-c", code, str(cell)], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=600)


def test_with_the_package_installed_it_does_nothing(tmp_path: Path) -> None:
    done = _run_setup_cell(tmp_path, LLM_COURSE_PIP_SPEC="/nonexistent/must-not-be-installed")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "", f"the setup cell printed {done.stdout!r} with everything installed"


@pytest.mark.parametrize("shadow", ["utils.py", "utils"])
def test_a_shadowing_utils_is_named_with_what_to_rename(tmp_path: Path, shadow: str) -> None:
    if shadow == "utils.py":
        (tmp_path / "utils.py").write_text("def helper():\n    return 1\n", encoding="utf-8")
    else:
        (tmp_path / "utils").mkdir()
        (tmp_path / "utils" / "__init__.py").write_text("", encoding="utf-8")
    done = _run_setup_cell(tmp_path, LLM_COURSE_PIP_SPEC="/nonexistent/must-not-be-installed")
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert str(tmp_path / shadow) in message and "rename it" in message, message
    assert "not the course package" in message


def _fresh_python(tmp_path: Path) -> str:
    """A new virtual environment: Python, pip, PyTorch and a Jupyter kernel, no course package."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    torch_version = __import__("torch").__version__.split("+")[0]
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"torch=={torch_version}", "ipykernel", "nbclient"], check=True, timeout=900,
                   capture_output=True)
    return python


def test_a_downloaded_chapter_runs_on_a_machine_with_only_python_and_pip(tmp_path: Path) -> None:
    """The reader's case: a fresh environment, one notebook, nothing else from the course."""
    python = _fresh_python(tmp_path)
    bare = subprocess.run([python, "-c", "import utils"], capture_output=True, cwd=tmp_path)
    assert bare.returncode != 0, "the fresh environment already has a `utils`"
    # The reader's machine would install from the repository URL; here, from this checkout.
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir),
                    str(ROOT)], check=True, timeout=600)
    wheel = next(wheel_dir.glob("*.whl"))
    work = tmp_path / "downloads"
    work.mkdir()
    shutil.copy(CHAPTER, work / CHAPTER.name)
    runner = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=600, kernel_name='python3',\n"
        "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "print(nb.cells[[c.cell_type for c in nb.cells].index('code')].outputs[0]['text'])\n"
    )
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
                   check=True, capture_output=True)
    done = subprocess.run([python, "-c", runner, str(work / CHAPTER.name), str(work)],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "LLM_COURSE_PIP_SPEC": str(wheel),
                               "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("Installing the course package on this machine: pip install"), (
        done.stdout)
    # the kernel really imports the freshly installed package, not this checkout
    check = subprocess.run([python, "-c", "import utils, sys; print(utils.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert str(tmp_path) in check.stdout, check.stdout
    nb = nbformat.read(work / CHAPTER.name, as_version=4)
    assert nb.cells, "the notebook came back empty"
