"""Keys and values of prompt prefixes already computed, reused by later prompts that share them.

Chat prompts start alike (the template, a system prompt), so a prefill that finds the first
blocks of its prompt here computes only the rest. The cache holds blocks of ``block`` tokens;
a block is found by its own tokens and the block before it, so a hit means the whole prefix up
to it matched. Least recently used blocks are evicted first, a block's descendants before it.

A prompt reuses at most ``len(prompt) - 1`` tokens: its last token must run through the model
to give the logits of the first output token.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Cache tensors of one block: one ``[kv_heads, block, head_dim]`` array per past input.
Block = list[npt.NDArray[Any]]
_Key = tuple[int, tuple[int, ...]]  # (hash of the key of the block before, this block's tokens)


class PrefixCache:
    """Prompt-prefix KV blocks within ``budget_bytes``, least recently used evicted first."""

    def __init__(self, budget_bytes: int, block: int = 8) -> None:
        if block < 1:
            raise ValueError("prefix cache block must be at least 1 token")
        self.budget_bytes = budget_bytes
        self.block = block
        self.bytes = 0
        self._blocks: OrderedDict[_Key, Block] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def _keys(self, tokens: Sequence[int], limit: int) -> list[_Key]:
        keys: list[_Key] = []
        parent = 0
        for start in range(0, limit - self.block + 1, self.block):
            key = (parent, tuple(tokens[start : start + self.block]))
            keys.append(key)
            parent = hash(key)
        return keys

    def lookup(self, tokens: Sequence[int]) -> tuple[int, Block]:
        """The longest cached prefix of ``tokens`` (leaving at least the last token out):
        its length and its tensors ``[kv_heads, length, head_dim]``; ``(0, [])`` on a miss."""
        found: list[_Key] = []
        for key in self._keys(tokens, len(tokens) - 1):
            if key not in self._blocks:
                break
            found.append(key)
        if not found:
            return 0, []
        for key in reversed(found):  # the prefix's first blocks become the most recent
            self._blocks.move_to_end(key)
        blocks = [self._blocks[key] for key in found]
        tensors = [np.concatenate(parts, axis=1) for parts in zip(*blocks, strict=True)]
        return len(found) * self.block, tensors

    def store(
        self, tokens: Sequence[int], row: Sequence[npt.NDArray[Any]], first: int, reused: int = 0
    ) -> int:
        """Cache the whole blocks of ``tokens`` from one sequence's cache ``row`` (one
        ``[kv_heads, columns, head_dim]`` array per past input). The sequence reused its first
        ``reused`` tokens from this cache; token ``j >= reused`` is in column ``first + j``.
        Returns how many blocks were added."""
        if self.budget_bytes <= 0:
            return 0
        added = 0
        keys = self._keys(tokens, len(tokens))
        for index, key in enumerate(keys):
            if key in self._blocks:
                continue
            if index * self.block < reused:  # evicted since it was reused: its columns are
                keys = keys[:index]  # not where ``first`` says, and its children unreachable
                break
            start = first + index * self.block
            block = [np.array(t[:, start : start + self.block, :]) for t in row]
            self._blocks[key] = block
            self.bytes += sum(b.nbytes for b in block)
            added += 1
        for key in reversed(keys):  # each block more recent than the blocks after it
            self._blocks.move_to_end(key)
        while self.bytes > self.budget_bytes and self._blocks:
            _, evicted = self._blocks.popitem(last=False)
            self.bytes -= sum(b.nbytes for b in evicted)
        return added
