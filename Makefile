# Acute response dispatcher. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

demo: $(STAMP) ## run broker + database + workers + demo traffic (embedded unless env says otherwise)
	$(BIN)/dispatcher demo

up: $(STAMP) ## run broker + database + workers, no traffic
	$(BIN)/dispatcher up

promtool: ## install promtool (Debian's prometheus package) when missing; skipped if not root
	@command -v promtool >/dev/null && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "promtool missing and not root: the Prometheus rule tests will be skipped"; exit 0; fi; \
	echo "installing promtool (apt-get install prometheus)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	  || echo "apt-get install prometheus failed: the Prometheus rule tests will fail"; \
	systemctl disable --now prometheus >/dev/null 2>&1 || true

test: $(STAMP) promtool ## the full test suite: unit, integration (real broker + database), checks
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; \
	exit $$rc

unit: $(STAMP) ## unit tests only (no I/O)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check dispatcher tests
	$(BIN)/ruff format --check dispatcher tests
	$(BIN)/mypy

check: lint unit ## lint + types + unit tests

schemas: $(STAMP) ## regenerate schemas/*.json from the models
	$(BIN)/dispatcher schemas write

bench: $(STAMP) ## end-to-end benchmark (~4 min): bench-results/, docs/benchmark.md
	@if [ ! -f $(VENV)/.installed-bench ] || [ pyproject.toml -nt $(VENV)/.installed-bench ]; then \
	  $(BIN)/python -m pip install --quiet -e '.[dev,bench]' && touch $(VENV)/.installed-bench; fi
	@start=$$(date +%s); $(BIN)/python -m bench; rc=$$?; \
	echo "make bench: $$(( $$(date +%s) - start )) s"; exit $$rc
.PHONY: bench

EVAL_DIR := evaluation-results
evaluate: $(STAMP) ## clinical evaluation on a simulated cohort (~3 min): evaluation-results/, docs/evaluation.md
	@if [ ! -f $(VENV)/.installed-bench ] || [ pyproject.toml -nt $(VENV)/.installed-bench ]; then \
	  $(BIN)/python -m pip install --quiet -e '.[dev,bench]' && touch $(VENV)/.installed-bench \
	  || echo "make evaluate: the bench extra (matplotlib) did not install: no plot"; fi
	@start=$$(date +%s); set -e; \
	plot=""; if $(BIN)/python -c 'import matplotlib' 2>/dev/null; then plot="--plot $(EVAL_DIR)/evaluation.png"; fi; \
	$(BIN)/dispatcher evaluate generate --citizens 300 --days 14 --seed 1 --out $(EVAL_DIR); \
	$(BIN)/dispatcher evaluate run --events $(EVAL_DIR)/EVENTS.ndjson --labels $(EVAL_DIR)/LABELS.ndjson \
	  --json --markdown $(EVAL_DIR)/report.md --doc docs/evaluation.md $$plot > $(EVAL_DIR)/report.json; \
	cat $(EVAL_DIR)/report.md; \
	echo "make evaluate: $$(( $$(date +%s) - start )) s (report: $(EVAL_DIR)/report.md, docs/evaluation.md)"
.PHONY: evaluate

mutation: $(STAMP) ## mutation testing of the pure core (~15 min on 2 cores; not in make test): docs/testing.md
	@start=$$(date +%s); $(BIN)/python -m tests.mutation --show-survivors $(MUTATION_ARGS); rc=$$?; \
	echo "make mutation: $$(( $$(date +%s) - start )) s"; exit $$rc
.PHONY: mutation

clean: ## remove the virtualenv and the embedded stack's state
	rm -rf $(VENV) .dispatcher

.PHONY: help install demo up promtool test unit lint check schemas clean
