# openGPSoC: the single entry point for developers and CI. `make help` lists the targets.
# Everything runs through uv in the workspace venv; with a committed uv.lock the lock is
# used as is (--frozen), so a build never re-resolves dependencies behind your back.

SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= uv
FROZEN := $(if $(wildcard uv.lock),--frozen,)
UV_RUN := $(UV) run $(FROZEN)
ROLE ?= gp
PRACTICE ?= A81001
PROFILE ?= run
PYTEST_ARGS ?=

export PYTHONUNBUFFERED := 1

.PHONY: help sync run token test test-unit test-deploy helm bench infra-up infra-down infra-status lint clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

sync: ## install the workspace and dev tools into .venv
	$(UV) sync $(FROZEN)

run: sync ## run the whole platform (PostgreSQL, Kafka, services, gateway, demo data); Ctrl-C stops it
	$(UV_RUN) python -m devstack run

# uv's own messages go to stderr and the token is the only stdout line, so
# `TOKEN=$(make -s token ...)` captures exactly the token.
token: ## print a development token as the last line: make -s token ROLE=gp PRACTICE=A81001
	@$(UV_RUN) --quiet python -m devstack token --role '$(ROLE)' --practice '$(PRACTICE)'

test: sync ## run every test; the suite starts the PostgreSQL and Kafka it needs
	$(UV_RUN) pytest $(PYTEST_ARGS)

test-unit: sync ## run the tests that need no PostgreSQL or Kafka
	$(UV_RUN) pytest -m "not integration" $(PYTEST_ARGS)

test-deploy: sync ## chart, Dockerfiles, compose and dashboard checks
	$(UV_RUN) pytest deploy/tests $(PYTEST_ARGS)

helm: ## build the pinned Helm into tools/bin (from the Go module proxy)
	bash deploy/tools/install-helm.sh

bench: sync ## run the benchmarks (bench/)
	$(UV_RUN) python -m bench

infra-up: ## start just PostgreSQL and Kafka (PROFILE=run|test)
	$(UV_RUN) python -m devstack infra up --profile $(PROFILE)

infra-down: ## stop PostgreSQL and Kafka of PROFILE (run|test)
	$(UV_RUN) python -m devstack infra down --profile $(PROFILE)

infra-status: ## show whether PostgreSQL and Kafka of PROFILE are running
	$(UV_RUN) python -m devstack infra status --profile $(PROFILE)

lint: ## ruff
	$(UV_RUN) ruff check .

clean: ## remove .state (data, keys, logs); refuses while the stack runs
	$(UV_RUN) python -m devstack clean
