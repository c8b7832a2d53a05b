"""The model cache: one volume the model-cache Job writes and every serving pod mounts read-only; the Job fills in
exactly what the serving pods load (same model ids, variant, paths); Triton's config on it matches the repository's."""

from __future__ import annotations

import py_compile
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tests.fixtures.deploy import OVERLAYS, ROOT, by_kind, env_of, main_container, pod_spec

CLAIM = "faceedit-model-cache"
SERVING = ("face-parser", "inpainter")


def _claim_mount(workload: dict) -> dict:
    (volume,) = [
        v for v in pod_spec(workload)["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == CLAIM
    ]
    (mount,) = [m for m in main_container(workload)["volumeMounts"] if m["name"] == volume["name"]]
    return {"volume": volume["persistentVolumeClaim"], "mount": mount}


def _configmap_file(docs: list[dict], workload: dict, path: str) -> str:
    """The content a ConfigMap-backed mount of `workload` serves at `path`."""
    volumes = {v["name"]: v["configMap"]["name"] for v in pod_spec(workload)["volumes"] if "configMap" in v}
    configmaps = by_kind(docs, "ConfigMap")
    for mount in main_container(workload)["volumeMounts"]:
        if mount["name"] in volumes and PurePosixPath(path).parent == PurePosixPath(mount["mountPath"]):
            return configmaps[volumes[mount["name"]]]["data"][PurePosixPath(path).name]
    raise AssertionError(f"{path} is on no ConfigMap mount")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_pods_mount_the_cache_read_only_and_the_job_writes_it(
    rendered: dict[str, list[dict]], overlay: str
) -> None:
    docs = rendered[overlay]
    deployments = by_kind(docs, "Deployment")
    for stage in SERVING:
        claim = _claim_mount(deployments[stage])
        assert claim["volume"]["readOnly"] is True and claim["mount"]["readOnly"] is True, stage
    assert not any(v.get("persistentVolumeClaim") for v in pod_spec(deployments["orchestrator"])["volumes"]), (
        "the orchestrator loads no model"
    )
    job = _claim_mount(by_kind(docs, "Job")["model-cache"])
    assert not job["volume"].get("readOnly") and not job["mount"].get("readOnly")
    access = by_kind(docs, "PersistentVolumeClaim")[CLAIM]["spec"]["accessModes"]
    # Production pods run on many nodes; cpu-tiny is for single-node clusters (kind's local-path has no RWX).
    assert access == (["ReadWriteOnce"] if overlay == "cpu-tiny" else ["ReadWriteMany"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_job_fetches_what_the_inpainter_loads(rendered: dict[str, list[dict]], overlay: str) -> None:
    docs = rendered[overlay]
    inpainter = env_of(main_container(by_kind(docs, "Deployment")["inpainter"]))
    job = env_of(main_container(by_kind(docs, "Job")["model-cache"]))
    assert job["INPAINT_MODEL"] == inpainter["FACEEDIT_INPAINT_MODEL"]
    assert job.get("INPAINT_VAE") == inpainter.get("FACEEDIT_INPAINT_VAE")
    assert job.get("INPAINT_VARIANT") == inpainter.get("FACEEDIT_INPAINT_VARIANT")
    assert job.get("INPAINT_REVISION") == inpainter.get("FACEEDIT_INPAINT_REVISION")
    # Serving pods never download: hub ids resolve from HF_HOME on the volume, offline.
    assert inpainter["HF_HUB_OFFLINE"] == "1" and inpainter["HF_HOME"] == job["HF_HOME"]
    mount = _claim_mount(by_kind(docs, "Deployment")["inpainter"])["mount"]["mountPath"]
    assert PurePosixPath(inpainter["HF_HOME"]).is_relative_to(mount)
    if inpainter["FACEEDIT_INPAINT_MODEL"].startswith("/"):  # a directory the Job builds (cpu-tiny)
        assert PurePosixPath(inpainter["FACEEDIT_INPAINT_MODEL"]).is_relative_to(mount)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_serves_the_repository_the_job_writes(rendered: dict[str, list[dict]], overlay: str) -> None:
    docs = rendered[overlay]
    triton = by_kind(docs, "Deployment")["face-parser"]
    job = by_kind(docs, "Job")["model-cache"]
    (repository,) = [a.split("=", 1)[1] for a in main_container(triton)["args"] if a.startswith("--model-repository=")]
    job_env = env_of(main_container(job))
    # fill.sh writes $MODELS_DIR/triton/face_parser; both pods mount the claim at the same path.
    assert repository == f"{job_env['MODELS_DIR']}/triton"
    assert (
        _claim_mount(triton)["mount"]["mountPath"] == _claim_mount(job)["mount"]["mountPath"] == job_env["MODELS_DIR"]
    )
    script = _configmap_file(docs, job, main_container(job)["command"][-1])
    assert '"$MODELS_DIR/triton/face_parser"' in script and '"$TRITON_CONFIG"' in script
    _configmap_file(docs, job, job_env["TRITON_CONFIG"])  # the config the script copies is mounted


def _model_config(docs: list[dict]) -> mc.ModelConfig:
    job = by_kind(docs, "Job")["model-cache"]
    text = _configmap_file(docs, job, env_of(main_container(job))["TRITON_CONFIG"])
    return text_format.Parse(text, mc.ModelConfig())


def _io(config: mc.ModelConfig) -> tuple:
    return (
        [(t.name, t.data_type, tuple(t.dims)) for t in config.input],
        [(t.name, t.data_type, tuple(t.dims)) for t in config.output],
        config.max_batch_size,
    )


def test_gpu_triton_config_is_the_repositorys_production_config(rendered: dict[str, list[dict]]) -> None:
    production = (ROOT / "model_repository/production/face_parser/config.pbtxt").read_text()
    assert _model_config(rendered["gpu"]) == text_format.Parse(production, mc.ModelConfig())


def test_cpu_tiny_triton_config_serves_the_same_io_on_cpu(rendered: dict[str, list[dict]]) -> None:
    production = text_format.Parse(
        (ROOT / "model_repository/production/face_parser/config.pbtxt").read_text(), mc.ModelConfig()
    )
    tiny = _model_config(rendered["cpu-tiny"])
    assert tiny.name == production.name and tiny.platform == "onnxruntime_onnx"
    assert _io(tiny) == _io(production)
    assert tiny.instance_group and all(g.kind == mc.ModelInstanceGroup.KIND_CPU for g in tiny.instance_group)
    (warmup,) = tiny.model_warmup
    assert list(warmup.inputs["image"].dims) == [512, 512, 3]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_fill_scripts_parse(rendered: dict[str, list[dict]], overlay: str, tmp_path: Path) -> None:
    docs = rendered[overlay]
    job = by_kind(docs, "Job")["model-cache"]
    assert main_container(job)["command"][:1] == ["/bin/sh"]
    (scripts,) = [c for name, c in by_kind(docs, "ConfigMap").items() if name.startswith("model-cache-scripts")]
    for name, text in scripts["data"].items():
        path = tmp_path / name
        path.write_text(text)
        if name.endswith(".sh"):
            result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            assert "set -eu" in text  # a failed step fails the Job instead of leaving half a cache
        else:
            py_compile.compile(str(path), doraise=True)
