"""The report and the comparison page as a browser shows them (Debian's headless Chromium):
at desktop (1280 px) and phone (390 px) widths, no console error, nothing fetched, no page
wider than the phone, and no chart text cut off at its chart's edge. Screenshots are kept
under the test's ``tmp_path`` for a person to look at."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from open_autoglm.analysis import Report, render_html
from open_autoglm.cli import main

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report_run"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
WIDTHS = {"desktop": 1280, "phone": 390}
#: Chart texts whose box leaves their SVG's view box (cut off on screen).
CLIPPED_JS = """() => {
  const out = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const vb = svg.viewBox.baseVal;
    for (const t of svg.querySelectorAll('text')) {
      const b = t.getBBox();
      if (b.width === 0) continue;
      let pts = [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height],
                 [b.x + b.width, b.y + b.height]];
      const own = t.transform.baseVal.consolidate();  // a rotated axis title
      if (own) {
        const m = own.matrix;
        pts = pts.map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
      }
      const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
      if (Math.min(...xs) < vb.x - 1 || Math.max(...xs) > vb.x + vb.width + 1 ||
          Math.min(...ys) < vb.y - 1 || Math.max(...ys) > vb.y + vb.height + 1)
        out.push(t.textContent);
    }
  }
  return out;
}"""


def _browse(pages: dict[str, Path], shots: Path) -> dict[str, dict[str, Any]]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian chromium at /usr/bin/chromium")
        pytest.skip("Debian chromium is not installed")
    seen: dict[str, dict[str, Any]] = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for name, html in pages.items():
                for device, width in WIDTHS.items():
                    errors: list[str] = []
                    requests: list[str] = []
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error"
                            else None)  # fmt: skip
                    page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                    page.on("request", lambda r, q=requests: q.append(r.url))
                    page.goto(html.as_uri())
                    shot = shots / f"{name}-{device}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    seen[f"{name}-{device}"] = {
                        "errors": errors,
                        "requests": requests,
                        "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                        "width": width,
                        "clipped": page.evaluate(CLIPPED_JS),
                        "charts": page.locator("svg.chart").count(),
                        "shot": shot,
                    }
                    page.close()
        finally:
            browser.close()
    return seen


@pytest.mark.browser
def test_report_and_comparison_read_well_at_desktop_and_phone_widths(tmp_path: Path) -> None:
    golden = FIXTURE / "golden_report.json"
    report = Report.from_json(json.loads(golden.read_text(encoding="utf-8")))
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    compare = tmp_path / "compare.html"
    assert main(["compare", "--format", "html", "--output", str(compare), str(golden)]) == 0

    seen = _browse({"report": page, "compare": compare}, tmp_path)

    for key, view in seen.items():
        assert view["errors"] == [], key
        assert all(url.startswith("file://") for url in view["requests"]), key
        assert view["scroll_width"] <= view["width"], f"{key}: the page overflows sideways"
        assert view["clipped"] == [], key
        assert view["shot"].stat().st_size > 10_000
    # results, against-load, time series, distributions, load models, stages, waterfalls
    assert seen["report-desktop"]["charts"] >= 20
    assert seen["compare-desktop"]["charts"] == 5
