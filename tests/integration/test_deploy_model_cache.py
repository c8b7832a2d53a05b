"""The cpu-tiny overlay's model-cache Job, run here as the pod would run it: its fill.sh from the rendered ConfigMap,
its env, with /models mapped to a scratch directory. It must leave a Triton model repository whose model answers
and a pipeline the inpainter loads, where the Deployments look for them."""

from __future__ import annotations

import os
import shutil
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


def _hub_repo(hf_home: Path, repo_id: str, files: Path) -> Path:
    """`files` laid out as the Hugging Face cache holds a downloaded repository (one snapshot, refs/main)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


def test_gpu_job_fetch_script_accepts_a_complete_cache_and_fails_an_incomplete_one(
    rendered: dict[str, list[dict]], tiny_inpaint_model: Path, tmp_path: Path
) -> None:
    """The gpu Job's fetch_pipeline.py, run offline against a cache holding the pipeline (in the Job's variant) and
    the VAE: it loads both from the cache alone, as the serving pods will, and fails the Job once a component is
    missing."""
    from diffusers import StableDiffusionXLInpaintPipeline

    docs = rendered["gpu"]
    job = by_kind(docs, "Job")["model-cache"]
    env = env_of(main_container(job))
    script = tmp_path / "fetch_pipeline.py"
    script.write_text(_mounted_configmaps(docs, job)["/scripts/fetch_pipeline.py"])
    hf_home = tmp_path / "hf"
    variant_dir = tmp_path / "variant"
    StableDiffusionXLInpaintPipeline.from_pretrained(str(tiny_inpaint_model)).save_pretrained(
        variant_dir, variant=env["INPAINT_VARIANT"]
    )
    snapshot = _hub_repo(hf_home, "faceedit-test/tiny-sdxl-inpainting", variant_dir)
    _hub_repo(hf_home, "faceedit-test/tiny-vae", tiny_inpaint_model / "vae")
    job_env = {
        **os.environ,
        **env,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",  # the test machine reaches no hub: the download step resolves from the cache
        "INPAINT_MODEL": "faceedit-test/tiny-sdxl-inpainting",
        "INPAINT_VAE": "faceedit-test/tiny-vae",
    }

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script)], env=job_env, capture_output=True, text=True, timeout=120)

    complete = run()
    assert complete.returncode == 0, complete.stderr[-3000:]
    assert "loads offline as StableDiffusionXLInpaintPipeline" in complete.stdout
    shutil.rmtree(snapshot / "unet")
    incomplete = run()
    assert incomplete.returncode != 0
