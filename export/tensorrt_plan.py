"""ONNX -> TensorRT plan for the GPU deployment (model_repository/production/face_parser_trt).

Needs an NVIDIA GPU and the `tensorrt` Python package (NVIDIA's Triton image has both; build the plan on the same GPU
model and TensorRT version that serves it). On a machine without them it says so and exits non-zero.

    python -m faceedit.export.tensorrt_plan --onnx model.onnx --out model.plan --fp16
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

MISSING_GPU = 3
# model_repository/production/face_parser_trt lists these profiles (0 = 512, 1 = 1024) in its instance_group and
# tests/unit/test_model_repository.py checks they agree; max_batch_size there is MAX_BATCH.
DEFAULT_SIZES = (512, 1024)
MAX_BATCH = 8
SERVING_SIZE = 512

Shape = tuple[int, int, int, int]


def profiles(sizes: tuple[int, ...], max_batch: int) -> list[tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shapes of `image` per optimisation profile, in profile-index order: one per square size,
    batch 1..max_batch, optimum at half of it (the dynamic batcher's preferred sizes are 4 and 8)."""
    opt = max(1, max_batch // 2)
    return [((1, size, size, 3), (opt, size, size, 3), (max_batch, size, size, 3)) for size in sizes]


def ort_profile_options(size: int = SERVING_SIZE, max_batch: int = MAX_BATCH) -> dict[str, str]:
    """The same profile for onnxruntime's TensorRT execution provider (its trt_profile_*_shapes options)."""
    ((low, opt, high),) = profiles((size,), max_batch)

    def shape(dims: Shape) -> str:
        return "image:" + "x".join(map(str, dims))

    return {
        "trt_profile_min_shapes": shape(low),
        "trt_profile_opt_shapes": shape(opt),
        "trt_profile_max_shapes": shape(high),
    }


def _gpu_problem() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the `tensorrt` Python package is not installed (it ships in NVIDIA's Triton/TensorRT images)"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU driver found (nvidia-smi is missing)"
    return None


def build_plan(onnx_path: Path, out: Path, *, sizes: tuple[int, ...], max_batch: int, fp16: bool) -> Path:
    """One optimisation profile per square input size (profile i = sizes[i]), each for batch 1..max_batch."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    for low, opt, high in profiles(sizes, max_batch):
        profile = builder.create_optimization_profile()
        profile.set_shape("image", low, opt, high)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(plan))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a TensorRT plan from the face parser ONNX. REQUIRES an NVIDIA GPU and the tensorrt "
        "package; without them it exits with status 3 and builds nothing."
    )
    parser.add_argument("--onnx", type=Path, required=True, help="model.onnx from faceedit.export.onnx_export")
    parser.add_argument("--out", type=Path, required=True, help="model.plan to write")
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="square input sizes, one profile each, in the order face_parser_trt's instance_group lists them "
        "(default 512,1024)",
    )
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH, help="largest batch per profile (default 8)")
    parser.add_argument("--fp16", action="store_true", help="allow fp16 kernels")
    args = parser.parse_args(argv)
    problem = _gpu_problem()
    if problem:
        print(
            f"cannot build a TensorRT plan here: {problem}. Run this on the GPU machine that serves it.",
            file=sys.stderr,
        )
        return MISSING_GPU
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(build_plan(args.onnx, args.out, sizes=sizes, max_batch=args.max_batch, fp16=args.fp16))
    return 0


if __name__ == "__main__":
    sys.exit(main())
