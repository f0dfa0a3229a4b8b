"""The prompt-prefix cache: block matching, what a hit returns, eviction order."""

from __future__ import annotations

import numpy as np
import pytest

from open_autoglm.instrumented_servers.backends.onnxruntime._prefix_cache import PrefixCache

HEADS, DIM = 2, 3
BLOCK_BYTES = 2 * HEADS * 4 * DIM * 4  # two tensors of [2, 4, 3] float32


def columns(tokens: list[int], offset: int = 0) -> list[np.ndarray]:
    """A fake cache row whose column ``offset + j`` holds token ``j``'s id (two tensors)."""
    width = offset + len(tokens)
    row = np.zeros((HEADS, width, DIM), np.float32)
    row[:, offset:, :] = np.asarray(tokens, np.float32)[None, :, None]
    return [row, -row]


def test_hit_returns_the_longest_whole_block_prefix_leaving_the_last_token() -> None:
    cache = PrefixCache(10 * BLOCK_BYTES, block=4)
    prompt = list(range(100, 110))  # 10 tokens: blocks [0:4], [4:8]
    assert cache.store(prompt, columns(prompt, offset=3), first=3) == 2
    reused, tensors = cache.lookup([*prompt[:8], 7, 7])
    assert reused == 8
    np.testing.assert_array_equal(tensors[0][0, :, 0], prompt[:8])
    np.testing.assert_array_equal(tensors[1][1, :, 2], [-t for t in prompt[:8]])
    # The same 8 tokens as the whole prompt: the last token must still run, so 4.
    assert cache.lookup(prompt[:8])[0] == 4


def test_a_block_matches_only_after_the_same_blocks() -> None:
    cache = PrefixCache(10 * BLOCK_BYTES, block=4)
    cache.store([1, 2, 3, 4, 5, 6, 7, 8], columns([1, 2, 3, 4, 5, 6, 7, 8]), first=0)
    assert cache.lookup([9, 9, 9, 9, 5, 6, 7, 8, 0])[0] == 0  # second block, other first
    assert cache.lookup([1, 2, 3, 4, 0, 0, 0, 0, 0])[0] == 4
    assert cache.lookup([1, 2, 3])[0] == 0


def test_store_reads_only_the_new_blocks_of_a_partly_reused_prompt() -> None:
    cache = PrefixCache(10 * BLOCK_BYTES, block=4)
    head = [1, 2, 3, 4]
    cache.store(head, columns(head), first=0)
    prompt = [*head, 5, 6, 7, 8, 9]
    # Reused 4 tokens; the rest sit from column 10 on (token j at column 6 + j).
    row = columns([0] * 6 + prompt[4:])  # columns 0..5 hold junk, 6.. hold tokens 4..8
    row = [np.concatenate([np.full((HEADS, 4, DIM), -99, np.float32), r], axis=1) for r in row]
    assert cache.store(prompt, row, first=6, reused=4) == 1
    reused, tensors = cache.lookup([*prompt, 0])
    assert reused == 8
    np.testing.assert_array_equal(tensors[0][0, :, 0], prompt[:8])


def test_least_recently_used_go_first_and_children_before_parents() -> None:
    cache = PrefixCache(3 * BLOCK_BYTES, block=4)
    a = [1, 1, 1, 1, 2, 2, 2, 2]
    b = [3, 3, 3, 3]
    cache.store(a, columns(a), first=0)
    cache.store(b, columns(b), first=0)
    assert len(cache) == 3
    assert cache.bytes == 3 * BLOCK_BYTES
    cache.lookup([*a[:4], 0])  # a's head block is used again; a's second block is not
    c = [4, 4, 4, 4]
    cache.store(c, columns(c), first=0)  # one block over budget: the least recently used goes
    assert cache.lookup([*a, 0])[0] == 4  # a's second block, untouched since it was stored
    assert cache.lookup([*b, 0])[0] == 4
    d = [5, 5, 5, 5]
    cache.store(d, columns(d), first=0)  # next oldest: c (a's head and b were just used)
    assert cache.lookup([*c, 0])[0] == 0
    assert cache.lookup([*a, 0])[0] == 4
    assert cache.lookup([*b, 0])[0] == 4
    assert cache.bytes == 3 * BLOCK_BYTES


def test_a_prefix_leaves_before_its_head() -> None:
    cache = PrefixCache(2 * BLOCK_BYTES, block=4)
    a = [1, 1, 1, 1, 2, 2, 2, 2]
    cache.store(a, columns(a), first=0)
    b = [3, 3, 3, 3]
    cache.store(b, columns(b), first=0)  # a's second block goes, its head stays usable
    assert cache.lookup([*a, 0])[0] == 4


def test_a_block_larger_than_the_budget_is_not_kept() -> None:
    cache = PrefixCache(BLOCK_BYTES - 1, block=4)
    cache.store([1, 2, 3, 4], columns([1, 2, 3, 4]), first=0)
    assert len(cache) == 0
    assert cache.bytes == 0


def test_bad_block_size() -> None:
    with pytest.raises(ValueError, match="at least 1 token"):
        PrefixCache(100, block=0)
