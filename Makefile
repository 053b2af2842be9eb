# Everything a fresh clone needs is installed from here: `make test` and `make demo` bootstrap .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
# Checked by a second mypy run (types, test): the platform program and the runner image's entrypoint.
PLATFORM_TYPED := platform/__main__.py platform/runner/entrypoint.py

.PHONY: venv test test-fast demo lint types fmt bench bench-fleet check clean lock

venv: $(STAMP)

# Re-installs only when pyproject.toml or requirements.txt changes; quick when already done.
# requirements.txt is what Pulumi itself installs (`pulumi install`, or a fresh clone's first `up`); dev adds tooling.
$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e '.[dev]'
	touch $(STAMP)

# Azurite (the Azure Storage emulator) for the drop-zone tests, pinned in package.json.
$(NPM_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

# Type check (mypy strict on uploader/, provisioning/ and __main__.py; settings in pyproject.toml, cache in .mypy_cache),
# then the platform program and the runner's entrypoint on their own (a second `__main__` module in one run is refused).
types: $(STAMP)
	$(PY) -m mypy
	$(PY) -m mypy $(PLATFORM_TYPED)

# Everything CI runs: lint, types, then the whole suite in one worker per core (pytest-xdist).
test: $(STAMP) $(NPM_STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m mypy $(PLATFORM_TYPED)
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(PY) -m pytest -q -n 2

# The inner loop: no Azurite, no image install, no Pulumi program evaluation (CI runs everything).
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not azurite and not pulumi"

demo: $(STAMP)
	$(PY) -m uploader.sandbox.demo

bench: $(STAMP)
	$(PY) bench/throughput.py
	$(PY) bench/long_lines.py

# `check` of 1 hosting stack + 200 hosted tenant stacks, generated in a temporary folder (docs/performance.md).
bench-fleet: $(STAMP)
	$(PY) bench/fleet_check.py --tenants 200

check: $(STAMP)
	$(PY) -m provisioning check

fmt: $(STAMP)
	$(PY) -m ruff check --fix .

# The image's dependencies, resolved from pyproject's base dependencies with every file's sha256 (the Dockerfile
# installs them with --require-hashes). Run after changing those dependencies; commit the result.
lock: $(STAMP)
	$(PY) -m piptools compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file uploader/requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis .mypy_cache
