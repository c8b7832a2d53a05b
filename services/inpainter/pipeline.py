"""Loading the SDXL inpainting pipeline: a hub id or a local directory, the same code path."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def load_pipeline(options: PipelineOptions):  # -> StableDiffusionXLInpaintPipeline (diffusers has no public base)
    # Loading bars are carriage-return animations: noise in a service's line-oriented log.
    diffusers_logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    extra = {}
    if options.vae:
        extra["vae"] = AutoencoderKL.from_pretrained(options.vae, dtype=dtype)
    if dtype == torch.float16 and not options.vae:
        log.warning("fp16 with the pipeline's own VAE: the stock SDXL VAE overflows in fp16; pass --vae fp16-fix")
    pipe = AutoPipelineForInpainting.from_pretrained(options.model, dtype=dtype, **extra)
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
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)
    return pipe
