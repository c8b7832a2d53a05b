"""Framing: which part of the photo renders, how it travels to the inpainter bounded by its canvas, the canvas it
renders at, and the way back at full resolution with every pixel outside the mask untouched."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceedit.core.framing import (
    Frame,
    canvas_inputs,
    canvas_size,
    cut_region,
    paste_back,
    paste_region,
    plan_frame,
    travel_size,
    whole,
)


def _mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    return mask


def test_small_regions_are_cropped_large_ones_use_the_whole_frame_in_auto_mode() -> None:
    lips = _mask((1024, 1024), (450, 700, 570, 760))  # ~0.7% of the image, like lips
    frame = plan_frame(lips, "auto", padding=32)
    assert frame.cropped and frame.width == frame.height
    x0, y0, x1, y1 = frame.box
    assert x0 <= 418 and x1 >= 602 and y0 <= 668 and y1 >= 792
    hair = _mask((1024, 1024), (100, 50, 900, 600))
    assert plan_frame(hair, "auto", padding=32) == Frame((0, 0, 1024, 1024), False)
    assert plan_frame(hair, "crop", padding=32).cropped
    assert not plan_frame(lips, "full", padding=32).cropped
    assert plan_frame(np.zeros((10, 10), np.uint8), "crop", padding=0) == Frame((0, 0, 10, 10), False)
    with pytest.raises(ValueError, match="frame mode"):
        plan_frame(lips, "zoom", padding=0)


def test_canvas_is_the_working_size_for_a_whole_frame_and_a_rounded_crop_otherwise() -> None:
    crop = Frame((1000, 1000, 1620, 1620), True)
    assert canvas_size(crop, working_size=1024, min_crop_size=256) == 640  # 620 rounded up to 64
    assert canvas_size(crop, working_size=1024, min_crop_size=1024) == 1024  # native canvas for crops
    assert canvas_size(Frame((0, 0, 3000, 3000), True), working_size=1024, min_crop_size=256) == 1024
    assert canvas_size(Frame((0, 0, 300, 200), False), working_size=1024, min_crop_size=256) == 1024


def test_the_region_travels_at_most_at_the_working_size() -> None:
    photo = np.random.default_rng(0).integers(0, 256, (3024, 4032, 3), dtype=np.uint8)
    lips = Frame((1800, 2000, 2200, 2400), True)
    assert travel_size(lips, 1024) == (400, 400)
    assert cut_region(photo, lips, 1024).shape == (400, 400, 3)  # small regions travel at full resolution
    assert np.array_equal(cut_region(photo, lips, 1024), photo[2000:2400, 1800:2200])
    full = whole(photo)
    assert travel_size(full, 1024) == (1024, 768)
    region = cut_region(photo, full, 1024)
    assert region.shape == (768, 1024, 3) and region.nbytes < 5 * 2**20  # bounded whatever the photo
    assert cut_region(photo[..., 0], full, 1024).shape == (768, 1024)  # masks travel the same way


def _photo_and_mask(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    height, width = draw(st.integers(8, 120)), draw(st.integers(8, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    y, x = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
    h, w = draw(st.integers(1, height)), draw(st.integers(1, width))
    mask[y : y + h, x : x + w] = rng.integers(0, 256, mask[y : y + h, x : x + w].shape, dtype=np.uint8)
    return photo, mask


@settings(max_examples=150, deadline=None)
@given(
    st.composite(_photo_and_mask)(),
    st.sampled_from(["auto", "crop", "full"]),
    st.integers(0, 40),
    st.sampled_from([16, 64, 1024]),
)
def test_the_round_trip_keeps_every_pixel_where_the_mask_is_zero(
    case: tuple[np.ndarray, np.ndarray], mode: str, padding: int, working_size: int
) -> None:
    """Plan on the full-resolution mask, send the (possibly downsampled) region, get a render of that size back,
    paste at full resolution: exact wherever the mask is 0, whatever the sizes."""
    photo, mask = case
    frame = plan_frame(mask, mode, padding=padding)
    region = cut_region(photo, frame, working_size)
    assert max(region.shape[:2]) <= max(working_size, 1) or max(region.shape[:2]) <= max(frame.width, frame.height)
    rendered = 255 - region  # any render of the sent size
    out = paste_region(photo, rendered, mask, frame)
    assert out.shape == photo.shape
    assert np.array_equal(out[mask == 0], photo[mask == 0])
    full = mask == 255
    if full.any() and travel_size(frame, working_size) == (frame.width, frame.height):
        x0, y0 = frame.box[:2]
        ys, xs = np.nonzero(full)
        assert np.array_equal(out[ys, xs], rendered[ys - y0, xs - x0])  # fully masked: exactly the render


@pytest.mark.parametrize("mode", ["crop", "full"])
def test_paste_back_keeps_every_pixel_outside_the_mask(mode: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 180, 3), dtype=np.uint8)
    mask = _mask((300, 180), (40, 120, 100, 150))
    mask[150:152, 40:100] = 100  # a soft edge
    frame = plan_frame(mask, mode, padding=16)
    canvas = canvas_size(frame, working_size=128, min_crop_size=64)
    canvas_image, mask_canvas, placement = canvas_inputs(image, mask, frame, canvas)
    assert canvas_image.shape == (canvas, canvas, 3) and mask_canvas.shape == (canvas, canvas)
    generated = rng.integers(0, 256, canvas_image.shape, dtype=np.uint8)
    out = paste_back(image, generated, mask, frame, placement, match_colors=True)
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert (out[mask == 255] != image[mask == 255]).any()
    raw = paste_back(image, generated, mask, frame, placement, blend=False)
    x0, y0, x1, y1 = frame.box
    assert (raw[y0:y1, x0:x1][mask[y0:y1, x0:x1] == 0] != image[y0:y1, x0:x1][mask[y0:y1, x0:x1] == 0]).any()


@pytest.mark.parametrize("mode", ["crop", "full"])
def test_the_canvas_maps_back_onto_the_region_it_came_from(mode: str) -> None:
    yy, xx = np.mgrid[0:220, 0:140]
    image = np.stack([yy, xx, (yy + xx) // 2], axis=-1).astype(np.uint8)  # smooth, so resampling is near-lossless
    mask = _mask((220, 140), (50, 150, 90, 170))
    frame = plan_frame(mask, mode, padding=8)
    canvas = canvas_size(frame, working_size=128, min_crop_size=64)
    canvas_image, _, placement = canvas_inputs(image, mask, frame, canvas)
    out = paste_back(image, canvas_image, np.full(mask.shape, 255, np.uint8), frame, placement)  # unchanged canvas
    x0, y0, x1, y1 = frame.box
    error = np.abs(out[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1].astype(int))
    assert error.mean() < 2  # a shifted or flipped mapping would be off by tens of levels
