"""The orchestrator's own failures and the one place that maps them, and everything else a call can raise, to the
status its caller sees (`classify`, handed to faceedit.rpc.serving.answer)."""

from __future__ import annotations

import grpc

from faceedit.orchestrator.parser_client import ParserError, ParserUnavailableError
from faceedit.rpc.serving import RETRY_AFTER, Failure, classify_core


class FlowError(Exception):
    """Base of the failures the EditFace flow raises itself (none of them is the caller's input error)."""


class DeadlinePassedError(FlowError):
    """The call's own deadline (the caller's, else --timeout) was spent before the next step could start."""

    def __init__(self) -> None:
        super().__init__("the request's deadline passed")


class ResponseTooLargeError(FlowError):
    """The finished response does not fit this server's message limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the response would be {size} bytes, above this server's {limit}-byte message limit: ask for JPEG or "
            "WebP output, leave return_masks off, or raise --max-message-bytes (FACEEDIT_MAX_MESSAGE_BYTES) and "
            "your client's receive limit"
        )


class InpainterFailedError(FlowError):
    """An Inpaint call ended with this status (as the inpainter, or gRPC on its behalf, reported it)."""

    def __init__(
        self, code: grpc.StatusCode, details: str, address: str, trailers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.code = code
        self.details = details
        self.address = address
        self.trailers = tuple((k, v) for k, v in trailers if k == RETRY_AFTER)
        super().__init__(f"inpainter at {address} failed with {code.name}: {details}")


class NoResultError(FlowError):
    """The inpainter's stream ended OK but never sent its result."""

    def __init__(self) -> None:
        super().__init__("the inpainter's stream ended without a result")


def inpainter_failure(error: InpainterFailedError) -> Failure:
    """The status the caller sees for a failed Inpaint call. RESOURCE_EXHAUSTED passes through only as the
    inpainter's overload refusal (it carries retry-after-ms); gRPC's own "message larger than max" is a fault of
    this deployment's limits, so INTERNAL with the flag to change."""
    code, details, trailers = error.code, error.details, error.trailers
    if code == grpc.StatusCode.UNAVAILABLE:
        return Failure(code, f"inpainter at {error.address} is unavailable: {details}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not trailers:
        return Failure(
            grpc.StatusCode.INTERNAL,
            f"the request to the inpainter exceeded a gRPC message limit ({details}); raise "
            "--max-message-bytes (FACEEDIT_MAX_MESSAGE_BYTES) on the orchestrator and the inpainter",
        )
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return Failure(code, f"inpainter: {details}", trailers)
    return Failure(grpc.StatusCode.INTERNAL, f"inpainter failed ({code.name}): {details}")


# The flow's own failures by type; the first match wins (subclasses before their bases).
_STATUS = (
    (DeadlinePassedError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ResponseTooLargeError, grpc.StatusCode.INVALID_ARGUMENT),
    (NoResultError, grpc.StatusCode.INTERNAL),
    (ParserUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ParserError, grpc.StatusCode.INTERNAL),
)


def classify(exc: Exception, method: str) -> Failure:
    """Every failure of a FaceEditor call as the status its caller sees: the inpainter's by inpainter_failure, the
    flow's and the parser's by type, core errors and CallErrors as faceedit.rpc.serving maps them."""
    if isinstance(exc, InpainterFailedError):
        return inpainter_failure(exc)
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return Failure(code, str(exc))
    return classify_core(exc, method)
