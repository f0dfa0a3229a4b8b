"""A decoder-with-past ONNX model folder, loaded into an onnxruntime session.

Any folder in the standard layout works (ours from ``open-autoglm models prepare``, optimum's
``--task text-generation-with-past`` exports, onnxruntime-genai's model builder): ``model.onnx``
(or the single ``*.onnx`` file), ``tokenizer.json``, and optionally ``config.json``,
``generation_config.json`` and ``tokenizer_config.json`` (for the chat template).

Execution providers are asked for explicitly and then checked: onnxruntime quietly falls back
to the CPU when a CUDA or TensorRT provider cannot start, so the providers the session really
got are compared with the request, and a mismatch is an error, never a silent CPU run.

On a GPU provider the session runs with IO binding: the KV cache lives on the device between
steps (``present.N.*`` bound straight back as ``past_key_values.N.*``) and only the last
position's logits come back to the host. ``io_binding=True`` takes the same path on the CPU,
which is how CI covers it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from open_autoglm.instrumented_servers.backends.onnxruntime._kv_ops import KvCacheOps

_log = logging.getLogger(__name__)
Int64Array = npt.NDArray[np.int64]

#: A KV cache: one tensor per ``past_names`` entry, numpy arrays or (IO binding) OrtValues.
Past = list[Any]

#: ``--device`` -> onnxruntime providers, most preferred first.
DEVICE_PROVIDERS: Final[dict[str, tuple[str, ...]]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
DEVICES: Final = ("auto", *DEVICE_PROVIDERS)
_PAST_RE: Final = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
_ONNX_DTYPES: Final[dict[str, type[np.generic]]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


class ModelLoadError(ValueError):
    """The model folder is missing, incomplete or corrupt (an error at start-up)."""


class ExecutionProviderError(ValueError):
    """The execution provider asked for cannot run here (no GPU, no onnxruntime-gpu)."""


def choose_providers(device: str, available: Sequence[str]) -> tuple[str, ...]:
    """Providers for ``device``; ``auto`` takes CUDA when onnxruntime offers it, else CPU."""
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    wanted = DEVICE_PROVIDERS.get(device)
    if wanted is None:
        raise ExecutionProviderError(
            f"unknown device {device!r} for onnxruntime; choose one of {', '.join(DEVICES)}"
        )
    if wanted[0] not in available:
        hint = (
            "install onnxruntime-gpu (and not onnxruntime) on a machine with an NVIDIA GPU"
            if device in ("cuda", "tensorrt")
            else "reinstall onnxruntime"
        )
        raise ExecutionProviderError(
            f"--device {device} needs onnxruntime's {wanted[0]}, which this onnxruntime does not "
            f"offer (available: {', '.join(available)}); {hint}"
        )
    return wanted


def check_providers(device: str, requested: Sequence[str], actual: Sequence[str]) -> str:
    """The provider the session really uses first; an error if it is not the one requested.

    ``auto`` asked for no device in particular: when its CUDA could not start (onnxruntime-gpu
    on a machine without a usable GPU) the CPU is its answer, said in a warning.
    """
    if device == "auto" and actual and actual[0] == "CPUExecutionProvider" != requested[0]:
        _log.warning(
            "--device auto: onnxruntime offers %s but could not start it here; running on "
            "CPUExecutionProvider (ask for --device cuda to make this an error)",
            requested[0],
        )
        return actual[0]
    if not actual or actual[0] != requested[0]:
        raise ExecutionProviderError(
            f"--device {device}: onnxruntime could not start {requested[0]} (no usable GPU, or "
            f"its CUDA/cuDNN/TensorRT libraries are missing) and would have run on "
            f"{', '.join(actual) or 'nothing'} instead; refusing to fall back silently"
        )
    return actual[0]


def _preload_gpu_libraries(ort: Any) -> None:
    """Load CUDA and cuDNN from the ``nvidia-*`` wheels (``onnxruntime-gpu[cuda,cudnn]``), as
    onnxruntime asks of callers; libraries found on the system path are used otherwise. What
    still fails shows up as the provider check's error, not here."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:  # onnxruntime < 1.21
        return
    try:
        preload()
    except Exception as exc:  # a missing or mismatched library: reported by check_providers
        _log.debug("onnxruntime.preload_dlls failed: %s", exc)


@dataclass(frozen=True, slots=True)
class ModelFiles:
    folder: Path
    onnx: Path
    tokenizer: Path
    config: dict[str, Any]
    generation_config: dict[str, Any]
    tokenizer_config: dict[str, Any]


def find_model_files(folder: Path) -> ModelFiles:
    """The files of a model folder (or of the folder of a given ``.onnx`` file)."""
    if folder.is_file() and folder.suffix == ".onnx":
        onnx_path, folder = folder, folder.parent
    elif folder.is_dir():
        candidates = sorted(folder.glob("*.onnx"))
        preferred = [p for p in candidates if p.name in ("model.onnx", "decoder_model_merged.onnx")]
        if preferred:
            onnx_path = preferred[0]
        elif len(candidates) == 1:
            onnx_path = candidates[0]
        else:
            raise ModelLoadError(
                f"{folder} has no model.onnx"
                + (
                    f" (and several other .onnx files: {[p.name for p in candidates]})"
                    if candidates
                    else ""
                )
            )
    else:
        raise ModelLoadError(f"model folder {folder} does not exist")
    tokenizer = folder / "tokenizer.json"
    if not tokenizer.is_file():
        raise ModelLoadError(f"{folder} has no tokenizer.json")
    return ModelFiles(
        folder=folder,
        onnx=onnx_path,
        tokenizer=tokenizer,
        config=_read_json(folder / "config.json"),
        generation_config=_read_json(folder / "generation_config.json"),
        tokenizer_config=_read_json(folder / "tokenizer_config.json"),
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


_PROVIDER_DEVICE: Final[dict[str, str]] = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
}


class DecoderSession:
    """One onnxruntime session over a decoder-with-past model, with its input signature.

    ``io_binding``: None binds on GPU providers only; True or False forces it either way.
    """

    def __init__(
        self,
        files: ModelFiles,
        device: str = "auto",
        threads: int = 0,
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        self.files = files
        self.device = device
        self.requested_providers = choose_providers(device, ort.get_available_providers())
        if self.requested_providers[0] != "CPUExecutionProvider":
            _preload_gpu_libraries(ort)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only; provider fallbacks are checked below
        try:
            self.session = ort.InferenceSession(
                str(files.onnx), options, providers=list(self.requested_providers)
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/...
            raise ModelLoadError(
                f"onnxruntime cannot load {files.onnx}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        self.provider = check_providers(
            device, self.requested_providers, self.session.get_providers()
        )
        self._read_signature()
        #: Where the session's outputs live: ``cpu`` or ``cuda``.
        self.device_type = _PROVIDER_DEVICE.get(self.provider, "cpu")
        bind = self.device_type != "cpu" if io_binding is None else io_binding
        #: The cache-reshaping graphs of the IO-binding path; None on the host-array path.
        self._ops: KvCacheOps | None = None
        if bind:
            self._ops = KvCacheOps(
                len(self.past_names),
                self.kv_dtype,
                self.logits_dtype,
                self.requested_providers,
                self.device_type,
            )

    @property
    def io_binding(self) -> bool:
        """Whether the KV cache stays on the session's device between steps."""
        return self._ops is not None

    def _read_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - set(inputs)
        if missing:
            raise ModelLoadError(
                f"{self.files.onnx.name} is not a decoder with past: no input {sorted(missing)}"
            )
        layers: set[int] = set()
        past_type = "tensor(float)"
        past_shape: Sequence[Any] = ()
        for name, info in inputs.items():
            match = _PAST_RE.match(name)
            if match:
                layers.add(int(match.group(1)))
                past_type, past_shape = info.type, info.shape
        if not layers:
            raise ModelLoadError(
                f"{self.files.onnx.name} has no past_key_values.N.key/value inputs; export it "
                "with past (optimum: --task text-generation-with-past)"
            )
        self.num_layers = max(layers) + 1
        self.kv_dtype = _ONNX_DTYPES.get(past_type, np.float32)
        cfg = self.files.config
        heads = cfg.get("num_attention_heads")
        kv_heads = (
            past_shape[1] if len(past_shape) == 4 and isinstance(past_shape[1], int) else None
        )
        head_dim = (
            past_shape[3] if len(past_shape) == 4 and isinstance(past_shape[3], int) else None
        )
        kv_heads = kv_heads or cfg.get("num_key_value_heads") or heads
        if head_dim is None:
            head_dim = cfg.get("head_dim") or (
                cfg["hidden_size"] // heads if heads and cfg.get("hidden_size") else None
            )
        if not kv_heads or not head_dim:
            raise ModelLoadError(
                f"cannot tell the KV-cache shape of {self.files.onnx.name}: give it a config.json"
            )
        self.num_kv_heads = int(kv_heads)
        self.head_dim = int(head_dim)
        self.has_position_ids = "position_ids" in inputs
        self.has_cache_branch = "use_cache_branch" in inputs
        self.past_names = [
            f"past_key_values.{i}.{kind}"
            for i in range(self.num_layers)
            for kind in ("key", "value")
        ]
        output_info = {o.name: o for o in self.session.get_outputs()}
        outputs = list(output_info)
        if "logits" not in outputs:
            raise ModelLoadError(f"{self.files.onnx.name} has no 'logits' output")
        logits = output_info["logits"]
        self.logits_dtype = _ONNX_DTYPES.get(logits.type, np.float32)
        #: The model gives the last position's logits only (ours do; optimum's give them all).
        self.logits_last_only = len(logits.shape) == 3 and logits.shape[1] == 1
        self.output_names = ["logits"] + [
            f"present.{i}.{kind}" for i in range(self.num_layers) for kind in ("key", "value")
        ]
        absent = set(self.output_names) - set(outputs)
        if absent:
            raise ModelLoadError(f"{self.files.onnx.name} lacks outputs {sorted(absent)[:4]}...")

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token of one sequence takes (all layers, keys and values)."""
        itemsize = np.dtype(self.kv_dtype).itemsize
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * itemsize

    def empty_past(self, batch: int) -> Past:
        """The cache of ``batch`` sequences with nothing in it yet (the input of a prefill)."""
        shape = (batch, self.num_kv_heads, 0, self.head_dim)
        if self.io_binding:
            from onnxruntime import OrtValue

            return [
                OrtValue.ortvalue_from_shape_and_type(shape, self.kv_dtype, self.device_type, 0)
                for _ in self.past_names
            ]
        return [np.zeros(shape, self.kv_dtype) for _ in self.past_names]

    def run(
        self,
        input_ids: Int64Array,
        attention_mask: Int64Array,
        position_ids: Int64Array,
        past: Past,
    ) -> tuple[npt.NDArray[np.float32], Past]:
        """One forward pass: the last position's logits ``[batch, vocab]`` and the new cache."""
        feeds: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.has_position_ids:
            feeds["position_ids"] = position_ids
        if self.has_cache_branch:
            feeds["use_cache_branch"] = np.array([attention_mask.shape[1] > input_ids.shape[1]])
        if self._ops is not None:
            return self._run_bound(feeds, past, self._ops)
        feeds.update(zip(self.past_names, past, strict=True))
        results = self.session.run(self.output_names, feeds)
        logits = np.asarray(results[0][:, -1, :], dtype=np.float32)
        return logits, list(results[1:])

    def _run_bound(
        self, feeds: dict[str, Any], past: Past, ops: KvCacheOps
    ) -> tuple[npt.NDArray[np.float32], Past]:
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        for name, value in zip(self.past_names, past, strict=True):
            if isinstance(value, np.ndarray):  # a cache assembled on the host (prefix reuse)
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        # Logits of one position per row are small: straight to the host. All positions of a
        # prompt ([batch, seq, vocab]) stay on the device and only the last comes back.
        logits_to_host = self.logits_last_only or feeds["input_ids"].shape[1] == 1
        logits_device = "cpu" if logits_to_host else self.device_type
        binding.bind_output("logits", logits_device, 0)
        for name in self.output_names[1:]:
            binding.bind_output(name, self.device_type, 0)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        if logits_device == "cpu":
            logits = np.asarray(outputs[0].numpy()[:, -1, :], dtype=np.float32)
        else:
            logits = ops.last_logits(outputs[0])
        return logits, list(outputs[1:])

    def host_columns(self, past: Past, start: int) -> list[npt.NDArray[Any]]:
        """Columns ``start:`` of every cache tensor as host arrays (with IO binding, a copy
        of just those columns from the device)."""
        if self._ops is None:
            return [p[:, :, start:, :] for p in past]
        if start:
            rows = np.arange(past[0].shape()[0], dtype=np.int64)
            past = self._ops.select(past, rows, start)
        return [np.asarray(value.numpy()) for value in past]

    def select_past(self, past: Past, rows: Int64Array, start: int) -> Past:
        """The cache of the sequences ``rows``, without its first ``start`` columns."""
        if self._ops is not None:
            return self._ops.select(past, rows, start)
        return [np.ascontiguousarray(p[rows, :, start:, :]) for p in past]

    def join_past(self, first: Past, pad_first: int, then: Past, pad_then: int) -> Past:
        """The rows of ``first`` and then of ``then``, each padded on the left by so many
        columns of zeros (so both reach the same length)."""
        if self._ops is not None:
            return self._ops.join(first, pad_first, then, pad_then)
        return [
            np.concatenate([_pad_left(a, pad_first), _pad_left(b, pad_then)])
            for a, b in zip(first, then, strict=True)
        ]


def _pad_left(array: npt.NDArray[Any], columns: int) -> npt.NDArray[Any]:
    if columns == 0:
        return array
    return np.pad(array, ((0, 0), (0, 0), (columns, 0), (0, 0)))
