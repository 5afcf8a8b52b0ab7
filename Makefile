# Thin front end to meson/ninja. The two documented entry points are
#   make run    install what is missing, build, serve examples/hello.py on :8000
#   make test   install what is missing, build, run unit + integration tests,
#               the core/settings/arbiter groups again against the
#               pip-installed console script ($(BUILD)/venv), then unit +
#               integration again with an ASan+UBSan build, then each
#               libFuzzer target for 30 s (TEST_FUZZ_SECONDS)
# Everything else (deps, build, fuzz, bench, clean) is a building block.

# Debian's interpreter: the one whose python3-embed we link and whose
# packages (pytest, requests, flask, django...) the tests use. A python3
# earlier on PATH (pyenv, venv) would have neither.
PYTHON      ?= /usr/bin/python3
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
HOST        ?= 127.0.0.1
PORT        ?= 8000
FUZZ_SECONDS ?= 60
# what `make test` (CI) gives each fuzz target
TEST_FUZZ_SECONDS ?= 30
# Warnings are errors everywhere, so a warning never surprises anyone in CI.
WERROR      ?= true
NINJA_JOBS  ?= 2
PYTEST_ARGS ?=

MESON_OPTS  = -Dpython=$(PYTHON) -Dwerror=$(WERROR)
# (kept in a variable: a literal comma inside $(call ...) would split it)
ASAN_MESON_OPTS = $(MESON_OPTS) -Db_sanitize=address,undefined -Db_lundef=false

# Any sanitizer report must fail the run. Leak checking stays off: the
# embedded CPython interpreter keeps interned objects alive until exit by
# design, which LeakSanitizer would report as leaks in every process.
SAN_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=0 \
          UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

PYTEST = $(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

# The console-script front end: a venv of $(PYTHON) (seeing Debian's
# packages, which the test apps import: flask, django) with this tree
# pip-installed into it. pip builds the wheel with meson-python, which build
# isolation fetches from PyPI.
VENV        ?= $(BUILD)/venv
# The test groups (tests/integration/conftest.py) run again against it.
CONSOLE_GROUPS ?= core or settings or arbiter
# The integration suites get the venv (tests of the installed package and of
# both front ends use it) when it has been built.
VENV_ENV = $$([ -x $(VENV)/bin/cgunicorn ] && echo CGUNICORN_VENV=$(abspath $(VENV)))
PIP_ENV  = PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CONSTRAINT=$(CURDIR)/tests/requirements.txt

# Packages some integration tests import that Debian's interpreter does not
# have (the ASGI frameworks, uvloop, PasteDeploy and Pyramid,
# prometheus-client...), pip-installed once into a folder the tests find
# through CG_TEST_SITE: every package of tests/requirements.txt from its
# "# test-site" line to its "# bench" line, pinned there. Reinstalled when
# that file changes.
TEST_SITE  ?= $(BUILD)/test-site
TEST_SITE_PKGS = $(shell sed -n '/^\# test-site/,/^\# bench/p' tests/requirements.txt | grep -v '^\#')
TEST_SITE_ENV = CG_TEST_SITE=$(abspath $(TEST_SITE))

# meson setup refuses an already configured directory, and `meson configure`
# needs one: pick whichever applies. $(1) = directory, $(2) = options.
define meson_setup
	@if [ -f $(1)/build.ninja ]; then \
		echo "meson configure $(1) $(2)"; meson configure $(1) $(2); \
	else \
		echo "meson setup $(1) $(2)"; meson setup $(1) $(2); \
	fi
endef

.PHONY: all deps build run test docs docs-check unit venv test-site integration integration-console test-fleet test-pythons asan asan-build asan-unit asan-integration fuzz bench bench-h2 bench-h2-callgrind bench-tls bench-tls-callgrind bench-venv bench-asgi bench-asgi-callgrind bench-asgi-ws bench-gevent bench-frontends bench-observability bench-slowloris bench-balance clean

all: build

deps:
	@tools/deps.sh

build: deps
	$(call meson_setup,$(BUILD),$(MESON_OPTS))
	ninja -C $(BUILD) -j $(NINJA_JOBS)

run: build
	./$(BUILD)/cgunicorn --chdir $(CURDIR)/examples -b $(HOST):$(PORT) hello:app

# Unit tests, the pip-installed package, integration tests (the standalone
# executable: every group; the console script: CONSOLE_GROUPS), then unit and
# integration under ASan+UBSan, then every fuzz target from the repository's
# seeds (a crash fails the run). The last thing printed is the fuzz run's
# final stats.
test: build
	$(MAKE) --no-print-directory docs-check unit venv test-site
	$(MAKE) --no-print-directory integration integration-console
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# docs/settings.md is generated from the settings table; a stale copy fails.
docs: build
	./$(BUILD)/cgunicorn --dump-settings-json | $(PYTHON) tools/gen_settings_doc.py - -o docs/settings.md

docs-check:
	@./$(BUILD)/cgunicorn --dump-settings-json | $(PYTHON) tools/gen_settings_doc.py - -o $(BUILD)/settings.md
	@diff -u docs/settings.md $(BUILD)/settings.md || \
		{ echo "docs/settings.md is stale: run 'make docs' and commit it"; exit 1; }
	@echo "docs/settings.md is up to date"

unit:
	meson test -C $(BUILD) --print-errorlogs --num-processes $(NINJA_JOBS)

# (Re)installs this tree into the venv: run once per `make test`.
venv:
	@[ -x $(VENV)/bin/python ] || { echo "$(PYTHON) -m venv --system-site-packages $(VENV)"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); }
	$(PIP_ENV) $(VENV)/bin/pip install -q --no-deps --force-reinstall .
	$(VENV)/bin/cgunicorn --version

# Once per build directory; a failed install (no PyPI) is not an error.
test-site:
	@want=$$(sha256sum tests/requirements.txt | cut -d' ' -f1); \
	[ "$$(cat $(TEST_SITE)/.installed 2>/dev/null)" = "$$want" ] || { \
		rm -rf $(TEST_SITE); \
		echo "pip install --target $(TEST_SITE) $(TEST_SITE_PKGS)"; \
		$(PIP_ENV) $(PYTHON) -m pip install -q --no-deps --only-binary=:all: --target $(TEST_SITE) \
			$(TEST_SITE_PKGS) && echo "$$want" >$(TEST_SITE)/.installed || \
			echo "test-site: could not install the test packages: their tests will skip"; }

integration:
	env $(VENV_ENV) $(TEST_SITE_ENV) CGUNICORN_BIN=$(CURDIR)/$(BUILD)/cgunicorn $(PYTEST)

# The console-script front end, whose master is a Python process.
integration-console:
	@[ -x $(VENV)/bin/cgunicorn ] || { echo "no $(VENV)/bin/cgunicorn: run 'make venv' first"; exit 1; }
	env $(VENV_ENV) $(TEST_SITE_ENV) CGUNICORN_BIN=$(abspath $(VENV))/bin/cgunicorn $(PYTEST) -m "$(CONSOLE_GROUPS)"

# Only the fleet test (three hosts behind nginx, then HAProxy, in network
# namespaces: root only, else it skips), with its figures printed. `make
# test` runs it too, within the integration suite.
test-fleet: build
	env $(TEST_SITE_ENV) CGUNICORN_BIN=$(CURDIR)/$(BUILD)/cgunicorn \
		$(PYTHON) -m pytest tests/integration/test_fleet.py -v $(PYTEST_ARGS)

# pip install and pip wheel of this tree under each interpreter (pyenv's
# 3.10, 3.12, 3.13 and Debian's), each venv then serving an app from a
# package installed only there, plus a smoke run of the integration suite.
test-pythons:
	$(PIP_ENV) $(PYTHON) tools/test_pythons.py

asan: asan-build asan-unit asan-integration

asan-build: deps
	$(call meson_setup,$(ASAN_BUILD),$(ASAN_MESON_OPTS))
	ninja -C $(ASAN_BUILD) -j $(NINJA_JOBS)

asan-unit:
	$(SAN_ENV) meson test -C $(ASAN_BUILD) --print-errorlogs --num-processes $(NINJA_JOBS)

asan-integration:
	env $(SAN_ENV) $(VENV_ENV) $(TEST_SITE_ENV) CGUNICORN_BIN=$(CURDIR)/$(ASAN_BUILD)/cgunicorn $(PYTEST)

fuzz:
	@tools/deps.sh fuzz
	@if [ -f $(FUZZ_BUILD)/build.ninja ]; then \
		meson configure $(FUZZ_BUILD) $(MESON_OPTS) -Dfuzz=true; \
	else \
		CC=clang meson setup $(FUZZ_BUILD) $(MESON_OPTS) -Dfuzz=true; \
	fi
	ninja -C $(FUZZ_BUILD) -j $(NINJA_JOBS)
	PYTHON=$(PYTHON) FUZZ_SECONDS=$(FUZZ_SECONDS) tools/fuzz.sh $(FUZZ_BUILD)

bench: build
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn bash bench/run.sh

# Each worker's share of the requests, cgunicorn's gthread, sync, asgi and gevent workers
# beside Gunicorn 27's and Uvicorn's worker class (bench-venv; gevent from the test-site),
# keep-alive and close (bench/balance.sh).
bench-balance: build
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn GUNICORN=$${GUNICORN:-$(abspath $(BENCH_VENV))/bin/gunicorn} \
		GEVENT_SITE=$${GEVENT_SITE:-$(abspath $(TEST_SITE))} bash bench/balance.sh

# HTTP/2 over TLS with h2load, beside nginx (bench/h2.sh).
bench-h2: build
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn bash bench/h2.sh
# The same under callgrind: user-space instructions per request (bench/h2-callgrind.sh).
bench-h2-callgrind: build
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn bash bench/h2-callgrind.sh

# HTTPS cost: keep-alive and a new connection per request, beside nginx
# with the same certificate and protocols (bench/tls.sh).
bench-tls: build
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn bash bench/tls.sh
# The same under callgrind: user-space instructions per request (bench/tls-callgrind.sh).
bench-tls-callgrind: build
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn bash bench/tls-callgrind.sh

# The console script against the standalone executable: CPU per request and
# memory (bench/frontends.sh).
bench-frontends: build venv
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn CGUNICORN_CONSOLE=$(abspath $(VENV))/bin/cgunicorn \
		bash bench/frontends.sh

# The ASGI peers (Uvicorn, Granian, Gunicorn 27) and uvloop, pinned in
# tests/requirements.txt, in a venv of their own.
BENCH_VENV ?= $(BUILD)/bench-venv
BENCH_PKGS = $(shell sed -n '/^\# bench/,$$p' tests/requirements.txt | grep -v '^\#' | cut -d= -f1) uvloop packaging websockets
bench-venv:
	@[ -x $(BENCH_VENV)/bin/python ] || $(PYTHON) -m venv $(BENCH_VENV)
	$(PIP_ENV) $(BENCH_VENV)/bin/pip install -q $(BENCH_PKGS)

# -k asgi beside Uvicorn, Granian, Gunicorn 27's asgi worker and nginx, one run.
bench-asgi: build bench-venv
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn BENCH_VENV=$(abspath $(BENCH_VENV)) \
		SERVERS="cgunicorn-asgi uvicorn granian-asgi gunicorn-asgi nginx" bash bench/run.sh

# -k gevent beside Gunicorn 27's gevent worker (gevent from the test-site), one run.
bench-gevent: build bench-venv test-site
	@tools/deps.sh bench
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn BENCH_VENV=$(abspath $(BENCH_VENV)) \
		GEVENT_SITE=$(abspath $(TEST_SITE)) SERVERS="cgunicorn-gevent gunicorn-gevent" bash bench/run.sh

# WebSocket echo messages/s and server CPU per message: -k asgi beside Uvicorn and Granian
# (bench/ws_echo.py, its own load client), one run.
# Instructions per request of -k asgi under callgrind, keep-alive and Connection: close
# (SERVER=uvicorn: Uvicorn's), free of the machine's load (bench/asgi-callgrind.sh).
bench-asgi-callgrind: build bench-venv
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn BENCH_VENV=$(abspath $(BENCH_VENV)) bash bench/asgi-callgrind.sh

bench-asgi-ws: build bench-venv
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn BENCH_VENV=$(abspath $(BENCH_VENV)) $(PYTHON) bench/ws_echo.py

# What metrics cost per request: off, --metrics-bind, --statsd-host, both
# (bench/observability.sh).
bench-observability: build
	@tools/deps.sh bench
	./$(BUILD)/bench/bench_obs_cost
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn bash bench/observability.sh

# gthread: the 16-deep pipelined load check, then throughput with 2,000 idle +
# 200 slowloris connections held open (fails under 80% of the unloaded figure;
# exit status 2: the machine was too busy for a verdict).
bench-slowloris: build
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn $(PYTHON) bench/slowloris.py --pipeline
	CGUNICORN=$(CURDIR)/$(BUILD)/cgunicorn $(PYTHON) bench/slowloris.py

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
