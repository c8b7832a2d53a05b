"""The full-size builders gpu-check measures: the published architectures, built on the meta device (no memory)."""

from __future__ import annotations

import torch

from faceedit.bench.architectures import building_on, parameter_count, sdxl_modules
from faceedit.export.segformer import SIZES


def test_sdxl_inpainting_modules_have_the_published_sizes() -> None:
    with building_on("meta", torch.float16):
        modules = sdxl_modules()
    assert torch.get_default_dtype() == torch.float32  # restored
    counts = {name: parameter_count(m) for name, m in modules.items()}
    # Published: SDXL UNet 2.567 B (2,567,463,684 with 4 input channels; inpainting adds 5 x 320 x 9 conv weights),
    # VAE 83.65 M, CLIP ViT-L text 123.06 M, OpenCLIP bigG text with projection 694.66 M.
    assert 2.56e9 < counts["unet"] < 2.58e9
    assert counts["unet"] - 2_567_463_684 == 5 * 320 * 3 * 3
    assert 83e6 < counts["vae"] < 84.5e6
    assert 122e6 < counts["text_encoder"] < 124e6
    assert 690e6 < counts["text_encoder_2"] < 700e6
    for module in modules.values():
        assert all(p.device.type == "meta" and p.dtype == torch.float16 for p in module.parameters())
    unet = modules["unet"].config
    assert unet.in_channels == 9 and unet.addition_embed_type == "text_time" and unet.sample_size == 128
    assert unet.cross_attention_dim == 2048 == modules["text_encoder"].config.hidden_size + 1280
    # pooled bigG projection + 6 time ids x addition_time_embed_dim
    assert unet.projection_class_embeddings_input_dim == modules["text_encoder_2"].config.projection_dim + 6 * 256


def test_segformer_b5_with_19_labels_has_the_published_size() -> None:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    with building_on("meta", torch.float32):
        model = SegformerForSemanticSegmentation(SegformerConfig(num_labels=19, **SIZES["b5"]))
    assert 84e6 < parameter_count(model) < 86e6  # mit-b5 encoder 81.4 M + the all-MLP decoder


def test_the_full_pipeline_renders_at_sdxl_native_canvas(tmp_path) -> None:
    from faceedit.bench.architectures import build_sdxl_inpainting
    from faceedit.core.framing import native_canvas

    pipe = build_sdxl_inpainting(device="meta", dtype=torch.float16, workdir=tmp_path)
    assert pipe.vae_scale_factor == 8 and native_canvas(pipe.unet.config.sample_size, pipe.vae_scale_factor) == 1024
    assert not pipe.vae.config.force_upcast and pipe.unet.dtype == torch.float16
    eos = pipe.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert pipe.text_encoder.config.eos_token_id == pipe.text_encoder_2.config.eos_token_id == eos
    assert len(pipe.tokenizer) <= pipe.text_encoder.config.vocab_size == 49408  # every id has an embedding
