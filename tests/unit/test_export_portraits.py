"""Generated portraits: their palette parse is their true label map (exactly unresized, up to edge pixels when
resized), and find_faces, fed the palette parser's coarse parse as the orchestrator would, finds, numbers and
frames their faces; the roll of a tilted face is measured from its fine parse."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from faceedit.core.faces import FACE_CLASSES, find_faces
from faceedit.core.geometry import letterbox
from faceedit.core.upright import roll_degrees
from faceedit.export.palette_parser import PALETTE, palette_graph, parse
from faceedit.export.portraits import HEAD_IDS, FaceSpec, portrait

PARSER_SIZE = 512


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(palette_graph().SerializeToString(), providers=["CPUExecutionProvider"])


def _coarse_faces(image: np.ndarray):
    """find_faces on the palette parse of the letterboxed photo: the orchestrator's coarse path."""
    canvas, placement = letterbox(image, PARSER_SIZE, coarse=True)
    return find_faces(parse(canvas), placement)


def _edges(labels: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of a class boundary."""
    kernel = np.ones((3, 3), np.uint8)
    boundary = cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)
    return cv2.dilate(boundary.astype(np.uint8), kernel) > 0


def test_the_image_is_the_palette_of_its_labels_and_parses_back_exactly(session: ort.InferenceSession) -> None:
    spec = [FaceSpec(300, 320, 220, hat=True, glasses=True, earrings=True, necklace=True), FaceSpec(700, 300, 150)]
    photo = portrait((1000, 700), spec)
    assert (photo.image == PALETTE[photo.labels]).all()
    assert set(np.unique(photo.labels)) == set(range(19))  # every class drawn
    (labels,) = session.run(["labels"], {"image": photo.image[None]})
    assert (labels[0] == photo.labels).all()
    noisy = portrait((1000, 700), spec, noise=8, seed=3)
    assert (noisy.image != photo.image).mean() > 0.1
    assert (parse(noisy.image) == photo.labels).all()


def test_resized_portraits_parse_to_their_resized_labels_but_for_edge_pixels() -> None:
    photo = portrait((3000, 2000), [FaceSpec(1000, 900, 600), FaceSpec(2200, 1000, 350, roll=20)])
    canvas, _ = letterbox(photo.image, PARSER_SIZE, coarse=True)  # area averaging: blends at every edge
    truth, _ = letterbox(photo.labels, PARSER_SIZE, fill=0, nearest=True)
    wrong = parse(canvas) != truth
    assert wrong.mean() < 0.02
    assert not (wrong & ~_edges(truth)).any()  # a blend of two classes never reads as a third inside a region
    small = portrait((220, 220), [FaceSpec(110, 100, 90)])  # enlarged: Lanczos rings at the edges
    canvas, _ = letterbox(small.image, PARSER_SIZE)
    truth, _ = letterbox(small.labels, PARSER_SIZE, fill=0, nearest=True)
    wrong = parse(canvas) != truth
    assert wrong.mean() < 0.05
    assert (wrong & ~cv2.dilate(_edges(truth).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)).mean() < 1e-3


def test_boxes_owners_and_regions_describe_each_face() -> None:
    photo = portrait((1200, 800), [FaceSpec(400, 350, 250), FaceSpec(850, 380, 200, roll=-30)])
    for position, box in enumerate(photo.boxes):
        head = photo.region(position, HEAD_IDS)
        ys, xs = np.nonzero(head)
        assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert photo.region(position, (11, 12)).sum() > 100  # its lips
    assert roll_degrees(np.where(photo.owners == 2, photo.labels, 0)) == pytest.approx(-30.0, abs=1.0)
    with pytest.raises(ValueError, match="lies outside"):
        portrait((100, 100), [FaceSpec(5000, 50, 40)])


def test_one_face_is_found_with_its_head_box() -> None:
    photo = portrait((4000, 3000), [FaceSpec(2000, 1300, 700)])
    (face,) = _coarse_faces(photo.image)
    step = 4000 / PARSER_SIZE
    assert np.abs(np.subtract(face.box, photo.boxes[0])).max() <= 2 * step
    fx0, fy0, fx1, fy1 = face.frame
    x0, y0, x1, y1 = photo.boxes[0]
    assert fx0 <= x0 and fy0 <= y0 and fx1 >= x1 and fy1 >= y1


def test_three_faces_are_numbered_by_area_largest_first() -> None:
    specs = [FaceSpec(4800, 1500, 420), FaceSpec(1200, 1500, 480), FaceSpec(3000, 1400, 700)]
    photo = portrait((6000, 4000), specs)
    faces = _coarse_faces(photo.image)
    assert len(faces) == 3
    centres = [(f.box[0] + f.box[2]) / 2 for f in faces]
    assert centres[0] == pytest.approx(3000, abs=40)  # the largest
    assert centres[1] == pytest.approx(1200, abs=40) and centres[2] == pytest.approx(4800, abs=40)
    for face, position in zip(faces, (2, 1, 0), strict=True):
        assert np.abs(np.subtract(face.box, photo.boxes[position])).max() <= 2 * 6000 / PARSER_SIZE


def _face_size(photo, position: int) -> int:
    ys, xs = np.nonzero(photo.region(position, FACE_CLASSES))
    return max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_faces_down_to_five_percent_of_the_long_side_are_found_and_smaller_ones_not() -> None:
    long_side = 4000
    specs = [FaceSpec(800, 1500, 184), FaceSpec(2000, 1500, 200), FaceSpec(3200, 1500, 160)]
    photo = portrait((long_side, 3000), specs)
    sizes = [_face_size(photo, i) / long_side for i in range(3)]
    assert 0.05 <= sizes[0] < 0.0505 and sizes[1] > sizes[0] and sizes[2] < 0.045
    faces = _coarse_faces(photo.image)
    assert sorted(round((f.box[0] + f.box[2]) / 2, -2) for f in faces) == [800, 2000]


def test_a_face_rolled_35_degrees_measures_35_from_its_fine_parse() -> None:
    photo = portrait((4000, 3000), [FaceSpec(1800, 1400, 600, roll=35.0)])
    (face,) = _coarse_faces(photo.image)
    canvas, _ = letterbox(photo.image[face.frame_slices], PARSER_SIZE, coarse=True)
    assert roll_degrees(parse(canvas)) == pytest.approx(35.0, abs=2.0)


def test_two_faces_in_a_50_megapixel_photo_are_found() -> None:
    photo = portrait((8660, 5773), [FaceSpec(2500, 2400, 1100), FaceSpec(6300, 2600, 520, roll=-25)])
    faces = _coarse_faces(photo.image)
    assert len(faces) == 2
    step = 8660 / PARSER_SIZE
    for face, truth in zip(faces, photo.boxes, strict=True):
        assert np.abs(np.subtract(face.box, truth)).max() <= 2 * step
