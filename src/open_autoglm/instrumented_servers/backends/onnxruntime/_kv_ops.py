"""KV-cache reshaping on the session's own device: small ONNX graphs run with IO binding.

With IO binding (``--device cuda``, or ``io_binding=on``) the cache of the running batch stays
where onnxruntime put it: ``present.N.*`` of one step are bound as ``past_key_values.N.*`` of the
next, with no copy through the host. What the scheduler does to the cache between steps
(dropping finished rows, trimming padding columns, joining newly prefilled rows padded on the
left) must then happen on that device too. Each operation is one tiny graph over every layer's
tensors at once, run by onnxruntime on the same providers, so the CPU runs the very same code
path in CI that the GPU runs.

- ``select``: ``out.i = past.i[rows, :, start:, :]``
- ``join``: ``out.i = concat(pad(a.i, pads_a), pad(b.i, pads_b))`` along the batch axis
- ``last_logits``: ``logits[:, -1, :]``, the one slice of the logits the host needs
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

_INT64_MAX: Final = np.iinfo(np.int64).max
_ONNX_ELEMENT: Final[dict[type[np.generic], int]] = {np.float32: 1, np.float16: 10}
_OPSET: Final = 17


def _graphs(count: int, element: int, logits_element: int) -> dict[str, Any]:
    """The three graphs, as ``onnx.ModelProto`` by name."""
    from onnx import TensorProto, helper

    def tensor(name: str, elem: int = element, shape: Sequence[str | int] | None = None) -> Any:
        dims = list(shape) if shape is not None else ["batch", "heads", "length", "head_dim"]
        return helper.make_tensor_value_info(name, elem, dims)

    def model(name: str, nodes: list[Any], inputs: list[Any], outputs: list[Any]) -> Any:
        graph = helper.make_graph(nodes, name, inputs, outputs)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
        proto.ir_version = 8
        return proto

    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [_INT64_MAX])
    axis2 = helper.make_tensor("axis2", TensorProto.INT64, [1], [2])
    select_nodes: list[Any] = [
        helper.make_node("Constant", [], ["ends"], value=ends),
        helper.make_node("Constant", [], ["axis2"], value=axis2),
    ]
    join_nodes: list[Any] = []
    for i in range(count):
        select_nodes += [
            helper.make_node("Gather", [f"past.{i}", "rows"], [f"rows.{i}"], axis=0),
            helper.make_node("Slice", [f"rows.{i}", "start", "ends", "axis2"], [f"out.{i}"]),
        ]
        join_nodes += [
            helper.make_node("Pad", [f"a.{i}", "pads_a"], [f"pa.{i}"]),
            helper.make_node("Pad", [f"b.{i}", "pads_b"], [f"pb.{i}"]),
            helper.make_node("Concat", [f"pa.{i}", f"pb.{i}"], [f"out.{i}"], axis=0),
        ]
    outs = [tensor(f"out.{i}") for i in range(count)]
    select = model(
        "kv_select",
        select_nodes,
        [tensor(f"past.{i}") for i in range(count)]
        + [tensor("rows", TensorProto.INT64, ["kept"]), tensor("start", TensorProto.INT64, [1])],
        outs,
    )
    join = model(
        "kv_join",
        join_nodes,
        [tensor(f"a.{i}") for i in range(count)]
        + [tensor(f"b.{i}") for i in range(count)]
        + [tensor("pads_a", TensorProto.INT64, [8]), tensor("pads_b", TensorProto.INT64, [8])],
        outs,
    )
    last_nodes = [
        helper.make_node(
            "Constant", [], ["minus1"], value=helper.make_tensor("m", TensorProto.INT64, [], [-1])
        ),
        helper.make_node("Gather", ["logits", "minus1"], ["last"], axis=1),
    ]
    last = model(
        "last_logits",
        last_nodes,
        [tensor("logits", logits_element, ["batch", "sequence", "vocab"])],
        [tensor("last", logits_element, ["batch", "vocab"])],
    )
    return {"select": select, "join": join, "last_logits": last}


class KvCacheOps:
    """The operations on ``count`` cache tensors of ``dtype``, on ``providers``' device."""

    def __init__(
        self,
        count: int,
        dtype: type[np.generic],
        logits_dtype: type[np.generic],
        providers: Sequence[str],
        device_type: str,
        device_id: int = 0,
    ) -> None:
        import onnxruntime as ort

        self.count = count
        self.device_type = device_type
        self.device_id = device_id
        options = ort.SessionOptions()
        options.log_severity_level = 3
        graphs = _graphs(count, _ONNX_ELEMENT[dtype], _ONNX_ELEMENT[logits_dtype])
        self._sessions = {
            name: ort.InferenceSession(proto.SerializeToString(), options, providers=[*providers])
            for name, proto in graphs.items()
        }

    def _run(self, name: str, values: dict[str, Any], host_inputs: dict[str, Any]) -> list[Any]:
        session = self._sessions[name]
        binding = session.io_binding()
        for key, value in values.items():
            binding.bind_ortvalue_input(key, value)
        for key, array in host_inputs.items():
            binding.bind_cpu_input(key, array)
        for i in range(self.count):
            binding.bind_output(f"out.{i}", self.device_type, self.device_id)
        session.run_with_iobinding(binding)
        outputs: list[Any] = binding.get_outputs()
        return outputs

    def select(self, past: Sequence[Any], rows: npt.NDArray[np.int64], start: int) -> list[Any]:
        """``past.i[rows, :, start:, :]`` for every tensor."""
        return self._run(
            "select",
            {f"past.{i}": value for i, value in enumerate(past)},
            {"rows": np.ascontiguousarray(rows, np.int64), "start": np.array([start], np.int64)},
        )

    def join(self, a: Sequence[Any], extra_a: int, b: Sequence[Any], extra_b: int) -> list[Any]:
        """Rows of ``a`` then of ``b``, each padded on the left of the length axis."""
        values = {f"a.{i}": value for i, value in enumerate(a)}
        values.update({f"b.{i}": value for i, value in enumerate(b)})
        return self._run(
            "join",
            values,
            {
                "pads_a": np.array([0, 0, extra_a, 0, 0, 0, 0, 0], np.int64),
                "pads_b": np.array([0, 0, extra_b, 0, 0, 0, 0, 0], np.int64),
            },
        )

    def last_logits(self, logits: Any) -> npt.NDArray[np.float32]:
        """``logits[:, -1, :]`` of a device tensor, copied to the host."""
        session = self._sessions["last_logits"]
        binding = session.io_binding()
        binding.bind_ortvalue_input("logits", logits)
        binding.bind_output("last", "cpu")
        session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)
