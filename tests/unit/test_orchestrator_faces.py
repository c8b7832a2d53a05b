"""The face-aware flow in-process, on palette photos whose true label maps are known: numbering, face_indices,
face_boxes, per-face seeds, one batched parser request per step, unselected faces untouched, upright renders."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.upright import roll_degrees
from faceedit.export.palette_parser import parse as palette_parse
from faceedit.orchestrator.errors import classify
from faceedit.orchestrator.flow import EditFlow
from faceedit.rpc.messages import from_raw
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2
from tests.fakes import FakeInpainter, FakeParser, draw_faces

SIZE = (480, 240)
# Three faces: numbered by head-box area, largest first: 0 the middle one, 1 the left, 2 the right.
GROUP = [(90, 110, 60, 0.0), (240, 110, 80, 0.0), (400, 115, 50, 0.0)]


@pytest.fixture(scope="module")
def pool():
    workers = WorkerPool(2)
    yield workers
    workers.close()


def flow(pool: WorkerPool, parser: FakeParser | None = None, inpainter: FakeInpainter | None = None, **kw):
    settings = dict(working_size=64, max_image_bytes=1 << 24, max_image_pixels=1 << 24, max_response_bytes=1 << 26)
    parser = parser or FakeParser(input_size=160)
    return EditFlow(parser, inpainter or FakeInpainter(), pool, default_timeout_s=30.0, **(settings | kw))


def request(image: np.ndarray, *edits: fe.Edit, **fields) -> fe.EditFaceRequest:
    return fe.EditFaceRequest(image=types_pb2.EncodedImage(data=encode_image(image)), edits=edits, **fields)


def lips(*faces: int, seed: int = 7) -> fe.Edit:
    return fe.Edit(prompt="red", seed=seed, mask=types_pb2.MaskOptions(classes=["u_lip", "l_lip"]), face_indices=faces)


def run(editor: EditFlow, req: fe.EditFaceRequest) -> fe.EditFaceResponse:
    return asyncio.run(editor.run(req, editor.call("r", None)))


def status(editor: EditFlow, req: fe.EditFaceRequest):
    with pytest.raises(Exception) as excinfo:
        run(editor, req)
    return classify(excinfo.value, "EditFace")


def group() -> tuple[np.ndarray, np.ndarray]:
    return draw_faces(SIZE, GROUP)


def head_of(labels: np.ndarray, centre_x: float) -> np.ndarray:
    """The pixels of the head drawn around centre_x (the group's heads are far apart)."""
    near = np.zeros(labels.shape, bool)
    near[:, max(0, int(centre_x) - 75) : int(centre_x) + 75] = True
    return near & (labels > 0)


def test_faces_are_numbered_by_area_and_parse_face_reports_them(pool: WorkerPool) -> None:
    image, _ = group()
    editor = flow(pool)
    req = fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=encode_image(image)))
    response = asyncio.run(editor.parse_face(req, editor.call("p", None)))
    centres = [(f.box.x0 + f.box.x1) / 2 for f in response.faces]
    assert [f.index for f in response.faces] == [0, 1, 2]
    assert [round(c / 10) * 10 for c in centres] == [240, 90, 400]
    assert [f.area for f in response.faces] == sorted((f.area for f in response.faces), reverse=True)
    assert all(f.frame.x0 <= f.box.x0 and f.box.x1 <= f.frame.x1 for f in response.faces)


def test_every_face_is_edited_each_in_its_own_crop_with_its_own_seed(pool: WorkerPool) -> None:
    image, truth = group()
    parser, inpainter = FakeParser(input_size=160), FakeInpainter()
    response = run(flow(pool, parser, inpainter), request(image, lips(), return_masks=True))
    (step,) = response.steps
    assert [f.index for f in step.faces] == [0, 1, 2]
    assert [f.seed for f in step.faces] == [7, 8, 9] and sorted(r.seed for r in inpainter.requests) == [7, 8, 9]
    assert step.seed == 7 and step.coverage == min(f.coverage for f in step.faces)
    # The photo once, then the three face frames in ONE request.
    assert [len(b) for b in parser.batches] == [1, 3]
    mask = decode_image(step.mask.data)[..., 0]
    true_lips = np.isin(truth, (11, 12))
    assert (mask[true_lips] > 128).mean() > 0.95
    result = decode_image(response.image.data)
    assert np.array_equal(result[mask == 0], image[mask == 0])


def test_face_indices_edit_one_face_and_leave_the_others_bit_identical(pool: WorkerPool) -> None:
    image, truth = group()
    parser, inpainter = FakeParser(input_size=160), FakeInpainter()
    response = run(flow(pool, parser, inpainter), request(image, lips(2), fe.Edit(prompt="x", attribute="hair")))
    first, second = response.steps
    assert [f.index for f in first.faces] == [2] and [r.seed for r in inpainter.requests[:1]] == [9]
    result = decode_image(response.image.data)
    left, middle, right = (head_of(truth, x) for x, *_ in GROUP)
    changed = np.any(result != image, axis=-1)
    # Edit 0 changed face 2's lips only; edit 1 (all faces) changed hair: every face's hair, nothing else.
    assert changed[right & np.isin(truth, (11, 12))].mean() > 0.9
    assert not changed[(left | middle) & np.isin(truth, (11, 12))].any()
    assert [f.index for f in second.faces] == [0, 1, 2]
    assert [len(b) for b in parser.batches] == [1, 1, 3]  # each step parses the faces it edits, once


def test_face_index_without_a_face_and_no_face_at_all_are_failed_precondition(pool: WorkerPool) -> None:
    image, _ = group()
    inpainter = FakeInpainter()
    result = status(flow(pool, inpainter=inpainter), request(image, lips(1, 5)))
    assert result.code == grpc.StatusCode.FAILED_PRECONDITION
    assert result.message == "face index 5 has no face: 3 faces found (indices 0-2)"
    empty = np.full((120, 160, 3), 128, np.uint8)
    result = status(flow(pool, inpainter=inpainter), request(empty, lips()))
    assert result.code == grpc.StatusCode.FAILED_PRECONDITION and result.message.startswith("no face was found")
    assert inpainter.requests == []


def test_face_boxes_replace_localisation_and_bad_boxes_are_named(pool: WorkerPool) -> None:
    image, _ = group()
    boxes = [types_pb2.BoundingBox(x0=360, y0=60, x1=440, y1=170), types_pb2.BoundingBox(x0=40, y0=40, x1=150, y1=180)]
    response = run(flow(pool), request(image, lips(), face_boxes=boxes))
    (step,) = response.steps
    assert [(f.index, f.face_box.x0) for f in step.faces] == [(0, 40), (1, 360)]  # by area, not by order given
    bad = [types_pb2.BoundingBox(x0=10, y0=10, x1=10, y1=50)]
    result = status(flow(pool), request(image, lips(), face_boxes=bad))
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT and result.message.startswith("face_boxes[0] (x0=10")
    outside = [types_pb2.BoundingBox(x0=400, y0=10, x1=600, y1=50)]
    assert "outside the 480x240 image" in status(flow(pool), request(image, lips(), face_boxes=outside)).message


def test_a_face_without_the_region_is_skipped_unless_named(pool: WorkerPool) -> None:
    image, truth = group()
    image[truth == 13] = (128, 128, 128)  # nobody has hair now ...
    hair_image, _ = draw_faces(SIZE, GROUP)
    image[head_of(truth, 90)] = hair_image[head_of(truth, 90)]  # ... but the left face
    response = run(flow(pool), request(image, fe.Edit(prompt="x", attribute="hair")))
    assert [f.index for f in response.steps[0].faces] == [1]
    result = status(flow(pool), request(image, fe.Edit(prompt="x", attribute="hair", face_indices=[0])))
    assert result.code == grpc.StatusCode.FAILED_PRECONDITION
    assert result.message.startswith("region 'hair' covers 0.00% of face 0's frame")


def test_whole_photo_regions_render_once_and_refuse_face_indices(pool: WorkerPool) -> None:
    image, _ = draw_faces(SIZE, GROUP)
    image[200:, :] = (0, 170, 170)  # clothing across the bottom
    inpainter = FakeInpainter()
    response = run(flow(pool, inpainter=inpainter), request(image, fe.Edit(prompt="x", attribute="clothing")))
    assert len(inpainter.requests) == 1 and not response.steps[0].faces
    result = status(flow(pool), request(image, fe.Edit(prompt="x", attribute="clothing", face_indices=[0])))
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT and result.message.startswith("edits[0]: face_indices")


def test_max_faces_keeps_the_largest(pool: WorkerPool) -> None:
    image, _ = group()
    response = run(flow(pool, max_faces=2), request(image, lips()))
    assert [f.index for f in response.steps[0].faces] == [0, 1]
    assert [round((f.face_box.x0 + f.face_box.x1) / 20) * 10 for f in response.steps[0].faces] == [240, 90]


EYES = fe.Edit(prompt="x", mask=types_pb2.MaskOptions(classes=["l_eye", "r_eye", "l_brow", "r_brow", "skin"]))


def tilted_edit(pool: WorkerPool, threshold: float):
    """A face rolled 35 degrees, its eyes, brows and skin edited: the response, the inpainter's input, the photo
    and its true labels."""
    image, truth = draw_faces((320, 320), [(160, 150, 120, 35.0)])
    inpainter = FakeInpainter()
    parser = FakeParser(input_size=128)
    editor = flow(pool, parser, inpainter, working_size=256, roll_threshold=threshold)
    response = run(editor, request(image, EYES, return_masks=True))
    received = np.ascontiguousarray(from_raw(inpainter.requests[0].image, channels=3))
    return response, received, image, truth


def test_a_tilted_face_reaches_the_inpainter_upright_and_lands_back_exactly(pool: WorkerPool) -> None:
    response, received, image, truth = tilted_edit(pool, 15.0)
    (face,) = response.steps[0].faces
    assert face.roll_degrees == pytest.approx(35, abs=3)
    level = roll_degrees(palette_parse(received))
    assert level is not None and abs(level) <= 3
    mask = decode_image(response.steps[0].mask.data)[..., 0]
    result = decode_image(response.image.data)
    assert np.array_equal(result[mask == 0], image[mask == 0])
    assert (mask[truth == 1] > 128).mean() > 0.95
    assert (mask[truth == 0] > 128).mean() < 0.05


def test_above_the_threshold_only_a_face_is_turned(pool: WorkerPool) -> None:
    response, received, _, _ = tilted_edit(pool, 40.0)
    assert roll_degrees(palette_parse(received)) == pytest.approx(35, abs=3)
    assert response.steps[0].faces[0].roll_degrees == pytest.approx(35, abs=3)


@pytest.mark.parametrize("attribute", ["hair", "skin", "eyebrows", "lips"])
def test_every_pixel_of_an_unselected_face_is_the_inputs(pool: WorkerPool, attribute: str) -> None:
    image, truth = group()
    response = run(flow(pool), request(image, fe.Edit(prompt="x", attribute=attribute, face_indices=[1])))
    result = decode_image(response.image.data)
    left, middle, right = (head_of(truth, x) for x, *_ in GROUP)
    assert [f.index for f in response.steps[0].faces] == [1]
    assert np.any(result[left] != image[left])  # face 1 (left) changed ...
    for head in (middle, right):  # ... faces 0 and 2 are the input, bit for bit
        assert np.array_equal(result[head], image[head])
