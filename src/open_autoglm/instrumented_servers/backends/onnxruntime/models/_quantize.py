"""Weight-only int4 quantization of an ONNX decoder with onnxruntime's ``MatMulNBits`` quantizer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from open_autoglm.instrumented_servers.backends.onnxruntime.models._errors import (
    ModelPreparationError,
)

if TYPE_CHECKING:
    import onnx

#: 32 weights per scale: the finest block MatMulNBits offers, so int4 stays close to fp32.
BLOCK_SIZE = 32
#: ``accuracy_level=4`` lets the CPU kernel multiply in int8 (activations quantized per block),
#: about twice as fast per decode step on CPU as float compute, with the same greedy answers.
ACCURACY_LEVEL = 4


def quantize_int4(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every ``MatMul`` with a constant weight (projections and LM head) to 4-bit blocks."""
    # The quantizer module calls logging.basicConfig(level=INFO) on import; a handler on the
    # root logger for the duration of the import makes that a no-op.
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )
    except ImportError as exc:
        raise ModelPreparationError(
            f"int4 quantization needs onnxruntime's quantization tools and onnx_ir ({exc}); "
            "install the [onnx] extra"
        ) from exc
    finally:
        root.removeHandler(guard)
    quant_logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quant_logger.level
    quant_logger.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        config = DefaultWeightOnlyQuantConfig(
            block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL
        )
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()
        quantized: onnx.ModelProto = quantizer.model.model
    finally:
        quant_logger.setLevel(level)
    return quantized
