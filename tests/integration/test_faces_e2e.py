"""Faces anywhere in real photos, end to end on real processes: a tritonserver serving the palette parser (its
labels are known exactly), the tiny inpainter, and the orchestrator. Generated portraits know each face's true
regions, so the tests check that the edited pixels are the right ones:
- the mask (>= 128) holds >= 95% of each selected face's true region;
- at most 5% of the mask lies beyond that region grown by 2% of the face's width;
- pixels outside every selected face's mask are the input's, bit for bit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.upright import roll_degrees
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.triton import TritonServer
from faceedit.export.palette_parser import export as export_palette
from faceedit.export.palette_parser import parse as palette_parse
from faceedit.export.portraits import FaceSpec, Portrait, portrait
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options
from faceedit.rpc.messages import from_raw, to_raw
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, inpainter_pb2, inpainter_pb2_grpc, types_pb2
from tests.aioserver import threaded_aio_server
from tests.fixtures.inpainter import TEST_WORKING_SIZE
from tests.fixtures.stack import start_orchestrator

LIPS = (11, 12)
BIG = 2**31 - 1


@pytest.fixture(scope="module")
def palette_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    model = export_palette(tmp_path_factory.mktemp("palette") / "model.onnx")
    server = TritonServer(model, workdir=tmp_path_factory.mktemp("palette-triton"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _orchestrator(triton: TritonServer, inpainter: str, workdir: Path) -> ServiceProcess:
    """The orchestrator at the deployment's parser size (512) and the tiny inpainter's canvas."""
    return start_orchestrator(
        triton.grpc_url, inpainter, workdir, "--parser-size", "512", "--working-size", str(TEST_WORKING_SIZE)
    )


@pytest.fixture(scope="module")
def faces_stack(
    palette_triton: TritonServer, inpainter_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[face_editor_pb2_grpc.FaceEditorStub]:
    process = _orchestrator(palette_triton, inpainter_server.address, tmp_path_factory.mktemp("faces-orch"))
    try:
        with grpc.insecure_channel(process.address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES)) as ch:
            yield face_editor_pb2_grpc.FaceEditorStub(ch)
    finally:
        process.stop()


def lips(*faces: int, steps: int = 2) -> fe.Edit:
    return fe.Edit(
        prompt="matte red lipstick",
        num_inference_steps=steps,
        strength=1.0,
        mask=types_pb2.MaskOptions(classes=["u_lip", "l_lip"]),
        face_indices=faces,
    )


def edit(
    stub: face_editor_pb2_grpc.FaceEditorStub, image: np.ndarray, *edits: fe.Edit, **fields
) -> tuple[fe.EditFaceResponse, np.ndarray, np.ndarray]:
    """EditFace of a PNG photo with return_masks, PNG out: the response, the result and the last step's mask."""
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=encode_image(image)),
        edits=edits,
        return_masks=True,
        output_format=types_pb2.IMAGE_FORMAT_PNG,
        **fields,
    )
    response = stub.EditFace(request, timeout=600)
    result = decode_image(response.image.data, max_bytes=BIG, max_pixels=60_000_000)
    mask = decode_image(response.steps[-1].mask.data, max_bytes=BIG, max_pixels=60_000_000)[..., 0]
    assert result.shape == image.shape and mask.shape == image.shape[:2]
    return response, result, mask


def spec_position(photo: Portrait, face: fe.FaceStepResult | fe.FoundFace) -> int:
    """Which drawn face (spec position) a reported face is: the one whose true head box holds its box's centre."""
    found = face.face_box if isinstance(face, fe.FaceStepResult) else face.box
    cx, cy = (found.x0 + found.x1) / 2, (found.y0 + found.y1) / 2
    (position,) = [i for i, (x0, y0, x1, y1) in enumerate(photo.boxes) if x0 <= cx < x1 and y0 <= cy < y1]
    return position


def assert_true_region(mask: np.ndarray, truth: np.ndarray, face_width: int) -> None:
    """The mask holds >= 95% of the true region and lies >= 95% within it grown by 2% of the face's width."""
    edited = mask >= 128
    held = edited[truth].mean()
    reach = max(1, int(np.ceil(0.02 * face_width)))
    grown = cv2.dilate(truth.astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)) > 0
    beyond = (edited & ~grown).sum() / max(1, edited.sum())
    assert held >= 0.95, f"the mask holds {held:.1%} of the true region"
    assert beyond <= 0.05, f"{beyond:.1%} of the mask lies beyond the true region grown by {reach} px"


def assert_faces_edited(photo: Portrait, specs: list[FaceSpec], response, result, mask, selected: list[int]) -> None:
    """Each selected face's (spec positions) lips are the mask's; outside the mask every pixel is the input's."""
    (step,) = response.steps
    assert sorted(spec_position(photo, f) for f in step.faces) == sorted(selected)
    for position in selected:
        near = np.zeros(mask.shape, np.uint8)  # this face's part of the mask: around its head (faces lie apart)
        x0, y0, x1, y1 = photo.boxes[position]
        reach = specs[position].width // 2
        near[max(0, y0 - reach) : y1 + reach, max(0, x0 - reach) : x1 + reach] = 255
        assert_true_region(mask & near, photo.region(position, LIPS), specs[position].width)
    assert np.array_equal(result[mask == 0], photo.image[mask == 0])
    assert (result[mask == 255] != photo.image[mask == 255]).any()


@pytest.mark.parametrize(
    "size,specs",
    [
        ((1024, 1024), [FaceSpec(512, 470, 560)]),
        ((4000, 3000), [FaceSpec(2000, 1300, 1600)]),
        ((4000, 3000), [FaceSpec(2100, 900, 700)]),
        ((4000, 3000), [FaceSpec(1800, 700, 260)]),
    ],
    ids=["aligned-1024", "12MP-face-1600", "12MP-face-700", "12MP-face-260"],
)
def test_one_face_lips_are_the_true_lips(faces_stack, size: tuple[int, int], specs: list[FaceSpec]) -> None:
    photo = portrait(size, specs)
    response, result, mask = edit(faces_stack, photo.image, lips())
    assert_faces_edited(photo, specs, response, result, mask, [0])
    (face,) = response.steps[0].faces
    assert face.seed == 42 and face.cropped and 0 < face.coverage < 0.1


GROUP = [FaceSpec(1300, 1500, 700), FaceSpec(3000, 1600, 560), FaceSpec(4700, 1500, 420)]


def test_a_group_photo_edits_every_face_in_its_own_crop(faces_stack) -> None:
    photo = portrait((6000, 4000), GROUP)
    response, result, mask = edit(faces_stack, photo.image, lips())
    assert_faces_edited(photo, GROUP, response, result, mask, [0, 1, 2])
    step = response.steps[0]
    assert [f.index for f in step.faces] == [0, 1, 2] and [f.seed for f in step.faces] == [42, 43, 44]
    for face in step.faces:  # each lips crop is its own, a small part of the photo: crop-level detail
        width, height = face.crop_box.x1 - face.crop_box.x0, face.crop_box.y1 - face.crop_box.y0
        assert max(width, height) < 700


def test_one_face_by_index_leaves_the_others_bit_identical(faces_stack) -> None:
    photo = portrait((6000, 4000), GROUP)
    response, result, mask = edit(faces_stack, photo.image, lips(2))
    assert_faces_edited(photo, GROUP, response, result, mask, [2])
    for other in (0, 1):
        owned = photo.owners == other + 1
        assert np.array_equal(result[owned], photo.image[owned])


def test_a_50_mp_photo_with_two_faces(faces_stack) -> None:
    specs = [FaceSpec(2500, 2600, 1200), FaceSpec(6200, 2800, 900)]
    photo = portrait((8640, 5760), specs)
    response, result, mask = edit(faces_stack, photo.image, lips())
    assert_faces_edited(photo, specs, response, result, mask, [0, 1])


def test_face_boxes_skip_localisation(faces_stack) -> None:
    photo = portrait((6000, 4000), GROUP)
    x0, y0, x1, y1 = photo.boxes[1]
    response, result, mask = edit(
        faces_stack, photo.image, lips(), face_boxes=[types_pb2.BoundingBox(x0=x0, y0=y0, x1=x1, y1=y1)]
    )
    assert_faces_edited(photo, GROUP, response, result, mask, [1])
    (face,) = response.steps[0].faces
    assert (face.index, face.face_box.x0, face.face_box.y1) == (0, x0, y1)
    bad = types_pb2.BoundingBox(x0=5000, y0=100, x1=7000, y1=900)
    with pytest.raises(grpc.RpcError) as excinfo:
        edit(faces_stack, photo.image, lips(), face_boxes=[bad])
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert excinfo.value.details().startswith("face_boxes[0] (x0=5000, y0=100, x1=7000, y1=900) lies outside")


def test_no_face_and_a_missing_index_are_failed_precondition(faces_stack) -> None:
    blank = np.full((600, 800, 3), 255, np.uint8)
    with pytest.raises(grpc.RpcError) as excinfo:
        edit(faces_stack, blank, lips())
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert excinfo.value.details().startswith("no face was found in the photo")
    photo = portrait((6000, 4000), GROUP)
    with pytest.raises(grpc.RpcError) as excinfo:
        edit(faces_stack, photo.image, lips(3))
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert excinfo.value.details() == "face index 3 has no face: 3 faces found (indices 0-2)"


def test_parse_face_reports_the_numbered_faces(faces_stack) -> None:
    photo = portrait((6000, 4000), GROUP)
    request = fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=encode_image(photo.image)))
    response = faces_stack.ParseFace(request, timeout=120)
    assert [f.index for f in response.faces] == [0, 1, 2]
    assert [spec_position(photo, f) for f in response.faces] == [0, 1, 2]
    assert [f.area for f in response.faces] == sorted((f.area for f in response.faces), reverse=True)
    labels = decode_image(response.labels.data, max_pixels=60_000_000)[..., 0]
    lips_truth = np.isin(photo.labels, LIPS)
    # Each face's lips come from its fine parse, mapped back at full resolution (parse edges shift by a pixel or
    # two of the frame's parse; the mask's grow covers that). A 420 px face in the 6000 px frame's 512 px parse
    # would keep a few lips pixels only.
    assert (np.isin(labels, LIPS)[lips_truth]).mean() > 0.85


class RecordingInpainter(inpainter_pb2_grpc.InpainterServicer):
    """An Inpainter that records what it receives and paints the received region one colour."""

    def __init__(self) -> None:
        self.received: list[np.ndarray] = []

    def _render(self, request: inpainter_pb2.InpaintRequest) -> inpainter_pb2.InpaintResponse:
        image = from_raw(request.image, channels=3)
        self.received.append(image.copy())
        rendered = np.empty_like(image)
        rendered[:] = (0, 255, 0)
        return inpainter_pb2.InpaintResponse(image=to_raw(rendered), seed=request.seed, steps_run=1)

    async def Inpaint(self, request, context):
        return self._render(request)

    async def StreamInpaint(self, request, context):
        yield inpainter_pb2.InpaintEvent(result=self._render(request))


class Serving(health_pb2_grpc.HealthServicer):
    """Health: SERVING for every service, so the orchestrator's dependency check passes."""

    async def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def Watch(self, request, context):
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        await asyncio.Event().wait()


def test_a_tilted_face_reaches_the_inpainter_upright(palette_triton: TritonServer, tmp_path: Path) -> None:
    recorder = RecordingInpainter()

    def register(server: grpc.aio.Server) -> None:
        inpainter_pb2_grpc.add_InpainterServicer_to_server(recorder, server)
        health_pb2_grpc.add_HealthServicer_to_server(Serving(), server)

    specs = [FaceSpec(1100, 1000, 700, roll=35)]
    photo = portrait((2400, 2000), specs)
    eyes = fe.Edit(
        prompt="green eyes", mask=types_pb2.MaskOptions(classes=["l_eye", "r_eye", "l_brow", "r_brow", "skin"])
    )
    with threaded_aio_server(register) as port:
        process = _orchestrator(palette_triton, f"127.0.0.1:{port}", tmp_path)
        try:
            with grpc.insecure_channel(process.address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES)) as ch:
                response, result, mask = edit(face_editor_pb2_grpc.FaceEditorStub(ch), photo.image, eyes)
        finally:
            process.stop()
    (face,) = response.steps[0].faces
    assert face.roll_degrees == pytest.approx(35, abs=3)
    (received,) = recorder.received
    level = roll_degrees(palette_parse(received))
    assert level is not None and abs(level) <= 3, level
    truth = photo.region(0, (1, 4, 5, 6, 7))
    assert_true_region(mask, truth, specs[0].width)
    assert np.array_equal(result[mask == 0], photo.image[mask == 0])
