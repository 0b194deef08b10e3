// Course website behaviour (loaded on every page by Jupyter Book from _static/).
// "Your answer" places become text boxes whose content this browser keeps, per page and
// question, in localStorage. In Jupyter and Colab the same place stays an editable cell.
(function () {
  "use strict";
  var PREFIX = "llm-course-answer:";

  function storageKey(question) {
    return PREFIX + window.location.pathname + "#" + question;
  }

  function read(key) {
    try { return window.localStorage.getItem(key) || ""; } catch (e) { return ""; }
  }

  function write(key, value) {
    try {
      if (value) { window.localStorage.setItem(key, value); }
      else { window.localStorage.removeItem(key); }
      return true;
    } catch (e) { return false; }
  }

  function makeBox(place) {
    var question = place.getAttribute("data-question") || "answer";
    var key = storageKey(question);
    var area = document.createElement("textarea");
    area.className = "course-answer-input";
    area.rows = 5;
    area.setAttribute("aria-label", "Your answer to " + question);
    area.placeholder = "Write your answer here before you open the answer below. " +
      "It stays in this browser only.";
    area.value = read(key);
    var status = document.createElement("div");
    status.className = "course-answer-status";
    status.textContent = area.value ? "Saved in this browser." : "";
    area.addEventListener("input", function () {
      status.textContent = write(key, area.value) ? "Saved in this browser."
        : "This browser does not allow saving (private mode?): copy your text elsewhere.";
    });
    place.replaceChildren(area, status);
    place.classList.add("course-answer-ready");
  }

  function init() {
    document.querySelectorAll("div.course-answer").forEach(makeBox);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
