"""Parser throughput: Triton (ParserClient -> launched tritonserver, uint8 in, labels out) vs the thesis path
(SegformerImageProcessor + PyTorch eager + F.interpolate + argmax per request, in this process), both at the same
concurrency, on the SegFormer-B0-size model at 512x512. A benchmark, not a test.

    python -m faceedit.parser.benchmark --concurrency 1 8 --requests 64
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceedit.export.onnx_export import export_parser
from faceedit.export.segformer import build_random_parser, load_parser, load_processor
from faceedit.parser.client import ParserClient
from faceedit.parser.launcher import TritonServer

SIZE = 512


def _thesis_parse(model: torch.nn.Module, processor, image: np.ndarray) -> np.ndarray:
    """Annexure 6 of the thesis: processor -> SegFormer -> bilinear upsample -> argmax."""
    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        upsampled = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
    return upsampled.argmax(dim=1)[0].to(torch.uint8).numpy()


def _thesis_throughput(model_dir: Path, images: list[np.ndarray], concurrency: int) -> float:
    model, processor = load_parser(model_dir), load_processor(model_dir)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda im: _thesis_parse(model, processor, im), images[:concurrency]))  # warm-up
        start = time.perf_counter()
        list(pool.map(lambda im: _thesis_parse(model, processor, im), images))
        return len(images) / (time.perf_counter() - start)


async def _triton_throughput(url: str, images: list[np.ndarray], concurrency: int) -> float:
    client = ParserClient(url, input_size=SIZE, timeout_s=120.0)
    queue: asyncio.Queue[np.ndarray] = asyncio.Queue()

    async def worker() -> None:
        while not queue.empty():
            await client.parse(queue.get_nowait())

    try:
        await asyncio.gather(*(client.parse(im) for im in images[:concurrency]))  # warm-up
        for image in images:
            queue.put_nowait(image)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(images) / (time.perf_counter() - start)
    finally:
        await client.close()


def run_parser_comparison(
    concurrency: Sequence[int] = (1, 8),
    requests: int = 48,
    *,
    model_dir: Path | None = None,
    instances: int = 1,
    ready_timeout_s: float = 120.0,
) -> dict:
    """Requests/s of both paths at each concurrency, and Triton's speed-up: {c: {"triton", "thesis", "ratio"}}."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(requests)]
    with tempfile.TemporaryDirectory(prefix="faceedit-bench-parser-") as tmp:
        work = Path(tmp)
        model_dir = model_dir or build_random_parser("b0", work / "b0")
        onnx_path = work / "model.onnx"
        export_parser(model_dir, onnx_path, parity_sizes=((64, 64),))
        results: dict = {}
        with TritonServer(
            onnx_path, workdir=work / "triton", instance_count=instances, ready_timeout_s=ready_timeout_s
        ) as server:
            for c in concurrency:
                results[c] = {"triton": asyncio.run(_triton_throughput(server.grpc_url, images, c))}
        for c in concurrency:
            results[c]["thesis"] = _thesis_throughput(model_dir, images, c)
            results[c]["ratio"] = results[c]["triton"] / results[c]["thesis"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare parser throughput: Triton path vs thesis PyTorch path.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="in-flight requests (default 1 8)")
    parser.add_argument("--requests", type=int, default=48, help="requests per measurement (default 48)")
    parser.add_argument("--model", type=Path, help="checkpoint dir (default: a random SegFormer-B0 built here)")
    parser.add_argument("--instances", type=int, default=1, help="Triton model instances (default 1)")
    args = parser.parse_args(argv)
    results = run_parser_comparison(args.concurrency, args.requests, model_dir=args.model, instances=args.instances)
    print(f"parser at {SIZE}x{SIZE}, {args.requests} requests, torch threads {torch.get_num_threads()}")
    for c, r in results.items():
        print(
            f"concurrency {c}: triton {r['triton']:.2f} req/s  thesis {r['thesis']:.2f} req/s  ratio {r['ratio']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
