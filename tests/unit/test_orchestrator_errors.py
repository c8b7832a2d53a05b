"""How the orchestrator maps failures to the status a caller sees, its deadline arithmetic and its metrics."""

from __future__ import annotations

import grpc
import pytest

from faceedit.core.errors import CoverageError, ImageError, UnknownNameError
from faceedit.orchestrator.call import Deadline
from faceedit.orchestrator.dependencies import GrpcInpainter
from faceedit.orchestrator.errors import DeadlinePassedError, classify
from faceedit.orchestrator.metrics import STAGES, Metrics
from faceedit.orchestrator.parser_client import ParserError, ParserUnavailableError
from faceedit.rpc.serving import CallError, Failure
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2

ADDRESS = "inpainter:50052"


def _rpc_error(code: grpc.StatusCode, details: str, trailers: tuple = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details)


class _Error:
    """The status and message a caller sees for an Inpaint call that failed with exc, as the real client
    (GrpcInpainter) reports the failure and classify maps it."""

    def __init__(self, exc: grpc.aio.AioRpcError) -> None:
        failure = classify(GrpcInpainter(None, ADDRESS)._failed(exc), "EditFace")
        self.code, self.message, self.trailers = failure.code, failure.message, failure.trailers

    def __str__(self) -> str:
        return self.message


def inpainter_error(exc: grpc.aio.AioRpcError, address: str) -> _Error:
    assert address == ADDRESS
    return _Error(exc)


def test_inpainter_unavailable_names_its_address() -> None:
    error = inpainter_error(_rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"), ADDRESS)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert str(error) == f"inpainter at {ADDRESS} is unavailable: connection refused"


def test_full_inpainter_queue_passes_through_with_its_retry_hint() -> None:
    exc = _rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "inpainting queue is full; retry later",
        (("retry-after-ms", "1500"), ("internal-detail", "x")),
    )
    error = inpainter_error(exc, ADDRESS)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue is full" in str(error)
    assert error.trailers == (("retry-after-ms", "1500"),)


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED]
)
def test_caller_relevant_inpainter_codes_pass_through(code: grpc.StatusCode) -> None:
    error = inpainter_error(_rpc_error(code, "why"), ADDRESS)
    assert (error.code, str(error), error.trailers) == (code, "inpainter: why", ())


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNKNOWN])
def test_other_inpainter_failures_are_internal_and_keep_the_original_code(code: grpc.StatusCode) -> None:
    error = inpainter_error(_rpc_error(code, "boom"), ADDRESS)
    assert error.code == grpc.StatusCode.INTERNAL and str(error) == f"inpainter failed ({code.name}): boom"


@pytest.mark.parametrize(
    "exc,code",
    [
        (ParserUnavailableError("face parser at triton:8001 is unavailable"), grpc.StatusCode.UNAVAILABLE),
        (ParserError("face parser returned nothing"), grpc.StatusCode.INTERNAL),
        (CoverageError("lips", 0.0002, 0.001, 1.0), grpc.StatusCode.FAILED_PRECONDITION),
        (UnknownNameError("unknown attribute 'x'"), grpc.StatusCode.INVALID_ARGUMENT),
        (ImageError("bytes are not a recognised image"), grpc.StatusCode.INVALID_ARGUMENT),
        (CallError(Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_error_status(exc: Exception, code: grpc.StatusCode) -> None:
    failure = classify(exc, "EditFace")
    assert (failure.code, failure.message) == (code, str(exc))


def test_unexpected_errors_are_internal_and_say_which_call_failed() -> None:
    failure = classify(KeyError("boom"), "EditFace")
    assert failure.code == grpc.StatusCode.INTERNAL and failure.message == "EditFace failed: 'boom'"


def test_coverage_error_message_names_attribute_and_coverage() -> None:
    message = classify(CoverageError("lips", 0.0002, 0.001, 1.0), "EditFace").message
    assert message == "region 'lips' covers 0.02% of the image; at least 0.10% is required"


def test_a_transport_size_limit_is_internal_never_overload() -> None:
    """gRPC reports its own message-size limit as RESOURCE_EXHAUSTED, without the inpainter's retry hint: a caller
    would retry that forever, so it is INTERNAL, naming the flag to raise."""
    exc = _rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "CLIENT: Sent message larger than max (96000063 vs. 67108864)")
    error = inpainter_error(exc, ADDRESS)
    assert error.code == grpc.StatusCode.INTERNAL and "--max-message-bytes" in str(error) and not error.trailers


def test_deadline_uses_the_callers_time_else_the_default_and_fails_once_spent() -> None:
    assert 4.0 < Deadline(5.0, 600.0).remaining() <= 5.0
    assert 599.0 < Deadline(None, 600.0).remaining() <= 600.0
    spent = Deadline(0.0, 600.0)  # a caller whose time is already used up
    with pytest.raises(DeadlinePassedError) as excinfo:
        spent.remaining()
    assert classify(excinfo.value, "EditFace").code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_metrics_observe_every_stage_of_a_response() -> None:
    metrics = Metrics(max_in_flight=16)
    timings = types_pb2.StageTimings(
        decode_ms=2, parse_ms=30, mask_ms=4, inpaint_ms=900, queue_ms=7, denoise_ms=850, composite_ms=3, encode_ms=5
    )
    metrics.observe_stages(fe.EditFaceResponse(timings=timings))
    for stage in STAGES:
        count = metrics.registry.get_sample_value("faceedit_stage_seconds_count", {"stage": stage})
        total = metrics.registry.get_sample_value("faceedit_stage_seconds_sum", {"stage": stage})
        assert count == 1 and total == pytest.approx(getattr(timings, f"{stage}_ms") / 1000)
