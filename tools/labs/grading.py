"""Grade a class's submissions into a CSV, one sandboxed process per submission.

Each submission is copied into its own scratch folder outside the repository (the system's
temporary folder, or ``--scratch``) and graded there by ``python -m tools.labs grade-one``
(:mod:`tools.labs.child`) under bubblewrap when it works (:mod:`tools.labs.sandbox`), with a
time limit. This process reads back only a JSON summary, through a pipe, and checks it against
the points it reads from the autograder itself. Its code is scanned for tampering
(:mod:`tools.labs.tamper`). Rows are appended to the CSV as they finish, so a rerun skips the
files already graded (same path, same content); a feedback file per student goes next to it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools.notebooks import ROOT

from . import feedback as feedback_files
from . import sandbox as sb
from .common import (
    AUTOGRADER_DIR,
    DEFAULT_TIMEOUT,
    SRC_DIR,
    STUDENT_DIR,
    is_assign_source,
    question_points,
)
from .submissions import Submission, collect
from .tamper import scan_cells, trusted_cells

MAX_SUMMARY = 5 * 2**20  # bytes of JSON accepted from a grading process


@dataclass
class Grade:
    """One row of the scores CSV."""

    file: str  # relative to the submissions root; zip members as "alice.zip/lab1.ipynb"
    status: str  # "ok", "timeout", "error" or "invalid"
    score: float = 0.0
    questions: dict[str, float] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0
    student: str = ""
    review: str = ""  # why the code should be read by a person ("" if nothing was found)
    sandbox: str = ""
    sha256: str = ""
    tests: list[dict] = field(default_factory=list)  # per test case, for the feedback file
    reused: bool = False  # read back from an earlier run's CSV, not graded again


def columns(points: dict[str, float]) -> list[str]:
    """The CSV header."""
    return ["student", "file", "score", "max_score", *points, "status", "review", "message",
            "sandbox", "seconds", "sha256"]


def _row(g: Grade, points: dict[str, float]) -> list[str]:
    if g.status == "ok":  # a question Otter could not run at all scores 0
        per_q = [f"{g.questions.get(q, 0.0):g}" for q in points]
    else:
        per_q = [""] * len(points)
    return [g.student, g.file, f"{g.score:g}", f"{sum(points.values()):g}", *per_q, g.status,
            g.review, g.message, g.sandbox, f"{g.seconds:.0f}", g.sha256]


def _from_row(row: dict[str, str], points: dict[str, float]) -> Grade:
    questions = {q: float(row[q]) for q in points if row.get(q)}
    return Grade(row["file"], row["status"], float(row["score"] or 0), questions,
                 row.get("message", ""), float(row.get("seconds") or 0), row["student"],
                 row.get("review", ""), row.get("sandbox", ""), row["sha256"], reused=True)


def _read_previous(out: Path, header: list[str], points) -> list[Grade]:
    """The complete rows of an earlier run's CSV (a row cut short by an interruption is
    dropped)."""
    if not out.exists():
        return []
    with open(out, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None:
            return []
        if first != header:
            raise ValueError(
                f"{out} exists with other columns (a CSV of another lab, or of an older version "
                f"of this tool): choose another --out, or move it away to start afresh")
        grades = []
        for values in reader:
            if len(values) != len(header) or not re.fullmatch(r"[0-9a-f]{64}", values[-1]):
                continue
            with contextlib.suppress(ValueError, KeyError):
                grades.append(_from_row(dict(zip(header, values, strict=True)), points))
        return grades


def _write_all(out: Path, header: list[str], rows: list[list[str]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, out)


def _invalid_reason(path: Path, lab: str) -> tuple[str, str] | None:
    """``(status, why)`` if ``path`` is not a gradable notebook of ``lab``. Runs nothing."""
    if path.suffix != ".ipynb":
        return "invalid", f"not a notebook (expected a .ipynb file, got '{path.name}')"
    try:
        # Lenient, like Otter: a notebook that Jupyter or Colab saved with a small schema
        # deviation still gets graded; only unreadable files are turned away.
        nb = nbformat.read(path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as e:  # any parse error means "not a notebook"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return "invalid", f"not a valid notebook ({type(e).__name__}: {first[:200]})"
    if is_assign_source(nb):
        return "invalid", (
            f"this is a lab's Otter Assign source (labs/src: solutions and hidden tests), not a "
            f"student notebook. To smoke-test the autograder, grade the full-marks notebook: "
            f"`.venv/bin/python -m tools.labs solution {lab} --out {lab}-full.ipynb`")
    name = (nb.metadata.get("otter") or {}).get("assignment_name")
    if name and name != lab:
        return "invalid", f"a notebook of {name}, not of {lab}"
    return None


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


@dataclass
class _Context:
    """What every submission of one run shares."""

    lab: str
    autograder: Path  # the copy in the run's work folder
    points: dict[str, float]
    timeout: float
    threads: int | None
    jobs: int
    use_bwrap: bool
    hidden: list[Path]
    trusted: set[str]
    active: set[int] = field(default_factory=set)  # pids of running grading processes
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False


def _environment(scratch: Path, threads: int | None, token: str) -> dict[str, str]:
    """The whole environment of a grading process: nothing of ours leaks into it."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin",
                                 "/bin"]),
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch / "tmp"), "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "MPLCONFIGDIR": str(scratch / "home" / "matplotlib"), "MPLBACKEND": "Agg",
        "XDG_CACHE_HOME": str(scratch / "home" / "cache"), "PYTHONPATH": str(ROOT),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", sb.TOKEN_VARIABLE: token,
    }
    if threads is not None:
        # Submissions graded side by side must not each start one thread per core.
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    for folder in ("home", "tmp", "runtime"):
        (scratch / folder).mkdir(parents=True, exist_ok=True)
    return env


def _validated(data: object, points: dict[str, float]) -> tuple[dict[str, float], list, list]:
    """Scores, tests and errors from a summary, checked against the autograder's points."""
    if not isinstance(data, dict) or not isinstance(data.get("scores"), dict):
        raise ValueError("the summary is not a dict with scores")
    scores = {}
    for question, value in data["scores"].items():
        if question not in points:
            raise ValueError(f"the summary scores an unknown question {question!r}")
        value = float(value)
        if not math.isfinite(value) or not 0 <= value <= points[question] + 1e-9:
            raise ValueError(f"the summary gives {question} {value} of {points[question]} points")
        scores[question] = value
    tests = [t for t in data.get("tests", []) if isinstance(t, dict)]
    tests = [{"question": str(t.get("question", "")), "name": str(t.get("name", "")),
              "hidden": bool(t.get("hidden")), "passed": bool(t.get("passed")),
              "message": "" if t.get("hidden") else str(t.get("message", ""))[:2000]}
             for t in tests]
    errors = [str(e)[:300] for e in data.get("errors", [])][:20]
    return scores, tests, errors


def grade_one(sub: Submission, ctx: _Context, scratch: Path) -> Grade:
    """Grade one submission in ``scratch`` (created, and left for the caller to delete)."""
    start = time.perf_counter()
    grade = _grade_one(sub, ctx, scratch)
    grade.seconds = time.perf_counter() - start
    grade.student, grade.sha256 = sub.student, sub.sha256
    grade.sandbox = "bwrap" if ctx.use_bwrap else "NONE (unprotected)"
    return grade


def _grade_one(sub: Submission, ctx: _Context, scratch: Path) -> Grade:
    if sub.problem:
        return Grade(sub.file, "invalid", message=sub.problem)
    invalid = _invalid_reason(sub.path, ctx.lab)
    if invalid is not None:
        return Grade(sub.file, invalid[0], message=invalid[1])
    nb = nbformat.read(sub.path, as_version=4)
    review = "; ".join(scan_cells([c.source for c in nb.cells if c.cell_type == "code"],
                                  ctx.trusted))
    scratch.mkdir(parents=True)
    copy = scratch / "submission" / "submission.ipynb"
    copy.parent.mkdir()
    shutil.copy(sub.path, copy)
    token = uuid.uuid4().hex
    env = _environment(scratch, ctx.threads, token)
    read_end, write_end = os.pipe()
    cmd = [sys.executable, "-m", "tools.labs", "grade-one", str(copy), "--autograder",
           str(ctx.autograder), "--summary-fd", str(write_end)]
    if ctx.use_bwrap:
        readable, _ = sb.grading_mounts(ctx.autograder, [])
        cmd = sb.bwrap_command(cmd, scratch, readable, ctx.hidden, env)
    chunks: list[bytes] = []

    def read_summary() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            size = 0
            for block in iter(lambda: pipe.read(65536), b""):
                size += len(block)
                if size <= MAX_SUMMARY:
                    chunks.append(block)

    reader = threading.Thread(target=read_summary, daemon=True)
    reader.start()
    timed_out = False
    with open(scratch / "stdout.txt", "wb") as out, open(scratch / "stderr.txt", "wb") as err:
        try:
            proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    pass_fds=(write_end,))
        finally:
            os.close(write_end)
        with ctx.lock:
            ctx.active.add(proc.pid)
        try:
            proc.wait(timeout=ctx.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Whatever happened: nothing the submission started may outlive its grading.
            sb.kill_tree(proc.pid)
            proc.wait()
            sb.kill_by_token(token)
            with ctx.lock:
                ctx.active.discard(proc.pid)
    reader.join(timeout=30)
    if timed_out:
        return Grade(sub.file, "timeout", review=review, message=(
            f"stopped after the time limit of {ctx.timeout:g} s: a cell did not finish "
            "(an infinite loop, or much slower code than the lab needs)"))
    if ctx.stopping:
        return Grade(sub.file, "error", review=review, message="interrupted")
    try:
        scores, tests, errors = _validated(json.loads(b"".join(chunks)), ctx.points)
    except (ValueError, TypeError) as e:
        stderr = (scratch / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        why = _last_error_line(stderr) if not chunks else f"invalid summary ({e})"
        return Grade(sub.file, "error", review=review, message=f"grading failed: {why}")
    message = ""
    if errors:
        message = f"{len(errors)} cell(s) raised an error: " + "; ".join(errors[:3])
    return Grade(sub.file, "ok", score=sum(scores.values()), questions=scores, message=message,
                 review=review, tests=tests)


def _scratch_root(scratch: Path | None) -> Path:
    base = Path(tempfile.gettempdir()) if scratch is None else scratch.resolve()
    if base == ROOT or ROOT in base.parents:
        raise ValueError(f"the scratch folder must lie outside the repository, got {base}")
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="llm-labs-grade-", dir=base))


def _announce_unprotected(reason: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\nWARNING: {reason}; grading WITHOUT A SANDBOX.\n{sb.unprotected_message()}"
          f"\nThe CSV's sandbox column says so on every row.\n{bar}\n", file=sys.stderr,
          flush=True)


def grade(
    submissions: Path, lab: str, out: Path, timeout: float = DEFAULT_TIMEOUT,
    jobs: int | None = None, autograder: Path | None = None, *, sandbox: str = "auto",
    scratch: Path | None = None, feedback: Path | None | bool = None, progress: bool = True,
) -> list[Grade]:
    """Grade every submission under ``submissions`` with the lab's autograder into ``out``.

    Args:
        submissions: A folder (searched recursively), a zip or one notebook; see
            :mod:`tools.labs.submissions` for how students are named.
        lab: Lab name, e.g. ``"lab1_attention"``.
        out: CSV path (see :func:`columns`). Rows are appended as they finish; when the file
            exists, the files it already graded (same path, same content) are skipped.
        timeout: Seconds allowed per submission (the whole notebook).
        jobs: Submissions graded at the same time (default: the number of CPU cores); each
            gets ``cores // jobs`` PyTorch threads.
        autograder: Autograder zip (default ``labs/autograder/<lab>-autograder.zip``).
        sandbox: ``"auto"`` (bubblewrap if it works, else none, loudly), ``"bwrap"`` (fail
            without it) or ``"none"``.
        scratch: Folder for the scratch folders (default: the system's temporary folder); must
            lie outside the repository.
        feedback: Folder of the feedback files (default ``<out stem>-feedback`` next to the
            CSV); False for none.
        progress: Show a progress bar.

    Returns:
        One :class:`Grade` per submission of this run (graded now or reused), sorted by file.
    """
    autograder = (autograder or AUTOGRADER_DIR / f"{lab}-autograder.zip").resolve()
    if not autograder.exists():
        raise FileNotFoundError(f"no autograder {autograder}; run `make labs` (or "
                                "`.venv/bin/python -m tools.labs generate`)")
    submissions = submissions.resolve()
    if not submissions.exists():
        raise FileNotFoundError(f"submissions not found: {submissions}")
    if sandbox not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'none', got {sandbox!r}")
    status = sb.probe() if sandbox != "none" else sb.SandboxStatus(False, "--sandbox none")
    if sandbox == "bwrap" and not status.available:
        raise RuntimeError(f"--sandbox bwrap: {status.reason}")
    if not status.available:
        _announce_unprotected(status.reason)
    points = question_points(autograder)
    header = columns(points)
    out = out.resolve()
    previous = _read_previous(out, header, points)
    feedback_dir = None if feedback is False else (
        Path(feedback).resolve() if feedback not in (None, True) else
        out.with_name(f"{out.stem}-feedback"))
    jobs = max(1, jobs or os.cpu_count() or 1)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with contextlib.suppress(ValueError):  # an OMP_NUM_THREADS of the caller is an upper bound
        threads = min(threads, max(1, int(os.environ.get("OMP_NUM_THREADS", threads))))

    work = _scratch_root(scratch)
    try:
        shutil.copy(autograder, work / "autograder.zip")
        subs = collect(submissions, work / "unpacked")
        # The cells every student starts from are not scanned (the setup and grader cells).
        student_nb = autograder.parent.parent / f"{lab}.ipynb"
        if not student_nb.exists():
            student_nb = STUDENT_DIR / f"{lab}.ipynb"
        trusted = trusted_cells(nbformat.read(student_nb, as_version=4)) \
            if student_nb.exists() else set()
        extra_hidden = [submissions if submissions.is_dir() else submissions.parent,
                        out.parent, work, *([feedback_dir] if feedback_dir else [])]
        ctx = _Context(lab, work / "autograder.zip", points, timeout, threads, jobs,
                       status.available, sb.grading_mounts(work, extra_hidden)[1], trusted)
        done = {(g.file, g.sha256): g for g in previous if g.status != "error"}
        reused = [done[(s.file, s.sha256)] for s in subs if (s.file, s.sha256) in done]
        todo = [s for s in subs if (s.file, s.sha256) not in done]
        per_student: dict[str, int] = {}
        for s in subs:
            per_student[s.student] = per_student.get(s.student, 0) + 1
        if reused:
            print(f"{out.name}: {len(reused)} file(s) already graded, {len(todo)} to go",
                  file=sys.stderr)
        # Start the CSV afresh from the complete rows (an interrupted run may have cut one).
        _write_all(out, header, [_row(g, points) for g in previous])
        new = _run(todo, ctx, work, out, header, feedback_dir, per_student, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The final CSV: one row per file, the newest; files of earlier runs not seen now stay.
    latest = {g.file: g for g in previous}
    latest.update({g.file: g for g in reused + new})
    _write_all(out, header, [_row(latest[f], points) for f in sorted(latest)])
    return sorted(reused + new, key=lambda g: g.file)


def _run(todo: list[Submission], ctx: _Context, work: Path, out: Path, header: list[str],
         feedback_dir: Path | None, per_student: dict[str, int], progress: bool) -> list[Grade]:
    from tqdm import tqdm

    grades: list[Grade] = []
    bar = tqdm(total=len(todo), desc=f"grading {ctx.lab}", unit="notebook", disable=not progress,
               file=sys.stderr)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=ctx.jobs)
    futures = {pool.submit(_safe_grade_one, s, ctx, work / f"{i:05d}"): s
               for i, s in enumerate(todo)}
    try:
        with open(out, "a", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            for future in concurrent.futures.as_completed(futures):
                g = future.result()
                grades.append(g)
                writer.writerow(_row(g, ctx.points))
                f.flush()
                if feedback_dir is not None:
                    feedback_files.write(g, ctx.lab, ctx.points, feedback_dir,
                                         per_student[g.student] > 1)
                bar.set_postfix_str(f"{g.file}: {g.status} {g.score:g}", refresh=False)
                bar.update()
    except KeyboardInterrupt:
        ctx.stopping = True
        for future in futures:
            future.cancel()
        with ctx.lock:
            for pid in list(ctx.active):
                sb.kill_tree(pid)
        print(f"\ninterrupted: {len(grades)} row(s) are in {out}; run the same command again "
              "to grade the rest", file=sys.stderr)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return grades


def _safe_grade_one(sub: Submission, ctx: _Context, scratch: Path) -> Grade:
    try:
        return grade_one(sub, ctx, scratch)
    except Exception as e:  # a bug of ours must not lose the other rows
        return Grade(sub.file, "error", message=f"{type(e).__name__}: {e}", student=sub.student,
                     sha256=sub.sha256)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def grade_paths_hint(path: Path) -> str | None:
    """A hint when someone grades the lab sources themselves."""
    path = path.resolve()
    if path == SRC_DIR or SRC_DIR in path.parents:
        return ("labs/src holds the lab sources (solutions and hidden tests), not submissions; "
                "build a full-marks notebook with `.venv/bin/python -m tools.labs solution "
                "<lab> --out <lab>-full.ipynb` and grade that")
    return None
