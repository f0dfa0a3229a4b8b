"""Redaction of URLs and where the API key comes from; no sockets."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from open_autoglm._redact import redact_text, redact_url
from open_autoglm.loadgen import ConfigError, EndpointConfig
from open_autoglm.loadgen._api_key import api_key_from, carries_credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bench:pw@127.0.0.1:8000/v1", "http://bench:***@127.0.0.1:8000/v1"),
        ("https://:pw@h/v1", "https://:***@h/v1"),
        ("http://user@h:1", "http://user@h:1"),
        ("http://h:1/v1?api-key=abc&version=2", "http://h:1/v1?api-key=***&version=2"),
        ("http://u:p%40ss@[::1]:80/", "http://u:***@[::1]:80/"),
        ("http://a:pw@host:notaport/", "http://***@host:notaport/"),
        ("http://plain:8000", "http://plain:8000"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_urls_in_messages() -> None:
    text = "cannot reach http://u:pw@h:1/v1/models, nor https://x:y@z"
    assert redact_text(text) == "cannot reach http://u:***@h:1/v1/models, nor https://x:***@z"


def test_endpoint_takes_credentials_out_of_the_url() -> None:
    endpoint = EndpointConfig(url="http://bench:p%40ss@127.0.0.1:9/v1")
    assert endpoint.url == "http://127.0.0.1:9/v1"
    assert endpoint.request_url == "http://127.0.0.1:9/v1/chat/completions"
    expected = "Basic " + base64.b64encode(b"bench:p@ss").decode()
    assert endpoint.request_headers()["Authorization"] == expected
    assert "p%40ss" not in repr(endpoint)
    assert "p@ss" not in repr(endpoint)
    keyed = EndpointConfig(url="http://h:1", api_key="sk-secret")
    assert "sk-secret" not in repr(keyed)


def test_bad_url_messages_are_redacted() -> None:
    with pytest.raises(ConfigError) as info:
        EndpointConfig(url="http://u:pw@h:99999")
    assert "pw" not in str(info.value)
    with pytest.raises(ConfigError, match="give one of them") as info:
        EndpointConfig(url="http://u:pw@h:1", api_key="k")
    assert "u:***@h" in str(info.value)


def test_api_key_sources_in_order(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n  sk-file  \nignored\n")
    env = {"OPENAI_API_KEY": "sk-env"}
    flag = api_key_from("sk-flag", None, env)
    assert flag is not None
    assert (flag.value, flag.source) == ("sk-flag", "--api-key")
    from_file = api_key_from(None, key_file, env)
    assert from_file is not None
    assert from_file.value == "sk-file"
    from_env = api_key_from(None, None, env)
    assert from_env is not None
    assert from_env.source == "OPENAI_API_KEY"
    assert "sk-env" not in repr(from_env)
    assert api_key_from(None, None, env, use_environment=False) is None
    assert api_key_from(None, None, {}) is None


@pytest.mark.parametrize(
    ("flag", "content", "message"),
    [
        ("k", "x", "exclude each other"),
        (None, "   \n", "is empty"),
        (None, None, "cannot read --api-key-file"),
        ("  ", False, "--api-key is empty"),
    ],
)
def test_api_key_mistakes(
    tmp_path: Path, flag: str | None, content: str | bool | None, message: str
) -> None:
    path = tmp_path / "key"
    if isinstance(content, str):
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        api_key_from(flag, None if content is False else path, {})


def test_requests_with_credentials_of_their_own_do_not_get_the_environment_key() -> None:
    assert carries_credentials("http://u:p@h", {})
    assert carries_credentials("http://h", {"authorization": "Bearer x"})
    assert not carries_credentials("http://h", {"X-Other": "1"})
    assert not carries_credentials(None, {})
