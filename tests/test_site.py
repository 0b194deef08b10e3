"""The course website, tested in a real browser (headless Chromium driven by Playwright).

What the suite checks, on the built site served over HTTP from 127.0.0.1:

1. every page of ``_toc.yml`` loads (HTTP 200) with no console error, no uncaught JavaScript
   error, no failed request for one of our own files, and none of the known bug messages;
2. every ``<details>`` of the pilot chapter is closed on load and opens on a click;
3. the quizzes (jupyterquiz) answer without a kernel: a wrong and the right choice give the
   matching feedback and colours, and so do numeric questions; they raise no error when
   MathJax arrives late (slow phone or network);
4. the interactive figures respond without a kernel: every slider position shows its own frame
   and updates the value label;
5. the "Your answer" boxes keep their text across a reload, one text per question;
6. on a phone (390 px) and a tablet (820 px), the sidebar toggles open the navigation and its
   links work;
7. the "launch in Colab" link of every notebook page names a notebook of this repository;
8. no admonition whose title starts with an emoji also gets the theme's icon.

The browser is offline: every request to another host than 127.0.0.1 is blocked (the site
loads MathJax and other scripts from CDNs); console errors caused only by those blocked
requests are tolerated, anything else fails.

Run (about 30 s of CPU time; one Chromium for the session, one fresh context per test).
Playwright's own browser download is not needed, never run ``playwright install``: the tests
drive the Debian ``chromium`` package::

    make book                                   # builds _build/html
    .venv/bin/python -m pytest tests/test_site.py -q
    COURSE_SITE_DIR=/tmp/site/_build/html .venv/bin/python -m pytest tests/test_site.py -q

The module is skipped when no Chromium is installed or the site is not built.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
import yaml
from playwright.sync_api import Browser, Locator, Page, Playwright, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from site_browser import (
    REPO_ROOT,
    PageLog,
    SiteBrowser,
    SiteServer,
    find_chromium,
    in_viewport_script,
    is_local,
    known_bug,
    notebook_pages,
    read_yaml,
    serve_directory,
    site_dir,
    toc_pages,
)

CHROMIUM = find_chromium()
SITE = site_dir()
PAGES = toc_pages()
CHAPTER = "chapters/01_self_attention.html"
CHAPTER_PAGES = [page for page in PAGES if page.startswith("chapters/")]
ANSWER_IDS = [f"L03-Q{n}" for n in range(1, 7)]
MAX_FIGURE_FRAMES = 64

if CHROMIUM is None:
    pytest.skip("Chromium not found: install the Debian package `chromium` to run the browser "
                "tests", allow_module_level=True)
if not (SITE / PAGES[0]).is_file():
    pytest.skip(f"site not built: run `make book` (no {SITE / PAGES[0]})",
                allow_module_level=True)


# --------------------------------------------------------------------------- fixtures


# (Fixture names differ from pytest-playwright's "playwright", "browser", "page", so that
# installing that plugin one day changes nothing here.)


@pytest.fixture(scope="session")
def site_server() -> Iterator[SiteServer]:
    with serve_directory(SITE) as server:
        yield server


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium_browser(playwright_driver: Playwright) -> Iterator[Browser]:
    # --no-sandbox: Chromium refuses to start its sandbox as root (containers, CI).
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def new_site(chromium_browser: Browser,
             site_server: SiteServer) -> Iterator[Callable[..., SiteBrowser]]:
    """Factory of fresh browser contexts (own localStorage and cache); closed after the test."""
    opened: list[SiteBrowser] = []

    def make(**context_options: Any) -> SiteBrowser:
        site = SiteBrowser(chromium_browser, site_server, **context_options)
        opened.append(site)
        return site

    yield make
    for site in opened:
        site.close()


@pytest.fixture
def site(new_site: Callable[..., SiteBrowser]) -> SiteBrowser:
    return new_site(viewport={"width": 1280, "height": 900})


def _require_page(path: str) -> None:
    if not (SITE / path).is_file():
        pytest.fail(f"{path}: page listed in _toc.yml is missing from the built site {SITE}")


# --------------------------------------------------------------------------- 1. pages load


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_errors(site: SiteBrowser, path: str) -> None:
    _require_page(path)
    page, log = site.open(path)
    print(f"{path}: blocked external requests: {log.blocked}")
    problems = log.problems(site.base_url) + site.icon_problems(page)
    assert not problems, f"{path}: {len(problems)} problem(s) while loading:\n  " + \
        "\n  ".join(problems)


# --------------------------------------------------------------------------- 2. details

# Whether a <details> is open, and whether its content (besides the summary) shows.
DETAILS_STATE_SCRIPT = """d => {
  const content = [...d.children].filter(c => c.tagName !== "SUMMARY");
  const shown = content.some(c => {
    const r = c.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && c.checkVisibility({visibilityProperty: true});
  });
  return {open: d.open, content: content.length, shown};
}"""


def test_chapter_details_closed_and_open_on_click(site: SiteBrowser) -> None:
    page, _ = site.open(CHAPTER)
    details = page.locator("details")
    states = details.evaluate_all(
        "els => els.map(d => [d.open, (d.querySelector(':scope > summary') || {}).textContent"
        " ?? null])")
    assert states, f"{CHAPTER}: no <details> (hints, answers) on the page"
    open_on_load = [f"#{i} {summary!r}" for i, (is_open, summary) in enumerate(states)
                    if is_open]
    assert not open_on_load, f"{CHAPTER}: <details> open on load: {', '.join(open_on_load)}"

    failures: list[str] = []
    for i, (_, summary) in enumerate(states):
        label = f"<details> #{i} {(summary or '').strip()!r}"
        if summary is None:
            failures.append(f"{label}: no <summary>")
            continue
        details.nth(i).locator(":scope > summary").click()
        state = details.nth(i).evaluate(DETAILS_STATE_SCRIPT)
        if not state["open"]:
            failures.append(f"{label}: still closed after a click on its <summary>")
        elif not state["content"]:
            failures.append(f"{label}: nothing inside besides the <summary>")
        elif not state["shown"]:
            failures.append(f"{label}: opened, but its content is not visible")
    assert not failures, f"{CHAPTER}: <details> that do not work:\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------- 3. quizzes

# Every quiz question on the page with the data that the page's own script holds for it
# (jupyterquiz writes ``var questions<ID> = [...]`` next to ``<div id="<ID>">``), and the
# buttons it rendered.
QUIZ_DATA_SCRIPT = """() => {
  const found = [];
  for (const box of document.querySelectorAll("div[data-shuffleanswers][id]")) {
    const data = window["questions" + box.id];
    const wrappers = [...box.querySelectorAll(":scope > .Quiz")];
    found.push({
      box: box.id,
      hasData: Array.isArray(data),
      shuffledQuestions: box.dataset.shufflequestions === "True",
      questions: wrappers.map(w => ({
        wrapper: w.id,
        text: (w.querySelector("[id^=quizQn]") || {}).textContent || "",
        data: Array.isArray(data) ? data[Number(w.dataset.qnum)] : null,
        buttons: [...w.querySelectorAll("label.MCButton")].map(b => ({
          text: b.textContent, correct: b.dataset.correct})),
      })),
    });
  }
  return found;
}"""

# After a click: the feedback element and every button of the question, with the colours the
# quiz's CSS variables stand for. Feedback animations are run to their end first.
QUIZ_STATE_SCRIPT = """w => {
  const color = variable => {
    const probe = document.createElement("span");
    probe.style.backgroundColor = `var(${variable})`;
    w.appendChild(probe);
    const value = getComputedStyle(probe).backgroundColor;
    probe.remove();
    return value;
  };
  const fb = w.querySelector(".Feedback");
  const rect = fb ? fb.getBoundingClientRect() : {width: 0, height: 0};
  const buttons = [...w.querySelectorAll("label.MCButton, input.Input-text")];
  buttons.forEach(b => b.getAnimations().forEach(a => a.finish()));
  return {
    text: fb ? fb.textContent : "",
    classes: fb ? [...fb.classList] : [],
    visible: !!fb && rect.width > 0 && rect.height > 0 && fb.checkVisibility(),
    buttons: buttons.map(b => ({classes: [...b.classList],
                                color: getComputedStyle(b).backgroundColor})),
    right: color("--jq-correct-color"),
    wrong: color("--jq-incorrect-color"),
  };
}"""

MATH = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)


def _shows(shown: str, source: str) -> bool:
    """Whether ``shown`` (the page's text) is ``source`` (quiz data) as jupyterquiz renders it:
    markup dropped, math typeset by MathJax (so compared only outside the formulas)."""
    source = re.sub(r"<[^>]+>", "", source)
    shown_words = " ".join(shown.split())
    parts = [" ".join(part.split()) for part in MATH.split(source)]
    if len(parts) == 1:  # no formula: the whole text
        return shown_words == parts[0]
    position = 0
    for part in filter(None, parts):
        position = shown_words.find(part, position)
        if position < 0:
            return False
        position += len(part)
    return True


def _quiz_questions(page: Page) -> list[dict[str, Any]]:
    quizzes = page.evaluate(QUIZ_DATA_SCRIPT)
    assert quizzes, f"{CHAPTER}: no quiz (jupyterquiz container) on the page"
    missing = [quiz["box"] for quiz in quizzes if not quiz["hasData"]]
    assert not missing, f"{CHAPTER}: quiz data (var questions<ID>) not found for {missing}"
    empty = [quiz["box"] for quiz in quizzes if not quiz["questions"]]
    assert not empty, f"{CHAPTER}: quizzes that rendered no question: {empty}"
    shuffled = [quiz["box"] for quiz in quizzes if quiz["shuffledQuestions"]]
    assert not shuffled, f"{CHAPTER}: quizzes with shuffled questions (unsupported): {shuffled}"
    return [question for quiz in quizzes for question in quiz["questions"] if question["data"]]


def _check_feedback(state: dict[str, Any], kind: str, expected: str, other: str | None,
                    button: int | None) -> list[str]:
    """What is wrong with the feedback after a ``kind`` ("right"/"wrong") answer."""
    failures: list[str] = []
    wanted, unwanted = ("correct", "incorrect") if kind == "right" else ("incorrect", "correct")
    if wanted not in state["classes"] or unwanted in state["classes"] or not state["visible"]:
        failures.append(f"feedback classes {state['classes']}, visible={state['visible']} "
                        f"(expected a visible {wanted!r} feedback)")
    if not _shows(state["text"], expected) or (other is not None and
                                               _shows(state["text"], other)):
        failures.append(f"feedback {' '.join(state['text'].split())!r}, expected {expected!r}")
    if button is not None:
        classes, color = state["buttons"][button]["classes"], state["buttons"][button]["color"]
        marked = "correctButton" if kind == "right" else "incorrectButton"
        wrong_mark = "incorrectButton" if kind == "right" else "correctButton"
        expected_color = state["right"] if kind == "right" else state["wrong"]
        if marked not in classes or wrong_mark in classes:
            failures.append(f"its button has classes {classes} (expected {marked!r})")
        elif color != expected_color:
            failures.append(f"its button is {color}, expected the quiz's {wanted!r} colour "
                            f"{expected_color}")
    return failures


def _check_multiple_choice(page: Page, question: dict[str, Any]) -> list[str]:
    answers = question["data"]["answers"]
    rights = [a for a in answers if a.get("correct")]
    wrongs = [a for a in answers if not a.get("correct")]
    if len(rights) != 1 or not wrongs:
        return []  # many-choice or no wrong answer: not checked
    right, wrong = rights[0], wrongs[0]
    buttons = question["buttons"]
    index: dict[str, int] = {}
    failures: list[str] = []
    for name, answer in (("right", right), ("wrong", wrong)):
        matching = [i for i, b in enumerate(buttons) if _shows(b["text"], answer["answer"])]
        if len(matching) != 1:
            failures.append(f"{len(matching)} buttons for the {name} answer "
                            f"{answer['answer']!r} (buttons: {[b['text'] for b in buttons]})")
        else:
            index[name] = matching[0]
    if failures:
        return failures
    if buttons[index["right"]]["correct"] != "true":
        failures.append("the button of the right answer is not marked data-correct=true")
    wrapper = page.locator(f"#{question['wrapper']}")
    right_feedback = right.get("feedback", "Correct!")
    wrong_feedback = wrong.get("feedback", "Incorrect -- try again.")

    wrapper.locator("label.MCButton").nth(index["wrong"]).click()
    state = wrapper.evaluate(QUIZ_STATE_SCRIPT)
    failures += [f"wrong answer clicked: {failure}" for failure in
                 _check_feedback(state, "wrong", wrong_feedback, right_feedback, index["wrong"])]

    wrapper.locator("label.MCButton").nth(index["right"]).click()
    state = wrapper.evaluate(QUIZ_STATE_SCRIPT)
    failures += [f"right answer clicked: {failure}" for failure in
                 _check_feedback(state, "right", right_feedback, None, index["right"])]
    if "incorrectButton" in state["buttons"][index["wrong"]]["classes"]:
        failures.append("the wrong answer stays marked after the right one was clicked")
    return failures


def _numeric_input(answer: dict[str, Any]) -> str | None:
    if "value" in answer:
        return f"{answer['value']}"
    if "range" in answer:
        low, high = answer["range"]
        return f"{(low + high) / 2}"
    return None


def _check_numeric(page: Page, question: dict[str, Any]) -> list[str]:
    answers = question["data"]["answers"]
    right = next((a for a in answers if a.get("correct") and _numeric_input(a)), None)
    if right is None:
        return ["no right answer with a value or range in the page's quiz data"]
    default = next((a.get("feedback", "") for a in answers if a.get("type") == "default"),
                   "Incorrect. Try again.")
    wrapper = page.locator(f"#{question['wrapper']}")
    field = wrapper.locator("input.Input-text").first
    failures: list[str] = []
    for kind, value, expected in (("wrong", "-98765.4321", default),
                                  ("right", _numeric_input(right) or "",
                                   right.get("feedback", "Correct"))):
        field.fill(value)
        field.press("Enter")
        state = wrapper.evaluate(QUIZ_STATE_SCRIPT)
        other = right.get("feedback", "Correct") if kind == "wrong" else None
        failures += [f"{kind} value {value} entered: {failure}"
                     for failure in _check_feedback(state, kind, expected, other, None)]
    return failures


def test_quiz_answers_without_kernel(site: SiteBrowser) -> None:
    """Multiple-choice questions (one right answer) and numeric questions of the chapter."""
    page, _ = site.open(CHAPTER)
    questions = _quiz_questions(page)
    checks = {"multiple_choice": _check_multiple_choice, "numeric": _check_numeric}
    kinds = [question["data"].get("type") for question in questions]
    assert "multiple_choice" in kinds, f"{CHAPTER}: no multiple-choice quiz question"

    failures: list[str] = []
    for question in questions:
        check = checks.get(question["data"].get("type"))
        if check is not None:
            name = f"question {' '.join(question['text'].split())[:60]!r}"
            failures += [f"{name}: {failure}" for failure in check(page, question)]
    assert not failures, f"{CHAPTER}: quiz failures:\n  " + "\n  ".join(failures)


# A reader on a slow phone or network gets MathJax late; jupyterquiz reads MathJax.version 500 ms
# after a quiz is drawn and on every click, which throws while only MathJax's configuration
# object exists. The MathJax script is held back until the quizzes' timers have run and one
# answer has been clicked, then let through: the page must raise no error.
MATHJAX_SCRIPT = re.compile(r"mathjax[^?#]*\.js", re.IGNORECASE)


def test_quizzes_work_before_mathjax_arrives(site: SiteBrowser) -> None:
    page = site.context.new_page()
    log = site.watch(page, CHAPTER)
    held: list[Route] = []

    def hold(route: Route) -> None:
        if is_local(route.request.url) and not released:
            held.append(route)
        else:
            route.fallback()  # released, or another host: blocked by the context's route

    released = False
    page.route(MATHJAX_SCRIPT, hold)
    page.goto(site.url(CHAPTER), wait_until="commit")
    page.wait_for_function("() => document.readyState !== 'loading' && "
                           "window.__siteTestPendingTimers === 0", timeout=10_000)
    if not held:
        pytest.skip(f"{CHAPTER}: loads no MathJax script from this site")
    first_answer = page.locator("label.MCButton").first
    first_answer.click()
    released = True
    for route in held:
        route.continue_()
    site.settle(page, log)
    errors = [error for error in log.page_errors if not known_bug(error)]
    assert not errors, (f"{CHAPTER}: with MathJax arriving after the quizzes (slow phone or "
                        f"network), uncaught errors:\n  " + "\n  ".join(errors))


# --------------------------------------------------------------------------- 4. figures

FIGURE_STATE_SCRIPT = """fig => ({
  src: (fig.querySelector("img.course-figure-frame") || {}).src || "",
  labels: [...fig.querySelectorAll("output")].map(o => o.textContent.trim()),
})"""

SET_SLIDER_SCRIPT = """(slider, value) => {
  slider.value = String(value);
  slider.dispatchEvent(new Event("input", {bubbles: true}));
  return slider.value;
}"""


def _slider_positions(slider: Locator) -> list[str]:
    low, high, step = slider.evaluate(
        "s => [Number(s.min || 0), Number(s.max || 100), Number(s.step) || 1]")
    count = int(round((high - low) / step)) + 1
    return [f"{low + i * step:g}" for i in range(count)]


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_interactive_figures_respond_without_kernel(site: SiteBrowser, path: str) -> None:
    page, _ = site.open(path)
    figures = page.locator("div.course-figure")
    least = 2 if path == CHAPTER else 1  # the pilot has two; every chapter has at least one
    assert figures.count() >= least, (f"{path}: {figures.count()} interactive figure(s) "
                                      f"(div.course-figure), expected at least {least}")

    failures: list[str] = []
    for f in range(figures.count()):
        figure = figures.nth(f)
        sliders = figure.locator("input[type=range]")
        params = sliders.evaluate_all("els => els.map(s => s.dataset.param || '')")
        name = f"figure #{f} ({', '.join(params) or 'no slider'})"
        if not params:
            failures.append(f"{name}: no slider (input[type=range])")
            continue
        if not all(params):
            failures.append(f"{name}: a slider without data-param")
        if figure.locator("img.course-figure-frame").count() != 1:
            failures.append(f"{name}: not exactly one img.course-figure-frame")
            continue
        outputs = figure.locator("output")
        if outputs.count() == 0:
            failures.append(f"{name}: no value label (output element)")
            continue
        hidden = [i for i in range(outputs.count()) if not outputs.nth(i).is_visible()]
        if hidden:
            failures.append(f"{name}: value label(s) {hidden} not visible")

        positions = [_slider_positions(sliders.nth(i)) for i in range(len(params))]
        combinations = list(itertools.product(*positions))
        if len(combinations) > MAX_FIGURE_FRAMES:
            failures.append(f"{name}: {len(combinations)} slider combinations, more than "
                            f"{MAX_FIGURE_FRAMES}")
            continue
        state = figure.evaluate(FIGURE_STATE_SCRIPT)
        if not state["src"].startswith("data:image/"):
            failures.append(f"{name}: initial frame is not a data: image ({state['src'][:40]!r})")
        current = [sliders.nth(i).input_value() for i in range(len(params))]
        frames: dict[str, tuple[str, ...]] = {}
        for combination in combinations:
            for i, value in enumerate(combination):
                if current[i] == value:
                    continue
                before = state
                current[i] = sliders.nth(i).evaluate(SET_SLIDER_SCRIPT, value)
                state = figure.evaluate(FIGURE_STATE_SCRIPT)
                move = f"{name}: {params[i]} -> {value}"
                if state["src"] == before["src"]:
                    failures.append(f"{move}: the image did not change")
                if state["labels"] == before["labels"]:
                    failures.append(f"{move}: the value label did not change "
                                    f"({state['labels']})")
            if not state["src"].startswith("data:image/"):
                failures.append(f"{name} at {combination}: frame is not a data: image")
            if state["src"] in frames:
                failures.append(f"{name}: positions {combination} and {frames[state['src']]} "
                                f"show the same image")
            frames[state["src"]] = combination
    assert not failures, f"{path}: interactive figures:\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------- 5. answer boxes


def _mapped_ids(path: str) -> list[str]:
    """The question IDs course_map.yml maps to the chapter page ``path``."""
    course_map = yaml.safe_load((REPO_ROOT / "course_map.yml").read_text(encoding="utf-8"))
    for chapter in course_map["chapters"]:
        if f"{chapter['file']}.html" == path:
            return sorted(chapter["questions"])
    return []


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_every_question_of_a_chapter_has_an_answer_box(site: SiteBrowser, path: str) -> None:
    page, _ = site.open(path)
    places = page.locator("div.course-answer").evaluate_all(
        "els => els.map(e => [e.dataset.question || '', e.querySelectorAll('textarea').length])")
    assert sorted(q for q, _ in places) == _mapped_ids(path), (
        f"{path}: answer boxes for {sorted(q for q, _ in places)}, the course map has "
        f"{_mapped_ids(path)}")
    assert all(boxes == 1 for _, boxes in places), f"{path}: a place without its text box"



def _answer_box(page: Page, question: str) -> Locator:
    return page.locator(f'div.course-answer[data-question="{question}"] textarea')


def test_answer_boxes_keep_text_across_reload(site: SiteBrowser) -> None:
    page, log = site.open(CHAPTER)
    places = page.locator("div.course-answer").evaluate_all(
        "els => els.map(e => [e.dataset.question || '', e.querySelectorAll('textarea').length])")
    found = [question for question, _ in places]
    assert sorted(found) == ANSWER_IDS, (f"{CHAPTER}: answer places (div.course-answer) "
                                         f"{found}, expected {ANSWER_IDS}")
    without_box = [question for question, boxes in places if boxes != 1]
    assert not without_box, f"{CHAPTER}: answer places without exactly one textarea: {without_box}"

    # Every question but the last gets its own text; the last is left empty.
    texts = {question: f"My answer to {question}: divide by √d_k ({i})"
             for i, question in enumerate(ANSWER_IDS[:-1])}
    for question, text in texts.items():
        _answer_box(page, question).click()
        page.keyboard.insert_text(text)  # as typed: one "input" event, like a paste
    site.reload(page, log)
    failures: list[str] = []
    for question in ANSWER_IDS:
        box = _answer_box(page, question)
        if box.count() != 1:
            failures.append(f"{question}: no textarea after the reload")
            continue
        value = box.input_value()
        if value != texts.get(question, ""):
            failures.append(f"{question}: after the reload the box shows {value!r}, "
                            f"expected {texts.get(question, '')!r}")
    assert not failures, f"{CHAPTER}: answer boxes after a reload:\n  " + "\n  ".join(failures)

    for question in ANSWER_IDS:
        place = page.locator(f'div.course-answer[data-question="{question}"]')
        answer = place.locator("xpath=following::details[1]")
        assert answer.count() == 1, f"{CHAPTER}: no <details> after the answer box {question}"
        summary = answer.locator(":scope > summary")
        title = summary.text_content() or ""
        assert "answer" in title.lower(), (f"{CHAPTER}: the <details> after the answer box "
                                           f"{question} is {title!r}, not an answer")
        summary.click()
        assert answer.evaluate("d => d.open"), \
            f"{CHAPTER}: the <details> after the answer box {question} does not open"
        assert answer.locator(":scope > :not(summary)").first.is_visible(), \
            f"{CHAPTER}: the <details> after the answer box {question} opened, content hidden"


# --------------------------------------------------------------------------- 6. small screens

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "tablet": {"width": 820, "height": 1180}}

# The heading of a section (or the target itself) has its top inside the viewport.
HEADING_AT_TOP_SCRIPT = """el => {
  const heading = el.matches("h1,h2,h3,h4,h5,h6") ? el
    : (el.querySelector("h1,h2,h3,h4,h5,h6") || el);
  const r = heading.getBoundingClientRect();
  return r.height > 0 && r.top >= -1 && r.top < window.innerHeight;
}"""


def _visible_one(page: Page, selector: str) -> Locator | None:
    candidates = page.locator(selector).filter(visible=True)
    return candidates.first if candidates.count() else None


def _wait_in_viewport(page: Page, link: Locator, what: str) -> None:
    try:
        page.wait_for_function(in_viewport_script(), arg=link.element_handle(), timeout=3_000)
    except PlaywrightTimeoutError as error:
        raise AssertionError(f"{what}: not visible inside the viewport "
                             f"(bounding box {link.bounding_box()}, "
                             f"viewport {page.viewport_size})") from error


def _check_page_contents_toggle(page: Page, where: str) -> str | None:
    """Open the page contents with its toggle and follow one of its links.

    Returns None if that worked or the page has no page contents, else what went wrong.
    """
    links = page.locator(".bd-sidebar-secondary nav a[href^='#']")
    toggle = _visible_one(page, ".secondary-toggle")
    if links.count() == 0 or toggle is None:
        print(f"{where}: no page-contents sidebar or toggle, not checked")
        return None
    toggle.click()
    shown = f"({in_viewport_script()})"
    try:
        page.wait_for_function(f"els => els.some({shown})", arg=links.element_handles(),
                               timeout=3_000)
    except PlaywrightTimeoutError:
        return (f"{where}: after a click on the page-contents toggle, no link of the page "
                f"contents is visible inside the viewport")
    visible = links.evaluate_all(f"els => els.map({shown})")
    index = [i for i, is_shown in enumerate(visible) if is_shown][1 if sum(visible) > 1 else 0]
    link = links.nth(index)
    href = link.get_attribute("href") or ""
    link.click()
    try:
        page.wait_for_function("hash => window.location.hash === hash", arg=href,
                               timeout=3_000)
    except PlaywrightTimeoutError:
        return f"{where}: the page-contents link {href} did not lead to {href}"
    target = page.locator(f"[id='{href[1:]}']")
    if target.count() != 1:
        return f"{where}: the page-contents link {href} has no target"
    try:
        page.wait_for_function(HEADING_AT_TOP_SCRIPT, arg=target.element_handle(),
                               timeout=3_000)
    except PlaywrightTimeoutError:
        return (f"{where}: after a click on the page-contents link {href}, the heading of its "
                f"section is not in the viewport")
    return None


def _check_primary_toggle(site: SiteBrowser, page: Page, log: PageLog, where: str) -> None:
    """Open the navigation with the ☰ toggle and follow a link to another chapter."""
    toggle = _visible_one(page, ".primary-toggle")
    assert toggle is not None, f"{where}: no visible primary-sidebar toggle (.primary-toggle)"
    # A link to another chapter of the table of contents (not the home page, not this page).
    links = page.locator(".bd-sidebar-primary nav a.reference.internal[href]")
    hrefs = links.evaluate_all("els => els.map(a => a.getAttribute('href'))")
    here = urldefrag(page.url)[0]
    others = {urljoin(site.base_url, other) for other in PAGES[1:]} - {here}
    targets = [i for i, href in enumerate(hrefs) if urldefrag(urljoin(here, href))[0] in others]
    assert targets, f"{where}: the primary sidebar has no link to another chapter ({hrefs})"
    link = links.nth(targets[0])
    target = urldefrag(urljoin(here, hrefs[targets[0]]))[0]

    toggle.click()
    _wait_in_viewport(page, link, f"{where}: after a click on the ☰ toggle, the sidebar link "
                                  f"to {hrefs[targets[0]]}")
    link.click()
    page.wait_for_url(target)
    site.settle(page, log)


@pytest.mark.parametrize("device", VIEWPORTS)
def test_sidebar_toggles_on_small_screens(new_site: Callable[..., SiteBrowser],
                                          device: str) -> None:
    """Page contents (secondary sidebar) first, then the navigation (primary sidebar)."""
    viewport = VIEWPORTS[device]
    site = new_site(viewport=viewport)
    page, log = site.open(CHAPTER)
    where = f"{CHAPTER} at {viewport['width']} px ({device})"
    failures = [_check_page_contents_toggle(page, where)]
    # Start the navigation check from the page as loaded, page contents closed.
    page.goto(site.url(CHAPTER), wait_until="load")
    try:
        _check_primary_toggle(site, page, log, where)
    except AssertionError as error:
        failures.insert(0, str(error))
    assert not any(failures), "\n".join(filter(None, failures))


# --------------------------------------------------------------------------- 7. Colab

COLAB_URL = re.compile(r"^https://colab\.research\.google\.com/github/(?P<org>[^/]+)/"
                       r"(?P<repo>[^/]+)/blob/(?P<branch>[^/]+)/(?P<path>[^?#]+\.ipynb)$")


@pytest.mark.parametrize("path", notebook_pages())
def test_colab_link_names_a_notebook_of_the_repository(site: SiteBrowser, path: str) -> None:
    _require_page(path)
    config = read_yaml("_config.yml")["repository"]
    expected_repo = urlsplit(str(config["url"])).path.strip("/").removesuffix(".git")
    page, _ = site.open(path, wait_settled=False)  # the static page is enough
    links = page.locator("a[href*='colab.research.google.com']")
    assert links.count() >= 1, f"{path}: no 'launch in Colab' link"
    launch = _visible_one(page, ".dropdown-launch-buttons > button")
    if launch is not None:  # the link sits in the launch menu: it must show when opened
        launch.click()
        assert links.first.is_visible(), f"{path}: the launch menu opens without a Colab link"
    failures: list[str] = []
    for href in links.evaluate_all("els => els.map(a => a.href)"):
        match = COLAB_URL.match(href)
        if match is None:
            failures.append(f"Colab link {href} does not have the form "
                            f".../github/<org>/<repo>/blob/<branch>/<path>.ipynb")
            continue
        repo = f"{match['org']}/{match['repo']}"
        if repo != expected_repo:
            failures.append(f"Colab link {href} names the repository {repo}, "
                            f"_config.yml says {expected_repo}")
        if match["branch"] != str(config.get("branch", "main")):
            failures.append(f"Colab link {href} names the branch {match['branch']}, "
                            f"_config.yml says {config.get('branch')}")
        notebook = match["path"]
        if not (REPO_ROOT / notebook).is_file():
            failures.append(f"Colab link {href} names {notebook}, which is not in the repository")
        book_path = str(config.get("path_to_book") or "").strip("/")
        own = "/".join(p for p in (book_path, path.removesuffix(".html") + ".ipynb") if p)
        if notebook != own:
            failures.append(f"Colab link {href} opens {notebook}, not this page's notebook {own}")
    assert not failures, f"{path}:\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------- 8. admonitions

# For each admonition title that starts with an emoji, the theme's ::before/::after pseudo
# elements that would draw a second icon: some content ("\f071", Font Awesome's warning sign),
# or an empty content with an image. Not drawn at all (display: none) counts as absent; an
# empty content without an image is the theme's tinted title background, not an icon.
DOUBLED_ICON_SCRIPT = r"""() => {
  const emoji = /^\s*\p{Extended_Pictographic}/u;
  const found = [];
  for (const title of document.querySelectorAll(".admonition-title")) {
    const text = title.textContent.trim();
    if (!emoji.test(text)) continue;
    for (const pseudo of ["::before", "::after"]) {
      const style = getComputedStyle(title, pseudo);
      if (style.display === "none") continue;
      const content = style.content;
      const noContent = ["none", "normal", "", '""', "''"].includes(content);
      const image = [style.backgroundImage, style.maskImage, style.webkitMaskImage]
        .find(v => v && v !== "none");
      if (!noContent || image) {
        const shown = [...content].map(c => {
          const code = c.codePointAt(0);
          return code > 126 ? "\\u" + code.toString(16).padStart(4, "0") : c;
        }).join("");
        found.push(`${JSON.stringify(text.slice(0, 60))}: ${pseudo} content ${shown}` +
                   (image ? ` image ${image.slice(0, 60)}` : ""));
      }
    }
  }
  return found;
}"""


@pytest.mark.parametrize("path", PAGES)
def test_no_doubled_admonition_icon(site: SiteBrowser, path: str) -> None:
    _require_page(path)
    page, _ = site.open(path, wait_settled=False)  # styles are applied at "load"
    doubled = page.evaluate(DOUBLED_ICON_SCRIPT)
    assert not doubled, (f"{path}: {len(doubled)} admonition title(s) start with an emoji and "
                         f"also get the theme's icon:\n  " + "\n  ".join(doubled))
