"""The thesis's quality metrics as pure functions: SSIM outside the mask, IoU, FID, mean and sd, aggregation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import linalg

from faceedit.evaluation.metrics import frechet_distance, mask_iou, mean_sd, ssim_outside_mask
from faceedit.evaluation.report import write_plots, write_table
from faceedit.evaluation.runner import aggregate


def test_ssim_outside_the_mask_ignores_the_edited_region() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 200
    mask[19, 20:40] = 1  # the faintest feathered edge still counts as edited
    edited = original.copy()
    edited[mask > 0] = 0
    assert ssim_outside_mask(original, edited, mask) == 1.0
    edited[0:5, 0:5] = 255 - edited[0:5, 0:5]
    assert ssim_outside_mask(original, edited, mask) < 0.999


def test_iou_of_the_region_before_and_after() -> None:
    before = np.zeros((4, 4), np.uint8)
    after = np.zeros((4, 4), np.uint8)
    before[:2] = 13
    after[1:3] = 13
    assert mask_iou(before, after, [13]) == pytest.approx(4 / 12)
    assert mask_iou(before, before, [13]) == 1.0
    assert mask_iou(before, after, [4]) == 0.0  # absent on both sides, as the annexure returns
    after[3] = 12
    assert mask_iou(before, after, [11, 12]) == 0.0


def test_frechet_distance_on_known_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 3))
    b = rng.normal(0, 2, (20000, 3)) + np.array([1.0, 0, 0])
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 1 + 3 * 1.
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-3)


def test_frechet_distance_with_correlated_covariances_matches_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    cov_a = np.array([[2.0, 0.8], [0.8, 1.0]])
    cov_b = np.array([[1.0, -0.3], [-0.3, 0.5]])
    mu_a, mu_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    expected = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real))
    a = rng.multivariate_normal(mu_a, cov_a, 50000)
    b = rng.multivariate_normal(mu_b, cov_b, 50000)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_distance_needs_two_images_a_side() -> None:
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_mean_and_sample_sd() -> None:
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))
    assert mean_sd([5.0]) == (5.0, 0.0)


def test_aggregate_reports_missing_metrics_as_not_computed(tmp_path: Path) -> None:
    records = [
        {"lpips": None, "ssim": 1.0, "iou": 0.5, "clip": None, "latency_s": 2.0},
        {"lpips": None, "ssim": 1.0, "iou": 0.7, "clip": None, "latency_s": 4.0},
    ]
    row = aggregate("hair", records, SimpleNamespace(fid=None))
    assert row["n"] == 2 and row["lpips"] is None and row["clip"] is None and row["fid"] is None
    assert row["ssim"] == {"mean": 1.0, "sd": 0.0} and row["iou"]["mean"] == pytest.approx(0.6)
    table = write_table([row], tmp_path / "table.txt")
    assert "not computed" in table and "1.000 ± 0.000" in table and "n/a" in table
    assert [p.name for p in write_plots([row], tmp_path)] == ["ssim.png", "iou.png", "latency_s.png"]
