"""Framing: which part of the photo renders, how it travels to the inpainter bounded by its canvas, the canvas it
renders at, and the way back at full resolution with every pixel outside the mask untouched."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceedit.core.framing import (
    CANVAS_MODES,
    Frame,
    canvas_buckets,
    canvas_inputs,
    canvas_size,
    cut_region,
    default_min_crop,
    detail_gain,
    native_canvas,
    paste_back,
    paste_region,
    plan_frame,
    resolve_canvas,
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


def test_canvas_is_the_working_size_for_a_whole_frame_and_the_smallest_bucket_holding_a_crop() -> None:
    crop = Frame((1000, 1000, 1620, 1620), True)
    assert canvas_buckets(1024, 256) == (256, 384, 512, 704, 1024)  # each about half the pixels of the next
    assert canvas_size(crop, working_size=1024, min_crop_size=256) == 704  # 620 fits the 704 bucket
    assert canvas_size(crop, working_size=1024, min_crop_size=1024) == 1024  # native canvas for crops
    assert canvas_size(Frame((0, 0, 3000, 3000), True), working_size=1024, min_crop_size=256) == 1024
    assert canvas_size(Frame((0, 0, 300, 200), False), working_size=1024, min_crop_size=256) == 1024
    assert canvas_size(Frame((0, 0, 40, 40), True), working_size=1024, min_crop_size=256) == 256


# SDXL inpainting 0.1: unet/config.json sample_size 128, VAE with four blocks (scale factor 2**3 = 8).
SDXL_SAMPLE_SIZE, SDXL_VAE_SCALE = 128, 8


def _lips_on_a_portrait() -> Frame:
    """A 120x60 px lips region on a 1024x1024 portrait, framed as the orchestrator frames it (padding 32)."""
    return plan_frame(_mask((1024, 1024), (452, 680, 572, 740)), "auto", padding=32)


def test_sdxl_renders_a_lips_crop_at_its_native_1024_canvas_by_default() -> None:
    native = native_canvas(SDXL_SAMPLE_SIZE, SDXL_VAE_SCALE)
    assert native == 1024
    working, floor = resolve_canvas(None, None, "native", native)  # the inpainter's defaults
    assert (working, floor) == (1024, 1024) and canvas_buckets(working, floor) == (1024,)
    lips = _lips_on_a_portrait()
    assert lips.cropped and max(lips.width, lips.height) == 184
    assert canvas_size(lips, working_size=working, min_crop_size=floor) == 1024
    assert detail_gain(lips, 1024) == pytest.approx((1024 / 184) ** 2)  # ~31x the photo's pixels for the lips


def test_the_smaller_canvas_only_when_the_fast_mode_is_asked_for() -> None:
    native = native_canvas(SDXL_SAMPLE_SIZE, SDXL_VAE_SCALE)
    lips = _lips_on_a_portrait()
    working, floor = resolve_canvas(None, None, "fast", native)
    assert (working, floor) == (1024, 512) and canvas_buckets(working, floor) == (512, 704, 1024)
    assert canvas_size(lips, working_size=working, min_crop_size=floor) == 512
    # An explicit --min-crop-size below the working size is a fast mode too; one equal to it is not.
    assert resolve_canvas(None, 256, "native", native) == (1024, 256)
    assert canvas_size(lips, working_size=1024, min_crop_size=256) == 256
    assert resolve_canvas(None, 1024, "fast", native) == (1024, 1024)
    # An explicit working size wins over the model's, and the floor follows it.
    assert resolve_canvas(768, None, "native", native) == (768, 768)
    with pytest.raises(ValueError, match="at most the working size"):
        resolve_canvas(None, 2048, "native", native)
    with pytest.raises(ValueError, match="canvas mode"):
        default_min_crop(1024, "turbo")
    assert CANVAS_MODES == ("native", "fast")
    assert default_min_crop(128, "fast") == 64 and default_min_crop(64, "fast") == 64  # never below 64


def test_native_canvas_needs_a_real_model_geometry() -> None:
    assert native_canvas(64, 8) == 512  # the tiny test pipeline
    with pytest.raises(ValueError):
        native_canvas(0, 8)


@settings(max_examples=300, deadline=None)
@given(
    working=st.integers(1, 32).map(lambda k: 64 * k),
    floor_share=st.floats(0.05, 1.0),
    box=st.tuples(st.integers(1, 4000), st.integers(1, 4000)),
    cropped=st.booleans(),
)
def test_every_region_renders_on_a_bucket_warmed_at_start_up(
    working: int, floor_share: float, box: tuple[int, int], cropped: bool
) -> None:
    """With --compile the engine warms canvas_buckets at start-up: whatever the region, its canvas is one of
    them (so no live call compiles), the smallest that holds it, and the list stays short."""
    floor = max(8, int(working * floor_share) // 8 * 8)
    buckets = canvas_buckets(working, floor)
    frame = Frame((0, 0, *box), cropped)
    canvas = canvas_size(frame, working_size=working, min_crop_size=floor)
    assert canvas in buckets
    assert buckets[0] == floor and buckets[-1] == working and list(buckets) == sorted(set(buckets))
    assert len(buckets) <= 2 + 2 * (working // floor).bit_length()  # ~two buckets per halving of the side
    if cropped:
        assert all(b < max(box) for b in buckets if b < canvas)  # no smaller bucket would have held it
        assert canvas >= min(max(box), working)


def test_detail_gain_counts_the_region_pixels_in_the_render_per_pixel_in_the_input() -> None:
    mask = _mask((1024, 1024), (452, 680, 572, 740))
    image = np.zeros((1024, 1024, 3), np.uint8)
    for canvas, frame in ((1024, _lips_on_a_portrait()), (512, _lips_on_a_portrait()), (1024, whole(mask))):
        _, mask_canvas, _ = canvas_inputs(image, mask, frame, canvas)
        measured = np.count_nonzero(mask_canvas >= 128) / np.count_nonzero(mask)
        assert measured == pytest.approx(detail_gain(frame, canvas), rel=0.05)
    assert detail_gain(whole(mask), 1024) == 1.0
    assert detail_gain(Frame((0, 0, 4032, 3024), False), 1024) < 0.1  # a phone photo renders coarser


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
