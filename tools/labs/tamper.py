"""Flag submissions whose code touches the grader, for review by hand.

The tests of a notebook autograder run in the student's own kernel, after the student's code:
that code can patch the grader, the test helpers (``torch.allclose``) or the results it
writes. No sandbox prevents that, so every code cell is read (never run) here, and anything a
lab never needs is reported: importing or patching ``otter``, pickling, reading the tests'
files, ``sys.modules`` or ``builtins`` patching, starting processes, ``ctypes``, paths outside
the working folder, code built at run time. The score is not changed: a person decides.

The scan is a tripwire, not a proof: code can be hidden from it (decoded at run time, say), and
those tricks are flagged in turn when they use the usual tools (``exec``, ``base64``...).
"""

from __future__ import annotations

import ast
import re

# module -> why importing it is suspicious in a lab submission
MODULES = {
    "otter": "imports the grader (otter)",
    "pickle": "uses pickle (the grader's results are a pickle)",
    "_pickle": "uses pickle (the grader's results are a pickle)",
    "dill": "uses dill (pickling; the grader's results are a pickle)",
    "cloudpickle": "uses cloudpickle (the grader's results are a pickle)",
    "shelve": "uses shelve (pickling)",
    "marshal": "uses marshal (code objects)",
    "subprocess": "starts processes (subprocess)",
    "multiprocessing": "starts processes (multiprocessing)",
    "pty": "starts processes (pty)",
    "ctypes": "calls C directly (ctypes)",
    "cffi": "calls C directly (cffi)",
    "builtins": "touches builtins",
    "__builtin__": "touches builtins",
    "importlib": "imports modules dynamically (importlib)",
    "gc": "walks live objects (gc), which reaches the grader's",
    "inspect": "inspects frames and objects (inspect)",
    "signal": "installs signal handlers",
    "atexit": "runs code at exit (atexit)",
    "threading": "runs code in the background (threading)",
    "_thread": "runs code in the background (_thread)",
    "socket": "uses the network (socket)",
    "urllib": "uses the network (urllib)",
    "http": "uses the network (http)",
    "requests": "uses the network (requests)",
    "base64": "decodes data at run time (base64), which can hide code from this scan",
    "codecs": "decodes data at run time (codecs), which can hide code from this scan",
    "zlib": "decompresses data at run time (zlib), which can hide code from this scan",
    "nbformat": "reads notebooks (nbformat)",
    "nbclient": "runs notebooks (nbclient)",
    "jupyter_client": "talks to kernels (jupyter_client)",
    "IPython": "uses IPython's internals",
    "psutil": "inspects or signals processes (psutil)",
    "glob": "lists files (glob)",
    "shutil": "copies or deletes files (shutil)",
    "tempfile": "uses the temporary folder (tempfile)",
    "resource": "changes process limits (resource)",
    "sysconfig": "inspects the installation (sysconfig)",
    "site": "changes the import path (site)",
}
OS_CALLS = {
    "system": "runs a shell command (os.system)", "popen": "runs a shell command (os.popen)",
    "fork": "forks a process (os.fork)", "forkpty": "forks a process (os.forkpty)",
    "kill": "signals processes (os.kill)", "killpg": "signals processes (os.killpg)",
    "setsid": "detaches from the process tree (os.setsid)",
    "chdir": "changes the working folder (os.chdir)", "walk": "walks folders (os.walk)",
    "environ": "reads or changes the environment (os.environ)",
    "putenv": "changes the environment", "unsetenv": "changes the environment",
    "chmod": "changes permissions", "chown": "changes owners", "symlink": "creates links",
    "link": "creates links", "rename": "moves files", "replace": "moves files",
    "remove": "deletes files", "unlink": "deletes files", "rmdir": "deletes folders",
    "removedirs": "deletes folders", "_exit": "exits the kernel abruptly (os._exit)",
    "getppid": "looks up its parent process", "listdir": "lists folders (os.listdir)",
    "scandir": "lists folders (os.scandir)",
}
OS_PREFIXES = {"exec": "replaces the process (os.exec*)", "spawn": "starts processes (os.spawn*)",
               "posix_spawn": "starts processes (os.posix_spawn)"}
SYS_ATTRS = {
    "modules": "patches or reads sys.modules", "settrace": "installs a tracer (sys.settrace)",
    "setprofile": "installs a profiler (sys.setprofile)", "_getframe": "reads frames",
    "meta_path": "changes the import machinery", "path_hooks": "changes the import machinery",
    "addaudithook": "installs an audit hook", "excepthook": "replaces the exception hook",
    "stdout": "replaces sys.stdout", "stderr": "replaces sys.stderr",
    "displayhook": "replaces the display hook", "exit": "exits the kernel",
}
CALLS = {
    "exec": "runs code built at run time (exec)", "eval": "runs code built at run time (eval)",
    "compile": "compiles code at run time (compile)",
    "__import__": "imports modules dynamically (__import__)",
    "get_ipython": "uses the IPython shell (get_ipython), which can run code around the tests",
    "globals": "reads or changes the global namespace (globals)",
    "setattr": "sets attributes by name (setattr), the usual way to monkeypatch",
    "delattr": "deletes attributes by name (delattr)",
    "breakpoint": "starts a debugger",
}
DUNDERS = {"__builtins__", "__globals__", "__code__", "__closure__", "__subclasses__",
           "__bases__", "__mro__", "__dict__", "__getattribute__", "__setattr__",
           "__class__", "__reduce__", "__reduce_ex__", "__loader__", "__spec__", "__import__"}
BENIGN_MAGICS = {"matplotlib", "time", "timeit", "load_ext", "autoreload", "config"}
# Strings that name the grader's files, the tests or paths outside the working folder.
SUSPICIOUS_STRINGS = [
    (re.compile(r"\botter\b|\.OTTER|results\.(pkl|json)|autograder", re.I),
     "names the grader's files"),
    (re.compile(r"(^|[/\\])tests?[/\\]|[/\\]tests?$|\bq\d+\.py\b|labs[/\\]src|_grading", re.I),
     "names the tests' files"),
    (re.compile(r"\.\.[/\\]|^\.\.$"), "uses a path outside its working folder (..)"),
    (re.compile(r"^(/|~|[A-Za-z]:\\)"), "uses an absolute path (reads or writes outside its "
                                        "working folder?)"),
]
TEXT_FALLBACK = re.compile(
    r"\b(otter|pickle|dill|subprocess|ctypes|builtins|sys\.modules|os\.(system|fork|popen|exec)"
    r"|__import__|exec|eval|get_ipython|importlib|setattr)\b|\.\./|/tmp\b")


def _ipython_to_python(source: str) -> str:
    """Cell source with IPython syntax (``!cmd``, ``%magic``) turned into plain calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


class _Scanner(ast.NodeVisitor):
    def __init__(self, modules: dict[str, str]) -> None:
        self.modules = modules  # local name -> module, gathered from every cell's imports
        self.reasons: list[str] = []

    def flag(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def _module(self, name: str) -> None:
        top = name.split(".")[0]
        if top in MODULES:
            self.flag(MODULES[top])
        if top == "os" and name.split(".")[-1] in OS_CALLS:
            self.flag(OS_CALLS[name.split(".")[-1]])

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(module)
        for alias in node.names:
            if module in ("os", "sys", "builtins"):
                self._attribute(module, alias.name)
        self.generic_visit(node)

    def _attribute(self, module: str, attr: str) -> None:
        if module == "os":
            if attr in OS_CALLS:
                self.flag(OS_CALLS[attr])
            for prefix, why in OS_PREFIXES.items():
                if attr.startswith(prefix):
                    self.flag(why)
        elif module == "sys" and attr in SYS_ATTRS:
            self.flag(SYS_ATTRS[attr])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in DUNDERS:
            self.flag(f"reaches interpreter internals ({node.attr})")
        module = self.modules.get(_dotted(node.value), _dotted(node.value))
        if module in ("os", "sys", "os.path"):
            self._attribute(module.split(".")[0], node.attr)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in DUNDERS:
            self.flag(f"reaches interpreter internals ({node.id})")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        attr = func.attr if isinstance(func, ast.Attribute) else None
        if attr in ("run_line_magic", "run_cell_magic"):
            first = node.args[0] if node.args else None
            magic = first.value if isinstance(first, ast.Constant) else None
            if magic in BENIGN_MAGICS and _dotted(func.value) == "" and isinstance(
                    func.value, ast.Call) and _dotted(func.value.func) == "get_ipython":
                for arg in node.args[1:]:  # %matplotlib inline and friends: harmless
                    self.visit(arg)
                return
            self.flag(f"uses the IPython magic %{magic}")
        elif attr in ("system", "getoutput") and isinstance(func.value, ast.Call) and _dotted(
                func.value.func) == "get_ipython":
            self.flag("runs a shell command (!)")
        if name in CALLS:
            self.flag(CALLS[name])
        if name == "open" or attr == "open":
            args = node.args[1:2] if name == "open" else node.args[:1]
            mode = next((a.value for a in args if isinstance(a, ast.Constant)), "r")
            mode = next((k.value.value for k in node.keywords if k.arg == "mode"
                         and isinstance(k.value, ast.Constant)), mode)
            if isinstance(mode, str) and set(mode) & set("wax+"):
                self.flag("writes files")
        elif attr in ("write_text", "write_bytes", "unlink", "rmdir", "rename", "replace",
                      "touch", "symlink_to", "hardlink_to", "chmod"):
            self.flag("writes or deletes files")
        elif attr in ("iterdir", "rglob") or (attr == "glob" and _dotted(func) != "glob.glob"):
            self.flag("lists folders")
        if name in ("getattr", "hasattr") and len(node.args) > 1 and isinstance(
                node.args[1], ast.Constant) and str(node.args[1].value).startswith("__"):
            self.flag(f"reaches interpreter internals ({node.args[1].value})")
        self.generic_visit(node)

    def _assigned(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._assigned(element)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root_name(target)
            if root in self.modules or root == "grader":
                what = _dotted(target) if isinstance(target, ast.Attribute) else root
                if not (what or "").startswith("torch.backends."):
                    self.flag(f"patches {what or root} (assigns into an imported module or the "
                              "grader)")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._assigned(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._assigned(target)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and len(node.value) < 2000:
            for pattern, why in SUSPICIOUS_STRINGS:
                if pattern.search(node.value):
                    self.flag(f"{why}: {node.value[:60]!r}")
        self.generic_visit(node)


def _imported_names(trees: list[ast.AST]) -> dict[str, str]:
    names = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def scan_cells(sources: list[str], trusted: set[str] = frozenset()) -> list[str]:
    """Reasons to review the code cells ``sources`` by hand (empty: nothing found).

    Args:
        sources: The code cells of a submission.
        trusted: Cell sources to skip because the lab itself ships them (the setup cell, the
            grader cell, the demonstrations): matched exactly, so an edited copy is scanned.
    """
    todo = [s for s in sources if s not in trusted]
    trees, reasons = [], []
    for source in todo:
        code = _ipython_to_python(source)
        try:
            trees.append(ast.parse(code))
        except SyntaxError:
            trees.append(None)
            for match in TEXT_FALLBACK.finditer(source):
                reason = f"mentions {match.group(0)!r} (in a cell that does not parse)"
                if reason not in reasons:
                    reasons.append(reason)
    scanner = _Scanner(_imported_names([t for t in trees if t is not None]))
    for tree in trees:
        if tree is not None:
            scanner.visit(tree)
    for source in todo:
        if source.lstrip().startswith("# @title Otter grader"):
            scanner.flag("the grader cell was edited")
    return reasons + scanner.reasons


def trusted_cells(student_notebook: dict) -> set[str]:
    """The code cells of the published student notebook (what every student starts from)."""
    out = set()
    for cell in student_notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            out.add("".join(source) if isinstance(source, list) else source)
    return out
