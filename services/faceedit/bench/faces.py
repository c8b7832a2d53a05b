"""`faceedit compare faces`: the face-aware flow against the whole-frame parse, both sides in one run on one local
stack (real Triton serving the palette parser, the tiny inpainter, the orchestrator), on generated photos whose
faces are known (faceedit.export.portraits):

- overhead of a 12 MP one-face lips edit (faceedit.bench.loadgen's definition, as `compare overhead`);
- detail gain per face of a 24 MP three-face lips edit: (canvas / render region's longer side)^2 per face, vs the
  whole-frame side's one region for all three (faceedit.core.framing.detail_gain);
- parser requests and images per step, from Triton's own counters (its metrics port).

The whole-frame side is the same flow with one face box covering the whole photo (the orchestrator has no switch
back to the old path): its face frame is the photo, so its parse is the whole frame letterboxed into one parser
input, as before faces were found, and its mask sizes are set to the thesis's photo-pixel values (grow 3, feather
7, padding 32), as the old path used them. It still makes the flow's first whole-photo parse, one parser request
more than the old path; parser time is outside the overhead on both sides.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceedit.bench.loadgen import run_level
from faceedit.bench.targets import editface_target
from faceedit.core.framing import Frame, detail_gain
from faceedit.core.imageio import encode_image
from faceedit.core.knobs import DEFAULT_CROP_PADDING
from faceedit.core.masks import MaskSpec
from faceedit.devstack.process import metric_value
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial_sync
from faceedit.rpc.messages import FORMAT_ENUM
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2

ONE_FACE_PHOTO = (4032, 3024)
GROUP_PHOTO = (6000, 4000)
# Faces as (centre x, centre y, face width) in shares of the photo's width and height, width of its width: the
# issue's photos, a 1,600 px face in a 12 MP frame and faces of 700, 560 and 420 px in a 24 MP one.
ONE_FACE = ((0.5, 0.47, 1600 / 4032),)
GROUP = ((0.5, 0.45, 700 / 6000), (0.25, 0.47, 560 / 6000), (0.75, 0.5, 420 / 6000))
SIDES = ("face_aware", "whole_frame")
LIPS_PROMPT = "matte dusty-rose lipstick"
TARGET_OVERHEAD_MS = 300.0  # the 12 MP lips overhead of `compare overhead` (README, P1b)
PARSER_MODEL = "face_parser"


def drawn_photo(size: tuple[int, int], faces: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """A generated photo of (width, height) with faces at the given shares, in the palette parser's colours."""
    from faceedit.export.portraits import FaceSpec, portrait

    width, height = size
    specs = [FaceSpec(cx * width, cy * height, max(4, round(w * width))) for cx, cy, w in faces]
    return portrait(size, specs).image


def lips_edit(side: str, steps: int) -> fe.Edit:
    """The lips of every face. The whole-frame side sets the thesis's mask sizes in photo pixels (its face frame
    is the photo) and no minimum coverage (three lips are a small share of a 24 MP photo)."""
    edit = fe.Edit(attribute="lips", prompt=LIPS_PROMPT, num_inference_steps=steps, strength=1.0)
    if side == "whole_frame":
        thesis = MaskSpec()
        edit.mask.grow_px, edit.mask.feather_sigma, edit.mask.min_coverage = thesis.grow_px, thesis.feather_sigma, 0
        edit.inpaint.crop_padding = DEFAULT_CROP_PADDING
    return edit


def face_boxes(side: str, size: tuple[int, int]) -> list[types_pb2.BoundingBox]:
    """The whole-frame side's one face box (the photo); none for the face-aware side (the parse finds them)."""
    return [types_pb2.BoundingBox(x0=0, y0=0, x1=size[0], y1=size[1])] if side == "whole_frame" else []


class ParserCounter:
    """Triton's counters of the face parser: requests answered and images inferred (a batch of N counts N)."""

    def __init__(self, metrics_url: str, model: str = PARSER_MODEL) -> None:
        self.url = metrics_url
        self.labels = f'{{model="{model}",version="1"}}'

    def read(self) -> tuple[int, int]:
        requests = metric_value(self.url, f"nv_inference_request_success{self.labels}")
        return int(requests), int(metric_value(self.url, f"nv_inference_count{self.labels}"))


def counted(counter: ParserCounter, call):
    """call()'s result and the parser requests and images it took."""
    before = counter.read()
    result = call()
    after = counter.read()
    return result, after[0] - before[0], after[1] - before[1]


def region_gains(step: fe.EditStepResult, canvas: int) -> list[dict]:
    """Each rendered region of a step (one per face) with its box and detail gain at the inpainter's canvas."""
    regions = [(f.index, f.crop_box, f.cropped) for f in step.faces] or [(None, step.crop_box, step.cropped)]
    rows = []
    for index, b, cropped in regions:
        frame = Frame((b.x0, b.y0, b.x1, b.y1), cropped)
        rows.append({"face": index, "box": list(frame.box), "side_px": max(frame.width, frame.height),
                     "detail_gain": detail_gain(frame, canvas)})  # fmt: skip
    return rows


def overhead_side(address: str, image: np.ndarray, side: str, *, requests: int, steps: int, formats: dict) -> dict:
    """One side's EditFace level (sequential requests, so the inpainter never queues) and its overhead p50."""
    size = (image.shape[1], image.shape[0])

    async def measure():
        target = editface_target(
            address, image, [lips_edit(side, steps)], timeout_s=600, face_boxes=face_boxes(side, size), **formats
        )
        try:
            return await run_level(target, concurrency=1, requests=requests, warmup=1)
        finally:
            await target.close()

    summary = asyncio.run(measure()).summary()
    overhead = summary["overhead_ms"]["p50"] if summary["overhead_ms"] else float("nan")
    return {
        "e2e_p50_ms": summary["latency_ms"]["p50"],
        "overhead_p50_ms": overhead,
        "stages_ms": summary["stages_ms"],
        "errors": summary["errors"],
    }


def errors(row: dict) -> str:
    return f"  FAILED: {row['errors']}" if row["errors"] else ""


def edit_once(stub, image_data: bytes, size: tuple[int, int], side: str, edits: list[fe.Edit]) -> fe.EditFaceResponse:
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=image_data), edits=edits, face_boxes=face_boxes(side, size)
    )
    request.output_format = FORMAT_ENUM["jpeg"]  # the response's pixels are not looked at here
    return stub.EditFace(request, timeout=600)


def measure(
    address: str,
    metrics_url: str,
    canvas: int,
    *,
    one_face_photo: tuple[int, int] = ONE_FACE_PHOTO,
    group_photo: tuple[int, int] = GROUP_PHOTO,
    requests: int = 5,
    steps: int = 2,
    input_format: str = "png",
    output_format: str = "png",
    log=print,
) -> dict:
    """Both sides against a running stack serving the palette parser (metrics_url: its Triton's /metrics)."""
    counter = ParserCounter(metrics_url)
    formats = {"input_format": input_format, "output_format": output_format}
    width, height = one_face_photo
    log(f"drawing a {width}x{height} one-face photo and a {group_photo[0]}x{group_photo[1]} three-face photo ...")
    one = drawn_photo(one_face_photo, ONE_FACE)
    overhead = {}
    for side in SIDES:
        row, calls, images = counted(
            counter,
            lambda side=side: overhead_side(address, one, side, requests=requests, steps=steps, formats=formats),
        )
        row["parser_requests_per_edit"] = calls / (requests + 1)  # the warm-up request included
        row["parser_images_per_edit"] = images / (requests + 1)
        overhead[side] = row
        log(
            f"{width}x{height} lips, {side:11s}: overhead p50 {row['overhead_p50_ms']:7.1f} ms, end-to-end p50 "
            f"{row['e2e_p50_ms']:7.1f} ms (parse {row['stages_ms'].get('parse', 0.0):.1f} ms, "
            f"{row['parser_requests_per_edit']:.0f} parser requests){errors(row)}"
        )
    added = overhead["face_aware"]["overhead_p50_ms"] - overhead["whole_frame"]["overhead_p50_ms"]
    log(f"  face-aware adds {added:+.1f} ms of overhead; target <= {TARGET_OVERHEAD_MS:.0f} ms overhead")

    group = drawn_photo(group_photo, GROUP)
    data = encode_image(group, input_format)
    detail, per_step = {}, {}
    with dial_sync(address, max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        for side in SIDES:
            response, calls, images = counted(
                counter, lambda side=side: edit_once(stub, data, group_photo, side, [lips_edit(side, steps)])
            )
            (step,) = response.steps
            regions = region_gains(step, canvas)
            detail[side] = {"regions": regions, "parser_requests": calls, "parser_images": images}
            gains = ", ".join(
                f"{'face ' + str(r['face']) if side == 'face_aware' else 'one region'} {r['side_px']} px -> "
                f"{r['detail_gain']:.2f}x"
                for r in regions
            )
            log(
                f"{group_photo[0]}x{group_photo[1]} lips, {side:11s}: {gains} ({calls} parser requests, "
                f"{images} images)"
            )
        # Per step: a two-edit cascade takes one request more than a one-edit call; that request holds the faces.
        brows = fe.Edit(attribute="eyebrows", prompt="dark brows", num_inference_steps=steps, strength=1.0)
        cascade = [lips_edit("face_aware", steps), brows]
        _, calls, images = counted(counter, lambda: edit_once(stub, data, group_photo, "face_aware", cascade))
    one_edit = detail["face_aware"]
    per_step = {
        "first_parse_requests": one_edit["parser_requests"] - (calls - one_edit["parser_requests"]),
        "requests_per_step": calls - one_edit["parser_requests"],
        "images_per_step": images - one_edit["parser_images"],
        "faces": len(one_edit["regions"]),
    }
    log(
        f"parser per step: {per_step['requests_per_step']} request(s) holding {per_step['images_per_step']} images "
        f"for {per_step['faces']} faces (plus {per_step['first_parse_requests']} whole-photo parse per call)"
    )
    whole = detail["whole_frame"]["regions"][0]["detail_gain"]
    gains = [r["detail_gain"] for r in one_edit["regions"]]
    log(f"  per-face detail gain {min(gains):.2f}-{max(gains):.2f}x vs {whole:.3f}x: {min(gains) / whole:.0f}x or more")
    return {
        "comparison": "faces",
        "canvas": canvas,
        "steps": steps,
        "requests": requests,
        "input_format": input_format,
        "output_format": output_format,
        "one_face_photo": list(one_face_photo),
        "group_photo": list(group_photo),
        "overhead": {**overhead, "added_ms": added, "target_ms": TARGET_OVERHEAD_MS},
        "detail": {**detail, "gain_vs_whole_frame": [g / whole for g in gains]},
        "parser": per_step,
    }


def run_faces_comparison(
    *, working_size: int, models_dir: Path = Path("models"), workdir: Path | None = None, log=print, **options
) -> dict:
    """measure() on a local stack of its own: Triton serving the palette parser, the tiny inpainter at
    working_size (its canvas), the orchestrator."""
    from faceedit.devstack.ports import free_port
    from faceedit.devstack.stack import LocalStack, StackConfig
    from faceedit.export.palette_parser import export

    workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-bench-faces-"))
    parser = export(workdir / "palette.onnx")
    config = StackConfig(parser_model=str(parser), models_dir=models_dir, port=free_port(), working_size=working_size)
    stack = LocalStack(config).start(log=lambda line: None)
    try:
        return measure(stack.address, stack.tritons[0].metrics_url, stack.working_size, log=log, **options)
    finally:
        stack.stop()
