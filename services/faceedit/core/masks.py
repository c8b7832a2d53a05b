"""Mask construction (thesis 4.4) plus the peers' options: hull, offset, area limits, invert, caller masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import ConvexHull, QhullError

from faceedit.core.errors import CoverageError, InvalidOptionError

MERGE_MODES = ("union", "intersect", "replace")
MAX_GROW_PX = 256


@dataclass(frozen=True)
class MaskSpec:
    grow_px: int = 3  # a 7x7 dilation kernel, thesis annexure 5
    feather_sigma: float = 7.0  # thesis 4.4.2
    min_coverage: float = 0.001  # 0.1 %, thesis 4.4.3
    max_coverage: float = 1.0
    convex_hull: bool = False
    offset_x: int = 0
    offset_y: int = 0
    invert: bool = False
    merge: str = "union"

    def validate(self) -> MaskSpec:
        if abs(self.grow_px) > MAX_GROW_PX:
            raise InvalidOptionError(f"grow_px must be within +/-{MAX_GROW_PX}, got {self.grow_px}")
        if not 0 <= self.feather_sigma <= 64:
            raise InvalidOptionError(f"feather_sigma must be in [0, 64], got {self.feather_sigma}")
        for name in ("min_coverage", "max_coverage"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidOptionError(f"{name} must be a fraction in [0, 1], got {value}")
        if self.min_coverage > self.max_coverage:
            raise InvalidOptionError(
                f"min_coverage {self.min_coverage} is larger than max_coverage {self.max_coverage}"
            )
        if self.merge not in MERGE_MODES:
            raise InvalidOptionError(f"merge must be one of {', '.join(MERGE_MODES)}, got {self.merge!r}")
        return self


def class_union(labels: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """0/255 mask of the pixels labelled with any of class_ids (a 256-entry lookup: one pass over the labels)."""
    ids = list(class_ids)
    if any(not 0 <= i <= 255 for i in ids):
        raise InvalidOptionError(f"class ids must be in [0, 255], got {ids}")
    if labels.dtype != np.uint8:
        raise InvalidOptionError(f"a label map is a uint8 array of class ids, got {labels.dtype}")
    lut = np.zeros(256, np.uint8)
    lut[ids] = 255
    return cv2.LUT(labels, lut)


def _active_region(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of the nonzero pixels grown by margin (clipped); None for an all-zero mask."""
    box = bounding_box(mask, padding=margin)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return slice(y0, y1), slice(x0, x1)


def _within_reach(mask: np.ndarray, reach: int, op: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """op (a filter that maps an all-zero neighbourhood to 0 and sees no further than reach) run only on the part
    of the mask it can change. Lips or eyes are 1% of a portrait: this skips the other 99% of the work, with a
    result identical to filtering the whole frame, because the margin holds the zeros the filter would have seen.
    """
    region = _active_region(mask, reach)
    out = np.zeros_like(mask)
    if region is not None:
        out[region] = op(mask[region])
    return out


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate (px > 0) or erode (px < 0) with a (2|px|+1)^2 square kernel. The image border does not erode:
    a region touching it stays there (OpenCV's erosion pads with the maximum)."""
    if px == 0:
        return mask
    kernel = np.ones((2 * abs(px) + 1,) * 2, np.uint8)
    if px > 0:
        return _within_reach(mask, px, lambda m: cv2.dilate(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0))
    return _within_reach(mask, -px, lambda m: cv2.erode(m, kernel))


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a (2*sigma+1)^2 kernel: a soft edge so the model leaves no seam (thesis 4.4.2).

    OpenCV's 8-bit Gaussian is fixed-point and bit-exact (the same output wherever the pixels sit), so the
    bbox-local run equals a whole-frame one exactly. Its quantised coefficients put it within 2 levels of 255 of a
    float Gaussian (sigma <= 12), by design, at a tenth of the cost (4032x3024: 490 ms in scipy, ~25 ms here).
    """
    if sigma <= 0:
        return mask
    radius = round(sigma)
    size = (2 * radius + 1,) * 2
    return _within_reach(
        mask, radius, lambda m: cv2.GaussianBlur(m, size, sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    )


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of the pixels above 127 (CA-Edit's rough masks; closes gaps in hair and lips)."""
    binary = mask > 127
    rows = np.flatnonzero(binary.any(axis=1))
    selected = np.where(binary, 255, 0).astype(np.uint8)
    if rows.size == 0:
        return selected
    # Every hull vertex is the leftmost or rightmost pixel of its row: two points per row instead of every pixel.
    spans = binary[rows]
    left = spans.argmax(axis=1)
    right = mask.shape[1] - 1 - spans[:, ::-1].argmax(axis=1)
    points = np.concatenate([np.stack([left, rows], axis=1), np.stack([right, rows], axis=1)])
    try:
        hull = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return selected  # all on one line: the region is its own hull
    canvas = Image.new("L", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([(int(x), int(y)) for x, y in hull], fill=255, outline=255)
    return np.maximum(np.asarray(canvas, dtype=np.uint8), selected)


def offset(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift right by dx and down by dy; pixels entering from the border are 0."""
    height, width = mask.shape
    out = np.zeros_like(mask)
    if abs(dx) >= width or abs(dy) >= height:
        return out
    src = mask[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def merge(mask: np.ndarray, other: np.ndarray, mode: str) -> np.ndarray:
    if mask.shape != other.shape:
        raise InvalidOptionError(f"mask shapes differ: {mask.shape} vs {other.shape}")
    if mode == "union":
        return np.maximum(mask, other)
    if mode == "intersect":
        return np.minimum(mask, other)
    if mode == "replace":
        return other.copy()
    raise InvalidOptionError(f"merge must be one of {', '.join(MERGE_MODES)}, got {mode!r}")


def invert(mask: np.ndarray) -> np.ndarray:
    return (255 - mask).astype(np.uint8)


def coverage(mask: np.ndarray) -> float:
    """Fraction of pixels above 128 (thesis 4.4.3)."""
    return float(np.count_nonzero(mask > 128)) / mask.size if mask.size else 0.0


def check_coverage(mask: np.ndarray, attribute: str, minimum: float, maximum: float = 1.0) -> float:
    found = coverage(mask)
    if found < minimum or found > maximum:
        raise CoverageError(attribute, found, minimum, maximum)
    return found


def build_mask(
    labels: np.ndarray,
    class_ids: Sequence[int],
    spec: MaskSpec = MaskSpec(),
    *,
    extra: np.ndarray | None = None,
    attribute: str = "",
) -> np.ndarray:
    """union -> hull -> offset -> grow/shrink -> merge with caller mask -> invert -> feather -> coverage check."""
    spec.validate()
    if extra is not None and spec.merge == "replace":
        if extra.shape != labels.shape:
            raise InvalidOptionError(f"mask shapes differ: {labels.shape} vs {extra.shape}")
        mask = extra  # the parsed region would be discarded: do not build it
    else:
        mask = class_union(labels, class_ids)
        if spec.convex_hull:
            mask = convex_hull(mask)
        if spec.offset_x or spec.offset_y:
            mask = offset(mask, spec.offset_x, spec.offset_y)
        mask = grow(mask, spec.grow_px)
        if extra is not None:
            mask = merge(mask, extra, spec.merge)
    if spec.invert:
        mask = invert(mask)
    mask = feather(mask, spec.feather_sigma)
    check_coverage(mask, attribute, spec.min_coverage, spec.max_coverage)
    return mask


def bounding_box(mask: np.ndarray, *, padding: int = 0, square: bool = False) -> tuple[int, int, int, int] | None:
    """Half-open (x0, y0, x1, y1) of pixels > 0, padded and clipped to the image; None for an empty mask.

    square=True grows the box to a square of its longer side, shifted to stay inside the image, so a crop resizes
    without distortion. Where the image is narrower than that side, the box spans the whole of that dimension: as
    square as the image allows, and never cutting the region.
    """
    if padding < 0:
        raise InvalidOptionError(f"padding must be >= 0, got {padding}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    x0, x1 = max(0, int(cols[0]) - padding), min(width, int(cols[-1]) + 1 + padding)
    y0, y1 = max(0, int(rows[0]) - padding), min(height, int(rows[-1]) + 1 + padding)
    if square:
        side = max(x1 - x0, y1 - y0)
        x0, x1 = _centre_span(x0, x1, min(side, width), width)
        y0, y1 = _centre_span(y0, y1, min(side, height), height)
    return x0, y0, x1, y1


def _centre_span(lo: int, hi: int, side: int, limit: int) -> tuple[int, int]:
    """A span of length side (hi - lo <= side <= limit) centred on [lo, hi), shifted to stay inside [0, limit)."""
    start = (lo + hi - side) // 2
    start = min(max(0, start), limit - side)
    return start, start + side
