"""Scale-out in the manifests: per-call balancing (headless Services, dns:/// targets, connection ageing, keepalive
that both sides accept), PDBs, topology spread, and autoscaler metrics that prometheus-adapter really serves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.deploy import (
    NAMESPACE,
    OVERLAYS,
    STAGES,
    by_kind,
    env_of,
    main_container,
    pod_spec,
    selects,
    tool,
)

# The orchestrator's channels (naming contract, "Client keepalive"): pings every 30 s, also without calls.
CLIENT_KEEPALIVE_TIME_MS = 30_000
# The series each adapter metric is discovered from (its seriesQuery), where the names differ.
SERIES_OF = {"triton_queue_time_per_request_us": "nv_inference_queue_duration_us"}
DNS_TARGETS = {"FACEEDIT_PARSER_URL": ("face-parser", "grpc"), "FACEEDIT_INPAINTER_ADDRESS": ("inpainter", "grpc")}


def _triton_flags(docs: list[dict]) -> dict[str, str]:
    args = main_container(by_kind(docs, "Deployment")["face-parser"])["args"]
    assert args[0] == "tritonserver"
    return dict(arg.removeprefix("--").split("=", 1) for arg in args[1:])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_and_inpainter_services_are_headless(rendered: dict[str, list[dict]], overlay: str) -> None:
    services = by_kind(rendered[overlay], "Service")
    assert services["face-parser"]["spec"]["clusterIP"] == "None"
    assert services["inpainter"]["spec"]["clusterIP"] == "None"
    assert services["orchestrator"]["spec"].get("clusterIP") != "None"  # callers reach it through one VIP


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_orchestrator_dials_dns_targets_of_the_headless_services(rendered: dict[str, list[dict]], overlay: str) -> None:
    """dns:/// makes gRPC resolve every pod address; round_robin (in the orchestrator's code) then spreads calls.
    A bare host:port or a ClusterIP would give one connection to one pod."""
    docs = rendered[overlay]
    env = env_of(main_container(by_kind(docs, "Deployment")["orchestrator"]))
    services = by_kind(docs, "Service")
    for variable, (service, port_name) in DNS_TARGETS.items():
        match = re.fullmatch(r"dns:///([a-z0-9.-]+):(\d+)", env[variable])
        assert match, f"{variable}={env[variable]!r} is not a dns:/// target"
        host, port = match[1], int(match[2])
        assert host == f"{service}.{NAMESPACE}.svc.cluster.local"
        assert services[service]["spec"]["clusterIP"] == "None"
        (service_port,) = [p for p in services[service]["spec"]["ports"] if p["name"] == port_name]
        assert service_port["port"] == port
    # Nothing in the env points the orchestrator at a load-balancing policy other than the code's round_robin.
    assert not [name for name in env if re.search(r"LB|BALANC|SERVICE_CONFIG", name)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servers_age_connections_so_clients_reresolve(rendered: dict[str, list[dict]], overlay: str) -> None:
    docs = rendered[overlay]
    flags = _triton_flags(docs)
    assert int(flags["grpc-max-connection-age"]) > 0 and int(flags["grpc-max-connection-age-grace"]) > 0
    for stage in ("inpainter", "orchestrator"):
        env = env_of(main_container(by_kind(docs, "Deployment")[stage]))
        assert float(env["FACEEDIT_MAX_CONNECTION_AGE"]) > 0
        # In-flight calls on an aged connection may finish: the grace covers a drain's worth of work.
        assert float(env["FACEEDIT_MAX_CONNECTION_AGE_GRACE"]) >= float(env["FACEEDIT_DRAIN_GRACE"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_keepalive_accepts_the_orchestrators_pings(rendered: dict[str, list[dict]], overlay: str) -> None:
    """A server that expects pings less often than the client sends them answers GOAWAY too_many_pings."""
    flags = _triton_flags(rendered[overlay])
    assert int(flags["grpc-http2-min-recv-ping-interval-without-data"]) <= CLIENT_KEEPALIVE_TIME_MS
    assert flags["grpc-keepalive-permit-without-calls"] == "1"  # the client pings idle connections too
    assert flags["grpc-http2-max-pings-without-data"] == "0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_stage_has_a_disruption_budget_for_its_own_pods(rendered: dict[str, list[dict]], overlay: str) -> None:
    docs = rendered[overlay]
    deployments, pdbs = by_kind(docs, "Deployment"), by_kind(docs, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        selecting = [
            pdb
            for pdb in pdbs.values()
            if selects(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selecting) == 1, f"{name}: {len(selecting)} PDBs select its pods"
        (pdb,) = selecting
        # maxUnavailable, not minAvailable: a one-replica stage must not block node drains forever.
        assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert len(pdbs) == len(deployments)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_spread_over_zones_and_nodes(rendered: dict[str, list[dict]], overlay: str) -> None:
    for name, deployment in by_kind(rendered[overlay], "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        constraints = pod_spec(deployment)["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        for constraint in constraints:
            assert selects(constraint["labelSelector"], labels), f"{name} spreads someone else's pods"
            assert constraint["maxSkew"] == 1
            # ScheduleAnyway: a cluster with one zone or too few GPU nodes still schedules.
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            assert constraint["matchLabelKeys"] == ["pod-template-hash"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_a_memory_limit(rendered: dict[str, list[dict]], overlay: str) -> None:
    """CPU is requested, not limited (CFS throttling stalls latency-bound servers); memory is both."""
    workloads = [*by_kind(rendered[overlay], "Deployment").values(), *by_kind(rendered[overlay], "Job").values()]
    for workload in workloads:
        spec = pod_spec(workload)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), workload["metadata"]["name"]
            assert "memory" in resources["limits"], workload["metadata"]["name"]
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                assert "sizeLimit" in volume["emptyDir"], f"{workload['metadata']['name']}: {volume['name']}"


def _adapter_rules(docs: list[dict]) -> list[dict]:
    config = by_kind(docs, "ConfigMap")["prometheus-adapter"]
    assert config["metadata"]["namespace"] == "monitoring"
    return yaml.safe_load(config["data"]["config.yaml"])["rules"]


def _served_name(rule: dict) -> str:
    series = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"].strip("'"))[0]
    assert re.fullmatch(rule["name"]["matches"], series), rule
    return rule["name"].get("as", series)


def test_adapter_serves_every_pods_metric_the_hpas_use(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["gpu"]
    served = {_served_name(rule): rule for rule in _adapter_rules(docs)}
    wanted = {
        metric["pods"]["metric"]["name"]
        for hpa in by_kind(docs, "HorizontalPodAutoscaler").values()
        for metric in hpa["spec"]["metrics"]
        if metric["type"] == "Pods"
    }
    assert wanted == {"faceedit_inpainter_queue_depth", "triton_queue_time_per_request_us"}
    assert wanted <= set(served)
    for name in wanted:
        overrides = served[name]["resources"]["overrides"]
        assert overrides == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}, name


def test_adapter_queries_compute_per_pod_values(rendered: dict[str, list[dict]], tmp_path: Path) -> None:
    """The adapter's queries, with its templates filled in as it does for one namespace's pods, evaluated by promtool
    on synthetic series: Triton's wait per request is rate(queue time) / rate(successes), and an idle pod is 0."""
    rules = {_served_name(rule): rule["metricsQuery"] for rule in _adapter_rules(rendered["gpu"])}
    filled = {
        name: query.replace("<<.Series>>", SERIES_OF.get(name, name))
        .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"p1|p2"')
        .replace("<<.GroupBy>>", "namespace,pod")
        for name, query in rules.items()
    }
    rule_file = tmp_path / "adapter.rules.yml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {"name": "adapter", "rules": [{"record": f"adapter:{n}", "expr": q} for n, q in filled.items()]}
                ]
            }
        )
    )
    series = {
        # p1: one parse/s, each queued 200 ms; p2: idle (counters flat).
        'nv_inference_queue_duration_us{namespace="faceedit",pod="p1",model="face_parser"}': "0+12000000x10",
        'nv_inference_request_success{namespace="faceedit",pod="p1",model="face_parser"}': "0+60x10",
        'nv_inference_queue_duration_us{namespace="faceedit",pod="p2",model="face_parser"}': "5000x10",
        'nv_inference_request_success{namespace="faceedit",pod="p2",model="face_parser"}': "7x10",
        'faceedit_inpainter_queue_depth{namespace="faceedit",pod="p1"}': "3x10",
        'faceedit_inpainter_queue_depth{namespace="faceedit",pod="p2"}': "1x10",
        # Another namespace's pod of the same name is not ours.
        'faceedit_inpainter_queue_depth{namespace="other",pod="p1"}': "8x10",
    }

    def samples(name: str, values: dict[str, float]) -> dict:
        return {
            "expr": f"adapter:{name}",
            "eval_time": "5m",
            "exp_samples": [
                {"labels": f'adapter:{name}{{namespace="faceedit",pod="{pod}"}}', "value": value}
                for pod, value in values.items()
            ],
        }

    test_file = tmp_path / "adapter_test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rule_file.name],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": s, "values": v} for s, v in series.items()],
                        "promql_expr_test": [
                            samples("triton_queue_time_per_request_us", {"p1": 200000, "p2": 0}),
                            samples("faceedit_inpainter_queue_depth", {"p1": 3, "p2": 1}),
                        ],
                    }
                ],
            }
        )
    )
    result = subprocess.run(
        [tool("promtool", "Debian package prometheus; make setup installs it"), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_scale_down_is_slower_than_scale_up_for_gpu_stages(rendered: dict[str, list[dict]], overlay: str) -> None:
    """A new inpainter or Triton pod loads models for minutes: removing pods quickly would thrash."""
    hpas = by_kind(rendered[overlay], "HorizontalPodAutoscaler")
    for name in ("inpainter", "face-parser"):
        assert hpas[name]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300, name
    assert set(hpas) == set(STAGES)
