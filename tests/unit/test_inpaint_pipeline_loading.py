"""Loading the inpainting pipeline as real weights need it: the dtype diffusers is asked for, the fp16 weight files
of a repository that has them, and revision pins on the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoPipelineForInpainting

from faceedit.inpainter.config import parse_args
from faceedit.inpainter.pipeline import PipelineOptions, choose_variant, has_variant_files, load_pipeline


@pytest.fixture(scope="module")
def with_fp16_files(tiny_inpaint_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline plus fp16 variant files whose UNet differs (conv_in.bias + 1), so a test can tell which
    files were loaded."""
    out = tmp_path_factory.mktemp("variant") / "pipeline"
    shutil.copytree(tiny_inpaint_model, out)
    pipe = AutoPipelineForInpainting.from_pretrained(out)
    with torch.no_grad():
        pipe.unet.conv_in.bias += 1.0
    pipe.to(torch.float16).save_pretrained(out, variant="fp16")
    return out


def _bias(pipe) -> torch.Tensor:
    return pipe.unet.conv_in.bias.detach().float()


@pytest.mark.slow  # builds and loads the tiny SDXL pipeline
def test_float16_loads_the_fp16_files_where_the_directory_has_them(
    tiny_inpaint_model: Path, with_fp16_files: Path
) -> None:
    full = load_pipeline(PipelineOptions(str(tiny_inpaint_model), device="cpu", dtype="float32"))
    half = load_pipeline(PipelineOptions(str(with_fp16_files), device="cpu", dtype="float16"))
    assert half.unet.dtype == torch.float16 and half.vae.dtype == torch.float16  # dtype= reached diffusers
    assert torch.allclose(_bias(half), _bias(full) + 1.0, atol=1e-2)


@pytest.mark.slow  # builds and loads the tiny SDXL pipeline
def test_float32_and_variant_none_load_the_full_precision_files(
    tiny_inpaint_model: Path, with_fp16_files: Path
) -> None:
    full = _bias(load_pipeline(PipelineOptions(str(tiny_inpaint_model), device="cpu", dtype="float32")))
    as_float32 = load_pipeline(PipelineOptions(str(with_fp16_files), device="cpu", dtype="float32"))
    assert as_float32.unet.dtype == torch.float32 and torch.equal(_bias(as_float32), full)
    no_variant = load_pipeline(PipelineOptions(str(with_fp16_files), device="cpu", dtype="float16", variant="none"))
    assert no_variant.unet.dtype == torch.float16 and torch.allclose(_bias(no_variant), full, atol=1e-2)


@pytest.mark.slow  # builds and loads the tiny SDXL pipeline
def test_an_explicit_variant_the_directory_lacks_is_an_error(tiny_inpaint_model: Path) -> None:
    with pytest.raises((ValueError, OSError), match="fp16"):
        load_pipeline(PipelineOptions(str(tiny_inpaint_model), device="cpu", dtype="float16", variant="fp16"))


@pytest.mark.slow  # builds and loads the tiny SDXL pipeline
def test_has_variant_files(tiny_inpaint_model: Path, with_fp16_files: Path) -> None:
    assert has_variant_files(with_fp16_files, "fp16") and not has_variant_files(tiny_inpaint_model, "fp16")


@pytest.mark.slow  # builds and loads the tiny SDXL pipeline
def test_choose_variant(tiny_inpaint_model: Path, with_fp16_files: Path) -> None:
    hub = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
    assert choose_variant("auto", torch.float16, hub) == ("fp16", True)  # try it, fall back if the hub has none
    assert choose_variant("auto", torch.float32, hub) == (None, False)
    assert choose_variant("auto", torch.bfloat16, hub) == (None, False)
    assert choose_variant("auto", torch.float16, str(with_fp16_files)) == ("fp16", False)
    assert choose_variant("auto", torch.float16, str(tiny_inpaint_model)) == (None, False)
    assert choose_variant("none", torch.float16, hub) == (None, False)
    assert choose_variant("fp16", torch.float32, hub) == ("fp16", False)


def test_revision_and_variant_flags_with_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse_args(["--model", "m", "--revision", "abc123", "--variant", "none", "--vae-revision", "v1"])
    assert (args.revision, args.variant, args.vae_revision) == ("abc123", "none", "v1")
    defaults = parse_args(["--model", "m"])
    assert (defaults.revision, defaults.variant, defaults.vae_revision) == (None, "auto", None)
    monkeypatch.setenv("FACEEDIT_INPAINT_REVISION", "f00d")
    monkeypatch.setenv("FACEEDIT_INPAINT_VARIANT", "fp16")
    monkeypatch.setenv("FACEEDIT_INPAINT_VAE_REVISION", "beef")
    args = parse_args(["--model", "m"])
    assert (args.revision, args.variant, args.vae_revision) == ("f00d", "fp16", "beef")


def test_canvas_flags_default_to_the_native_canvas_with_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = parse_args(["--model", "m"])
    # None: the model's native canvas, resolved once the pipeline is loaded (framing.resolve_canvas).
    assert (defaults.working_size, defaults.min_crop_size, defaults.canvas_mode) == (None, None, "native")
    args = parse_args(["--model", "m", "--canvas-mode", "fast", "--working-size", "1024", "--min-crop-size", "512"])
    assert (args.working_size, args.min_crop_size, args.canvas_mode) == (1024, 512, "fast")
    monkeypatch.setenv("FACEEDIT_CANVAS_MODE", "fast")
    monkeypatch.setenv("FACEEDIT_WORKING_SIZE", "768")
    args = parse_args(["--model", "m"])
    assert (args.working_size, args.min_crop_size, args.canvas_mode) == (768, None, "fast")


@pytest.mark.parametrize(
    "flags",
    [["--working-size", "1020"], ["--min-crop-size", "0"], ["--working-size", "512", "--min-crop-size", "1024"]],
)
def test_unusable_canvas_flags_are_refused_in_one_line(flags: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", *flags])
    assert "error: --" in capsys.readouterr().err
