"""The EditFace cascade and ParseFace. EditFace and StreamEditFace run this one code path; a stream's Call
carries an `emit` callback.

A request's first parse is of the whole photo (letterboxed to the parser's input): it finds the faces (or the
caller's face_boxes name them), numbered once for the whole cascade. Then each edit, in order, on the image the
previous one left:
- a face edit (its classes are part of a head) parses again, at the parser's input size, the face frame of every
  face it selects, all in one batched request (a tilted face's frame turned upright); builds each face's mask
  from its own parse; renders each face's region as a crop of its own, the faces concurrently; and blends each
  render in. Pixels of the faces it does not select are the input's, bit for bit.
- a whole-photo edit (background, necklace, clothing, or a mask the caller replaces or inverts) parses the
  whole photo again and renders one region of it, as before faces were found.

The data path is bounded whatever the photo: the full frame is decoded once here and never crosses a hop. The
parser gets its input size per image, the inpainter gets a region (at most its working size) and its mask, and
the render is blended back here at full resolution. CPU work runs on the worker pool; the event loop only does
I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from faceedit.core.errors import CoverageError
from faceedit.core.faces import Face, compose_labels, find_faces, select_faces
from faceedit.core.framing import Frame, cut_region, paste_region, plan_frame
from faceedit.core.geometry import letterbox, unletterbox
from faceedit.core.imageio import decode_image, encode_image, image_size
from faceedit.core.masks import build_mask, coverage
from faceedit.core.taxonomy import ATTRIBUTES
from faceedit.core.upright import ROLL_THRESHOLD
from faceedit.core.viz import colorize, coverage_by_class
from faceedit.orchestrator.call import Call, Clock, Deadline, Emit
from faceedit.orchestrator.dependencies import Inpainter, Parser
from faceedit.orchestrator.errors import NoResultError, ResponseTooLargeError
from faceedit.orchestrator.faceframes import (
    FaceMask,
    FineParse,
    View,
    coarse_rolls,
    face_mask,
    fine_input,
    fine_parse,
    paste_face,
    region_in_photo,
    render_frame,
    work_image,
)
from faceedit.orchestrator.plan import MAX_FACES, EditPlan, plan_edits, plan_faces
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


T = TypeVar("T")


def box(x0: int, y0: int, x1: int, y1: int) -> types_pb2.BoundingBox:
    return types_pb2.BoundingBox(x0=x0, y0=y0, x1=x1, y1=y1)


def parse_response(labels: np.ndarray, faces: Sequence[Face], rolls: dict[int, float | None]) -> fe.ParseFaceResponse:
    rows = coverage_by_class(labels)
    present = {class_id for class_id, *_ in rows}
    return fe.ParseFaceResponse(
        labels=encoded(labels),
        parse_map=encoded(colorize(labels)),
        coverage=[fe.ClassCoverage(class_id=i, name=n, fraction=f, pixels=p) for i, n, f, p in rows],
        attributes_present=[a for a, ids in ATTRIBUTES.items() if present & set(ids)],
        faces=[
            fe.FoundFace(
                index=f.index, box=box(*f.box), roll_degrees=rolls.get(f.index), area=f.area, frame=box(*f.frame)
            )
            for f in faces
        ],
    )


def add_timings(totals: types_pb2.StageTimings, step: types_pb2.StageTimings) -> None:
    for stage in STAGES:
        name = f"{stage}_ms"
        setattr(totals, name, getattr(totals, name) + getattr(step, name))


async def all_or_none(work: Sequence[Awaitable[T]]) -> list[T]:
    """Await every one concurrently; when one fails, cancel the others (no render outlives its call) and raise
    its failure."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass
class Photo:
    """A cascade's state between its edits: the image so far, the labels of its latest whole-photo parse (at the
    photo's size), and its faces, found on the caller's image (or given) and numbered once, with each face's roll
    as last measured."""

    image: np.ndarray
    faces: list[Face] | None = None
    coarse: np.ndarray | None = None
    rolls: dict[int, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceRender:
    """One face of a step: its fine parse, its mask, the region of its work space that renders, and its seed."""

    parse: FineParse
    mask: FaceMask
    region: Frame
    seed: int

    @property
    def view(self) -> View:
        return self.parse.view

    @property
    def face(self) -> Face:
        return self.parse.view.face


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
        max_faces: int = MAX_FACES,
        roll_threshold: float = ROLL_THRESHOLD,
    ) -> None:
        self.parser = parser
        self.inpainter = inpainter
        self.pool = pool
        self.working_size = working_size
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.max_response_bytes = max_response_bytes
        self.default_timeout_s = default_timeout_s
        self.max_faces = max_faces
        self.roll_threshold = roll_threshold

    def call(self, request_id: str, remaining_s: float | None, emit: Emit | None = None) -> Call:
        return Call(request_id, Deadline(remaining_s, self.default_timeout_s), emit)

    async def decode(self, data: bytes) -> np.ndarray:
        return await self.pool.run(decode_image, data, max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)

    async def _infer(self, batch: np.ndarray, call: Call, clock: Clock) -> np.ndarray:
        """One parser request; its round trip is the stage's parse_ms (letterboxing and mapping back are the
        orchestrator's work, not the parser's)."""
        with clock.timed():
            return await self.parser.infer_raw(batch, timeout_s=call.deadline.remaining(), headers=trace_headers())

    async def _parse_photo(self, photo: Photo, call: Call, clock: Clock) -> None:
        """The whole photo's parse (letterboxed) into photo.coarse; on the first, its faces (or the caller's),
        at most max_faces, the largest, and their rolls from it."""
        canvas, placement = await self.pool.run(letterbox, photo.image, self.parser.input_size, coarse=True)
        (labels,) = await self._infer(canvas[None], call, clock)
        photo.coarse = await self.pool.run(unletterbox, labels, placement, nearest=True)
        if photo.faces is None:
            found = await self.pool.run(find_faces, labels, placement)
            photo.faces = found[: self.max_faces]
        if not photo.rolls:
            photo.rolls = await self.pool.run(coarse_rolls, labels, placement, photo.faces)

    async def _parse_faces(self, photo: Photo, faces: Sequence[Face], call: Call, clock: Clock) -> list[FineParse]:
        """Every face frame at the parser's input size, in one batched request; each face's roll measured again."""
        size = self.parser.input_size
        inputs = await asyncio.gather(
            *(
                self.pool.run(fine_input, photo.image, f, photo.rolls.get(f.index), self.roll_threshold, size)
                for f in faces
            )
        )
        labels = await self._infer(np.stack([canvas for canvas, _ in inputs]), call, clock)
        parses = await asyncio.gather(
            *(self.pool.run(fine_parse, labels[i], view) for i, (_, view) in enumerate(inputs))
        )
        for parse in parses:
            if parse.roll is not None:
                photo.rolls[parse.view.face.index] = parse.roll
        return list(parses)

    async def parse_face(self, request: fe.ParseFaceRequest, call: Call) -> fe.ParseFaceResponse:
        timings = types_pb2.StageTimings()
        async with call.stage(None, timings, "decode"):
            photo = Photo(await self.decode(request.image.data))
        async with call.stage(None, timings, "parse", client=True) as clock:
            await self._parse_photo(photo, call, clock)
            parses = await self._parse_faces(photo, photo.faces, call, clock) if photo.faces else []
        async with call.stage(None, timings, "encode"):
            labels = await self.pool.run(compose_labels, photo.coarse, photo.faces, [p.frame_labels for p in parses])
            response = await self.pool.run(parse_response, labels, photo.faces, photo.rolls)
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
            given = await self.pool.run(plan_faces, request, size, self.max_faces)
            image = await self.decode(request.image.data)
            if (image.shape[1], image.shape[0]) != size:  # a PNG's late eXIf turned it: check it all again
                size = (image.shape[1], image.shape[0])
                plans = await self.pool.run(plan_edits, request, size)
                given = await self.pool.run(plan_faces, request, size, self.max_faces)
        photo = Photo(image, faces=given or None)

        steps = []
        for plan in plans:
            last = plan.index == len(plans) - 1
            edit = self._edit_faces if plan.per_face else self._edit_photo
            step = await edit(plan, photo, request.return_masks, last, call)
            steps.append(step)
            add_timings(totals, step.timings)
            await call.send(fe.EditFaceEvent(step=step))

        fmt = OUTPUT_FORMATS[request.output_format]
        quality = request.output_quality if request.HasField("output_quality") else 95
        async with call.stage(fe.STAGE_ENCODE, totals, "encode"):
            encoded_image = await self.pool.run(encoded, photo.image, fmt, quality)
        totals.total_ms = call.elapsed_ms()
        response = fe.EditFaceResponse(image=encoded_image, steps=steps, timings=totals, request_id=request.request_id)
        size = response.ByteSize()
        if size > self.max_response_bytes:
            raise ResponseTooLargeError(size, self.max_response_bytes)
        return response

    def _request(
        self, plan: EditPlan, image: np.ndarray, mask: np.ndarray, frame: Frame, seed: int, *, precropped: bool
    ) -> bytes:
        """An Inpaint request, serialized (it is built and serialized here, on the pool): the frame's pixels and
        mask, at most the inpainter's working size."""
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
            seed=seed,
            attribute=plan.attribute,
            options=options,
            precropped=precropped,
            skip_composite=True,
        )
        to_raw(cut_region(image, frame, self.working_size), into=request.image)
        to_raw(cut_region(mask, frame, self.working_size), into=request.mask)
        return request.SerializeToString()

    async def _inpaint(
        self, request: bytes, index: int, call: Call, face: int | None = None
    ) -> inpainter_pb2.InpaintResponse:
        metadata = outgoing_metadata((REQUEST_ID_METADATA, call.request_id))
        timeout_s = call.deadline.remaining()
        if call.emit is None:
            return await self.inpainter.inpaint(request, timeout_s=timeout_s, metadata=metadata)
        result = None
        async for event in self.inpainter.stream_inpaint(request, timeout_s=timeout_s, metadata=metadata):
            if event.HasField("progress"):
                p = event.progress
                progress = fe.DenoiseProgress(
                    edit_index=index,
                    step=p.step,
                    total_steps=p.total_steps,
                    elapsed_ms=call.elapsed_ms(),
                    face_index=face,
                )
                await call.send(fe.EditFaceEvent(progress=progress))
            else:
                result = event.result
        if result is None:
            raise NoResultError()
        return result

    async def _step_images(
        self, step: fe.EditStepResult, mask: np.ndarray, labels: np.ndarray, image: np.ndarray | None, call, timings
    ) -> None:
        """return_masks: the step's mask, labels, parse map and (unless last) image, encoded side by side on the
        pool (PNG of a 24 MP frame takes a second)."""
        parts = [
            self.pool.run(encoded, mask),
            self.pool.run(encoded, labels),
            self.pool.run(lambda: encoded(colorize(labels))),
        ]
        if image is not None:
            parts.append(self.pool.run(encoded, image))
        async with call.stage(None, timings, "encode"):
            images = await asyncio.gather(*parts)
        for name, part in zip(("mask", "labels", "parse_map", "image"), images, strict=False):
            getattr(step, name).CopyFrom(part)

    async def _edit_photo(
        self, plan: EditPlan, photo: Photo, return_masks: bool, last: bool, call: Call
    ) -> fe.EditStepResult:
        """A whole-photo edit: parse the photo, one mask, one region rendered, one blend."""
        timings = types_pb2.StageTimings()
        started_ms = call.elapsed_ms()
        index, current = plan.index, photo.image
        async with call.stage(fe.STAGE_PARSE, timings, "parse", index=index, client=True) as clock:
            await self._parse_photo(photo, call, clock)
        labels = photo.coarse
        attributes = {"faceedit.attribute": plan.attribute}
        async with call.stage(fe.STAGE_MASK, timings, "mask", index=index, attributes=attributes):
            mask = await self.pool.run(
                build_mask, labels, plan.class_ids, plan.spec, extra=plan.extra_mask, attribute=plan.region
            )
        frame = await self.pool.run(plan_frame, mask, plan.frame_mode, padding=plan.knobs.crop_padding)
        request = await self.pool.run(
            self._request, plan, current, mask, frame, plan.knobs.seed, precropped=frame.cropped
        )
        async with call.stage(fe.STAGE_INPAINT, timings, "inpaint", index=index, client=True):
            response = await self._inpaint(request, index, call)
        del request  # the region's pixels are not needed past the hop
        async with call.stage(fe.STAGE_COMPOSITE, timings, "composite", index=index):
            rendered = from_raw(response.image, channels=3, name="inpainter result")
            photo.image = await self.pool.run(paste_region, current, rendered, mask, frame)
        timings.queue_ms = response.timings.queue_ms
        timings.denoise_ms = response.timings.denoise_ms
        step = fe.EditStepResult(
            index=index,
            attribute=plan.attribute,
            class_ids=plan.class_ids,
            coverage=await self.pool.run(coverage, mask),
            seed=response.seed,
            negative_prompt=response.negative_prompt,
            cropped=frame.cropped,
            crop_box=box(*frame.box),
            steps_run=response.steps_run,
        )
        if return_masks:
            await self._step_images(step, mask, labels, None if last else photo.image, call, timings)
        timings.total_ms = call.elapsed_ms() - started_ms
        step.timings.CopyFrom(timings)
        return step

    def _chosen(self, plan: EditPlan, masks: list[FaceMask], faces: Sequence[Face]) -> list[int]:
        """Which of the faces' masks the edit renders. Faces the caller named must each hold the region (its
        coverage of their face frame within [min_coverage, max_coverage]). With every face selected, the faces
        outside that range are left alone, and the edit fails only when no face qualifies."""
        spec = plan.spec
        inside = [i for i, m in enumerate(masks) if spec.min_coverage <= m.coverage <= spec.max_coverage]
        if len(inside) == len(masks) or (inside and not plan.face_indices):
            return inside
        failing = [i for i in range(len(masks)) if i not in inside]
        if plan.face_indices:
            worst = failing[0]
        else:  # the face nearest to qualifying: the most coverage when too little, the least when too much
            worst = max(failing, key=lambda i: masks[i].coverage if masks[i].coverage < spec.min_coverage else -1)
        raise CoverageError(
            plan.region,
            masks[worst].coverage,
            spec.min_coverage,
            spec.max_coverage,
            where=f"face {faces[worst].index}'s frame",
        )

    async def _edit_faces(
        self, plan: EditPlan, photo: Photo, return_masks: bool, last: bool, call: Call
    ) -> fe.EditStepResult:
        """A face edit: the selected faces' fine parse (one request), a mask, a render and a blend per face."""
        timings = types_pb2.StageTimings()
        started_ms = call.elapsed_ms()
        index, before = plan.index, photo.image
        async with call.stage(fe.STAGE_PARSE, timings, "parse", index=index, client=True) as clock:
            if photo.faces is None or photo.coarse is None:
                await self._parse_photo(photo, call, clock)
            selected = select_faces(photo.faces, plan.face_indices)
            parses = await self._parse_faces(photo, selected, call, clock)

        masks = []
        attributes = {"faceedit.attribute": plan.attribute}
        for parse in parses:
            face = parse.view.face.index
            async with call.stage(fe.STAGE_MASK, timings, "mask", index=index, face=face, attributes=attributes):
                masks.append(
                    await self.pool.run(
                        face_mask,
                        parse,
                        photo.faces,
                        plan.class_ids,
                        plan.spec,
                        plan.knobs,
                        given=plan.given,
                        extra=plan.extra_mask,
                        attribute=plan.region,
                    )
                )
        chosen = self._chosen(plan, masks, selected)
        renders = []
        for i in chosen:
            region = await self.pool.run(render_frame, masks[i], plan.frame_mode)
            seed = plan.knobs.seed + selected[i].index
            renders.append(FaceRender(parses[i], masks[i], region, seed))

        async def render(face: FaceRender) -> inpainter_pb2.InpaintResponse:
            space = await self.pool.run(work_image, before, face.view)
            request = await self.pool.run(
                self._request, plan, space, face.mask.space, face.region, face.seed, precropped=True
            )
            del space
            async with call.stage(fe.STAGE_INPAINT, None, "inpaint", index=index, face=face.face.index, client=True):
                return await self._inpaint(request, index, call, face.face.index)

        # The faces render concurrently (the inpainter's admission queues them); the stage's time is the wall time
        # of them all, so a step's inpaint_ms stays inside its total_ms.
        wall = Clock()
        with wall.timed():
            responses = await all_or_none([render(face) for face in renders])
        timings.inpaint_ms += wall.ms

        edited = await self.pool.run(np.copy, before)
        for face, response in zip(renders, responses, strict=True):
            async with call.stage(fe.STAGE_COMPOSITE, timings, "composite", index=index, face=face.face.index):
                rendered = from_raw(response.image, channels=3, name="inpainter result")
                await self.pool.run(paste_face, edited, before, rendered, face.mask, face.region, face.view)
            timings.queue_ms += response.timings.queue_ms
            timings.denoise_ms += response.timings.denoise_ms
        photo.image = edited

        results = [
            fe.FaceStepResult(
                index=face.face.index,
                face_box=box(*face.face.box),
                cropped=True,
                crop_box=box(*region_in_photo(face.region, face.view)),
                coverage=face.mask.coverage,
                roll_degrees=photo.rolls.get(face.face.index),
                seed=face.seed,
            )
            for face in renders
        ]
        first = responses[0]
        step = fe.EditStepResult(
            index=index,
            attribute=plan.attribute,
            class_ids=plan.class_ids,
            coverage=min(face.mask.coverage for face in renders),
            seed=plan.knobs.seed,
            negative_prompt=first.negative_prompt,
            cropped=results[0].cropped,
            crop_box=results[0].crop_box,
            steps_run=first.steps_run,
            faces=results,
        )
        if return_masks:
            mask, labels = await self.pool.run(self._step_maps, photo, renders, parses)
            await self._step_images(step, mask, labels, None if last else edited, call, timings)
        timings.total_ms = call.elapsed_ms() - started_ms
        step.timings.CopyFrom(timings)
        return step

    @staticmethod
    def _step_maps(
        photo: Photo, renders: Sequence[FaceRender], parses: Sequence[FineParse]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The step's mask (every rendered face's, at the photo's size) and its label map (each parsed face's
        fine labels in its frame, the latest whole-photo parse elsewhere)."""
        mask = np.zeros(photo.image.shape[:2], np.uint8)
        for face in renders:
            window = mask[face.face.frame_slices]
            np.maximum(window, face.mask.frame, out=window)
        labels = compose_labels(photo.coarse, [p.view.face for p in parses], [p.frame_labels for p in parses])
        return mask, labels
