"""The inpainter's flags; every one falls back to a FACEEDIT_* environment variable."""

from __future__ import annotations

import argparse

from faceedit.core.framing import CANVAS_MODES
from faceedit.rpc.channels import DEFAULT_MAX_MESSAGE_BYTES
from faceedit.rpc.config import check_server_flags, env_flag, parse_bool, server_flags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="faceedit-inpainter", description="faceedit.v1.Inpainter: SDXL inpainting")
    env_flag(
        p,
        "--model",
        env="FACEEDIT_INPAINT_MODEL",
        required=True,
        help="diffusers inpainting pipeline: hub id (diffusers/stable-diffusion-xl-1.0-inpainting-0.1) or dir",
    )
    env_flag(
        p,
        "--revision",
        env="FACEEDIT_INPAINT_REVISION",
        default=None,
        help="hub revision of --model to pin (commit sha or tag); ignored for a directory",
    )
    env_flag(
        p,
        "--variant",
        env="FACEEDIT_INPAINT_VARIANT",
        default="auto",
        help="weight files to load: auto (fp16 when loading float16 and the repository has fp16 files), none, "
        "or a variant name such as fp16",
    )
    server_flags(p, port=50052, metrics_port=9100)
    env_flag(p, "--device", env="FACEEDIT_DEVICE", default="auto", help="auto, cpu, cuda or cuda:N")
    env_flag(
        p,
        "--dtype",
        env="FACEEDIT_DTYPE",
        default="auto",
        choices=["auto", "float16", "bfloat16", "float32"],
        help="auto: float16 on CUDA, float32 on CPU",
    )
    env_flag(
        p,
        "--vae",
        env="FACEEDIT_INPAINT_VAE",
        default=None,
        help="replacement VAE (hub id or dir), e.g. madebyollin/sdxl-vae-fp16-fix for fp16",
    )
    env_flag(
        p,
        "--vae-revision",
        env="FACEEDIT_INPAINT_VAE_REVISION",
        default=None,
        help="hub revision of --vae to pin (commit sha or tag)",
    )
    env_flag(
        p,
        "--working-size",
        env="FACEEDIT_WORKING_SIZE",
        default=None,
        type=int,
        help="square canvas a whole frame renders at (default: the model's native canvas, UNet sample size x VAE "
        "scale factor: 1024 for SDXL)",
    )
    env_flag(
        p,
        "--canvas-mode",
        env="FACEEDIT_CANVAS_MODE",
        default="native",
        choices=list(CANVAS_MODES),
        help="native: every crop renders at the working size (most detail); fast: small crops may render down to "
        "half of it (about 4x fewer pixels, less detail, below SDXL's native resolution)",
    )
    env_flag(
        p,
        "--min-crop-size",
        env="FACEEDIT_MIN_CROP_SIZE",
        default=None,
        type=int,
        help="smallest canvas a crop renders at (default: the working size; half of it with --canvas-mode fast); "
        "a value below the working size is a fast mode",
    )
    env_flag(
        p,
        "--queue-size",
        env="FACEEDIT_QUEUE_SIZE",
        default=8,
        type=int,
        help="requests that may wait for the pipeline; more are refused with RESOURCE_EXHAUSTED",
    )
    env_flag(
        p,
        "--torch-threads",
        env="FACEEDIT_TORCH_THREADS",
        default=0,
        type=int,
        help="CPU threads torch may use (0: its default, every core); 1 for several replicas on one machine",
    )
    env_flag(
        p,
        "--max-queue-wait",
        env="FACEEDIT_MAX_QUEUE_WAIT",
        default=60.0,
        type=float,
        help="seconds a request may be expected to wait for the pipeline (estimated from measured speed); longer "
        "waits are refused with RESOURCE_EXHAUSTED and a retry-after-ms hint",
    )
    env_flag(
        p,
        "--prompt-cache-size",
        env="FACEEDIT_PROMPT_CACHE_SIZE",
        default=128,
        type=int,
        help="encoded prompts kept in an LRU cache",
    )
    env_flag(
        p,
        "--attention-slicing",
        env="FACEEDIT_ATTENTION_SLICING",
        default=False,
        type=parse_bool,
        help="slice attention to save memory",
    )
    env_flag(
        p,
        "--vae-slicing",
        env="FACEEDIT_VAE_SLICING",
        default=False,
        type=parse_bool,
        help="decode with VAE slicing to save memory",
    )
    env_flag(
        p,
        "--compile",
        env="FACEEDIT_COMPILE",
        default=False,
        type=parse_bool,
        help="torch.compile the UNet: start-up compiles every canvas bucket (with and without guidance) before "
        "SERVING, so live calls never compile (minutes of start-up per bucket on a GPU)",
    )
    env_flag(
        p,
        "--cpu-offload",
        env="FACEEDIT_CPU_OFFLOAD",
        default=False,
        type=parse_bool,
        help="diffusers model CPU offload for small GPUs",
    )
    env_flag(
        p,
        "--max-message-bytes",
        env="FACEEDIT_MAX_MESSAGE_BYTES",
        default=DEFAULT_MAX_MESSAGE_BYTES,
        type=int,
        help="gRPC max send/receive message size",
    )
    args = p.parse_args(argv)
    for flag, value in (("--working-size", args.working_size), ("--min-crop-size", args.min_crop_size)):
        if value is not None and (value <= 0 or value % 8):
            p.error(f"{flag} must be a positive multiple of 8, got {value}")
    if None not in (args.working_size, args.min_crop_size) and args.min_crop_size > args.working_size:
        p.error("--min-crop-size must be at most --working-size")
    if args.queue_size < 0:
        p.error("--queue-size must be >= 0")
    if args.torch_threads < 0:
        p.error("--torch-threads must be >= 0")
    if args.max_queue_wait < 0:
        p.error("--max-queue-wait must be >= 0")
    problem = check_server_flags(args)
    if problem:
        p.error(problem)
    return args
