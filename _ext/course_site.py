"""Sphinx extension of the course website: small fixes to what the theme stack emits."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# MathJax 3, served by the site itself (from the django-static-mathjax wheel, which holds the
# MathJax distribution and needs no Django): pages and quizzes then typeset offline too.
MATHJAX_SCRIPT = "es5/tex-mml-chtml.js"
MATHJAX_FONTS = "es5/output/chtml/fonts/woff-v2"


def drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict,
                           doctree: Any) -> None:
    """Keep the first of identical script entries.

    sphinx-thebe registers its inline configuration (``const THEBE_JS_URL = ...``) once per
    read phase; a second copy is a SyntaxError in every browser console.
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        # the second copy has filename '' where the first has None: same script
        key = (str(getattr(script, "filename", script) or ""),
               repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


# pydata-sphinx-theme reads the colour mode from localStorage and logs "Got invalid theme
# mode" on a reader's first visit, when nothing is stored yet: start from "auto" instead.
DEFAULT_MODE_SCRIPT = (
    'if (!document.documentElement.dataset.mode) {'
    ' document.documentElement.dataset.mode = "auto"; }'
)


def _mathjax_source() -> Path | None:
    try:
        import mathjax
    except ImportError:
        return None
    source = Path(mathjax.__file__).parent / "static" / "mathjax"
    return source if (source / MATHJAX_SCRIPT).exists() else None


def use_local_mathjax(app: Any, config: Any) -> None:
    """Point Sphinx at the local MathJax copy (left on the CDN if it is not installed)."""
    if _mathjax_source() is not None:
        config.mathjax_path = f"mathjax/{MATHJAX_SCRIPT}"


def copy_mathjax(app: Any, exception: Exception | None) -> None:
    """Copy MathJax's script and its fonts (not the whole 35 MB distribution) into _static."""
    source = _mathjax_source()
    if exception is not None or source is None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    (target / MATHJAX_SCRIPT).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_SCRIPT, target / MATHJAX_SCRIPT)
    shutil.copytree(source / MATHJAX_FONTS, target / MATHJAX_FONTS, dirs_exist_ok=True)


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", use_local_mathjax)
    app.connect("build-finished", copy_mathjax)
    # early: html-page-context stops at the first handler that returns a template name
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    app.add_js_file(None, body=DEFAULT_MODE_SCRIPT, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
