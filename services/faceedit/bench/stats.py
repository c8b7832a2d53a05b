"""Latency statistics for the load generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of a sample; an empty sample gives zeros (a level where every request failed)."""
    if not len(values_ms):
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    data = np.asarray(values_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(data.max()),
        "mean": float(data.mean()),
    }


def arrival_times(rate: float, count: int, *, poisson: bool = True, seed: int = 0) -> np.ndarray:
    """Send offsets (seconds from start) of an open-loop run: Poisson arrivals or a fixed interval."""
    if rate <= 0 or count <= 0:
        raise ValueError("rate and count must be positive")
    if not poisson:
        return np.arange(count) / rate
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, count)
    return np.concatenate([[0.0], np.cumsum(gaps[:-1])])


# The one definition of "overhead", used by `faceedit bench` (its table's "ovh" column) and `faceedit compare
# overhead`: a request's end-to-end latency minus the models' own time, the parser's inference round trip and the
# denoising loop, and minus the wait for the serial inpainter (under concurrency that wait is queueing, reported as
# its own stage). Everything left is faceedit's own work: decode, letterbox, masks, cutting the region, the hop,
# pasting and compositing at full resolution (composite counts: it is ours), encode.
NOT_OVERHEAD = ("parse", "queue", "denoise")


def overhead_ms(latency_ms: float, stages: dict[str, float]) -> float:
    """What faceedit itself added to one request: latency_ms minus its NOT_OVERHEAD stages (the server's
    per-stage timings, ms)."""
    return latency_ms - sum(stages.get(stage, 0.0) for stage in NOT_OVERHEAD)


TRITON_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


def triton_stage_ms(before: dict, after: dict) -> dict[str, float]:
    """Mean ms per request of each Triton stage between two snapshots of a model's cumulative inference_stats
    (tritonclient's JSON form: counts and nanoseconds as strings, zero fields omitted)."""

    def total(stats: dict, stage: str, key: str) -> int:
        return int(stats.get(stage, {}).get(key, 0))

    result = {}
    for stage in TRITON_STAGES:
        count = total(after, stage, "count") - total(before, stage, "count")
        if count > 0:
            result[stage] = (total(after, stage, "ns") - total(before, stage, "ns")) / count / 1e6
    return result
