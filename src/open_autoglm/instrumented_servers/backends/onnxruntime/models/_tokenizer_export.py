"""Write a GGUF byte-level BPE tokenizer as Hugging Face ``tokenizer.json`` and friends.

The pre-tokenizer follows llama.cpp's for the GGUF's ``tokenizer.ggml.pre``: ``smollm`` (and
the other StarCoder-style vocabularies) split every digit on its own before the GPT-2 regex,
which is what the original SmolLM2 ``tokenizer.json`` does with ``Digits`` + ``ByteLevel``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from open_autoglm.instrumented_servers.backends.onnxruntime.models._errors import (
    ModelPreparationError,
)
from open_autoglm.instrumented_servers.backends.onnxruntime.models._gguf import (
    TOKEN_TYPE_CONTROL,
    GGUFTokenizer,
)

#: llama.cpp pre-tokenizer types that split digits one by one, then apply the GPT-2 regex.
_DIGIT_SPLIT_PRE = frozenset({"smollm", "codeshell", "exaone", "minerva", "starcoder", "refact"})
#: llama.cpp pre-tokenizer types that are the plain GPT-2 regex.
_GPT2_PRE = frozenset({"default", "gpt-2", "gpt2"})


def build_tokenizer_json(tok: GGUFTokenizer) -> str:
    """The ``tokenizer.json`` text for a ``gpt2``-model GGUF tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    if tok.model != "gpt2":
        raise ModelPreparationError(
            f"GGUF tokenizer model {tok.model!r} is not supported (only byte-level BPE 'gpt2')"
        )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if tok.pre in _DIGIT_SPLIT_PRE:
        pre: Any = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    elif tok.pre in _GPT2_PRE:
        pre = byte_level
    else:
        raise ModelPreparationError(f"GGUF pre-tokenizer {tok.pre!r} is not supported")
    vocab = {token: index for index, token in enumerate(tok.tokens)}
    merges: list[tuple[str, str]] = []
    for merge in tok.merges:
        left, _, right = merge.partition(" ")
        merges.append((left, right))
    unk = tok.tokens[tok.unk_token_id] if tok.unk_token_id is not None else None
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=False))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.ByteLevel()
    specials = [
        AddedToken(token, special=True, normalized=False)
        for token, kind in zip(tok.tokens, tok.token_types, strict=True)
        if kind == TOKEN_TYPE_CONTROL
    ]
    tokenizer.add_special_tokens(specials)
    text: str = tokenizer.to_str(pretty=True)
    return text


def tokenizer_config(tok: GGUFTokenizer, max_length: int) -> dict[str, Any]:
    """``tokenizer_config.json``: special tokens and the chat template, as transformers reads it."""
    config: dict[str, Any] = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "bos_token": tok.tokens[tok.bos_token_id],
        "eos_token": tok.tokens[tok.eos_token_id],
        "unk_token": tok.tokens[tok.unk_token_id] if tok.unk_token_id is not None else None,
        "pad_token": tok.tokens[tok.pad_token_id] if tok.pad_token_id is not None else None,
        "add_bos_token": tok.add_bos_token,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_length,
        "additional_special_tokens": [
            t
            for t, kind in zip(tok.tokens, tok.token_types, strict=True)
            if kind == TOKEN_TYPE_CONTROL
        ],
    }
    if tok.chat_template:
        config["chat_template"] = tok.chat_template
    return config


def write_tokenizer(tok: GGUFTokenizer, folder: Path, max_length: int) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``."""
    (folder / "tokenizer.json").write_text(build_tokenizer_json(tok), encoding="utf-8")
    config = tokenizer_config(tok, max_length)
    _write_json(folder / "tokenizer_config.json", config)
    special = {
        key: config[key]
        for key in ("bos_token", "eos_token", "unk_token", "pad_token")
        if config[key] is not None
    }
    _write_json(folder / "special_tokens_map.json", special)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
