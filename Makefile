# The README's commands. `make demo` and `make test` each install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.streamrec-installed
TOOLS := .tools/triton-venv/.streamrec-ready

.PHONY: install models demo test test-unit test-integration lint schemas up down status clean bench eval

install: $(STAMP) $(TOOLS) models

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "StreamRec needs Python 3.11 (got %s); set PYTHON=python3.11" % sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to 2.13.0 in pyproject.toml: that resolves to the CPU wheel.
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(TOOLS): $(STAMP)
	$(PY) -m services.stack.tools install

# Exports MiniLM to int8 ONNX for Triton's item_encoder; skips in ~1 s when the stamp
# (a hash of the weights and the export code) says it is up to date. Phony on purpose:
# make cannot see a change inside the wheel, the fingerprint can.
models: $(STAMP)
	$(PY) -m models.encoder_export triton_models/item_encoder/1/ --no-fp32

demo: install
	$(VENV)/bin/streamrec demo

test: install
	.ci/services
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	.ci/services
	$(PY) -m pytest -q -m integration

# Streaming quality replay of ml-100k on a fresh stack (flat out; several minutes on 2 cores).
# The report (JSON and Markdown) goes to .run/eval/<run id>/.
eval: install
	$(PY) -m services.eval --dataset ml-100k --start-stack

# Benchmarks, not tests: run on a quiet machine; results go to docs/BENCHMARKS.md.
bench: install
	$(PY) -m tests.bench.pipeline_hot_path --shadow-share 0.2
	$(PY) -m models.scorer_bench --threads 2
	$(PY) -m tests.bench.scorer_triton --users 1 --clients 32 --requests 3000
	$(PY) -m tests.bench.scorer_triton --users 256 --clients 2 --requests 60
	$(PY) -m tests.bench.encoder_triton --instances 2 --threads 1
	$(PY) -m tests.bench.stack_load --rate 200 --clicks 3000 --flat-out 10000 --runs 3
	$(PY) -m tests.bench.release_under_load --rate 200 --clicks 4000 --runs 2

lint: install
	$(VENV)/bin/ruff check services models tests
	$(VENV)/bin/ruff format --check services models tests
	$(VENV)/bin/mypy

schemas: install
	$(PY) -m services.contract.generate

up: install
	$(VENV)/bin/streamrec up --detach

down:
	$(VENV)/bin/streamrec down

status:
	$(VENV)/bin/streamrec status

clean:
	-$(VENV)/bin/streamrec down
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
