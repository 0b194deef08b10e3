"""Generate the student notebooks and autograders from the Otter Assign sources, and check them.

``labs/src/<lab>.ipynb`` is an Otter Assign source notebook (solutions, visible and hidden
tests). :func:`build_lab` runs Otter Assign on it and writes

- ``labs/<lab>.ipynb``: the student notebook (published by the website, opened by Colab). Its
  grader cell carries the visible tests, because Otter cannot read notebook-metadata tests on
  Colab (a Colab kernel cannot see its own notebook file);
- ``labs/autograder/<lab>-autograder.zip``: the Otter autograder (all tests, hidden ones too),
  with an environment pinned like ``requirements.txt`` (Python 3.11, the CPU build of the same
  torch). The course package itself is pinned only in a *release* zip (:func:`release`), built
  from a clean checkout and naming its commit: a committed file cannot name the commit that
  contains it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from tools.notebooks import ROOT, SETUP_MARKER, execute, repository_url, stamp

from .common import (
    AUTOGRADER_DIR,
    BUILD_DIR,
    GRADER_MARKER,
    STUDENT_DIR,
    lab_sources,
    natural_key,
)

# Zip entries get a fixed date so that regenerating an unchanged lab gives identical bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
PYTHON_VERSION = "3.11"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# A cell tagged like this shows output that changes from run to run (timings): the stored
# notebook gets a note instead, so that regenerating an unchanged lab changes nothing
# (see tidy_outputs).
VOLATILE_TAG = "volatile-output"
VOLATILE_NOTE = ("(Timings are not stored in this notebook: they change from machine to machine "
                 "and from run to run. Run the cell to measure yours.)\n")


@dataclass
class BuiltLab:
    """Paths of what :func:`build_lab` wrote for one lab."""

    name: str
    student: Path
    autograder: Path
    solution: Path  # the student notebook with the solutions in; left in the work folder


def _assignment_config(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, dict]:
    for cell in nb.cells:
        if cell.cell_type == "raw" and re.match(r"#\s+assignment\s+config", cell.source, re.I):
            return cell, yaml.safe_load(cell.source) or {}
    raise ValueError("no '# ASSIGNMENT CONFIG' raw cell")


def _pins() -> dict[str, str]:
    """``name -> requirement line`` for every exact pin in ``requirements.txt``."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower()] = f"{match.group(1)}=={match.group(3)}"
    return pins


def _package_dependencies() -> list[str]:
    """Names of the course package's dependencies (``pyproject.toml``)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0] for dep in project["dependencies"]]


def autograder_requirements(commit: str | None = None) -> list[str]:
    """What a container grading with the autograder installs (Otter adds itself, pinned).

    Every dependency of the course package at the version of ``requirements.txt``, torch as its
    CPU build (a few hundred MB instead of the multi-GB CUDA build), and, given ``commit``, the
    course package from that commit of the repository.
    """
    pins = _pins()
    lines = [f"--extra-index-url {TORCH_CPU_INDEX}"]
    for name in _package_dependencies():
        pin = pins.get(name.lower())
        if pin is None:
            raise ValueError(f"requirements.txt has no exact pin (name==version) for {name!r}, "
                             "a dependency of the course package")
        if name.lower() == "torch" and "+" not in pin:
            pin += "+cpu"
        lines.append(pin)
    if commit is not None:
        lines.append(f"llm-internals-utils @ git+{repository_url()}@{commit}")
    return lines


def _prepare_source(source: Path, work: Path, commit: str | None = None) -> Path:
    """Copy ``source`` into ``work`` with the grading environment added to its config."""
    nb = nbformat.read(source, as_version=4)
    cell, config = _assignment_config(nb)
    if config.get("name") != source.stem:
        raise ValueError(
            f"{source.name}: the assignment config must say 'name: {source.stem}' (the name "
            f"checks that a submission is graded by its own lab's autograder), got "
            f"{config.get('name')!r}"
        )
    if not (config.get("tests") or {}).get("files"):
        raise ValueError(
            f"{source.name}: the assignment config needs 'tests: files: true' (tools.labs puts "
            "the visible test files into the student notebook's grader cell)"
        )
    # What a container (Gradescope, `otter grade`) installs; local grading uses this venv.
    extra: dict = {}
    if "python_version" not in config:
        extra["python_version"] = PYTHON_VERSION
    if "requirements" not in config:
        extra["requirements"] = autograder_requirements(commit)
    if extra:
        cell.source = cell.source.rstrip("\n") + "\n" + yaml.safe_dump(extra, sort_keys=False)
    path = work / source.name
    nbformat.write(nb, path)
    return path


def _grader_cell_source(name: str, tests_dir: Path) -> str:
    """The grader cell of a student notebook: writes the visible tests, creates ``grader``."""
    entries = []
    for test in sorted(tests_dir.glob("*.py"), key=lambda p: natural_key(p.stem)):
        text = test.read_text(encoding="utf-8")
        literal = f"r'''{text}'''" if "'''" not in text and not text.endswith("\\") else repr(text)
        entries.append(f'    "{test.stem}": {literal},\n')
    return (
        f"{GRADER_MARKER}: run this cell, then check an answer with `grader.check(\"q1\")`\n"
        "# Generated by `python -m tools.labs generate`: edit labs/src, not this cell.\n"
        "# The visible tests travel inside this cell, so the notebook works on its own anywhere\n"
        "# (JupyterLab, VS Code, Colab); the hidden tests run only when your work is graded.\n"
        "import atexit\n"
        "import os\n"
        "import shutil\n"
        "import tempfile\n"
        "from pathlib import Path\n"
        "\n"
        "import otter\n"
        "\n"
        "_VISIBLE_TESTS = {\n" + "".join(entries) + "}\n"
        "# One folder per kernel process, removed when the kernel exits; a kernel that was killed\n"
        "# cannot clean up, so the next run removes the folders of kernels that are gone.\n"
        f'for _old in Path(tempfile.gettempdir()).glob("{name}-tests-*"):\n'
        '    if os.name == "posix" and _old.name.rpartition("-")[2].isdigit():\n'
        "        try:\n"
        '            os.kill(int(_old.name.rpartition("-")[2]), 0)\n'
        "        except ProcessLookupError:\n"
        "            shutil.rmtree(_old, ignore_errors=True)\n"
        "        except OSError:\n"
        "            pass  # alive, or not ours to check\n"
        f'_tests_dir = Path(tempfile.gettempdir()) / f"{name}-tests-{{os.getpid()}}"\n'
        "_tests_dir.mkdir(exist_ok=True)\n"
        "atexit.register(shutil.rmtree, _tests_dir, ignore_errors=True)\n"
        "for _question, _test in _VISIBLE_TESTS.items():\n"
        '    (_tests_dir / f"{_question}.py").write_text(_test, encoding="utf-8")\n'
        "grader = otter.Notebook(tests_dir=str(_tests_dir))"
    )


def _student_notebook(otter_nb: Path, tests_dir: Path, name: str) -> nbformat.NotebookNode:
    """Otter's student notebook with its init cell replaced by the self-contained grader cell."""
    nb = nbformat.read(otter_nb, as_version=4)
    # Otter's init cell gives way to the grader cell; the source's setup cell is re-added
    # first by ``stamp`` in :func:`_finalise`.
    nb.cells = [
        c for c in nb.cells
        if not (c.cell_type == "code" and c.source.startswith(("# Initialize Otter", SETUP_MARKER)))
    ]
    grader = nbformat.v4.new_code_cell(_grader_cell_source(name, tests_dir))
    # Folded in Jupyter and Colab, absent from the website: it is plumbing, not content.
    grader.metadata.update(
        {"tags": ["remove-cell"], "jupyter": {"source_hidden": True}, "cellView": "form",
         "deletable": False, "editable": False}
    )
    # After the title (and any leading Markdown), before the first code cell.
    index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(index, grader)
    return nb


def _finalise(path: Path) -> None:
    """Add the course setup cell (``tools.notebooks.stamp``) and make the cell ids stable."""
    stamp(path)
    nb = nbformat.read(path, as_version=4)
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    nbformat.write(nb, path)


def _rezip(src: Path, dest: Path, extra: dict[str, str] | None = None) -> None:
    """Copy a zip with sorted entries and fixed dates (Otter's has timestamps in it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        entries = {info.filename: (info.external_attr, zin.read(info)) for info in zin.infolist()}
        entries.update({name: (0o644 << 16, text.encode()) for name, text in (extra or {}).items()})
        for filename in sorted(entries):
            fixed = zipfile.ZipInfo(filename, date_time=ZIP_DATE)
            fixed.external_attr = entries[filename][0]
            fixed.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(fixed, entries[filename][1])


def build_lab(source: Path, dest: Path, work: Path, commit: str | None = None) -> BuiltLab:
    """Run Otter Assign on ``source``; write the student notebook and autograder under ``dest``.

    Args:
        source: An Otter Assign source notebook, ``labs/src/<lab>.ipynb``.
        dest: Folder of the student notebook; the autograder goes to ``dest/autograder``. Must
            lie under ``ROOT/labs`` (the setup cell of a lab depends on where it is).
        work: An empty scratch folder for Otter's output (kept: it holds the solution notebook).
        commit: Pin the course package in the autograder's environment to this commit
            (release builds only; see :func:`release`).

    Returns:
        The paths written.
    """
    from otter.assign import main as otter_assign

    name = source.stem
    master = _prepare_source(source, work, commit)
    result = work / "dist"
    saved, tempfile.tempdir = tempfile.tempdir, str(work)  # Otter leaves temporary folders
    try:
        otter_assign(str(master), str(result), no_pdfs=True, no_run_tests=True)
    finally:
        tempfile.tempdir = saved

    student = dest / f"{name}.ipynb"
    tests = result / "student" / "tests"
    nbformat.write(_student_notebook(result / "student" / f"{name}.ipynb", tests, name), student)
    _finalise(student)
    # The same notebook with the solutions in: what a student with full marks hands in.
    solution = work / f"{name}-solution.ipynb"
    nbformat.write(_student_notebook(result / "autograder" / f"{name}.ipynb", tests, name),
                   solution)

    (dest / "autograder").mkdir(parents=True, exist_ok=True)
    zips = list((result / "autograder").glob(f"{name}-autograder_*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"expected one autograder zip from Otter Assign, found {zips}")
    autograder = dest / "autograder" / f"{name}-autograder.zip"
    _rezip(zips[0], autograder, {"course_commit.txt": f"{commit}\n"} if commit else None)
    return BuiltLab(name, student, autograder, solution)


def generated_paths(dest: Path = STUDENT_DIR) -> list[Path]:
    """The generated files currently under ``dest`` (student notebooks and autograders)."""
    return sorted(dest.glob("lab*.ipynb")) + sorted((dest / "autograder").glob("*.zip"))


def _select(names: list[str] | None) -> list[Path]:
    sources = lab_sources()
    if not names:
        return sources
    known = {p.stem: p for p in sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no source labs/src/<name>.ipynb for {unknown}; the labs are "
                         f"{sorted(known)}")
    return [known[n] for n in names]


def build_all(dest: Path, work: Path, names: list[str] | None = None) -> list[BuiltLab]:
    """Build every lab of ``labs/src`` (or those named) into ``dest``; work folders in ``work``."""
    built = []
    for source in _select(names):
        lab_work = work / source.stem
        lab_work.mkdir(parents=True)
        built.append(build_lab(source, dest, lab_work))
    return built


def tidy_outputs(path: Path) -> bool:
    """Make stored outputs independent of the run; return True if the file changed.

    Consecutive stream outputs are merged (how a kernel splits its stdout into messages
    depends on timing), and the outputs of cells tagged ``volatile-output`` become a note.
    """
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if VOLATILE_TAG in cell.metadata.get("tags", []):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=VOLATILE_NOTE)]
            continue
        merged: list = []
        for out in cell.outputs:
            if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                    and merged[-1].name == out.name):
                merged[-1].text += out.text
            else:
                merged.append(out)
        cell.outputs = merged
    if nbformat.writes(nb) == before:
        return False
    nbformat.write(nb, path)
    return True


def execute_sources(names: list[str] | None = None) -> None:
    """Re-run the sources (with their solutions) in place; volatile outputs become a note."""
    for source in _select(names):
        print(f"executing {source.relative_to(ROOT)}", flush=True)
        execute(source)
        tidy_outputs(source)


def generate(names: list[str] | None = None) -> list[BuiltLab]:
    """Regenerate ``labs/lab*.ipynb`` and ``labs/autograder/*.zip``.

    With ``names``, only those labs; without, every lab, and generated files whose source is
    gone are deleted.
    """
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as work:
        built = build_all(STUDENT_DIR, Path(work), names)
    for lab in built:
        # Run the blank notebook once, so that the website, GitHub and Colab show what a
        # student sees first: the demo outputs, and every check still failing.
        print(f"executing {lab.student.relative_to(ROOT)}", flush=True)
        execute(lab.student)
        tidy_outputs(lab.student)
    if not names:
        keep = {b.student for b in built} | {b.autograder for b in built}
        for path in generated_paths():
            if path not in keep:
                path.unlink()
                print(f"removed {path.relative_to(ROOT)} (its source is gone)")
    return built


def _zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def _cells(path: Path) -> list[tuple]:
    """What a notebook says, without what running it adds (outputs, counts, timings)."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.get("id"), c.source, c.metadata.get("tags", [])) for c in nb.cells]


def _same(generated: Path, committed: Path) -> bool:
    if not committed.exists():
        return False
    if generated.suffix == ".zip":
        # Compare what is inside: compressed bytes may differ between zlib builds.
        return _zip_contents(generated) == _zip_contents(committed)
    # The committed student notebook was executed after generation (see generate()).
    return _cells(generated) == _cells(committed)


def stale_files(fresh: Path, names: list[str] | None = None) -> list[str]:
    """Compare the files generated into ``fresh`` with the committed ones; describe each stale one.

    Args:
        fresh: A folder under ``labs/`` into which :func:`build_all` generated everything.
        names: Only these labs were generated (then orphans are not looked for).

    Returns:
        One line per missing, out-of-date or orphaned generated file (empty: all current).
    """
    problems = []
    fresh_rel = {p.relative_to(fresh) for p in generated_paths(fresh)}
    for rel in sorted(fresh_rel):
        committed = STUDENT_DIR / rel
        if not committed.exists():
            problems.append(f"missing: labs/{rel}")
        elif not _same(fresh / rel, committed):
            problems.append(f"out of date: labs/{rel}")
    if not names:
        for path in generated_paths():
            if path.relative_to(STUDENT_DIR) not in fresh_rel:
                problems.append(f"orphaned (no source in labs/src): {path.relative_to(ROOT)}")
    return problems


def check(names: list[str] | None = None) -> list[str]:
    """Regenerate the labs in a scratch folder and return :func:`stale_files`' findings."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix="check-") as tmp:
        fresh = Path(tmp) / "labs"
        fresh.mkdir()
        build_all(fresh, Path(tmp) / "work", names)
        return stale_files(fresh, names)


def solution_notebook(lab: str, out: Path) -> Path:
    """Write the full-marks notebook of ``lab`` (its student notebook with the solutions in).

    It is what a perfect student hands in: grade it to smoke-test an autograder.
    """
    (source,) = _select([lab])
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix="solution-") as tmp:
        dest, work = Path(tmp) / "labs", Path(tmp) / "work"
        dest.mkdir()
        work.mkdir()
        built = build_lab(source, dest, work)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(built.solution.read_bytes())
    return out


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def release(lab: str, out_dir: Path) -> Path:
    """Build a container-ready autograder whose environment installs the course at HEAD.

    Refuses a checkout with changes (committed or not, every file that the autograder or the
    package depends on must be the commit's), so that the zip and the commit it names agree.

    Returns:
        The zip written, ``out_dir/<lab>-autograder-<commit[:12]>.zip``.
    """
    (source,) = _select([lab])
    changed = _git("status", "--porcelain", "--", "utils", "labs/src", "tools", "pyproject.toml",
                   "requirements.txt", "_config.yml")
    if changed:
        raise RuntimeError("a release autograder must be built from a clean checkout (it "
                           "names the commit); these files differ from HEAD:\n" + changed)
    commit = _git("rev-parse", "HEAD")
    if not _git("branch", "-r", "--contains", commit):
        print(f"WARNING: no remote branch contains {commit[:12]} (as of the last fetch): push it "
              f"to {repository_url()} before a container tries to install it")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix="release-") as tmp:
        dest = Path(tmp) / "labs"
        (Path(tmp) / "work").mkdir()
        dest.mkdir()
        built = build_lab(source, dest, Path(tmp) / "work", commit=commit)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{lab}-autograder-{commit[:12]}.zip"
        out.write_bytes(built.autograder.read_bytes())
    return out
