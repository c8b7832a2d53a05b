"""The bounded data path on real processes: photos a camera makes, messages bounded by the canvas, overload refused
at the door (before decoding, or before a deadline that cannot be met is spent)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from skimage import data as samples

from faceedit.core.imageio import decode_image, encode_image
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.triton import TritonServer
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.fixtures.stack import start_orchestrator
from tests.helpers import metric_value, wait_for

RECEIVED = "faceedit_inpainter_request_bytes"


def _stub(address: str) -> face_editor_pb2_grpc.FaceEditorStub:
    channel = grpc.insecure_channel(address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES))
    return face_editor_pb2_grpc.FaceEditorStub(channel)


def _photo(width: int, height: int) -> bytes:
    """A camera-sized JPEG: the astronaut stretched to the size, with sensor-like noise."""
    image = cv2.resize(samples.astronaut(), (width, height), interpolation=cv2.INTER_LINEAR)
    image = cv2.add(image, np.random.default_rng(0).integers(0, 12, image.shape, dtype=np.uint8))
    return encode_image(image, "jpeg", quality=90)


def _lips_mask(width: int, height: int) -> bytes:
    """A lips-sized caller mask (0.5% of the photo) at the photo's size."""
    mask = np.zeros((height, width), np.uint8)
    w, h = int(width * 0.1), int(height * 0.05)
    x0, y0 = int(width * 0.45), int(height * 0.65)
    mask[y0 : y0 + h, x0 : x0 + w] = 255
    return encode_image(mask)


def _largest_class(address: str) -> str:
    """The class the (random) parser finds most of in the astronaut: spread over the whole photo."""
    thumbnail = encode_image(samples.astronaut()[::4, ::4])
    parsed = _stub(address).ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=thumbnail)), timeout=60)
    return parsed.coverage[0].name


def _edit(region: str, width: int, height: int, address: str, steps: int = 2) -> fe.Edit:
    if region == "crop":  # the caller's mask replaces the parse: a small, known region
        mask = types_pb2.MaskOptions(
            classes=["skin"],
            extra_mask=types_pb2.EncodedImage(data=_lips_mask(width, height)),
            merge=types_pb2.MASK_MERGE_REPLACE,
        )
    else:
        mask = types_pb2.MaskOptions(classes=[_largest_class(address)])
    return fe.Edit(prompt="matte dusty-rose lipstick", num_inference_steps=steps, mask=mask)


@pytest.mark.parametrize("size", [(6000, 4000), (8064, 6048)], ids=["24MP", "48MP"])
@pytest.mark.parametrize("region", ["crop", "large"])
def test_camera_photos_keep_their_size_and_every_pixel_outside_the_mask(
    editor_stack: ServiceProcess, inpainter_server: ServiceProcess, size: tuple[int, int], region: str
) -> None:
    """PNG output and return_masks at 24-48 MP (a ~100 MiB response): the message limits hold it, and the Inpaint
    call carries the region only, whatever the photo."""
    width, height = size
    data = _photo(width, height)
    before = metric_value(inpainter_server.metrics_url, f"{RECEIVED}_sum")
    response = _stub(editor_stack.address).EditFace(
        fe.EditFaceRequest(
            image=types_pb2.EncodedImage(data=data),
            edits=[_edit(region, width, height, editor_stack.address)],
            return_masks=True,
            output_format=types_pb2.IMAGE_FORMAT_PNG,
        ),
        timeout=300,
    )
    sent = metric_value(inpainter_server.metrics_url, f"{RECEIVED}_sum") - before
    (step,) = response.steps
    assert (response.image.width, response.image.height) == (width, height)
    original = decode_image(data, max_pixels=50_000_000)
    result = decode_image(response.image.data, max_bytes=2**30, max_pixels=50_000_000)
    mask = decode_image(step.mask.data, max_bytes=2**30, max_pixels=50_000_000)[..., 0]
    assert result.shape == original.shape and mask.shape == (height, width)
    assert np.array_equal(result[mask == 0], original[mask == 0])
    assert (result[mask == 255] != original[mask == 255]).any()
    assert not step.HasField("image")  # the last step's image is the response's, not sent twice
    assert step.cropped == (region == "crop")
    assert 0 < sent <= 1024 * 1024 * 4 + 4096  # at most a 1024-px region and its mask, not the 24-146 MB frame


def test_a_lips_edit_of_a_phone_photo_sends_the_inpainter_under_5_mib(
    editor_stack: ServiceProcess, inpainter_server: ServiceProcess
) -> None:
    width, height = 4032, 3024
    url = inpainter_server.metrics_url
    before = (metric_value(url, f"{RECEIVED}_count"), metric_value(url, f"{RECEIVED}_sum"))
    edit = _edit("crop", width, height, editor_stack.address)
    request = fe.EditFaceRequest(image=types_pb2.EncodedImage(data=_photo(width, height)), edits=[edit])
    response = _stub(editor_stack.address).EditFace(request, timeout=300)
    count, total = (
        metric_value(url, f"{RECEIVED}_count") - before[0],
        metric_value(url, f"{RECEIVED}_sum") - before[1],
    )
    assert count == 1 and total < 5 * 2**20
    x0, y0, x1, y1 = (getattr(response.steps[0].crop_box, k) for k in ("x0", "y0", "x1", "y1"))
    assert response.steps[0].cropped and (x1 - x0) * (y1 - y0) < 0.05 * width * height


def test_a_photo_over_the_pixel_limit_is_invalid_argument_naming_the_limit(editor_stack: ServiceProcess) -> None:
    flat = np.full((6708, 8944, 3), 128, np.uint8)  # 60 MP
    with pytest.raises(grpc.RpcError) as excinfo:
        _stub(editor_stack.address).EditFace(
            fe.EditFaceRequest(
                image=types_pb2.EncodedImage(data=encode_image(flat, "jpeg")),
                edits=[fe.Edit(prompt="a face", mask=types_pb2.MaskOptions(classes=["skin"]))],
            ),
            timeout=60,
        )
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "8944x6708 = 59996352 pixels; the limit is 50000000" in excinfo.value.details()


def test_over_the_in_flight_limit_is_refused_before_the_image_is_decoded(
    triton_server: TritonServer, inpainter_server: ServiceProcess, tmp_path: Path
) -> None:
    """A garbage image over the limit gets RESOURCE_EXHAUSTED, not the INVALID_ARGUMENT decoding would give."""
    orchestrator = start_orchestrator(
        triton_server.grpc_url, inpainter_server.address, tmp_path, "--max-in-flight", "1"
    )
    try:
        stub = _stub(orchestrator.address)
        slow = fe.EditFaceRequest(
            image=types_pb2.EncodedImage(data=encode_image(samples.astronaut())),
            edits=[_edit("crop", 512, 512, orchestrator.address, steps=60)],
        )
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(stub.EditFace, slow, timeout=120)
            wait_for(
                lambda: first.done() or metric_value(orchestrator.metrics_url, "faceedit_orchestrator_in_flight") == 1,
                "the first call",
            )
            assert not first.done(), first.exception()
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.EditFace(
                    fe.EditFaceRequest(image=types_pb2.EncodedImage(data=b"not an image"), edits=slow.edits),
                    timeout=30,
                )
            assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "maximum of 1 requests" in excinfo.value.details()
            assert first.result().steps[0].steps_run > 0  # the admitted call was not disturbed
        sample = 'faceedit_orchestrator_requests_total{code="RESOURCE_EXHAUSTED",method="EditFace"}'
        assert metric_value(orchestrator.metrics_url, sample) == 1
    finally:
        orchestrator.stop()


def test_a_deadline_the_inpainting_cannot_meet_is_refused_at_once(
    editor_stack: ServiceProcess, inpainter_server: ServiceProcess
) -> None:
    steps = "faceedit_inpainter_denoise_steps_total"
    before = metric_value(inpainter_server.metrics_url, steps)
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=encode_image(samples.astronaut())),
        edits=[_edit("crop", 512, 512, editor_stack.address, steps=150)],
    )
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as excinfo:
        _stub(editor_stack.address).EditFace(request, timeout=1.0)
    elapsed = time.monotonic() - started
    assert excinfo.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "of inpainting but its deadline leaves" in excinfo.value.details()  # the inpainter's refusal
    assert elapsed < 0.9 and metric_value(inpainter_server.metrics_url, steps) == before  # no step was spent
