"""The inpainter's Prometheus metrics: calls by status, latency, the queue (depth, capacity, wait, estimated
wait), denoising speed, and the bytes each request brings (bounded by the canvas, whatever the photo)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class Metrics:
    def __init__(self, queue_size: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceedit_inpainter_requests",
            "Inpaint calls by method and gRPC code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "faceedit_inpainter_latency_seconds",
            "Inpaint call latency",
            ["method"],
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.queue_depth = Gauge("faceedit_inpainter_queue_depth", "Requests waiting", registry=self.registry)
        self.queue_capacity = Gauge(
            "faceedit_inpainter_queue_capacity", "Requests that may wait (--queue-size)", registry=self.registry
        )
        self.queue_capacity.set(queue_size)
        self.queue_wait = Histogram(
            "faceedit_inpainter_queue_wait_seconds",
            "Time admitted requests waited for the pipeline",
            registry=self.registry,
            buckets=QUEUE_WAIT_BUCKETS,
        )
        self.estimated_wait = Gauge(
            "faceedit_inpainter_estimated_wait_seconds",
            "Estimated wait of a request admitted now (drives admission)",
            registry=self.registry,
        )
        self.received_bytes = Histogram(
            "faceedit_inpainter_request_bytes",
            "Size of received Inpaint requests",
            registry=self.registry,
            buckets=(2**16, 2**18, 2**20, 2**21, 2**22, 2**23, 2**24, 2**26, 2**28),
        )
        self.steps = Counter("faceedit_inpainter_denoise_steps", "Denoising steps run", registry=self.registry)
        self.steps_per_second = Gauge(
            "faceedit_inpainter_steps_per_second", "Denoising speed of the last request", registry=self.registry
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)
