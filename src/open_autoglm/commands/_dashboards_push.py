"""``open-autoglm dashboards push --grafana URL [--token T] [--folder UID] [--dir DIR]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from open_autoglm.commands._choices import ENV_GRAFANA_TOKEN
from open_autoglm.commands._errors import UsageError

_DEFAULT_DIR = Path("dashboards")


def add_push_parser(actions: argparse._SubParsersAction[Any]) -> None:
    push = actions.add_parser(
        "push",
        help="upload the dashboards to a running Grafana (token auth)",
        description="POST every dashboard to Grafana's /api/dashboards/db (overwrite: same uid "
        "is replaced). The token is a Grafana service account token with dashboards:write.",
    )
    push.add_argument("--grafana", required=True, metavar="URL", help="Grafana base URL")
    push.add_argument(
        "--token", help=f"service account token (default: the {ENV_GRAFANA_TOKEN} variable)"
    )
    push.add_argument("--folder", metavar="UID", help="uid of the folder to put them in")
    push.add_argument(
        "--dir",
        type=Path,
        help="folder of dashboard JSON files (default: dashboards/ when present, "
        "else generated from code, which needs the grafana extra)",
    )
    push.add_argument("--prometheus-uid", help="uid of the Prometheus datasource in that Grafana")
    push.add_argument("--tempo-uid", help="uid of the Tempo datasource in that Grafana")
    push.add_argument("--timeout", type=float, default=10.0, help="per request, s")
    push.set_defaults(run=run_push)


def run_push(args: argparse.Namespace) -> int:
    from open_autoglm.dashboards import (
        GrafanaPushError,
        PushConfig,
        load_dashboard_files,
        push_dashboards,
    )

    token = args.token or os.environ.get(ENV_GRAFANA_TOKEN, "")
    if not token:
        raise UsageError(f"dashboards push needs --token or the {ENV_GRAFANA_TOKEN} variable")
    uids = {
        kind: uid
        for kind, uid in (("prometheus", args.prometheus_uid), ("tempo", args.tempo_uid))
        if uid
    }
    try:
        config = PushConfig(
            grafana_url=args.grafana,
            token=token,
            folder_uid=args.folder,
            datasource_uids=uids,
            timeout_s=args.timeout,
        )
        folder: Path | None = args.dir or (_DEFAULT_DIR if _DEFAULT_DIR.is_dir() else None)
        if folder is not None:
            dashboards = load_dashboard_files(folder)
        else:
            import json

            from open_autoglm.dashboards import rendered_dashboards

            dashboards = {name: json.loads(text) for name, text in rendered_dashboards().items()}
        pushed = push_dashboards(config, dashboards)
    except GrafanaPushError as exc:
        raise UsageError(str(exc)) from exc
    for item in pushed:
        print(f"{item.name}: {item.url or item.uid} (version {item.version})")
    return 0
