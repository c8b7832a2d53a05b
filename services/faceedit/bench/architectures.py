"""The real model architectures at full size, random-initialised from their published configs (no download).

Latency and memory depend on shapes, not weight values, so `faceedit gpu-check` measures these: the SDXL
inpainting UNet (9 input channels, text-time embedding), the SDXL VAE, the CLIP ViT-L and OpenCLIP bigG text towers
(faceedit.export.segformer holds SegFormer-B5's). The configs are the published ones
(diffusers/stable-diffusion-xl-1.0-inpainting-0.1: unet/, vae/, text_encoder/, text_encoder_2/ config.json),
written out here. Built on the meta device they cost no memory (tests count their parameters); on a GPU they are
built in place in half precision, which takes seconds instead of minutes of CPU initialisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

SDXL_INPAINT_UNET: dict = {
    "sample_size": 128,  # x 8 (VAE) = 1024 px, SDXL's native canvas
    "in_channels": 9,  # 4 noisy latents + 4 masked-image latents + 1 mask
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "attention_head_dim": (5, 10, 20),
    "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048,  # CLIP-L 768 + bigG 1280 hidden states, concatenated
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,  # bigG pooled 1280 + 6 time ids x 256
    "use_linear_projection": True,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
}
SDXL_VAE: dict = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    # As madebyollin/sdxl-vae-fp16-fix (same architecture), the VAE faceedit recommends in fp16: decoding stays
    # in half precision. The stock VAE's force_upcast would decode in fp32.
    "force_upcast": False,
}
CLIP_VOCAB = 49408
CLIP_L_TEXT: dict = {  # openai/clip-vit-large-patch14's text tower: SDXL's text_encoder
    "vocab_size": CLIP_VOCAB,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "max_position_embeddings": 77,
}
OPENCLIP_BIGG_TEXT: dict = {  # laion/CLIP-ViT-bigG-14's text tower with its projection: SDXL's text_encoder_2
    "vocab_size": CLIP_VOCAB,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
    "hidden_act": "gelu",
    "max_position_embeddings": 77,
}
# The SDXL base scheduler config; load_pipeline replaces it with DPM-Solver++ built from it.
SDXL_SCHEDULER: dict = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


@contextlib.contextmanager
def building_on(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Modules created inside are allocated on device in dtype (meta: shapes only)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _text_config(published: dict, tokenizer: CLIPTokenizer | None) -> CLIPTextConfig:
    """The published text config with the special token ids of the offline tokenizer (a stand-in for CLIP's BPE
    vocabulary, which cannot be downloaded; its ids all fall inside the published vocab_size)."""
    ids = {}
    if tokenizer is not None:
        eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        ids = {"bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"), "eos_token_id": eos}
        ids["pad_token_id"] = eos
    return CLIPTextConfig(**published, **ids)


def sdxl_modules(tokenizer: CLIPTokenizer | None = None) -> dict[str, torch.nn.Module]:
    """The four networks of SDXL inpainting, built where building_on says (default: CPU, float32)."""
    return {
        "unet": UNet2DConditionModel(**SDXL_INPAINT_UNET),
        "vae": AutoencoderKL(**SDXL_VAE),
        "text_encoder": CLIPTextModel(_text_config(CLIP_L_TEXT, tokenizer)),
        "text_encoder_2": CLIPTextModelWithProjection(_text_config(OPENCLIP_BIGG_TEXT, tokenizer)),
    }


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_sdxl_inpainting(
    *, device: str, dtype: torch.dtype, workdir: Path, seed: int = 0
) -> StableDiffusionXLInpaintPipeline:
    """Full-size SDXL inpainting with random weights, its modules created on device in dtype."""
    from diffusers import EulerDiscreteScheduler

    from faceedit.export.tiny_sdxl import byte_level_tokenizer

    torch.manual_seed(seed)
    tokenizer = byte_level_tokenizer(workdir / "tokenizer-src")
    with building_on(device, dtype):
        modules = sdxl_modules(tokenizer)
    for module in modules.values():
        module.eval()
    return StableDiffusionXLInpaintPipeline(
        **modules,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )


def save_sdxl_inpainting(out: Path, *, device: str, dtype: torch.dtype) -> Path:
    """build_sdxl_inpainting saved as a diffusers directory (what the inpainter's --model takes)."""
    pipe = build_sdxl_inpainting(device=device, dtype=dtype, workdir=out.parent / f".{out.name}-build")
    pipe.save_pretrained(out)
    del pipe
    return out
