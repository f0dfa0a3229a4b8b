"""The real server process under abuse, over real sockets: huge prompts must not stall the
event loop, and connections that never finish their request are cut off by the read timeouts."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from open_autoglm.testing import ServerProcess

CHAT = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    args = ("--backend", "sim", "--backend-option", "cost=zero", "--no-tracing",
            "--header-timeout", "1", "--body-timeout", "1")  # fmt: skip
    with ServerProcess(args) as process:
        yield process


@pytest.mark.slow
def test_health_stays_fast_while_huge_prompts_are_rejected(server: ServerProcess) -> None:
    """4 prompts of 30 MB (under the 32 MiB body limit, far over the context): parsing and
    tokenising them on the event loop stalled /health for seconds."""
    words = "word " * (30 * 2**20 // 5)
    big = json.dumps({**CHAT, "messages": [{"role": "user", "content": words}]}).encode()
    latencies: list[float] = []

    def send_big() -> httpx.Response:
        return httpx.post(
            f"{server.url}/v1/chat/completions",
            content=big,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )

    with ThreadPoolExecutor(4) as pool, httpx.Client(base_url=server.url) as probe:
        futures = [pool.submit(send_big) for _ in range(4)]
        while not all(f.done() for f in futures):
            started = time.perf_counter()
            assert probe.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [400] * 4
    assert {a.json()["error"]["code"] for a in answers} == {"context_length_exceeded"}
    assert latencies
    assert max(latencies) < 1.0, f"slowest /health {max(latencies) * 1e3:.0f} ms"


def _open(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(payload)
    return sock


def _read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def test_unfinished_requests_are_cut_off_by_the_read_timeouts(server: ServerProcess) -> None:
    body = json.dumps(CHAT).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    payloads = {
        "nothing": b"",
        "half the headers": head,
        "short body": head + b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body,
        "no body": head + b"Content-Length: 50\r\n\r\n",
    }
    started = time.perf_counter()
    held = [
        (name, _open(server.port, payload)) for name, payload in payloads.items() for _ in range(50)
    ]
    with httpx.Client(base_url=server.url) as client:  # the server still serves meanwhile
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    answers = {name: _read_to_close(sock) for name, sock in held}
    elapsed = time.perf_counter() - started
    assert 0.9 <= elapsed < 8, elapsed  # the 1 s timeouts, not the client, ended them
    for name, answer in answers.items():
        assert answer.startswith(b"HTTP/1.1 408 "), (name, answer[:80])
        assert b'"code":"request_timeout"' in answer, name


def test_a_slow_but_steady_body_is_not_cut_off(server: ServerProcess) -> None:
    """The body timeout is between pieces: an upload slower than it in all still succeeds."""
    body = json.dumps(CHAT).encode()
    sock = _open(
        server.port,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body),
    )
    for i in range(0, len(body), len(body) // 3 + 1):
        time.sleep(0.5)
        sock.sendall(body[i : i + len(body) // 3 + 1])
    answer = _read_to_close(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
