"""The orchestrator's Prometheus metrics: calls by method and status, end-to-end latency, time per stage, calls
in flight against their limit."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from faceedit.rpc.messages import STAGES
from faceedit.v1 import face_editor_pb2 as fe


class Metrics:
    def __init__(self, max_in_flight: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceedit_requests", "Calls by method and gRPC code", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "faceedit_latency_seconds",
            "End-to-end latency",
            ["method"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.stage = Histogram(
            "faceedit_stage_seconds",
            "Time per stage of a whole request (summed over its edits)",
            ["stage"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 4, 16, 64),
        )

        self.in_flight = Gauge("faceedit_in_flight", "Calls being served", registry=self.registry)
        self.max_in_flight = Gauge(
            "faceedit_max_in_flight", "Calls served at once before refusing (--max-in-flight)", registry=self.registry
        )
        self.max_in_flight.set(max_in_flight)

        self.auth_rejections = Counter(
            "faceedit_auth_rejections",
            "Calls refused before any work for a missing, malformed or invalid bearer token",
            ["method", "reason"],
            registry=self.registry,
        )

    def rejected(self, method: str, reason: str) -> None:
        """An authentication refusal: counted here and as an UNAUTHENTICATED call of its method."""
        name = method.rsplit("/", 1)[-1]
        self.auth_rejections.labels(name, reason).inc()
        self.requests.labels(name, "UNAUTHENTICATED").inc()

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def observe_stages(self, response: fe.EditFaceResponse) -> None:
        for stage in STAGES:
            self.stage.labels(stage).observe(getattr(response.timings, f"{stage}_ms") / 1000)
