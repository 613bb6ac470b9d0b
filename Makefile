# fraiseql subscriptions: a Go engine shipped as a CPython extension.
#   make demo   build, install and run the Phase 1 example
#   make test   everything: Go vet and tests, fuzzing, wheel, pytest, tox matrix
#   make bench  benchmarks, writes BENCHMARKS.md and bench/chart.png
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
FUZZTIME   ?= 20s

.PHONY: demo test go-test fuzz wheel install pytest tox services bench clean node-deps cgocheck2

$(VENV)/.ok: requirements-dev.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements-dev.txt
	touch $@

# flock: one build at a time in this tree (gen/, build/ and dist/ are shared).
wheel: $(VENV)/.ok
	flock .build.lock sh -c 'rm -rf dist build && $(VPY) -m build --wheel --outdir dist .'

install: wheel
	flock .build.lock $(VPY) -m pip install -q --force-reinstall --no-deps dist/*.whl

demo: install
	cd examples && ../$(VPY) phase1_demo.py

services:
	@command -v redis-server >/dev/null || { echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

go-test: services
	test -z "$$(gofmt -l subscriptions pyapi internal)"
	$(PY_CGO) go vet ./...
	$(PY_CGO) go test -race -count=1 ./...

fuzz:
	@for t in $$(go test -list 'Fuzz.*' ./subscriptions | grep ^Fuzz); do \
	  echo "fuzzing $$t for $(FUZZTIME)"; \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./subscriptions || exit 1; \
	done

# The npm graphql-ws client that tests/test_asgi_node_client.py runs in Node.
node-deps:
	npm ci --prefix tests/node --no-audit --no-fund

pytest: install services node-deps
	cd tests && ../$(VPY) -m pytest -q -p no:cacheprovider .

tox: $(VENV)/.ok services
	@test -n "$(TOX_ENVS)" || { echo 'no CPython 3.9-3.13 found under $(PYENV_ROOT)'; exit 1; }
	PATH="$(TOX_PATH)" $(VENV)/bin/tox -e $(TOX_ENVS)

# The hand-written entry points under Go's strict pointer checks: a wheel
# built with GOEXPERIMENT=cgocheck2, unpacked beside the installed one and
# first on the path, runs the tests that cross them.
CGOCHECK_DIR := build-cgocheck2
cgocheck2: $(VENV)/.ok
	flock .build.lock sh -c 'rm -rf build $(CGOCHECK_DIR) && GOEXPERIMENT=cgocheck2 $(VPY) -m build --wheel --outdir $(CGOCHECK_DIR) . && $(VPY) -m zipfile -e $(CGOCHECK_DIR)/*.whl $(CGOCHECK_DIR)/site'
	cd tests && PYTHONPATH=../$(CGOCHECK_DIR)/site ../$(VPY) -m pytest -q -p no:cacheprovider \
	  test_fastpath.py test_hardening_bad_input.py test_subscriptions_phase1.py test_graphql_semantics.py

test: go-test fuzz pytest cgocheck2 tox

bench: install services
	$(VPY) -m pip install -q -r bench/requirements.txt
	$(VPY) bench/run.py

clean:
	rm -rf $(VENV) build dist gen/_* .tox python/*.egg-info $(CGOCHECK_DIR)
