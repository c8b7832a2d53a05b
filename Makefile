# The two commands a new machine needs: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TRITON_VENV ?= .venv-triton
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup setup-triton-gpu prometheus demo test test-unit lint fmt proto proto-check deploy-check bench-parser bench-crop bench-overhead gpu-wheels gpu-check gpu-check-dry clean

setup: $(VENV)/.installed $(TRITON_VENV)/.installed prometheus

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(TRITON_VENV)/.installed: services/faceedit/devstack/triton-requirements.txt
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install --quiet --upgrade pip
	$(TRITON_VENV)/bin/pip install --quiet -r services/faceedit/devstack/triton-requirements.txt
	touch $@

## setup-triton-gpu: the local Triton's venv with onnxruntime-gpu, so `faceedit up --device cuda` parses on the GPU
setup-triton-gpu: $(VENV)/.installed
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install --quiet --upgrade pip
	$(TRITON_VENV)/bin/pip uninstall --quiet --yes onnxruntime
	$(TRITON_VENV)/bin/pip install --quiet -r services/faceedit/devstack/triton-requirements-gpu.txt
	touch $(TRITON_VENV)/.installed

## prometheus: promtool and prometheus from Debian's `prometheus` package (rule tests, `faceedit up --prometheus`).
## Installed without starting its service (policy-rc.d answers 101 while apt runs); a clear message when it cannot be.
prometheus:
	@if command -v promtool >/dev/null && command -v prometheus >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's prometheus package (promtool, prometheus)"; \
	  guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1; fi; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
	    >/dev/null) || echo "apt-get could not install the prometheus package" >&2; \
	  if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	fi; \
	command -v promtool >/dev/null && command -v prometheus >/dev/null || \
	  echo "promtool/prometheus missing: install Debian's prometheus package \
	(sudo apt-get install --no-install-recommends prometheus); the rule tests in make test need it" >&2

## demo: build the tiny models, start the local stack, run a three-edit cascade on the bundled portrait -> out/
demo: setup
	$(BIN)/faceedit demo --out out

## test: set up, check generated code and lint, run the unit and integration suites
test: setup proto-check lint
	$(PY) -m pytest

## test-unit: the fast unit tests alone (no process, no model build; `-m slow` are left out): seconds, for the edit loop
test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -m "not slow" -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd protos && ../$(BIN)/buf lint

fmt: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## proto: regenerate services/faceedit/v1 from protos/ (the only contract source)
proto: $(VENV)/.installed
	PYTHON=$(PY) protos/generate.sh

proto-check: $(VENV)/.installed
	@tmp=$$(mktemp -d) && PYTHON=$(PY) protos/generate.sh $$tmp >/dev/null 2>&1 && \
	if diff -r -x __pycache__ $$tmp/faceedit/v1 services/faceedit/v1; then echo "generated code is up to date"; \
	else echo "generated code is stale: run 'make proto' and commit" >&2; rm -rf $$tmp; exit 1; fi; rm -rf $$tmp

## deploy-check: kustomize + strict schema validation of both overlays, manifest properties, promtool rule tests
deploy-check: $(VENV)/.installed prometheus
	$(PY) -m pytest tests/unit/test_deploy*.py tests/unit/test_prometheus_config.py -q

bench-parser: setup
	$(BIN)/faceedit compare parser

bench-crop: setup
	$(BIN)/faceedit compare crop

bench-overhead: setup
	$(BIN)/faceedit compare overhead

## gpu-wheels: the wheels the GPU machine's image lacks -> build/gpu-wheels (carried to it; checked against 64 MiB)
gpu-wheels: $(VENV)/.installed
	PY=$(PY) deploy/gpu/gather.sh

## gpu-check: on the GPU machine (the device tool's run: see the README's "GPU check"), installs included, < 8 min
gpu-check:
	bash deploy/gpu/run.sh

## gpu-check-dry: the same cases with the tiny models on this machine's CPU (also in make test)
gpu-check-dry: setup
	$(BIN)/faceedit gpu-check --tiny --device cpu --parser-server standin --out out/gpu-check-dry

clean:
	rm -rf $(VENV) $(TRITON_VENV) out build models .pytest_cache .ruff_cache
