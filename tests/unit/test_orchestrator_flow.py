"""The EditFace flow in-process, on fakes of the parser and the inpainter: cascade order, timings, return_masks,
stream events, and the status each failure ends in, on a one-face portrait."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from faceedit.core.imageio import decode_image, encode_image
from faceedit.export.palette_parser import PALETTE
from faceedit.orchestrator.errors import InpainterFailedError, classify
from faceedit.orchestrator.flow import EditFlow
from faceedit.orchestrator.parser_client import ParserError, ParserUnavailableError
from faceedit.rpc.messages import STAGES
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2
from tests.fakes import FakeInpainter, FakeParser, draw_faces

HAIR = tuple(int(c) for c in PALETTE[13])
BLUE = (0, 0, 255)


def portrait(height: int = 120, width: int = 96) -> np.ndarray:
    return draw_faces((width, height), [(width / 2, height / 2.3, width * 0.55, 0.0)])[0]


def flow(parser: FakeParser, inpainter: FakeInpainter, pool: WorkerPool, **limits) -> EditFlow:
    settings = (
        dict(working_size=64, max_image_bytes=1 << 24, max_image_pixels=1 << 24, max_response_bytes=1 << 26) | limits
    )
    return EditFlow(parser, inpainter, pool, default_timeout_s=30.0, **settings)


@pytest.fixture(scope="module")
def pool():
    workers = WorkerPool(2)
    yield workers
    workers.close()


def request(*classes: list[str], **fields) -> fe.EditFaceRequest:
    edits = [fe.Edit(prompt="red", mask=types_pb2.MaskOptions(classes=names)) for names in classes]
    return fe.EditFaceRequest(image=types_pb2.EncodedImage(data=encode_image(portrait())), edits=edits, **fields)


def run(editor: EditFlow, req: fe.EditFaceRequest, *, remaining_s: float | None = None, stream: bool = False):
    """The response (and the events a stream would send) of one call."""
    events: list[fe.EditFaceEvent] = []

    async def emit(event: fe.EditFaceEvent) -> None:
        events.append(event)

    call = editor.call("req-1", remaining_s, emit if stream else None)
    return asyncio.run(editor.run(req, call)), events


def failure(editor: EditFlow, req: fe.EditFaceRequest, **kwargs):
    with pytest.raises(Exception) as excinfo:
        run(editor, req, **kwargs)
    return classify(excinfo.value, "EditFace")


def test_each_edit_parses_the_image_the_previous_edit_left(pool: WorkerPool) -> None:
    parser, inpainter = FakeParser(), FakeInpainter(colour=HAIR)
    response, _ = run(flow(parser, inpainter, pool), request(["l_lip"], ["hair"], return_masks=True))
    # The whole photo once (finding the face), then the face's frame once per edit.
    assert [len(b) for b in parser.batches] == [1, 1, 1]
    _, first, second = parser.batches
    painted = np.all(np.abs(second[0].astype(int) - HAIR) <= 8, axis=-1)
    lips = np.all(np.abs(first[0].astype(int) - PALETTE[12]) <= 8, axis=-1)
    assert lips.any() and (painted & lips).sum() >= 0.8 * lips.sum()  # the second parse saw the painted lips
    # The second edit's region holds the old lips only because the first painted them hair.
    mask = decode_image(response.steps[1].mask.data)[..., 0]
    _, truth = draw_faces((96, 120), [(48, 120 / 2.3, 96 * 0.55, 0.0)])
    assert (mask[truth == 12] > 128).mean() > 0.9
    assert [s.index for s in response.steps] == [0, 1]
    # Every inpaint request carried a region only, bounded by the working size.
    assert all(max(r.image.width, r.image.height) <= 64 for r in inpainter.requests)


def test_pixels_outside_the_mask_are_the_callers(pool: WorkerPool) -> None:
    response, _ = run(flow(FakeParser(), FakeInpainter(), pool), request(["l_lip"], return_masks=True))
    result, mask = decode_image(response.image.data), decode_image(response.steps[0].mask.data)[..., 0]
    assert np.array_equal(result[mask == 0], portrait()[mask == 0])
    assert (mask == 255).any() and (result[mask == 255] == BLUE).all()


def test_totals_are_the_sums_of_the_steps_plus_decode_and_encode(pool: WorkerPool) -> None:
    response, _ = run(flow(FakeParser(), FakeInpainter(), pool), request(["l_lip"], ["skin"]))
    totals = response.timings
    for stage in STAGES:
        summed = sum(getattr(s.timings, f"{stage}_ms") for s in response.steps)
        extra = {"decode": totals.decode_ms, "encode": totals.encode_ms - summed}.get(stage, 0.0)
        assert getattr(totals, f"{stage}_ms") == pytest.approx(summed + extra), stage
    assert totals.decode_ms > 0 and totals.encode_ms > 0
    assert totals.queue_ms == pytest.approx(2 * 1.5) and totals.denoise_ms == pytest.approx(2 * 7.0)
    assert all(s.timings.parse_ms > 0 and s.timings.total_ms >= s.timings.inpaint_ms for s in response.steps)
    assert totals.total_ms >= sum(s.timings.total_ms for s in response.steps) + totals.decode_ms


def test_return_masks_sends_each_steps_images_and_the_intermediate_result(pool: WorkerPool) -> None:
    response, _ = run(flow(FakeParser(), FakeInpainter(), pool), request(["l_lip"], ["skin"], return_masks=True))
    first, last = response.steps
    for step in (first, last):
        assert decode_image(step.mask.data).shape[:2] == (120, 96)
        assert set(np.unique(decode_image(step.labels.data)[..., 0])) <= set(range(len(PALETTE)))
        assert step.parse_map.data and step.timings.encode_ms > 0
    intermediate = decode_image(first.image.data)
    assert np.array_equal(intermediate, decode_image(encode_image(intermediate)))  # PNG, lossless
    assert not last.HasField("image")  # the last step's image is the response's
    plain, _ = run(flow(FakeParser(), FakeInpainter(), pool), request(["l_lip"]))
    assert not plain.steps[0].mask.data and not plain.steps[0].labels.data and plain.steps[0].timings.encode_ms == 0


def test_stream_events_come_in_stage_order_and_name_their_edit(pool: WorkerPool) -> None:
    response, events = run(
        flow(FakeParser(), FakeInpainter(total_steps=3), pool),
        request(["l_lip"], ["skin"]),
        stream=True,
    )
    kinds = []
    for event in events:
        if event.HasField("stage"):
            stage = event.stage
            face = stage.face_index if stage.HasField("face_index") else None
            kinds.append(("stage", stage.stage, stage.edit_index, face, stage.done))
        elif event.HasField("progress"):
            kinds.append(("progress", event.progress.step, event.progress.edit_index, event.progress.face_index))
        else:
            kinds.append(("step", event.step.index))
    # The parse is of the photo and of all the edit's faces at once: no face; mask, render and blend name it.
    per_edit = [
        ("stage", fe.STAGE_PARSE, "i", None, False),
        ("stage", fe.STAGE_PARSE, "i", None, True),
        *[("stage", fe.STAGE_MASK, "i", 0, done) for done in (False, True)],
        ("stage", fe.STAGE_INPAINT, "i", 0, False),
        *[("progress", step, "i", 0) for step in (1, 2, 3)],
        ("stage", fe.STAGE_INPAINT, "i", 0, True),
        ("stage", fe.STAGE_COMPOSITE, "i", 0, False),
        ("stage", fe.STAGE_COMPOSITE, "i", 0, True),
        ("step", "i"),
    ]
    expected = [("stage", fe.STAGE_DECODE, 0, None, False), ("stage", fe.STAGE_DECODE, 0, None, True)]
    for index in (0, 1):
        expected += [tuple(index if part == "i" else part for part in kind) for kind in per_edit]
    expected += [("stage", fe.STAGE_ENCODE, 0, None, False), ("stage", fe.STAGE_ENCODE, 0, None, True)]
    assert kinds == expected
    elapsed = [e.stage.elapsed_ms for e in events if e.HasField("stage")]
    assert elapsed == sorted(elapsed)
    assert [e.step for e in events if e.HasField("step")] == list(response.steps)


def test_parse_face_reports_the_parse_of_the_photo(pool: WorkerPool) -> None:
    parser = FakeParser()
    editor = flow(parser, FakeInpainter(), pool)
    req = fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=encode_image(portrait())))
    response = asyncio.run(editor.parse_face(req, editor.call("p", None)))
    assert [c.name for c in response.coverage][:2] == ["background", "skin"]
    assert {"lips", "skin"} <= set(response.attributes_present)
    assert decode_image(response.labels.data).shape[:2] == (120, 96)
    timings = response.timings
    assert timings.total_ms >= timings.decode_ms + timings.parse_ms + timings.encode_ms > 0
    assert [len(b) for b in parser.batches] == [1, 1]  # the photo, then its one face's frame
    (face,) = response.faces
    assert face.index == 0 and face.roll_degrees == pytest.approx(0, abs=3)
    assert face.area == (face.box.x1 - face.box.x0) * (face.box.y1 - face.box.y0) > 0


def overload() -> InpainterFailedError:
    return InpainterFailedError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "queue is full", "inp:1", (("retry-after-ms", "900"), ("x", "y"))
    )


@pytest.mark.parametrize(
    "parser_failure,inpainter_failure,code,message,trailers",
    [
        (ParserUnavailableError("face parser at t:1 is unavailable: down"), None, "UNAVAILABLE", "face parser at", ()),
        (ParserError("face parser returned nothing"), None, "INTERNAL", "face parser returned nothing", ()),
        (
            None,
            InpainterFailedError(grpc.StatusCode.UNAVAILABLE, "refused", "inp:1"),
            "UNAVAILABLE",
            "inpainter at inp:1 is unavailable: refused",
            (),
        ),
        (None, overload(), "RESOURCE_EXHAUSTED", "inpainter: queue is full", (("retry-after-ms", "900"),)),
        (
            None,
            InpainterFailedError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Sent message larger than max", "inp:1"),
            "INTERNAL",
            "--max-message-bytes",
            (),
        ),
        (
            None,
            InpainterFailedError(grpc.StatusCode.INVALID_ARGUMENT, "bad prompt", "inp:1"),
            "INVALID_ARGUMENT",
            "inpainter: bad prompt",
            (),
        ),
        (
            None,
            InpainterFailedError(grpc.StatusCode.UNIMPLEMENTED, "no", "inp:1"),
            "INTERNAL",
            "inpainter failed (UNIMPLEMENTED): no",
            (),
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_dependency_failures_end_in_the_documented_status(
    pool: WorkerPool, parser_failure, inpainter_failure, code: str, message: str, trailers: tuple, stream: bool
) -> None:
    editor = flow(FakeParser(failure=parser_failure), FakeInpainter(failure=inpainter_failure), pool)
    result = failure(editor, request(["l_lip"]), stream=stream)
    assert (result.code.name, result.trailers) == (code, trailers) and message in result.message


def test_a_spent_deadline_is_deadline_exceeded_before_any_parse(pool: WorkerPool) -> None:
    parser = FakeParser()
    result = failure(flow(parser, FakeInpainter(), pool), request(["l_lip"]), remaining_s=0.0)
    assert (result.code, result.message) == (grpc.StatusCode.DEADLINE_EXCEEDED, "the request's deadline passed")
    assert parser.batches == []


def test_a_response_above_the_message_limit_is_invalid_argument_naming_the_ways_out(pool: WorkerPool) -> None:
    editor = flow(FakeParser(), FakeInpainter(), pool, max_response_bytes=2000)
    result = failure(editor, request(["l_lip"], return_masks=True))
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "above this server's 2000-byte message limit" in result.message and "JPEG or WebP" in result.message


def test_a_stream_without_a_result_is_internal(pool: WorkerPool) -> None:
    class Silent(FakeInpainter):
        async def stream_inpaint(self, request, *, timeout_s, metadata):
            self._render(request)
            return
            yield

    result = failure(flow(FakeParser(), Silent(), pool), request(["l_lip"]), stream=True)
    assert (result.code, result.message) == (grpc.StatusCode.INTERNAL, "the inpainter's stream ended without a result")


def test_an_absent_region_is_failed_precondition_and_costs_no_inpaint(pool: WorkerPool) -> None:
    inpainter = FakeInpainter()
    result = failure(flow(FakeParser(), inpainter, pool), request(["hat"]))
    assert result.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        result.message
        == "region 'hat' covers 0.00% of face 0's frame (no pixel of it was found); at least 0.10% is required"
    )
    assert inpainter.requests == []


def test_a_bad_request_is_invalid_argument_before_any_dependency(pool: WorkerPool) -> None:
    parser = FakeParser()
    result = failure(flow(parser, FakeInpainter(), pool), request(["lipz"]))
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT and "edits[0]" in result.message
    assert parser.batches == []
