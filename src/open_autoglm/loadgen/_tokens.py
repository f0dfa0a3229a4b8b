"""Counting tokens on the client: for synthetic prompt lengths and for output tokens when a
server sends no ``usage``. A ``tokenizer.json`` (Hugging Face ``tokenizers``) is exact for
that model; it is found from a file, a folder, or a model id already in the local Hugging Face
cache (no download, as ``vllm bench serve --tokenizer`` takes it). Without one, an estimate
stands in and says so: words, punctuation marks and each CJK character one token each, and
never fewer tokens than the output chunks that carried them (see the client)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from open_autoglm.loadgen._errors import ConfigError

# Scripts written without spaces: one token per character is closer than one per "word".
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_SIMPLE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


class TokenCounter(Protocol):
    name: str
    #: True when the count is the model's own; False for an estimate.
    exact: bool

    def count(self, text: str) -> int: ...


class SimpleTokenCounter:
    """Words and punctuation marks, one token each (the ``sim`` backend's own rule), and one
    per character in scripts written without spaces (Chinese, Japanese, Korean)."""

    name = "simple"
    exact = False

    def count(self, text: str) -> int:
        return len(_SIMPLE.findall(text))


class HFTokenCounter:
    """A Hugging Face ``tokenizer.json``, loaded once."""

    exact = True

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(f"tokenizer file not found: {path}")
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the tokenizers library raises plain Exception
            raise ConfigError(f"cannot load tokenizer {path}: {exc}") from exc
        self.name = str(path)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
    ``~/.cache/huggingface/hub`` (``XDG_CACHE_HOME`` honoured), as ``huggingface_hub`` has it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "huggingface" / "hub"


def cached_tokenizer(model_id: str, cache: Path | None = None) -> Path | None:
    """The ``tokenizer.json`` of ``model_id`` (``org/name``) in the local Hugging Face cache,
    from the snapshot ``refs/main`` names (else the newest snapshot that has one); ``None``
    when it is not there. Never touches the network."""
    if model_id.count("/") != 1 or model_id.startswith(("/", ".")):
        return None
    repo = (cache or hf_cache_dir()) / ("models--" + model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text(encoding="utf-8").strip() / "tokenizer.json"
        if candidate.is_file():
            return candidate
    if not snapshots.is_dir():
        return None
    found = [p / "tokenizer.json" for p in snapshots.iterdir() if (p / "tokenizer.json").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def make_token_counter(path: Path | str | None) -> TokenCounter:
    """The counter for ``--tokenizer``: a ``tokenizer.json``, a folder holding one, or a model
    id in the local Hugging Face cache; ``None``: the estimate.

    Raises:
        ConfigError: nothing usable is found at ``path`` (the message says where it looked).
    """
    if path is None:
        return SimpleTokenCounter()
    local = Path(path).expanduser()
    if local.exists():
        return HFTokenCounter(local)
    cached = cached_tokenizer(str(path))
    if cached is not None:
        return HFTokenCounter(cached)
    raise ConfigError(
        f"tokenizer not found: {path} is neither a tokenizer.json, a folder with one, nor a "
        f"model id in the local Hugging Face cache ({hf_cache_dir()}); download it first "
        f"(huggingface-cli download {path} tokenizer.json)"
    )
