"""A real, simple tokenizer for the simulator: words and punctuation, leading space kept.

Every token is a piece of text matched by ``_PIECE``: optional whitespace then a run of word
characters, or optional whitespace then one other character. Decoding concatenates pieces, so
``len(encode(decode(ids)))`` equals ``len(ids)`` for the text the simulator generates, and any
client can re-tokenize an output honestly with :meth:`SimpleTokenizer.count`.
"""

from __future__ import annotations

import re
import zlib
from typing import Final

_PIECE: Final = re.compile(r"\s*\w+|\s*[^\w\s]|\s+$")


class SimpleTokenizer:
    vocab_size: Final = 32_000

    def pieces(self, text: str) -> list[str]:
        return _PIECE.findall(text)

    def encode(self, text: str) -> list[int]:
        return [zlib.crc32(p.encode()) % self.vocab_size for p in _PIECE.findall(text)]

    def count(self, text: str) -> int:
        return sum(1 for _ in _PIECE.finditer(text))
