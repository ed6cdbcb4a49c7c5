# Two commands do all set-up:  `make demo` (the main job) and `make test` (the test suite).
# Both create/reuse the environment (Python >= 3.12 from PATH or pyenv, pinned by requirements/lock.txt).
SHELL := /bin/bash
PY := .venv/bin/python
MODEL ?=
DEMO_ARGS ?=

.PHONY: env lint format test test-fast demo bench fixtures clean

env:
	@scripts/ensure-env >/dev/null

lint: env
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: env
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# `bench`-marked tests (heavy Ray cluster runs) are left out here and run by `make bench`; pytest prints them as
# "deselected". Plain `pytest` runs everything.
test: env lint
	$(PY) -m pytest -m "not bench"

test-fast: env
	$(PY) -m pytest -m "not slow and not jvm"

demo: env
	$(PY) examples/demo.py $(if $(MODEL),--model $(MODEL),) $(DEMO_ARGS)

bench: env
	$(PY) -m pytest -m bench
	$(PY) benchmarks/run.py

fixtures: env
	$(PY) -m pyserini_diffretriever.fixtures tiny-dream build/tiny-dream
	$(PY) -m pyserini_diffretriever.fixtures tiny-llada build/tiny-llada
	$(PY) -m pyserini_diffretriever.fixtures tiny-qwen2 build/tiny-qwen2
	$(PY) -m pyserini_diffretriever.fixtures tiny-llama build/tiny-llama

clean:
	rm -rf build runs .pytest_cache
