"""Command line of the lab tools: ``.venv/bin/python -m tools.labs --help``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools.notebooks import ROOT

from . import __doc__ as package_doc
from .common import DEFAULT_TIMEOUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.labs",
                                     description=package_doc.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("generate", "regenerate the student notebooks and autograders"),
                       ("check", "exit 1 if a generated file is stale"),
                       ("execute-sources", "re-run the lab sources (solutions) in place")):
        p = sub.add_parser(name, help=text)
        p.add_argument("labs", nargs="*", help="lab names (default: every lab)")
    s = sub.add_parser("solution", help="write a lab's full-marks notebook (to smoke-test "
                       "its autograder)")
    s.add_argument("lab")
    s.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("release", help="build a container-ready autograder pinned to HEAD")
    r.add_argument("lab")
    r.add_argument("--out", type=Path, default=Path("dist"))
    g = sub.add_parser("grade", help="grade submitted notebooks into a CSV")
    g.add_argument("submissions", type=Path, help="a folder (searched recursively), a zip or a "
                   "notebook")
    g.add_argument("--lab", required=True, help="lab name, e.g. lab1_attention")
    g.add_argument("--out", type=Path, default=Path("scores.csv"))
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds per submission (default {DEFAULT_TIMEOUT})")
    g.add_argument("--jobs", type=int, default=None,
                   help="submissions graded at once (default: the number of CPU cores)")
    g.add_argument("--feedback", type=Path, default=None,
                   help="folder of the per-student feedback files (default: <out>-feedback)")
    g.add_argument("--no-feedback", action="store_true", help="write no feedback files")
    g.add_argument("--scratch", type=Path, default=None,
                   help="where the scratch folders go (default: the system temporary folder)")
    g.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                   help="auto: bubblewrap when it works (default); bwrap: required; none")
    g.add_argument("--autograder", type=Path, default=None, help="another autograder zip")
    one = sub.add_parser("grade-one", help="(internal) grade one submission in this process")
    one.add_argument("submission", type=Path)
    one.add_argument("--autograder", type=Path, required=True)
    one.add_argument("--summary-fd", type=int, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "grade-one":
        from .child import grade_one

        return grade_one(args.submission, args.autograder, args.summary_fd)
    from . import build

    if args.command == "generate":
        for lab in build.generate(args.labs):
            print(f"generated {lab.student.relative_to(ROOT)}, "
                  f"{lab.autograder.relative_to(ROOT)}")
        return 0
    if args.command == "execute-sources":
        build.execute_sources(args.labs)
        return 0
    if args.command == "check":
        problems = build.check(args.labs)
        for line in problems:
            print(line)
        if problems:
            print("run `make labs` (or `.venv/bin/python -m tools.labs generate`) and commit "
                  "the result")
            return 1
        print("the student notebooks and autograders are current")
        return 0
    if args.command == "solution":
        out = build.solution_notebook(args.lab, args.out)
        print(f"wrote {out}: the full-marks notebook of {args.lab}. Grade it with\n"
              f"  .venv/bin/python -m tools.labs grade {out} --lab {args.lab} --out smoke.csv")
        return 0
    if args.command == "release":
        print(f"wrote {build.release(args.lab, args.out)}")
        return 0
    return _grade(args)


def _grade(args: argparse.Namespace) -> int:
    from .grading import grade, grade_paths_hint

    hint = grade_paths_hint(args.submissions)
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    feedback = False if args.no_feedback else args.feedback
    try:
        grades = grade(args.submissions, args.lab, args.out, args.timeout, args.jobs,
                       args.autograder, sandbox=args.sandbox, scratch=args.scratch,
                       feedback=feedback)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    flagged = [g for g in grades if g.review]
    for g in grades:
        note = " (already graded)" if g.reused else ""
        print(f"{g.file}: {g.status} {g.score:g}{note}" + (f" ({g.message})" if g.message else ""))
    print(f"{len(grades)} file(s) in {time.perf_counter() - start:.0f} s -> {args.out}")
    if flagged:
        print(f"{len(flagged)} submission(s) flagged for review by hand (CSV column 'review'): "
              + ", ".join(g.file for g in flagged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
