"""Secrets given to ``open-autoglm benchmark`` are sent, and written nowhere: URL credentials
(sent as Basic auth), ``OPENAI_API_KEY`` and ``--api-key-file`` (sent as Bearer tokens). Every
file the run and ``analyze`` leave behind, and the CLI's stdout and stderr, are searched."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loadgen_helpers import Crafted

PASSWORD = "S3cretPassw0rd"
KEY = "sk-S3cretApiKey"


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "open_autoglm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environ, **(env or {})},
    )


def files_holding(secret: str, root: Path, *outputs: str) -> list[str]:
    found = [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    return found + [f"output {i}" for i, text in enumerate(outputs) if secret in text]


def test_url_password_is_sent_as_basic_auth_and_written_nowhere(
    crafted: Crafted, tmp_path: Path
) -> None:
    url = crafted.url("one_token").replace("http://", f"http://bench:{PASSWORD}@")
    run = cli("benchmark", "--url", url, "--requests", "3", "--quiet",
              "--output", "out/results.json", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    analyze = cli("analyze", "out", cwd=tmp_path)
    assert analyze.returncode == 0, analyze.stderr
    basic = "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
    assert [s["headers"].get("Authorization") for s in crafted.seen] == [basic] * 3
    assert {"results.json", "requests.jsonl", "report.json", "report.html"} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }
    outputs = (run.stdout, run.stderr, analyze.stdout, analyze.stderr)
    assert files_holding(PASSWORD, tmp_path, *outputs) == []
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["endpoint"]["url"] == crafted.url("one_token") + "/v1/chat/completions"


def test_a_password_in_an_older_results_file_stays_out_of_the_report(
    crafted: Crafted, tmp_path: Path
) -> None:
    run = cli("benchmark", "--url", crafted.url("one_token"), "--requests", "2", "--quiet",
              "--output", "out/results.json", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    results = tmp_path / "out" / "results.json"
    saved = json.loads(results.read_text())
    saved["endpoint"]["url"] = saved["endpoint"]["url"].replace("http://", f"http://u:{PASSWORD}@")
    results.write_text(json.dumps(saved))
    analyze = cli("analyze", "out", cwd=tmp_path)
    assert analyze.returncode == 0, analyze.stderr
    for name in ("report.json", "report.html"):
        text = (tmp_path / "out" / name).read_text()
        assert PASSWORD not in text
        assert "u:***@127.0.0.1" in text


@pytest.mark.slow
def test_api_key_from_the_environment_or_a_file_is_sent_and_written_nowhere(
    crafted: Crafted, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"  {KEY}\n")
    env_run = cli("benchmark", "--url", crafted.url("one_token"), "--requests", "2", "--quiet",
                  "--output", "env/results.json", cwd=tmp_path,
                  env={"OPENAI_API_KEY": KEY})  # fmt: skip
    file_run = cli("benchmark", "--url", crafted.url("one_token"), "--requests", "2", "--quiet",
                   "--api-key-file", str(key_file), "--output", "file/results.json",
                   cwd=tmp_path)  # fmt: skip
    assert env_run.returncode == 0, env_run.stderr
    assert file_run.returncode == 0, file_run.stderr
    analyzed = [cli("analyze", d, cwd=tmp_path) for d in ("env", "file")]
    assert all(a.returncode == 0 for a in analyzed), [a.stderr for a in analyzed]
    assert [s["headers"].get("Authorization") for s in crafted.seen] == [f"Bearer {KEY}"] * 4
    key_file.unlink()  # the only file allowed to hold the key
    outputs = [o for r in (env_run, file_run, *analyzed) for o in (r.stdout, r.stderr)]
    assert files_holding(KEY, tmp_path, *outputs) == []
    assert json.loads((tmp_path / "env" / "results.json").read_text())["endpoint"]["api_key"]


@pytest.mark.slow
def test_url_credentials_with_an_api_key_are_one_redacted_line_and_nothing_is_sent(
    crafted: Crafted, tmp_path: Path
) -> None:
    url = crafted.url("one_token").replace("http://", f"http://bench:{PASSWORD}@")
    run = cli("benchmark", "--url", url, "--api-key", KEY, "--requests", "2", cwd=tmp_path)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "bench:***@" in run.stderr
    assert PASSWORD not in run.stderr + run.stdout
    assert crafted.seen == []
    # the environment's key does not clash with URL credentials: the URL's are used
    ok = cli("benchmark", "--url", url, "--requests", "1", "--quiet", "--output", "o/r.json",
             cwd=tmp_path, env={"OPENAI_API_KEY": KEY})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert crafted.seen[0]["headers"]["Authorization"].startswith("Basic ")
