"""Workloads: lengths follow the asked distributions, seeded, with images as data URIs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from open_autoglm.loadgen import (
    DatasetError,
    EndpointConfig,
    LengthDistribution,
    WorkloadConfig,
    build_requests,
    load_prompts,
)
from open_autoglm.loadgen._tokens import SimpleTokenCounter

COUNTER = SimpleTokenCounter()


def test_synthetic_prompts_have_the_asked_token_counts() -> None:
    prompts = load_prompts(WorkloadConfig(input_len=LengthDistribution(50), pool_size=20), COUNTER)
    assert {p.input_tokens for p in prompts} == {50}
    assert len({p.text for p in prompts}) == 20  # all different


def test_shared_prefix() -> None:
    config = WorkloadConfig(input_len=LengthDistribution(10), prefix_len=30, pool_size=8)
    prompts = load_prompts(config, COUNTER)
    starts = {" ".join((p.text or "").split()[:30]) for p in prompts}
    assert len(starts) == 1
    assert {p.input_tokens for p in prompts} == {40}


@pytest.mark.parametrize(
    ("dist", "spread"), [("uniform", 0.5), ("normal", 0.2), ("lognormal", 0.5)]
)
def test_length_distributions(dist: str, spread: float) -> None:
    lengths = np.array(
        LengthDistribution(200, dist, spread).sample(np.random.default_rng(1), 5000)  # type: ignore[arg-type]
    )
    assert lengths.min() >= 1
    if dist == "lognormal":
        assert np.median(lengths) == pytest.approx(200, rel=0.05)
    else:
        assert lengths.mean() == pytest.approx(200, rel=0.03)
    if dist == "uniform":
        assert lengths.min() >= 100
        assert lengths.max() <= 300
    if dist == "normal":
        assert lengths.std() == pytest.approx(40, rel=0.1)


def test_seeded_workloads_repeat() -> None:
    a = load_prompts(WorkloadConfig(seed=3, pool_size=4), COUNTER)
    b = load_prompts(WorkloadConfig(seed=3, pool_size=4), COUNTER)
    c = load_prompts(WorkloadConfig(seed=4, pool_size=4), COUNTER)
    assert a == b
    assert a != c


def test_multimodal_bodies_carry_data_uri_images() -> None:
    config = WorkloadConfig(images=2, image_size=(40, 30), image_format="jpeg", pool_size=3)
    prompts = load_prompts(config, COUNTER)
    (spec, *_) = build_requests(prompts, EndpointConfig(url="http://h:1"), "vlm")
    body = json.loads(spec.body)
    parts = body["messages"][0]["content"]
    assert parts[0]["type"] == "text"
    images = [p["image_url"]["url"] for p in parts[1:]]
    assert len(images) == 2
    assert images[0] != images[1]
    header, data = images[0].split(",", 1)
    assert header == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        assert image.size == (40, 30)
    assert spec.image_count == 2


def test_request_body_fields() -> None:
    prompts = load_prompts(WorkloadConfig(pool_size=1), COUNTER)
    endpoint = EndpointConfig(url="http://h:1", ignore_eos=True, extra_body={"temperature": 0})
    body = json.loads(build_requests(prompts, endpoint, "m")[0].body)
    assert body["model"] == "m"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["ignore_eos"] is True
    assert body["temperature"] == 0
    assert body["max_tokens"] == 64


def test_jsonl_and_sharegpt(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"prompt": "a b c", "max_tokens": 5}\n\n')
    (prompt,) = load_prompts(WorkloadConfig(dataset="jsonl", path=tmp_path / "p.jsonl"), COUNTER)
    assert (prompt.text, prompt.input_tokens, prompt.output_tokens) == ("a b c", 3, 5)
    sharegpt = [{"conversations": [{"from": "human", "value": "hi there"},
                                   {"from": "gpt", "value": "hello to you"}]}]  # fmt: skip
    (tmp_path / "s.json").write_text(json.dumps(sharegpt))
    (prompt,) = load_prompts(WorkloadConfig(dataset="sharegpt", path=tmp_path / "s.json"), COUNTER)
    assert (prompt.input_tokens, prompt.output_tokens) == (2, 3)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("e.jsonl", "", "no prompts"),
        ("x.jsonl", '{"text": "no prompt key"}\n', "x.jsonl:1: expected an object"),
        ("s.json", '{"not": "a list"}', "JSON list"),
        ("t.json", "[]", "no conversation"),
    ],
)
def test_bad_dataset_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    dataset = "jsonl" if name.endswith(".jsonl") else "sharegpt"
    with pytest.raises(DatasetError, match=message):
        load_prompts(WorkloadConfig(dataset=dataset, path=tmp_path / name), COUNTER)
