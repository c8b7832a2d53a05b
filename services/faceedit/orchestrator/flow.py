"""The EditFace cascade: decode -> (parse -> mask -> inpaint the region -> paste) per edit, re-parsing the edited
image each time. EditFace and StreamEditFace run this one code path; the stream passes an `emit` callback.

The data path is bounded whatever the photo: the full frame is decoded once here and never crosses a hop. The
parser gets the letterboxed input size, the inpainter gets the edit's padded region (at most its working size)
and mask, and the render is pasted and blended back here at full resolution. CPU work runs on the worker pool;
the event loop only does I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import numpy as np
from opentelemetry.trace import SpanKind

from faceedit.core.framing import Frame, cut_region, paste_region, plan_frame
from faceedit.core.geometry import unletterbox
from faceedit.core.imageio import decode_image, encode_image, image_size
from faceedit.core.masks import build_mask, coverage
from faceedit.core.viz import colorize
from faceedit.orchestrator.parser_client import ParserClient
from faceedit.orchestrator.plan import EditPlan, plan_edits
from faceedit.rpc.channels import OffloadedStub
from faceedit.rpc.messages import FORMAT_ENUM, OUTPUT_FORMATS, from_raw, to_raw
from faceedit.rpc.serving import RETRY_AFTER, CallError, Failure
from faceedit.rpc.tracing import REQUEST_ID_METADATA, TRACER, outgoing_metadata, trace_headers
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import inpainter_pb2, types_pb2

Emit = Callable[[fe.EditFaceEvent], Awaitable[None]]


class DownstreamError(CallError):
    """A dependency failed; ends the call with the status (and trailers) the caller should see."""

    def __init__(self, code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(Failure(code, message, trailers))

    @property
    def code(self) -> grpc.StatusCode:
        return self.failure.code

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        return self.failure.trailers


def encoded(image: np.ndarray, fmt: str = "png", quality: int = 95) -> types_pb2.EncodedImage:
    return types_pb2.EncodedImage(
        data=encode_image(image, fmt, quality=quality),
        format=FORMAT_ENUM[fmt],
        width=image.shape[1],
        height=image.shape[0],
    )


def inpainter_error(exc: grpc.aio.AioRpcError, address: str) -> DownstreamError:
    """The status the caller sees for a failed Inpaint call. RESOURCE_EXHAUSTED passes through only as the
    inpainter's overload refusal (it carries retry-after-ms); gRPC's own "message larger than max" is a fault of
    this deployment's limits, so INTERNAL with the flag to change."""
    code = exc.code()
    trailers = tuple((k, v) for k, v in (exc.trailing_metadata() or ()) if k == RETRY_AFTER)
    if code == grpc.StatusCode.UNAVAILABLE:
        return DownstreamError(code, f"inpainter at {address} is unavailable: {exc.details()}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not trailers:
        return DownstreamError(
            grpc.StatusCode.INTERNAL,
            f"the request to the inpainter exceeded a gRPC message limit ({exc.details()}); raise "
            "--max-message-bytes (FACEEDIT_MAX_MESSAGE_BYTES) on the orchestrator and the inpainter",
        )
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return DownstreamError(code, f"inpainter: {exc.details()}", trailers)
    return DownstreamError(grpc.StatusCode.INTERNAL, f"inpainter failed ({code.name}): {exc.details()}")


class Deadline:
    def __init__(self, remaining_s: float | None, default_s: float) -> None:
        self.at = time.monotonic() + (remaining_s if remaining_s is not None else default_s)

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DownstreamError(grpc.StatusCode.DEADLINE_EXCEEDED, "the request's deadline passed")
        return left


class EditFlow:
    def __init__(
        self,
        parser: ParserClient,
        inpainter: OffloadedStub,
        pool: WorkerPool,
        *,
        inpainter_address: str,
        working_size: int,
        max_image_bytes: int,
        max_image_pixels: int,
        max_response_bytes: int,
        default_timeout_s: float,
    ) -> None:
        self.parser = parser
        self.inpainter = inpainter
        self.pool = pool
        self.inpainter_address = inpainter_address
        self.working_size = working_size
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.max_response_bytes = max_response_bytes
        self.default_timeout_s = default_timeout_s

    async def decode(self, data: bytes) -> np.ndarray:
        return await self.pool.run(decode_image, data, max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)

    async def parse(self, image: np.ndarray, deadline: Deadline) -> tuple[np.ndarray, float]:
        """Labels at the image's size, and the parser's own time in ms (the inference round trip: letterboxing and
        mapping back are the orchestrator's work, not the parser's)."""
        with TRACER.start_as_current_span("parse", kind=SpanKind.CLIENT) as span:
            canvas, box = await self.pool.run(self.parser.letterbox, image)
            started = time.monotonic()
            (labels,) = await self.parser.infer_raw(
                canvas[None], timeout_s=deadline.remaining(), headers=trace_headers()
            )
            parse_ms = (time.monotonic() - started) * 1000
            span.set_attribute("faceedit.parse_ms", parse_ms)
            return await self.pool.run(unletterbox, labels, box, nearest=True), parse_ms

    async def _call_inpainter(
        self, request: bytes, deadline: Deadline, index: int, started: float, emit: Emit | None, request_id: str
    ) -> inpainter_pb2.InpaintResponse:
        with TRACER.start_as_current_span("inpaint", kind=SpanKind.CLIENT):
            return await self._inpainter_call(request, deadline, index, started, emit, request_id)

    async def _inpainter_call(
        self, request: bytes, deadline: Deadline, index: int, started: float, emit: Emit | None, request_id: str
    ) -> inpainter_pb2.InpaintResponse:
        metadata = outgoing_metadata((REQUEST_ID_METADATA, request_id))
        try:
            if emit is None:
                return await self.inpainter.unary("Inpaint", request, timeout=deadline.remaining(), metadata=metadata)
            result = None
            stream = self.inpainter.stream("StreamInpaint", request, timeout=deadline.remaining(), metadata=metadata)
            async for event in stream:
                if event.HasField("progress"):
                    p = event.progress
                    await emit(
                        fe.EditFaceEvent(
                            progress=fe.DenoiseProgress(
                                edit_index=index,
                                step=p.step,
                                total_steps=p.total_steps,
                                elapsed_ms=(time.monotonic() - started) * 1000,
                            )
                        )
                    )
                else:
                    result = event.result
            if result is None:
                raise DownstreamError(grpc.StatusCode.INTERNAL, "the inpainter's stream ended without a result")
            return result
        except grpc.aio.AioRpcError as exc:
            raise inpainter_error(exc, self.inpainter_address) from None

    async def run(
        self, request: fe.EditFaceRequest, remaining_s: float | None, emit: Emit | None = None
    ) -> fe.EditFaceResponse:
        started = time.monotonic()
        deadline = Deadline(remaining_s, self.default_timeout_s)
        totals = types_pb2.StageTimings()

        async def stage(kind: int, index: int, done: bool) -> None:
            if emit is not None:
                elapsed = (time.monotonic() - started) * 1000
                await emit(
                    fe.EditFaceEvent(stage=fe.StageEvent(stage=kind, edit_index=index, done=done, elapsed_ms=elapsed))
                )

        await stage(fe.STAGE_DECODE, 0, False)
        t = time.monotonic()
        with TRACER.start_as_current_span("decode"):
            # The whole cascade is checked against the header's size before a pixel is decoded: a bad third edit
            # must not cost a 50 MP decode, let alone two inpaints.
            size = await self.pool.run(image_size, request.image.data, max_bytes=self.max_image_bytes)
            plans = await self.pool.run(plan_edits, request, size)
            current = await self.decode(request.image.data)
            if (current.shape[1], current.shape[0]) != size:  # a PNG's late eXIf turned it: check the masks again
                plans = await self.pool.run(plan_edits, request, (current.shape[1], current.shape[0]))
        totals.decode_ms = (time.monotonic() - t) * 1000
        await stage(fe.STAGE_DECODE, 0, True)

        steps = []
        for plan in plans:
            last = plan.index == len(plans) - 1
            step, current = await self._edit(
                plan, current, request.return_masks, last, deadline, started, stage, emit, request.request_id
            )
            steps.append(step)
            for name in ("parse_ms", "mask_ms", "inpaint_ms", "composite_ms", "queue_ms", "denoise_ms", "encode_ms"):
                setattr(totals, name, getattr(totals, name) + getattr(step.timings, name))
            if emit is not None:
                await emit(fe.EditFaceEvent(step=step))

        await stage(fe.STAGE_ENCODE, 0, False)
        t = time.monotonic()
        fmt = OUTPUT_FORMATS[request.output_format]
        quality = request.output_quality if request.HasField("output_quality") else 95
        with TRACER.start_as_current_span("encode"):
            image = await self.pool.run(encoded, current, fmt, quality)
        totals.encode_ms += (time.monotonic() - t) * 1000
        await stage(fe.STAGE_ENCODE, 0, True)
        totals.total_ms = (time.monotonic() - started) * 1000
        response = fe.EditFaceResponse(image=image, steps=steps, timings=totals, request_id=request.request_id)
        self._check_size(response)
        return response

    def _check_size(self, response: fe.EditFaceResponse) -> None:
        size = response.ByteSize()
        if size > self.max_response_bytes:
            raise DownstreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the response would be {size} bytes, above this server's {self.max_response_bytes}-byte message "
                "limit: ask for JPEG or WebP output, leave return_masks off, or raise --max-message-bytes "
                "(FACEEDIT_MAX_MESSAGE_BYTES) and your client's receive limit",
            )

    def _region_request(self, plan: EditPlan, current: np.ndarray, mask: np.ndarray, frame: Frame) -> bytes:
        """The Inpaint request for one edit, serialized (it is built and serialized here, on the pool): the
        frame's pixels and mask, at most the inpainter's working size."""
        edit, knobs = plan.edit, plan.knobs
        options = types_pb2.InpaintOptions()
        options.CopyFrom(edit.inpaint)
        if not frame.cropped:
            options.crop_mode = types_pb2.CROP_MODE_FULL_FRAME  # already framed here; the inpainter must not re-crop
        request = inpainter_pb2.InpaintRequest(
            prompt=plan.prompt,
            negative_prompt=edit.negative_prompt,
            strength=knobs.strength,
            guidance_scale=knobs.guidance_scale,
            num_inference_steps=knobs.steps,
            seed=knobs.seed,
            attribute=plan.attribute,
            options=options,
            precropped=frame.cropped,
            skip_composite=True,
        )
        to_raw(cut_region(current, frame, self.working_size), into=request.image)
        to_raw(cut_region(mask, frame, self.working_size), into=request.mask)
        return request.SerializeToString()

    async def _edit(
        self,
        plan: EditPlan,
        current: np.ndarray,
        return_masks: bool,
        last: bool,
        deadline: Deadline,
        started: float,
        stage,
        emit: Emit | None,
        request_id: str,
    ) -> tuple[fe.EditStepResult, np.ndarray]:
        timings = types_pb2.StageTimings()
        t0 = time.monotonic()
        await stage(fe.STAGE_PARSE, plan.index, False)
        labels, timings.parse_ms = await self.parse(current, deadline)
        await stage(fe.STAGE_PARSE, plan.index, True)
        await stage(fe.STAGE_MASK, plan.index, False)
        t1 = time.monotonic()
        with TRACER.start_as_current_span("mask", attributes={"faceedit.attribute": plan.attribute}):
            mask = await self.pool.run(
                build_mask, labels, plan.class_ids, plan.spec, extra=plan.extra_mask, attribute=plan.region
            )
        timings.mask_ms = (time.monotonic() - t1) * 1000
        await stage(fe.STAGE_MASK, plan.index, True)
        frame = await self.pool.run(plan_frame, mask, plan.frame_mode, padding=plan.knobs.crop_padding)
        request = await self.pool.run(self._region_request, plan, current, mask, frame)
        await stage(fe.STAGE_INPAINT, plan.index, False)
        t2 = time.monotonic()
        response = await self._call_inpainter(request, deadline, plan.index, started, emit, request_id)
        timings.inpaint_ms = (time.monotonic() - t2) * 1000
        del request  # the region's pixels are not needed past the hop
        await stage(fe.STAGE_INPAINT, plan.index, True)
        await stage(fe.STAGE_COMPOSITE, plan.index, False)
        t3 = time.monotonic()
        rendered = from_raw(response.image, channels=3, name="inpainter result")
        with TRACER.start_as_current_span("composite"):
            edited = await self.pool.run(paste_region, current, rendered, mask, frame)
        timings.composite_ms = (time.monotonic() - t3) * 1000
        await stage(fe.STAGE_COMPOSITE, plan.index, True)
        timings.queue_ms = response.timings.queue_ms
        timings.denoise_ms = response.timings.denoise_ms
        x0, y0, x1, y1 = frame.box
        step = fe.EditStepResult(
            index=plan.index,
            attribute=plan.attribute,
            class_ids=plan.class_ids,
            coverage=await self.pool.run(coverage, mask),
            seed=response.seed,
            negative_prompt=response.negative_prompt,
            cropped=frame.cropped,
            crop_box=types_pb2.BoundingBox(x0=x0, y0=y0, x1=x1, y1=y1),
            steps_run=response.steps_run,
        )
        if return_masks:
            t4 = time.monotonic()
            # The step's images encode side by side on the pool (PNG of a 24 MP frame takes a second).
            parts = [
                self.pool.run(encoded, mask),
                self.pool.run(encoded, labels),
                self.pool.run(lambda: encoded(colorize(labels))),
            ]
            if not last:
                parts.append(self.pool.run(encoded, edited))
            with TRACER.start_as_current_span("encode"):
                images = await asyncio.gather(*parts)
            for name, image in zip(("mask", "labels", "parse_map", "image"), images, strict=False):
                getattr(step, name).CopyFrom(image)
            timings.encode_ms = (time.monotonic() - t4) * 1000
        timings.total_ms = (time.monotonic() - t0) * 1000
        step.timings.CopyFrom(timings)
        return step, edited
