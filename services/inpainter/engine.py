"""One pipeline, one worker thread, a bounded queue in front of it.

GPU work is serialised (one request denoises at a time); waiting requests are bounded so overload is refused
early (RESOURCE_EXHAUSTED) instead of piling up memory and latency. Cancellation and deadlines are checked
between denoising steps, so an abandoned request frees the pipeline within one step.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from faceedit.inpainter.framing import Frame, canvas_inputs, paste_back, plan_frame

# SDXL latent -> RGB projection (a least-squares fit used by ComfyUI previews): a preview costs no VAE decode.
LATENT_RGB = torch.tensor(
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
)
LATENT_RGB_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])


class QueueFullError(Exception):
    def __init__(self, depth: int, retry_after_ms: int) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(
            f"inpainter queue is full ({depth} requests waiting); retry in about {retry_after_ms} ms "
            "or add inpainter replicas"
        )


class Cancelled(Exception):
    """The caller went away; raised inside the denoising loop to stop it."""


class DeadlineExceeded(Exception):
    pass


@dataclass
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
    deadline: float | None = None  # time.monotonic() seconds
    on_step: Callable[[int, int, float, np.ndarray | None], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Result:
    image: np.ndarray
    frame: Frame
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
        working_size: int,
        min_crop_size: int,
        queue_size: int,
        prompt_cache_size: int,
        on_denoise_step: Callable[[], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.pipe = pipe
        self.on_denoise_step = on_denoise_step
        self.on_queue_depth = on_queue_depth
        self.working_size = working_size
        self.min_crop_size = min_crop_size
        self.queue_size = queue_size
        self.cache = PromptCache(prompt_cache_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")
        self._in_flight = 0
        self._last_run_s = 1.0

    @property
    def waiting(self) -> int:
        return max(0, self._in_flight - 1)

    async def submit(self, job: Job) -> Result:
        """Run job on the pipeline thread; QueueFullError when queue_size requests already wait."""
        if self._in_flight > self.queue_size:
            raise QueueFullError(self.waiting, int(self._last_run_s * 1000 * max(1, self.waiting)))
        self._in_flight += 1
        self._report_depth()
        admitted = time.monotonic()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, self.run_blocking, job, admitted)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                job.cancelled.set()  # the worker notices between steps; wait so the slot is really free
                # gather also consumes the worker's expected Cancelled, which asyncio would otherwise log.
                await asyncio.gather(future, return_exceptions=True)
                raise
        finally:
            self._in_flight -= 1
            self._report_depth()

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

    def run_blocking(self, job: Job, admitted: float) -> Result:
        """Run job on the calling thread (the pipeline worker, or a benchmark that owns the engine)."""
        started = time.monotonic()
        queue_ms = (started - admitted) * 1000
        self._check(job)
        frame = plan_frame(
            job.mask,
            job.crop_mode,
            padding=job.crop_padding,
            working_size=self.working_size,
            min_crop_size=self.min_crop_size,
        )
        canvas, mask_canvas, placement = canvas_inputs(job.image, job.mask, frame)
        total = max(1, int(job.steps * job.strength))
        steps_run = 0

        def on_step_end(pipe, step: int, timestep, kwargs: dict) -> dict:
            nonlocal steps_run
            steps_run = step + 1
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
                image=Image.fromarray(canvas),
                mask_image=Image.fromarray(mask_canvas),
                height=frame.canvas,
                width=frame.canvas,
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
        result = paste_back(job.image, generated, job.mask, frame, placement, match_colors=job.color_match)
        done = time.monotonic()
        self._last_run_s = done - started
        return Result(result, frame, steps_run, queue_ms, (denoised - started) * 1000, (done - denoised) * 1000)

    def warm_up(self) -> None:
        """One small generation, so the first caller does not pay for lazy initialisation and kernel selection."""
        image = np.full((self.min_crop_size, self.min_crop_size, 3), 128, np.uint8)
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[: self.min_crop_size // 2] = 255
        job = Job(image, mask, "a face", "", 1.0, 2.0, 2, 0, "full", 0, False)
        self.run_blocking(job, time.monotonic())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
