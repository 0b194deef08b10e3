"""Find the submissions in a folder (or a zip, or one file) and name their students.

- A folder is searched recursively; names starting with a dot and ``__MACOSX`` are skipped.
- A file in a subfolder belongs to the student named by the subfolder directly under the root
  (how learning-management systems export: one folder per student); a file at the root belongs
  to the student named by the file.
- A ``.zip`` is opened like a folder (its name without ``.zip`` names the student when it sits
  at the root: ``alice.zip``), safely: no absolute paths, no ``..``, no links, at most
  ``MAX_ZIP_BYTES`` unpacked. A zip that holds a single folder and nothing else is looked into
  (``export.zip/export/alice/...``); a zip given as the submissions themselves is the class.
- Every other file is listed too (graded as "invalid", with the reason), so that nothing is
  skipped without a word.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_ZIP_BYTES = 512 * 2**20
MAX_ZIP_ENTRIES = 20_000
MAX_ZIP_DEPTH = 2  # a class export holding each student's zip
SKIPPED = ("__MACOSX",)


@dataclass
class Submission:
    """One file to grade."""

    path: Path  # where it is on disk (inside the extraction folder for zip members)
    file: str  # shown in the CSV: relative to the submissions root, zips as folders
    student: str
    sha256: str = ""
    problem: str = ""  # set when the file cannot be graded at all (an unsafe zip...)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class UnsafeZip(ValueError):
    """A zip that would write outside its folder or unpack to too much data."""


def extract_zip(path: Path, dest: Path, limit: int = MAX_ZIP_BYTES) -> None:
    """Unpack ``path`` into ``dest``, refusing what could escape or exhaust the disk.

    Raises:
        UnsafeZip: an absolute or ``..`` path, a link, too many entries or too many bytes.
        zipfile.BadZipFile: not a zip.
    """
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise UnsafeZip(f"{len(infos)} entries (at most {MAX_ZIP_ENTRIES})")
        total = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise UnsafeZip(f"entry {info.filename!r} would be written outside the folder")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeZip(f"entry {info.filename!r} is a symbolic link")
            total += info.file_size
            if total > limit:
                raise UnsafeZip(f"unpacks to more than {limit // 2**20} MiB")
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        for info in infos:
            target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                # The header's size bounds what zipfile reads; count anyway.
                for block in iter(lambda src=src: src.read(1 << 20), b""):
                    written += len(block)
                    if written > limit:
                        raise UnsafeZip(f"unpacks to more than {limit // 2**20} MiB")
                    out.write(block)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in SKIPPED


def _unwrap(folder: Path) -> Path:
    """Descend through folders that hold a single folder and nothing else."""
    while True:
        children = [c for c in folder.iterdir() if _visible(c)]
        if len(children) == 1 and children[0].is_dir():
            folder = children[0]
        else:
            return folder


def collect(root: Path, work: Path) -> list[Submission]:
    """Every submission under ``root`` (a folder, a zip or one file), sorted by ``file``.

    Args:
        root: What the instructor passed to ``grade``.
        work: An empty folder for unpacking zips (outside the repository).
    """
    found: list[Submission] = []
    counter = [0]

    def walk(folder: Path, prefix: str, student: str | None, depth: int) -> None:
        for child in sorted(folder.iterdir(), key=lambda p: p.name):
            if not _visible(child) or child.is_symlink():
                continue
            rel = f"{prefix}{child.name}"
            owner = student or (child.name if child.is_dir() else child.stem)
            if child.is_dir():
                walk(child, rel + "/", owner, depth)
            elif child.suffix.lower() == ".zip":
                visit_zip(child, rel, student or child.stem, depth)
            elif child.is_file():
                found.append(Submission(child, rel, owner))

    def visit_zip(path: Path, rel: str, student: str | None, depth: int) -> None:
        if depth >= MAX_ZIP_DEPTH:
            found.append(Submission(path, rel, student or path.stem,
                                    problem="a zip nested too deep inside other zips"))
            return
        counter[0] += 1
        dest = work / f"zip{counter[0]:04d}"
        try:
            extract_zip(path, dest)
        except (UnsafeZip, zipfile.BadZipFile, OSError) as e:
            found.append(Submission(path, rel, student or path.stem,
                                    problem=f"zip refused: {e}"))
            return
        inner = _unwrap(dest)
        prefix = rel + "/" + (f"{inner.relative_to(dest).as_posix()}/"
                              if inner != dest else "")
        walk(inner, prefix, student, depth + 1)

    if root.is_dir():
        walk(root, "", None, 0)
    elif root.suffix.lower() == ".zip":
        visit_zip(root, root.name, None, 0)  # the whole class in one zip: students are folders
    elif root.is_file():
        found.append(Submission(root, root.name, root.stem))
    else:
        raise FileNotFoundError(f"submissions not found: {root}")
    for sub in found:
        if sub.path.is_file():
            sub.sha256 = sha256(sub.path)
    return sorted(found, key=lambda s: s.file)
