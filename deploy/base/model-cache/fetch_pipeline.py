"""Downloads the inpainter's diffusers pipeline (only the files from_pretrained loads for the variant) and its VAE
into HF_HOME, then loads both from the cache alone, as the serving pods (HF_HUB_OFFLINE=1) will: a cache that
lacks anything fails the Job here instead of every inpainter pod later.

Env: INPAINT_MODEL (hub id), INPAINT_VAE (hub id, optional), INPAINT_REVISION, INPAINT_VARIANT (optional).
"""

from __future__ import annotations

import os

import torch
from diffusers import AutoencoderKL, AutoPipelineForInpainting, DiffusionPipeline
from huggingface_hub import snapshot_download

VAE_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


def _options() -> dict[str, str | None]:
    return {
        "revision": os.environ.get("INPAINT_REVISION") or None,
        "variant": os.environ.get("INPAINT_VARIANT") or None,
    }


def download() -> None:
    DiffusionPipeline.download(os.environ["INPAINT_MODEL"], **_options())
    if os.environ.get("INPAINT_VAE"):
        snapshot_download(os.environ["INPAINT_VAE"], allow_patterns=VAE_FILES)


def load_offline() -> str:
    """Loads the pipeline (with its replacement VAE) from the cache only; weights in half precision, loading only."""
    extra = {}
    if os.environ.get("INPAINT_VAE"):
        extra["vae"] = AutoencoderKL.from_pretrained(os.environ["INPAINT_VAE"], local_files_only=True)
    pipe = AutoPipelineForInpainting.from_pretrained(
        os.environ["INPAINT_MODEL"], local_files_only=True, dtype=torch.float16, **_options(), **extra
    )
    return type(pipe).__name__


if __name__ == "__main__":
    download()
    print(f"cached: {os.environ['INPAINT_MODEL']} loads offline as {load_offline()}")
