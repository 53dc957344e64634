# Every target bootstraps what it needs from the lock files: a fresh machine
# needs only python3 (3.11+), node and npm.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

# Checkov pins many packages of its own: it gets its own environment, never .venv.
CHECKOV_ENV := $(TOOLS)/checkov
CHECKOV_LOCK := tools/checkov-requirements.txt
# Edge-signed mode's awscrt layer (see its rule below).
AWSCRT_LAYER := .tools/layers/awscrt
AWSCRT_LOCK := tools/awscrt-layer-requirements.txt

.PHONY: demo test lint typecheck unit bench soak synth deploy destroy sandbox clean setup \
	checkov checkov-env checkov-lock awscrt-lock rehearse rehearse-lock smoke \
	synth-attach deploy-attach destroy-attach wheel

setup: $(VENV)/.synced node_modules/.synced $(AWSCRT_LAYER).synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-sync whenever the lock changes; --frozen refuses a lock out of date with pyproject.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON) --quiet
	touch $@

# Installed exactly as locked (hashes required); rebuilt whenever the lock changes.
$(CHECKOV_ENV)/.synced: $(CHECKOV_LOCK) | $(UV)
	rm -rf $(CHECKOV_ENV)
	$(UV) venv --quiet --python $(PYTHON) $(CHECKOV_ENV)
	$(UV) pip sync --quiet --python $(CHECKOV_ENV)/bin/python --require-hashes $(CHECKOV_LOCK)
	touch $@

checkov-env: $(CHECKOV_ENV)/.synced

# The awscrt layer of edge-signed mode (SigV4A for the KeyValueStore API): the wheel for
# Lambda's arm64 Python 3.13, installed exactly as locked (hashes), no Docker. Regenerate the
# lock with `make awscrt-lock` after changing tools/awscrt-layer-requirements.in.
$(AWSCRT_LAYER).synced: $(AWSCRT_LOCK) | $(UV)
	rm -rf $(AWSCRT_LAYER)
	$(UV) pip install --quiet --target $(AWSCRT_LAYER)/python --python-version 3.13 \
		--python-platform aarch64-manylinux_2_17 --only-binary :all: --require-hashes \
		-r $(AWSCRT_LOCK)
	touch $@

awscrt-lock: | $(UV)
	$(UV) pip compile --quiet --python-version 3.13 --python-platform aarch64-manylinux_2_17 \
		--generate-hashes tools/awscrt-layer-requirements.in -o $(AWSCRT_LOCK)

# Regenerate the lock after changing tools/checkov-requirements.in.
checkov-lock: | $(UV)
	$(UV) pip compile --quiet --python-version 3.11 --generate-hashes \
		tools/checkov-requirements.in -o $(CHECKOV_LOCK)

# Checkov over the synthesized templates (tests/infra/test_checkov.py runs the same).
checkov: synth checkov-env
	$(CHECKOV_ENV)/bin/checkov --framework cloudformation --compact --quiet --skip-download \
		$$(printf -- '-f %s ' cdk.out/*.template.json)

node_modules/.synced: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# LOCK_MODE=edge-signed: a CloudFront Function signs each request (docs/edge-signed.md).
LOCK_MODE ?= header

demo: setup
	$(VENV)/bin/originlock demo --lock-mode $(LOCK_MODE)

sandbox: setup
	$(VENV)/bin/originlock sandbox --lock-mode $(LOCK_MODE)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy functions infra originlock tests bench rehearsal

unit: setup
	$(VENV)/bin/pytest tests/unit

test: lint typecheck
	$(VENV)/bin/pytest -n 3 --dist loadgroup --cov=functions --cov=originlock --cov-branch \
		--cov-report=term:skip-covered

bench: setup
	$(PY) -m bench

soak: setup
	ORIGINLOCK_SOAK=1 $(VENV)/bin/pytest -n 2 -p no:cacheprovider tests/unit/test_protocol_model.py \
		tests/unit/test_authorizer_fuzz.py tests/unit/test_authorizer_fuzz_volume.py

synth: setup
	npx --no-install cdk synth --quiet

# The preflight first: it names what would stop the deploy (quota, bootstrap) and the fix.
deploy: setup
	$(VENV)/bin/originlock doctor
	npx --no-install cdk deploy --all

destroy: setup
	npx --no-install cdk destroy --all

# The deploy rehearsal (docs/rehearsal.md): ministack in an environment of its own (it pins an
# older botocore than .venv), and the Powertools layer it publishes under the AWS-managed ARN.
MINISTACK := $(TOOLS)/ministack
POWERTOOLS_LAYER := $(TOOLS)/rehearsal/powertools-layer
REHEARSE_ARGS ?=

$(MINISTACK)/.synced: rehearsal/requirements.txt | $(UV)
	rm -rf $(MINISTACK)
	$(UV) venv --quiet --python $(PYTHON) $(MINISTACK)
	$(UV) pip sync --quiet --python $(MINISTACK)/bin/python --require-hashes rehearsal/requirements.txt
	touch $@

$(POWERTOOLS_LAYER)/.synced: rehearsal/layer-requirements.txt $(MINISTACK)/.synced
	rm -rf $(POWERTOOLS_LAYER)
	$(UV) pip install --quiet --python $(MINISTACK)/bin/python --no-deps --require-hashes \
		--target $(POWERTOOLS_LAYER)/python -r rehearsal/layer-requirements.txt
	touch $@

# Edge-signed mode's awscrt layer for ministack's interpreter (it runs the functions on this
# machine's Python, not Lambda's arm64 3.13): the product's lock, this machine's wheel.
AWSCRT_REHEARSAL_LAYER := $(TOOLS)/rehearsal/awscrt-layer
$(AWSCRT_REHEARSAL_LAYER)/.synced: $(AWSCRT_LOCK) $(MINISTACK)/.synced
	rm -rf $(AWSCRT_REHEARSAL_LAYER)
	$(UV) pip install --quiet --python $(MINISTACK)/bin/python --only-binary :all: \
		--require-hashes --target $(AWSCRT_REHEARSAL_LAYER)/python -r $(AWSCRT_LOCK)
	touch $@

# Regenerate both locks after changing rehearsal/*.in.
rehearse-lock: | $(UV)
	$(UV) pip compile --quiet --python-version 3.11 --generate-hashes \
		rehearsal/requirements.in -o rehearsal/requirements.txt
	$(UV) pip compile --quiet --python-version 3.11 --generate-hashes --no-deps \
		rehearsal/layer-requirements.in -o rehearsal/layer-requirements.txt

rehearse: setup $(MINISTACK)/.synced $(POWERTOOLS_LAYER)/.synced $(AWSCRT_REHEARSAL_LAYER)/.synced
	$(PY) -m rehearsal $(REHEARSE_ARGS)

# After `make deploy`: the same checks against the real stack (STACK=... for another name).
STACK ?= Originlock
# `make smoke SANDBOX=1`: the same checks against the running sandbox (`make sandbox`).
smoke: setup
	$(PY) -m originlock.smoke $(if $(SANDBOX),--sandbox,--stack $(STACK)) $(SMOKE_ARGS)

# Attach mode: originlock for an API and a distribution made elsewhere, named by their ids
# (docs/deploy.md, "Attach to an existing API and distribution"). Offline for synth, e.g.
#   make synth-attach CONTEXT="-c apiId=a1b2c3d4e5 -c distributionId=E1ABCDEF2GHIJK"
CONTEXT ?=
synth-attach: setup
	npx --no-install cdk synth --quiet -c attach=true $(CONTEXT)

deploy-attach: setup
	$(VENV)/bin/originlock doctor -c attach=true $(CONTEXT)
	npx --no-install cdk deploy --all -c attach=true $(CONTEXT)

destroy-attach: setup
	npx --no-install cdk destroy --all -c attach=true $(CONTEXT)

# The wheel `pip install originlock` installs (dist/): the CLI, the constructs, the Lambda code
# and the workflow (tests/e2e/test_wheel.py installs it outside the checkout).
wheel: | $(UV)
	$(UV) build --wheel --quiet --out-dir dist

clean:
	rm -rf $(VENV) $(TOOLS) node_modules cdk.out dist .pytest_cache .mypy_cache .ruff_cache .coverage
