"""Security in the manifests: restricted pods, certificates and tokens mounted where the env and flags point, TLS and
mTLS on every hop, cert-manager certificates that match the names clients dial, and NetworkPolicies that let only
the orchestrators reach the inpainters' and Triton's gRPC ports."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from tests.fixtures.deploy import (
    DEPLOY,
    NAMESPACE,
    OVERLAYS,
    STAGES,
    by_kind,
    env_of,
    kustomize,
    main_container,
    pod_spec,
    selects,
)

TLS_KEYS = {"tls.crt", "tls.key", "ca.crt"}  # cert-manager's Secret layout


def _workloads(docs: list[dict]) -> list[dict]:
    return [*by_kind(docs, "Deployment").values(), *by_kind(docs, "Job").values()]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_restricted(rendered: dict[str, list[dict]], overlay: str) -> None:
    """Non-root, RuntimeDefault seccomp, no privilege escalation, no capabilities, read-only root filesystem."""
    docs = rendered[overlay]
    (namespace,) = by_kind(docs, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in _workloads(docs):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == 1000, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in context and "runAsUser" not in context, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_scratch_where_processes_need_it(rendered: dict[str, list[dict]], overlay: str) -> None:
    """With a read-only root, /tmp (and Triton's /dev/shm, in memory) are emptyDirs; caches point into /tmp."""
    for workload in _workloads(rendered[overlay]):
        spec = pod_spec(workload)
        empty_dirs = {v["name"]: v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in main_container(workload)["volumeMounts"]}
        assert mounts.get("/tmp") in empty_dirs, workload["metadata"]["name"]
        env = env_of(main_container(workload))
        for variable in ("XDG_CACHE_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "MPLCONFIGDIR"):
            if variable in env:
                assert PurePosixPath(env[variable]).is_relative_to("/tmp"), variable
    triton = pod_spec(by_kind(rendered[overlay], "Deployment")["face-parser"])
    shm = next(m["name"] for m in triton["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert next(v for v in triton["volumes"] if v["name"] == shm)["emptyDir"]["medium"] == "Memory"


def _secret_file(workload: dict, path: str) -> tuple[str, str]:
    """(Secret name, key) that serves `path` inside the workload's container; fails when no Secret mount does."""
    spec = pod_spec(workload)
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    for mount in main_container(workload)["volumeMounts"]:
        if mount["name"] in secrets and PurePosixPath(path).parent == PurePosixPath(mount["mountPath"]):
            # Whole-Secret mounts only: a subPath mount never sees a renewed certificate.
            assert "subPath" not in mount and mount.get("readOnly") is True, mount
            return secrets[mount["name"]], PurePosixPath(path).name
    raise AssertionError(f"{workload['metadata']['name']}: {path} is on no mounted Secret")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tls_env_points_into_each_stages_own_secret(rendered: dict[str, list[dict]], overlay: str) -> None:
    deployments = by_kind(rendered[overlay], "Deployment")
    expected = {
        "inpainter": ["FACEEDIT_TLS_CERT", "FACEEDIT_TLS_KEY", "FACEEDIT_TLS_CLIENT_CA"],
        "orchestrator": [
            "FACEEDIT_TLS_CERT",
            "FACEEDIT_TLS_KEY",
            "FACEEDIT_DOWNSTREAM_CA",
            "FACEEDIT_DOWNSTREAM_CERT",
            "FACEEDIT_DOWNSTREAM_KEY",
        ],
    }
    for stage, variables in expected.items():
        env = env_of(main_container(deployments[stage]))
        for variable in variables:
            secret, key = _secret_file(deployments[stage], env[variable])
            assert secret == f"faceedit-tls-{stage}" and key in TLS_KEYS, variable
    # The inpainter demands client certificates (mTLS), and the orchestrator presents one downstream.
    inpainter = env_of(main_container(deployments["inpainter"]))
    assert inpainter["FACEEDIT_TLS_CLIENT_CA"].endswith("/ca.crt")
    orchestrator_env = env_of(main_container(deployments["orchestrator"]))
    assert _secret_file(deployments["orchestrator"], orchestrator_env["FACEEDIT_AUTH_TOKENS"]) == (
        "faceedit-tokens",
        "tokens.sha256",
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_serves_mutual_tls_from_its_secret(rendered: dict[str, list[dict]], overlay: str) -> None:
    triton = by_kind(rendered[overlay], "Deployment")["face-parser"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in main_container(triton)["args"][1:])
    assert flags["grpc-use-ssl"] == "1" and flags["grpc-use-ssl-mutual"] == "1"
    for flag, key in (("grpc-server-cert", "tls.crt"), ("grpc-server-key", "tls.key"), ("grpc-root-cert", "ca.crt")):
        assert _secret_file(triton, flags[flag]) == ("faceedit-tls-face-parser", key), flag


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_certificates_cover_the_names_clients_dial(rendered: dict[str, list[dict]], overlay: str) -> None:
    """cert-manager writes every mounted faceedit-tls-* Secret, for the Service names the orchestrator dials; the
    orchestrator's certificate is also a client certificate (mTLS downstream)."""
    docs = rendered[overlay]
    certificates = {c["spec"]["secretName"]: c for c in by_kind(docs, "Certificate").values()}
    mounted = {
        v["secret"]["secretName"]
        for d in by_kind(docs, "Deployment").values()
        for v in pod_spec(d)["volumes"]
        if "secret" in v
    }
    assert {f"faceedit-tls-{stage}" for stage in STAGES} <= set(certificates)
    assert mounted - set(certificates) == {"faceedit-tokens"}  # tokens are the operator's (README)
    for stage in STAGES:
        spec = certificates[f"faceedit-tls-{stage}"]["spec"]
        assert f"{stage}.{NAMESPACE}.svc.cluster.local" in spec["dnsNames"]
        assert "server auth" in spec["usages"]
        assert spec["issuerRef"]["name"] == "faceedit-ca"
        assert certificates[f"faceedit-tls-{stage}"]["metadata"]["namespace"] == NAMESPACE
    assert "client auth" in certificates["faceedit-tls-orchestrator"]["spec"]["usages"]
    issuers = by_kind(docs, "Issuer")
    assert issuers["faceedit-ca"]["spec"]["ca"]["secretName"] == certificates["faceedit-ca"]["spec"]["secretName"]
    assert certificates["faceedit-ca"]["spec"]["isCA"] is True


def test_cert_manager_component_builds_on_its_own(tmp_path: Path) -> None:
    """Any kustomization can include it, here one outside deploy/."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"components:\n  - {os.path.relpath(DEPLOY / 'components' / 'cert-manager', overlay)}\n"
    )
    kinds = sorted(d["kind"] for d in kustomize(overlay))
    assert kinds == ["Certificate"] * 4 + ["Issuer"] * 2


def _ingress_sources(policies: list[dict], pod_labels: dict, port: int) -> list[dict]:
    """The `from` peers of every rule that admits traffic to `port` of a pod with these labels ([{}] = anyone)."""
    sources = []
    for policy in policies:
        if not selects(policy["spec"]["podSelector"] or {"matchLabels": {}}, pod_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            if any(p["port"] == port for p in rule.get("ports", [])) or "ports" not in rule:
                sources.extend(rule.get("from", [{}]))
    return sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_admit_only_the_orchestrator_to_grpc_ports(
    rendered: dict[str, list[dict]], overlay: str
) -> None:
    docs = rendered[overlay]
    policies = list(by_kind(docs, "NetworkPolicy").values())
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert default_deny and default_deny[0]["spec"]["policyTypes"] == ["Ingress"]
    deployments = by_kind(docs, "Deployment")
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    orchestrator_only = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}}]
    assert _ingress_sources(policies, labels["inpainter"], 50052) == orchestrator_only
    assert _ingress_sources(policies, labels["face-parser"], 8001) == orchestrator_only
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    for stage, port in (("inpainter", 9100), ("face-parser", 8002), ("orchestrator", 9101)):
        assert _ingress_sources(policies, labels[stage], port) == monitoring, stage
    # The plaintext ports: kube probes come from the node; no pod may reach them.
    for stage, port in (("inpainter", 50060), ("orchestrator", 50060), ("face-parser", 8000)):
        assert _ingress_sources(policies, labels[stage], port) == [], stage
    assert _ingress_sources(policies, labels["orchestrator"], 50051) == [{}]  # callers authenticate by token


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_plaintext_ports_are_not_published_by_services(rendered: dict[str, list[dict]], overlay: str) -> None:
    services = by_kind(rendered[overlay], "Service")
    for name, service in services.items():
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert not ports & {8000, 50060}, name
