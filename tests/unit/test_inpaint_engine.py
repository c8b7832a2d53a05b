"""The engine and pipeline loading, in process on the tiny SDXL pipeline: no server in between."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from faceedit.inpainter.engine import Cancelled, DeadlineExceeded, Engine, Job, PromptCache
from faceedit.inpainter.pipeline import PipelineOptions, load_pipeline, resolve_device, resolve_dtype

pytestmark = pytest.mark.slow  # runs the tiny SDXL pipeline


@pytest.fixture(scope="module")
def engine(tiny_inpaint_model: Path) -> Iterator[Engine]:
    engine = Engine(
        load_pipeline(PipelineOptions(str(tiny_inpaint_model))),
        working_size=128,
        min_crop_size=64,
        queue_size=1,
        prompt_cache_size=4,
    )
    yield engine
    engine.close()


def _job(**overrides) -> Job:
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    mask = np.zeros((90, 70), np.uint8)
    mask[40:55, 20:50] = 255
    fields = dict(
        image=image,
        mask=mask,
        prompt="red lips",
        negative_prompt="blurry",
        strength=1.0,
        guidance_scale=5.0,
        steps=6,
        seed=1,
        crop_mode="auto",
        crop_padding=8,
        color_match=False,
    )
    fields.update(overrides)
    return Job(**fields)


def test_loading_uses_dpm_solver_plus_plus_in_float32_on_cpu(engine: Engine) -> None:
    pipe = engine.pipe
    assert type(pipe).__name__ == "StableDiffusionXLInpaintPipeline"
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert pipe.unet.dtype == torch.float32 and pipe._progress_bar_config == {"disable": True}


def test_device_and_dtype_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_dtype("auto", "cuda:0") == torch.float16 and resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_steps_previews_and_the_prompt_cache(engine: Engine) -> None:
    seen: list[tuple[int, int, tuple | None]] = []
    job = _job(preview_size=16, on_step=lambda step, total, ms, preview: seen.append((step, total, preview.shape)))
    misses = engine.cache.misses
    result = engine.run_blocking(job, time.monotonic())
    assert [(s, t) for s, t, _ in seen] == [(i, 6) for i in range(1, 7)] and result.steps_run == 6
    assert all(shape[2] == 3 and max(shape[:2]) <= 16 for _, _, shape in seen)
    hits = engine.cache.hits
    again = engine.run_blocking(_job(), time.monotonic())
    assert engine.cache.hits == hits + 1 and engine.cache.misses == misses + 1  # same prompts: encoded once
    assert np.array_equal(again.image, result.image)  # and the cached embeddings give the same image


def test_a_cancelled_job_stops_at_the_next_step(engine: Engine) -> None:
    job = _job(steps=20)
    steps: list[int] = []

    def on_step(step: int, total: int, ms: float, preview: np.ndarray | None) -> None:
        steps.append(step)
        job.cancelled.set()

    job.on_step = on_step
    with pytest.raises(Cancelled):
        engine.run_blocking(job, time.monotonic())
    assert steps == [1]


def test_a_passed_deadline_stops_the_job(engine: Engine) -> None:
    with pytest.raises(DeadlineExceeded, match="deadline"):
        engine.run_blocking(_job(deadline=time.monotonic() - 1), time.monotonic())


def test_prompt_cache_is_lru() -> None:
    cache = PromptCache(2)
    calls = []
    for key in ["a", "b", "a", "c", "b"]:
        cache.get((key,), lambda key=key: calls.append(key) or (key,))
    assert calls == ["a", "b", "c", "b"]  # "a" was a hit; "b" was evicted by "c"
    assert (cache.hits, cache.misses) == (1, 4)


def test_the_canvas_defaults_to_the_pipelines_native_size(engine: Engine) -> None:
    """No --working-size: the UNet's sample size x the VAE scale factor (the tiny pipeline: 64 x 8), and crops
    render at it too unless the fast mode is asked for."""
    native = Engine(engine.pipe, queue_size=1, prompt_cache_size=1)
    fast = Engine(engine.pipe, canvas_mode="fast", queue_size=1, prompt_cache_size=1)
    try:
        assert (native.native_size, native.working_size, native.min_crop_size) == (512, 512, 512)
        assert native.buckets == (512,)
        assert (fast.working_size, fast.min_crop_size, fast.buckets) == (512, 256, (256, 384, 512))
        assert not native.compiled and native.warm_up_plan() == [(512, 2.0)]  # eager: one warm-up call
    finally:
        native.close()
        fast.close()


def test_with_compile_warm_up_compiles_every_bucket_and_live_calls_compile_nothing(tiny_inpaint_model: Path) -> None:
    """torch.compile (dynamo with the eager backend: the same graph capture and shape guards as inductor, without
    generating kernels, which would take minutes on two CPU cores) at a 128 px working size in fast mode."""
    from torch._dynamo.utils import counters

    from faceedit.inpainter.pipeline import compile_unet

    torch._dynamo.reset()
    pipe = load_pipeline(PipelineOptions(str(tiny_inpaint_model)))
    compile_unet(pipe, backend="eager", mode=None)
    engine = Engine(pipe, working_size=128, canvas_mode="fast", queue_size=1, prompt_cache_size=4)
    try:
        assert engine.compiled and engine.buckets == (64, 128)
        assert engine.warm_up_plan() == [(64, 2.0), (64, 1.0), (128, 2.0), (128, 1.0)]
        engine.warm_up()
        warmed = counters["stats"]["unique_graphs"]
        assert warmed == 4  # one graph per (canvas, guidance on/off): the counter sees compilations
        rng = np.random.default_rng(3)
        for height, width, guidance, mode in ((90, 70, 5.0, "auto"), (300, 200, 1.0, "crop"), (50, 400, 12.0, "full")):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            mask = np.zeros((height, width), np.uint8)
            mask[height // 3 : height // 2, width // 4 : width // 2] = 255
            result = engine.run_blocking(
                _job(image=image, mask=mask, guidance_scale=guidance, crop_mode=mode, steps=2), time.monotonic()
            )
            assert result.canvas in engine.buckets
        assert counters["stats"]["unique_graphs"] == warmed  # live calls reused the warmed graphs
    finally:
        engine.close()
        torch._dynamo.reset()
