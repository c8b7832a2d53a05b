"""`faceedit compare replicas`: EditFace throughput with one inpainter replica against several behind the same
orchestrator, in one run. Shows that calls, not connections, are balanced (each replica's share) and what adding
replicas buys on this machine (bounded by its cores: replicas compete for the same CPUs)."""

from __future__ import annotations

import asyncio
import os

from faceedit.bench.loadgen import run_level
from faceedit.bench.targets import caller_region, editface_target, photo
from faceedit.devstack.process import metric_value
from faceedit.v1 import face_editor_pb2 as fe

OK_CALLS = 'faceedit_inpainter_requests_total{code="OK",method="Inpaint"}'


def served(metrics_url: str) -> float:
    """Inpaint calls a replica answered OK, from its /metrics."""
    return metric_value(metrics_url, OK_CALLS)


def edit_request(size: int, steps: int) -> tuple[object, list[fe.Edit]]:
    """A size x size portrait and one edit of a fixed face-sized caller mask, so every call does the same work
    whatever the random parser finds."""
    image = photo(size, size)
    mask = image[..., 0] * 0
    mask[size // 4 : size * 3 // 4, size // 3 : size * 2 // 3] = 255
    return image, [fe.Edit(prompt="natural, detailed", num_inference_steps=steps, mask=caller_region(mask))]


def measure_stack(
    address: str, replica_metrics: list[str], *, concurrency: int, requests: int, size: int, steps: int
) -> dict:
    """A closed loop of `requests` EditFace calls at `concurrency` against one stack: throughput, latency and the
    calls each inpainter replica served."""
    image, edits = edit_request(size, steps)
    before = [served(url) for url in replica_metrics]

    async def level():
        target = editface_target(address, image, edits, timeout_s=600, input_format="jpeg", output_format="jpeg")
        try:
            return await run_level(target, concurrency=concurrency, requests=requests, warmup=concurrency)
        finally:
            await target.close()

    summary = asyncio.run(level()).summary()
    return {
        "replicas": len(replica_metrics),
        "throughput_rps": summary["throughput_rps"],
        "latency_ms": summary["latency_ms"],
        "errors": summary["errors"],
        "served_per_replica": [served(url) - b for url, b in zip(replica_metrics, before, strict=True)],
    }


def comparison(one: dict, many: dict, *, concurrency: int, steps: int, size: int, torch_threads: int) -> dict:
    """Both sides and the throughput ratio many/one."""
    return {
        "comparison": "replicas",
        "cpu_count": os.cpu_count(),
        "torch_threads_per_replica": torch_threads,
        "concurrency": concurrency,
        "steps": steps,
        "size": size,
        "one": one,
        "many": many,
        "throughput_ratio": many["throughput_rps"] / one["throughput_rps"],
    }
