"""The one naming scheme of faceedit's Prometheus series: faceedit_<service>_<name>, each service in its own
registry. The dashboards, rules and HPAs under deploy/ match series by these names."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "faceedit"


class ServiceMetrics:
    """Makes one service's series, named faceedit_<service>_<name>, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self._scope = {"namespace": PREFIX, "subsystem": service, "registry": self.registry}

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labels, **self._scope)

    def gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, **self._scope)

    def histogram(
        self, name: str, documentation: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, **self._scope)
