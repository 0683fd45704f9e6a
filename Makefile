# orgplane: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test test-fast lint fmt bench images docs clean k8s

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt sdk/python/pyproject.toml
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip uv
	@# Bytecode at install: with PYTHONDONTWRITEBYTECODE set (as on our machines) every process,
	@# and the tests start hundreds, would otherwise compile each module it imports (~1 s CPU).
	@VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q --compile-bytecode -c constraints.txt -e '.[dev]' \
		-e 'sdk/python[redis]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install orgplane with its pinned dependencies

run: $(STAMP) ## Run the embedded platform (SQLite, local provisioner, memory stores) and print how to log in
	$(BIN)/orgplane up

# Workers for `make test`. More than the cores: most tests wait on processes, containers and
# timers rather than compute. --dist loadgroup with no groups hands out one test at a time, slow
# tests first (see tests/conftest.py).
TEST_WORKERS ?= 4
# The tests write bytecode even where PYTHONDONTWRITEBYTECODE is set (as on our machines): each
# xdist worker collects every test module and the tests start hundreds of control planes and
# instances, and without cached bytecode each of them compiles what it imports again (measured:
# collection 8.8 -> 5.0 CPU-s, a control plane's imports 1.68 -> 1.51 CPU-s).
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE

test: $(STAMP) ## Run the whole test suite in parallel (PostgreSQL, Redis, Docker, helm, Chromium tests included)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP) ## Unit and API tests on SQLite, no services: the edit-test loop (under a minute)
	$(TEST_ENV) $(BIN)/python -m pytest -n 2 tests/unit tests/api -m "not postgres" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy (strict) and the import-layering contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Run the benchmarks (BENCH_ARGS="--all", "--list" or names); table + benchmarks/results/*.json
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

k8s: $(STAMP) ## Build Kubernetes 1.20.2 from Debian's source once (cached in /var/cache/orgplane) and fetch Traefik 3.0.4, for the cluster tests
	scripts/k8s/build.sh
	scripts/k8s/traefik.sh

images: ## Build the control-plane, org-instance, Traefik and Redis images (offline; see scripts/build-images.sh)
	scripts/build-images.sh

docs: $(STAMP) ## Regenerate docs/configuration.md and the contract's JSON Schemas (docs/contract/)
	$(BIN)/orgplane config docs > docs/configuration.md
	$(BIN)/orgplane contract schemas --out docs/contract >/dev/null

lock: ## Re-pin constraints.txt from pyproject.toml (needs uv)
	$(BIN)/uv pip compile pyproject.toml --extra dev -q -o constraints.txt

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
