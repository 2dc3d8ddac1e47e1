PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast docs lint bench clean browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The sweep, then its report (written even when some cell failed; the sweep's exit status is kept).
run: $(STAMP)
	$(BIN)/wattgap run --suite quick; status=$$?; $(BIN)/wattgap report latest --html report.html || exit $$?; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

# The report's test opens it in the operating system's headless Chromium (Playwright drives it; no download).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium from the OS packages (the report's browser test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The documentation site (docs/, mkdocs.yml), built offline; --strict turns a broken link into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

test: lint browser docs
	$(BIN)/python -m pytest -q --durations=15  # the slowest tests: where make test's minutes go

# The quick tier while working: no fault suite (real signals, hostile files) and no full-size models.
test-fast: lint
	$(BIN)/python -m pytest -q -m "not gpu and not slow and not faults" --durations=10

bench: $(STAMP)
	$(BIN)/python bench/aa.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/train_to_accuracy.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/peer_parity.py

clean:
	rm -rf $(VENV) build *.egg-info site
