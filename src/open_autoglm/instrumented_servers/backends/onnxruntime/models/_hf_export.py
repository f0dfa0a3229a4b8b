"""Write a Hugging Face-format Llama folder (config, safetensors, tokenizer) from GGUF weights."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from open_autoglm.instrumented_servers.backends.onnxruntime.models._gguf import (
    FloatArray,
    GGUFTokenizer,
    LlamaConfig,
)
from open_autoglm.instrumented_servers.backends.onnxruntime.models._tokenizer_export import (
    write_tokenizer,
)


def hf_config(config: LlamaConfig, tok: GGUFTokenizer) -> dict[str, Any]:
    """``config.json`` for ``LlamaForCausalLM``, as transformers and vLLM read it."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.context_length,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_word_embeddings,
        "vocab_size": config.vocab_size,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "torch_dtype": "float32",
        "use_cache": True,
    }


def generation_config(tok: GGUFTokenizer) -> dict[str, Any]:
    return {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def write_hf_folder(
    folder: Path,
    config: LlamaConfig,
    weights: Mapping[str, FloatArray],
    tok: GGUFTokenizer,
    source: str,
) -> None:
    """Write ``config.json``, ``generation_config.json``, ``model.safetensors`` and tokenizer."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", hf_config(config, tok))
    write_json(folder / "generation_config.json", generation_config(tok))
    write_tokenizer(tok, folder, config.context_length)
    save_file(
        dict(weights),
        str(folder / "model.safetensors"),
        metadata={"format": "pt", "source": source},
    )
