from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

from open_autoglm.telemetry import (
    GpuProbe,
    TelemetryConfigError,
    TracingConfig,
    make_exporter,
    make_tracer_provider,
    process_peak_rss_bytes,
    process_rss_bytes,
)
from open_autoglm.telemetry import names as n


def test_no_endpoint_means_no_export() -> None:
    config = TracingConfig.from_env("svc", environ={})
    assert not config.exports
    assert make_exporter(config) is None


def test_otel_variables_are_honoured() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_SERVICE_NAME": "my-server",
    }
    config = TracingConfig.from_env("svc", environ=env)
    assert config.service_name == "my-server"
    exporter = make_exporter(config)
    assert isinstance(exporter, Http)
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"


def test_traces_endpoint_and_grpc_protocol() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
    }
    config = TracingConfig.from_env("svc", environ=env)
    assert config.protocol == "grpc"
    assert isinstance(make_exporter(config), Grpc)


def test_explicit_endpoint_wins_and_sdk_disabled_turns_export_off() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://elsewhere:4318"}
    config = TracingConfig.from_env("svc", endpoint="http://127.0.0.1:9999", environ=env)
    assert config.endpoint == "http://127.0.0.1:9999"
    off = TracingConfig.from_env("svc", environ={**env, "OTEL_SDK_DISABLED": "true"})
    assert not off.exports
    none = TracingConfig.from_env("svc", environ={**env, "OTEL_TRACES_EXPORTER": "none"})
    assert not none.exports


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(TelemetryConfigError, match="http/xml"):
        TracingConfig.from_env("svc", protocol="http/xml", environ={})


def test_resource_and_sampler_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    provider = make_tracer_provider(TracingConfig.from_env("svc", environ={}))
    try:
        assert provider.resource.attributes["deployment.environment"] == "test"
        assert provider.resource.attributes["service.name"] == "svc"
        assert "0.25" in provider.sampler.get_description()
    finally:
        provider.shutdown()


def test_runtime_joins_the_resource() -> None:
    attrs = n.runtime_resource_attributes(
        "onnxruntime", {"device": "cuda", "execution_provider": "CUDAExecutionProvider"}
    )
    provider = make_tracer_provider(
        TracingConfig.from_env("svc", environ={}), resource_attributes=attrs
    )
    try:
        resource = provider.resource.attributes
        assert resource["autoglm.backend"] == "onnxruntime"
        assert resource["autoglm.backend.device"] == "cuda"
        assert resource["autoglm.backend.execution_provider"] == "CUDAExecutionProvider"
        assert resource["service.name"] == "svc"
    finally:
        provider.shutdown()


def test_probes_without_a_gpu_say_so() -> None:
    probe = GpuProbe()
    assert process_peak_rss_bytes() >= process_rss_bytes() > 0
    if not probe.available:  # this CI machine has no GPU
        assert probe.reason.startswith("no GPU")
        assert probe.sample() == []
        assert probe.names() == []
    else:
        assert probe.sample()


def test_service_name_in_resource_attributes_wins_over_our_default() -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=my%20proxy,team=infra"}
    config = TracingConfig.from_env("open-autoglm-proxy", environ=env)
    assert config.service_name == "my proxy"
    both = {**env, "OTEL_SERVICE_NAME": "explicit"}
    assert TracingConfig.from_env("x", environ=both).service_name == "explicit"


def test_exporter_settings_are_read_with_the_traces_forms_winning() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20a,x-a=1",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-a=2",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
    }
    config = TracingConfig.from_env("svc", environ=env)
    assert dict(config.headers) == {"authorization": "Bearer a", "x-a": "2"}
    assert config.compression == "gzip"
    assert config.timeout_s == 2.5
    assert config.certificate == "/etc/ca.pem"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "compression"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign", "key=value"),
    ],
)
def test_bad_exporter_settings_are_clear_errors(key: str, value: str, message: str) -> None:
    with pytest.raises(TelemetryConfigError, match=message):
        TracingConfig.from_env("svc", environ={key: value})
