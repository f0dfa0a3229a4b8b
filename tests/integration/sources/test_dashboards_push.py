"""``open-autoglm dashboards push`` against a tiny fake Grafana on 127.0.0.1 (port 0) that
checks the bearer token and the body of ``POST /api/dashboards/db`` as Grafana's API documents
it, and answers as Grafana does (``{id, uid, url, status, version, slug}``; 401 on a bad token;
404 for an unknown folder)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_http import serving

from open_autoglm.cli import main
from open_autoglm.telemetry._env import ENV_GRAFANA_TOKEN

TOKEN = "glsa_test_token"
DASHBOARDS = Path(__file__).resolve().parents[3] / "dashboards"


class FakeGrafana:
    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        def answer(status: int, doc: dict[str, Any]) -> tuple[int, str, bytes]:
            return status, "application/json", json.dumps(doc).encode()

        if (method, path) != ("POST", "/api/dashboards/db"):
            return answer(404, {"message": "Not found"})
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return answer(401, {"message": "Invalid API key"})
        if headers.get("content-type") != "application/json":
            return answer(415, {"message": "bad content type"})
        doc = json.loads(body)
        self.bodies.append(doc)
        dashboard = doc["dashboard"]
        if doc.get("overwrite") is not True or dashboard.get("id") is not None:
            return answer(412, {"message": "The dashboard has been changed by someone else"})
        if doc.get("folderUid") not in (None, "llm"):
            return answer(404, {"message": "folder not found"})
        uid = dashboard["uid"]
        version = self.stored.get(uid, {}).get("version", 0) + 1
        self.stored[uid] = {**dashboard, "version": version}
        slug = dashboard["title"].lower().replace(" ", "-")
        return answer(200, {"id": len(self.stored), "uid": uid, "url": f"/d/{uid}/{slug}",
                            "status": "success", "version": version, "slug": slug})  # fmt: skip


@pytest.fixture
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    fake = FakeGrafana()
    with serving(fake.handle) as url:
        yield url, fake


def test_push_uploads_every_dashboard_and_overwrites(
    grafana: tuple[str, FakeGrafana],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, fake = grafana
    monkeypatch.setenv(ENV_GRAFANA_TOKEN, TOKEN)
    args = ["dashboards", "push", "--grafana", url, "--dir", str(DASHBOARDS), "--folder", "llm"]
    assert main(args) == 0
    assert main(args) == 0  # a second push replaces: version 2
    committed = {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}
    assert set(fake.stored) == {d["uid"] for d in committed.values()}
    assert all(s["version"] == 2 for s in fake.stored.values())
    first = fake.bodies[0]
    assert first["folderUid"] == "llm"
    assert first["dashboard"] == {**next(iter(committed.values())), "id": None}
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 * len(committed)
    assert out[-1].endswith("(version 2)")
    assert f"{url}/d/" in out[0]


def test_push_rewrites_datasource_uids(grafana: tuple[str, FakeGrafana]) -> None:
    url, fake = grafana
    args = ["dashboards", "push", "--grafana", url, "--dir", str(DASHBOARDS), "--token", TOKEN,
            "--prometheus-uid", "prom-prod", "--tempo-uid", "tempo-prod"]  # fmt: skip
    assert main(args) == 0
    text = json.dumps(list(fake.stored.values()))
    assert '"uid": "prom-prod"' in text
    assert '"uid": "tempo-prod"' in text
    assert '"uid": "prometheus"' not in text
    assert '"uid": "tempo"' not in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--token", "wrong"],
            "HTTP 401, the token was refused or lacks dashboards:write (Invalid API key)",
        ),
        (
            ["--token", TOKEN, "--folder", "nope"],
            "HTTP 404, folder 'nope' not found (folder not found)",
        ),
    ],
)
def test_refusals_are_one_line_errors(
    grafana: tuple[str, FakeGrafana],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    url, fake = grafana
    args = ["dashboards", "push", "--grafana", url, "--dir", str(DASHBOARDS), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("open-autoglm: error: pushing ")
    assert err.endswith(message)
    assert not fake.stored


def test_no_token_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_GRAFANA_TOKEN, raising=False)
    assert main(["dashboards", "push", "--grafana", "http://127.0.0.1:9"]) == 2
    assert f"needs --token or the {ENV_GRAFANA_TOKEN} variable" in capsys.readouterr().err


def test_unreachable_grafana(capsys: pytest.CaptureFixture[str]) -> None:
    from open_autoglm.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"
    args = ["dashboards", "push", "--grafana", url, "--dir", str(DASHBOARDS), "--token", TOKEN]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().endswith(f"cannot reach Grafana at {url}: ConnectError")
