"""What the load generator calls: EditFace, the parser on Triton, or the inpainter alone.

Each target is one async callable returning the server's per-stage timings (ms) for the request it made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import numpy as np

from faceedit.core.geometry import letterbox
from faceedit.core.imageio import encode_image
from faceedit.orchestrator.flow import FORMAT_ENUM as FORMATS
from faceedit.parser.client import ParserClient
from faceedit.rawimage import to_raw
from faceedit.serving import channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, inpainter_pb2, inpainter_pb2_grpc, types_pb2

Call = Callable[[], Awaitable[dict[str, float]]]
STAGES = ("decode", "parse", "mask", "inpaint", "queue", "denoise", "composite", "encode", "total")


def portrait(size: int) -> np.ndarray:
    from skimage import data as samples
    from skimage.transform import resize

    image = samples.astronaut()
    return (resize(image, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


def _timings(t: types_pb2.StageTimings) -> dict[str, float]:
    return {stage: getattr(t, f"{stage}_ms") for stage in STAGES}


def present_class(address: str, image: np.ndarray) -> str:
    """The class the parser finds most of (background aside), so a benchmark edit never fails on a random parser."""
    stub = face_editor_pb2_grpc.FaceEditorStub(grpc.insecure_channel(address, options=channel_options()))
    parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=encode_image(image))), timeout=60)
    names = [c.name for c in parsed.coverage if c.name != "background"] or [parsed.coverage[0].name]
    return names[0]


def editface_target(
    address: str, image: np.ndarray, edits: list[fe.Edit], *, timeout_s: float, output_format: str = "png"
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    channel = grpc.aio.insecure_channel(address, options=channel_options())
    stub = face_editor_pb2_grpc.FaceEditorStub(channel)
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=encode_image(image)), edits=edits, output_format=FORMATS[output_format]
    )

    async def call() -> dict[str, float]:
        response = await stub.EditFace(request, timeout=timeout_s)
        return _timings(response.timings)

    return call, channel.close


def parser_target(url: str, image: np.ndarray, *, size: int, timeout_s: float) -> tuple[Call, Callable]:
    client = ParserClient(url, input_size=size, timeout_s=timeout_s)
    batch = letterbox(image, size)[0][None]

    async def call() -> dict[str, float]:
        await client.infer_raw(batch)
        return {}

    return call, client.close


def inpainter_target(
    address: str, image: np.ndarray, *, prompt: str, steps: int, timeout_s: float
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    channel = grpc.aio.insecure_channel(address, options=channel_options())
    stub = inpainter_pb2_grpc.InpainterStub(channel)
    mask = np.zeros(image.shape[:2], np.uint8)
    h, w = mask.shape
    mask[int(h * 0.62) : int(h * 0.70), int(w * 0.42) : int(w * 0.58)] = 255  # a lips-sized region
    request = inpainter_pb2.InpaintRequest(
        image=to_raw(image), mask=to_raw(mask), prompt=prompt, num_inference_steps=steps
    )

    async def call() -> dict[str, float]:
        response = await stub.Inpaint(request, timeout=timeout_s)
        return _timings(response.timings)

    return call, channel.close
