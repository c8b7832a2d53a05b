"""Letterboxing to the models' square canvas and back (thesis 4.2.2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceedit.core.errors import InvalidOptionError
from faceedit.core.geometry import letterbox, resize, unletterbox


def _blocky_labels(height: int, width: int) -> np.ndarray:
    """A 4x4 grid of random classes stretched to height x width: regions large enough to survive resizing."""
    coarse = np.random.default_rng(0).integers(0, 19, size=(4, 4), dtype=np.uint8)
    return coarse[np.arange(height) * 4 // height][:, np.arange(width) * 4 // width]


@pytest.mark.parametrize("shape", [(64, 64), (90, 40), (40, 90), (33, 77), (300, 200)])
def test_label_round_trip_keeps_classes(shape: tuple[int, int]) -> None:
    labels = _blocky_labels(*shape)
    canvas, box = letterbox(labels, 128, fill=0, nearest=True)
    assert canvas.shape == (128, 128)
    assert max(box.new_width, box.new_height) == 128
    back = unletterbox(canvas, box, nearest=True)
    assert back.shape == labels.shape
    assert set(np.unique(back)) <= set(np.unique(labels))  # nearest invents no class
    assert (back == labels).mean() > 0.9


@pytest.mark.parametrize("shape", [(64, 64, 3), (96, 48, 3), (48, 96, 3)])
def test_rgb_round_trip_is_close(shape: tuple[int, int, int]) -> None:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = np.stack([xs * 255 // shape[1], ys * 255 // shape[0], (xs + ys) * 2 % 256], -1).astype(np.uint8)
    image[..., 2] = 128  # smooth content: resampling error stays small
    canvas, box = letterbox(image, 256)
    back = unletterbox(canvas, box)
    assert back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image).mean() < 2


def test_letterbox_pads_with_fill_and_centres() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    canvas, box = letterbox(image, 100)
    assert (box.pad_left, box.pad_top, box.new_width, box.new_height) == (0, 25, 100, 50)
    assert (canvas[:25] == 255).all() and (canvas[25:75] == 0).all() and (canvas[75:] == 255).all()
    portrait, box = letterbox(np.zeros((100, 50), np.uint8), 50, fill=7)
    assert (box.pad_left, box.pad_top) == (12, 0)
    assert (portrait[:, :12] == 7).all() and (portrait[:, 12:37] == 0).all() and (portrait[:, 37:] == 7).all()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 120), st.integers(1, 120), st.integers(1, 96))
def test_letterbox_geometry_for_any_size(height: int, width: int, size: int) -> None:
    image = np.zeros((height, width), np.uint8)
    canvas, box = letterbox(image, size, fill=255, nearest=True)
    assert canvas.shape == (size, size)
    assert max(box.new_width, box.new_height) == size and min(box.new_width, box.new_height) >= 1
    # Centred: the two margins differ by at most one pixel.
    assert 0 <= (size - box.new_width) - 2 * box.pad_left <= 1
    assert 0 <= (size - box.new_height) - 2 * box.pad_top <= 1
    assert np.count_nonzero(canvas == 0) == box.new_width * box.new_height
    assert unletterbox(canvas, box, nearest=True).shape == (height, width)


def test_resize_nearest_keeps_values_and_same_size_is_free() -> None:
    labels = _blocky_labels(30, 30)
    assert resize(labels, 30, 30) is labels
    assert set(np.unique(resize(labels, 17, 45, nearest=True))) <= set(np.unique(labels))
    assert resize(labels, 17, 45).shape == (45, 17)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(InvalidOptionError, match="letterbox size"):
        letterbox(np.zeros((4, 4), np.uint8), 0)
    with pytest.raises(InvalidOptionError, match="cannot resize to 0x4"):
        resize(np.zeros((4, 4), np.uint8), 0, 4)


@pytest.mark.slow  # camera-sized frames
@pytest.mark.parametrize("shape", [(3024, 4032, 3), (4000, 6000, 3), (3000, 4000), (600, 700, 3)])
def test_coarse_shrink_stays_close_to_a_full_area_resize(shape: tuple[int, ...]) -> None:
    """The whole-factor shortcut drops under k edge pixels: a camera photo comes out within about a level of
    the exact area average, at the same size."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = ((xs // 7 + ys // 5) % 256).astype(np.uint8)
    image = np.stack([image] * 3, -1) if len(shape) == 3 else image
    exact = resize(image, 512, 384)
    coarse = resize(image, 512, 384, coarse=True)
    assert coarse.shape == exact.shape
    assert np.abs(coarse.astype(int) - exact.astype(int)).mean() < 3
