"""The EditFace cascade: decode -> (parse -> mask -> inpaint the region -> paste) per edit, re-parsing the edited
image each time; and ParseFace. EditFace and StreamEditFace run this one code path; a stream's Call carries an
`emit` callback.

The data path is bounded whatever the photo: the full frame is decoded once here and never crosses a hop. The
parser gets the letterboxed input size, the inpainter gets the edit's padded region (at most its working size)
and mask, and the render is pasted and blended back here at full resolution. CPU work runs on the worker pool;
the event loop only does I/O.
"""

from __future__ import annotations

import asyncio

import numpy as np

from faceedit.core.framing import Frame, cut_region, paste_region, plan_frame
from faceedit.core.geometry import letterbox, unletterbox
from faceedit.core.imageio import decode_image, encode_image, image_size
from faceedit.core.masks import build_mask, coverage
from faceedit.core.taxonomy import ATTRIBUTES
from faceedit.core.viz import colorize, coverage_by_class
from faceedit.orchestrator.call import Call, Deadline, Emit
from faceedit.orchestrator.dependencies import Inpainter, Parser
from faceedit.orchestrator.errors import NoResultError, ResponseTooLargeError
from faceedit.orchestrator.plan import EditPlan, plan_edits
from faceedit.rpc.messages import FORMAT_ENUM, OUTPUT_FORMATS, STAGES, from_raw, to_raw
from faceedit.rpc.tracing import REQUEST_ID_METADATA, outgoing_metadata, trace_headers
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import inpainter_pb2, types_pb2


def encoded(image: np.ndarray, fmt: str = "png", quality: int = 95) -> types_pb2.EncodedImage:
    return types_pb2.EncodedImage(
        data=encode_image(image, fmt, quality=quality),
        format=FORMAT_ENUM[fmt],
        width=image.shape[1],
        height=image.shape[0],
    )


def parse_response(labels: np.ndarray) -> fe.ParseFaceResponse:
    rows = coverage_by_class(labels)
    present = {class_id for class_id, *_ in rows}
    return fe.ParseFaceResponse(
        labels=encoded(labels),
        parse_map=encoded(colorize(labels)),
        coverage=[fe.ClassCoverage(class_id=i, name=n, fraction=f, pixels=p) for i, n, f, p in rows],
        attributes_present=[a for a, ids in ATTRIBUTES.items() if present & set(ids)],
    )


def add_timings(totals: types_pb2.StageTimings, step: types_pb2.StageTimings) -> None:
    for stage in STAGES:
        name = f"{stage}_ms"
        setattr(totals, name, getattr(totals, name) + getattr(step, name))


class EditFlow:
    def __init__(
        self,
        parser: Parser,
        inpainter: Inpainter,
        pool: WorkerPool,
        *,
        working_size: int,
        max_image_bytes: int,
        max_image_pixels: int,
        max_response_bytes: int,
        default_timeout_s: float,
    ) -> None:
        self.parser = parser
        self.inpainter = inpainter
        self.pool = pool
        self.working_size = working_size
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.max_response_bytes = max_response_bytes
        self.default_timeout_s = default_timeout_s

    def call(self, request_id: str, remaining_s: float | None, emit: Emit | None = None) -> Call:
        return Call(request_id, Deadline(remaining_s, self.default_timeout_s), emit)

    async def decode(self, data: bytes) -> np.ndarray:
        return await self.pool.run(decode_image, data, max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)

    async def parse(self, image: np.ndarray, call: Call, timings: types_pb2.StageTimings, index: int = 0):
        """Labels at the image's size; parse_ms is the parser's own time (the inference round trip: letterboxing
        and mapping back are the orchestrator's work, not the parser's)."""
        async with call.stage(fe.STAGE_PARSE, timings, "parse", index=index, client=True) as clock:
            canvas, box = await self.pool.run(letterbox, image, self.parser.input_size, coarse=True)
            with clock.timed():
                (labels,) = await self.parser.infer_raw(
                    canvas[None], timeout_s=call.deadline.remaining(), headers=trace_headers()
                )
            return await self.pool.run(unletterbox, labels, box, nearest=True)

    async def parse_face(self, request: fe.ParseFaceRequest, call: Call) -> fe.ParseFaceResponse:
        timings = types_pb2.StageTimings()
        async with call.stage(None, timings, "decode"):
            image = await self.decode(request.image.data)
        labels = await self.parse(image, call, timings)
        async with call.stage(None, timings, "encode"):
            response = await self.pool.run(parse_response, labels)
        timings.total_ms = call.elapsed_ms()
        response.timings.CopyFrom(timings)
        return response

    async def run(self, request: fe.EditFaceRequest, call: Call) -> fe.EditFaceResponse:
        totals = types_pb2.StageTimings()
        async with call.stage(fe.STAGE_DECODE, totals, "decode"):
            # The whole cascade is checked against the header's size before a pixel is decoded: a bad third edit
            # must not cost a 50 MP decode, let alone two inpaints.
            size = await self.pool.run(image_size, request.image.data, max_bytes=self.max_image_bytes)
            plans = await self.pool.run(plan_edits, request, size)
            current = await self.decode(request.image.data)
            if (current.shape[1], current.shape[0]) != size:  # a PNG's late eXIf turned it: check the masks again
                plans = await self.pool.run(plan_edits, request, (current.shape[1], current.shape[0]))

        steps = []
        for plan in plans:
            last = plan.index == len(plans) - 1
            step, current = await self._edit(plan, current, request.return_masks, last, call)
            steps.append(step)
            add_timings(totals, step.timings)
            await call.send(fe.EditFaceEvent(step=step))

        fmt = OUTPUT_FORMATS[request.output_format]
        quality = request.output_quality if request.HasField("output_quality") else 95
        async with call.stage(fe.STAGE_ENCODE, totals, "encode"):
            image = await self.pool.run(encoded, current, fmt, quality)
        totals.total_ms = call.elapsed_ms()
        response = fe.EditFaceResponse(image=image, steps=steps, timings=totals, request_id=request.request_id)
        size = response.ByteSize()
        if size > self.max_response_bytes:
            raise ResponseTooLargeError(size, self.max_response_bytes)
        return response

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

    async def _inpaint(self, request: bytes, index: int, call: Call) -> inpainter_pb2.InpaintResponse:
        metadata = outgoing_metadata((REQUEST_ID_METADATA, call.request_id))
        timeout_s = call.deadline.remaining()
        if call.emit is None:
            return await self.inpainter.inpaint(request, timeout_s=timeout_s, metadata=metadata)
        result = None
        async for event in self.inpainter.stream_inpaint(request, timeout_s=timeout_s, metadata=metadata):
            if event.HasField("progress"):
                p = event.progress
                progress = fe.DenoiseProgress(
                    edit_index=index, step=p.step, total_steps=p.total_steps, elapsed_ms=call.elapsed_ms()
                )
                await call.send(fe.EditFaceEvent(progress=progress))
            else:
                result = event.result
        if result is None:
            raise NoResultError()
        return result

    async def _edit(
        self, plan: EditPlan, current: np.ndarray, return_masks: bool, last: bool, call: Call
    ) -> tuple[fe.EditStepResult, np.ndarray]:
        timings = types_pb2.StageTimings()
        started_ms = call.elapsed_ms()
        index = plan.index
        labels = await self.parse(current, call, timings, index)
        attributes = {"faceedit.attribute": plan.attribute}
        async with call.stage(fe.STAGE_MASK, timings, "mask", index=index, attributes=attributes):
            mask = await self.pool.run(
                build_mask, labels, plan.class_ids, plan.spec, extra=plan.extra_mask, attribute=plan.region
            )
        frame = await self.pool.run(plan_frame, mask, plan.frame_mode, padding=plan.knobs.crop_padding)
        request = await self.pool.run(self._region_request, plan, current, mask, frame)
        async with call.stage(fe.STAGE_INPAINT, timings, "inpaint", index=index, client=True):
            response = await self._inpaint(request, index, call)
        del request  # the region's pixels are not needed past the hop
        async with call.stage(fe.STAGE_COMPOSITE, timings, "composite", index=index):
            rendered = from_raw(response.image, channels=3, name="inpainter result")
            edited = await self.pool.run(paste_region, current, rendered, mask, frame)
        timings.queue_ms = response.timings.queue_ms
        timings.denoise_ms = response.timings.denoise_ms
        x0, y0, x1, y1 = frame.box
        step = fe.EditStepResult(
            index=index,
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
            # The step's images encode side by side on the pool (PNG of a 24 MP frame takes a second).
            parts = [
                self.pool.run(encoded, mask),
                self.pool.run(encoded, labels),
                self.pool.run(lambda: encoded(colorize(labels))),
            ]
            if not last:
                parts.append(self.pool.run(encoded, edited))
            async with call.stage(None, timings, "encode"):
                images = await asyncio.gather(*parts)
            for name, image in zip(("mask", "labels", "parse_map", "image"), images, strict=False):
                getattr(step, name).CopyFrom(image)
        timings.total_ms = call.elapsed_ms() - started_ms
        step.timings.CopyFrom(timings)
        return step, edited
