# Bootstrap from a bare Python 3.11+: every target creates what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OLD_CRYPTOGRAPHY := cryptography==45.0.7
PYTEST_ARGS ?=
# pytest-xdist worker processes for `make test` / `make test-fast` (0: one process, serially).
# Three on two cores: most end-to-end time is spent waiting on subprocesses, servers and disk.
PYTEST_WORKERS ?= 3
PYTEST_PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist worksteal)

.PHONY: demo test test-fast bench soak lint typecheck clean system-deps screenshots

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Wheels the throw-away environments of the demo, tests and benchmarks install from (never the
# network at test time): the pinned development set, and an older cryptography for the skew test.
wheelhouse/.fetched: $(STAMP) requirements-dev.txt
	mkdir -p wheelhouse
	$(PY) -m pip download -q --only-binary :all: -d wheelhouse -r requirements-dev.txt
	$(PY) -m pip download -q --no-deps --only-binary :all: -d wheelhouse "$(OLD_CRYPTOGRAPHY)"
	touch $@

# Node packages the tests drive (npm `peer`, `peerjs`, ts-mls), from the committed lock.
NODE_STAMP := tools/node/node_modules/.installed
$(NODE_STAMP): tools/node/package.json tools/node/package-lock.json
	cd tools/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	touch $@

## Debian packages the integration tests start on loopback (redis, coturn, chromium, nginx, tmux).
system-deps:
	bash tools/setup/system-packages.sh

## The main job: build the plugin wheels, install them into .demo/env, verify, lock and run the
## scripted two-peer session with the pinned set.
demo: $(STAMP) wheelhouse/.fetched
	$(PY) tools/demo.py

## The whole test suite (long end-to-end tests included; they are marked `e2e`), after lint and
## strict type checks of every distribution.
## In parallel (PYTEST_WORKERS, above); `make test PYTEST_WORKERS=0` runs it serially.
test: $(STAMP) wheelhouse/.fetched $(NODE_STAMP) system-deps lint typecheck
	$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

## Quick loop while developing: everything but the e2e tests.
test-fast: $(STAMP) wheelhouse/.fetched
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not e2e" $(PYTEST_ARGS)

## Benchmarks (JSON in benchmarks/results/); `make bench ONLY=startup` runs one.
bench: $(STAMP) wheelhouse/.fetched
	$(PY) benchmarks/run.py $(if $(ONLY),--only $(ONLY),)

## The long soak (docs/operations.md "Soak run"): peer pairs over real WebRTC with link drops, peer
## kills and broker restarts, on one broker and on two over Redis; `make soak SOAK_SECONDS=1800`.
## The JSON reports are appended to benchmarks/results/soak.jsonl.
SOAK_SECONDS ?= 600
soak: $(STAMP) $(NODE_STAMP) system-deps
	mkdir -p benchmarks/results
	ENKRYPTED_SOAK_SECONDS=$(SOAK_SECONDS) ENKRYPTED_SOAK_REPORT=benchmarks/results/soak.jsonl \
		$(PY) -m pytest -m soak -s tests/soak $(PYTEST_ARGS)

## Screenshots of the chat TUI in docs/screenshots/ (docs/tui.md): the app headless at 80x24 on the
## tests' scripted chat service, Textual's SVG export turned into PNG by Chromium headless; and of
## the web chat (docs/webui.md, web-*.png): the page on the same service in headless Chromium.
screenshots: $(STAMP)
	$(PY) tools/tui_screenshots.py docs/screenshots
	$(PY) tools/webui_screenshots.py docs/screenshots

lint: $(STAMP)
	$(VENV)/bin/ruff check shell plugins registry tests tools benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy shell/src plugins/p2p/src plugins/p2p_memory/src plugins/ui_cli/src plugins/ui_web/src plugins/cryptography/src plugins/cryptography_nacl/src registry/src

clean:
	rm -rf $(VENV) .demo wheelhouse benchmarks/results tools/node/node_modules
