"""Latency statistics, open-loop schedules and Triton statistics deltas."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.bench.stats import arrival_times, summarize, triton_stage_ms


def test_summarize_percentiles() -> None:
    stats = summarize(list(range(1, 101)))
    assert stats["p50"] == pytest.approx(50.5) and stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01) and stats["max"] == 100 and stats["mean"] == 50.5
    assert summarize([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0, "mean": 7.0}
    assert summarize([])["p50"] == 0.0


def test_fixed_schedule_is_evenly_spaced() -> None:
    assert np.allclose(arrival_times(4.0, 5, poisson=False), [0, 0.25, 0.5, 0.75, 1.0])


def test_poisson_schedule_has_the_target_rate_and_exponential_gaps() -> None:
    offsets = arrival_times(10.0, 20000, seed=1)
    gaps = np.diff(offsets)
    assert offsets[0] == 0 and np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(0.1, rel=0.03)
    assert gaps.std() == pytest.approx(0.1, rel=0.05)  # exponential: sd == mean
    assert np.array_equal(offsets, arrival_times(10.0, 20000, seed=1))  # reproducible


@pytest.mark.parametrize(("rate", "count"), [(0, 3), (-1.0, 3), (1.0, 0)])
def test_schedule_rejects_non_positive_rate_or_count(rate: float, count: int) -> None:
    with pytest.raises(ValueError):
        arrival_times(rate, count)


def test_triton_stage_deltas_are_means_per_request_in_ms() -> None:
    before = {"queue": {"count": "2", "ns": "4000000"}, "compute_infer": {"count": "2", "ns": "100000000"}}
    after = {
        "success": {"count": "6", "ns": "1"},
        "queue": {"count": "6", "ns": "12000000"},
        "compute_input": {"count": "4", "ns": "2000000"},
        "compute_infer": {"count": "6", "ns": "300000000"},
    }
    assert triton_stage_ms(before, after) == {"queue": 2.0, "compute_input": 0.5, "compute_infer": 50.0}
    assert triton_stage_ms(after, after) == {}
