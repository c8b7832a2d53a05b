"""The local Prometheus's config: one job per stage from metrics URLs, accepted by promtool with faceedit's rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from faceedit.devstack.prometheus import (
    DEBIAN_PACKAGE,
    LocalPrometheus,
    PrometheusNotFound,
    default_rule_files,
    find_binary,
    scrape_config,
)

TARGETS = {
    "orchestrator": ["http://127.0.0.1:9101/metrics"],
    "inpainter": ["http://127.0.0.1:9100/metrics", "http://127.0.0.1:9200/metrics"],
    "face-parser": ["http://127.0.0.1:8002/metrics"],
}


def test_one_job_per_stage_with_its_targets() -> None:
    config = scrape_config(TARGETS, default_rule_files(), 0.5)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(TARGETS)
    assert jobs["inpainter"]["static_configs"] == [{"targets": ["127.0.0.1:9100", "127.0.0.1:9200"]}]
    assert jobs["face-parser"]["metrics_path"] == "/metrics" and jobs["face-parser"]["scheme"] == "http"
    # Prometheus refuses a scrape timeout longer than the interval; rules run as often as scrapes.
    assert config["global"] == {"scrape_interval": "500ms", "scrape_timeout": "500ms", "evaluation_interval": "500ms"}
    assert config["rule_files"] and all(Path(path).is_absolute() for path in config["rule_files"])


@pytest.mark.parametrize(
    "targets,problem",
    [
        ({"x": []}, "has no metrics URL"),
        ({"x": ["127.0.0.1:9100/metrics"]}, "not an http(s)://host:port/path"),
        ({"x": ["http://127.0.0.1/metrics"]}, "not an http(s)://host:port/path"),
        ({"x": ["http://127.0.0.1:1/metrics", "http://127.0.0.1:2/other"]}, "differ in scheme or path"),
    ],
)
def test_unusable_targets_are_refused(targets: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        scrape_config(targets, [], 1.0)


def test_promtool_accepts_the_config_with_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, f"promtool is missing: install Debian's `{DEBIAN_PACKAGE}` package (make setup does, as root)"
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(scrape_config(TARGETS, default_rule_files(), 1.0)))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_a_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrometheusNotFound, match=f"Debian's `{DEBIAN_PACKAGE}` package"):
        find_binary()
    with pytest.raises(PrometheusNotFound):
        LocalPrometheus(TARGETS).start()
