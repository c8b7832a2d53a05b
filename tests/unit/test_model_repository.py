"""Every config.pbtxt parses as Triton's ModelConfig, and the local CPU variant serves exactly the production I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

REPO = Path(__file__).resolve().parents[2] / "model_repository"
CONFIGS = sorted(REPO.rglob("*.pbtxt"))


def _load(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def _io(config: mc.ModelConfig) -> tuple:
    def tensors(items) -> list[tuple]:
        return [(t.name, t.data_type, tuple(t.dims)) for t in items]

    return tensors(config.input), tensors(config.output), config.max_batch_size


def test_every_config_parses() -> None:
    assert len(CONFIGS) >= 4
    for path in CONFIGS:
        config = _load(path)
        assert config.name.startswith("face_parser"), path


@pytest.mark.parametrize(
    "production",
    [
        "production/face_parser/config.pbtxt",
        "production/face_parser/configs/tensorrt_accelerator.pbtxt",
        "production/face_parser_trt/config.pbtxt",
    ],
)
def test_local_and_production_declare_identical_io(production: str) -> None:
    local = _load(REPO / "local/face_parser/config.pbtxt")
    assert _io(_load(REPO / production)) == _io(local)
    inputs, outputs, max_batch = _io(local)
    assert inputs == [("image", mc.TYPE_UINT8, (-1, -1, 3))]
    assert outputs == [("labels", mc.TYPE_UINT8, (-1, -1))]
    assert max_batch == 8


def test_production_is_batched_warmed_and_on_gpu() -> None:
    for path in ("production/face_parser/config.pbtxt", "production/face_parser_trt/config.pbtxt"):
        config = _load(REPO / path)
        assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        assert all(group.kind == mc.ModelInstanceGroup.KIND_GPU for group in config.instance_group)
        (warmup,) = config.model_warmup
        assert list(warmup.inputs["image"].dims) == [512, 512, 3]
    assert _load(REPO / "production/face_parser/config.pbtxt").platform == "onnxruntime_onnx"
    assert _load(REPO / "production/face_parser_trt/config.pbtxt").platform == "tensorrt_plan"


def test_tensorrt_accelerator_variant_enables_fp16_trt() -> None:
    config = _load(REPO / "production/face_parser/configs/tensorrt_accelerator.pbtxt")
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"


def test_local_variant_runs_the_python_backend() -> None:
    config = _load(REPO / "local/face_parser/config.pbtxt")
    assert config.backend == "python"
    assert (REPO / "local/face_parser/1/model.py").is_file()
