"""In-process stand-ins for the orchestrator's dependencies (faceedit.orchestrator.dependencies' protocols), so its
flow is tested without a Triton or an inpainter. They compute their answers from what they receive: nothing is
canned except what a test asks for (a label map, a render colour, a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from faceedit.export.palette_parser import parse as palette_parse
from faceedit.export.portraits import FaceSpec, portrait
from faceedit.orchestrator.errors import InpainterFailedError
from faceedit.rpc.messages import from_raw, to_raw
from faceedit.v1 import inpainter_pb2, types_pb2

Labeller = Callable[[np.ndarray], np.ndarray]


class FakeParser:
    """A Parser whose labels come from `labels`: a function of each image (default: the palette parser's own
    computation, so labels follow the image and a re-parse sees what an edit painted), or one fixed (S,S) label
    map."""

    def __init__(
        self, labels: Labeller | np.ndarray = palette_parse, *, input_size: int = 64, failure: Exception | None = None
    ):
        self.input_size = input_size
        self._labels = labels
        self.failure = failure
        self.batches: list[np.ndarray] = []

    async def infer_raw(
        self, batch: np.ndarray, *, timeout_s: float | None = None, headers: dict[str, str] | None = None
    ) -> np.ndarray:
        assert batch.dtype == np.uint8 and batch.shape[1:] == (self.input_size, self.input_size, 3), batch.shape
        self.batches.append(batch.copy())
        if self.failure is not None:
            raise self.failure
        if isinstance(self._labels, np.ndarray):
            return np.stack([self._labels] * len(batch))
        return np.stack([self._labels(image) for image in batch])


class FakeInpainter:
    """An Inpainter that paints the masked region's frame one colour (the render is the whole frame in that
    colour; the orchestrator's blend decides what lands), or fails with the status a test gives."""

    def __init__(
        self,
        colour: Sequence[int] = (0, 0, 255),
        *,
        failure: InpainterFailedError | None = None,
        total_steps: int = 2,
        queue_ms: float = 1.5,
        denoise_ms: float = 7.0,
    ) -> None:
        self.colour = tuple(colour)
        self.failure = failure
        self.total_steps = total_steps
        self.queue_ms = queue_ms
        self.denoise_ms = denoise_ms
        self.requests: list[inpainter_pb2.InpaintRequest] = []

    def _render(self, raw: bytes) -> inpainter_pb2.InpaintResponse:
        request = inpainter_pb2.InpaintRequest.FromString(raw)
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure
        image = from_raw(request.image, channels=3)
        rendered = np.empty_like(image)
        rendered[:] = self.colour
        return inpainter_pb2.InpaintResponse(
            image=to_raw(rendered),
            seed=request.seed,
            negative_prompt=f"not {request.prompt}",
            steps_run=self.total_steps,
            timings=types_pb2.StageTimings(queue_ms=self.queue_ms, denoise_ms=self.denoise_ms),
        )

    async def inpaint(self, request: bytes, *, timeout_s: float, metadata) -> inpainter_pb2.InpaintResponse:
        assert timeout_s > 0
        return self._render(request)

    async def stream_inpaint(self, request: bytes, *, timeout_s: float, metadata) -> AsyncIterator:
        response = self._render(request)
        for step in range(1, self.total_steps + 1):
            progress = inpainter_pb2.InpaintProgress(step=step, total_steps=self.total_steps)
            yield inpainter_pb2.InpaintEvent(progress=progress)
        yield inpainter_pb2.InpaintEvent(result=response)


def draw_faces(
    size: tuple[int, int], faces: Sequence[tuple[float, float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """A (width, height) photo of palette faces (faceedit.export.portraits) and its true label map. Each face is
    (centre x, centre y, face width, roll degrees; positive leans clockwise as seen)."""
    photo = portrait(size, [FaceSpec(cx, cy, int(width), roll) for cx, cy, width, roll in faces])
    return photo.image, photo.labels
