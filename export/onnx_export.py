"""SegFormer -> ONNX with pre- and post-processing inside the graph, checked against PyTorch before it is kept.

    image UINT8 [N,H,W,3] -> ImageNet normalisation -> SegFormer -> bilinear upsample of the 1/4-resolution logits
    to HxW -> argmax -> labels UINT8 [N,H,W]     (optionally also logits FLOAT [N,19,H,W])

Returning labels instead of float logits makes the response 76x smaller (19 classes x 4 bytes).

    python -m faceedit.export.onnx_export --model jonathandinu/face-parsing --out model_repository/.../model.onnx
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from faceedit.export.segformer import load_parser

OPSET = 20
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PARITY_MARGIN = 1e-6
PARITY_LOGITS_ATOL = 1e-4
FP16_LOGITS_ATOL = 5e-2
FP16_MARGIN = 5e-2


class ParserGraph(nn.Module):
    """The whole parse as one graph: what Triton serves."""

    def __init__(self, model: nn.Module, *, fp16: bool = False) -> None:
        super().__init__()
        self.model = model.half() if fp16 else model
        self.fp16 = fp16
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        if self.fp16:
            pixels = pixels.half()
        logits = self.model(pixel_values=pixels).logits.float()
        upsampled = F.interpolate(logits, size=image.shape[1:3], mode="bilinear", align_corners=False)
        return upsampled.argmax(dim=1).to(torch.uint8), upsampled


def reference_logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """The thesis's path (annexure 6) on already-sized uint8 images: normalise, SegFormer, upsample bilinear."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    pixels = (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
        upsampled = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
    return upsampled.numpy()


@dataclass(frozen=True)
class ParityReport:
    shape: tuple[int, ...]
    compared_pixels: int
    label_agreement: float
    max_logit_error: float
    ok: bool


def check_parity(model: nn.Module, onnx_path: Path, images: np.ndarray, *, fp16: bool = False) -> ParityReport:
    """Labels must agree wherever PyTorch's top-2 margin exceeds the threshold; logits must agree within atol."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    labels, logits = session.run(["labels", "logits"], {"image": images})
    expected = reference_logits(model.float(), images)
    top2 = np.sort(expected, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > (FP16_MARGIN if fp16 else PARITY_MARGIN)
    agreement = float((labels == expected.argmax(axis=1))[decisive].mean()) if decisive.any() else 1.0
    error = float(np.abs(logits - expected).max())
    ok = agreement == 1.0 and error <= (FP16_LOGITS_ATOL if fp16 else PARITY_LOGITS_ATOL)
    return ParityReport(images.shape, int(decisive.sum()), agreement, error, ok)


def export_parser(
    model_id: str | Path,
    out: Path,
    *,
    logits: bool = False,
    fp16: bool = False,
    parity_sizes: tuple[tuple[int, int], ...] = ((64, 64), (96, 64)),
    seed: int = 0,
) -> list[ParityReport]:
    """Export, check parity at each (H, W) of parity_sizes, and only then write `out`. Raises on a parity failure."""
    model = load_parser(model_id)
    graph = ParserGraph(load_parser(model_id), fp16=fp16).eval()
    example = torch.zeros((1, *parity_sizes[0], 3), dtype=torch.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.onnx"
        torch.onnx.export(
            graph,
            (example,),
            str(staged),
            input_names=["image"],
            output_names=["labels", "logits"],
            dynamic_axes={
                "image": {0: "N", 1: "H", 2: "W"},
                "labels": {0: "N", 1: "H", 2: "W"},
                "logits": {0: "N", 2: "H", 3: "W"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
        rng = np.random.default_rng(seed)
        reports = [
            check_parity(model, staged, rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8), fp16=fp16)
            for h, w in parity_sizes
        ]
        failed = [r for r in reports if not r.ok]
        if failed:
            raise RuntimeError(f"ONNX export does not match PyTorch: {failed}")
        proto = onnx.load(str(staged))
        if not logits:
            # argmax still consumes the upsampled logits, so dropping the output removes no computation.
            kept = [o for o in proto.graph.output if o.name == "labels"]
            del proto.graph.output[:]
            proto.graph.output.extend(kept)
        onnx.checker.check_model(proto)
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(out))
    return reports


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width or height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export a SegFormer face parser to ONNX (uint8 image in, uint8 labels out) and verify parity."
    )
    parser.add_argument("--model", required=True, help="hub id (e.g. jonathandinu/face-parsing) or local directory")
    parser.add_argument("--out", type=Path, required=True, help="path of the model.onnx to write")
    parser.add_argument("--logits", action="store_true", help="also output the upsampled logits [N,19,H,W]")
    parser.add_argument("--fp16", action="store_true", help="run SegFormer in float16 inside the graph (GPU)")
    parser.add_argument(
        "--parity-size", type=_size, action="append", help="HxW to check parity at (repeatable; default 64x64, 96x64)"
    )
    args = parser.parse_args(argv)
    sizes = tuple(args.parity_size or ((64, 64), (96, 64)))
    try:
        reports = export_parser(args.model, args.out, logits=args.logits, fp16=args.fp16, parity_sizes=sizes)
    except RuntimeError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    for r in reports:
        print(
            f"parity {r.shape}: labels agree on {r.label_agreement:.2%} of {r.compared_pixels} decisive pixels, "
            f"max logit error {r.max_logit_error:.2e}"
        )
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
