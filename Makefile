# The project's interface: CI and humans call the same targets.
#   make dev    install what is missing, synthesize, run the whole backend on 127.0.0.1
#   make test   install what is missing, synth every stage, cfn-lint, checkov, pytest
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK_OUT ?= cdk.out
STAGE ?= dev
PYTEST_ARGS ?=
# make test runs the tests on this many workers (pytest-xdist; tests/conftest.py keeps the
# end-to-end tests on one of them). TEST_WORKERS=0: one process, as plain pytest.
TEST_WORKERS ?= 2
# Extra flags for `python -m local` (make dev), e.g. LOCAL_ARGS="--failure-rate 0".
LOCAL_ARGS ?=
# make dev FRESH=1: start with empty tables and queues (deletes the stack's local state first).
FRESH ?=

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
# Synth, tests and the local stack never need real AWS credentials.
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install synth lint checkov typecheck test dev deploy redrive migrate-keys bench chaos openapi clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@# A venv whose creation was interrupted (Ctrl-C during the first `make dev`) has no pip: made again.
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The authorizer's JWT layer, for Lambda's platform (arm64, Python 3.14): binary wheels only,
# so pip needs no compiler and no Docker. `cdk synth` of an `auth: jwt` stage packages this folder.
JWT_LAYER := build/layers/jwt
$(JWT_LAYER)/.installed: infra/layers/jwt-requirements.txt $(VENV)/.installed
	rm -rf $(JWT_LAYER) && mkdir -p $(JWT_LAYER)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --no-deps --only-binary=:all: \
		--platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --implementation cp \
		--python-version 3.14 --target $(JWT_LAYER)/python -r infra/layers/jwt-requirements.txt
	@touch $@

# checkov has a tool environment of its own: its pins (boto3 among them) clash with requirements-dev.txt.
# Installed by the first `make checkov` / `make test` only (about 50 s), like the project's venv.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@$(CHECKOV_VENV)/bin/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed $(JWT_LAYER)/.installed node_modules/.installed ## install Python and npm dependencies (only what is missing)

# Synthesis runs only when something it reads changed (make compares the files' times with a
# stamp in cdk.out/). `make dev` leaves lambdas/ out: the local stack runs it from the source
# and reloads it on every save (--watch lambdas); test, deploy and chaos need it in the assets.
INFRA_INPUTS := app.py cdk.json requirements.txt package-lock.json $(VENV)/.installed $(JWT_LAYER)/.installed \
	node_modules/.installed $(shell find infra -type f -not -path '*/__pycache__/*' -not -name '*.pyc')
CODE_INPUTS := $(shell find lambdas -type f -not -path '*/__pycache__/*' -not -name '*.pyc')
SYNTH = @echo "synthesizing every stage into $(CDK_OUT)/ (npx cdk synth)"; mkdir -p build; \
	npx cdk synth --quiet --no-notices --output $(CDK_OUT) > build/synth.log 2>&1 \
	|| { cat build/synth.log; exit 1; }; touch $(CDK_OUT)/.synth-infra $(CDK_OUT)/.synth-all

$(CDK_OUT)/.synth-infra: $(INFRA_INPUTS)
	$(SYNTH)

$(CDK_OUT)/.synth-all: $(INFRA_INPUTS) $(CODE_INPUTS)
	$(SYNTH)

synth: $(CDK_OUT)/.synth-all ## synthesize every stage into cdk.out/ with the pinned CDK CLI (when an input changed)
	@ls $(CDK_OUT)/*.template.json

lint: synth ## ruff check, ruff format --check and cfn-lint on the synthesized templates
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint $(CDK_OUT)/*.template.json

# checkov on the synthesized templates only (not the assets in cdk.out/): 0 failed checks, or make fails.
# What this app accepts is acknowledged on each resource (infra/checkov_skips.py), never here.
# No call home: no platform download (--skip-download, BC_SKIP_MAPPING) and no version check.
CHECKOV_RUN = CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov \
	--framework cloudformation --skip-download --compact --quiet
checkov: synth $(CHECKOV_VENV)/.installed ## checkov on every synthesized template (fails on any failed check)
	$(CHECKOV_RUN) -f $(CDK_OUT)/*.template.json

typecheck: install ## mypy on lambdas/ and local/
	$(VENV)/bin/mypy

test: synth $(CHECKOV_VENV)/.installed ## synth every stage, cfn-lint + checkov the templates, ruff check + mypy, every test
	$(VENV)/bin/cfn-lint $(CDK_OUT)/*.template.json
	$(CHECKOV_RUN) -f $(CDK_OUT)/*.template.json
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

dev: $(CDK_OUT)/.synth-infra ## run the whole backend locally (HTTP :4000, WebSocket :4001); FRESH=1 starts empty
	@$(PY) -m local --stage $(STAGE) --cdk-out $(CDK_OUT) --watch lambdas $(if $(filter 1 yes true,$(FRESH)),--fresh) $(LOCAL_ARGS)

deploy: synth ## deploy one stage to AWS: make deploy STAGE=prod
	npx cdk deploy TaskBackend-$(STAGE) --app $(CDK_OUT)

redrive: install ## move DLQ messages back and re-run error tasks: make redrive STAGE=dev [TARGET=local]
	$(PY) -m ops.redrive --stage $(STAGE) --target $(or $(TARGET),aws) $(REDRIVE_ARGS)

migrate-keys: install ## copy an old-layout task table into the stage's: make migrate-keys STAGE=prod FROM_TABLE=<name> [TARGET=local]
	$(if $(FROM_TABLE),,$(error FROM_TABLE=<table> is required: the old-layout table to copy from))
	$(PY) -m ops.migrate_keys --stage $(STAGE) --target $(or $(TARGET),aws) --from-table $(FROM_TABLE) $(MIGRATE_ARGS)

bench: synth ## benchmarks (not part of make test)
	$(PY) -m bench

openapi: $(VENV)/.installed ## regenerate docs/openapi.json from the HTTP API's routes
	PYTHONPATH=lambdas $(PY) -m taskflow.api.openapi --output docs/openapi.json

chaos: synth ## chaos run: 1,000 tasks under every fault, checked (CHAOS_TASKS=n STAGE=prod CHAOS_ARGS=--users=6)
	$(PY) -m local.chaos --cdk-out $(CDK_OUT) --stage $(STAGE) --tasks $(or $(CHAOS_TASKS),1000) \
		--failure-rate 0.3 --kill-rate 0.02 --duplicate-rate 0.05 --aws-error-rate 0.05 \
		--push-failure-rate 0.02 --sqs-outage 2:10 --stack-kill 5 --emulator-kill 12 --time-scale 0.01 $(CHAOS_ARGS)

clean: ## remove build output (keeps the installed dependencies)
	rm -rf $(CDK_OUT) build .pytest_cache .ruff_cache .mypy_cache
