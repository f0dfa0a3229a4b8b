"""The docker compose stack's files: compose validates, every mounted config exists and parses,
Prometheus accepts its config, Grafana's provisioning points at the dashboards and at Tempo.

No Docker engine is needed: Debian's ``docker-compose`` validates and resolves the file
offline, and ``promtool`` (Debian's ``prometheus`` package) checks the Prometheus config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from open_autoglm.dashboards import BOARDS, PROMETHEUS_UID, TEMPO_UID
from open_autoglm.telemetry import names as n
from open_autoglm.testing import ServerProcess

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
PROFILES = ("--profile", "gpu", "--profile", "loadgen")
GRAFANA_PASSWORD = "correct-horse-battery"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "1":
            pytest.fail(f"{name} is not installed; CI installs it (scripts/system-packages.txt)")
        pytest.skip(f"{name} is not installed (make setup-system installs it)")
    return path


def _compose_config(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGLM_")}
    return subprocess.run(
        [_binary("docker-compose"), "-f", str(COMPOSE), *PROFILES, "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**env, **variables},
    )


def _resolve(**variables: str) -> dict[str, Any]:
    result = _compose_config(**variables)
    assert result.returncode == 0, result.stderr
    loaded = yaml.safe_load(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (paths absolute, variables defaulted)."""
    return _resolve(AUTOGLM_GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD)


def _published(services: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(service, host address, host port) of every published port."""
    out = []
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, str):  # "HOST_IP:HOST:CONTAINER[/proto]"
                host_ip, host_port, _ = port.split(":")
                out.append((name, host_ip, int(host_port)))
            else:
                out.append((name, port.get("host_ip", "0.0.0.0"), int(port["published"])))
    return out


def test_ports_are_published_on_loopback_unless_opened(resolved: dict[str, Any]) -> None:
    published = _published(resolved["services"])
    assert {port for _, _, port in published} >= {3000, 3200, 4317, 4318, 8000, 8001, 9090}
    assert {ip for _, ip, _ in published} == {"127.0.0.1"}, published
    opened = _resolve(
        AUTOGLM_GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD, AUTOGLM_BIND_ADDRESS="0.0.0.0"
    )
    assert {ip for _, ip, _ in _published(opened["services"])} == {"0.0.0.0"}


def test_grafana_is_read_only_for_anonymous_users(resolved: dict[str, Any]) -> None:
    environment = resolved["services"]["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_AUTH_DISABLE_LOGIN_FORM"] == "false"
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert environment["GF_SECURITY_ADMIN_PASSWORD"] == GRAFANA_PASSWORD
    assert GRAFANA_PASSWORD not in COMPOSE.read_text(encoding="utf-8")


def test_compose_refuses_to_start_grafana_without_an_admin_password() -> None:
    result = _compose_config()
    assert result.returncode != 0
    assert "AUTOGLM_GRAFANA_ADMIN_PASSWORD" in result.stderr


def _load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), path
    return loaded


def test_compose_has_the_stack(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {
        "otel-collector",
        "tempo",
        "prometheus",
        "grafana",
        "server",
        "server-gpu",
        "loadgen",
    }
    assert services["server"]["command"][:3] == ["serve", "--backend", "sim"]
    assert services["loadgen"]["profiles"] == ["loadgen"]
    assert services["loadgen"]["entrypoint"] == ["/bin/sh", "-ec"]
    assert "open-autoglm benchmark" in services["loadgen"]["command"][0]
    assert services["server-gpu"]["profiles"] == ["gpu"]
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]


def test_third_party_images_are_pinned_by_tag_and_digest(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        if "build" in service:
            assert Path(service["build"]["context"]) == REPO, name
            assert (REPO / service["build"]["dockerfile"]).is_file(), name
            continue
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), (name, image)


def test_every_mounted_file_exists_and_parses(resolved: dict[str, Any]) -> None:
    mounted = 0
    for service in resolved["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith("/"):
                continue  # a named volume
            path = Path(source)
            if path.name == "runs":
                continue  # the load generator's output folder, created on first run
            assert path.exists(), source
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                mounted += 1
                if file.suffix in (".yml", ".yaml"):
                    _load_yaml(file)
                elif file.suffix == ".json":
                    json.loads(file.read_text(encoding="utf-8"))
    # otelcol, tempo, prometheus, 2 provisioning files, the four dashboards
    assert mounted >= 9


def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        [_binary("promtool"), "check", "config", str(DEPLOY / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_datasources_link_exemplars_to_tempo() -> None:
    config = _load_yaml(DEPLOY / "grafana/provisioning/datasources/datasources.yaml")
    by_type = {ds["type"]: ds for ds in config["datasources"]}
    prometheus = by_type["prometheus"]
    tempo = by_type["tempo"]
    assert prometheus["uid"] == PROMETHEUS_UID
    assert tempo["uid"] == TEMPO_UID
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": n.EXEMPLAR_TRACE_ID, "datasourceUid": TEMPO_UID} in [
        {k: d[k] for k in ("name", "datasourceUid")} for d in destinations
    ]
    assert tempo["jsonData"]["tracesToMetrics"]["datasourceUid"] == PROMETHEUS_UID
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == PROMETHEUS_UID
    for query in tempo["jsonData"]["tracesToMetrics"]["queries"]:
        # Grafana expands $VAR in provisioning files: template variables need `$$`.
        assert re.search(r"(?<!\$)\$(?!\$)", query["query"]) is None, query["query"]


def test_grafana_loads_the_generated_dashboards(resolved: dict[str, Any]) -> None:
    provider = _load_yaml(DEPLOY / "grafana/provisioning/dashboards/dashboards.yaml")
    path = provider["providers"][0]["options"]["path"]
    mounts = resolved["services"]["grafana"]["volumes"]
    sources = {
        (v.split(":")[1] if isinstance(v, str) else v["target"]): (
            v.split(":")[0] if isinstance(v, str) else v["source"]
        )
        for v in mounts
    }
    assert Path(sources[path]) == REPO / "dashboards"
    environment = resolved["services"]["grafana"]["environment"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{BOARDS[0].file_name}"


def test_collector_pipeline_order() -> None:
    config = _load_yaml(DEPLOY / "otelcol-config.yaml")
    pipelines = config["service"]["pipelines"]
    for name, pipeline in pipelines.items():
        if "otlp" in pipeline["receivers"]:
            assert pipeline["processors"][0] == "memory_limiter", name
            # span metrics see every span: they are fed before any sampling
            assert "tail_sampling" not in pipeline["processors"], name
            assert {"spanmetrics", "servicegraph"} <= set(pipeline["exporters"]), name
    sampled = [p for p in pipelines.values() if "tail_sampling" in p["processors"]]
    assert len(sampled) == 1
    assert any(e.startswith("otlp_grpc/") for e in sampled[0]["exporters"])
    policies = {p["type"] for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies == {"status_code", "latency", "probabilistic"}
    assert config["connectors"]["spanmetrics"]["exemplars"]["enabled"] is True
    assert config["exporters"]["prometheus"]["enable_open_metrics"] is True


def test_tempo_config_has_no_removed_2x_sections() -> None:
    config = _load_yaml(DEPLOY / "tempo.yaml")
    # Tempo 3.0 removed the ingester/compactor sections and the local-blocks processor.
    assert not {"ingester", "ingester_client", "compactor"} & set(config)
    processors = config.get("overrides", {}).get("defaults", {}).get("metrics_generator", {})
    assert "local-blocks" not in processors.get("processors", [])
    assert config["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(
        ":4317"
    )


@pytest.mark.slow
def test_the_loadgen_service_writes_a_run_directory_that_analyze_reads(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    """The loadgen service's own command, run as its container would (``sh -ec``, ``$$``
    unescaped, ``/runs`` mounted) against a real server: its run directory is what
    ``analyze`` reads."""
    service = resolved["services"]["loadgen"]
    runs = tmp_path / "runs"
    runs.mkdir()
    script = service["command"][0].replace("$$", "$").replace("/runs/", f"{runs}/")
    environment = {k: str(v) for k, v in service["environment"].items()}
    bin_dir = str(Path(sys.executable).parent)
    with ServerProcess(("--backend", "sim", "--backend-option", "cost=zero", "--no-tracing")) as s:
        environment.update(AUTOGLM_TARGET_URL=s.url, AUTOGLM_DURATION="1", AUTOGLM_CONCURRENCY="2")
        result = subprocess.run(
            [*service["entrypoint"], script],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, **environment, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        )
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = runs.iterdir()
    assert run_dir.name.startswith("loadgen-")
    names = {p.name for p in run_dir.iterdir()}
    assert {"results.json", "requests.jsonl", "report.json", "report.html"} <= names
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["version"].startswith("open-autoglm.report/")
    again = subprocess.run(
        [f"{bin_dir}/open-autoglm", "analyze", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
