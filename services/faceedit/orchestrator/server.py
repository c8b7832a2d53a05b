"""faceedit.v1.FaceEditor over grpc.aio. Thin: the cascade is in flow.py, validation in plan.py.

python -m faceedit.orchestrator.server --parser-url triton:8001 --inpainter-address inpainter:50052
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace

from faceedit.core.knobs import DEFAULT_GUIDANCE, DEFAULT_SEED, DEFAULT_STEPS
from faceedit.core.prompts import BASE_NEGATIVE, NEGATIVE_VOCABULARY
from faceedit.core.taxonomy import ATTRIBUTES, CLASS_NAMES, default_strength
from faceedit.orchestrator.config import parse_args
from faceedit.orchestrator.dependencies import GrpcInpainter
from faceedit.orchestrator.errors import classify
from faceedit.orchestrator.flow import EditFlow
from faceedit.orchestrator.metrics import Metrics
from faceedit.orchestrator.parser_client import ParserClient
from faceedit.rpc.auth import BearerAuthInterceptor, TokenStore
from faceedit.rpc.channels import INPAINTER_SERVICE, OffloadedStub, dial
from faceedit.rpc.logs import RequestLog, configure_logging
from faceedit.rpc.serving import (
    CallError,
    Failure,
    RunningServer,
    answer,
    answer_stream,
    offloaded_service,
    return_large_buffers_to_the_os,
    start_service,
    stop_event_on_signals,
    stream_events,
)
from faceedit.rpc.tls import channel_tls
from faceedit.rpc.tracing import (
    REQUEST_ID_ATTRIBUTE,
    configure_tracing,
    current_trace_id,
    server_interceptors,
    shutdown_tracing,
)
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, inpainter_pb2

log = logging.getLogger("faceedit.orchestrator")
DESCRIPTOR = fe.DESCRIPTOR.services_by_name["FaceEditor"]
T = TypeVar("T")


class Admission:
    """At most `limit` calls in flight; the next is refused before its image is decoded (each call holds its
    decoded photo, mask and labels: ~5 bytes a pixel, 60 MB at 12 MP)."""

    def __init__(self, limit: int, on_change: Callable[[int], None]) -> None:
        self.limit = limit
        self.in_flight = 0
        self._on_change = on_change

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        if self.in_flight >= self.limit:
            raise CallError(
                Failure(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the orchestrator is serving its maximum of {self.limit} requests; retry shortly or add "
                    "orchestrator replicas",
                )
            )
        self.in_flight += 1
        self._on_change(self.in_flight)
        try:
            return await work()
        finally:
            self.in_flight -= 1
            self._on_change(self.in_flight)


def edited_regions(request: fe.EditFaceRequest) -> list[str]:
    """What each edit of a request asks to change, for its log line: the attribute, else the mask's classes
    joined by '+'. Caller-supplied text, so cut short and kept printable (a text log line stays one line)."""
    regions = []
    for edit in request.edits:
        name = edit.attribute or "+".join(str(c) for c in edit.mask.classes) or "?"
        regions.append("".join(c if c.isprintable() else "?" for c in name[:64]))
    return regions


class FaceEditorService(face_editor_pb2_grpc.FaceEditorServicer):
    def __init__(self, flow: EditFlow, metrics: Metrics, admission: Admission) -> None:
        self.flow = flow
        self.metrics = metrics
        self.admission = admission

    def _answer(self, context, method: str, work: Callable[[], Awaitable[T]], record: RequestLog) -> Awaitable[T]:
        return answer(
            context,
            method,
            lambda: self.admission.run(work),
            observe=record.observer(self.metrics.observe),
            classify=classify,
        )

    @staticmethod
    def _with_id(request: fe.EditFaceRequest) -> fe.EditFaceRequest:
        """A caller's request_id is kept (and recorded on the trace); an empty one becomes the trace's id when
        tracing is on, so a response or log line leads straight to its trace, else a random uuid4 hex."""
        if request.request_id:
            trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request.request_id)
        else:
            request.request_id = current_trace_id() or uuid.uuid4().hex
        return request

    async def EditFace(self, request, context) -> fe.EditFaceResponse:
        request = self._with_id(request)
        record = RequestLog("EditFace", request.request_id, edited_regions(request))

        async def work() -> fe.EditFaceResponse:
            response = await self.flow.run(request, self.flow.call(request.request_id, context.time_remaining()))
            self.metrics.observe_stages(response)
            record.timings = response.timings
            return response

        return await self._answer(context, "EditFace", work, record)

    async def StreamEditFace(self, request, context) -> AsyncIterator[fe.EditFaceEvent]:
        request = self._with_id(request)
        record = RequestLog("StreamEditFace", request.request_id, edited_regions(request))

        async def work(emit) -> None:
            async def send(event: fe.EditFaceEvent) -> None:
                emit(event)

            async def edit() -> None:
                call = self.flow.call(request.request_id, context.time_remaining(), send)
                response = await self.flow.run(request, call)
                self.metrics.observe_stages(response)
                record.timings = response.timings
                emit(fe.EditFaceEvent(result=response))

            await self.admission.run(edit)

        events = stream_events(work)
        async for event in answer_stream(
            context, "StreamEditFace", events, observe=record.observer(self.metrics.observe), classify=classify
        ):
            yield event

    async def ParseFace(self, request, context) -> fe.ParseFaceResponse:
        record = RequestLog("ParseFace", current_trace_id() or uuid.uuid4().hex)

        async def work() -> fe.ParseFaceResponse:
            response = await self.flow.parse_face(request, self.flow.call(record.request_id, context.time_remaining()))
            record.timings = response.timings
            return response

        return await self._answer(context, "ParseFace", work, record)

    async def ListAttributes(self, request, context) -> fe.ListAttributesResponse:
        return fe.ListAttributesResponse(
            attributes=[
                fe.AttributeInfo(
                    name=name,
                    class_ids=ids,
                    class_names=[CLASS_NAMES[i] for i in ids],
                    default_strength=default_strength(name),
                    negative_vocabulary=NEGATIVE_VOCABULARY.get(name, ""),
                )
                for name, ids in ATTRIBUTES.items()
            ],
            classes=[fe.FaceClass(id=i, name=n) for i, n in enumerate(CLASS_NAMES)],
            default_guidance_scale=DEFAULT_GUIDANCE,
            default_num_inference_steps=DEFAULT_STEPS,
            default_seed=DEFAULT_SEED,
            base_negative_prompt=BASE_NEGATIVE,
        )


async def dependencies_ready(parser: ParserClient, inpainter_health: health_pb2_grpc.HealthStub) -> bool:
    """The inpainter reports SERVING and the parser's model is ready. A failure to ask counts as not ready: the
    watcher must outlive any error a dependency can produce."""
    try:
        reply = await inpainter_health.Check(health_pb2.HealthCheckRequest(service=INPAINTER_SERVICE), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.SERVING and await parser.is_ready()
    except Exception as exc:
        log.debug("dependency check failed: %r", exc)
        return False


async def watch_dependencies(
    running: RunningServer, parser: ParserClient, inpainter_channel: grpc.aio.Channel, interval_s: float
) -> None:
    """SERVING only while the parser's model and the inpainter both report ready."""
    health = health_pb2_grpc.HealthStub(inpainter_channel)
    serving: bool | None = None
    while True:
        ready = await dependencies_ready(parser, health)
        if ready != serving:
            log.info("dependencies %s: parser+inpainter", "ready" if ready else "NOT ready")
            await running.set_serving(ready)
            serving = ready
        await asyncio.sleep(interval_s)


def authentication(args, metrics: Metrics) -> list[grpc.aio.ServerInterceptor]:
    """The bearer-token check in front of every FaceEditor method when --auth-tokens names a file."""
    if args.auth_tokens is None:
        return []
    tokens = TokenStore(args.auth_tokens)
    return [BearerAuthInterceptor(tokens, on_reject=lambda method, reason: metrics.rejected(method, reason))]


async def serve(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    tracer_provider = configure_tracing(args.tracing, "faceedit-orchestrator")
    downstream = channel_tls(args.downstream_ca, args.downstream_cert, args.downstream_key)
    parser = ParserClient(
        args.parser_url,
        model_name=args.parser_model_name,
        input_size=args.parser_size,
        retries=args.parser_retries,
        tls=downstream,
    )
    channel = dial(
        args.inpainter_address,
        tls=downstream,
        retry_services=(INPAINTER_SERVICE,),
        retries=args.inpainter_retries,
        health_service=INPAINTER_SERVICE,
    )
    pool = WorkerPool(args.workers)
    stub = OffloadedStub(channel, inpainter_pb2.DESCRIPTOR.services_by_name["Inpainter"], pool)
    flow = EditFlow(
        parser,
        GrpcInpainter(stub, args.inpainter_address),
        pool,
        working_size=args.working_size,
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
        max_response_bytes=args.max_message_bytes,
        default_timeout_s=args.timeout,
        max_faces=args.max_faces,
        roll_threshold=args.roll_threshold,
    )
    metrics = Metrics(args.max_in_flight)
    service = FaceEditorService(flow, metrics, Admission(args.max_in_flight, metrics.in_flight.set))
    running, metrics_port = await start_service(
        lambda s: s.add_generic_rpc_handlers((offloaded_service(DESCRIPTOR, service, pool),)),
        DESCRIPTOR.full_name,
        args,
        metrics.registry,
        interceptors=[*server_interceptors(args.tracing), *authentication(args, metrics)],
    )
    log.info(
        "orchestrator listening on %s:%d (%s; health port %s, metrics %s); parser %s, inpainter %s",
        args.host,
        running.port,
        "TLS" if args.tls_cert else "plaintext",
        running.health_port,
        metrics_port,
        args.parser_url,
        args.inpainter_address,
    )
    stop = stop_event_on_signals()
    watcher = asyncio.ensure_future(watch_dependencies(running, parser, channel, args.health_interval))
    await stop.wait()
    watcher.cancel()
    log.info("draining: NOT_SERVING, up to %.0f s for the calls in flight", args.drain_grace)
    await running.drain(args.drain_grace)
    await parser.close()
    await channel.close()
    pool.close()
    shutdown_tracing(tracer_provider)


def main(argv: list[str] | None = None) -> None:
    return_large_buffers_to_the_os()
    asyncio.run(serve(argv))


if __name__ == "__main__":
    main()
