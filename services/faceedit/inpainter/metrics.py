"""The inpainter's Prometheus metrics (faceedit_inpainter_*): calls by status, latency, the queue (depth, capacity,
wait, estimated wait), denoising speed, and the bytes each request brings (bounded by the canvas, whatever the
photo)."""

from __future__ import annotations

from faceedit.rpc.metrics import ServiceMetrics

QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class Metrics:
    def __init__(self, queue_size: int) -> None:
        series = ServiceMetrics("inpainter")
        self.registry = series.registry
        self.requests = series.counter("requests", "Inpaint calls by method and gRPC code", ["method", "code"])
        self.latency = series.histogram(
            "latency_seconds",
            "Inpaint call latency",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
            labels=["method"],
        )
        self.queue_depth = series.gauge("queue_depth", "Requests waiting")
        self.queue_capacity = series.gauge("queue_capacity", "Requests that may wait (--queue-size)")
        self.queue_capacity.set(queue_size)
        self.queue_wait = series.histogram(
            "queue_wait_seconds", "Time admitted requests waited for the pipeline", buckets=QUEUE_WAIT_BUCKETS
        )
        self.estimated_wait = series.gauge(
            "estimated_wait_seconds", "Estimated wait of a request admitted now (drives admission)"
        )
        self.received_bytes = series.histogram(
            "request_bytes",
            "Size of received Inpaint requests",
            buckets=(2**16, 2**18, 2**20, 2**21, 2**22, 2**23, 2**24, 2**26, 2**28),
        )
        self.steps = series.counter("denoise_steps", "Denoising steps run")
        self.steps_per_second = series.gauge("steps_per_second", "Denoising speed of the last request")

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)
