"""Crop-to-region vs full frame: which canvas the pipeline sees and how its pixels come back."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.inpainter.engine import PromptCache
from faceedit.inpainter.framing import canvas_inputs, paste_back, plan_frame


def _mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    return mask


def test_small_regions_are_cropped_and_rendered_small() -> None:
    lips = _mask((1024, 1024), (450, 700, 570, 760))  # ~0.7% of the image, like lips
    frame = plan_frame(lips, "auto", padding=32, working_size=1024, min_crop_size=512)
    assert frame.cropped and frame.canvas == 512
    x0, y0, x1, y1 = frame.box
    assert x1 - x0 == y1 - y0 and x0 <= 418 and x1 >= 602


def test_large_regions_use_the_full_frame_in_auto_mode() -> None:
    hair = _mask((1024, 1024), (100, 50, 900, 600))
    frame = plan_frame(hair, "auto", padding=32, working_size=1024, min_crop_size=512)
    assert not frame.cropped and frame.box == (0, 0, 1024, 1024) and frame.canvas == 1024
    forced = plan_frame(hair, "crop", padding=32, working_size=1024, min_crop_size=512)
    assert forced.cropped and forced.canvas == 896  # the 864-pixel square rounded up to 64
    huge = plan_frame(
        _mask((2000, 2000), (100, 100, 1700, 1700)), "crop", padding=0, working_size=1024, min_crop_size=512
    )
    assert huge.canvas == 1024  # never above the working size


def test_crop_canvas_rounds_up_to_64_and_full_mode_never_crops() -> None:
    region = _mask((2000, 2000), (1000, 1000, 1600, 1100))
    frame = plan_frame(region, "crop", padding=10, working_size=1024, min_crop_size=256)
    assert frame.canvas == 640  # a 620-pixel square rounds up to 640
    assert not plan_frame(region, "full", padding=10, working_size=1024, min_crop_size=256).cropped
    assert not plan_frame(np.zeros((10, 10), np.uint8), "crop", padding=0, working_size=64, min_crop_size=64).cropped


@pytest.mark.parametrize("mode", ["crop", "full"])
def test_paste_back_keeps_every_pixel_outside_the_mask(mode: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 180, 3), dtype=np.uint8)
    mask = _mask((300, 180), (40, 120, 100, 150))
    mask[150:152, 40:100] = 100  # a soft edge
    frame = plan_frame(mask, mode, padding=16, working_size=128, min_crop_size=64)
    canvas, mask_canvas, placement = canvas_inputs(image, mask, frame)
    assert canvas.shape == (frame.canvas, frame.canvas, 3) and mask_canvas.shape == (frame.canvas, frame.canvas)
    generated = rng.integers(0, 256, canvas.shape, dtype=np.uint8)
    out = paste_back(image, generated, mask, frame, placement, match_colors=True)
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert (out[mask == 255] != image[mask == 255]).any()


def test_prompt_cache_is_lru() -> None:
    cache = PromptCache(2)
    calls = []
    for key in ["a", "b", "a", "c", "b"]:
        cache.get((key,), lambda key=key: calls.append(key) or (key,))
    assert calls == ["a", "b", "c", "b"]  # "a" was a hit; "b" was evicted by "c"
    assert (cache.hits, cache.misses) == (1, 4)


@pytest.mark.parametrize("mode", ["crop", "full"])
def test_the_canvas_maps_back_onto_the_region_it_came_from(mode: str) -> None:
    yy, xx = np.mgrid[0:220, 0:140]
    image = np.stack([yy, xx, (yy + xx) // 2], axis=-1).astype(np.uint8)  # smooth, so resampling is near-lossless
    mask = _mask((220, 140), (50, 150, 90, 170))
    frame = plan_frame(mask, mode, padding=8, working_size=128, min_crop_size=64)
    canvas, _, placement = canvas_inputs(image, mask, frame)
    out = paste_back(image, canvas, np.full(mask.shape, 255, np.uint8), frame, placement)  # the canvas, unchanged
    x0, y0, x1, y1 = frame.box
    error = np.abs(out[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1].astype(int))
    assert error.mean() < 2  # a shifted or flipped mapping would be off by tens of levels
