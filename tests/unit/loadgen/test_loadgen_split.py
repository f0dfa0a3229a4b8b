"""Splitting a level's load over workers: the superposition is what was asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from open_autoglm.loadgen import Arrival, ConfigError, Level, arrival_offsets, level_rng
from open_autoglm.loadgen._distributed import distributed_config
from open_autoglm.loadgen._split import split_arrivals, split_evenly, worker_generators
from open_autoglm.loadgen._worker_pool import RAY_MISSING, DistributedConfig


def merged(shares: list) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([s.offsets_s for s in shares])
    indices = np.concatenate([s.indices for s in shares])
    order = np.argsort(offsets, kind="stable")
    return offsets[order], indices[order]


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_poisson_thinning_superposes_to_the_requested_rate(workers: int) -> None:
    rate = 400.0
    level = Level(mode="rate", value=rate, duration_s=20.0)
    shares = split_arrivals(level, 0, seed=7, workers=workers)
    offsets, indices = merged(shares)
    assert offsets[0] == 0.0
    assert offsets[-1] < 20.0
    assert stats.kstest(np.diff(offsets), "expon", args=(0, 1 / rate)).pvalue > 0.01
    assert len(offsets) == pytest.approx(rate * 20, rel=0.05)
    # each worker's own stream is Poisson of rate R/N (exponential gaps)
    for share in shares:
        gaps = np.diff(share.offsets_s)
        assert stats.kstest(gaps, "expon", args=(0, workers / rate)).pvalue > 0.001
    # every request once, indices in arrival order
    assert list(indices) == list(range(len(offsets)))


def test_poisson_with_a_count_keeps_exactly_the_earliest_arrivals() -> None:
    level = Level(mode="rate", value=50.0, requests=1000)
    shares = split_arrivals(level, 2, seed=1, workers=4, base_index=500)
    offsets, indices = merged(shares)
    assert len(offsets) == 1000
    assert list(indices) == list(range(500, 1500))
    assert stats.kstest(np.diff(offsets), "expon", args=(0, 1 / 50.0)).pvalue > 0.01
    assert min(len(s) for s in shares) > 150  # thinning: about a quarter each


@pytest.mark.parametrize(("arrival", "burstiness"), [("constant", 1.0), ("gamma", 0.3)])
def test_constant_and_gamma_deal_out_the_single_process_schedule(
    arrival: Arrival, burstiness: float
) -> None:
    level = Level(mode="rate", value=30.0, requests=301, arrival=arrival, burstiness=burstiness)
    single = arrival_offsets(30.0, arrival, burstiness, level_rng(3, 1, 0), count=301)
    shares = split_arrivals(level, 1, seed=3, workers=3)
    offsets, indices = merged(shares)
    np.testing.assert_array_equal(offsets, single)
    assert list(indices) == list(range(301))
    assert [len(s) for s in shares] == [101, 100, 100]


def test_workers_get_independent_generators_from_the_run_seed() -> None:
    first = [g.random(4) for g in worker_generators(5, 0, 3)]
    again = [g.random(4) for g in worker_generators(5, 0, 3)]
    other_level = [g.random(4) for g in worker_generators(5, 1, 3)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)  # reproducible
    assert len({tuple(a) for a in first}) == 3  # never one stream shared by every worker
    assert not np.array_equal(first[0], other_level[0])


def test_split_evenly() -> None:
    assert split_evenly(32, 2) == [16, 16]
    assert split_evenly(5, 3) == [2, 2, 1]
    assert split_evenly(1, 2) == [1, 0]
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        split_evenly(4, 0)


def test_closed_levels_have_no_arrivals_to_split() -> None:
    with pytest.raises(ConfigError, match="only an open-loop"):
        split_arrivals(Level(mode="concurrency", value=4, requests=10), 0, 0, 2)


def test_distributed_config_takes_ray_address_only_with_workers() -> None:
    env = {"RAY_ADDRESS": "10.0.0.5:6379"}
    assert distributed_config(4, None, env).address == "10.0.0.5:6379"
    assert distributed_config(4, "head:6379", env).address == "head:6379"
    assert distributed_config(2, None, {}).address is None
    assert distributed_config(None, "head:6379", {}).workers is None
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        DistributedConfig(workers=0)
    with pytest.raises(ConfigError, match="needs --workers"):
        DistributedConfig(workers=None, address=None)


def test_workers_without_ray_installed_is_a_one_line_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what an environment without Ray looks like
        "from open_autoglm.cli import main\n"
        "sys.exit(main(['benchmark', '--url', 'http://127.0.0.1:9', '--workers', '2',"
        " '--requests', '1', '--quiet', '--output', 'out/results.json']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"open-autoglm: error: {RAY_MISSING}"


def test_workers_drive_a_server_given_with_url() -> None:
    from open_autoglm.cli import build_parser
    from open_autoglm.commands import UsageError
    from open_autoglm.commands._benchmark import build_config

    args = build_parser().parse_args(["benchmark", "--backend", "sim", "--workers", "2"])
    with pytest.raises(UsageError, match="--workers and --ray-address drive a server"):
        build_config(args)
    args = build_parser().parse_args(["benchmark", "--url", "http://h:1", "--workers", "2"])
    assert args.workers == 2
    assert build_config(args).endpoint.url == "http://h:1"
