"""Downloads the inpainter's diffusers pipeline (only the files from_pretrained loads for the variant) and its VAE
into HF_HOME, then proves both resolve from the cache alone, as the serving pods (HF_HUB_OFFLINE=1) need.

Env: INPAINT_MODEL (hub id), INPAINT_VAE (hub id, optional), INPAINT_REVISION, INPAINT_VARIANT (optional).
"""

from __future__ import annotations

import os

from diffusers import DiffusionPipeline
from huggingface_hub import snapshot_download

VAE_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


def fetch(local_files_only: bool) -> list[str]:
    model = os.environ["INPAINT_MODEL"]
    options = {
        "revision": os.environ.get("INPAINT_REVISION") or None,
        "variant": os.environ.get("INPAINT_VARIANT") or None,
    }
    paths = [str(DiffusionPipeline.download(model, local_files_only=local_files_only, **options))]
    vae = os.environ.get("INPAINT_VAE")
    if vae:
        paths.append(snapshot_download(vae, allow_patterns=VAE_FILES, local_files_only=local_files_only))
    return paths


if __name__ == "__main__":
    fetch(local_files_only=False)
    for path in fetch(local_files_only=True):
        print(f"cached: {path}")
