# Two commands set up a fresh machine (Python 3.11):
#   make book   -> virtual environment + website in _build/html/index.html
#   make test   -> virtual environment + every test (unit tests, notebooks, labs, lint)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test setup execute labs clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "Website: _build/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check utils tests tools benchmarks _ext
	@# The browser tests (tests/test_site.py) read the built website.
	$(BIN)/jupyter-book build . -W --keep-going -q
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		echo "NOTE: Chromium not found: the browser tests of the website will be SKIPPED (apt-get install chromium)."
	@command -v bwrap >/dev/null 2>&1 || \
		echo "NOTE: bubblewrap not found: the sandboxed lab-grading tests will be SKIPPED (apt-get install bubblewrap)."
	@# Two pytest workers, one thread each (kernels and graders inherit it): two cores, no
	@# oversubscription, which would slow small-tensor code down many times over.
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests chapters labs --nbval-lax --nbval-current-env --durations=15

# Re-run every notebook top to bottom and store its outputs in place.
execute: $(STAMP)
	$(BIN)/python -m tools.notebooks stamp
	$(BIN)/python -m tools.notebooks execute

# Re-run the lab sources (solutions), then regenerate the student notebooks and autograders.
# `make labs LABS="lab1_attention lab3_inference"` does only those (default: every lab).
LAB_SOURCES = $(if $(LABS),$(patsubst %,labs/src/%.ipynb,$(LABS)),labs/src/*.ipynb)
labs: $(STAMP)
	$(BIN)/python -m tools.notebooks stamp $(LAB_SOURCES)
	OMP_NUM_THREADS=1 $(BIN)/python -m tools.labs execute-sources $(LABS)
	OMP_NUM_THREADS=1 $(BIN)/python -m tools.labs generate $(LABS)

clean:
	rm -rf _build
