"""`--parser-model some.onnx`: `faceedit up` and the local Triton launcher serve the file as it is, and refuse a
graph without face_parser's I/O in one line, before any server starts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import onnx
from grpc_health.v1 import health_pb2
from onnx import TensorProto, helper

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import health_status
from tests.helpers import FACEEDIT, run_faceedit, wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
CONTRACT = "input 'image' UINT8 [N,H,W,3], output 'labels' UINT8 [N,H,W]"


def _float_input_graph(path: Path) -> Path:
    """A parser exported the usual way for PyTorch: float NCHW pixel values in, class logits out."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["pixel_values"], ["logits"])],
        "segformer",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 512, 512])],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_up_serves_a_onnx_file_as_it_is(parser_model: Path, tiny_inpaint_model: Path, tmp_path: Path) -> None:
    """parser_model is the tiny SegFormer exported by faceedit.export.onnx_export: no export runs for it."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "inpaint-tiny").symlink_to(tiny_inpaint_model)
    stdout = tmp_path / "stdout"
    port = free_port()
    with stdout.open("w") as out:
        up = subprocess.Popen(
            [*FACEEDIT, "up", "--parser-model", str(parser_model), "--models-dir", str(models), "--port", str(port),
             "--triton-grpc-port", "0", "--inpainter-port", "0", "--metrics-port", "0",
             "--inpainter-metrics-port", "0", "--working-size", "128", "--parser-size", "128"],
            stdout=out, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "faceedit is up" in stdout.read_text() or up.poll() is not None, "the stack", timeout_s=300)
        assert up.poll() is None, up.stderr.read()
        assert health_status(f"127.0.0.1:{port}", "faceedit.v1.FaceEditor") == SERVING  # Triton has loaded it
        logs = Path(stdout.read_text().split("logs:", 1)[1].split()[0])
        served = logs / "triton-1" / "repository" / "face_parser" / "1" / "model.onnx"
        assert served.resolve() == parser_model.resolve()
        assert sorted(p.name for p in models.iterdir()) == ["inpaint-tiny"]  # nothing exported
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0


def test_up_refuses_a_graph_without_face_parsers_io_in_one_line(tmp_path: Path) -> None:
    wrong = _float_input_graph(tmp_path / "segformer.onnx")
    result = run_faceedit("up", "--parser-model", str(wrong), "--models-dir", str(tmp_path / "models"), timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"faceedit up: parser model {wrong} does not have face_parser's I/O ({CONTRACT}): "
        "its inputs are ['pixel_values'], not ['image']"
    )
    assert not (tmp_path / "models" / "inpaint-tiny").exists()  # refused before the inpainter's model was built


def test_the_triton_launcher_refuses_it_too(tmp_path: Path) -> None:
    wrong = _float_input_graph(tmp_path / "segformer.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "faceedit.devstack.triton", "--onnx", str(wrong), "--grpc-port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"faceedit.devstack.triton: parser model {wrong} does not have face_parser's I/O ({CONTRACT}): "
        "its inputs are ['pixel_values'], not ['image']"
    ]
