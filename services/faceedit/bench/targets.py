"""What the load generator calls: EditFace, the parser on Triton, or the inpainter alone, over TLS/mTLS when a
ChannelTls is given and with a bearer token when one is given (the orchestrator's front door).

A target's call makes one request and returns the server's per-stage timings (ms) for it. Triton reports no
per-request timings, so the parser target instead exposes its cumulative statistics (`server_totals`), which the
load generator samples before and after a level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from faceedit.core.geometry import letterbox
from faceedit.core.imageio import encode_image
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial, dial_sync, triton_client
from faceedit.rpc.messages import FORMAT_ENUM as FORMATS
from faceedit.rpc.messages import STAGES, to_raw
from faceedit.rpc.tls import ChannelTls
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, inpainter_pb2, inpainter_pb2_grpc, types_pb2

Call = Callable[[], Awaitable[dict[str, float]]]


@dataclass
class Target:
    call: Call
    close: Callable[[], Awaitable[None]]
    server_totals: Callable[[], Awaitable[dict]] | None = None


class BadResponseError(RuntimeError):
    """The server answered OK with an unusable payload (counted as its own error kind)."""


def portrait(size: int) -> np.ndarray:
    """The bundled portrait: skimage's astronaut resized to size x size."""
    from skimage import data as samples
    from skimage.transform import resize

    image = samples.astronaut()
    return (resize(image, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


def photo(width: int, height: int) -> np.ndarray:
    """The bundled portrait at any photo size (width x height), e.g. a 4032x3024 phone photo."""
    import cv2
    from skimage import data as samples

    return cv2.resize(samples.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)


def _timings(t: types_pb2.StageTimings) -> dict[str, float]:
    """The stages the server timed; proto3 leaves the others at 0 (the inpainter, for one, does not parse)."""
    return {stage: value for stage in (*STAGES, "total") if (value := getattr(t, f"{stage}_ms"))}


def caller_region(mask: np.ndarray, class_name: str = "skin") -> types_pb2.MaskOptions:
    """MaskOptions that edit exactly the caller's mask (it replaces the class's region), so a benchmark does the
    same work whatever the random parser finds."""
    return types_pb2.MaskOptions(
        classes=[class_name],
        extra_mask=types_pb2.EncodedImage(data=encode_image(mask)),
        merge=types_pb2.MASK_MERGE_REPLACE,
    )


def present_class(address: str, image: np.ndarray, *, tls: ChannelTls | None = None, token: str | None = None) -> str:
    """The class the parser finds most of (background aside), so a benchmark edit never fails on a random parser."""
    with dial_sync(address, tls=tls, token=token, max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        request = fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=encode_image(image)))
        parsed = stub.ParseFace(request, timeout=60)
    names = [c.name for c in parsed.coverage if c.name != "background"] or [parsed.coverage[0].name]
    return names[0]


def editface_target(
    address: str,
    image: np.ndarray,
    edits: list[fe.Edit],
    *,
    timeout_s: float,
    output_format: str = "png",
    input_format: str = "png",
    tls: ChannelTls | None = None,
    token: str | None = None,
    face_boxes: Sequence[types_pb2.BoundingBox] = (),
) -> Target:
    channel = dial(address, tls=tls, token=token, max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES)
    stub = face_editor_pb2_grpc.FaceEditorStub(channel)
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=encode_image(image, input_format)),
        edits=edits,
        output_format=FORMATS[output_format],
        face_boxes=face_boxes,
    )

    async def call() -> dict[str, float]:
        response = await stub.EditFace(request, timeout=timeout_s)
        return _timings(response.timings)

    return Target(call, channel.close)


def parser_target(
    url: str,
    image: np.ndarray,
    *,
    size: int,
    timeout_s: float,
    model_name: str = "face_parser",
    tls: ChannelTls | None = None,
) -> Target:
    """Raw KServe v2 calls without the orchestrator's retries, so every failure is counted by its status."""
    import tritonclient.grpc.aio as triton

    client = triton_client(url, tls=tls, retries=0)
    batch = letterbox(image, size)[0][None]

    async def call() -> dict[str, float]:
        tensor = triton.InferInput("image", list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        result = await client.infer(
            model_name, [tensor], outputs=[triton.InferRequestedOutput("labels")], client_timeout=timeout_s
        )
        labels = result.as_numpy("labels")
        if labels is None or labels.shape != batch.shape[:3]:
            # Triton 2.51's python backend answers OK with empty tensors when its stub runs with numpy 2.
            raise BadResponseError(f"labels of shape {None if labels is None else labels.shape}")
        return {}

    async def server_totals() -> dict:
        stats = await client.get_inference_statistics(model_name, as_json=True, client_timeout=timeout_s)
        return stats["model_stats"][0]["inference_stats"]

    return Target(call, client.close, server_totals)


def inpainter_target(
    address: str, image: np.ndarray, *, prompt: str, steps: int, timeout_s: float, tls: ChannelTls | None = None
) -> Target:
    channel = dial(address, tls=tls)
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

    return Target(call, channel.close)
