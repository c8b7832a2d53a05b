"""The thesis's quality metrics (section 5.3, annexure 9), as pure functions over numpy images.

"Outside the mask" means the pixels an edit's soft mask does not touch (mask == 0). The thesis thresholded at 128,
which counts the feathered edge as outside; faceedit composites exactly, so only mask == 0 is promised unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import linalg
from skimage.metrics import structural_similarity


def _grey(image: np.ndarray) -> np.ndarray:
    return (image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def ssim_outside_mask(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> float:
    """Annexure 9: SSIM of the greyscale images with the edited region zeroed in both."""
    outside = (mask == 0).astype(np.float32)
    return float(structural_similarity(_grey(original) * outside, _grey(edited) * outside, data_range=255.0))


def mask_iou(before: np.ndarray, after: np.ndarray, class_ids: Sequence[int]) -> float:
    """IoU of the attribute's region parsed before vs after the edit (0 when both are empty)."""
    a, b = np.isin(before, class_ids), np.isin(after, class_ids)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula)."""
    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError("FID needs at least two images on each side")
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a = np.cov(features_a, rowvar=False) + eps * np.eye(features_a.shape[1])
    cov_b = np.cov(features_b, rowvar=False) + eps * np.eye(features_b.shape[1])
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    data = np.asarray(values, dtype=np.float64)
    return float(data.mean()), float(data.std(ddof=1)) if len(data) > 1 else 0.0
