"""Upload the dashboards to a running Grafana: ``POST /api/dashboards/db`` with a bearer token.

Each dashboard goes up with ``overwrite: true`` (same ``uid``: replaced, a new version in its
history), ``id`` cleared (ids are per Grafana instance) and, optionally, into a folder by uid.
The dashboards query the datasources by the uids ``deploy/grafana`` provisions (``prometheus``,
``tempo``); a Grafana whose datasources have other uids gets the references rewritten.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from open_autoglm.dashboards._datasources import PROMETHEUS_UID, TEMPO_UID
from open_autoglm.errors import OpenAutoGLMError

_DEFAULT_UIDS: Final = {"prometheus": PROMETHEUS_UID, "tempo": TEMPO_UID}


class GrafanaPushError(OpenAutoGLMError):
    """Grafana refused a dashboard, cannot be reached, or the push is misconfigured."""


@dataclass(frozen=True, slots=True)
class PushConfig:
    """Where and how to push; checked when built."""

    grafana_url: str
    token: str = field(repr=False)
    folder_uid: str | None = None
    #: Datasource type (``prometheus``, ``tempo``) -> its uid in the target Grafana.
    datasource_uids: Mapping[str, str] = field(default_factory=dict)
    message: str = "open-autoglm dashboards push"
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.grafana_url.startswith(("http://", "https://")):
            raise GrafanaPushError(
                f"Grafana URL must start with http:// or https://: {self.grafana_url}"
            )
        if not self.token.strip():
            raise GrafanaPushError("a Grafana service account token is needed")
        unknown = sorted(set(self.datasource_uids) - set(_DEFAULT_UIDS))
        if unknown:
            raise GrafanaPushError(f"unknown datasource types: {', '.join(unknown)}")
        if self.timeout_s <= 0:
            raise GrafanaPushError(f"timeout_s must be positive, got {self.timeout_s}")


@dataclass(frozen=True, slots=True)
class PushedDashboard:
    """Grafana's answer for one dashboard."""

    name: str
    uid: str
    url: str | None
    version: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_dashboard_files(folder: Path) -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON of every ``*.json`` in ``folder`` (sorted by name)."""
    if not folder.is_dir():
        raise GrafanaPushError(f"{folder} is not a folder of dashboard JSON files")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GrafanaPushError(f"{path} is not JSON: {exc}") from None
        if not isinstance(document, dict) or not document.get("uid"):
            raise GrafanaPushError(f"{path} is not a dashboard with a uid")
        out[path.name] = document
    if not out:
        raise GrafanaPushError(f"{folder} holds no dashboard JSON files")
    return out


def with_datasources(dashboard: Mapping[str, Any], uids: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``dashboard`` whose datasource references point at ``uids`` (type -> uid)."""
    out = copy.deepcopy(dict(dashboard))
    if not uids:
        return out

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if (
                isinstance(kind, str)
                and kind in uids
                and node.get("uid") == _DEFAULT_UIDS.get(kind)
                and set(node) <= {"type", "uid"}
            ):
                node["uid"] = uids[kind]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def push_dashboards(
    config: PushConfig,
    dashboards: Mapping[str, Mapping[str, Any]],
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[PushedDashboard]:
    """POST each dashboard to Grafana; stop at the first refusal (raised, with Grafana's words)."""
    base = config.grafana_url.rstrip("/")
    headers = {"Authorization": f"Bearer {config.token}", "Accept": "application/json"}
    pushed = []
    with httpx.Client(timeout=config.timeout_s, headers=headers, transport=transport) as client:
        for name, dashboard in dashboards.items():
            body: dict[str, Any] = {
                "dashboard": {**with_datasources(dashboard, config.datasource_uids), "id": None},
                "overwrite": True,
                "message": config.message,
            }
            if config.folder_uid:
                body["folderUid"] = config.folder_uid
            try:
                response = client.post(f"{base}/api/dashboards/db", json=body)
            except httpx.HTTPError as exc:
                raise GrafanaPushError(
                    f"cannot reach Grafana at {base}: {type(exc).__name__}"
                ) from exc
            answer = _json_object(response)
            if response.status_code != 200:
                raise GrafanaPushError(_refusal(name, response.status_code, answer, config))
            version = answer.get("version")
            pushed.append(
                PushedDashboard(
                    name=name,
                    uid=str(answer.get("uid", dashboard.get("uid", ""))),
                    url=f"{base}{answer['url']}" if isinstance(answer.get("url"), str) else None,
                    version=version if isinstance(version, int) else None,
                )
            )
    return pushed


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _refusal(name: str, status: int, answer: Mapping[str, Any], config: PushConfig) -> str:
    said = str(answer.get("message") or answer.get("status") or "no message")
    if status in (401, 403):
        why = "the token was refused or lacks dashboards:write"
    elif status == 404 and config.folder_uid:
        why = f"folder {config.folder_uid!r} not found"
    elif status == 412:
        why = "a different dashboard holds this uid or title"
    else:
        why = "Grafana refused it"
    return f"pushing {name}: HTTP {status}, {why} ({said})"
