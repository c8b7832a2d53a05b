"""The cpu-tiny overlay's model-cache Job, run here as the pod would run it: its fill.sh from the rendered ConfigMap,
its env, with /models mapped to a scratch directory. It must leave a Triton model repository whose model answers
and a pipeline the inpainter loads, where the Deployments look for them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tests.fixtures.deploy import by_kind, env_of, main_container, pod_spec


def _mounted_configmaps(docs: list[dict], job: dict) -> dict[str, str]:
    """{path inside the pod: content} for every ConfigMap file the Job mounts."""
    names = {v["name"]: v["configMap"]["name"] for v in pod_spec(job)["volumes"] if "configMap" in v}
    configmaps = by_kind(docs, "ConfigMap")
    files = {}
    for mount in main_container(job)["volumeMounts"]:
        if mount["name"] in names:
            for key, text in configmaps[names[mount["name"]]]["data"].items():
                files[f"{mount['mountPath']}/{key}"] = text
    return files


def test_cpu_tiny_job_fills_a_cache_the_serving_pods_can_use(rendered: dict[str, list[dict]], tmp_path: Path) -> None:
    docs = rendered["cpu-tiny"]
    job = by_kind(docs, "Job")["model-cache"]
    container = main_container(job)
    env = env_of(container)
    models = env["MODELS_DIR"]

    def local(path: str) -> Path:
        """A pod path on this machine: /models -> the scratch volume, ConfigMap mounts -> their files."""
        if PurePosixPath(path).is_relative_to(models):
            return tmp_path / "models" / PurePosixPath(path).relative_to(models)
        return tmp_path / "mounts" / PurePosixPath(path).relative_to("/")

    for path, text in _mounted_configmaps(docs, job).items():
        local(path).parent.mkdir(parents=True, exist_ok=True)
        local(path).write_text(text)
    (tmp_path / "models").mkdir()
    pod_env = {name: str(local(value)) if value.startswith("/") else value for name, value in env.items()}
    command = [str(local(arg)) if arg.startswith("/scripts/") else arg for arg in container["command"]]
    result = subprocess.run(
        command,
        env={**os.environ, **pod_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Triton's repository, where the face-parser Deployment points --model-repository.
    triton = main_container(by_kind(docs, "Deployment")["face-parser"])
    (repository,) = [a.split("=", 1)[1] for a in triton["args"] if a.startswith("--model-repository=")]
    model_dir = local(repository) / "face_parser"
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
    assert config.name == "face_parser" and config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    (labels,) = session.run(["labels"], {"image": np.zeros((1, 64, 48, 3), np.uint8)})
    assert labels.shape == (1, 64, 48) and labels.dtype == np.uint8
    assert not (tmp_path / "models" / "tmp").exists()  # the staging area is gone

    # The pipeline, where the inpainter Deployment's FACEEDIT_INPAINT_MODEL points.
    from diffusers import AutoPipelineForInpainting

    inpainter = env_of(main_container(by_kind(docs, "Deployment")["inpainter"]))
    pipeline = AutoPipelineForInpainting.from_pretrained(str(local(inpainter["FACEEDIT_INPAINT_MODEL"])))
    assert pipeline.unet.config.in_channels == 9
    native = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    assert int(inpainter["FACEEDIT_WORKING_SIZE"]) == native
