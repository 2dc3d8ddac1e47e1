PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast docs lint bench clean browser gpu-evidence gpu-wheels

# uv installs the pinned set with its bytecode in 52 s where pip took 118 s (a cold cache, 2 cores). It reads no
# pip configuration, so it is handed the folder pip is set to find wheels in, where these machines keep
# PyTorch's CPU build (without it, the CUDA build of several GB).
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==0.13.9
	$(BIN)/uv pip install -q --python $(BIN)/python $(FIND_LINKS:%=--find-links %) --compile-bytecode \
	  -c constraints.txt -e '.[test]'
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

# pytest in two tiers: everything that does not need a quiet machine on WORKERS processes (pytest-xdist; at most 4,
# each holds torch and TensorFlow), then the tests that measure whether the machine is quiet, alone.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
test: lint browser docs
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not gpu and not serial" --durations=15
	$(BIN)/python -m pytest -q -m "serial and not gpu" --durations=5

# The quick tier while working, on WORKERS processes: no fault suite (real signals, hostile files) and no test marked
# slow (real sweeps, stacks; the serial ones among them).
test-fast: lint
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not gpu and not slow and not faults" --durations=10

bench: $(STAMP)
	$(BIN)/python bench/aa.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/train_to_accuracy.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/peer_parity.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/cluster.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/serve.py

# On a GPU machine with a CUDA build of torch (no venv, no network): every CUDA check and the studies' GPU
# sweeps within a 9-minute budget, packed into OUT (bench/gpu_evidence.py). Fill gpu-wheels/ here first.
OUT ?= gpu-evidence
gpu-evidence:
	$(PYTHON) bench/gpu_evidence.py --out $(OUT)

# The pure-Python dependencies the GPU machine lacks (pydantic and its core), for its Python 3.12.
GPU_WHEELS := pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
gpu-wheels: $(STAMP)
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d gpu-wheels $(GPU_WHEELS)
	@du -sh gpu-wheels

clean:
	rm -rf $(VENV) build *.egg-info site
