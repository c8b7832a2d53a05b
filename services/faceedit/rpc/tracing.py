"""OpenTelemetry tracing for faceedit's servers: off unless --tracing (FACEEDIT_TRACING); exported over OTLP/gRPC
to wherever the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4317;
OTEL_SERVICE_NAME; OTEL_BSP_SCHEDULE_DELAY ...).

Context crosses hops as W3C `traceparent` metadata: the server interceptor here continues the caller's trace, and
client calls (Triton's infer, the inpainter's Inpaint) carry outgoing_metadata(). With tracing off the tracer is
OpenTelemetry's no-op one: spans cost a function call and nothing is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

log = logging.getLogger("faceedit.tracing")
# A proxy: it follows the provider configure_tracing installs, so modules can take it at import.
TRACER = trace.get_tracer("faceedit")
REQUEST_ID_ATTRIBUTE = "faceedit.request_id"
# Only faceedit's own methods are traced: health checks and reflection would bury the requests.
TRACED_PREFIX = "/faceedit.v1."


def configure_tracing(enabled: bool, default_service_name: str):  # -> TracerProvider | None
    """Install an SDK tracer provider exporting over OTLP/gRPC with a batch processor, when enabled. The service
    name is OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) when set, else default_service_name.
    Returns the provider, to shut down (flushing spans) when the server stops; None when disabled."""
    if not enabled:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing(provider) -> None:
    """Export the spans still buffered, then stop the exporter (at the end of a drain)."""
    if provider is not None:
        provider.shutdown()


# The request id the orchestrator passes to the inpainter, so both services' log lines name the same request.
REQUEST_ID_METADATA = "x-request-id"


def current_trace_id() -> str | None:
    """The current trace's id as 32 lowercase hex digits, or None outside a recorded trace (tracing off)."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def trace_headers() -> dict[str, str]:
    """The current span's `traceparent` (and `tracestate`) as headers (tritonclient's headers= argument)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def outgoing_metadata(*extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """The same as gRPC metadata for a call made now, plus extra."""
    return (*trace_headers().items(), *extra)


def spans_ending_at(end_ns: int, stages: Sequence[tuple[str, float]]) -> list[tuple[str, int, int]]:
    """(name, start_ns, end_ns) for consecutive stages of the given durations (ms) whose last one ends at end_ns:
    the intervals of work measured elsewhere, laid back on the clock. Negative durations count as 0."""
    intervals = []
    end = end_ns
    for name, ms in reversed(stages):
        start = end - round(max(0.0, ms) * 1e6)
        intervals.append((name, start, end))
        end = start
    return intervals[::-1]


def record_spans(intervals: Sequence[tuple[str, int, int]], **attributes: Any) -> None:
    """Children of the current span for work timed elsewhere (the inpainter's pipeline thread: it holds no span,
    so tracing can never touch the denoising loop)."""
    for name, start, end in intervals:
        TRACER.start_span(name, start_time=start, attributes=attributes or None).end(end_time=end)


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    return {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}


def _finish(span: trace.Span, context: grpc.aio.ServicerContext, failed: bool) -> None:
    code = context.code()
    if code is None:
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}".rstrip(": ")))


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span around each faceedit method (unary and server-streaming), continuing the caller's trace from
    its `traceparent` metadata, named `service/method` with the rpc.* attributes and the call's status code."""

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or not details.method.startswith(TRACED_PREFIX):
            return handler
        service, _, method = details.method[1:].rpartition("/")
        name = f"{service}/{method}"
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

        def start(details_metadata: dict[str, str]):
            parent = propagate.extract(details_metadata)
            return TRACER.start_as_current_span(
                name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )

        carrier = _metadata(details)
        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def unary(request, context):
                with start(carrier) as span:
                    try:
                        response = await behaviour(request, context)
                    except BaseException:
                        _finish(span, context, failed=True)
                        raise
                    _finish(span, context, failed=False)
                    return response

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream_behaviour = handler.unary_stream

            async def streaming(request, context):
                with start(carrier) as span:
                    try:
                        async for event in stream_behaviour(request, context):
                            yield event
                    except BaseException:
                        _finish(span, context, failed=True)
                        raise
                    _finish(span, context, failed=False)

            return grpc.unary_stream_rpc_method_handler(
                streaming,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # faceedit has no client- or bidi-streaming methods


def server_interceptors(enabled: bool) -> list[grpc.aio.ServerInterceptor]:
    """The tracing interceptor when tracing is on (first, so it also covers calls other interceptors refuse)."""
    return [TracingInterceptor()] if enabled else []
