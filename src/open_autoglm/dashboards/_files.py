"""Write the dashboards to ``dashboards/`` and tell whether the committed files are current."""

from __future__ import annotations

from pathlib import Path

from open_autoglm.dashboards._boards import BOARDS
from open_autoglm.dashboards._render import render_dashboard


def rendered_dashboards() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {board.file_name: render_dashboard(board) for board in BOARDS}


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write every dashboard into ``out_dir`` (created if missing); return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_dashboards().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_dashboards(out_dir: Path) -> list[str]:
    """Names of the dashboard files in ``out_dir`` that are missing or differ from the code.

    JSON files there that no board generates count too: Grafana would load them as well.
    """
    expected = rendered_dashboards()
    stale = [
        name
        for name, text in expected.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]
    if out_dir.is_dir():
        stale.extend(
            sorted(path.name for path in out_dir.glob("*.json") if path.name not in expected)
        )
    return stale
