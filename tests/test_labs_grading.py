"""Grading a class, proven on a tiny fixture lab (``tests/lab_fixture.py``, seconds per notebook).

- malicious submissions are contained (with bubblewrap) or at least flagged for review (with
  and without it): writing outside the scratch folder, reading the repository's solutions,
  a detached process that outlives grading, a forged score;
- blank notebooks score 0 and the solution full marks; an infinite loop costs the time limit;
- subfolders (one per student) and zips are graded, unsafe zips refused; an interrupted run
  resumes where it stopped; feedback files name the failed tests and never show hidden ones;
- the smaller pieces: the tamper scanner, safe unzipping, killing by token, the summary check.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import lab_fixture
import nbformat
import psutil
import pytest

from tools import labs
from tools.labs import grading, sandbox, submissions, tamper
from tools.notebooks import ROOT

NAME = lab_fixture.NAME
TIMEOUT = 30  # seconds per fixture notebook (a normal one takes about 5)
SOLUTIONS_FILE = ROOT / "labs" / "src" / "lab1_attention.ipynb"
BWRAP = sandbox.probe()
SANDBOXES = [
    pytest.param("bwrap", marks=pytest.mark.skipif(
        not BWRAP.available, reason=f"no working bubblewrap here ({BWRAP.reason}); "
        "apt-get install bubblewrap")),
    "none",
]


@pytest.fixture(scope="session")
def fixture_lab():
    """The fixture lab built once (under labs/_grading, as the student notebooks must be)."""
    labs.BUILD_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=labs.BUILD_DIR, prefix="test-fixture-"))
    source = lab_fixture.write_source(tmp / "src")
    dest, work = tmp / "labs", tmp / "work"
    dest.mkdir()
    work.mkdir()
    yield labs.build_lab(source, dest, work)
    shutil.rmtree(tmp, ignore_errors=True)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _with_cells(path: Path, *sources: str, at: int | str) -> nbformat.NotebookNode:
    """``path`` with code cells inserted at index ``at``, or after the cell starting with it.

    (A check cell grades its question when it runs: later cells cannot change that score.)
    """
    nb = nbformat.read(path, as_version=4)
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    index = at if isinstance(at, int) else 1 + next(
        i for i, c in enumerate(nb.cells) if c.source.startswith(at))
    nb.cells[index:index] = cells
    return nb


def _malicious(lab: labs.BuiltLab, folder: Path, marker: str, escape: Path) -> None:
    """Write the sample submissions; the malicious ones start from the blank notebook."""
    folder.mkdir(parents=True)
    shutil.copy(lab.solution, folder / "full.ipynb")
    shutil.copy(lab.student, folder / "blank.ipynb")
    nbformat.write(_with_cells(lab.student, (
        # 1. write outside the scratch folder
        "try:\n"
        f"    open({str(escape)!r}, 'w').write('escaped')\n"
        "except OSError as error:\n"
        "    print('write refused:', error)\n"
        # 2. read the repository's solutions, and use them to score q2
        "try:\n"
        f"    stolen = open({str(SOLUTIONS_FILE)!r}).read()\n"
        "except OSError:\n"
        "    stolen = ''\n"
        "answer = 42 if 'BEGIN SOLUTION' in stolen else ...\n"
        # 3. a detached process (its parent exits, it starts a session of its own)
        "import subprocess, sys\n"
        "sleeper = 'import subprocess, sys; subprocess.Popen([sys.executable, \"-c\", "
        f"\"import time; time.sleep(300)\", \"{marker}\"], start_new_session=True)'\n"
        "subprocess.run([sys.executable, '-c', sleeper], check=True)"), at="answer ="),
        folder / "escape.ipynb")
    nbformat.write(_with_cells(lab.student, (
        # 4. a forged score: every test "passes" because the grader's test runner is replaced
        "import otter.test_files.exception_test as runner\n"
        "from otter.test_files.abstract_test import TestCaseResult\n"
        "def forged(self, global_environment):\n"
        "    self.test_case_results = [TestCaseResult(test_case=tc, "
        "message='ok', passed=True) for tc in self.test_cases]\n"
        "runner.ExceptionTestFile.run = forged"), at=2), folder / "forge.ipynb")
    nbformat.write(_with_cells(lab.solution, "import time\n\nwhile True:\n    time.sleep(0.1)",
                               at=2), folder / "loop.ipynb")
    (folder / "garbage.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n not a notebook \xff\xfe")


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, fixture_lab, tmp_path_factory):
    """The sample submissions graded once per sandbox mode."""
    mode = request.param
    tmp = tmp_path_factory.mktemp(f"graded-{mode}")
    marker = f"detached-{uuid.uuid4().hex}"
    escape = Path(tempfile.gettempdir()) / f"escaped-{uuid.uuid4().hex}.txt"
    _malicious(fixture_lab, tmp / "subs", marker, escape)
    start = time.perf_counter()
    grades = labs.grade(tmp / "subs", NAME, tmp / "scores.csv", TIMEOUT, 2,
                        fixture_lab.autograder, sandbox=mode, progress=False)
    seconds = time.perf_counter() - start
    alive = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    escaped = escape.exists()
    escape.unlink(missing_ok=True)
    for proc in alive:  # clean up before asserting anything
        proc.kill()
    yield {"mode": mode, "grades": {Path(g.file).stem: g for g in grades}, "alive": alive,
           "escaped": escaped, "tmp": tmp, "seconds": seconds}


def test_blank_scores_zero_and_solution_full_marks(graded, fixture_lab) -> None:
    points = labs.question_points(fixture_lab.autograder)
    full, blank = graded["grades"]["full"], graded["grades"]["blank"]
    assert (full.status, full.score, full.questions) == ("ok", sum(points.values()), points)
    assert (blank.status, blank.score) == ("ok", 0)
    assert not full.review and not blank.review, "the lab's own cells must not be flagged"
    assert full.sandbox == ("bwrap" if graded["mode"] == "bwrap" else "NONE (unprotected)")


def test_an_infinite_loop_costs_the_time_limit(graded) -> None:
    loop = graded["grades"]["loop"]
    assert (loop.status, loop.score) == ("timeout", 0)
    assert f"time limit of {TIMEOUT} s" in loop.message
    assert loop.seconds < TIMEOUT + 30, "the timed-out notebook was not stopped promptly"
    garbage = graded["grades"]["garbage"]
    assert (garbage.status, garbage.score) == ("invalid", 0)
    assert garbage.message.startswith("not a valid notebook"), garbage.message


def test_no_process_survives_grading(graded) -> None:
    assert not graded["alive"], f"a detached process outlived grading: {graded['alive']}"


def test_escapes_are_contained_by_the_sandbox_and_flagged(graded) -> None:
    g = graded["grades"]["escape"]
    assert g.status == "ok"
    for reason in ("starts processes (subprocess)", "uses an absolute path", "writes files"):
        assert reason in g.review, (reason, g.review)
    if graded["mode"] == "bwrap":
        assert not graded["escaped"], "the sandbox let a write outside the scratch folder through"
        assert g.questions["q2"] == 0, "the sandbox let the submission read the solutions"
    else:  # nothing contains it: the flag is all there is
        assert graded["escaped"] and g.questions["q2"] == 1


def test_a_forged_score_is_flagged(graded) -> None:
    g = graded["grades"]["forge"]
    assert "imports the grader (otter)" in g.review and "patches runner" in g.review, g.review
    rows = {r["file"]: r for r in _csv_rows(graded["tmp"] / "scores.csv")}
    assert rows["forge.ipynb"]["review"] == g.review


def test_feedback_names_failures_and_hides_hidden_tests(graded, fixture_lab) -> None:
    folder = graded["tmp"] / "scores-feedback"
    blank = (folder / "blank.md").read_text(encoding="utf-8")
    assert "double returned None" in blank and "`q1 - 1` (visible)" in blank
    assert "`q1 - 2` (hidden): failed" in blank
    assert lab_fixture.HIDDEN_MARKER not in blank and "x + x" not in blank
    assert "every test passed" in (folder / "full.md").read_text(encoding="utf-8")
    assert "time limit" in (folder / "loop.md").read_text(encoding="utf-8")
    for path in folder.iterdir():  # hidden tests and review reasons stay with the instructor
        text = path.read_text(encoding="utf-8")
        assert lab_fixture.HIDDEN_MARKER not in text and "patches" not in text, path.name


# ----------------------------------------------------------------------------------------------
# A class export: subfolders, zips, resuming


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def test_a_class_export_is_graded_and_resumed(fixture_lab, tmp_path) -> None:
    solution, blank = fixture_lab.solution.read_bytes(), fixture_lab.student.read_bytes()
    root = tmp_path / "class"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "Lab 0.ipynb").write_bytes(solution)
    (root / "alice" / ".ipynb_checkpoints").mkdir()
    (root / "carol.ipynb").write_bytes(solution)
    _zip(root / "bob.zip", {"bob_lab0.ipynb": blank})
    _zip(root / "evil.zip", {"../../evil.ipynb": blank})
    (root / "notes.txt").write_text("not a notebook")
    out = tmp_path / "scores.csv"
    first = {g.file: g for g in labs.grade(root, NAME, out, TIMEOUT, 2, fixture_lab.autograder,
                                           progress=False)}
    assert set(first) == {"alice/Lab 0.ipynb", "bob.zip/bob_lab0.ipynb", "carol.ipynb",
                          "evil.zip", "notes.txt"}
    assert {f: (g.student, g.score) for f, g in first.items() if g.status == "ok"} == {
        "alice/Lab 0.ipynb": ("alice", 3), "bob.zip/bob_lab0.ipynb": ("bob", 0),
        "carol.ipynb": ("carol", 3)}
    assert first["evil.zip"].status == "invalid" and "outside" in first["evil.zip"].message
    assert not (tmp_path / "evil.ipynb").exists() and not (root.parent / "evil.ipynb").exists()
    assert first["notes.txt"].status == "invalid"
    assert {p.name for p in (tmp_path / "scores-feedback").iterdir()} >= {
        "alice.md", "bob.md", "carol.md"}

    # An interruption: carol's row was never written and bob's was cut in the middle.
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    alice = next(i for i, ln in enumerate(lines) if ln.startswith("alice,"))
    lines[alice] = lines[alice].replace(f",{first['alice/Lab 0.ipynb'].seconds:.0f},", ",999,")
    kept = [ln for ln in lines if not ln.startswith(("carol,", "bob,"))]
    bob = next(ln for ln in lines if ln.startswith("bob,"))
    out.write_text("".join(kept) + bob[: len(bob) // 2], encoding="utf-8")

    second = {g.file: g for g in labs.grade(root, NAME, out, TIMEOUT, 2, fixture_lab.autograder,
                                            progress=False)}
    regraded = sorted(f for f, g in second.items() if not g.reused)
    assert regraded == ["bob.zip/bob_lab0.ipynb", "carol.ipynb"], regraded
    assert second["alice/Lab 0.ipynb"].seconds == 999, "alice was graded again"
    rows = _csv_rows(out)
    assert sorted(r["file"] for r in rows) == sorted(first), "one complete row per file"
    assert {r["file"]: r["score"] for r in rows}["carol.ipynb"] == "3"


def test_grading_the_lab_source_points_to_the_solution_command(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "tools.labs", "grade", str(SOLUTIONS_FILE), "--lab",
           "lab1_attention", "--out", str(tmp_path / "x.csv")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 2 and "tools.labs solution" in proc.stderr, proc.stderr
    # A copy elsewhere is recognised by its content and turned away with the same advice.
    shutil.copy(SOLUTIONS_FILE, tmp_path / "copy.ipynb")
    reason = grading._invalid_reason(tmp_path / "copy.ipynb", "lab1_attention")
    assert reason is not None and "tools.labs solution lab1_attention" in reason[1]


# ----------------------------------------------------------------------------------------------
# The pieces


def test_the_scanner_flags_what_touches_the_grader() -> None:
    cases = {
        "import otter": "imports the grader (otter)",
        "import pickle as p": "uses pickle",
        "import sys\nsys.modules['otter'] = None": "sys.modules",
        "import builtins\nbuiltins.print = len": "touches builtins",
        "import torch\ntorch.allclose = lambda *a, **k: True": "patches torch.allclose",
        "import os\nos.system('ls')": "os.system",
        "import os\nif os.fork() == 0:\n    pass": "os.fork",
        "from os import fork": "os.fork",
        "import ctypes": "ctypes",
        "open('../../labs/src/lab1.ipynb').read()": "outside its working folder",
        "text = open('tests/q1.py').read()": "names the tests' files",
        "with open('/tmp/x', 'w') as f:\n    f.write('x')": "writes files",
        "exec('print(1)')": "exec",
        "!ls /": "shell command",
        "%%bash\nls": "magic %bash",
        "grader.check = lambda q: None": "patches grader.check",
        "().__class__.__bases__[0].__subclasses__()": "interpreter internals",
    }
    for code, expected in cases.items():
        reasons = tamper.scan_cells([code])
        assert any(expected in r for r in reasons), (code, reasons)
    benign = ["import math\nimport torch\nimport torch.nn.functional as F\n\n"
              "def attention(q, k, v, mask=None):\n"
              "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))\n"
              "    return torch.softmax(scores, -1) @ v, None",
              "%matplotlib inline", "model.weight = None\nx = {'a': 1}\nx['a'] = 2",
              "with open('notes.txt', 'w') as f:\n    f.write('hi')"]
    assert tamper.scan_cells(benign[:3]) == []
    assert tamper.scan_cells(benign[3:]) == ["writes files"]
    # An exact copy of a cell the lab ships is trusted; an edited copy is not.
    assert tamper.scan_cells(["import otter"], trusted={"import otter"}) == []


def test_zips_are_unpacked_safely(tmp_path) -> None:
    bad = {
        "traversal": {"../escape.txt": b"x"},
        "absolute": {"/etc/escape.txt": b"x"},
        "windows": {"C:\\escape.txt": b"x"},
    }
    for name, entries in bad.items():
        with pytest.raises(submissions.UnsafeZip):
            submissions.extract_zip(_zip(tmp_path / f"{name}.zip", entries), tmp_path / name)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(submissions.UnsafeZip, match="link"):
        submissions.extract_zip(link, tmp_path / "l")
    big = _zip(tmp_path / "big.zip", {"a.ipynb": b"0" * 5000})
    with pytest.raises(submissions.UnsafeZip, match="MiB"):
        submissions.extract_zip(big, tmp_path / "big", limit=1000)
    good = _zip(tmp_path / "good.zip", {"export/alice/a.ipynb": b"{}", "export/bob.ipynb": b"{}"})
    submissions.extract_zip(good, tmp_path / "good")
    assert (tmp_path / "good" / "export" / "alice" / "a.ipynb").read_bytes() == b"{}"
    assert not (tmp_path / "escape.txt").exists()
    found = submissions.collect(good, tmp_path / "unpacked")
    assert [(s.file, s.student) for s in found] == [
        ("good.zip/export/alice/a.ipynb", "alice"), ("good.zip/export/bob.ipynb", "bob")]


def test_kill_by_token_finds_a_detached_process() -> None:
    token = uuid.uuid4().hex
    env = dict(os.environ, **{sandbox.TOKEN_VARIABLE: token})
    detach = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
              "'import time; time.sleep(300)'], start_new_session=True, "
              "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)")
    pid = int(subprocess.run([sys.executable, "-c", detach], env=env, capture_output=True,
                             text=True, check=True).stdout)
    assert psutil.pid_exists(pid)
    assert sandbox.kill_by_token(token) >= 1
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_summary_cannot_claim_more_than_the_autograder_allows() -> None:
    points = {"q1": 2.0, "q2": 1.0}
    scores, _, _ = grading._validated({"scores": {"q1": 2, "q2": 0.5}}, points)
    assert scores == {"q1": 2.0, "q2": 0.5}
    for forged in ({"scores": {"q1": 200}}, {"scores": {"q9": 1}}, {"scores": {"q1": -1}},
                   {"scores": {"q1": float("nan")}}, ["not", "a", "dict"]):
        with pytest.raises(ValueError):
            grading._validated(forged, points)


def test_a_cut_csv_row_is_dropped_on_resume(tmp_path) -> None:
    points = {"q1": 1.0}
    header = grading.columns(points)
    good = grading.Grade("a.ipynb", "ok", 1, {"q1": 1}, student="a", sha256="a" * 64)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerow(grading._row(good, points))
    text = buffer.getvalue()
    (tmp_path / "s.csv").write_text(text + text.splitlines()[1][:20], encoding="utf-8")
    rows = grading._read_previous(tmp_path / "s.csv", header, points)
    assert [(g.file, g.score, g.reused) for g in rows] == [("a.ipynb", 1.0, True)]
    with pytest.raises(ValueError, match="other columns"):
        grading._read_previous(tmp_path / "s.csv", grading.columns({"q2": 1.0}), points)
