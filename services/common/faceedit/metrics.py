"""Prometheus metrics for a service, on its own registry and HTTP port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> int | None:
    """Expose registry on http://host:port/metrics; port 0 picks a free port, -1 disables. Returns the port."""
    if port < 0:
        return None
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server.server_port
