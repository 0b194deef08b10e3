"""Helpers of the browser tests of the website (tests/test_site.py).

- where the built site is, which pages the table of contents lists, where Chromium is;
- a quiet static HTTP server for the built site, on 127.0.0.1 and a free port, which records
  the requests it answered with an error;
- `SiteBrowser`: opens pages in a fresh Chromium context that blocks every request to another
  host than 127.0.0.1 and records what the page reported (console, uncaught errors, failed
  requests, blocked URLs), then tells which of those reports are problems.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response
from playwright.sync_api import Error as PlaywrightError

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOST = "127.0.0.1"
NOT_LOCAL_URL = re.compile(r"^(?!https?://127\.0\.0\.1(:\d+)?/)")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# The console text Chromium writes for a request that we aborted (route.abort()).
BLOCKED_RESOURCE_MESSAGE = "Failed to load resource: net::ERR_FAILED"

# Known bugs of the site: fail on them whatever the console type they come with.
KNOWN_BUG_MESSAGES = (
    "Identifier 'THEBE_JS_URL' has already been declared",
    "Got invalid theme mode",
)

# Runs before the page's own scripts: counts the short timeouts the page has scheduled and
# not yet run, so a test can wait until the page has settled (jupyterquiz, for instance,
# runs code 500 ms after it has drawn a quiz) instead of sleeping for a fixed time.
PENDING_TIMERS_SCRIPT = """
(() => {
  const pending = new Set();
  const setTimeout0 = window.setTimeout;
  const clearTimeout0 = window.clearTimeout;
  Object.defineProperty(window, "__siteTestPendingTimers", {get: () => pending.size});
  window.setTimeout = function (handler, delay, ...args) {
    if (typeof handler !== "function" || Number(delay) > 2000) {
      return setTimeout0.call(window, handler, delay, ...args);
    }
    const id = setTimeout0.call(window, function (...callArgs) {
      pending.delete(id);
      return handler.apply(this, callArgs);
    }, delay, ...args);
    pending.add(id);
    return id;
  };
  window.clearTimeout = function (id) {
    pending.delete(id);
    return clearTimeout0.call(window, id);
  };
})();
"""


def site_dir() -> Path:
    """The built website: ``$COURSE_SITE_DIR``, by default ``_build/html`` of the repository."""
    configured = os.environ.get("COURSE_SITE_DIR")
    return Path(configured).resolve() if configured else REPO_ROOT / "_build" / "html"


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def read_yaml(name: str) -> dict[str, Any]:
    with open(REPO_ROOT / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _toc_files(entries: list[dict[str, Any]]) -> Iterator[str]:
    for entry in entries:
        if "file" in entry:
            yield str(entry["file"])
        for key in ("parts", "chapters", "sections"):
            yield from _toc_files(entry.get(key, []))


def toc_documents() -> list[str]:
    """Documents of ``_toc.yml`` in order (root first), without suffix: ``chapters/01_x``."""
    toc = read_yaml("_toc.yml")
    documents = [str(toc["root"]), *_toc_files([toc])]
    return [re.sub(r"\.(md|ipynb|rst)$", "", doc) for doc in documents]


def toc_pages() -> list[str]:
    """HTML pages of the table of contents, relative to the site root: ``chapters/01_x.html``."""
    return [f"{doc}.html" for doc in toc_documents()]


def notebook_pages() -> list[str]:
    """Pages of the table of contents whose source is a notebook (chapters and labs)."""
    return [f"{doc}.html" for doc in toc_documents() if (REPO_ROOT / f"{doc}.ipynb").is_file()]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site quietly; tells the server about each request and its status."""

    server: SiteServer

    def handle(self) -> None:
        self.server.activity(+1)
        try:
            super().handle()
        finally:
            self.server.activity(-1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.record(self.path, int(code) if str(code).isdigit() else 0)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass


class SiteServer(http.server.ThreadingHTTPServer):
    """HTTP server of a directory on 127.0.0.1 and a free port, in a thread.

    Records the requests it answered with an error (``errors``: "404 /favicon.ico"), which
    also catches the requests a browser makes on its own, outside any page (the favicon),
    and knows whether a request is being served or was served in the last moments.
    """

    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        super().__init__((LOCAL_HOST, 0), functools.partial(_Handler, directory=str(directory)))
        self.base_url = f"http://{LOCAL_HOST}:{self.server_address[1]}/"
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._serving = 0
        self._last_activity = 0.0

    def activity(self, change: int) -> None:
        with self._lock:
            self._serving += change
            self._last_activity = time.monotonic()

    def record(self, path: str, status: int) -> None:
        if status >= 400:
            with self._lock:
                self.errors.append(f"{status} {path}")

    def idle_for(self) -> float:
        """Seconds since the last request ended (0 while one is being served)."""
        with self._lock:
            return 0.0 if self._serving else time.monotonic() - self._last_activity

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the browser closing a connection early is not our business


@contextmanager
def serve_directory(directory: Path) -> Iterator[SiteServer]:
    """Serve ``directory`` over HTTP on 127.0.0.1 and a free port, in a thread."""
    server = SiteServer(directory)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class ConsoleRecord:
    type: str
    text: str
    url: str

    def __str__(self) -> str:
        where = f" ({self.url})" if self.url else ""
        return f"console.{self.type}: {self.text!r}{where}"


def known_bug(text: str) -> bool:
    """Whether ``text`` is one of the known bug messages."""
    return any(bug in text for bug in KNOWN_BUG_MESSAGES)


@dataclass
class PageLog:
    """What one page (and the server, meanwhile) reported while a test used it."""

    path: str
    console: list[ConsoleRecord] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)  # "404 http://127.0.0.1:…/x.js"
    server_errors: list[str] = field(default_factory=list)  # "404 /favicon.ico"
    blocked: list[str] = field(default_factory=list)
    in_flight: int = 0  # requests of the page not yet finished

    def problems(self, base_url: str = "") -> list[str]:
        """Everything that went wrong, one line each; empty if the page is clean.

        A console error is tolerated only if it is Chromium's message for a request that we
        blocked, at the URL of that request.
        """
        problems: list[str] = []
        blocked = set(self.blocked)
        for record in self.console:
            if known_bug(record.text):
                problems.append(f"known bug: {record}")
            elif record.type == "error" and not (
                record.text == BLOCKED_RESOURCE_MESSAGE and record.url in blocked
            ):
                problems.append(str(record))
        problems += [f"{'known bug: ' if known_bug(error) else ''}uncaught page error: {error}"
                     for error in self.page_errors]
        problems += [f"failed request: {failure}" for failure in self.failed_requests]
        problems += [f"HTTP error: {response}" for response in self.bad_responses]
        seen = {response.split(" ", 1)[1] for response in self.bad_responses}
        problems += [f"HTTP error (request made by the browser): {error}"
                     for error in self.server_errors
                     if base_url + error.split(" ", 1)[1].lstrip("/") not in seen]
        return problems


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname == LOCAL_HOST


class SiteBrowser:
    """One browser context on the served site; every request off 127.0.0.1 is blocked."""

    def __init__(self, browser: Browser, server: SiteServer, **context_options: Any) -> None:
        self.server = server
        self.base_url = server.base_url
        self.blocked: list[str] = []
        self.context: BrowserContext = browser.new_context(**context_options)
        self.context.set_default_timeout(10_000)
        self.context.add_init_script(PENDING_TIMERS_SCRIPT)
        # Only requests off 127.0.0.1 are intercepted (the driver matches the pattern itself):
        # routing every request through Python would slow each page down.
        self.context.route(NOT_LOCAL_URL, self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def watch(self, page: Page, path: str) -> PageLog:
        """Record console messages, uncaught errors and failed requests of ``page``."""
        log = PageLog(path)

        def on_console(message: ConsoleMessage) -> None:
            location = message.location or {}
            log.console.append(ConsoleRecord(message.type, message.text, location.get("url", "")))

        def on_request(request: Request) -> None:
            log.in_flight += 1

        def on_request_done(request: Request) -> None:
            log.in_flight -= 1

        def on_request_failed(request: Request) -> None:
            log.in_flight -= 1
            if is_local(request.url):
                log.failed_requests.append(f"{request.url}: {request.failure}")

        def on_response(response: Response) -> None:
            if is_local(response.url) and response.status >= 400:
                log.bad_responses.append(f"{response.status} {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: log.page_errors.append(_error_text(error)))
        page.on("request", on_request)
        page.on("requestfinished", on_request_done)
        page.on("requestfailed", on_request_failed)
        page.on("response", on_response)
        return log

    def open(self, path: str, page: Page | None = None,
             wait_settled: bool = True) -> tuple[Page, PageLog]:
        """Open ``path`` (relative to the site root), wait for ``load`` and (by default)
        until the page has settled (see `settle`).

        Returns the page and its log; the log's ``blocked`` lists the URLs that this page
        tried to load from other hosts. Fails if the server does not answer 200.
        """
        page = page or self.context.new_page()
        log = self.watch(page, path)
        first_blocked, first_error = len(self.blocked), len(self.server.errors)
        response = page.goto(self.url(path), wait_until="load")
        status = response.status if response else None
        if status != 200:
            raise AssertionError(f"{path}: HTTP status {status}, expected 200")
        if wait_settled:
            self.settle(page, log)
        log.blocked = self.blocked[first_blocked:]
        log.server_errors = self.server.errors[first_error:]
        return page, log

    def reload(self, page: Page, log: PageLog) -> None:
        """Reload ``page``, wait until it has settled; what it reports is added to ``log``."""
        first_blocked, first_error = len(self.blocked), len(self.server.errors)
        page.reload(wait_until="load")
        self.settle(page, log)
        log.blocked += self.blocked[first_blocked:]
        log.server_errors += self.server.errors[first_error:]

    def icon_problems(self, page: Page) -> list[str]:
        """Check the page's icon: the browser fetches it by itself (``<link rel="icon">``, else
        ``/favicon.ico``), outside the page's requests, and not at all while requests are
        routed, as they are here; so it is fetched explicitly."""
        icons = page.eval_on_selector_all('link[rel~="icon"]', "els => els.map(l => l.href)")
        problems = []
        for url in icons or [self.url("favicon.ico")]:
            if not is_local(url):
                continue
            response = self.context.request.get(url, fail_on_status_code=False)
            if response.status != 200:
                problems.append(f"HTTP error: {response.status} {url} (the page's icon)")
        return problems

    def settle(self, page: Page, log: PageLog, quiet_ms: int = 150,
               timeout_ms: int = 5_000) -> None:
        """Wait until ``page`` has settled: no request of its own in flight, none being
        served, no short timer pending, ``quiet_ms`` in a row (at most ``timeout_ms``: a page
        that polls forever is left as it is)."""
        page.wait_for_load_state("load")
        deadline = time.monotonic() + timeout_ms / 1000
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            try:
                timers = page.evaluate("() => window.__siteTestPendingTimers ?? 0")
            except PlaywrightError:  # a navigation is replacing the document: not settled
                timers = -1
            busy = timers != 0 or log.in_flight > 0 or self.server.idle_for() < 0.05
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_ms / 1000:
                return
            page.wait_for_timeout(25)


def _error_text(error: Any) -> str:
    message = getattr(error, "message", None) or str(error)
    stack = getattr(error, "stack", None) or ""
    where = next((line.strip() for line in stack.splitlines() if line.strip().startswith("at ")),
                 "")
    return f"{message} [{where}]" if where else message


def in_viewport_script() -> str:
    """JavaScript predicate: the element has a size and lies entirely in the viewport."""
    return """el => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0
        && r.right <= window.innerWidth && r.bottom <= window.innerHeight;
    }"""
