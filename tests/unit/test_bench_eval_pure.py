"""The pure parts of `faceedit bench` and `faceedit eval`: statistics, schedules, aggregation, metrics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from faceedit.bench.loadgen import Level
from faceedit.bench.stats import arrival_times, summarize
from faceedit.evaluation.metrics import frechet_distance, mask_iou, mean_sd, ssim_outside_mask
from faceedit.evaluation.networks import LPIPS, to_lpips_tensor


def test_summarize_percentiles() -> None:
    stats = summarize(list(range(1, 101)))
    assert stats["p50"] == pytest.approx(50.5) and stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01) and stats["max"] == 100 and stats["mean"] == 50.5
    assert summarize([])["p50"] == 0.0


def test_open_loop_schedules() -> None:
    fixed = arrival_times(4.0, 5, poisson=False)
    assert np.allclose(fixed, [0, 0.25, 0.5, 0.75, 1.0])
    poisson = arrival_times(10.0, 20000, seed=1)
    assert poisson[0] == 0 and np.all(np.diff(poisson) >= 0)
    assert np.diff(poisson).mean() == pytest.approx(0.1, rel=0.03)
    with pytest.raises(ValueError):
        arrival_times(0, 3)


def test_level_summary_counts_and_overhead() -> None:
    level = Level(2, "closed", latencies_ms=[100.0, 120.0], errors=Counter({"UNAVAILABLE": 1}), duration_s=2.0)
    level.stages = [
        {"parse": 10.0, "denoise": 80.0, "composite": 2.0},
        {"parse": 10.0, "denoise": 95.0, "composite": 3.0},
    ]
    summary = level.summary()
    assert (summary["sent"], summary["ok"], summary["errors"]) == (3, 2, {"UNAVAILABLE": 1})
    assert summary["throughput_rps"] == 1.0
    assert summary["overhead_ms"]["p50"] == pytest.approx(10.0)  # 8 and 12 ms
    assert summary["stages_ms"]["denoise"] == pytest.approx(87.5)


def test_ssim_outside_the_mask_ignores_the_edited_region() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 200
    edited = original.copy()
    edited[mask > 0] = 0
    assert ssim_outside_mask(original, edited, mask) == pytest.approx(1.0)
    edited[0:5, 0:5] = 255 - edited[0:5, 0:5]
    assert ssim_outside_mask(original, edited, mask) < 0.999


def test_iou_and_mean_sd() -> None:
    before = np.zeros((4, 4), np.uint8)
    after = np.zeros((4, 4), np.uint8)
    before[:2] = 13
    after[1:3] = 13
    assert mask_iou(before, after, [13]) == pytest.approx(4 / 12)
    assert mask_iou(before, after, [4]) == 0.0
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))


def test_frechet_distance_on_known_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 3))
    b = rng.normal(0, 2, (20000, 3)) + np.array([1.0, 0, 0])
    # Closed form for diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 1 + 3 * 1.
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_lpips_identical_is_zero_and_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = LPIPS().eval()
    with torch.no_grad():
        net.lins.apply(lambda m: m.weight.data.abs_() if hasattr(m, "weight") else None)
    rng = np.random.default_rng(0)
    a = to_lpips_tensor(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    b = to_lpips_tensor(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    loaded = LPIPS.load(net.save_in_published_layout(tmp_path / "lpips"))
    with torch.no_grad():
        assert float(net(a, a)) == 0.0
        assert float(net(a, b)) > 0
        assert float(loaded(a, b)) == pytest.approx(float(net(a, b)))
