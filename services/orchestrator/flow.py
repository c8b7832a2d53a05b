"""The EditFace cascade: decode -> (parse -> mask -> inpaint) per edit, re-parsing the edited image each time.

EditFace and StreamEditFace run this one code path; the stream passes an `emit` callback for its events.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import grpc
import numpy as np

from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.masks import build_mask, coverage
from faceedit.core.viz import colorize
from faceedit.orchestrator.plan import OUTPUT_FORMATS, EditPlan, plan_edits
from faceedit.parser.client import ParserClient
from faceedit.rawimage import from_raw, to_raw
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import inpainter_pb2, inpainter_pb2_grpc, types_pb2

Emit = Callable[[fe.EditFaceEvent], Awaitable[None]]
FORMAT_ENUM = {
    "png": types_pb2.IMAGE_FORMAT_PNG,
    "jpeg": types_pb2.IMAGE_FORMAT_JPEG,
    "webp": types_pb2.IMAGE_FORMAT_WEBP,
}


# Trailers of a downstream error worth handing to the caller (the inpainter's back-off hint on a full queue).
PASSED_TRAILERS = ("retry-after-ms",)


class DownstreamError(Exception):
    """A dependency failed; carries the status (and trailers) the caller should see."""

    def __init__(self, code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        self.code = code
        self.trailers = trailers
        super().__init__(message)


def encoded(image: np.ndarray, fmt: str = "png", quality: int = 95) -> types_pb2.EncodedImage:
    return types_pb2.EncodedImage(
        data=encode_image(image, fmt, quality=quality),
        format=FORMAT_ENUM[fmt],
        width=image.shape[1],
        height=image.shape[0],
    )


def inpainter_error(exc: grpc.aio.AioRpcError, address: str) -> DownstreamError:
    """The status the caller sees for a failed Inpaint call: the caller-relevant codes pass through."""
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return DownstreamError(code, f"inpainter at {address} is unavailable: {exc.details()}")
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        trailers = tuple((k, v) for k, v in (exc.trailing_metadata() or ()) if k in PASSED_TRAILERS)
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
        inpainter: inpainter_pb2_grpc.InpainterStub,
        *,
        inpainter_address: str,
        max_image_bytes: int,
        max_image_pixels: int,
        default_timeout_s: float,
    ) -> None:
        self.parser = parser
        self.inpainter = inpainter
        self.inpainter_address = inpainter_address
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.default_timeout_s = default_timeout_s

    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)

    async def parse(self, image: np.ndarray, deadline: Deadline) -> np.ndarray:
        return await self.parser.parse(image, timeout_s=deadline.remaining())

    async def _inpaint(
        self, request: inpainter_pb2.InpaintRequest, deadline: Deadline, index: int, started: float, emit: Emit | None
    ) -> inpainter_pb2.InpaintResponse:
        try:
            if emit is None:
                return await self.inpainter.Inpaint(request, timeout=deadline.remaining())
            result = None
            async for event in self.inpainter.StreamInpaint(request, timeout=deadline.remaining()):
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
        current = self.decode(request.image.data)
        plans = plan_edits(request, (current.shape[1], current.shape[0]))
        totals.decode_ms = (time.monotonic() - t) * 1000
        await stage(fe.STAGE_DECODE, 0, True)

        steps = []
        for plan in plans:
            step, current = await self._edit(plan, current, request.return_masks, deadline, started, stage, emit)
            steps.append(step)
            for name in ("parse_ms", "mask_ms", "inpaint_ms", "composite_ms", "queue_ms", "denoise_ms"):
                setattr(totals, name, getattr(totals, name) + getattr(step.timings, name))
            if emit is not None:
                await emit(fe.EditFaceEvent(step=step))

        await stage(fe.STAGE_ENCODE, 0, False)
        t = time.monotonic()
        fmt = OUTPUT_FORMATS[request.output_format]
        quality = request.output_quality if request.HasField("output_quality") else 95
        image = encoded(current, fmt, quality)
        totals.encode_ms = (time.monotonic() - t) * 1000
        await stage(fe.STAGE_ENCODE, 0, True)
        totals.total_ms = (time.monotonic() - started) * 1000
        return fe.EditFaceResponse(image=image, steps=steps, timings=totals, request_id=request.request_id)

    async def _edit(
        self,
        plan: EditPlan,
        current: np.ndarray,
        return_masks: bool,
        deadline: Deadline,
        started: float,
        stage,
        emit: Emit | None,
    ) -> tuple[fe.EditStepResult, np.ndarray]:
        timings = types_pb2.StageTimings()
        t0 = time.monotonic()
        await stage(fe.STAGE_PARSE, plan.index, False)
        labels = await self.parse(current, deadline)
        t1 = time.monotonic()
        await stage(fe.STAGE_PARSE, plan.index, True)
        await stage(fe.STAGE_MASK, plan.index, False)
        mask = build_mask(labels, plan.class_ids, plan.spec, extra=plan.extra_mask, attribute=plan.region)
        t2 = time.monotonic()
        await stage(fe.STAGE_MASK, plan.index, True)
        edit, knobs = plan.edit, plan.knobs
        request = inpainter_pb2.InpaintRequest(
            image=to_raw(current),
            mask=to_raw(mask),
            prompt=edit.prompt,
            negative_prompt=edit.negative_prompt,
            strength=knobs.strength,
            guidance_scale=knobs.guidance_scale,
            num_inference_steps=knobs.steps,
            seed=knobs.seed,
            attribute=plan.attribute,
            options=edit.inpaint,
        )
        await stage(fe.STAGE_INPAINT, plan.index, False)
        response = await self._inpaint(request, deadline, plan.index, started, emit)
        t3 = time.monotonic()
        await stage(fe.STAGE_INPAINT, plan.index, True)
        edited = from_raw(response.image, channels=3, name="inpainter result")
        if edited.shape != current.shape:
            raise DownstreamError(grpc.StatusCode.INTERNAL, f"inpainter returned {edited.shape} for {current.shape}")
        timings.parse_ms = (t1 - t0) * 1000
        timings.mask_ms = (t2 - t1) * 1000
        timings.inpaint_ms = (t3 - t2) * 1000
        timings.queue_ms = response.timings.queue_ms
        timings.denoise_ms = response.timings.denoise_ms
        timings.composite_ms = response.timings.composite_ms
        step = fe.EditStepResult(
            index=plan.index,
            attribute=plan.attribute,
            class_ids=plan.class_ids,
            coverage=coverage(mask),
            seed=response.seed,
            negative_prompt=response.negative_prompt,
            cropped=response.cropped,
            crop_box=response.crop_box,
            steps_run=response.steps_run,
        )
        if return_masks:
            step.mask.CopyFrom(encoded(mask))
            step.labels.CopyFrom(encoded(labels))
            step.parse_map.CopyFrom(encoded(colorize(labels)))
            step.image.CopyFrom(encoded(edited))
        timings.total_ms = (time.monotonic() - t0) * 1000
        step.timings.CopyFrom(timings)
        return step, edited
