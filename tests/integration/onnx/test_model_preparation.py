"""Preparation from the installed wheel: folders, idempotence, tokenizer ids, HF loadability."""

from __future__ import annotations

import itertools
import json
import re
import time
from functools import lru_cache
from pathlib import Path

import pytest

from open_autoglm.instrumented_servers.backends.onnxruntime.models._gguf import GGUFModel
from open_autoglm.instrumented_servers.backends.onnxruntime.models._registry import (
    gguf_path,
    known_model,
)
from open_autoglm.instrumented_servers.models import Variant, prepare_model

pytestmark = pytest.mark.slow

SAMPLES = (
    "What is the capital of France?",
    "The year 2024 had 366 days, not 365.",
    "  two leading spaces,\ttabs\nand\n\nnewlines  ",
    "café, naïve, Straße — über",
    "snake_case_name = 42  # it's done, they're sure, we'll see",
    "emoji 🙂 and CJK 東京",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
)


def test_prepare_writes_every_variant(smollm2: dict[Variant, Path]) -> None:
    hf = smollm2["hf"]
    config = json.loads((hf / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["num_key_value_heads"]) == (30, 3)
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in hf.iterdir()
    }
    assert "chat_template" in json.loads((hf / "tokenizer_config.json").read_text())
    for variant in ("onnx-fp32", "onnx-int4"):
        assert (smollm2[variant] / "model.onnx").is_file()
        assert (smollm2[variant] / "tokenizer.json").is_file()
    fp32 = (smollm2["onnx-fp32"] / "model.onnx").stat().st_size
    int4 = (smollm2["onnx-int4"] / "model.onnx").stat().st_size
    assert int4 < fp32 / 2.5  # int4 projections: ~190 MiB against ~620 MiB


def test_prepare_again_is_a_no_op(smollm2: dict[Variant, Path]) -> None:
    before = {p: (p / "prepared.json").stat().st_mtime_ns for p in smollm2.values()}
    started = time.perf_counter()
    again = prepare_model("smollm2-135m", progress=None)
    assert time.perf_counter() - started < 5
    assert {p: (p / "prepared.json").stat().st_mtime_ns for p in again.values()} == before


def test_safetensors_hold_every_weight(smollm2: dict[Variant, Path]) -> None:
    from safetensors.numpy import load_file

    weights = load_file(str(smollm2["hf"] / "model.safetensors"))
    assert len(weights) == 1 + 30 * 9 + 1  # embeddings (tied head), 30 layers, final norm
    assert weights["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)


# ---------------------------------------------------------------- tokenizer against the GGUF's
def _bytes_to_unicode() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


# llama.cpp's "smollm" pre-tokenizer: each digit alone, then the GPT-2 regex (\p{L} as
# [^\W\d_], \p{N} as \d: exact for these samples).
_DIGIT = re.compile(r"\d")
_GPT2 = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


@lru_cache(maxsize=1)
def _gguf_vocab() -> tuple[dict[str, int], dict[tuple[str, str], int], list[str]]:
    tok = GGUFModel(gguf_path(known_model("smollm2-135m"))).tokenizer()
    specials = [t for t, kind in zip(tok.tokens, tok.token_types, strict=True) if kind == 3]
    ranks = {}
    for rank, merge in enumerate(tok.merges):
        left, _, right = merge.partition(" ")
        ranks[(left, right)] = rank
    return {t: i for i, t in enumerate(tok.tokens)}, ranks, specials


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get(pair, 1 << 30), i) for i, pair in enumerate(itertools.pairwise(parts))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def reference_ids(text: str) -> list[int]:
    """A from-scratch byte-level BPE over the GGUF's own vocabulary and merges."""
    vocab, ranks, specials = _gguf_vocab()
    byte_map = _bytes_to_unicode()
    ids: list[int] = []
    for chunk in re.split("(" + "|".join(map(re.escape, specials)) + ")", text):
        if chunk in specials:
            ids.append(vocab[chunk])
            continue
        for piece in re.split(r"(\d)", chunk):
            pieces = [piece] if _DIGIT.fullmatch(piece) else _GPT2.findall(piece)
            for word in pieces:
                mapped = "".join(byte_map[b] for b in word.encode("utf-8"))
                ids.extend(vocab[p] for p in _bpe(mapped, ranks))
    return ids


@pytest.mark.parametrize("text", SAMPLES)
def test_tokenizer_ids_match_the_gguf_vocabulary(smollm2: dict[Variant, Path], text: str) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(smollm2["onnx-int4"] / "tokenizer.json"))
    ids = tokenizer.encode(text).ids
    assert ids == reference_ids(text)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
