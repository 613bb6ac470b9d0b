# fraiseql subscriptions: a Go engine shipped as a CPython extension.
#   make demo   build, install and run the Phase 1 example
#   make test   everything: lint and types, Go vet and tests, fuzzing, release wheels
#               and sdist (each installed and tested), the pytest suite on every wheel (tox)
#   make wheels dist/: the sdist and manylinux2014 wheels for CPython 3.9-3.13, each
#               tested in a fresh venv with no Go on PATH
#   make bench  benchmarks, writes BENCHMARKS.md and bench/chart.png
#   make bench-schema  what an executor's schema costs, into BENCHMARKS.md (only when asked)
#   make mutate mutation testing of the engine, buses, pyapi and C, Python package
#               (slow; not part of make test, which runs the driver's own test)
#   make asan   the C entry points under AddressSanitizer and UBSan (see tools/asan)
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON     ?= python3
VENV       := .venv
VPY        := $(VENV)/bin/python
export GOFLAGS := -mod=mod
# pyapi/fastcall.c includes Python.h: every go command that builds pyapi
# (vet, test, build) needs an interpreter's include folder.
PY_CGO     = CGO_CFLAGS="-O2 -g -I$$($(PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['include'])")"
# Every CPython 3.9-3.13 that pyenv keeps, so tox finds them without set-up.
PYENV_ROOT ?= $(HOME)/.pyenv
PY_BINS    := $(foreach v,9 10 11 12 13,$(firstword $(wildcard $(PYENV_ROOT)/versions/3.$(v).*/bin)))
comma      := ,
space      := $(eval) $(eval)
TOX_PATH   := $(subst $(space),:,$(strip $(PY_BINS))):$(PATH)
TOX_ENVS   := $(subst $(space),$(comma),$(strip $(foreach v,9 10 11 12 13,$(if $(wildcard $(PYENV_ROOT)/versions/3.$(v).*/bin/python3.$(v)),py3$(v)))))
# A count, not a duration: Go ≤ 1.26's fuzz coordinator can report its own -fuzztime deadline
# as a failure ("context deadline exceeded", no input written) when a loaded machine keeps a
# worker busy past it (golang/go#75804); a count has no deadline to race.
FUZZTIME   ?= 50000x

# The interpreter's own tag (cp311), to pick its wheel from dist/.
VPY_TAG     = $(shell $(VPY) -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
# PATH without any folder that holds a `go`: the wheels must work with no Go installed.
define path_without_go
$$(printf %s "$(1)" | tr : '\n' | while read -r d; do [ -n "$$d" ] && [ ! -e "$$d/go" ] && printf '%s:' "$$d"; done)
endef

.PHONY: demo test go-test fuzz wheel install pytest tox services browser bench bench-schema clean node-deps mutate mutate-check cgocheck2 \
        lint stubtest sdist sdist-check wheels install-dist packaging-test build-deps asan

$(VENV)/.ok: requirements-dev.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements-dev.txt
	touch $@

# A quick local wheel for development (the host's gcc, tagged linux_x86_64) in build/dev/.
# flock: one build at a time in this tree (gen/ and build/ are shared).
wheel: $(VENV)/.ok
	flock .build.lock sh -c 'rm -rf build/dev build/lib* build/bdist* && $(VPY) -m build --wheel --outdir build/dev .'

install: wheel
	flock .build.lock $(VPY) -m pip install -q --force-reinstall --no-deps build/dev/*.whl

# ---- Release artifacts: dist/ holds the sdist and one manylinux wheel per CPython ----
# The host C compiler (the sdist build) and readelf (the wheel checks).
build-deps:
	@command -v cc >/dev/null && command -v readelf >/dev/null || { echo "installing gcc, binutils"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc binutils >/dev/null; }

sdist: $(VENV)/.ok
	mkdir -p dist && rm -f dist/*.tar.gz
	$(VPY) -m build --sdist --outdir dist .

# Built from the sdist with zig's clang (glibc 2.17), repaired by auditwheel, and each
# one installed into a fresh venv and run against the phase 1 tests with no Go on PATH.
wheels: sdist build-deps
	$(VPY) tools/wheels.py dist/*.tar.gz

# The sdist as pip on a platform without a wheel sees it: built by pip (host C compiler,
# Go on PATH) in a fresh venv, then the phase 1 tests against that install.
sdist-check: sdist build-deps
	rm -rf build/sdist-venv && $(PYTHON) -m venv build/sdist-venv
	build/sdist-venv/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check dist/*.tar.gz \
	  $$(grep -E '^pytest(-asyncio|-timeout)?==' requirements-test.txt)
	cd tests && ../build/sdist-venv/bin/python -m pytest -q -p no:cacheprovider test_subscriptions_phase1.py
	rm -rf build/sdist-venv

# The release wheel for .venv's interpreter, into .venv (instead of make install's build).
install-dist: $(VENV)/.ok
	@test -f dist/*-$(VPY_TAG)-$(VPY_TAG)-*manylinux*.whl || { echo 'no $(VPY_TAG) wheel in dist/: run make wheels'; exit 1; }
	$(VPY) -m pip install -q --force-reinstall --no-deps dist/*-$(VPY_TAG)-$(VPY_TAG)-*manylinux*.whl

# ---- Lint and types ----
lint: $(VENV)/.ok
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY_CGO) go tool staticcheck ./...
	$(MAKE) stubtest

# The .pyi stubs against the module. Run from python/ so it is the source tree's: importing
# it does not load the Go extension, so no build is needed.
stubtest: $(VENV)/.ok
	cd python && ../$(VPY) -m mypy.stubtest fraiseql._fraiseql_rs.subscriptions

# Only what the demo needs: a fresh venv with this package, built by pip (its build
# requirements in pip's isolated build environment), none of the release or test tools.
DEMO_VENV := build/demo-venv
demo:
	rm -rf $(DEMO_VENV) && $(PYTHON) -m venv $(DEMO_VENV)
	flock .build.lock $(DEMO_VENV)/bin/python -m pip install -q --disable-pip-version-check .
	cd examples && ../$(DEMO_VENV)/bin/python phase1_demo.py

services:
	@command -v redis-server >/dev/null || { echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Headless Chromium for tests/test_sse_browser.py (driven by playwright-core from tests/node).
browser:
	@command -v chromium >/dev/null || { echo "installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

go-test: services
	test -z "$$(gofmt -l subscriptions pyapi internal)"
	$(PY_CGO) go vet ./...
	# -timeout: the race detector's run of the whole package takes minutes on a loaded machine.
	$(PY_CGO) go test -race -count=1 -timeout 25m ./...
	# The race detector's sync.Pool drops items at random, and allocates on its own: the tests of
	# allocation counts run without it.
	$(PY_CGO) go test -count=1 -run 'AllocateNothing|AllocatesTheFrameOnce' ./subscriptions

fuzz:
	@for t in $$(go test -list 'Fuzz.*' ./subscriptions | grep ^Fuzz); do \
	  echo "fuzzing $$t for $(FUZZTIME)"; \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./subscriptions || exit 1; \
	done

# Mutation testing (tools/mutate.py): each mutant's fate is read from what the tests
# printed (a `--- FAIL` or test panic, pytest's FAILED/ERROR lines), never from an exit
# status; a mutant that does not build is "not viable"; timeouts are counted beside the
# score. Areas: engine (subscriptions/ without the buses; the mutate tag leaves out the
# tests that need servers), buses (miniredis and internal/pgtest PostgreSQL), native
# (pyapi's Go and C, rebuilt with gopy per mutant, through their pytest subset), python
# (the asgi, aio, shared core, WebSocket and SSE transport modules). A Go mutant runs only
# the tests that run its line (each test's coverage alone, from the baseline), a Python one
# those that ran its function's body (coverage.py's per-test contexts); --no-select runs
# them all. Mutants no test can kill are listed, with the reason, in
# tools/mutate_equivalent.txt: reported apart, outside the score. Narrow it with MUTATE_ARGS, e.g.
#   make mutate MUTATE_ARGS="--area engine --file limits.go --limit 20"
#   make mutate MUTATE_ARGS="--area engine --mutant queue.go:43"   # the mutants of one site
# The report, with every survivor as file:line, goes to build/mutate/report.txt.
MUTATE_JOBS ?= 2
MUTATE_ARGS ?=
mutate: install services
	$(PY_CGO) nice $(VPY) tools/mutate.py --jobs $(MUTATE_JOBS) $(MUTATE_ARGS)

# The driver against planted suites: an assert-nothing suite scores 0, an asserting one kills.
mutate-check: $(VENV)/.ok
	$(VPY) -m pytest -q -p no:cacheprovider tools/test_mutate.py

# The npm graphql-ws and graphql-sse clients and playwright-core that the tests run in Node.
node-deps:
	npm ci --prefix tests/node --no-audit --no-fund

# test_packaging.py checks dist/ and runs builds: make test runs it after make wheels.
PYTEST_SUITE := -q -p no:cacheprovider --ignore=test_packaging.py .

pytest: install services browser node-deps
	cd tests && ../$(VPY) -m pytest $(PYTEST_SUITE)

# Each interpreter runs the tests against its release wheel from dist/ (make wheels),
# installed as is (--installpkg: tox builds nothing), with no Go on PATH: the oldest and the
# newest CPython (TOX_FULL) the whole suite, the others what differs between interpreters
# (NATIVE_TESTS: the extension, its C entry points and the collector, asyncio's ready
# descriptor, the protocol core). Then the web-facing tests run on CPython 3.13 with the
# newest FastAPI, Starlette, uvicorn, ... (latest-frameworks). TOX_FULL="py39 py310 py311
# py312 py313" runs everything everywhere.
TOX_FULL     ?= py39 py313
NATIVE_TESTS := test_fastpath.py test_readahead.py test_reentrancy.py test_small_stacks.py \
                test_executor_churn.py test_control_ids.py test_encode.py test_subscriptions_phase1.py \
                test_graphql_semantics.py test_hardening_bad_input.py test_hardening_fork.py \
                test_hardening_isolation.py test_hardening_memory.py test_hardening_secrets.py \
                test_hardening_threads.py test_engine_lifecycle.py test_aio.py test_asgi_protocol.py
tox: $(VENV)/.ok services browser node-deps
	@test -n "$(TOX_ENVS)" || { echo 'no CPython 3.9-3.13 found under $(PYENV_ROOT)'; exit 1; }
	@for e in $(subst $(comma),$(space),$(TOX_ENVS)); do \
	  w=$$(ls dist/*-cp$${e#py}-cp$${e#py}-*manylinux*.whl 2>/dev/null) || { echo "no $$e wheel in dist/: run make wheels"; exit 1; }; \
	  case " $(TOX_FULL) " in *" $$e "*) tests= ;; *) tests="$(NATIVE_TESTS)" ;; esac; \
	  echo "tox -e $$e --installpkg $$w $${tests:+-- $$tests}"; \
	  PATH="$(call path_without_go,$(TOX_PATH))" $(VENV)/bin/tox -e $$e --installpkg $$w $${tests:+-- $$tests} || exit 1; \
	done
	@w=$$(ls dist/*-cp313-cp313-*manylinux*.whl 2>/dev/null) || { echo "no cp313 wheel in dist/: run make wheels"; exit 1; }; \
	  echo "tox -e latest-frameworks --installpkg $$w"; \
	  PATH="$(call path_without_go,$(TOX_PATH))" $(VENV)/bin/tox -e latest-frameworks --installpkg $$w

# The hand-written entry points under Go's strict pointer checks: a wheel
# built with GOEXPERIMENT=cgocheck2, unpacked beside the installed one and
# first on the path, runs the tests that cross them.
CGOCHECK_DIR := build-cgocheck2
cgocheck2: $(VENV)/.ok
	flock .build.lock sh -c 'rm -rf build $(CGOCHECK_DIR) && GOEXPERIMENT=cgocheck2 $(VPY) -m build --wheel --outdir $(CGOCHECK_DIR) . && $(VPY) -m zipfile -e $(CGOCHECK_DIR)/*.whl $(CGOCHECK_DIR)/site'
	cd tests && PYTHONPATH=../$(CGOCHECK_DIR)/site ../$(VPY) -m pytest -q -p no:cacheprovider \
	  test_fastpath.py test_readahead.py test_hardening_bad_input.py test_subscriptions_phase1.py test_graphql_semantics.py

# pyapi/fastcall.c and encode.c built with AddressSanitizer and UBSan into a program that
# embeds CPython, with a C stand-in for the Go exports (tools/asan/engine.c): Go's runtime
# does not run inside an ASan process. tools/asan/drive.py calls every entry point, with
# finalizers and threads calling them back; any invalid access or undefined behaviour
# aborts with the sanitizer's report. Needs a CPython built with a shared libpython.
ASAN_DIR   := build/asan
PY_EMBED    = $$($(PYTHON) -c "import sysconfig as s; v = s.get_config_var; print('-I' + s.get_paths()['include'], \
              '-L' + v('LIBDIR'), '-Wl,-rpath,' + v('LIBDIR'), '-lpython' + v('LDVERSION'), v('LIBS') or '', v('SYSLIBS') or '')")
asan: build-deps
	mkdir -p $(ASAN_DIR)
	cc -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	  -Ipyapi -Itools/asan tools/asan/engine.c pyapi/fastcall.c pyapi/encode.c -o $(ASAN_DIR)/fq_asan $(PY_EMBED)
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(ASAN_DIR)/fq_asan tools/asan/drive.py

packaging-test: $(VENV)/.ok build-deps
	# The source tree is enough: these tests read dist/ and the sources, and install the
	# wheel (beside the newest fraiseql from the index) into venvs of their own.
	cd tests && PYTHONPATH=../python ../$(VPY) -m pytest -q -p no:cacheprovider test_packaging.py

# The whole suite runs once per interpreter, in tox, against the release wheels (the .venv
# interpreter's included): no separate pytest run in .venv.
test: lint mutate-check go-test fuzz wheels sdist-check packaging-test cgocheck2 asan tox

bench: install services
	$(VPY) -m pip install -q -r bench/requirements.txt
	$(VPY) bench/run.py

# What an executor's schema costs (W1, W2, registration, the Go benchmarks), into BENCHMARKS.md's
# "With a schema" section; not part of make bench, which keeps that section.
bench-schema: install
	$(VPY) bench/bench_schema.py

clean:
	rm -rf $(VENV) build dist gen/_* .tox python/*.egg-info $(CGOCHECK_DIR)
