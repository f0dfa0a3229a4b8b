"""The optional extras are named for what they install, and the compose file's GPU service
installs what its default backend and model need (read from the files, no Docker needed)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from open_autoglm.instrumented_servers.models import KNOWN_MODELS

REPO = Path(__file__).resolve().parents[2]
_DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def _default(value: str) -> str:
    """``${VAR:-default}`` as compose resolves it with VAR unset."""
    return _DEFAULT.sub(lambda m: m.group(1), value)


def test_an_extra_named_after_a_package_installs_it() -> None:
    extras = _extras()
    for name in ("tensorrt", "vllm"):
        if name in extras:
            assert name in _requirement_names(extras[name]), name
    assert "onnxruntime-gpu" in _requirement_names(extras["onnx-gpu"])
    assert "onnxruntime" not in _requirement_names(extras["onnx-gpu"])  # never both builds


def test_the_gpu_service_installs_what_its_default_model_needs() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    service = compose["services"]["server-gpu"]
    command = [_default(str(part)) for part in service["command"]]
    backend = command[command.index("--backend") + 1]
    model = command[command.index("--model") + 1]
    args = {k: _default(str(v)) for k, v in service["build"]["args"].items()}
    extras = _extras()
    wanted = [e.strip() for e in args["EXTRAS"].split(",") if e.strip()]
    assert all(e in extras for e in wanted), wanted
    installed = set().union(*(_requirement_names(extras[e]) for e in wanted))
    assert backend == "onnxruntime"
    assert "onnxruntime-gpu" in installed  # a GPU service: the CUDA provider's build
    assert "onnxruntime" not in installed
    assert {"gguf", "onnx"} <= installed  # what preparing the model needs
    packages = {p.split("==")[0] for p in args["MODEL_PACKAGES"].split()}
    assert KNOWN_MODELS[model].distribution in packages
