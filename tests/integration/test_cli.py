"""The `faceedit` command as users run it: subprocesses against the real stack."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.taxonomy import ATTRIBUTES
from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ServiceProcess, health_status
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.helpers import FACEEDIT, run_faceedit
from tests.integration.test_editface_e2e import _portrait, _stub


@pytest.fixture(scope="module")
def portrait_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "portrait.png"
    path.write_bytes(encode_image(_portrait()))
    return path


def test_attributes_and_parse(editor_stack: ServiceProcess, portrait_file: Path, tmp_path: Path) -> None:
    listed = run_faceedit("attributes", "--server", editor_stack.address)
    assert listed.returncode == 0, listed.stderr
    assert "lips" in listed.stdout and "guidance 12.0" in listed.stdout
    parsed = run_faceedit("parse", str(portrait_file), "--server", editor_stack.address, "-o", str(tmp_path))
    assert parsed.returncode == 0, parsed.stderr
    assert "attributes present:" in parsed.stdout
    assert decode_image((tmp_path / "labels.png").read_bytes()).shape[:2] == (180, 120)


def test_edit_writes_the_result_and_the_grid(editor_stack: ServiceProcess, portrait_file: Path, tmp_path: Path) -> None:
    stub = _stub(editor_stack.address)
    response = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=portrait_file.read_bytes())))
    fraction = {c.class_id: c.fraction for c in response.coverage}
    largest = max(ATTRIBUTES, key=lambda a: sum(fraction.get(i, 0.0) for i in ATTRIBUTES[a]))
    out = tmp_path / "edited.png"
    result = run_faceedit(
        "edit",
        str(portrait_file),
        "-e",
        f"{largest}=curly auburn hair",
        "--steps",
        "3",
        "--server",
        editor_stack.address,
        "-o",
        str(out),
        "--grid",
        str(tmp_path / "grid.png"),
    )
    assert result.returncode == 0, result.stderr
    assert decode_image(out.read_bytes()).shape == (180, 120, 3)
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    assert "coverage" in result.stdout


def test_edit_reports_errors_with_their_status(
    editor_stack: ServiceProcess, portrait_file: Path, tmp_path: Path
) -> None:
    result = run_faceedit(
        "edit", str(portrait_file), "-e", "hiar=red", "--server", editor_stack.address, "-o", str(tmp_path / "x.png")
    )
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "Did you mean 'hair'" in result.stderr


def test_up_serves_the_stack_and_stops_it_on_sigterm(models_dir: Path, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("port", "triton", "inpainter", "metrics", "inpainter_metrics")}
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *FACEEDIT,
                "up",
                "--models-dir",
                str(models_dir),
                "--working-size",
                "128",
                "--parser-size",
                "128",
                "--port",
                str(ports["port"]),
                "--triton-grpc-port",
                str(ports["triton"]),
                "--inpainter-port",
                str(ports["inpainter"]),
                "--metrics-port",
                str(ports["metrics"]),
                "--inpainter-metrics-port",
                str(ports["inpainter_metrics"]),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"127.0.0.1:{ports['port']}"
    try:
        deadline = time.monotonic() + 180
        while "<- EditFace here" not in log.read_text():  # printed once every service reports SERVING
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert health_status(address, "faceedit.v1.FaceEditor") == health_pb2.HealthCheckResponse.SERVING
        stub = face_editor_pb2_grpc.FaceEditorStub(grpc.insecure_channel(address))
        assert len(stub.ListAttributes(fe.ListAttributesRequest(), timeout=10).attributes) == 14
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        for port in (ports["port"], ports["inpainter"]):
            assert health_status(f"127.0.0.1:{port}") is None  # every child is gone
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # `faceedit up` stops its children in order
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its children get SIGTERM through PDEATHSIG
                process.wait()
