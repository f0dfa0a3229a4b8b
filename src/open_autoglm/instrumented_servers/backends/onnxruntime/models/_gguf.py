"""Read a Llama-architecture GGUF file into float32 numpy weights, with no torch.

llama.cpp's converter permutes the rows of the query and key projections so that its rotary
embedding can rotate adjacent pairs; :func:`read_llama` undoes that, so the weights returned
here are in the Hugging Face layout (rotate-half RoPE), as ``transformers`` loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from open_autoglm.instrumented_servers.backends.onnxruntime.models._errors import (
    ModelPreparationError,
)

_log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """The hyper-parameters a Llama decoder needs, as stored in the GGUF metadata."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    context_length: int
    rope_theta: float
    rms_norm_eps: float
    tie_word_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True, slots=True)
class GGUFTokenizer:
    """The tokenizer as GGUF stores it (``tokenizer.ggml.*``)."""

    model: str
    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_token_id: int
    eos_token_id: int
    unk_token_id: int | None
    pad_token_id: int | None
    add_bos_token: bool
    chat_template: str | None


#: GGUF token type of control (special) tokens.
TOKEN_TYPE_CONTROL = 3


class GGUFModel:
    """A GGUF file opened for reading (memory-mapped, so opening is cheap)."""

    def __init__(self, path: Path) -> None:
        import gguf

        try:
            self._reader = gguf.GGUFReader(path)
        except (OSError, ValueError) as exc:
            raise ModelPreparationError(f"cannot read GGUF file {path}: {exc}") from exc
        self.path = path
        self._tensors = {t.name: t for t in self._reader.tensors}

    def field(self, key: str, default: Any = None) -> Any:
        found = self._reader.fields.get(key)
        if found is None:
            return default
        return found.contents()

    def require(self, key: str) -> Any:
        value = self.field(key)
        if value is None:
            raise ModelPreparationError(f"{self.path.name}: GGUF metadata has no {key!r}")
        return value

    def config(self) -> LlamaConfig:
        arch = self.require("general.architecture")
        if arch != "llama":
            raise ModelPreparationError(
                f"{self.path.name}: architecture {arch!r} is not supported (only 'llama')"
            )
        vocab = self.field("llama.vocab_size") or len(self.require("tokenizer.ggml.tokens"))
        return LlamaConfig(
            num_layers=int(self.require("llama.block_count")),
            hidden_size=int(self.require("llama.embedding_length")),
            intermediate_size=int(self.require("llama.feed_forward_length")),
            num_heads=int(self.require("llama.attention.head_count")),
            num_kv_heads=int(self.field("llama.attention.head_count_kv", 0))
            or int(self.require("llama.attention.head_count")),
            vocab_size=int(vocab),
            context_length=int(self.require("llama.context_length")),
            rope_theta=float(self.field("llama.rope.freq_base", 10000.0)),
            rms_norm_eps=float(self.require("llama.attention.layer_norm_rms_epsilon")),
            tie_word_embeddings="output.weight" not in self._tensors,
        )

    def tokenizer(self) -> GGUFTokenizer:
        unk = self.field("tokenizer.ggml.unknown_token_id")
        pad = self.field("tokenizer.ggml.padding_token_id")
        return GGUFTokenizer(
            model=str(self.require("tokenizer.ggml.model")),
            pre=str(self.field("tokenizer.ggml.pre", "default")),
            tokens=list(self.require("tokenizer.ggml.tokens")),
            token_types=[int(t) for t in self.require("tokenizer.ggml.token_type")],
            merges=list(self.require("tokenizer.ggml.merges")),
            bos_token_id=int(self.require("tokenizer.ggml.bos_token_id")),
            eos_token_id=int(self.require("tokenizer.ggml.eos_token_id")),
            unk_token_id=None if unk is None else int(unk),
            pad_token_id=None if pad is None else int(pad),
            add_bos_token=bool(self.field("tokenizer.ggml.add_bos_token", False)),
            chat_template=self.field("tokenizer.chat_template"),
        )

    def tensor(self, name: str) -> FloatArray:
        """Dequantize one tensor to float32, in numpy's (rows, columns) order."""
        import gguf

        found = self._tensors.get(name)
        if found is None:
            raise ModelPreparationError(f"{self.path.name}: GGUF has no tensor {name!r}")
        data = gguf.quants.dequantize(found.data, found.tensor_type)
        shape = tuple(int(d) for d in reversed(found.shape))
        return np.ascontiguousarray(data.reshape(shape), dtype=np.float32)


def _unpermute(weight: FloatArray, heads: int) -> FloatArray:
    """Undo llama.cpp's rotary row permutation of a Q or K projection (``[out, in]``)."""
    rows = weight.shape[0]
    w = weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:])
    return np.ascontiguousarray(w.swapaxes(2, 1).reshape(weight.shape))


def hf_tensor_names(config: LlamaConfig) -> Iterator[tuple[str, str]]:
    """(GGUF name, Hugging Face name) of every weight, in file order."""
    yield "token_embd.weight", "model.embed_tokens.weight"
    for i in range(config.num_layers):
        hf = f"model.layers.{i}"
        yield f"blk.{i}.attn_norm.weight", f"{hf}.input_layernorm.weight"
        yield f"blk.{i}.attn_q.weight", f"{hf}.self_attn.q_proj.weight"
        yield f"blk.{i}.attn_k.weight", f"{hf}.self_attn.k_proj.weight"
        yield f"blk.{i}.attn_v.weight", f"{hf}.self_attn.v_proj.weight"
        yield f"blk.{i}.attn_output.weight", f"{hf}.self_attn.o_proj.weight"
        yield f"blk.{i}.ffn_norm.weight", f"{hf}.post_attention_layernorm.weight"
        yield f"blk.{i}.ffn_gate.weight", f"{hf}.mlp.gate_proj.weight"
        yield f"blk.{i}.ffn_up.weight", f"{hf}.mlp.up_proj.weight"
        yield f"blk.{i}.ffn_down.weight", f"{hf}.mlp.down_proj.weight"
    yield "output_norm.weight", "model.norm.weight"
    if not config.tie_word_embeddings:
        yield "output.weight", "lm_head.weight"


def read_llama(path: Path) -> tuple[LlamaConfig, dict[str, FloatArray], GGUFTokenizer]:
    """Config, float32 weights under Hugging Face names, and tokenizer of a Llama GGUF."""
    model = GGUFModel(path)
    config = model.config()
    weights: dict[str, FloatArray] = {}
    for gguf_name, hf_name in hf_tensor_names(config):
        weight = model.tensor(gguf_name)
        if gguf_name.endswith("attn_q.weight"):
            weight = _unpermute(weight, config.num_heads)
        elif gguf_name.endswith("attn_k.weight"):
            weight = _unpermute(weight, config.num_kv_heads)
        weights[hf_name] = weight
    _log.debug("read %d tensors from %s", len(weights), path)
    return config, weights, model.tokenizer()
