"""Tracing and structured logs on real processes: Triton, an inpainter and an orchestrator started with --tracing
and --log-format json, exporting to a real OTLP receiver on loopback (tests/otlp.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import grpc
import numpy as np
import pytest

from faceedit.core.imageio import encode_image
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.triton import TritonServer, supports_opentelemetry
from faceedit.rpc.channels import channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.fixtures.inpainter import start_inpainter
from tests.fixtures.stack import start_orchestrator
from tests.helpers import wait_for
from tests.otlp import OtlpReceiver, ReceivedSpan

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
EDIT_FACE = "faceedit.v1.FaceEditor/EditFace"
INPAINT = "faceedit.v1.Inpainter/Inpaint"


@dataclass
class TracedStack:
    receiver: OtlpReceiver
    triton: TritonServer
    inpainter: ServiceProcess
    orchestrator: ServiceProcess
    triton_traces: bool

    def stub(self) -> face_editor_pb2_grpc.FaceEditorStub:
        channel = grpc.insecure_channel(self.orchestrator.address, options=channel_options())
        return face_editor_pb2_grpc.FaceEditorStub(channel)


@pytest.fixture(scope="module")
def traced_stack(
    parser_model: Path, tiny_inpaint_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TracedStack]:
    workdir = tmp_path_factory.mktemp("traced")
    receiver = OtlpReceiver().start()
    triton_traces = supports_opentelemetry()  # the test follows what this build can do
    triton = TritonServer(
        parser_model, workdir=workdir / "triton", trace_url=receiver.http_url if triton_traces else None
    )
    inpainter = orchestrator = None
    # Every child exports within 100 ms of a span ending, so the test waits on spans, not on a flush at exit.
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    logs = ("--tracing", "--log-format", "json")
    try:
        with mock.patch.dict(os.environ, otel):
            triton.start()
            inpainter = start_inpainter(tiny_inpaint_model, workdir, *logs)
            orchestrator = start_orchestrator(triton.grpc_url, inpainter.address, workdir, *logs)
        yield TracedStack(receiver, triton, inpainter, orchestrator, triton_traces)
    finally:
        for process in (orchestrator, inpainter):
            if process is not None:
                process.stop()
        triton.stop()
        receiver.stop()


def _portrait() -> bytes:
    return encode_image(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))


def _edit(stack: TracedStack, **fields) -> fe.EditFaceResponse:
    stub = stack.stub()
    data = _portrait()
    target = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data))).coverage[0].name
    edit = fe.Edit(prompt="curly auburn hair", num_inference_steps=2, mask=types_pb2.MaskOptions(classes=[target]))
    return stub.EditFace(fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=[edit], **fields))


def _one(spans: list[ReceivedSpan], **match) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


def test_one_edit_is_one_trace_across_the_services(traced_stack: TracedStack) -> None:
    response = _edit(traced_stack)
    trace_id = response.request_id
    assert len(trace_id) == 32 and int(trace_id, 16) != 0  # the trace's id, not a uuid4 (which has a dash-free 4)

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {s.name for s in spans if s.trace_id == trace_id}
        return {EDIT_FACE, "decode", "parse", "mask", "inpaint", "encode", INPAINT, "queue", "denoise"} <= names

    traced_stack.receiver.wait_for(complete, f"the spans of trace {trace_id}")
    spans = [s for s in traced_stack.receiver.spans if s.trace_id == trace_id]
    root = _one(spans, name=EDIT_FACE)
    assert root.service == "faceedit-orchestrator" and root.kind == SERVER and root.parent_span_id == ""
    assert root.attributes["rpc.grpc.status_code"] == 0
    for name in ("decode", "parse", "mask", "inpaint", "composite", "encode"):
        child = _one(spans, name=name, service="faceedit-orchestrator")
        assert child.parent_span_id == root.span_id, child
        assert root.start_ns <= child.start_ns <= child.end_ns <= root.end_ns
    order = sorted(
        ("decode", "parse", "mask", "inpaint", "composite", "encode"),
        key=lambda n: _one(spans, name=n, service="faceedit-orchestrator").start_ns,
    )
    assert order == ["decode", "parse", "mask", "inpaint", "composite", "encode"]
    inpaint = _one(spans, name="inpaint")
    server = _one(spans, name=INPAINT)
    assert inpaint.kind == CLIENT and server.kind == SERVER and server.service == "faceedit-inpainter"
    assert server.parent_span_id == inpaint.span_id
    queue, denoise = _one(spans, name="queue"), _one(spans, name="denoise")
    for span in (queue, denoise):
        assert span.parent_span_id == server.span_id and span.service == "faceedit-inpainter"
        assert server.start_ns <= span.start_ns <= span.end_ns <= server.end_ns
    assert queue.end_ns <= denoise.start_ns and denoise.end_ns > denoise.start_ns


def test_triton_continues_the_trace_of_the_parse_call(traced_stack: TracedStack) -> None:
    """Triton's own spans (InferRequest > face_parser > compute) where this tritonserver build exports
    OpenTelemetry; none where it cannot. Measured on the pytriton 0.7.0 build: Triton starts a new trace instead of
    continuing the caller's for 1 call in 10 to 1 in 3 (its context propagation drops the traceparent now and
    then), so a few calls are made and every InferRequest must either continue a parse span or be a new root."""
    stub = traced_stack.stub()
    before = {s.span_id for s in traced_stack.receiver.spans}
    # A ParseFace call parses the photo, then, when faces were found, their frames: one or two Triton requests.
    requests_made = 0
    for _ in range(6):
        response = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=_portrait())))
        requests_made += 1 + bool(response.faces)

    def new(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
        return [s for s in spans if s.name == name and s.span_id not in before]

    traced_stack.receiver.wait_for(lambda spans: len(new(spans, "parse")) == 6, "the orchestrator's parse spans")
    if not traced_stack.triton_traces:
        assert "--trace-config=mode=opentelemetry" not in traced_stack.triton.process.args
        assert all(s.service != "face-parser" for s in traced_stack.receiver.spans)
        return
    traced_stack.receiver.wait_for(
        lambda spans: len(new(spans, "compute")) == requests_made, f"Triton's spans of {requests_made} requests"
    )
    spans = traced_stack.receiver.spans
    parses = {s.span_id: s for s in new(spans, "parse")}
    by_id = {s.span_id: s for s in spans}
    requests = new(spans, "InferRequest")
    assert len(requests) == requests_made and all(s.service == "face-parser" and s.kind == SERVER for s in requests)
    for compute in new(spans, "compute"):
        model = by_id[compute.parent_span_id]
        assert model.name == "face_parser" and model.attributes["triton.model_name"] == "face_parser"
        assert by_id[model.parent_span_id].name == "InferRequest"
    continued = [r for r in requests if r.parent_span_id]
    for request in continued:
        parse = parses[request.parent_span_id]
        assert request.trace_id == parse.trace_id and parse.start_ns <= request.start_ns <= parse.end_ns
    assert continued, "Triton continued none of 6 traces"


def test_a_callers_request_id_is_kept_and_recorded_on_the_trace(traced_stack: TracedStack) -> None:
    response = _edit(traced_stack, request_id="caller-42")
    assert response.request_id == "caller-42"

    def tagged(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.attributes.get("faceedit.request_id") == "caller-42"]

    traced_stack.receiver.wait_for(tagged, "the EditFace span carrying the caller's request id")
    (root,) = tagged(traced_stack.receiver.spans)
    assert root.name == EDIT_FACE and root.kind == SERVER


def _request_lines(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line of a JSON log is one object
    return [e for e in entries if e.get("event") == "request"]


def test_json_logs_have_one_line_per_request_on_each_service(traced_stack: TracedStack) -> None:
    response = _edit(traced_stack)
    rid = response.request_id
    with pytest.raises(grpc.RpcError) as refused:
        traced_stack.stub().EditFace(
            fe.EditFaceRequest(
                image=types_pb2.EncodedImage(data=_portrait()), edits=[fe.Edit(attribute="hiar", prompt="x")]
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    orchestrator_log, inpainter_log = traced_stack.orchestrator.log_path, traced_stack.inpainter.log_path

    def logged(path: Path, request_id: str) -> list[dict]:
        return [e for e in _request_lines(path) if e["request_id"] == request_id]

    wait_for(lambda: len(logged(orchestrator_log, rid)) == 1, "the orchestrator's line")
    (edit,) = logged(orchestrator_log, rid)
    assert edit["method"] == "EditFace" and edit["code"] == "OK" and edit["level"] == "info"
    assert len(edit["attributes"]) == 1 and edit["trace_id"] == rid
    for stage in ("decode_ms", "parse_ms", "mask_ms", "inpaint_ms", "encode_ms", "queue_ms", "denoise_ms", "total_ms"):
        assert edit[stage] > 0, stage
    assert edit["duration_ms"] >= edit["total_ms"]
    (inpaint,) = logged(inpainter_log, rid)
    assert inpaint["method"] == "Inpaint" and inpaint["code"] == "OK" and inpaint["steps"] >= 1
    assert inpaint["denoise_ms"] > 0 and inpaint["duration_ms"] >= inpaint["denoise_ms"]

    def refusals() -> list[dict]:
        return [e for e in _request_lines(orchestrator_log) if e["attributes"] == ["hiar"]]

    # A failed call's line is written as its status goes out: it may land just after the caller has the status.
    wait_for(lambda: len(refusals()) > 0, "the refused call's line")
    bad = refusals()
    assert len(bad) == 1 and bad[0]["code"] == "INVALID_ARGUMENT" and len(bad[0]["request_id"]) == 32
