"""Square working canvases for the models and the exact way back to the caller's size (thesis 4.2.2)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceedit.core.errors import InvalidOptionError


@dataclass(frozen=True)
class Letterbox:
    """Where a source image sits inside a size x size canvas."""

    src_width: int
    src_height: int
    size: int
    new_width: int
    new_height: int
    pad_left: int
    pad_top: int


def resize(image: np.ndarray, width: int, height: int, *, nearest: bool = False, coarse: bool = False) -> np.ndarray:
    """Resize (H,W[,3]) uint8. nearest keeps label values intact (pixel-centre sampling, as PIL's NEAREST);
    otherwise area averaging when shrinking (no aliasing: a 12 MP photo becomes a 512 parser input) and Lanczos
    when enlarging. An image already of that size comes back as it is (not a copy).

    OpenCV's kernels, not PIL's: 3-5x faster on photo-sized frames, and they release the GIL, so the worker pool
    that runs them really runs them in parallel.
    """
    if width < 1 or height < 1:
        raise InvalidOptionError(f"cannot resize to {width}x{height}; both sides must be at least 1")
    if image.shape[1] == width and image.shape[0] == height:
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST_EXACT
    elif width <= image.shape[1] and height <= image.shape[0]:
        interpolation = cv2.INTER_AREA
        if coarse:
            image = _whole_factor_shrink(image, width, height)
    else:
        interpolation = cv2.INTER_LANCZOS4
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)


def _whole_factor_shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average by the largest whole factor k that keeps the image at least width x height, dropping the
    fewer than k rows and columns past the last whole block: OpenCV's block-average fast path, 3x faster than a
    fractional area resize on camera photos (8064x6048 -> 512: 26 ms instead of 90 ms). The dropped edge shifts
    the result by under one output pixel."""
    k = min(image.shape[1] // width, image.shape[0] // height)
    if k < 2:
        return image
    rows, cols = image.shape[0] // k, image.shape[1] // k
    block = np.ascontiguousarray(image[: rows * k, : cols * k])
    return cv2.resize(block, (cols, rows), interpolation=cv2.INTER_AREA)


def letterbox(
    image: np.ndarray, size: int, *, fill: int = 255, nearest: bool = False, coarse: bool = False
) -> tuple[np.ndarray, Letterbox]:
    """Fit image into size x size, aspect preserved and centred, padding with `fill` (white, as the thesis).
    coarse: shrink by a whole factor first (see resize), for model inputs where a sub-pixel shift is harmless."""
    if size < 1:
        raise InvalidOptionError(f"letterbox size must be at least 1, got {size}")
    height, width = image.shape[:2]
    scale = size / max(width, height)
    new_w = max(1, min(size, round(width * scale)))
    new_h = max(1, min(size, round(height * scale)))
    box = Letterbox(width, height, size, new_w, new_h, (size - new_w) // 2, (size - new_h) // 2)
    canvas = np.full((size, size, *image.shape[2:]), fill, dtype=image.dtype)
    canvas[box.pad_top : box.pad_top + new_h, box.pad_left : box.pad_left + new_w] = resize(
        image, new_w, new_h, nearest=nearest, coarse=coarse
    )
    return canvas, box


def unletterbox(image: np.ndarray, box: Letterbox, *, nearest: bool = False) -> np.ndarray:
    """Crop the padding and resize back to (src_height, src_width): the inverse of letterbox."""
    inner = image[box.pad_top : box.pad_top + box.new_height, box.pad_left : box.pad_left + box.new_width]
    return resize(np.ascontiguousarray(inner), box.src_width, box.src_height, nearest=nearest)
