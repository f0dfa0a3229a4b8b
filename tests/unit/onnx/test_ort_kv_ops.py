"""The KV-cache graphs of the IO-binding path against numpy, on onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import pytest

from open_autoglm.instrumented_servers.backends.onnxruntime._kv_ops import KvCacheOps

ort = pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
pytest.importorskip("onnx", reason="needs the [onnx] extra")


@pytest.fixture(scope="module")
def ops() -> KvCacheOps:
    return KvCacheOps(4, np.float32, np.float32, ["CPUExecutionProvider"], "cpu")


def device(arrays: list[np.ndarray]) -> list[object]:
    return [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays]


def cache(rng: np.random.Generator, batch: int, length: int) -> list[np.ndarray]:
    return [rng.standard_normal((batch, 3, length, 8)).astype(np.float32) for _ in range(4)]


def test_select_keeps_rows_in_order_and_trims_columns(ops: KvCacheOps) -> None:
    past = cache(np.random.default_rng(0), 5, 7)
    rows = np.array([4, 1, 3], np.int64)
    out = ops.select(device(past), rows, 2)
    assert len(out) == 4
    for got, want in zip(out, past, strict=True):
        np.testing.assert_array_equal(got.numpy(), want[rows, :, 2:, :])


def test_join_pads_each_side_on_the_left(ops: KvCacheOps) -> None:
    rng = np.random.default_rng(1)
    first, then = cache(rng, 2, 5), cache(rng, 3, 3)
    out = ops.join(device(first), 0, device(then), 2)
    for got, a, b in zip(out, first, then, strict=True):
        value = got.numpy()
        assert value.shape == (5, 3, 5, 8)
        np.testing.assert_array_equal(value[:2], a)
        np.testing.assert_array_equal(value[2:, :, 2:], b)
        assert not value[2:, :, :2].any()


def test_last_logits_come_back_to_the_host(ops: KvCacheOps) -> None:
    logits = np.random.default_rng(2).standard_normal((3, 6, 11)).astype(np.float32)
    got = ops.last_logits(ort.OrtValue.ortvalue_from_numpy(logits))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, logits[:, -1, :])


def test_empty_selection_of_columns_is_allowed(ops: KvCacheOps) -> None:
    # A prefill starts from a cache with no columns; selecting from one must not fail.
    past = [np.zeros((2, 3, 0, 8), np.float32) for _ in range(4)]
    out = ops.select(device(past), np.array([1], np.int64), 0)
    assert out[0].numpy().shape == (1, 3, 0, 8)
