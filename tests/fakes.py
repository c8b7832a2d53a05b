"""In-process stand-ins for the orchestrator's dependencies (faceedit.orchestrator.dependencies' protocols), so its
flow is tested without a Triton or an inpainter. They compute their answers from what they receive: nothing is
canned except what a test asks for (a label map, a render colour, a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import numpy as np

from faceedit.orchestrator.errors import InpainterFailedError
from faceedit.rpc.messages import from_raw, to_raw
from faceedit.v1 import inpainter_pb2, types_pb2

Labeller = Callable[[np.ndarray], np.ndarray]


def by_colour(palette: Mapping[tuple[int, int, int], int], tolerance: int = 24) -> Labeller:
    """Each pixel's class is that of the palette colour within tolerance (per channel) of it, else 0 (background):
    labels follow the image, so a re-parse sees what an edit painted."""
    colours = np.array(list(palette), np.int16)
    classes = np.array(list(palette.values()), np.uint8)

    def label(image: np.ndarray) -> np.ndarray:
        distance = np.abs(image[:, :, None, :].astype(np.int16) - colours[None, None]).max(axis=-1)
        nearest = distance.argmin(axis=-1)
        return np.where(distance.min(axis=-1) <= tolerance, classes[nearest], 0).astype(np.uint8)

    return label


class FakeParser:
    """A Parser whose labels come from `labels`: a function of each image, or one fixed (S,S) label map."""

    def __init__(self, labels: Labeller | np.ndarray, *, input_size: int = 64, failure: Exception | None = None):
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


# A palette portrait's colours by class (far apart, so the fake parser's tolerance never confuses two).
PALETTE = {
    (224, 172, 150): 1,  # skin
    (30, 30, 30): 4,  # l_eye
    (30, 110, 30): 5,  # r_eye
    (130, 70, 0): 6,  # l_brow
    (0, 70, 140): 7,  # r_brow
    (200, 30, 60): 11,  # u_lip
    (140, 0, 100): 12,  # l_lip
    (90, 40, 220): 13,  # hair
    (180, 140, 90): 17,  # neck
    (0, 170, 170): 18,  # cloth
}
COLOUR = {class_id: colour for colour, class_id in PALETTE.items()}
BACKGROUND = (128, 128, 128)


def _face_parts(u: np.ndarray, v: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Which pixels of a face (coordinates in face widths, upright: u right, v down, origin the face's centre)
    hold each class, in drawing order."""

    def ellipse(cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
        return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1

    return [
        (13, ellipse(0, -0.35, 0.58, 0.45)),
        (17, (np.abs(u) <= 0.17) & (v >= 0.4) & (v <= 0.95)),
        (1, ellipse(0, 0, 0.5, 0.65)),
        (6, (np.abs(u + 0.2) <= 0.1) & (np.abs(v + 0.27) <= 0.03)),
        (7, (np.abs(u - 0.2) <= 0.1) & (np.abs(v + 0.27) <= 0.03)),
        (4, ellipse(-0.2, -0.12, 0.08, 0.04)),
        (5, ellipse(0.2, -0.12, 0.08, 0.04)),
        (11, ellipse(0, 0.3, 0.18, 0.04)),
        (12, ellipse(0, 0.37, 0.17, 0.045)),
    ]


def draw_faces(
    size: tuple[int, int], faces: Sequence[tuple[float, float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """A (width, height) photo of palette faces on grey, and its true label map. Each face is (centre x, centre
    y, face width, roll degrees; positive leans clockwise as seen, as faceedit.core.upright measures it)."""
    width, height = size
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    labels = np.zeros((height, width), np.uint8)
    for cx, cy, face_width, roll in faces:
        reach = int(face_width * 1.1) + 2
        x0, x1 = max(0, int(cx) - reach), min(width, int(cx) + reach)
        y0, y1 = max(0, int(cy) - reach), min(height, int(cy) + reach)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        theta = np.radians(roll)
        dx, dy = (xs - cx) / face_width, (ys - cy) / face_width
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        for class_id, where in _face_parts(u, v):
            image[y0:y1, x0:x1][where] = COLOUR[class_id]
            labels[y0:y1, x0:x1][where] = class_id
    return image, labels
