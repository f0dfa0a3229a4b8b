"""Counting tokens on the client: for synthetic prompt lengths and for output tokens when a
server sends no ``usage``. A ``tokenizer.json`` (Hugging Face ``tokenizers``) is exact for
that model; without one a whitespace-and-punctuation count stands in, and says so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from open_autoglm.loadgen._errors import ConfigError

_SIMPLE = re.compile(r"\w+|[^\w\s]")


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class SimpleTokenCounter:
    """Words and punctuation marks, one token each (the ``sim`` backend's own rule)."""

    name = "simple"

    def count(self, text: str) -> int:
        return len(_SIMPLE.findall(text))


class HFTokenCounter:
    """A Hugging Face ``tokenizer.json``, loaded once."""

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


def make_token_counter(path: Path | None) -> TokenCounter:
    return SimpleTokenCounter() if path is None else HFTokenCounter(path)
