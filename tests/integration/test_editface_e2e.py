"""EditFace end to end: a real tritonserver, the real inpainter and the real orchestrator, on loopback."""

from __future__ import annotations

import io
import re
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from PIL import Image

from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.taxonomy import CLASS_NAMES
from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ServiceProcess, health_status
from faceedit.devstack.triton import TritonServer
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.fixtures.inpainter import start_inpainter
from tests.fixtures.stack import start_orchestrator
from tests.helpers import metric_value, wait_for

STEPS = 3


def _stub(address: str) -> face_editor_pb2_grpc.FaceEditorStub:
    return face_editor_pb2_grpc.FaceEditorStub(
        grpc.insecure_channel(address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES))
    )


def _portrait(height: int = 180, width: int = 120) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    face = ((xs - width / 2) ** 2 / (width / 3) ** 2 + (ys - height / 2) ** 2 / (height / 3) ** 2) < 1
    image = np.stack([xs * 255 // width, ys * 255 // height, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    image[face] = (224, 172, 150)
    return image


def _present_classes(stub, data: bytes, n: int = 3) -> list[str]:
    """The n classes the (random) parser finds most of, so edits target regions that really exist."""
    parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)))
    return [c.name for c in parsed.coverage[:n]]


def _edit(class_name: str, **kwargs) -> fe.Edit:
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("mask", types_pb2.MaskOptions(classes=[class_name]))
    return fe.Edit(prompt="curly auburn hair", **kwargs)


def _png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if image.mode == "RGBA" else "JPEG", **options)
    return buffer.getvalue()


def _inputs() -> dict[str, bytes]:
    portrait = _portrait()
    rgba = Image.fromarray(portrait).convert("RGBA")
    alpha = np.full(portrait.shape[:2], 255, np.uint8)
    alpha[:20] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rotated = Image.fromarray(portrait)
    exif = rotated.getexif()
    exif[0x0112] = 6
    return {
        "non-square png": encode_image(portrait),
        "rgba": _png(rgba),
        "exif-rotated jpeg": _png(rotated, quality=95, exif=exif.tobytes()),
    }


@pytest.mark.parametrize("kind", ["non-square png", "rgba", "exif-rotated jpeg"])
def test_editface_keeps_size_and_every_pixel_outside_the_mask(editor_stack: ServiceProcess, kind: str) -> None:
    data = _inputs()[kind]
    stub = _stub(editor_stack.address)
    (target,) = _present_classes(stub, data, 1)
    response = stub.EditFace(
        fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[_edit(target)], return_masks=True)
    )
    original = decode_image(data)  # the caller's image after EXIF and alpha normalisation
    result = decode_image(response.image.data)
    assert (response.image.width, response.image.height) == (original.shape[1], original.shape[0])
    assert result.shape == original.shape
    (step,) = response.steps
    mask = decode_image(step.mask.data)[..., 0]
    assert mask.shape == original.shape[:2] and step.coverage > 0
    assert np.array_equal(result[mask == 0], original[mask == 0])
    assert (result[mask == 255] != original[mask == 255]).any()
    assert step.seed == 42 and step.steps_run == int(STEPS * 0.9)
    assert step.labels.data and step.parse_map.data
    assert response.timings.total_ms >= response.timings.parse_ms + response.timings.inpaint_ms > 0


def _parser_successes(triton: TritonServer) -> int:
    text = urllib.request.urlopen(triton.metrics_url, timeout=5).read().decode()
    return int(re.search(r'^nv_inference_request_success\{model="face_parser",version="1"\} (\d+)', text, re.M)[1])


def test_a_cascade_of_three_edits_reparses_between_steps(
    editor_stack: ServiceProcess, triton_server: TritonServer
) -> None:
    data = encode_image(_portrait())
    stub = _stub(editor_stack.address)
    classes = _present_classes(stub, data, 3)
    before = _parser_successes(triton_server)
    response = stub.EditFace(
        fe.EditFaceRequest(
            image=types_pb2.EncodedImage(data=data),
            edits=[_edit(c, seed=i) for i, c in enumerate(classes)],
            return_masks=True,
        )
    )
    assert _parser_successes(triton_server) - before == 3  # one parse per edit, each of the image so far
    assert [s.index for s in response.steps] == [0, 1, 2]
    assert [s.seed for s in response.steps] == [0, 1, 2]
    first_labels = decode_image(response.steps[0].labels.data)
    assert any(not np.array_equal(decode_image(s.labels.data), first_labels) for s in response.steps[1:])
    assert response.timings.parse_ms == pytest.approx(sum(s.timings.parse_ms for s in response.steps), rel=1e-6)


def test_stream_delivers_stage_and_step_events_in_order_then_the_result(editor_stack: ServiceProcess) -> None:
    data = encode_image(_portrait())
    stub = _stub(editor_stack.address)
    classes = _present_classes(stub, data, 2)
    events = list(
        stub.StreamEditFace(
            fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[_edit(c, strength=1.0) for c in classes])
        )
    )
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1
    assert [e.step.index for e in events if e.HasField("step")] == [0, 1]
    renders = {(e.progress.edit_index, e.progress.face_index) for e in events if e.HasField("progress")}
    assert {edit for edit, _ in renders} == {0, 1}
    for index, face in renders:  # each face of an edit renders on its own, its steps in order
        progress = [
            e.progress.step
            for e in events
            if e.HasField("progress") and (e.progress.edit_index, e.progress.face_index) == (index, face)
        ]
        assert progress == list(range(1, STEPS + 1))
    stages = [(e.stage.stage, e.stage.edit_index, e.stage.done) for e in events if e.HasField("stage")]
    assert stages[0] == (fe.STAGE_DECODE, 0, False) and stages[-1] == (fe.STAGE_ENCODE, 0, True)
    assert stages.index((fe.STAGE_INPAINT, 0, True)) < stages.index((fe.STAGE_PARSE, 1, False))
    elapsed = [e.stage.elapsed_ms for e in events if e.HasField("stage")]
    assert elapsed == sorted(elapsed)
    assert len(events[-1].result.steps) == 2


def test_unknown_attribute_is_invalid_argument_listing_valid_ones(editor_stack: ServiceProcess) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        _stub(editor_stack.address).EditFace(
            fe.EditFaceRequest(
                image=types_pb2.EncodedImage(data=encode_image(_portrait())),
                edits=[fe.Edit(attribute="hiar", prompt="red hair")],
            )
        )
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        "Did you mean 'hair'" in excinfo.value.details() and "Valid attributes: hair, lips" in excinfo.value.details()
    )


def test_absent_region_is_failed_precondition_naming_attribute_and_coverage(editor_stack: ServiceProcess) -> None:
    data = encode_image(_portrait())
    stub = _stub(editor_stack.address)
    present = {c.name for c in stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data))).coverage}
    absent = [name for name in CLASS_NAMES if name not in present]
    fallback = sorted(present)[0]
    too_small = types_pb2.MaskOptions(classes=[fallback], min_coverage=1.0)
    edit = _edit(absent[0]) if absent else _edit(fallback, mask=too_small)
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.EditFace(fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[edit]))
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert re.search(r"region '.+' covers \d+\.\d\d% of the image", excinfo.value.details())


def test_bad_image_and_bad_knobs_are_invalid_argument(editor_stack: ServiceProcess) -> None:
    stub = _stub(editor_stack.address)
    for request, message in [
        (
            fe.EditFaceRequest(image=types_pb2.EncodedImage(data=b"not an image"), edits=[_edit("skin")]),
            "not a recognised image",
        ),
        (
            fe.EditFaceRequest(
                image=types_pb2.EncodedImage(data=encode_image(_portrait())),
                edits=[_edit("skin", num_inference_steps=10000)],
            ),
            "edits[0]: num_inference_steps",
        ),
        (fe.EditFaceRequest(image=types_pb2.EncodedImage(data=encode_image(_portrait()))), "1 to 8 edits"),
    ]:
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.EditFace(request)
        assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in excinfo.value.details()


def test_the_callers_deadline_propagates(editor_stack: ServiceProcess) -> None:
    data = encode_image(_portrait())
    stub = _stub(editor_stack.address)
    (target,) = _present_classes(stub, data, 1)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as excinfo:
        slow = _edit(target, strength=1.0, num_inference_steps=150)
        stub.EditFace(fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[slow]), timeout=1.0)
    assert excinfo.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 10


def test_list_attributes(editor_stack: ServiceProcess) -> None:
    response = _stub(editor_stack.address).ListAttributes(fe.ListAttributesRequest())
    by_name = {a.name: a for a in response.attributes}
    assert list(by_name["lips"].class_ids) == [11, 12] and by_name["eyebrows"].default_strength == pytest.approx(0.6)
    assert len(response.classes) == 19 and response.default_guidance_scale == 12.0
    assert response.default_num_inference_steps == 50 and response.default_seed == 42


def test_parser_down_is_unavailable_within_the_deadline_and_recovers(
    parser_model: Path, inpainter_server: ServiceProcess, tmp_path: Path
) -> None:
    triton = TritonServer(parser_model, workdir=tmp_path / "triton").start()
    orchestrator = None
    try:
        orchestrator = start_orchestrator(triton.grpc_url, inpainter_server.address, tmp_path)
        stub = _stub(orchestrator.address)
        data = encode_image(_portrait())
        (target,) = _present_classes(stub, data, 1)
        request = fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[_edit(target)])
        triton.stop()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.EditFace(request, timeout=5.0)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "parser" in excinfo.value.details()
        assert time.monotonic() - started < 5.0
        wait_for(lambda: _health(orchestrator) == NOT_SERVING, "the watcher to report NOT_SERVING")
        port = triton.grpc_port
        triton = TritonServer(parser_model, workdir=tmp_path / "triton2", grpc_port=port).start()
        orchestrator.wait_serving(30)  # the dependency watcher flips back to SERVING
        assert stub.EditFace(request, timeout=30).image.data
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        triton.stop()


NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(process: ServiceProcess) -> int | None:
    return health_status(process.address, "faceedit.v1.FaceEditor")


def test_inpainter_down_is_unavailable_within_the_deadline(triton_server: TritonServer, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    orchestrator = start_orchestrator(triton_server.grpc_url, dead, tmp_path, wait_serving=False)
    try:
        wait_for(lambda: _health(orchestrator) == NOT_SERVING, "the orchestrator to answer health")
        stub = _stub(orchestrator.address)
        data = encode_image(_portrait())
        (target,) = _present_classes(stub, data, 1)  # ParseFace needs only the parser
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.EditFace(fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[_edit(target)]), timeout=5)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"inpainter at {dead} is unavailable" in excinfo.value.details()
        assert time.monotonic() - started < 5.0
        assert _health(orchestrator) == NOT_SERVING
    finally:
        orchestrator.stop()


@pytest.mark.parametrize("method", ["EditFace", "StreamEditFace"])
def test_a_cancelled_call_cancels_the_inpainting_it_started(
    editor_stack: ServiceProcess, inpainter_server: ServiceProcess, method: str
) -> None:
    inpainter_method = {"EditFace": "Inpaint", "StreamEditFace": "StreamInpaint"}[method]
    downstream_cancelled = f'faceedit_inpainter_requests_total{{code="CANCELLED",method="{inpainter_method}"}}'
    cancelled = f'faceedit_requests_total{{code="CANCELLED",method="{method}"}}'
    steps = "faceedit_inpainter_denoise_steps_total"
    before = {
        name: metric_value(url, name)
        for name, url in [
            (downstream_cancelled, inpainter_server.metrics_url),
            (steps, inpainter_server.metrics_url),
            (cancelled, editor_stack.metrics_url),
        ]
    }
    stub = _stub(editor_stack.address)
    data = encode_image(_portrait())
    (target,) = _present_classes(stub, data, 1)
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=data), edits=[_edit(target, strength=1.0, num_inference_steps=150)]
    )
    if method == "EditFace":
        call = stub.EditFace.future(request, timeout=120)
        wait_for(lambda: metric_value(inpainter_server.metrics_url, steps) > before[steps], "denoising to start")
    else:
        call = stub.StreamEditFace(request, timeout=120)
        assert next(e for e in call if e.HasField("progress")).progress.step == 1
    call.cancel()
    wait_for(
        lambda: metric_value(inpainter_server.metrics_url, downstream_cancelled) > before[downstream_cancelled],
        "the inpainter to see its call cancelled",
    )
    wait_for(lambda: metric_value(editor_stack.metrics_url, cancelled) > before[cancelled], "the CANCELLED count")
    assert 1 <= metric_value(inpainter_server.metrics_url, steps) - before[steps] < 150  # stopped long before the end
    assert len(stub.EditFace(fe.EditFaceRequest(image=request.image, edits=[_edit(target)])).steps) == 1


def test_a_bad_later_edit_fails_before_any_parse(editor_stack: ServiceProcess, triton_server: TritonServer) -> None:
    stub = _stub(editor_stack.address)
    data = encode_image(_portrait())
    (target,) = _present_classes(stub, data, 1)
    before = _parser_successes(triton_server)
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.EditFace(
            fe.EditFaceRequest(
                image=types_pb2.EncodedImage(data=data), edits=[_edit(target), _edit(target, guidance_scale=99)]
            )
        )
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert excinfo.value.details().startswith("edits[1]: guidance_scale must be in [0, 30]")
    assert _parser_successes(triton_server) == before  # the whole cascade is validated before any work


def test_a_stream_that_fails_mid_cascade_delivers_the_finished_step_then_the_status(
    editor_stack: ServiceProcess,
) -> None:
    stub = _stub(editor_stack.address)
    data = encode_image(_portrait())
    (target,) = _present_classes(stub, data, 1)
    impossible = _edit(target, mask=types_pb2.MaskOptions(classes=[target], min_coverage=1.0))  # never met
    events = []
    with pytest.raises(grpc.RpcError) as excinfo:
        for event in stub.StreamEditFace(
            fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[_edit(target), impossible])
        ):
            events.append(event)
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"region '{target}' covers" in excinfo.value.details()
    assert "at least 100.00% is required" in excinfo.value.details()
    assert [e.step.index for e in events if e.HasField("step")] == [0]
    assert not any(e.HasField("result") for e in events)


def test_a_full_inpainter_queue_passes_through_as_resource_exhausted_with_its_retry_hint(
    triton_server: TritonServer, tiny_inpaint_model: Path, tmp_path: Path
) -> None:
    inpainter = start_inpainter(tiny_inpaint_model, tmp_path / "inpainter", "--queue-size", "0")
    orchestrator = None
    try:
        orchestrator = start_orchestrator(triton_server.grpc_url, inpainter.address, tmp_path)
        stub = _stub(orchestrator.address)
        data = encode_image(_portrait())
        (target,) = _present_classes(stub, data, 1)
        image = types_pb2.EncodedImage(data=data)
        busy = stub.StreamEditFace(
            fe.EditFaceRequest(image=image, edits=[_edit(target, strength=1.0, num_inference_steps=150)])
        )
        assert next(e for e in busy if e.HasField("progress")).progress.step == 1  # the one worker is taken
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.EditFace(fe.EditFaceRequest(image=image, edits=[_edit(target)]), timeout=30)
        busy.cancel()
        assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert excinfo.value.details().startswith("inpainter: ") and "queue is full" in excinfo.value.details()
        assert any(key == "retry-after-ms" and int(value) > 0 for key, value in excinfo.value.trailing_metadata())
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        inpainter.stop()


def test_streams_refused_by_validation_always_get_their_status(editor_stack: ServiceProcess) -> None:
    """A refused stream's status was once sent from another task than the stream's own, racing its send of the
    first event: about 1 call in 60 never got its status and hung until the caller's deadline."""
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=encode_image(_portrait())), edits=[fe.Edit(attribute="hiar", prompt="red")]
    )
    stub = _stub(editor_stack.address)
    codes = []
    for _ in range(300):
        try:
            list(stub.StreamEditFace(request, timeout=10))
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 300
