"""The contract's metric labels are the semantic conventions' attribute names, as Prometheus
writes them; peak memory comes from the kernel's high-water mark where it has one."""

from __future__ import annotations

import sys

import pytest

from open_autoglm.telemetry import names as n
from open_autoglm.telemetry import (
    peak_rss_bytes_of,
    process_peak_rss_bytes,
    process_rss_bytes,
    reset_peak_rss,
)


def test_metric_labels_are_semconv_attribute_names() -> None:
    assert n.LABEL_MODEL == n.prometheus_label(n.GEN_AI_REQUEST_MODEL) == "gen_ai_request_model"
    assert n.prometheus_label(n.GEN_AI_PROVIDER_NAME) == n.LABEL_PROVIDER
    assert n.prometheus_label(n.GEN_AI_OPERATION_NAME) == n.LABEL_OPERATION
    assert n.prometheus_label(n.ERROR_TYPE) == n.LABEL_ERROR_TYPE


def test_stable_http_names() -> None:
    assert (n.HTTP_REQUEST_METHOD, n.HTTP_RESPONSE_STATUS_CODE, n.URL_PATH, n.HTTP_ROUTE) == (
        "http.request.method",
        "http.response.status_code",
        "url.path",
        "http.route",
    )


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM and clear_refs are Linux's")
def test_the_high_water_mark_resets_below_a_freed_allocation() -> None:
    block = bytearray(64 * 2**20)
    block[::4096] = b"\x01" * len(block[::4096])  # touch every page: resident
    with_block = peak_rss_bytes_of("self")
    assert with_block is not None
    del block
    if not reset_peak_rss():
        pytest.skip("this kernel or sandbox refuses /proc/self/clear_refs")
    after = process_peak_rss_bytes()
    assert after < with_block - 48 * 2**20
    assert after >= process_rss_bytes() - 2**20  # reset to the RSS of now, not to zero
