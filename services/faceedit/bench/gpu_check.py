"""`faceedit gpu-check`: the stack's own code paths on the real architectures (random weights), every figure the
GPU questions need in one run: engine vs bare diffusers, crop vs full frame, compiled engine, parser backends,
EditFace end to end, peak VRAM per case. --tiny runs the same cases with the tiny models (the CPU dry run).

The result (gpu-check.json, gpu-check.md) is rewritten after every case and every part of one, so a run cut
short by its timeout still returns what it measured; progress lines go to stdout as it goes.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from faceedit.bench import gpu_report
from faceedit.bench.gpu_cases import CASES


@dataclass(frozen=True)
class Settings:
    tiny: bool
    device: str
    size: int  # square canvas of the inpainting cases (SDXL's native 1024)
    steps: int
    runs: int  # timed runs per side after one warm-up
    photo: tuple[int, int]  # EditFace's photo, width x height
    requests: int  # EditFace requests measured (after two warm-up ones)
    batches: tuple[int, ...]  # parser batch sizes
    parser_runs: int  # timed parser calls per backend and batch (fewer when they take long)
    compile_backend: str
    compile_mode: str | None
    parser_server: str  # auto | triton | standin
    cases: tuple[str, ...]
    budget_s: float  # cases that would start later than this are skipped (0: no limit)
    max_case_s: float  # a bound for waits inside a case (servers becoming ready, parser timing loops)


FULL = {
    "size": 1024,
    "steps": 30,
    "runs": 5,
    "photo": (4032, 3024),
    "requests": 5,
    "batches": (1, 8),
    "parser_runs": 10,
}
# The dry run: tiny models, a few steps, small canvases and batches, a small photo instead of 12 MP (2 CPU cores).
TINY = {"size": 128, "steps": 2, "runs": 2, "photo": (640, 480), "requests": 2, "batches": (1, 2), "parser_runs": 2}


class Context:
    """What the cases share: settings, the models (built once, on first use), the result, progress output."""

    def __init__(self, settings: Settings, out: Path, workdir: Path, command: str) -> None:
        self.settings, self.out, self.workdir = settings, out, workdir
        self.models_dir = workdir / "models"
        self.started = time.monotonic()
        self._pipe = None
        self._portrait: np.ndarray | None = None
        self._sdxl_dir: Path | None = None
        self._parser: Path | None = None
        self._onnx: Path | None = None
        self.parser_name = "segformer-tiny (random init)" if settings.tiny else "segformer-b5 (random init)"
        self.result: dict = {
            "schema": 1,
            "mode": "tiny" if settings.tiny else "full",
            "command": command,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "environment": gpu_report.environment(settings.device),
            "settings": asdict(settings),
            "targets": gpu_report.TARGETS,
            "models": {},
            "notes": notes(settings),
            "cases": {name: {"status": "pending"} for name in settings.cases},
        }

    def over_budget(self) -> str | None:
        """Why no more work should start (the run's --budget is spent), else None."""
        elapsed = time.monotonic() - self.started
        if self.settings.budget_s and elapsed > self.settings.budget_s:
            return f"budget: {elapsed:.0f} s of {self.settings.budget_s:.0f} s used"
        return None

    def log(self, line: str) -> None:
        print(f"[gpu-check {time.monotonic() - self.started:6.1f}s] {line}", flush=True)

    def save(self) -> None:
        self.result["elapsed_s"] = time.monotonic() - self.started
        gpu_report.write(self.result, self.out)

    def portrait(self) -> np.ndarray:
        """The bundled portrait at the canvas size, made once: resizing it is no part of what is timed."""
        if self._portrait is None:
            from faceedit.bench.targets import portrait

            self._portrait = portrait(self.settings.size)
        return self._portrait

    def _timed(self, what: str, build):
        started = time.perf_counter()
        self.log(f"building {what} ...")
        value = build()
        self.result["models"][what] = {"seconds": time.perf_counter() - started, "path": str(value)}
        self.log(f"built {what} in {time.perf_counter() - started:.1f} s")
        self.save()
        return value

    def sdxl_dir(self) -> Path:
        """The inpainting pipeline as a diffusers directory: what the inpainter server loads, and the engine too."""
        if self._sdxl_dir is None:
            if self.settings.tiny:
                from faceedit.export.tiny_sdxl import build_tiny_sdxl

                self._sdxl_dir = self._timed("sdxl", lambda: build_tiny_sdxl(self.models_dir / "inpaint-tiny"))
            else:
                from faceedit.bench.architectures import save_sdxl_inpainting

                # Built on the GPU in half precision where there is one (seconds; CPU initialisation takes minutes).
                dtype = torch.float16 if self.settings.device.startswith("cuda") else torch.float32
                out = self.models_dir / "sdxl-inpaint-random"
                self._sdxl_dir = self._timed(
                    "sdxl", lambda: save_sdxl_inpainting(out, device=self.settings.device, dtype=dtype)
                )
            self.result["models"]["sdxl"]["architecture"] = (
                "tiny SDXL (export/tiny_sdxl.py)" if self.settings.tiny else "SDXL inpainting, published configs"
            )
        return self._sdxl_dir

    def pipe(self):
        """The pipeline loaded by the inpainter's own loader (fp16 + SDPA on CUDA, DPM-Solver++)."""
        if self._pipe is None:
            from faceedit.inpainter.pipeline import PipelineOptions, load_pipeline

            directory = self.sdxl_dir()
            started = time.perf_counter()
            self._pipe = load_pipeline(PipelineOptions(str(directory), device=self.settings.device))
            self.result["models"]["sdxl"]["load_s"] = time.perf_counter() - started
            self.log(f"loaded the pipeline in {time.perf_counter() - started:.1f} s ({self._pipe.unet.dtype})")
        return self._pipe

    def parser_checkpoint(self) -> Path:
        if self._parser is None:
            from faceedit.export.segformer import build_random_parser

            size = "tiny" if self.settings.tiny else "b5"
            self._parser = self._timed("parser", lambda: build_random_parser(size, self.models_dir / f"parser-{size}"))
        return self._parser

    def parser_onnx(self) -> Path:
        """The exported graph (parity-checked), at the path the local stack looks for it."""
        if self._onnx is None:
            from faceedit.devstack.stack import ensure_parser_onnx

            checkpoint = self.parser_checkpoint()
            self._onnx = self._timed("parser_onnx", lambda: ensure_parser_onnx(str(checkpoint), self.models_dir))
        return self._onnx


def notes(settings: Settings) -> list[str]:
    found = []
    if settings.tiny:
        found.append(
            f"dry run: tiny models, {settings.steps} steps, {settings.size} px canvas, parser batches "
            f"{settings.batches}, a {settings.photo[0]}x{settings.photo[1]} photo instead of 12 MP; the figures "
            "mean nothing for a GPU"
        )
    if not settings.device.startswith("cuda"):
        found.append("no CUDA device: peak VRAM is null")
    return found


def run_case(ctx: Context, name: str) -> None:
    row = ctx.result["cases"][name]
    reason = ctx.over_budget()
    if reason:
        row.update(status="skipped", reason=reason)
        ctx.log(f"{name}: skipped ({row['reason']})")
        ctx.save()
        return
    ctx.log(f"{name}: running")
    row["status"] = "running"
    ctx.save()
    started = time.perf_counter()
    try:
        CASES[name](ctx, row)
    except Exception as exc:  # one case failing must not lose the others' figures
        row.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
        ctx.log(f"{name}: FAILED: {row['error']}")
    else:
        row["status"] = "ok"
    row["seconds"] = time.perf_counter() - started
    if ctx.settings.device.startswith("cuda"):
        torch.cuda.empty_cache()
    ctx.log(f"{name}: {row['status']} in {row['seconds']:.1f} s")
    ctx.save()


def run(settings: Settings, out: Path, workdir: Path | None = None, command: str | None = None) -> dict:
    """Every selected case in order; the result, also written under out."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="faceedit-gpu-check-"))
    ctx = Context(settings, out, workdir, command or shlex.join(["faceedit", *sys.argv[1:]]))
    env = ctx.result["environment"]
    ctx.log(f"{env['device_name']} (driver {env['driver']}), torch {env['versions']['torch']}, out {out}/")
    ctx.save()
    for name in settings.cases:
        run_case(ctx, name)
    ctx.log(f"wrote {out / 'gpu-check.json'} and {out / 'gpu-check.md'}")
    return ctx.result
