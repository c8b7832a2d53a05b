"""Loading the SDXL inpainting pipeline: a hub id or a local directory, the same code path.

Hub weights are pinned with a revision (a commit sha or tag); in float16 the repository's fp16 weight files are
loaded where it has them (half the download and disk), else the full-precision files are converted on load.
`dtype=` needs diffusers >= 0.40 (older releases ignore it without a word and load float32).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from diffusers import AutoencoderKL, AutoPipelineForInpainting, DPMSolverMultistepScheduler
from diffusers.utils import logging as diffusers_logging

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    model: str
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float16 | bfloat16 | float32
    vae: str | None = None  # e.g. madebyollin/sdxl-vae-fp16-fix: the stock SDXL VAE gives NaN/black in fp16
    revision: str | None = None  # hub revision of `model`
    vae_revision: str | None = None  # hub revision of `vae` (another repository, so its own pin)
    variant: str = "auto"  # auto | none | a variant name such as fp16
    attention_slicing: bool = False
    vae_slicing: bool = False
    compile: bool = False
    cpu_offload: bool = False


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} was requested but no CUDA device is available")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        # fp16 + SDPA on GPUs; fp32 on CPU, where half precision is slow or unsupported.
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]


def has_variant_files(directory: Path, variant: str) -> bool:
    """Whether a local diffusers directory holds weight files of `variant` (unet/diffusion_pytorch_model.fp16.
    safetensors, sharded ...fp16-00001-of-00002.safetensors, and their .bin/.index.json kin)."""
    pattern = re.compile(rf"\.{re.escape(variant)}[.-].*(safetensors|bin|json)$")
    return any(pattern.search(path.name) for path in directory.glob("*/*"))


def choose_variant(variant: str, dtype: torch.dtype, model: str) -> tuple[str | None, bool]:
    """(variant to ask diffusers for, whether to fall back to no variant if the repository has none).

    auto: "fp16" when loading float16 and the model is a local directory with fp16 files or a hub id (whose files
    are only known by asking: fall back); none: no variant; anything else: exactly that variant, no fallback."""
    if variant == "none":
        return None, False
    if variant != "auto":
        return variant, False
    if dtype != torch.float16:
        return None, False
    local = Path(model)
    if local.is_dir():
        return ("fp16", False) if has_variant_files(local, "fp16") else (None, False)
    return "fp16", True


def _from_pretrained(model: str, *, dtype: torch.dtype, revision: str | None, variant: str, extra: dict):
    chosen, fallback = choose_variant(variant, dtype, model)
    try:
        pipe = AutoPipelineForInpainting.from_pretrained(model, dtype=dtype, revision=revision, variant=chosen, **extra)
    except ValueError as exc:
        # diffusers: "You are trying to load model files of the `variant=fp16`, but no such modeling files ..."
        if not (fallback and "variant" in str(exc)):
            raise
        log.info("%s has no %s weight files; loading its full-precision files as %s", model, chosen, dtype)
        chosen = None
        pipe = AutoPipelineForInpainting.from_pretrained(model, dtype=dtype, revision=revision, **extra)
    log.info("loaded %s (revision %s, variant %s, %s)", model, revision or "default", chosen or "none", dtype)
    return pipe


def load_pipeline(options: PipelineOptions):  # -> StableDiffusionXLInpaintPipeline (diffusers has no public base)
    # Loading bars are carriage-return animations: noise in a service's line-oriented log.
    diffusers_logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    extra = {}
    if options.vae:
        extra["vae"] = AutoencoderKL.from_pretrained(options.vae, dtype=dtype, revision=options.vae_revision)
    if dtype == torch.float16 and not options.vae:
        log.warning("fp16 with the pipeline's own VAE: the stock SDXL VAE overflows in fp16; pass --vae fp16-fix")
    pipe = _from_pretrained(options.model, dtype=dtype, revision=options.revision, variant=options.variant, extra=extra)
    # DPM-Solver++ multistep (thesis 4.9.3): SDXL-quality samples in 20-50 steps.
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)
    if options.cpu_offload:
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
    if options.attention_slicing:
        pipe.enable_attention_slicing()
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.compile:
        compile_unet(pipe)
    return pipe


def compile_unet(pipe, *, backend: str = "inductor", mode: str | None = "reduce-overhead") -> None:
    """torch.compile the UNet in place, one static graph per input shape: the engine renders on a fixed list of
    canvas buckets and compiles each at warm-up (Engine.warm_up), so specialised kernels (and, on CUDA, one CUDA
    graph per shape with reduce-overhead) cost nothing at serving time. backend/mode: tests use "eager"/None."""
    pipe.unet = torch.compile(pipe.unet, backend=backend, mode=mode, fullgraph=True, dynamic=False)
