"""faceedit.v1.Inpainter over grpc.aio: thin; the work is in engine.py, the checks in requests.py.

python -m faceedit.inpainter.server --model diffusers/stable-diffusion-xl-1.0-inpainting-0.1 --device cuda
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc
import numpy as np
import torch

from faceedit.core.imageio import encode_image
from faceedit.inpainter.config import parse_args
from faceedit.inpainter.engine import DeadlineExceeded, Engine, Job, NotAdmitted, Result
from faceedit.inpainter.metrics import Metrics
from faceedit.inpainter.requests import job_from_request
from faceedit.rpc.logs import RequestLog, configure_logging
from faceedit.rpc.messages import to_raw
from faceedit.rpc.serving import (
    RETRY_AFTER,
    CallError,
    Failure,
    answer,
    answer_stream,
    classify_core,
    offloaded_service,
    return_large_buffers_to_the_os,
    start_service,
    stop_event_on_signals,
    stream_events,
)
from faceedit.rpc.tracing import (
    REQUEST_ID_METADATA,
    configure_tracing,
    current_trace_id,
    record_spans,
    server_interceptors,
    shutdown_tracing,
    spans_ending_at,
)
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import inpainter_pb2, inpainter_pb2_grpc, types_pb2

log = logging.getLogger("faceedit.inpainter")
DESCRIPTOR = inpainter_pb2.DESCRIPTOR.services_by_name["Inpainter"]


def classify(exc: Exception, method: str) -> Failure:
    if isinstance(exc, NotAdmitted):
        refusal = exc.refusal
        if refusal.overload:
            return Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message, ((RETRY_AFTER, str(refusal.retry_after_ms)),)
            )
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, refusal.message)
    if isinstance(exc, DeadlineExceeded):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
    return classify_core(exc, method)


def response_for(job: Job, result: Result, started: float) -> inpainter_pb2.InpaintResponse:
    x0, y0, x1, y1 = result.frame.box
    total_ms = (time.monotonic() - started) * 1000
    response = inpainter_pb2.InpaintResponse(
        seed=job.seed,
        negative_prompt=job.negative_prompt,
        cropped=result.frame.cropped,
        crop_box=types_pb2.BoundingBox(x0=x0, y0=y0, x1=x1, y1=y1),
        steps_run=result.steps_run,
        timings=types_pb2.StageTimings(
            queue_ms=result.queue_ms,
            denoise_ms=result.denoise_ms,
            composite_ms=result.composite_ms,
            inpaint_ms=total_ms,
            total_ms=total_ms,
        ),
    )
    to_raw(result.image, into=response.image)
    return response


def progress_event(step: int, total: int, elapsed_ms: float, preview: np.ndarray | None) -> inpainter_pb2.InpaintEvent:
    progress = inpainter_pb2.InpaintProgress(step=step, total_steps=total, elapsed_ms=elapsed_ms)
    if preview is not None:
        progress.preview.CopyFrom(
            types_pb2.EncodedImage(
                data=encode_image(preview),
                format=types_pb2.IMAGE_FORMAT_PNG,
                width=preview.shape[1],
                height=preview.shape[0],
            )
        )
    return inpainter_pb2.InpaintEvent(progress=progress)


class InpainterService(inpainter_pb2_grpc.InpainterServicer):
    def __init__(self, metrics: Metrics, pool: WorkerPool) -> None:
        self.engine: Engine | None = None
        self.metrics = metrics
        self.pool = pool

    @staticmethod
    def _record(method: str, request, context) -> RequestLog:
        """The call's log line: the caller's request id (the orchestrator's x-request-id), else the trace id."""
        given = dict(context.invocation_metadata() or ()).get(REQUEST_ID_METADATA)
        request_id = str(given)[:128] if given else current_trace_id() or ""
        return RequestLog(method, request_id, [request.attribute] if request.attribute else [])

    async def _inpaint(
        self, request, context, job_hook: Callable[[Job], None] | None = None, record: RequestLog | None = None
    ):
        started = time.monotonic()
        if self.engine is None:
            raise CallError(
                Failure(grpc.StatusCode.UNAVAILABLE, "the inpainter is still loading or warming up; retry shortly")
            )
        self.metrics.received_bytes.observe(request.ByteSize())
        job = await self.pool.run(job_from_request, request)
        remaining = context.time_remaining()
        job.deadline = None if remaining is None else started + remaining
        if job_hook is not None:
            job_hook(job)
        result = await self.engine.submit(job)
        # The pipeline thread holds no span: its queue wait and run are laid on the trace from the engine's clocks.
        record_spans(
            spans_ending_at(
                time.time_ns(),
                (("queue", result.queue_ms), ("denoise", result.denoise_ms), ("composite", result.composite_ms)),
            )
        )
        if result.denoise_ms > 0:
            self.metrics.steps_per_second.set(result.steps_run / (result.denoise_ms / 1000))
        response = await self.pool.run(response_for, job, result, started)
        if record is not None:
            record.timings = response.timings
            record.extra["steps"] = result.steps_run
        return response

    async def Inpaint(self, request, context) -> inpainter_pb2.InpaintResponse:
        record = self._record("Inpaint", request, context)
        return await answer(
            context,
            "Inpaint",
            lambda: self._inpaint(request, context, record=record),
            observe=record.observer(self.metrics.observe),
            classify=classify,
        )

    async def StreamInpaint(self, request, context) -> AsyncIterator[inpainter_pb2.InpaintEvent]:
        loop = asyncio.get_running_loop()
        record = self._record("StreamInpaint", request, context)

        async def work(emit) -> None:
            def hook(job: Job) -> None:
                # Called on the pipeline thread; the event goes to the loop's thread.
                job.on_step = lambda *step: loop.call_soon_threadsafe(emit, progress_event(*step))

            response = await self._inpaint(request, context, hook, record)
            emit(inpainter_pb2.InpaintEvent(result=response))

        events = stream_events(work)
        async for event in answer_stream(
            context, "StreamInpaint", events, observe=record.observer(self.metrics.observe), classify=classify
        ):
            yield event


async def serve(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format, libraries=("transformers", "diffusers"))
    # Imported once logs are set up: diffusers and transformers log while they load.
    from faceedit.inpainter.pipeline import PipelineOptions, load_pipeline

    tracer_provider = configure_tracing(args.tracing, "faceedit-inpainter")
    metrics = Metrics(args.queue_size)
    pool = WorkerPool(args.workers)
    service = InpainterService(metrics, pool)
    running, metrics_port = await start_service(
        lambda s: s.add_generic_rpc_handlers((offloaded_service(DESCRIPTOR, service, pool),)),
        DESCRIPTOR.full_name,
        args,
        metrics.registry,
        interceptors=server_interceptors(args.tracing),
    )
    log.info(
        "inpainter listening on %s:%d (%s; health port %s, metrics port %s); loading %s",
        args.host,
        running.port,
        ("mTLS" if args.tls_client_ca else "TLS") if args.tls_cert else "plaintext",
        running.health_port,
        metrics_port,
        args.model,
    )
    stop = stop_event_on_signals()
    options = PipelineOptions(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        vae=args.vae,
        revision=args.revision,
        vae_revision=args.vae_revision,
        variant=args.variant,
        attention_slicing=args.attention_slicing,
        vae_slicing=args.vae_slicing,
        compile=args.compile,
        cpu_offload=args.cpu_offload,
    )

    def load() -> Engine:
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        engine = Engine(
            load_pipeline(options),
            working_size=args.working_size,
            min_crop_size=args.min_crop_size,
            canvas_mode=args.canvas_mode,
            queue_size=args.queue_size,
            prompt_cache_size=args.prompt_cache_size,
            max_queue_wait_s=args.max_queue_wait,
            on_denoise_step=metrics.steps.inc,
            on_queue_depth=metrics.queue_depth.set,
            on_queue_wait=metrics.queue_wait.observe,
        )
        engine.warm_up()
        return engine

    loader = asyncio.ensure_future(asyncio.to_thread(load))
    await asyncio.wait({loader, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if loader.done():
        service.engine = loader.result()
        metrics.estimated_wait.set_function(service.engine.estimated_wait)
        await running.set_serving(True)
        log.info("inpainter SERVING on port %d", running.port)
        await stop.wait()
    pending = service.engine.pending if service.engine is not None else 0
    log.info("draining: NOT_SERVING, %d jobs running or queued, up to %.0f s to finish them", pending, args.drain_grace)
    started = time.monotonic()
    await running.drain(args.drain_grace)
    left = service.engine.pending if service.engine is not None else 0
    log.info("drained in %.1f s: %d jobs finished, %d cut off", time.monotonic() - started, pending - left, left)
    if service.engine is not None:
        service.engine.close()
    pool.close()
    shutdown_tracing(tracer_provider)


def main(argv: list[str] | None = None) -> None:
    return_large_buffers_to_the_os()
    asyncio.run(serve(argv))


if __name__ == "__main__":
    main()
