"""A real OTLP trace receiver on loopback for tests: the collector's TraceService over gRPC (what faceedit's
services export with) and OTLP/HTTP protobuf on /v1/traces (what Triton's OpenTelemetry mode exports with). It
keeps every span it is sent; tests wait on what arrived."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind: 1 internal, 2 server, 3 client
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    start_ns: int
    end_ns: int
    attributes: dict


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        kind=span.kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


def _ids_as_base64(node: object) -> object:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(node, list):
        return [_ids_as_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: base64.b64encode(bytes.fromhex(value)).decode()
        if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str)
        else _ids_as_base64(value)
        for key, value in node.items()
    }


def from_otlp_json(body: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict(_ids_as_base64(json.loads(body)), request, ignore_unknown_fields=True)
    return request


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Context manager: grpc_endpoint (http://127.0.0.1:port, for OTEL_EXPORTER_OTLP_ENDPOINT) and http_url
    (http://127.0.0.1:port/v1/traces, for Triton)."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._grpc: grpc.Server | None = None
        self._http: http.server.ThreadingHTTPServer | None = None

    def Export(self, request, context):
        self._add(spans_of(request))
        return trace_service_pb2.ExportTraceServiceResponse()

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, condition: Callable[[list[ReceivedSpan]], bool], what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition(self.spans):
            got = [f"{s.service}:{s.name}@{s.trace_id[:8]}" for s in self.spans]
            assert time.monotonic() < deadline, f"timed out waiting for {what}; got {got}"
            time.sleep(0.05)

    def start(self) -> OtlpReceiver:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.headers.get("Content-Type", "")
                if self.path != "/v1/traces" or not ("protobuf" in kind or "json" in kind):
                    self.send_response(415)
                    self.end_headers()
                    return
                if "json" in kind:  # opentelemetry-cpp's default (Triton)
                    receiver._add(spans_of(from_otlp_json(body)))
                    reply, kind = b"{}", "application/json"
                else:
                    receiver._add(spans_of(trace_service_pb2.ExportTraceServiceRequest.FromString(body)))
                    reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
