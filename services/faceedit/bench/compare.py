"""The comparisons the team tracks. Each runs both sides in one process tree and prints both and their ratio."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from faceedit.bench.loadgen import run_level
from faceedit.bench.stats import NOT_OVERHEAD, summarize
from faceedit.bench.targets import caller_region, editface_target, parser_target, photo, portrait, present_class
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2


def _thesis_parse(model, processor, image: np.ndarray) -> np.ndarray:
    """Thesis annexure 6: SegformerImageProcessor + PyTorch eager + F.interpolate + argmax, per request."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    inputs = processor(images=Image.fromarray(image), return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    upsampled = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
    return upsampled.argmax(dim=1)[0].numpy().astype(np.uint8)


def _eager_throughput(model, processor, image: np.ndarray, concurrency: int, requests: int) -> dict:
    latencies: list[float] = []

    def one(_: int) -> None:
        started = time.monotonic()
        _thesis_parse(model, processor, image)
        latencies.append((time.monotonic() - started) * 1000)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # warm-up
        latencies.clear()
        started = time.monotonic()
        list(pool.map(one, range(requests)))
        elapsed = time.monotonic() - started
    return {"throughput_rps": requests / elapsed, "latency_ms": summarize(latencies)}


def run_parser_comparison(
    concurrency: tuple[int, ...] = (1, 8),
    requests: int = 48,
    size: int = 512,
    instances: int | None = None,
    workdir: Path | None = None,
    log=print,
) -> dict:
    """B0-size random SegFormer at size x size: Triton (uint8 in, labels out, dynamic batching) vs thesis path."""
    from faceedit.devstack.triton import TritonServer
    from faceedit.export.onnx_export import export_parser
    from faceedit.export.segformer import build_random_parser, load_parser, load_processor

    workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-bench-parser-"))
    checkpoint = build_random_parser("b0", workdir / "b0")
    onnx = workdir / "b0.onnx"
    export_parser(checkpoint, onnx, parity_batch=1)
    model, processor = load_parser(checkpoint), load_processor(checkpoint)
    image = portrait(size)
    results = []
    with TritonServer(onnx, workdir=workdir / "triton", instance_count=instances) as server:
        for c in concurrency:

            async def measure(c: int = c):
                # The aio client belongs to the event loop it is created in.
                target = parser_target(server.grpc_url, image, size=size, timeout_s=120)
                try:
                    return await run_level(target, concurrency=c, requests=requests, warmup=c)
                finally:
                    await target.close()

            level = asyncio.run(measure())
            eager = _eager_throughput(model, processor, image, c, requests)
            row = {
                "concurrency": c,
                "triton_rps": level.ok / level.duration_s,
                "triton_p50_ms": summarize(level.latencies_ms)["p50"],
                "errors": dict(level.errors),
                "eager_rps": eager["throughput_rps"],
                "eager_p50_ms": eager["latency_ms"]["p50"],
            }
            row["ratio"] = row["triton_rps"] / row["eager_rps"]
            log(
                f"concurrency {c}: triton {row['triton_rps']:.2f} req/s vs thesis eager {row['eager_rps']:.2f} "
                f"req/s -> {row['ratio']:.2f}x"
            )
            results.append(row)
    return {
        "comparison": "parser",
        "model": "segformer-b0 (random init)",
        "size": size,
        "requests": requests,
        "levels": results,
    }


CROP_SIDES = ("crop", "crop-fast", "full")


def run_crop_comparison(
    size: int = 1024,
    working_size: int = 1024,
    steps: int = 4,
    repeats: int = 2,
    pipeline: str = "small",
    workdir: Path | None = None,
    log=print,
) -> dict:
    """A lips-sized region three ways, same pipeline, steps, seed and image: cropped at the default native canvas
    (working_size: SDXL's 1024), cropped in the fast mode (--canvas-mode fast), and the full frame. Reports each
    side's latency, canvas and detail gain (the region's pixels in the render per pixel in the input)."""
    from faceedit.core.framing import detail_gain
    from faceedit.export.tiny_sdxl import build_tiny_sdxl
    from faceedit.inpainter.engine import Engine, Job
    from faceedit.inpainter.pipeline import PipelineOptions, load_pipeline

    workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-bench-crop-"))
    pipe = load_pipeline(PipelineOptions(str(build_tiny_sdxl(workdir / pipeline, size=pipeline))))
    engines = {
        mode: Engine(pipe, working_size=working_size, canvas_mode=mode, queue_size=1, prompt_cache_size=8)
        for mode in ("native", "fast")
    }
    sides = {
        "crop": (engines["native"], "crop"),
        "crop-fast": (engines["fast"], "crop"),
        "full": (engines["native"], "full"),
    }
    image = portrait(size)
    mask = np.zeros((size, size), np.uint8)
    y0, x0 = int(size * 0.66), int(size * 0.44)
    mask[y0 : y0 + int(size * 0.06), x0 : x0 + int(size * 0.12)] = 255  # ~0.7% of the image: lips
    timings: dict[str, list[float]] = {side: [] for side in sides}
    results = {}
    for _ in range(repeats + 1):  # the first round warms every side up and is not counted
        for side, (engine, mode) in sides.items():
            job = Job(
                image=image,
                mask=mask,
                prompt="matte dusty-rose lipstick",
                negative_prompt="",
                strength=1.0,
                guidance_scale=12.0,
                steps=steps,
                seed=42,
                crop_mode=mode,
                crop_padding=32,
                color_match=False,
            )
            started = time.monotonic()
            results[side] = engine.run_blocking(job, started)
            timings[side].append((time.monotonic() - started) * 1000)
    for engine in engines.values():
        engine.close()
    rows = {
        side: {
            "canvas": results[side].canvas,
            "cropped": results[side].frame.cropped,
            "ms": float(np.median(timings[side][1:])),
            "detail_gain": detail_gain(results[side].frame, results[side].canvas),
        }
        for side in sides
    }
    full_ms = rows["full"]["ms"]
    for row in rows.values():
        row["speedup_vs_full"] = full_ms / row["ms"]
    coverage = float((mask > 0).mean())
    log(
        f"lips region {coverage:.2%} of a {size}x{size} image ({int(size * 0.12)}x{int(size * 0.06)} px), {steps} "
        f"steps, {pipeline} UNet, working size {working_size}:"
    )
    for side, row in rows.items():
        log(
            f"  {side:9s} {row['canvas']:5d} px canvas {row['ms']:8.0f} ms  {row['speedup_vs_full']:5.2f}x the full "
            f"frame's speed  detail gain {row['detail_gain']:6.2f}x"
        )
    return {
        "comparison": "crop",
        "pipeline": pipeline,
        "size": size,
        "working_size": working_size,
        "steps": steps,
        "region_fraction": coverage,
        "sides": rows,
        # The default (native canvas) crop against the full frame, as before.
        "crop_canvas": rows["crop"]["canvas"],
        "crop_ms": rows["crop"]["ms"],
        "full_ms": full_ms,
        "ratio": full_ms / rows["crop"]["ms"],
    }


def lips_mask(width: int, height: int) -> np.ndarray:
    """A lips-sized region (0.5% of the photo, where a portrait's mouth is): what a real parser gives for lips."""
    mask = np.zeros((height, width), np.uint8)
    x0, y0 = int(width * 0.45), int(height * 0.65)
    mask[y0 : y0 + int(height * 0.05), x0 : x0 + int(width * 0.1)] = 255
    return mask


def run_overhead_benchmark(
    address: str,
    requests: int = 20,
    size: tuple[int, int] = (512, 512),
    steps: int = 4,
    output_format: str = "png",
    input_format: str = "png",
    region: str = "class",
    working_size: int | None = None,
    warmup: int = 2,
    log=print,
    tick: Callable[[], None] = lambda: None,
) -> dict:
    """EditFace overhead (faceedit.bench.stats.overhead_ms: end to end minus parse, queue and denoise) at p50, of
    sequential requests (so the inpainter never queues). The overhead includes decoding the caller's image (sent
    as input_format), letterboxing, masks, the region hop, blending at full resolution and encoding the response
    in output_format: a PNG costs several times a JPEG at both ends.

    size is (width, height). region "class": the class the random parser finds most of (spread over the photo);
    "lips": a lips-sized caller mask, as a real parser's lips would be, so the edit crops as it would in production.
    working_size: the inpainter's canvas the stack runs with, recorded with the result (None: a running server's,
    not known here). tick is called after each measured request (a progress bar).
    """
    width, height = size
    image = photo(width, height)
    if region == "lips":
        mask = caller_region(lips_mask(width, height), "u_lip")
    else:
        mask = types_pb2.MaskOptions(classes=[present_class(address, image)])
    edit = fe.Edit(prompt="matte dusty-rose lipstick", num_inference_steps=steps, mask=mask)
    canvas = "the server's working size" if working_size is None else f"working size {working_size}"
    config = (
        f"EditFace {width}x{height} {input_format} -> {output_format}, {region} region, {steps} steps, {canvas}, "
        f"{requests} sequential requests after {warmup} warm-up"
    )
    log(f"{config} ...")

    async def measure():
        target = editface_target(
            address, image, [edit], timeout_s=600, output_format=output_format, input_format=input_format
        )
        try:
            return await run_level(target, concurrency=1, requests=requests, warmup=warmup, tick=tick)
        finally:
            await target.close()

    level = asyncio.run(measure())
    summary = level.summary()
    e2e = summary["latency_ms"]["p50"]
    overhead = summary["overhead_ms"]["p50"] if summary["overhead_ms"] else float("nan")
    log(
        f"{config}: end-to-end p50 {e2e:.1f} ms, {' + '.join(NOT_OVERHEAD)} {e2e - overhead:.1f} ms, overhead p50 "
        f"{overhead:.1f} ms = {overhead / e2e:.2%} of end-to-end"
    )
    return {
        "comparison": "overhead",
        "overhead_definition": f"end to end minus ({' + '.join(NOT_OVERHEAD)}), p50",
        "width": width,
        "height": height,
        "region": region,
        "steps": steps,
        "working_size": working_size,
        "output_format": output_format,
        "input_format": input_format,
        "requests": requests,
        "warmup": warmup,
        "errors": summary["errors"],
        "e2e_p50_ms": e2e,
        "overhead_p50_ms": overhead,
        "overhead_fraction": overhead / e2e,
        "stages_ms": summary["stages_ms"],
    }


def run_batching_comparison(
    size: int = 512,
    steps: int = 4,
    batch: int = 2,
    repeats: int = 2,
    pipeline: str = "small",
    workdir: Path | None = None,
    log=print,
) -> dict:
    """Would micro-batching compatible requests pay off? `batch` requests as one pipeline call vs one by one."""
    import torch
    from PIL import Image

    from faceedit.export.tiny_sdxl import build_tiny_sdxl
    from faceedit.inpainter.pipeline import PipelineOptions, load_pipeline

    workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-bench-batch-"))
    pipe = load_pipeline(PipelineOptions(str(build_tiny_sdxl(workdir / pipeline, size=pipeline))))
    image = Image.fromarray(portrait(size))
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : size // 2, size // 4 : 3 * size // 4] = 255
    mask_image = Image.fromarray(mask)
    common = {
        "strength": 1.0,
        "guidance_scale": 12.0,
        "num_inference_steps": steps,
        "height": size,
        "width": size,
        "output_type": "np",
    }

    def one_by_one() -> None:
        for i in range(batch):
            pipe(
                prompt="a face",
                image=image,
                mask_image=mask_image,
                generator=torch.Generator().manual_seed(i),
                **common,
            )

    def batched() -> None:
        pipe(
            prompt=["a face"] * batch,
            image=[image] * batch,
            mask_image=[mask_image] * batch,
            generator=[torch.Generator().manual_seed(i) for i in range(batch)],
            **common,
        )

    timings: dict[str, list[float]] = {"sequential": [], "batched": []}
    for _ in range(repeats + 1):  # first round is warm-up
        for name, run in (("sequential", one_by_one), ("batched", batched)):
            started = time.monotonic()
            run()
            timings[name].append((time.monotonic() - started) * 1000)
    sequential = float(np.median(timings["sequential"][1:]))
    batched_ms = float(np.median(timings["batched"][1:]))
    log(
        f"{batch} requests at {size}x{size}, {steps} steps, {pipeline} UNet on {pipe.device}: one by one "
        f"{sequential:.0f} ms vs one batched call {batched_ms:.0f} ms -> {sequential / batched_ms:.2f}x"
    )
    return {
        "comparison": "batching",
        "device": str(pipe.device),
        "batch": batch,
        "size": size,
        "steps": steps,
        "sequential_ms": sequential,
        "batched_ms": batched_ms,
        "ratio": sequential / batched_ms,
    }
