# Two commands: `make run` serves with the embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LINTED := videoforge tests $(wildcard bench)
VENDOR := videoforge/web/static/vendor
VENDORED := $(VENDOR)/hls.min.js $(VENDOR)/uppy.min.mjs \
            $(VENDOR)/plyr.min.js $(VENDOR)/plyr.css $(VENDOR)/plyr.svg
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint services clean

run: $(VENV)/.installed $(VENDORED)
	$(BIN)/videoforge serve

test: lint services $(VENDORED)
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy videoforge

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Front-end packages from the npm registry (package-lock.json pins them): hls.js, Plyr and Uppy
# are served to browsers, axe-core checks the pages' accessibility in the browser tests.
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q npm; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENDOR)/hls.min.js: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/hls.js/dist/hls.min.js $@

# Plyr, the watch page's controls: its script, its one stylesheet and its icon sprite, served from
# here so that the page never asks Plyr's CDN for them.
$(VENDOR)/plyr.min.js $(VENDOR)/plyr.css $(VENDOR)/plyr.svg: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/plyr/dist/$(notdir $@) $@

# Uppy's prebuilt ES module bundle (core and the S3 plugin among it): the upload page's uploads.
$(VENDOR)/uppy.min.mjs: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/uppy/dist/uppy.min.mjs $@

# Binaries the tests need that PyPI does not ship: Debian's redis-server and chromium.
services:
	@command -v redis-server >/dev/null || { \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server; }
	@command -v chromium >/dev/null || { \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

clean:
	rm -rf $(VENV) var node_modules $(VENDOR) .pytest_cache .mypy_cache .ruff_cache
