"""SegFormer -> ONNX with pre- and post-processing inside the graph, checked against Hugging Face before it is kept.

    image UINT8 [N,H,W,3] -> resize to the processor's size (bilinear, rounded to uint8 levels; an identity when the
    input already has that size) -> the processor's rescale/mean/std -> SegFormer -> logits reordered to the
    canonical CelebAMask-HQ class ids -> bilinear upsample to HxW -> argmax -> labels UINT8 [N,H,W]
    (optionally also the canonical logits FLOAT [N,19,H,W])

Everything model-specific comes from the checkpoint: mean, std, rescale and size from its preprocessor_config.json,
the channel order from its id2label (faceedit.core.taxonomy.canonical_order). The parity reference is the Hugging
Face image processor + model + bilinear upsample, not this module's own constants. Serve at the processor's size
(--parser-size 512 for jonathandinu/face-parsing): there the in-graph resize is exact and parity is checked there.
At other sizes the graph resizes without antialiasing (TensorRT cannot run an antialiased Resize), which differs
from the processor's PIL/torchvision resize when downscaling.

Returning labels instead of float logits makes the response 76x smaller (19 classes x 4 bytes).

    python -m faceedit.export.onnx_export --model jonathandinu/face-parsing --revision SHA --out .../1/model.onnx
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from faceedit.core.taxonomy import CLASS_NAMES, CheckpointLabelError, canonical_order
from faceedit.export.segformer import Preprocessing, load_parser, load_processor, preprocessing_from

OPSET = 20
# One parity criterion, relative to the reference's largest |logit| (random and trained weights differ ~100x in
# scale): every logit within RTOL * peak of the reference, and labels equal wherever the reference's top-2 margin
# exceeds twice that (an error below it cannot flip those). Measured fp32 (onnxruntime CPU vs PyTorch, 512x512):
# SegFormer-B5 8e-7 and tiny 5e-7 of the peak, so 1e-4 leaves a 100x margin; a wrong std, a missing rescale or the
# classifier off by 1% move logits by 1e-2 of the peak or more.
RTOL = 1e-4
# fp16 SegFormer against the fp32 reference, measured the same way: B5 9.5e-4, tiny 8.8e-4 of the peak.
FP16_RTOL = 1e-2


class ParserGraph(nn.Module):
    """The whole parse as one graph: what Triton serves."""

    def __init__(self, model: nn.Module, prep: Preprocessing, order: Sequence[int], *, fp16: bool = False) -> None:
        super().__init__()
        self.model = model.half() if fp16 else model
        self.fp16 = fp16
        self.size = prep.size
        self.rescale = prep.rescale
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("order", torch.tensor(list(order), dtype=torch.int64))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.permute(0, 3, 1, 2).float()
        if self.size is not None:
            # The processor resizes uint8 images to uint8 images, hence the rounding; same size -> exact identity.
            pixels = F.interpolate(pixels, size=self.size, mode="bilinear", align_corners=False)
            pixels = pixels.round().clamp(0.0, 255.0)
        pixels = (pixels * self.rescale - self.mean) / self.std
        if self.fp16:
            pixels = pixels.half()
        logits = self.model(pixel_values=pixels).logits.float().index_select(1, self.order)
        upsampled = F.interpolate(logits, size=image.shape[1:3], mode="bilinear", align_corners=False)
        return upsampled.argmax(dim=1).to(torch.uint8), upsampled


def reference_logits(model: nn.Module, processor, order: Sequence[int], images: np.ndarray) -> np.ndarray:
    """Hugging Face's own path on uint8 RGB images [N,H,W,3]: image processor, model, bilinear upsample of the
    logits to HxW (as post_process_semantic_segmentation does), channels in canonical class order."""
    inputs = processor(images=list(images), input_data_format="channels_last", return_tensors="pt")
    with torch.no_grad():
        logits = model.float()(pixel_values=inputs["pixel_values"].float()).logits
        upsampled = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
    return upsampled[:, list(order)].numpy()


@dataclass(frozen=True)
class ParityReport:
    shape: tuple[int, ...]
    rtol: float
    peak: float  # the reference's largest |logit|
    max_logit_error: float
    decisive_pixels: int  # where the reference's top-2 margin exceeds 2 * rtol * peak
    label_agreement: float  # on the decisive pixels
    seconds: float  # onnxruntime's run

    @property
    def tolerance(self) -> float:
        return self.rtol * self.peak

    @property
    def relative_error(self) -> float:
        return self.max_logit_error / self.peak if self.peak else float("inf")

    @property
    def ok(self) -> bool:
        return self.max_logit_error <= self.tolerance and self.label_agreement == 1.0


def compare(
    labels: np.ndarray,
    logits: np.ndarray,
    expected: np.ndarray,
    rtol: float,
    *,
    shape: tuple[int, ...] = (),
    seconds=0.0,
) -> ParityReport:
    """A graph's labels [N,H,W] and logits [N,C,H,W] against reference logits, by the one parity criterion."""
    peak = float(np.abs(expected).max())
    top2 = np.sort(expected, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * rtol * peak
    agreement = float((labels == expected.argmax(axis=1))[decisive].mean()) if decisive.any() else 1.0
    error = float(np.abs(logits - expected).max())
    return ParityReport(tuple(shape or labels.shape), rtol, peak, error, int(decisive.sum()), agreement, seconds)


class ParityUnavailable(RuntimeError):
    """onnxruntime cannot run the graph here (e.g. an fp16 graph on a CPU build without fp16 kernels)."""


def open_session(onnx_path: Path, provider: str = "CPUExecutionProvider") -> ort.InferenceSession:
    """An onnxruntime session on exactly `provider` (onnxruntime itself would fall back to CPU with a warning)."""
    available = ort.get_available_providers()
    if provider not in available:
        raise ParityUnavailable(f"this onnxruntime ({ort.__version__}) has no {provider}, only {', '.join(available)}")
    try:
        session = ort.InferenceSession(str(onnx_path), providers=[provider])
    except Exception as exc:  # onnxruntime raises its own exception types per failure
        raise ParityUnavailable(f"onnxruntime ({provider}) cannot load {onnx_path.name}: {exc}") from exc
    if session.get_providers()[0] != provider:
        raise ParityUnavailable(f"onnxruntime could not start {provider} (it gave {session.get_providers()})")
    return session


def check_parity(
    model: nn.Module,
    processor,
    order: Sequence[int],
    onnx_path: Path,
    images: np.ndarray,
    *,
    rtol: float = RTOL,
    provider: str = "CPUExecutionProvider",
) -> ParityReport:
    """The graph's labels and logits against reference_logits (Hugging Face processor + model) by the parity
    criterion (see RTOL). The graph must have been exported with its logits output."""
    session = open_session(onnx_path, provider)
    start = time.perf_counter()
    try:
        labels, logits = session.run(["labels", "logits"], {"image": images})
    except Exception as exc:
        raise ParityUnavailable(f"onnxruntime ({provider}) cannot run {onnx_path.name}: {exc}") from exc
    seconds = time.perf_counter() - start
    expected = reference_logits(model, processor, order, images)
    return compare(labels, logits, expected, rtol, shape=images.shape, seconds=seconds)


def trace_graph(graph: ParserGraph, path: Path, example_size: tuple[int, int]) -> Path:
    """Export a ParserGraph with dynamic N, H, W and both outputs (labels, logits).

    An fp16 graph is traced on the GPU where there is one: PyTorch's CPU half-precision kernels make tracing
    SegFormer-B5 take ~10 minutes."""
    device = "cuda" if graph.fp16 and torch.cuda.is_available() else "cpu"
    example = torch.zeros((1, *example_size, 3), dtype=torch.uint8, device=device)
    with warnings.catch_warnings():
        # transformers' SDPA helper turns `q_length > 1` into a constant while tracing. An image always has more
        # than one patch, so the constant holds for every input; the parity gate checks the exported graph at
        # other sizes anyway. The warning only worried the user on every `faceedit up` that exports the parser.
        warnings.filterwarnings(
            "ignore", "Converting a tensor to a Python boolean", torch.jit.TracerWarning, r"transformers\."
        )
        _export(graph, example, path, device)
    return path


def _export(graph: ParserGraph, example: torch.Tensor, path: Path, device: str) -> None:
    torch.onnx.export(
        graph.eval().to(device),
        (example,),
        str(path),
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


def export_parser(
    model_id: str | Path,
    out: Path,
    *,
    revision: str | None = None,
    logits: bool = False,
    fp16: bool = False,
    parity_sizes: Sequence[tuple[int, int]] | None = None,
    parity_batch: int = 2,
    provider: str = "CPUExecutionProvider",
    seed: int = 0,
    log=None,
) -> list[ParityReport]:
    """Export, check parity at each (H, W) of parity_sizes (default: the processor's size, the serving size), and
    only then write `out`. Raises CheckpointLabelError for a checkpoint whose classes do not map, RuntimeError on
    a parity failure, ParityUnavailable where onnxruntime cannot run the graph to check it."""
    if provider not in ort.get_available_providers():  # before minutes of loading and tracing
        raise ParityUnavailable(f"this onnxruntime ({ort.__version__}) has no {provider}")
    model = load_parser(model_id, revision=revision)
    processor = load_processor(model_id, revision=revision)
    prep = preprocessing_from(processor.to_dict())
    order = canonical_order(model.config.id2label)
    sizes = tuple(parity_sizes or (prep.size or (512, 512),))
    # The graph gets its own copy: fp16 converts its weights in place, the reference stays fp32.
    graph = ParserGraph(load_parser(model_id, revision=revision), prep, order, fp16=fp16)
    rtol = FP16_RTOL if fp16 else RTOL
    with tempfile.TemporaryDirectory() as tmp:
        staged = trace_graph(graph, Path(tmp) / "model.onnx", sizes[0])
        del graph
        rng = np.random.default_rng(seed)
        reports = []
        for h, w in sizes:
            images = rng.integers(0, 256, (parity_batch, h, w, 3), dtype=np.uint8)
            reports.append(check_parity(model, processor, order, staged, images, rtol=rtol, provider=provider))
            if log is not None:
                log(describe(reports[-1]))
        failed = [r for r in reports if not r.ok]
        if failed:
            raise RuntimeError(f"ONNX export does not match the Hugging Face processor + model: {failed}")
        proto = onnx.load(str(staged))
        if not logits:
            # argmax still consumes the upsampled logits, so dropping the output removes no computation.
            kept = [o for o in proto.graph.output if o.name == "labels"]
            del proto.graph.output[:]
            proto.graph.output.extend(kept)
        metadata = {
            "faceedit.classes": ",".join(CLASS_NAMES),
            "faceedit.source": str(model_id),
            "faceedit.revision": revision or "",
            "faceedit.checkpoint_channel_of_class": ",".join(map(str, order)),
            "faceedit.processor_size": "x".join(map(str, prep.size)) if prep.size else "none",
            "faceedit.precision": "fp16" if fp16 else "fp32",
        }
        onnx.helper.set_model_props(proto, metadata)
        onnx.checker.check_model(proto)
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(out))
    return reports


def describe(r: ParityReport) -> str:
    return (
        f"parity {'ok' if r.ok else 'FAILED'} {tuple(r.shape)}: max logit error {r.max_logit_error:.2e} = "
        f"{r.relative_error:.1e} of the peak |logit| {r.peak:.3g} (allowed {r.rtol:g}); labels agree on "
        f"{r.label_agreement:.2%} of {r.decisive_pixels} pixels whose top-2 margin exceeds {2 * r.tolerance:.2e}; "
        f"onnxruntime {r.seconds:.2f}s"
    )


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width or height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export a SegFormer face parser to ONNX (uint8 image in, uint8 labels out) and verify parity "
        "against the Hugging Face image processor + model."
    )
    parser.add_argument("--model", required=True, help="hub id (e.g. jonathandinu/face-parsing) or local directory")
    parser.add_argument("--revision", default=None, help="hub revision to pin (commit sha or tag)")
    parser.add_argument("--out", type=Path, required=True, help="path of the model.onnx to write")
    parser.add_argument("--logits", action="store_true", help="also output the canonical logits [N,19,H,W]")
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="run SegFormer in float16 inside the graph (GPU); parity needs an onnxruntime that runs fp16 "
        "(--provider CUDAExecutionProvider)",
    )
    parser.add_argument(
        "--parity-size",
        type=_size,
        action="append",
        help="HxW to check parity at (repeatable; default the processor's size, 512 for jonathandinu/face-parsing)",
    )
    parser.add_argument("--parity-batch", type=int, default=2, help="images per parity check (default 2)")
    parser.add_argument(
        "--provider", default="CPUExecutionProvider", help="onnxruntime execution provider for the parity check"
    )
    args = parser.parse_args(argv)
    try:
        export_parser(
            args.model,
            args.out,
            revision=args.revision,
            logits=args.logits,
            fp16=args.fp16,
            parity_sizes=args.parity_size,
            parity_batch=args.parity_batch,
            provider=args.provider,
            log=print,
        )
    except ParityUnavailable as exc:
        print(
            f"export not written: parity cannot be checked here: {exc}\n"
            "An fp16 graph needs onnxruntime-gpu: run the export on the GPU machine with "
            "--provider CUDAExecutionProvider.",
            file=sys.stderr,
        )
        return 2
    except (RuntimeError, CheckpointLabelError, ValueError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
