"""The real labs, proven end to end (see ``tools/labs/`` and the book page ``instructors.md``).

- the generated student notebooks and autograders are current (``python -m tools.labs check``);
- every solution passes all its tests, hidden ones included, through the real grading command;
- every student notebook runs top to bottom and fails the tests of its unanswered questions;
- no student notebook, and nothing the website publishes, contains solution code, hidden
  tests or Otter's marker lines;
- visible tests never state the expected answer (in their messages or as a literal they
  compare with), every question has a hidden test, stored outputs show no expected values;
- grading sample submissions of lab 1 (full marks, partial, raises) gives the expected scores.

Sandboxing, tampering, timeouts, zips, resuming and feedback are proven on a tiny fixture lab
in ``tests/test_labs_grading.py``. The expensive parts here (executing notebooks) start
together, two at a time, the first time a test needs one.
"""

from __future__ import annotations

import ast
import concurrent.futures
import csv
import html
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml

from tools import labs
from tools.notebooks import ROOT

SOURCES = labs.lab_sources()
NAMES = [p.stem for p in SOURCES]
SAMPLE_LAB = "lab1_attention"
SAMPLE_TIMEOUT = 300  # seconds per sample submission
STUDENT_TIMEOUT = 600
MARKERS = re.compile(
    r"#\s*(BEGIN|END)\s+(SOLUTION|TESTS|QUESTION|PROMPT)\b|#\s*SOLUTION\s*$|"
    r"#\s*ASSIGNMENT\s+CONFIG|^\s*#\s*HIDDEN\b|hidden\s*=\s*True|'hidden':\s*True",
    flags=re.IGNORECASE | re.MULTILINE,
)


# ----------------------------------------------------------------------------------------------
# What must stay secret, read from the sources


def _norm(line: str) -> str:
    return " ".join(line.split())


def _lines(text: str) -> set[str]:
    return {_norm(ln) for ln in text.splitlines() if _norm(ln)}


def _unparsed(source: str) -> set[str]:
    """Lines of ``source`` as Otter writes test files (through ``ast.unparse``)."""
    try:
        return _lines(ast.unparse(ast.parse(source)))
    except SyntaxError:
        return set()


def secret_and_public_lines(source: Path) -> tuple[set[str], set[str]]:
    """Split the lines of an Otter Assign source into secret ones and public ones.

    Secret: solution code (inside ``# BEGIN/END SOLUTION`` or ending in ``# SOLUTION``),
    Markdown solutions, and the names and assertions of hidden tests (their set-up lines, such
    as ``torch.manual_seed(0)``, prove nothing). Public: everything a student sees.
    Returns ``(secret - public, public)``, keeping only lines long enough to be telling.
    """
    nb = nbformat.read(source, as_version=4)
    secret: set[str] = set()
    public: set[str] = set()
    block: list[str] = []
    for cell in nb.cells:
        text = cell.source
        match = re.match(r"#\s+(begin|end)\s+(question|solution|tests|prompt)", text, re.I)
        if cell.cell_type == "raw" and match:
            if match.group(1).lower() == "begin":
                block.append(match.group(2).lower())
            else:
                block.pop()
            continue
        if cell.cell_type == "raw":
            continue
        where = block[-1] if block else ""
        if where == "tests":
            body = "\n".join(text.splitlines()[1:]) if text.lstrip().startswith("#") else text
            hidden = bool(re.match(r"\s*#.*\bhidden\b", text, re.I))
            lines = _lines(body) | _unparsed(body)
            if hidden:  # what makes a test: its name and its assertions, not its set-up
                secret.update(ln for ln in lines if ln.startswith(("assert ", "def ")))
            else:
                public.update(lines)
        elif where == "solution" and cell.cell_type == "markdown":
            secret.update(_lines(text))
        elif cell.cell_type == "code":
            inside = False
            for line in text.splitlines():
                if re.match(r"\s*#\s*BEGIN SOLUTION", line):
                    inside = True
                elif re.match(r"\s*#\s*END SOLUTION", line):
                    inside = False
                elif inside:
                    secret.add(_norm(line))
                elif re.search(r"#\s*SOLUTION\s*$", line):
                    secret.add(_norm(re.sub(r"#\s*SOLUTION\s*$", "", line)))
                else:
                    public.add(_norm(line))
        else:
            public.update(_lines(text))
    telling = {s for s in secret - public if len(s) >= 16 and re.search(r"[A-Za-z]{3}", s)}
    return telling, public


_SPLIT = {p.stem: secret_and_public_lines(p) for p in SOURCES}
SECRETS = {name: secret for name, (secret, _) in _SPLIT.items()}
# A line secret in one lab may be public in another (a visible test of lab 1, say).
ALL_SECRETS = set().union(*SECRETS.values()) - set().union(*(pub for _, pub in _SPLIT.values()))


def leaks(text: str, secrets: set[str] = ALL_SECRETS) -> list[str]:
    """Marker lines and secret lines found in ``text`` (a notebook's JSON, HTML, Markdown)."""
    found = [f"marker: {m.group(0)!r}" for m in MARKERS.finditer(text)]
    found += [f"secret line: {line!r}" for line in sorted(_lines(text) & secrets)]
    return found


def notebook_text(path: Path) -> str:
    """Every source line and output text of a notebook, one per line."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


def html_text(path: Path) -> str:
    """Visible text of an HTML page (code highlighting splits lines into spans)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return html.unescape(re.sub(r"<[^>]+>", "", text))


# ----------------------------------------------------------------------------------------------
# Building and running (shared, started once)


@pytest.fixture(scope="session")
def built():
    """Every lab regenerated into a scratch folder under labs/ (as `check` does)."""
    labs.SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=labs.SCRATCH_DIR, prefix="test-"))
    fresh = tmp / "labs"
    fresh.mkdir()
    result = {b.name: b for b in labs.build_all(fresh, tmp / "work")}
    yield fresh, result, tmp
    shutil.rmtree(tmp, ignore_errors=True)


def _run_student(lab: labs.BuiltLab, work: Path) -> dict:
    """Execute the student notebook strictly, then run ALL its tests (hidden included)."""
    from nbclient import NotebookClient

    work.mkdir(parents=True)
    with zipfile.ZipFile(lab.autograder) as z:
        z.extractall(work / "autograder")
    tests = work / "autograder" / "tests"
    nb = nbformat.read(lab.student, as_version=4)
    questions = sorted(labs.question_points(lab.autograder))
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json as _json, otter as _otter\n"
        f"_all = _otter.Notebook(tests_dir={str(tests)!r})\n"
        f"_res = {{_q: _all.check(_q).score for _q in {questions!r}}}\n"
        'print("LAB-RESULTS" + _json.dumps(_res))'
    ))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    client = NotebookClient(nb, timeout=STUDENT_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    client.execute(env=env)  # raises CellExecutionError if any cell fails
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return {"errors": errors, "scores": json.loads(text.split("LAB-RESULTS", 1)[1])}


def _samples(lab: labs.BuiltLab, folder: Path) -> dict[str, str]:
    """Write the sample submissions; return what each is expected to score."""
    folder.mkdir(parents=True)
    solution = nbformat.read(lab.solution, as_version=4)
    nbformat.write(solution, folder / "full.ipynb")

    def edited(find: str, replace_with: str) -> nbformat.NotebookNode:
        nb = nbformat.read(lab.solution, as_version=4)
        cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(find))
        cell.source = replace_with
        return nb

    # partial: the last answer is wrong (no other question depends on it)
    nbformat.write(edited("def kv_cache_bytes(", "def kv_cache_bytes(*args, **kwargs):\n"
                          "    return 0"), folder / "partial.ipynb")
    # raises: an answer cell stops with an exception; the rest of the notebook still runs
    nbformat.write(edited("params_1_head =", 'raise RuntimeError("I gave up on q6")'),
                   folder / "raises.ipynb")
    return {"full": "all", "partial": "q9", "raises": "q6"}


@pytest.fixture(scope="session")
def runs(built):
    """Start every notebook execution, two at a time, longest first; return the futures."""
    fresh, by_name, tmp = built
    old_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # two kernels side by side, one core each
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    futures: dict[str, concurrent.futures.Future] = {}
    if SAMPLE_LAB in by_name:  # three lab 1 notebooks: the longest job
        samples = tmp / "samples"
        _samples(by_name[SAMPLE_LAB], samples)
        futures["samples"] = pool.submit(
            labs.grade, samples, SAMPLE_LAB, tmp / "samples.csv", SAMPLE_TIMEOUT, 1,
            by_name[SAMPLE_LAB].autograder, progress=False)
    # solutions of the labs other than the sample lab (whose "full" sample is its solution)
    for name in sorted(by_name, reverse=True):
        if name == SAMPLE_LAB:
            continue
        folder = tmp / "solutions" / name
        folder.mkdir(parents=True)
        shutil.copy(by_name[name].solution, folder / f"{name}.ipynb")
        futures[f"solution:{name}"] = pool.submit(
            labs.grade, folder, name, tmp / f"{name}-solution.csv", STUDENT_TIMEOUT, 1,
            by_name[name].autograder, progress=False)
    for name, lab in by_name.items():
        futures[f"student:{name}"] = pool.submit(_run_student, lab, tmp / "student" / name)
    yield futures, tmp
    pool.shutdown(wait=True, cancel_futures=True)
    if old_threads is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = old_threads


# ----------------------------------------------------------------------------------------------
# Generation


def test_there_are_labs() -> None:
    assert {"lab1_attention", "lab2_positions"} <= set(NAMES), NAMES


def test_generated_files_are_current(built) -> None:
    fresh, _, _ = built
    problems = labs.stale_files(fresh)
    assert not problems, "\n".join(problems) + "\nrun `python -m tools.labs generate`"


def test_check_notices_a_stale_student_notebook(built) -> None:
    fresh, by_name, tmp = built
    copy = tmp / "tampered" / "labs"
    shutil.copytree(fresh, copy)
    victim = copy / by_name[NAMES[0]].student.name
    nb = nbformat.read(victim, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("edited by hand"))
    nbformat.write(nb, victim)
    assert f"out of date: labs/{victim.name}" in labs.stale_files(copy)


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_student_notebook_is_self_contained(source: Path) -> None:
    """Visible tests ride in the grader cell (Colab cannot read notebook metadata tests)."""
    nb = nbformat.read(labs.STUDENT_DIR / source.name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    grader = [c for c in code if c.source.startswith(labs.GRADER_MARKER)]
    assert len(grader) == 1 and code.index(grader[0]) == 1, "the grader cell follows the setup"
    checks = {m for c in code for m in re.findall(r'grader\.check\("(\w+)"\)', c.source)}
    embedded = set(re.findall(r'^    "(\w+)": r?\'', grader[0].source, flags=re.M))
    autograder = labs.AUTOGRADER_DIR / f"{source.stem}-autograder.zip"
    assert checks == embedded == set(labs.question_points(autograder)), (checks, embedded)
    executed = [c for c in code if c.get("execution_count")]
    assert len(executed) == len(code), "student notebooks are stored as run once, blank"
    errors = [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, "a blank student notebook must run without errors"


def test_grader_cell_works_on_colab(monkeypatch, tmp_path) -> None:
    """Where Otter detects Colab (and no notebook file is on disk) the checks still run.

    Otter refuses notebook-metadata tests on Colab ("Test q1 does not exist"); the grader cell
    writes the visible tests to files first, which Otter accepts there.
    """
    import otter.check.utils
    import torch
    from otter.check.utils import IPythonInterpreter

    class ColabShell:  # what str(get_ipython()) looks like on Colab
        def __str__(self) -> str:
            return "<google.colab._shell.Shell object>"

    monkeypatch.setattr(otter.check.utils, "get_ipython", lambda: ColabShell())
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(labs.STUDENT_DIR / f"{SAMPLE_LAB}.ipynb", as_version=4)
    env: dict = {}
    exec(next(c.source for c in nb.cells if c.source.startswith(labs.GRADER_MARKER)), env)
    grader = env["grader"]
    assert grader.interpreter is IPythonInterpreter.COLAB
    env["causal_mask"] = lambda n: torch.ones(n, n, dtype=torch.bool).tril()
    assert grader.check("q2", env).passed_all
    env["causal_mask"] = lambda n: torch.ones(n, n, dtype=torch.bool)
    assert not grader.check("q2", env).passed_all


# ----------------------------------------------------------------------------------------------
# No leaks


def test_the_scanner_finds_what_it_looks_for(built) -> None:
    _, by_name, _ = built
    lab = by_name[SAMPLE_LAB]
    assert len(SECRETS[SAMPLE_LAB]) > 20
    assert leaks(notebook_text(lab.solution), SECRETS[SAMPLE_LAB]), "solution code not found"
    with zipfile.ZipFile(lab.autograder) as z:
        hidden = "\n".join(z.read(n).decode() for n in z.namelist() if n.startswith("tests/"))
    assert any(s.startswith("secret line") for s in leaks(hidden, SECRETS[SAMPLE_LAB]))
    assert leaks("x = 1  # SOLUTION\n# BEGIN TESTS\n@test_case(hidden=True)")


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_student_notebook_leaks_nothing(source: Path) -> None:
    found = leaks(notebook_text(labs.STUDENT_DIR / source.name), SECRETS[source.stem])
    found += leaks(notebook_text(labs.STUDENT_DIR / source.name), ALL_SECRETS)
    assert not found, "\n".join(found[:20])


def _test_cells(source: Path) -> list[tuple[bool, str]]:
    """``(hidden, code)`` of every test cell of an Otter Assign source."""
    nb = nbformat.read(source, as_version=4)
    block: list[str] = []
    found = []
    for cell in nb.cells:
        match = re.match(r"#\s+(begin|end)\s+(question|solution|tests|prompt)", cell.source, re.I)
        if cell.cell_type == "raw" and match:
            if match.group(1).lower() == "begin":
                block.append(match.group(2).lower())
            else:
                block.pop()
        elif cell.cell_type == "code" and block and block[-1] == "tests":
            found.append((bool(re.match(r"\s*#\s*HIDDEN\b", cell.source)), cell.source))
    return found


def _number(node: ast.AST) -> float | None:
    """The value of a constant arithmetic expression (``2 * 2 ** 20``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(
            node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _number(node.operand)
        return None if value is None else -value
    if isinstance(node, ast.BinOp):
        left, right = _number(node.left), _number(node.right)
        if left is not None and right is not None:
            try:
                return float(eval(compile(ast.Expression(node), "<expr>", "eval")))
            except (ArithmeticError, ValueError):
                return None
    return None


def _is_size(node: ast.AST) -> bool:
    """``len(x)``, ``x.ndim``, ``x.shape[0]``, ``x.size(1)``...: sizes may be stated."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Call):
        func = node.func
        return (isinstance(func, ast.Name) and func.id == "len") or (
            isinstance(func, ast.Attribute) and func.attr in ("size", "dim", "numel"))
    return isinstance(node, ast.Attribute) and node.attr in ("shape", "ndim")


STATES_A_VALUE = re.compile(r"\b(expected|should be|should equal)\s*:?\s*(-?\d|\{)", re.I)


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_visible_tests_never_state_the_expected_answer(source: Path) -> None:
    """A visible test tells what is wrong, not what the answer is (the student reads it)."""
    problems = []
    for hidden, code in _test_cells(source):
        if hidden:
            continue
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Assert) and node.msg is not None:
                message = ast.unparse(node.msg)
                if STATES_A_VALUE.search(message):
                    problems.append(f"message states a value: {message[:120]}")
            if isinstance(node, ast.Compare) and any(
                    isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                sides = [node.left, *node.comparators]
                # An answer is a variable or what a function returns; an element-wise tensor
                # comparison (`y[:, :3] == -100`) or a size states the task, not its answer.
                if any(_is_size(side) for side in sides) or not any(
                        isinstance(side, (ast.Name, ast.Call)) for side in sides):
                    continue
                values = [v for v in map(_number, sides) if v is not None and abs(v) >= 2]
                if values:
                    problems.append(f"compares with the literal answer {values[0]:g}: "
                                    f"{ast.unparse(node)[:120]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_every_question_has_a_hidden_test(source: Path) -> None:
    with zipfile.ZipFile(labs.AUTOGRADER_DIR / f"{source.stem}-autograder.zip") as z:
        tests = {Path(n).stem: z.read(n).decode() for n in z.namelist()
                 if re.fullmatch(r"tests/q\d+\.py", n)}
    without = sorted(q for q, text in tests.items() if "hidden=True" not in text)
    assert tests and not without, f"questions without a hidden test: {without}"


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_stored_outputs_show_no_expected_values(source: Path) -> None:
    """What the website shows: failing checks name no value, no placeholder is printed."""
    nb = nbformat.read(labs.STUDENT_DIR / source.name, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
            if 'grader.check("' not in cell.source:
                assert "Ellipsis" not in text, f"a stray placeholder is printed: {text[:200]}"
            else:
                found = STATES_A_VALUE.search(text)
                assert not found, f"a stored check states a value: {text[:300]}"
            if labs.VOLATILE_TAG not in cell.metadata.get("tags", []):
                timing = re.search(r"\d\s*(ms|s)\b(?!\w)|\btrained in\b", text)
                assert not timing, f"a timing is stored (tag the cell {labs.VOLATILE_TAG!r}): " \
                                   f"{text[:200]}"


def _grader_cell(lab: str) -> str:
    nb = nbformat.read(labs.STUDENT_DIR / f"{lab}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.source.startswith(labs.GRADER_MARKER))


def test_the_grader_cell_cleans_up_its_tests(tmp_path) -> None:
    """The visible tests go to a temporary folder that disappears with the kernel."""
    import subprocess
    import sys

    script = tmp_path / "grader.py"
    script.write_text(_grader_cell(SAMPLE_LAB) + "\nprint(_tests_dir)\n", encoding="utf-8")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    # what a killed kernel leaves (nbval kills its kernels): a folder named by a dead process,
    # and one of a live process (this one), which must stay
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left_behind = tmp_path / f"{SAMPLE_LAB}-tests-{dead}"
    alive = tmp_path / f"{SAMPLE_LAB}-tests-{os.getpid()}"
    left_behind.mkdir()
    alive.mkdir()
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          check=True)
    folder = Path(proc.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path and folder.name.startswith(f"{SAMPLE_LAB}-tests-")
    assert not folder.exists(), "the grader cell left its tests folder behind"
    if os.name == "posix":
        assert not left_behind.exists(), "the folder of a kernel that is gone was not removed"
        assert alive.exists(), "the folder of a running kernel was removed"


def test_lab1_q1_names_an_in_place_edit(monkeypatch, tmp_path) -> None:
    """Scaling q in place must be reported as such, not as a missing sqrt(d)."""
    import math

    import torch

    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(_grader_cell(SAMPLE_LAB), env)

    def in_place(q, k, v, mask=None):
        q /= math.sqrt(q.size(-1))
        weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        return weights @ v, weights

    env["attention"] = in_place
    result = env["grader"].check("q1", env)
    assert not result.passed_all and "in place" in str(result)
    assert "did you scale" not in str(result)
    env["attention"] = lambda q, k, v, mask=None: (
        torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), -1) @ v, None)
    assert "in place" not in str(env["grader"].check("q1", env))


def _toc_files() -> list[Path]:
    toc = ROOT / "_toc.yml"
    if not toc.exists():
        return []
    entries = re.findall(r"(?:file|root):\s*(\S+)", toc.read_text(encoding="utf-8"))
    paths = []
    for entry in entries:
        for suffix in ("", ".md", ".ipynb"):
            if (ROOT / f"{entry}{suffix}").is_file():
                paths.append(ROOT / f"{entry}{suffix}")
                break
    return paths


def test_the_website_publishes_no_secrets() -> None:
    """Pages in _toc.yml, and the built site when there is one, carry no secrets.

    A line that a chapter or the ``utils`` source teaches in the open (the masked softmax of
    attention, say) is not a leak of a lab's solution, so those lines count as public here;
    the student notebooks themselves are held to the strict list above.
    """
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    patterns = config.get("exclude_patterns", []) + (
        config.get("sphinx", {}).get("config", {}).get("exclude_patterns", []))
    for private in ("labs/src", "labs/autograder", "labs/_grading"):
        assert any(p.rstrip("/*") == private for p in patterns), (
            f"_config.yml: add {private!r} to exclude_patterns")
    pages = _toc_files()
    taught = set().union(*(
        _lines(notebook_text(p) if p.suffix == ".ipynb" else p.read_text("utf-8"))
        for p in pages if p.parent.name != "labs"), *(
        _lines(p.read_text("utf-8")) for p in (ROOT / "utils").glob("*.py")))  # API pages
    secrets = ALL_SECRETS - taught

    def leaks_here(text: str) -> list[str]:
        return leaks(text, secrets)

    for path in pages:
        rel = path.relative_to(ROOT).as_posix()
        assert not rel.startswith(("labs/src/", "labs/autograder/", "labs/_grading/")), rel
        text = notebook_text(path) if path.suffix == ".ipynb" else path.read_text("utf-8")
        found = leaks_here(text)
        if path.name == "instructors.md":  # the page that documents the marker lines
            found = [f for f in found if f.startswith("secret")]
        assert not found, f"{rel}: {found[:5]}"
    site = ROOT / "_build" / "html"
    for path in site.rglob("*") if site.is_dir() else []:
        if path.suffix in {".ipynb", ".py", ".txt", ".md"}:
            text = path.read_text(encoding="utf-8", errors="replace")
        elif path.suffix == ".html":
            text = html_text(path)
        else:
            continue
        if "instructors" in path.name:
            continue
        found = leaks_here(text)
        if path.suffix == ".html":  # prose may name a marker; only code lines count there
            found = [f for f in found if f.startswith("secret")]
        assert not found, f"{path.relative_to(site)}: {found[:5]}"
    if site.is_dir():
        assert not list(site.rglob("*autograder*.zip")), "an autograder was published"


# ----------------------------------------------------------------------------------------------
# Executing the notebooks


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return {Path(row["file"]).stem: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("name", [n for n in NAMES if n != SAMPLE_LAB])
def test_solution_gets_full_marks(runs, name: str) -> None:
    futures, tmp = runs
    (grade,) = futures[f"solution:{name}"].result()
    points = labs.question_points(labs.AUTOGRADER_DIR / f"{name}-autograder.zip")
    assert grade.status == "ok" and not grade.message, (grade.status, grade.message)
    assert grade.questions == pytest.approx(points), grade.questions
    print(f"{name} solution graded in {grade.seconds:.0f} s")


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_and_fails_every_question(runs, name: str) -> None:
    futures, _ = runs
    result = futures[f"student:{name}"].result()
    assert not result["errors"]
    passing = {q: s for q, s in result["scores"].items() if s > 0}
    assert not passing, f"unanswered questions that score points: {passing}"


def test_grading_sample_submissions(runs) -> None:
    futures, tmp = runs
    grades = {Path(g.file).stem: g for g in futures["samples"].result()}
    rows = _read_csv(tmp / "samples.csv")
    points = labs.question_points(labs.AUTOGRADER_DIR / f"{SAMPLE_LAB}-autograder.zip")
    total = sum(points.values())
    assert set(rows) == {"full", "partial", "raises"}
    assert list(next(iter(rows.values()))) == labs.columns(points)

    full = grades["full"]
    assert (full.status, full.score, full.message) == ("ok", total, ""), full
    assert full.seconds < SAMPLE_TIMEOUT
    assert full.questions == pytest.approx(points)
    print(f"{SAMPLE_LAB} solution graded in {full.seconds:.0f} s")

    for name, broken in (("partial", "q9"), ("raises", "q6")):
        g = grades[name]
        assert g.status == "ok" and g.score == total - points[broken], (name, g)
        assert g.questions[broken] == 0
        assert rows[name]["score"] == f"{total - points[broken]:g}"
    assert "RuntimeError: I gave up on q6" in grades["raises"].message
    assert grades["partial"].message == ""

    assert all(not g.review for g in grades.values()), [g.review for g in grades.values()]


def test_a_timeout_kills_processes_in_their_own_session() -> None:
    """Jupyter starts kernels in a new session: killing the process group would miss them."""
    import subprocess
    import sys

    import psutil

    grandchild = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
                  "'import time; time.sleep(600)'], start_new_session=True); "
                  "print(p.pid, flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", grandchild], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    pid = int(proc.stdout.readline())
    labs._kill_tree(proc.pid)
    proc.wait(timeout=10)
    proc.stdout.close()
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        status = "gone"
    assert status in ("gone", psutil.STATUS_ZOMBIE), f"the grandchild survived: {status}"
