# syncvp-pipeline: every target sets itself up (creates .venv and installs the pinned project on first use).
#   make repro   run the default pipeline (dvc repro; independent stages side by side, pipelines/waves.py)
#                and print the results table
#   make test    lint (ruff check, ruff format --check) and run the test suite (what CI runs)
#   make ui      start the Prefect server on 127.0.0.1:$SYNCVP_PREFECT_PORT (4200) and print its URL;
#                `make ui-stop` stops it
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# Prefect: project-local state, no telemetry, patient ephemeral start-up (see README, "Prefect").
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_RESULTS_LOCAL_STORAGE_PATH ?= $(PREFECT_HOME)/storage
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export DVC_NO_ANALYTICS := 1
export PATH := $(BIN):$(PATH)

.PHONY: repro test ui ui-stop install clean-prefect

install: $(STAMP)

# The install uses uv (pinned below; about 35 s on a fresh machine against 2.5 to 4 min for pip,
# which unpacks serially and byte-compiles every module). uv does not read pip's configuration, so
# the extra indexes and find-links pip is configured with (a machine's local package index) are
# handed to it. Where uv cannot be installed or fails, pip does the same install.
UV_VERSION := 0.13.9
PIP_INSTALL := install -c requirements.lock -e '.[dev]' --config-settings editable_mode=compat

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION); then \
	  idx="$$($(BIN)/python -m pip config get global.extra-index-url 2>/dev/null || true)"; \
	  links="$$($(BIN)/python -m pip config get global.find-links 2>/dev/null || true)"; \
	  UV_EXTRA_INDEX_URL="$${PIP_EXTRA_INDEX_URL:-$$idx}" UV_FIND_LINKS="$${PIP_FIND_LINKS:-$$links}" \
	  $(BIN)/uv pip $(PIP_INSTALL) --python $(BIN)/python --index-strategy unsafe-best-match -q; \
	else false; fi \
	|| $(BIN)/python -m pip $(PIP_INSTALL) -q --disable-pip-version-check
	@touch $(STAMP)

# params are validated first: DVC deletes a stage's outputs before the stage could refuse them
repro: $(STAMP)
	@$(BIN)/python -m syncvp check-params params.yaml >/dev/null
	@if dvc status -q >/dev/null 2>&1; then dvc repro; \
	else $(BIN)/python -m pipelines.server run -- $(BIN)/python -m pipelines.waves; fi
	@$(BIN)/python -m pipelines.summary

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

ui: $(STAMP)
	@$(BIN)/python -m pipelines.server start

ui-stop: $(STAMP)
	@$(BIN)/python -m pipelines.server stop

clean-prefect:
	rm -rf $(PREFECT_HOME)/storage
