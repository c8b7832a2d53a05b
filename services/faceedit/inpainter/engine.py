"""One pipeline, one worker thread, an admission-controlled queue in front of it.

GPU work is serialised (one request denoises at a time). A request is admitted only if it can start within the
maximum queue wait and finish within its deadline (admission.py), so overload is refused at the door
(RESOURCE_EXHAUSTED with a retry-after estimate) instead of piling up memory and latency. Cancellation and
deadlines are checked between denoising steps, so an abandoned request frees the pipeline within one step.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from faceedit.core.framing import (
    Frame,
    canvas_buckets,
    canvas_inputs,
    canvas_size,
    native_canvas,
    paste_back,
    plan_frame,
    resolve_canvas,
    whole,
)
from faceedit.inpainter.admission import Queue, Refusal, ServiceTimeModel

# SDXL latent -> RGB projection (a least-squares fit used by ComfyUI previews): a preview costs no VAE decode.
LATENT_RGB = torch.tensor(
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
)
LATENT_RGB_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])

log = logging.getLogger(__name__)


class NotAdmitted(Exception):
    """The request was refused at the door (see admission.Refusal)."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(refusal.message)


class Cancelled(Exception):
    """The caller went away; raised inside the denoising loop to stop it."""


class DeadlineExceeded(Exception):
    pass


@dataclass(kw_only=True)
class Job:
    image: np.ndarray
    mask: np.ndarray
    prompt: str
    negative_prompt: str
    strength: float
    guidance_scale: float
    steps: int
    seed: int
    crop_mode: str  # auto | crop | full
    crop_padding: int
    color_match: bool
    preview_size: int = 0
    precropped: bool = False  # the image is the region to render, cut by the caller
    blend: bool = True  # False: return the raw render inside the frame; the caller blends
    deadline: float | None = None  # time.monotonic() seconds
    on_step: Callable[[int, int, float, np.ndarray | None], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def steps_to_run(self) -> int:
        """What diffusers runs for strength < 1: the last strength x steps of the schedule."""
        return max(1, int(self.steps * self.strength))


@dataclass
class Result:
    image: np.ndarray
    frame: Frame
    canvas: int
    steps_run: int
    queue_ms: float
    denoise_ms: float
    composite_ms: float


class PromptCache:
    """LRU of encoded prompts: cascades and batch clients repeat prompts, and encoding costs two CLIP passes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, tuple] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, compute: Callable[[], tuple]) -> tuple:
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = compute()
        if self.size > 0:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def latent_preview(latents: torch.Tensor, size: int) -> np.ndarray:
    rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), LATENT_RGB) + LATENT_RGB_BIAS
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()
    image = Image.fromarray(pixels)
    image.thumbnail((size, size))
    return np.asarray(image)


class Engine:
    def __init__(
        self,
        pipe,
        *,
        working_size: int | None = None,
        min_crop_size: int | None = None,
        canvas_mode: str = "native",
        queue_size: int,
        prompt_cache_size: int,
        max_queue_wait_s: float = 60.0,
        on_denoise_step: Callable[[], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
        on_queue_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.pipe = pipe
        self.on_denoise_step = on_denoise_step
        self.on_queue_depth = on_queue_depth
        self.on_queue_wait = on_queue_wait
        # None: the pipeline's native canvas, and crops at it too unless canvas_mode is "fast" (framing.py).
        self.native_size = native_canvas(pipe.unet.config.sample_size, pipe.vae_scale_factor)
        canvas = resolve_canvas(working_size, min_crop_size, canvas_mode, self.native_size)
        self.working_size, self.min_crop_size = canvas
        self.buckets = canvas_buckets(self.working_size, self.min_crop_size)
        if self.compiled:
            # Every warmed shape must stay compiled: past dynamo's recompile limit (8) it would run eagerly.
            limit = torch._dynamo.config.recompile_limit
            torch._dynamo.config.recompile_limit = max(limit, len(self.warm_up_plan()))
        log.info(
            "canvas: whole frames at %d px (native %d), crops at %s px",
            self.working_size,
            self.native_size,
            ", ".join(map(str, self.buckets)),
        )
        self.cache = PromptCache(prompt_cache_size)
        self.queue = Queue(capacity=queue_size, max_wait_s=max_queue_wait_s, model=ServiceTimeModel())
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")

    @property
    def waiting(self) -> int:
        return len(self.queue.waiting)

    @property
    def pending(self) -> int:
        """Jobs admitted and not finished: the running one and those waiting."""
        with self._lock:
            return len(self.queue.waiting) + (self.queue.running is not None)

    def estimated_wait(self) -> float:
        """Seconds a request admitted now would wait for the pipeline."""
        with self._lock:
            return self.queue.estimated_wait()

    def frame_for(self, job: Job) -> tuple[Frame, int]:
        """Where the job renders and at which square canvas."""
        frame = (
            whole(job.image, cropped=True)
            if job.precropped
            else plan_frame(job.mask, job.crop_mode, padding=job.crop_padding)
        )
        return frame, canvas_size(frame, working_size=self.working_size, min_crop_size=self.min_crop_size)

    async def submit(self, job: Job) -> Result:
        """Run job on the pipeline thread; NotAdmitted when it could not start within the maximum queue wait or
        finish within its deadline, or the queue is full."""
        frame, canvas = self.frame_for(job)
        key = next(self._ids)
        with self._lock:
            refusal = self.queue.admit(key, self.queue.model.estimate(job.steps_to_run, canvas), job.deadline)
        if refusal is not None:
            raise NotAdmitted(refusal)
        self._report_depth()
        admitted = time.monotonic()
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, self._run_admitted, key, job, frame, canvas, admitted
            )
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                job.cancelled.set()  # the worker notices between steps; wait so the slot is really free
                # gather also consumes the worker's expected Cancelled, which asyncio would otherwise log.
                await asyncio.gather(future, return_exceptions=True)
                raise
        finally:
            with self._lock:
                self.queue.forget(key)
            self._report_depth()

    def _run_admitted(self, key: int, job: Job, frame: Frame, canvas: int, admitted: float) -> Result:
        with self._lock:
            self.queue.start(key)
        self._report_depth()
        try:
            return self.run_blocking(job, admitted, frame=frame, canvas=canvas)
        finally:
            with self._lock:
                self.queue.finish()

    def _report_depth(self) -> None:
        if self.on_queue_depth is not None:
            self.on_queue_depth(self.waiting)

    def _check(self, job: Job) -> None:
        if job.cancelled.is_set():
            raise Cancelled()
        if job.deadline is not None and time.monotonic() > job.deadline:
            raise DeadlineExceeded("the request's deadline passed during inpainting")

    def _embeddings(self, job: Job) -> dict:
        cfg = job.guidance_scale > 1.0
        key = (job.prompt, job.negative_prompt, cfg)

        def encode() -> tuple:
            with torch.inference_mode():
                return self.pipe.encode_prompt(
                    prompt=job.prompt,
                    device=self.pipe._execution_device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=cfg,
                    negative_prompt=job.negative_prompt,
                )

        embeds, negative, pooled, negative_pooled = self.cache.get(key, encode)
        return {
            "prompt_embeds": embeds,
            "negative_prompt_embeds": negative,
            "pooled_prompt_embeds": pooled,
            "negative_pooled_prompt_embeds": negative_pooled,
        }

    def run_blocking(
        self, job: Job, admitted: float, *, frame: Frame | None = None, canvas: int | None = None
    ) -> Result:
        """Run job on the calling thread (the pipeline worker, or a benchmark that owns the engine)."""
        started = time.monotonic()
        queue_ms = (started - admitted) * 1000
        if self.on_queue_wait is not None:
            self.on_queue_wait(queue_ms / 1000)
        self._check(job)
        if frame is None or canvas is None:
            frame, canvas = self.frame_for(job)
        canvas_image, mask_canvas, placement = canvas_inputs(job.image, job.mask, frame, canvas)
        total = job.steps_to_run
        steps_run = 0
        step_ends: list[float] = []

        def on_step_end(pipe, step: int, timestep, kwargs: dict) -> dict:
            nonlocal steps_run
            steps_run = step + 1
            step_ends.append(time.monotonic())
            if self.on_denoise_step is not None:
                self.on_denoise_step()
            self._check(job)
            if job.on_step is not None:
                preview = latent_preview(kwargs["latents"], job.preview_size) if job.preview_size else None
                job.on_step(step + 1, total, (time.monotonic() - started) * 1000, preview)
            return {}

        device = self.pipe._execution_device
        generator = torch.Generator(device="cpu" if device.type == "mps" else device).manual_seed(job.seed)
        with torch.inference_mode():
            output = self.pipe(
                image=Image.fromarray(canvas_image),
                mask_image=Image.fromarray(mask_canvas),
                height=canvas,
                width=canvas,
                strength=job.strength,
                guidance_scale=job.guidance_scale,
                num_inference_steps=job.steps,
                generator=generator,
                output_type="np",
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                **self._embeddings(job),
            )
        generated = (np.clip(output.images[0], 0, 1) * 255).round().astype(np.uint8)
        denoised = time.monotonic()
        result = paste_back(
            job.image, generated, job.mask, frame, placement, match_colors=job.color_match, blend=job.blend
        )
        done = time.monotonic()
        step_s = (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1) if len(step_ends) > 1 else None
        with self._lock:
            self.queue.model.observe(steps_run, canvas, done - started, step_s)
        return Result(result, frame, canvas, steps_run, queue_ms, (denoised - started) * 1000, (done - denoised) * 1000)

    @property
    def compiled(self) -> bool:
        """Whether the UNet is torch.compile'd (an OptimizedModule keeps the original as _orig_mod)."""
        return hasattr(self.pipe.unet, "_orig_mod")

    def warm_up_plan(self) -> list[tuple[int, float]]:
        """(canvas, guidance scale) pairs warm_up runs. Compiled: every bucket, with and without classifier-free
        guidance (guidance > 1 doubles the UNet's batch: another shape), so no live call meets a new shape and
        compiles. Eager: the working canvas once, for lazy initialisation and a measured step time."""
        if not self.compiled:
            return [(self.working_size, 2.0)]
        return [(canvas, guidance) for canvas in self.buckets for guidance in (2.0, 1.0)]

    def warm_up(self) -> None:
        """Two steps per warm_up_plan entry, so the first caller pays for no lazy initialisation, kernel selection
        or compilation, and admission starts from a measured step time. Runs before the service reports SERVING."""
        for canvas, guidance in self.warm_up_plan():
            started = time.monotonic()
            image = np.full((canvas, canvas, 3), 128, np.uint8)
            mask = np.zeros(image.shape[:2], np.uint8)
            mask[: canvas // 2] = 255
            job = Job(
                image=image,
                mask=mask,
                prompt="a face",
                negative_prompt="",
                strength=1.0,
                guidance_scale=guidance,
                steps=2,
                seed=0,
                crop_mode="full",
                crop_padding=0,
                color_match=False,
            )
            self.run_blocking(job, time.monotonic(), frame=whole(image), canvas=canvas)
            log.info("warm-up: %d px canvas, guidance %.0f, %.1f s", canvas, guidance, time.monotonic() - started)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
