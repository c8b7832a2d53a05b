"""The demo's and the cascade figure's pure parts: the edits it sends, changed pixels per face, the |difference|
map, step titles, and a figure with face boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceedit.cli.demo import CASCADE, build_edits, changed_per_face
from faceedit.cli.grid import difference_map, step_title, write_grid
from faceedit.core.imageio import decode_image, encode_image
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2


def test_demo_edits_hair_and_lips_of_face_0_then_every_face_s_brows() -> None:
    edits = build_edits(3)
    assert [(e.attribute, list(e.face_indices)) for e in edits] == [("hair", [0]), ("lips", [0]), ("eyebrows", [])]
    assert all(e.num_inference_steps == 3 for e in edits)
    assert [e.strength for e in edits] == pytest.approx([s for _, _, s, _ in CASCADE])


def test_changed_pixels_count_per_face_frame_first_frame_wins_and_outside() -> None:
    before = np.zeros((10, 20, 3), np.uint8)
    after = before.copy()
    after[1:3, 1:3] = 1  # 4 px in frame 0
    after[2, 4, 2] = 9  # 1 px in both frames: frame 0's
    after[5, 12] = 1  # 1 px in frame 1 only
    after[9, 19] = 1  # outside both
    counts, outside = changed_per_face(before, after, [(0, 0, 6, 6), (4, 0, 14, 8)])
    assert counts == [5, 1] and outside == 1


def test_difference_map_is_zero_where_identical_and_visible_where_changed_by_one() -> None:
    before = np.full((4, 4, 3), 100, np.uint8)
    after = before.copy()
    after[0, 0, 1] = 101  # the smallest change
    after[1, 1] = (0, 100, 100)  # the largest
    diff = difference_map(before, after)
    assert diff[0, 0] == 64 and diff[1, 1] == 255 and np.count_nonzero(diff) == 2
    assert not difference_map(before, before).any()


def test_step_title_names_the_faces_or_the_whole_photo() -> None:
    faces = [fe.FaceStepResult(index=i) for i in (0, 2)]
    assert step_title(fe.EditStepResult(attribute="eyebrows", coverage=0.004, faces=faces)).startswith(
        "eyebrows, faces 0, 2 (0.4%"
    )
    assert step_title(fe.EditStepResult(attribute="lips", faces=faces[:1])).startswith("lips, face 0 (")
    assert step_title(fe.EditStepResult(attribute="background", coverage=0.5)) == "background, whole photo (50.0%)"


def _png(array: np.ndarray) -> types_pb2.EncodedImage:
    return types_pb2.EncodedImage(data=encode_image(array))


def test_grid_draws_a_row_per_step_with_the_faces_boxed(tmp_path: Path) -> None:
    original = np.full((100, 160, 3), 200, np.uint8)
    result = original.copy()
    result[20:30, 20:40] = 10
    mask = np.zeros((100, 160), np.uint8)
    mask[20:30, 20:40] = 255
    box = types_pb2.BoundingBox(x0=10, y0=10, x1=60, y1=60)
    face = fe.FaceStepResult(index=0, face_box=box, crop_box=types_pb2.BoundingBox(x0=15, y0=15, x1=45, y1=35))
    step = fe.EditStepResult(index=0, attribute="lips", coverage=0.08, mask=_png(mask), faces=[face])
    response = fe.EditFaceResponse(image=_png(result), steps=[step])
    found = [
        fe.FoundFace(index=0, box=box),
        fe.FoundFace(index=1, box=types_pb2.BoundingBox(x0=90, y0=10, x1=150, y1=70)),
    ]
    out = write_grid(original, response, ["pink lips"], tmp_path / "grid.png", faces=found)
    figure = decode_image(out.read_bytes())
    assert figure.shape[:2] == (320, 1200)  # one row of four 3 x 3.2 in panels at 100 dpi
