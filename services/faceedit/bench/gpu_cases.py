"""gpu-check's cases. Each fills its row of the result and calls ctx.save() as parts finish, so a run cut short
still has what it measured. Timings are wall clock around calls that return host data (numpy), or synchronise."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch

from faceedit.bench.stats import summarize

HAIR_PROMPT = "wavy auburn hair, detailed strands"
LIPS_PROMPT = "matte dusty-rose lipstick"
GUIDANCE = 7.5
SEED = 42


def hair_mask(size: int) -> np.ndarray:
    """A hair-sized region (about a third of a portrait): the top of the head and down the sides."""
    mask = np.zeros((size, size), np.uint8)
    mask[: int(size * 0.35)] = 255
    mask[: int(size * 0.7), : int(size * 0.2)] = 255
    mask[: int(size * 0.7), int(size * 0.8) :] = 255
    return mask


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Sides:
    """Interleaved timing of named callables: one warm-up call each, then `runs` rounds; per side the p50 and the
    peak VRAM of its own calls (None off CUDA)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.ms: dict[str, list[float]] = {}
        self.peak_mb: dict[str, float | None] = {}
        self.first: dict[str, object] = {}

    def call(self, name: str, fn: Callable[[], object]) -> object:
        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sync(self.device)
        started = time.perf_counter()
        out = fn()
        sync(self.device)
        elapsed = (time.perf_counter() - started) * 1000
        if name in self.first:
            self.ms.setdefault(name, []).append(elapsed)
        else:
            self.first[name] = out
        if cuda:
            peak = torch.cuda.max_memory_allocated() / 2**20
            self.peak_mb[name] = max(self.peak_mb.get(name) or 0.0, peak)
        else:
            self.peak_mb[name] = None
        return out

    def run(self, sides: dict[str, Callable[[], object]], runs: int) -> None:
        for _ in range(runs + 1):  # the first round warms every side up and is not counted
            for name, fn in sides.items():
                self.call(name, fn)

    def summary(self, name: str) -> dict:
        stats = summarize(self.ms[name])
        return {
            "p50_ms": stats["p50"],
            "mean_ms": stats["mean"],
            "runs": len(self.ms[name]),
            "ms": self.ms[name],
            "peak_vram_mb": self.peak_mb[name],
        }


def _peak(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _engine(pipe, ctx, **overrides):
    from faceedit.inpainter.engine import Engine

    return Engine(pipe, working_size=ctx.settings.size, queue_size=1, prompt_cache_size=8, **overrides)


def _job(image: np.ndarray, mask: np.ndarray, prompt: str, steps: int, crop_mode: str, padding: int) -> object:
    """The engine's Job for a measured edit: strength 1 (every step runs), the thesis's guidance, a fixed seed."""
    from faceedit.inpainter.engine import Job

    return Job(
        image=image, mask=mask, prompt=prompt, negative_prompt="", strength=1.0, guidance_scale=GUIDANCE,
        steps=steps, seed=SEED, crop_mode=crop_mode, crop_padding=padding, color_match=False,
    )  # fmt: skip


def _hair_job(ctx) -> Callable[[], object]:
    """A fresh Job per call (a job carries its own cancellation flag) over inputs made once, outside the timing."""
    s = ctx.settings
    image, mask = ctx.portrait(), hair_mask(s.size)
    return lambda: _job(image, mask, HAIR_PROMPT, s.steps, "full", 32)


def engine_vs_bare(ctx, row: dict) -> None:
    """(a) The engine's run_blocking against a bare StableDiffusionXLInpaintPipeline call on the same modules,
    scheduler (DPM-Solver++), canvas, prompt, steps and seed."""
    from diffusers import StableDiffusionXLInpaintPipeline
    from PIL import Image

    s, pipe = ctx.settings, ctx.pipe()
    engine = _engine(pipe, ctx)
    bare = StableDiffusionXLInpaintPipeline(**pipe.components)
    bare.set_progress_bar_config(disable=True)
    image, mask = Image.fromarray(ctx.portrait()), Image.fromarray(hair_mask(s.size))

    def run_bare() -> np.ndarray:
        with torch.inference_mode():
            return bare(
                prompt=HAIR_PROMPT,
                negative_prompt="",
                image=image,
                mask_image=mask,
                height=s.size,
                width=s.size,
                strength=1.0,
                guidance_scale=GUIDANCE,
                num_inference_steps=s.steps,
                generator=torch.Generator(device=s.device).manual_seed(SEED),
                output_type="np",
            ).images[0]

    job = _hair_job(ctx)
    sides = Sides(s.device)
    sides.run({"engine": lambda: engine.run_blocking(job(), time.monotonic()), "bare": run_bare}, s.runs)
    engine.close()
    raw = np.asarray(sides.first["bare"])
    composited = sides.first["engine"].image[hair_mask(s.size) > 0]  # type: ignore[attr-defined]
    row.update(
        canvas=s.size,
        steps=s.steps,
        guidance_scale=GUIDANCE,
        dtype=str(pipe.unet.dtype),
        attention=sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()}),
        scheduler=type(pipe.scheduler).__name__,
        engine=sides.summary("engine"),
        bare=sides.summary("bare"),
        first_output={
            "nan": bool(np.isnan(raw).any()),
            # All but black: what an fp16 VAE overflow decodes to (NaN becomes 0 in the uint8 composite).
            "black": bool(np.nan_to_num(raw).max() < 1 / 255 or composited.max() == 0),
            "bare_mean": float(np.nanmean(raw)),
            "engine_mean_in_mask": float(composited.mean()),
        },
    )
    row["ratio"] = row["engine"]["p50_ms"] / row["bare"]["p50_ms"]
    row["peak_vram_mb"] = _peak(row["engine"]["peak_vram_mb"], row["bare"]["peak_vram_mb"])
    engine_ms, bare_ms = row["engine"]["p50_ms"], row["bare"]["p50_ms"]
    ctx.log(f"engine p50 {engine_ms:.0f} ms, bare {bare_ms:.0f} ms, ratio {row['ratio']:.3f}")


def crop(ctx, row: dict) -> None:
    """(b) A lips edit cropped at the native canvas, cropped in the fast canvas mode, and as the full frame."""
    from faceedit.bench.compare import lips_mask
    from faceedit.core.framing import detail_gain

    s, pipe = ctx.settings, ctx.pipe()
    engines = {mode: _engine(pipe, ctx, canvas_mode=mode) for mode in ("native", "fast")}
    image, mask = ctx.portrait(), lips_mask(s.size, s.size)
    plan = {
        "crop": (engines["native"], "crop"),
        "crop-fast": (engines["fast"], "crop"),
        "full": (engines["native"], "full"),
    }

    # The inpainter's default 32 px of context at SDXL's 1024, in proportion on smaller canvases (the dry run's).
    padding = max(4, s.size // 32)

    def side(engine, mode: str):
        return lambda: engine.run_blocking(_job(image, mask, LIPS_PROMPT, s.steps, mode, padding), time.monotonic())

    sides = Sides(s.device)
    # Three runs: a side's cost is its canvas, which the p50 of (a) already pins down for the full frame.
    sides.run({name: side(engine, mode) for name, (engine, mode) in plan.items()}, min(s.runs, 3))
    for engine in engines.values():
        engine.close()
    rows = {}
    for name in plan:
        result = sides.first[name]
        rows[name] = {
            **sides.summary(name),
            "canvas": result.canvas,
            "cropped": result.frame.cropped,  # type: ignore[attr-defined]
            "detail_gain": detail_gain(result.frame, result.canvas),
        }  # type: ignore[attr-defined]
    for r in rows.values():
        r["speedup_vs_full"] = rows["full"]["p50_ms"] / r["p50_ms"]
    row.update(image=s.size, region_fraction=float((mask > 0).mean()), padding=padding, steps=s.steps, sides=rows)
    row["peak_vram_mb"] = _peak(*(r["peak_vram_mb"] for r in rows.values()))
    ctx.log(", ".join(f"{n} {r['canvas']} px {r['p50_ms']:.0f} ms" for n, r in rows.items()))


def compile_engine(ctx, row: dict) -> None:
    """(c) The engine on a torch.compile'd UNet (the inpainter's --compile path): Engine.warm_up compiles every
    shape it serves; then the same hair edit as (a)."""
    from faceedit.inpainter.pipeline import compile_unet

    s, pipe = ctx.settings, ctx.pipe()
    compile_unet(pipe, backend=s.compile_backend, mode=s.compile_mode)
    try:
        engine = _engine(pipe, ctx)
        if s.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        engine.warm_up()
        row.update(
            backend=s.compile_backend,
            mode=s.compile_mode,
            warm_up_s=time.perf_counter() - started,
            warm_up_shapes=len(engine.warm_up_plan()),
        )
        ctx.log(f"compile warm-up {row['warm_up_s']:.1f} s for {row['warm_up_shapes']} shapes")
        ctx.save()
        job = _hair_job(ctx)
        sides = Sides(s.device)
        sides.run({"compiled": lambda: engine.run_blocking(job(), time.monotonic())}, s.runs)
        engine.close()
    finally:
        pipe.unet = pipe.unet._orig_mod
    summary = sides.summary("compiled")
    row.update(p50_ms=summary["p50_ms"], runs=summary["runs"], ms=summary["ms"], peak_vram_mb=summary["peak_vram_mb"])
    eager = ctx.result["cases"].get("engine_vs_bare", {})
    row["speedup_vs_eager"] = eager["engine"]["p50_ms"] / row["p50_ms"] if eager.get("status") == "ok" else None
    ctx.log(f"compiled p50 {row['p50_ms']:.0f} ms")


def _throughput(fn: Callable[[], object], device: str, batch: int, runs: int, max_s: float) -> dict:
    """images/s of fn over a batch: one warm-up call, then up to `runs` timed calls (at least 2) within max_s."""
    fn()
    sync(device)
    times: list[float] = []
    deadline = time.perf_counter() + max_s
    while len(times) < runs and (len(times) < 2 or time.perf_counter() < deadline):
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    p50 = float(np.median(times))
    return {"batch": batch, "runs": len(times), "images_per_s": batch / p50, "ms_per_image": p50 * 1000 / batch}


def parser(ctx, row: dict) -> None:
    """(e) The parser's whole graph (uint8 image in, labels out, as exported) at its serving size: PyTorch eager,
    the exported ONNX in onnxruntime (CUDA provider where this onnxruntime has it), torch.compile."""
    import onnxruntime as ort

    from faceedit.bench.kserve_parser import providers_for
    from faceedit.core.taxonomy import canonical_order
    from faceedit.export.onnx_export import ParserGraph
    from faceedit.export.segformer import SERVING_SIZE, load_parser, load_processor, preprocessing_from

    s = ctx.settings
    checkpoint, onnx = ctx.parser_checkpoint(), ctx.parser_onnx()
    model = load_parser(checkpoint)
    prep = preprocessing_from(load_processor(checkpoint).to_dict())
    order = canonical_order(model.config.id2label)
    cuda = s.device.startswith("cuda")
    graphs = {"fp32": ParserGraph(copy.deepcopy(model), prep, order).eval().to(s.device)}
    if cuda:  # PyTorch's CPU half kernels are slow: fp16 is a GPU measurement
        graphs["fp16"] = ParserGraph(copy.deepcopy(model), prep, order, fp16=True).eval().to(s.device)
    session = ort.InferenceSession(str(onnx), providers=providers_for("auto", ort.get_available_providers()))
    provider = session.get_providers()[0]
    row.update(
        model=ctx.parser_name,
        size=SERVING_SIZE,
        runs=[],
        onnxruntime_provider=provider,
        onnxruntime_available=ort.get_available_providers(),
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rng = np.random.default_rng(0)

    def measure(backend: str, dtype: str, batch: int, fn: Callable[[], object], **extra) -> None:
        found = _throughput(fn, s.device if backend != "onnxruntime" else "cpu", batch, s.parser_runs, 20.0)
        row["runs"].append({"backend": backend, "dtype": dtype, **found, **extra})
        ctx.log(f"parser {backend} {dtype} batch {batch}: {found['images_per_s']:.1f} img/s")
        ctx.save()

    def forward(graph, images):
        with torch.inference_mode():
            return graph(images)

    for batch in s.batches:
        pixels = rng.integers(0, 256, (batch, SERVING_SIZE, SERVING_SIZE, 3), dtype=np.uint8)
        images = torch.from_numpy(pixels).to(s.device)
        for dtype, graph in graphs.items():
            measure("eager", dtype, batch, lambda g=graph, i=images: forward(g, i))
        measure("onnxruntime", "fp32", batch, lambda p=pixels: session.run(["labels"], {"image": p}), provider=provider)
    skip = ctx.over_budget()
    if skip:
        row["compile"] = f"skipped: {skip}"
    dtype = "fp16" if cuda else "fp32"
    compiled = torch.compile(graphs[dtype], backend=s.compile_backend, dynamic=False)
    for batch in () if skip else s.batches:
        images = torch.from_numpy(rng.integers(0, 256, (batch, SERVING_SIZE, SERVING_SIZE, 3), dtype=np.uint8))
        started = time.perf_counter()
        forward(compiled, images.to(s.device))
        sync(s.device)
        compile_s = time.perf_counter() - started
        on_device = images.to(s.device)
        measure(
            f"compile:{s.compile_backend}", dtype, batch, lambda i=on_device: forward(compiled, i), compile_s=compile_s
        )
    row["peak_vram_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None


def editface(ctx, row: dict) -> None:
    """(f) EditFace end to end through the real servers (orchestrator, inpainter, parser) on this device, a photo
    lips edit, overhead as `faceedit compare overhead` defines it (its own code)."""
    from faceedit.bench.compare import run_overhead_benchmark
    from faceedit.bench.gpu_stack import StandInParserStack, triton_missing
    from faceedit.devstack.stack import LocalStack, StackConfig
    from faceedit.devstack.triton import free_port

    s = ctx.settings
    missing = triton_missing() if s.parser_server != "standin" else "--parser-server standin"
    if s.parser_server == "triton" and missing:
        raise RuntimeError(f"--parser-server triton, but {missing}")
    stack_class = StandInParserStack if missing else LocalStack
    row["parser_server"] = "KServe v2 stand-in (onnxruntime, no Triton)" if missing else "tritonserver"
    if missing:
        row["parser_server_reason"] = missing.splitlines()[0]
    config = StackConfig(
        parser_model=str(ctx.parser_checkpoint()),
        inpaint_model=str(ctx.sdxl_dir()),
        device=s.device,
        models_dir=ctx.models_dir,
        port=free_port(),
        working_size=s.size,
        workdir=ctx.workdir / "stack",
        ready_timeout_s=s.max_case_s,
    )
    ctx.parser_onnx()  # exported once, where the stack looks for it
    started = time.perf_counter()
    stack = stack_class(config).start(log=ctx.log)
    row["stack_start_s"] = time.perf_counter() - started
    try:
        row["parser_provider"] = stack.tritons[0].provider
        result = run_overhead_benchmark(
            stack.address,
            requests=s.requests,
            size=s.photo,
            steps=s.steps,
            output_format="jpeg",
            input_format="jpeg",
            region="lips",
            log=ctx.log,
        )
    finally:
        stack.stop()
    row.update(result)
    if result["errors"]:
        raise RuntimeError(f"EditFace requests failed: {result['errors']}")
    row["peak_vram_mb"] = None  # the models run in the stack's own processes
    if s.device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info()
        row["note"] = "VRAM is the inpainter's and parser's processes'; this process cannot read their peaks"
        row["device_memory_used_mb_after"] = (total - free) / 2**20


CASES: dict[str, Callable] = {
    # Run order: the longest and riskiest (compilation) last, so a run cut short has the others.
    "engine_vs_bare": engine_vs_bare,
    "crop": crop,
    "editface": editface,
    "parser": parser,
    "compile": compile_engine,
}
