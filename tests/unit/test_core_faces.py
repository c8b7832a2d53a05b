"""Faces of a photo: found as connected regions of the face classes with their heads attached, numbered by area,
framed; caller boxes validated; fine labels composed into the full-resolution map; masks in face units."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceedit.core.errors import CoverageError, FaceSelectionError, InvalidOptionError
from faceedit.core.faces import (
    FRAME_MARGIN,
    Face,
    check_face_coverage,
    compose_labels,
    face_frame,
    face_relative,
    face_scale,
    faces_from_boxes,
    find_faces,
    frame_coverage,
    owned_region,
    restrict_to_face,
    select_faces,
)
from faceedit.core.geometry import letterbox
from faceedit.core.knobs import resolve_knobs
from faceedit.core.masks import MaskSpec


def _draw_face(labels: np.ndarray, cx: int, cy: int, w: int, *, hair: bool = True, neck: bool = True) -> None:
    """A schematic head into a label map: hair cap, skin ellipse, eyes, nose, lips, neck."""
    h = int(w * 1.3)
    if hair:
        cv2.ellipse(labels, (cx, cy - h // 6), (w // 2 + w // 10, h // 2 + h // 8), 0, 0, 360, 13, -1)
    if neck:
        cv2.rectangle(labels, (cx - w // 5, cy), (cx + w // 5, cy + h), 17, -1)
    cv2.ellipse(labels, (cx, cy), (w // 2, h // 2), 0, 0, 360, 1, -1)
    for side, cls in ((-1, 4), (1, 5)):
        cv2.circle(labels, (cx + side * w // 5, cy - h // 10), max(1, w // 14), cls, -1)
    cv2.circle(labels, (cx, cy + h // 20), max(1, w // 16), 2, -1)
    cv2.ellipse(labels, (cx, cy + h // 4), (max(1, w // 6), max(1, w // 20)), 0, 0, 360, 11, -1)


def test_one_face_with_hair_and_neck_is_one_face_whose_box_holds_the_head() -> None:
    labels = np.zeros((600, 800), np.uint8)
    _draw_face(labels, 400, 280, 200)
    (face,) = find_faces(labels)
    head = np.argwhere(labels > 0)
    assert face.index == 0
    assert face.box == (head[:, 1].min(), head[:, 0].min(), head[:, 1].max() + 1, head[:, 0].max() + 1)
    assert face.area == (face.box[2] - face.box[0]) * (face.box[3] - face.box[1])
    x0, y0, x1, y1 = face.frame
    assert x0 <= face.box[0] and y0 <= face.box[1] and x1 >= face.box[2] and y1 >= face.box[3]
    assert min(x0, y0) >= 0 and x1 <= 800 and y1 <= 600


def test_faces_are_numbered_by_area_largest_first_ties_left_to_right() -> None:
    labels = np.zeros((800, 2400), np.uint8)
    _draw_face(labels, 1900, 300, 120)  # tie with the next one, further right
    _draw_face(labels, 300, 300, 120)
    _draw_face(labels, 1100, 350, 300)  # largest
    faces = find_faces(labels)
    assert [f.index for f in faces] == [0, 1, 2]
    centres = [(f.box[0] + f.box[2]) // 2 for f in faces]
    assert abs(centres[0] - 1100) < 5 and abs(centres[1] - 300) < 5 and abs(centres[2] - 1900) < 5
    assert faces[1].area == faces[2].area


def test_faces_below_five_percent_of_the_long_side_are_not_found() -> None:
    labels = np.zeros((1000, 4000), np.uint8)  # long side 4000: 5% = 200 px
    _draw_face(labels, 800, 400, 160, hair=False, neck=False)  # face region 160 x 208: found
    _draw_face(labels, 2400, 400, 110, hair=False, neck=False)  # 110 x 143: not found
    (face,) = find_faces(labels)
    assert face.box[0] < 800 < face.box[2]


def test_skin_without_features_is_not_a_face_and_far_hair_joins_no_face() -> None:
    labels = np.zeros((600, 1200), np.uint8)
    _draw_face(labels, 300, 300, 200, hair=False, neck=False)
    cv2.circle(labels, (900, 300), 120, 1, -1)  # a hand: skin alone
    cv2.rectangle(labels, (1100, 0), (1199, 599), 13, -1)  # hair far from the face
    (face,) = find_faces(labels)
    assert face.box[2] < 500


def test_a_face_whose_features_are_ringed_off_the_skin_is_still_a_face() -> None:
    labels = np.zeros((600, 600), np.uint8)
    _draw_face(labels, 300, 300, 240, hair=False, neck=False)
    features = np.isin(labels, (2, 4, 5, 11)).astype(np.uint8)
    ring = (cv2.dilate(features, np.ones((5, 5), np.uint8)) > 0) & (features == 0)
    labels[ring] = 0  # as a palette parse reads the blends around each feature
    (face,) = find_faces(labels)
    assert face.box[0] < 300 < face.box[2]


def test_two_heads_whose_hair_touches_split_between_the_faces() -> None:
    labels = np.zeros((500, 1000), np.uint8)
    cv2.rectangle(labels, (150, 50), (850, 200), 13, -1)  # one band of hair over both heads
    _draw_face(labels, 300, 250, 200, hair=False)
    _draw_face(labels, 700, 250, 200, hair=False)
    left, right = sorted(find_faces(labels), key=lambda f: f.box[0])
    assert left.box[1] == right.box[1] == 50  # each got the hair above it
    assert left.box[2] <= 501 and right.box[0] >= 499  # split at the midline


def test_letterboxed_labels_give_the_same_faces_in_photo_pixels() -> None:
    photo = np.zeros((1500, 3000), np.uint8)
    _draw_face(photo, 800, 700, 500)
    _draw_face(photo, 2200, 800, 300)
    canvas, placement = letterbox(photo, 512, fill=0, nearest=True)
    full = find_faces(photo)
    boxed = find_faces(canvas, placement)
    assert [f.index for f in boxed] == [0, 1]
    step = 3000 / 512
    for a, b in zip(full, boxed, strict=True):
        assert np.abs(np.subtract(a.box, b.box)).max() <= 2 * step


def test_the_frame_adds_the_margin_squares_and_stays_inside_the_photo() -> None:
    assert face_frame((400, 300, 600, 600), (2000, 2000)) == (305, 255, 695, 645)  # 300 + 2 * 45, square
    margin = round(FRAME_MARGIN * 300)
    assert margin == 45
    x0, y0, x1, y1 = face_frame((0, 0, 100, 100), (1000, 1000))  # at the corner: shifted inside, still square
    assert (x0, y0) == (0, 0) and x1 - x0 == y1 - y0 == 130
    assert face_frame((10, 0, 90, 60), (100, 60)) == (0, 0, 100, 60)  # the photo is smaller than the square


def test_caller_boxes_are_validated_naming_the_box_and_numbered_by_area() -> None:
    faces = faces_from_boxes([(0, 0, 100, 100), (200, 0, 500, 300)], (1000, 800))
    assert [f.box for f in faces] == [(200, 0, 500, 300), (0, 0, 100, 100)]
    with pytest.raises(InvalidOptionError, match=r"face_boxes\[1\] \(x0=5, y0=5, x1=5, y1=9\) is empty"):
        faces_from_boxes([(0, 0, 10, 10), (5, 5, 5, 9)], (100, 100))
    with pytest.raises(
        InvalidOptionError, match=r"face_boxes\[0\] \(x0=50, y0=0, x1=101, y1=9\) lies outside the 100x80"
    ):
        faces_from_boxes([(50, 0, 101, 9)], (100, 80))


def test_selection_by_index_and_its_failures_say_how_many_faces_were_found() -> None:
    faces = faces_from_boxes([(0, 0, 100, 100), (200, 0, 500, 300), (600, 0, 650, 50)], (1000, 800))
    assert select_faces(faces, []) == faces
    assert [f.index for f in select_faces(faces, [2, 0, 2])] == [0, 2]
    with pytest.raises(FaceSelectionError, match=r"face index 3, 7 has no face: 3 faces found \(indices 0-2\)"):
        select_faces(faces, [0, 3, 7])
    with pytest.raises(FaceSelectionError, match="no face was found"):
        select_faces([], [])


def test_overlapping_frames_give_each_pixel_to_the_nearest_face_box() -> None:
    faces = faces_from_boxes([(100, 100, 300, 300), (320, 100, 520, 300)], (1000, 600))
    a, b = faces
    assert not owned_region(faces, a).all()  # the frames overlap: b owns part of a's
    mask = np.full((600, 1000), 255, np.uint8)
    only_a = restrict_to_face(mask, faces, a)
    only_b = restrict_to_face(mask, faces, b)
    assert not (only_a & only_b).any()  # no pixel in both
    assert only_a[200, 305] == 255 and only_b[200, 315] == 255  # split at the middle of the gap
    assert only_a[200, 530] == 0 and only_b[200, 530] == 255 and not only_b[200, 600]
    assert not only_a[:, 400:].any() and not only_a[:40].any()


def test_compose_labels_puts_each_face_fine_parse_in_its_frame_and_keeps_coarse_elsewhere() -> None:
    coarse = np.full((400, 900), 18, np.uint8)
    faces = faces_from_boxes([(100, 100, 200, 200), (600, 150, 660, 210)], (900, 400))
    fine = [np.full(f.frame_size[::-1], 1 + f.index, np.uint8) for f in faces]
    out = compose_labels(coarse, faces, fine)
    for face in faces:
        assert (out[face.frame_slices] == 1 + face.index).all()
    outside = np.ones(coarse.shape, bool)
    for face in faces:
        outside[face.frame_slices] = False
    assert (out[outside] == 18).all() and (coarse == 18).all()
    with pytest.raises(ValueError, match="frame is"):
        compose_labels(coarse, faces, [fine[0], fine[0]])


def test_coverage_is_a_share_of_the_face_frame_and_its_error_names_the_face() -> None:
    face = Face(2, (100, 100, 200, 200), (50, 50, 250, 250), 10_000)
    mask = np.zeros((2000, 2000), np.uint8)
    mask[100:120, 100:120] = 255  # 400 px: 1% of the 40,000 px frame, 0.01% of the photo
    assert frame_coverage(mask, face) == pytest.approx(0.01)
    assert check_face_coverage(mask, face, "lips", 0.001) == pytest.approx(0.01)
    with pytest.raises(CoverageError, match=r"'lips' covers 1\.00% of face 2's frame; at least 5\.00% is required"):
        check_face_coverage(mask, face, "lips", 0.05)


def test_defaults_scale_with_the_face_frame_and_caller_values_stay_photo_pixels() -> None:
    portrait = Face(0, (100, 50, 900, 1000), (0, 0, 1024, 1024), 0)
    assert face_scale(portrait) == 1.0
    knobs = resolve_knobs("lips")
    spec, scaled = face_relative(MaskSpec(), knobs, 1.0)
    assert (spec.grow_px, spec.feather_sigma, scaled.crop_padding) == (3, 7.0, 32)  # the thesis's at the reference
    spec, scaled = face_relative(MaskSpec(), knobs, 2048 / 1024)
    assert (spec.grow_px, spec.feather_sigma, scaled.crop_padding) == (6, 14.0, 64)
    spec, scaled = face_relative(MaskSpec(), knobs, 0.1)
    assert (spec.grow_px, spec.feather_sigma, scaled.crop_padding) == (1, 1.0, 3)  # floors of 1 px
    spec, scaled = face_relative(MaskSpec(), knobs, 30.0)
    assert spec.validate() and spec.feather_sigma == 64.0 and spec.grow_px == 90
    custom = MaskSpec(grow_px=5, feather_sigma=2.0)
    spec, scaled = face_relative(custom, resolve_knobs("lips", crop_padding=10), 4.0, given={"grow_px", "crop_padding"})
    assert (spec.grow_px, spec.feather_sigma, scaled.crop_padding) == (5, 28.0, 10)
    with pytest.raises(ValueError, match="scale with the face"):
        face_relative(custom, knobs, 1.0, given={"min_coverage"})
