"""A real Prometheus on loopback scraping a local stack, with faceedit's rules loaded (`faceedit up --prometheus`, the
integration tests).

It runs the `prometheus` binary of Debian's `prometheus` package with a generated config: one scrape job per stage
(name it as in Kubernetes, `orchestrator`, `inpainter`, `face-parser`, so the rules' and dashboard's job filters
match), short scrape and rule-evaluation intervals, and its TSDB in a scratch directory.

    with LocalPrometheus({"orchestrator": ["http://127.0.0.1:9101/metrics"]}) as prom:
        prom.wait_for('faceedit_requests_total{method="EditFace"}')
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ChildProcess, ChildStartError, http_ok

DEBIAN_PACKAGE = "prometheus"
# Package data; deploy/components/monitoring/prometheus-rule.yaml carries the same groups for the operator.
RULES_DIR = Path(str(resources.files("faceedit.devstack")))


class PrometheusNotFound(RuntimeError):
    pass


class PrometheusStartError(ChildStartError):
    pass


def find_binary(name: str = "prometheus") -> Path:
    """The binary on PATH, or PrometheusNotFound saying which Debian package provides it."""
    found = shutil.which(name)
    if not found:
        raise PrometheusNotFound(
            f"`{name}` is not on PATH: install Debian's `{DEBIAN_PACKAGE}` package "
            f"(apt-get install --no-install-recommends {DEBIAN_PACKAGE}; `make setup` does it when run as root)"
        )
    return Path(found)


def default_rule_files() -> list[Path]:
    """faceedit's recording and alerting rules (faceedit.rules.yml, installed with this package)."""
    return sorted(RULES_DIR.glob("*.rules.yml"))


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def scrape_config(
    targets: Mapping[str, Sequence[str]], rule_files: Sequence[Path], interval_s: float
) -> dict[str, object]:
    """A Prometheus config: one job per key of `targets`, scraping its metrics URLs (http://host:port/path).

    One job is one scrape config, so the URLs of a job must share scheme and path; a URL without host:port, or a
    job without URLs, is a ValueError. Scrapes time out within the interval (Prometheus refuses a longer timeout);
    rules are evaluated as often as targets are scraped.
    """
    if interval_s <= 0:
        raise ValueError(f"scrape interval must be positive, got {interval_s}")
    jobs = []
    for job, urls in targets.items():
        if not urls:
            raise ValueError(f"job {job!r} has no metrics URL")
        parts = [urllib.parse.urlsplit(url) for url in urls]
        for url, part in zip(urls, parts, strict=True):
            if part.scheme not in ("http", "https") or not part.hostname or not part.port:
                raise ValueError(f"job {job!r}: {url!r} is not an http(s)://host:port/path metrics URL")
        kinds = {(part.scheme, part.path or "/metrics") for part in parts}
        if len(kinds) > 1:
            raise ValueError(f"job {job!r}: its URLs differ in scheme or path ({sorted(kinds)}); use one job each")
        ((scheme, path),) = kinds
        jobs.append(
            {
                "job_name": job,
                "scheme": scheme,
                "metrics_path": path,
                "static_configs": [{"targets": [part.netloc for part in parts]}],
            }
        )
    interval = _duration(interval_s)
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": jobs,
    }


@dataclass
class LocalPrometheus(ChildProcess):
    """`prometheus` scraping `targets` ({job: [metrics URL, ...]}) with `rule_files` loaded; a context manager.

    Binds host:port (port 0: a free one). Its TSDB and log live in `workdir` (default: a temporary directory,
    removed on stop).
    """

    targets: Mapping[str, Sequence[str]]
    rule_files: Sequence[Path] = field(default_factory=default_rule_files)
    scrape_interval_s: float = 1.0
    host: str = "127.0.0.1"
    port: int = 0
    workdir: Path | None = None
    binary: Path | None = None
    ready_timeout_s: float = 30.0
    name: str = "prometheus"
    _own_workdir: bool = field(default=False, init=False)
    start_error = PrometheusStartError

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def prepare(self) -> None:
        """Its config (JSON is YAML) and TSDB directory in workdir, and its port."""
        self.binary = self.binary or find_binary()
        config = scrape_config(self.targets, self.rule_files, self.scrape_interval_s)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="faceedit-prometheus-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "prometheus.log"
        (self.workdir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        if not self.port:
            self.port = free_port(self.host)

    def command(self) -> list[str]:
        assert self.workdir is not None
        return [
            str(self.binary),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--log.level=warn",
        ]

    def is_ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def reason_in_log(self, log: str) -> str | None:
        """Its last error line (logfmt: `... level=error ... err="..."`)."""
        errors = [line for line in log.splitlines() if re.search(r"level=error", line, re.I)]
        return errors[-1] if errors else None

    def _api(self, path: str, **params: str) -> object:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: a bad expression; the body says why
            body = json.load(exc)
        if body.get("status") != "success":
            raise ValueError(f"prometheus /api/v1/{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector `expr` evaluates to now: [{"metric": {labels}, "value": [time, "value"]}, ...].

        A scalar or string result comes back as one item without labels; a malformed expression is a ValueError.
        """
        data = self._api("query", query=expr)
        assert isinstance(data, dict)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_for(self, expr: str, timeout_s: float = 60.0, until: Callable[[list[dict]], bool] = bool) -> list[dict]:
        """Poll `expr` until `until(result)` holds (default: a non-empty result); TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if until(result):
                return result
            time.sleep(0.2)
        raise TimeoutError(f"{expr!r} did not reach the expected result within {timeout_s:.0f}s; last: {result}")

    def rule_groups(self) -> list[str]:
        """Names of the rule groups Prometheus has loaded."""
        data = self._api("rules")
        assert isinstance(data, dict)
        return [group["name"] for group in data["groups"]]

    def cleanup(self) -> None:
        """Removes a temporary workdir once Prometheus has ended."""
        if self._own_workdir and self.workdir is not None and self.exit_code() is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
