"""Prometheus rules and alerts (promtool check + unit tests), their PrometheusRule twin, the PodMonitor, and the
Grafana dashboard: valid PromQL over the series the rules record, and nothing outside the metrics contract."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from faceedit.inpainter.metrics import Metrics as InpainterMetrics
from faceedit.orchestrator.metrics import Metrics as OrchestratorMetrics
from tests.fixtures.deploy import DEPLOY, STAGES, by_kind, main_container, selects, tool

RULES = sorted((DEPLOY.parent / "services" / "faceedit" / "devstack").glob("*.rules.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*_test.yml"))
DASHBOARD = DEPLOY / "grafana" / "faceedit.json"
# The series the services and Triton expose (naming contract, "Metrics"), and Prometheus's own `up`.
CONTRACT_SERIES = {
    "faceedit_orchestrator_requests_total",
    "faceedit_orchestrator_latency_seconds_bucket",
    "faceedit_orchestrator_latency_seconds_sum",
    "faceedit_orchestrator_latency_seconds_count",
    "faceedit_orchestrator_stage_seconds_bucket",
    "faceedit_orchestrator_stage_seconds_sum",
    "faceedit_orchestrator_stage_seconds_count",
    "faceedit_orchestrator_in_flight",
    "faceedit_orchestrator_max_in_flight",
    "faceedit_orchestrator_auth_rejections_total",
    "faceedit_inpainter_requests_total",
    "faceedit_inpainter_latency_seconds_bucket",
    "faceedit_inpainter_queue_depth",
    "faceedit_inpainter_queue_capacity",
    "faceedit_inpainter_queue_wait_seconds_bucket",
    "faceedit_inpainter_estimated_wait_seconds",
    "faceedit_inpainter_denoise_steps_total",
    "faceedit_inpainter_steps_per_second",
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_pending_request_count",
    "up",
}
# Old names kept as recording rules that copy the new series, for dashboards and alerts written before the
# faceedit_<service>_ scheme; nothing in the repository may read them.
ALIASES = "faceedit.deprecated-aliases"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = tool("promtool", "Debian package prometheus: `make setup` installs it (apt-get install prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True)


def series_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels, strings and ranges removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return set(names) - PROMQL_WORDS


def test_series_names_reads_only_metric_names() -> None:
    expr = 'sum by (namespace, le) (rate(a_total{code=~"X|Y"}[5m])) / ignoring (code) group_left b:c:d * 1e-9 > 1/60'
    assert series_names(expr) == {"a_total", "b:c:d"}


def _groups() -> list[dict]:
    return [group for path in RULES for group in yaml.safe_load(path.read_text())["groups"]]


def _rules(aliases: bool = False) -> list[dict]:
    """The rules; only the deprecated aliases with aliases=True, none of them by default."""
    return [rule for group in _groups() if (group["name"] == ALIASES) == aliases for rule in group["rules"]]


def _exposed(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry's families expose once used (a labelled family has no sample before)."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def test_each_service_names_its_series_faceedit_service_and_exposes_the_contract() -> None:
    exposed = set()
    for service, metrics in (("orchestrator", OrchestratorMetrics(4)), ("inpainter", InpainterMetrics(2))):
        names = _exposed(metrics.registry)
        assert names and all(name.startswith(f"faceedit_{service}_") for name in names), sorted(names)
        exposed |= names
    contract = {name for name in CONTRACT_SERIES if name.startswith("faceedit_")}
    assert contract <= exposed, f"the contract names series no service exposes: {sorted(contract - exposed)}"


def test_deprecated_aliases_copy_the_new_series_under_the_old_names_and_nothing_reads_them() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    aliases = _rules(aliases=True)
    assert aliases
    for rule in aliases:
        assert set(rule) == {"record", "expr"}, rule
        assert rule["expr"] in CONTRACT_SERIES | recorded, rule
        assert rule["record"] == rule["expr"].replace("faceedit_orchestrator_", "faceedit_") != rule["expr"], rule
    old = {rule["record"] for rule in aliases}
    for expr in [rule["expr"] for rule in _rules()] + _dashboard_exprs():
        assert not series_names(expr) & old, f"{expr} reads a deprecated alias"
    # The promtool tests compare every alias with its new series.
    compared = {
        case["expr"].split(" - ")[0]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("promql_expr_test", [])
        if " - " in case["expr"]
    }
    assert old <= compared, f"aliases no promtool test compares: {sorted(old - compared)}"


def test_promtool_checks_the_rule_files() -> None:
    assert RULES, "no deploy/prometheus/*.rules.yml"
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_and_alerts_pass() -> None:
    assert RULE_TESTS, "no deploy/prometheus/tests/*_test.yml"
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_where_it_fires() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts and alerts <= fired, f"alerts without a firing unit test: {sorted(alerts - fired)}"
    for rule in _rules():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_rules_read_only_contract_metrics_and_recorded_series() -> None:
    recorded = set()
    for rule in _rules():
        unknown = series_names(rule["expr"]) - CONTRACT_SERIES - recorded
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads {sorted(unknown)}"
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]  # level:metric:ops
            recorded.add(rule["record"])


def test_the_job_filter_names_the_stages() -> None:
    """FaceeditTargetDown filters `up` by job; jobs are the stages' names (PodMonitor jobLabel, local runner)."""
    (target_down,) = [r for r in _rules() if r.get("alert") == "FaceeditTargetDown"]
    jobs = re.search(r'job=~"([^"]+)"', target_down["expr"])[1].split("|")
    assert set(jobs) == set(STAGES)


def test_prometheus_rule_carries_the_plain_rule_files_verbatim(rendered: dict[str, list[dict]]) -> None:
    (rule,) = by_kind(rendered["gpu"], "PrometheusRule").values()
    assert rule["spec"]["groups"] == _groups(), (
        "components/monitoring/prometheus-rule.yaml differs from deploy/prometheus: copy the groups over"
    )


def test_pod_monitor_scrapes_every_stage_under_its_own_job_name(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["gpu"]
    (monitor,) = by_kind(docs, "PodMonitor").values()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    job_label = monitor["spec"]["jobLabel"]
    for name, deployment in by_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(monitor["spec"]["selector"], labels), name
        assert labels[job_label] == name
        assert endpoint["port"] in {p["name"] for p in main_container(deployment)["ports"]}, name
    assert monitor["metadata"]["namespace"] == "faceedit"


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def with_dashboard_variables(expr: str) -> str:
    """A dashboard query as Prometheus receives it with every namespace selected ("All" = .*)."""
    return expr.replace("$namespace", ".*")


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 15
    rule_file = tmp_path / "dashboard.rules.yml"
    rules = [{"record": f"dashboard:query_{i}:check", "expr": with_dashboard_variables(e)} for i, e in enumerate(exprs)]
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_built_on_the_recorded_series(rendered: dict[str, list[dict]]) -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    used = set()
    for expr in _dashboard_exprs():
        names = series_names(expr)
        assert names and names <= recorded, f"{expr} reads series the rules do not record: {names - recorded}"
        used |= names
    # Every family of recorded series has a panel.
    families = {name.split(":")[1] for name in recorded}
    assert families == {name.split(":")[1] for name in used}
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["namespace"]["allValue"] == ".*" and variables["datasource"]["query"] == "prometheus"
    # The sidecar ConfigMap carries the same file.
    configmap = by_kind(rendered["gpu"], "ConfigMap")["faceedit-grafana-dashboard"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["faceedit.json"]) == dashboard
