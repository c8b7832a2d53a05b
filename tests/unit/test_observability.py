"""Pure parts of tracing and logging: intervals laid back on the clock, request lines, JSON records, flags."""

from __future__ import annotations

import argparse
import io
import json
import logging

import pytest

from faceedit.devstack.triton import otlp_http_traces_url, trace_flags
from faceedit.rpc.config import check_server_flags, server_flags
from faceedit.rpc.logs import RequestLog, configure_logging, request_fields, timings_ms
from faceedit.rpc.tracing import spans_ending_at
from faceedit.v1 import types_pb2


def test_spans_end_where_the_work_ended_and_follow_each_other() -> None:
    spans = spans_ending_at(10_000_000_000, [("queue", 2.5), ("denoise", 100.0), ("composite", -1.0)])
    assert spans == [
        ("queue", 9_897_500_000, 9_900_000_000),
        ("denoise", 9_900_000_000, 10_000_000_000),
        ("composite", 10_000_000_000, 10_000_000_000),
    ]


def test_request_fields_keep_the_measured_stages_only() -> None:
    timings = types_pb2.StageTimings(decode_ms=1.234, parse_ms=20.0, total_ms=50.05)
    fields = request_fields("EditFace", "OK", "abc", 0.0512, attributes=["hair"], timings=timings, steps=2)
    assert fields == {
        "event": "request",
        "method": "EditFace",
        "code": "OK",
        "request_id": "abc",
        "attributes": ["hair"],
        "duration_ms": 51.2,
        "decode_ms": 1.2,
        "parse_ms": 20.0,
        "total_ms": 50.0,  # rounded to 0.1 ms (50.05 is 50.04999... in binary)
        "steps": 2,
    }
    assert timings_ms(None) == {}


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_request_line_is_one_line_in_either_format(fmt: str) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", fmt, stream=out)
        record = RequestLog("Inpaint", "id-1", ["lips"])
        record.timings = types_pb2.StageTimings(denoise_ms=12.0)
        record.observer(lambda *_: None)("Inpaint", "DEADLINE_EXCEEDED", 0.02)
        logging.getLogger("faceedit.test").debug("not written at info")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    (line,) = out.getvalue().splitlines()
    if fmt == "json":
        entry = json.loads(line)
        assert entry["level"] == "info" and entry["logger"] == "faceedit.requests" and entry["ts"].endswith("Z")
        assert entry["msg"] == "Inpaint DEADLINE_EXCEEDED" and entry["request_id"] == "id-1"
        assert entry["attributes"] == ["lips"] and entry["denoise_ms"] == 12.0 and entry["duration_ms"] == 20.0
        assert "trace_id" not in entry  # no span is current
    else:
        assert line.endswith(
            "Inpaint DEADLINE_EXCEEDED request_id=id-1 attributes=lips duration_ms=20.0 denoise_ms=12.0"
        )


def test_log_and_tracing_flags_take_env_values_and_check_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        server_flags(parser, port=1, metrics_port=2)
        return parser.parse_args(argv)

    args = parse()
    assert (args.log_level, args.log_format, args.tracing) == ("info", "text", False)
    assert parse("--tracing").tracing is True and parse("--tracing", "false").tracing is False
    monkeypatch.setenv("FACEEDIT_LOG_FORMAT", "JSON")
    monkeypatch.setenv("FACEEDIT_TRACING", "1")
    args = parse()
    assert (args.log_format, args.tracing, check_server_flags(args)) == ("json", True, None)
    monkeypatch.setenv("FACEEDIT_LOG_LEVEL", "verbose")
    assert "--log-level (FACEEDIT_LOG_LEVEL) must be one of debug, info, warning, error" in check_server_flags(parse())


def test_triton_traces_over_otlp_http_next_to_the_services_collector() -> None:
    assert trace_flags(None) == []
    flags = trace_flags("http://c:4318/v1/traces")
    assert "--trace-config=mode=opentelemetry" in flags and "--trace-config=rate=1" in flags
    assert "--trace-config=opentelemetry,url=http://c:4318/v1/traces" in flags
    assert "--trace-config=opentelemetry,resource=service.name=face-parser" in flags
    assert otlp_http_traces_url(None) == "http://localhost:4318/v1/traces"
    assert otlp_http_traces_url("http://collector.obs:4317") == "http://collector.obs:4318/v1/traces"
    assert otlp_http_traces_url("jaeger:4317") == "http://jaeger:4318/v1/traces"
    assert otlp_http_traces_url("https://[::1]:4317") == "https://[::1]:4318/v1/traces"
