"""Every config.pbtxt parses as Triton's ModelConfig, and the local CPU variant serves exactly the production I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from faceedit.devstack import triton
from faceedit.devstack.triton import LOCAL_MODEL
from faceedit.export import tensorrt_plan

REPO = Path(__file__).resolve().parents[2] / "model_repository"
CONFIGS = sorted([*REPO.rglob("*.pbtxt"), *LOCAL_MODEL.rglob("*.pbtxt")])


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
    local = _load(LOCAL_MODEL.parent / "face_parser/config.pbtxt")
    assert _io(_load(REPO / production)) == _io(local)
    inputs, outputs, max_batch = _io(local)
    assert inputs == [("image", mc.TYPE_UINT8, (-1, -1, 3))]
    assert outputs == [("labels", mc.TYPE_UINT8, (-1, -1))]
    assert max_batch == 8


PRODUCTION = (
    "production/face_parser/config.pbtxt",
    "production/face_parser/configs/tensorrt_accelerator.pbtxt",
    "production/face_parser_trt/config.pbtxt",
)


def _warmups(config: mc.ModelConfig) -> set[tuple[int, int]]:
    return {(w.inputs["image"].dims[0], w.batch_size) for w in config.model_warmup}


@pytest.mark.parametrize("path", PRODUCTION)
def test_production_is_batched_on_gpu_and_warmed_at_batch_1_and_the_maximum(path: str) -> None:
    config = _load(REPO / path)
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert all(group.kind == mc.ModelInstanceGroup.KIND_GPU for group in config.instance_group)
    assert {(512, 1), (512, config.max_batch_size)} <= _warmups(config)
    assert all(list(w.inputs["image"].dims)[2] == 3 and w.inputs["image"].random_data for w in config.model_warmup)


def test_production_platforms() -> None:
    assert _load(REPO / "production/face_parser/config.pbtxt").platform == "onnxruntime_onnx"
    assert _load(REPO / "production/face_parser_trt/config.pbtxt").platform == "tensorrt_plan"


def test_tensorrt_accelerator_variant_enables_fp16_trt_with_one_profile_for_every_batch() -> None:
    config = _load(REPO / "production/face_parser/configs/tensorrt_accelerator.pbtxt")
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    profile = {k: v for k, v in accelerator.parameters.items() if k.startswith("trt_profile_")}
    assert profile == tensorrt_plan.ort_profile_options(512, config.max_batch_size)
    assert profile["trt_profile_min_shapes"] == "image:1x512x512x3"
    assert profile["trt_profile_max_shapes"] == "image:8x512x512x3"


def test_tensorrt_plan_instances_get_every_profile_the_plan_builder_makes() -> None:
    config = _load(REPO / "production/face_parser_trt/config.pbtxt")
    built = tensorrt_plan.profiles(tensorrt_plan.DEFAULT_SIZES, tensorrt_plan.MAX_BATCH)
    assert config.max_batch_size == tensorrt_plan.MAX_BATCH
    for group in config.instance_group:
        assert list(group.profile) == [str(i) for i in range(len(built))]
    for (low, _, high), size in zip(built, tensorrt_plan.DEFAULT_SIZES, strict=True):
        assert low == (1, size, size, 3) and high == (config.max_batch_size, size, size, 3)
        assert {(size, 1), (size, config.max_batch_size)} <= _warmups(config)


def test_local_variant_runs_the_python_backend_on_cpu_by_default() -> None:
    config = _load(LOCAL_MODEL.parent / "face_parser/config.pbtxt")
    assert config.backend == "python"
    assert config.parameters["execution_provider"].string_value == "cpu"
    assert (LOCAL_MODEL.parent / "face_parser/1/model.py").is_file()


def test_the_launcher_writes_the_provider_into_the_local_config() -> None:
    text = (LOCAL_MODEL.parent / "face_parser/config.pbtxt").read_text()
    cpu = text_format.Parse(triton.local_config(text, instance_count=3), mc.ModelConfig())
    assert cpu.instance_group[0].count == 3 and cpu.parameters["max_onnx_batch"].string_value == "1"
    cuda = text_format.Parse(triton.local_config(text, provider="cuda", device_id=1), mc.ModelConfig())
    params = {k: v.string_value for k, v in cuda.parameters.items()}
    assert params["execution_provider"] == "cuda" and params["device_id"] == "1"
    assert params["max_onnx_batch"] == "8" and params["intra_op_threads"] == "0"
    assert _io(cuda) == _io(_load(LOCAL_MODEL.parent / "face_parser/config.pbtxt"))
    with pytest.raises(ValueError, match="not one of"):
        triton.local_config(text, provider="rocm")


def test_model_py_reports_its_provider_on_the_line_the_launcher_reads() -> None:
    source = (LOCAL_MODEL.parent / "face_parser/1/model.py").read_text()
    assert f'PROVIDER_LOG_PREFIX = "{triton.PROVIDER_LOG_PREFIX}"' in source
    log = f'I1123 model.py:80] "{triton.PROVIDER_LOG_PREFIX} CUDAExecutionProvider (requested cuda; ...)"'
    assert triton.provider_from_log("other line\n" + log) == "CUDAExecutionProvider"
    assert triton.provider_from_log("nothing yet") is None


@pytest.mark.parametrize(
    ("device", "expected"), [("auto", ("auto", 0)), ("cpu", ("cpu", 0)), ("cuda", ("cuda", 0)), ("cuda:2", ("cuda", 2))]
)
def test_faceedit_devices_map_to_parser_providers(device: str, expected: tuple[str, int]) -> None:
    assert triton.provider_for_device(device) == expected


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of auto, cpu, cuda"):
        triton.provider_for_device("tpu")


def _requirements(name: str) -> dict[str, str]:
    lines = (LOCAL_MODEL.parents[1] / name).read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {package.split("[")[0]: version for package, version in pins}


def test_the_gpu_triton_venv_swaps_only_onnxruntime_for_onnxruntime_gpu() -> None:
    cpu, gpu = _requirements("triton-requirements.txt"), _requirements("triton-requirements-gpu.txt")
    assert "onnxruntime" not in gpu and "onnxruntime-gpu" in gpu
    assert {k: v for k, v in cpu.items() if k != "onnxruntime"} == {
        k: v for k, v in gpu.items() if k != "onnxruntime-gpu"
    }
