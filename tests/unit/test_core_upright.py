"""Upright faces: the roll from the eye (else brow) line, and the turn onto an uncut canvas with its exact way back
for images, masks and label maps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from faceedit.core.upright import (
    ROLL_THRESHOLD,
    roll_degrees,
    should_turn,
    turn_back,
    turn_points,
    turn_upright,
    upright_turn,
)


def _eyes(roll: float, *, classes: tuple[int, int] = (4, 5), size: int = 400) -> np.ndarray:
    """Two eye blobs 160 px apart on a line at roll degrees (y down), about the centre."""
    labels = np.zeros((size, size), np.uint8)
    c = size / 2
    dx, dy = 80 * math.cos(math.radians(roll)), 80 * math.sin(math.radians(roll))
    # classes[1] on the image's left: the angle must not depend on which label is which side.
    cv2.circle(labels, (round(c - dx), round(c - dy)), 12, classes[1], -1)
    cv2.circle(labels, (round(c + dx), round(c + dy)), 12, classes[0], -1)
    return labels


@pytest.mark.parametrize("roll", [-60.0, -35.0, -5.0, 0.0, 20.0, 35.0, 80.0])
def test_roll_is_the_eye_line_angle_positive_clockwise(roll: float) -> None:
    assert roll_degrees(_eyes(roll)) == pytest.approx(roll, abs=0.5)


def test_roll_falls_back_to_the_brows_and_is_none_without_a_pair() -> None:
    brows = np.roll(_eyes(25.0, classes=(6, 7)), -60, axis=0)  # above the eyes
    assert roll_degrees(brows) == pytest.approx(25.0, abs=0.5)
    one_eye = _eyes(25.0)
    one_eye[one_eye == 5] = 0
    assert roll_degrees(one_eye + (brows * (one_eye == 0))) == pytest.approx(25.0, abs=0.5)
    assert roll_degrees(one_eye) is None
    assert roll_degrees(np.zeros((10, 10), np.uint8)) is None


def test_a_small_stray_eye_at_the_edge_does_not_move_the_roll() -> None:
    labels = _eyes(10.0)
    cv2.circle(labels, (5, 390), 3, 4, -1)  # a neighbour's eye
    assert roll_degrees(labels) == pytest.approx(10.0, abs=0.5)


def test_should_turn_above_the_threshold_only() -> None:
    assert ROLL_THRESHOLD == 15.0
    assert should_turn(35.0) and should_turn(-16.0)
    assert not should_turn(15.0) and not should_turn(-3.0) and not should_turn(None)
    assert should_turn(10.0, threshold=5.0)


def test_the_turn_levels_the_eyes_on_a_canvas_that_cuts_nothing() -> None:
    labels = _eyes(35.0, size=400)
    turn = upright_turn(400, 400, 35.0)
    side = 400 * (math.cos(math.radians(35)) + math.sin(math.radians(35)))
    assert turn.out_width == turn.out_height == math.ceil(side)
    upright = turn_upright(labels, turn, nearest=True)
    assert roll_degrees(upright) == pytest.approx(0.0, abs=1.0)
    corners = np.array([[0, 0], [399, 0], [0, 399], [399, 399]])
    mapped = turn_points(corners, turn)
    assert mapped.min() >= -0.5 and mapped[:, 0].max() <= turn.out_width - 0.5
    assert mapped[:, 1].max() <= turn.out_height - 0.5
    wide = upright_turn(640, 360, -20.0)
    assert roll_degrees(turn_upright(_eyes(-20.0, size=640)[140:500], wide, nearest=True)) == pytest.approx(0, abs=1)


def test_turning_back_an_upright_image_lands_on_the_original_pixels() -> None:
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8), (0, 0), 4)
    turn = upright_turn(420, 300, 35.0)
    back = turn_back(turn_upright(smooth, turn), turn)
    assert back.shape == smooth.shape
    error = np.abs(back.astype(int) - smooth.astype(int))
    assert error[2:-2, 2:-2].max() <= 4  # two bilinear samplings of a smooth image
    assert np.median(error) <= 1


def test_label_maps_keep_their_values_and_masks_stay_zero_away_from_the_region() -> None:
    labels = np.zeros((300, 300), np.uint8)
    cv2.ellipse(labels, (150, 150), (90, 120), 0, 0, 360, 1, -1)
    cv2.ellipse(labels, (150, 220), (40, 10), 0, 0, 360, 11, -1)
    turn = upright_turn(300, 300, -35.0)
    upright = turn_upright(labels, turn, nearest=True)
    back = turn_back(upright, turn, nearest=True)
    assert set(np.unique(upright)) == set(np.unique(back)) == {0, 1, 11}
    assert np.mean(back != labels) < 0.01  # only boundary pixels move, by at most one
    mask = np.where(labels == 11, 255, 0).astype(np.uint8)
    mask_back = turn_back(turn_upright(mask, turn), turn)
    far = cv2.dilate(mask, np.ones((7, 7), np.uint8)) == 0
    assert not mask_back[far].any()
    assert (mask_back[cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0] == 255).all()


def test_images_of_the_wrong_size_are_refused() -> None:
    turn = upright_turn(100, 50, 30.0)
    with pytest.raises(ValueError, match="expected an image of 100x50"):
        turn_upright(np.zeros((100, 50), np.uint8), turn)
    with pytest.raises(ValueError, match=f"expected an image of {turn.out_width}x{turn.out_height}"):
        turn_back(np.zeros((50, 100), np.uint8), turn)
