"""A real tritonserver serves the exported tiny parser; the orchestrator's client talks to it over gRPC."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from faceedit.core.geometry import unletterbox
from faceedit.devstack.ports import free_port
from faceedit.devstack.triton import TritonServer, TritonStartError
from faceedit.orchestrator.parser_client import ParserClient, ParserError, ParserUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _run(coro):
    return asyncio.run(coro)


async def _infer(url: str, batch: np.ndarray, **kwargs) -> np.ndarray:
    client = ParserClient(url, **kwargs)
    try:
        return await client.infer_raw(batch)
    finally:
        await client.close()


def _success_count(metrics_url: str) -> int:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    match = re.search(r'^nv_inference_request_success\{model="face_parser",version="1"\} (\d+)', text, re.M)
    assert match, "nv_inference_request_success for face_parser is missing from the metrics"
    return int(match.group(1))


def test_labels_over_grpc_equal_a_direct_onnxruntime_run(triton_server: TritonServer, parser_model: Path) -> None:
    batch = _images(1)
    (expected,) = ort.InferenceSession(str(parser_model)).run(["labels"], {"image": batch})
    assert np.array_equal(_run(_infer(triton_server.grpc_url, batch)), expected)


def test_batches_of_several_images(triton_server: TritonServer, parser_model: Path) -> None:
    batch = _images(5, seed=3)
    (expected,) = ort.InferenceSession(str(parser_model)).run(["labels"], {"image": batch})
    assert np.array_equal(_run(_infer(triton_server.grpc_url, batch)), expected)


def test_letterboxed_labels_map_back_to_each_images_size(triton_server: TritonServer) -> None:
    async def go() -> list[np.ndarray]:
        client = ParserClient(triton_server.grpc_url, input_size=64)
        try:
            images = [_images(1, 64)[0][:40], np.zeros((30, 90, 3), np.uint8)]
            canvases, boxes = zip(*(client.letterbox(image) for image in images), strict=True)
            labels = await client.infer_raw(np.stack(canvases))
            return [unletterbox(lab, box, nearest=True) for lab, box in zip(labels, boxes, strict=True)]
        finally:
            await client.close()

    first, second = _run(go())
    assert first.shape == (40, 64) and second.shape == (30, 90)
    assert first.dtype == np.uint8 and first.max() < 19


def test_batch_over_max_batch_size_is_rejected_clearly(triton_server: TritonServer) -> None:
    with pytest.raises(ParserError, match="batch-size must be <= 8") as excinfo:
        _run(_infer(triton_server.grpc_url, _images(9)))
    assert not isinstance(excinfo.value, ParserUnavailableError)


def test_wrong_dtype_or_shape_is_rejected_clearly(triton_server: TritonServer) -> None:
    with pytest.raises(ParserError, match=r"uint8 \[N,H,W,3\].*float32"):
        _run(_infer(triton_server.grpc_url, _images(1).astype(np.float32)))
    with pytest.raises(ParserError, match=r"uint8 \[N,H,W,3\]"):
        _run(_infer(triton_server.grpc_url, np.zeros((1, 64, 64, 4), np.uint8)))


def test_metrics_count_successful_requests(triton_server: TritonServer) -> None:
    before = _success_count(triton_server.metrics_url)
    for seed in range(3):
        _run(_infer(triton_server.grpc_url, _images(1, seed=seed)))
    assert _success_count(triton_server.metrics_url) == before + 3


def test_unreachable_parser_is_unavailable_within_the_deadline() -> None:
    url = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ParserUnavailableError, match=r"unavailable|deadline"):
        _run(_infer(url, _images(1), timeout_s=2.0, retries=2))
    assert time.monotonic() - started < 3.0  # the channel's retries stay inside the deadline


def test_numpy2_stub_returns_empty_outputs_and_the_client_says_so(parser_model: Path, tmp_path: Path) -> None:
    # The project venv has numpy 2: a stub running there reproduces Triton 2.51's silent empty outputs.
    server = TritonServer(parser_model, python_env=REPO_ROOT / ".venv", workdir=tmp_path)
    with server, pytest.raises(ParserError, match="numpy 2"):
        _run(_infer(server.grpc_url, _images(1)))


def test_readiness_timeout_kills_a_hung_server_and_cleans_its_shm(parser_model: Path, tmp_path: Path) -> None:
    # A stub that never connects back leaves Triton "loading" forever, as a broken stub environment does.
    backend = tmp_path / "backends" / "python"
    backend.mkdir(parents=True)
    stub = backend / "triton_python_backend_stub"
    stub.write_text("#!/bin/sh\nexec sleep 600\n")
    stub.chmod(0o755)
    server = TritonServer(parser_model, workdir=tmp_path, ready_timeout_s=6)
    with pytest.raises(TritonStartError, match="did not get face_parser ready within 6s"):
        server.start()
    assert server.process is not None and server.process.poll() is not None
    assert server.shm_regions() == []


def test_the_server_reports_the_provider_onnxruntime_gave(triton_server: TritonServer) -> None:
    assert triton_server.provider == "CPUExecutionProvider"


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_a_gpu_provider_without_onnxruntime_gpu_fails_naming_what_to_install(
    parser_model: Path, tmp_path: Path, provider: str
) -> None:
    server = TritonServer(parser_model, workdir=tmp_path, provider=provider, ready_timeout_s=30)
    with pytest.raises(TritonStartError) as excinfo:
        server.start()
    first_line = str(excinfo.value).splitlines()[0]
    assert f"execution_provider '{provider}' needs" in first_line and "CUDAExecutionProvider" in first_line
    assert "install onnxruntime-gpu" in first_line and "triton-requirements-gpu.txt" in first_line
    assert server.process is not None and server.process.poll() is not None
    assert server.shm_regions() == []


def test_auto_uses_the_cpu_when_no_gpu_provider_is_usable(parser_model: Path, tmp_path: Path) -> None:
    with TritonServer(parser_model, workdir=tmp_path, provider="auto") as server:
        assert server.provider == "CPUExecutionProvider"
        (expected,) = ort.InferenceSession(str(parser_model)).run(["labels"], {"image": _images(1)})
        assert np.array_equal(_run(_infer(server.grpc_url, _images(1))), expected)
