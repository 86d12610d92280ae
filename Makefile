# The README's commands. `make demo` and `make test` each install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.streamrec-installed
TOOLS := .tools/triton-venv/.streamrec-ready

.PHONY: install models demo test soak test-unit test-integration lint schemas up down status clean bench eval

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

# The fault suite at full scale (docs/RELIABILITY.md): 10,000-click replays, 30 s outages,
# the 10x burst and the 30-minute soak. Figures land in build/reliability/.
soak: install
	.ci/services
	STREAMREC_RELIABILITY_SCALE=full $(PY) -m pytest -q -m "reliability or soak" -o timeout=3600 tests/reliability

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	.ci/services
	$(PY) -m pytest -q -m integration

# The streaming quality replay behind docs/eval/: ml-100k on fresh stacks, the ranker trained
# on the warm-up only, with and without text embeddings, beside the baselines (flat out;
# about 20 minutes on 2 cores). The report, JSON and plots go to .run/eval/<run id>/.
eval: install
	$(VENV)/bin/streamrec eval --dataset ml-100k --start-stack --train-on-warmup --ablation

# Benchmarks, not tests: run on a quiet machine; results go to docs/BENCHMARKS.md.
bench: install
	.ci/services
	$(VENV)/bin/streamrec bench

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
