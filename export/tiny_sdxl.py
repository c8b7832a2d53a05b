"""Random-initialised SDXL inpainting pipelines built from configs, for tests, the demo and benchmarks.

They have SDXL's structure (two CLIP text encoders, a 9-channel text_time UNet, a four-block VAE with scale
factor 8) at a tiny width, so every code path of the real model runs offline. Their output is noise.

    python -m faceedit.export.tiny_sdxl --out models/inpaint-tiny [--size small]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLInpaintPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
from transformers.utils import logging as transformers_logging

TEXT_HIDDEN = 32
UNETS: dict[str, dict] = {
    "tiny": {
        "block_out_channels": (32, 64),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4),
        "transformer_layers_per_block": (1, 2),
    },
    # Larger, still random: a UNet whose cost grows with resolution like SDXL's (attention at two levels),
    # for benchmarks where the tiny one is too cheap to measure anything but overhead.
    "small": {
        "block_out_channels": (64, 128, 256),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4, 8),
        "transformer_layers_per_block": (1, 1, 1),
    },
}


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, so any text tokenizes without unknowns."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def byte_level_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP BPE tokenizer over the 256 byte symbols (plus their end-of-word forms) and a few merges."""
    symbols = _byte_symbols()
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r</w>"), ("o", "n</w>")]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in merges) + "\n")
    return CLIPTokenizer(vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"), model_max_length=77)


def _text_config(tokenizer: CLIPTokenizer) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        projection_dim=TEXT_HIDDEN,
        max_position_embeddings=77,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )


def build_pipeline(size: str = "tiny", *, seed: int = 0, workdir: Path) -> StableDiffusionXLInpaintPipeline:
    if size not in UNETS:
        raise ValueError(f"unknown pipeline size {size!r}; choose one of {', '.join(UNETS)}")
    torch.manual_seed(seed)
    tokenizer = byte_level_tokenizer(workdir / "tokenizer-src")
    text_config = _text_config(tokenizer)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=9,  # 4 noisy latents + 4 masked-image latents + 1 mask
        out_channels=4,
        layers_per_block=2,
        cross_attention_dim=2 * TEXT_HIDDEN,  # both encoders' hidden states, concatenated as in SDXL
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=TEXT_HIDDEN + 6 * 8,  # pooled text + 6 time ids x 8
        use_linear_projection=True,
        norm_num_groups=32,
        **UNETS[size],
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),  # four blocks: the latent is 1/8 of the image, as in SDXL
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=128,
        force_upcast=False,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    return StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text_config),
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )


def build_tiny_sdxl(out: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    # A tiny model is one shard: transformers' "Writing model shards" bars only clutter `faceedit up`'s start.
    transformers_logging.disable_progress_bar()
    out.mkdir(parents=True, exist_ok=True)
    build_pipeline(size, seed=seed, workdir=out.parent / f".{out.name}-build").save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a random-initialised SDXL inpainting pipeline offline.")
    parser.add_argument("--out", type=Path, required=True, help="directory to save_pretrained into")
    parser.add_argument("--size", choices=sorted(UNETS), default="tiny", help="tiny for tests, small for benchmarks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_sdxl(args.out, size=args.size, seed=args.seed))


if __name__ == "__main__":
    main()
