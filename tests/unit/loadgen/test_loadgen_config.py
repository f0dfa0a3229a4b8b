"""Config objects refuse impossible settings when they are built."""

from __future__ import annotations

from typing import Any

import pytest

from open_autoglm.loadgen import ConfigError, EndpointConfig, ProfileConfig
from open_autoglm.loadgen._endpoint import parse_body_field, parse_header


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "rate", "rate": 0.0, "requests": 5}, "rate must be > 0"),
        ({"kind": "rate", "requests": 5}, "needs --rate"),
        ({"kind": "step", "requests": 5}, "needs --levels"),
        ({"kind": "step", "step_levels": (1, 0), "requests": 5}, "whole number >= 1"),
        ({"kind": "step", "step_levels": (2.5,), "requests": 5}, "whole number >= 1"),
        ({"kind": "concurrency", "concurrency": 4}, "--requests and/or --duration"),
        ({"kind": "single", "requests": 0}, "--requests must be >= 1"),
        ({"kind": "sweep", "sweep_levels": 0, "requests": 5}, "--sweep-levels"),
        ({"kind": "concurrency", "concurrency": 2, "requests": 5, "cooldown_s": 1}, "cooldown"),
    ],
)
def test_impossible_profiles(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProfileConfig(**kwargs)


def test_step_levels_expand_in_order() -> None:
    profile = ProfileConfig(kind="step", step_levels=(1, 10.5), step_mode="rate", duration_s=2)
    assert [lvl.label for lvl in profile.levels()] == ["rate=1/s", "rate=10.5/s"]


def test_sweep_rates_lie_strictly_between() -> None:
    profile = ProfileConfig(kind="sweep", sweep_levels=3, requests=10)
    rates = [lvl.value for lvl in profile.sweep_rate_levels(2.0, 10.0)]
    assert rates == pytest.approx([4.0, 6.0, 8.0])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:1", "http://h:1/v1/chat/completions"),
        ("http://h:1/", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions"),
        ("https://h/prefix", "https://h/prefix/v1/chat/completions"),
    ],
)
def test_request_url(url: str, expected: str) -> None:
    assert EndpointConfig(url=url).request_url == expected


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://h/", "http://", "http://h:99999"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="bad URL"):
        EndpointConfig(url=url)


def test_headers_and_body_fields() -> None:
    assert parse_header("X-Tenant: a:b") == ("X-Tenant", "a:b")
    assert parse_body_field("temperature=0.5") == ("temperature", 0.5)
    assert parse_body_field('stop=["\\n"]') == ("stop", ["\n"])
    assert parse_body_field("user=alice") == ("user", "alice")
    endpoint = EndpointConfig(url="http://h:1", api_key="k", headers={"X-A": "1"})
    headers = endpoint.request_headers()
    assert headers["Authorization"] == "Bearer k"
    assert headers["X-A"] == "1"
    with pytest.raises(ConfigError):
        parse_header("no colon")
