"""The real inpainter server on loopback, with the tiny SDXL pipeline."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from faceedit.devstack.process import ServiceProcess, health_status
from faceedit.rpc.channels import channel_options
from faceedit.rpc.messages import from_raw, to_raw
from faceedit.v1 import inpainter_pb2, inpainter_pb2_grpc, types_pb2
from tests.fixtures.inpainter import start_inpainter
from tests.helpers import metric_value, wait_for

STEPS = 3


def _stub(address: str) -> inpainter_pb2_grpc.InpainterStub:
    return inpainter_pb2_grpc.InpainterStub(grpc.insecure_channel(address, options=channel_options()))


def _inputs(height: int = 150, width: int = 100) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[60:80, 30:70] = 255
    mask[80:84, 30:70] = 90  # soft edge
    return image, mask


def _request(image: np.ndarray, mask: np.ndarray, **kwargs) -> inpainter_pb2.InpaintRequest:
    kwargs.setdefault("num_inference_steps", STEPS)
    return inpainter_pb2.InpaintRequest(
        image=to_raw(image), mask=to_raw(mask), prompt="matte dusty-rose lipstick", attribute="lips", **kwargs
    )


def test_same_seed_gives_bit_identical_output(inpainter_server: ServiceProcess) -> None:
    stub = _stub(inpainter_server.address)
    image, mask = _inputs()
    first = stub.Inpaint(_request(image, mask, seed=123))
    second = stub.Inpaint(_request(image, mask, seed=123))
    other = stub.Inpaint(_request(image, mask, seed=124))
    assert first.seed == 123 and first.image.pixels == second.image.pixels
    assert other.image.pixels != first.image.pixels


@pytest.mark.parametrize("mode", [types_pb2.CROP_MODE_CROP, types_pb2.CROP_MODE_FULL_FRAME])
def test_pixels_outside_the_mask_are_untouched_and_size_is_kept(inpainter_server: ServiceProcess, mode: int) -> None:
    image, mask = _inputs(170, 96)
    response = _stub(inpainter_server.address).Inpaint(
        _request(image, mask, options=types_pb2.InpaintOptions(crop_mode=mode, color_match=True))
    )
    out = from_raw(response.image, channels=3)
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert (out[mask == 255] != image[mask == 255]).mean() > 0.5
    assert response.cropped == (mode == types_pb2.CROP_MODE_CROP)
    assert response.steps_run == int(STEPS * 0.9) and response.timings.denoise_ms > 0
    assert "smeared lipstick" in response.negative_prompt


def test_stream_reports_each_step_then_the_result(inpainter_server: ServiceProcess) -> None:
    image, mask = _inputs()
    events = list(_stub(inpainter_server.address).StreamInpaint(_request(image, mask, strength=1.0, preview_size=32)))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["progress"] * STEPS + ["result"]
    assert [e.progress.step for e in events[:-1]] == list(range(1, STEPS + 1))
    assert all(e.progress.total_steps == STEPS and e.progress.preview.data[:4] == b"\x89PNG" for e in events[:-1])


def test_cancelling_a_stream_stops_the_denoising_loop(inpainter_server: ServiceProcess) -> None:
    metrics = inpainter_server.metrics_url
    cancelled = 'faceedit_inpainter_requests_total{code="CANCELLED",method="StreamInpaint"}'
    before_cancelled = metric_value(metrics, cancelled)
    before_steps = metric_value(metrics, "faceedit_inpainter_denoise_steps_total")
    image, mask = _inputs()
    call = _stub(inpainter_server.address).StreamInpaint(_request(image, mask, strength=1.0, num_inference_steps=150))
    first = next(call)
    assert first.progress.step == 1
    call.cancel()
    deadline = time.monotonic() + 60
    while metric_value(metrics, cancelled) == before_cancelled:
        assert time.monotonic() < deadline, "the cancelled stream was never accounted for"
        time.sleep(0.05)
    ran = metric_value(metrics, "faceedit_inpainter_denoise_steps_total") - before_steps
    assert 1 <= ran < 150  # the loop stopped long before its 150 steps
    response = _stub(inpainter_server.address).Inpaint(_request(image, mask))  # and the pipeline is free again
    assert response.steps_run == int(STEPS * 0.9)


def test_full_queue_returns_resource_exhausted(tiny_inpaint_model: Path, tmp_path: Path) -> None:
    server = start_inpainter(tiny_inpaint_model, tmp_path, "--queue-size", "0")
    try:
        stub = _stub(server.address)
        image, mask = _inputs()
        long_call = stub.StreamInpaint(_request(image, mask, strength=1.0, num_inference_steps=150))
        assert next(long_call).progress.step == 1  # the pipeline is busy now
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.Inpaint(_request(image, mask))
        assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in excinfo.value.details() and "retry" in excinfo.value.details()
        assert any(key == "retry-after-ms" for key, _ in excinfo.value.trailing_metadata())
        long_call.cancel()
    finally:
        server.stop()


def test_a_request_that_would_wait_too_long_is_refused_with_a_retry_hint_from_the_estimate(
    tiny_inpaint_model: Path, tmp_path: Path
) -> None:
    """Room in the queue by count, but the running job's measured pace puts the wait above --max-queue-wait."""
    server = start_inpainter(tiny_inpaint_model, tmp_path, "--max-queue-wait", "0.2")
    try:
        stub = _stub(server.address)
        image, mask = _inputs()
        long_call = stub.StreamInpaint(_request(image, mask, strength=1.0, num_inference_steps=150))
        assert next(long_call).progress.step == 1
        estimated = metric_value(server.metrics_url, "faceedit_inpainter_estimated_wait_seconds")
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.Inpaint(_request(image, mask))
        assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (
            "estimated queue wait" in excinfo.value.details()
            and "above its maximum of 0.2 s" in excinfo.value.details()
        )
        retry_after = int(dict(excinfo.value.trailing_metadata())["retry-after-ms"])
        assert estimated > 0.2 and 0 < retry_after <= estimated * 1000 + 1000  # from the estimate, not a constant
        long_call.cancel()
        wait_for(lambda: metric_value(server.metrics_url, "faceedit_inpainter_estimated_wait_seconds") == 0, "idle")
        assert stub.Inpaint(_request(image, mask)).steps_run == int(STEPS * 0.9)  # admitted again once idle
    finally:
        server.stop()


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"mask": to_raw(np.zeros((10, 100), np.uint8))}, "mask is 100x10 but the image is 100x150"),
        ({"prompt": " "}, "prompt is required"),
        ({"prompt": "x" * 2001}, "prompt is 2001 characters; at most 2000 are accepted"),
        ({"negative_prompt": "x" * 5000}, "negative_prompt is 5000 characters"),
        ({"num_inference_steps": 0}, "num_inference_steps must be in [1, 150], got 0"),
        ({"num_inference_steps": 10000}, "got 10000"),
        ({"strength": 1.01}, "strength must be in (0, 1]"),
        ({"strength": -0.5}, "strength must be in (0, 1]"),
    ],
)
def test_malformed_requests_are_invalid_argument_and_the_server_stays_healthy(
    inpainter_server: ServiceProcess, overrides: dict, message: str
) -> None:
    image, mask = _inputs()
    request = _request(image, mask)
    for field, value in overrides.items():
        if isinstance(value, types_pb2.RawImage):
            getattr(request, field).CopyFrom(value)
        else:
            setattr(request, field, value)
    with pytest.raises(grpc.RpcError) as excinfo:
        _stub(inpainter_server.address).Inpaint(request)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in excinfo.value.details()
    assert health_status(inpainter_server.address, "faceedit.v1.Inpainter") == health_pb2.HealthCheckResponse.SERVING


def test_health_is_not_serving_until_the_pipeline_is_warm(tiny_inpaint_model: Path, tmp_path: Path) -> None:
    from faceedit.devstack.ports import free_port

    port = free_port()
    process = ServiceProcess(
        "inpainter",
        "faceedit.inpainter.server",
        ["--model", str(tiny_inpaint_model), "--port", str(port), "--metrics-port", "-1", "--working-size", "128"],
        f"127.0.0.1:{port}",
        "faceedit.v1.Inpainter",
        tmp_path / "log",
    ).spawn()
    try:
        seen: list[int | None] = [None]
        deadline = time.monotonic() + 120
        while seen[-1] != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            seen.append(health_status(process.address, "faceedit.v1.Inpainter"))
            time.sleep(0.02)
        assert seen[-1] == health_pb2.HealthCheckResponse.SERVING
        assert health_pb2.HealthCheckResponse.NOT_SERVING in seen  # reported before loading and warm-up finished
    finally:
        process.stop()
