"""Build a Llama decoder-with-past ONNX graph from float32 weights, with standard ONNX ops.

The layout is the one optimum and onnxruntime-genai use, so one runner serves all three::

    input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64,
    position_ids [batch, seq] int64, past_key_values.N.key/value [batch, kv_heads, past, head_dim]
    -> logits [batch, 1, vocab], present.N.key/value [batch, kv_heads, past+seq, head_dim]

Logits are for the last position only (optimum's exports give every position; the runner
reads the last of either).

Padding is on the left: a zero in ``attention_mask`` hides that key position from every query,
and causality is by position in the key/value sequence, so rows of different lengths batch.
Grouped-query attention broadcasts the KV heads in ``MatMul`` (no copies of the cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from open_autoglm.instrumented_servers.backends.onnxruntime.models._gguf import (
    FloatArray,
    LlamaConfig,
)

if TYPE_CHECKING:
    import onnx

OPSET = 17
#: Added to the scores of hidden key positions; finite, so a fully hidden row stays a number.
_MASK_VALUE = float(np.finfo(np.float32).min)


class _Graph:
    """A tiny node-list builder: every call appends a node and returns its output name."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: dict[str, int] = {}

    def _fresh(self, stem: str) -> str:
        count = self._names.get(stem, 0)
        self._names[stem] = count + 1
        return f"{stem}_{count}" if count else stem

    def op(self, op_type: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        out = self._fresh(stem)
        self.nodes.append(
            self._helper.make_node(op_type, inputs, [out], name=f"{out}/{op_type}", **attrs)
        )
        return out

    def op_n(self, op_type: str, inputs: list[str], stems: list[str], **attrs: Any) -> list[str]:
        outs = [self._fresh(s) for s in stems]
        self.nodes.append(
            self._helper.make_node(op_type, inputs, outs, name=f"{outs[0]}/{op_type}", **attrs)
        )
        return outs

    def const(self, name: str, value: Any) -> str:
        self.initializers.append(self._numpy_helper.from_array(np.asarray(value), name))
        return name

    def output_to(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(
            self._helper.make_node(op_type, inputs, [output], name=f"{output}/{op_type}", **attrs)
        )
        return output


def _rms_norm(g: _Graph, x: str, weight: str, eps: str, stem: str) -> str:
    sq = g.op("Pow", [x, "const_two"], f"{stem}/pow")
    mean = g.op("ReduceMean", [sq], f"{stem}/mean", axes=[-1], keepdims=1)
    root = g.op("Sqrt", [g.op("Add", [mean, eps], f"{stem}/add")], f"{stem}/sqrt")
    return g.op("Mul", [g.op("Div", [x, root], f"{stem}/div"), weight], f"{stem}/out")


def _rope(g: _Graph, x: str, cos: str, sin: str, stem: str) -> str:
    first, second = g.op_n("Split", [x], [f"{stem}/x1", f"{stem}/x2"], axis=-1)
    rotated = g.op("Concat", [g.op("Neg", [second], f"{stem}/neg"), first], f"{stem}/rot", axis=-1)
    return g.op(
        "Add",
        [
            g.op("Mul", [x, cos], f"{stem}/xcos"),
            g.op("Mul", [rotated, sin], f"{stem}/xsin"),
        ],
        f"{stem}/out",
    )


def build_decoder(config: LlamaConfig, weights: Mapping[str, FloatArray]) -> onnx.ModelProto:
    """The decoder-with-past model in float32 (weights stored transposed for ``MatMul``)."""
    from onnx import TensorProto, helper

    c = config
    hd, heads, kv_heads = c.head_dim, c.num_heads, c.num_kv_heads
    rep = heads // kv_heads
    g = _Graph()
    g.const("const_two", np.array(2.0, np.float32))
    eps = g.const("rms_eps", np.array(c.rms_norm_eps, np.float32))
    g.const("const_zero_f", np.array(0.0, np.float32))
    g.const("const_mask", np.array(_MASK_VALUE, np.float32))
    g.const("const_one_i", np.array(1, np.int64))
    g.const("const_zero_i", np.array(0, np.int64))
    g.const("axes_0", np.array([0], np.int64))
    g.const("axes_1", np.array([1], np.int64))
    g.const("axes_2", np.array([2], np.int64))
    g.const("axes_12", np.array([1, 2], np.int64))
    g.const("axes_last", np.array([-1], np.int64))
    g.const("index_last", np.array([-1], np.int64))
    g.const("shape_q", np.array([0, 0, heads, hd], np.int64))
    g.const("shape_kv", np.array([0, 0, kv_heads, hd], np.int64))
    g.const("shape_q5", np.array([0, kv_heads, rep, -1, hd], np.int64))
    g.const("shape_ctx4", np.array([0, heads, -1, hd], np.int64))
    g.const("shape_hidden", np.array([0, 0, heads * hd], np.int64))
    g.const("q_scale", np.array(1.0 / np.sqrt(hd), np.float32))
    inv_freq = 1.0 / (c.rope_theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    g.const("rope_inv_freq", inv_freq.astype(np.float32))

    # Rotary tables for this step's positions: [batch, 1, seq, head_dim].
    pos = g.op("Cast", ["position_ids"], "rope/pos", to=TensorProto.FLOAT)
    freqs = g.op(
        "Mul", [g.op("Unsqueeze", [pos, "axes_last"], "rope/pos3"), "rope_inv_freq"], "rope/freqs"
    )
    angles = g.op("Concat", [freqs, freqs], "rope/angles", axis=-1)
    cos = g.op("Unsqueeze", [g.op("Cos", [angles], "rope/cos3"), "axes_1"], "rope/cos")
    sin = g.op("Unsqueeze", [g.op("Sin", [angles], "rope/sin3"), "axes_1"], "rope/sin")

    # Additive attention bias [batch, 1, 1, seq, total]: causal by position, hides padding.
    seq = g.op("Shape", ["input_ids"], "mask/seq", start=1, end=2)
    total = g.op("Shape", ["attention_mask"], "mask/total", start=1, end=2)
    past = g.op("Sub", [total, seq], "mask/past")
    total_s = g.op("Squeeze", [total, "axes_0"], "mask/total_s")
    past_s = g.op("Squeeze", [past, "axes_0"], "mask/past_s")
    key_idx = g.op("Range", ["const_zero_i", total_s, "const_one_i"], "mask/key_idx")
    query_idx = g.op("Range", [past_s, total_s, "const_one_i"], "mask/query_idx")
    causal = g.op(
        "LessOrEqual",
        [key_idx, g.op("Unsqueeze", [query_idx, "axes_1"], "mask/query_col")],
        "mask/causal",
    )
    present_keys = g.op("Cast", ["attention_mask"], "mask/keep", to=TensorProto.BOOL)
    keep = g.op(
        "And",
        [causal, g.op("Unsqueeze", [present_keys, "axes_12"], "mask/keep4")],
        "mask/allowed",
    )
    bias4 = g.op("Where", [keep, "const_zero_f", "const_mask"], "mask/bias4")
    bias = g.op("Unsqueeze", [bias4, "axes_1"], "mask/bias")

    def weight_t(name: str) -> str:
        return g.const(f"{name}_T", np.ascontiguousarray(weights[name].T))

    x = g.op(
        "Gather",
        [g.const("model.embed_tokens.weight", weights["model.embed_tokens.weight"]), "input_ids"],
        "embed",
    )
    for i in range(c.num_layers):
        p = f"model.layers.{i}"
        s = f"layers.{i}"
        h = _rms_norm(
            g,
            x,
            g.const(f"{p}.input_layernorm.weight", weights[f"{p}.input_layernorm.weight"]),
            eps,
            f"{s}/attn_norm",
        )
        q = g.op("MatMul", [h, weight_t(f"{p}.self_attn.q_proj.weight")], f"{s}/q")
        k = g.op("MatMul", [h, weight_t(f"{p}.self_attn.k_proj.weight")], f"{s}/k")
        v = g.op("MatMul", [h, weight_t(f"{p}.self_attn.v_proj.weight")], f"{s}/v")
        q = g.op(
            "Transpose", [g.op("Reshape", [q, "shape_q"], f"{s}/q4")], f"{s}/qh", perm=[0, 2, 1, 3]
        )
        k = g.op(
            "Transpose", [g.op("Reshape", [k, "shape_kv"], f"{s}/k4")], f"{s}/kh", perm=[0, 2, 1, 3]
        )
        v = g.op(
            "Transpose", [g.op("Reshape", [v, "shape_kv"], f"{s}/v4")], f"{s}/vh", perm=[0, 2, 1, 3]
        )
        q = g.op("Mul", [_rope(g, q, cos, sin, f"{s}/rope_q"), "q_scale"], f"{s}/q_scaled")
        k = _rope(g, k, cos, sin, f"{s}/rope_k")
        k_all = g.output_to("Concat", [f"past_key_values.{i}.key", k], f"present.{i}.key", axis=2)
        v_all = g.output_to(
            "Concat", [f"past_key_values.{i}.value", v], f"present.{i}.value", axis=2
        )
        q5 = g.op("Reshape", [q, "shape_q5"], f"{s}/q5")
        k5t = g.op(
            "Transpose",
            [g.op("Unsqueeze", [k_all, "axes_2"], f"{s}/k5")],
            f"{s}/k5t",
            perm=[0, 1, 2, 4, 3],
        )
        v5 = g.op("Unsqueeze", [v_all, "axes_2"], f"{s}/v5")
        scores = g.op("Add", [g.op("MatMul", [q5, k5t], f"{s}/qk"), bias], f"{s}/scores")
        probs = g.op("Softmax", [scores], f"{s}/probs", axis=-1)
        ctx = g.op("MatMul", [probs, v5], f"{s}/ctx5")
        ctx = g.op("Reshape", [ctx, "shape_ctx4"], f"{s}/ctx4")
        ctx = g.op("Transpose", [ctx], f"{s}/ctx_t", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, "shape_hidden"], f"{s}/ctx")
        attn = g.op("MatMul", [ctx, weight_t(f"{p}.self_attn.o_proj.weight")], f"{s}/o")
        x = g.op("Add", [x, attn], f"{s}/resid1")
        h = _rms_norm(
            g,
            x,
            g.const(
                f"{p}.post_attention_layernorm.weight",
                weights[f"{p}.post_attention_layernorm.weight"],
            ),
            eps,
            f"{s}/ffn_norm",
        )
        gate = g.op("MatMul", [h, weight_t(f"{p}.mlp.gate_proj.weight")], f"{s}/gate")
        up = g.op("MatMul", [h, weight_t(f"{p}.mlp.up_proj.weight")], f"{s}/up")
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"{s}/sigmoid")], f"{s}/silu")
        down = g.op(
            "MatMul",
            [g.op("Mul", [act, up], f"{s}/gated"), weight_t(f"{p}.mlp.down_proj.weight")],
            f"{s}/down",
        )
        x = g.op("Add", [x, down], f"{s}/resid2")
    # Only the last position's logits: the runner needs no more, and the full [seq, vocab]
    # product would be a fifth of a 128-token prefill.
    x = g.op("Gather", [x, "index_last"], "last_hidden", axis=1)
    x = _rms_norm(
        g, x, g.const("model.norm.weight", weights["model.norm.weight"]), eps, "final_norm"
    )
    head = "model.embed_tokens.weight" if c.tie_word_embeddings else "lm_head.weight"
    g.output_to("MatMul", [x, weight_t(head)], "logits")

    float_t = TensorProto.FLOAT
    kv_shape: list[str | int | None] = ["batch_size", kv_heads, "past_sequence_length", hd]
    present_shape: list[str | int | None] = ["batch_size", kv_heads, "total_sequence_length", hd]
    inputs = [
        helper.make_tensor_value_info(
            "input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]
        ),
        helper.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]
        ),
        helper.make_tensor_value_info(
            "position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]
        ),
    ]
    outputs = [helper.make_tensor_value_info("logits", float_t, ["batch_size", 1, c.vocab_size])]
    for i in range(c.num_layers):
        for kind in ("key", "value"):
            inputs.append(
                helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", float_t, kv_shape)
            )
            outputs.append(
                helper.make_tensor_value_info(f"present.{i}.{kind}", float_t, present_shape)
            )
    graph = helper.make_graph(g.nodes, "llama_decoder_with_past", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="open-autoglm",
        doc_string="Llama decoder with past key/values, converted from GGUF by open-autoglm",
    )
    model.ir_version = 8
    return model
