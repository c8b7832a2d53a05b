"""faceedit.v1.FaceEditor over grpc.aio. Thin: the cascade is in flow.py, validation in plan.py.

python -m faceedit.orchestrator.server --parser-url triton:8001 --inpainter-address inpainter:50052
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceedit.core.errors import FaceEditError
from faceedit.core.knobs import DEFAULT_GUIDANCE, DEFAULT_SEED, DEFAULT_STEPS
from faceedit.core.prompts import BASE_NEGATIVE, NEGATIVE_VOCABULARY
from faceedit.core.taxonomy import ATTRIBUTES, CLASS_NAMES, default_strength
from faceedit.core.viz import colorize, coverage_by_class
from faceedit.orchestrator.config import parse_args
from faceedit.orchestrator.flow import Deadline, DownstreamError, EditFlow, encoded
from faceedit.orchestrator.metrics import Metrics
from faceedit.parser.client import ParserClient, ParserError, ParserUnavailableError
from faceedit.serving import RunningServer, channel_options, start_service, status_for, stop_event_on_signals
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, inpainter_pb2_grpc

log = logging.getLogger("faceedit.orchestrator")
SERVICE = fe.DESCRIPTOR.services_by_name["FaceEditor"].full_name


def error_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, DownstreamError):
        return exc.code, str(exc)
    if isinstance(exc, ParserUnavailableError):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, ParserError):
        return grpc.StatusCode.INTERNAL, str(exc)
    return status_for(exc), str(exc)


class FaceEditorService(face_editor_pb2_grpc.FaceEditorServicer):
    def __init__(self, flow: EditFlow, metrics: Metrics) -> None:
        self.flow = flow
        self.metrics = metrics

    async def _call(self, method: str, context, work):
        """Run work(); map every failure to a precise status; count it."""
        started = time.monotonic()
        code = grpc.StatusCode.OK
        try:
            return await work()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except (FaceEditError, ParserError, DownstreamError) as exc:
            code, message = error_status(exc)
            if isinstance(exc, DownstreamError) and exc.trailers:
                context.set_trailing_metadata(exc.trailers)
            await context.abort(code, message)
        except Exception as exc:
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", method)
            await context.abort(code, f"{method} failed: {exc}")
        finally:
            self.metrics.requests.labels(method, code.name).inc()
            self.metrics.latency.labels(method).observe(time.monotonic() - started)

    @staticmethod
    def _with_id(request: fe.EditFaceRequest) -> fe.EditFaceRequest:
        if not request.request_id:
            request.request_id = uuid.uuid4().hex
        return request

    async def EditFace(self, request, context) -> fe.EditFaceResponse:
        request = self._with_id(request)

        async def work() -> fe.EditFaceResponse:
            response = await self.flow.run(request, context.time_remaining())
            self.metrics.observe_stages(response)
            return response

        return await self._call("EditFace", context, work)

    async def StreamEditFace(self, request, context) -> AsyncIterator[fe.EditFaceEvent]:
        request = self._with_id(request)
        events: asyncio.Queue = asyncio.Queue()

        async def emit(event: fe.EditFaceEvent) -> None:
            await events.put(event)

        async def work() -> None:
            response = await self.flow.run(request, context.time_remaining(), emit)
            self.metrics.observe_stages(response)
            await events.put(fe.EditFaceEvent(result=response))

        task = asyncio.ensure_future(self._call("StreamEditFace", context, work))
        try:
            while True:
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                yield getter.result()
            while not events.empty():
                yield events.get_nowait()
            task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def ParseFace(self, request, context) -> fe.ParseFaceResponse:
        async def work() -> fe.ParseFaceResponse:
            started = time.monotonic()
            image = self.flow.decode(request.image.data)
            decoded = time.monotonic()
            labels = await self.flow.parse(image, Deadline(context.time_remaining(), self.flow.default_timeout_s))
            parsed = time.monotonic()
            rows = coverage_by_class(labels)
            present = {class_id for class_id, *_ in rows}
            response = fe.ParseFaceResponse(
                labels=encoded(labels),
                parse_map=encoded(colorize(labels)),
                coverage=[fe.ClassCoverage(class_id=i, name=n, fraction=f, pixels=p) for i, n, f, p in rows],
                attributes_present=[a for a, ids in ATTRIBUTES.items() if present & set(ids)],
            )
            response.timings.decode_ms = (decoded - started) * 1000
            response.timings.parse_ms = (parsed - decoded) * 1000
            response.timings.encode_ms = (time.monotonic() - parsed) * 1000
            response.timings.total_ms = (time.monotonic() - started) * 1000
            return response

        return await self._call("ParseFace", context, work)

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
        reply = await inpainter_health.Check(health_pb2.HealthCheckRequest(service="faceedit.v1.Inpainter"), timeout=2)
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


async def serve(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = ParserClient(
        args.parser_url,
        model_name=args.parser_model_name,
        input_size=args.parser_size,
        retries=args.parser_retries,
        max_message_bytes=args.max_message_bytes,
    )
    channel = grpc.aio.insecure_channel(args.inpainter_address, options=channel_options(args.max_message_bytes))
    flow = EditFlow(
        parser,
        inpainter_pb2_grpc.InpainterStub(channel),
        inpainter_address=args.inpainter_address,
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
        default_timeout_s=args.timeout,
    )
    metrics = Metrics()
    service = FaceEditorService(flow, metrics)
    running, metrics_port = await start_service(
        lambda s: face_editor_pb2_grpc.add_FaceEditorServicer_to_server(service, s), SERVICE, args, metrics.registry
    )
    log.info(
        "orchestrator listening on %s:%d (metrics %s); parser %s, inpainter %s",
        args.host,
        running.port,
        metrics_port,
        args.parser_url,
        args.inpainter_address,
    )
    stop = stop_event_on_signals()
    watcher = asyncio.ensure_future(watch_dependencies(running, parser, channel, args.health_interval))
    await stop.wait()
    watcher.cancel()
    await running.set_serving(False)
    await running.server.stop(grace=5)
    await parser.close()
    await channel.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(argv))


if __name__ == "__main__":
    main()
