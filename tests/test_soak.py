"""A bounded soak test (slow set: `bash setup.sh test -m slow`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_soak_holds_latency_and_memory():
    spec = importlib.util.spec_from_file_location(
        "bench_soak", Path(__file__).parent.parent / "bench" / "bench_soak.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.soak(seconds=60, rate=300)
    assert r["replies"] > 0.9 * 60 * 30  # the /status queries were answered
    assert r["rtt_late_ms"][1] < 3 * max(r["rtt_early_ms"][1], 5.0)  # p99 held
    assert r["rss_end_kb"] < 1.1 * r["rss_start_kb"]  # memory flat
    assert 0 <= r["underruns"] <= 20  # the budget: 20 short underruns a minute
