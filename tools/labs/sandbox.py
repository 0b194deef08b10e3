"""Run one submission's grading process under bubblewrap, or say loudly that nothing protects you.

With bubblewrap (``bwrap``, Debian package ``bubblewrap``) the grading process sees:

- the whole system read-only, with the repository, ``$HOME``, the system temporary folder, the
  submissions folder and the output folders hidden (empty), except the few paths that grading
  needs, read-only: the Python installation, the virtual environment, ``utils`` and ``tools``;
- one writable folder, the submission's scratch folder (also its ``$HOME`` and ``$TMPDIR``);
- no network (a new network namespace with only a loopback interface), no capabilities;
- a new PID namespace: when grading ends, every process started inside it dies with it.

Without bubblewrap, every process that carries the submission's token in its environment is
killed when grading ends, and nothing else is contained.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.notebooks import ROOT

TOKEN_VARIABLE = "LLM_LABS_GRADING_TOKEN"
BWRAP_FLAGS = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
UNPROTECTED = (
    "no sandbox: each submission runs as {user} with your permissions. It can read every file "
    "you can (the repository with the solutions and hidden tests, ~/.ssh), write wherever you "
    "can, use the network, and start processes that escape the clean-up if they also clear "
    "their environment. Install bubblewrap (apt-get install bubblewrap) or grade in a "
    "disposable container or virtual machine."
)


@dataclass(frozen=True)
class SandboxStatus:
    """Whether bubblewrap can be used here, and why not."""

    available: bool
    reason: str  # "" when available


@functools.cache
def probe() -> SandboxStatus:
    """Check once that ``bwrap`` exists and can start a sandbox with our flags."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return SandboxStatus(False, "bubblewrap (bwrap) is not installed")
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *BWRAP_FLAGS,
           "true"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return SandboxStatus(False, f"bwrap does not start: {e}")
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["exit status " + str(proc.returncode)])[0]
        return SandboxStatus(False, f"bwrap does not work here: {first}")
    return SandboxStatus(True, "")


def unprotected_message() -> str:
    """The warning printed once per grading run without a sandbox."""
    import getpass

    with contextlib.suppress(Exception):
        return UNPROTECTED.format(user=getpass.getuser())
    return UNPROTECTED.format(user="you")


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def bwrap_command(
    cmd: list[str], scratch: Path, readable: list[Path], hidden: list[Path],
    env: dict[str, str],
) -> list[str]:
    """``cmd`` wrapped in bubblewrap: only ``scratch`` writable, ``hidden`` folders emptied.

    Args:
        cmd: The command to run inside.
        scratch: The one writable folder (its working directory).
        readable: Files and folders to show read-only even inside a hidden folder.
        hidden: Folders replaced by empty ones (the repository, $HOME, the temporary folder...).
        env: The whole environment inside (nothing else is inherited).
    """
    args = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev",
            "--proc", "/proc", "--tmpfs", "/dev/shm"]
    # Outer folders first: a later mount inside an earlier tmpfs is created on top of it.
    for folder in sorted({h.resolve() for h in hidden if h.exists()}, key=lambda p: len(p.parts)):
        args += ["--tmpfs", str(folder)]
    hidden_resolved = [h.resolve() for h in hidden]
    for path in sorted({p.resolve() for p in readable if p.exists()}, key=lambda p: len(p.parts)):
        if any(_under(path, h) for h in hidden_resolved):
            args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(scratch), str(scratch), *BWRAP_FLAGS, "--chdir", str(scratch),
             "--clearenv"]
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return args + ["--", *cmd]


def grading_mounts(autograder: Path, extra_hidden: list[Path]) -> tuple[list[Path], list[Path]]:
    """What the grading process may read inside hidden folders, and which folders to hide."""
    import tempfile

    readable = [Path(sys.base_prefix), Path(sys.prefix), ROOT / "utils", ROOT / "tools",
                autograder]
    # The interpreter of the virtual environment may be a link into another installation.
    readable.append(Path(os.path.realpath(sys.executable)).parent.parent)
    home = Path.home()
    hidden = [ROOT, home, Path(tempfile.gettempdir()), *extra_hidden]
    return readable, [h for h in hidden if str(h) not in ("/", "")]


def kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (Jupyter kernels run in their own session)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def kill_by_token(token: str) -> int:
    """Kill every process whose environment carries ``token``; return how many were found.

    A detached (double-forked) process leaves the process tree but keeps the environment it
    inherited, so this finds it unless it cleared its environment on purpose.
    """
    import psutil

    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and proc.environ().get(TOKEN_VARIABLE) == token:
                found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found, timeout=10)
    return len(found)
