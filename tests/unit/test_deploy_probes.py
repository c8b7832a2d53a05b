"""Probes and draining: liveness follows the process only, readiness the dependencies, both on the plaintext
health port; preStop + drain fit inside terminationGracePeriodSeconds (which counts from before preStop)."""

from __future__ import annotations

import pytest

from tests.fixtures.deploy import OVERLAYS, by_kind, env_of, main_container, pod_spec

READINESS_SERVICE = {"inpainter": "faceedit.v1.Inpainter", "orchestrator": "faceedit.v1.FaceEditor"}
HEALTH_PORT = 50060
MARGIN_S = 10  # at least this much between the end of the drain and SIGKILL
SDXL_JOB_S = 30  # a generous SDXL job on one GPU (50 steps at 1024², with a crop); the drain covers a full queue


def _health_port(container: dict) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "health"]
    return port


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("stage", sorted(READINESS_SERVICE))
def test_grpc_probes_use_the_plaintext_health_port(rendered: dict[str, list[dict]], overlay: str, stage: str) -> None:
    """Kubernetes' gRPC probes speak no TLS: they must hit the health-only port, which the server opens there."""
    container = main_container(by_kind(rendered[overlay], "Deployment")[stage])
    assert int(env_of(container)["FACEEDIT_HEALTH_PORT"]) == _health_port(container) == HEALTH_PORT
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind in container:
            assert container[kind]["grpc"]["port"] == HEALTH_PORT, f"{stage} {kind}"
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert grpc_port != HEALTH_PORT


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("stage", sorted(READINESS_SERVICE))
def test_liveness_follows_the_process_and_readiness_the_dependencies(
    rendered: dict[str, list[dict]], overlay: str, stage: str
) -> None:
    container = main_container(by_kind(rendered[overlay], "Deployment")[stage])
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"
    assert container["readinessProbe"]["grpc"]["service"] == READINESS_SERVICE[stage]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_inpainters_own_load_can_restart_it(rendered: dict[str, list[dict]], overlay: str) -> None:
    """The inpainter's startup probe waits for its pipeline (minutes) before liveness counts. The orchestrator has
    no probe that restarts it on a dependency: neither liveness nor a startup probe may name its readiness service."""
    deployments = by_kind(rendered[overlay], "Deployment")
    inpainter = main_container(deployments["inpainter"])
    startup = inpainter["startupProbe"]
    assert startup["grpc"]["service"] == READINESS_SERVICE["inpainter"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    orchestrator = main_container(deployments["orchestrator"])
    for kind in ("livenessProbe", "startupProbe"):
        if kind in orchestrator:
            assert orchestrator[kind]["grpc"]["service"] == "liveness", kind


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_probes_its_http_health_endpoints(rendered: dict[str, list[dict]], overlay: str) -> None:
    container = main_container(by_kind(rendered[overlay], "Deployment")["face-parser"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert all(container[k]["httpGet"]["port"] == "http" for k in ("livenessProbe", "readinessProbe"))
    assert f"--http-port={ports['http']}" in container["args"]


def _drain_s(stage: str, container: dict) -> float:
    if stage == "face-parser":
        (timeout,) = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--exit-timeout-secs=")]
        return float(timeout)
    return float(env_of(container)["FACEEDIT_DRAIN_GRACE"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_prestop_and_drain(rendered: dict[str, list[dict]], overlay: str) -> None:
    for stage, deployment in by_kind(rendered[overlay], "Deployment").items():
        container = main_container(deployment)
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 5, f"{stage}: endpoints and DNS need time to drop the pod before SIGTERM"
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace >= pre_stop + _drain_s(stage, container) + MARGIN_S, stage


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_inpainters_drain_covers_a_full_queue(rendered: dict[str, list[dict]], overlay: str) -> None:
    env = env_of(main_container(by_kind(rendered[overlay], "Deployment")["inpainter"]))
    running_and_queued = int(env["FACEEDIT_QUEUE_SIZE"]) + 1
    assert float(env["FACEEDIT_DRAIN_GRACE"]) >= running_and_queued * SDXL_JOB_S
