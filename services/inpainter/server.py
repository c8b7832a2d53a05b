"""faceedit.v1.Inpainter over grpc.aio: thin; the work is in engine.py, the checks in requests.py.

python -m faceedit.inpainter.server --model diffusers/stable-diffusion-xl-1.0-inpainting-0.1 --device cuda
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from faceedit.core.errors import FaceEditError
from faceedit.core.imageio import encode_image
from faceedit.inpainter.config import parse_args
from faceedit.inpainter.engine import DeadlineExceeded, Engine, Job, QueueFullError, Result
from faceedit.inpainter.pipeline import PipelineOptions, load_pipeline
from faceedit.inpainter.requests import job_from_request
from faceedit.rawimage import to_raw
from faceedit.serving import abort_with, start_service, stop_event_on_signals
from faceedit.v1 import inpainter_pb2, inpainter_pb2_grpc, types_pb2

log = logging.getLogger("faceedit.inpainter")
SERVICE = inpainter_pb2.DESCRIPTOR.services_by_name["Inpainter"].full_name


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceedit_inpainter_requests",
            "Inpaint calls by method and gRPC code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "faceedit_inpainter_latency_seconds",
            "Inpaint call latency",
            ["method"],
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.queue_depth = Gauge("faceedit_inpainter_queue_depth", "Requests waiting", registry=self.registry)
        self.steps = Counter("faceedit_inpainter_denoise_steps", "Denoising steps run", registry=self.registry)
        self.steps_per_second = Gauge(
            "faceedit_inpainter_steps_per_second", "Denoising speed of the last request", registry=self.registry
        )


class InpainterService(inpainter_pb2_grpc.InpainterServicer):
    def __init__(self, metrics: Metrics) -> None:
        self.engine: Engine | None = None
        self.metrics = metrics

    def _response(self, job: Job, result: Result, started: float) -> inpainter_pb2.InpaintResponse:
        x0, y0, x1, y1 = result.frame.box
        total_ms = (time.monotonic() - started) * 1000
        if result.denoise_ms > 0:
            self.metrics.steps_per_second.set(result.steps_run / (result.denoise_ms / 1000))
        return inpainter_pb2.InpaintResponse(
            image=to_raw(result.image),
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

    async def _run(self, method: str, request, context, job_hook=None) -> inpainter_pb2.InpaintResponse:
        started = time.monotonic()
        code = grpc.StatusCode.OK
        try:
            if self.engine is None:
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, "the inpainter is still loading or warming up its pipeline; retry shortly")
            try:
                job = job_from_request(request)
            except FaceEditError as exc:
                code = grpc.StatusCode.INVALID_ARGUMENT
                await abort_with(context, exc)
            remaining = context.time_remaining()
            job.deadline = None if remaining is None else started + remaining
            if job_hook is not None:
                job_hook(job)
            try:
                result = await self.engine.submit(job)
            except QueueFullError as exc:
                code = grpc.StatusCode.RESOURCE_EXHAUSTED
                context.set_trailing_metadata((("retry-after-ms", str(exc.retry_after_ms)),))
                await context.abort(code, str(exc))
            except DeadlineExceeded as exc:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                await context.abort(code, str(exc))
            return self._response(job, result, started)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            if code == grpc.StatusCode.OK:
                code = grpc.StatusCode.INTERNAL
                log.exception("inpainting failed")
                await context.abort(code, f"inpainting failed: {exc}")
            raise
        finally:
            self.metrics.requests.labels(method, code.name).inc()
            self.metrics.latency.labels(method).observe(time.monotonic() - started)

    async def Inpaint(self, request, context) -> inpainter_pb2.InpaintResponse:
        return await self._run("Inpaint", request, context)

    async def StreamInpaint(self, request, context) -> AsyncIterator[inpainter_pb2.InpaintEvent]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_step(step: int, total: int, elapsed_ms: float, preview: np.ndarray | None) -> None:
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
            loop.call_soon_threadsafe(events.put_nowait, inpainter_pb2.InpaintEvent(progress=progress))

        def hook(job: Job) -> None:
            job.on_step = on_step

        task = asyncio.ensure_future(self._run("StreamInpaint", request, context, hook))
        try:
            while not task.done():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            while not events.empty():
                yield events.get_nowait()
            yield inpainter_pb2.InpaintEvent(result=task.result())
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def serve(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    metrics = Metrics()
    service = InpainterService(metrics)
    running, metrics_port = await start_service(
        lambda s: inpainter_pb2_grpc.add_InpainterServicer_to_server(service, s), SERVICE, args, metrics.registry
    )
    log.info(
        "inpainter listening on %s:%d (metrics port %s); loading %s", args.host, running.port, metrics_port, args.model
    )
    stop = stop_event_on_signals()
    options = PipelineOptions(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        vae=args.vae,
        attention_slicing=args.attention_slicing,
        vae_slicing=args.vae_slicing,
        compile=args.compile,
        cpu_offload=args.cpu_offload,
    )

    def load() -> Engine:
        engine = Engine(
            load_pipeline(options),
            working_size=args.working_size,
            min_crop_size=args.min_crop_size,
            queue_size=args.queue_size,
            prompt_cache_size=args.prompt_cache_size,
            on_denoise_step=metrics.steps.inc,
            on_queue_depth=metrics.queue_depth.set,
        )
        engine.warm_up()
        return engine

    loader = asyncio.ensure_future(asyncio.to_thread(load))
    await asyncio.wait({loader, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if loader.done():
        service.engine = loader.result()
        await running.set_serving(True)
        log.info("inpainter SERVING on port %d", running.port)
        await stop.wait()
    await running.set_serving(False)
    await running.server.stop(grace=5)
    if service.engine is not None:
        service.engine.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(argv))


if __name__ == "__main__":
    main()
